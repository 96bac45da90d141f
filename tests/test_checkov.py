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

from tests.arm_templates import arm_template
from tests.conftest import STACKS, copy_config_root
from tests.test_onnx_engine import onnx_stack
from tools.plan import ROOT, build_plan, kubernetes_manifests

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
    # The fixture stacks, and staging with an ONNX Runtime model on a CPU pool: the one
    # engine no fixture stack serves.
    config_root = copy_config_root(tmp_path_factory.mktemp("onnx"))
    checked = {stack: plans[stack] for stack in STACKS}
    checked["cpu"] = build_plan(onnx_stack(config_root), config_root=config_root)
    for stack, plan in checked.items():
        for relative, manifest in kubernetes_manifests(plan["resources"]).items():
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
    assert any(r.startswith("/cpu/") and "phi4-mini-cpu" in r for r in passed), sorted(passed)
    for resource, checks in passed.items():
        missing = {c: n for c, n in REQUIRED_WORKLOAD_CHECKS.items() if c not in checks}
        assert missing == {}, resource


def test_skips_are_the_justified_ones(checkov_report) -> None:
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text())
    assert config["skip-check"] == ["CKV_K8S_15", "CKV_K8S_35"]


# -- checkov's Azure (ARM) checks over the azure-native resources ------------------------------

AKS_STACKS = ("dev", "staging", "prod")
# Every Azure check that fails, the stacks it fails in, and why that is the design. The
# test demands exactly these: a new failure, or a fixed one, changes this table.
EXPECTED_AZURE_FINDINGS = {
    "CKV_AZURE_41": (
        AKS_STACKS,
        "secrets carry no expiry: they rotate through Pulumi, and an expired API key would stop serving",
    ),
    "CKV_AZURE_139": (
        AKS_STACKS,
        "ACR public network access: a private registry needs the Premium SKU (cluster.registrySku)",
    ),
    "CKV_AZURE_166": (AKS_STACKS, "ACR image quarantine: Premium SKU only"),
    "CKV_AZURE_233": (AKS_STACKS, "ACR zone redundancy: Premium SKU only"),
    "CKV_AZURE_168": (
        AKS_STACKS,
        "maxPods is left to AKS's default for Azure CNI overlay (250), above the check's 50",
    ),
    "CKV_AZURE_172": (
        AKS_STACKS,
        'false positive: secret rotation is on, but the add-on\'s config map holds the string "true" and the check wants a boolean',
    ),
    "CKV_AZURE_226": (
        AKS_STACKS,
        "ephemeral OS disks: the system pool's D4s_v5 has no local disk to hold one; GPU pools choose in gpuPools[].osDisk",
    ),
    "CKV_AZURE_227": (
        AKS_STACKS,
        "encryption at host needs a per-subscription feature registration that a template cannot assume",
    ),
    "CKV_AZURE_8": (
        AKS_STACKS,
        "the Kubernetes dashboard add-on no longer exists in AKS: nothing to disable",
    ),
    "CKV_AZURE_110": (
        ("dev",),
        "dev's vault has no purge protection, so a torn-down dev vault's name is free again",
    ),
    "CKV_AZURE_42": (("dev",), "the same: recoverable means purge protection"),
    "CKV_AZURE_189": (
        ("dev",),
        "dev's vault is public behind a deny-by-default firewall (node subnet and operator ranges); prod's has no public endpoint",
    ),
    "CKV_AZURE_6": (
        ("dev",),
        "dev's API server is open unless cluster.authorizedIpRanges is set (prod requires it)",
    ),
}


@pytest.fixture(scope="module")
def azure_report(plans, tmp_path_factory) -> dict:
    root: Path = tmp_path_factory.mktemp("arm")
    for stack in AKS_STACKS:
        (root / stack).mkdir()
        template = arm_template(plans[stack]["resources"])
        (root / stack / "template.json").write_text(json.dumps(template, indent=1))
    result = subprocess.run(
        [str(CHECKOV), "--framework", "arm", "--skip-download", "-d", str(root), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_azure_checks_fail_only_where_the_design_says_why(azure_report) -> None:
    failed: dict[str, set[str]] = defaultdict(set)
    for finding in azure_report["results"]["failed_checks"]:
        failed[finding["check_id"]].add(finding["file_path"].strip("/").split("/")[0])
    expected = {check: set(stacks) for check, (stacks, _) in EXPECTED_AZURE_FINDINGS.items()}
    assert dict(failed) == expected
    assert azure_report["summary"]["parsing_errors"] == 0


# Azure checks that must have PASSED (not merely not failed), by stack.
REQUIRED_AZURE_PASSES = {
    "CKV_AZURE_5": AKS_STACKS,  # AKS RBAC
    "CKV_AZURE_7": AKS_STACKS,  # AKS network policy
    "CKV_AZURE_141": AKS_STACKS,  # AKS local accounts disabled
    "CKV_AZURE_171": AKS_STACKS,  # AKS upgrade channel chosen
    "CKV_AZURE_109": AKS_STACKS,  # Key Vault firewall rules
    "CKV_AZURE_111": AKS_STACKS,  # Key Vault soft delete
    "CKV_AZURE_114": AKS_STACKS,  # Key Vault secrets have a content type
    "CKV_AZURE_137": AKS_STACKS,  # ACR admin account disabled
    "CKV_AZURE_138": AKS_STACKS,  # ACR anonymous pull disabled
    "CKV_AZURE_110": ("staging", "prod"),  # Key Vault purge protection
    "CKV_AZURE_189": ("staging", "prod"),  # Key Vault public network access
    "CKV_AZURE_6": ("staging", "prod"),  # API server authorized ranges
}


def test_azure_checks_that_matter_passed(azure_report) -> None:
    passed: dict[str, set[str]] = defaultdict(set)
    for finding in azure_report["results"]["passed_checks"]:
        passed[finding["check_id"]].add(finding["file_path"].strip("/").split("/")[0])
    for check, stacks in REQUIRED_AZURE_PASSES.items():
        assert passed[check] >= set(stacks), check
