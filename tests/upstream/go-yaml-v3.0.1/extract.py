"""Reduce yaml.v3's decode test table (go-yaml/yaml v3.0.1, decode_test.go) to the cases
that decode a one-key document into map[string]interface{} with a scalar value: what the
Pulumi CLI gets for a scalar in a stack file, before it turns the value into text.

Output: JSON list of {"yaml": the document, "type": "int"|"float"|"bool"|"null"|"str",
"value": the value} in the table's order; floats that JSON cannot hold are the strings
"+Inf" and "-Inf"; duplicates dropped."""

from __future__ import annotations

import json
import re

# One table entry: a Go string literal, then map[string]interface{}{"key": <literal>}.
CASE = re.compile(
    r'\{\s*(?P<yaml>"(?:[^"\\]|\\.)*")\s*,\s*map\[string\]interface\{\}\{'
    r'"(?P<key>[^"]*)":\s*(?P<value>[^{}]*?)\}\s*,?\s*\}',
    re.S,
)


def _value(literal: str) -> tuple[str, object] | None:
    literal = literal.strip()
    if literal == "nil":
        return "null", None
    if literal in ("true", "false"):
        return "bool", literal == "true"
    if literal in ("math.Inf(+1)", "math.Inf(-1)"):
        return "float", "+Inf" if "+" in literal else "-Inf"
    float_call = re.fullmatch(r"float64\((-?[0-9.]+)\)", literal)
    if float_call:
        return "float", float(float_call[1])
    if re.fullmatch(r"-?[0-9]+", literal):
        return "int", int(literal)
    if re.fullmatch(r"-?[0-9.]+(e[-+]?[0-9]+)?", literal):
        return "float", float(literal)
    if re.fullmatch(r'"(?:[^"\\]|\\.)*"', literal):
        return "str", json.loads(literal)
    return None  # time.Date(...) and other Go values: not a scalar we compare


def extract(local_name: str, text: str) -> str:
    cases = []
    for match in CASE.finditer(text):
        start = text.rfind("\n", 0, match.start()) + 1
        if text[start : match.start()].lstrip().startswith("//"):
            continue  # commented out upstream
        parsed = _value(match["value"])
        if parsed is None:
            continue
        kind, value = parsed
        case = {"yaml": json.loads(match["yaml"]), "type": kind, "value": value}
        if case not in cases:
            cases.append(case)
    return json.dumps(cases, indent=1) + "\n"
