"""Monitoring: the alert rules under promtool, the dashboard's queries, what each mode declares."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import alerts, dashboards, metrics
from components.config import DEFAULT_RUNBOOK_URL, AlertThresholds
from components.monitoring import iso_duration
from tests.conftest import copy_config_root, read_stack, resources_of, write_stack
from tests.promql_names import series_in, unlisted_series
from tools.plan import build_plan, kubernetes_manifests

PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "serving_alerts_test.yaml"
ALERTS = [
    "VllmTimeToFirstTokenHigh",
    "VllmQueueSustained",
    "VllmKvCacheNearlyFull",
    "VllmErrorRatioHigh",
    "EdgeRefusingRequests",
    "ModelPodCrashLooping",
    "ModelPodOomKilled",
    "GpuXidError",
    "GpuPodsPending",
]


def promtool() -> str:
    """promtool must be there: a missing one fails the suite, never skips it."""
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool not found: install Debian's prometheus package (.ci/run does)")
    return found


def _rules_file(directory: Path, groups: list[dict[str, Any]]) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120
    )


# -- alert rules ---------------------------------------------------------------------------


def test_every_alert_has_a_firing_and_a_silent_promtool_case(tmp_path: Path) -> None:
    groups = alerts.rule_groups(AlertThresholds(), "slm-inference", DEFAULT_RUNBOOK_URL)
    assert [rule["alert"] for rule in groups[0]["rules"]] == ALERTS
    _rules_file(tmp_path, groups)
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    result = _promtool("test", "rules", tmp_path / PROMTOOL_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    # The test file itself holds a case that expects each alert and one that expects none.
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    for alert in ALERTS:
        outcomes = [bool(c["exp_alerts"]) for c in checks if c["alertname"] == alert]
        assert True in outcomes and False in outcomes, alert


def test_promtool_catches_a_broken_threshold(tmp_path: Path) -> None:
    """The unit tests can fail: a KV-cache rule that never fires breaks them."""
    groups = alerts.rule_groups(AlertThresholds(), "slm-inference", DEFAULT_RUNBOOK_URL)
    kv = next(r for r in groups[0]["rules"] if r["alert"] == "VllmKvCacheNearlyFull")
    kv["expr"] = kv["expr"].replace("> 0.9", "> 0.99")
    _rules_file(tmp_path, groups)
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    result = _promtool("test", "rules", tmp_path / PROMTOOL_TESTS.name)
    assert result.returncode == 1
    assert "alertname: VllmKvCacheNearlyFull" in result.stdout + result.stderr


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stacks_prometheus_rule_passes_promtool_check(plans, stack, tmp_path) -> None:
    manifests = kubernetes_manifests(plans[stack]["resources"])
    rule = manifests["slm-monitoring/prometheusrule-slm-serving.yaml"]
    path = _rules_file(tmp_path, rule["spec"]["groups"])
    result = _promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_thresholds_and_runbook_links_follow_the_stack_config() -> None:
    thresholds = AlertThresholds.model_validate(
        {"ttftP95Seconds": 0.8, "queueWaiting": 3, "errorRatio": 0.01}
    )
    rules = {
        r["alert"]: r
        for r in alerts.rule_groups(thresholds, "ns", "https://git.example/runbook.md")[0]["rules"]
    }
    assert rules["VllmTimeToFirstTokenHigh"]["expr"].endswith("> 0.8")
    assert rules["VllmQueueSustained"]["expr"].endswith("> 3")
    assert rules["VllmErrorRatioHigh"]["expr"].endswith("> 0.01")
    assert rules["VllmErrorRatioHigh"]["annotations"]["summary"] == (
        "{{ $labels.service }}: more than 1% of requests fail"
    )
    assert rules["GpuXidError"]["annotations"]["runbook_url"] == (
        "https://git.example/runbook.md#gpuxiderror"
    )
    assert {r["labels"]["severity"] for r in rules.values()} == {"warning", "critical"}


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (Path(__file__).parents[1] / "docs" / "runbook.md").read_text()
    anchors = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    assert {alert.lower() for alert in ALERTS} <= anchors


def test_alert_rules_use_only_listed_metrics() -> None:
    groups = alerts.rule_groups(AlertThresholds(), "slm-inference", DEFAULT_RUNBOOK_URL)
    for rule in groups[0]["rules"]:
        assert series_in(rule["expr"]), rule["alert"]
        assert unlisted_series(rule["expr"]) == set(), rule["alert"]


# -- dashboard ------------------------------------------------------------------------------

LABEL_VALUES = re.compile(r"label_values\((.*),\s*\w+\)")


def dashboard_expressions(board) -> list[str]:
    """Every PromQL expression the dashboard runs: panel targets and variable queries."""
    document = json.loads(dashboards.dashboard_json(board))
    found = [
        target["expr"]
        for panel in document.get("panels", [])
        for target in panel.get("targets", [])
    ]
    for variable in document.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            # label_values(<selector>, <label>): the selector is the expression.
            query = LABEL_VALUES.fullmatch(variable["query"])
            found.append(query.group(1) if query else variable["query"])
    return found


def test_dashboard_queries_use_only_listed_metrics() -> None:
    board = dashboards.serving_dashboard("slm-inference")
    expressions = dashboard_expressions(board)
    assert len(expressions) == 26
    for expression in expressions:
        assert series_in(expression), expression
        assert unlisted_series(expression) == set(), expression


def test_the_metric_check_sees_an_unlisted_name() -> None:
    assert unlisted_series(
        'sum by (model_name) (rate(vllm:gpu_cache_usage_perc{model_name=~"$model"}[5m]))'
    ) == {"vllm:gpu_cache_usage_perc"}
    assert series_in(
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="y"}[$__rate_interval]))) > 2'
    ) == {"a_bucket"}
    with pytest.raises(KeyError, match="vllm:time_per_output_token_seconds"):
        metrics.name("vllm:time_per_output_token_seconds")


def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    document = json.loads(dashboards.dashboard_json(dashboards.serving_dashboard("ns")))
    rows = [p["title"] for p in document["panels"] if p["type"] == "row"]
    assert rows == ["Traffic", "Latency", "Engine", "GPUs", "Scaling"]
    panels = {p["title"]: p for p in document["panels"] if p["type"] == "timeseries"}
    assert list(panels) == [
        "Requests finished per second",
        "HTTP responses per second by status",
        "Requests refused at the edge per second",
        "Time to first token",
        "Inter-token latency",
        "End-to-end latency",
        "Requests waiting and running",
        "KV-cache usage",
        "Prefix-cache hit rate",
        "Tokens per second",
        "GPU utilisation",
        "GPU memory used",
        "GPU temperature",
        "GPU power",
        "Replicas and desired replicas",
        "Pending pods",
    ]
    ttft = panels["Time to first token"]["targets"]
    assert [t["legendFormat"] for t in ttft] == [
        "{{model_name}} p50",
        "{{model_name}} p95",
        "{{model_name}} p99",
    ]
    assert ttft[1]["expr"] == (
        "histogram_quantile(0.95, sum by (model_name, le) "
        '(rate(vllm:time_to_first_token_seconds_bucket{model_name=~"$model"}[$__rate_interval])))'
    )
    assert panels["KV-cache usage"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert document["uid"] == "slm-serving"
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["query"] == (
        'label_values(vllm:num_requests_running{namespace="ns"}, model_name)'
    )


def test_dashboard_json_is_stable() -> None:
    one = dashboards.dashboard_json(dashboards.serving_dashboard("ns"))
    two = dashboards.dashboard_json(dashboards.serving_dashboard("ns"))
    assert one == two


# -- in-cluster: kube-prometheus-stack ----------------------------------------------------------


def test_prod_installs_kube_prometheus_stack_sized_for_prod(plans) -> None:
    (release,) = [
        r
        for r in resources_of(plans["prod"], "kubernetes:helm.sh/v3:Release")
        if r["inputs"]["chart"] == "kube-prometheus-stack"
    ]
    inputs = release["inputs"]
    assert (inputs["chart"], inputs["version"], inputs["name"]) == (
        "kube-prometheus-stack",
        "92.2.0",
        "kps",
    )
    assert inputs["repositoryOpts"]["repo"] == "https://prometheus-community.github.io/helm-charts"
    assert inputs["namespace"] == "slm-monitoring"
    assert inputs["atomic"] is True
    spec = inputs["values"]["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d"
    assert spec["retentionSize"] == "85GB"
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"] == {
        "requests": {"storage": "100Gi"}
    }
    for selector in ("serviceMonitor", "podMonitor", "rule"):
        assert spec[f"{selector}SelectorNilUsesHelmValues"] is False
    assert spec["tolerations"][0]["key"] == "CriticalAddonsOnly"
    grafana = inputs["values"]["grafana"]
    assert grafana["admin"]["existingSecret"] == "grafana-admin"
    assert grafana["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    assert plans["prod"]["outputs"]["prometheusUrl"] == (
        "http://kps-prometheus.slm-monitoring.svc:9090"
    )
    assert plans["prod"]["outputs"]["grafanaUrl"] == "http://kps-grafana.slm-monitoring.svc"


def test_custom_resources_wait_for_the_release_that_installs_their_crds(plans) -> None:
    resources = plans["prod"]["resources"]
    (release,) = [
        r
        for r in resources_of(plans["prod"], "kubernetes:helm.sh/v3:Release")
        if r["inputs"]["chart"] == "kube-prometheus-stack"
    ]
    dcgm = next(r for r in resources if r["type"] == "slm:gpu_pool:GpuSoftware")
    custom = [r for r in resources if r["type"].startswith("kubernetes:monitoring.coreos.com")]
    assert {r["inputs"]["kind"] for r in custom} == {"ServiceMonitor", "PrometheusRule"}
    for resource in custom:
        assert release["urn"] in resource["dependencies"], resource["urn"]
    assert release["urn"] in dcgm["dependencies"]


def test_vllm_is_scraped_every_15s_and_the_dashboard_is_loaded(plans) -> None:
    manifests = kubernetes_manifests(plans["dev"]["resources"])
    monitor = manifests["slm-monitoring/servicemonitor-vllm.yaml"]
    assert monitor["spec"]["endpoints"] == [{"interval": "15s", "path": "/metrics", "port": "http"}]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["slm-inference"]}
    service = manifests["slm-inference/service-phi4-mini.yaml"]
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert service["metadata"]["labels"][key] == value
    board = manifests["slm-monitoring/configmap-dashboard-slm-serving.yaml"]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["slm-serving.json"])["title"] == "SLM serving"
    # Prometheus may reach the model servers through the default-deny policy.
    clients = manifests["slm-inference/networkpolicy-allow-clients.yaml"]
    allowed = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in clients["spec"]["ingress"]
        for peer in rule["from"]
    ]
    assert "slm-monitoring" in allowed


# -- Azure managed ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def managed_plan(tmp_path_factory) -> dict[str, Any]:

    root = tmp_path_factory.mktemp("managed")
    copy_config_root(root)
    document = read_stack(root, "staging")
    document["config"]["slm-deploy:monitoring"] = {"mode": "azure-managed"}
    document["config"]["slm-deploy:models"][0]["replicas"] = {"min": 1, "max": 2}
    write_stack(root, "staging", document)
    return build_plan("staging", config_root=root)


def test_azure_managed_sends_metrics_to_a_workspace(managed_plan) -> None:
    (cluster,) = resources_of(managed_plan, "azure-native:containerservice:ManagedCluster")
    assert cluster["inputs"]["azureMonitorProfile"] == {"metrics": {"enabled": True}}
    (workspace,) = resources_of(managed_plan, "azure-native:monitor:AzureMonitorWorkspace")
    assert workspace["inputs"]["azureMonitorWorkspaceName"] == "amw-slm-staging"
    # The metrics rule; the container logs have their own (tests/test_container_logs.py).
    (rule,) = [
        r
        for r in resources_of(managed_plan, "azure-native:monitor:DataCollectionRule")
        if r["name"] == "slm-monitoring-dcr"
    ]
    inputs = rule["inputs"]
    assert inputs["dataCollectionRuleName"] == "MSProm-eastus-aks-slm-staging"
    assert inputs["dataSources"]["prometheusForwarder"][0]["streams"] == [
        "Microsoft-PrometheusMetrics"
    ]
    assert inputs["dataFlows"] == [
        {"destinations": ["MonitoringAccount1"], "streams": ["Microsoft-PrometheusMetrics"]}
    ]
    (association,) = [
        r
        for r in resources_of(managed_plan, "azure-native:monitor:DataCollectionRuleAssociation")
        if r["inputs"]["dataCollectionRuleId"] == "slm-monitoring-dcr-id"
    ]
    assert association["inputs"]["resourceUri"] == "slm-cluster-aks-id"
    assert association["inputs"]["dataCollectionRuleId"] == "slm-monitoring-dcr-id"
    assert resources_of(managed_plan, "kubernetes:helm.sh/v3:Release") == []


def test_azure_managed_alerts_are_the_same_rules(managed_plan) -> None:
    (group,) = resources_of(managed_plan, "azure-native:alertsmanagement:PrometheusRuleGroup")
    rules = group["inputs"]["rules"]
    assert [r["alert"] for r in rules] == ALERTS
    # phi4-mini's queue limit: KEDA's threshold per replica times replicas.max (2).
    phi = managed_plan["outputs"]["models"]["phi4-mini"]["capacity"]
    limits = {"phi4-mini": phi["queuePerReplica"] * 2}
    expected = alerts.rule_groups(AlertThresholds(), "slm-inference", DEFAULT_RUNBOOK_URL, limits)
    assert [r["expression"] for r in rules] == [r["expr"] for r in expected[0]["rules"]]
    assert rules[0]["for"] == "PT10M"
    assert "for" not in rules[6]  # GpuXidError fires at once
    assert rules[3]["severity"] == 1 and rules[0]["severity"] == 2
    assert group["inputs"]["interval"] == "PT1M"
    assert iso_duration("15m") == "PT15M" and iso_duration("0m") is None


def test_azure_managed_grafana_reads_the_workspace(managed_plan) -> None:
    (grafana,) = resources_of(managed_plan, "azure-native:dashboard:Grafana")
    properties = grafana["inputs"]["properties"]
    assert properties["apiKey"] == "Disabled"
    assert properties["grafanaMajorVersion"] == "11"
    roles = {
        r["name"]: r["inputs"]["roleDefinitionId"].rsplit("/", 1)[1]
        for r in resources_of(managed_plan, "azure-native:authorization:RoleAssignment")
    }
    assert roles["slm-monitoring-grafana-reads-workspace"] == "b0d8363b-8ddd-447d-831f-62ca05bff136"
    assert roles["slm-monitoring-keda-reads-workspace"] == "b0d8363b-8ddd-447d-831f-62ca05bff136"
    assert roles["slm-monitoring-deployer-grafana-admin"] == "22926164-76b3-42b3-bc55-97df8dab3e41"


def test_azure_managed_keda_signs_in_with_workload_identity(managed_plan) -> None:
    (credential,) = [
        c
        for c in resources_of(
            managed_plan, "azure-native:managedidentity:FederatedIdentityCredential"
        )
        if c["name"] == "slm-monitoring-keda-federation"
    ]
    assert credential["inputs"]["subject"] == "system:serviceaccount:kube-system:keda-operator"
    assert credential["inputs"]["audiences"] == ["api://AzureADTokenExchange"]
    manifests = kubernetes_manifests(managed_plan["resources"])
    auth = manifests["slm-inference/triggerauthentication-azure-managed-prometheus.yaml"]
    assert auth["spec"]["podIdentity"]["provider"] == "azure-workload"
    scaled = manifests["slm-inference/scaledobject-phi4-mini.yaml"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["authenticationRef"] == {"name": "azure-managed-prometheus"}
    monitor = manifests["slm-inference/servicemonitor-vllm.yaml"]
    assert monitor["apiVersion"] == "azmonitoring.coreos.com/v1"
    dcgm = next(
        r
        for r in resources_of(managed_plan, "kubernetes:helm.sh/v4:Chart")
        if r["inputs"]["chart"] == "dcgm-exporter"
    )
    assert dcgm["inputs"]["values"]["serviceMonitor"]["apiVersion"] == "azmonitoring.coreos.com/v1"
    clients = manifests["slm-inference/networkpolicy-allow-clients.yaml"]
    assert "kube-system" in json.dumps(clients["spec"]["ingress"])


def test_dashboard_tool_prints_the_same_dashboard(capsys) -> None:
    from tools.dashboard import main

    assert main(["--namespace", "team-a"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(dashboards.dashboard_json(dashboards.serving_dashboard("team-a")))
    assert 'namespace="team-a"' in printed["templating"]["list"][1]["query"]


# -- the edge controller's metrics (EdgeRefusingRequests) ---------------------------------------

APP_ROUTING = Path(__file__).parent / "upstream" / "aks-app-routing-operator-3c53bef"


def _with_ingress(tmp_path: Path, stack: str, monitoring: dict[str, Any]) -> dict[str, Any]:

    copy_config_root(tmp_path)
    document = read_stack(tmp_path, stack)
    document["config"]["slm-deploy:monitoring"] = monitoring
    document["config"]["slm-deploy:ingress"] = {"enabled": True, "host": "slm.example.com"}
    write_stack(tmp_path, stack, document)
    return build_plan(stack, config_root=tmp_path)


def _edge_monitors(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == "ServiceMonitor" and m["metadata"]["name"] == "edge-controller"
    ]


@pytest.mark.parametrize(
    ("monitoring", "api_version", "namespace"),
    [
        ({"mode": "in-cluster"}, "monitoring.coreos.com/v1", "slm-monitoring"),
        ({"mode": "azure-managed"}, "azmonitoring.coreos.com/v1", "slm-inference"),
    ],
)
def test_the_edge_controller_that_counts_refusals_is_scraped(
    tmp_path: Path, monitoring, api_version, namespace
) -> None:
    """The ServiceMonitor selects the Service AKS application routing creates for its NGINX's
    metrics, as the operator's code labels it, on the port it names."""
    common = json.loads((APP_ROUTING / "common.json").read_text())
    nginx = json.loads((APP_ROUTING / "nginx.json").read_text())
    operator_namespace = json.loads((APP_ROUTING / "config.json").read_text())
    service_labels = {
        **common["topLevelLabels"],
        common["componentLabelKey"]: nginx["metricsServiceComponent"],
    }
    plan = _with_ingress(tmp_path, "dev", monitoring)
    (monitor,) = _edge_monitors(plan)
    assert (monitor["apiVersion"], monitor["metadata"]["namespace"]) == (api_version, namespace)
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [operator_namespace["defaultNamespace"]]}
    assert spec["selector"]["matchLabels"].items() <= service_labels.items()
    assert spec["endpoints"] == [
        {"port": nginx["metricsPortName"], "path": "/metrics", "interval": "15s"}
    ]
    assert nginx["metricsEnabled"] is True


