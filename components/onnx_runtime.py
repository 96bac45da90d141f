"""A model served by ONNX Runtime GenAI on CPU: the server of images/onnxruntime-genai-server.

It serves one variant folder of a pinned Hugging Face revision (the catalog's `subfolder`,
e.g. a CPU int4 build) from the model cache, where the cache warmer put it: the server
never downloads. Everything numeric comes from the model's EnginePlan (components/sizing.py):
the generators it runs side by side, the context it serves, and the CPUs and memory a
replica requests. This module only declares: the warmer's Job, a Deployment, a Service and
a PodDisruptionBudget when there can be more than one replica. The API key is the same as
vLLM's (the same Secret, or the consumers' keys file), checked by the server itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi

from components import cache_warmer, sizing, workload
from components.config import CacheWarmer as CacheWarmerSettings
from components.config import CpuPool, ModelConfig
from components.cpu_pool import cpu_pool_tolerations
from components.gpu_pool import POOL_LABEL
from components.secrets import API_KEY, PodWiring

PORT = 8000
# As vLLM: endpoints leave the load balancer before the server stops taking requests, then
# the server's own graceful shutdown (uvicorn finishes open streams) has time to exit.
PRESTOP_SECONDS = 15
EXIT_SECONDS = 15
PROBE_PERIOD_SECONDS = sizing.STARTUP_PROBE_PERIOD_SECONDS
# The image's entry point (its Dockerfile): set here too, so any build runs the same command.
SERVER_COMMAND = ["python3", "/app/server.py"]
# The server's key variable when it is not given the consumers' keys file.
API_KEY_ENV = "OGA_SERVER_API_KEY"


@dataclass(frozen=True)
class OnnxRuntimeArgs:
    model: ModelConfig
    plan: sizing.EnginePlan
    pool: CpuPool
    namespace: str
    image: str
    max_request_seconds: int
    cache: workload.ModelCache
    # The service account and volumes that give the pod its Secrets (components/secrets).
    secrets: PodWiring
    # The cache warmer fills the cache (config requires it for this engine).
    warmer: CacheWarmerSettings
    warmer_wiring: PodWiring
    # Which API keys are live (access.key_set_id): a change rolls the servers.
    api_key_set: str | None = None
    # access.queueDepthPerReplica: refuse (503) beyond the generators plus this many waiting.
    queue_depth: int | None = None


def model_dir(model: ModelConfig) -> str:
    """The variant's folder inside the cached snapshot of the pinned revision."""
    return cache_warmer.snapshot_dir(
        workload.HF_HOME, model.source, model.revision, model.spec.subfolder
    )


def server_args(args: OnnxRuntimeArgs) -> list[str]:
    return [
        f"--model-dir={model_dir(args.model)}",
        f"--served-model-name={args.model.name}",
        "--host=0.0.0.0",
        f"--port={PORT}",
        # As many generators as the memory was sized for, each capped at that context, and
        # ONNX Runtime's threads: the CPUs the replica requests (sizing.onnx_engine_args).
        *args.plan.engine_args,
        *([] if args.queue_depth is None else [f"--max-waiting={args.queue_depth}"]),
        *([f"--api-keys-file={args.secrets.api_keys_file}"] if args.secrets.api_keys_file else []),
    ]


def replica_cpus(plan: sizing.EnginePlan) -> int:
    """Every whole CPU the node leaves to pods (sizing.cpu_fit): one replica per node."""
    return plan.cpu.requested_vcpus


def memory_request_mib(plan: sizing.EnginePlan) -> int:
    """What the fit check counted: weights, KV cache and the server process
    (sizing.CpuFit), which is never more than the node's allocatable memory."""
    return math.ceil(plan.cpu.required_gib * 1024)


def memory_limit_mib(plan: sizing.EnginePlan) -> int:
    """The node's allocatable memory: the runtime's own memory beyond the request is not
    modelled (sizing.CpuFit), and a replica has its node to itself, so the limit stops only a
    replica that would starve the node rather than one that meets an unmeasured figure."""
    return math.floor(plan.cpu.allocatable_gib * 1024)


