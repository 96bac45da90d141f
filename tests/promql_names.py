"""The metric names a PromQL expression selects, checked against components/metrics.py."""

from __future__ import annotations

import re

from components.metrics import METRICS

# What is not a metric name in PromQL: quoted strings, label matchers and grouping lists,
# range and offset durations, and the words and functions of the language.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACES = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on"})


def series_in(expression: str) -> set[str]:
    """The metric names an expression selects (function names are followed by "(")."""
    text = _RANGES.sub(" ", _GROUPING.sub(" ", _BRACES.sub(" ", _STRINGS.sub(" ", expression))))
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        word = match.group()
        if rest.startswith("(") or word in _KEYWORDS or re.fullmatch(r"\d+\w*", word):
            continue
        names.add(word)
    return names


def known_series() -> set[str]:
    return {series for metric in METRICS.values() for series in metric.series_names()}


def unlisted_series(expression: str) -> set[str]:
    return series_in(expression) - known_series()
