"""What every pod the platform runs has in common: labels, hardening, probes, scheduling.

Plain Kubernetes objects as dicts (camelCase, as in YAML), shared by the vLLM, Ollama and
Open WebUI components so that hardening is written once.
"""

from __future__ import annotations

from typing import Any

# The unprivileged user and group our containers run as (no image needs root to serve).
RUN_AS_USER = 1000


def labels(app: str, instance: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "slm-deploy",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def pod_security_context() -> dict[str, Any]:
    """Pod Security Standards "restricted": non-root, RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """No privilege escalation, no capabilities, a read-only root: writable paths are volumes."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def http_probe(
    path: str,
    port: str,
    period: int,
    failures: int,
    timeout: int = 5,
) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def empty_dir(name: str, size: str, memory: bool = False) -> dict[str, Any]:
    volume: dict[str, Any] = {"name": name, "emptyDir": {"sizeLimit": size}}
    if memory:
        volume["emptyDir"]["medium"] = "Memory"
    return volume


def spread_over_nodes_and_zones(selector: dict[str, str]) -> list[dict[str, Any]]:
    """Replicas on different nodes (a GPU node failing takes one replica) and, best effort,
    zones."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        },
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        },
    ]


def pod_disruption_budget_spec(selector: dict[str, str]) -> dict[str, Any]:
    # One replica at a time may go: drains and AKS upgrades proceed, capacity stays.
    return {"maxUnavailable": 1, "selector": {"matchLabels": selector}}


def quantity_gib(gib: float) -> str:
    """A memory quantity in whole Gi, rounded up."""
    return f"{max(1, int(-(-gib // 1)))}Gi"
