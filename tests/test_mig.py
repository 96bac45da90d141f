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

from components import gpu_pool
from components.config import GpuPool
from tests.conftest import copy_config_root, read_stack, resources_of, write_stack
from tests.test_mode_matrix import plan_problems
from tools.plan import ROOT, build_plan

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
