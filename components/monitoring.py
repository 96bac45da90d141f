"""Monitoring, per stack: in-cluster (kube-prometheus-stack) or Azure managed (Azure Monitor
managed Prometheus with Azure Managed Grafana). Both get the same scrape targets, alert
rules (components/alerts.py) and dashboard (components/dashboards.py).

kube-prometheus-stack (the Prometheus community's official chart, pinned) runs Prometheus,
Alertmanager, Grafana, kube-state-metrics and node-exporter. It is a helm.v3.Release, not a
v4 Chart: real Helm installs its CRDs before anything else and runs its hooks, which a v4
Chart would drop. Our ServiceMonitor and PrometheusRule depend on the release, so their
CRDs exist before them. Its pods run Pod Security "restricted" (node-exporter, which needs
the host, goes to the node agents' namespace); Grafana's admin password comes from
components/secrets.py (Key Vault through the CSI driver on AKS).

The Prometheus it installs is the one KEDA asks (prometheus_url).

Azure managed: an Azure Monitor workspace, the data collection endpoint, rule and
association that send the cluster's metrics add-on (ama-metrics) there, a Managed Grafana
that reads it, the alert rules as a Prometheus rule group, and an identity for KEDA's
operator (workload identity) that may read the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import alertsmanagement, dashboard, monitor

from components import alerts, azure_names, dashboards, loki
from components.config import AlertThresholds
from components.gpu_pool import OPERATOR_SERVICE_MONITOR, ChartPin
from components.identity import (
    AzurePlacement,
    WorkloadIdentityArgs,
    assign_role,
    declare_workload_identity,
)
from components.secrets import (
    GRAFANA_PASSWORD,
    GRAFANA_USER,
    SECRETS_MOUNT,
    PodWiring,
    secret_read_command,
)
from components.workload import SYSTEM_POOL_TOLERATIONS, labels

KUBE_PROMETHEUS_STACK = ChartPin(
    "kube-prometheus-stack", "92.2.0", "https://prometheus-community.github.io/helm-charts"
)
# Release and fullname "kps": short, stable service names that KEDA and docs can rely on.
RELEASE = "kps"
PROMETHEUS_PORT = 9090
# The service account Grafana's chart creates: named, so its federated credential can be.
GRAFANA_SERVICE_ACCOUNT = "slm-grafana"
# The label and value Grafana's dashboard sidecar watches (the chart's defaults).
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
# vLLM publishes its metrics on the API port; scrape at the autoscaler's polling interval.
SCRAPE_INTERVAL = "15s"
# Pod Security Standards "restricted", stated in our values rather than left to each
# subchart's defaults, so the restricted monitoring namespace admits every pod.
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
# The charts' own unprivileged users, kept: Prometheus and Alertmanager 1000:2000, the
# operator and kube-state-metrics nobody (65534), Grafana 472.
PROMETHEUS_IDS = {"runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 2000}
NOBODY_IDS = {"runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534}
GRAFANA_IDS = {"runAsUser": 472, "runAsGroup": 472, "fsGroup": 472}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Prometheus deletes its oldest data past this share of its volume, before the disk fills.
RETENTION_SIZE_SHARE = 0.85


def prometheus_url(namespace: str) -> str:
    return f"http://{RELEASE}-prometheus.{namespace}.svc:{PROMETHEUS_PORT}"


def grafana_url(namespace: str) -> str:
    return f"http://{RELEASE}-grafana.{namespace}.svc"


@dataclass(frozen=True)
class MonitoringArgs:
    namespace: str
    inference_namespace: str
    retention_days: int
    storage_gib: int
    thresholds: AlertThresholds
    # Per vLLM model, the waiting requests past which autoscaling has nothing left to add.
    queue_limits: dict[str, int]
    runbook_url: str
    # How Grafana's pod reads its admin Secret (components/secrets.py).
    grafana_secrets: PodWiring
    # The privileged namespace node-exporter runs in (components/network.py).
    node_agents_namespace: str
    # AKS application routing's namespace when the stack's Ingress goes through it: its
    # NGINX counts the edge's refusals (EdgeRefusingRequests). None: nothing to scrape.
    edge_namespace: str | None = None
    # The model servers scraped, by their app label: vLLM always, ONNX Runtime with its models.
    model_servers: tuple[str, ...] = ("vllm",)


def chart_values(args: MonitoringArgs) -> dict[str, Any]:
    """kube-prometheus-stack's values: retention and storage per stack, every monitor and
    rule in the cluster selected, Grafana's admin from our Secret, system-pool placement,
    restricted pods (node-exporter, which needs the host, runs with the node agents)."""
    # Monitoring is a platform add-on: on the system pool, never on GPU nodes.
    on_system_pool = {"tolerations": SYSTEM_POOL_TOLERATIONS}
    # Prometheus, Alertmanager (the operator writes their containers' contexts itself).
    operator_managed = {"securityContext": RESTRICTED_POD | PROMETHEUS_IDS}
    retention_size_gb = int(args.storage_gib * RETENTION_SIZE_SHARE)
    return {
        "fullnameOverride": RELEASE,
        "prometheus": {
            "prometheusSpec": {
                "retention": f"{args.retention_days}d",
                # Prometheus' size units are powers of two: GB here is GiB.
                "retentionSize": f"{retention_size_gb}GB",
                "scrapeInterval": SCRAPE_INTERVAL,
                "evaluationInterval": alerts.INTERVAL,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{args.storage_gib}Gi"}},
                        }
                    }
                },
                # Select every ServiceMonitor, PodMonitor and PrometheusRule, not only those
                # labelled with this release: ours and the DCGM exporter's chart's.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                **operator_managed,
                **on_system_pool,
            }
        },
        "alertmanager": {"alertmanagerSpec": operator_managed | on_system_pool},
        "prometheusOperator": {
            "securityContext": RESTRICTED_POD | NOBODY_IDS,
            "containerSecurityContext": RESTRICTED_CONTAINER,
            # The webhook only validates rules, which promtool checks before every merge
            # (tests/test_monitoring.py); without it the namespace needs no ingress from the
            # API server and no certificate-patching job. Its TLS listener serves only the
            # webhook and would wait for the job's certificate, so it goes too.
            "admissionWebhooks": {"enabled": False},
            "tls": {"enabled": False},
            **on_system_pool,
        },
        "kube-state-metrics": {
            "securityContext": RESTRICTED_POD | NOBODY_IDS,
            "containerSecurityContext": RESTRICTED_CONTAINER,
            **on_system_pool,
        },
        # Host network and PID namespace: it lives in the privileged node-agent namespace.
        "prometheus-node-exporter": {"namespaceOverride": args.node_agents_namespace},
        "grafana": {
            "securityContext": RESTRICTED_POD | GRAFANA_IDS,
            # Grafana writes outside its data volume (plugins, temporary files); a writable
            # root is allowed by "restricted".
            "containerSecurityContext": RESTRICTED_CONTAINER | {"readOnlyRootFilesystem": False},
            "admin": {
                "existingSecret": GRAFANA_PASSWORD.secret,
                "userKey": GRAFANA_USER.key,
                "passwordKey": GRAFANA_PASSWORD.key,
            },
            **grafana_secret_values(args.grafana_secrets),
            # Logs next to the metrics: Loki runs wherever this chart does (components/loki.py).
            "additionalDataSources": [loki.grafana_data_source(args.namespace)],
            "sidecar": {
                "securityContext": RESTRICTED_CONTAINER,
                "dashboards": {
                    "enabled": True,
                    "label": next(iter(DASHBOARD_LABEL)),
                    "labelValue": DASHBOARD_LABEL["grafana_dashboard"],
                    "searchNamespace": args.namespace,
                },
            },
            **on_system_pool,
        },
    }


def grafana_secret_values(wiring: PodWiring) -> dict[str, Any]:
    """Grafana's service account, and the CSI volume that syncs its admin Secret (AKS)."""
    values: dict[str, Any] = {
        "serviceAccount": {
            "create": True,
            "name": wiring.service_account,
            "annotations": wiring.service_account_annotations,
        }
    }
    if wiring.volumes:
        values["extraSecretMounts"] = [
            {"name": volume["name"], "mountPath": SECRETS_MOUNT, "readOnly": True} | volume
            for volume in wiring.volumes
        ]
    return values


