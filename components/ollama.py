"""A model served by Ollama (OpenAI-compatible /v1 and native /api), with Modelfile variants
and, optionally, Open WebUI as a chat front end.

Models are pulled by a blocking init container (a temporary server pulls into the model
volume and builds the variants), never by a postStart hook: when the server container
starts, its models are there, and readiness asks the API that lists them. Ollama runs one
replica: its model volume is ReadWriteOnce and it has no metrics endpoint to scale on.

With `serving.ollama.preloaded`, the models are baked into the image (images/ollama-preloaded)
for clusters without internet egress: the init container only checks that the image holds
the model, the server reads the image's read-only store, and the pod has no model volume
and no download egress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_random import RandomPassword

from components import sizing, workload
from components.config import (
    OPEN_WEBUI_NAME,
    GpuPool,
    ModelConfig,
    OllamaSettings,
    OllamaVariant,
)
from components.gpu_pool import POOL_LABEL, gpu_tolerations
from components.secrets import API_KEY_LENGTH

PORT = 11434
MODELFILES_PATH = "/modelfiles"
# Where images/ollama-preloaded puts its model store (its Dockerfile copies it here).
PRELOADED_MODELS_PATH = "/usr/share/ollama/models"
# The pulled store: on the model volume.
VOLUME_MODELS_PATH = "/models/ollama"
# How long the init container waits for its temporary server to answer.
SERVER_START_SECONDS = 60


@dataclass(frozen=True)
class OllamaArgs:
    model: ModelConfig
    plan: sizing.EnginePlan
    pool: GpuPool | None  # None: CPU
    namespace: str
    image: str
    settings: OllamaSettings
    cache: workload.ModelCache


class OllamaService(pulumi.ComponentResource):
    """One Ollama server with its model and variants: Deployment, Service, Modelfiles."""

    def __init__(self, name: str, args: OllamaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:ollama:OllamaService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        model = args.model
        selector = workload.labels("ollama", model.name, "inference")
        metadata = {"name": model.name, "namespace": args.namespace, "labels": selector}
        preloaded = args.settings.preloaded
        if not preloaded:
            workload.declare_model_cache(name, model.name, args.namespace, args.cache, self)
        if model.variants:
            k8s.core.v1.ConfigMap(
                f"{name}-modelfiles",
                metadata={**metadata, "name": modelfiles_name(model.name)},
                data={v.name: modelfile(model.source, v) for v in model.variants},
                opts=child,
            )
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata=metadata,
            spec={
                "replicas": model.replicas.min,
                "selector": {"matchLabels": selector},
                # A ReadWriteOnce volume cannot follow a surge pod to another node.
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {"labels": workload.pod_labels(selector, not preloaded)},
                    "spec": pod_spec(args),
                },
            },
            opts=child,
        )
        self.service = workload.http_service(name, metadata, selector, PORT, self)
        self.url = f"http://{model.name}.{args.namespace}.svc.cluster.local:{PORT}"
        self.register_outputs({"url": self.url})


def modelfiles_name(model: str) -> str:
    return f"{model}-modelfiles"


def modelfile(base: str, variant: OllamaVariant) -> str:
    """A Modelfile: FROM, PARAMETER and SYSTEM are Ollama's own instructions."""
    lines = [f"FROM {base}"]
    if variant.temperature is not None:
        lines.append(f"PARAMETER temperature {variant.temperature}")
    if variant.top_p is not None:
        lines.append(f"PARAMETER top_p {variant.top_p}")
    system = variant.system.replace('"""', "'''")
    lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def init_script(model: ModelConfig, preloaded: bool) -> str:
    """Start a temporary server; pull the model (or, preloaded, check the image holds it);
    build each variant; stop the server."""
    first = _check_step(model.source) if preloaded else f"ollama pull {model.source}\n"
    creates = "".join(
        f"ollama create {v.name} -f {MODELFILES_PATH}/{v.name}\n" for v in model.variants
    )
    return _start_server() + first + creates + 'kill "$server"\nwait "$server" || true\n'


