"""Shared fixtures: every stack's plan, built once per test session under the mock engine."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tools.plan import ROOT, build_plan, kubernetes_manifests
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


# Custom resources whose CRDs the platform installs or the cluster's add-ons bring.
# kubernetes-validate has no schema for them: tests/test_monitoring.py and
# tests/test_autoscaling.py assert their content; any other unknown kind fails.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),  # kube-prometheus-stack
    ("monitoring.coreos.com/v1", "PrometheusRule"),  # kube-prometheus-stack
    ("azmonitoring.coreos.com/v1", "ServiceMonitor"),  # AKS managed Prometheus add-on
    ("keda.sh/v1alpha1", "ScaledObject"),  # KEDA (AKS add-on or chart)
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"),  # AKS Key Vault CSI add-on
}


def invalid_manifests(plan: dict[str, Any]) -> list[str]:
    """Every rendered manifest that fails strict validation for the stack's Kubernetes
    version, or has no schema and is not a custom kind we list: one line each."""
    version = plan["outputs"]["kubernetesVersion"]
    problems = []
    for path, manifest in kubernetes_manifests(plan["resources"]).items():
        if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{path}: {err.message} at {list(err.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{path}: no schema for {manifest['kind']} (a CRD we don't list?)")
    return problems
