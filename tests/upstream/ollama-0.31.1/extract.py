"""Reduce Ollama's source files to the facts tests/test_open_webui.py checks the plan against.

environment.json: every environment variable envconfig/config.go reads (each reader,
Var/String/Bool/BoolWithDefault/Uint/Uint64, is called with the variable's name).
names.json: the defaults types/model/name.go fills into a model name (host, namespace, tag).
model-list.json: whether /api/tags (server/model_list_cache.go) lists a model under
Name.DisplayShortest(), the name Open WebUI then uses as the model's id.
"""

from __future__ import annotations

import json
import re

READER = re.compile(r"\b(?:Var|String|Bool|BoolWithDefault|Uint|Uint64)\(\"([A-Z][A-Z0-9_]*)\"")
DEFAULT = re.compile(r"^\s*default(Host|Namespace|Tag)\s*=\s*\"([^\"]*)\"", re.MULTILINE)
LISTED_AS = re.compile(r"^\s*(Model|Name):\s*name\.DisplayShortest\(\),", re.MULTILINE)


def extract(local_name: str, text: str) -> str:
    if local_name == "environment.json":
        facts: dict = {"environment": sorted(set(READER.findall(text)))}
    elif local_name == "names.json":
        facts = {f"default{part}": value for part, value in DEFAULT.findall(text)}
    elif local_name == "model-list.json":
        facts = {"listedAsDisplayShortest": sorted(LISTED_AS.findall(text))}
    else:
        raise ValueError(f"no extractor for {local_name}")
    return json.dumps(facts, indent=2, sort_keys=True) + "\n"