def model_service_monitor(inference_namespace: str, server: str = "vllm") -> dict[str, Any]:
    """Every Service of one model server (its app label: vllm, onnxruntime) on /metrics,
    which needs no API key: vLLM leaves it open, and so does our ONNX Runtime server."""
    return {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": server,
                "app.kubernetes.io/part-of": "slm-deploy",
            }
        },
        "namespaceSelector": {"matchNames": [inference_namespace]},
        "endpoints": [{"port": "http", "path": "/metrics", "interval": SCRAPE_INTERVAL}],
    }


# AKS application routing's NGINX (aks-app-routing-operator, pkg/manifests: checked against
# tests/upstream/aks-app-routing-operator-*): a metrics Service with these labels serves
# ingress-nginx's metrics on the port named "prometheus". The controller's other Service has
# the same labels but no such port, so only the metrics endpoint is scraped.
EDGE_METRICS_SERVICE_LABELS = {
    "app.kubernetes.io/managed-by": "aks-app-routing-operator",
    "app.kubernetes.io/component": "ingress-controller",
}
EDGE_METRICS_PORT = "prometheus"


def edge_service_monitor(edge_namespace: str) -> dict[str, Any]:
    """ingress-nginx's request counters, where the edge's 401, 429 and 503 are counted. No
    honorLabels: the Ingress's namespace label is kept as exported_namespace."""
    return {
        "selector": {"matchLabels": EDGE_METRICS_SERVICE_LABELS},
        "namespaceSelector": {"matchNames": [edge_namespace]},
        "endpoints": [{"port": EDGE_METRICS_PORT, "path": "/metrics", "interval": SCRAPE_INTERVAL}],
    }


