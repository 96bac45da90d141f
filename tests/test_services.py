"""The model servers as each stack declares them: resources, probes, hardening, wiring."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.config import OllamaVariant
from components.ollama import modelfile
from tests.conftest import STACKS, read_stack, resources_of, write_stack
from tests.netpol import External, Pod, allowed, policies_by_namespace
from tools.plan import build_plan, kubernetes_manifests

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def _workloads(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m for m in kubernetes_manifests(plan["resources"]).values() if m["kind"] in WORKLOAD_KINDS
    ]


def _deployment(plan: dict[str, Any], name: str) -> dict[str, Any]:
    return next(w for w in _workloads(plan) if w["metadata"]["name"] == name)


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_has_requests_limits_probes_and_restricted_security(plans, stack) -> None:
    workloads = _workloads(plans[stack])
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{stack}/{workload['metadata']['name']}/{container['name']}"
            assert set(container["resources"]["requests"]) >= {"cpu", "memory"}, where
            assert set(container["resources"]["limits"]) >= {"cpu", "memory"}, where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert ":latest" not in container["image"] and ":" in container["image"], where
        for container in pod["containers"]:
            assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(container), where
        for volume in pod["volumes"]:
            allowed = {
                "configMap",
                "emptyDir",
                "persistentVolumeClaim",
                "secret",
                "projected",
                "csi",
            }
            assert set(volume) - {"name"} <= allowed, volume


def test_dev_vllm_deployment_by_the_numbers(plans) -> None:
    deployment = _deployment(plans["dev"], "phi4-mini")
    spec = deployment["spec"]
    assert spec["replicas"] == 0  # dev scales to zero
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == (
        "vllm/vllm-openai:v0.31.0"
        "@sha256:c1c9f6fd5c109ba7f0546a59f5b2f15fb87f64c77782e90a27b648b42a8e67c3"
    )
    # `vllm serve`, the supported entry point at v0.31.0, takes the model as its argument.
    assert container["command"] == ["vllm", "serve"]
    assert container["args"][:8] == [
        "microsoft/Phi-4-mini-instruct",
        "--served-model-name=phi4-mini",
        "--max-model-len=4096",
        "--max-num-seqs=4",
        "--max-num-batched-tokens=2048",
        "--gpu-memory-utilization=0.85",
        "--tensor-parallel-size=1",
        "--dtype=float16",
    ]
    # NC4as_T4_v3: 4 vCPU, 28 GiB, 1 GPU -> half requested, three quarters the limit.
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "14Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "3", "memory": "21Gi", "nvidia.com/gpu": "1"},
    }
    assert container["startupProbe"] == {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 60,
    }
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}
    assert pod["terminationGracePeriodSeconds"] == 15 + 600 + 30
    assert pod["nodeSelector"] == {"slm-deploy/pool": "t4spot"}
    assert {t["key"] for t in pod["tolerations"]} == {
        "nvidia.com/gpu",
        "kubernetes.azure.com/scalesetpriority",
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "slm-api-key", "key": "api-key"}
    }
    assert "HF_TOKEN" not in env  # Phi-4-mini is not gated
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"] == {
        "name": "models",
        "persistentVolumeClaim": {"claimName": "phi4-mini-models"},
    }
    assert volumes["dshm"]["emptyDir"] == {"sizeLimit": "2Gi", "medium": "Memory"}
    assert len(pod["topologySpreadConstraints"]) == 2


def test_model_cache_is_shared_azure_files_and_protected_in_prod(plans) -> None:
    claims = {
        r["inputs"]["metadata"]["name"]: r
        for r in resources_of(plans["prod"], "kubernetes:core/v1:PersistentVolumeClaim")
    }
    phi = claims["phi4-mini-models"]
    assert phi["inputs"]["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "100Gi"}},
        "storageClassName": "azurefile-csi-premium",
    }
    assert phi["protect"] is True and phi["retainOnDelete"] is True
    dev_claim = resources_of(plans["dev"], "kubernetes:core/v1:PersistentVolumeClaim")[0]
    assert dev_claim["protect"] is False


def test_prod_pins_revisions_and_spreads_replicas(plans) -> None:
    deployment = _deployment(plans["prod"], "qwen3-8b")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--revision=b968826d9c46dd6066d109eabc6255188de91218" in container["args"]
    assert "--reasoning-parser=qwen3" in container["args"]
    assert deployment["spec"]["replicas"] == 1
    pdbs = [r for r in resources_of(plans["prod"], "kubernetes:policy/v1:PodDisruptionBudget")]
    assert sorted(p["inputs"]["metadata"]["name"] for p in pdbs) == ["phi4-mini", "qwen3-8b"]
    assert pdbs[0]["inputs"]["spec"]["maxUnavailable"] == 1


def test_local_ollama_pulls_before_it_serves(plans) -> None:
    deployment = _deployment(plans["local"], "qwen3-tiny")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    init = pod["initContainers"][0]
    assert init["command"][:2] == ["/bin/sh", "-c"]
    assert "ollama pull qwen3:0.6b\n" in init["command"][2]
    server = pod["containers"][0]
    assert server["readinessProbe"]["httpGet"] == {"path": "/api/tags", "port": "http"}
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["OLLAMA_NUM_PARALLEL"] == "4" and env["OLLAMA_CONTEXT_LENGTH"] == "4096"
    assert env["OLLAMA_MODELS"] == "/models/ollama" and env["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert "nodeSelector" not in pod  # CPU
    assert "nvidia.com/gpu" not in server["resources"]["limits"]
    # qwen3:0.6b: 0.39 GB weights + 4 x 4096 tokens of KV cache = 2.11 GiB, + 1 GiB runtime.
    assert server["resources"]["requests"]["memory"] == "4Gi"
    assert plans["local"]["outputs"]["endpoints"] == {
        "qwen3-tiny": "http://qwen3-tiny.slm-inference.svc.cluster.local:11434"
    }


PRELOADED_IMAGE = "registry.example.com/slm/ollama-preloaded:0.1.0@sha256:" + "1" * 64


def test_preloaded_ollama_pulls_nothing_and_gets_no_egress(config_root) -> None:
    document = read_stack(config_root, "local")
    document["config"]["slm-deploy:serving"] = {
        "ollamaImage": PRELOADED_IMAGE,
        "ollama": {"preloaded": True},
    }
    write_stack(config_root, "local", document)
    plan = build_plan("local", config_root=config_root)
    deployment = _deployment(plan, "qwen3-tiny")
    template = deployment["spec"]["template"]
    pod = template["spec"]
    # The selector stays; only the downloads label goes.
    assert template["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
    (init,) = pod["initContainers"]
    assert init["name"] == "check-models" and init["image"] == PRELOADED_IMAGE
    script = init["command"][2]
    assert "ollama pull" not in script
    assert "ollama show qwen3:0.6b >/dev/null 2>&1 || " in script
    for container in (init, pod["containers"][0]):
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["OLLAMA_MODELS"] == "/usr/share/ollama/models"
        assert env["OLLAMA_NOPRUNE"] == "1"
        assert {m["name"] for m in container["volumeMounts"]} == {"scratch", "tmp"}
    assert {v["name"] for v in pod["volumes"]} == {"scratch", "tmp"}
    assert resources_of(plan, "kubernetes:core/v1:PersistentVolumeClaim") == []
    policies = policies_by_namespace(plan["resources"])
    server = Pod("slm-inference", template["metadata"]["labels"], {"http": 11434})
    assert allowed(policies, server, External("104.16.0.1"), 443) is False
    assert allowed(policies, server, Pod("kube-system", {"k8s-app": "kube-dns"}), 53, "UDP")


def test_modelfile_for_a_variant() -> None:
    variant = OllamaVariant.model_validate(
        {"name": "phi4-reasoning", "system": "Think step by step.", "temperature": 0.3, "topP": 0.8}
    )
    assert modelfile("phi4-mini:3.8b", variant) == (
        "FROM phi4-mini:3.8b\nPARAMETER temperature 0.3\nPARAMETER top_p 0.8\n"
        'SYSTEM """Think step by step."""\n'
    )


def test_ollama_variants_and_open_webui(config_root) -> None:
    document = read_stack(config_root, "local")
    document["config"]["slm-deploy:models"][0]["variants"] = [
        {"name": "tiny-coder", "system": "You write Python.", "temperature": 0.5, "topP": 0.9}
    ]
    document["config"]["slm-deploy:serving"] = {"ollama": {"openWebUi": {"enabled": True}}}
    write_stack(config_root, "local", document)
    plan = build_plan("local", config_root=config_root)
    manifests = kubernetes_manifests(plan["resources"])
    config_map = manifests["slm-inference/configmap-qwen3-tiny-modelfiles.yaml"]
    assert config_map["data"]["tiny-coder"].startswith(
        "FROM qwen3:0.6b\nPARAMETER temperature 0.5\n"
    )
    init = manifests["slm-inference/deployment-qwen3-tiny.yaml"]["spec"]["template"]["spec"][
        "initContainers"
    ][0]
    assert "ollama create tiny-coder -f /modelfiles/tiny-coder\n" in init["command"][2]
    webui = manifests["slm-inference/deployment-open-webui.yaml"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in webui["containers"][0]["env"]}
    assert env["OLLAMA_BASE_URLS"] == "http://qwen3-tiny.slm-inference.svc.cluster.local:11434"
    # As Ollama's /api/tags lists the variant, the id Open WebUI gives it (tests/test_open_webui).
    assert env["DEFAULT_MODELS"] == "tiny-coder:latest" and env["WEBUI_AUTH"] == "True"
    assert plan["outputs"]["servedModelNames"] == {"qwen3-tiny": ["qwen3:0.6b", "tiny-coder"]}


def test_ingress_routes_each_model_with_streaming_timeouts_and_tls(config_root) -> None:
    document = read_stack(config_root, "staging")
    document["config"]["slm-deploy:ingress"] = {
        "enabled": True,
        "host": "slm.staging.example.com",
        "tlsSecretName": "slm-staging-tls",
    }
    write_stack(config_root, "staging", document)
    plan = build_plan("staging", config_root=config_root)
    ingress = kubernetes_manifests(plan["resources"])["slm-inference/ingress-phi4-mini.yaml"]
    assert ingress["spec"]["ingressClassName"] == "webapprouting.kubernetes.azure.com"
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "slm.staging.example.com"
    # Only the model's /v1 is published (components/network.py, tests/test_edge_security.py).
    assert rule["http"]["paths"][0]["path"] == "/models/phi4-mini/v1/(.*)"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["slm.staging.example.com"], "secretName": "slm-staging-tls"}
    ]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "600"
    assert annotations["nginx.ingress.kubernetes.io/rewrite-target"] == "/v1/$1"
    cluster = resources_of(plan, "azure-native:containerservice:ManagedCluster")[0]["inputs"]
    assert cluster["ingressProfile"] == {"webAppRouting": {"enabled": True}}
    assert (
        plan["outputs"]["endpoints"]["phi4-mini"]
        == "https://slm.staging.example.com/models/phi4-mini/v1"
    )


def test_ingress_without_tls_is_refused_in_staging(config_root) -> None:
    from tools.plan import PlanConfigError

    document = read_stack(config_root, "staging")
    document["config"]["slm-deploy:ingress"] = {"enabled": True, "host": "slm.staging.example.com"}
    write_stack(config_root, "staging", document)
    with pytest.raises(PlanConfigError, match="ingress.tlsSecretName: null is not allowed"):
        build_plan("staging", config_root=config_root)


def test_gated_models_read_the_hugging_face_token(config_root) -> None:
    document = read_stack(config_root, "dev")
    document["config"]["slm-deploy:gpuPools"][0]["vmSize"] = "Standard_NV36ads_A10_v5"
    document["config"]["slm-deploy:models"][0]["source"] = "google/gemma-3-4b-it"
    document["config"]["slm-deploy:secrets"] = {"huggingFaceToken": {"secure": "v1:abc"}}
    write_stack(config_root, "dev", document)
    plan = build_plan("dev", config_root=config_root)
    manifests = kubernetes_manifests(plan["resources"])
    env = {
        e["name"]: e
        for e in manifests["slm-inference/deployment-phi4-mini.yaml"]["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert env["HF_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "slm-hf-token", "key": "token"}
    }
    provider = manifests["slm-inference/secretproviderclass-model-server.yaml"]["spec"]
    assert {"objectName": "hugging-face-token", "key": "token"} in [
        entry for synced in provider["secretObjects"] for entry in synced["data"]
    ]
    assert "v1:abc" not in yaml.safe_dump(manifests)


def test_inference_namespace_denies_by_default_and_allows_clients_dns_downloads(plans) -> None:
    policies = {
        r["inputs"]["metadata"]["name"]: r["inputs"]["spec"]
        for r in resources_of(plans["prod"], "kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r["inputs"]["metadata"]["namespace"] == "slm-inference"
    }
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    clients = policies["allow-clients"]["ingress"][0]["from"]
    assert [
        c["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for c in clients
    ] == [
        "app-routing-system",
        "slm-monitoring",
    ]
    # Egress is for the pods that download a model, marked by a pod-template label.
    assert policies["allow-model-downloads"]["podSelector"] == {
        "matchLabels": {"slm-deploy/downloads-models": "true"}
    }
    download = policies["allow-model-downloads"]["egress"][0]
    assert download["ports"] == [{"protocol": "TCP", "port": 443}]
    assert download["to"][0]["ipBlock"]["except"] == [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
    ]
    assert policies["allow-dns"]["egress"][0]["ports"] == [
        {"protocol": "UDP", "port": 53},
        {"protocol": "TCP", "port": 53},
    ]
    local = {
        r["inputs"]["metadata"]["name"]: r["inputs"]["spec"]
        for r in resources_of(plans["local"], "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    assert local["allow-clients"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }


@pytest.mark.parametrize(("stack", "model"), [("local", "qwen3-tiny"), ("dev", "phi4-mini")])
def test_model_cache_node_changes_only_what_the_fork_guide_says(
    plans, config_root, stack: str, model: str
) -> None:
    """docs/fork-guide.md: `serving.modelCache: node` turns every model's cache claim, an
    Ollama model's included, into an emptyDir; nothing else changes (local: Ollama; dev:
    vLLM)."""
    document = read_stack(config_root, stack)
    document["config"].setdefault("slm-deploy:serving", {})["modelCache"] = "node"
    write_stack(config_root, stack, document)
    node = build_plan(stack, config_root=config_root)
    before = kubernetes_manifests(plans[stack]["resources"])
    after = kubernetes_manifests(node["resources"])
    claim = f"slm-inference/persistentvolumeclaim-{model}-models.yaml"
    assert sorted(set(before) - set(after)) == [claim]
    assert set(after) <= set(before)
    changed = sorted(path for path in after if after[path] != before[path])
    assert changed == [f"slm-inference/deployment-{model}.yaml"]
    (models,) = [
        volume
        for volume in after[changed[0]]["spec"]["template"]["spec"]["volumes"]
        if volume["name"] == "models"
    ]
    assert set(models) == {"name", "emptyDir"}
    # No other resource, Azure's included, appears or goes: the claim's is the only URN gone.
    gone = {r["urn"] for r in plans[stack]["resources"]} - {r["urn"] for r in node["resources"]}
    assert [urn.rsplit("::", 1)[1] for urn in gone] == [f"slm-{model}-models"]
    assert {r["urn"] for r in node["resources"]} < {r["urn"] for r in plans[stack]["resources"]}
