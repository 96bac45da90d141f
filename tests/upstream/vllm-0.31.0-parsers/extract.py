"""Reduce vLLM's parser registries to the names `vllm serve` accepts.

vllm/tool_parsers/__init__.py and vllm/reasoning/__init__.py each declare their built-in
parsers as one dict literal, name -> (module file, class name): _TOOL_PARSERS_TO_REGISTER
and _REASONING_PARSERS_TO_REGISTER, registered lazily under those names (the names that
--tool-call-parser and --reasoning-parser are checked against). vllm/config/model.py
declares _FLOAT16_NOT_SUPPORTED_MODELS, the model_types vLLM refuses to run in float16.
extract() reads the keys of each with Python's own parser and stores them as a JSON list.
"""

from __future__ import annotations

import ast
import json

REGISTRIES = {
    "tool_parsers.json": "_TOOL_PARSERS_TO_REGISTER",
    "reasoning_parsers.json": "_REASONING_PARSERS_TO_REGISTER",
    "float16_not_supported.json": "_FLOAT16_NOT_SUPPORTED_MODELS",
}


def extract(local_name: str, text: str) -> str:
    wanted = REGISTRIES[local_name]
    for node in ast.walk(ast.parse(text)):
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if wanted in names and isinstance(node.value, ast.Dict):
            keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
            return json.dumps(sorted(keys), indent=1) + "\n"
    raise ValueError(f"{wanted} is not declared as a dict literal")
