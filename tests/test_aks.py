"""AKS and GPU pools as each stack declares them: security- and GPU-relevant properties."""

from __future__ import annotations

from typing import Any

import pytest

from components.gpu_pool import gpu_tolerations
from tests.conftest import resources_of

AKS_STACKS = ["dev", "staging", "prod"]


def _cluster(plans: dict[str, Any], stack: str) -> dict[str, Any]:
    return resources_of(plans[stack], "azure-native:containerservice:ManagedCluster")[0]["inputs"]


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_control_plane_runs_as_a_user_assigned_identity(plans, stack: str) -> None:
    identity = resources_of(plans[stack], "azure-native:managedidentity:UserAssignedIdentity")
    # The control plane's, then one per workload that reads Key Vault (tests/test_secrets).
    assert sorted(i["inputs"]["resourceName"] for i in identity) == [
        f"id-slm-{stack}-aks",
        f"id-slm-{stack}-grafana",
        f"id-slm-{stack}-model-server",
    ]
    cluster = _cluster(plans, stack)
    assert cluster["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": ["slm-cluster-identity-id"],
    }


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_upgrades_are_automatic_inside_a_weekly_window(plans, stack: str) -> None:
    cluster = _cluster(plans, stack)
    assert cluster["autoUpgradeProfile"] == {
        "upgradeChannel": "patch",
        "nodeOSUpgradeChannel": "NodeImage",
    }
    windows = resources_of(plans[stack], "azure-native:containerservice:MaintenanceConfiguration")
    assert sorted(w["inputs"]["configName"] for w in windows) == [
        "aksManagedAutoUpgradeSchedule",
        "aksManagedNodeOSUpgradeSchedule",
    ]
    for window in windows:
        assert window["inputs"]["maintenanceWindow"] == {
            "schedule": {"weekly": {"dayOfWeek": "Sunday", "intervalWeeks": 1}},
            "durationHours": 4,
            "startTime": "02:00",
            "utcOffset": "+00:00",
        }


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_add_ons_keda_key_vault_csi_and_image_cleaner(plans, stack: str) -> None:
    cluster = _cluster(plans, stack)
    assert cluster["workloadAutoScalerProfile"] == {"keda": {"enabled": True}}
    assert cluster["addonProfiles"]["azureKeyvaultSecretsProvider"] == {
        "enabled": True,
        "config": {"enableSecretRotation": "true", "rotationPollInterval": "2m"},
    }
    assert cluster["securityProfile"]["imageCleaner"] == {"enabled": True, "intervalHours": 168}
    assert "azureMonitorProfile" not in cluster  # in-cluster monitoring on every stack today


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_autoscaler_suits_gpu_nodes(plans, stack: str) -> None:
    assert _cluster(plans, stack)["autoScalerProfile"] == {
        "expander": "least-waste",
        "skipNodesWithLocalStorage": "false",
        "maxGracefulTerminationSec": "900",
    }


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_registry_and_role_assignments(plans, stack: str) -> None:
    registry = resources_of(plans[stack], "azure-native:containerregistry:Registry")[0]["inputs"]
    assert registry["registryName"] == f"acrslm{stack}mock00"
    assert registry["adminUserEnabled"] is False
    assert registry["anonymousPullEnabled"] is False
    roles = {
        r["name"]: r["inputs"]
        for r in resources_of(plans[stack], "azure-native:authorization:RoleAssignment")
    }
    pull = roles["slm-cluster-acr-pull"]
    assert pull["roleDefinitionId"].endswith(
        "/roleDefinitions/7f951dda-4ed3-4680-a7ca-43fe172d538d"
    )
    assert pull["principalId"] == "00000000-0000-0000-0000-000000000001"  # the kubelet identity
    assert pull["scope"] == "slm-cluster-acr-id"
    admin = roles["slm-cluster-deployer-admin"]
    assert admin["roleDefinitionId"].endswith(
        "/roleDefinitions/b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
    )
    assert admin["scope"] == "slm-cluster-aks-id"
    assert admin["principalType"] == "User"


def test_prod_is_restricted_zonal_and_on_the_paid_tier(plans) -> None:
    cluster = _cluster(plans, "prod")
    assert cluster["disableLocalAccounts"] is True
    assert cluster["apiServerAccessProfile"] == {
        "enablePrivateCluster": False,
        "authorizedIPRanges": ["203.0.113.0/24"],
    }
    assert cluster["agentPoolProfiles"][0]["availabilityZones"] == ["1", "2", "3"]
    assert cluster["agentPoolProfiles"][0]["enableAutoScaling"] is True
    assert cluster["sku"]["tier"] == "Standard"


def test_dev_api_server_is_public_but_entra_only(plans) -> None:
    cluster = _cluster(plans, "dev")
    assert cluster["apiServerAccessProfile"] == {"enablePrivateCluster": False}
    assert cluster["disableLocalAccounts"] is True
    assert cluster["sku"]["tier"] == "Free"


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_gpu_pools_install_the_driver_and_label_their_nodes(plans, stack: str) -> None:
    for pool in resources_of(plans[stack], "azure-native:containerservice:AgentPool"):
        inputs = pool["inputs"]
        assert inputs["gpuProfile"] == {"driver": "Install"}
        assert inputs["nodeLabels"] == {
            "slm-deploy/pool": inputs["agentPoolName"],
            "slm-deploy/gpu": "nvidia",
        }
        assert inputs["osType"] == "Linux" and inputs["mode"] == "User"