def _start_server() -> str:
    return (
        "set -eu\n"
        "ollama serve >/tmp/pull-server.log 2>&1 &\n"
        "server=$!\n"
        "waited=0\n"
        "until ollama list >/dev/null 2>&1; do\n"
        f'  waited=$((waited + 1)); [ "$waited" -le {SERVER_START_SECONDS} ] || '
        "{ cat /tmp/pull-server.log; exit 1; }\n"
        "  sleep 1\n"
        "done\n"
    )


def _check_step(source: str) -> str:
    # Readiness (/api/tags) passes with an empty store; a model missing from the image must
    # stop the pod here, with the reason in the init container's log.
    return (
        f"ollama show {source} >/dev/null 2>&1 || {{ echo '{source} is not in this image: "
        f"rebuild images/ollama-preloaded with it in MODELS' >&2; exit 1; }}\n"
    )


def server_env(args: OllamaArgs, host: str) -> list[dict[str, str]]:
    shape, settings = args.plan.shape, args.settings
    env = {
        "OLLAMA_HOST": host,
        "OLLAMA_MODELS": PRELOADED_MODELS_PATH if settings.preloaded else VOLUME_MODELS_PATH,
        "HOME": "/scratch/home",
        "OLLAMA_CONTEXT_LENGTH": str(shape.max_model_len),
        "OLLAMA_NUM_PARALLEL": str(shape.max_num_seqs),
        "OLLAMA_MAX_LOADED_MODELS": str(settings.max_loaded_models),
        "OLLAMA_FLASH_ATTENTION": "1" if settings.flash_attention else "0",
        # Keep models loaded: reloading costs seconds on every idle gap.
        "OLLAMA_KEEP_ALIVE": "-1",
    }
    if settings.preloaded:
        # The server prunes unreferenced blobs when it starts; the image's store is read-only.
        env["OLLAMA_NOPRUNE"] = "1"
    return [{"name": key, "value": value} for key, value in env.items()]


