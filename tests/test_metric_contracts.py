"""Every metric and label name the alerts, dashboard, autoscaler and promtool fixtures use,
checked against what the pinned exporters emit (tests/upstream/, with their sources).

A misspelt or renamed name does not fail anywhere else: the panel shows no data, the alert
never fires, and a promtool fixture written with the same guess passes. Here the truth is
the exporters' own code at the versions we pin: vLLM's metric logger, the HTTP
instrumentator vLLM adds, the DCGM exporter's chart and renderer, kube-state-metrics.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import alerts, autoscaling, dashboards, metrics
from components.config import DEFAULT_RUNBOOK_URL, AlertThresholds
from tests.promql_names import grouping_labels, selectors, template_labels

UPSTREAM = Path(__file__).parent / "upstream"
VLLM = UPSTREAM / "vllm-0.31.0-metrics"
HTTP = UPSTREAM / "prometheus-fastapi-instrumentator-8.0.2"
DCGM = UPSTREAM / "dcgm-exporter-4.8.3"
KUBE_STATE_METRICS = UPSTREAM / "kube-state-metrics-v2.20.0"
INGRESS_NGINX = UPSTREAM / "ingress-nginx-v1.13.7-metrics"
PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "serving_alerts_test.yaml"

# Labels Prometheus gives every sample it scrapes through a ServiceMonitor: Prometheus
# Operator's relabelling adds the target's namespace, service, pod, container, endpoint
# (the port name), job and instance; the Azure metrics add-on reads the same ServiceMonitor
# shape. Not vendored from the operator's code (see the folder README's open points).
TARGET_LABELS = frozenset(
    {"namespace", "service", "pod", "container", "endpoint", "job", "instance"}
)


@dataclass(frozen=True)
class Family:
    """A metric family as Prometheus stores it: its kind and the labels its samples carry."""

    kind: str
    labels: frozenset[str]


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _exposed_name(name: str, kind: str) -> str:
    """prometheus_client exposes a counter `x` (or `x_total`) as `x_total`."""
    return name if kind != "counter" or name.endswith("_total") else f"{name}_total"


def _declared(document: dict[str, dict[str, Any]]) -> dict[str, Family]:
    return {
        _exposed_name(name, entry["kind"]): Family(entry["kind"], frozenset(entry["labels"]))
        for name, entry in document.items()
    }


def dcgm_families() -> dict[str, Family]:
    """The metrics chart 4.8.3 enables, with the labels the exporter writes on GPU samples."""
    renderer = set(_lines(DCGM / "gpu-labels.txt"))
    uuid, *xid_attributes = _lines(DCGM / "collector-labels.txt")
    # The chart sets DCGM_EXPORTER_KUBERNETES=true: samples of a GPU in use carry the pod.
    mapping = dict(line.split("=") for line in _lines(DCGM / "kubernetes-labels.txt"))
    pod = {mapping[c] for c in ("podAttribute", "namespaceAttribute", "containerAttribute")}
    common = frozenset(renderer | {uuid} | pod)
    families = {}
    for row in _lines(DCGM / "metrics.csv"):
        name, kind = row.split(",")
        # toMetric adds the XID's code and text to DCGM_FI_DEV_XID_ERRORS samples only.
        extra = set(xid_attributes) if name == "DCGM_FI_DEV_XID_ERRORS" else set()
        families[name] = Family(kind, common | extra)
    return families


def ingress_nginx_families() -> dict[str, Family]:
    """The controller's request metrics with the labels Prometheus stores: `host` with
    --metrics-per-host (its default), and the Ingress's `namespace` and `service` kept as
    exported_namespace and exported_service, since the scrape sets its own (Prometheus
    renames a scraped label that the target also sets when honor_labels is false, the
    default of ServiceMonitor, PodMonitor and the Azure metrics add-on's scrape configs)."""
    flags = _json(INGRESS_NGINX / "flags.json")
    families = {}
    for name, entry in _json(INGRESS_NGINX / "metrics.json").items():
        labels = set(entry["labels"])
        if flags["metrics-per-host"]:
            labels |= set(entry["labels_per_host"])
        stored = {f"exported_{label}" if label in TARGET_LABELS else label for label in labels}
        families[name] = Family(entry["kind"], frozenset(stored))
    return families


def upstream_families() -> dict[str, dict[str, Family]]:
    """By metrics.py source: every family the pinned exporter exposes."""
    return {
        "vllm": _declared(_json(VLLM / "metrics.json")),
        "http": _declared(_json(HTTP / "metrics.json")),
        "dcgm": dcgm_families(),
        "kube-state-metrics": _declared(
            _json(KUBE_STATE_METRICS / "pod-metrics.json")
            | _json(KUBE_STATE_METRICS / "horizontalpodautoscaler-metrics.json")
        ),
        "ingress-nginx": ingress_nginx_families(),
    }


def upstream_series() -> dict[str, frozenset[str]]:
    """Every series name the exporters expose, with the labels a query may use on it."""
    series = {}
    for families in upstream_families().values():
        for name, family in families.items():
            labels = family.labels | TARGET_LABELS
            if family.kind == "histogram":
                series |= {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels}
                series[f"{name}_count"] = labels
            else:
                series[name] = labels
    return series


SERIES = upstream_series()


def name_problems(expression: str, read_labels: set[str] = frozenset()) -> list[str]:
    """What an expression (with the labels its legend or annotations read) names that the
    pinned exporters do not emit: one line each, empty when it is all upstream's."""
    picked = selectors(expression)
    problems = [
        f"{metric}: no pinned exporter exposes it" for metric, _ in picked if metric not in SERIES
    ]
    # Grouping labels and the labels read from the result must be on every series picked.
    shared = grouping_labels(expression) | set(read_labels)
    for metric, matched in picked:
        known = SERIES.get(metric)
        if known is not None:
            problems += [
                f"{metric}: no label {label!r} upstream"
                for label in sorted((matched | shared) - known)
            ]
    return problems


# -- what the project's queries use ---------------------------------------------------------


def alert_expressions() -> list[tuple[str, str, set[str]]]:
    groups = alerts.rule_groups(AlertThresholds(), "slm-inference", DEFAULT_RUNBOOK_URL)
    return [
        (rule["alert"], rule["expr"], template_labels(" ".join(rule["annotations"].values())))
        for group in groups
        for rule in group["rules"]
    ]


LABEL_VALUES = re.compile(r"label_values\((.*),\s*(\w+)\)")


def dashboard_expressions() -> list[tuple[str, str, set[str]]]:
    document = json.loads(dashboards.dashboard_json(dashboards.serving_dashboard("ns")))
    found = [
        (panel["title"], target["expr"], template_labels(target.get("legendFormat", "")))
        for panel in document["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in document["templating"]["list"]:
        query = LABEL_VALUES.fullmatch(str(variable.get("query", "")))
        if query:
            found.append((f"${variable['name']}", query.group(1), {query.group(2)}))
    return found


def autoscaler_expressions() -> list[tuple[str, str, set[str]]]:
    return [("KEDA queue trigger", autoscaling.waiting_query("phi4-mini", "ns"), set())]


EXPRESSIONS = alert_expressions() + dashboard_expressions() + autoscaler_expressions()


def fixture_series() -> list[str]:
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    return [series["series"] for case in cases for series in case["input_series"]]


FIXTURE_SERIES = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}")
FIXTURE_LABEL = re.compile(r'([a-zA-Z_]\w*)\s*=\s*"')


def fixture_problems(series: str) -> list[str]:
    """A promtool input series whose name or labels the pinned exporters never write."""
    parsed = FIXTURE_SERIES.fullmatch(series)
    assert parsed, series
    name, labels = parsed.group(1), set(FIXTURE_LABEL.findall(parsed.group(2)))
    if name not in SERIES:
        return [f"{name}: no pinned exporter exposes it"]
    return [f"{name}: no label {label!r} upstream" for label in sorted(labels - SERIES[name])]


# -- the contracts --------------------------------------------------------------------------


@pytest.mark.parametrize("metric", sorted(metrics.METRICS))
def test_every_listed_metric_is_exposed_upstream_with_its_kind(metric: str) -> None:
    listed = metrics.METRICS[metric]
    family = upstream_families()[listed.source].get(listed.name)
    assert family is not None, f"{listed.name} is not exposed by the pinned {listed.source}"
    assert family.kind == listed.kind


@pytest.mark.parametrize(
    ("where", "expression", "read"), EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS]
)
def test_every_query_uses_only_upstream_names_and_labels(where, expression, read) -> None:
    assert selectors(expression), where
    assert name_problems(expression, read) == []


def test_the_queries_checked_are_all_of_them() -> None:
    # 9 alert rules, 25 dashboard targets and the $model variable query, 1 autoscaler query.
    assert [len(alert_expressions()), len(dashboard_expressions())] == [9, 26]
    assert len(EXPRESSIONS) == 36


@pytest.mark.parametrize("series", fixture_series())
def test_promtool_fixtures_feed_only_labels_the_exporters_write(series: str) -> None:
    assert fixture_problems(series) == []


def test_the_contract_sees_a_misspelt_name_or_label() -> None:
    # The GPU alert as it was before dcgm-exporter 4.8.3 renamed the node label.
    assert name_problems("max by (Hostname, gpu) (DCGM_FI_DEV_XID_ERRORS) > 0") == [
        "DCGM_FI_DEV_XID_ERRORS: no label 'Hostname' upstream"
    ]
    assert name_problems('sum(vllm:num_request_waiting{model_name="m"})') == [
        "vllm:num_request_waiting: no pinned exporter exposes it"
    ]
    assert name_problems('sum(vllm:num_requests_waiting{model="m"})') == [
        "vllm:num_requests_waiting: no label 'model' upstream"
    ]
    assert name_problems("sum by (model_name) (vllm:kv_cache_usage_perc)", {"modelname"}) == [
        "vllm:kv_cache_usage_perc: no label 'modelname' upstream"
    ]
    assert fixture_problems('DCGM_FI_DEV_XID_ERRORS{Hostname="aks-a100-0", gpu="0"}') == [
        "DCGM_FI_DEV_XID_ERRORS: no label 'Hostname' upstream"
    ]


def test_the_node_label_of_gpu_samples_is_the_exporters() -> None:
    assert metrics.DCGM_NODE_LABEL in _lines(DCGM / "gpu-labels.txt")
    assert "Hostname" not in SERIES["DCGM_FI_DEV_XID_ERRORS"]


def test_http_status_codes_are_grouped_as_the_error_alert_expects() -> None:
    """VllmErrorRatioHigh matches status="5xx": the instrumentator's default groups codes."""
    assert _json(HTTP / "grouping.json") == {"should_group_status_codes": True}
    error_ratio = next(e for w, e, _ in alert_expressions() if w == "VllmErrorRatioHigh")
    assert 'status="5xx"' in error_ratio


def test_edge_refusals_are_counted_by_status_code_and_ingress() -> None:
    """The refusal alert and panel match status codes ("429"), not classes ("4xx"): the
    controller reports codes unless --report-status-classes is set, which it is not by
    default; they select the Ingress's namespace as stored after the scrape."""
    assert _json(INGRESS_NGINX / "flags.json") == {
        "metrics-per-host": True,
        "report-status-classes": False,
    }
    requests = SERIES["nginx_ingress_controller_requests"]
    assert {"status", "ingress", "exported_namespace", "exported_service", "host"} <= requests
    refusing = next(e for w, e, _ in alert_expressions() if w == "EdgeRefusingRequests")
    assert 'exported_namespace="slm-inference", status=~"429|503"' in refusing
    # A misspelt label is caught on this family as on the others.
    assert name_problems(
        'sum(rate(nginx_ingress_controller_requests{exported_namespace="x", statuss="429"}[5m]))'
    ) == ["nginx_ingress_controller_requests: no label 'statuss' upstream"]
