"""Namespaces, labelled for Pod Security Standards and ownership."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import access
from components.loki import LOKI_PODS, LOKI_PORT
from components.workload import DOWNLOADS_LABEL

INFERENCE_NAMESPACE = "slm-inference"
MONITORING_NAMESPACE = "slm-monitoring"
# Node-level agents: NVIDIA's device plugin and DCGM exporter, Prometheus' node-exporter.
NODE_SYSTEM_NAMESPACE = "slm-system"
# The edge's key check (components/edge_auth.py), alone: only the ingress controller
# reaches it, and it reaches nothing.
EDGE_NAMESPACE = "slm-edge"


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    # Pod Security Standards level. "restricted" wherever the workloads allow. The one
    # exception is the node agents' namespace: the device plugin and the DCGM exporter need
    # host paths and device access, node-exporter the host network and PID namespace, so it
    # is "privileged" and holds nothing else (docs/security.md).
    pod_security: str
    purpose: str


@dataclass(frozen=True)
class NamespacesArgs:
    environment: str
    kubernetes_version: str
    specs: tuple[NamespaceSpec, ...]


def namespace_specs(
    *, gpu: bool, monitoring_in_cluster: bool, edge_auth: bool = False
) -> tuple[NamespaceSpec, ...]:
    specs = [NamespaceSpec(INFERENCE_NAMESPACE, "restricted", "model servers")]
    if edge_auth:
        specs.append(NamespaceSpec(EDGE_NAMESPACE, "restricted", "edge key check"))
    if gpu or monitoring_in_cluster:
        specs.append(NamespaceSpec(NODE_SYSTEM_NAMESPACE, "privileged", "node agents"))
    if monitoring_in_cluster:
        specs.append(NamespaceSpec(MONITORING_NAMESPACE, "restricted", "Prometheus, Grafana"))
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
#
# Only each model's OpenAI API is published: https://<host>/models/<name>/v1/<rest> reaches
# the server as /v1/<rest>, and every other path answers 404 from the controller's default
# backend. vLLM checks its API key only on paths under /v1, /v2, /inference and /cohere; the
# rest of its routes (/invocations, which generates like /v1/chat/completions, /metrics,
# /docs, /openapi.json, /load, /ping, ...) take no key, so they must never be reachable from
# outside (tests/test_edge_security.py checks this against vLLM's own route table).
# Ollama (exposed in local only) has no key at all; publishing only its /v1 keeps
# its model management API (/api/pull, /api/delete, /api/create) in the cluster.
#
# How ingress-nginx (AKS application routing runs v1.13) reads these rules: with use-regex
# or rewrite-target on any Ingress of a host, every location of that host becomes
# `location ~* "^<path>"` (case-insensitive, anchored at the start only) and the rewrite is
# `rewrite "(?i)<path>" <target> break;`. Both work on NGINX's normalised URI: percent-escapes
# decoded (%2F is a slash, %2e a dot), "." and ".." resolved, repeated slashes merged. So
# /models/<name>/v1/../../invocations becomes /models/invocations before any location is
# chosen, and no capture can climb out of /v1/. The target starts with the literal "/v1/":
# the server sees a lowercase /v1 prefix whatever case the client sent.

# AKS application routing add-on's managed NGINX class.
AKS_APP_ROUTING_CLASS = "webapprouting.kubernetes.azure.com"
# Prompts of a full 128K-token context are well under this; larger bodies are refused early.
MAX_BODY_SIZE = "16m"


@dataclass(frozen=True)
class ExposedModel:
    name: str
    service_port: int
    # Its keys are checked at the edge too (vLLM models, when the key check runs).
    keyed: bool = False


@dataclass(frozen=True)
class ModelIngressArgs:
    namespace: str
    host: str
    class_name: str
    models: tuple[ExposedModel, ...]
    max_request_seconds: int
    tls_secret_name: str | None
    tls_key_vault_certificate_uri: str | None
    # Per client address (access.perClientAddress): ingress-nginx cannot tell consumers
    # apart, its limit zones are keyed by the client's address (docs/security.md).
    rate_limit: access.RateLimit | None = None
    # The edge key check's URL (components/edge_auth.py), consulted for keyed models.
    auth_url: str | None = None


def model_path(model: str) -> str:
    return f"/models/{model}"


# The one API prefix published per model, and where it lands on the server.
API_PREFIX = "/v1/"
REWRITE_TARGET = f"{API_PREFIX}$1"


def ingress_path(model: str) -> str:
    """The Ingress rule's regex: the model's /v1/ and what follows it (captured as $1)."""
    return f"{model_path(model)}{API_PREFIX}(.*)"


def auth_annotations(auth_url: str | None) -> dict[str, str]:
    """Before proxying, ingress-nginx asks the key check with a GET carrying the client's
    headers (its Authorization among them) and no body; only a 2xx answer lets the request
    on, a 401 is the client's answer (authreq, controller-v1.13.7). AKS application routing
    accepts `auth-url` (risk High) under its annotations-risk-level Critical."""
    if auth_url is None:
        return {}
    return {f"{access.ANNOTATION}auth-url": auth_url, f"{access.ANNOTATION}auth-method": "GET"}


def ingress_annotations(args: ModelIngressArgs, keyed: bool = True) -> dict[str, str]:
    timeout = str(args.max_request_seconds)
    annotations = {
        # /models/<name>/v1/... reaches the server as /v1/..., nothing else reaches it.
        "nginx.ingress.kubernetes.io/use-regex": "true",
        "nginx.ingress.kubernetes.io/rewrite-target": REWRITE_TARGET,
        # Streamed completions: pass tokens on as they come, wait as long as a response may.
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-body-size": MAX_BODY_SIZE,
        **access.rate_limit_annotations(args.rate_limit, args.class_name),
        **auth_annotations(args.auth_url if keyed else None),
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
                                    "path": ingress_path(model.name),
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
                    "annotations": ingress_annotations(args, model.keyed),
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
# Also closed: shared address space (100.64/10, carrier NAT and some overlays) and
# link-local (169.254/16: the node's instance metadata and its managed identity).
PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
)
INFERENCE_COMPONENT = {"app.kubernetes.io/component": "inference"}
DOWNLOADS_MODELS = {DOWNLOADS_LABEL: "true"}


# Ports that other namespaces reach in the monitoring and node-agent namespaces.
PROMETHEUS_PORT = 9090
DCGM_EXPORTER_PORT = 9400


@dataclass(frozen=True)
class Peer:
    """Pods allowed to connect: a namespace, narrowed to some pods where their labels are
    ours to know (the add-ons Azure runs in kube-system label their pods as it sees fit)."""

    namespace: str
    pod_labels: tuple[tuple[str, str], ...] = ()

    def selector(self) -> dict:
        peer: dict = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}}
        }
        if self.pod_labels:
            peer["podSelector"] = {"matchLabels": dict(self.pod_labels)}
        return peer


# Prometheus' pods, as the Prometheus operator labels them.
PROMETHEUS_PODS = (("app.kubernetes.io/name", "prometheus"),)


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    inference_namespace: str
    # Who may call the model servers' port: the ingress controller, the metrics scraper.
    clients: tuple[Peer, ...]
    # In-cluster monitoring's namespace (None without it), and the node agents' (None when
    # neither GPU pools nor in-cluster monitoring create it).
    monitoring_namespace: str | None = None
    node_system_namespace: str | None = None
    # The metrics scraper: Prometheus in the monitoring namespace, or kube-system (ama-metrics).
    scraper: Peer | None = None
    # Who queries Prometheus from outside its namespace: KEDA's operator (kube-system).
    prometheus_clients: tuple[Peer, ...] = ()
    # The edge key check's namespace (None without it), and who calls it: the controller.
    edge_namespace: str | None = None
    edge_clients: tuple[Peer, ...] = ()
    # Who pushes logs to Loki (in the monitoring namespace): Alloy, from the node agents'.
    log_shippers: tuple[Peer, ...] = ()


def _deny_all(types: list[str]) -> dict:
    return {"podSelector": {}, "policyTypes": types}


def _same_namespace_ingress() -> dict:
    return {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {}}]}],
    }


def inference_policies(args: NetworkPoliciesArgs) -> dict[str, dict]:
    """The model servers: nothing in or out but clients, DNS and the model downloads."""
    return {
        "default-deny": _deny_all(["Ingress", "Egress"]),
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
        # The servers' one port ("http": the API and /metrics), nothing else of theirs.
        "allow-clients": {
            "podSelector": {"matchLabels": INFERENCE_COMPONENT},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [peer.selector() for peer in args.clients],
                    "ports": [{"protocol": "TCP", "port": "http"}],
                }
            ],
        },
        # Only pods that download models (vLLM servers fetching weights from Hugging Face,
        # Ollama pulling from its registry, the cache warmer) get a way out; a server whose
        # weights are in its image or a warmed cache, Open WebUI and anything else get none.
        "allow-model-downloads": {
            "podSelector": {"matchLabels": DOWNLOADS_MODELS},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}],
                    "ports": [{"protocol": "TCP", "port": 443}],
                }
            ],
        },
    }


def monitoring_policies(args: NetworkPoliciesArgs) -> dict[str, dict]:
    """Prometheus, Alertmanager, Grafana: reached from their own namespace, and Prometheus'
    query port from its clients (KEDA). Egress stays open: Prometheus scrapes every node's
    kubelet and the API server, whose addresses a policy cannot name ahead of time."""
    policies = {
        "default-deny-ingress": _deny_all(["Ingress"]),
        "allow-same-namespace": _same_namespace_ingress(),
    }
    if args.prometheus_clients:
        policies["allow-prometheus-queries"] = {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [peer.selector() for peer in args.prometheus_clients],
                    "ports": [{"protocol": "TCP", "port": PROMETHEUS_PORT}],
                }
            ],
        }
    if args.log_shippers:
        # Grafana reads Loki from the same namespace; only the collectors come from outside.
        policies["allow-log-push"] = {
            "podSelector": {"matchLabels": dict(LOKI_PODS)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [peer.selector() for peer in args.log_shippers],
                    "ports": [{"protocol": "TCP", "port": LOKI_PORT}],
                }
            ],
        }
    return policies


def node_system_policies(args: NetworkPoliciesArgs) -> dict[str, dict]:
    """The node agents take no connections but the scrape of the DCGM exporter.
    (node-exporter runs on the host network, where pod policies do not apply.)"""
    policies = {
        "default-deny-ingress": _deny_all(["Ingress"]),
        "allow-same-namespace": _same_namespace_ingress(),
    }
    if args.scraper:
        policies["allow-gpu-metrics-scrape"] = {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [args.scraper.selector()],
                    "ports": [{"protocol": "TCP", "port": DCGM_EXPORTER_PORT}],
                }
            ],
        }
    return policies


def edge_policies(args: NetworkPoliciesArgs) -> dict[str, dict]:
    """The key check: its port from the ingress controller, nothing else in, nothing out
    (no DNS either: it resolves no name and calls nothing)."""
    return {
        "default-deny": _deny_all(["Ingress", "Egress"]),
        "allow-ingress-controller": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [peer.selector() for peer in args.edge_clients],
                    "ports": [{"protocol": "TCP", "port": "http"}],
                }
            ],
        },
    }


def network_policy_specs(args: NetworkPoliciesArgs) -> dict[str, dict[str, dict]]:
    """Named NetworkPolicy specs by namespace: each namespace denies by default."""
    specs = {args.inference_namespace: inference_policies(args)}
    if args.monitoring_namespace:
        specs[args.monitoring_namespace] = monitoring_policies(args)
    if args.node_system_namespace:
        specs[args.node_system_namespace] = node_system_policies(args)
    if args.edge_namespace:
        specs[args.edge_namespace] = edge_policies(args)
    return specs


class NetworkPolicies(pulumi.ComponentResource):
    """Default deny in every platform namespace, with the allows each one needs."""

    def __init__(
        self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:network:NetworkPolicies", name, None, opts)
        declared = []
        for namespace, policies in network_policy_specs(args).items():
            for policy, spec in policies.items():
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{namespace}-{policy}",
                    metadata={"name": policy, "namespace": namespace},
                    spec=spec,
                    opts=pulumi.ResourceOptions(parent=self),
                )
                declared.append(f"{namespace}/{policy}")
        self.register_outputs({"policies": declared})
