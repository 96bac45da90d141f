"""Reduce kube-state-metrics' metric reference pages to names, kinds and label names.

Each page (docs/metrics/workload/*.md) is a table whose header names its columns ("Metric
name", "Metric type", ..., "Labels/tags"); a row per metric lists its labels as
`label`=&lt;...&gt;. extract() stores {name: {"kind": ..., "labels": [...]}} as JSON.
"""

from __future__ import annotations

import json
import re

CELL_SEPARATOR = re.compile(r"(?<!\\)\|")  # "\|" inside a cell is an escaped pipe
LABEL = re.compile(r"`(\w+)`=")


def extract(local_name: str, text: str) -> str:
    metrics = {}
    columns: list[str] = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in CELL_SEPARATOR.split(line)[1:-1]]
        if cells[:1] == ["Metric name"]:
            columns = cells
        elif columns and cells and cells[0].startswith("kube_"):
            row = dict(zip(columns, cells, strict=False))
            metrics[row["Metric name"]] = {
                "kind": row["Metric type"].lower(),
                "labels": LABEL.findall(row["Labels/tags"]),
            }
    return json.dumps(metrics, indent=1, sort_keys=True) + "\n"
