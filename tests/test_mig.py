"""MIG pools: AKS's gpuInstanceProfile on the AgentPool and the device plugin's MIG strategy,
checked against the azure-native SDK, AKS's node provisioning (AgentBaker) and the device
plugin v0.20.0, vendored under tests/upstream/."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
from pulumi_azure_native import containerservice

from components import catalog, gpu_pool, sizing
from components.config import GpuPool
from tests.conftest import copy_config_root, read_stack, resources_of, write_stack
from tests.test_mode_matrix import plan_problems
from tools.plan import ROOT, PlanConfigError, build_plan

UPSTREAM = ROOT / "tests" / "upstream"
PLUGIN = UPSTREAM / "nvidia-device-plugin-v0.20.0-mig"
AKS_NODE = UPSTREAM / "aks-agentbaker-06836ee-mig"
CHART_VALUES = UPSTREAM / "nvidia-device-plugin-0.20.0" / "values.json"
AGENT_POOL = "azure-native:containerservice:AgentPool"
# Prod's fixture pool is one A100 80GB per node; MIG3g splits it into two slices.
MIG_STACK, MIG_POOL, MIG_PROFILE = "prod", "a100", "MIG3g"


def upstream(path: Path) -> Any:
    return json.loads(path.read_text())


def config_profiles() -> set[str]:
    """The gpuInstanceProfile values a stack file may give (GpuPool's Literal)."""
    hint = GpuPool.model_fields["gpu_instance_profile"].annotation
    (literal,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return set(typing.get_args(literal))


def strategy_constant(value: str) -> str:
    """The device plugin's constant for a strategy value ("single" -> MigStrategySingle)."""
    strategies = upstream(PLUGIN / "strategies.json")["strategies"]
    (name,) = [name for name, v in strategies.items() if v == value]
    return name


def with_mig_pool(root: Path) -> Path:
    document = read_stack(root, MIG_STACK)
    for pool in document["config"]["slm-deploy:gpuPools"]:
        if pool["name"] == MIG_POOL:
            pool["gpuInstanceProfile"] = MIG_PROFILE
    write_stack(root, MIG_STACK, document)
    return root


@pytest.fixture(scope="module")
def mig_plan(tmp_path_factory) -> dict[str, Any]:
    root = with_mig_pool(copy_config_root(tmp_path_factory.mktemp("mig")))
    return build_plan(MIG_STACK, config_root=root)


# -- AKS ---------------------------------------------------------------------------------------


def test_profiles_the_config_accepts_are_the_sdks_and_those_aks_partitions_by() -> None:
    sdk = {member.value for member in containerservice.GPUInstanceProfile}
    partitioned = set(upstream(AKS_NODE / "mig-partition.json"))
    assert config_profiles() == sdk == partitioned == {"MIG1g", "MIG2g", "MIG3g", "MIG4g", "MIG7g"}


def test_a_mig_pool_carries_its_profile_and_aks_installs_the_driver(mig_plan) -> None:
    (pool,) = [p["inputs"] for p in resources_of(mig_plan, AGENT_POOL)]
    assert pool["gpuInstanceProfile"] == MIG_PROFILE
    # AKS partitions a node's GPUs only inside the step that installs its own driver.
    conditions = upstream(AKS_NODE / "provisioning.json")
    assert any("skip_nvidia_driver_install" in condition for condition in conditions)
    assert pool["gpuProfile"] == {"driver": "Install"}


def test_pools_without_a_profile_declare_none(plans) -> None:
    for plan in plans.values():
        for pool in resources_of(plan, AGENT_POOL):
            assert "gpuInstanceProfile" not in pool["inputs"]


def test_a_mig_pool_plan_passes_every_contract(mig_plan) -> None:
    assert plan_problems(mig_plan) == []


# -- the device plugin -------------------------------------------------------------------------


def test_the_mig_strategy_is_one_the_plugin_accepts_set_by_a_chart_value_it_reads() -> None:
    values = gpu_pool.device_plugin_values(mig=True)
    assert values["migStrategy"] == gpu_pool.MIG_STRATEGY == "single"
    strategies = upstream(PLUGIN / "strategies.json")["strategies"]
    assert values["migStrategy"] in strategies.values()
    # The chart has the value, turns it into MIG_STRATEGY, and the plugin reads that.
    assert "migStrategy" in upstream(CHART_VALUES)
    assert upstream(PLUGIN / "chart-env.json")["MIG_STRATEGY"] == "migStrategy"
    assert "MIG_STRATEGY" in upstream(PLUGIN / "flag.json")["env"]


def test_under_the_strategy_slices_are_advertised_as_whole_gpus_are() -> None:
    resources = upstream(PLUGIN / "resources.json")
    slices = resources["MIG slices"][strategy_constant(gpu_pool.MIG_STRATEGY)]
    assert slices == resources["whole GPUs"] == "gpu"


def test_model_servers_on_a_mig_pool_request_the_resource_slices_are_advertised_as(
    mig_plan,
) -> None:
    prefix = upstream(PLUGIN / "strategies.json")["prefix"]
    slices = upstream(PLUGIN / "resources.json")["MIG slices"]
    advertised = f"{prefix}/{slices[strategy_constant(gpu_pool.MIG_STRATEGY)]}"
    requested = {
        key
        for deployment in resources_of(mig_plan, "kubernetes:apps/v1:Deployment")
        for container in deployment["inputs"]["spec"]["template"]["spec"]["containers"]
        for key in container.get("resources", {}).get("limits", {})
        if key.startswith(prefix + "/")
    }
    assert requested == {advertised}


def test_without_mig_the_plugin_keeps_its_default_none() -> None:
    # Unset, the plugin runs its flag default; any other strategy makes the chart add
    # SYS_ADMIN to the plugin's container, which a cluster without slices does not need.
    assert "migStrategy" not in gpu_pool.device_plugin_values()
    assert upstream(CHART_VALUES)["migStrategy"] is None
    default = upstream(PLUGIN / "flag.json")["default"]
    assert upstream(PLUGIN / "strategies.json")["strategies"][default] == "none"


def test_the_strategy_is_the_one_aks_gives_its_own_device_plugin_by_default() -> None:
    # AKS's managed device plugin on a MIG node: "mixed" only when asked for, else "single".
    managed = upstream(AKS_NODE / "managed-device-plugin.json")
    assert "Mixed" in managed["first when"]
    assert managed["flags"] == ["mixed", gpu_pool.MIG_STRATEGY]


P = "slm-deploy:"
DEVICE_PLUGIN = "kubernetes:helm.sh/v4:Chart"


def device_plugin_values(plan) -> dict:
    (chart,) = [
        r["inputs"]
        for r in resources_of(plan, DEVICE_PLUGIN)
        if r["inputs"]["chart"] == gpu_pool.DEVICE_PLUGIN_CHART.chart
    ]
    return chart["values"]


# A
def test_a_plan_with_a_mig_pool_gives_the_device_plugin_the_strategy(mig_plan) -> None:
    assert device_plugin_values(mig_plan)["migStrategy"] == gpu_pool.MIG_STRATEGY


# A (passes today; keep it with the one above)
def test_plans_without_mig_pools_leave_the_plugin_default(plans) -> None:
    for stack, plan in plans.items():
        for chart in resources_of(plan, DEVICE_PLUGIN):
            if chart["inputs"]["chart"] == gpu_pool.DEVICE_PLUGIN_CHART.chart:
                assert "migStrategy" not in chart["inputs"]["values"], stack


# A, existing cluster with gpuSoftware "install": our device plugin on their MIG nodes
def test_an_existing_cluster_installing_gpu_software_gets_the_strategy(tmp_path) -> None:
    root = copy_config_root(tmp_path)
    document = read_stack(root, "local")
    document["config"][f"{P}cluster"] |= {"gpuSoftware": "install"}
    document["config"][f"{P}gpuPools"] = [
        {
            "name": "a100",
            "vmSize": "Standard_NC24ads_A100_v4",
            "maxCount": 1,
            "gpuInstanceProfile": MIG_PROFILE,
        }
    ]
    write_stack(root, "local", document)
    plan = build_plan("local", config_root=root)
    assert device_plugin_values(plan)["migStrategy"] == gpu_pool.MIG_STRATEGY


# B: AKS partitions only where it installs its driver (tests/upstream/aks-agentbaker-06836ee-mig
# provisioning.json), and the GPU Operator's MIG manager labels an unlabelled MIG-capable node
# nvidia.com/mig.config=all-disabled (gpu-operator v26.7.0 controllers/nodelabeling_controller.go
# 306-315, values.yaml migManager.config.default).
def test_mig_with_the_gpu_operator_is_refused_with_one_line(tmp_path) -> None:
    root = with_mig_pool(copy_config_root(tmp_path))
    document = read_stack(root, MIG_STACK)
    document["config"][f"{P}cluster"]["gpuDriver"] = "gpu-operator"
    write_stack(root, MIG_STACK, document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan(MIG_STACK, config_root=root)
    message = str(raised.value)
    assert "\n" not in message
    assert "gpuInstanceProfile" in message and "gpuDriver" in message


# C
@pytest.mark.parametrize(
    "vm_size", ["Standard_NC4as_T4_v3", "Standard_NC8as_T4_v3", "Standard_NV36ads_A10_v5"]
)
def test_a_profile_on_a_gpu_without_mig_is_refused(tmp_path, vm_size: str) -> None:
    root = with_mig_pool(copy_config_root(tmp_path))
    document = read_stack(root, MIG_STACK)
    for pool in document["config"][f"{P}gpuPools"]:
        if pool["name"] == MIG_POOL:
            pool["vmSize"] = vm_size
    write_stack(root, MIG_STACK, document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan(MIG_STACK, config_root=root)
    message = str(raised.value)
    assert "\n" not in message
    assert "gpuInstanceProfile" in message and vm_size in message


# D: MIG3g makes two slices of the one A100 per Standard_NC24ads_A100_v4 node (AgentBaker's
# mig-partition.sh: -cgi 9,9). sizing.replica_resources' rule (a replica requests half of its
# GPUs' share of the node) must give each slice's replica half of half the node, or the
# second replica does not fit beside the first (allocatable is under the VM's size) and one
# slice stays idle.
def test_replicas_on_a_mig_pool_share_the_node(mig_plan) -> None:
    sku = catalog.GPU_SKUS["Standard_NC24ads_A100_v4"]
    slices_per_node = 2
    for deployment in resources_of(mig_plan, "kubernetes:apps/v1:Deployment"):
        (server,) = [
            c
            for c in deployment["inputs"]["spec"]["template"]["spec"]["containers"]
            if "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
        ] or [None]
        if server is None:
            continue
        requests = server["resources"]["requests"]
        share = sizing.NODE_SHARE_REQUESTED / slices_per_node
        assert int(requests["cpu"]) == int(sku.vcpus * share)
        assert int(requests["memory"].removesuffix("Gi")) == int(sku.ram_gib * share)


def _fixture_prod_on(tmp_path, pool_changes: dict, model_changes: dict | None = None):
    root = copy_config_root(tmp_path)
    document = read_stack(root, "prod")
    document["config"][f"{P}gpuPools"][0].update(pool_changes)
    document["config"][f"{P}models"][1].update(model_changes or {})
    write_stack(root, "prod", document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan("prod", config_root=root)
    return str(raised.value)


def test_a_model_too_big_for_its_slice_names_the_smallest_slice_that_fits(tmp_path) -> None:
    # A 1g.10gb slice is 10 GiB (8.5 usable at 0.85): Phi-4-mini's 7.1 GiB of weights and
    # 1.4 GiB of runtime leave nothing for the KV cache; a 2g.20gb slice holds it.
    message = _fixture_prod_on(tmp_path, {"gpuInstanceProfile": "MIG1g"})
    assert message == (
        "slm-deploy:models[0]: phi4-mini (microsoft/Phi-4-mini-instruct) on pool a100 "
        "(Standard_NC24ads_A100_v4, 7x A100 80GB MIG 1g.10gb): needs 10.6 GiB per GPU "
        "(weights 7.1, KV cache 2.0 for one sequence of maxModelLen 16384 tokens, runtime 1.4), "
        "8.5 GiB usable at gpu_memory_utilization 0.85; fits with gpuInstanceProfile MIG2g, "
        "or vmSize Standard_NC4as_T4_v3"
    )


def test_tensor_parallelism_across_slices_is_refused(tmp_path) -> None:
    message = _fixture_prod_on(tmp_path, {"gpuInstanceProfile": "MIG3g"}, {"tensorParallelSize": 2})
    assert message == (
        "slm-deploy:models[1].tensorParallelSize: 2 is not allowed; expected 1 on pool a100: "
        "a replica runs in one MIG slice (MIG3g)"
    )


def test_a_mig_pool_counts_slices_not_gpus(tmp_path) -> None:
    # Fixture prod: phi4-mini up to 4 replicas and qwen3-8b up to 2, one per 3g.40gb slice;
    # two slices per single-A100 node make 3 nodes.
    message = _fixture_prod_on(
        tmp_path, {"gpuInstanceProfile": "MIG3g", "minCount": 2, "maxCount": 2}
    )
    assert message == (
        "slm-deploy:gpuPools[0].maxCount: 2 is not allowed; expected at least 3: its models "
        "may scale to 4 x phi4-mini, 2 x qwen3-8b (6 MIG3g slices, 2 per "
        "Standard_NC24ads_A100_v4 node)"
    )


def test_a_mig_pool_shows_its_gpus_and_slices(mig_plan) -> None:
    pools = mig_plan["outputs"]["gpuPools"]
    assert pools[MIG_POOL]["gpu"] == "1x A100 80GB in 2 MIG slices (3g.40gb)"
