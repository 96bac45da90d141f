"""Reduce vLLM's Prometheus logger to its metric names, kinds and label names.

vllm/v1/metrics/loggers.py declares each metric as a call such as
`self._gauge_cls(name="vllm:...", labelnames=labelnames + ["reason"], ...)`, where
`labelnames` is the list assigned in the same function. extract() reads those calls with
Python's own parser and stores {name: {"kind": ..., "labels": [...]}} as JSON.
"""

from __future__ import annotations

import ast
import json

KINDS = {"_gauge_cls": "gauge", "_counter_cls": "counter", "_histogram_cls": "histogram"}


def extract(local_name: str, text: str) -> str:
    metrics: dict[str, dict] = {}
    for function in ast.walk(ast.parse(text)):
        if isinstance(function, ast.FunctionDef):
            metrics |= _declared_in(function)
    return json.dumps(dict(sorted(metrics.items())), indent=1) + "\n"


def _declared_in(function: ast.FunctionDef) -> dict[str, dict]:
    lists = _string_lists(function)
    found = {}
    for call in ast.walk(function):
        kind = _kind(call)
        keywords = {k.arg: k.value for k in getattr(call, "keywords", [])}
        name = keywords.get("name")
        if kind is None or not isinstance(name, ast.Constant):
            continue
        labels = _labels(keywords.get("labelnames"), lists)
        if labels is not None:
            found[name.value] = {"kind": kind, "labels": labels}
    return found


def _kind(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return KINDS.get(node.func.attr)
    return None


def _string_lists(function: ast.FunctionDef) -> dict[str, list[str]]:
    """Local names bound to a literal list of strings (`labelnames = ["model_name", ...]`)."""
    lists = {}
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.List)
            and all(isinstance(e, ast.Constant) for e in node.value.elts)
        ):
            lists[node.targets[0].id] = [e.value for e in node.value.elts]
    return lists


def _labels(node: ast.AST | None, lists: dict[str, list[str]]) -> list[str] | None:
    """A label list built from literals, known local lists and `+`; None if not static."""
    if node is None:
        return []
    if isinstance(node, ast.List) and all(isinstance(e, ast.Constant) for e in node.elts):
        return [e.value for e in node.elts]
    if isinstance(node, ast.Name) and node.id in lists:
        return list(lists[node.id])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _labels(node.left, lists), _labels(node.right, lists)
        return None if left is None or right is None else left + right
    return None
