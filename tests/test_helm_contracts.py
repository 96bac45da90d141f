"""Every Helm value the plans set, checked against the pinned chart's own values.yaml (and
values.schema.json where the chart has one), plus the template facts that decide whether
what the chart renders is accepted: a ServiceMonitor's scrapeTimeout within its interval.

Helm accepts any key: a misspelt or moved value is silently ignored, and the chart renders
its default instead. The charts' files at the pinned versions are in tests/upstream/;
kube-prometheus-stack's are those of 88.5.3, a lower bound for the pinned 92.2.0, which
could not be read (what that can miss: its folder's source.json).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components import gpu_pool, loki, monitoring
from tests.conftest import FIXTURE_STACKS, read_stack, write_stack
from tools.plan import build_plan, helm_releases, kubernetes_manifests, plain_numbers

UPSTREAM = Path(__file__).parent / "upstream"


@dataclass(frozen=True)
class Subchart:
    """A subchart's defaults (and schema, where it has one), as paths under UPSTREAM."""

    values: str
    schema: str | None = None


@dataclass(frozen=True)
class VendoredChart:
    folder: str
    # Value paths (dot-separated, subcharts' under their key) whose content the chart passes
    # through whole (toYaml into a pod spec or a custom resource), so keys below them are
    # Kubernetes' or the operator's, not the chart's: each with the template that shows it.
    free_form: dict[str, str] = field(default_factory=dict)
    # Subcharts: the key their values sit under, and their vendored files.
    subcharts: dict[str, Subchart] = field(default_factory=dict)
    # The chart version vendored when the pinned one could not be read: a lower bound for
    # the pin, with the reason in its source.json. Empty when the pin itself is vendored.
    stand_in: str = ""

    def own_values(self) -> dict[str, Any]:
        return _json(self.folder + "/values.json")

    def values(self) -> dict[str, Any]:
        """The chart's defaults as Helm coalesces them: each subchart's defaults under its
        key, overridden by the parent's block for that key."""
        values = self.own_values()
        for key, subchart in self.subcharts.items():
            values[key] = merged(_json(subchart.values), values.get(key) or {})
        return values


def _json(path: str) -> Any:
    return json.loads((UPSTREAM / path).read_text())


# kube-prometheus-stack 88.5.3's templates (ksm: kube-state-metrics 8.4.0's; grafana:
# grafana 12.11.1's) that copy each map whole into a pod spec or the Prometheus resource.
KPS = "kube-prometheus-stack templates/"
KUBE_PROMETHEUS_STACK_FREE_FORM = {
    "prometheus.prometheusSpec.storageSpec": KPS + "prometheus/prometheus.yaml: storage: toYaml",
    "prometheusOperator.containerSecurityContext": (
        KPS + "prometheus-operator/deployment.yaml: container securityContext: toYaml"
    ),
    "kube-state-metrics.containerSecurityContext": (
        "ksm templates/deployment.yaml: container securityContext: toYaml"
    ),
    "grafana.securityContext": "grafana templates/_pod.tpl: with .Values.securityContext, toYaml",
    "grafana.containerSecurityContext": (
        "grafana templates/_pod.tpl: with .Values.containerSecurityContext, toYaml"
    ),
    "grafana.sidecar.securityContext": (
        "grafana templates/_pod.tpl: with .Values.sidecar.securityContext, toYaml"
    ),
    # Read by the template but absent from values.yaml: a map of any annotations.
    "grafana.serviceAccount.annotations": (
        "grafana templates/serviceaccount.yaml: with .Values.serviceAccount.annotations, toYaml"
    ),
}

