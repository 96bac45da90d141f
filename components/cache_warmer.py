"""The model-cache warmer: a Job per vLLM or ONNX Runtime GenAI model that fills the model's
cache with its pinned revision (images/model-cache-warmer), and what the servers add to wait
for it. An ONNX checkpoint is one folder of its repository (the catalog's `subfolder`): the
Job fills that folder alone, and its marker says so.

Why a Job and not an init container of every server: a revision is downloaded once, by one
pod, instead of by each replica that starts; the servers then run offline (HF_HUB_OFFLINE)
with no download egress at all; and `pulumi up` waits for the Job, so a new revision rolls
out only once it is in the cache (the Deployment depends on the Job) while the old replicas
keep serving. Each server still has a small init container, `wait-for-cache`, that waits
for the warmer's marker: a replica scheduled before the cache is filled (a first deploy, a
replaced volume) starts only when its revision is there.

No `ttlSecondsAfterFinished`: Kubernetes would delete the finished Job, Pulumi would find it
gone on its next refresh and create it again; the finished Job stays, with its logs, until
the revision changes (a new name, so a new Job).
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import workload
from components.config import CacheWarmer as CacheWarmerSettings
from components.config import ModelConfig
from components.identity import AzurePlacement, WorkloadIdentityArgs, declare_workload_identity
from components.secrets import CLIENT_ID_ANNOTATION, HF_TOKEN, PodWiring

# Where images/model-cache-warmer installs its script (its Dockerfile copies it here).
WARMER_SCRIPT = "/app/warm_cache.py"
# The warmer writes one marker per filled revision here (warm_cache.marker_path).
MARKER_DIR = f"{workload.MODELS_MOUNT}/.slm-warm"
SERVICE_ACCOUNT = "slm-cache-warmer"
# Azure built-in role "Storage Blob Data Reader" (the same id in every tenant, as Microsoft's
# list of built-in roles gives it): read and list blobs, nothing else.
STORAGE_BLOB_DATA_READER_ROLE = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
# The AKS workload identity webhook injects the token and client id into labelled pods.
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"
# A failed download is retried in a new pod (network hiccups, a throttled hub); a wrong
# token or revision fails every attempt, so a few are enough.
BACKOFF_LIMIT = 3
# Kubernetes marks a Job failed at its deadline; Pulumi waits a little longer, so that a
# deploy reports the Job's failure rather than its own timeout.
PULUMI_GRACE_SECONDS = 60
# Characters of the revision's hash in the Job's name (a new revision, a new Job).
NAME_HASH_LENGTH = 10
# Characters of the --include patterns' hash in a marker's name (warm_cache.py: the same).
INCLUDE_HASH_LENGTH = 12


def snapshot_dir(hf_home: str, repo: str, revision: str, subfolder: str | None = None) -> str:
    """Where a filled revision's files are, as huggingface_hub lays out its cache under
    HF_HOME (hub/models--ORG--NAME/snapshots/<revision>), and the checkpoint's folder in it."""
    snapshot = f"{hf_home}/hub/models--{repo.replace('/', '--')}/snapshots/{revision}"
    return f"{snapshot}/{subfolder}" if subfolder else snapshot


def include_patterns(subfolder: str | None) -> tuple[str, ...]:
    """warm_cache.py's --include for a checkpoint in one folder of its repository: that
    folder, everything under it, and nothing else (the loader of an ONNX GenAI checkpoint
    reads its own folder only). Patterns are fnmatch: a name's [, * or ? are escaped."""
    return (f"{glob.escape(subfolder)}/*",) if subfolder else ()


def marker_name(repo: str, revision: str, include: Iterable[str] = ()) -> str:
    """The marker's file name: the same rule as warm_cache.marker_path in the image."""
    name = f"{repo.replace('/', '--')}@{revision}"
    patterns = sorted(set(include))
    if patterns:
        digest = hashlib.sha256("\n".join(patterns).encode()).hexdigest()
        name += f"+{digest[:INCLUDE_HASH_LENGTH]}"
    return name


def marker_path(repo: str, revision: str, include: Iterable[str] = ()) -> str:
    return f"{MARKER_DIR}/{marker_name(repo, revision, include)}"


def model_marker_path(model: ModelConfig) -> str:
    return marker_path(model.source, model.revision, include_patterns(model.spec.subfolder))


def adapter_marker_paths(model: ModelConfig) -> list[str]:
    """One marker per LoRA adapter: each is a whole repository at its pinned revision."""
    return [marker_path(a.source, a.revision) for a in model.adapters]


