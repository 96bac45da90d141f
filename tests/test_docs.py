"""The documentation stays true to the tree: the architecture diagrams name every component
module and nothing else, every relative link resolves, every alert has its runbook section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components import alerts, log_queries
from components.config import AlertThresholds
from tools.plan import ROOT

COMPONENTS_README = ROOT / "components" / "README.md"
DOCS = [ROOT / "README.md", COMPONENTS_README, *sorted((ROOT / "docs").glob("*.md"))]
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", text, flags=re.S)


def test_the_diagram_names_every_component_module_and_no_other() -> None:
    diagram = "\n".join(_mermaid_blocks(COMPONENTS_README.read_text()))
    named = set(re.findall(r"\b([a-z_]+)\.py\b", diagram))
    modules = {p.stem for p in (ROOT / "components").glob("*.py") if p.stem != "__init__"}
    assert named == modules


@pytest.mark.parametrize("document", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    for target in MARKDOWN_LINK.findall(document.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (document.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{document.name}: {target}"


def test_every_alert_has_its_runbook_section() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    sections = set(re.findall(r"^## (\S+)$", runbook, flags=re.M))
    names = {
        rule["alert"].lower()
        for group in alerts.rule_groups(AlertThresholds(), "ns", "https://x/runbook.md")
        for rule in group["rules"]
    }
    assert len(names) == 9  # every rule_groups alert, the edge refusals included
    assert names <= sections


def _runbook_sections() -> dict[str, str]:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    return dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", runbook, flags=re.M | re.S))


def _alert_names() -> set[str]:
    return {
        r["alert"]
        for group in alerts.rule_groups(AlertThresholds(), "ns", "https://x/runbook.md")
        for r in group["rules"]
    }


def test_every_alert_section_links_its_log_query() -> None:
    """Each runbook section carries the LogQL components/log_queries.py builds for its
    alert, exactly: a query that drifts from the collector's labels fails here."""
    sections = _runbook_sections()
    queries = log_queries.runbook_queries()
    assert set(queries) == _alert_names()
    for alert in queries:
        assert log_queries.runbook_line(alert) in sections[alert.lower()], alert


def test_every_alert_section_links_its_kql_for_aks_stacks() -> None:
    """And the KQL over the stack's container-log workspace, exactly as log_queries builds
    it from the Container Insights agent's columns (tests/test_container_logs.py)."""
    sections = _runbook_sections()
    queries = log_queries.runbook_kql_queries()
    assert set(queries) == _alert_names()
    for alert in queries:
        line = log_queries.runbook_kql_line(alert)
        assert line.startswith("**Logs** (AKS: ") and queries[alert].startswith(
            ("ContainerLogV2 | ", "KubeEvents | ")
        )
        assert sections[alert.lower()].count(line) == 1, alert
