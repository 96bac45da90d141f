"""The plan-diff workflow's summary: a table per stack and a bounded diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.plan_diff import main, report


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def plans(tmp_path: Path) -> tuple[Path, Path]:
    base = write(
        tmp_path / "base",
        {
            "dev/resources.json": '[\n  {"maxCount": 2}\n]\n',
            "dev/summary.md": "# dev\n",
            "prod/resources.json": "[]\n",
            "old/resources.json": "[]\n",
        },
    )
    head = write(
        tmp_path / "head",
        {
            "dev/resources.json": '[\n  {"maxCount": 3}\n]\n',
            "dev/summary.md": "# dev\n",
            "dev/manifests/slm-inference/service-x.yaml": "kind: Service\n",
            "prod/resources.json": "[]\n",
            "qa/resources.json": "[]\n",
        },
    )
    return base, head


def test_the_table_says_what_happened_to_each_stack(plans: tuple[Path, Path]) -> None:
    markdown, _ = report(*plans, limit=100_000)
    assert markdown.startswith(
        "No resource is created, updated, replaced or deleted.\n\n"
        "| stack | offline plan |\n"
        "| --- | --- |\n"
        "| dev | changed: `manifests/slm-inference/service-x.yaml`, `resources.json` |\n"
        "| old | removed |\n"
        "| prod | unchanged |\n"
        "| qa | added |\n"
    )


def test_the_diff_shows_changed_added_and_removed_files(plans: tuple[Path, Path]) -> None:
    _, whole = report(*plans, limit=100_000)
    assert whole == (
        "--- base/dev/manifests/slm-inference/service-x.yaml\n"
        "+++ head/dev/manifests/slm-inference/service-x.yaml\n"
        "@@ -0,0 +1 @@\n"
        "+kind: Service\n"
        "--- base/dev/resources.json\n"
        "+++ head/dev/resources.json\n"
        "@@ -1,3 +1,3 @@\n"
        " [\n"
        '-  {"maxCount": 2}\n'
        '+  {"maxCount": 3}\n'
        " ]\n"
        "--- base/old/resources.json\n"
        "+++ head/old/resources.json\n"
        "@@ -1 +0,0 @@\n"
        "-[]\n"
        "--- base/qa/resources.json\n"
        "+++ head/qa/resources.json\n"
        "@@ -0,0 +1 @@\n"
        "+[]\n"
    )


def test_identical_plans_say_so(tmp_path: Path) -> None:
    base = write(tmp_path / "base", {"dev/resources.json": "[]\n"})
    head = write(tmp_path / "head", {"dev/resources.json": "[]\n"})
    markdown, whole = report(base, head, limit=100_000)
    assert whole == ""
    assert markdown.endswith("| dev | unchanged |\n\nNo stack's plan changes.\n")


def test_a_long_diff_is_cut_at_a_line_with_a_note(tmp_path: Path) -> None:
    base = write(tmp_path / "base", {"dev/resources.json": ""})
    head = write(
        tmp_path / "head", {"dev/resources.json": "".join(f"line {i}\n" for i in range(1000))}
    )
    markdown, whole = report(base, head, limit=2000)
    diff_part = markdown.split("```diff\n", 1)[1].split("\n```", 1)[0] + "\n"
    assert len(diff_part.encode()) <= 2000
    assert whole.startswith(diff_part)  # whole lines, from the start
    left = len(whole.encode()) - len(diff_part.encode())
    assert markdown.endswith(
        f"\nThe diff is cut here: {left} more bytes in the whole diff (the artifact).\n"
    )


def test_backticks_in_the_plans_cannot_close_the_fence(tmp_path: Path) -> None:
    base = write(tmp_path / "base", {"dev/summary.md": "a\n"})
    head = write(tmp_path / "head", {"dev/summary.md": "````\ncode\n````\n"})
    markdown, _ = report(base, head, limit=100_000)
    assert "`````diff\n" in markdown
    assert markdown.rstrip().endswith("\n`````")


def test_cli_prints_markdown_and_writes_the_whole_diff(
    plans: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = tmp_path / "plan.diff"
    assert main([str(plans[0]), str(plans[1]), "--full", str(full), "--limit", "1000"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("No resource is created, updated, replaced or deleted.\n\n| stack |")
    assert full.read_text().startswith("--- base/dev/manifests/slm-inference/service-x.yaml\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "."], "nowhere is not a folder"),
        (["."], "the following arguments are required: head"),
        ([".", ".", "--limit", "10"], "at least 1000"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("plan_diff: ") and err.count("\n") == 1
    assert message in err


def test_a_failed_plan_says_so_with_its_message(tmp_path: Path) -> None:
    base = write(tmp_path / "base", {"dev/resources.json": "[]\n", "prod/resources.json": "[]\n"})
    head = write(
        tmp_path / "head",
        {
            "dev.error": "plan dev: slm-deploy:gpuPools[0].minCount: 3 is not allowed | x\n",
            "prod/resources.json": "[]\n",
        },
    )
    markdown, _ = report(base, head, limit=100_000)
    assert (
        "| dev | plan fails at head: plan dev: slm-deploy:gpuPools[0].minCount: 3 is not"
        " allowed \\| x |\n| prod | unchanged |\n"
    ) in markdown
