"""What a change does to every stack's offline plan, as Markdown for a pull request.

    python -m tools.plan_diff BASE HEAD [--limit BYTES] [--full FILE] [--fail-on-stateful-replace]

BASE and HEAD each hold one folder per stack, as `python -m tools.plan <stack> --out DIR`
writes them, for the base and the head commit, and `<stack>.error` (the plan's stderr) for a
stack whose plan failed. Prints, per stack planned on both sides, what happens to each
resource (keyed by URN): create, update, replace or delete, with the replacements and
deletions of stateful or protected resources first (tools/stateful_golden.py says which count).
Which input changes replace a resource is the providers' own rule (see `replaced_by`). Then a
table (each stack: unchanged, changed with its files, added, removed, or its plan fails) and
the unified diff of every changed file (what `diff -ruN BASE HEAD` shows, without
timestamps), cut at a line before --limit bytes with a note: GitHub refuses a job summary
over 1 MiB. --full writes the whole diff to FILE, for an artifact. The plans are
deterministic, so every line of the diff is a change the commit makes.

Exit status: 0 whether or not the plans differ; 2 bad arguments (one line on stderr); 3 with
--fail-on-stateful-replace, when a stateful or protected resource would be replaced or
deleted (one line each on stderr; the Markdown is printed all the same).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib
import inspect
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.cli_args import OneLineParser, UsageError
from tools.stateful_golden import stateful_reason

EXIT_USAGE = 2
# Distinct from a usage error: the plans are fine, the change needs the override label.
EXIT_STATEFUL_REPLACE = 3
ALLOW_LABEL = "allow-replace"
UPSTREAM = Path(__file__).resolve().parent.parent / "tests" / "upstream"
KUBERNETES_FACTS = UPSTREAM / "pulumi-kubernetes-v4.34.2" / "force-new.json"
AZURE_FACTS = UPSTREAM / "pulumi-azure-native-v3.29.0" / "force-new.json"
ACTIONS = ("replace", "delete", "create", "update")
# GitHub's limit for one step's summary is 1 MiB; leave room for the table and the notes.
DEFAULT_LIMIT_BYTES = 900_000
MAX_NAMES = 5  # changed files named in the table; the diff has them all
# `<stack>.error` beside the stack folders: that stack's plan failed, with its message.
ERROR_SUFFIX = ".error"


def files_of(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def file_diff(name: str, base: Path | None, head: Path | None) -> str:
    before = base.read_text().splitlines(keepends=True) if base else []
    after = head.read_text().splitlines(keepends=True) if head else []
    lines = difflib.unified_diff(before, after, f"base/{name}", f"head/{name}")
    # A file whose last line has no newline would run into the next header.
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def stack_report(stack: str, base: Path, head: Path) -> tuple[str, str]:
    """One stack's cell for the table, and its diff."""
    before = files_of(base) if base.is_dir() else {}
    after = files_of(head) if head.is_dir() else {}
    changed = [
        name
        for name in sorted(before.keys() | after.keys())
        if name not in before
        or name not in after
        or before[name].read_bytes() != after[name].read_bytes()
    ]
    diff = "".join(
        file_diff(f"{stack}/{name}", before.get(name), after.get(name)) for name in changed
    )
    if not base.is_dir():
        return "added", diff
    if not head.is_dir():
        return "removed", diff
    if not changed:
        return "unchanged", diff
    names = ", ".join(f"`{name}`" for name in changed[:MAX_NAMES])
    more = f" and {len(changed) - MAX_NAMES} more" if len(changed) > MAX_NAMES else ""
    return f"changed: {names}{more}", diff


def report(
    base: Path, head: Path, limit: int, changes: list[Change] | None = None
) -> tuple[str, str]:
    """The Markdown (the resource changes, then the files), and the whole diff."""
    changes = all_changes(base, head) if changes is None else changes
    stacks = sorted(stacks_in(base) | stacks_in(head))
    rows, diffs = [], []
    for stack in stacks:
        state, diff = stack_report(stack, base / stack, head / stack)
        # A plan that failed says so first: its folder is missing or holds a partial plan.
        for side, folder in (("head", head), ("base", base)):
            error = folder / f"{stack}{ERROR_SUFFIX}"
            if error.is_file():
                state = f"plan fails at {side}: {first_line(error.read_text())}"
                break
        rows.append(f"| {stack} | {state} |")
        diffs.append(diff)
    whole = "".join(diffs)
    lines = [*changes_markdown(changes), "| stack | offline plan |", "| --- | --- |", *rows, ""]
    if not whole:
        lines.append("No stack's plan changes.")
        return "\n".join(lines) + "\n", whole
    shown = cut(whole, limit)
    # A fence longer than any run of backticks in the diff, so no line of it can close it.
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", shown)), default=0))
    lines += [f"{fence}diff", shown.rstrip("\n"), fence]
    if len(shown) < len(whole):
        left = len(whole.encode()) - len(shown.encode())
        lines.append(f"\nThe diff is cut here: {left} more bytes in the whole diff (the artifact).")
    return "\n".join(lines) + "\n", whole


