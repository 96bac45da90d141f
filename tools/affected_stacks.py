"""Which stacks a change can affect: the matrix of the preview workflow.

    git diff --name-only BASE...HEAD | python -m tools.affected_stacks
    python -m tools.affected_stacks PATH [PATH ...]

Prints a JSON list of stack names (`["dev", "prod", "staging"]`) for a job matrix:

- `stacks/Pulumi.<stack>.yaml` affects that stack only;
- what the program reads (`__main__.py`, `Pulumi.yaml`, `components/`, `policies/`, and
  `pyproject.toml` / `uv.lock`, which pin the SDKs it runs on) affects every stack;
- documentation (`docs/`, any `*.md`), tests, tools, images, CI and the Makefile affect none:
  the program never reads them (the images are referenced by digest in the stack config);
- any other path affects every stack: previewing too much costs minutes, too little hides a
  change from review.

`local` is never listed: it deploys to a developer's own cluster (a kind context in their
kubeconfig), which a CI runner does not have, so its preview could only fail. A stack file the
change deletes is not listed either: there is no stack left to preview.

Exit status: 0 the list was printed (possibly `[]`); 2 bad arguments (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TextIO

from tools.cli_args import OneLineParser, UsageError
from tools.stack_files import StackFileError, available_stacks

ROOT = Path(__file__).resolve().parent.parent
EXIT_USAGE = 2

NEVER_PREVIEWED = {"local": "it deploys to a developer's own cluster, which CI does not have"}
STACK_FILE = re.compile(r"^stacks/Pulumi\.(?P<stack>[^/]+)\.yaml$")
PROGRAM_FILES = {"__main__.py", "Pulumi.yaml", "pyproject.toml", "uv.lock"}
PROGRAM_FOLDERS = ("components/", "policies/")
OUTSIDE_PROGRAM_FILES = {"Makefile", ".gitignore", ".checkov.yaml", "LICENSE"}
OUTSIDE_PROGRAM_FOLDERS = ("docs/", "tests/", "tools/", "images/", ".github/", ".ci/")


def affected_stacks(paths: list[str], stacks: list[str]) -> list[str]:
    """The stacks (of `stacks`, in that order) that a change to `paths` can affect."""
    previewable = [s for s in stacks if s not in NEVER_PREVIEWED]
    hit: set[str] = set()
    for path in paths:
        scope = stacks_of(check_path(path))
        if scope is None:
            return previewable
        hit |= scope
    return [s for s in previewable if s in hit]


def stacks_of(path: str) -> set[str] | None:
    """The stacks one changed path affects: a set, or None for every stack."""
    if path.endswith(".md"):
        return set()
    match = STACK_FILE.match(path)
    if match:
        return {match["stack"]}
    if path in PROGRAM_FILES or path.startswith(PROGRAM_FOLDERS):
        return None
    if path in OUTSIDE_PROGRAM_FILES or path.startswith(OUTSIDE_PROGRAM_FOLDERS):
        return set()
    return None  # unknown: assume the program may read it


def check_path(path: str) -> str:
    """A path as `git diff --name-only` prints it: relative to the repository root."""
    if path.startswith("/") or path.startswith("../") or "/../" in path:
        raise UsageError(f"{path!r} is not a path inside the repository (git diff --name-only)")
    return path.removeprefix("./")


def main(argv: list[str] | None = None, stdin: TextIO | None = None) -> int:
    source = sys.stdin if stdin is None else stdin
    parser = OneLineParser(prog="affected_stacks", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="changed paths (else read from stdin)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    try:
        args = parser.parse_args(argv)
        paths = args.paths
        if not paths:
            if source.isatty():
                raise UsageError("give the changed paths as arguments or on stdin")
            paths = [line.strip() for line in source.read().splitlines() if line.strip()]
        stacks = available_stacks(args.root)
        if not stacks:
            raise UsageError(f"no stack files under {args.root}: run it in the repository")
        print(json.dumps(affected_stacks(paths, stacks)))
    except SystemExit as exit_:  # --help
        return EXIT_USAGE if exit_.code else 0
    except (UsageError, StackFileError) as err:
        print(f"affected_stacks: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
