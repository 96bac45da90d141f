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


# -- ingress: one HTTPS host, a path per model ----------------------------------------------

# AKS application routing add-on's managed NGINX class.
AKS_APP_ROUTING_CLASS = "webapprouting.kubernetes.azure.com"
# Prompts of a full 128K-token context are well under this; larger bodies are refused early.
MAX_BODY_SIZE = "16m"


@dataclass(frozen=True)
class ExposedModel:
    name: str
    service_port: int


@dataclass(frozen=True)
class ModelIngressArgs:
    namespace: str
    host: str
    class_name: str
    models: tuple[ExposedModel, ...]
    max_request_seconds: int
    tls_secret_name: str | None
    tls_key_vault_certificate_uri: str | None


def model_path(model: str) -> str:
    return f"/models/{model}"


def ingress_annotations(args: ModelIngressArgs) -> dict[str, str]:
    timeout = str(args.max_request_seconds)
    annotations = {
        # /models/<name>/v1/... reaches the server as /v1/...
        "nginx.ingress.kubernetes.io/use-regex": "true",
        "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
        # Streamed completions: pass tokens on as they come, wait as long as a response may.
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-body-size": MAX_BODY_SIZE,
    }
    if args.tls_secret_name or args.tls_key_vault_certificate_uri:
        annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] = "true"
    if args.tls_key_vault_certificate_uri:
        # Application routing copies the Key Vault certificate into the TLS secret.
        annotations["kubernetes.azure.com/tls-cert-keyvault-uri"] = (
            args.tls_key_vault_certificate_uri
        )
    return annotations


def tls_secret(args: ModelIngressArgs) -> str | None:
    if args.tls_secret_name:
        return args.tls_secret_name
    if args.tls_key_vault_certificate_uri:
        return "keyvault-slm-ingress"  # the secret application routing creates
    return None


class ModelIngress(pulumi.ComponentResource):
    """An Ingress per exposed model: https://<host>/models/<name>/v1/..."""

    def __init__(
        self, name: str, args: ModelIngressArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:network:ModelIngress", name, None, opts)
        secret = tls_secret(args)
        self.urls: dict[str, str] = {}
        scheme = "https" if secret else "http"
        for model in args.models:
            spec: dict = {
                "ingressClassName": args.class_name,
                "rules": [
                    {
                        "host": args.host,
                        "http": {
                            "paths": [
                                {
                                    "path": f"{model_path(model.name)}(/|$)(.*)",
                                    "pathType": "ImplementationSpecific",
                                    "backend": {
                                        "service": {
                                            "name": model.name,
                                            "port": {"number": model.service_port},
                                        }
                                    },
                                }
                            ]
                        },
                    }
                ],
            }
            if secret:
                spec["tls"] = [{"hosts": [args.host], "secretName": secret}]
            k8s.networking.v1.Ingress(
                f"{name}-{model.name}",
                metadata={
                    "name": model.name,
                    "namespace": args.namespace,
                    "annotations": ingress_annotations(args),
                },
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.urls[model.name] = f"{scheme}://{args.host}{model_path(model.name)}/v1"
        self.register_outputs({"urls": self.urls})


# -- network policies: deny by default, allow what serving needs ------------------------------

# Where the ingress controllers run: AKS application routing, or ingress-nginx's chart.
AKS_APP_ROUTING_NAMESPACE = "app-routing-system"
INGRESS_NGINX_NAMESPACE = "ingress-nginx"
# Model downloads (Hugging Face, the Ollama registry) go to public HTTPS endpoints; private
# ranges stay closed so a compromised server cannot reach the rest of the network.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
INFERENCE_COMPONENT = {"app.kubernetes.io/component": "inference"}


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    namespace: str
    # Namespaces whose pods may call the model servers (ingress controller, monitoring).
    client_namespaces: tuple[str, ...]


def network_policy_specs(args: NetworkPoliciesArgs) -> dict[str, dict]:
    """Named NetworkPolicy specs for the inference namespace."""
    from_namespaces = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
        for ns in args.client_namespaces
    ]
    return {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        },
        # Pods of the namespace talk to each other (Open WebUI to Ollama, clients in-cluster).
        "allow-same-namespace": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [{"to": [{"podSelector": {}}]}],
        },
        "allow-clients": {
            "podSelector": {"matchLabels": INFERENCE_COMPONENT},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": from_namespaces}],
        },
        "allow-model-downloads": {
            "podSelector": {"matchLabels": INFERENCE_COMPONENT},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}],
                    "ports": [{"protocol": "TCP", "port": 443}],
                }
            ],
        },
    }


class NetworkPolicies(pulumi.ComponentResource):
    """Default deny in the inference namespace, with the allows serving needs."""

    def __init__(
        self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:network:NetworkPolicies", name, None, opts)
        for policy, spec in network_policy_specs(args).items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy}",
                metadata={"name": policy, "namespace": args.namespace},
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"policies": sorted(network_policy_specs(args))})
