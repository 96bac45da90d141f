"""Drift detection: which stacks to check, and what `pulumi preview --expect-no-changes` said.

    python -m tools.drift stacks [--skip "dev staging"]
    python -m tools.drift classify --stack dev --exit-code 7 --output preview.txt \\
        [--summary FILE] [--report FILE] [--status FILE] [--run-url URL]

`stacks` prints, as a JSON list for a job matrix, every stack with a stack file except
those never previewed from CI (tools/affected_stacks.py: `local`) and those in --skip (the
repository variable DRIFT_SKIP: space- or comma-separated stack names).

`classify` reads the exit code and the captured output (stdout and stderr together) of
`pulumi preview --refresh --expect-no-changes --diff --color never`. The CLI fails in both
cases the drift check must tell apart, so the verdict needs both facts (Pulumi's source,
tests/upstream/pulumi-v3.259.0-exit-codes): proposed changes exit with ExitNoChanges (7) and
print `error: no changes were expected for preview but changes were proposed`; any other
failure exits with another code. Exit 7 without that line, or that line with another code,
is an error too: the CLI did not behave as the contract says, so neither verdict is safe.
It appends the verdict and the preview's output to --summary (the job summary, cut like
tools/plan_diff.py cuts its diff), writes an issue body to --report (cut to fit GitHub's
issue body limit) and the verdict word (no-drift, drift, error) to --status.

Exit status: 0 no drift; 3 drift (changes present); 1 error (the preview failed, or its
result is inconsistent); 2 bad arguments (one line on stderr). `stacks`: 0 or 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.affected_stacks import NEVER_PREVIEWED
from tools.cli_args import OneLineParser, UsageError
from tools.plan_diff import cut
from tools.stack_files import StackFileError, available_stacks

ROOT = Path(__file__).resolve().parent.parent

EXIT_NO_DRIFT = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DRIFT = 3

# The Pulumi CLI's exit codes since v3.226.0 (pkg/cmd/pulumi/cmd/exit_codes.go), by value:
# named in an error verdict so that the job summary says which kind of failure it was.
PULUMI_EXIT_CODES = {
    0: "ExitSuccess",
    1: "ExitCodeError",
    2: "ExitConfigurationError",
    3: "ExitAuthenticationError",
    4: "ExitResourceError",
    5: "ExitPolicyViolation",
    6: "ExitStackNotFound",
    7: "ExitNoChanges",
    8: "ExitCancelled",
    9: "ExitTimeout",
    255: "ExitInternalError",
}
PULUMI_NO_CHANGES = 7
# backenderr.NoChangesExpectedError{Operation: "preview"}, as the diagnostics sink prints it.
DRIFT_MARKER = "error: no changes were expected for preview but changes were proposed"
# The CLI colours its messages unless told `--color never`: match the text either way.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

# GitHub's limit for one step's summary is 1 MiB (tools/plan_diff.py leaves the same room).
SUMMARY_LIMIT_BYTES = 900_000
# GitHub refuses an issue body over 65,536 characters; bytes are never fewer than characters.
ISSUE_LIMIT_BYTES = 60_000
# What the code fence and the cut note add around the output, at most.
FENCE_ROOM_BYTES = 200
NO_DRIFT, DRIFT, ERROR = "no-drift", "drift", "error"
EXIT_FOR = {NO_DRIFT: EXIT_NO_DRIFT, DRIFT: EXIT_DRIFT, ERROR: EXIT_ERROR}
STACK_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class Verdict:
    status: str  # NO_DRIFT, DRIFT or ERROR
    reason: str  # one line: why


def has_marker(output: str) -> bool:
    return any(ANSI_ESCAPE.sub("", line).strip() == DRIFT_MARKER for line in output.splitlines())


def exit_name(code: int) -> str:
    return PULUMI_EXIT_CODES.get(code, "not a Pulumi exit code")


def classify(exit_code: int, output: str) -> Verdict:
    """The verdict on one preview: its exit code and its output must agree."""
    marker = has_marker(output)
    if exit_code == 0 and not marker:
        return Verdict(NO_DRIFT, "the preview proposes no changes")
    if exit_code == PULUMI_NO_CHANGES and marker:
        return Verdict(DRIFT, "the preview proposes changes: the stack has drifted")
    if marker:
        return Verdict(
            ERROR,
            f"exit code {exit_code} ({exit_name(exit_code)}) with Pulumi's no-changes message: "
            f"expected {PULUMI_NO_CHANGES}; a CLI older than v3.226.0 exits otherwise",
        )
    if exit_code == PULUMI_NO_CHANGES:
        return Verdict(ERROR, f"exit code {exit_code} without Pulumi's no-changes message")
    return Verdict(ERROR, f"the preview failed: exit code {exit_code} ({exit_name(exit_code)})")


def resources_block(output: str) -> list[str]:
    """The preview's own count of changes: its `Resources:` lines, as it printed them."""
    lines = [ANSI_ESCAPE.sub("", line).rstrip() for line in output.splitlines()]
    if "Resources:" not in lines:
        return []
    block = []
    for line in lines[lines.index("Resources:") + 1 :]:
        if not line.strip():
            break
        block.append(line.strip())
    return block


