"""Reduce the loki chart's values.yaml to what the contract tests read: its default values
as sorted JSON (comments dropped). Its example schema dates load as dates: stored as the
ISO strings they are written as. Other files are stored whole."""

from __future__ import annotations

import json

import yaml


def extract(local_name: str, text: str) -> str:
    if local_name.endswith("values.json"):
        values = yaml.safe_load(text)
        return json.dumps(values, indent=1, sort_keys=True, default=str) + "\n"
    return text
