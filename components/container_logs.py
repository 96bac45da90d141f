"""Container logs on AKS: the stdout and stderr of the template's pods, in the stack's Log
Analytics workspace.

The mechanism is the AKS monitoring add-on (Container Insights) with managed-identity
authentication, as Microsoft's own onboarding template for AKS declares it
(microsoft/Docker-Provider, scripts/onboarding/aks/onboarding-using-msi-auth, vendored in
tests/upstream/docker-provider-b780558-container-insights):

- the cluster's `omsagent` add-on profile, with the workspace's resource ID and
  `useAADAuth: "true"` (the agent signs in with its managed identity, no workspace key);
- a data collection rule whose ContainerInsights extension data source names the streams
  and the namespaces to collect, sending them to the workspace;
- the rule's association with the cluster.

Why this path: pulumi-azure-native 3.29.0 (our pin) has no `containerInsights` in
ManagedCluster's azureMonitorProfile (only `metrics`), so the add-on profile is the only way
this SDK turns the log agent on; and without a rule of our own the agent would collect every
namespace's logs. The rule collects only the template's namespaces (namespace filter
"Include"), which bounds the ingestion the stack pays for, and sends the ContainerLogV2
table (the agent's record: tests/upstream/.../containerlogv2-columns.json) with the
Kubernetes events and pod inventory an operator needs beside a pod's log.
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


def workspace_retention_days(audit_days: int, logs_days: int) -> int:
    """One retention for the whole workspace: the Key Vault audit's term (fixed per
    environment, components/secrets.py) is a floor that monitoring.logs.retentionDays may
    lengthen but never shorten."""
    return max(audit_days, logs_days)


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
    """The stack's Log Analytics workspace: the Key Vault audit and the container logs.
    Declared before the cluster, whose monitoring add-on names it."""
    return operationalinsights.Workspace(
        name,
        workspace_name=azure_names.log_analytics_workspace(stack),
        resource_group_name=resource_group_name,
        location=location,
        sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
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
LOG_COLUMNS = ("TimeGenerated", "Computer", "PodName", "ContainerName", "LogSource", "LogMessage")
EVENT_COLUMNS = ("TimeGenerated", "Computer", "Name", "Reason", "Message", "KubeEventType", "Count")
# A model's pods: its Deployment's (<name>-<template hash>-<5 characters>) and its cache
# warmer Job's (<name>-warm-<hash>-<5 characters>, components/cache_warmer.py). Anchored, so
# that "qwen3" does not match the pods of a model named "qwen3-8b".
POD_SUFFIX = r"-(warm-[0-9a-f]+|[a-z0-9]+)-[a-z0-9]{5}$"
QUERY_WINDOW = "1h"  # the alerts' own windows are at most 15 minutes: an hour shows the lead-up


def model_pods(model: str) -> str:
    return f"^{re.escape(model)}{POD_SUFFIX}"


def model_log_query(model: str, namespace: str) -> str:
    """The last hour of a model's container logs (serving, init and cache warmer)."""
    return "\n".join(
        [
            "ContainerLogV2",
            f"| where TimeGenerated > ago({QUERY_WINDOW})",
            f'| where PodNamespace == "{namespace}"',
            f'| where PodName matches regex @"{model_pods(model)}"',
            f"| project {', '.join(LOG_COLUMNS)}",
            "| order by TimeGenerated desc",
        ]
    )


def model_events_query(model: str, namespace: str) -> str:
    """A model's pods' Kubernetes events: scheduling failures, OOM kills, back-offs."""
    return "\n".join(
        [
            "KubeEvents",
            f"| where TimeGenerated > ago({QUERY_WINDOW})",
            f'| where Namespace == "{namespace}" and ObjectKind == "Pod"',
            f'| where Name matches regex @"{model_pods(model)}"',
            f"| project {', '.join(EVENT_COLUMNS)}",
            "| order by TimeGenerated desc",
        ]
    )


def node_log_query(node: str) -> str:
    """The last hour of the collected containers' logs on one node (GPU agents included)."""
    return "\n".join(
        [
            "ContainerLogV2",
            f"| where TimeGenerated > ago({QUERY_WINDOW})",
            f'| where Computer == "{node}"',
            f"| project {', '.join(('PodNamespace', *LOG_COLUMNS))}",
            "| order by TimeGenerated desc",
        ]
    )


def namespace_log_query(namespaces: tuple[str, ...]) -> str:
    """The last hour of the logs of whole namespaces (the edge: NGINX and the key check)."""
    listed = ", ".join(f'"{namespace}"' for namespace in sorted(namespaces))
    return "\n".join(
        [
            "ContainerLogV2",
            f"| where TimeGenerated > ago({QUERY_WINDOW})",
            f"| where PodNamespace in ({listed})",
            f"| project {', '.join(('PodNamespace', *LOG_COLUMNS))}",
            "| order by TimeGenerated desc",
        ]
    )
