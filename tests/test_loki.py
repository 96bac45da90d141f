"""Logs with in-cluster monitoring (components/loki.py): Loki and Alloy from their pinned
charts, values that exist in the vendored charts, retention from the config, Grafana's
data source, and exactly the network flows logs need."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from components import loki
from components.network import NetworkPoliciesArgs, Peer, network_policy_specs
from tests import netpol
from tests.conftest import copy_config_root, fixture_root, read_stack, write_stack
from tests.test_helm_contracts import unknown_paths
from tests.test_mode_matrix import plan_problems
from tools.plan import build_plan, helm_releases, plain_numbers

UPSTREAM = Path(__file__).parent / "upstream"
# Maps the loki chart copies whole into Loki's config file (templates/_helpers.tpl's config:
# `tpl (. | toYaml)` and `toYaml .Values.loki.schemaConfig`): their keys are Loki's own.
LOKI_FREE_FORM = {
    "loki.compactor": "values.yaml loki.config: with .Values.loki.compactor, toYaml",
    "loki.limits_config": "values.yaml loki.config: with .Values.loki.limits_config, toYaml",
    "loki.schemaConfig": "values.yaml loki.config: toYaml .Values.loki.schemaConfig",
    "singleBinary.resources": "templates/_pod.tpl: with (coalesce $component.resources ...)",
}
ALLOY_FREE_FORM = {
    "alloy.resources": "templates/containers/_agent.yaml: with $values.resources, toYaml",
}
VENDORED = {
    (loki.LOKI_CHART.chart, loki.LOKI_CHART.version): ("loki-chart-18.11.0", LOKI_FREE_FORM),
    (loki.ALLOY_CHART.chart, loki.ALLOY_CHART.version): ("alloy-chart-1.11.1", ALLOY_FREE_FORM),
}


def _args(retention_days: int = 30) -> loki.LogsArgs:
    return loki.LogsArgs(
        namespace="slm-monitoring",
        collector_namespace="slm-system",
        source_namespaces=("slm-inference", "slm-monitoring", "slm-system"),
        retention_days=retention_days,
    )


def test_the_values_exist_in_the_vendored_charts() -> None:
    for pin, values in (
        (loki.LOKI_CHART, loki.loki_values(_args())),
        (loki.ALLOY_CHART, loki.alloy_values(_args())),
    ):
        folder, free_form = VENDORED[(pin.chart, pin.version)]
        defaults = json.loads((UPSTREAM / folder / "values.json").read_text())
        assert unknown_paths(plain_numbers(values), defaults, free_form) == [], pin.chart


def test_a_misspelt_value_is_caught() -> None:
    folder, free_form = VENDORED[(loki.LOKI_CHART.chart, loki.LOKI_CHART.version)]
    defaults = json.loads((UPSTREAM / folder / "values.json").read_text())
    values = loki.loki_values(_args()) | {"singleBinary": {"replica": 1}}
    assert unknown_paths(values, defaults, free_form) == [
        "singleBinary.replica: not a value of the chart"
    ]


def test_retention_is_the_compactors_in_hours() -> None:
    values = loki.loki_values(_args(7))["loki"]
    assert values["limits_config"] == {"retention_period": "168h"}
    assert values["compactor"] == {"retention_enabled": True, "delete_request_store": "filesystem"}
    assert values["auth_enabled"] is False
    assert values["storage"] == {"type": "filesystem"}


def test_loki_runs_alone_without_gateway_caches_or_self_monitoring() -> None:
    values = loki.loki_values(_args())
    assert values["deploymentMode"] == "Monolithic"
    assert values["singleBinary"]["replicas"] == 1
    assert values["singleBinary"]["persistence"] == {"enabled": True}
    for component in ("backend", "read", "write"):
        assert values[component] == {"replicas": 0}
    for extra in ("gateway", "lokiCanary", "test", "chunksCache", "resultsCache"):
        assert values[extra] == {"enabled": False}
    assert values["sidecar"] == {"rules": {"enabled": False}}
    # The chart's self-monitoring stays at its defaults: off.
    assert "monitoring" not in values


def test_alloy_reads_the_given_namespaces_on_its_own_node() -> None:
    values = loki.alloy_values(_args())
    content = values["alloy"]["configMap"]["content"]
    assert 'names = ["slm-inference", "slm-monitoring", "slm-system"]' in content
    assert 'field = "spec.nodeName=" + sys.env("HOSTNAME")' in content
    assert 'url = "http://loki.slm-monitoring.svc:3100/loki/api/v1/push"' in content
    for label in loki.LOG_LABELS:
        assert f'target_label  = "{label}"' in content
    assert values["controller"]["type"] == "daemonset"
    assert values["alloy"]["mounts"] == {"varlog": True}


def test_grafana_of_the_in_cluster_stacks_reads_loki(plans) -> None:
    for stack in ("dev", "staging", "prod"):
        (release,) = [
            r
            for r in helm_releases(plans[stack]["resources"])
            if r["chart"] == "kube-prometheus-stack"
        ]
        assert release["values"]["grafana"]["additionalDataSources"] == [
            {
                "name": "Loki",
                "type": "loki",
                "uid": "loki",
                "access": "proxy",
                "url": "http://loki.slm-monitoring.svc:3100",
            }
        ]


ALLOY = netpol.Pod("slm-system", {"app.kubernetes.io/name": "alloy"})
LOKI = netpol.Pod("slm-monitoring", {"app.kubernetes.io/name": "loki"})
GRAFANA = netpol.Pod("slm-monitoring", {"app.kubernetes.io/name": "grafana"})
DCGM = netpol.Pod("slm-system", {"app.kubernetes.io/name": "dcgm-exporter"})
MODEL = netpol.Pod("slm-inference", {"app.kubernetes.io/component": "inference"})
API_SERVER = netpol.External("10.0.0.1")


def _log_flows(policies: dict[str, dict[str, dict]]) -> None:
    """Alloy pushes to Loki's port, Grafana reads it, and nothing else reaches Loki."""
    assert netpol.allowed(policies, ALLOY, LOKI, loki.LOKI_PORT)
    assert netpol.allowed(policies, GRAFANA, LOKI, loki.LOKI_PORT)
    # Alloy discovers pods through the API server: its namespace's egress is open.
    assert netpol.allowed(policies, ALLOY, API_SERVER, 443)
    assert not netpol.allowed(policies, ALLOY, LOKI, 9095)
    assert not netpol.allowed(policies, ALLOY, GRAFANA, 3000)
    assert not netpol.allowed(policies, DCGM, LOKI, loki.LOKI_PORT)
    assert not netpol.allowed(policies, MODEL, LOKI, loki.LOKI_PORT)


