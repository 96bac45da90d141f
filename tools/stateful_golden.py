"""Which resources of a stack count as stateful, and the golden lists that pin them.

    python -m tools.stateful_golden [STACK ...]          # shipped stacks -> tests/golden/stateful/
    python -m tools.stateful_golden --fixtures [STACK ...]  # tests/fixtures/stacks -> .../fixtures/

A resource is stateful when losing it loses data or takes the service down for long: its
type is one of STATEFUL_TYPES, or the program marks it `protect`. The replacement guard
(tools/plan_diff.py --fail-on-stateful-replace) stops a pull request that would replace or
delete one. Each stack's golden list (`[{"type", "name", "why"}]`, sorted) is written from its
offline plan by this command and checked by the tests, so that what counts as stateful never
changes without a reviewed diff of the list.

Exit status: 0 written; 2 a stack's configuration is invalid (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tools.plan import ROOT, PlanConfigError, build_plan

GOLDEN = ROOT / "tests" / "golden" / "stateful"
FIXTURE_STACKS = ROOT / "tests" / "fixtures" / "stacks"
REGENERATE = "python -m tools.stateful_golden"

# Each type holds data or carries the service; the reason is what a replacement loses.
STATEFUL_TYPES = {
    # the secrets (soft delete keeps a deleted vault's name taken for the retention period)
    "azure-native:keyvault:Vault": "Key Vault: the stack's secrets",
    # the control plane and every workload on it; a new cluster has a new API address
    "azure-native:containerservice:ManagedCluster": "AKS cluster: every workload on it",
    # a replaced pool drains and deletes its GPU nodes: the models on it stop until new
    # nodes join and pull their images and weights again
    "azure-native:containerservice:AgentPool": "node pool: its nodes and the pods on them",
    # the model cache: weights downloaded again on a new claim
    "kubernetes:core/v1:PersistentVolumeClaim": "volume claim: its data (the model cache)",
    "azure-native:storage:StorageAccount": "storage account: its data",
    "azure-native:operationalinsights:Workspace": "Log Analytics workspace: its logs",
    "azure-native:monitor:AzureMonitorWorkspace": "Azure Monitor workspace: its metrics",
    "azure-native:containerregistry:Registry": "container registry: its images",
}


def stateful_reason(resource: dict[str, Any]) -> str | None:
    """Why a planned resource counts as stateful, or None."""
    reasons = []
    if resource.get("type") in STATEFUL_TYPES:
        reasons.append(STATEFUL_TYPES[resource["type"]])
    if resource.get("protect"):
        reasons.append("protect")
    return "; ".join(reasons) or None


def golden_entries(resources: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """The golden list of a plan's resources: each stateful one by type and name."""
    entries = [
        {"type": r["type"], "name": r["name"], "why": why}
        for r in resources
        if (why := stateful_reason(r)) is not None
    ]
    return sorted(entries, key=lambda e: (e["type"], e["name"]))


def golden_path(stack: str, fixtures: bool = False) -> Path:
    return (GOLDEN / "fixtures" if fixtures else GOLDEN) / f"{stack}.json"


def golden_text(entries: list[dict[str, str]]) -> str:
    return json.dumps(entries, indent=2) + "\n"


def missing_from_golden(stack: str, resources: Iterable[dict[str, Any]]) -> list[str]:
    """One line per stateful resource of a shipped stack's plan that its golden list lacks
    (a fork's new model adds a claim: the list must be regenerated and reviewed)."""
    path = golden_path(stack)
    pinned = json.loads(path.read_text()) if path.is_file() else []
    known = {(e["type"], e["name"]) for e in pinned}
    return [
        f"{stack}: {e['type']} {e['name']} is stateful ({e['why']}) but not in"
        f" {path.relative_to(ROOT)}: run `{REGENERATE} {stack}` and review the diff"
        for e in golden_entries(resources)
        if (e["type"], e["name"]) not in known
    ]


def _fixture_root(target: Path) -> Path:
    """Pulumi.yaml and the fixture stacks where Pulumi.yaml's stackConfigDir names them."""
    from tools.stack_files import stack_file_path

    shutil.copy(ROOT / "Pulumi.yaml", target / "Pulumi.yaml")
    shutil.copytree(FIXTURE_STACKS, stack_file_path(target, "x").parent)
    return target


def write_golden(stacks: list[str], config_root: Path, fixtures: bool) -> None:
    for stack in stacks:
        plan = build_plan(stack, config_root=config_root)
        path = golden_path(stack, fixtures)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(golden_text(golden_entries(plan["resources"])))
        print(f"{path.relative_to(ROOT)}: {len(golden_entries(plan['resources']))} resources")


def main(argv: list[str] | None = None) -> int:
    from tools.stack_files import available_stacks

    parser = argparse.ArgumentParser(prog="stateful_golden", description=__doc__.split("\n")[0])
    parser.add_argument("stacks", nargs="*", help="stacks to write (default: every one)")
    parser.add_argument("--fixtures", action="store_true", help="the fixture stacks instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stateful-golden-") as tmp:
        root = _fixture_root(Path(tmp)) if args.fixtures else ROOT
        known = available_stacks(root)
        unknown = [stack for stack in args.stacks if stack not in known]
        if unknown:
            print(
                f"stateful_golden: stack {unknown[0]!r} not found; expected one of"
                f" {', '.join(known)}",
                file=sys.stderr,
            )
            return 2
        try:
            write_golden(args.stacks or known, root, args.fixtures)
        except PlanConfigError as err:
            print(f"stateful_golden: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
