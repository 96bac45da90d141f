"""Reduce AgentBaker's node provisioning scripts to what an AgentPool's gpuInstanceProfile does.

mig-partition.json (mig-partition.sh): for each AKS profile name, the GPU instance profile
ids `nvidia-smi mig -cgi` creates on every GPU (one id per slice).
provisioning.json (cse_main.sh): the conditions of the `if` blocks around the
ensureMigPartition call, outermost first: when AKS partitions a node's GPUs.
managed-device-plugin.json (cse_config.sh): the --mig-strategy flags AKS gives the device
plugin it runs itself on MIG nodes, in the order the script tests them, with the condition
of the first.
"""

from __future__ import annotations

import json
import re

CASE = re.compile(r'^\s*"(MIG\dg)"\)\s*\n\s*nvidia-smi mig -cgi ([\d,]+)', re.M)
STRATEGY_FLAG = re.compile(r'MIG_STRATEGY_FLAG="--mig-strategy (\w+)"')
MANAGED_IF = re.compile(
    r'^\s*if (\[ "\$\{NVIDIA_MIG_STRATEGY\}".*?\]); then\s*\n\s*MIG_STRATEGY_FLAG', re.M
)


def _partitions(text: str) -> dict:
    return {name: [int(i) for i in ids.split(",")] for name, ids in CASE.findall(text)}


def _enclosing_ifs(text: str, call: str = "ensureMigPartition") -> list[str]:
    """The `if` conditions open at the line that calls `call`, by indentation."""
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        while stack and indent <= stack[-1][0] and not stripped.startswith(("else", "elif")):
            stack.pop()
        if stripped.startswith("if ") and stripped.endswith("then"):
            stack.append((indent, stripped[3:].removesuffix("; then")))
        if stripped.endswith(" " + call):
            return [condition for _, condition in stack]
    raise ValueError(f"{call} not called")


def _managed(text: str) -> dict:
    return {
        "flags": STRATEGY_FLAG.findall(text),
        "first when": MANAGED_IF.search(text).group(1),
    }


EXTRACTORS = {
    "mig-partition.json": _partitions,
    "provisioning.json": _enclosing_ifs,
    "managed-device-plugin.json": _managed,
}


def extract(local_name: str, text: str) -> str:
    return json.dumps(EXTRACTORS[local_name](text), indent=1, sort_keys=True) + "\n"
