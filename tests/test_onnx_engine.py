"""The third engine in a stack: ONNX Runtime GenAI on a CPU pool (issue 16).

A variant of the fixture staging stack (tests/fixtures/stacks/, never stacks/) adds a CPU pool
and Phi-4-mini's CPU int4 ONNX checkpoint beside its vLLM model; these tests assert what the
plan declares for it, by value, and the one-line refusals of the configurations that cannot
work. The same model is planned in every mode of the mode matrix (tests/test_mode_matrix.py,
switch "onnx"), which runs the contract checks over it.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components import access as access_module
from components import cache_warmer, catalog, sizing
from tests.conftest import read_stack, resources_of, write_stack
from tests.test_onnx_server import ROOT, model_dir, onnx_python  # noqa: F401
from tools.plan import PlanConfigError, build_plan, kubernetes_manifests

P = "slm-deploy:"
SOURCE = "microsoft/Phi-4-mini-instruct-onnx"
SPEC = catalog.MODELS[SOURCE]
REVISION = SPEC.revision
SUBFOLDER = "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4"
ONNX_IMAGE = (
    "registry.example.com/onnxruntime-genai-server:0.18.0"
    "@sha256:3333333333333333333333333333333333333333333333333333333333333333"
)
WARMER_IMAGE = (
    "registry.example.com/model-cache-warmer:1.0.0"
    "@sha256:0000000000000000000000000000000000000000000000000000000000000000"
)
# Two replicas at most, and a node for a rollout's new replica.
CPU_POOL = {"name": "cpu", "vmSize": "Standard_D4s_v5", "minCount": 1, "maxCount": 3}
ONNX_MODEL = {
    "name": "phi4-mini-cpu",
    "engine": "onnxruntime",
    "source": SOURCE,
    "revision": REVISION,
    "pool": "cpu",
    "replicas": {"min": 1, "max": 2},
}


def onnx_stack(root: Path, **changes: Any) -> str:
    """Fixture staging plus the CPU pool, the ONNX model, its image and the warmer;
    `changes` replace or (None) remove top-level keys, or patch the model (model=...)."""
    document = read_stack(root, "staging")
    config = document["config"]
    config[f"{P}cpuPools"] = [dict(CPU_POOL)]
    model = copy.deepcopy(ONNX_MODEL) | changes.pop("model", {})
    config[f"{P}models"].append({k: v for k, v in model.items() if v is not None})
    config[f"{P}serving"] = {
        "onnxImage": ONNX_IMAGE,
        "cacheWarmer": {"enabled": True, "image": WARMER_IMAGE},
    }
    for key, value in changes.items():
        if value is None:
            config.pop(f"{P}{key}", None)
        else:
            config[f"{P}{key}"] = value
    write_stack(root, "cpu", document)
    return "cpu"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.conftest import copy_config_root

    root = copy_config_root(tmp_path_factory.mktemp("onnx"))
    return build_plan(onnx_stack(root), config_root=root)


def manifest(plan: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found = [
        m
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == kind and m["metadata"]["name"] == name
    ]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


# -- what the plan declares -------------------------------------------------------------------


def test_the_cpu_pool_is_a_tainted_autoscaled_agent_pool(plan) -> None:
    (pool,) = [
        r["inputs"]
        for r in resources_of(plan, "azure-native:containerservice:AgentPool")
        if r["inputs"]["agentPoolName"] == "cpu"
    ]
    assert pool["vmSize"] == "Standard_D4s_v5"
    assert (pool["minCount"], pool["maxCount"], pool["count"]) == (1, 3, 1)
    assert pool["enableAutoScaling"] is True and pool["mode"] == "User"
    assert pool["nodeLabels"] == {"slm-deploy/pool": "cpu"}
    assert pool["nodeTaints"] == ["slm-deploy/cpu-inference=true:NoSchedule"]
    assert "gpuProfile" not in pool and pool["scaleSetPriority"] == "Regular"


def test_the_server_runs_the_cached_variant_with_the_sized_arguments(plan) -> None:
    deployment = manifest(plan, "Deployment", "phi4-mini-cpu")
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    fit = sizing.cpu_fit(SPEC, catalog.CPU_SKUS["Standard_D4s_v5"], sizing.ServingShape(4096, 1))
    assert server["image"] == ONNX_IMAGE
    assert server["command"] == ["python3", "/app/server.py"]
    assert server["args"] == [
        "--model-dir=/models/huggingface/hub/models--microsoft--Phi-4-mini-instruct-onnx"
        f"/snapshots/{REVISION}/{SUBFOLDER}",
        "--served-model-name=phi4-mini-cpu",
        "--host=0.0.0.0",
        "--port=8000",
        "--max-concurrent=1",
        "--max-model-len=4096",
        f"--threads={fit.requested_vcpus}",
    ]
    # D4s_v5: 4 vCPUs less AKS's 140 millicores leave 3 whole CPUs.
    assert fit.requested_vcpus == 3
    # Weights 52.1 MB + 4.86 GB (the recorded files) = 4,684.4 MiB; the float32 KV cache of
    # 4,096 tokens: 32 layers x 8 KV heads x 128 x 2 (K, V) x 4 bytes x 4,096 = 1,024 MiB;
    # plus the server process, 87 MiB: 5,795.4, rounded up (the fit check's own figure).
    assert server["resources"]["requests"] == {"cpu": "3", "memory": "5796Mi"}
    # The node's allocatable memory: 16 GiB less kube-reserved (the lesser of 20 MiB x 250
    # pods + 50 and 25% of 16 GiB: 4,096 MiB) and the 100 MiB eviction threshold.
    assert server["resources"]["limits"] == {"cpu": "3", "memory": "12188Mi"}
    assert server["env"] == [
        {"name": "OGA_SERVER_API_KEY", "valueFrom": {"secretKeyRef": {"name": "slm-api-key", "key": "api-key"}}}
    ]  # fmt: skip
    assert pod["nodeSelector"] == {"slm-deploy/pool": "cpu"}
    assert pod["tolerations"] == [
        {"key": "slm-deploy/cpu-inference", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]  # fmt: skip
    (wait,) = pod["initContainers"]
    include = cache_warmer.include_patterns(SUBFOLDER)
    assert wait["args"][1] == f"--marker={cache_warmer.marker_path(SOURCE, REVISION, include)}"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_the_warmer_fills_only_the_variant_folder(plan) -> None:
    jobs = [
        m
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == "Job" and m["metadata"]["labels"]["app.kubernetes.io/instance"] == "phi4-mini-cpu"
    ]  # fmt: skip
    (job,) = jobs
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--repo={SOURCE}" in args and f"--revision={REVISION}" in args
    assert f"--include={SUBFOLDER}/*" in args


def test_prometheus_scrapes_it_and_keda_scales_it_on_its_queue(plan) -> None:
    monitor = manifest(plan, "ServiceMonitor", "onnxruntime")
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "onnxruntime"
    scaled = manifest(plan, "ScaledObject", "phi4-mini-cpu")
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    assert trigger["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{namespace="slm-inference", model_name="phi4-mini-cpu"})'
    )
    # No capacity model on CPU: one more round of the replica's generators waiting.
    assert trigger["metadata"]["threshold"] == "1"
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 2)


def test_the_outputs_show_the_pool_and_the_models_cpu_fit(plan) -> None:
    outputs = plan["outputs"]
    pool = outputs["cpuPools"]["cpu"]
    assert (pool["vmSize"], pool["machine"], pool["minCount"], pool["maxCount"]) == (
        "Standard_D4s_v5",
        "4 vCPU, 16 GiB",
        1,
        3,
    )
    model = outputs["models"]["phi4-mini-cpu"]
    assert (model["engine"], model["pool"], model["maxModelLen"], model["maxNumSeqs"]) == (
        "onnxruntime",
        "cpu",
        4096,
        1,
    )
    assert model["capacity"].startswith("not modelled")
    assert outputs["servedModelNames"]["phi4-mini-cpu"] == ["phi4-mini-cpu"]
    assert outputs["endpoints"]["phi4-mini-cpu"] == (
        "http://phi4-mini-cpu.slm-inference.svc.cluster.local:8000/v1"
    )


# -- refusals -----------------------------------------------------------------------------------


def refusal(root: Path, **changes: Any) -> str:
    with pytest.raises(PlanConfigError) as caught:
        build_plan(onnx_stack(root, **changes), config_root=root)
    return str(caught.value)


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"model": {"pool": None}},
            "slm-deploy:models[1].pool: null is not allowed; expected a cpuPools name (a "
            "replica is sized to one node's CPUs and memory; on an existing cluster the entry "
            "describes labelled nodes): cpu",
        ),
        (
            {"model": {"pool": "a10"}},
            'slm-deploy:models[1].pool: "a10" is not allowed; expected a cpuPools name: cpu',
        ),
        (
            {"serving": {"cacheWarmer": {"enabled": True, "image": WARMER_IMAGE}}},
            "slm-deploy:serving.onnxImage: null is not allowed; expected the image built from "
            "images/onnxruntime-genai-server: models[1] has engine onnxruntime",
        ),
        (
            {"serving": {"onnxImage": ONNX_IMAGE}},
            "slm-deploy:serving.cacheWarmer.enabled: false is not allowed; expected true while "
            "models[1] has engine onnxruntime: its server reads the weights the warmer puts in "
            "the model cache and downloads nothing itself",
        ),
        (
            {"model": {"workload": {"inputTokens": 100}}},
            "slm-deploy:models[1].workload: {inputTokens} is not allowed; expected nothing for "
            "ONNX Runtime: the capacity model covers vLLM on GPUs; throughput on CPU is not "
            "modelled",
        ),
        (
            {"model": {"tensorParallelSize": 2}},
            "slm-deploy:models[1].tensorParallelSize: 2 is not allowed; expected nothing for "
            "ONNX Runtime: it runs on CPU, one process per replica",
        ),
        (
            {"cpuPools": [dict(CPU_POOL, vmSize="Standard_NV36ads_A10_v5")]},
            'slm-deploy:cpuPools[0].vmSize: "Standard_NV36ads_A10_v5" is not allowed; expected '
            "a CPU VM size from components/catalog.py: " + ", ".join(catalog.CPU_SKUS),
        ),
        (
            {"cpuPools": [dict(CPU_POOL, name="a10")], "model": {"pool": "a10"}},
            'slm-deploy:cpuPools[0].name: "a10" is not allowed; expected a name no gpuPools '
            "entry has",
        ),
        (
            {"model": {"replicas": {"min": 1, "max": 3}}},
            "slm-deploy:cpuPools[0].maxCount: 3 is not allowed; expected at least 4: its models "
            "may scale to 3 x phi4-mini-cpu, one replica per Standard_D4s_v5 node, and a "
            "rollout starts one more",
        ),
        (
            {"model": {"revision": None}},
            "slm-deploy:models[1].revision: null is not allowed; expected a pinned commit in "
            "staging: the weights must not change unseen",
        ),
    ],
    ids=[
        "no-pool",
        "gpu-pool",
        "no-image",
        "no-warmer",
        "workload",
        "tensor-parallel",
        "gpu-vm-size",
        "pool-name-clash",
        "pool-too-small",
        "no-revision",
    ],
)
def test_a_configuration_that_cannot_work_gets_one_line(
    config_root: Path, changes: dict[str, Any], line: str
) -> None:
    assert refusal(config_root, **changes) == line


def test_a_model_that_outgrows_the_cpu_node_names_the_nearest_fits(config_root: Path) -> None:
    # 65,536 tokens of float32 KV cache are 16 GiB: with 4.6 GiB of weights and the server,
    # more than the 11.9 GiB a D4s_v5 leaves to pods. The 7,417 MiB left for the cache hold
    # 29,440 tokens (in the fit check's 256-token steps); an E4s_v5 (32 GiB) holds the whole.
    assert refusal(config_root, model={"maxModelLen": 65536}) == (
        "slm-deploy:models[1]: phi4-mini-cpu (microsoft/Phi-4-mini-instruct-onnx) on "
        "Standard_D4s_v5 (4 vCPUs, 16 GiB): needs 20.7 GiB (weights 4.6, KV cache 16.0 for 1 x "
        "65536 tokens in float32, server 0.08; ONNX Runtime's own memory not modelled), 11.9 GiB "
        "allocatable after AKS's reservations; fits with maxModelLen <= 29440, or vmSize "
        "Standard_E4s_v5"
    )


def test_the_largest_context_the_refusal_offers_is_one_a_pod_can_be_scheduled_with(
    config_root: Path,
) -> None:
    """The refusal's maxModelLen plans, and its pod asks for no more than its limit (the
    server process used to be added to the request after the fit check, so the context the
    refusal offered came out above the node-sized limit and the API server refused every
    pod)."""
    offered = int(
        re.search(
            r"maxModelLen <= (\d+)", refusal(config_root, model={"maxModelLen": 65536})
        ).group(1)
    )
    plan = build_plan(
        onnx_stack(config_root, model={"maxModelLen": offered}), config_root=config_root
    )
    (server,) = manifest(plan, "Deployment", "phi4-mini-cpu")["spec"]["template"]["spec"][
        "containers"
    ]
    resources = server["resources"]
    request = int(resources["requests"]["memory"].removesuffix("Mi"))
    limit = int(resources["limits"]["memory"].removesuffix("Mi"))
    assert request <= limit == 12188


def test_a_pool_with_no_node_for_a_rollout_is_refused(config_root: Path) -> None:
    """One replica on a one-node pool: a rollout's new replica (maxSurge 1) could never be
    scheduled, and `pulumi up` would wait for it until it timed out."""
    line = refusal(
        config_root,
        cpuPools=[dict(CPU_POOL, maxCount=1)],
        model={"replicas": {"min": 1, "max": 1}},
    )
    assert line == (
        "slm-deploy:cpuPools[0].maxCount: 1 is not allowed; expected at least 2: its models may "
        "scale to 1 x phi4-mini-cpu, one replica per Standard_D4s_v5 node, and a rollout starts "
        "one more"
    )


# -- the rendered container against the server it runs ------------------------------------------

SERVER_SETTINGS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import server
argv, environ = json.loads(sys.argv[2]), json.loads(sys.argv[3])
settings = server.parse_settings(argv, environ)
print(json.dumps({
    "model_dir": str(settings.model_dir), "name": settings.served_model_name,
    "host": settings.host, "port": settings.port, "max_concurrent": settings.max_concurrent,
    "max_waiting": settings.max_waiting, "max_model_len": settings.max_model_len,
    "threads": settings.threads, "keys": list(settings.api_keys),
}))
"""
SERVER_DIR = ROOT / "images" / "onnxruntime-genai-server"


