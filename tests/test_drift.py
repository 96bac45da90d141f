"""Drift detection: tools/drift.py against what the Pulumi CLI really prints and returns
(tests/upstream/pulumi-v3.259.0-exit-codes), and .github/workflows/drift.yml: actionlint,
its design, and its two scripts run under bash with a fake `pulumi` and a fake `gh`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fixture_root
from tests.test_workflows import WORKFLOWS, actionlint, load, step_using, steps, triggers
from tools import drift
from tools.plan import ROOT

UPSTREAM = ROOT / "tests" / "upstream" / "pulumi-v3.259.0-exit-codes"
WORKFLOW = WORKFLOWS / "drift.yml"


def upstream(name: str) -> Any:
    text = (UPSTREAM / name).read_text()
    return json.loads(text) if name.endswith(".json") else text


def pulumi_marker() -> str:
    """The line the CLI prints for NoChangesExpectedError in a preview, from its source."""
    prefix = upstream("error_prefix.json")
    message = upstream("no_changes_expected.json")["with_operation"]
    operation = upstream("preview_operation.json")["operation"]
    return prefix["severity"] + prefix["separator"] + message.replace("%s", operation)


def exit_code(name: str) -> int:
    return upstream("exit_codes.json")[name]


# What the drift step captures (stdout and stderr together), from the CLI's own display
# goldens and the error line as its diagnostics sink writes it.
NO_CHANGES = upstream("no_changes.txt")
CHANGES = upstream("changes.txt") + pulumi_marker() + "\n"
FAILED = upstream("failed.txt") + "error: update failed\n"


# -- the contract ---------------------------------------------------------------------------


def test_the_exit_codes_are_pulumis() -> None:
    codes = upstream("exit_codes.json")
    assert {code: name for name, code in codes.items()} == drift.PULUMI_EXIT_CODES
    assert drift.PULUMI_NO_CHANGES == codes["ExitNoChanges"] == 7
    assert len(codes) == 11


def test_the_marker_is_the_line_pulumi_prints() -> None:
    assert pulumi_marker() == drift.DRIFT_MARKER
    assert (
        pulumi_marker() == "error: no changes were expected for preview but changes were proposed"
    )


def test_our_exit_codes_are_distinct() -> None:
    codes = [drift.EXIT_NO_DRIFT, drift.EXIT_DRIFT, drift.EXIT_ERROR, drift.EXIT_USAGE]
    assert codes == [0, 3, 1, 2]


# -- classifying recorded outputs -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "output", "status"),
    [
        (exit_code("ExitSuccess"), NO_CHANGES, "no-drift"),
        (exit_code("ExitNoChanges"), CHANGES, "drift"),
        (exit_code("ExitCodeError"), FAILED, "error"),
    ],
    ids=["no-change", "drift", "error"],
)
def test_recorded_outputs_are_classified(code: int, output: str, status: str) -> None:
    assert drift.classify(code, output).status == status


def test_a_coloured_marker_still_counts() -> None:
    coloured = upstream("changes.txt") + "\x1b[31merror: \x1b[0m" + pulumi_marker()[7:] + "\n"
    assert drift.classify(7, coloured).status == "drift"


@pytest.mark.parametrize(
    ("code", "output", "reason"),
    [
        (7, NO_CHANGES, "exit code 7 without Pulumi's no-changes message"),
        (255, CHANGES, "exit code 255 (ExitInternalError) with Pulumi's no-changes message"),
        (0, CHANGES, "exit code 0 (ExitSuccess) with Pulumi's no-changes message"),
        (6, "error: no stack named 'dev' found\n", "exit code 6 (ExitStackNotFound)"),
        (3, "error: unauthorized\n", "exit code 3 (ExitAuthenticationError)"),
        (127, "pulumi: command not found\n", "exit code 127 (not a Pulumi exit code)"),
    ],
)
def test_inconsistent_or_failed_previews_are_errors(code: int, output: str, reason: str) -> None:
    verdict = drift.classify(code, output)
    assert verdict.status == "error"
    assert reason in verdict.reason


def test_the_marker_must_be_a_whole_line() -> None:
    quoted = NO_CHANGES + f"  ~ note: {pulumi_marker()!r}\n"
    assert drift.classify(7, quoted).status == "error"


def test_pulumis_own_count_is_quoted() -> None:
    assert drift.resources_block(CHANGES) == ["+-1 replaced", "2 unchanged"]
    assert drift.resources_block(NO_CHANGES) == ["6 unchanged"]
    assert drift.resources_block("error: unauthorized\n") == []


# -- the command line -----------------------------------------------------------------------


def run_classify(tmp_path: Path, code: int, output: str, *extra: str) -> tuple[int, Path]:
    captured = tmp_path / "dev.txt"
    captured.write_text(output)
    argv = ["classify", "--stack", "dev", "--exit-code", str(code), "--output", str(captured)]
    argv += ["--summary", str(tmp_path / "summary.md"), "--report", str(tmp_path / "dev.md")]
    argv += ["--status", str(tmp_path / "dev.status"), *extra]
    return drift.main(argv), tmp_path


def test_drift_exits_3_with_the_preview_in_summary_report_and_status(tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text("earlier step\n")
    code, out = run_classify(tmp_path, 7, CHANGES, "--run-url", "https://run/1")
    assert code == 3
    summary = (out / "summary.md").read_text()
    assert summary.startswith("earlier step\n### Stack `dev`: drift\n")  # appended
    assert "Run: https://run/1" in summary
    assert "Pulumi's count: +-1 replaced; 2 unchanged." in summary
    assert " +- aws:ec2:Instance web-server-www replacing [diff: ~userData]" in summary
    assert (out / "dev.md").read_text() == summary.removeprefix("earlier step\n")
    assert (out / "dev.status").read_text() == "drift\n"


def test_no_drift_exits_0_without_the_output(tmp_path: Path) -> None:
    code, out = run_classify(tmp_path, 0, NO_CHANGES)
    assert code == 0
    summary = (out / "summary.md").read_text()
    assert summary == (
        "### Stack `dev`: no drift\n\nthe preview proposes no changes.\n\n"
        "Pulumi's count: 6 unchanged.\n"
    )
    assert (out / "dev.status").read_text() == "no-drift\n"


def test_an_error_exits_1_with_the_output(tmp_path: Path, capsys) -> None:
    code, out = run_classify(tmp_path, 1, FAILED)
    assert code == 1
    assert "error: update failed" in (out / "summary.md").read_text()
    assert (out / "dev.status").read_text() == "error\n"
    assert capsys.readouterr().err == (
        "drift: dev: error: the preview failed: exit code 1 (ExitCodeError)\n"
    )


def test_a_long_preview_is_cut_to_githubs_limits(tmp_path: Path) -> None:
    line = " ~ azure-native:keyvault:Vault vault updating [diff: ~properties]\n"
    long = line * 20_000 + pulumi_marker() + "\n"  # about 1.3 MB
    code, out = run_classify(tmp_path, 7, long)
    assert code == 3
    summary = (out / "summary.md").read_bytes()
    report = (out / "dev.md").read_text()
    assert len(long.encode()) > 1_000_000
    assert len(summary) <= drift.SUMMARY_LIMIT_BYTES
    assert len(report) <= 65_536  # GitHub's issue body limit, in characters
    assert "more bytes in the artifact." in report
    assert report.rstrip().endswith("more bytes in the artifact.")


def test_backticks_in_the_output_cannot_close_the_fence(tmp_path: Path) -> None:
    code, out = run_classify(tmp_path, 7, "```\n" + CHANGES)
    assert code == 3
    assert "````text\n```\n" in (out / "dev.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify", "--stack", "dev", "--exit-code", "x", "--output", "f"], "--exit-code"),
        (["classify", "--stack", "dev", "--exit-code", "256", "--output", "f"], "0-255"),
        (["classify", "--stack", "a b", "--exit-code", "7", "--output", "f"], "stack name"),
        (["classify", "--stack", "dev", "--exit-code", "7", "--output", "/nope"], "not a file"),
        (
            ["stacks", "--root", str(fixture_root()), "--skip", "dev,qa"],
            "qa is not a stack; stacks: dev, local, prod, staging",
        ),
        (["nothing"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, capsys) -> None:
    assert drift.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("drift: ") and err.count("\n") == 1
    assert message in err


def test_every_deployed_stack_is_checked_but_local(capsys) -> None:
    assert drift.main(["stacks", "--root", str(fixture_root())]) == 0
    assert capsys.readouterr().out == '["dev", "prod", "staging"]\n'


def test_skipped_stacks_are_not_checked(capsys) -> None:
    assert drift.main(["stacks", "--root", str(fixture_root()), "--skip", "dev, staging"]) == 0
    assert capsys.readouterr().out == '["prod"]\n'


# -- the workflow ---------------------------------------------------------------------------


def test_actionlint_passes_on_the_drift_workflow() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_it_runs_daily_and_by_hand_with_least_privilege() -> None:
    workflow = load("drift.yml")
    assert triggers(workflow) == {"schedule": [{"cron": "17 5 * * *"}], "workflow_dispatch": None}
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    assert jobs["stacks"]["permissions"] == {"contents": "read"}
    assert jobs["drift"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert jobs["issues"]["permissions"] == {"issues": "write"}
    assert workflow["env"]["PULUMI_VERSION"] == load("preview.yml")["env"]["PULUMI_VERSION"]


def test_it_signs_in_like_the_preview() -> None:
    jobs = load("drift.yml")["jobs"]
    preview = load("preview.yml")["jobs"]["preview"]
    for key in ("runs-on", "timeout-minutes"):
        assert jobs["drift"][key] == preview[key]
    assert {k: v for k, v in jobs["drift"]["env"].items() if k in preview["env"]} == preview["env"]
    assert step_using(jobs["drift"], "azure/login") == step_using(preview, "azure/login")
    kubelogin = step_using(jobs["drift"], "azure/use-kubelogin")
    assert kubelogin == step_using(preview, "azure/use-kubelogin")
    # The action only installs the CLI: the check needs the CLI's own exit code.
    assert step_using(jobs["drift"], "pulumi/actions")["with"] == {
        "pulumi-version": "${{ env.PULUMI_VERSION }}"
    }
    assert jobs["drift"]["env"]["STACK"] == "${{ vars.PULUMI_STACK_PREFIX }}${{ matrix.stack }}"


def test_it_checks_every_listed_stack_and_keeps_the_output() -> None:
    jobs = load("drift.yml")["jobs"]
    listing = next(s for s in steps(jobs["stacks"]) if s.get("id") == "deployed")
    assert "python -m tools.drift stacks --skip" in listing["run"]
    assert jobs["drift"]["strategy"] == {
        "fail-fast": False,
        "matrix": {"stack": "${{ fromJSON(needs.stacks.outputs.stacks) }}"},
    }
    upload = step_using(jobs["drift"], "actions/upload-artifact")
    assert upload["if"] == "${{ !cancelled() }}"
    assert upload["with"]["name"] == "drift-${{ matrix.stack }}"
    download = step_using(jobs["issues"], "actions/download-artifact")
    assert download["with"]["pattern"] == "drift-*"
    assert jobs["issues"]["needs"] == ["stacks", "drift"]
    assert "!cancelled()" in jobs["issues"]["if"]


def script(job: str, name: str) -> str:
    (step,) = [s for s in steps(load("drift.yml")["jobs"][job]) if s.get("name") == name]
    return step["run"]


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def run_step(
    source: str, tmp_path: Path, env: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """A `run:` script as GitHub runs it with `shell: bash`, fakes first on the PATH."""
    (tmp_path / "step.sh").write_text(source)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp_path / "step.sh")],
        cwd=cwd,
        env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("code", "output", "step_rc", "status", "annotation"),
    [
        (0, NO_CHANGES, 0, "no-drift", None),
        (7, CHANGES, 3, "drift", "::error title=drift in dev::"),
        (1, FAILED, 1, "error", "::error title=drift check failed for dev::"),
    ],
    ids=["no-change", "drift", "error"],
)
def test_the_check_step_fails_on_drift_and_error_after_the_summary(
    tmp_path: Path, code: int, output: str, step_rc: int, status: str, annotation: str | None
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "recorded.txt").write_text(output)
    # Records its arguments; `preview` prints the recorded output and exits with its code.
    fake(
        tmp_path / "bin",
        "pulumi",
        f'echo "$*" >> "{tmp_path}/calls"\n'
        f'if [[ $1 == preview ]]; then cat "{tmp_path}/recorded.txt"; exit {code}; fi\n',
    )
    env = {
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "STACK": "org/dev",
        "NAME": "dev",
        "BACKEND_URL": "azblob://state?storage_account=stslmstate",
        "RUN_URL": "https://run/1",
    }
    result = run_step(script("drift", "preview, expecting no changes"), tmp_path, env)
    assert result.returncode == step_rc, result.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        "login azblob://state?storage_account=stslmstate",
        "preview --stack org/dev --refresh --expect-no-changes --diff --non-interactive "
        "--color never",
    ]
    assert (tmp_path / "drift" / "dev.status").read_text() == f"{status}\n"
    assert (tmp_path / "drift" / "dev.txt").read_text() == output
    assert f"### Stack `dev`: {status.replace('-', ' ')}" in (tmp_path / "summary.md").read_text()
    assert output in result.stdout  # the log shows the preview too
    if annotation:
        assert annotation in result.stdout
    else:
        assert "::error" not in result.stdout


def test_a_failed_sign_in_is_an_error_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    fake(tmp_path / "bin", "pulumi", 'echo "error: getting user info: unauthorized" >&2; exit 3\n')
    env = {
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "STACK": "dev",
        "NAME": "dev",
        "BACKEND_URL": "",
        "RUN_URL": "https://run/1",
    }
    result = run_step(script("drift", "preview, expecting no changes"), tmp_path, env)
    assert result.returncode == 1
    summary = (tmp_path / "summary.md").read_text()
    assert "exit code 3 (ExitAuthenticationError)" in summary
    assert "error: getting user info: unauthorized" in summary


def test_the_issues_step_opens_updates_and_closes_one_issue_per_stack(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    folder = tmp_path / "drift"
    folder.mkdir()
    for stack, status in {"dev": "drift", "prod": "drift", "qa": "no-drift", "x": "error"}.items():
        (folder / f"{stack}.status").write_text(status + "\n")
        (folder / f"{stack}.md").write_text(f"body of {stack}\n")
    # prod and qa have an open drift issue (41, 42); `gh issue list` answers with them.
    fake(
        tmp_path / "bin",
        "gh",
        f'printf "%s|" "$@" >> "{tmp_path}/calls"; echo >> "{tmp_path}/calls"\n'
        'if [[ "$1 $2" == "issue list" ]]; then\n'
        '  for arg in "$@"; do [[ $arg == *"Drift in stack prod"* ]] && echo 41 && break; done\n'
        '  for arg in "$@"; do [[ $arg == *"Drift in stack qa"* ]] && echo 42 && break; done\n'
        "fi\n"
        "exit 0\n",
    )
    source = script("issues", "open, update or close each stack's drift issue")
    # The script reads drift/ (the downloaded artifacts) in the job's working directory.
    result = run_step(source, tmp_path, {"RUN_URL": "https://run/1"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    calls = [line.rstrip("|").split("|") for line in (tmp_path / "calls").read_text().splitlines()]
    writes = [call for call in calls if call[:2] != ["issue", "list"]]
    assert writes == [
        ["label", "create", "drift", "--color", "B60205", "--description",
         "A stack differs from its program (drift.yml)", "--force"],
        ["issue", "create", "--title", "Drift in stack dev", "--label", "drift",
         "--body-file", "drift/dev.md"],
        ["issue", "edit", "41", "--body-file", "drift/prod.md"],
        ["issue", "comment", "41", "--body", "Still drifting: https://run/1"],
        ["issue", "close", "42", "--comment", "No drift any more: https://run/1"],
    ]  # fmt: skip
    assert "x: the check failed, its issue is left as it is" in result.stdout