def test_without_an_ingress_no_edge_controller_is_scraped(plans) -> None:
    for stack, plan in plans.items():
        manifests = kubernetes_manifests(plan["resources"]).values()
        if not any(m["kind"] == "Ingress" for m in manifests):
            assert _edge_monitors(plan) == [], stack


def test_azure_managed_history_and_dashboards_are_protected_in_prod_only(
    managed_plan, tmp_path
) -> None:
    """The workspace holds the metrics history and Grafana the dashboards made in its UI:
    prod keeps them from deletion, as it keeps its vault and caches (docs/backups.md)."""
    kinds = ("azure-native:monitor:AzureMonitorWorkspace", "azure-native:dashboard:Grafana")
    assert [r["protect"] for kind in kinds for r in resources_of(managed_plan, kind)] == [
        False,
        False,
    ]
    root = copy_config_root(tmp_path)
    document = read_stack(root, "prod")
    document["config"]["slm-deploy:monitoring"]["mode"] = "azure-managed"
    write_stack(root, "prod", document)
    prod = build_plan("prod", config_root=root)
    assert [r["protect"] for kind in kinds for r in resources_of(prod, kind)] == [True, True]


def test_the_queue_alert_holds_each_model_to_its_own_limit(tmp_path: Path) -> None:
    """Below KEDA's threshold times replicas.max a queue is what the autoscaler aims at:
    the alert fires past each model's own limit, not one figure for all."""
    limits = {"phi4-mini": 20, "qwen3-8b": 4}
    groups = alerts.rule_groups(AlertThresholds(), "slm-inference", DEFAULT_RUNBOOK_URL, limits)
    _rules_file(tmp_path, groups)
    test_file = PROMTOOL_TESTS.with_name("queue_limits_test.yaml")
    shutil.copy(test_file, tmp_path / test_file.name)
    result = _promtool("test", "rules", tmp_path / test_file.name)
    assert result.returncode == 0, result.stdout + result.stderr
    # A stack's own figure still applies to every model.
    uniform = alerts.rule_groups(
        AlertThresholds.model_validate({"queueWaiting": 3}),
        "slm-inference",
        DEFAULT_RUNBOOK_URL,
        limits,
    )
    rule = next(r for r in uniform[0]["rules"] if r["alert"] == "VllmQueueSustained")
    assert rule["expr"].endswith(") > 3") and "model_name=" not in rule["expr"]
