"""A fork, made the way docs/fork-guide.md says, keeps its stack tests green.

The test copies the repository into a temporary folder, applies the guide's own examples
there (read from the guide, so the guide and this test cannot drift): a GPU pool and a
model added to dev, an environment copied from staging, a stack for an existing cluster.
Then it runs the tests that read stacks in the copy, as a fork's CI would."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tools.plan import ROOT, build_plan

GUIDE = ROOT / "docs" / "fork-guide.md"
TAG = "# planned by tests/test_fork.py: "
# A fenced block, possibly indented inside a list item: its indent, its language, its text.
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
# What the tag says to do with a block: merge it into a stack file, or make it one.
MERGE = re.compile(r"merged into stacks/Pulumi\.(?P<stack>[\w.-]+)\.yaml")
WHOLE = re.compile(r"the config of stacks/Pulumi\.(?P<stack>[\w.-]+)\.yaml")
# The tests a fork's CI runs that read stacks: properties of stacks/, the CI's stack list,
# and the shape-pinning tests, which read the fixture stacks and must not notice the fork.
FORK_TESTS = [
    "tests/test_shipped_stacks.py",
    "tests/test_affected_stacks.py",
    "tests/test_stacks.py",
    "tests/test_plan_diff.py::test_every_shipped_stacks_stateful_resource_is_in_its_golden_list",
]
# The guide's command that rewrites the stateful lists after a stack gains a pool or a stack.
REGENERATE_GOLDEN = "python -m tools.stateful_golden"


def _yaml() -> YAML:
    """A round-trip reader that keeps quotes and comments, as an editor leaves a file."""
    yaml = YAML()
    yaml.preserve_quotes = True
    return yaml


def guide_blocks(lang: str) -> list[str]:
    """The guide's fenced blocks in a language, dedented."""
    text = GUIDE.read_text()
    return [
        textwrap.dedent(textwrap.indent(m["body"], m["indent"]))
        for m in FENCE.finditer(text)
        if m["lang"] == lang
    ]


def planned_examples() -> list[tuple[str, str, str]]:
    """(how, stack, yaml) for each YAML block of the guide, from its first line's tag."""
    examples = []
    for block in guide_blocks("yaml"):
        first = block.splitlines()[0]
        assert first.startswith(TAG), f"a YAML example of the guide has no tag: {first!r}"
        how = first.removeprefix(TAG)
        merge, whole = MERGE.fullmatch(how), WHOLE.fullmatch(how)
        assert merge or whole, f"tag not understood: {how!r}"
        examples.append(("merge" if merge else "whole", (merge or whole)["stack"], block))
    return examples


def merge(target: Any, fragment: Any) -> None:
    """The fragment written into the target: mappings key by key, list items appended, or
    merged into the item of the same `name` (an entry the guide adds keys to)."""
    for key, value in fragment.items():
        if key in target and hasattr(value, "items"):
            merge(target[key], value)
        elif key in target and isinstance(value, list):
            for item in value:
                named = [
                    old
                    for old in target[key]
                    if hasattr(item, "items")
                    and hasattr(old, "items")
                    and "name" in item
                    and old.get("name") == item["name"]
                ]
                if named:
                    merge(named[0], item)
                else:
                    target[key].append(item)
        else:
            target[key] = value


def apply_example(stacks: Path, how: str, stack: str, block: str) -> None:
    yaml = _yaml()
    path = stacks / f"Pulumi.{stack}.yaml"
    fragment = yaml.load(block)
    if how == "whole":
        document = {"config": fragment}
    else:
        document = yaml.load(path.read_text())
        merge(document["config"], fragment)
    out = StringIO()
    yaml.dump(document, out)
    path.write_text(out.getvalue())


