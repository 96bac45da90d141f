"""Container logs on AKS (components/container_logs.py) against Container Insights' own
onboarding template for AKS with managed-identity auth, vendored in
tests/upstream/docker-provider-b780558-container-insights."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pulumi_azure_native import monitor

from components import container_logs
from components.cluster import managed_cluster_args
from components.config import AksCluster
from tests.test_azure_contracts import WIDER_ENUMS, Tally, resource_problems
from tools.mock_engine import run_program

UPSTREAM = Path(__file__).parent / "upstream" / "docker-provider-b780558-container-insights"
ONBOARDING = json.loads((UPSTREAM / "onboarding.json").read_text())
PARAMETERS = json.loads((UPSTREAM / "parameters.json").read_text())

WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-slm-prod"
    "/providers/Microsoft.OperationalInsights/workspaces/log-slm-prod"
)
CLUSTER_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-slm-prod"
    "/providers/Microsoft.ContainerService/managedClusters/aks-slm-prod"
)
NAMESPACES = ("slm-monitoring", "slm-inference")

# A program that declares the rule and a cluster with the add-on, under the mock engine.
PROGRAM = textwrap.dedent(
    f"""
    import pulumi
    from pulumi_azure_native import containerservice
    from components.cluster import managed_cluster_args
    from components.config import AksCluster
    from components.container_logs import ContainerLogs, ContainerLogsArgs, declare_workspace
    from components.identity import AzurePlacement

    placement = AzurePlacement(
        stack="prod", location="westeurope", resource_group_name="rg-slm-prod",
        oidc_issuer_url="https://issuer.example", client=None, deployer_principal_type="User",
    )
    ContainerLogs(
        "logs", ContainerLogsArgs(placement, {CLUSTER_ID!r}, {WORKSPACE_ID!r}, {NAMESPACES!r})
    )
    settings = AksCluster.model_validate(
        {{"mode": "aks", "location": "westeurope", "authorizedIpRanges": ["203.0.113.0/24"]}}
    )
    declare_workspace(
        "workspace", "prod", "westeurope", "rg-slm-prod", 90, pulumi.ResourceOptions()
    )
    containerservice.ManagedCluster(
        "aks",
        resource_group_name="rg-slm-prod",
        **managed_cluster_args("prod", settings, "in-cluster", log_workspace_id={WORKSPACE_ID!r}),
    )
    """
)


@pytest.fixture(scope="module")
def declared(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Each resource the program declares, by type, with the engine's (camelCase) inputs."""
    program = tmp_path_factory.mktemp("container-logs") / "__main__.py"
    program.write_text(PROGRAM)
    recording = run_program(program, "slm-deploy", "prod", {}, [])
    return {
        resource.type: dataclasses.asdict(resource)
        for resource in recording.resources
        if resource.type.startswith("azure-native:")
    }


