"""The log queries each alert's runbook section links: the affected model's pods or node's
agents, in Loki's LogQL for in-cluster monitoring (Grafana, Explore, the Loki data source)
and in KQL for AKS stacks (the stack's container-log workspace, components/container_logs.py).
docs/runbook.md holds these exact strings, and tests/test_docs.py checks that it does.
`<model>`, `<node>` and `<pod>` are the alert's model_name, hostname and pod labels."""

from __future__ import annotations

from components import container_logs, loki
from components.network import EDGE_NAMESPACE, INFERENCE_NAMESPACE, NODE_SYSTEM_NAMESPACE

MODEL, NODE, POD = "<model>", "<node>", "<pod>"
# Server errors and tracebacks in a model server's log (vLLM logs them at ERROR); LogQL's
# and KQL's regexes (RE2 both) read it alike.
ERROR_PATTERN = "(?i)error|exception|traceback"
ERROR_LINES = f'|~ "{ERROR_PATTERN}"'


def runbook_queries() -> dict[str, str]:
    """Per alert: the LogQL that shows what its runbook section asks you to look at."""
    model = loki.model_logs_query(INFERENCE_NAMESPACE, MODEL)
    return {
        "VllmTimeToFirstTokenHigh": model,
        "VllmQueueSustained": model,
        "VllmKvCacheNearlyFull": model,
        "VllmErrorRatioHigh": loki.model_logs_query(INFERENCE_NAMESPACE, MODEL, ERROR_LINES),
        "EdgeRefusingRequests": f'{{namespace="{EDGE_NAMESPACE}"}}',
        "ModelPodCrashLooping": model,
        "ModelPodOomKilled": model,
        "GpuXidError": loki.node_logs_query(NODE, NODE_SYSTEM_NAMESPACE),
        # A pending pod writes no log: the node agents of the pool show why GPUs are missing.
        "GpuPodsPending": loki.node_logs_query(NODE, NODE_SYSTEM_NAMESPACE),
    }


def runbook_kql_queries() -> dict[str, str]:
    """Per alert: the KQL over the stack's container-log workspace (AKS stacks)."""
    model = container_logs.model_log_query(MODEL, INFERENCE_NAMESPACE)
    node_agents = container_logs.node_log_query(NODE, NODE_SYSTEM_NAMESPACE)
    return {
        "VllmTimeToFirstTokenHigh": model,
        "VllmQueueSustained": model,
        "VllmKvCacheNearlyFull": model,
        "VllmErrorRatioHigh": container_logs.model_log_query(
            MODEL, INFERENCE_NAMESPACE, ERROR_PATTERN
        ),
        "EdgeRefusingRequests": container_logs.namespace_log_query(EDGE_NAMESPACE),
        "ModelPodCrashLooping": model,
        "ModelPodOomKilled": model,
        "GpuXidError": node_agents,
        # A pending pod writes no log; its events say why it waits (FailedScheduling, the
        # cluster autoscaler's NotTriggerScaleUp). The alert names the pod.
        "GpuPodsPending": container_logs.pod_events_query(POD, INFERENCE_NAMESPACE),
    }


def runbook_line(alert: str) -> str:
    """The LogQL line a runbook section carries for its alert."""
    return (
        "**Logs** (in-cluster monitoring: Grafana, Explore, data source Loki): "
        f"`{runbook_queries()[alert]}`"
    )


def runbook_kql_line(alert: str) -> str:
    """The KQL line a runbook section carries for its alert."""
    return (
        "**Logs** (AKS: Azure portal, Log Analytics workspace "
        f"`{container_logs.WORKSPACE_PREFIX}<stack>`, Logs): "
        f"`{runbook_kql_queries()[alert]}`"
    )
