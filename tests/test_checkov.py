"""checkov's Kubernetes checks over every stack's manifests, with the skip list in
.checkov.yaml. checkov lives in its own environment (.venv-checkov, made by `make test`
from tools/checkov/requirements.txt): its pinned dependencies clash with Pulumi's."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.conftest import STACKS
from tools.plan import ROOT, kubernetes_manifests

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
# Workload checks that must have PASSED, not merely not failed: checkov silently leaves out
# request checks when `requests:` is absent, so "0 failed" alone would prove nothing.
REQUIRED_WORKLOAD_CHECKS = {
    "CKV_K8S_8": "liveness probe",
    "CKV_K8S_9": "readiness probe",
    "CKV_K8S_10": "CPU requests",
    "CKV_K8S_11": "CPU limits",
    "CKV_K8S_12": "memory requests",
    "CKV_K8S_13": "memory limits",
    "CKV_K8S_20": "no privilege escalation",
    "CKV_K8S_22": "read-only root filesystem",
    "CKV_K8S_23": "no root containers",
    "CKV_K8S_28": "no NET_RAW",
    "CKV_K8S_31": "seccomp RuntimeDefault",
    "CKV_K8S_37": "capabilities dropped",
    "CKV_K8S_38": "service account token not mounted",
    "CKV_K8S_40": "high UID",
}


@pytest.fixture(scope="module")
def checkov_report(plans, tmp_path_factory) -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make test`, which installs it")
    root: Path = tmp_path_factory.mktemp("manifests")
    for stack in STACKS:
        for relative, manifest in kubernetes_manifests(plans[stack]["resources"]).items():
            path = root / stack / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    result = subprocess.run(
        [str(CHECKOV), "--config-file", str(ROOT / ".checkov.yaml"), "-d", str(root), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_no_check_fails_and_every_manifest_parses(checkov_report) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for f in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 50


def test_workload_checks_that_matter_passed_for_every_workload(checkov_report) -> None:
    passed = defaultdict(set)
    for check in checkov_report["results"]["passed_checks"]:
        kind = check["resource"].split(".")[0]
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            passed[check["file_path"] + check["resource"]].add(check["check_id"])
    assert len(passed) >= 5  # the vLLM and Ollama Deployments across the stacks
    for resource, checks in passed.items():
        missing = {c: n for c, n in REQUIRED_WORKLOAD_CHECKS.items() if c not in checks}
        assert missing == {}, resource


def test_skips_are_the_justified_ones(checkov_report) -> None:
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text())
    assert config["skip-check"] == ["CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35"]
