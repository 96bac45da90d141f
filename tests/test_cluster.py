"""The AKS kubeconfig: exec-based sign-in, built from the server and CA alone."""

from __future__ import annotations

import base64

import yaml

from components.cluster import AKS_AAD_SERVER_APP_ID, kubelogin_kubeconfig
from tests.conftest import read_stack, write_stack
from tools.plan import build_plan

USER_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {
            "name": "aks-slm-dev",
            "cluster": {
                "server": "https://slm-dev-abc.hcp.swedencentral.azmk8s.io:443",
                "certificate-authority-data": "Q0EtREFUQQ==",
            },
        }
    ],
    "users": [{"name": "clusterUser", "user": {"token": "short-lived-token"}}],
}


def _encoded(config: dict) -> str:
    return base64.b64encode(yaml.safe_dump(config).encode()).decode()


def test_kubeconfig_signs_in_with_kubelogin_and_keeps_no_credential() -> None:
    text = kubelogin_kubeconfig("aks-slm-dev", _encoded(USER_KUBECONFIG))
    config = yaml.safe_load(text)
    assert config["clusters"] == [
        {
            "name": "aks-slm-dev",
            "cluster": {
                "server": "https://slm-dev-abc.hcp.swedencentral.azmk8s.io:443",
                "certificate-authority-data": "Q0EtREFUQQ==",
            },
        }
    ]
    exec_ = config["users"][0]["user"]["exec"]
    assert exec_["command"] == "kubelogin"
    assert exec_["args"] == [
        "get-token",
        "--login",
        "azurecli",
        "--server-id",
        AKS_AAD_SERVER_APP_ID,
    ]
    assert "short-lived-token" not in text
    assert config["current-context"] == "aks-slm-dev"


def test_kubeconfig_ignores_everything_but_server_and_ca() -> None:
    rotated = yaml.safe_load(yaml.safe_dump(USER_KUBECONFIG))
    rotated["users"][0]["user"]["token"] = "another-token"
    rotated["contexts"] = [{"name": "x", "context": {"cluster": "aks-slm-dev", "user": "u"}}]
    assert kubelogin_kubeconfig("aks-slm-dev", _encoded(rotated)) == kubelogin_kubeconfig(
        "aks-slm-dev", _encoded(USER_KUBECONFIG)
    )


# -- the container logs' workspace (components/container_logs.py), in the fixture plans ------

WORKSPACE = "azure-native:operationalinsights:Workspace"


def _resource(plan: dict, type_: str, name: str) -> dict:
    (found,) = [r for r in plan["resources"] if r["type"] == type_ and r["name"] == name]
    return found


def test_an_aks_stack_has_a_container_log_workspace_beside_the_audit_one(plans) -> None:
    workspaces = {
        r["name"]: r["inputs"] for r in plans["prod"]["resources"] if r["type"] == WORKSPACE
    }
    assert workspaces.pop("slm-cluster-logs-workspace") == {
        "location": "eastus",
        "resourceGroupName": "rg-slm-prod",
        # monitoring.logs.retentionDays (the fixture keeps its default)
        "retentionInDays": 30,
        "sku": {"name": "PerGB2018"},
        "workspaceName": "log-slm-containers-prod",
    }
    # The Key Vault audit's (components/secrets.py) stays a workspace of its own.
    assert list(workspaces) == ["slm-secrets-logs"]
    assert workspaces["slm-secrets-logs"]["workspaceName"] != "log-slm-containers-prod"


def test_the_workspace_keeps_logs_for_the_logs_retention_not_the_metrics_one(plans) -> None:
    # dev keeps metrics 7 days (monitoring.retentionDays) and logs the default 30.
    workspace = _resource(plans["dev"], WORKSPACE, "slm-cluster-logs-workspace")
    assert workspace["inputs"]["retentionInDays"] == 30
    assert workspace["inputs"]["workspaceName"] == "log-slm-containers-dev"


def test_the_cluster_is_declared_after_its_log_workspace_and_names_it(plans) -> None:
    resources = plans["prod"]["resources"]
    order = [r["name"] for r in resources]
    workspace = _resource(plans["prod"], WORKSPACE, "slm-cluster-logs-workspace")
    group = _resource(plans["prod"], "azure-native:resources:ResourceGroup", "slm-cluster-rg")
    cluster = _resource(
        plans["prod"], "azure-native:containerservice:ManagedCluster", "slm-cluster-aks"
    )
    assert group["urn"] in workspace["dependencies"]
    assert workspace["urn"] in cluster["dependencies"]
    assert order.index("slm-cluster-rg") < order.index("slm-cluster-logs-workspace")
    assert order.index("slm-cluster-logs-workspace") < order.index("slm-cluster-aks")
    assert cluster["inputs"]["addonProfiles"]["omsagent"] == {
        "enabled": True,
        "config": {
            "logAnalyticsWorkspaceResourceID": "slm-cluster-logs-workspace-id",
            "useAADAuth": "true",
        },
    }


def test_an_existing_cluster_declares_no_workspace_for_container_logs(plans) -> None:
    assert [r for r in plans["local"]["resources"] if r["type"] == WORKSPACE] == []


def test_the_workspace_keeps_the_stacks_monitoring_logs_retention(config_root) -> None:
    document = read_stack(config_root, "dev")
    document["config"]["slm-deploy:monitoring"]["logs"] = {"retentionDays": 60}
    write_stack(config_root, "dev", document)
    plan = build_plan("dev", config_root=config_root)
    workspace = _resource(plan, WORKSPACE, "slm-cluster-logs-workspace")
    assert workspace["inputs"]["retentionInDays"] == 60
