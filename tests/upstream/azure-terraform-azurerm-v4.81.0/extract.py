"""Reduce a Go source file of terraform-provider-azurerm to the name validation it encodes:
the regular expressions (regexp.MustCompile / validate.RegExHelper) of each function, and
the regular expressions and StringLenBetween limits of the resource's `"name"` argument.

The provider's validators transcribe limits that Azure's API enforces but its swagger does
not declare (an AKS dnsPrefix, a private endpoint's name, Managed Grafana's length).
Also the whole-number bounds (validation.IntBetween) of the resource's arguments, where the
provider transcribes a service limit (a Log Analytics workspace's retention in days).
Output: JSON {"functions": {name: [regex, ...]}, "name_argument": {...}, "int_between":
{argument: [low, high]} (only where found)}; Go's regular expression syntax is kept as
written."""

from __future__ import annotations

import json
import re

FUNCTION = re.compile(r"^func (?:\([^)]*\) )?(\w+)\(", re.MULTILINE)
REGEX = re.compile(r"(?:regexp\.MustCompile|validate\.RegExHelper)\([^`]*`([^`]*)`")
LENGTH = re.compile(r"validation\.StringLenBetween\((\d+), (\d+)\)")
NAME_ARGUMENT = re.compile(r'\n(\t+)"name": \{\n(.*?)\n\1\},', re.DOTALL)
# An argument's schema block, and a whole-number bound in it: "<argument>": { ... IntBetween
ARGUMENT = re.compile(r'\n(\t+)"(\w+)": \{\n(.*?)\n\1\},', re.DOTALL)
INT_BETWEEN = re.compile(r"ValidateFunc: +validation\.IntBetween\((\d+), (\d+)\),")


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


def int_arguments(text: str) -> dict[str, list[int]]:
    found = {}
    for block in ARGUMENT.finditer(text):
        bound = INT_BETWEEN.search(block.group(3))
        if bound and "{" not in block.group(3):  # the argument's own, not a nested block's
            found[block.group(2)] = [int(bound.group(1)), int(bound.group(2))]
    return found


def extract(local_name: str, text: str) -> str:
    facts = {"functions": functions(text), "name_argument": name_argument(text)}
    # Only where the file has them, so that the other extracts stay as they were.
    if bounds := int_arguments(text):
        facts["int_between"] = bounds
    return json.dumps(facts, indent=1, sort_keys=True) + "\n"
