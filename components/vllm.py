"""A model served by vLLM's OpenAI-compatible server on its GPU pool.

Everything numeric comes from the model's EnginePlan (components/sizing.py): engine
arguments, startup budget; and from the pool's SKU: CPU and memory per replica. This module
only declares: a Deployment, a Service, a PodDisruptionBudget when there can be more than one
replica, the model cache volume and, with `serving.cacheWarmer`, the Job that fills it
(components/cache_warmer.py): then the servers run offline and download nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components import access, cache_warmer, sizing, workload
from components.config import CacheWarmer as CacheWarmerSettings
from components.config import GpuPool, ModelConfig
from components.gpu_pool import POOL_LABEL, gpu_tolerations
from components.secrets import API_KEY, HF_TOKEN, PodWiring

PORT = 8000
# Endpoints leave the load balancer before the server stops taking requests.
PRESTOP_SECONDS = 15
# After streams finish: time for vLLM to exit and free the GPU.
EXIT_SECONDS = 30
PROBE_PERIOD_SECONDS = sizing.STARTUP_PROBE_PERIOD_SECONDS
# /dev/shm for NCCL between the GPUs of one replica, 2 GiB per GPU (vLLM's docs ask for
# shared memory with tensor parallelism; one GPU needs little).
SHM_GIB_PER_GPU = 2
# Writable scratch for compiled kernels and caches (Triton, torch.compile, vLLM).
SCRATCH_SIZE = "20Gi"
SERVE_COMMAND = ["vllm", "serve"]
# Listen on the pod's address. --disable-fastapi-docs removes /docs, /redoc and
# /openapi.json, which VLLM_API_KEY does not guard (it guards /v1 only) and nothing here
# uses: in every stack, since dev relaxes cost, never security.
SERVER_ARGS = ["--host=0.0.0.0", f"--port={PORT}", "--disable-fastapi-docs"]
API_KEY_SET_ANNOTATION = workload.API_KEY_SET_ANNOTATION


def queue_args(args: VllmArgs) -> list[str]:
    """A bounded queue: vLLM answers 503 (QueueOverflowError) instead of queueing forever;
    the edge adds Retry-After to that answer on AKS (components/access.py)."""
    limit = access.max_queued_requests(args.plan.shape.max_num_seqs, args.queue_depth)
    return [] if limit is None else [f"--max-num-queued-reqs={limit}"]


def request_log_args(args: VllmArgs) -> list[str]:
    """vLLM 0.31.0 logs requests only with --enable-log-requests (its default is off): the
    prompts reach the container log, and from there the stack's log store, only when the
    stack asks (monitoring.logs.requestLogging)."""
    return ["--enable-log-requests"] if args.log_requests else []


def lora_module_args(args: VllmArgs) -> list[str]:
    """Each adapter as name=path, the path the warmer's snapshot of its pinned revision
    (config refuses adapters without the warmer: vLLM would download a repository id's
    newest revision). One value per adapter after a single flag: the flag's nargs list."""
    adapters = args.model.adapters
    if not adapters:
        return []
    return ["--lora-modules", *(f"{a.name}={cache_warmer.adapter_dir(a)}" for a in adapters)]


def key_args(secrets: PodWiring) -> list[str]:
    """Several keys (one per consumer, two while one rotates) come from a file: vLLM's
    `--config <file>.yaml` turns its `api-key: [...]` into `--api-key k1 k2` inside the
    process, so no key is on the command line; VLLM_API_KEY holds one key only. vLLM looks
    for the exact argument "--config" followed by the path (utils/argparse_utils.py)."""
    return ["--config", secrets.api_keys_file] if secrets.api_keys_file else []


@dataclass(frozen=True)
class VllmArgs:
    model: ModelConfig
    plan: sizing.EnginePlan
    pool: GpuPool
    namespace: str
    image: str
    max_request_seconds: int
    cache: workload.ModelCache
    # The service account and volumes that give the pod its Secrets (components/secrets).
    secrets: PodWiring
    # Set when serving.cacheWarmer is enabled: the warmer's settings and its pods' wiring.
    warmer: CacheWarmerSettings | None = None
    warmer_wiring: PodWiring | None = None
    # Which API keys are live (access.key_set_id): a change rolls the servers, which read
    # their keys once, at start.
    api_key_set: str | None = None
    # access.queueDepthPerReplica: refuse (503) beyond the batch plus this many waiting.
    queue_depth: int | None = None
    # monitoring.logs.requestLogging: vLLM logs each request, prompt included (user data).
    log_requests: bool = False


