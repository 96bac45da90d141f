"""Container logs on AKS: the stdout and stderr of the template's pods, in a Log Analytics
workspace of the stack's own.

Which stacks: every AKS stack, whatever its monitoring mode. The issue asks for logs in every
monitoring mode and, on AKS, in the stack's Log Analytics workspace:

- `azure-managed` and `none` have no other log store (Loki comes with in-cluster monitoring
  only, components/loki.py), so without this an operator paged on such a stack has no logs;
- `in-cluster` stacks also get Loki (Grafana, the LogQL lines of docs/runbook.md). Loki keeps
  its chunks on a volume of the same cluster: when the cluster is what fails (nodes lost, a
  replaced cluster, docs/security.md's subnet move), the workspace still holds the lines that
  explain it. The price is ingesting the same lines twice, bounded by the namespace filter
  below and shown by `logs_summary`.
- Existing clusters (mode existing) get Loki with in-cluster monitoring and nothing here: the
  template declares no Azure resource for a cluster it does not own.

The workspace is separate from the Key Vault audit workspace (components/secrets.py): the
audit's retention is fixed per environment, the container logs' is monitoring.logs.
retentionDays, and one workspace has one retention.

Mechanism: the AKS monitoring add-on (Container Insights) with managed-identity
authentication, as Microsoft's own onboarding template for AKS declares it
(microsoft/Docker-Provider, scripts/onboarding/aks/onboarding-using-msi-auth, vendored in
tests/upstream/docker-provider-b780558-container-insights):

- the cluster's `omsagent` add-on profile, with the workspace's resource ID and
  `useAADAuth: "true"` (the agent signs in with its managed identity, no workspace key);
- a data collection rule whose ContainerInsights extension data source names the streams
  and the namespaces to collect, sending them to the workspace;
- the rule's association with the cluster.

Why the add-on and a rule, rather than a rule alone: pulumi-azure-native 3.29.0 (our pin)
has no `containerInsights` in ManagedCluster's azureMonitorProfile (only `metrics`), so the
add-on profile is the only way this SDK puts the log agent on the nodes; a rule alone has no
agent to read it. And without a rule of our own the agent would collect every namespace's
logs: ours collects only the template's namespaces (namespace filter "Include"), which bounds
what the stack pays to ingest, and sends the ContainerLogV2 table (the agent's record:
tests/upstream/.../containerlogv2-columns.json) with the Kubernetes events and pod inventory
an operator needs beside a pod's log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import containerservice, monitor, operationalinsights

from components import azure_names
from components.identity import AzurePlacement

# The add-on's key in ManagedCluster.addonProfiles, and its config keys (upstream template).
ADDON = "omsagent"
WORKSPACE_CONFIG_KEY = "logAnalyticsWorkspaceResourceID"
AAD_AUTH_CONFIG_KEY = "useAADAuth"
# The data source and the association, named as the upstream template names them.
EXTENSION_NAME = "ContainerInsights"
DATA_SOURCE_NAME = "ContainerInsightsExtension"
ASSOCIATION_NAME = "ContainerInsightsExtension"
DESTINATION = "ciworkspace"
# Of the upstream default streams: the container log (ContainerLogV2 table), the
# Kubernetes events (OOM kills, failed scheduling, probe failures) and the pod inventory
# (restarts, phase). The performance and inventory streams are left out: managed
# Prometheus or the in-cluster Prometheus already carries the metrics.
STREAMS = ("Microsoft-ContainerLogV2", "Microsoft-KubeEvents", "Microsoft-KubePodInventory")
# How often the agent collects inventory and events; the upstream template's sample value.
COLLECTION_INTERVAL = "1m"
# The agent reads only these namespaces' pods; the rest of the cluster costs nothing.
NAMESPACE_FILTER = "Include"
SKU = "PerGB2018"
WORKSPACE_PREFIX = "log-slm-containers-"


def addon_profile(
    workspace_id: pulumi.Input[str],
) -> containerservice.ManagedClusterAddonProfileArgs:
    """The monitoring add-on, signing in with its managed identity to the workspace."""
    return containerservice.ManagedClusterAddonProfileArgs(
        enabled=True,
        config={WORKSPACE_CONFIG_KEY: workspace_id, AAD_AUTH_CONFIG_KEY: "true"},
    )


def collection_settings(namespaces: tuple[str, ...]) -> dict[str, Any]:
    """The ContainerInsights extension's dataCollectionSettings: the template's namespaces
    only, container logs in the ContainerLogV2 schema."""
    if not namespaces:
        raise ValueError("container logs need at least one namespace to collect")
    return {
        "interval": COLLECTION_INTERVAL,
        "namespaceFilteringMode": NAMESPACE_FILTER,
        "namespaces": sorted(namespaces),
        "enableContainerLogV2": True,
    }


def workspace_name(stack: str) -> str:
    """log-slm-containers-<stack>: beside the audit's log-slm-<stack> in the stack's group,
    cut to the workspace's rule (azure_names)."""
    return azure_names.fit("log_analytics_workspace", WORKSPACE_PREFIX, stack)


