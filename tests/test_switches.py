"""The fork guide's "What each switch changes" table: each row's switch, planned against the
dev fixture, adds and removes exactly the resource kinds the row names."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import copy_config_root, fixture_root, read_stack, write_stack
from tools.plan import ROOT, build_plan

P = "slm-deploy:"
GUIDE = ROOT / "docs" / "fork-guide.md"
SECTION = re.compile(r"^## What each switch changes\n(?P<body>.*?)^## ", re.M | re.S)
ROW = re.compile(r"^\| `(?P<switch>[^`]+)`[^|]*\| (?P<adds>[^|]+) \| (?P<removes>[^|]+) \|", re.M)
KIND = re.compile(r"`(\w+)`")
DIGEST = "@sha256:" + "a" * 64


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    top, *rest = path.split(".")
    node = config.setdefault(f"{P}{top}", {})
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    node[rest[-1]] = value


def _fixed_replicas(config: dict[str, Any]) -> None:
    for model in config[f"{P}models"]:
        model["replicas"] = {"min": 1, "max": 1}


# Each switch of the table, with the settings it cannot be turned on without.
SWITCHES: dict[str, Callable[[dict[str, Any]], None]] = {
    "serving.modelCache: node": lambda c: _set(c, "serving.modelCache", "node"),
    "ingress.enabled: true": lambda c: (
        _set(c, "ingress.enabled", True),
        _set(c, "ingress.host", "slm.example.com"),
    ),
    "monitoring.mode: azure-managed": lambda c: _set(c, "monitoring.mode", "azure-managed"),
    "monitoring.mode: none": lambda c: (_fixed_replicas(c), _set(c, "monitoring.mode", "none")),
    "cluster.gpuDriver: gpu-operator": lambda c: _set(c, "cluster.gpuDriver", "gpu-operator"),
}


def _rows() -> dict[str, tuple[set[str], set[str]]]:
    body = SECTION.search(GUIDE.read_text())["body"]
    return {
        row["switch"]: (set(KIND.findall(row["adds"])), set(KIND.findall(row["removes"])))
        for row in ROW.finditer(body)
    }


def _kinds(plan: dict[str, Any]) -> Counter:
    """Resources the providers create, by kind (components and the stack are not)."""
    kinds: Counter = Counter()
    for resource in plan["resources"]:
        if resource["type"].startswith(("slm:", "pulumi:")):
            continue
        custom = resource["type"].startswith("kubernetes:") and resource["inputs"].get("kind")
        kinds[custom or resource["type"].split(":")[-1]] += 1
    return kinds


@pytest.fixture(scope="module")
def dev_kinds() -> Counter:
    return _kinds(build_plan("dev", config_root=fixture_root()))


def test_the_table_has_a_row_for_each_switch_and_no_other() -> None:
    assert set(_rows()) == set(SWITCHES)


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_a_switch_adds_and_removes_what_the_guide_says(tmp_path, dev_kinds, switch) -> None:
    root = copy_config_root(tmp_path)
    document = read_stack(root, "dev")
    SWITCHES[switch](document["config"])
    write_stack(root, "dev", document)
    after = _kinds(build_plan("dev", config_root=root))
    added = {kind for kind in after if after[kind] > dev_kinds[kind]}
    removed = {kind for kind in dev_kinds if dev_kinds[kind] > after[kind]}
    assert (added, removed) == _rows()[switch]
