"""Reduce pulumi-azure-native's provider/pkg/gen/replacement.go to its two tables, as JSON:
forceNewMap (module -> resource -> properties whose change replaces the resource) and
noForceNewMap (properties that never force a replacement).

The Go file writes them as `var <name> = map[...]...{ "<Module>": { "<Resource>":
codegen.NewStringSet("<property>", ...), }, }`; this reads exactly that form and fails on
anything else, so that a change of shape upstream is noticed instead of misread.
"""

from __future__ import annotations

import json
import re

TABLES = {"forceNewMap": "forceNew", "noForceNewMap": "noForceNew"}
MODULE = re.compile(r'"(\w+)":\s*\{(.*?)\n\t\},', re.S)
ENTRY = re.compile(r'"(\w+)":\s*codegen\.NewStringSet\(([^)]*)\),')


def _table(text: str, name: str) -> dict[str, dict[str, list[str]]]:
    match = re.search(rf"\nvar {name} = map\[[^\n]*\{{\n(.*?)\n\}}\n", text, re.S)
    if not match:
        raise ValueError(f"no var {name} in the file")
    body = re.sub(r"//[^\n]*", "", match.group(1))
    table = {}
    for module, entries in MODULE.findall(body):
        table[module] = {
            resource: sorted(json.loads(s) for s in re.findall(r'"\w+"', properties))
            for resource, properties in ENTRY.findall(entries)
        }
        if ENTRY.sub("", entries).strip():
            raise ValueError(f"{name}.{module}: unexpected text {ENTRY.sub('', entries)!r}")
    if MODULE.sub("", body).strip():
        raise ValueError(f"{name}: unexpected text {MODULE.sub('', body)!r}")
    return table


def extract(local_name: str, text: str) -> str:
    facts = {key: _table(text, name) for name, key in TABLES.items()}
    return json.dumps(facts, indent=2, sort_keys=True) + "\n"
