"""Shared fixtures: every stack's plan, built once per test session under the mock engine."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.plan import ROOT, build_plan
from tools.stack_files import available_stacks

STACKS = available_stacks(ROOT)


@pytest.fixture(scope="session")
def plans() -> dict[str, dict[str, Any]]:
    return {stack: build_plan(stack) for stack in STACKS}


@pytest.fixture
def config_root(tmp_path: Path) -> Path:
    """A copy of Pulumi.yaml and the stack files that a test may edit."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    return tmp_path


def read_stack(root: Path, stack: str) -> dict[str, Any]:
    return yaml.safe_load((root / "stacks" / f"Pulumi.{stack}.yaml").read_text())


def write_stack(root: Path, stack: str, document: dict[str, Any]) -> None:
    (root / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))


def resources_of(plan: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == type_]