def _parsed_by_the_server(container: dict[str, Any], folder: Path, keys_file: Path) -> Any:
    """The container's command line and environment as the pinned server parses them. Only
    what exists in the cluster alone is swapped for a local stand-in: the model folder (the
    warmer's cache) and the keys file (a CSI mount); a Secret's value becomes `from-secret`."""
    argv = []
    for arg in container["args"]:
        flag, _, value = arg.partition("=")
        stand_in = {"--model-dir": folder, "--api-keys-file": keys_file}.get(flag)
        argv.append(f"{flag}={stand_in}" if stand_in else arg)
    environ = {e["name"]: e.get("value", "from-secret") for e in container["env"]}
    result = subprocess.run(
        [str(onnx_python()), "-c", SERVER_SETTINGS, str(SERVER_DIR), json.dumps(argv), json.dumps(environ)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_the_image_runs_the_command_the_deployment_gives(plan) -> None:
    (server,) = manifest(plan, "Deployment", "phi4-mini-cpu")["spec"]["template"]["spec"][
        "containers"
    ]
    dockerfile = (SERVER_DIR / "Dockerfile").read_text()
    assert f"ENTRYPOINT {json.dumps(server['command'])}" in dockerfile


def test_the_server_parses_the_rendered_arguments_and_key_as_sized(
    plan,
    model_dir: Path,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    (server,) = manifest(plan, "Deployment", "phi4-mini-cpu")["spec"]["template"]["spec"][
        "containers"
    ]
    settings = _parsed_by_the_server(server, model_dir / "onnx", tmp_path / "unused.yaml")
    assert settings == {
        "model_dir": str(model_dir / "onnx"),
        "name": "phi4-mini-cpu",
        "host": "0.0.0.0",
        "port": 8000,
        "max_concurrent": 1,
        "max_waiting": None,
        "max_model_len": 4096,
        "threads": 3,
        # The one shared key, from the variable the Deployment sets from its Secret.
        "keys": ["from-secret"],
    }


def test_with_consumers_and_a_queue_depth_the_server_reads_the_keys_file_and_bounds_its_queue(
    config_root: Path,
    model_dir: Path,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    access = {"consumers": [{"name": "search-team"}], "queueDepthPerReplica": 4}
    plan = build_plan(onnx_stack(config_root, access=access), config_root=config_root)
    (server,) = manifest(plan, "Deployment", "phi4-mini-cpu")["spec"]["template"]["spec"][
        "containers"
    ]
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(access_module.keys_file(["sk-a", "sk-b"]))  # the file the pods mount
    settings = _parsed_by_the_server(server, model_dir / "onnx", keys_file)
    assert (settings["max_waiting"], settings["keys"]) == (4, ["sk-a", "sk-b"])
    assert server["env"] == []