def copy_environment(fork: Path) -> str:
    """The guide's `cp stacks/Pulumi.<from>.yaml stacks/Pulumi.<new>.yaml`; the new stack."""
    lines = [line for block in guide_blocks("sh") for line in block.splitlines()]
    (copy,) = [line for line in lines if line.startswith("cp stacks/")]
    _, source, target = shlex.split(copy.split("#")[0])
    shutil.copy(fork / source, fork / target)
    return Path(target).name.removeprefix("Pulumi.").removesuffix(".yaml")


def repository_files() -> list[str]:
    """What a fork starts from: the repository's files (tracked, and new ones not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def fork(tmp_path_factory) -> Path:
    fork = tmp_path_factory.mktemp("fork")
    for name in repository_files():
        (fork / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, fork / name)
    for how, stack, block in planned_examples():
        apply_example(fork / "stacks", how, stack, block)
    copy_environment(fork)
    regenerate_golden_lists(fork)
    return fork


def regenerate_golden_lists(fork: Path) -> None:
    """The guide's command, as a fork runs it after adding a pool or an environment."""
    (command,) = [
        line.split("#")[0].strip()
        for block in guide_blocks("sh")
        for line in block.splitlines()
        if REGENERATE_GOLDEN in line
    ]
    argv = [sys.executable, *shlex.split(command)[1:]]  # .venv/bin/python -> this Python
    subprocess.run(argv, cwd=fork, check=True, capture_output=True, timeout=300)


def test_every_yaml_example_of_the_guide_is_planned() -> None:
    examples = planned_examples()
    assert [(how, stack) for how, stack, _ in examples] == [
        ("merge", "dev"),
        ("merge", "dev"),
        ("merge", "dev"),
        ("merge", "staging"),
        ("merge", "staging"),
        ("whole", "mycluster"),
    ]


def test_the_fork_holds_what_the_guide_added(fork: Path) -> None:
    dev = build_plan("dev", config_root=fork)
    assert dev["outputs"]["kubernetesVersion"] == "1.35"
    windows = [
        r["inputs"]["maintenanceWindow"]
        for r in dev["resources"]
        if r["type"] == "azure-native:containerservice:MaintenanceConfiguration"
    ]
    assert {(w["startTime"], w["utcOffset"]) for w in windows} == {("22:30", "+10:00")}
    pools = [r["name"] for r in dev["resources"] if r["type"].endswith(":AgentPool")]
    assert sorted(pools) == ["slm-pool-a10", "slm-pool-t4spot"]
    assert {name: m["pool"] for name, m in dev["outputs"]["models"].items()} == {
        "phi4-mini": "t4spot",
        "qwen3-4b": "a10",
    }
    staging = build_plan("staging", config_root=fork)
    cpu_model = staging["outputs"]["models"]["phi4-mini-cpu"]
    assert (cpu_model["engine"], cpu_model["pool"]) == ("onnxruntime", "cpu")
    assert staging["outputs"]["cpuPools"]["cpu"]["vmSize"] == "Standard_D4s_v5"
    # The adapter joined the existing phi4-mini entry and is served under its name.
    assert staging["outputs"]["servedModelNames"]["phi4-mini"] == ["phi4-mini", "phi4-mini-support"]
    assert staging["outputs"]["models"]["phi4-mini"]["loraGiB"] == round(59_138_048 / 2**30, 3)
    assert sorted(p.name for p in (fork / "stacks").glob("*.yaml")) == [
        "Pulumi.dev.yaml",
        "Pulumi.local.yaml",
        "Pulumi.mycluster.yaml",
        "Pulumi.prod.yaml",
        "Pulumi.qa.yaml",
        "Pulumi.staging.yaml",
    ]


def test_the_fork_passes_its_stack_tests(fork: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-n", "0", "-p", "no:cacheprovider", *FORK_TESTS],
        cwd=fork,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The fork's own stacks were planned and checked, the added ones included.
    for stack in ("dev", "qa", "mycluster"):
        assert f"test_the_plan_passes_every_check[{stack}] PASSED" in result.stdout
    assert " failed" not in result.stdout.splitlines()[-1]