def stacks_in(folder: Path) -> set[str]:
    stacks = {p.name for p in folder.iterdir() if p.is_dir()}
    return stacks | {p.name[: -len(ERROR_SUFFIX)] for p in folder.glob(f"*{ERROR_SUFFIX}")}


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].replace("|", "\\|") if lines else "(no message)"


def cut(text: str, limit: int) -> str:
    """The longest run of whole lines of `text` that fits in `limit` bytes."""
    if len(text.encode()) <= limit:
        return text
    kept, size = [], 0
    for line in text.splitlines(keepends=True):
        size += len(line.encode())
        if size > limit:
            break
        kept.append(line)
    return "".join(kept)


# -- what happens to each resource -------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One resource's fate between the base and the head plan of a stack."""

    stack: str
    action: str  # one of ACTIONS
    type: str
    name: str
    urn: str
    why: str  # what forces the replacement, or which inputs change
    stateful: str | None  # stateful_reason of the resource, None when it is not

    @property
    def guarded(self) -> bool:
        return self.stateful is not None and self.action in ("replace", "delete")


def plan_resources(folder: Path) -> dict[str, dict[str, Any]]:
    """A plan's resources by URN. Entries without one are not resources, and a file that is
    not JSON holds none: the file diff below the resource changes still shows it."""
    path = folder / "resources.json"
    try:
        entries = json.loads(path.read_text()) if path.is_file() else []
    except ValueError:
        entries = []
    if not isinstance(entries, list):
        return {}
    return {r["urn"]: r for r in entries if isinstance(r, dict) and "urn" in r}


def resource_changes(stack: str, base: Path, head: Path) -> list[Change]:
    """Every resource created, updated, replaced or deleted between two plans of a stack."""
    before, after = plan_resources(base), plan_resources(head)
    changes = []
    for urn in sorted(before.keys() & after.keys()):
        old, new = before[urn], after[urn]
        if old["inputs"] == new["inputs"] and old.get("protect") == new.get("protect"):
            continue
        forced = replaced_by(old, new, provider_inputs(after, new))
        action = "replace" if forced else "update"
        why = ", ".join(f"`{p}`" for p in forced) or changed_inputs(old, new)
        reason = stateful_reason(old) or stateful_reason(new)
        changes.append(Change(stack, action, new["type"], new["name"], urn, why, reason))
    deleted = [before[urn] for urn in sorted(before.keys() - after.keys())]
    created = [after[urn] for urn in sorted(after.keys() - before.keys())]
    # A resource whose URN changes (a new parent or type chain, without an alias) is deleted
    # and created anew by the engine: for its data that is a replacement.
    moved = {(r["type"], r["name"]): r for r in created}
    for old in deleted:
        new = moved.pop((old["type"], old["name"]), None)
        reason = stateful_reason(old)
        if new is None:
            changes.append(
                Change(stack, "delete", old["type"], old["name"], old["urn"], "", reason)
            )
        else:
            why = f"its URN changes (was `{old['urn']}`)"
            changes.append(
                Change(stack, "replace", new["type"], new["name"], new["urn"], why, reason)
            )
    for new in moved.values():
        changes.append(
            Change(stack, "create", new["type"], new["name"], new["urn"], "", stateful_reason(new))
        )
    return changes