CHARTS = {
    (loki.LOKI_CHART.chart, loki.LOKI_CHART.version): VendoredChart(
        "loki-chart-18.11.0",
        free_form={
            "loki.compactor": "templates/_helpers.tpl config: with .Values.loki.compactor, toYaml",
            "loki.limits_config": "config: with .Values.loki.limits_config, toYaml",
            "loki.schemaConfig": "config: toYaml .Values.loki.schemaConfig",
            "singleBinary.resources": "templates/_pod.tpl: with (coalesce $component.resources",
        },
    ),
    (loki.ALLOY_CHART.chart, loki.ALLOY_CHART.version): VendoredChart(
        "alloy-chart-1.11.1",
        free_form={"alloy.resources": "templates/containers/_agent.yaml: with $values.resources"},
    ),
    (gpu_pool.DCGM_EXPORTER_CHART.chart, gpu_pool.DCGM_EXPORTER_CHART.version): VendoredChart(
        "dcgm-exporter-4.8.3",
        free_form={
            "affinity": "templates/daemonset.yaml: affinity: toYaml .Values.affinity",
        },
    ),
    (gpu_pool.DEVICE_PLUGIN_CHART.chart, gpu_pool.DEVICE_PLUGIN_CHART.version): VendoredChart(
        "nvidia-device-plugin-0.20.0",
        free_form={
            "affinity": "templates/daemonset-device-plugin.yml: with .Values.affinity, toYaml",
        },
    ),
    (gpu_pool.GPU_OPERATOR_CHART.chart, gpu_pool.GPU_OPERATOR_CHART.version): VendoredChart(
        "gpu-operator-v26.7.0",
        subcharts={
            "node-feature-discovery": Subchart(
                "gpu-operator-v26.7.0/nfd-values.json",
                "gpu-operator-v26.7.0/nfd-values.schema.json",
            )
        },
    ),
    # 92.2.0 could not be read where the contracts were written: 88.5.3, the newest chart
    # that could, with the subchart versions its Chart.yaml names (why that is a sound lower
    # bound, and what it can miss: tests/upstream/kube-prometheus-stack-88.5.3/source.json).
    (monitoring.KUBE_PROMETHEUS_STACK.chart, monitoring.KUBE_PROMETHEUS_STACK.version): (
        VendoredChart(
            "kube-prometheus-stack-88.5.3",
            free_form=KUBE_PROMETHEUS_STACK_FREE_FORM,
            subcharts={
                "grafana": Subchart("grafana-12.11.1/values.json"),
                "kube-state-metrics": Subchart("kube-state-metrics-chart-8.4.0/values.json"),
                "prometheus-node-exporter": Subchart("prometheus-node-exporter-4.56.1/values.json"),
            },
            stand_in="88.5.3",
        )
    ),
}
# Subchart versions the vendored Chart.yaml names, by the folder vendored for each.
SUBCHART_FOLDERS = {
    "kube-prometheus-stack-88.5.3": {
        "grafana": "grafana-12.11.1",
        "kube-state-metrics": "kube-state-metrics-chart-8.4.0",
        "prometheus-node-exporter": "prometheus-node-exporter-4.56.1",
    },
}


# -- plans: the shipped stacks and variants that switch on what they leave off -------------

# Each variant: the stack it starts from, and config keys to change (a map merges into
# the stack's, anything else replaces it).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "staging-gpu-operator": ("staging", {"cluster": {"gpuDriver": "gpu-operator"}}),
    "staging-azure-managed": ("staging", {"monitoring": {"mode": "azure-managed"}}),
    "staging-gpu-operator-azure-managed": (
        "staging",
        {"cluster": {"gpuDriver": "gpu-operator"}, "monitoring": {"mode": "azure-managed"}},
    ),
    # An existing cluster whose GPU nodes get NVIDIA's charts from the template, monitored
    # in-cluster.
    "local-gpu-software-in-cluster": (
        "local",
        {
            "cluster": {"gpuSoftware": "install"},
            "gpuPools": [{"name": "a10", "vmSize": "Standard_NV36ads_A10_v5", "maxCount": 1}],
            "monitoring": {"mode": "in-cluster"},
        },
    ),
}


