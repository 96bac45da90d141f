"""Reduce a Helm chart's values.yaml to what tests/test_helm_contracts.py reads: its default
values as sorted JSON (comments dropped). Other files are stored whole."""

from __future__ import annotations

import json

import yaml


def extract(local_name: str, text: str) -> str:
    if local_name.endswith("values.json"):
        return json.dumps(yaml.safe_load(text), indent=1, sort_keys=True) + "\n"
    return text
