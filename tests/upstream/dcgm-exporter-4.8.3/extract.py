"""Reduce dcgm-exporter's files at the pinned release to what the contract tests read.

extract(local_name, text) is called by tools/refresh_upstream.py with the upstream file that
source.json maps to local_name; it returns what is stored under that name.
"""

from __future__ import annotations

import json
import re

import yaml


def extract(local_name: str, text: str) -> str:
    return {
        "Chart.yaml": _unchanged,
        "values.json": _values,
        "metrics.csv": _chart_metrics,
        "gpu-labels.txt": _gpu_labels,
        "collector-labels.txt": _collector_labels,
        "kubernetes-labels.txt": _kubernetes_labels,
    }[local_name](text)


def _unchanged(text: str) -> str:
    return text


def _values(text: str) -> str:
    """The chart's default values as sorted JSON (comments dropped)."""
    return json.dumps(yaml.safe_load(text), indent=1, sort_keys=True) + "\n"


def _chart_metrics(text: str) -> str:
    """The CSV the chart mounts when customMetrics is unset: `FIELD,type` per active row."""
    default_block = text.split("{{- else }}", 1)[1].split("{{- end }}", 1)[0]
    rows = []
    for line in default_block.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("metrics:"):
            continue
        field, kind, _help = (part.strip() for part in line.split(",", 2))
        rows.append(f"{field},{kind}")
    return "\n".join(rows) + "\n"


def _gpu_labels(text: str) -> str:
    """The label names the renderer gives every GPU sample (the FE_GPU case of
    metricLabels); the UUID label's name comes from the collector (collector-labels.txt)."""
    gpu_case = text.split("case dcgm.FE_GPU:", 1)[1].split("case dcgm.FE_LINK:", 1)[0]
    return "".join(f"{label}\n" for label in re.findall(r'builder\.add\("(\w+)"', gpu_case))


def _collector_labels(text: str) -> str:
    """Labels toMetric adds: the UUID label's name (default, not --use-old-namespace) and
    the XID attributes."""
    to_metric = text.split("func toMetric(", 1)[1].split("\nfunc ", 1)[0]
    uuid = re.search(r'uuid := "(\w+)"', to_metric)
    assert uuid, "toMetric no longer names the UUID label"
    attributes = dict.fromkeys(re.findall(r'attrs\["(\w+)"\]', to_metric))
    return "".join(f"{label}\n" for label in [uuid.group(1), *attributes])


def _kubernetes_labels(text: str) -> str:
    """The pod-mapping attribute names: `<constant>=<label>` per line."""
    pairs = re.findall(r'^\s*(\w+Attribute)\s*=\s*"(\w+)"', text, flags=re.MULTILINE)
    return "".join(f"{constant}={label}\n" for constant, label in pairs)