def _variant_plan(root: Path, stack: str, changes: dict[str, Any]) -> dict[str, Any]:
    document = read_stack(root, stack)
    config = document["config"]
    for key, value in changes.items():
        current = config.get(f"slm-deploy:{key}")
        merge = isinstance(value, dict) and isinstance(current, dict)
        config[f"slm-deploy:{key}"] = current | value if merge else value
    write_stack(root, stack, document)
    return build_plan(stack, config_root=root)


@pytest.fixture(scope="module")
def all_plans(plans, tmp_path_factory) -> dict[str, dict[str, Any]]:
    from tools.plan import ROOT

    variants = {}
    for name, (stack, changes) in VARIANTS.items():
        root = tmp_path_factory.mktemp(name)
        (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        (root / "stacks").mkdir()
        for stack_file in FIXTURE_STACKS.glob("*.yaml"):
            (root / "stacks" / stack_file.name).write_text(stack_file.read_text())
        variants[name] = _variant_plan(root, stack, changes)
    return dict(plans) | variants


def releases(all_plans) -> list[tuple[str, dict[str, Any]]]:
    return [
        (stack, release | {"values": plain_numbers(release["values"])})
        for stack, plan in sorted(all_plans.items())
        for release in helm_releases(plan["resources"])
    ]


# -- the checks -----------------------------------------------------------------------------


def unknown_paths(ours: Any, chart: Any, free_form: dict[str, str], path: str = "") -> list[str]:
    """Each value path we set that the chart's values do not have (one line each)."""
    if path in free_form or not isinstance(ours, dict) or chart is None:
        return []
    if not isinstance(chart, dict):
        return [f"{path}: a map here, but the chart's default is {chart!r}"]
    problems = []
    for key, value in ours.items():
        child = f"{path}.{key}" if path else key
        # A pass-through map the template reads may be absent from the defaults.
        if key not in chart and child not in free_form:
            problems.append(f"{child}: not a value of the chart")
        else:
            problems += unknown_paths(value, chart.get(key), free_form, child)
    return problems


def merged(defaults: Any, ours: Any) -> Any:
    """Helm's coalescing: maps merge key by key, anything else replaces the default."""
    if isinstance(defaults, dict) and isinstance(ours, dict):
        return {
            k: merged(defaults.get(k), ours[k]) if k in ours else defaults[k]
            for k in defaults.keys() | ours.keys()
        }
    return ours


DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """A Prometheus duration ("1m30s") in seconds."""
    parts = DURATION_PART.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * SECONDS[u] for n, u in parts)


