"""Bring your own cluster: vLLM on GPU nodes an existing cluster already has (dev tier)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import invalid_manifests, read_stack, resources_of, write_stack
from tools.plan import (
    PlanConfigError,
    build_plan,
    console_summary,
    summary_markdown,
)

P = "slm-deploy:"
A10 = "Standard_NV36ads_A10_v5"


def _byoc_stack(config_root: Path, **cluster: Any) -> dict[str, Any]:
    """The local stack made a dev stack on an existing cluster with two A10 nodes labelled
    slm-deploy/pool=a10, and Phi-4-mini on vLLM beside the CPU Ollama model."""
    document = read_stack(config_root, "local")
    config = document["config"]
    config[f"{P}environment"] = "dev"
    config[f"{P}cluster"] |= cluster
    config[f"{P}gpuPools"] = [{"name": "a10", "vmSize": A10, "maxCount": 2}]
    config[f"{P}models"].append(
        {
            "name": "phi4-mini",
            "engine": "vllm",
            "source": "microsoft/Phi-4-mini-instruct",
            "pool": "a10",
            "replicas": {"min": 2, "max": 2},
            "maxModelLen": 4096,
        }
    )
    write_stack(config_root, "local", document)
    return document


def _plan(config_root: Path, **cluster: Any) -> dict[str, Any]:
    _byoc_stack(config_root, **cluster)
    return build_plan("local", config_root=config_root)


def _charts(plan: dict[str, Any]) -> list[str]:
    return sorted(r["inputs"]["chart"] for r in resources_of(plan, "kubernetes:helm.sh/v4:Chart"))


def test_vllm_runs_on_the_existing_nodes_without_azure(config_root: Path) -> None:
    plan = _plan(config_root)
    types = {r["type"] for r in plan["resources"]}
    assert not [t for t in types if t.startswith("azure-native:")]
    assert "slm:gpu_pool:GpuNodePool" not in types
    # gpuSoftware "present" (the default): the cluster's own device plugin serves the GPUs.
    assert _charts(plan) == []
    assert "slm:gpu_pool:GpuSoftware" not in types
    deployment = next(
        r
        for r in resources_of(plan, "kubernetes:apps/v1:Deployment")
        if r["inputs"]["metadata"]["name"] == "phi4-mini"
    )
    spec = deployment["inputs"]["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"slm-deploy/pool": "a10"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == "1"
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert "--max-model-len=4096" in pod["containers"][0]["args"]
    # The API key is a Kubernetes Secret written directly (no Key Vault off AKS).
    assert [r["type"] for r in plan["resources"] if r["type"].startswith("slm:secrets:")] == [
        "slm:secrets:ClusterSecrets"
    ]
    secret = next(
        r
        for r in resources_of(plan, "kubernetes:core/v1:Secret")
        if r["inputs"]["metadata"]["name"] == "slm-api-key"
    )
    assert secret["inputs"]["metadata"]["namespace"] == "slm-inference"
    assert secret["inputs"]["stringData"] == {"api-key": "[secret]"}
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "slm-api-key", "key": "api-key"}
    }
    # The shared cache: ReadWriteMany on the cluster's default class (no Azure Files here).
    claim = next(
        r
        for r in resources_of(plan, "kubernetes:core/v1:PersistentVolumeClaim")
        if "phi4-mini" in r["inputs"]["metadata"]["name"]
    )
    assert claim["inputs"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "storageClassName" not in claim["inputs"]["spec"]
    assert plan["violations"] == []


def test_existing_nodes_show_no_azure_cost(config_root: Path) -> None:
    plan = _plan(config_root, gpuSoftware="present")
    pool = plan["outputs"]["gpuPools"]["a10"]
    assert pool == {
        "vmSize": A10,
        "gpu": "1x A10",
        "existingNodes": True,
        "maxCount": 2,
        "spot": False,
        "monthlyCostUsd": None,
        "costNote": "existing nodes: not created by this template, no cost estimate",
    }
    console = console_summary(plan, config_root / "out" / "local", 1.0)
    assert "  pool a10: 2 existing 1x A10 nodes, no cost estimate" in console.splitlines()
    markdown = summary_markdown(plan)
    assert (
        f"| a10 | {A10} | 1x A10 | 2 existing | False | - | - |"
        " existing nodes: not created by this template, no cost estimate | - |"
    ) in markdown
    assert "USD/month" not in console and "prices.json" not in markdown


def test_install_declares_the_device_plugin_and_dcgm_exporter(config_root: Path) -> None:
    plan = _plan(config_root, gpuSoftware="install")
    assert _charts(plan) == ["dcgm-exporter", "nvidia-device-plugin"]
    for chart in resources_of(plan, "kubernetes:helm.sh/v4:Chart"):
        assert chart["inputs"]["namespace"] == "slm-system"
        # monitoring.mode none (the local stack): no ServiceMonitor to declare.
        if chart["inputs"]["chart"] == "dcgm-exporter":
            assert chart["inputs"]["values"]["serviceMonitor"] == {"enabled": False}
    namespaces = {
        r["inputs"]["metadata"]["name"] for r in resources_of(plan, "kubernetes:core/v1:Namespace")
    }
    assert namespaces == {"slm-inference", "slm-system"}
    assert not [r for r in plan["resources"] if r["type"].startswith("azure-native:")]
    assert plan["violations"] == []


@pytest.mark.parametrize("software", ["present", "install"])
def test_existing_cluster_manifests_validate_strictly(config_root: Path, software: str) -> None:
    plan = _plan(config_root, gpuSoftware=software)
    assert invalid_manifests(plan) == []


def test_spot_nodes_add_the_spot_toleration(config_root: Path) -> None:
    document = _byoc_stack(config_root)
    document["config"][f"{P}gpuPools"][0]["spot"] = True
    write_stack(config_root, "local", document)
    plan = build_plan("local", config_root=config_root)
    deployment = next(
        r
        for r in resources_of(plan, "kubernetes:apps/v1:Deployment")
        if r["inputs"]["metadata"]["name"] == "phi4-mini"
    )
    assert deployment["inputs"]["spec"]["template"]["spec"]["tolerations"][1] == {
        "key": "kubernetes.azure.com/scalesetpriority",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    }


def _with(path: str, value: Any):
    def mutate(config: dict) -> None:
        top, *rest = path.split(".")
        if not rest:
            config[f"{P}{top}"] = value
            return
        node: Any = config[f"{P}{top}"]
        for part in rest[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[rest[-1]] = value

    return mutate


BAD_EXISTING_CONFIGS = [
    (
        _with("environment", "staging"),
        'slm-deploy:cluster.mode: "existing" is not allowed; expected aks for the staging '
        "environment",
    ),
    (
        _with("environment", "prod"),
        'slm-deploy:cluster.mode: "existing" is not allowed; expected aks for the prod environment',
    ),
    (
        _with("models.1.replicas", {"min": 1, "max": 2}),
        "slm-deploy:models[1].replicas.max: 2 is not allowed; expected 1 (the minimum) with "
        "cluster.mode existing: autoscaling relies on the AKS KEDA add-on, and nothing "
        "installs KEDA on your cluster",
    ),
    (
        _with("cluster.gpuSoftware", "operator"),
        "slm-deploy:cluster.gpuSoftware: \"operator\" is not allowed; expected one of 'present' "
        "or 'install'",
    ),
    (
        _with("gpuPools.0.minCount", 1),
        "slm-deploy:gpuPools[0].minCount: 1 is not allowed; expected nothing with cluster.mode "
        "existing: the nodes exist already (maxCount says how many); minCount, zones and "
        "osDiskSizeGb shape AKS agent pools",
    ),
    (
        _with("gpuPools.0.zones", ["1"]),
        'slm-deploy:gpuPools[0].zones: ["1"] is not allowed; expected nothing with cluster.mode '
        "existing: the nodes exist already (maxCount says how many); minCount, zones and "
        "osDiskSizeGb shape AKS agent pools",
    ),
    (
        _with("gpuPools.0.maxCount", 1),
        "slm-deploy:gpuPools[0].maxCount: 1 is not allowed; expected at least 2: its models may "
        f"scale to 2 x phi4-mini (2 GPUs, 1 per {A10} node)",
    ),
    (
        # The memory check runs against the GPU of the SKU the existing nodes are described as.
        _with("models.1.maxModelLen", 131072),
        "slm-deploy:models[1]: phi4-mini (microsoft/Phi-4-mini-instruct) on pool a10 "
        f"({A10}, 1x A10): needs 24.6 GiB per GPU (weights 7.1, KV cache 16.0 for one sequence "
        "of maxModelLen 131072 tokens, runtime 1.4), 20.2 GiB usable at gpu_memory_utilization "
        "0.90; fits with maxModelLen <= 95488, or vmSize Standard_NC24ads_A100_v4",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), BAD_EXISTING_CONFIGS)
def test_bad_existing_cluster_config_stops_with_one_line(
    config_root: Path, mutate, expected: str
) -> None:
    document = _byoc_stack(config_root)
    mutate(document["config"])
    write_stack(config_root, "local", document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan("local", config_root=config_root)
    assert str(raised.value) == expected
