"""Reduce ingress-nginx's request metrics and their flags to what the alerts and panels read.

metrics.json (from internal/ingress/metric/collectors/socket.go): each per-request metric
the controller's socket collector declares, as Prometheus stores it (the collector's
namespace `nginx_ingress_controller` + its Name; Go's client adds no `_total`), with its
kind and label names: the request tags (status, method, path, namespace, ingress, service,
canary), the constant labels (controller_namespace, controller_class, controller_pod) and,
with --metrics-per-host, host.

flags.json (from pkg/flags/flags.go): the defaults of --metrics-per-host (adds `host`) and
--report-status-classes (false: `status` is the code, such as "429", not "4xx").
"""

from __future__ import annotations

import json
import re

NAMESPACE = "nginx_ingress_controller"
KINDS = {"counterMetric": "counter", "histogramMetric": "histogram"}
DECLARATION = re.compile(
    r"\w+:\s*(counterMetric|histogramMetric)\(\s*&prometheus\.\w+Opts\{(.*?)\}", re.S
)
NAME = re.compile(r'Name:\s*"(\w+)"')
TAGS = re.compile(r"var requestTags = \[\]string\{(.*?)\}", re.S)
CONST_LABELS = re.compile(r"constLabels := prometheus\.Labels\{(.*?)\}", re.S)
PER_HOST = re.compile(r'requestTags = append\(requestTags, "(\w+)"\)')
FLAG = re.compile(r'flags\.Bool\("([\w-]+)",\s*(true|false)')
FLAGS = ("metrics-per-host", "report-status-classes")


def _strings(block: str) -> list[str]:
    return re.findall(r'"(\w+)"', block)


def _metrics(text: str) -> dict[str, dict]:
    tags = _strings(TAGS.search(text).group(1))
    constant = re.findall(r"\"(\w+)\":", CONST_LABELS.search(text).group(1))
    per_host = PER_HOST.findall(text)
    metrics = {}
    for kind, options in DECLARATION.findall(text):
        name = NAME.search(options).group(1)
        metrics[f"{NAMESPACE}_{name}"] = {
            "kind": KINDS[kind],
            "labels": tags + constant,
            "labels_per_host": per_host,
        }
    return metrics


def extract(local_name: str, text: str) -> str:
    if local_name == "metrics.json":
        document = _metrics(text)
    else:
        document = {name: value == "true" for name, value in FLAG.findall(text) if name in FLAGS}
    return json.dumps(document, indent=1, sort_keys=True) + "\n"