def declare_service_monitors(
    name: str,
    api_version: str,
    namespace: str,
    inference_namespace: str,
    edge_namespace: str | None,
    opts: pulumi.ResourceOptions,
    model_servers: tuple[str, ...] = ("vllm",),
) -> None:
    """What Prometheus scrapes beyond its chart's defaults, in the CRD group of the
    Prometheus that reads it: the vLLM servers, and the edge controller when the stack's
    Ingress goes through AKS application routing (its namespace is AKS's, so the monitor
    lives in ours)."""
    monitors = {
        server: (server, model_service_monitor(inference_namespace, server))
        for server in model_servers
    }
    if edge_namespace is not None:
        monitors["edge"] = ("edge-controller", edge_service_monitor(edge_namespace))
    for suffix, (monitor_name, spec) in monitors.items():
        k8s.apiextensions.CustomResource(
            f"{name}-{suffix}",
            api_version=api_version,
            kind="ServiceMonitor",
            metadata={
                "name": monitor_name,
                "namespace": namespace,
                "labels": labels("slm-monitoring", name, "monitoring"),
            },
            spec=spec,
            opts=opts,
        )


class InClusterMonitoring(pulumi.ComponentResource):
    """kube-prometheus-stack with our scrape targets, dashboard and alert rules."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:monitoring:InClusterMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = labels("slm-monitoring", name, "monitoring")
        self.release = k8s.helm.v3.Release(
            f"{name}-kps",
            name=RELEASE,
            chart=KUBE_PROMETHEUS_STACK.chart,
            version=KUBE_PROMETHEUS_STACK.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KUBE_PROMETHEUS_STACK.repository),
            namespace=args.namespace,
            values=chart_values(args),
            # Roll back a failed upgrade rather than leave monitoring half-installed.
            atomic=True,
            cleanup_on_fail=True,
            timeout=900,
            opts=child,
        )
        after_crds = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
        declare_service_monitors(
            name,
            OPERATOR_SERVICE_MONITOR,
            args.namespace,
            args.inference_namespace,
            args.edge_namespace,
            after_crds,
            args.model_servers,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version=OPERATOR_SERVICE_MONITOR,
            kind="PrometheusRule",
            metadata={"name": "slm-serving", "namespace": args.namespace, "labels": meta},
            spec={
                "groups": alerts.rule_groups(
                    args.thresholds, args.inference_namespace, args.runbook_url, args.queue_limits
                )
            },
            opts=after_crds,
        )
        board = dashboards.serving_dashboard(args.inference_namespace)
        k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata={
                "name": f"dashboard-{dashboards.UID}",
                "namespace": args.namespace,
                "labels": meta | DASHBOARD_LABEL,
            },
            data={f"{dashboards.UID}.json": dashboards.dashboard_json(board)},
            opts=child,
        )
        self.prometheus_url = prometheus_url(args.namespace)
        self.grafana_url = grafana_url(args.namespace)
        self.register_outputs(
            {"prometheusUrl": self.prometheus_url, "grafanaUrl": self.grafana_url}
        )


def grafana_password_command(namespace: str) -> str:
    return secret_read_command(GRAFANA_PASSWORD.secret, namespace, GRAFANA_PASSWORD.key)


# -- Azure managed ------------------------------------------------------------------------

# Built-in Azure roles (the same GUIDs in every tenant).
MONITORING_DATA_READER_ROLE = "b0d8363b-8ddd-447d-831f-62ca05bff136"
GRAFANA_ADMIN_ROLE = "22926164-76b3-42b3-bc55-97df8dab3e41"
PROMETHEUS_STREAM = "Microsoft-PrometheusMetrics"
MANAGED_SERVICE_MONITOR = "azmonitoring.coreos.com/v1"
# The AKS KEDA add-on's operator: the identity KEDA queries managed Prometheus with.
KEDA_OPERATOR_NAMESPACE = "kube-system"
KEDA_OPERATOR_ACCOUNT = "keda-operator"
# Managed Grafana's supported major version (10 was retired in 2025).
GRAFANA_MAJOR_VERSION = "11"
# Azure Monitor alert severities: 0 critical ... 4 verbose.
AZURE_SEVERITY = {"critical": 1, "warning": 2}


@dataclass(frozen=True)
class AzureMonitoringArgs:
    placement: AzurePlacement  # the deployer is made Grafana Admin
    cluster_name: pulumi.Input[str]
    cluster_id: pulumi.Input[str]
    inference_namespace: str
    thresholds: AlertThresholds
    # Per vLLM model, the waiting requests past which autoscaling has nothing left to add.
    queue_limits: dict[str, int]
    runbook_url: str
    private_cluster: bool = False
    edge_namespace: str | None = None  # as MonitoringArgs.edge_namespace
    model_servers: tuple[str, ...] = ("vllm",)  # as MonitoringArgs.model_servers
    # prod: the workspace (the metrics history) and Grafana (dashboards made in its UI) are
    # state: a change that would delete them stops instead (docs/backups.md).
    protect: bool = False


def iso_duration(hold: str) -> str | None:
    """A Prometheus `for` ("10m", "0m") as Azure's ISO 8601 duration ("PT10M"), or None."""
    minutes = int(hold.removesuffix("m"))
    return f"PT{minutes}M" if minutes else None


