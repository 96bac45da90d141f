"""The Grafana dashboard for the model services, built with grafana-foundation-sdk.

Pure: `serving_dashboard(namespace)` returns the dashboard model and `dashboard_json` its
JSON; monitoring.py delivers it as a ConfigMap that Grafana's sidecar loads. Every query
names only metrics listed in metrics.py (tests/test_monitoring.py checks each expression).
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import GraphDrawStyle

from components.metrics import (
    DCGM_NODE_LABEL,
    EDGE_NAMESPACE_LABEL,
    REFUSED_STATUSES,
    bucket,
    name,
)

UID = "slm-serving"
TITLE = "SLM serving"
# The datasource is a dashboard variable, so the same JSON works on any Prometheus
# datasource: kube-prometheus-stack's or Azure Managed Grafana's.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
MODEL_FILTER = 'model_name=~"$model"'
QUANTILES = (0.5, 0.95, 0.99)
RATE = "[$__rate_interval]"
PER_GPU = f"{{{{{DCGM_NODE_LABEL}}}}}/{{{{gpu}}}}"  # legend: node and GPU index
BY_GPU = f"by ({DCGM_NODE_LABEL}, gpu)"  # one series per GPU of each node


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    )


def _panel(title: str, unit: str, queries: list[tuple[str, str]], *, description: str = ""):
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .draw_style(GraphDrawStyle.LINE)
        .fill_opacity(10)
        .span(12)
        .height(8)
    )
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + index)))
    return panel


def _latency(metric: str) -> list[tuple[str, str]]:
    return [
        (
            f"histogram_quantile({q}, sum by (model_name, le) "
            f"(rate({bucket(metric)}{{{MODEL_FILTER}}}{RATE})))",
            f"{{{{model_name}}}} p{round(q * 100)}",
        )
        for q in QUANTILES
    ]


def _by_model(metric: str, aggregate: str = "sum", rate: bool = False) -> str:
    selector = f"{name(metric)}{{{MODEL_FILTER}}}"
    return f"{aggregate} by (model_name) ({f'rate({selector}{RATE})' if rate else selector})"


def _gpu(metric: str) -> str:
    return f"avg {BY_GPU} ({name(metric)})"


def _variables(namespace: str) -> list[Any]:
    return [
        dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        dash.QueryVariable("model")
        .label("Model")
        .datasource(DATASOURCE)
        .query(
            f'label_values({name("vllm:num_requests_running")}{{namespace="{namespace}"}}, '
            "model_name)"
        )
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True),
    ]


def _rows(namespace: str) -> list[tuple[str, list[Any]]]:
    ns = f'namespace="{namespace}"'
    hits = _by_model("vllm:prefix_cache_hits_total", rate=True)
    queries = _by_model("vllm:prefix_cache_queries_total", rate=True)
    fb_used, fb_free = name("DCGM_FI_DEV_FB_USED"), name("DCGM_FI_DEV_FB_FREE")
    pending = f'{name("kube_pod_status_phase")}{{{ns}, phase="Pending"}}'
    return [
        (
            "Traffic",
            [
                _panel(
                    "Requests finished per second",
                    "reqps",
                    [(_by_model("vllm:request_success_total", rate=True), "{{model_name}}")],
                ),
                _panel(
                    "HTTP responses per second by status",
                    "reqps",
                    [
                        (
                            f"sum by (service, status) "
                            f'(rate({name("http_requests_total")}{{{ns}, handler=~"/v1/.*"}}'
                            f"{RATE}))",
                            "{{service}} {{status}}",
                        )
                    ],
                ),
                _panel(
                    "Requests refused at the edge per second",
                    "reqps",
                    [
                        (
                            f"sum by (ingress, status) "
                            f"(rate({name('nginx_ingress_controller_requests')}"
                            f'{{{EDGE_NAMESPACE_LABEL}="{namespace}", '
                            f'status=~"{"|".join(REFUSED_STATUSES)}"}}{RATE}))',
                            "{{ingress}} {{status}}",
                        )
                    ],
                    description="401: a key the model refused; 429: over the per-address "
                    "limit; 503: a full model queue, or over a limit off AKS.",
                ),
            ],
        ),
        (
            "Latency",
            [
                _panel("Time to first token", "s", _latency("vllm:time_to_first_token_seconds")),
                _panel("Inter-token latency", "s", _latency("vllm:inter_token_latency_seconds")),
                _panel("End-to-end latency", "s", _latency("vllm:e2e_request_latency_seconds")),
            ],
        ),
        (
            "Engine",
            [
                _panel(
                    "Requests waiting and running",
                    "short",
                    [
                        (_by_model("vllm:num_requests_waiting"), "{{model_name}} waiting"),
                        (_by_model("vllm:num_requests_running"), "{{model_name}} running"),
                    ],
                    description="Waiting requests drive the autoscaler (KEDA).",
                ),
                _panel(
                    "KV-cache usage",
                    "percentunit",
                    [(_by_model("vllm:kv_cache_usage_perc", aggregate="max"), "{{model_name}}")],
                ),
                _panel(
                    "Prefix-cache hit rate",
                    "percentunit",
                    [(f"{hits} / {queries}", "{{model_name}}")],
                ),
                _panel(
                    "Tokens per second",
                    "short",
                    [
                        (_by_model("vllm:prompt_tokens_total", rate=True), "{{model_name}} prompt"),
                        (
                            _by_model("vllm:generation_tokens_total", rate=True),
                            "{{model_name}} generated",
                        ),
                    ],
                ),
            ],
        ),
        (
            "GPUs",
            [
                _panel(
                    "GPU utilisation",
                    "percent",
                    [(_gpu("DCGM_FI_DEV_GPU_UTIL"), PER_GPU)],
                ),
                _panel(
                    "GPU memory used",
                    "percentunit",
                    [
                        (
                            f"sum {BY_GPU} ({fb_used}) / (sum {BY_GPU} "
                            f"({fb_used}) + sum {BY_GPU} ({fb_free}))",
                            PER_GPU,
                        )
                    ],
                ),
                _panel(
                    "GPU temperature",
                    "celsius",
                    [(_gpu("DCGM_FI_DEV_GPU_TEMP"), PER_GPU)],
                ),
                _panel("GPU power", "watt", [(_gpu("DCGM_FI_DEV_POWER_USAGE"), PER_GPU)]),
            ],
        ),
        (
            "Scaling",
            [
                _panel(
                    "Replicas and desired replicas",
                    "short",
                    [
                        (
                            f"sum by (horizontalpodautoscaler) "
                            f"({name('kube_horizontalpodautoscaler_status_current_replicas')}{{{ns}}})",
                            "{{horizontalpodautoscaler}} current",
                        ),
                        (
                            f"sum by (horizontalpodautoscaler) "
                            f"({name('kube_horizontalpodautoscaler_status_desired_replicas')}{{{ns}}})",
                            "{{horizontalpodautoscaler}} desired",
                        ),
                    ],
                    description="KEDA names each autoscaler keda-hpa-<model>.",
                ),
                _panel(
                    "Pending pods",
                    "short",
                    [(f"sum by (pod) ({pending})", "{{pod}}")],
                    description="A GPU pod pending for long: the pool cannot add a node.",
                ),
            ],
        ),
    ]


def serving_dashboard(namespace: str) -> model.Dashboard:
    builder = (
        dash.Dashboard(TITLE)
        .uid(UID)
        .tags(["slm-deploy", "vllm", "gpu"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for variable in _variables(namespace):
        builder = builder.with_variable(variable)
    for title, panels in _rows(namespace):
        builder = builder.with_row(dash.Row(title))
        for panel in panels:
            builder = builder.with_panel(panel)
    return builder.build()


def dashboard_json(board: model.Dashboard) -> str:
    """Stable JSON (sorted keys), so the plan and the ConfigMap diff only on real changes."""
    return json.dumps(board, cls=JSONEncoder, sort_keys=True, indent=2)
