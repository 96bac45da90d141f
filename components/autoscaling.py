"""Autoscaling on LLM signals: a KEDA ScaledObject per vLLM model whose replicas may vary.

The signal is vllm:num_requests_waiting from Prometheus: requests the engine has accepted
but cannot start for lack of KV-cache or sequence slots. KEDA scales the Deployment so that
each replica has about its queue threshold waiting (components/right_sizing.py: the queue
a replica drains within the TTFT target's slack, or `queuePerReplica`); HPA behaviour scales
up fast and down slowly (GPU replicas are slow to start and expensive to thrash). Ollama is
not scaled: it has no metrics endpoint and one ReadWriteOnce model volume, so it keeps its
one replica.

KEDA is the AKS add-on (components/cluster.py), the cluster's only external metrics
adapter. Nothing here installs KEDA's chart, so on an existing cluster (vLLM on GPU nodes
you bring included) the config refuses a replica range: replicas there are fixed.

A model whose minimum is 0 (dev) cannot be woken by its queue: with no pod there is no
metric. Its `replicas.awake` hours become a cron trigger holding one replica; outside them
it scales to zero after the cooldown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import aks_versions, metrics
from components.config import ModelConfig

# How often KEDA asks Prometheus (the proven 15 s), and how long a model stays up after the
# last waiting request before it may scale to zero (production-stack and KAITO use 360 s).
POLLING_SECONDS = 15
COOLDOWN_SECONDS = 360
# After this many failed queries, KEDA holds the fallback replica count: a blind autoscaler
# must not scale a serving model down.
FALLBACK_FAILURES = 3
# KEDA's `fallback.behavior` (currentReplicasIfHigher among others) first appears in 2.17.0:
# an older API server prunes it, leaving the plain fallback (see fallback_spec).
FALLBACK_BEHAVIOR_SINCE = (2, 17, 0)
# Scale up within a minute, down one replica per five minutes.
SCALE_UP_WINDOW_SECONDS = 60
SCALE_DOWN_WINDOW_SECONDS = 300


# KEDA's operator on AKS (the add-on): where workload identity must be announced.
KEDA_ADDON_NAMESPACE = "kube-system"
KEDA_OPERATOR = "keda-operator"
# The TriggerAuthentication that signs KEDA's queries to Azure managed Prometheus.
AZURE_AUTH = "azure-managed-prometheus"


@dataclass(frozen=True)
class AutoscalingArgs:
    models: tuple[ModelConfig, ...]  # vLLM models whose replica range varies
    namespace: str
    prometheus_url: pulumi.Input[str]
    # The cluster's Kubernetes minor ("1.36"): AKS's KEDA add-on version follows it.
    kubernetes_version: str
    # Azure managed Prometheus: the client id of the identity KEDA's operator queries with.
    azure_identity_client_id: pulumi.Input[str] | None = None
    # Waiting requests per replica KEDA targets, per model: right_sizing.queue_threshold's
    # figure, or the model's explicit queuePerReplica.
    queue_thresholds: dict[str, int] = field(default_factory=dict)


def waiting_query(model: str, namespace: str) -> str:
    waiting = metrics.name("vllm:num_requests_waiting")
    return f'sum({waiting}{{namespace="{namespace}", model_name="{model}"}})'


def scaled_object_spec(
    model: ModelConfig,
    queue_threshold: int,
    namespace: str,
    prometheus_url: pulumi.Input[str],
    keda_version: tuple[int, ...],
    auth: str | None = None,
) -> dict[str, Any]:
    replicas = model.replicas
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": model.name},
        "minReplicaCount": replicas.min,
        "maxReplicaCount": replicas.max,
        "pollingInterval": POLLING_SECONDS,
        "cooldownPeriod": COOLDOWN_SECONDS,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": hpa_behavior()}},
        "triggers": [
            queue_trigger(model, queue_threshold, namespace, prometheus_url, auth),
            *awake_triggers(model),
        ],
    }
    fallback = fallback_spec(model, keda_version)
    if fallback is not None:
        spec["fallback"] = fallback
    return spec


def fallback_spec(model: ModelConfig, keda_version: tuple[int, ...]) -> dict[str, Any] | None:
    """What KEDA does when it is blind (Prometheus unreachable, or vLLM's series gone): hold
    at least the minimum and never scale a busy model down.

    From KEDA 2.17, currentReplicasIfHigher says exactly that. Before it (AKS runs 2.16.1
    on some minors), a fallback sets the replica count to fallback.replicas outright: KEDA
    2.16.1's scale executor (pkg/scaling/executor/scale_scaledobjects.go, doFallbackScaling)
    writes it to the Deployment once no trigger is active, and its metrics adapter
    (pkg/fallback/fallback.go) reports a value worth exactly that many replicas, so a busy
    model would drop to it. Without a fallback, KEDA only marks the ScaledObject not ready,
    and the HPA refuses to scale down while a metric is invalid (Kubernetes' HPA controller
    scales on invalid metrics only upwards), so the current count holds. A fallback of
    replicas.max would also hold it, but would scale an idle model to its most expensive
    size every time Prometheus blinks."""
    if keda_version < FALLBACK_BEHAVIOR_SINCE:
        return None
    return {
        "failureThreshold": FALLBACK_FAILURES,
        "replicas": max(model.replicas.min, 1),
        "behavior": "currentReplicasIfHigher",
    }


def hpa_behavior() -> dict[str, Any]:
    """Up fast (a replica a minute), down slowly (a replica per five quiet minutes)."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": SCALE_UP_WINDOW_SECONDS,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": SCALE_DOWN_WINDOW_SECONDS}],
        },
    }