def azure_rules(groups: list[dict[str, Any]]) -> list[alertsmanagement.PrometheusRuleArgs]:
    """The same alert rules as Azure's Prometheus rule group takes them."""
    return [
        alertsmanagement.PrometheusRuleArgs(
            alert=rule["alert"],
            expression=rule["expr"],
            for_=iso_duration(rule["for"]),
            labels=rule["labels"],
            annotations=rule["annotations"],
            severity=AZURE_SEVERITY[rule["labels"]["severity"]],
            enabled=True,
        )
        for group in groups
        for rule in group["rules"]
    ]


class AzureManagedMonitoring(pulumi.ComponentResource):
    """Azure Monitor managed Prometheus and Managed Grafana for an AKS cluster."""

    def __init__(
        self, name: str, args: AzureMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:monitoring:AzureManagedMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = args.placement.resource_group_name
        workspace = monitor.AzureMonitorWorkspace(
            f"{name}-workspace",
            azure_monitor_workspace_name=azure_names.monitor_workspace(args.placement.stack),
            resource_group_name=group,
            location=args.placement.location,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self._collect(name, args, workspace, child)
        self._grafana(name, args, workspace, child)
        rules = alerts.rule_groups(
            args.thresholds, args.inference_namespace, args.runbook_url, args.queue_limits
        )
        alertsmanagement.PrometheusRuleGroup(
            f"{name}-rules",
            rule_group_name=azure_names.prometheus_rule_group(args.placement.stack),
            resource_group_name=group,
            location=args.placement.location,
            scopes=[workspace.id],
            cluster_name=args.cluster_name,
            # Azure evaluates at most once a minute.
            interval="PT1M",
            enabled=True,
            rules=azure_rules(rules),
            opts=child,
        )
        self.keda_client_id = self._keda_identity(name, args, workspace, child)
        # The metrics add-on reads only its own CRD group, which it installs with the cluster.
        declare_service_monitors(
            name,
            MANAGED_SERVICE_MONITOR,
            args.inference_namespace,
            args.inference_namespace,
            args.edge_namespace,
            child,
            args.model_servers,
        )
        self.prometheus_url = workspace.metrics.apply(
            lambda metrics: metrics.prometheus_query_endpoint if metrics else None
        )
        self.register_outputs(
            {"prometheusUrl": self.prometheus_url, "grafanaUrl": self.grafana_url}
        )

    def _collect(self, name, args, workspace, child) -> None:
        """The metrics add-on's path to the workspace: endpoint, rule, association."""
        # Microsoft's own templates name these MSProm-<region>-<cluster> (azure_names says how).
        prefix = azure_names.data_collection(args.placement.location, args.placement.stack)
        endpoint = monitor.DataCollectionEndpoint(
            f"{name}-dce",
            data_collection_endpoint_name=prefix,
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            kind="Linux",
            opts=child,
        )
        rule = monitor.DataCollectionRule(
            f"{name}-dcr",
            data_collection_rule_name=prefix,
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            kind="Linux",
            data_collection_endpoint_id=endpoint.id,
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                prometheus_forwarder=[
                    monitor.PrometheusForwarderDataSourceArgs(
                        name="PrometheusDataSource", streams=[PROMETHEUS_STREAM]
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                monitoring_accounts=[
                    monitor.MonitoringAccountDestinationArgs(
                        account_resource_id=workspace.id, name="MonitoringAccount1"
                    )
                ]
            ),
            data_flows=[
                monitor.DataFlowArgs(
                    streams=[PROMETHEUS_STREAM], destinations=["MonitoringAccount1"]
                )
            ],
            opts=child,
        )
        monitor.DataCollectionRuleAssociation(
            f"{name}-dcra",
            association_name=prefix,
            resource_uri=args.cluster_id,
            data_collection_rule_id=rule.id,
            description="Sends the cluster's Prometheus metrics to the Azure Monitor workspace.",
            opts=child,
        )
        if args.private_cluster:
            # A private cluster fetches its scrape configuration through the endpoint; Azure
            # requires this exact association name.
            monitor.DataCollectionRuleAssociation(
                f"{name}-dcea",
                association_name="configurationAccessEndpoint",
                resource_uri=args.cluster_id,
                data_collection_endpoint_id=endpoint.id,
                opts=child,
            )

    def _grafana(self, name, args, workspace, child) -> None:
        grafana = dashboard.Grafana(
            f"{name}-grafana",
            workspace_name=azure_names.grafana_workspace(args.placement.stack),
            resource_group_name=args.placement.resource_group_name,
            location=args.placement.location,
            sku=dashboard.ResourceSkuArgs(name="Standard"),
            identity=dashboard.ManagedServiceIdentityArgs(type="SystemAssigned"),
            properties=dashboard.ManagedGrafanaPropertiesArgs(
                grafana_major_version=GRAFANA_MAJOR_VERSION,
                # Sign-in through Entra ID only: no API keys to leak.
                api_key="Disabled",
                grafana_integrations=dashboard.GrafanaIntegrationsArgs(
                    azure_monitor_workspace_integrations=[
                        dashboard.AzureMonitorWorkspaceIntegrationArgs(
                            azure_monitor_workspace_resource_id=workspace.id
                        )
                    ]
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        assign_role(
            f"{name}-grafana-reads-workspace",
            args.placement.client,
            MONITORING_DATA_READER_ROLE,
            grafana.identity.apply(lambda identity: identity.principal_id),
            workspace.id,
            child,
        )
        assign_role(
            f"{name}-deployer-grafana-admin",
            args.placement.client,
            GRAFANA_ADMIN_ROLE,
            args.placement.client.object_id,
            grafana.id,
            child,
            principal_type=args.placement.deployer_principal_type,
        )
        self.grafana_url = grafana.properties.apply(lambda props: props.endpoint if props else None)

    def _keda_identity(self, name, args, workspace, child) -> pulumi.Output[str]:
        """Workload identity for the KEDA add-on's operator, allowed to read the workspace."""
        identity = declare_workload_identity(
            f"{name}-keda",
            WorkloadIdentityArgs(
                purpose="keda",
                placement=args.placement,
                namespace=KEDA_OPERATOR_NAMESPACE,
                service_account=KEDA_OPERATOR_ACCOUNT,
                role_guid=MONITORING_DATA_READER_ROLE,
                scopes={"reads-workspace": workspace.id},  # its name since issue 6's stacks
            ),
            child,
        )
        return identity.client_id
