"""Read Pulumi.yaml and a stack file the way the Pulumi CLI hands config to a program.

The CLI passes every value as a string keyed `namespace:key` (objects and lists as JSON),
applies Pulumi.yaml's project config defaults, and refuses a stack that lacks a typed key
with no default. Secure values are not decrypted here: each becomes "[secret]" and its key
is marked secret, as the CLI marks keys holding secure values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SECRET_PLACEHOLDER = "[secret]"


class StackFileError(Exception):
    """A stack or project file that cannot be read: one line, exit status 2."""


@dataclass(frozen=True)
class StackConfigValues:
    project: str
    stack: str
    values: dict[str, str]
    secret_keys: list[str]


def stack_file_path(root: Path, stack: str) -> Path:
    project = _load_yaml(root / "Pulumi.yaml")
    return root / project.get("stackConfigDir", ".") / f"Pulumi.{stack}.yaml"


def available_stacks(root: Path) -> list[str]:
    folder = stack_file_path(root, "x").parent
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in folder.glob("Pulumi.*.yaml"))


def load_stack_config_values(root: Path, stack: str) -> StackConfigValues:
    project = _load_yaml(root / "Pulumi.yaml")
    name = project["name"]
    path = stack_file_path(root, stack)
    if not path.is_file():
        choices = ", ".join(available_stacks(root)) or "none"
        raise StackFileError(
            f"stack {stack!r}: no file {path.relative_to(root)}; stacks: {choices}"
        )
    document = _load_yaml(path) or {}
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise StackFileError(
            f"{path.relative_to(root)}: expected a mapping with a 'config' mapping"
        )
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        full_key = key if ":" in str(key) else f"{name}:{key}"
        text, secret = _encode(value)
        values[full_key] = text
        if secret:
            secret_keys.append(full_key)
    _apply_project_config(name, stack, project.get("config") or {}, values)
    return StackConfigValues(name, stack, values, sorted(secret_keys))


def _apply_project_config(name: str, stack: str, declared: dict, values: dict[str, str]) -> None:
    missing = []
    for key, spec in declared.items():
        full_key = f"{name}:{key}"
        if not isinstance(spec, dict):  # short-hand: `key: default`
            values.setdefault(full_key, _encode(spec)[0])
            continue
        if full_key in values:
            _check_type(stack, key, spec.get("type"), values[full_key])
        elif "default" in spec:
            values[full_key] = _encode(spec["default"])[0]
        elif "value" in spec:
            values[full_key] = _encode(spec["value"])[0]
        elif "type" in spec:
            missing.append(key)
    if missing:
        raise StackFileError(
            f"Stack '{stack}' is missing configuration value '{missing[0]}'"
            " (Pulumi.yaml declares it)"
        )


def _check_type(stack: str, key: str, kind: str | None, text: str) -> None:
    if kind in (None, "string"):
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    ok = {
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
    }.get(kind, True)
    if not ok:
        raise StackFileError(
            f"Stack '{stack}' with configuration key '{key}' must be of type '{kind}'"
        )


def _encode(value: Any) -> tuple[str, bool]:
    """The string the CLI hands the program, and whether it holds a secure value."""
    found = []

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"secure"}:
                found.append(True)
                return SECRET_PLACEHOLDER
            return {k: scrub(v) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    cleaned = scrub(value)
    if isinstance(cleaned, (dict, list)):
        return json.dumps(cleaned), bool(found)
    if isinstance(cleaned, bool):
        return ("true" if cleaned else "false"), bool(found)
    return str(cleaned), bool(found)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise StackFileError(f"{path.name}:{where}: malformed YAML: {problem}") from None
    except OSError as err:
        raise StackFileError(f"{path}: {err.strerror}") from None
