"""Which stacks the preview workflow previews for a change, from its changed paths."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.affected_stacks import affected_stacks, main
from tools.plan import ROOT
from tools.stack_files import available_stacks

# The repository's stacks (a fork's added ones included), and those CI previews: these tests
# run in a fork as they are (tests/test_fork.py), so no list of stacks is written here.
STACKS = available_stacks(ROOT)
EVERY_CI_STACK = [stack for stack in STACKS if stack != "local"]
# A stack file that is not in stacks/: deleted, or not added yet.
ABSENT = "retired"
assert ABSENT not in STACKS, f"stacks/Pulumi.{ABSENT}.yaml exists: pick another absent name"


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["stacks/Pulumi.prod.yaml"], ["prod"]),
        (["stacks/Pulumi.staging.yaml", "stacks/Pulumi.dev.yaml"], ["dev", "staging"]),
        (["components/vllm.py"], EVERY_CI_STACK),
        (["__main__.py"], EVERY_CI_STACK),
        (["Pulumi.yaml"], EVERY_CI_STACK),
        (["uv.lock"], EVERY_CI_STACK),
        (["pyproject.toml"], EVERY_CI_STACK),
        (["policies/rules.py"], EVERY_CI_STACK),
        (["components/prices.json"], EVERY_CI_STACK),
        # A stack file with program code: every stack wins.
        (["stacks/Pulumi.prod.yaml", "components/sizing.py"], EVERY_CI_STACK),
        # Documentation and tests only: nothing to preview.
        (["docs/ci.md", "README.md", "tests/test_sizing.py"], []),
        (["components/README.md", "policies/README.md"], []),
        (["tools/plan.py", "Makefile", ".ci/run", ".github/workflows/preview.yml"], []),
        (["images/vllm/Dockerfile"], []),
        # local targets a developer's own cluster: never previewed in CI.
        (["stacks/Pulumi.local.yaml"], []),
        (["stacks/Pulumi.local.yaml", "stacks/Pulumi.dev.yaml"], ["dev"]),
        # A deleted stack file leaves no stack to preview.
        ([f"stacks/Pulumi.{ABSENT}.yaml"], []),
        # A path the rules don't know might be read by the program: preview everything.
        (["lib/helpers.py"], EVERY_CI_STACK),
        ([], []),
    ],
)
def test_affected_stacks(paths: list[str], expected: list[str]) -> None:
    assert affected_stacks(paths, STACKS) == expected


def test_a_new_stack_file_is_previewed_once_it_exists() -> None:
    assert affected_stacks([f"stacks/Pulumi.{ABSENT}.yaml"], [*STACKS, ABSENT]) == [ABSENT]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]):
    """main() with arguments and stdin: (exit status, stdout, stderr)."""

    def call(*args: str, stdin: str = "") -> tuple[int, str, str]:
        code = main(list(args), stdin=io.StringIO(stdin))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_reads_git_diff_output_from_stdin(run) -> None:
    code, out, err = run(stdin="stacks/Pulumi.prod.yaml\n\ndocs/ci.md\n")
    assert (code, out, err) == (0, '["prod"]\n', "")


def test_lists_the_repository_stacks_from_stacks_folder(run) -> None:
    code, out, _ = run("components/platform.py")
    assert code == 0
    assert json.loads(out) == EVERY_CI_STACK


def test_a_stack_added_to_the_folder_is_found(run, config_root: Path) -> None:
    """config_root holds the fixture stacks (dev, local, prod, staging)."""
    (config_root / "stacks" / f"Pulumi.{ABSENT}.yaml").write_text("config: {}\n")
    code, out, _ = run("--root", str(config_root), "uv.lock")
    assert (code, json.loads(out)) == (0, ["dev", "prod", ABSENT, "staging"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/etc/passwd"], "'/etc/passwd' is not a path inside the repository"),
        (["../other/stacks/Pulumi.dev.yaml"], "is not a path inside the repository"),
        (["--stack", "dev"], "unrecognized arguments: --stack"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(run, args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("affected_stacks: ")
    assert message in err


def test_a_folder_without_stacks_is_a_usage_error(run, tmp_path: Path) -> None:
    code, _, err = run("--root", str(tmp_path), "uv.lock")
    assert code == 2
    assert err.startswith("affected_stacks: ") and err.count("\n") == 1


def test_runs_as_a_module_in_a_pipe() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.affected_stacks"],
        input="stacks/Pulumi.staging.yaml\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, '["staging"]\n', "")
