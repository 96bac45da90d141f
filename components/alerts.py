"""Alert rules for the model services' service levels, as Prometheus rule groups.

Pure data: monitoring.py wraps the groups in a PrometheusRule, and the tests run
`promtool check rules` and `promtool test rules` over exactly what this module returns.
Every alert links to its section of docs/runbook.md; every metric comes from metrics.py.
"""

from __future__ import annotations

from typing import Any

from components.config import AlertThresholds
from components.metrics import DCGM_NODE_LABEL, EDGE_NAMESPACE_LABEL, bucket, name

GROUP = "slm-serving"
# Rules are evaluated every 30 s: twice per 15 s scrape, enough for alerts held for minutes.
INTERVAL = "30s"


def _alert(
    runbook_url: str,
    alert: str,
    expr: str,
    hold: str,
    severity: str,
    summary: str,
    description: str,
) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": hold,
        "labels": {"severity": severity, "team": "slm-platform"},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{runbook_url}#{alert.lower()}",
        },
    }


# The queue alert's threshold for a model without a derived one (no capacity figures).
DEFAULT_QUEUE_WAITING = 10


def rule_groups(
    thresholds: AlertThresholds,
    namespace: str,
    runbook_url: str,
    queue_limits: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The rule groups, for the services in `namespace`; runbook links under runbook_url.
    `queue_limits`: per model, the waiting requests past which autoscaling has no replica
    left to add (used unless monitoring.alerts.queueWaiting sets one figure for all)."""
    ns = f'namespace="{namespace}"'
    # Client requests only: health probes and metric scrapes would dilute the error ratio.
    api = f'{ns}, handler=~"/v1/.*"'
    http = name("http_requests_total")
    gpu_requests = (
        f'{name("kube_pod_container_resource_requests")}{{{ns}, resource="nvidia_com_gpu"}}'
    )
    rules = [
        _alert(
            runbook_url,
            "VllmTimeToFirstTokenHigh",
            f"histogram_quantile(0.95, sum by (model_name, le) "
            f"(rate({bucket('vllm:time_to_first_token_seconds')}{{{ns}}}[5m]))) "
            f"> {thresholds.ttft_p95_seconds}",
            "10m",
            "warning",
            "{{ $labels.model_name }}: time to first token p95 above "
            f"{thresholds.ttft_p95_seconds}s",
            "p95 time to first token is {{ $value | humanizeDuration }} over the last 5 minutes.",
        ),
        _alert(
            runbook_url,
            "VllmQueueSustained",
            queue_expression(thresholds, ns, queue_limits or {}),
            "10m",
            "warning",
            "{{ $labels.model_name }}: requests have been queueing for 10 minutes",
            "{{ $value }} requests wait for a slot; replicas are at their maximum or cannot start.",
        ),
        _alert(
            runbook_url,
            "VllmKvCacheNearlyFull",
            f"max by (model_name) ({name('vllm:kv_cache_usage_perc')}{{{ns}}}) > 0.9",
            "10m",
            "warning",
            "{{ $labels.model_name }}: KV cache above 90%",
            "KV-cache usage is {{ $value | humanizePercentage }}; new requests queue and "
            "running ones may be preempted.",
        ),
        _alert(
            runbook_url,
            "VllmErrorRatioHigh",
            f'sum by (service) (rate({http}{{{api}, status="5xx"}}[10m])) '
            f"/ sum by (service) (rate({http}{{{api}}}[10m])) "
            f"> {thresholds.error_ratio}",
            "5m",
            "critical",
            f"{{{{ $labels.service }}}}: more than {thresholds.error_ratio:.0%} of requests fail",
            "{{ $value | humanizePercentage }} of requests returned 5xx over 10 minutes.",
        ),
        _alert(
            runbook_url,
            "EdgeRefusingRequests",
            f"sum by (ingress, status) (rate({name('nginx_ingress_controller_requests')}"
            f'{{{EDGE_NAMESPACE_LABEL}="{namespace}", status=~"429|503"}}[5m])) > 0',
            "10m",
            "warning",
            "{{ $labels.ingress }}: the edge has refused requests with {{ $labels.status }} "
            "for 10 minutes",
            "{{ $value | humanize }} requests per second are refused: clients over their "
            "per-address limit (429), or a model whose queue is full or that has no ready "
            "replica (503).",
        ),
        _alert(
            runbook_url,
            "ModelPodCrashLooping",
            f"max by (pod, container) ({name('kube_pod_container_status_waiting_reason')}"
            f'{{{ns}, reason="CrashLoopBackOff"}}) == 1',
            "5m",
            "critical",
            "{{ $labels.pod }} is crash-looping",
            "Container {{ $labels.container }} keeps restarting.",
        ),
        _alert(
            runbook_url,
            "ModelPodOomKilled",
            f"(increase({name('kube_pod_container_status_restarts_total')}{{{ns}}}[10m]) > 0) "
            f"and on (pod, container) "
            f"({name('kube_pod_container_status_last_terminated_reason')}"
            f'{{{ns}, reason="OOMKilled"}} == 1)',
            "0m",
            "warning",
            "{{ $labels.pod }} was OOM-killed",
            "Container {{ $labels.container }} ran out of memory and restarted.",
        ),
        _alert(
            runbook_url,
            "GpuXidError",
            f"max by ({DCGM_NODE_LABEL}, gpu) ({name('DCGM_FI_DEV_XID_ERRORS')}) > 0",
            "0m",
            "critical",
            f"GPU {{{{ $labels.gpu }}}} on {{{{ $labels.{DCGM_NODE_LABEL} }}}} "
            "reported an XID error",
            "The last XID was {{ $value }}; many XIDs mean the GPU or node must be replaced.",
        ),
        _alert(
            runbook_url,
            "GpuPodsPending",
            f'(sum by (pod) ({name("kube_pod_status_phase")}{{{ns}, phase="Pending"}}) > 0) '
            f"and on (pod) (sum by (pod) ({gpu_requests}) > 0)",
            "15m",
            "warning",
            "{{ $labels.pod }} has waited 15 minutes for a GPU node",
            "The GPU pool could not add a node: quota, spot capacity or its maximum.",
        ),
    ]
    return [{"name": GROUP, "interval": INTERVAL, "rules": rules}]


def queue_expression(thresholds: AlertThresholds, ns: str, limits: dict[str, int]) -> str:
    """Waiting requests above the model's limit: one figure for every model when the stack
    sets queueWaiting, else each model's own limit (other models: DEFAULT_QUEUE_WAITING)."""
    waiting = name("vllm:num_requests_waiting")
    if thresholds.queue_waiting is not None or not limits:
        limit = thresholds.queue_waiting or DEFAULT_QUEUE_WAITING
        return f"sum by (model_name) ({waiting}{{{ns}}}) > {limit}"
    return " or ".join(
        f'sum by (model_name) ({waiting}{{{ns}, model_name="{model}"}}) > {limit}'
        for model, limit in sorted(limits.items())
    )
