"""Reduce prometheus-fastapi-instrumentator to the metrics vLLM's HTTP server exposes.

vLLM calls `Instrumentator(...).add()` with no arguments, which adds `metrics.default()`.
metrics.json: each metric default() declares, with its kind and label names (custom labels
aside, which vLLM does not pass). grouping.json: the Instrumentator's default for grouping
status codes ("2xx", "5xx"), which vLLM keeps.
"""

from __future__ import annotations

import ast
import json

KINDS = {"Counter": "counter", "Histogram": "histogram", "Summary": "summary", "Gauge": "gauge"}


def extract(local_name: str, text: str) -> str:
    tree = ast.parse(text)
    document = _default_metrics(tree) if local_name == "metrics.json" else _grouping(tree)
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def _default_metrics(tree: ast.Module) -> dict[str, dict]:
    default = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "default"
    )
    tuples = {
        node.targets[0].id: [e.value for e in node.value.elts]
        for node in ast.walk(default)
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Tuple)
        and all(isinstance(e, ast.Constant) for e in node.value.elts)
    }
    metrics = {}
    for call in ast.walk(default):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
            continue
        if call.func.id not in KINDS:
            continue
        keywords = {k.arg: k.value for k in call.keywords}
        labels = keywords.get("labelnames")
        # `names + additional_label_names`: the additional ones are the caller's custom labels.
        if isinstance(labels, ast.BinOp):
            labels = labels.left
        metrics[keywords["name"].value] = {
            "kind": KINDS[call.func.id],
            "labels": tuples[labels.id] if isinstance(labels, ast.Name) else [],
        }
    return metrics


def _grouping(tree: ast.Module) -> dict[str, bool]:
    init = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef) and n.name == "PrometheusFastApiInstrumentator"
    )
    constructor = next(n for n in init.body if isinstance(n, ast.FunctionDef))
    arguments = constructor.args.args[-len(constructor.args.defaults) :]
    defaults = dict(zip((a.arg for a in arguments), constructor.args.defaults, strict=True))
    return {"should_group_status_codes": defaults["should_group_status_codes"].value}