def test_network_policies_allow_exactly_the_log_flows() -> None:
    args = NetworkPoliciesArgs(
        inference_namespace="slm-inference",
        clients=(),
        monitoring_namespace="slm-monitoring",
        node_system_namespace="slm-system",
        log_shippers=(Peer("slm-system", loki.ALLOY_PODS),),
    )
    _log_flows(network_policy_specs(args))
    without = network_policy_specs(replace(args, log_shippers=()))
    assert not netpol.allowed(without, ALLOY, LOKI, loki.LOKI_PORT)


# -- the plans, once the platform declares Logs (components/platform.py) --------------------


@pytest.fixture(scope="module")
def in_cluster(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """dev (AKS, in-cluster, retention 30 days by default), and local (an existing
    cluster) switched to in-cluster monitoring with 7 days of logs."""
    root = copy_config_root(tmp_path_factory.mktemp("loki"))
    document = read_stack(root, "local")
    config = document["config"]
    config["slm-deploy:monitoring"] = config.get("slm-deploy:monitoring", {}) | {
        "mode": "in-cluster",
        "logs": {"retentionDays": 7},
    }
    write_stack(root, "local", document)
    return {
        "dev": build_plan("dev", config_root=fixture_root()),
        "local": build_plan("local", config_root=root),
    }


def _releases(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["chart"]: r | {"values": plain_numbers(r["values"])}
        for r in helm_releases(plan["resources"])
    }


def test_the_plans_declare_both_charts_at_their_pins(in_cluster) -> None:
    for plan in in_cluster.values():
        releases = _releases(plan)
        assert (releases["loki"]["version"], releases["loki"]["namespace"]) == (
            "18.11.0",
            "slm-monitoring",
        )
        assert (releases["alloy"]["version"], releases["alloy"]["namespace"]) == (
            "1.11.1",
            "slm-system",
        )


def test_the_plans_values_exist_in_the_vendored_charts(in_cluster) -> None:
    for plan in in_cluster.values():
        for chart in ("loki", "alloy"):
            release = _releases(plan)[chart]
            folder, free_form = VENDORED[(chart, release["version"])]
            defaults = json.loads((UPSTREAM / folder / "values.json").read_text())
            assert unknown_paths(release["values"], defaults, free_form) == [], chart


def test_the_plans_retention_follows_the_config(in_cluster) -> None:
    expected = {"dev": "720h", "local": "168h"}
    for stack, plan in in_cluster.items():
        values = _releases(plan)["loki"]["values"]["loki"]
        assert values["limits_config"] == {"retention_period": expected[stack]}


def test_alloy_reads_every_platform_namespace(in_cluster) -> None:
    for stack, plan in in_cluster.items():
        declared = sorted(
            r["inputs"]["metadata"]["name"]
            for r in plan["resources"]
            if r["type"] == "kubernetes:core/v1:Namespace"
        )
        content = _releases(plan)["alloy"]["values"]["alloy"]["configMap"]["content"]
        names = content.split("names = [", 1)[1].split("]", 1)[0]
        assert sorted(n.strip().strip('"') for n in names.split(",")) == declared, stack


def test_the_plans_network_policies_allow_exactly_the_log_flows(in_cluster) -> None:
    for plan in in_cluster.values():
        _log_flows(netpol.policies_by_namespace(plan["resources"]))


def test_the_plans_pass_the_mode_matrix_checks(in_cluster) -> None:
    for stack, plan in in_cluster.items():
        assert plan_problems(plan) == [], stack


def test_without_in_cluster_monitoring_there_is_no_loki(plans, tmp_path) -> None:
    root = copy_config_root(tmp_path)
    document = read_stack(root, "staging")
    document["config"]["slm-deploy:monitoring"] = document["config"].get(
        "slm-deploy:monitoring", {}
    ) | {"mode": "azure-managed"}
    write_stack(root, "staging", document)
    managed = build_plan("staging", config_root=root)
    for plan in (plans["local"], managed):
        charts = {r["chart"] for r in helm_releases(plan["resources"])}
        assert charts.isdisjoint({"loki", "alloy"})
        policies = netpol.policies_by_namespace(plan["resources"])
        assert all("allow-log-push" not in named for named in policies.values())


def test_log_queries_select_one_models_pods_or_one_node() -> None:
    assert loki.model_logs_query("slm-inference", "phi4-mini") == (
        '{namespace="slm-inference", pod=~"phi4-mini-[a-z0-9]+-[a-z0-9]+"}'
    )
    assert loki.model_logs_query("slm-inference", "phi4", '|~ "(?i)error"') == (
        '{namespace="slm-inference", pod=~"phi4-[a-z0-9]+-[a-z0-9]+"} |~ "(?i)error"'
    )
    assert loki.node_logs_query("aks-t4spot-1", "slm-system") == (
        '{namespace="slm-system", node="aks-t4spot-1"}'
    )
