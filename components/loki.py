"""Logs for in-cluster monitoring: Loki, and Grafana Alloy collecting the pods' logs.

Loki (the loki chart, pinned) runs as one monolithic pod in the monitoring namespace, its
chunks and index on a PersistentVolumeClaim, deleting what is older than the stack's
monitoring.logs.retentionDays through its compactor. Inside the cluster it has no auth: one
tenant, reached only by Alloy and Grafana (components/network.py). Its gateway, canary,
caches and self-monitoring are off: one small pod, nothing else to run or reach.

The chart: Grafana moved Loki's chart for OSS users to grafana-community/helm-charts on
16 March 2026 (grafana/loki production/helm/loki/README.md at helm-loki-7.3.0 says so; the
chart left there serves Grafana Enterprise Logs). kube-prometheus-stack's Grafana subchart
comes from the same repository.

The collector is Grafana Alloy (the alloy chart, pinned): Promtail reached end of life on
2 March 2026 (grafana/loki docs/sources/send-data/promtail/_index.md at helm-loki-7.3.0) and
its successor is Alloy. A DaemonSet reads each node's /var/log/pods files of the platform's
namespaces and pushes them to Loki. Reading host files needs a hostPath volume, which Pod
Security "restricted" refuses, so Alloy runs in the node agents' namespace, "privileged",
next to the device plugin and the DCGM exporter (components/network.py, NamespaceSpec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.gpu_pool import ChartPin
from components.workload import SYSTEM_POOL_TOLERATIONS

LOKI_CHART = ChartPin("loki", "18.11.0", "https://grafana-community.github.io/helm-charts")
ALLOY_CHART = ChartPin("alloy", "1.11.1", "https://grafana.github.io/helm-charts")
# Release names, and the charts' fullnames: Loki's Service is "loki" (loki.fullname).
LOKI_RELEASE = "loki"
ALLOY_RELEASE = "alloy"
# Loki's HTTP port (the chart's loki.server.http_listen_port): pushes and queries.
LOKI_PORT = 3100
# The pods, as the charts label them (app.kubernetes.io/name is each chart's name).
LOKI_PODS = (("app.kubernetes.io/name", "loki"),)
ALLOY_PODS = (("app.kubernetes.io/name", "alloy"),)
# Labels Alloy attaches to every log line; the runbook's queries select on them.
LOG_LABELS = ("namespace", "pod", "container", "node")
# Loki's object index schema for filesystem storage; the date is the start of this schema
# for a new install and must never change once logs are stored.
SCHEMA_START = "2026-01-01"
# Requests and limits: not measured yet, set so the scheduler reserves room and a runaway
# pod is stopped (the chart sets none; its monolithic example asks 2 CPU and 2Gi for up to
# "a few tens of GB/day", far more than a few model servers log).
LOKI_RESOURCES = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}
ALLOY_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}


# A Deployment's pods are named <deployment>-<replica set hash>-<suffix>; LogQL regexes match
# whole values, so "phi4" never selects the pods of "phi4-mini".
POD_OF_DEPLOYMENT = "{deployment}-[a-z0-9]+-[a-z0-9]+"


def model_logs_query(namespace: str, model: str, line_filter: str = "") -> str:
    """LogQL for one model's pods (their Deployment is named after the model)."""
    pods = POD_OF_DEPLOYMENT.format(deployment=model)
    selector = f'{{namespace="{namespace}", pod=~"{pods}"}}'
    return f"{selector} {line_filter}".rstrip()


def node_logs_query(node: str, namespace: str) -> str:
    """LogQL for the node agents' logs on one node (device plugin, DCGM exporter)."""
    return f'{{namespace="{namespace}", node="{node}"}}'


def loki_url(namespace: str) -> str:
    return f"http://{LOKI_RELEASE}.{namespace}.svc:{LOKI_PORT}"


def grafana_data_source(namespace: str) -> dict[str, Any]:
    """Loki as a Grafana data source (kube-prometheus-stack's grafana.additionalDataSources):
    a fixed uid, so dashboards and the runbook's Explore links can name it."""
    return {
        "name": "Loki",
        "type": "loki",
        "uid": "loki",
        "access": "proxy",
        "url": loki_url(namespace),
    }


@dataclass(frozen=True)
class LogsArgs:
    namespace: str  # Loki's: the monitoring namespace
    collector_namespace: str  # Alloy's: the privileged node agents' namespace
    # Whose pods' logs are collected.
    source_namespaces: tuple[str, ...]
    retention_days: int


