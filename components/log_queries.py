"""The log query each alert's runbook section links: the affected model's pods or node's
agents, in Loki's LogQL for in-cluster monitoring (Grafana, Explore, the Loki data source).
docs/runbook.md holds these exact strings, and tests/test_docs.py checks that it does.
`<model>` and `<node>` are the alert's model_name and hostname labels."""

from __future__ import annotations

from components import loki
from components.network import EDGE_NAMESPACE, INFERENCE_NAMESPACE, NODE_SYSTEM_NAMESPACE

MODEL, NODE = "<model>", "<node>"
# Server errors and tracebacks in a model server's log (vLLM logs them at ERROR).
ERROR_LINES = '|~ "(?i)error|exception|traceback"'


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


def runbook_line(alert: str) -> str:
    """The line a runbook section carries for its alert."""
    return (
        "**Logs** (in-cluster monitoring: Grafana, Explore, data source Loki): "
        f"`{runbook_queries()[alert]}`"
    )
