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


# -- label names ---------------------------------------------------------------------------

# A metric name with its optional matcher braces; a matcher's label name.
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING_LABELS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
# Grafana legends ({{model_name}}) and Prometheus alert templates ({{ $labels.pod }}).
_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_]\w*)\s*\}\}")
_TEMPLATE_LABEL = re.compile(r"\$labels\.([a-zA-Z_]\w*)")


def selectors(expression: str) -> list[tuple[str, frozenset[str]]]:
    """Each metric an expression selects, with the label names its matchers use."""
    text = _STRINGS.sub('""', expression)
    text = _RANGES.sub(" ", _GROUPING.sub(" ", text))
    found = []
    for match in _SELECTOR.finditer(text):
        word, braces = match.group(1), match.group(2)
        is_function = not braces and text[match.end() :].lstrip().startswith("(")
        if is_function or word in _KEYWORDS or re.fullmatch(r"\d+\w*", word):
            continue
        found.append((word, frozenset(_MATCHER.findall(braces or ""))))
    return found


def grouping_labels(expression: str) -> set[str]:
    """The label names of every by/without/on/ignoring/group_* list in an expression."""
    text = _STRINGS.sub('""', expression)
    return {
        label.strip()
        for labels in _GROUPING_LABELS.findall(text)
        for label in labels.split(",")
        if label.strip()
    }


def template_labels(text: str) -> set[str]:
    """Label names a Grafana legend or an alert annotation template reads."""
    return set(_LEGEND_LABEL.findall(text)) | set(_TEMPLATE_LABEL.findall(text))