def adapter_dir(adapter: Any) -> str:
    """Where vLLM reads a warmed adapter (--lora-modules name=<this>)."""
    return snapshot_dir(workload.HF_HOME, adapter.source, adapter.revision)


def job_name(model: ModelConfig) -> str:
    """<model>-warm-<hash of repository, revision and folder>: at most 40 + 6 + 10
    characters. A new revision or another folder of it is a new Job; a model without a
    folder or adapters keeps the name it always had; each adapter's repository and
    revision join the hash, so a new adapter revision is a new Job too."""
    subfolder = model.spec.subfolder
    filled = f"{model.source}@{model.revision}" + (f"/{subfolder}" if subfolder else "")
    filled += "".join(f"+{a.source}@{a.revision}" for a in model.adapters)
    digest = hashlib.sha256(filled.encode()).hexdigest()
    return f"{model.name}-warm-{digest[:NAME_HASH_LENGTH]}"


def deadline_seconds(startup_budget_seconds: int) -> int:
    """Every attempt gets the time a replica is given to download and load the weights
    (sizing.startup_budget_seconds); the Job, that for each of its attempts."""
    return startup_budget_seconds * (BACKOFF_LIMIT + 1)


def fill_args(model: ModelConfig, settings: CacheWarmerSettings) -> list[str]:
    return repo_fill_args(
        model.source, model.revision, settings, include_patterns(model.spec.subfolder)
    )


def repo_fill_args(
    repo: str, revision: str, settings: CacheWarmerSettings, include: Iterable[str] = ()
) -> list[str]:
    args = [
        "fill",
        f"--repo={repo}",
        f"--revision={revision}",
        f"--dest={workload.HF_HOME}",
        f"--source={settings.source}",
    ]
    if settings.source == "azure-blob":
        args.append(f"--blob-url={settings.blob_url}")
    args += [f"--include={pattern}" for pattern in include]
    return args


def wait_for_cache_containers(
    image: str, model: ModelConfig, startup_budget_seconds: int
) -> list[dict[str, Any]]:
    """The servers' init containers, one per filled repository (the model, then each LoRA
    adapter): init containers run in turn, so the server starts once every one is there."""
    return [
        wait_for_cache_container(image, model, startup_budget_seconds),
        *(
            wait_for_marker(image, marker, startup_budget_seconds, f"adapter-{index}")
            for index, marker in enumerate(adapter_marker_paths(model))
        ),
    ]


def wait_for_cache_container(
    image: str, model: ModelConfig, startup_budget_seconds: int
) -> dict[str, Any]:
    """The servers' init container: start only when the model's revision is in the cache."""
    return wait_for_marker(image, model_marker_path(model), startup_budget_seconds, "cache")


def wait_for_marker(
    image: str, marker: str, startup_budget_seconds: int, what: str
) -> dict[str, Any]:
    """An init container that returns once `marker` (a filled revision) exists."""
    return {
        "name": f"wait-for-{what}",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", WARMER_SCRIPT],
        "args": [
            "wait",
            f"--marker={marker}",
            f"--timeout={deadline_seconds(startup_budget_seconds)}",
        ],
        # A Python loop that looks for one file.
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
        "securityContext": workload.container_security_context(),
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
    }


@dataclass(frozen=True)
class CacheWarmerArgs:
    model: ModelConfig
    startup_budget_seconds: int
    namespace: str
    settings: CacheWarmerSettings
    cache: workload.ModelCache
    # The service account (and, for a gated model from the Hub, the token's CSI volume).
    wiring: PodWiring
    # The model's volume claim, which the Job mounts (None: no claim of ours).
    claim: pulumi.Resource | None = None


def job_labels(model: ModelConfig) -> dict[str, str]:
    return workload.labels("model-cache-warmer", model.name, "cache-warmer")


def pod_template_labels(args: CacheWarmerArgs) -> dict[str, str]:
    labels = workload.pod_labels(job_labels(args.model), downloads_models=True)
    if args.settings.source == "azure-blob":
        labels[WORKLOAD_IDENTITY_LABEL] = "true"
    return labels


def warmer_env(args: CacheWarmerArgs) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": name, "value": value}
        for name, value in {
            # The token cache and hf_xet's chunk cache go to scratch, not the model volume.
            "HOME": "/scratch/home",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "DO_NOT_TRACK": "1",
        }.items()
    ]
    if args.settings.source == "huggingface" and args.model.spec.gated:
        ref = {"name": HF_TOKEN.secret, "key": HF_TOKEN.key}
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    return env


