"""Every Helm value the plans set, checked against the pinned chart's own values.yaml (and
values.schema.json where the chart has one), plus the template facts that decide whether
what the chart renders is accepted: a ServiceMonitor's scrapeTimeout within its interval.

Helm accepts any key: a misspelt or moved value is silently ignored, and the chart renders
its default instead. The charts' files at the pinned versions are in tests/upstream/.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components import gpu_pool, monitoring
from tests.conftest import read_stack, write_stack
from tools.plan import build_plan, helm_releases, kubernetes_manifests, plain_numbers

UPSTREAM = Path(__file__).parent / "upstream"


@dataclass(frozen=True)
class VendoredChart:
    folder: str
    # Value paths (dot-separated) whose content the chart passes through whole (toYaml into a
    # pod spec or a custom resource), so keys below them are Kubernetes' or the operator's,
    # not the chart's: each with the template that shows it.
    free_form: dict[str, str] = field(default_factory=dict)
    # Subcharts: the key their values sit under, and their values/schema files.
    subcharts: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        return json.loads((UPSTREAM / self.folder / "values.json").read_text())


CHARTS = {
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
        subcharts={"node-feature-discovery": ("nfd-values.json", "nfd-values.schema.json")},
    ),
}
# Charts whose files at the pinned version could not be read where the contracts were
# written: their values are not checked (named here so the gap is seen, not hidden).
NOT_VENDORED = {
    (monitoring.KUBE_PROMETHEUS_STACK.chart, monitoring.KUBE_PROMETHEUS_STACK.version): (
        "kube-prometheus-stack 92.2.0: no copy of the chart at this version was readable; "
        "vendor charts/kube-prometheus-stack/values.yaml at tag kube-prometheus-stack-92.2.0 "
        "and its subcharts' values (grafana, kube-state-metrics, prometheus-node-exporter)"
    ),
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
        for stack_file in (ROOT / "stacks").glob("*.yaml"):
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
        if key not in chart:
            problems.append(f"{child}: not a value of the chart")
        else:
            problems += unknown_paths(value, chart[key], free_form, child)
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
    assert installed == set(CHARTS) | set(NOT_VENDORED)


def test_every_release_is_a_vendored_chart_or_a_named_gap(all_plans) -> None:
    for stack, release in releases(all_plans):
        pin = (release["chart"], release["version"])
        assert pin in CHARTS or pin in NOT_VENDORED, f"{stack}: {pin} has no vendored chart"


def test_the_vendored_charts_are_the_pinned_versions() -> None:
    for (chart, version), vendored in CHARTS.items():
        source = json.loads((UPSTREAM / vendored.folder / "source.json").read_text())
        chart_yaml = (UPSTREAM / vendored.folder / "Chart.yaml").read_text()
        assert re.search(rf"^name: {re.escape(chart)}$", chart_yaml, re.M), vendored.folder
        published = re.search(r'^version: "?([^"\n]+)"?$', chart_yaml, re.M).group(1)
        # The GPU Operator's tag carries a development version; its tag is the release.
        assert version in (published, source["ref"]), vendored.folder


def test_every_value_path_the_plans_set_exists_in_the_chart(all_plans) -> None:
    checked = 0
    for stack, release in releases(all_plans):
        vendored = CHARTS.get((release["chart"], release["version"]))
        if vendored is None:
            continue
        values = release["values"]
        problems = unknown_paths(values, vendored.values(), vendored.free_form)
        for key, (subchart_values, _) in vendored.subcharts.items():
            if key in values:
                defaults = json.loads((UPSTREAM / vendored.folder / subchart_values).read_text())
                problems += [f"{key}.{p}" for p in unknown_paths(values[key], defaults, {})]
        assert problems == [], f"{stack} {release['chart']}: {problems}"
        checked += 1
    # Device plugin and DCGM exporter in dev, staging, prod, staging-azure-managed and
    # local-gpu-software-in-cluster; the GPU Operator in its two variants.
    assert checked == 12


def test_subchart_values_validate_against_their_schema(all_plans) -> None:
    validated = 0
    for stack, release in releases(all_plans):
        vendored = CHARTS.get((release["chart"], release["version"]))
        for key, (subchart_values, schema_file) in (vendored.subcharts if vendored else {}).items():
            folder = UPSTREAM / vendored.folder
            values = merged(
                json.loads((folder / subchart_values).read_text()), release["values"].get(key, {})
            )
            schema = json.loads((folder / schema_file).read_text())
            try:
                jsonschema.validate(values, schema)
            except jsonschema.ValidationError as err:
                pytest.fail(f"{stack} {key}: {err.message} at {list(err.path)}")
            validated += 1
    assert validated == 2  # the two GPU Operator variants


def test_every_chart_service_monitor_times_out_within_its_interval(all_plans) -> None:
    """Chart 4.8.3 of the DCGM exporter defaults scrapeTimeout to 25s: with an interval
    below it, Prometheus Operator drops the monitor and no GPU metric is scraped."""
    monitors = 0
    for stack, release in releases(all_plans):
        vendored = CHARTS.get((release["chart"], release["version"]))
        if vendored is None:
            continue
        effective = merged(vendored.values(), release["values"])
        for where, block in service_monitor_blocks(effective):
            assert timing_problems(f"{stack} {release['chart']} {where}", block) == []
            monitors += 1
    # dcgm-exporter's in dev, staging, prod, staging-azure-managed and
    # local-gpu-software-in-cluster; the GPU Operator's in staging-gpu-operator (its monitor
    # is Prometheus Operator's kind only, so off with the managed add-on).
    assert monitors == 6


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
    folder = UPSTREAM / operator.folder
    defaults = json.loads((folder / "nfd-values.json").read_text())
    schema = json.loads((folder / "nfd-values.schema.json").read_text())
    wrong = merged(defaults, {"worker": {"tolerations": {"key": "nvidia.com/gpu"}}})
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'array'"):
        jsonschema.validate(wrong, schema)
