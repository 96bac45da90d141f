"""Reduce the device plugin's MIG handling at v0.20.0 to the facts gpu_pool.MIG_STRATEGY
relies on.

strategies.json (api/config/v1/consts.go): the MIG strategy constants, name to value, and
the resource name prefix.
flag.json (cmd/nvidia-device-plugin/main.go): the mig-strategy flag's default (a constant
of strategies.json) and the environment variables it is read from.
resources.json (internal/rm/rm.go): the resource name whole GPUs get, and the one MIG slices
get under each strategy that advertises them ("<profile>" stands for the slice's profile).
chart-env.json (the chart's device plugin DaemonSet template): the container's environment
variables that a chart value sets directly, variable to value key.
"""

from __future__ import annotations

import json
import re

STRATEGY = re.compile(r'^\s*(MigStrategy\w+)\s*=\s*"(\w+)"', re.M)
PREFIX = re.compile(r'^\s*ResourceNamePrefix\s*=\s*"([\w.]+)"', re.M)
FLAG = re.compile(
    r'Name:\s*"mig-strategy",\s*Value:\s*spec\.(\w+),.*?EnvVars:\s*\[\]string\{([^}]*)\}', re.S
)
WHOLE = re.compile(r'AddGPUResource\("\*", "([\w-]+)"\)')
SINGLE = re.compile(
    r'case spec\.MigStrategySingle:\s*return config\.Resources\.AddMIGResource\("\*", "([\w-]+)"\)'
)
MIXED = re.compile(
    r'case spec\.MigStrategyMixed:.*?resourceName := strings\.ReplaceAll\("([\w-]+)"\+p\.String\(\)',
    re.S,
)
ENV = re.compile(r"- name: (\w+)\n\s*value: \{\{ \.Values\.(\w+) \}\}")


def _strategies(text: str) -> dict:
    return {"prefix": PREFIX.search(text).group(1), "strategies": dict(STRATEGY.findall(text))}


def _flag(text: str) -> dict:
    default, env = FLAG.search(text).groups()
    return {"default": default, "env": re.findall(r'"(\w+)"', env)}


def _resources(text: str) -> dict:
    return {
        "whole GPUs": WHOLE.search(text).group(1),
        "MIG slices": {
            "MigStrategySingle": SINGLE.search(text).group(1),
            "MigStrategyMixed": MIXED.search(text).group(1) + "<profile>",
        },
    }


EXTRACTORS = {
    "strategies.json": _strategies,
    "flag.json": _flag,
    "resources.json": _resources,
    "chart-env.json": lambda text: dict(ENV.findall(text)),
}


def extract(local_name: str, text: str) -> str:
    return json.dumps(EXTRACTORS[local_name](text), indent=1, sort_keys=True) + "\n"
