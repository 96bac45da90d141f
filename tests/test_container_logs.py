"""Container logs on AKS (components/container_logs.py), as the offline plan of the AKS
fixture stacks declares them, against Container Insights' own onboarding template for AKS
with managed-identity auth, vendored in
tests/upstream/docker-provider-b780558-container-insights."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pulumi_azure_native import monitor

from components import container_logs
from tests.conftest import read_stack, write_stack
from tests.test_azure_contracts import WIDER_ENUMS, Tally, resource_problems
from tools.mock_engine import run_program
from tools.plan import build_plan

UPSTREAM = Path(__file__).parent / "upstream" / "docker-provider-b780558-container-insights"
ONBOARDING = json.loads((UPSTREAM / "onboarding.json").read_text())
PARAMETERS = json.loads((UPSTREAM / "parameters.json").read_text())

AKS_STACKS = ("dev", "staging", "prod")
RULE = "azure-native:monitor:DataCollectionRule"
ASSOCIATION = "azure-native:monitor:DataCollectionRuleAssociation"
WORKSPACE = "azure-native:operationalinsights:Workspace"
CLUSTER = "azure-native:containerservice:ManagedCluster"


def _one(plan: dict[str, Any], type_: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [r for r in plan["resources"] if r["type"] == type_ and name in (None, r["name"])]
    return found


# The container logs' resources (managed Prometheus has a rule and an association too, and
# the Key Vault audit a workspace).
NAMES = {
    WORKSPACE: "slm-cluster-logs-workspace",
    RULE: "slm-cluster-container-logs-dcr",
    ASSOCIATION: "slm-cluster-container-logs-dcra",
}


def _log_resources(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if NAMES.get(r["type"]) == r["name"]]


def _extension(plan: dict[str, Any]) -> dict[str, Any]:
    (extension,) = _one(plan, RULE, NAMES[RULE])["inputs"]["dataSources"]["extensions"]
    return extension


def test_the_rule_declares_the_upstream_container_insights_extension(plans) -> None:
    extension = _extension(plans["prod"])
    assert extension["name"] == ONBOARDING["extension"]["name"] == "ContainerInsightsExtension"
    assert extension["extensionName"] == ONBOARDING["extension"]["extensionName"]
    settings = extension["extensionSettings"]["dataCollectionSettings"]
    assert sorted(settings) == ONBOARDING["extension"]["dataCollectionSettings"]
    assert (
        _one(plans["prod"], RULE, NAMES[RULE])["inputs"]["kind"]
        == ONBOARDING["dataCollectionRuleKind"]
    )


def test_the_rule_collects_only_the_template_namespaces_in_container_log_v2(plans) -> None:
    settings = _extension(plans["prod"])["extensionSettings"]["dataCollectionSettings"]
    assert settings["namespaceFilteringMode"] == "Include"
    assert settings["namespaceFilteringMode"] in ONBOARDING["namespaceFilteringModes"]
    assert settings["namespaces"] == ["slm-edge", "slm-inference", "slm-monitoring", "slm-system"]
    assert settings["enableContainerLogV2"] is True
    assert settings["interval"] == PARAMETERS["dataCollectionInterval"]


def test_the_rule_sends_upstream_streams_to_the_container_log_workspace(plans) -> None:
    plan = plans["prod"]
    rule = _one(plan, RULE, NAMES[RULE])
    streams = _extension(plan)["streams"]
    assert streams == [
        "Microsoft-ContainerLogV2",
        "Microsoft-KubeEvents",
        "Microsoft-KubePodInventory",
    ]
    assert set(streams) <= set(PARAMETERS["streams"])
    (destination,) = rule["inputs"]["destinations"]["logAnalytics"]
    # The mock engine's id of the container-log workspace, not the Key Vault audit's.
    assert destination["workspaceResourceId"] == "slm-cluster-logs-workspace-id"
    assert rule["inputs"]["dataFlows"] == [
        {"streams": streams, "destinations": [destination["name"]]}
    ]
    assert rule["inputs"]["dataCollectionRuleName"] == "MSCI-eastus-aks-slm-prod"
    assert rule["inputs"]["resourceGroupName"] == "rg-slm-prod"


def test_the_association_ties_the_rule_to_the_cluster(plans) -> None:
    plan = plans["prod"]
    association = _one(plan, ASSOCIATION, NAMES[ASSOCIATION])
    assert association["inputs"]["associationName"] == ONBOARDING["associationName"]
    assert association["inputs"]["resourceUri"] == "slm-cluster-aks-id"
    assert association["inputs"]["dataCollectionRuleId"] == "slm-cluster-container-logs-dcr-id"
    assert _one(plan, RULE, NAMES[RULE])["urn"] in association["dependencies"]
    assert _one(plan, CLUSTER)["urn"] in association["dependencies"]


def test_the_cluster_turns_the_add_on_on_as_upstream_does(plans) -> None:
    addons = _one(plans["prod"], CLUSTER)["inputs"]["addonProfiles"]
    upstream = ONBOARDING["addonProfiles"]["omsagent"]
    assert addons["omsagent"]["enabled"] is upstream["enabled"] is True
    assert sorted(addons["omsagent"]["config"]) == sorted(upstream["config"])
    assert addons["omsagent"]["config"] == {
        "logAnalyticsWorkspaceResourceID": "slm-cluster-logs-workspace-id",
        "useAADAuth": upstream["config"]["useAADAuth"],
    }


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_every_aks_fixture_stack_declares_its_container_logs(plans, stack: str) -> None:
    resources = _log_resources(plans[stack])
    assert sorted(r["type"] for r in resources) == sorted([WORKSPACE, RULE, ASSOCIATION])
    addons = _one(plans[stack], CLUSTER)["inputs"]["addonProfiles"]
    assert addons["omsagent"]["config"]["logAnalyticsWorkspaceResourceID"] == (
        "slm-cluster-logs-workspace-id"
    )


def test_an_existing_cluster_gets_no_azure_log_resources(plans) -> None:
    assert _log_resources(plans["local"]) == []


def _mode(mode: str):
    def edit(config: dict[str, Any]) -> None:
        config["slm-deploy:monitoring"] = {"mode": mode}
        for model in config["slm-deploy:models"]:
            # No autoscaling without metrics (mode none); managed Prometheus scales up to 2.
            model["replicas"] = {"min": 1, "max": 1 if mode == "none" else 2}

    return edit


@pytest.mark.parametrize("mode", ["azure-managed", "none"])
def test_aks_stacks_of_the_other_monitoring_modes_get_container_logs(config_root, mode) -> None:
    document = read_stack(config_root, "staging")
    _mode(mode)(document["config"])
    write_stack(config_root, "staging", document)
    plan = build_plan("staging", config_root=config_root)
    assert len(_log_resources(plan)) == 3
    assert _one(plan, WORKSPACE, NAMES[WORKSPACE])["inputs"] == {
        "location": "eastus",
        "resourceGroupName": "rg-slm-staging",
        "retentionInDays": 30,
        "sku": {"name": "PerGB2018"},
        "workspaceName": "log-slm-containers-staging",
    }


def test_the_declared_inputs_are_the_sdk_own(plans) -> None:
    tally = Tally()
    resources = [*_log_resources(plans["prod"]), _one(plans["prod"], CLUSTER)]
    assert resource_problems(resources, tally) == []
    assert tally.resources == 4


def test_the_sdk_alone_does_not_know_the_container_insights_streams(plans, monkeypatch) -> None:
    """Why the contract widens two stream enums with the upstream template's streams."""
    monkeypatch.setitem(
        WIDER_ENUMS,
        monitor.KnownDataFlowStreams,
        (monitor.KnownPrometheusForwarderDataSourceStreams,),
    )
    monkeypatch.delitem(WIDER_ENUMS, monitor.KnownExtensionDataSourceStreams)
    problems = resource_problems(_log_resources(plans["prod"]), Tally())
    assert len(problems) == 2 * len(container_logs.STREAMS)
    assert all("Microsoft-" in problem for problem in problems)