def service_monitor_blocks(values: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every enabled `serviceMonitor` block in a chart's (merged) values."""
    if not isinstance(values, dict):
        return []
    found = []
    for key, value in values.items():
        child = f"{path}.{key}" if path else key
        if key == "serviceMonitor" and isinstance(value, dict) and value.get("enabled"):
            found.append((child, value))
        found += service_monitor_blocks(value, child)
    return found


def timing_problems(where: str, block: dict[str, Any]) -> list[str]:
    """Prometheus Operator (and the managed add-on) reject a monitor whose scrapeTimeout
    exceeds its interval; an unset timeout defaults to at most the interval."""
    timeout, interval = block.get("scrapeTimeout"), block.get("interval")
    if not timeout:
        return []
    if not interval:
        return [f"{where}: scrapeTimeout {timeout} without an interval"]
    if seconds(timeout) > seconds(interval):
        return [f"{where}: scrapeTimeout {timeout} > interval {interval}"]
    return []


def test_the_plans_install_each_vendored_chart(all_plans) -> None:
    installed = {(r["chart"], r["version"]) for _, r in releases(all_plans)}
    assert installed == set(CHARTS)


def test_every_release_is_a_vendored_chart(all_plans) -> None:
    for stack, release in releases(all_plans):
        pin = (release["chart"], release["version"])
        assert pin in CHARTS, f"{stack}: {pin} has no vendored chart"


def _published_version(folder: str) -> str:
    chart_yaml = (UPSTREAM / folder / "Chart.yaml").read_text()
    return re.search(r'^version: "?([^"\n]+)"?$', chart_yaml, re.M).group(1)


def test_the_vendored_charts_are_the_pinned_versions() -> None:
    for (chart, version), vendored in CHARTS.items():
        source = _json(vendored.folder + "/source.json")
        chart_yaml = (UPSTREAM / vendored.folder / "Chart.yaml").read_text()
        assert re.search(rf"^name: {re.escape(chart)}$", chart_yaml, re.M), vendored.folder
        published = _published_version(vendored.folder)
        if vendored.stand_in:
            # A lower bound, declared as one: older than the pin, and its source says so.
            assert published == vendored.stand_in != version, vendored.folder
            assert f"our pin {version}" in source["why"], vendored.folder
        else:
            # The GPU Operator's tag carries a development version; its tag is the release.
            assert version in (published, source["ref"]), vendored.folder


def test_the_vendored_subcharts_are_the_versions_their_chart_names() -> None:
    for folder, subcharts in SUBCHART_FOLDERS.items():
        dependencies = {
            d["name"]: d["version"]
            for d in yaml.safe_load((UPSTREAM / folder / "Chart.yaml").read_text())["dependencies"]
        }
        for name, subchart_folder in subcharts.items():
            assert _published_version(subchart_folder) == dependencies[name], subchart_folder
        vendored = next(v for v in CHARTS.values() if v.folder == folder)
        assert {k: s.values for k, s in vendored.subcharts.items()} == {
            name: f"{subchart_folder}/values.json" for name, subchart_folder in subcharts.items()
        }


def test_every_value_path_the_plans_set_exists_in_the_chart(all_plans) -> None:
    checked = []
    for stack, release in releases(all_plans):
        vendored = CHARTS[(release["chart"], release["version"])]
        problems = unknown_paths(release["values"], vendored.values(), vendored.free_form)
        assert problems == [], f"{stack} {release['chart']}: {problems}"
        checked.append((stack, release["chart"]))
    # Device plugin and DCGM exporter in dev, staging, prod, staging-azure-managed and
    # local-gpu-software-in-cluster; the GPU Operator in its two variants;
    # kube-prometheus-stack wherever monitoring is in-cluster: dev, staging, prod,
    # staging-gpu-operator and local-gpu-software-in-cluster, and with it Loki and Alloy.
    assert len(checked) == 27
    assert sorted(s for s, chart in checked if chart == "kube-prometheus-stack") == [
        "dev",
        "local-gpu-software-in-cluster",
        "prod",
        "staging",
        "staging-gpu-operator",
    ]


def test_subchart_values_validate_against_their_schema(all_plans) -> None:
    validated = 0
    for stack, release in releases(all_plans):
        vendored = CHARTS[(release["chart"], release["version"])]
        defaults = vendored.values()
        for key, subchart in vendored.subcharts.items():
            if subchart.schema is None:
                continue
            values = merged(defaults[key], release["values"].get(key, {}))
            try:
                jsonschema.validate(values, _json(subchart.schema))
            except jsonschema.ValidationError as err:
                pytest.fail(f"{stack} {key}: {err.message} at {list(err.path)}")
            validated += 1
    # The two GPU Operator variants: kube-prometheus-stack's subcharts have no schema.
    assert validated == 2


def test_every_chart_service_monitor_times_out_within_its_interval(all_plans) -> None:
    """Chart 4.8.3 of the DCGM exporter defaults scrapeTimeout to 25s: with an interval
    below it, Prometheus Operator drops the monitor and no GPU metric is scraped."""
    monitors = 0
    for stack, release in releases(all_plans):
        vendored = CHARTS[(release["chart"], release["version"])]
        effective = merged(vendored.values(), release["values"])
        for where, block in service_monitor_blocks(effective):
            assert timing_problems(f"{stack} {release['chart']} {where}", block) == []
            monitors += 1
    # dcgm-exporter's in dev, staging, prod, staging-azure-managed and
    # local-gpu-software-in-cluster; the GPU Operator's in staging-gpu-operator (its monitor
    # is Prometheus Operator's kind only, so off with the managed add-on); and
    # kube-prometheus-stack's 8 enabled `serviceMonitor` blocks (kubelet, API server,
    # controller manager, scheduler, proxy, etcd, CoreDNS, Grafana) in each of its 5 plans,
    # none of which sets a scrapeTimeout in 88.5.3.
    assert monitors == 6 + 8 * 5


def test_the_timing_check_sees_the_chart_default_against_a_shorter_interval() -> None:
    dcgm = CHARTS[(gpu_pool.DCGM_EXPORTER_CHART.chart, gpu_pool.DCGM_EXPORTER_CHART.version)]
    # The values the template declared before: interval 15s over the chart's defaults.
    before = merged(dcgm.values(), {"serviceMonitor": {"enabled": True, "interval": "15s"}})
    ((where, block),) = service_monitor_blocks(before)
    assert timing_problems(where, block) == ["serviceMonitor: scrapeTimeout 25s > interval 15s"]


def test_our_own_monitors_time_out_within_their_interval(all_plans) -> None:
    endpoints = 0
    for stack, plan in sorted(all_plans.items()):
        for path, manifest in kubernetes_manifests(plan["resources"]).items():
            if manifest["kind"] not in ("ServiceMonitor", "PodMonitor"):
                continue
            spec = manifest["spec"]
            for endpoint in spec.get("endpoints", []) + spec.get("podMetricsEndpoints", []):
                assert timing_problems(f"{stack} {path}", endpoint) == []
                endpoints += 1
    # The vLLM monitor of every monitored plan: dev, staging, prod and the four variants.
    assert endpoints == 7


def test_the_path_check_sees_a_misspelt_or_moved_value() -> None:
    dcgm = CHARTS[(gpu_pool.DCGM_EXPORTER_CHART.chart, gpu_pool.DCGM_EXPORTER_CHART.version)]
    assert unknown_paths(
        {"serviceMonitor": {"scrapeTimout": "10s"}, "tolerations": []}, dcgm.values(), {}
    ) == ["serviceMonitor.scrapeTimout: not a value of the chart"]
    assert unknown_paths({"kubernetes": {"enablePodLabels": {"x": 1}}}, dcgm.values(), {}) == [
        "kubernetes.enablePodLabels: a map here, but the chart's default is False"
    ]
    # Without its allowance, our node affinity is a path the chart's defaults lack.
    ours = gpu_pool.dcgm_exporter_values(gpu_pool.OPERATOR_SERVICE_MONITOR)
    assert unknown_paths(ours, dcgm.values(), {}) == [
        "affinity.nodeAffinity: not a value of the chart"
    ]


def test_the_schema_check_sees_a_wrong_shape() -> None:
    operator = CHARTS[(gpu_pool.GPU_OPERATOR_CHART.chart, gpu_pool.GPU_OPERATOR_CHART.version)]
    nfd = operator.subcharts["node-feature-discovery"]
    wrong = merged(
        operator.values()["node-feature-discovery"],
        {"worker": {"tolerations": {"key": "nvidia.com/gpu"}}},
    )
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'array'"):
        jsonschema.validate(wrong, _json(nfd.schema))


KUBE_PROMETHEUS_STACK = CHARTS[
    (monitoring.KUBE_PROMETHEUS_STACK.chart, monitoring.KUBE_PROMETHEUS_STACK.version)
]


def _monitoring_values(all_plans, stack: str) -> dict[str, Any]:
    (values,) = [
        r["values"]
        for s, r in releases(all_plans)
        if s == stack and r["chart"] == "kube-prometheus-stack"
    ]
    return values


def test_each_kube_prometheus_stack_allowance_is_one_our_values_need(all_plans) -> None:
    """Without the allowances, one path at or under each is missing from the defaults:
    none is there without need, and the check does see those paths."""
    ours = _monitoring_values(all_plans, "dev")
    problems = unknown_paths(ours, KUBE_PROMETHEUS_STACK.values(), {})
    assert sorted(problems) == [
        "grafana.containerSecurityContext.readOnlyRootFilesystem: not a value of the chart",
        "grafana.securityContext.seccompProfile: not a value of the chart",
        "grafana.serviceAccount.annotations: not a value of the chart",
        "grafana.sidecar.securityContext.readOnlyRootFilesystem: not a value of the chart",
        "kube-state-metrics.containerSecurityContext.seccompProfile: not a value of the chart",
        "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate: not a value of the chart",
        "prometheusOperator.containerSecurityContext.seccompProfile: not a value of the chart",
    ]
    paths = [problem.split(":")[0] for problem in problems]
    for allowance in KUBE_PROMETHEUS_STACK_FREE_FORM:
        covered = [p for p in paths if p == allowance or p.startswith(allowance + ".")]
        assert len(covered) == 1, allowance


def test_subchart_values_are_checked_against_the_subchart_defaults() -> None:
    ours = {
        # In grafana's own defaults, not in kube-prometheus-stack's grafana block.
        "grafana": {"tolerations": [], "sidecar": {"dashboards": {"lable": "x"}}},
        "prometheus-node-exporter": {"namespaceOverride": "node-agents"},
    }
    free_form = KUBE_PROMETHEUS_STACK.free_form
    assert unknown_paths(ours, KUBE_PROMETHEUS_STACK.own_values(), free_form) == [
        "grafana.tolerations: not a value of the chart",
        "grafana.sidecar.dashboards.lable: not a value of the chart",
    ]
    assert unknown_paths(ours, KUBE_PROMETHEUS_STACK.values(), free_form) == [
        "grafana.sidecar.dashboards.lable: not a value of the chart"
    ]


def test_kube_state_metrics_renders_our_pod_security_context(all_plans) -> None:
    """kube-state-metrics 8.4.0 writes the pod's securityContext only while its
    `securityContext.enabled` is true (templates/deployment.yaml): our values, which do not
    set it, must leave the default on."""
    for stack in ("dev", "staging", "prod"):
        ours = _monitoring_values(all_plans, stack)
        effective = merged(KUBE_PROMETHEUS_STACK.values(), ours)["kube-state-metrics"]
        assert (
            effective["securityContext"]
            == {"enabled": True} | monitoring.RESTRICTED_POD | monitoring.NOBODY_IDS
        )


# grafana 12.11.1 templates/_pod.tpl builds each extraSecretMounts volume from the first of
# these keys the entry has; an entry with none gets a mount and no volume, and the pod is
# refused.
GRAFANA_SECRET_VOLUME_SOURCES = ("secretName", "projected", "csi")


def test_each_grafana_secret_mount_has_a_volume_source_the_template_renders(all_plans) -> None:
    mounts = []
    for stack in ("dev", "local-gpu-software-in-cluster", "prod", "staging"):
        for mount in _monitoring_values(all_plans, stack)["grafana"].get("extraSecretMounts", []):
            sources = [key for key in GRAFANA_SECRET_VOLUME_SOURCES if key in mount]
            assert len(sources) == 1, (
                f"{stack} grafana.extraSecretMounts {mount['name']}: {sources}"
            )
            mounts.append((stack, mount["name"], sources[0]))
    # The Key Vault CSI volume of the AKS stacks; the existing cluster reads a plain Secret
    # through the chart's admin.existingSecret, with no mount.
    assert mounts == [
        ("dev", "secrets-store", "csi"),
        ("prod", "secrets-store", "csi"),
        ("staging", "secrets-store", "csi"),
    ]
