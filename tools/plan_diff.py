"""What a change does to every stack's offline plan, as Markdown for a pull request.

    python -m tools.plan_diff BASE HEAD [--limit BYTES] [--full FILE]

BASE and HEAD each hold one folder per stack, as `python -m tools.plan <stack> --out DIR`
writes them, for the base and the head commit, and `<stack>.error` (the plan's stderr) for a
stack whose plan failed. Prints a table (each stack: unchanged, changed with its files, added,
removed, or its plan fails) and the unified diff of every changed file (what
`diff -ruN BASE HEAD` shows, without timestamps), cut at a line before --limit bytes with a
note: GitHub refuses a job summary over 1 MiB. --full writes the whole diff to FILE, for an
artifact. The plans are deterministic, so every line of the diff is a change the commit makes.

Exit status: 0 whether or not the plans differ; 2 bad arguments (one line on stderr).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

EXIT_USAGE = 2
# GitHub's limit for one step's summary is 1 MiB; leave room for the table and the notes.
DEFAULT_LIMIT_BYTES = 900_000
MAX_NAMES = 5  # changed files named in the table; the diff has them all
# `<stack>.error` beside the stack folders: that stack's plan failed, with its message.
ERROR_SUFFIX = ".error"


class UsageError(Exception):
    """Bad arguments: exit status 2."""


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


def report(base: Path, head: Path, limit: int) -> tuple[str, str]:
    """The Markdown, and the whole diff."""
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
    lines = ["| stack | offline plan |", "| --- | --- |", *rows, ""]
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


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see --help)")


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
    parser = _OneLineParser(prog="plan_diff", description=__doc__.split("\n\n")[0])
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help
        return EXIT_USAGE if exit_.code else 0
    except UsageError as err:
        print(f"plan_diff: {err}", file=sys.stderr)
        return EXIT_USAGE
    markdown, whole = report(args.base, args.head, args.limit)
    if args.full:
        args.full.write_text(whole)
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