# The Cluster component under the mock engine with a retention of its own: what platform.py
# hands it from monitoring.logs is what the workspace keeps.
PROGRAM = textwrap.dedent(
    """
    from components.cluster import Cluster, ClusterArgs
    from components.config import AksCluster, Logs

    settings = AksCluster.model_validate(
        {"mode": "aks", "location": "westeurope", "authorizedIpRanges": ["203.0.113.0/24"]}
    )
    Cluster("c", ClusterArgs("prod", settings, "none", logs=Logs(retentionDays=90)))
    """
)


def test_the_workspace_keeps_logs_for_the_given_retention(tmp_path) -> None:
    program = tmp_path / "__main__.py"
    program.write_text(PROGRAM)
    recording = run_program(program, "slm-deploy", "prod", {}, [])
    (workspace,) = [r for r in recording.resources if r.type == WORKSPACE]
    assert workspace.inputs["retentionInDays"] == 90
    assert workspace.inputs["workspaceName"] == "log-slm-containers-prod"


def test_no_namespace_to_collect_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one namespace"):
        container_logs.collection_settings(())


def test_the_workspace_name_is_cut_to_its_rule() -> None:
    stack = "team-a1-inference-" + "-".join(["westeurope"] * 6)
    name = container_logs.workspace_name(stack)
    assert len(name) == 63
    assert name == ("log-slm-containers-" + stack)[:63]