class VllmService(pulumi.ComponentResource):
    """One served model: Deployment, Service, PodDisruptionBudget."""

    def __init__(self, name: str, args: VllmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:vllm:VllmService", name, None, opts)
        model = args.model
        selector = workload.labels("vllm", model.name, "inference")
        claim = workload.declare_model_cache(name, model.name, args.namespace, args.cache, self)
        served = workload.declare_served_model(
            name,
            self,
            model,
            args.namespace,
            selector,
            deployment_spec(args, selector),
            PORT,
            depends_on=self._warm_cache(name, args, claim),
        )
        self.deployment, self.service, self.url = served.deployment, served.service, served.url
        self.register_outputs({"url": self.url})

    def _warm_cache(self, name, args: VllmArgs, claim) -> list[pulumi.Resource]:
        if args.warmer is None:
            return []
        warmer = cache_warmer.CacheWarmer(
            f"{name}-cache-warmer",
            cache_warmer.CacheWarmerArgs(
                args.model,
                args.plan.startup_budget_seconds,
                args.namespace,
                args.warmer,
                args.cache,
                args.warmer_wiring,
                claim,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return [warmer.job]


def deployment_spec(args: VllmArgs, selector: dict[str, str]) -> dict[str, Any]:
    model = args.model
    return workload.rolling_deployment_spec(
        model.replicas.min,
        selector,
        # GPUs are scarce: replace one replica at a time instead of asking for a spare node.
        {"maxSurge": 0, "maxUnavailable": 1},
        # Without a warmer, each server downloads its weights itself.
        downloads_models=args.warmer is None,
        api_key_set=args.api_key_set,
        pod=pod_spec(args, selector),
    )


def pod_spec(args: VllmArgs, selector: dict[str, str]) -> dict[str, Any]:
    model, plan = args.model, args.plan
    spec = workload.server_pod_spec(
        args.secrets.service_account,
        {POOL_LABEL: args.pool.name},
        gpu_tolerations(args.pool.spot),
        PRESTOP_SECONDS + args.max_request_seconds + EXIT_SECONDS,
        [container(args)],
        volumes(args),
        selector,
        spread=model.replicas.max > 1,
    )
    if args.warmer:
        spec["initContainers"] = cache_warmer.wait_for_cache_containers(
            args.warmer.image, model, plan.startup_budget_seconds
        )
    elif plan.model.gated:
        spec["containers"][0]["env"].append(HF_TOKEN.env("HF_TOKEN"))
    return spec


def container(args: VllmArgs) -> dict[str, Any]:
    plan = args.plan
    resources = sizing.replica_resources(plan.sku, plan.shape.tensor_parallel_size)
    startup_failures = plan.startup_budget_seconds // PROBE_PERIOD_SECONDS
    return {
        "name": "vllm",
        "image": args.image,
        "imagePullPolicy": "IfNotPresent",
        # `vllm serve` (the model is its first argument): the supported entry point at
        # v0.31.0, where `python -m vllm.entrypoints.openai.api_server` is deprecated. Set
        # here rather than left to the image's entrypoint, so any image runs the same command.
        "command": SERVE_COMMAND,
        "args": [
            *plan.engine_args,
            *lora_module_args(args),
            *queue_args(args),
            *request_log_args(args),
            *SERVER_ARGS,
            *key_args(args.secrets),
        ],
        "env": [
            # The one shared key, for a server not given the keys file.
            *([] if args.secrets.api_keys_file else [API_KEY.env("VLLM_API_KEY")]),
            *(
                {"name": key, "value": value}
                for key, value in {
                    # Weights in the model cache; everything else writable in scratch.
                    "HF_HOME": workload.HF_HOME,
                    "HOME": "/scratch/home",
                    "XDG_CACHE_HOME": "/scratch/xdg",
                    "VLLM_CACHE_ROOT": "/scratch/vllm",
                    "TRITON_CACHE_DIR": "/scratch/triton",
                    "TORCHINDUCTOR_CACHE_DIR": "/scratch/inductor",
                    # No usage reports leave the cluster.
                    "VLLM_NO_USAGE_STATS": "1",
                    "DO_NOT_TRACK": "1",
                    "HF_HUB_DISABLE_TELEMETRY": "1",
                }.items()
            ),
            # The warmer put the pinned revision in the cache: never ask the Hub.
            *([{"name": "HF_HUB_OFFLINE", "value": "1"}] if args.warmer else []),
        ],
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": {
            "requests": {
                "cpu": str(resources.cpu_request),
                "memory": f"{resources.memory_request_gib}Gi",
                "nvidia.com/gpu": str(resources.gpus),
            },
            "limits": {
                "cpu": str(resources.cpu_limit),
                "memory": f"{resources.memory_limit_gib}Gi",
                "nvidia.com/gpu": str(resources.gpus),
            },
        },
        # Weights download and load before the first health check passes: the budget grows
        # with the checkpoint (sizing.startup_budget_seconds).
        "startupProbe": workload.http_probe(
            "/health", "http", PROBE_PERIOD_SECONDS, startup_failures
        ),
        # /health needs no API key (the /v1 routes do): ready = the engine answers.
        "readinessProbe": workload.http_probe("/health", "http", PROBE_PERIOD_SECONDS, 3),
        # Restart only a server that stays unhealthy for two minutes, not one that is busy.
        "livenessProbe": workload.http_probe("/health", "http", 30, 4, timeout=10),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "securityContext": workload.container_security_context(),
        "volumeMounts": [
            {"name": "models", "mountPath": "/models"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
            *args.secrets.volume_mounts,
        ],
    }


def volumes(args: VllmArgs) -> list[dict[str, Any]]:
    tp = args.plan.shape.tensor_parallel_size
    return [
        workload.model_cache_volume(args.model.name, args.cache),
        workload.empty_dir("scratch", SCRATCH_SIZE),
        workload.empty_dir("tmp", "2Gi"),
        workload.empty_dir("dshm", f"{SHM_GIB_PER_GPU * tp}Gi", memory=True),
        *args.secrets.volumes,
    ]
