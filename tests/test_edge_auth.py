"""The edge's key check as the plan declares it: where the Ingress points, who reaches it,
how it is hardened, where its keys come from and when it rolls. What it answers is played
through a real NGINX in tests/test_edge_security.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import access, edge_auth
from tests.conftest import copy_config_root, read_stack, write_stack
from tests.netpol import External, Pod, allowed, policies_by_namespace
from tests.test_checkov import CHECKOV, REQUIRED_WORKLOAD_CHECKS
from tools.plan import ROOT, PlanConfigError, build_plan, kubernetes_manifests

P = "slm-deploy:"
ANNOTATION = "nginx.ingress.kubernetes.io/"
ROTATING = {
    "consumers": [
        {"name": "search-team", "rotation": 2, "previousValidUntil": "2999-01-31"},
        {"name": "support-bot"},
    ]
}


def _with_ingress(config_root: Path, stack: str, **extra: Any) -> dict:
    document = read_stack(config_root, stack)
    settings = {"enabled": True, "host": f"slm.{stack}.example.com"}
    if stack in ("staging", "prod"):
        settings["tlsSecretName"] = f"slm-{stack}-tls"
    document["config"][f"{P}ingress"] = settings
    for key, value in extra.items():
        document["config"][f"{P}{key}"] = value
    write_stack(config_root, stack, document)
    return build_plan(stack, config_root=config_root)


@pytest.fixture(scope="module")
def prod(tmp_path_factory) -> dict:
    root = copy_config_root(tmp_path_factory.mktemp("edge-auth-prod"))
    return _with_ingress(root, "prod")


def manifests(plan: dict) -> dict[str, dict]:
    return kubernetes_manifests(plan["resources"])


def one(plan: dict, kind: str, namespace: str, name: str) -> dict:
    found = [
        m
        for m in manifests(plan).values()
        if m["kind"] == kind
        and m["metadata"]["name"] == name
        and m["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, (kind, namespace, name)
    return found[0]


def test_every_vllm_ingress_asks_the_key_check_service(prod) -> None:
    service = one(prod, "Service", "slm-edge", "edge-auth")
    port = service["spec"]["ports"][0]
    assert port == {"name": "http", "port": 8080, "targetPort": "http"}
    ingresses = [m for m in manifests(prod).values() if m["kind"] == "Ingress"]
    assert sorted(i["metadata"]["name"] for i in ingresses) == ["phi4-mini", "qwen3-8b"]
    for ingress in ingresses:
        annotations = ingress["metadata"]["annotations"]
        assert annotations[f"{ANNOTATION}auth-url"] == (
            "http://edge-auth.slm-edge.svc.cluster.local:8080/auth"
        )
        assert annotations[f"{ANNOTATION}auth-method"] == "GET"
    # The Service selects the key check's pods, and the path is the one NGINX answers.
    deployment = one(prod, "Deployment", "slm-edge", "edge-auth")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    conf = one(prod, "ConfigMap", "slm-edge", "edge-auth")["data"]["nginx.conf"]
    assert "location = /auth {" in conf and "listen 8080;" in conf


def test_the_key_check_holds_no_key_only_the_path_of_its_map(prod) -> None:
    conf = one(prod, "ConfigMap", "slm-edge", "edge-auth")["data"]["nginx.conf"]
    assert re.findall(r"include (\S+);", conf) == ["/mnt/secrets-store/edge-auth-keys.map"]
    assert "Bearer" not in conf
    provider = one(prod, "SecretProviderClass", "slm-edge", "edge-auth")["spec"]
    assert provider["parameters"]["objects"] == (
        "array:\n  - |\n    objectName: edge-auth-keys\n    objectType: secret\n"
        "    objectAlias: edge-auth-keys.map\n"
    )
    # Read from the mount only: no Kubernetes Secret copy of the keys.
    assert provider["secretObjects"] == []
    vault = [
        r
        for r in prod["resources"]
        if r["type"] == "azure-native:keyvault:Secret"
        and r["inputs"]["secretName"] == "edge-auth-keys"
    ]
    assert [r["inputs"]["properties"]["value"] for r in vault] == ["[secret]"]
    assert prod["violations"] == []


def test_only_the_ingress_controller_reaches_the_key_check_and_it_reaches_nothing(prod) -> None:
    policies = policies_by_namespace(prod["resources"])
    assert sorted(policies["slm-edge"]) == ["allow-ingress-controller", "default-deny"]
    pod = Pod(
        "slm-edge",
        one(prod, "Deployment", "slm-edge", "edge-auth")["spec"]["template"]["metadata"]["labels"],
        {"http": 8080},
    )
    controller = Pod("app-routing-system", {"app": "nginx"})
    model = Pod("slm-inference", {"app.kubernetes.io/component": "inference"}, {"http": 8000})
    assert allowed(policies, controller, pod, 8080)
    assert not allowed(policies, controller, pod, 8081)
    assert not allowed(policies, model, pod, 8080)
    assert not allowed(policies, Pod("slm-monitoring", {}), pod, 8080)
    for destination, port in (
        (Pod("kube-system", {"k8s-app": "kube-dns"}), 53),
        (model, 8000),
        (External("104.16.0.1"), 443),
    ):
        assert not allowed(policies, pod, destination, port), destination
    namespace = one(prod, "Namespace", None, "slm-edge")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_key_check_is_hardened_like_the_servers(prod) -> None:
    deployment = one(prod, "Deployment", "slm-edge", "edge-auth")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == (
        "nginxinc/nginx-unprivileged:1.29.3-alpine"
        "@sha256:5aea7cc516b419e3526f47dd1531be31a56a046cfe44754d94f9383e13e2ee99"
    )
    assert container["command"] == ["nginx", "-e", "stderr", "-c", "/etc/edge-auth/nginx.conf"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert set(container["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert sorted(mounts) == ["/etc/edge-auth", "/mnt/secrets-store", "/tmp"]
    # Everything NGINX writes (pid file, temp files) is under /tmp, the emptyDir.
    conf = one(prod, "ConfigMap", "slm-edge", "edge-auth")["data"]["nginx.conf"]
    written = re.findall(r"(?:pid|_temp_path) (\S+);", conf)
    assert len(written) == 6 and all(path.startswith("/tmp/") for path in written)
    assert one(prod, "PodDisruptionBudget", "slm-edge", "edge-auth")["spec"]["maxUnavailable"] == 1


def test_a_new_key_set_rolls_the_key_check_like_the_servers(config_root) -> None:
    plan = _with_ingress(config_root, "dev", access=ROTATING)
    template = one(plan, "Deployment", "slm-edge", "edge-auth")["spec"]["template"]
    server = one(plan, "Deployment", "slm-inference", "phi4-mini")["spec"]["template"]
    expected = "api-key-search-team-2,api-key-search-team-1,api-key-support-bot-1"
    assert template["metadata"]["annotations"]["slm-deploy/api-keys"] == expected
    assert server["metadata"]["annotations"]["slm-deploy/api-keys"] == expected


def test_on_an_existing_cluster_the_keys_come_from_a_secret_and_dev_publishes_no_ollama(
    config_root,
) -> None:
    document = read_stack(config_root, "local")
    config = document["config"]
    config[f"{P}environment"] = "dev"
    config[f"{P}gpuPools"] = [{"name": "a10", "vmSize": "Standard_NV36ads_A10_v5"}]
    config[f"{P}models"].append(
        {
            "name": "phi4-mini",
            "engine": "vllm",
            "source": "microsoft/Phi-4-mini-instruct",
            "pool": "a10",
            "maxModelLen": 4096,
        }
    )
    config[f"{P}ingress"] = {"enabled": True, "host": "slm.example.com"}
    write_stack(config_root, "local", document)
    plan = build_plan("local", config_root=config_root)
    secret = one(plan, "Secret", "slm-edge", "slm-edge-auth-keys")
    assert secret["stringData"] == {"keys.map": "[secret]"}
    pod = one(plan, "Deployment", "slm-edge", "edge-auth")["spec"]["template"]["spec"]
    assert {"name": "edge-keys", "mountPath": "/var/run/slm-edge-keys", "readOnly": True} in (
        pod["containers"][0]["volumeMounts"]
    )
    conf = one(plan, "ConfigMap", "slm-edge", "edge-auth")["data"]["nginx.conf"]
    assert "include /var/run/slm-edge-keys/keys.map;" in conf
    # ingress-nginx here: its namespace, not AKS's, reaches the key check.
    policy = policies_by_namespace(plan["resources"])["slm-edge"]["allow-ingress-controller"]
    assert policy["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    ingresses = {
        m["metadata"]["name"]: m for m in manifests(plan).values() if m["kind"] == "Ingress"
    }
    assert f"{ANNOTATION}auth-url" in ingresses["phi4-mini"]["metadata"]["annotations"]
    # Ollama has no key to check: outside local it is not published at all.
    assert sorted(ingresses) == ["phi4-mini"]


def test_no_key_check_without_a_published_vllm_model(config_root) -> None:
    plan = _with_ingress(config_root, "local")
    assert not [m for m in manifests(plan).values() if m["metadata"].get("namespace") == "slm-edge"]
    assert "slm-edge" not in plan["outputs"]["namespaces"]


def test_the_map_is_case_sensitive_and_total() -> None:
    assert access.edge_keys_map(["abC1", "mock-password"]) == (
        '"~^Bearer abC1$" 1;\n"~^Bearer mock\\x2dpassword$" 1;\n'
    )
    with pytest.raises(ValueError, match="printable ASCII"):
        access.edge_keys_map(["a\nb"])


def test_prod_refuses_an_edge_image_without_a_digest(config_root) -> None:
    document = read_stack(config_root, "prod")
    document["config"][f"{P}ingress"] = {
        "enabled": True,
        "host": "slm.prod.example.com",
        "tlsSecretName": "slm-prod-tls",
        "edgeAuthImage": "nginxinc/nginx-unprivileged:1.29.3-alpine",
    }
    write_stack(config_root, "prod", document)
    with pytest.raises(PlanConfigError, match=r"ingress\.edgeAuthImage"):
        build_plan("prod", config_root=config_root)


def test_auth_url_names_the_service() -> None:
    assert edge_auth.auth_url() == "http://edge-auth.slm-edge.svc.cluster.local:8080/auth"


def test_checkov_passes_the_key_checks_objects(prod, tmp_path) -> None:
    """checkov's Kubernetes checks (the repository's config and skips) over the key
    check's objects: the shipped stacks publish no model, so tests/test_checkov.py never
    sees them."""
    for relative, manifest in manifests(prod).items():
        if manifest["metadata"].get("namespace") == "slm-edge" or manifest["kind"] == "Ingress":
            path = tmp_path / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    result = subprocess.run(
        [
            str(CHECKOV),
            "--config-file",
            str(ROOT / ".checkov.yaml"),
            "-d",
            str(tmp_path),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    assert report["results"]["failed_checks"] == []
    assert report["summary"]["parsing_errors"] == 0
    passed = {
        c["check_id"]
        for c in report["results"]["passed_checks"]
        if c["resource"] == "Deployment.slm-edge.edge-auth"
    }
    assert set(REQUIRED_WORKLOAD_CHECKS) - passed == set()