def loki_values(args: LogsArgs) -> dict[str, Any]:
    """The loki chart's values: one monolithic pod, filesystem storage, retention."""
    off = {"enabled": False}
    no_replicas = {"replicas": 0}
    return {
        "fullnameOverride": LOKI_RELEASE,
        "deploymentMode": "Monolithic",
        "loki": {
            # One tenant, reached only inside the cluster through network policies.
            "auth_enabled": False,
            "commonConfig": {"replication_factor": 1},
            "storage": {"type": "filesystem"},
            "schemaConfig": {
                "configs": [
                    {
                        "from": SCHEMA_START,
                        "store": "tsdb",
                        "object_store": "filesystem",
                        "schema": "v13",
                        "index": {"prefix": "loki_index_", "period": "24h"},
                    }
                ]
            },
            # Retention is the compactor's job; it needs a store for delete requests.
            "compactor": {"retention_enabled": True, "delete_request_store": "filesystem"},
            "limits_config": {"retention_period": f"{args.retention_days * 24}h"},
        },
        "singleBinary": {
            "replicas": 1,
            # The chart's claim (its default size): chunks and index survive a restart.
            "persistence": {"enabled": True},
            "resources": LOKI_RESOURCES,
            "tolerations": SYSTEM_POOL_TOLERATIONS,
        },
        # The other modes' components (the chart's monolithic example zeroes them).
        "backend": no_replicas,
        "read": no_replicas,
        "write": no_replicas,
        "gateway": off,
        "lokiCanary": off,
        "test": off,
        "chunksCache": off,
        "resultsCache": off,
        # The rules sidecar feeds Loki's ruler, which we do not use (alerts are Prometheus').
        "sidecar": {"rules": off},
    }


def alloy_config(source_namespaces: tuple[str, ...], push_url: str) -> str:
    """Alloy's pipeline: this node's pods of the given namespaces, their files under
    /var/log/pods, CRI lines parsed, pushed to Loki with LOG_LABELS."""
    namespaces = ", ".join(f'"{n}"' for n in source_namespaces)
    return f"""discovery.kubernetes "pods" {{
  role = "pod"
  namespaces {{
    names = [{namespaces}]
  }}
  // The chart sets HOSTNAME to the node's name: each collector reads its own node.
  selectors {{
    role  = "pod"
    field = "spec.nodeName=" + sys.env("HOSTNAME")
  }}
}}

discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_node_name"]
    target_label  = "node"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name"]
    separator     = "/"
    target_label  = "__path__"
    replacement   = "/var/log/pods/*$1/*.log"
  }}
}}

local.file_match "pods" {{
  path_targets = discovery.relabel.pods.output
}}

loki.source.file "pods" {{
  targets    = local.file_match.pods.targets
  forward_to = [loki.process.pods.receiver]
}}

loki.process "pods" {{
  stage.cri {{}}
  forward_to = [loki.write.loki.receiver]
}}

loki.write "loki" {{
  endpoint {{
    url = "{push_url}/loki/api/v1/push"
  }}
}}
"""


def alloy_values(args: LogsArgs) -> dict[str, Any]:
    """The alloy chart's values: a DaemonSet on every node (GPU nodes included: their
    model servers' logs are the ones that matter), /var/log mounted read-only."""
    return {
        "fullnameOverride": ALLOY_RELEASE,
        "alloy": {
            "configMap": {
                "content": alloy_config(args.source_namespaces, loki_url(args.namespace))
            },
            "mounts": {"varlog": True},
            "resources": ALLOY_RESOURCES,
        },
        "controller": {
            "type": "daemonset",
            # Every node, tainted or not: a collector per node with pods to read.
            "tolerations": [{"operator": "Exists"}],
        },
    }


class Logs(pulumi.ComponentResource):
    """Loki and its collector, in-cluster."""

    def __init__(self, name: str, args: LogsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:monitoring:Logs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.loki = _release(
            f"{name}-loki", LOKI_CHART, LOKI_RELEASE, args.namespace, loki_values(args), child
        )
        self.alloy = _release(
            f"{name}-alloy",
            ALLOY_CHART,
            ALLOY_RELEASE,
            args.collector_namespace,
            alloy_values(args),
            pulumi.ResourceOptions(parent=self, depends_on=[self.loki]),
        )
        self.loki_url = loki_url(args.namespace)
        self.register_outputs({"lokiUrl": self.loki_url})


def _release(
    name: str,
    pin: ChartPin,
    release: str,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    return k8s.helm.v3.Release(
        name,
        name=release,
        chart=pin.chart,
        version=pin.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=pin.repository),
        namespace=namespace,
        values=values,
        # Roll back a failed upgrade rather than leave logging half-installed.
        atomic=True,
        cleanup_on_fail=True,
        opts=opts,
    )
