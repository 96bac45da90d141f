"""What every pod the platform runs has in common: labels, hardening, probes, scheduling.

Plain Kubernetes objects as dicts (camelCase, as in YAML), shared by the vLLM, Ollama and
Open WebUI components so that hardening is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# The unprivileged user and group our containers run as (no image needs root to serve);
# above 10000, clear of the users a node's host defines.
RUN_AS_USER = 10001


# On the pods that download models (and only those): the network policy that lets HTTPS out
# selects it. A pod-template label, never part of a Deployment's selector, so turning
# downloads off (a preloaded image, a warmed cache) changes no selector.
DOWNLOADS_LABEL = "slm-deploy/downloads-models"


def pod_labels(selector: dict[str, str], downloads_models: bool) -> dict[str, str]:
    """A pod template's labels: its selector's, and the downloads label where it downloads."""
    return selector | {DOWNLOADS_LABEL: "true"} if downloads_models else dict(selector)


# The AKS system pool is tainted CriticalAddonsOnly (components/cluster.py) and GPU pools
# nvidia.com/gpu: a pod that needs no GPU (monitoring, Open WebUI, a CPU model, the cache
# warmer) tolerates the system pool's taint, or no AKS node would take it. Elsewhere the
# taint does not exist and the toleration changes nothing.
SYSTEM_POOL_TOLERATIONS = [
    {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
]


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


# -- model caches -----------------------------------------------------------------------------

# The model volume's mount, and the Hugging Face cache on it (HF_HOME; the hub cache is its
# hub/), which vLLM reads and the cache warmer fills.
MODELS_MOUNT = "/models"
HF_HOME = f"{MODELS_MOUNT}/huggingface"


@dataclass(frozen=True)
class ModelCache:
    """Where a model's weights live between restarts."""

    shared: bool  # a PersistentVolumeClaim (True) or an emptyDir on the node's disk
    size_gib: int
    storage_class: str | None  # None: the cluster's default class
    access_mode: str  # ReadWriteMany when replicas on several nodes share it
    protect: bool  # production: the claim survives `pulumi destroy` and deletion


def model_cache_claim_name(model: str) -> str:
    return f"{model}-models"


def declare_model_cache(
    name: str, model: str, namespace: str, cache: ModelCache, parent: pulumi.Resource
) -> k8s.core.v1.PersistentVolumeClaim | None:
    if not cache.shared:
        return None
    spec: dict[str, Any] = {
        "accessModes": [cache.access_mode],
        "resources": {"requests": {"storage": f"{cache.size_gib}Gi"}},
    }
    if cache.storage_class:
        spec["storageClassName"] = cache.storage_class
    return k8s.core.v1.PersistentVolumeClaim(
        f"{name}-models",
        metadata={"name": model_cache_claim_name(model), "namespace": namespace},
        spec=spec,
        opts=pulumi.ResourceOptions(
            parent=parent, protect=cache.protect, retain_on_delete=cache.protect
        ),
    )


def model_cache_volume(model: str, cache: ModelCache) -> dict[str, Any]:
    if cache.shared:
        claim = {"claimName": model_cache_claim_name(model)}
        return {"name": "models", "persistentVolumeClaim": claim}
    return empty_dir("models", f"{cache.size_gib}Gi")


def http_service(
    name: str,
    metadata: dict[str, Any],
    selector: dict[str, str],
    port: int,
    parent: pulumi.Resource,
) -> k8s.core.v1.Service:
    """A ClusterIP Service in front of a server's port named "http"."""
    return k8s.core.v1.Service(
        name,
        metadata=metadata,
        spec={
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class ServedModel:
    """What an inference server's component declares in front of its pods."""

    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    url: str  # the in-cluster OpenAI base URL


def declare_served_model(
    name: str,
    parent: pulumi.Resource,
    model: Any,
    namespace: str,
    selector: dict[str, str],
    deployment_spec: dict[str, Any],
    port: int,
    depends_on: list[pulumi.Resource],
) -> ServedModel:
    """A model server's Deployment, its Service and, when it may run more than one replica, a
    PodDisruptionBudget, all named after the model. The autoscaler owns the replica count once
    it varies (components/autoscaling.py); `depends_on` holds the rollout back (the warmer's
    Job: a new revision rolls out once it is in the cache)."""
    metadata = {"name": model.name, "namespace": namespace, "labels": selector}
    autoscaled = model.replicas.max > model.replicas.min
    deployment = k8s.apps.v1.Deployment(
        name,
        metadata=metadata,
        spec=deployment_spec,
        opts=pulumi.ResourceOptions(
            parent=parent,
            ignore_changes=["spec.replicas"] if autoscaled else None,
            depends_on=depends_on,
        ),
    )
    service = http_service(name, metadata, selector, port, parent)
    if model.replicas.max > 1:
        k8s.policy.v1.PodDisruptionBudget(
            name,
            metadata=metadata,
            spec=pod_disruption_budget_spec(selector),
            opts=pulumi.ResourceOptions(parent=parent),
        )
    url = f"http://{model.name}.{namespace}.svc.cluster.local:{port}/v1"
    return ServedModel(deployment, service, url)


# Which API keys are live (access.key_set_id), on a keyed server's pods: a change rolls them,
# since the servers read their keys once, at start.
API_KEY_SET_ANNOTATION = "slm-deploy/api-keys"


def rolling_deployment_spec(
    replicas: int,
    selector: dict[str, str],
    rolling_update: dict[str, int],
    downloads_models: bool,
    api_key_set: str | None,
    pod: dict[str, Any],
) -> dict[str, Any]:
    """A model server's Deployment spec: its pods' labels (and download egress), the live
    key set's annotation, and how a rollout replaces them."""
    metadata: dict[str, Any] = {"labels": pod_labels(selector, downloads_models)}
    if api_key_set:
        metadata["annotations"] = {API_KEY_SET_ANNOTATION: api_key_set}
    return {
        "replicas": replicas,
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update},
        "template": {"metadata": metadata, "spec": pod},
    }


def server_pod_spec(
    service_account: str,
    node_selector: dict[str, str],
    tolerations: list[dict[str, str]],
    grace_seconds: int,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    selector: dict[str, str],
    spread: bool,
) -> dict[str, Any]:
    """A model server's pod: its Secrets' service account without a token (the servers call
    no Kubernetes API), the hardened pod context, its pool, time for streams to finish, and
    spreading over nodes and zones when it may run more than one replica."""
    spec: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "nodeSelector": node_selector,
        "tolerations": tolerations,
        "terminationGracePeriodSeconds": grace_seconds,
        "containers": containers,
        "volumes": volumes,
    }
    if spread:
        spec["topologySpreadConstraints"] = spread_over_nodes_and_zones(selector)
    return spec
