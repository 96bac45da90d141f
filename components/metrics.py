"""Every metric name the dashboards, alert rules and autoscalers use, listed once.

A metric renamed upstream breaks a panel or an alert silently (it just shows no data), so
each name here says which exporter and version it was checked against, and the tests fail
(tests/promql_names.py) when a dashboard or rule uses a name that is not in this list.

Checked by tests/test_metric_contracts.py against extracts of the upstream code at the
pinned versions (tests/upstream/, each folder's source.json says where from):
- vLLM v0.31.0 (serving.vllmImage): the V1 engine's Prometheus logger
  (vllm/v1/metrics/loggers.py): names, kinds, label names. Counters are exposed with the
  `_total` suffix, histograms as `_bucket`/`_sum`/`_count`.
- vLLM's HTTP server: prometheus-fastapi-instrumentator's default metrics
  (http_requests_total by method, status, handler; status grouped as "2xx", "5xx").
- DCGM exporter 4.8.3 (the chart components/gpu_pool.py pins): the metrics its chart
  enables and the labels its renderer and collector write.
- ingress-nginx controller v1.13.7 (what AKS application routing runs): its per-request
  counter by status and Ingress, the only place the edge's refusals are counted (a 429 over
  a limit; a 401 for a refused key, which vLLM's own HTTP metrics never count since its key
  check wraps them). Scraped without honor_labels, its `namespace` and `service` labels
  (the Ingress's) are stored as `exported_namespace` and `exported_service`.
- kube-state-metrics: a stand-in release (see tests/upstream/kube-state-metrics-*), until
  the one kube-prometheus-stack 92.2.0 bundles can be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    source: Literal["vllm", "http", "dcgm", "kube-state-metrics", "ingress-nginx"]
    meaning: str

    def series_names(self) -> tuple[str, ...]:
        """The names Prometheus stores: a histogram as its buckets, sum and count."""
        if self.kind == "histogram":
            return tuple(f"{self.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return (self.name,)


_METRICS = (
    # vLLM engine
    Metric("vllm:num_requests_running", "gauge", "vllm", "requests in the running batch"),
    Metric("vllm:num_requests_waiting", "gauge", "vllm", "requests queued for a slot"),
    Metric("vllm:kv_cache_usage_perc", "gauge", "vllm", "KV-cache blocks in use, 0 to 1"),
    Metric("vllm:time_to_first_token_seconds", "histogram", "vllm", "time to first token"),
    Metric("vllm:inter_token_latency_seconds", "histogram", "vllm", "time between tokens"),
    Metric("vllm:e2e_request_latency_seconds", "histogram", "vllm", "whole request latency"),
    Metric("vllm:prompt_tokens_total", "counter", "vllm", "prompt tokens prefilled"),
    Metric("vllm:generation_tokens_total", "counter", "vllm", "tokens generated"),
    Metric("vllm:request_success_total", "counter", "vllm", "finished requests by reason"),
    Metric("vllm:prefix_cache_queries_total", "counter", "vllm", "tokens looked up"),
    Metric("vllm:prefix_cache_hits_total", "counter", "vllm", "tokens found in the cache"),
    # vLLM's HTTP layer
    Metric("http_requests_total", "counter", "http", "HTTP requests by handler and status"),
    # The edge: AKS application routing's ingress-nginx
    Metric(
        "nginx_ingress_controller_requests",
        "counter",
        "ingress-nginx",
        "requests the edge answered, by Ingress and status code",
    ),
    # NVIDIA DCGM exporter
    Metric("DCGM_FI_DEV_GPU_UTIL", "gauge", "dcgm", "GPU utilisation, percent"),
    Metric("DCGM_FI_DEV_FB_USED", "gauge", "dcgm", "GPU memory used, MiB"),
    Metric("DCGM_FI_DEV_FB_FREE", "gauge", "dcgm", "GPU memory free, MiB"),
    Metric("DCGM_FI_DEV_GPU_TEMP", "gauge", "dcgm", "GPU temperature, Celsius"),
    Metric("DCGM_FI_DEV_POWER_USAGE", "gauge", "dcgm", "power draw, watts"),
    Metric("DCGM_FI_DEV_XID_ERRORS", "gauge", "dcgm", "the last XID error, 0 if none"),
    # kube-state-metrics
    Metric("kube_pod_status_phase", "gauge", "kube-state-metrics", "pod phase, 1 if in it"),
    Metric(
        "kube_pod_container_resource_requests",
        "gauge",
        "kube-state-metrics",
        "container requests by resource (nvidia_com_gpu for GPUs)",
    ),
    Metric(
        "kube_pod_container_status_waiting_reason",
        "gauge",
        "kube-state-metrics",
        "why a container waits (CrashLoopBackOff)",
    ),
    Metric(
        "kube_pod_container_status_last_terminated_reason",
        "gauge",
        "kube-state-metrics",
        "why a container last ended (OOMKilled)",
    ),
    Metric(
        "kube_pod_container_status_restarts_total",
        "counter",
        "kube-state-metrics",
        "container restarts",
    ),
    Metric(
        "kube_horizontalpodautoscaler_status_current_replicas",
        "gauge",
        "kube-state-metrics",
        "replicas the autoscaler sees",
    ),
    Metric(
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "gauge",
        "kube-state-metrics",
        "replicas the autoscaler wants",
    ),
)

METRICS: dict[str, Metric] = {metric.name: metric for metric in _METRICS}

# The label that names the node on DCGM exporter samples: "hostname" since exporter 4.8.3
# (upstream PR #655 renamed "Hostname"), from the NODE_NAME the chart's DaemonSet sets.
DCGM_NODE_LABEL = "hostname"
# The Ingress's namespace on ingress-nginx's samples, as stored when scraped without
# honor_labels (the scrape's own `namespace` is the controller's).
EDGE_NAMESPACE_LABEL = "exported_namespace"
# What the edge refuses: 401 (a key vLLM refused: only counted here), 429 (over a
# per-address limit, AKS's add-on), 503 (over a limit elsewhere, or a full model queue).
REFUSED_STATUSES = ("401", "429", "503")


def name(metric: str) -> str:
    """A listed metric's name; an unlisted one is a programming error, caught at import."""
    if metric not in METRICS:
        raise KeyError(f"{metric} is not in components/metrics.py")
    return metric


def bucket(metric: str) -> str:
    """A listed histogram's bucket series."""
    if METRICS[name(metric)].kind != "histogram":
        raise KeyError(f"{metric} is not a histogram")
    return f"{metric}_bucket"