def job_spec(args: CacheWarmerArgs) -> dict[str, Any]:
    model = args.model
    # One container per repository, side by side in the Job's pod: each fills and marks
    # its own revision, and the Job completes when all have.
    adapters = [
        fill_container(
            args,
            f"warm-adapter-{index}",
            # The warmer checks the adapter against its declared rank before marking it.
            [*repo_fill_args(a.source, a.revision, args.settings), f"--lora-rank={a.rank}"],
        )
        for index, a in enumerate(model.adapters)
    ]
    return {
        "backoffLimit": BACKOFF_LIMIT,
        "activeDeadlineSeconds": deadline_seconds(args.startup_budget_seconds),
        "template": {
            "metadata": {"labels": pod_template_labels(args)},
            "spec": {
                "serviceAccountName": args.wiring.service_account,
                "automountServiceAccountToken": False,
                # Each attempt in a new pod, whose log stays for the post-mortem.
                "restartPolicy": "Never",
                "securityContext": workload.pod_security_context(),
                # A download needs no GPU: the system pool takes it.
                "tolerations": workload.SYSTEM_POOL_TOLERATIONS,
                "containers": [
                    fill_container(args, "warm-cache", fill_args(model, args.settings)),
                    *adapters,
                ],
                "volumes": [
                    workload.model_cache_volume(model.name, args.cache),
                    workload.empty_dir("scratch", "1Gi"),
                    workload.empty_dir("tmp", "1Gi"),
                    *args.wiring.volumes,
                ],
            },
        },
    }


def fill_container(args: CacheWarmerArgs, name: str, fill: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": args.settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", WARMER_SCRIPT],
        "args": fill,
        "env": warmer_env(args),
        # A download streams to disk: network-bound, little CPU or memory.
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
        "securityContext": workload.container_security_context(),
        "volumeMounts": [
            {"name": "models", "mountPath": "/models"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "tmp", "mountPath": "/tmp"},
            *args.wiring.volume_mounts,
        ],
    }


class CacheWarmer(pulumi.ComponentResource):
    """The Job that fills one model's cache; `job` is what its servers depend on."""

    def __init__(
        self, name: str, args: CacheWarmerArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:cache_warmer:CacheWarmer", name, None, opts)
        timeout = f"{deadline_seconds(args.startup_budget_seconds) + PULUMI_GRACE_SECONDS}s"
        self.job = k8s.batch.v1.Job(
            name,
            metadata={
                "name": job_name(args.model),
                "namespace": args.namespace,
                "labels": job_labels(args.model),
            },
            spec=job_spec(args),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[args.claim] if args.claim else None,
                # A Job's pod template cannot change in place (a new warmer image): the old
                # Job goes first, then the new one runs and finds the marker at once.
                delete_before_replace=True,
                # Pulumi waits for the Job to complete; a large checkpoint takes a while.
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
            ),
        )
        self.register_outputs({"job": job_name(args.model)})


# -- the warmer's identity for an Azure Blob mirror (AKS) -------------------------------------


@dataclass(frozen=True)
class BlobReaderArgs:
    placement: AzurePlacement
    namespace: str
    storage_account_id: str


class BlobReaderIdentity(pulumi.ComponentResource):
    """The warmers' service account, federated to an identity that may read the mirror's
    storage account and nothing else (Storage Blob Data Reader on that one account)."""

    def __init__(self, name: str, args: BlobReaderArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:cache_warmer:BlobReaderIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = declare_workload_identity(
            name,
            WorkloadIdentityArgs(
                purpose="cache-warmer",
                placement=args.placement,
                namespace=args.namespace,
                service_account=SERVICE_ACCOUNT,
                role_guid=STORAGE_BLOB_DATA_READER_ROLE,
                scopes={"role": args.storage_account_id},
            ),
            child,
        )
        annotations = {CLIENT_ID_ANNOTATION: identity.client_id}
        k8s.core.v1.ServiceAccount(
            name,
            metadata={
                "name": SERVICE_ACCOUNT,
                "namespace": args.namespace,
                "annotations": annotations,
            },
            # The warmer calls no Kubernetes API; the webhook projects its own token.
            automount_service_account_token=False,
            opts=child,
        )
        self.wiring = PodWiring(
            service_account=SERVICE_ACCOUNT, service_account_annotations=annotations
        )
        self.register_outputs({"serviceAccount": SERVICE_ACCOUNT})