def pod_spec(args: OllamaArgs) -> dict[str, Any]:
    model, preloaded = args.model, args.settings.preloaded
    mounts = [
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes = [
        workload.empty_dir("scratch", "1Gi"),
        workload.empty_dir("tmp", "1Gi"),
    ]
    if not preloaded:
        mounts.insert(0, {"name": "models", "mountPath": "/models"})
        volumes.insert(0, workload.model_cache_volume(model.name, args.cache))
    if model.variants:
        mounts.append({"name": "modelfiles", "mountPath": MODELFILES_PATH, "readOnly": True})
        volumes.append({"name": "modelfiles", "configMap": {"name": modelfiles_name(model.name)}})
    resources = _resources(args)
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": workload.pod_security_context(),
        "initContainers": [
            {
                "name": "check-models" if preloaded else "pull-models",
                "image": args.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", "-c", init_script(model, preloaded)],
                "env": server_env(args, f"127.0.0.1:{PORT}"),
                "resources": resources,
                "securityContext": workload.container_security_context(),
                "volumeMounts": mounts,
            }
        ],
        "containers": [
            {
                "name": "ollama",
                "image": args.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/ollama"],
                "args": ["serve"],
                "env": server_env(args, f"0.0.0.0:{PORT}"),
                "ports": [{"name": "http", "containerPort": PORT}],
                "resources": resources,
                "startupProbe": workload.http_probe("/", "http", 5, 24),
                # Ready when the API lists models (pulled by the init container).
                "readinessProbe": workload.http_probe("/api/tags", "http", 10, 3),
                "livenessProbe": workload.http_probe("/", "http", 30, 4, timeout=10),
                "securityContext": workload.container_security_context(),
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if args.pool:
        spec["nodeSelector"] = {POOL_LABEL: args.pool.name}
        spec["tolerations"] = gpu_tolerations(args.pool.spot)
    else:
        spec["tolerations"] = workload.SYSTEM_POOL_TOLERATIONS
    return spec


def _resources(args: OllamaArgs) -> dict[str, Any]:
    if args.pool:
        r = sizing.replica_resources(args.pool.sku, 1)
    else:
        r = sizing.cpu_replica_resources(args.plan.model, args.plan.shape)
    requests = {"cpu": str(r.cpu_request), "memory": f"{r.memory_request_gib}Gi"}
    limits = {"cpu": str(r.cpu_limit), "memory": f"{r.memory_limit_gib}Gi"}
    if r.gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(r.gpus)
    return {"requests": requests, "limits": limits}


# -- Open WebUI -------------------------------------------------------------------------------

OPEN_WEBUI_PORT = 8080
# Open WebUI opens its SQLite database when it is imported, before anything creates a
# folder; only `open-webui serve` (not the image's start script) makes DATA_DIR. The claim
# is mounted at DATA_DIR itself, so the folder exists from the first start.
OPEN_WEBUI_DATA_DIR = "/data"
# The Secret our generated values land in, and its keys.
OPEN_WEBUI_SECRET = "open-webui"
SECRET_KEY_KEY = "secret-key"
ADMIN_PASSWORD_KEY = "admin-password"
# The admin account Open WebUI creates at its first start (WEBUI_ADMIN_EMAIL, only while it
# has no user). Its e-mail check accepts any address ending in "@localhost"; the operator
# changes address and password in the UI after signing in.
OPEN_WEBUI_ADMIN_EMAIL = "admin@localhost"
# Ollama's default registry and namespace: a name in them is listed without either.
OLLAMA_DEFAULT_HOST = "registry.ollama.ai"
OLLAMA_DEFAULT_NAMESPACE = "library"
OLLAMA_DEFAULT_TAG = "latest"


def ollama_listed_name(reference: str) -> str:
    """The name Ollama's /api/tags lists a model under, as Open WebUI names it: a missing
    tag is "latest", the default registry and namespace are left out (Ollama's
    model.ParseName and Name.DisplayShortest)."""
    rest, tag = reference, OLLAMA_DEFAULT_TAG
    if reference.rfind(":") > reference.rfind("/"):
        rest, tag = reference.rsplit(":", 1)
    *path, model = rest.split("/")
    namespace = path[-1] if path else OLLAMA_DEFAULT_NAMESPACE
    host = "/".join(path[:-1]) or OLLAMA_DEFAULT_HOST
    if host.lower() != OLLAMA_DEFAULT_HOST:
        return f"{host}/{namespace}/{model}:{tag}"
    if namespace.lower() != OLLAMA_DEFAULT_NAMESPACE:
        return f"{namespace}/{model}:{tag}"
    return f"{model}:{tag}"


def default_chat_model(model: ModelConfig) -> str:
    """What Open WebUI preselects: the model's first variant, else the model itself."""
    return ollama_listed_name(model.variants[0].name if model.variants else model.source)


@dataclass(frozen=True)
class OpenWebUiArgs:
    namespace: str
    image: str
    ollama_urls: tuple[str, ...]  # every Ollama server of the stack
    default_model: str  # as /api/tags lists it: name:tag
    protect: bool


def open_webui_env(args: OpenWebUiArgs) -> list[dict[str, Any]]:
    """Open WebUI's settings (names as its env.py and config.py read them at v0.8.12)."""
    values = {
        # ";"-separated: one Open WebUI for every Ollama server of the stack.
        "OLLAMA_BASE_URLS": ";".join(args.ollama_urls),
        "DEFAULT_MODELS": args.default_model,
        "ENABLE_OPENAI_API": "False",
        "WEBUI_AUTH": "True",
        # Nobody registers: the one account is the admin created below.
        "ENABLE_SIGNUP": "False",
        "WEBUI_ADMIN_EMAIL": OPEN_WEBUI_ADMIN_EMAIL,
        # The stack file stays the source of these settings: with persistence on, the values
        # of the first start (Ollama servers, default model, sign-up) would win over every
        # later change to the stack, kept in the database.
        "ENABLE_PERSISTENT_CONFIG": "False",
        # Its pod has no way out (components/network.py): no model downloads or update
        # checks that would only wait for their timeouts.
        "OFFLINE_MODE": "True",
        "DATA_DIR": OPEN_WEBUI_DATA_DIR,
        # Libraries write caches under HOME; the image's HOME (/root) is read-only.
        "HOME": "/scratch/home",
    }
    secrets = {
        # Signs sessions; an empty key stops Open WebUI (the image's start script would write
        # a generated one beside itself, which a read-only root refuses).
        "WEBUI_SECRET_KEY": SECRET_KEY_KEY,
        "WEBUI_ADMIN_PASSWORD": ADMIN_PASSWORD_KEY,
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in values.items()]
    return env + [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": OPEN_WEBUI_SECRET, "key": key}}}
        for k, key in secrets.items()
    ]


class OpenWebUi(pulumi.ComponentResource):
    """One Open WebUI for the stack's Ollama servers: sign-in on, no sign-up, an admin
    account from a generated password, its data on a claim of its own."""

    def __init__(self, name: str, args: OpenWebUiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:ollama:OpenWebUi", name, None, opts)
        selector = workload.labels(OPEN_WEBUI_NAME, OPEN_WEBUI_NAME, "chat")
        metadata = {"name": OPEN_WEBUI_NAME, "namespace": args.namespace, "labels": selector}
        data = workload.ModelCache(
            shared=True,
            size_gib=5,
            storage_class=None,
            access_mode="ReadWriteOnce",
            protect=args.protect,
        )
        secret = self._secret(name, args)
        # Chats and accounts live on this claim (named like a model cache: "open-webui-models").
        workload.declare_model_cache(name, OPEN_WEBUI_NAME, args.namespace, data, self)
        k8s.apps.v1.Deployment(
            name,
            metadata=metadata,
            spec={
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": _open_webui_pod(args, data),
                },
            },
            # Its pod reads the Secret at start.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret]),
        )
        workload.http_service(name, metadata, selector, 80, self)
        self.register_outputs({})

    def _secret(self, name: str, args: OpenWebUiArgs) -> k8s.core.v1.Secret:
        """The session key and the admin password: generated, kept in Pulumi's state as
        secrets, written to the one Secret only this pod reads."""
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect)
        values = {
            key: RandomPassword(
                f"{name}-{key}", length=API_KEY_LENGTH, special=False, opts=kept
            ).result
            for key in (SECRET_KEY_KEY, ADMIN_PASSWORD_KEY)
        }
        return k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": OPEN_WEBUI_SECRET, "namespace": args.namespace},
            type="Opaque",
            string_data=values,
            opts=pulumi.ResourceOptions(parent=self),
        )


def _open_webui_pod(args: OpenWebUiArgs, data: workload.ModelCache) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "tolerations": workload.SYSTEM_POOL_TOLERATIONS,
        "securityContext": workload.pod_security_context(),
        "containers": [
            {
                "name": OPEN_WEBUI_NAME,
                "image": args.image,
                "imagePullPolicy": "IfNotPresent",
                "env": open_webui_env(args),
                "ports": [{"name": "http", "containerPort": OPEN_WEBUI_PORT}],
                "resources": {
                    "requests": {"cpu": "250m", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "2Gi"},
                },
                "startupProbe": workload.http_probe("/health", "http", 5, 36),
                "readinessProbe": workload.http_probe("/health", "http", 10, 3),
                "livenessProbe": workload.http_probe("/health", "http", 30, 4),
                "securityContext": workload.container_security_context(),
                "volumeMounts": [
                    {"name": "data", "mountPath": OPEN_WEBUI_DATA_DIR},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {**workload.model_cache_volume(OPEN_WEBUI_NAME, data), "name": "data"},
            workload.empty_dir("scratch", "1Gi"),
            workload.empty_dir("tmp", "1Gi"),
        ],
    }
