"""Autoscaling: KEDA ScaledObjects on vLLM's queue, per stack, with their limits."""

from __future__ import annotations

from typing import Any

import pytest

from components import aks_versions
from components.autoscaling import awake_triggers, fallback_spec, hpa_behavior
from components.config import ModelConfig
from tests.conftest import resources_of
from tools.plan import kubernetes_manifests

P = "slm-deploy:"


def scaled_objects(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        path.split("/")[1].removeprefix("scaledobject-").removesuffix(".yaml"): manifest
        for path, manifest in kubernetes_manifests(plan["resources"]).items()
        if manifest["kind"] == "ScaledObject"
    }


def test_dev_scales_phi4_mini_from_zero_in_working_hours(plans) -> None:
    (spec,) = [s["spec"] for s in scaled_objects(plans["dev"]).values()]
    assert spec["scaleTargetRef"] == {"name": "phi4-mini"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 2)
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (15, 360)
    assert spec["fallback"] == {
        "failureThreshold": 3,
        "replicas": 1,
        "behavior": "currentReplicasIfHigher",
    }
    queue, awake = spec["triggers"]
    assert queue == {
        "type": "prometheus",
        "metadata": {
            "serverAddress": "http://kps-prometheus.slm-monitoring.svc:9090",
            "query": 'sum(vllm:num_requests_waiting{namespace="slm-inference", '
            'model_name="phi4-mini"})',
            # right_sizing.queue_threshold: a T4 replica with 4 slots completes 0.23 req/s
            # at a 0.44 s p95 TTFT, so the 2 s target leaves room for floor(1.56 x 0.23) =
            # 0 waiting, and KEDA scales at the least it can, 1.
            "threshold": "1",
            "activationThreshold": "0",
            # At zero replicas there is no series: that reads as 0, not as a broken source.
            "ignoreNullValues": "true",
        },
    }
    assert awake == {
        "type": "cron",
        "metadata": {
            "timezone": "UTC",
            "start": "0 8 * * 1-5",
            "end": "0 19 * * 1-5",
            "desiredReplicas": "1",
        },
    }


def test_prod_scales_both_models_within_their_ranges(plans) -> None:
    objects = scaled_objects(plans["prod"])
    assert {
        name: (o["spec"]["minReplicaCount"], o["spec"]["maxReplicaCount"])
        for name, o in objects.items()
    } == {
        "phi4-mini": (2, 4),
        "qwen3-8b": (1, 2),
    }
    for scaled in objects.values():
        spec = scaled["spec"]
        assert spec["fallback"]["replicas"] == spec["minReplicaCount"]
        (trigger,) = spec["triggers"]  # no awake hours: never at zero
        # A model with replicas always reports its queue: no data is a failure (fallback).
        assert spec["fallback"]["behavior"] == "currentReplicasIfHigher"
        assert trigger["metadata"]["ignoreNullValues"] == "false"
        assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa_behavior()
    assert plans["prod"]["outputs"]["autoscaledModels"] == ["phi4-mini", "qwen3-8b"]


def test_behaviour_scales_up_fast_and_down_slowly() -> None:
    behaviour = hpa_behavior()
    assert behaviour["scaleUp"] == {
        "stabilizationWindowSeconds": 60,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
    }
    assert behaviour["scaleDown"] == {
        "stabilizationWindowSeconds": 300,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
    }


def test_awake_hours_become_a_cron_trigger_in_their_time_zone() -> None:
    model = ModelConfig.model_validate(
        {
            "name": "m",
            "engine": "vllm",
            "source": "Qwen/Qwen3-0.6B",
            "pool": "p",
            "replicas": {
                "min": 0,
                "max": 3,
                "awake": {
                    "timezone": "Europe/London",
                    "days": "1-4,6",
                    "start": "07:30",
                    "end": "21:05",
                },
            },
        }
    )
    assert awake_triggers(model) == [
        {
            "type": "cron",
            "metadata": {
                "timezone": "Europe/London",
                "start": "30 7 * * 1-4,6",
                "end": "5 21 * * 1-4,6",
                "desiredReplicas": "1",
            },
        }
    ]


def test_aks_uses_the_keda_add_on_and_no_other_metrics_adapter(plans) -> None:
    for stack in ("dev", "staging", "prod"):
        (cluster,) = resources_of(plans[stack], "azure-native:containerservice:ManagedCluster")
        assert cluster["inputs"]["workloadAutoScalerProfile"] == {"keda": {"enabled": True}}
        charts = resources_of(plans[stack], "kubernetes:helm.sh/v4:Chart")
        assert "keda" not in {c["inputs"]["chart"] for c in charts}
        release = resources_of(plans[stack], "kubernetes:helm.sh/v3:Release")[0]
        assert "prometheus-adapter" not in release["inputs"]["values"]


def test_scaled_objects_wait_for_their_deployments(plans) -> None:
    """The Autoscaling component registers after the Deployments exist, so its children
    (the ScaledObjects) do too."""
    resources = plans["prod"]["resources"]
    deployments = {r["urn"] for r in resources if r["type"] == "kubernetes:apps/v1:Deployment"}
    (autoscaling,) = [r for r in resources if r["type"] == "slm:autoscaling:Autoscaling"]
    assert len(deployments) == 2
    assert deployments <= set(autoscaling["dependencies"])
    for resource in resources:
        if resource["type"] == "kubernetes:keda.sh/v1alpha1:ScaledObject":
            assert resource["parent"] == autoscaling["urn"]


def _busy_model(min_replicas: int) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": "m",
            "engine": "vllm",
            "source": "Qwen/Qwen3-0.6B",
            "pool": "p",
            "replicas": {"min": min_replicas, "max": 4},
        }
    )


@pytest.mark.parametrize(
    ("keda", "expected"),
    [
        # KEDA 2.17.0 introduced fallback.behavior: never below the current count.
        ((2, 17, 0), {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"}),
        ((2, 19, 0), {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"}),
        # KEDA 2.16.1 would set the Deployment to fallback.replicas outright: no fallback, so
        # the HPA holds the current count while the metric fails.
        ((2, 16, 1), None),
    ],
)
def test_fallback_follows_the_keda_version(keda, expected) -> None:
    assert fallback_spec(_busy_model(2), keda) == expected


def test_fallback_follows_the_clusters_kubernetes_minor() -> None:
    """AKS runs KEDA 2.16.1 on 1.33 (no behavior field) and 2.17.2 on 1.35."""
    model = _busy_model(1)
    assert fallback_spec(model, aks_versions.keda_version("1.33")) is None
    assert fallback_spec(model, aks_versions.keda_version("1.35"))["behavior"] == (
        "currentReplicasIfHigher"
    )
