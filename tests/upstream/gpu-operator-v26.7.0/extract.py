"""Reduce the GPU Operator chart's files to what tests/test_helm_contracts.py reads.

values.yaml files are stored as their default values in sorted JSON (comments dropped).
The node-feature-discovery subchart's values.schema.json is stored without its
"description" keywords, which do not take part in validation (they are most of its size).
"""

from __future__ import annotations

import json
from typing import Any

import yaml


def extract(local_name: str, text: str) -> str:
    if local_name.endswith("values.json"):
        return json.dumps(yaml.safe_load(text), indent=1, sort_keys=True) + "\n"
    if local_name.endswith("schema.json"):
        return json.dumps(_without_descriptions(json.loads(text)), indent=0, sort_keys=True) + "\n"
    return text


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node