def test_outputs_name_the_cluster_and_keep_the_kubeconfig_secret(plans) -> None:
    outputs = plans["dev"]["outputs"]
    assert outputs["clusterName"] == "aks-slm-dev"
    assert outputs["resourceGroup"] == "rg-slm-dev"
    assert outputs["oidcIssuerUrl"] == "https://offline-plan.oic.azure/aks-slm-dev/"
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs["gpuPools"]["t4spot"]["vmSize"] == "Standard_NC4as_T4_v3"
    assert (
        outputs["gpuPools"]["t4spot"]["minCount"],
        outputs["gpuPools"]["t4spot"]["maxCount"],
    ) == (0, 2)
    local = plans["local"]["outputs"]
    assert local["kubeconfig"] is None and local["clusterName"] is None


def test_gpu_workloads_tolerate_the_gpu_taint_and_spot_only_on_spot() -> None:
    assert gpu_tolerations(spot=False) == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert gpu_tolerations(spot=True)[1] == {
        "key": "kubernetes.azure.com/scalesetpriority",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    }


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_device_plugin_and_dcgm_exporter_charts_are_pinned_and_reach_every_gpu_node(plans, stack):
    charts = {
        c["inputs"]["chart"]: c["inputs"]
        for c in resources_of(plans[stack], "kubernetes:helm.sh/v4:Chart")
    }
    assert {name: c["version"] for name, c in charts.items()} == {
        "nvidia-device-plugin": "0.20.0",
        "dcgm-exporter": "4.8.3",
    }
    for chart in charts.values():
        assert chart["namespace"] == "slm-system"
        values = chart["values"]
        terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"] == [
            {
                "matchExpressions": [
                    {"key": "slm-deploy/gpu", "operator": "In", "values": ["nvidia"]}
                ]
            }
        ]
        assert {t["key"] for t in values["tolerations"]} == {
            "nvidia.com/gpu",
            "kubernetes.azure.com/scalesetpriority",
        }
    # Scraped by the in-cluster Prometheus (every AKS stack here monitors in-cluster), with
    # a timeout within the interval (components/gpu_pool.py says why these two values).
    assert charts["dcgm-exporter"]["values"]["serviceMonitor"] == {
        "enabled": True,
        "apiVersion": "monitoring.coreos.com/v1",
        "interval": "30s",
        "scrapeTimeout": "25s",
    }


def test_local_stack_installs_no_gpu_software(plans) -> None:
    assert resources_of(plans["local"], "kubernetes:helm.sh/v4:Chart") == []


def test_gpu_operator_path_turns_the_aks_driver_off(config_root) -> None:
    from tests.conftest import read_stack, write_stack
    from tools.plan import build_plan

    document = read_stack(config_root, "staging")
    document["config"]["slm-deploy:cluster"]["gpuDriver"] = "gpu-operator"
    write_stack(config_root, "staging", document)
    plan = build_plan("staging", config_root=config_root)
    pool = resources_of(plan, "azure-native:containerservice:AgentPool")[0]["inputs"]
    assert pool["gpuProfile"] == {"driver": "None"}
    charts = resources_of(plan, "kubernetes:helm.sh/v4:Chart")
    assert [(c["inputs"]["chart"], c["inputs"]["version"]) for c in charts] == [
        ("gpu-operator", "v26.7.0")
    ]
    values = charts[0]["inputs"]["values"]
    assert values["driver"] == {"enabled": True}
    assert values["daemonsets"]["tolerations"][0]["key"] == "nvidia.com/gpu"


@pytest.mark.parametrize(
    ("stack", "disk"),
    [("dev", (176, "Ephemeral")), ("staging", (256, "Ephemeral")), ("prod", (256, "Managed"))],
)
def test_os_disk_is_ephemeral_where_the_temp_disk_holds_it(plans, stack, disk) -> None:
    pool = resources_of(plans[stack], "azure-native:containerservice:AgentPool")[0]["inputs"]
    assert (pool["osDiskSizeGB"], pool["osDiskType"]) == disk


def test_azure_managed_monitoring_turns_on_managed_prometheus(config_root) -> None:
    from tests.conftest import read_stack, write_stack
    from tools.plan import build_plan

    document = read_stack(config_root, "prod")
    document["config"]["slm-deploy:monitoring"] = {"mode": "azure-managed"}
    write_stack(config_root, "prod", document)
    plan = build_plan("prod", config_root=config_root)
    cluster = resources_of(plan, "azure-native:containerservice:ManagedCluster")[0]["inputs"]
    assert cluster["azureMonitorProfile"] == {"metrics": {"enabled": True}}
    namespaces = [
        r["inputs"]["metadata"]["name"] for r in resources_of(plan, "kubernetes:core/v1:Namespace")
    ]
    assert "slm-monitoring" not in namespaces
