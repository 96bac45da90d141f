"""Reduce pulumi-kubernetes' provider/pkg/provider/diff.go to the fields whose change makes
the provider replace an object, as JSON.

The Go file declares them as composite literals (`_groups{...}`, `_versions{...}`,
`_kinds{...}`, `properties{...}`), package variables, `append(...)` and small helper
functions that prefix a list of suffixes; this evaluates exactly those forms and fails on
anything else, so that a change of shape upstream is noticed instead of misread.
"""

from __future__ import annotations

import json
import re

TOKEN = re.compile(r'\s*(?:(?P<str>"[^"]*")|(?P<name>[A-Za-z_][\w.]*)|(?P<op>\.\.\.|[{}(),:+]))')


def _tokens(text: str) -> list[str]:
    text = re.sub(r"//[^\n]*", "", text)
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"unexpected text at {pos}: {text[pos : pos + 40]!r}")
        tokens.append(match.group(match.lastgroup))
        pos = match.end()
    return tokens


class _Evaluator:
    def __init__(self, text: str):
        self.variables: dict[str, object] = {}
        self.sources: dict[str, str] = {}
        self.helpers: dict[str, list[str]] = {}
        for name, body in re.findall(
            r"\nfunc (\w+)\(\w+ (?:\.\.\.)?string\) properties \{(.*?)\n\}", text, re.S
        ):
            # `prefix + ".x"` in a helper's body: the suffixes it appends to each argument.
            self.helpers[name] = re.findall(r'\w+ \+ ("[^"]*")', body)
            self.helpers[name] = [json.loads(s) for s in self.helpers[name]]
        # Package variables may refer to ones declared further down: evaluate on first use.
        # Each runs to its closing line: a `)` or `}` at the start of a line.
        self.sources = dict(re.findall(r"\nvar (\w+) = (.*?\n[)}])\n", text, re.S))
        self.tokens: list[str] = []
        self.pos = 0

    def variable(self, name: str) -> object:
        if name not in self.variables:
            saved = self.tokens, self.pos
            self.tokens, self.pos = _tokens(self.sources[name]), 0
            self.variables[name] = self.expression()
            if self.pos != len(self.tokens):
                raise ValueError(f"var {name}: unread tokens {self.tokens[self.pos :]}")
            self.tokens, self.pos = saved
        return self.variables[name]

    def take(self, expected: str | None = None) -> str:
        token = self.tokens[self.pos]
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, found {token!r}")
        self.pos += 1
        return token

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expression(self) -> object:
        token = self.take()
        if token.startswith('"'):
            return json.loads(token)
        if token == "properties":
            return self.items(lambda: [self.expression()], "}", opener="{")
        if token in ("_groups", "_versions", "_kinds"):
            return self.mapping()
        if token == "append":
            return self.items(self.spread, ")", opener="(")
        if self.peek() == "(":  # a helper call
            arguments = self.items(lambda: [self.expression()], ")", opener="(")
            return [argument + suffix for argument in arguments for suffix in self.helpers[token]]
        return self.variable(token)

    def spread(self) -> list[object]:
        value = self.expression()
        if self.peek() == "...":
            self.take("...")
        return value if isinstance(value, list) else [value]

    def items(self, read, closer: str, opener: str) -> list:
        self.take(opener)
        values: list = []
        while self.peek() != closer:
            values.extend(read())
            if self.peek() == ",":
                self.take(",")
        self.take(closer)
        return values

    def mapping(self) -> dict[str, object]:
        self.take("{")
        result: dict[str, object] = {}
        while self.peek() != "}":
            key = json.loads(self.take())
            self.take(":")
            result[key] = self.expression()
            if self.peek() == ",":
                self.take(",")
        self.take("}")
        return result


def _branch(text: str, check: str) -> list[str]:
    """The fields the provider adds for a Secret or ConfigMap in forceNewProperties."""
    match = re.search(
        rf"clients\.{check}\(obj\).*?props = append\(props, properties\{{([^}}]*)\}}", text, re.S
    )
    if not match:
        raise ValueError(f"no {check} branch in forceNewProperties")
    return [json.loads(s) for s in re.findall(r'"[^"]*"', match.group(1))]


def extract(local_name: str, text: str) -> str:
    evaluator = _Evaluator(text)
    always = re.search(r'props := (\w+)\("([^"]*)"\)', text)
    if not always:
        raise ValueError("forceNewProperties no longer starts from a metadata helper")
    kinds = {
        f"{group}/{version}/{kind}": sorted(set(fields))
        for group, versions in evaluator.variable("forceNew").items()
        for version, by_kind in versions.items()
        for kind, fields in by_kind.items()
    }
    facts = {
        "always": [always.group(2) + s for s in evaluator.helpers[always.group(1)]],
        "secretUnlessEnableSecretMutable": _branch(text, "IsSecret"),
        "configMapUnlessEnableConfigMapMutable": _branch(text, "IsConfigMap"),
        "kinds": dict(sorted(kinds.items())),
    }
    return json.dumps(facts, indent=2) + "\n"