def fenced(text: str, limit: int) -> str:
    """`text` in a code block, cut at a line to fit `limit` bytes, with a note if cut."""
    shown = cut(text, limit)
    note = ""
    if shown != text:
        left = len(text.encode()) - len(shown.encode())
        note = f"\nThe output is cut here: {left} more bytes in the artifact.\n"
    # A fence longer than any run of backticks in the output cannot be closed by it.
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{shown.rstrip()}\n{fence}\n{note}"


def markdown(stack: str, verdict: Verdict, output: str, limit: int, run_url: str | None) -> str:
    title = {NO_DRIFT: "no drift", DRIFT: "drift", ERROR: "error"}[verdict.status]
    lines = [f"### Stack `{stack}`: {title}", "", verdict.reason + "."]
    if run_url:
        lines += ["", f"Run: {run_url}"]
    counts = resources_block(output)
    if counts:
        lines += ["", "Pulumi's count: " + "; ".join(counts) + "."]
    text = "\n".join(lines) + "\n"
    if verdict.status == NO_DRIFT:
        return text
    heading = "\nThe preview (`pulumi preview --refresh --expect-no-changes --diff`):\n\n"
    room = limit - len(text.encode()) - len(heading.encode()) - FENCE_ROOM_BYTES
    return text + heading + fenced(output, room)


def issue_title(stack: str) -> str:
    """The title the workflow finds the stack's open drift issue by."""
    return f"Drift in stack {stack}"


def stacks_to_check(root: Path, skip: str) -> list[str]:
    stacks = available_stacks(root)
    if not stacks:
        raise UsageError(f"no stack files under {root}: run it in the repository")
    skipped = [name for name in re.split(r"[\s,]+", skip) if name]
    unknown = [name for name in skipped if name not in stacks]
    if unknown:
        raise UsageError(
            f"--skip (DRIFT_SKIP): {', '.join(unknown)} is not a stack; stacks: {', '.join(stacks)}"
        )
    return [s for s in stacks if s not in NEVER_PREVIEWED and s not in skipped]


def _stack(text: str) -> str:
    if not STACK_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a stack name (letters, digits, ._-)")
    return text


def _exit_code(text: str) -> int:
    if not text.isdigit() or int(text) > 255:
        raise argparse.ArgumentTypeError(f"must be a process exit status 0-255, not {text!r}")
    return int(text)


def _output(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return path


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="drift", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    stacks = commands.add_parser("stacks", help="the stacks to check, as a JSON list")
    stacks.add_argument("--skip", default="", help="stacks not to check (DRIFT_SKIP)")
    stacks.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout whose stacks/ to list (this one)"
    )
    verdict = commands.add_parser("classify", help="drift, no drift or error, from a preview")
    verdict.add_argument("--stack", type=_stack, required=True)
    verdict.add_argument("--exit-code", type=_exit_code, required=True, help="pulumi's exit code")
    verdict.add_argument("--output", type=_output, required=True, help="pulumi's output")
    verdict.add_argument("--summary", type=Path, help="append the verdict here (job summary)")
    verdict.add_argument("--report", type=Path, help="write the issue body here")
    verdict.add_argument("--status", type=Path, help="write no-drift, drift or error here")
    verdict.add_argument("--run-url", help="the workflow run, linked from summary and issue")
    return parser


def _classify(args: argparse.Namespace) -> int:
    output = args.output.read_text(errors="replace")
    verdict = classify(args.exit_code, output)
    if args.summary:
        with args.summary.open("a") as summary:
            summary.write(markdown(args.stack, verdict, output, SUMMARY_LIMIT_BYTES, args.run_url))
    if args.report:
        args.report.write_text(
            markdown(args.stack, verdict, output, ISSUE_LIMIT_BYTES, args.run_url)
        )
    if args.status:
        args.status.write_text(verdict.status + "\n")
    print(f"drift: {args.stack}: {verdict.status}: {verdict.reason}", file=sys.stderr)
    return EXIT_FOR[verdict.status]


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "stacks":
            print(json.dumps(stacks_to_check(args.root, args.skip)))
            return 0
        return _classify(args)
    except SystemExit as exit_:  # --help
        return EXIT_USAGE if exit_.code else 0
    except (UsageError, StackFileError) as err:
        print(f"drift: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