def _extension(declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rule = declared["azure-native:monitor:DataCollectionRule"]["inputs"]
    (extension,) = rule["dataSources"]["extensions"]
    return extension


def test_the_rule_declares_the_upstream_container_insights_extension(declared) -> None:
    extension = _extension(declared)
    assert extension["name"] == ONBOARDING["extension"]["name"] == "ContainerInsightsExtension"
    assert extension["extensionName"] == ONBOARDING["extension"]["extensionName"]
    settings = extension["extensionSettings"]["dataCollectionSettings"]
    assert sorted(settings) == ONBOARDING["extension"]["dataCollectionSettings"]
    rule = declared["azure-native:monitor:DataCollectionRule"]["inputs"]
    assert rule["kind"] == ONBOARDING["dataCollectionRuleKind"]


def test_the_rule_collects_only_the_template_namespaces_in_container_log_v2(declared) -> None:
    settings = _extension(declared)["extensionSettings"]["dataCollectionSettings"]
    assert settings["namespaceFilteringMode"] == "Include"
    assert settings["namespaceFilteringMode"] in ONBOARDING["namespaceFilteringModes"]
    assert settings["namespaces"] == ["slm-inference", "slm-monitoring"]
    assert settings["enableContainerLogV2"] is True
    assert settings["interval"] == PARAMETERS["dataCollectionInterval"]


def test_the_rule_sends_upstream_streams_to_the_workspace(declared) -> None:
    rule = declared["azure-native:monitor:DataCollectionRule"]["inputs"]
    streams = _extension(declared)["streams"]
    assert streams == [
        "Microsoft-ContainerLogV2",
        "Microsoft-KubeEvents",
        "Microsoft-KubePodInventory",
    ]
    assert set(streams) <= set(PARAMETERS["streams"])
    (destination,) = rule["destinations"]["logAnalytics"]
    assert destination["workspaceResourceId"] == WORKSPACE_ID
    assert rule["dataFlows"] == [{"streams": streams, "destinations": [destination["name"]]}]


def test_the_association_ties_the_rule_to_the_cluster(declared) -> None:
    association = declared["azure-native:monitor:DataCollectionRuleAssociation"]["inputs"]
    assert association["associationName"] == ONBOARDING["associationName"]
    assert association["resourceUri"] == CLUSTER_ID
    rule = declared["azure-native:monitor:DataCollectionRule"]
    assert (
        rule["urn"]
        in declared["azure-native:monitor:DataCollectionRuleAssociation"]["dependencies"]
    )


def test_the_cluster_turns_the_add_on_on_as_upstream_does(declared) -> None:
    addons = declared["azure-native:containerservice:ManagedCluster"]["inputs"]["addonProfiles"]
    upstream = ONBOARDING["addonProfiles"]["omsagent"]
    assert addons["omsagent"]["enabled"] is upstream["enabled"] is True
    assert sorted(addons["omsagent"]["config"]) == sorted(upstream["config"])
    assert addons["omsagent"]["config"] == {
        "logAnalyticsWorkspaceResourceID": WORKSPACE_ID,
        "useAADAuth": upstream["config"]["useAADAuth"],
    }


# The SDK's stream enums are "known" values only: an extension names its own streams
# (Container Insights: the upstream template's list), as the Prometheus forwarder does.
CONTAINER_INSIGHTS_STREAMS = enum.Enum(
    "ContainerInsightsStreams", [(stream, stream) for stream in PARAMETERS["streams"]]
)


def test_the_declared_inputs_are_the_sdk_own(declared, monkeypatch) -> None:
    flows = WIDER_ENUMS.get(monitor.KnownDataFlowStreams, ())
    monkeypatch.setitem(
        WIDER_ENUMS, monitor.KnownDataFlowStreams, (*flows, CONTAINER_INSIGHTS_STREAMS)
    )
    monkeypatch.setitem(
        WIDER_ENUMS, monitor.KnownExtensionDataSourceStreams, (CONTAINER_INSIGHTS_STREAMS,)
    )
    tally = Tally()
    assert resource_problems(list(declared.values()), tally) == []
    assert tally.resources == 4


def test_the_sdk_alone_does_not_know_the_container_insights_streams(declared) -> None:
    problems = resource_problems(list(declared.values()), Tally())
    assert len(problems) == 2 * len(container_logs.STREAMS)
    assert all("Microsoft-" in problem for problem in problems)


def test_the_workspace_is_the_stack_log_analytics_workspace(declared) -> None:
    workspace = declared["azure-native:operationalinsights:Workspace"]["inputs"]
    assert workspace["workspaceName"] == "log-slm-prod"
    assert workspace["retentionInDays"] == 90
    assert workspace["sku"] == {"name": "PerGB2018"}


def test_without_a_workspace_the_cluster_has_no_log_add_on() -> None:
    settings = AksCluster.model_validate(
        {"mode": "aks", "location": "westeurope", "authorizedIpRanges": ["203.0.113.0/24"]}
    )
    assert "omsagent" not in managed_cluster_args("prod", settings, "in-cluster")["addon_profiles"]


def test_the_workspace_keeps_the_longer_of_audit_and_log_retention() -> None:
    assert container_logs.workspace_retention_days(audit_days=90, logs_days=30) == 90
    assert container_logs.workspace_retention_days(audit_days=30, logs_days=60) == 60


def test_no_namespace_to_collect_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one namespace"):
        container_logs.collection_settings(())


def test_the_container_log_v2_columns_the_queries_use_are_the_agent_own() -> None:
    columns = json.loads((UPSTREAM / "containerlogv2-columns.json").read_text())["ContainerLogV2"]
    for column in ("TimeGenerated", "Computer", "ContainerName", "PodName", "PodNamespace"):
        assert column in columns
    assert {"LogMessage", "LogSource"} <= set(columns)


# -- the runbook's log queries ------------------------------------------------------------

LOG_TABLE = json.loads((UPSTREAM / "containerlogv2-columns.json").read_text())["ContainerLogV2"]
EVENT_TABLE = json.loads((UPSTREAM / "kubeevents-columns.json").read_text())["KubeEvents"]


def _columns(query: str) -> set[str]:
    """The columns a query names: its project list and the left side of each comparison."""
    named = set()
    for line in query.splitlines():
        if line.startswith("| project "):
            named |= {c.strip() for c in line.removeprefix("| project ").split(",")}
        named |= set(re.findall(r"(\w+) (?:==|in|matches regex|>) ", line))
    return named


def test_the_log_queries_name_only_the_agent_columns() -> None:
    # TimeGenerated is every Log Analytics table's own column, not the agent's.
    logs = {"TimeGenerated", *LOG_TABLE}
    assert _columns(container_logs.model_log_query("phi4-mini", "slm-inference")) <= logs
    assert _columns(container_logs.node_log_query("aks-gpu-1-vmss000000")) <= logs
    assert _columns(container_logs.namespace_log_query(("slm-edge",))) <= logs
    events = {"TimeGenerated", *EVENT_TABLE}
    assert _columns(container_logs.model_events_query("phi4-mini", "slm-inference")) <= events


def test_a_model_query_reads_its_namespace_and_pods() -> None:
    assert container_logs.model_log_query("phi4-mini", "slm-inference") == "\n".join(
        [
            "ContainerLogV2",
            "| where TimeGenerated > ago(1h)",
            '| where PodNamespace == "slm-inference"',
            r'| where PodName matches regex @"^phi4\-mini-(warm-[0-9a-f]+|[a-z0-9]+)-[a-z0-9]{5}$"',
            "| project TimeGenerated, Computer, PodName, ContainerName, LogSource, LogMessage",
            "| order by TimeGenerated desc",
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