# -- the summary ----------------------------------------------------------------------------


def test_an_aks_stack_with_in_cluster_monitoring_logs_to_both_stores() -> None:
    summary = container_logs.logs_summary("prod", True, "in-cluster", 30)
    assert summary == {
        "destinations": [
            {
                "store": "Log Analytics workspace log-slm-containers-prod",
                "through": "AKS monitoring add-on (Container Insights), table ContainerLogV2",
                "retentionDays": 30,
                "usdPerGbIngested": None,
                "price": "no price recorded",
            },
            {
                "store": "Loki in the cluster (Grafana, data source Loki)",
                "through": "Grafana Alloy",
                "retentionDays": 30,
            },
        ],
        "note": None,
    }


def test_a_managed_aks_stack_logs_to_its_workspace_only() -> None:
    summary = container_logs.logs_summary("staging", True, "azure-managed", 60)
    assert [d["store"] for d in summary["destinations"]] == [
        "Log Analytics workspace log-slm-containers-staging"
    ]
    assert summary["destinations"][0]["retentionDays"] == 60


def test_an_existing_cluster_without_monitoring_says_it_has_no_logs() -> None:
    assert container_logs.logs_summary("local", False, "none", 30) == {
        "destinations": [],
        "note": "no container logs: an existing cluster without in-cluster monitoring "
        "(monitoring.mode none)",
    }


# -- the runbook's log queries ------------------------------------------------------------

LOG_TABLE = json.loads((UPSTREAM / "containerlogv2-columns.json").read_text())["ContainerLogV2"]
EVENT_TABLE = json.loads((UPSTREAM / "kubeevents-columns.json").read_text())["KubeEvents"]


def _columns(query: str) -> set[str]:
    """The columns a query names: its project list, the left side of each comparison and
    what tostring() reads."""
    named = set()
    for step in query.split(" | "):
        if step.startswith("project "):
            named |= {c.strip() for c in step.removeprefix("project ").split(",")}
        named |= set(re.findall(r"(\w+)\)? (?:==|in|matches regex|>) ", step))
    return named


def test_the_column_reader_sees_every_kind_of_column_use() -> None:
    query = 'T | where A == "x" and B > ago(1h) | where tostring(C) matches regex @"y" | project D'
    assert _columns(query) == {"A", "B", "C", "D"}


def test_the_log_queries_name_only_the_agent_columns() -> None:
    # TimeGenerated is every Log Analytics table's own column, not the agent's.
    logs = {"TimeGenerated", *LOG_TABLE}
    for query in (
        container_logs.model_log_query("phi4-mini", "slm-inference"),
        container_logs.model_log_query("phi4-mini", "slm-inference", "(?i)error"),
        container_logs.node_log_query("aks-gpu-1-vmss000000", "slm-system"),
        container_logs.namespace_log_query("slm-edge"),
    ):
        assert _columns(query) <= logs, query
    events = {"TimeGenerated", *EVENT_TABLE}
    assert _columns(container_logs.pod_events_query("phi4-mini-abc", "slm-inference")) <= events


def test_a_model_query_reads_its_namespace_and_pods() -> None:
    assert container_logs.model_log_query("phi4-mini", "slm-inference") == " | ".join(
        [
            "ContainerLogV2",
            "where TimeGenerated > ago(1h)",
            'where PodNamespace == "slm-inference"',
            r'where PodName matches regex @"^phi4\-mini-(warm-[0-9a-f]+|[a-z0-9]+)-[a-z0-9]{5}$"',
            "project TimeGenerated, Computer, PodName, ContainerName, LogSource, LogMessage",
            "order by TimeGenerated desc",
        ]
    )


@pytest.mark.parametrize(
    ("pod", "matches"),
    [
        ("qwen3-7f9c6d8b4-abcde", True),  # the Deployment's pod
        ("qwen3-warm-0a1b2c3d4e-x7k2p", True),  # the cache warmer Job's pod
        ("qwen3-8b-7f9c6d8b4-abcde", False),  # another model's pod
        ("qwen3-8b-warm-0a1b2c3d4e-x7k2p", False),
    ],
)
def test_a_model_pod_pattern_names_its_pods_only(pod: str, matches: bool) -> None:
    assert bool(re.search(container_logs.model_pods("qwen3"), pod)) is matches
