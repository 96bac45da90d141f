"""Every stack plans, and what it declares holds the properties the template promises."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import STACKS, invalid_manifests, read_stack, resources_of, write_stack
from tools.plan import build_plan, kubernetes_manifests

AKS_STACKS = ["dev", "staging", "prod"]


def test_the_four_environments_exist() -> None:
    assert STACKS == ["dev", "local", "prod", "staging"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_manifest_validates_strictly(plans: dict[str, Any], stack: str) -> None:
    plan = plans[stack]
    manifests = kubernetes_manifests(plan["resources"])
    assert manifests, f"{stack} declares no Kubernetes object"
    assert invalid_manifests(plan) == [], stack


@pytest.mark.parametrize("stack", STACKS)
def test_components_follow_the_conventions(plans: dict[str, Any], stack: str) -> None:
    resources = plans[stack]["resources"]
    urns = {r["urn"] for r in resources}
    for resource in resources:
        if resource["type"].startswith("slm:"):
            package, module, cls = resource["type"].split(":")
            assert module.islower() and cls[0].isupper(), resource["type"]
        if resource["type"] != "slm:platform:Platform":
            # Everything hangs under the one Platform component, never loose on the stack.
            assert resource["parent"] in urns, resource["urn"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_uses_the_cluster_provider(plans: dict[str, Any], stack: str):
    resources = plans[stack]["resources"]
    providers = resources_of(plans[stack], "pulumi:providers:kubernetes")
    assert len(providers) == 1
    for resource in resources:
        if resource["type"].startswith("kubernetes:"):
            assert resource["provider"] == providers[0]["urn"], resource["urn"]


def test_local_declares_no_azure_resource(plans: dict[str, Any]) -> None:
    types = {r["type"] for r in plans["local"]["resources"]}
    assert not [t for t in types if t.startswith("azure-native:")]
    provider = resources_of(plans["local"], "pulumi:providers:kubernetes")[0]
    assert provider["inputs"] == {"context": "kind-slm", "clusterIdentifier": "kind-slm"}


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_aks_provider_kubeconfig_is_secret_and_pinned_to_the_cluster(plans, stack: str) -> None:
    provider = resources_of(plans[stack], "pulumi:providers:kubernetes")[0]
    assert provider["inputs"]["kubeconfig"] == "[secret]"
    assert provider["inputs"]["clusterIdentifier"] == "slm-cluster-aks-id"


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_aks_cluster_is_entra_only_with_workload_identity(plans, stack: str) -> None:
    cluster = resources_of(plans[stack], "azure-native:containerservice:ManagedCluster")[0]
    inputs = cluster["inputs"]
    assert inputs["resourceName"] == f"aks-slm-{stack}"
    assert inputs["disableLocalAccounts"] is True
    assert inputs["aadProfile"] == {"enableAzureRBAC": True, "managed": True}
    assert inputs["oidcIssuerProfile"] == {"enabled": True}
    assert inputs["securityProfile"]["workloadIdentity"] == {"enabled": True}
    assert inputs["networkProfile"]["networkPolicy"] == "cilium"
    system = inputs["agentPoolProfiles"][0]
    assert system["mode"] == "System"
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"]


def test_prod_api_server_is_restricted_and_zonal(plans: dict[str, Any]) -> None:
    cluster = resources_of(plans["prod"], "azure-native:containerservice:ManagedCluster")[0]
    access = cluster["inputs"]["apiServerAccessProfile"]
    assert access["authorizedIPRanges"] == ["203.0.113.0/24"]
    assert cluster["inputs"]["agentPoolProfiles"][0]["availabilityZones"] == ["1", "2", "3"]
    assert cluster["inputs"]["sku"] == {"name": "Base", "tier": "Standard"}
    pool = resources_of(plans["prod"], "azure-native:containerservice:AgentPool")[0]
    assert pool["inputs"]["availabilityZones"] == ["1", "2", "3"]


def test_dev_gpu_pool_is_spot_and_scales_to_zero(plans: dict[str, Any]) -> None:
    pools = resources_of(plans["dev"], "azure-native:containerservice:AgentPool")
    assert len(pools) == 1
    inputs = pools[0]["inputs"]
    assert inputs["agentPoolName"] == "t4spot"
    assert inputs["vmSize"] == "Standard_NC4as_T4_v3"
    assert inputs["minCount"] == 0  # a deliberate 0 survives (no `or default`)
    assert inputs["count"] == 0
    assert inputs["maxCount"] == 2
    assert inputs["scaleSetPriority"] == "Spot"
    assert inputs["scaleSetEvictionPolicy"] == "Delete"
    assert inputs["spotMaxPrice"] == -1
    assert inputs["nodeTaints"] == [
        "nvidia.com/gpu=present:NoSchedule",
        "kubernetes.azure.com/scalesetpriority=spot:NoSchedule",
    ]


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_every_gpu_pool_is_tainted_autoscaled_and_separate(plans, stack: str) -> None:
    cluster = resources_of(plans[stack], "azure-native:containerservice:ManagedCluster")[0]
    assert [p["name"] for p in cluster["inputs"]["agentPoolProfiles"]] == ["system"]
    pools = resources_of(plans[stack], "azure-native:containerservice:AgentPool")
    assert pools
    for pool in pools:
        assert pool["inputs"]["nodeTaints"][0] == "nvidia.com/gpu=present:NoSchedule"
        assert pool["inputs"]["enableAutoScaling"] is True
        assert pool["inputs"]["mode"] == "User"
        assert pool["inputs"]["resourceName"] == f"aks-slm-{stack}"


@pytest.mark.parametrize("stack", STACKS)
def test_inference_namespace_enforces_restricted_pod_security(plans, stack: str) -> None:
    namespaces = {
        r["inputs"]["metadata"]["name"]: r["inputs"]["metadata"]["labels"]
        for r in resources_of(plans[stack], "kubernetes:core/v1:Namespace")
    }
    labels = namespaces["slm-inference"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The policy version follows the cluster's minor (1.36 unless the stack sets another).
    kubernetes = plans[stack]["outputs"]["kubernetesVersion"]
    assert labels["pod-security.kubernetes.io/enforce-version"] == f"v{kubernetes}"
    assert labels["slm-deploy/environment"] == plans[stack]["outputs"]["environment"]
    assert ("slm-system" in namespaces) == (stack != "local")
    assert ("slm-monitoring" in namespaces) == (stack != "local")


def test_outputs_show_each_models_fit_and_each_pools_cost(plans: dict[str, Any]) -> None:
    dev = plans["dev"]["outputs"]
    phi = dev["models"]["phi4-mini"]
    # The KV cache holds 4 sequences of the workload's 400 tokens (0.2 GiB at 128 KiB a
    # token), but never less than one of maxModelLen: 4,096 x 128 KiB = 0.5 GiB, beside
    # 7.1 GiB of weights and 1.4 GiB of runtime (test_sizing pins those).
    assert (phi["requiredGiB"], phi["usableGiB"], phi["headroomGiB"]) == (9.08, 12.75, 3.67)
    assert phi["maxNumSeqsAtContext"] == 84
    assert phi["tier"] == "small"
    assert "--tool-call-parser=phi4_mini_json" in phi["engineArgs"]
    assert dev["gpuPools"]["t4spot"]["monthlyCostUsd"]["max"] == 217.83
    staging_cost = plans["staging"]["outputs"]["gpuPools"]["a10"]["monthlyCostUsd"]
    assert staging_cost["min"] is None and staging_cost["hourlyUsd"] is None
    local = plans["local"]["outputs"]["models"]["qwen3-tiny"]
    assert local["cpuMemoryGiB"] > 0 and "requiredGiB" not in local


def test_each_model_server_waits_for_its_own_pool_only(config_root) -> None:
    """Adding a pool must not add an edge to every existing model's diff."""
    document = read_stack(config_root, "dev")
    pools = document["config"]["slm-deploy:gpuPools"]
    pools.append({**pools[0], "name": "second"})
    models = document["config"]["slm-deploy:models"]
    models.append({**models[0], "name": "second-model", "pool": "second"})
    write_stack(config_root, "dev", document)
    plan = build_plan("dev", config_root=config_root)
    # A dependency on a component is recorded as one on its children: the agent pools.
    pool_urns = {
        r["urn"]: r["name"]
        for r in plan["resources"]
        if r["type"] == "azure-native:containerservice:AgentPool"
    }
    waits = {
        r["name"]: sorted(pool_urns[urn] for urn in r["dependencies"] if urn in pool_urns)
        for r in plan["resources"]
        if r["type"] == "slm:vllm:VllmService"
    }
    first = models[0]["name"]
    assert waits == {
        f"slm-{first}": [f"slm-pool-{pools[0]['name']}"],
        "slm-second-model": ["slm-pool-second"],
    }