def changed_inputs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The inputs that change (the first MAX_NAMES), for a reader of an update."""
    paths = [f"`{dotted(path)}`" for _, path, _ in leaf_changes(old["inputs"], new["inputs"])]
    if old.get("protect") != new.get("protect"):
        paths.append("`protect`")
    more = f" and {len(paths) - MAX_NAMES} more" if len(paths) > MAX_NAMES else ""
    return ", ".join(paths[:MAX_NAMES]) + more


def provider_inputs(resources: dict[str, dict[str, Any]], resource: dict[str, Any]) -> dict:
    """The inputs of the explicit provider a resource uses ({} for a default provider)."""
    provider = resources.get(resource.get("provider") or "")
    return provider["inputs"] if provider else {}


PropertyPath = tuple[str | int, ...]


def leaf_changes(
    old: Any, new: Any, path: PropertyPath = (), objects: tuple[PropertyPath, ...] = ()
) -> Iterator[tuple[str, PropertyPath, tuple[PropertyPath, ...]]]:
    """(kind, path, the enclosing objects' paths) of every difference between two input
    values: `add` and `delete` of an object key or list item, `update` of a leaf, as the
    engine's property diff reports them to a provider."""
    if isinstance(old, dict) and isinstance(new, dict):
        inside = (*objects, path) if path else objects
        for key in sorted(old.keys() | new.keys()):
            if key not in old:
                yield "add", (*path, key), inside
            elif key not in new:
                yield "delete", (*path, key), inside
            elif old[key] != new[key]:
                yield from leaf_changes(old[key], new[key], (*path, key), inside)
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            if index >= len(old):
                yield "add", (*path, index), objects
            elif index >= len(new):
                yield "delete", (*path, index), objects
            elif old[index] != new[index]:
                yield from leaf_changes(old[index], new[index], (*path, index), objects)
    else:
        yield "update", path, objects


def dotted(path: PropertyPath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def replaced_by(old: dict[str, Any], new: dict[str, Any], provider: dict[str, Any]) -> list[str]:
    """The changed inputs that make the resource's provider replace it, by the provider's own
    rule at the pinned version ([] for an update in place, or a type with no such rule)."""
    kind = new["type"].split(":", 1)[0]
    changes = list(leaf_changes(old["inputs"], new["inputs"]))
    if kind == "azure-native":
        forces = azure_rule(new["type"])
    elif kind == "kubernetes" and "kind" in new["inputs"]:
        forces = kubernetes_rule(new["type"], new["inputs"], provider)
    else:
        return []
    return sorted(
        {dotted(path) for change, path, objects in changes if forces(change, path, objects)}
    )


# -- azure-native: pulumi-azure-native's provider/pkg/provider/diff.go -------------------------


@functools.cache
def _azure_facts() -> dict[str, Any]:
    return json.loads(AZURE_FACTS.read_text())


@functools.cache
def azure_path_parameters(token: str) -> frozenset[str]:
    """The PUT path's parameters of an azure-native resource (its own name, its resource
    group, its parents' names): the arguments of the installed SDK's get function."""
    from pulumi import _types

    from tools.mock_engine import azure_args_class, azure_resource_class

    resource, args = azure_resource_class(token), azure_args_class(token)
    if resource is None or args is None:
        return frozenset()
    package, module_name = resource.__module__.rsplit(".", 1)
    getter = importlib.import_module(f"{package}.get_{module_name}")
    lookup = getattr(getter, f"get_{module_name}")
    names = _types.input_type_py_to_pulumi_names(args)
    return frozenset(names.get(p, p) for p in inspect.signature(lookup).parameters if p != "opts")


@functools.cache
def azure_force_new(token: str) -> frozenset[str]:
    """The property names the provider's generator marks ForceNew for a resource type:
    forceNewMap less noForceNewMap (modules compared without case, as tokens lower them)."""
    _, module, resource = token.split(":")
    facts = _azure_facts()

    def names(table: dict[str, dict[str, list[str]]]) -> set[str]:
        return {
            prop
            for name, resources in table.items()
            if name.lower() == module
            for prop in resources.get(resource, [])
        }

    return frozenset(names(facts["forceNew"]) - names(facts["noForceNew"]))


def azure_rule(token: str):
    """Path parameters and ForceNew properties at the top level replace; ForceNew ones one
    object or list level down too. An update inside an object that replaces, replaces; an
    added or removed key only when it is itself one of those."""
    top = azure_path_parameters(token) | azure_force_new(token)
    nested = azure_force_new(token)

    def is_key(path: PropertyPath) -> bool:
        if len(path) == 1:
            return path[0] in top
        if len(path) == 2 or (len(path) == 3 and isinstance(path[1], int)):
            return isinstance(path[-1], str) and path[-1] in nested
        return False

    def forces(change: str, path: PropertyPath, objects: tuple[PropertyPath, ...]) -> bool:
        return is_key(path) or (change == "update" and any(is_key(o) for o in objects))

    return forces


# -- kubernetes: pulumi-kubernetes' provider/pkg/provider/diff.go --------------------------------


@functools.cache
def _kubernetes_facts() -> dict[str, Any]:
    return json.loads(KUBERNETES_FACTS.read_text())


def kubernetes_fields(token: str, inputs: dict[str, Any], provider: dict[str, Any]) -> list[str]:
    """The fields whose change replaces a Kubernetes object, as the provider lists them."""
    facts = _kubernetes_facts()
    group_version, kind = token.split(":", 1)[1].rsplit(":", 1)
    fields = list(facts["always"])
    if kind.endswith("Patch"):  # patch resources update everything else in place
        return fields
    group, _, version = group_version.rpartition("/")
    immutable = inputs.get("immutable") is True
    core = group in ("core", "")
    if core and kind == "Secret" and (not provider.get("enableSecretMutable") or immutable):
        return fields + facts["secretUnlessEnableSecretMutable"]
    if f"{group}/{version}/{kind}" in facts["kinds"]:
        return fields + facts["kinds"][f"{group}/{version}/{kind}"]
    if core and kind == "ConfigMap" and (not provider.get("enableConfigMapMutable") or immutable):
        return fields + facts["configMapUnlessEnableConfigMapMutable"]
    return fields


def kubernetes_rule(token: str, inputs: dict[str, Any], provider: dict[str, Any]):
    """A change at or under a listed field replaces (`[*]`: any list index); so does adding or
    removing a whole object that holds one."""
    fields = [tuple(f.lstrip(".").split(".")) for f in kubernetes_fields(token, inputs, provider)]
    fields = [tuple(s for part in f for s in _split_index(part)) for f in fields]

    def matches(field: tuple[str, ...], path: PropertyPath) -> bool:
        # One is a prefix of the other: the change is under the field, or holds it whole.
        shared = min(len(field), len(path))
        return all(
            f == "*" if isinstance(p, int) else f == p
            for f, p in zip(field[:shared], path[:shared], strict=True)
        )

    def forces(change: str, path: PropertyPath, objects: tuple[PropertyPath, ...]) -> bool:
        return any(matches(field, path) for field in fields)

    return forces


def _split_index(part: str) -> list[str]:
    """`containers[*]` -> `containers`, `*`."""
    return [part[:-3], "*"] if part.endswith("[*]") else [part]


# -- the Markdown of the resource changes ---------------------------------------------------


def all_changes(base: Path, head: Path) -> list[Change]:
    """The resource changes of every stack planned on both sides (a stack added, removed or
    whose plan fails has no comparable plan: the table says so)."""
    changes = []
    for stack in sorted(stacks_in(base) & stacks_in(head)):
        failed = any((side / f"{stack}{ERROR_SUFFIX}").is_file() for side in (base, head))
        if not failed and (base / stack).is_dir() and (head / stack).is_dir():
            changes += resource_changes(stack, base / stack, head / stack)
    order = {action: index for index, action in enumerate(ACTIONS)}
    return sorted(changes, key=lambda c: (not c.guarded, c.stack, order[c.action], c.urn))


def changes_markdown(changes: list[Change]) -> list[str]:
    if not changes:
        return ["No resource is created, updated, replaced or deleted.", ""]
    guarded = [c for c in changes if c.guarded]
    lines = []
    if guarded:
        lines += [
            f"**{len(guarded)} stateful or protected resource(s) replaced or deleted.** CI fails"
            f" unless the pull request has the label `{ALLOW_LABEL}` (docs/ci.md).",
            "",
            "| stack | action | resource | type | why | stateful |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {c.stack} | {c.action} | `{c.name}` | `{c.type}` | {_cell(c.why)} | {c.stateful} |"
            for c in guarded
        ]
        lines.append("")
    lines += ["| stack | action | resource | type | inputs |", "| --- | --- | --- | --- | --- |"]
    lines += [
        f"| {c.stack} | {c.action} | `{c.name}` | `{c.type}` | {_cell(c.why)} |"
        for c in changes
        if not c.guarded
    ]
    return [*lines, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "-"


def guard_lines(changes: list[Change]) -> list[str]:
    """One stderr line per stateful or protected resource replaced or deleted."""
    return [
        f"plan_diff: {c.stack}: {c.action} {c.type} {c.name} ({c.stateful})"
        + (f": {c.why.replace('`', '')}" if c.why else "")
        + f"; the label {ALLOW_LABEL} allows it"
        for c in changes
        if c.guarded
    ]


def _folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def _limit(text: str) -> int:
    if not text.isdigit() or int(text) < 1000:
        raise argparse.ArgumentTypeError(f"must be a number of bytes, at least 1000, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="plan_diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=_folder, help="the base commit's plans, one folder per stack")
    parser.add_argument("head", type=_folder, help="the head commit's plans, one folder per stack")
    parser.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT_BYTES,
        metavar="BYTES",
        help=f"most bytes of diff to print ({DEFAULT_LIMIT_BYTES})",
    )
    parser.add_argument("--full", type=Path, metavar="FILE", help="write the whole diff here")
    parser.add_argument(
        "--fail-on-stateful-replace",
        action="store_true",
        help=f"exit {EXIT_STATEFUL_REPLACE} when a stateful or protected resource would be"
        " replaced or deleted",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help
        return EXIT_USAGE if exit_.code else 0
    except UsageError as err:
        print(f"plan_diff: {err}", file=sys.stderr)
        return EXIT_USAGE
    changes = all_changes(args.base, args.head)
    markdown, whole = report(args.base, args.head, args.limit, changes)
    if args.full:
        args.full.write_text(whole)
    sys.stdout.write(markdown)
    blocked = guard_lines(changes) if args.fail_on_stateful_replace else []
    for line in blocked:
        print(line, file=sys.stderr)
    return EXIT_STATEFUL_REPLACE if blocked else 0


if __name__ == "__main__":
    sys.exit(main())
