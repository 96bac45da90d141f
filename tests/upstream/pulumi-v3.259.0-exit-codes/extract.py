"""Reduce four Pulumi CLI sources (pulumi/pulumi v3.259.0) to what tools/drift.py relies on
to tell "changes present" from "error" after `pulumi preview --expect-no-changes`:

- exit_codes.json: the CLI's exit code taxonomy, {name: code}, from the const block of
  pkg/cmd/pulumi/cmd/exit_codes.go (ExitCodeFor maps NoChangesExpectedError to ExitNoChanges);
- no_changes_expected.json: the message of backenderr.NoChangesExpectedError, with and
  without an operation (the Go format string, %s for the operation);
- preview_operation.json: the operation `pulumi preview` names in that error
  (pkg/cmd/pulumi/operations/preview.go, the expectNop case);
- error_prefix.json: what the diagnostics sink writes before an error message
  (sdk/go/common/diag/sink.go: the severity's name, then ": ");
- no_changes.txt, changes.txt, failed.txt: the display's own golden outputs
  (pkg/backend/display/testdata/not-truncated, non-interactive) of an operation that changes
  nothing, one that replaces a resource and one whose update fails, as `--color never`
  prints them (colors.Never drops the `<{%...%}>` colour directives): the bodies of the
  recorded outputs in tests/test_drift.py.

Each output but the last is one JSON document."""

from __future__ import annotations

import json
import re


def _exit_codes(text: str) -> dict[str, int]:
    block = re.search(r"const \(\n(?P<body>.*?)\n\)", text, re.S)
    codes = re.findall(r"^\s*(Exit\w+)\s*=\s*(\d+)", block["body"], re.M)
    return {name: int(code) for name, code in codes}


def _no_changes_expected(text: str) -> dict[str, str]:
    body = re.search(
        r"func \(e NoChangesExpectedError\) Error\(\) string \{(?P<body>.*?)\n\}", text, re.S
    )["body"]
    without = re.search(r'return "([^"]*)"', body)[1]
    with_operation = re.search(r'fmt\.Sprintf\("([^"]*)", e\.Operation\)', body)[1]
    return {"without_operation": without, "with_operation": with_operation}


def _preview_operation(text: str) -> dict[str, str]:
    case = re.search(
        r"case expectNop && changes != nil && engine\.HasChanges\(changes\):\s*"
        r'return backenderr\.NoChangesExpectedError\{Operation: "(?P<op>[^"]*)"\}',
        text,
    )
    return {"operation": case["op"]}


def _error_prefix(text: str) -> dict[str, str]:
    severity = re.search(r'^\s*Error\s+Severity\s*=\s*"([^"]*)"', text, re.M)[1]
    # Stringify writes the severity's name, then this separator, before the message.
    separator = re.search(
        r"prefix\.WriteString\(string\(sev\)\)\s*prefix\.WriteString\(\"([^\"]*)\"\)", text
    )[1]
    return {"severity": severity, "separator": separator}


EXTRACTORS = {
    "exit_codes.json": _exit_codes,
    "no_changes_expected.json": _no_changes_expected,
    "preview_operation.json": _preview_operation,
    "error_prefix.json": _error_prefix,
}
DISPLAYS = {"no_changes.txt", "changes.txt", "failed.txt"}
# A colour directive of sdk/go/common/diag/colors (colorLeft "<{%", colorRight "%}>").
COLOR_DIRECTIVE = re.compile(r"<\{%[^%]*%\}>")


def extract(local_name: str, text: str) -> str:
    if local_name in DISPLAYS:
        return COLOR_DIRECTIVE.sub("", text)
    return json.dumps(EXTRACTORS[local_name](text), indent=2) + "\n"
