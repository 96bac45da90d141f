"""Custom resources against the CRD schemas of the versions the cluster runs.

The schemas are vendored under tests/upstream/ (KEDA per AKS Kubernetes minor, the Secrets
Store CSI driver per minor, the managed Prometheus add-on's azmonitoring CRD); which
version a cluster runs comes from components/aks_versions.json. tests/conftest.py's
invalid_manifests applies them to every plan the suite validates; this file checks the
variants the shipped stacks don't cover, the checker itself, and that data and folders agree.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components import aks_versions
from components.autoscaling import scaled_object_spec
from components.config import ModelConfig
from tests.conftest import (
    CRD_CONTRACTS,
    UPSTREAM,
    azure_provider_problems,
    copy_config_root,
    crd_folder,
    custom_resource_problems,
    invalid_manifests,
    pruning_schema,
    read_stack,
    write_stack,
)
from tools.plan import build_plan, kubernetes_manifests

P = "slm-deploy:"
KEDA_FILES = {
    "scaledobjects.yaml": "config/crd/bases/keda.sh_scaledobjects.yaml",
    "triggerauthentications.yaml": "config/crd/bases/keda.sh_triggerauthentications.yaml",
}


def _variant(root: Path, stack: str, **config: Any) -> dict[str, Any]:
    document = read_stack(root, stack)
    for key, value in config.items():
        if isinstance(value, dict):
            document["config"].setdefault(f"{P}{key}", {}).update(value)
        else:
            document["config"][f"{P}{key}"] = value
    write_stack(root, stack, document)
    return build_plan(stack, config_root=root)


@pytest.fixture(scope="module")
def variant_plans(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """The AKS variants whose custom resources the shipped stacks don't declare: managed
    Prometheus (TriggerAuthentication, azmonitoring ServiceMonitor) and the other supported
    minor (KEDA 2.17.2, Secrets Store CSI driver 1.5.4)."""
    plans = {}
    for name, stack, config in [
        ("dev-managed", "dev", {"monitoring": {"mode": "azure-managed"}}),
        ("prod-1.35", "prod", {"cluster": {"kubernetesVersion": "1.35"}}),
    ]:
        root = tmp_path_factory.mktemp(name)
        copy_config_root(root)
        plans[name] = _variant(root, stack, **config)
    return plans


def _kinds(plan: dict[str, Any]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for manifest in kubernetes_manifests(plan["resources"]).values():
        key = (manifest["apiVersion"], manifest["kind"])
        if key in CRD_CONTRACTS:
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_managed_prometheus_variant_passes_the_contracts(variant_plans) -> None:
    plan = variant_plans["dev-managed"]
    assert plan["outputs"]["kubernetesVersion"] == "1.36"
    assert _kinds(plan) == {
        ("keda.sh/v1alpha1", "ScaledObject"): 1,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): 1,
        ("azmonitoring.coreos.com/v1", "ServiceMonitor"): 1,
        # The model servers' API key only: managed Grafana has no admin secret to mount.
        ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"): 1,
    }
    assert invalid_manifests(plan) == []


def test_kubernetes_1_35_variant_passes_keda_2_17_and_its_csi_driver(variant_plans) -> None:
    plan = variant_plans["prod-1.35"]
    assert crd_folder("keda.sh/v1alpha1", "ScaledObject", "1.35")[0] == "keda-2.17.2"
    assert crd_folder("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass", "1.35")[0] == (
        "secrets-store-csi-driver-1.5.4"
    )
    scaled = [
        m for m in kubernetes_manifests(plan["resources"]).values() if m["kind"] == "ScaledObject"
    ]
    assert [m["spec"]["fallback"]["behavior"] for m in scaled] == ["currentReplicasIfHigher"] * 2
    assert invalid_manifests(plan) == []


def _scaled_object(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "m", "namespace": "slm-inference"},
        "spec": spec,
    }


def test_keda_2_16_1_prunes_fallback_behavior_and_our_rendering_avoids_it() -> None:
    """Issue 13, defect 1: on KEDA 2.16.1 (AKS's add-on on Kubernetes 1.33) the API server
    drops fallback.behavior. The schema check says so; the rendering for 2.16.1 has none."""
    model = ModelConfig.model_validate(
        {
            "name": "m",
            "engine": "vllm",
            "source": "Qwen/Qwen3-0.6B",
            "pool": "p",
            "replicas": {"min": 1, "max": 3},
        }
    )
    url = "http://kps-prometheus.slm-monitoring.svc:9090"
    keda_2_16 = aks_versions.keda_version("1.33")
    assert keda_2_16 == (2, 16, 1)
    rendered = _scaled_object(scaled_object_spec(model, 5, "slm-inference", url, keda_2_16))
    assert "fallback" not in rendered["spec"]
    assert custom_resource_problems("so.yaml", rendered, "1.33") == []
    # What the autoscaler rendered before it followed the KEDA version:
    before = _scaled_object(scaled_object_spec(model, 5, "slm-inference", url, (2, 17, 0)))
    assert custom_resource_problems("so.yaml", before, "1.33") == [
        "so.yaml: Additional properties are not allowed ('behavior' was unexpected) "
        "at ['spec', 'fallback'] (keda-2.16.1/scaledobjects.yaml)"
    ]
    assert custom_resource_problems("so.yaml", before, "1.36") == []


def test_a_kind_or_minor_without_a_vendored_schema_fails() -> None:
    scaled_job = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {}}
    assert custom_resource_problems("sj.yaml", scaled_job, "1.36") == [
        "sj.yaml: no vendored CRD schema for ScaledJob on Kubernetes 1.36: "
        "('keda.sh/v1alpha1', 'ScaledJob')"
    ]
    scaled = _scaled_object({"scaleTargetRef": {"name": "m"}, "triggers": []})
    assert custom_resource_problems("so.yaml", scaled, "1.34") == [
        "so.yaml: no vendored CRD schema for ScaledObject on Kubernetes 1.34: "
        "'no AKS add-on versions recorded for Kubernetes 1.34'"
    ]


# -- the pruning rules themselves, on the smallest schemas that show each one --

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True},
                "note": {"type": "string", "nullable": True},
            },
        }
    },
}


@pytest.mark.parametrize(
    ("spec", "errors"),
    [
        ({"port": 8080, "free": {"any": {"thing": 1}}, "labels": {"a": "b"}, "note": None}, []),
        ({"port": "http"}, []),
        ({"port": 1.5}, ["1.5 is not valid under any of the given schemas"]),
        ({"unknown": 1}, ["Additional properties are not allowed ('unknown' was unexpected)"]),
        ({"labels": {"a": 1}}, ["1 is not of type 'string'"]),
        ({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}}, []),
        (
            {"template": {"spec": {}}},
            ["Additional properties are not allowed ('spec' was unexpected)"],
        ),
    ],
)
def test_pruning_schema_refuses_what_the_api_server_would_drop(spec, errors) -> None:
    validator = jsonschema.Draft4Validator(pruning_schema(SCHEMA))
    assert [e.message for e in validator.iter_errors({"spec": spec})] == errors


# -- the vendored folders and components/aks_versions.json agree --


def _source(folder: str) -> dict[str, Any]:
    return json.loads((UPSTREAM / folder / "source.json").read_text())


def test_every_add_on_version_in_the_data_has_its_vendored_crds() -> None:
    folders = set()
    for minor, entry in aks_versions.MINORS.items():
        if entry.add_ons is None:
            continue
        keda = _source(f"keda-{entry.add_ons.keda}")
        assert (keda["repository"], keda["ref"], keda["files"]) == (
            "kedacore/keda",
            f"v{entry.add_ons.keda}",
            KEDA_FILES,
        ), minor
        csi = _source(f"secrets-store-csi-driver-{entry.add_ons.secrets_store_csi_driver}")
        assert (csi["repository"], csi["ref"]) == (
            "kubernetes-sigs/secrets-store-csi-driver",
            f"v{entry.add_ons.secrets_store_csi_driver}",
        ), minor
        folders |= {f"keda-{entry.add_ons.keda}"}
        folders |= {f"secrets-store-csi-driver-{entry.add_ons.secrets_store_csi_driver}"}
    managed = _source(f"azmonitoring-{aks_versions.MANAGED_PROMETHEUS['release']}")
    assert (managed["repository"], managed["ref"]) == (
        "Azure/prometheus-collector",
        aks_versions.MANAGED_PROMETHEUS["tag"],
    )
    vendored = {
        path.name
        for pattern in ("keda-*", "secrets-store-csi-driver-*")
        for path in UPSTREAM.glob(pattern)
    }
    # No folder outlives the data that points at it.
    assert (
        vendored
        == folders
        == {
            "keda-2.16.1",
            "keda-2.17.2",
            "keda-2.19.0",
            "secrets-store-csi-driver-1.4.8",
            "secrets-store-csi-driver-1.5.4",
            "secrets-store-csi-driver-1.5.6",
        }
    )


@pytest.mark.parametrize(
    ("minor", "key"),
    [(minor, key) for minor in ("1.33", "1.35", "1.36") for key in CRD_CONTRACTS],
)
def test_each_vendored_file_is_the_crd_of_its_kind(minor, key) -> None:
    api_version, kind = key
    folder, file = crd_folder(api_version, kind, minor)
    crd = yaml.safe_load((UPSTREAM / folder / file).read_text())
    group, version = api_version.split("/")
    assert (crd["kind"], crd["spec"]["group"], crd["spec"]["names"]["kind"]) == (
        "CustomResourceDefinition",
        group,
        kind,
    )
    assert version in [v["name"] for v in crd["spec"]["versions"] if v["served"]]
    assert file in _source(folder)["files"]


def test_prometheus_operator_kinds_are_checked_in_every_shipped_stack(plans) -> None:
    """Every ServiceMonitor and PrometheusRule of the in-cluster stacks goes through the
    operator's schema, and a misspelt field in either is caught."""
    checked = {
        stack: sorted(
            manifest["kind"]
            for manifest in kubernetes_manifests(plan["resources"]).values()
            if manifest["apiVersion"] == "monitoring.coreos.com/v1"
        )
        for stack, plan in plans.items()
    }
    for stack, kinds in checked.items():
        if stack != "local":
            assert "PrometheusRule" in kinds and "ServiceMonitor" in kinds, stack
    monitor = next(
        m
        for m in kubernetes_manifests(plans["prod"]["resources"]).values()
        if m["kind"] == "ServiceMonitor"
    )
    assert custom_resource_problems("sm.yaml", monitor, "1.36") == []
    monitor["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    assert custom_resource_problems("sm.yaml", monitor, "1.36") == [
        "sm.yaml: Additional properties are not allowed ('scrapeTimout' was unexpected) "
        "at ['spec', 'endpoints', 0] (prometheus-operator-0.93.1/servicemonitors.yaml)"
    ]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "r"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "1", "fro": "5m"}]}]},
    }
    assert custom_resource_problems("r.yaml", rule, "1.36") == [
        "r.yaml: Additional properties are not allowed ('fro' was unexpected) "
        "at ['spec', 'groups', 0, 'rules', 0] (prometheus-operator-0.93.1/prometheusrules.yaml)"
    ]


def test_secret_provider_class_parameters_are_ones_the_azure_provider_reads(plans) -> None:
    """The CRD leaves `parameters` free-form: the provider's own code (1.8.1 on 1.36) says
    which names and object fields it reads; a misspelt one is caught."""
    providers = [
        m
        for plan in plans.values()
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == "SecretProviderClass"
    ]
    assert providers
    assert all(azure_provider_problems("spc.yaml", m, "1.36") == [] for m in providers)
    wrong = copy.deepcopy(providers[0])
    wrong["spec"]["parameters"]["clientId"] = wrong["spec"]["parameters"].pop("clientID")
    wrong["spec"]["parameters"]["objects"] = (
        "array:\n  - |\n    objectName: x\n    objectTyp: secret\n"
    )
    assert azure_provider_problems("spc.yaml", wrong, "1.36") == [
        "spc.yaml: parameter clientId is not one the Azure provider 1.8.1 reads",
        "spc.yaml: object field objectTyp is not one the Azure provider 1.8.1 reads",
        "spc.yaml: objectType None is unknown",
    ]
