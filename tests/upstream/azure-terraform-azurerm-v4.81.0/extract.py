"""Reduce a Go source file of terraform-provider-azurerm to the name validation it encodes:
the regular expressions (regexp.MustCompile / validate.RegExHelper) of each function, and
the regular expressions and StringLenBetween limits of the resource's `"name"` argument.

The provider's validators transcribe limits that Azure's API enforces but its swagger does
not declare (an AKS dnsPrefix, a private endpoint's name, Managed Grafana's length).
Output: JSON {"functions": {name: [regex, ...]}, "name_argument": {...}}; Go's regular
expression syntax is kept as written."""

from __future__ import annotations

import json
import re

FUNCTION = re.compile(r"^func (?:\([^)]*\) )?(\w+)\(", re.MULTILINE)
REGEX = re.compile(r"(?:regexp\.MustCompile|validate\.RegExHelper)\([^`]*`([^`]*)`")
LENGTH = re.compile(r"validation\.StringLenBetween\((\d+), (\d+)\)")
NAME_ARGUMENT = re.compile(r'\n(\t+)"name": \{\n(.*?)\n\1\},', re.DOTALL)


def functions(text: str) -> dict[str, list[str]]:
    starts = list(FUNCTION.finditer(text))
    found = {}
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        regexes = REGEX.findall(text[match.start() : end])
        if regexes:
            found[match.group(1)] = regexes
    return found


def name_argument(text: str) -> dict:
    block = NAME_ARGUMENT.search(text)
    if block is None:
        return {}
    found: dict = {}
    if regexes := REGEX.findall(block.group(2)):
        found["regexes"] = regexes
    if lengths := LENGTH.findall(block.group(2)):
        found["length_between"] = [int(bound) for bound in lengths[0]]
    return found


def extract(local_name: str, text: str) -> str:
    facts = {"functions": functions(text), "name_argument": name_argument(text)}
    return json.dumps(facts, indent=1, sort_keys=True) + "\n"
