"""Namespaces, labelled for Pod Security Standards and ownership."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

INFERENCE_NAMESPACE = "slm-inference"
MONITORING_NAMESPACE = "slm-monitoring"
GPU_SYSTEM_NAMESPACE = "slm-gpu-system"


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    # Pod Security Standards level. "restricted" wherever the workloads allow; the GPU system
    # DaemonSets (device plugin, DCGM exporter) need host paths, and node-exporter the host
    # network, so their namespaces are "privileged".
    pod_security: str
    purpose: str


@dataclass(frozen=True)
class NamespacesArgs:
    environment: str
    kubernetes_version: str
    specs: tuple[NamespaceSpec, ...]


def namespace_specs(*, gpu: bool, monitoring_in_cluster: bool) -> tuple[NamespaceSpec, ...]:
    specs = [NamespaceSpec(INFERENCE_NAMESPACE, "restricted", "model servers")]
    if gpu:
        specs.append(NamespaceSpec(GPU_SYSTEM_NAMESPACE, "privileged", "GPU device plugin"))
    if monitoring_in_cluster:
        specs.append(NamespaceSpec(MONITORING_NAMESPACE, "privileged", "Prometheus, Grafana"))
    return tuple(specs)


class Namespaces(pulumi.ComponentResource):
    """The platform's namespaces."""

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:network:Namespaces", name, None, opts)
        # Pin the PSS policy version to the cluster's, so an upgrade doesn't tighten it unseen.
        pss_version = f"v{args.kubernetes_version}"
        self.namespaces: dict[str, k8s.core.v1.Namespace] = {}
        for spec in args.specs:
            labels = {
                "app.kubernetes.io/part-of": "slm-deploy",
                "slm-deploy/environment": args.environment,
                "slm-deploy/purpose": spec.purpose.replace(", ", "-").replace(" ", "-").lower(),
            }
            for mode in ("enforce", "audit", "warn"):
                labels[f"pod-security.kubernetes.io/{mode}"] = spec.pod_security
                labels[f"pod-security.kubernetes.io/{mode}-version"] = pss_version
            self.namespaces[spec.name] = k8s.core.v1.Namespace(
                f"{name}-{spec.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=spec.name, labels=labels),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"namespaces": sorted(self.namespaces)})