def rule_name(location: str, stack: str) -> str:
    """MSCI-<region>-<cluster>, the upstream template's form (MSCI-<region>-<cluster name>)."""
    return azure_names.fit("data_collection", f"MSCI-{location}-aks-slm-", stack)


def declare_workspace(
    name: str,
    stack: str,
    location: str,
    resource_group_name: pulumi.Input[str],
    retention_days: int,
    opts: pulumi.ResourceOptions,
) -> operationalinsights.Workspace:
    """The container logs' Log Analytics workspace, kept for monitoring.logs.retentionDays.
    Declared before the cluster, whose monitoring add-on names it."""
    return operationalinsights.Workspace(
        name,
        workspace_name=workspace_name(stack),
        resource_group_name=resource_group_name,
        location=location,
        # Pay as you go, per GB ingested (as the audit workspace): commitment tiers start
        # at 100 GB a day (Azure Monitor Logs' cost page).
        sku=operationalinsights.WorkspaceSkuArgs(name=SKU),
        retention_in_days=retention_days,
        opts=opts,
    )


@dataclass(frozen=True)
class ContainerLogsArgs:
    placement: AzurePlacement
    cluster_id: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    # The namespaces whose pods' logs are collected: the template's own.
    namespaces: tuple[str, ...]


class ContainerLogs(pulumi.ComponentResource):
    """The data collection rule that routes the add-on's container logs to the workspace,
    and its association with the cluster. The add-on itself is a cluster setting
    (components/cluster.py, `addon_profile`)."""

    def __init__(
        self, name: str, args: ContainerLogsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:container_logs:ContainerLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        placement = args.placement
        rule = monitor.DataCollectionRule(
            f"{name}-dcr",
            data_collection_rule_name=rule_name(placement.location, placement.stack),
            resource_group_name=placement.resource_group_name,
            location=placement.location,
            kind="Linux",
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                extensions=[
                    monitor.ExtensionDataSourceArgs(
                        name=DATA_SOURCE_NAME,
                        extension_name=EXTENSION_NAME,
                        streams=list(STREAMS),
                        extension_settings={
                            "dataCollectionSettings": collection_settings(args.namespaces)
                        },
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                log_analytics=[
                    monitor.LogAnalyticsDestinationArgs(
                        name=DESTINATION, workspace_resource_id=args.workspace_id
                    )
                ]
            ),
            data_flows=[monitor.DataFlowArgs(streams=list(STREAMS), destinations=[DESTINATION])],
            opts=child,
        )
        monitor.DataCollectionRuleAssociation(
            f"{name}-dcra",
            association_name=ASSOCIATION_NAME,
            resource_uri=args.cluster_id,
            data_collection_rule_id=rule.id,
            description="Sends the template's container logs to the stack's Log Analytics "
            "workspace; without it the monitoring add-on collects nothing.",
            opts=child,
        )
        self.rule_id = rule.id
        self.register_outputs({"dataCollectionRuleId": rule.id})


# -- log queries for the runbook -----------------------------------------------------------
# Columns as the agent writes them (tests/upstream/docker-provider-b780558-container-insights:
# containerlogv2-columns.json, kubeevents-columns.json); TimeGenerated is Log Analytics' own.
# Each query is one line, so the runbook can carry it as inline code (KQL reads a pipeline on
# one line as on several).
LOG_COLUMNS = ("TimeGenerated", "Computer", "PodName", "ContainerName", "LogSource", "LogMessage")
EVENT_COLUMNS = ("TimeGenerated", "Computer", "Name", "Reason", "Message", "KubeEventType", "Count")
# A model's pods: its Deployment's (<name>-<template hash>-<5 characters>) and its cache
# warmer Job's (<name>-warm-<hash>-<5 characters>, components/cache_warmer.py). Anchored, so
# that "qwen3" does not match the pods of a model named "qwen3-8b".
POD_SUFFIX = r"-(warm-[0-9a-f]+|[a-z0-9]+)-[a-z0-9]{5}$"
QUERY_WINDOW = "1h"  # the alerts' own windows are at most 15 minutes: an hour shows the lead-up


def model_pods(model: str) -> str:
    return f"^{re.escape(model)}{POD_SUFFIX}"


def _query(table: str, *steps: str) -> str:
    return " | ".join([table, f"where TimeGenerated > ago({QUERY_WINDOW})", *steps])


def _project(columns: tuple[str, ...]) -> list[str]:
    return [f"project {', '.join(columns)}", "order by TimeGenerated desc"]


def model_log_query(model: str, namespace: str, line_pattern: str = "") -> str:
    """The last hour of a model's container logs (serving, init and cache warmer); with
    line_pattern (an RE2 regex), only the lines it matches."""
    lines = [f'where tostring(LogMessage) matches regex @"{line_pattern}"'] if line_pattern else []
    return _query(
        "ContainerLogV2",
        f'where PodNamespace == "{namespace}"',
        f'where PodName matches regex @"{model_pods(model)}"',
        *lines,
        *_project(LOG_COLUMNS),
    )


def pod_events_query(pod: str, namespace: str) -> str:
    """One pod's Kubernetes events: why it waits (FailedScheduling, the autoscaler's
    NotTriggerScaleUp), back-offs, OOM kills."""
    return _query(
        "KubeEvents",
        f'where Namespace == "{namespace}" and ObjectKind == "Pod"',
        f'where Name == "{pod}"',
        *_project(EVENT_COLUMNS),
    )


def node_log_query(node: str, namespace: str) -> str:
    """The last hour of one namespace's containers on one node (the GPU node agents)."""
    return _query(
        "ContainerLogV2",
        f'where PodNamespace == "{namespace}"',
        f'where Computer == "{node}"',
        *_project(LOG_COLUMNS),
    )


def namespace_log_query(namespace: str) -> str:
    """The last hour of a whole namespace's logs (the edge's key check)."""
    return _query(
        "ContainerLogV2",
        f'where PodNamespace == "{namespace}"',
        *_project(("PodNamespace", *LOG_COLUMNS)),
    )


# -- what the plan summary shows ------------------------------------------------------------

# No Log Analytics price with its region, date and source has been recorded (prices.json
# holds VM prices only); the summary says so rather than show an uncited figure.
NO_PRICE = "no price recorded"


def logs_summary(
    stack: str, aks: bool, monitoring_mode: str, retention_days: int
) -> dict[str, Any]:
    """Where a stack's container logs go and how long they stay, as the plan summary shows
    it. No daily volume is estimated: it depends on what the models log."""
    destinations = []
    if aks:
        destinations.append(
            {
                "store": f"Log Analytics workspace {workspace_name(stack)}",
                "through": "AKS monitoring add-on (Container Insights), table ContainerLogV2",
                "retentionDays": retention_days,
                "usdPerGbIngested": None,
                "price": NO_PRICE,
            }
        )
    if monitoring_mode == "in-cluster":
        destinations.append(
            {
                "store": "Loki in the cluster (Grafana, data source Loki)",
                "through": "Grafana Alloy",
                "retentionDays": retention_days,
            }
        )
    return {
        "destinations": destinations,
        "note": None
        if destinations
        else "no container logs: an existing cluster without "
        "in-cluster monitoring (monitoring.mode none)",
    }