class OnnxRuntimeService(pulumi.ComponentResource):
    """One served model: the warmer's Job, Deployment, Service, PodDisruptionBudget."""

    def __init__(
        self, name: str, args: OnnxRuntimeArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:onnx_runtime:OnnxRuntimeService", name, None, opts)
        model = args.model
        selector = workload.labels("onnxruntime", model.name, "inference")
        claim = workload.declare_model_cache(name, model.name, args.namespace, args.cache, self)
        warmer = cache_warmer.CacheWarmer(
            f"{name}-cache-warmer",
            cache_warmer.CacheWarmerArgs(
                model,
                args.plan.startup_budget_seconds,
                args.namespace,
                args.warmer,
                args.cache,
                args.warmer_wiring,
                claim,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        served = workload.declare_served_model(
            name,
            self,
            model,
            args.namespace,
            selector,
            deployment_spec(args, selector),
            PORT,
            depends_on=[warmer.job],
        )
        self.deployment, self.service, self.url = served.deployment, served.service, served.url
        self.register_outputs({"url": self.url})


def deployment_spec(args: OnnxRuntimeArgs, selector: dict[str, str]) -> dict[str, Any]:
    return workload.rolling_deployment_spec(
        args.model.replicas.min,
        selector,
        # CPU nodes are cheap and quick to add: a new replica starts before an old one
        # stops, so a rollout never lowers capacity.
        {"maxSurge": 1, "maxUnavailable": 0},
        # The server downloads nothing (the warmer does).
        downloads_models=False,
        api_key_set=args.api_key_set,
        pod=pod_spec(args, selector),
    )


def pod_spec(args: OnnxRuntimeArgs, selector: dict[str, str]) -> dict[str, Any]:
    model, plan = args.model, args.plan
    spec = workload.server_pod_spec(
        args.secrets.service_account,
        # On an existing cluster the pool's nodes carry the label, and maybe not the taint:
        # tolerating a taint a node lacks changes nothing.
        {POOL_LABEL: args.pool.name},
        cpu_pool_tolerations(args.pool.spot),
        PRESTOP_SECONDS + args.max_request_seconds + EXIT_SECONDS,
        [container(args)],
        [
            workload.model_cache_volume(model.name, args.cache),
            workload.empty_dir("tmp", "1Gi"),
            *args.secrets.volumes,
        ],
        selector,
        spread=model.replicas.max > 1,
    )
    spec["initContainers"] = cache_warmer.wait_for_cache_containers(
        args.warmer.image, model, plan.startup_budget_seconds
    )
    return spec


def container(args: OnnxRuntimeArgs) -> dict[str, Any]:
    plan = args.plan
    cpus = str(replica_cpus(plan))
    requests = {"cpu": cpus, "memory": f"{memory_request_mib(plan)}Mi"}
    limits = {"cpu": cpus, "memory": f"{memory_limit_mib(plan)}Mi"}
    startup_failures = plan.startup_budget_seconds // PROBE_PERIOD_SECONDS
    return {
        "name": "onnxruntime",
        "image": args.image,
        "imagePullPolicy": "IfNotPresent",
        "command": SERVER_COMMAND,
        "args": server_args(args),
        "env": [
            *([] if args.secrets.api_keys_file else [API_KEY.env(API_KEY_ENV)]),
        ],
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": {"requests": requests, "limits": limits},
        # Loading the weights from the cache comes before the first health check passes.
        "startupProbe": workload.http_probe(
            "/health", "http", PROBE_PERIOD_SECONDS, startup_failures
        ),
        # /health needs no API key (the /v1 routes do).
        "readinessProbe": workload.http_probe("/health", "http", PROBE_PERIOD_SECONDS, 3),
        # Restart only a server that stays unhealthy for two minutes, not one that is busy.
        "livenessProbe": workload.http_probe("/health", "http", 30, 4, timeout=10),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "securityContext": workload.container_security_context(),
        "volumeMounts": [
            {"name": "models", "mountPath": workload.MODELS_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *args.secrets.volume_mounts,
        ],
    }