def queue_trigger(
    model: ModelConfig,
    threshold: int,
    namespace: str,
    prometheus_url: pulumi.Input[str],
    auth: str | None,
) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "type": "prometheus",
        "metadata": {
            "serverAddress": prometheus_url,
            "query": waiting_query(model.name, namespace),
            "threshold": str(threshold),
            # At zero replicas, any waiting request activates the model.
            "activationThreshold": "0",
            # A model with replicas always reports the gauge, so no data means scraping
            # broke: an error, on which the replica count holds (fallback_spec). A model at
            # zero has no series by design, and must read as 0 rather than as an error.
            "ignoreNullValues": "true" if model.replicas.min == 0 else "false",
        },
    }
    if auth:
        trigger["authenticationRef"] = {"name": auth}
    return trigger


def awake_triggers(model: ModelConfig) -> list[dict[str, Any]]:
    """One replica during the awake hours of a model that may scale to zero."""
    awake = model.replicas.awake
    if model.replicas.min > 0 or awake is None:
        return []

    def cron(time_of_day: str) -> str:
        hour, minute = time_of_day.split(":")
        return f"{int(minute)} {int(hour)} * * {awake.days}"

    return [
        {
            "type": "cron",
            "metadata": {
                "timezone": awake.timezone,
                "start": cron(awake.start),
                "end": cron(awake.end),
                "desiredReplicas": "1",
            },
        }
    ]


class Autoscaling(pulumi.ComponentResource):
    """KEDA ScaledObjects for the vLLM models with a replica range."""

    def __init__(
        self, name: str, args: AutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:autoscaling:Autoscaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        keda_version = aks_versions.keda_version(args.kubernetes_version)
        auth = None
        if args.azure_identity_client_id is not None:
            auth = AZURE_AUTH
            self._azure_workload_identity(name, args, child)
        for model in args.models:
            k8s.apiextensions.CustomResource(
                f"{name}-{model.name}",
                api_version="keda.sh/v1alpha1",
                kind="ScaledObject",
                metadata={"name": model.name, "namespace": args.namespace},
                spec=scaled_object_spec(
                    model,
                    args.queue_thresholds[model.name],
                    args.namespace,
                    args.prometheus_url,
                    keda_version,
                    auth,
                ),
                opts=child,
            )
        self.register_outputs({"scaledModels": [m.name for m in args.models]})

    def _azure_workload_identity(self, name, args, child) -> None:
        """KEDA's operator signs its Prometheus queries as the identity that may read the
        workspace: the add-on's service account names the identity, and the
        TriggerAuthentication asks for Azure workload identity."""
        client_id = args.azure_identity_client_id
        k8s.core.v1.ServiceAccountPatch(
            f"{name}-keda-operator-identity",
            metadata={
                "name": KEDA_OPERATOR,
                "namespace": KEDA_ADDON_NAMESPACE,
                "annotations": {"azure.workload.identity/client-id": client_id},
            },
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-azure-auth",
            api_version="keda.sh/v1alpha1",
            kind="TriggerAuthentication",
            metadata={"name": AZURE_AUTH, "namespace": args.namespace},
            spec={"podIdentity": {"provider": "azure-workload", "identityId": client_id}},
            opts=child,
        )
