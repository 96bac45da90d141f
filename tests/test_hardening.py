"""Hardening across namespaces: Pod Security Standards levels, default-deny network policies
with their explicit allows, kube-prometheus-stack's pods made "restricted", service accounts
without tokens."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from components.workload import DOWNLOADS_LABEL
from tests.conftest import STACKS, read_stack, resources_of, write_stack
from tests.netpol import External, Pod, allowed, policies_by_namespace
from tools.plan import build_plan

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _policies(plan: dict[str, Any]) -> dict[str, dict[str, dict]]:
    by_namespace: dict[str, dict[str, dict]] = {}
    for policy in resources_of(plan, NETWORK_POLICY):
        meta = policy["inputs"]["metadata"]
        by_namespace.setdefault(meta["namespace"], {})[meta["name"]] = policy["inputs"]["spec"]
    return by_namespace


def _pod_security(plan: dict[str, Any]) -> dict[str, set[str]]:
    levels = {}
    for namespace in resources_of(plan, "kubernetes:core/v1:Namespace"):
        labels = namespace["inputs"]["metadata"]["labels"]
        levels[namespace["inputs"]["metadata"]["name"]] = {
            labels[f"pod-security.kubernetes.io/{mode}"] for mode in ("enforce", "audit", "warn")
        }
    return levels


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_is_restricted_but_the_node_agents(plans, stack: str) -> None:
    expected = {"slm-inference": {"restricted"}}
    if stack != "local":
        expected |= {"slm-monitoring": {"restricted"}, "slm-system": {"privileged"}}
    assert _pod_security(plans[stack]) == expected


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_denies_ingress_by_default(plans, stack: str) -> None:
    policies = _policies(plans[stack])
    assert set(policies) == set(_pod_security(plans[stack]))
    for namespace, named in policies.items():
        denies = [spec for spec in named.values() if "ingress" not in spec and "egress" not in spec]
        assert denies, namespace
        assert all(spec["podSelector"] == {} for spec in denies)
        assert any("Ingress" in spec["policyTypes"] for spec in denies), namespace
    # The model servers are closed both ways: only DNS, clients and downloads are allowed.
    assert policies["slm-inference"]["default-deny"]["policyTypes"] == ["Ingress", "Egress"]


def test_only_keda_may_query_prometheus_from_outside_monitoring(plans) -> None:
    monitoring = _policies(plans["prod"])["slm-monitoring"]
    assert set(monitoring) == {
        "default-deny-ingress",
        "allow-same-namespace",
        "allow-prometheus-queries",
        "allow-log-push",
    }
    assert monitoring["allow-prometheus-queries"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 9090}],
            }
        ],
    }


def test_node_agents_take_only_the_gpu_metrics_scrape(plans) -> None:
    system = _policies(plans["dev"])["slm-system"]
    assert system["allow-gpu-metrics-scrape"]["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "slm-monitoring"}
                    },
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 9400}],
        }
    ]


def test_managed_prometheus_scrapes_from_kube_system(config_root) -> None:
    document = read_stack(config_root, "staging")
    document["config"]["slm-deploy:monitoring"] = {"mode": "azure-managed"}
    write_stack(config_root, "staging", document)
    policies = _policies(build_plan("staging", config_root=config_root))
    assert set(policies) == {"slm-inference", "slm-system"}
    scrape = policies["slm-system"]["allow-gpu-metrics-scrape"]["ingress"][0]["from"]
    assert scrape == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]


def _kps_values(plan: dict[str, Any]) -> dict[str, Any]:
    (release,) = [
        r
        for r in resources_of(plan, "kubernetes:helm.sh/v3:Release")
        if r["inputs"]["chart"] == "kube-prometheus-stack"
    ]
    return release["inputs"]["values"]


def test_monitoring_pods_are_restricted_and_node_exporter_moves_out(plans) -> None:
    values = _kps_values(plans["prod"])
    restricted_pod = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for pod in (
        values["prometheus"]["prometheusSpec"]["securityContext"],
        values["alertmanager"]["alertmanagerSpec"]["securityContext"],
        values["prometheusOperator"]["securityContext"],
        values["kube-state-metrics"]["securityContext"],
        values["grafana"]["securityContext"],
    ):
        assert pod.items() >= restricted_pod.items()
        assert pod["runAsUser"] != 0
    assert values["prometheusOperator"]["containerSecurityContext"] == RESTRICTED_CONTAINER
    assert values["kube-state-metrics"]["containerSecurityContext"] == RESTRICTED_CONTAINER
    assert values["grafana"]["sidecar"]["securityContext"] == RESTRICTED_CONTAINER
    grafana = values["grafana"]["containerSecurityContext"]
    assert grafana == RESTRICTED_CONTAINER | {"readOnlyRootFilesystem": False}
    # The rule-validating webhook (and its root certificate job) is off: promtool checks
    # the rules before merge instead.
    assert values["prometheusOperator"]["admissionWebhooks"] == {"enabled": False}
    assert values["prometheusOperator"]["tls"] == {"enabled": False}
    assert values["prometheus-node-exporter"] == {"namespaceOverride": "slm-system"}


@pytest.mark.parametrize("stack", STACKS)
def test_service_accounts_we_create_mount_no_token(plans, stack: str) -> None:
    for account in resources_of(plans[stack], "kubernetes:core/v1:ServiceAccount"):
        assert account["inputs"]["automountServiceAccountToken"] is False


# -- who can reach whom (tests/netpol.py evaluates the plan's policies) ----------------------


def _pod_of(plan: dict[str, Any], deployment: str) -> Pod:
    (manifest,) = [
        r["inputs"]
        for r in resources_of(plan, "kubernetes:apps/v1:Deployment")
        if r["inputs"]["metadata"]["name"] == deployment
    ]
    template = manifest["spec"]["template"]
    ports = {
        port["name"]: port["containerPort"]
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
    }
    return Pod(manifest["metadata"]["namespace"], template["metadata"]["labels"], ports)


PROMETHEUS = Pod("slm-monitoring", {"app.kubernetes.io/name": "prometheus"}, {"web": 9090})
GRAFANA = Pod("slm-monitoring", {"app.kubernetes.io/name": "grafana"}, {"grafana": 3000})
KEDA = Pod("kube-system", {"app": "keda-operator"})
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
APP_ROUTING = Pod("app-routing-system", {"app": "nginx"})
DCGM = Pod("slm-system", {"app.kubernetes.io/name": "dcgm-exporter"}, {"metrics": 9400})
PUBLIC = External("104.16.0.1")  # a public address (model downloads)


@pytest.mark.parametrize(
    ("source", "destination", "port", "expected"),
    [
        ("prometheus", "vllm", 8000, True),  # scrape /metrics
        ("grafana", "vllm", 8000, False),  # other monitoring pods: no
        ("app-routing", "vllm", 8000, True),  # the ingress controller
        ("app-routing", "vllm", 8001, False),  # only the servers' http port
        ("keda", "prometheus", 9090, True),  # the autoscaler's queries
        ("keda", "grafana", 3000, False),
        ("grafana", "prometheus", 9090, True),  # within the namespace
        ("vllm", "kube-dns", 53, True),
        ("vllm", "public", 443, True),  # weights from Hugging Face
        ("vllm", "public", 80, False),
        ("vllm", "private", 443, False),  # nothing else in the network
        ("vllm", "metadata", 443, False),  # not the node's instance metadata
        ("vllm", "prometheus", 9090, False),
        ("prometheus", "dcgm", 9400, True),  # GPU metrics
        ("vllm", "dcgm", 9400, False),
    ],
)
def test_who_reaches_whom_in_prod(plans, source, destination, port, expected) -> None:
    plan = plans["prod"]
    endpoints = {
        "prometheus": PROMETHEUS,
        "grafana": GRAFANA,
        "keda": KEDA,
        "kube-dns": KUBE_DNS,
        "app-routing": APP_ROUTING,
        "dcgm": DCGM,
        "vllm": _pod_of(plan, "phi4-mini"),
        "public": PUBLIC,
        "private": External("10.1.2.3"),
        "metadata": External("169.254.169.254"),
    }
    protocol = "UDP" if port == 53 else "TCP"
    policies = policies_by_namespace(plan["resources"])
    assert allowed(policies, endpoints[source], endpoints[destination], port, protocol) is expected


def test_only_model_servers_download(plans, config_root) -> None:
    document = read_stack(config_root, "local")
    document["config"]["slm-deploy:serving"] = {"ollama": {"openWebUi": {"enabled": True}}}
    write_stack(config_root, "local", document)
    plan = build_plan("local", config_root=config_root)
    policies = policies_by_namespace(plan["resources"])
    ollama, webui = _pod_of(plan, "qwen3-tiny"), _pod_of(plan, "open-webui")
    assert allowed(policies, ollama, PUBLIC, 443) is True  # pulls the model
    assert allowed(policies, webui, PUBLIC, 443) is False  # no way out
    assert allowed(policies, webui, ollama, ollama.ports["http"]) is True
    # What lets a pod out is the downloads label, which only the model servers carry.
    assert ollama.labels[DOWNLOADS_LABEL] == "true" and DOWNLOADS_LABEL not in webui.labels
    assert allowed(policies, replace(webui, labels={DOWNLOADS_LABEL: "true"}), PUBLIC, 443)


@pytest.mark.parametrize("stack", STACKS)
def test_the_downloads_label_is_never_part_of_a_selector(plans, stack: str) -> None:
    """Selectors are immutable: turning downloads off (a preloaded image, a warmed cache)
    must change the pod template only, never replace a Deployment."""
    for deployment in resources_of(plans[stack], "kubernetes:apps/v1:Deployment"):
        spec = deployment["inputs"]["spec"]
        assert DOWNLOADS_LABEL not in spec["selector"]["matchLabels"]
        labels = spec["template"]["metadata"]["labels"]
        assert labels.items() >= spec["selector"]["matchLabels"].items()


# -- every pod has a node to land on ----------------------------------------------------------

WORKLOAD_TYPES = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:batch/v1:Job",
)


def _taint(text: str) -> dict[str, str]:
    key_value, effect = text.split(":")
    key, _, value = key_value.partition("=")
    return {"key": key, "value": value, "effect": effect}


def _aks_pools(plan: dict[str, Any]) -> list[tuple[dict[str, str], list[dict[str, str]]]]:
    """Each AKS pool as the scheduler sees it: its node labels and its taints."""
    (cluster,) = resources_of(plan, "azure-native:containerservice:ManagedCluster")
    pools = [
        ({}, [_taint(t) for t in profile.get("nodeTaints", [])])
        for profile in cluster["inputs"]["agentPoolProfiles"]
    ]
    for pool in resources_of(plan, "azure-native:containerservice:AgentPool"):
        inputs = pool["inputs"]
        pools.append((inputs["nodeLabels"], [_taint(t) for t in inputs.get("nodeTaints", [])]))
    return pools


def _tolerates(tolerations: list[dict], taint: dict[str, str]) -> bool:
    for toleration in tolerations:
        if toleration.get("key") != taint["key"]:
            continue
        if toleration.get("effect") not in (None, taint["effect"]):
            continue
        if toleration.get("operator") == "Exists" or toleration.get("value") == taint["value"]:
            return True
    return False


def _schedulable(pod: dict[str, Any], labels: dict[str, str], taints: list[dict]) -> bool:
    selector = pod.get("nodeSelector", {})
    tolerations = pod.get("tolerations", [])
    return all(labels.get(k) == v for k, v in selector.items()) and all(
        _tolerates(tolerations, taint) for taint in taints
    )


def _unplaceable(plan: dict[str, Any]) -> list[str]:
    pools = _aks_pools(plan)
    stranded = []
    for type_ in WORKLOAD_TYPES:
        for workload in resources_of(plan, type_):
            pod = workload["inputs"]["spec"]["template"]["spec"]
            if not any(_schedulable(pod, labels, taints) for labels, taints in pools):
                stranded.append(workload["inputs"]["metadata"]["name"])
    return stranded


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_pod_has_a_pool_that_takes_it(plans, stack: str) -> None:
    assert _unplaceable(plans[stack]) == []


def test_pods_without_a_gpu_land_on_the_system_pool_on_aks(config_root) -> None:
    """Open WebUI, a CPU model and the cache warmer need no GPU: the system pool's taint is
    the only one they can tolerate on AKS."""
    document = read_stack(config_root, "dev")
    config = document["config"]
    config["slm-deploy:models"][0]["revision"] = "c0fb9e74abda11b496b7907a9c6c9009a7a0488f"
    config["slm-deploy:models"].append(
        {"name": "qwen3-tiny", "engine": "ollama", "source": "qwen3:0.6b"}
    )
    digest = "0" * 64
    config["slm-deploy:serving"] = {
        "ollama": {"openWebUi": {"enabled": True}},
        "cacheWarmer": {"enabled": True, "image": f"acr.example/warmer:1@sha256:{digest}"},
    }
    write_stack(config_root, "dev", document)
    plan = build_plan("dev", config_root=config_root)
    names = {w["inputs"]["metadata"]["name"] for t in WORKLOAD_TYPES for w in resources_of(plan, t)}
    assert {"open-webui", "qwen3-tiny", "phi4-mini"} <= names
    assert any(name.startswith("phi4-mini-warm-") for name in names)
    assert _unplaceable(plan) == []
    # And the check can fail: without its toleration the warmer would have nowhere to go.
    for job in resources_of(plan, "kubernetes:batch/v1:Job"):
        del job["inputs"]["spec"]["template"]["spec"]["tolerations"]
    assert [n for n in _unplaceable(plan) if "-warm-" in n]
