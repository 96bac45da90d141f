"""Reduce the Azure Naming Tool's resource type table (mspnp/AzureNamingTool,
src/repository/resourcetypes.json) to the naming rules of the provider namespaces the
platform creates resources in: per resource type its scope, length range, the regular
expression the tool validates names with, and the rule in words (Microsoft's "Naming rules
and restrictions for Azure resources" page, which the table transcribes).

Output: JSON keyed by resource type (`<Namespace>/<type>`), sorted; repeated rows of one
type (the tool lists some twice) must agree."""

from __future__ import annotations

import json

NAMESPACES = (
    "ContainerRegistry",
    "ContainerService",
    "KeyVault",
    "ManagedIdentity",
    "Network",
    "OperationalInsights",
    "Resources",
    "Storage",
)
FIELDS = {
    "scope": "scope",
    "lengthMin": "min_length",
    "lengthMax": "max_length",
    "regx": "regex",
    "validText": "rule",
}


def rules(rows: list[dict]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for row in rows:
        if row["resource"].split("/")[0] not in NAMESPACES:
            continue
        rule = {ours: " ".join(str(row[theirs]).split()) for theirs, ours in FIELDS.items()}
        if found.setdefault(row["resource"], rule) != rule:
            raise ValueError(f"{row['resource']}: two rows disagree")
    return dict(sorted(found.items()))


def extract(local_name: str, text: str) -> str:
    return json.dumps(rules(json.loads(text)), indent=1, sort_keys=True) + "\n"
