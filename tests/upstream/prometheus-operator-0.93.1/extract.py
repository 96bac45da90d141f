"""Keep a CRD's structure and drop its prose: every schema's `description` goes (they are
most of the file's 75 KB and no check reads them)."""

from __future__ import annotations

from typing import Any

import yaml


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_descriptions(value)
            for key, value in node.items()
            # A property may itself be named "description": only drop the prose (a string).
            if not (key == "description" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_without_descriptions(item) for item in node]
    return node


def extract(local_name: str, text: str) -> str:
    (crd,) = [doc for doc in yaml.safe_load_all(text) if doc]
    return yaml.safe_dump(_without_descriptions(crd), sort_keys=True)
