"""The typed stack configuration: the only reader of `pulumi.Config`.

Every stack file (`stacks/Pulumi.<stack>.yaml`) says only what differs for its environment;
every default lives here, once, with its reason. `load_stack_config()` validates the whole
configuration before any resource is declared and turns the first problem into one
`ConfigError` line: the key path, the value, and what is allowed.

Keys (all in the `slm-deploy:` namespace):

    environment   the tier this stack is: local, dev, staging or prod (drives the defaults)
    cluster       where the platform runs: a new AKS cluster, or an existing kubeconfig context
    gpuPools      GPU node pools: created on AKS, described (nodes that exist) otherwise
    models        the models to serve, each on an engine and, for GPUs, a pool
    monitoring    which Prometheus/Grafana the platform uses
    secrets       secret values (set with `pulumi config set --secret --path secrets.<name>`)
    serving       images, model caches and their warmer, request timeouts, Ollama and Open
                  WebUI settings
    ingress       the HTTPS entry point: host, TLS, ingress class
    access        API consumers with a key each (rotation), the edge's per-address limits
"""

from __future__ import annotations

import ipaddress
import json
import re
import zoneinfo
from dataclasses import replace
from functools import cached_property
from typing import Annotated, Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components import aks_versions, capacity, catalog, redaction, right_sizing, sizing, value_rules
from components.access import Access, AccessError
from components.azure_names import StackNameError, check_stack_name

PROJECT = "slm-deploy"
ENVIRONMENTS = ("local", "dev", "staging", "prod")
Environment = Literal["local", "dev", "staging", "prod"]

# Kubernetes minor versions we can check the rendered manifests against offline
# (kubernetes-validate ships schemas for 1.25-1.37). An existing cluster may run any of
# them: its version is a fact about a cluster we don't manage, and nothing we declare there
# depends on an AKS add-on. A new AKS cluster is held to aks_versions.aks_minors().
SUPPORTED_KUBERNETES = tuple(f"1.{minor}" for minor in range(25, 38))
# 1.36: in AKS standard support until 2027-06-30, the longest of the minors whose add-on
# versions AKS publishes (1.35 ends 2027-03-31; 1.37 has no add-on table yet), with
# kubernetes-validate schemas. See components/aks_versions.json.
DEFAULT_KUBERNETES_VERSION = "1.36"

# AKS Linux agent pool names: 1-12 lowercase letters and digits, starting with a letter.
AGENT_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
# Model names become Kubernetes object names and label values: a DNS-1123 label, short
# enough to leave room for suffixes such as "-metrics" within the 63-character limit.
MODEL_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
HF_REPO = re.compile(r"^[A-Za-z0-9][-\w.]*/[-\w.]+$")
# Engines whose models come from a Hugging Face repository at a pinned commit.
HUB_ENGINES = ("vllm", "onnxruntime")
OLLAMA_TAG = re.compile(r"^[a-z0-9][-a-z0-9_./]*(:[-\w.]+)?$")
AZURE_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")
# Images, pinned by tag and digest in every environment, so dev runs the bytes prod will.
# Each digest is the release's multi-arch index digest as several independent public
# deployments pin it (the registries were not reachable where this was written). To move
# to another release, read its digest with `docker buildx imagetools inspect <image:tag>`
# (or `crane digest`) and pin both. vLLM v0.31.0 (October 2026): the newest release with a
# digest on record here; Ollama and Open WebUI at their 2026 releases.
VLLM_IMAGE = (
    "vllm/vllm-openai:v0.31.0"
    "@sha256:c1c9f6fd5c109ba7f0546a59f5b2f15fb87f64c77782e90a27b648b42a8e67c3"
)
OLLAMA_IMAGE = (
    "ollama/ollama:0.31.1@sha256:f1a705f2bd113fb8d15f85f7c217f0dc5f6bebda6b0cc42b82c3ad165ffcb9dc"
)
OPEN_WEBUI_IMAGE = (
    "ghcr.io/open-webui/open-webui:v0.8.12"
    "@sha256:8113fa5510020ef05a44afc0c42d33eabeeb2524a996e3e3fb8c437c00f0d792"
)
# The edge's key check (components/edge_auth.py): NGINX's unprivileged build, 1.29.3 on
# Alpine; the digest as public Dockerfiles and deployment notes pin it with that tag.
EDGE_AUTH_IMAGE = (
    "nginxinc/nginx-unprivileged:1.29.3-alpine"
    "@sha256:5aea7cc516b419e3526f47dd1531be31a56a046cfe44754d94f9383e13e2ee99"
)
# repository[:tag][@sha256:digest]; pinned_image() also demands a tag other than "latest"
# or a digest.
IMAGE_REFERENCE = re.compile(
    r"^[a-z0-9][-a-z0-9./_]*(:(?P<tag>[\w][\w.-]{0,127}))?(@sha256:(?P<digest>[0-9a-f]{64}))?$"
)
# Serving defaults (reasons at ModelConfig.max_model_len).
VLLM_DEFAULT_MAX_NUM_SEQS = 16
OLLAMA_DEFAULT_CONTEXT = 4096
OLLAMA_DEFAULT_PARALLEL = 4
# ONNX Runtime GenAI on CPU: prompt processing on CPU cores is slow enough that long contexts
# are outside what it serves well, so the same 4,096 tokens as Ollama; one generator at a
# time, which gets every core (the server runs generators side by side, each with its own KV
# cache, splitting the cores: raise maxNumSeqs for throughput at the cost of each stream).
ONNX_DEFAULT_CONTEXT = 4096
ONNX_DEFAULT_CONCURRENCY = 1
GIT_COMMIT = re.compile(r"^[0-9a-f]{40}$")
TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
# An Azure Blob container, optionally a prefix inside it; no query string, so no SAS token
# (the cache warmer signs in with workload identity).
BLOB_URL = re.compile(
    r"^https://(?P<account>[a-z0-9]{3,24})\.blob\.core\.windows\.net/"
    r"[a-z0-9][-a-z0-9]{1,61}[a-z0-9](/[^?#\s]*)?$"
)
STORAGE_ACCOUNT_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]+"
    r"/providers/Microsoft\.Storage/storageAccounts/(?P<account>[a-z0-9]{3,24})$"
)
PATTERN_MEANINGS = {
    AGENT_POOL_NAME.pattern: "1-12 lowercase letters and digits, starting with a letter",
    MODEL_NAME.pattern: "a DNS label of at most 40 characters: lowercase letters, digits, '-'",
    AZURE_VM_SIZE.pattern: "an Azure VM size such as Standard_NC24ads_A100_v4",
    GIT_COMMIT.pattern: "a full 40-character commit hash of the model repository",
    HF_REPO.pattern: "a Hugging Face repository such as org/name",
    TIME_OF_DAY.pattern: "a time of day as HH:MM (24-hour clock)",
    IMAGE_REFERENCE.pattern: "an image reference: repository[:tag][@sha256:digest]",
    BLOB_URL.pattern: "a container URL https://<account>.blob.core.windows.net/<container>"
    "[/<prefix>], without a SAS token",
    STORAGE_ACCOUNT_ID.pattern: "a storage account resource id: /subscriptions/<id>"
    "/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/<name>",
}


class SizingProblem(Exception):
    """A model that does not fit its pool: the path and sizing's one-line explanation."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}")


class ConfigError(pulumi.RunError):
    """A stack configuration problem, as one line: key path, value, what is allowed.

    A RunError, so that `pulumi preview`/`up` print the line alone, without a traceback."""


class _FieldError(ValueError):
    """Raised inside validators to name a precise sub-path, value and allowed values."""

    def __init__(self, path: str | None, value: Any, allowed: str):
        self.path, self.value, self.allowed = path, value, allowed
        super().__init__(f"{path}: {value!r}, allowed: {allowed}")


def _check_bounds(low: int, high: int, low_key: str, high_key: str) -> None:
    if low > high:
        raise _FieldError(low_key, low, f"at most {high_key} ({high})")


def _check_unique(names: list[str], key: str, field: str) -> None:
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise _FieldError(
                f"{key}[{index}].{field}", name, "a name not used earlier in the list"
            )


def _meets(rule: Any, value: Any) -> Any:
    """The value, if it meets its rule (components/value_rules.py); else a _FieldError."""
    allowed = rule(value)
    if allowed:
        raise _FieldError(None, value, allowed)
    return value


def pinned_image(reference: str) -> str:
    """An image pinned by a version tag or a digest: never "latest", never untagged."""
    match = IMAGE_REFERENCE.match(reference)
    if match and not match["digest"] and match["tag"] in (None, "latest"):
        raise _FieldError(None, reference, "a version tag or an @sha256 digest, never latest")
    return reference


def _check_kubernetes_version(version: str, on_aks: bool) -> None:
    if on_aks and version not in aks_versions.aks_minors():
        raise _FieldError(
            "cluster.kubernetesVersion",
            version,
            f"a minor in AKS standard support on {aks_versions.CHECKED} with known add-on "
            f"versions (components/aks_versions.json): {', '.join(aks_versions.aks_minors())}",
        )
    if version not in SUPPORTED_KUBERNETES:
        raise _FieldError(
            "cluster.kubernetesVersion",
            version,
            f"a minor version from {SUPPORTED_KUBERNETES[0]} to {SUPPORTED_KUBERNETES[-1]}",
        )


class _Strict(BaseModel):
    """Base of every config object: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        strict=True,
    )


class SystemPool(_Strict):
    # Two D4s_v5 nodes hold the AKS system add-ons (CoreDNS, metrics-server, CSI drivers,
    # KEDA) with room for monitoring; three zones keep the control plane's helpers up during
    # a zone outage.
    vm_size: str = Field("Standard_D4s_v5", pattern=AZURE_VM_SIZE.pattern)
    min_count: int = Field(2, ge=1, le=100)
    max_count: int = Field(3, ge=1, le=100)
    zones: list[Literal["1", "2", "3"]] = ["1", "2", "3"]

    @field_validator("vm_size")
    @classmethod
    def _general_purpose(cls, value: str) -> str:
        return _meets(value_rules.system_vm_size, value)

    @model_validator(mode="after")
    def _bounds(self) -> SystemPool:
        _check_bounds(self.min_count, self.max_count, "minCount", "maxCount")
        return self


class MaintenanceWindow(_Strict):
    """When AKS may upgrade the cluster and node images: once a week, off-peak."""

    day_of_week: Literal[
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"
    ] = "Sunday"
    start_time: str = Field("02:00", pattern=TIME_OF_DAY.pattern)
    # AKS requires a window of at least 4 hours for its managed upgrade schedules.
    duration_hours: int = Field(4, ge=4, le=24)
    utc_offset: str = "+00:00"

    @field_validator("utc_offset")
    @classmethod
    def _real_offset(cls, value: str) -> str:
        return _meets(value_rules.utc_offset, value)


class AksCluster(_Strict):
    mode: Literal["aks"]
    # East US offers every GPU family in the catalog (T4, A10, A100, H100 NVL), and the
    # catalog's recorded prices are East US prices.
    location: str = "eastus"
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    # Free tier has no uptime SLA; Standard is what production clusters should run.
    sku_tier: Literal["Free", "Standard", "Premium"] = "Standard"
    system_pool: SystemPool = Field(default_factory=SystemPool)
    # Who may reach the API server (CIDRs). Empty means "anyone", allowed only outside prod.
    authorized_ip_ranges: list[str] = []
    private: bool = False
    # patch: upgrades within the pinned minor version only, so kubernetesVersion (and the
    # schemas the plan validates against) stays true; minor upgrades are a reviewed change.
    upgrade_channel: Literal["patch", "stable", "rapid", "node-image", "none"] = "patch"
    # NodeImage: weekly node images with OS security fixes, applied in the window below.
    node_os_upgrade_channel: Literal["NodeImage", "SecurityPatch", "Unmanaged", "None"] = (
        "NodeImage"
    )
    maintenance_window: MaintenanceWindow = Field(default_factory=MaintenanceWindow)
    # Standard: enough throughput for a few nodes pulling large serving images at once;
    # Premium adds geo-replication and private endpoints.
    registry_sku: Literal["Basic", "Standard", "Premium"] = "Standard"
    # How GPU nodes get their driver: "aks" (AKS installs it; we add NVIDIA's device plugin
    # and DCGM exporter) or "gpu-operator" (pools with driver None; NVIDIA's GPU Operator
    # installs driver, toolkit, device plugin and DCGM exporter).
    gpu_driver: Literal["aks", "gpu-operator"] = "aks"
    # What kind of identity runs `pulumi up` (it is made cluster admin through Azure RBAC):
    # a person (User) or a CI workload identity (ServicePrincipal). Azure rejects a role
    # assignment whose principal type does not match.
    deployer_principal_type: Literal["User", "ServicePrincipal", "Group"] = "User"

    @field_validator("location")
    @classmethod
    def _region(cls, value: str) -> str:
        return _meets(value_rules.azure_region, value)

    @field_validator("authorized_ip_ranges")
    @classmethod
    def _cidrs(cls, ranges: list[str]) -> list[str]:
        for cidr in ranges:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                raise _FieldError(None, cidr, "CIDR ranges such as 203.0.113.0/24") from None
        return ranges


class ExistingCluster(_Strict):
    mode: Literal["existing"]
    # A context in the deployer's kubeconfig ($KUBECONFIG or ~/.kube/config), e.g. kind-slm.
    context: str = Field(min_length=1)
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    # What makes the GPU nodes of gpuPools schedulable and observable. "present" (default):
    # the cluster already runs it (NVIDIA's GPU Operator, or a device plugin and DCGM
    # exporter), as most GPU clusters do, and a second device plugin would conflict.
    # "install": the template declares NVIDIA's device plugin and DCGM exporter charts, as it
    # does on AKS with gpuDriver "aks"; the nodes must already have the NVIDIA driver and
    # container toolkit, and carry the label slm-deploy/gpu=nvidia.
    gpu_software: Literal["present", "install"] = "present"


# The keys of a gpuPools entry that only shape an AKS agent pool: refused on an existing
# cluster, whose nodes already exist (their count, zones and disks are yours).
# ModelConfig fields that only vLLM reads (a GPU engine with the capacity model behind it).
VLLM_ONLY_MODEL_KEYS = {
    "workload": "workload",
    "targets": "targets",
    "tensor_parallel_size": "tensorParallelSize",
    "gpu_memory_utilization": "gpuMemoryUtilization",
}
AKS_ONLY_POOL_KEYS = {"min_count": "minCount", "zones": "zones", "os_disk_size_gb": "osDiskSizeGb"}


class _NodePool(_Strict):
    """What GPU and CPU pools share: an autoscaled AKS agent pool of one VM size (or, on an
    existing cluster, labelled nodes that exist)."""

    name: str = Field(pattern=AGENT_POOL_NAME.pattern)
    # A catalog VM size (the subclass says which catalog): it drives the checks and the cost.
    vm_size: str = Field(pattern=AZURE_VM_SIZE.pattern)
    # 0 lets an idle pool cost nothing; the cluster autoscaler adds nodes on demand.
    min_count: int = Field(0, ge=0, le=100)
    max_count: int = Field(1, ge=1, le=100)
    spot: bool = False
    zones: list[Literal["1", "2", "3"]] = []

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        return _meets(value_rules.pool_name_free, value)

    def _check_vm_size(self, catalog_skus: dict[str, Any], what: str) -> None:
        _check_bounds(self.min_count, self.max_count, "minCount", "maxCount")
        if self.vm_size not in catalog_skus:
            raise _FieldError(
                "vmSize",
                self.vm_size,
                f"{what} from components/catalog.py: " + ", ".join(catalog_skus),
            )


class GpuPool(_NodePool):
    """A GPU node pool. On AKS the template creates it as an agent pool. On an existing
    cluster it describes nodes that already exist: they carry the label
    slm-deploy/pool=<name> (gpu_pool.POOL_LABEL), vmSize names their GPU, maxCount says how
    many there are, spot adds the spot toleration; minCount, zones and osDiskSizeGb are
    AKS's only and refused there."""

    # vmSize: a GPU SKU from components/catalog.py (its GPUs, memory and price drive the
    # checks). On an existing cluster, nodes outside Azure included: the catalog SKU with the
    # same GPU model and GPU count per node (e.g. Standard_NV36ads_A10_v5 for one A10 per
    # node), so the memory and capacity checks use the right GPU; its price is not shown.
    # OS disk size; default: sizing.os_disk() (ephemeral on the temp disk where it fits).
    os_disk_size_gb: int | None = Field(None, ge=64, le=4096)
    # Split each GPU into MIG slices (A100 and H100 only; AKS's AgentPool gpuInstanceProfile):
    # every slice serves one replica with its share of memory, compute and bandwidth, so
    # several small-model replicas share one physical GPU. None: whole GPUs.
    gpu_instance_profile: Literal["MIG1g", "MIG2g", "MIG3g", "MIG4g", "MIG7g"] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> GpuPool:
        self._check_vm_size(catalog.GPU_SKUS, "a GPU SKU")
        profiles = capacity.mig_profiles(self.vm_sku)
        if self.gpu_instance_profile and self.gpu_instance_profile not in profiles:
            raise _FieldError(
                "gpuInstanceProfile",
                self.gpu_instance_profile,
                f"one of {', '.join(profiles)}"
                if profiles
                else f"none: {self.vm_sku.gpu_model} GPUs ({self.vm_size}) have no MIG",
            )
        return self

    @property
    def vm_sku(self) -> catalog.GpuSku:
        """The VM size as Azure sells it: whole GPUs."""
        return catalog.GPU_SKUS[self.vm_size]

    @property
    def placement(self) -> right_sizing.Placement:
        return right_sizing.Placement(self.vm_sku, self.gpu_instance_profile)

    @property
    def sku(self) -> catalog.GpuSku:
        """The VM as its replicas see it: with MIG, one GPU per slice, with its memory."""
        return self.placement.replica_sku

    @property
    def os_disk(self) -> sizing.OsDisk:
        return sizing.os_disk(self.sku, self.os_disk_size_gb)

    def monthly_cost(self, spot: bool | None = None) -> sizing.PoolCost:
        """The pool's cost as billed (spot or not), or priced the other way with `spot`."""
        billed_as_spot = self.spot if spot is None else spot
        return sizing.gpu_pool_monthly_cost(
            self.sku, self.min_count, self.max_count, billed_as_spot
        )


class CpuPool(_NodePool):
    """A CPU node pool for engines that need no GPU (ONNX Runtime GenAI). On AKS the
    template creates it as a user agent pool tainted so that only the models placed on it
    land there (components/cpu_pool.py); on an existing cluster it describes nodes that
    already exist, labelled slm-deploy/pool=<name>, and minCount, zones and osDiskSizeGb are
    refused there."""

    # vmSize: a CPU VM size from the catalog (components/catalog.py CPU_SKUS): its vCPUs,
    # memory and price drive the fit check and the cost.
    os_disk_size_gb: int | None = Field(None, ge=32, le=4096)

    @model_validator(mode="after")
    def _bounds(self) -> CpuPool:
        self._check_vm_size(catalog.CPU_SKUS, "a CPU VM size")
        return self

    @property
    def sku(self) -> catalog.CpuSku:
        return catalog.CPU_SKUS[self.vm_size]

    def monthly_cost(self, spot: bool | None = None) -> sizing.PoolCost:
        billed_as_spot = self.spot if spot is None else spot
        return sizing.cpu_pool_monthly_cost(
            self.sku, self.min_count, self.max_count, billed_as_spot
        )


class AwakeHours(_Strict):
    """When a model that may scale to zero is kept at one replica (a KEDA cron trigger).

    vLLM's queue cannot wake a model with no pods (no pod, no metric), so a model whose
    minimum is 0 is up during these hours and scales to zero outside them."""

    # An IANA time zone, e.g. Europe/London: KEDA's cron trigger evaluates in it.
    timezone: str = "UTC"
    # Days of the week as a cron field: 1-5 is Monday to Friday.
    days: str = "1-5"
    start: str = Field("08:00", pattern=TIME_OF_DAY.pattern)
    end: str = Field("19:00", pattern=TIME_OF_DAY.pattern)

    @field_validator("days")
    @classmethod
    def _cron_days(cls, value: str) -> str:
        return _meets(value_rules.cron_days, value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise _FieldError(
                None, value, "an IANA time zone such as Europe/London or UTC"
            ) from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> AwakeHours:
        if self.start >= self.end:
            raise _FieldError("end", self.end, f"a time after start ({self.start})")
        return self


class Replicas(_Strict):
    min: int = Field(1, ge=0, le=100)
    max: int = Field(1, ge=1, le=100)
    # Required when min is 0 (see AwakeHours).
    awake: AwakeHours | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Replicas:
        _check_bounds(self.min, self.max, "min", "max")
        return self


class Workload(_Strict):
    """The request shape one model serves: what the capacity model sizes for.

    Default: 200 tokens in and 200 out, the shape of the published measurements the capacity
    model is calibrated against (KAITO's guidellm runs, components/capacity_measurements/),
    so the default figures sit where the model is checked. Set your traffic's own shape:
    long prompts cost compute (prefill), long answers cost memory bandwidth (decode)."""

    input_tokens: int = Field(200, ge=1, le=1_048_576)
    output_tokens: int = Field(200, ge=1, le=1_048_576)


class Targets(_Strict):
    """The service levels one model is sized for (components/capacity.py)."""

    # Time to first token, p95. Default: the stack's alert threshold
    # (monitoring.alerts.ttftP95Seconds), so the plan sizes for what pages on-call.
    ttft_p95_seconds: float | None = Field(None, gt=0, le=120)
    # Time between output tokens, p95. 0.05 s is 20 tokens/s per stream, about four times
    # reading speed (238 words a minute on average: Brysbaert 2019, a meta-analysis of 190
    # studies; at OpenAI's rule of thumb of 0.75 words a token that is 5.3 tokens/s).
    itl_p95_seconds: float = Field(0.05, gt=0, le=10)
    # The busiest request rate the model must carry (requests/s, all replicas). None: the
    # plan reports what replicas.max carries instead of checking it.
    peak_requests_per_second: float | None = Field(None, gt=0, le=100_000)


class LoraAdapter(_Strict):
    """A LoRA adapter vLLM serves beside its base model, under its own model name."""

    # The served name: clients send it as "model". A DNS label, so it has no '=' or ',',
    # which vLLM's --lora-modules parser reads as name=path or JSON.
    name: str = Field(pattern=MODEL_NAME.pattern)
    # The adapter's Hugging Face repository (a PEFT adapter_config.json and its weights).
    source: str = Field(pattern=HF_REPO.pattern)
    # Always pinned: vLLM would download the newest revision of a repository id itself
    # (lora/utils.py get_adapter_absolute_path), so the cache warmer fetches this one.
    revision: str = Field(pattern=GIT_COMMIT.pattern)
    # The adapter's r (adapter_config.json): nothing at plan time reads the adapter, and
    # vLLM's --max-lora-rank and its preallocated memory follow from it. vLLM's ranks go to
    # 512; the warmer checks the file against this value.
    rank: int = Field(ge=1, le=sizing.MAX_LORA_RANKS[-1])


class ModelConfig(_Strict):
    # The served model name: clients send it as "model" in OpenAI requests.
    name: str = Field(pattern=MODEL_NAME.pattern)
    engine: Literal["vllm", "ollama", "onnxruntime"]
    # A Hugging Face repository (vllm, onnxruntime) or an Ollama library tag (ollama).
    source: str = Field(min_length=1)
    # The Hugging Face commit to serve: pinned so that a redeploy serves the same weights.
    revision: str | None = Field(None, pattern=GIT_COMMIT.pattern)
    # Where the model runs: a gpuPools name (vLLM; Ollama on a GPU), a cpuPools name (ONNX
    # Runtime, required). Omitted: Ollama on CPU, on any node.
    pool: str | None = None
    replicas: Replicas = Field(default_factory=Replicas)
    # Context and concurrency per replica. vLLM: the KV cache must hold max_num_seqs
    # sequences of the workload's length and one of max_model_len (sizing.py); Ollama holds
    # max_num_seqs full contexts. Defaults: the model card's recommended context (vLLM) or
    # 4,096 tokens (Ollama, the source chapter's setting); for vLLM, the concurrency that
    # maximises throughput within the targets (components/capacity.py), for Ollama 4
    # (OLLAMA_NUM_PARALLEL in the source chapter).
    max_model_len: int | None = Field(None, ge=256, le=1_048_576)
    max_num_seqs: int | None = Field(None, ge=1, le=1024)
    # KEDA's target of waiting requests per replica (vllm:num_requests_waiting, a name the
    # ONNX Runtime server exports too). Default: vLLM, the queue a replica drains within the
    # TTFT target's slack (components/capacity.py, queue_threshold); ONNX Runtime, its
    # maxNumSeqs (one more round of generators waiting). An explicit value wins. Lower
    # scales out sooner.
    queue_per_replica: int | None = Field(None, ge=1, le=1000)
    # The request shape and the service levels the capacity model sizes this model for.
    workload: Workload = Field(default_factory=Workload)
    targets: Targets = Field(default_factory=Targets)
    # Ollama only: custom variants built from Modelfiles, served beside the base model.
    variants: list[OllamaVariant] = []
    # vLLM only: LoRA adapters of this model, each served under its own name.
    adapters: list[LoraAdapter] = []
    # GPUs one replica spans (vLLM tensor parallelism); must divide the node's GPUs.
    tensor_parallel_size: int = Field(1, ge=1, le=8)
    # vLLM's share of each GPU's memory; default from components/sizing.py (0.90, or 0.85 on
    # GPUs under 20 GB).
    gpu_memory_utilization: float | None = Field(None, ge=0.5, le=0.95)

    @model_validator(mode="after")
    def _source_matches_engine(self) -> ModelConfig:
        if self.engine in HUB_ENGINES and not HF_REPO.match(self.source):
            raise _FieldError(
                "source",
                self.source,
                "a Hugging Face repository such as microsoft/Phi-4-mini-instruct",
            )
        if self.engine == "ollama" and not OLLAMA_TAG.match(self.source):
            raise _FieldError("source", self.source, "an Ollama tag such as phi4-mini:3.8b")
        if self.engine == "vllm" and self.pool is None:
            raise _FieldError("pool", None, "a GPU pool name: vLLM models run on GPUs")
        if self.engine == "ollama" and self.revision is not None:
            raise _FieldError("revision", self.revision, "nothing: Ollama tags have no revision")
        self._check_engine_keys()
        if self.engine != "ollama" and self.variants:
            raise _FieldError("variants", "[...]", "nothing: Modelfile variants are Ollama's")
        if self.engine != "vllm" and self.adapters:
            raise _FieldError("adapters", "[...]", "nothing: LoRA adapters are served by vLLM")
        if self.engine == "ollama" and self.replicas.max > 1:
            raise _FieldError(
                "replicas.max",
                self.replicas.max,
                "1 for Ollama (a ReadWriteOnce model volume, no metrics to scale on)",
            )
        catalog_for_engine = sorted(s for s, m in catalog.MODELS.items() if m.engine == self.engine)
        if self.source not in catalog_for_engine:
            raise _FieldError(
                "source",
                self.source,
                f"a {self.engine} model of the catalog (components/models/; add one with "
                "tools/add_model.py): " + ", ".join(catalog_for_engine),
            )
        if self.adapters and self.spec.family not in sizing.LORA_LAYOUTS:
            raise _FieldError(
                "adapters",
                "[...]",
                f"nothing for {self.source}: vLLM's LoRA layout, which sizes the adapters' "
                "memory, is recorded for these families only: "
                + ", ".join(sorted(sizing.LORA_LAYOUTS)),
            )
        return self

    def _check_engine_keys(self) -> None:
        """Keys that mean something for one engine only are refused on the others, rather
        than silently ignored."""
        for field, key in (
            ("workload", "workload"),
            ("targets", "targets"),
            ("queue_per_replica", "queuePerReplica"),
        ):
            if self.engine == "ollama" and field in self.model_fields_set:
                raise _FieldError(
                    key,
                    "{...}" if field != "queue_per_replica" else self.queue_per_replica,
                    "nothing for Ollama: the capacity model and the autoscaler that read it "
                    "cover vLLM only",
                )
        for field, key in VLLM_ONLY_MODEL_KEYS.items():
            if self.engine == "onnxruntime" and field in self.model_fields_set:
                value = getattr(self, field)
                raise _FieldError(
                    key,
                    value.model_dump(by_alias=True, exclude_unset=True)
                    if isinstance(value, BaseModel)
                    else value,
                    "nothing for ONNX Runtime: "
                    + (
                        "the capacity model covers vLLM on GPUs; throughput on CPU is not modelled"
                        if field in ("workload", "targets")
                        else "it runs on CPU, one process per replica"
                    ),
                )

    @property
    def spec(self) -> catalog.ModelSpec:
        return catalog.MODELS[self.source]

    def serving_shape(self) -> sizing.ServingShape:
        vllm = self.engine == "vllm"
        context, concurrency = {
            "vllm": (self.spec.recommended_context, VLLM_DEFAULT_MAX_NUM_SEQS),
            "ollama": (OLLAMA_DEFAULT_CONTEXT, OLLAMA_DEFAULT_PARALLEL),
            "onnxruntime": (ONNX_DEFAULT_CONTEXT, ONNX_DEFAULT_CONCURRENCY),
        }[self.engine]
        return sizing.ServingShape(
            max_model_len=self.max_model_len or context,
            max_num_seqs=self.max_num_seqs or concurrency,
            tensor_parallel_size=self.tensor_parallel_size,
            gpu_memory_utilization=self.gpu_memory_utilization,
            # vLLM pages its KV cache; Ollama (llama.cpp) allocates every slot's full
            # context at load, and an ONNX Runtime generator its whole max_length, so their
            # worst case is what they really hold.
            tokens_per_sequence=self.workload.input_tokens + self.workload.output_tokens
            if vllm
            else None,
            lora=self.lora_slots,
        )

    @property
    def lora_slots(self) -> sizing.LoraSlots | None:
        """One GPU slot per adapter, so every adapter stays resident, at the smallest rank
        vLLM accepts that holds the largest r."""
        if not self.adapters:
            return None
        return sizing.LoraSlots(
            max_loras=len(self.adapters),
            max_lora_rank=sizing.max_lora_rank([a.rank for a in self.adapters]),
        )


class OllamaVariant(_Strict):
    """A custom model built from a Modelfile on top of an Ollama model (FROM <source>)."""

    name: str = Field(pattern=MODEL_NAME.pattern)
    system: str = Field(min_length=1, max_length=4000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)


class OpenWebUi(_Strict):
    """Open WebUI as a chat front end to the Ollama models (off unless asked for)."""

    enabled: bool = False
    image: str = Field(OPEN_WEBUI_IMAGE, pattern=IMAGE_REFERENCE.pattern)

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return pinned_image(value)


class OllamaSettings(_Strict):
    # One model in memory at a time: predictable memory, no eviction thrash.
    max_loaded_models: int = Field(1, ge=1, le=8)
    # Flash attention lowers KV-cache memory and speeds long prompts (the chapter's setting).
    flash_attention: bool = True
    open_webui: OpenWebUi = Field(default_factory=OpenWebUi, alias="openWebUi")
    # The models are baked into serving.ollamaImage (built from images/ollama-preloaded), for
    # clusters without internet egress: nothing is pulled, the pods get no download egress
    # and no model volume. Off by default: the stock image plus a pull needs no image build.
    preloaded: bool = False


class CacheWarmer(_Strict):
    """A Job per vLLM model that fills its cache with the pinned revision before any server
    starts (images/model-cache-warmer): the servers then run offline, with no download
    egress, and a new revision is downloaded once, not by every replica."""

    enabled: bool = False
    # Required when enabled: there is no public image of the warmer to default to.
    image: str | None = Field(None, pattern=IMAGE_REFERENCE.pattern)
    # Where the weights come from: the Hugging Face Hub, or a mirror of it in Azure Blob
    # Storage (blobs under <prefix>/<repository>/<revision>/ of blobUrl).
    source: Literal["huggingface", "azure-blob"] = "huggingface"
    blob_url: str | None = Field(None, pattern=BLOB_URL.pattern)
    # The mirror's storage account: the warmer's workload identity reads it (AKS).
    blob_storage_account_id: str | None = Field(None, pattern=STORAGE_ACCOUNT_ID.pattern)

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        return value if value is None else pinned_image(value)

    @model_validator(mode="after")
    def _complete(self) -> CacheWarmer:
        if self.enabled and self.image is None:
            raise _FieldError(
                "image", None, "the image built from images/model-cache-warmer when enabled"
            )
        if self.source == "azure-blob" and self.blob_url is None:
            raise _FieldError(
                "blobUrl",
                None,
                "https://<account>.blob.core.windows.net/<container>[/<prefix>] "
                "when source is azure-blob",
            )
        account_id = self.blob_storage_account_id
        if self.blob_url and account_id:
            account = BLOB_URL.match(self.blob_url)["account"]
            if STORAGE_ACCOUNT_ID.match(account_id)["account"] != account:
                raise _FieldError(
                    "blobStorageAccountId", account_id, f"the id of blobUrl's account ({account})"
                )
        return self


class ServingSettings(_Strict):
    # The longest response (streamed included) a client may wait for: graceful shutdown and
    # the ingress timeouts allow this much.
    max_request_seconds: int = Field(600, ge=30, le=3600)
    # shared: one ReadWriteMany volume per model, so restarts and new replicas read weights
    # instead of downloading them; node: an emptyDir on the node's disk, downloaded again
    # when a pod moves (cheaper, for dev).
    model_cache: Literal["shared", "node"] = "shared"
    # Storage class for shared caches; default: Azure Files premium on AKS (ReadWriteMany),
    # the cluster's default class elsewhere.
    cache_storage_class: str | None = None

    @field_validator("cache_storage_class")
    @classmethod
    def _storage_class_name(cls, value: str | None) -> str | None:
        return value if value is None else _meets(value_rules.dns1123_subdomain, value)

    vllm_image: str = Field(VLLM_IMAGE, pattern=IMAGE_REFERENCE.pattern)
    ollama_image: str = Field(OLLAMA_IMAGE, pattern=IMAGE_REFERENCE.pattern)

    @field_validator("vllm_image", "ollama_image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return pinned_image(value)

    # The image built from images/onnxruntime-genai-server: required when a model has
    # engine onnxruntime (there is no public image of it to default to).
    onnx_image: str | None = Field(None, pattern=IMAGE_REFERENCE.pattern)

    @field_validator("onnx_image")
    @classmethod
    def _pinned_if_set(cls, value: str | None) -> str | None:
        return value if value is None else pinned_image(value)

    ollama: OllamaSettings = Field(default_factory=OllamaSettings)
    cache_warmer: CacheWarmer = Field(default_factory=CacheWarmer)


class IngressSettings(_Strict):
    """One HTTPS entry point, a path per model: https://<host>/models/<name>/v1/..."""

    enabled: bool = False
    host: str | None = None
    # TLS from a Kubernetes Secret, or (AKS application routing) a Key Vault certificate.
    tls_secret_name: str | None = None
    tls_key_vault_certificate_uri: str | None = Field(
        None, pattern=r"^https://[-\w.]+/certificates/[-\w]+.*$"
    )
    # Default: AKS application routing's managed NGINX on AKS, "nginx" elsewhere.
    class_name: str | None = None
    # Where that controller runs (its pods may reach the models): app-routing-system on AKS,
    # ingress-nginx elsewhere.
    controller_namespace: str | None = None
    # The NGINX image of the edge's key check, which runs wherever vLLM models are published.
    edge_auth_image: str = Field(EDGE_AUTH_IMAGE, pattern=IMAGE_REFERENCE.pattern)

    @field_validator("edge_auth_image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return pinned_image(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return value if value is None else _meets(value_rules.host_name, value)

    @field_validator("tls_secret_name", "class_name")
    @classmethod
    def _object_name(cls, value: str | None) -> str | None:
        return value if value is None else _meets(value_rules.dns1123_subdomain, value)

    @field_validator("controller_namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return value if value is None else _meets(value_rules.dns1123_label, value)


# The name of Open WebUI's objects (components/ollama.py, OPEN_WEBUI_NAME).
OPEN_WEBUI_NAME = "open-webui"

DEFAULT_RUNBOOK_URL = "https://github.com/slm-deploy/slm-deploy/blob/main/docs/runbook.md"


class AlertThresholds(_Strict):
    """Service levels the alert rules hold each model to."""

    # Time to first token, p95 over 5 minutes: interactive chat feels slow past 2 s.
    ttft_p95_seconds: float = Field(2.0, gt=0, le=120)
    # Requests waiting for a slot, sustained 10 minutes: autoscaling is not keeping up.
    # Default: per vLLM model, KEDA's queue threshold times replicas.max (right_sizing), the
    # queue at which the autoscaler has no replica left to add; a figure here applies to
    # every model instead. (Below it a queue is what KEDA aims at, not a fault.)
    queue_waiting: int | None = Field(None, ge=1, le=10000)
    # Share of 5xx responses over 10 minutes.
    error_ratio: float = Field(0.05, gt=0, lt=1)


# What a Log Analytics workspace keeps logs for, in days (the PerGB2018 tier): the container
# logs' workspace on AKS takes monitoring.logs.retentionDays. terraform-provider-azurerm
# v4.81.0 transcribes the service's bounds (tests/upstream/azure-terraform-azurerm-v4.81.0).
LOG_ANALYTICS_RETENTION_DAYS = (30, 730)


class Logs(_Strict):
    """Container logs next to the metrics: on AKS the stack's Log Analytics workspace (the
    AKS monitoring add-on), and with in-cluster monitoring Loki, which Grafana reads."""

    # Days logs are kept. 30: a month of history for incident reviews, as prod's metrics.
    retention_days: int = Field(30, ge=1, le=730)
    # vLLM's request log (--enable-log-requests) writes prompts to the container log, and
    # prompts are user data: off unless a stack decides otherwise, and then kept only for
    # retentionDays like every log line.
    request_logging: bool = False


class Monitoring(_Strict):
    # in-cluster: kube-prometheus-stack; azure-managed: Azure Monitor managed Prometheus and
    # Managed Grafana (AKS only); none: no monitoring (local experiments only).
    mode: Literal["in-cluster", "azure-managed", "none"] = "in-cluster"
    retention_days: int = Field(15, ge=1, le=365)
    # Prometheus' volume. Whichever comes first ends old data: retentionDays, or 85% of this
    # volume (retentionSize), so a busier cluster than planned never fills the disk.
    storage_gib: int = Field(50, ge=5, le=4096)
    alerts: AlertThresholds = Field(default_factory=AlertThresholds)
    logs: Logs = Field(default_factory=Logs)
    # Where the alerts' runbook links point: docs/runbook.md in your fork.
    runbook_url: str = Field(DEFAULT_RUNBOOK_URL, pattern=r"^https://\S+$")


class Secrets(_Strict):
    # For gated models (Gemma 3); set with
    # `pulumi config set --secret --path secrets.huggingFaceToken hf_...`.
    hugging_face_token: SecretStr | None = None


class StackConfig(_Strict):
    stack: str
    environment: Environment
    cluster: Annotated[AksCluster | ExistingCluster, Field(discriminator="mode")]
    gpu_pools: list[GpuPool] = []
    cpu_pools: list[CpuPool] = []
    models: list[ModelConfig] = Field(min_length=1)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    secrets: Secrets = Field(default_factory=Secrets)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    # API consumers with their own keys, and the edge's per-address limits
    # (components/access.py); none: the one shared key, no limits.
    access: Access = Field(default_factory=Access)

    @property
    def is_aks(self) -> bool:
        return isinstance(self.cluster, AksCluster)

    @property
    def protect_stateful(self) -> bool:
        """Production keeps stateful resources (Key Vault, model caches) from deletion."""
        return self.environment == "prod"

    def pool(self, name: str) -> GpuPool:
        return next(pool for pool in self.gpu_pools if pool.name == name)

    def cpu_pool(self, name: str) -> CpuPool:
        return next(pool for pool in self.cpu_pools if pool.name == name)

    @cached_property
    def engine_plans(self) -> dict[str, sizing.EnginePlan]:
        """Each model's memory fit, engine arguments and budgets (raises SizingProblem)."""
        return {model.name: self._plan(index, model) for index, model in enumerate(self.models)}

    def _plan(self, index: int, model: ModelConfig) -> sizing.EnginePlan:
        try:
            if model.engine == "onnxruntime":
                # config requires the pool (_check_model_pool): a replica fits one node.
                return sizing.plan_onnx(
                    model.name, model.spec, self.cpu_pool(model.pool).sku, model.serving_shape()
                )
            pool = self.pool(model.pool) if model.pool else None
            if model.engine == "vllm":
                return self._plan_vllm(model, pool)
            return sizing.plan_ollama(
                model.name, model.spec, pool.sku if pool else None, model.serving_shape()
            )
        except sizing.SizingError as err:
            raise SizingProblem(f"models[{index}]", str(err)) from None
        except right_sizing.TargetsMissed as err:
            raise SizingProblem(f"models[{index}]{err.key}", err.message) from None

    def _plan_vllm(self, model: ModelConfig, pool: GpuPool) -> sizing.EnginePlan:
        """Memory first (a model that cannot load is the first thing to fix, with the
        nearest fits), then the capacity model's shape and figures, then the engine plan of
        that shape."""
        alternatives = catalog.variants_of(model.spec)
        skus = list(catalog.GPU_SKUS.values())
        shape = model.serving_shape()

        profile = pool.gpu_instance_profile
        slices = tuple(
            (other, capacity.sliced(pool.vm_sku, other))
            for other in capacity.mig_profiles(pool.vm_sku)
            if profile and other != profile
        )

        def engine_plan(shape: sizing.ServingShape) -> sizing.EnginePlan:
            return sizing.plan_vllm(
                model.name,
                model.spec,
                pool.sku,
                pool.name,
                shape,
                model.revision,
                alternatives=alternatives,
                skus=skus,
                slices=slices,
            )

        tokens = model.workload.input_tokens + model.workload.output_tokens
        if tokens > shape.max_model_len:
            raise right_sizing.TargetsMissed(
                ".workload",
                f"{tokens} tokens a request (inputTokens + outputTokens) exceed maxModelLen "
                f"{shape.max_model_len}: raise maxModelLen or shorten the workload",
            )
        engine_plan(replace(shape, max_num_seqs=model.max_num_seqs or 1))
        decision = right_sizing.decide(
            self._capacity_request(model, pool, shape.max_model_len, alternatives, skus)
        )
        chosen = replace(
            shape,
            # An explicit value reaches vLLM as written; the capacity figures are what the
            # replica carries within the targets with it.
            max_num_seqs=model.max_num_seqs or decision.choice.max_num_seqs,
            max_num_batched_tokens=decision.choice.max_num_batched_tokens,
        )
        return replace(engine_plan(chosen), capacity=decision)

    def _capacity_request(
        self,
        model: ModelConfig,
        pool: GpuPool,
        max_model_len: int,
        alternatives: list[catalog.ModelSpec],
        skus: list[catalog.GpuSku],
    ) -> right_sizing.Request:
        targets = model.targets
        return right_sizing.Request(
            model=model.spec,
            placement=replace(pool.placement, tensor_parallel_size=model.tensor_parallel_size),
            max_model_len=max_model_len,
            workload=capacity.Workload(model.workload.input_tokens, model.workload.output_tokens),
            targets=capacity.Targets(
                targets.ttft_p95_seconds or self.monitoring.alerts.ttft_p95_seconds,
                targets.itl_p95_seconds,
            ),
            max_num_seqs=model.max_num_seqs,
            gpu_memory_utilization=model.gpu_memory_utilization,
            peak_requests_per_second=targets.peak_requests_per_second,
            replicas_max=model.replicas.max,
            queue_per_replica=model.queue_per_replica,
            alternatives=tuple(alternatives),
            skus=tuple(skus),
            lora=model.lora_slots,
        )

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        if value not in ENVIRONMENTS:
            raise _FieldError(None, value, "one of " + ", ".join(ENVIRONMENTS))
        return value

    @model_validator(mode="after")
    def _references(self) -> StackConfig:
        _check_kubernetes_version(self.cluster.kubernetes_version, self.is_aks)
        _check_unique([p.name for p in self.gpu_pools], "gpuPools", "name")
        # Agent pools share one namespace per cluster, and nodes one pool label.
        _check_unique([p.name for p in self.cpu_pools], "cpuPools", "name")
        gpu_names = {p.name for p in self.gpu_pools}
        for index, pool in enumerate(self.cpu_pools):
            if pool.name in gpu_names:
                raise _FieldError(
                    f"cpuPools[{index}].name", pool.name, "a name no gpuPools entry has"
                )
        _check_unique([m.name for m in self.models], "models", "name")
        for index, model in enumerate(self.models):
            self._check_model_pool(index, model)
        if not self.is_aks:
            self._check_existing_pools()
        self._check_mig_pools()
        self._check_environment_rules()
        return self

    def _check_model_pool(self, index: int, model: ModelConfig) -> None:
        """A model runs on a pool of its kind: GPU engines on gpuPools, ONNX Runtime on
        cpuPools, which it must name: the fit check sizes a replica to the pool's VM (and on
        AKS the system pool is for the cluster's own pods)."""
        on_cpu = model.engine == "onnxruntime"
        kind, pools = ("cpuPools", self.cpu_pools) if on_cpu else ("gpuPools", self.gpu_pools)
        names = [p.name for p in pools]
        if on_cpu and model.pool is None:
            allowed = ", ".join(names) if names else "none (cpuPools is empty: declare one)"
            raise _FieldError(
                f"models[{index}].pool",
                None,
                "a cpuPools name (a replica is sized to one node's CPUs and memory; on an "
                f"existing cluster the entry describes labelled nodes): {allowed}",
            )
        if model.pool is not None and model.pool not in names:
            allowed = ", ".join(names) if names else f"none ({kind} is empty)"
            raise _FieldError(f"models[{index}].pool", model.pool, f"a {kind} name: {allowed}")

    def _check_mig_pools(self) -> None:
        """AKS partitions GPUs into slices only where it installs its own driver (AgentBaker's
        node provisioning, tests/upstream/aks-agentbaker-06836ee-mig); the GPU Operator's MIG
        manager would set them back to whole GPUs. A replica cannot span slices: MIG isolates
        them (no peer-to-peer or NVLink between instances), so tensor parallelism is out."""
        for index, pool in enumerate(self.gpu_pools):
            if not pool.gpu_instance_profile:
                continue
            if self.is_aks and self.cluster.gpu_driver == "gpu-operator":
                raise _FieldError(
                    f"gpuPools[{index}].gpuInstanceProfile",
                    pool.gpu_instance_profile,
                    'nothing with cluster.gpuDriver "gpu-operator": AKS partitions GPUs only '
                    'where it installs its driver (gpuDriver "aks")',
                )
            for m_index, model in enumerate(self.models):
                if model.pool == pool.name and model.tensor_parallel_size > 1:
                    raise _FieldError(
                        f"models[{m_index}].tensorParallelSize",
                        model.tensor_parallel_size,
                        f"1 on pool {pool.name}: a replica runs in one MIG slice "
                        f"({pool.gpu_instance_profile})",
                    )

    def _check_existing_pools(self) -> None:
        """On an existing cluster a pool describes nodes that exist: the keys that shape an
        AKS agent pool mean nothing there, so they are refused rather than ignored."""
        pools = [("gpuPools", i, p) for i, p in enumerate(self.gpu_pools)]
        pools += [("cpuPools", i, p) for i, p in enumerate(self.cpu_pools)]
        for kind, index, pool in pools:
            for field, key in AKS_ONLY_POOL_KEYS.items():
                if field in pool.model_fields_set:
                    raise _FieldError(
                        f"{kind}[{index}].{key}",
                        getattr(pool, field),
                        "nothing with cluster.mode existing: the nodes exist already (maxCount "
                        "says how many); minCount, zones and osDiskSizeGb shape AKS agent pools",
                    )

    def _check_environment_rules(self) -> None:
        """What each tier demands. dev may relax cost, never security."""
        if self.environment == "local" and self.is_aks:
            raise _FieldError("cluster.mode", "aks", "existing for the local environment")
        # An existing cluster is allowed in local and dev; staging and prod promise Key Vault,
        # private endpoints and the AKS settings the policy pack checks.
        if self.environment in ("staging", "prod") and not self.is_aks:
            raise _FieldError(
                "cluster.mode", "existing", f"aks for the {self.environment} environment"
            )
        cluster = self.cluster
        if (
            self.environment == "prod"
            and isinstance(cluster, AksCluster)
            and not (cluster.private or cluster.authorized_ip_ranges)
        ):
            raise _FieldError(
                "cluster.authorizedIpRanges",
                [],
                "at least one CIDR, or cluster.private: true, for prod (no public API server)",
            )
        if self.environment in ("staging", "prod") and isinstance(cluster, AksCluster):
            for index, cidr in enumerate(cluster.authorized_ip_ranges):
                allowed = value_rules.authorized_range(cidr)
                if allowed:
                    raise _FieldError(f"cluster.authorizedIpRanges[{index}]", cidr, allowed)
        if self.monitoring.mode == "azure-managed" and not self.is_aks:
            raise _FieldError("monitoring.mode", "azure-managed", "in-cluster or none off AKS")
        low, high = LOG_ANALYTICS_RETENTION_DAYS
        retention = self.monitoring.logs.retention_days
        if self.is_aks and not low <= retention <= high:
            raise _FieldError(
                "monitoring.logs.retentionDays",
                retention,
                f"{low} to {high} on AKS: the container logs' Log Analytics workspace keeps "
                "them that long, and Azure refuses other values",
            )
        self._check_serving_rules()
        self._check_autoscaling()

    def _check_autoscaling(self) -> None:
        """Autoscaled models need a Prometheus to read; only dev and local may scale to zero
        (the first request after idle waits for a GPU node and the weights to load)."""
        for index, model in enumerate(self.models):
            if model.replicas.max > model.replicas.min and not self.is_aks:
                raise _FieldError(
                    f"models[{index}].replicas.max",
                    model.replicas.max,
                    f"{model.replicas.min} (the minimum) with cluster.mode existing: "
                    "autoscaling relies on the AKS KEDA add-on, and nothing installs KEDA "
                    "on your cluster",
                )
            if model.replicas.max > model.replicas.min and self.monitoring.mode == "none":
                raise _FieldError(
                    f"models[{index}].replicas.max",
                    model.replicas.max,
                    f"{model.replicas.min} (the minimum) while monitoring.mode is none: "
                    "autoscaling reads the servers' queue from Prometheus",
                )
            if model.replicas.min == 0 and self.environment in ("staging", "prod"):
                raise _FieldError(
                    f"models[{index}].replicas.min",
                    0,
                    f"at least 1 in {self.environment}: scale to zero is for dev and local",
                )
            if model.replicas.min == 0 and model.engine != "ollama" and not model.replicas.awake:
                raise _FieldError(
                    f"models[{index}].replicas.awake",
                    None,
                    "the hours to keep one replica up (timezone, days, start, end) when "
                    "replicas.min is 0: a queue metric cannot wake a model with no pods",
                )

    def check_pool_capacity(self) -> None:
        """A pool's nodes must hold the replicas its models may scale to (GPUs per replica =
        tensor-parallel size; a replica never spans nodes)."""
        for pool in self.gpu_pools:
            models = [m for m in self.models if m.pool == pool.name]
            gpus_needed = sum(m.replicas.max * m.tensor_parallel_size for m in models)
            unit = f"{pool.gpu_instance_profile} slices" if pool.gpu_instance_profile else "GPUs"
            nodes_needed = -(-gpus_needed // pool.sku.gpus)
            if nodes_needed > pool.max_count:
                index = self.gpu_pools.index(pool)
                raise _FieldError(
                    f"gpuPools[{index}].maxCount",
                    pool.max_count,
                    f"at least {nodes_needed}: its models may scale to "
                    + ", ".join(f"{m.replicas.max} x {m.name}" for m in models)
                    + f" ({gpus_needed} {unit}, {pool.sku.gpus} per {pool.vm_size} node)",
                )

    def check_cpu_pool_capacity(self) -> None:
        """A CPU replica takes every whole CPU its node leaves to pods (sizing.cpu_fit): a
        CPU pool needs a node for each replica its models may scale to, and one more for a
        rollout, whose new replica starts before an old one stops (onnx_runtime.py,
        maxSurge 1): without it the new pod stays pending and `pulumi up` times out."""
        for index, pool in enumerate(self.cpu_pools):
            models = [m for m in self.models if m.pool == pool.name]
            if not models:
                continue
            nodes_needed = sum(m.replicas.max for m in models) + 1
            if nodes_needed > pool.max_count:
                raise _FieldError(
                    f"cpuPools[{index}].maxCount",
                    pool.max_count,
                    f"at least {nodes_needed}: its models may scale to "
                    + ", ".join(f"{m.replicas.max} x {m.name}" for m in models)
                    + f", one replica per {pool.vm_size} node, and a rollout starts one more",
                )

    def check_gated_models_have_a_token(self) -> None:
        """Called after the memory fit: a gated model that cannot run is fixed first."""
        warmer = self.serving.cache_warmer
        # Hub models (vLLM, ONNX Runtime) filled from the Azure Blob mirror never ask the Hub.
        from_mirror = warmer.enabled and warmer.source == "azure-blob"
        for index, model in enumerate(self.models):
            if from_mirror and model.engine in HUB_ENGINES:
                continue
            if model.spec.gated and not self.secrets.hugging_face_token:
                raise _FieldError(
                    "secrets.huggingFaceToken",
                    None,
                    f"a token for models[{index}] ({model.source}), a gated model: "
                    "pulumi config set --secret --path secrets.huggingFaceToken hf_...",
                )

    def _check_images_pinned_by_digest(self) -> None:
        """prod runs exactly the bytes that were reviewed: a tag can be pushed again."""
        serving = self.serving
        images = {
            "serving.vllmImage": serving.vllm_image,
            "serving.ollamaImage": serving.ollama_image,
            "serving.ollama.openWebUi.image": serving.ollama.open_webui.image,
        }
        if serving.cache_warmer.enabled:
            images["serving.cacheWarmer.image"] = serving.cache_warmer.image
        if serving.onnx_image:
            images["serving.onnxImage"] = serving.onnx_image
        if self.ingress.enabled:
            images["ingress.edgeAuthImage"] = self.ingress.edge_auth_image
        for key, image in images.items():
            if "@sha256:" not in image:
                raise _FieldError(key, image, "an image pinned by @sha256 digest in prod")

    def _check_serving_rules(self) -> None:
        production = self.environment in ("staging", "prod")
        for index, model in enumerate(self.models):
            if production and model.engine in HUB_ENGINES and model.revision is None:
                raise _FieldError(
                    f"models[{index}].revision",
                    None,
                    f"a pinned commit in {self.environment}: the weights must not change unseen",
                )
        if self.environment == "prod":
            self._check_images_pinned_by_digest()
        self._check_served_names_unique()
        self._check_adapters()
        ingress = self.ingress
        if ingress.enabled and not ingress.host:
            raise _FieldError("ingress.host", None, "a DNS name when the ingress is enabled")
        if (
            ingress.enabled
            and production
            and not (ingress.tls_secret_name or ingress.tls_key_vault_certificate_uri)
        ):
            raise _FieldError(
                "ingress.tlsSecretName",
                None,
                f"a TLS secret or tlsKeyVaultCertificateUri in {self.environment}: no plain HTTP",
            )
        if ingress.tls_key_vault_certificate_uri and not self.is_aks:
            raise _FieldError("ingress.tlsKeyVaultCertificateUri", "...", "tlsSecretName off AKS")
        self._check_onnx_serving()
        self._check_ollama_preloaded()
        self._check_open_webui()
        if self.serving.cache_warmer.enabled:
            self._check_cache_warmer()

    def _check_served_names_unique(self) -> None:
        """Clients pick a model, an Ollama variant or a LoRA adapter by name alone."""
        named = [(f"models[{i}].name", m.name) for i, m in enumerate(self.models)]
        for i, model in enumerate(self.models):
            named += [
                (f"models[{i}].variants[{j}].name", v.name) for j, v in enumerate(model.variants)
            ]
            named += [
                (f"models[{i}].adapters[{j}].name", a.name) for j, a in enumerate(model.adapters)
            ]
        seen: dict[str, str] = {}
        for path, name in named:
            if name in seen:
                raise _FieldError(
                    path,
                    name,
                    f"a name no other model, variant or adapter has ({seen[name]} has it)",
                )
            seen[name] = path

    def _check_adapters(self) -> None:
        """vLLM resolves a repository id in --lora-modules by downloading its newest
        revision (lora/utils.py get_adapter_absolute_path, v0.31.0): only the warmer's
        snapshot of the pinned revision serves what the stack names."""
        for index, model in enumerate(self.models):
            if model.adapters and not self.serving.cache_warmer.enabled:
                raise _FieldError(
                    "serving.cacheWarmer.enabled",
                    self.serving.cache_warmer.enabled,
                    f"true while models[{index}] has adapters: vLLM would download each "
                    "adapter's newest revision itself, the warmer fetches the pinned one",
                )

    def _check_onnx_serving(self) -> None:
        """The ONNX Runtime server reads one variant folder of a pinned revision from the
        model cache and never downloads: the cache warmer is how its weights arrive, and
        its image is one the team builds (images/onnxruntime-genai-server)."""
        onnx = [(i, m) for i, m in enumerate(self.models) if m.engine == "onnxruntime"]
        if not onnx:
            return
        index = onnx[0][0]
        if self.serving.onnx_image is None:
            raise _FieldError(
                "serving.onnxImage",
                None,
                f"the image built from images/onnxruntime-genai-server: models[{index}] has "
                "engine onnxruntime",
            )
        if not self.serving.cache_warmer.enabled:
            raise _FieldError(
                "serving.cacheWarmer.enabled",
                False,
                f"true while models[{index}] has engine onnxruntime: its server reads the "
                "weights the warmer puts in the model cache and downloads nothing itself",
            )

    def _check_ollama_preloaded(self) -> None:
        """Preloaded models live read-only in the image: nothing to pull, nowhere to build."""
        if not self.serving.ollama.preloaded:
            return
        if self.serving.ollama_image == OLLAMA_IMAGE:
            raise _FieldError(
                "serving.ollamaImage",
                OLLAMA_IMAGE,
                "an image built from images/ollama-preloaded when serving.ollama.preloaded is "
                "true (the stock image holds no models)",
            )
        for index, model in enumerate(self.models):
            if model.engine == "ollama" and model.variants:
                # Variants are stack config, built when the pod starts into a writable store
                # that also holds the base model's blobs; the preloaded store is read-only.
                raise _FieldError(
                    f"models[{index}].variants",
                    "[...]",
                    "nothing while serving.ollama.preloaded is true: variants are built at "
                    "deploy time into a writable model store, the preloaded one is read-only",
                )

    def _check_open_webui(self) -> None:
        """Open WebUI runs beside the Ollama models, in their namespace, as objects named
        OPEN_WEBUI_NAME: with no Ollama model it would deploy nothing, and an Ollama model
        of that name would be a second Deployment, Service and claim of the same name."""
        if not self.serving.ollama.open_webui.enabled:
            return
        ollama = [(i, m) for i, m in enumerate(self.models) if m.engine == "ollama"]
        if not ollama:
            raise _FieldError(
                "serving.ollama.openWebUi.enabled",
                True,
                "false while no model has engine ollama: Open WebUI is deployed beside "
                "Ollama models only, so this deploys nothing",
            )
        for index, model in ollama:
            if model.name == OPEN_WEBUI_NAME:
                raise _FieldError(
                    f"models[{index}].name",
                    model.name,
                    f"a name other than {OPEN_WEBUI_NAME} while serving.ollama.openWebUi is "
                    "enabled: Open WebUI's Deployment, Service and claim have that name in "
                    "the same namespace",
                )

    def _check_cache_warmer(self) -> None:
        """The warmer fills a shared volume with one exact revision that servers then read."""
        warmer = self.serving.cache_warmer
        if self.serving.model_cache != "shared":
            raise _FieldError(
                "serving.modelCache",
                self.serving.model_cache,
                "shared while serving.cacheWarmer is enabled: the warmer fills the volume "
                "the model servers read",
            )
        for index, model in enumerate(self.models):
            if model.engine in HUB_ENGINES and model.revision is None:
                raise _FieldError(
                    f"models[{index}].revision",
                    None,
                    "a pinned commit while serving.cacheWarmer is enabled: the cache holds "
                    "one exact revision",
                )
        if warmer.source == "azure-blob" and not self.is_aks:
            raise _FieldError(
                "serving.cacheWarmer.source",
                "azure-blob",
                "huggingface off AKS: the warmer reads the mirror with workload identity",
            )
        if warmer.source == "azure-blob" and warmer.blob_storage_account_id is None:
            raise _FieldError(
                "serving.cacheWarmer.blobStorageAccountId",
                None,
                "the mirror's storage account id when source is azure-blob: the warmer's "
                "identity is granted Storage Blob Data Reader on it",
            )


# -- reading pulumi.Config -----------------------------------------------------------------

TOP_LEVEL_KEYS = {
    "environment": "environment",
    "cluster": "cluster",
    "gpuPools": "gpu_pools",
    "cpuPools": "cpu_pools",
    "models": "models",
    "monitoring": "monitoring",
    "secrets": "secrets",
    "serving": "serving",
    "ingress": "ingress",
    "access": "access",
}


def load_stack_config() -> StackConfig:
    """Read and validate this stack's configuration; raise ConfigError on the first problem."""
    stack = pulumi.get_stack()
    try:
        check_stack_name(stack)
    except StackNameError as err:
        raise ConfigError(
            f"{PROJECT}: stack {_show(err.value)} is not allowed; expected {err.allowed}"
        ) from None
    raw = {"stack": stack}
    unknown = sorted(
        key.split(":", 1)[1]
        for key in _all_config_keys()
        if key.startswith(f"{PROJECT}:") and key.split(":", 1)[1] not in TOP_LEVEL_KEYS
    )
    if unknown:
        raise ConfigError(
            redaction.redact(f"{PROJECT}:{unknown[0]}: unknown key, allowed: ")
            + ", ".join(TOP_LEVEL_KEYS)
        )
    config = pulumi.Config(PROJECT)
    for key in TOP_LEVEL_KEYS:
        value = _read(config, key)
        if value is not None:
            raw[key] = value
    if "secrets" in raw and not runtime_config.is_config_secret(f"{PROJECT}:secrets"):
        # A value set without --secret sits in clear text in a stack file under git.
        raise ConfigError(
            f'{PROJECT}:secrets: "[clear text]" is not allowed; expected values set with '
            "`pulumi config set --secret --path secrets.<name> <value>` (encrypted in the "
            "stack file)"
        )
    return parse_stack_config(raw)


def parse_stack_config(raw: dict[str, Any]) -> StackConfig:
    """Validate already-decoded values (keys as in the stack file) into a StackConfig.

    Includes the memory fit of every model on its pool, so that a model that cannot run
    stops the program here, before any resource is declared."""
    try:
        config = StackConfig.model_validate(raw, by_alias=True, by_name=False)
        config.engine_plans  # noqa: B018 (computed for its checks; cached for the platform)
        # After the fit: a model that cannot run on its pool is the first thing to fix.
        config.check_pool_capacity()
        config.check_cpu_pool_capacity()
        config.check_gated_models_have_a_token()
    except ValidationError as err:
        raise ConfigError(redaction.redact(_describe(err, raw))) from None
    except _FieldError as err:
        raise ConfigError(redaction.redact(_field_error_line(err, err.path))) from None
    except SizingProblem as problem:
        raise ConfigError(
            redaction.redact(f"{_qualified(problem.path)}: {problem.message}")
        ) from None
    return config


def _all_config_keys() -> set[str]:
    # The CLI hands the program its config as a JSON map in PULUMI_CONFIG; automation and
    # mocks set it in-process. pulumi.Config can only read keys it is asked for, so unknown
    # (misspelt) top-level keys are found here.
    return set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())


def _read(config: pulumi.Config, key: str) -> Any:
    text = config.get(key)
    if text is None:
        return None
    if key == "environment":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # A scalar where an object or list belongs: let validation name the key and type.
        return text


def _describe(err: ValidationError, raw: dict[str, Any]) -> str:
    """One line for the first validation error: key path, value, what is allowed."""
    first = err.errors(include_url=False)[0]
    loc = [part for part in first["loc"] if part not in ("aks", "existing")]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, (_FieldError, AccessError)):
        parent = _path(loc)
        return _field_error_line(cause, ".".join(p for p in (parent, cause.path) if p))
    path, value = _path(loc), first.get("input")
    if first["type"] == "missing":
        return f"{_qualified(path)}: missing; this key is required"
    if first["type"] == "union_tag_invalid":
        path, value = f"{path}.mode", value.get("mode")
    if path.split(".")[0].split("[")[0] == "secrets":
        value = "[secret]"
    allowed = _allowed(first)
    if first["type"] == "literal_error" and type(value) in (int, float):
        # An unquoted 1 is a number in YAML; the allowed values are text.
        allowed += (
            f' (text: write "{_show(value)}" in quotes, YAML reads {_show(value)} as a number)'
        )
    return f"{_qualified(path)}: {_show(value, path)} is not allowed; expected {allowed}"


def _field_error_line(err: _FieldError, path: str | None) -> str:
    return f"{_qualified(path)}: {_show(err.value, path)} is not allowed; expected {err.allowed}"


def _path(loc: list[Any]) -> str:
    fields = {v: k for k, v in TOP_LEVEL_KEYS.items()}
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = fields.get(part, part) if not text else part
            text += f".{name}" if text else name
    return text


def _qualified(path: str) -> str:
    return f"{PROJECT}:{path}" if path else PROJECT


def _show(value: Any, path: str | None = None) -> str:
    """The value as the error line shows it: never a credential (by key or by shape)."""
    if isinstance(value, SecretStr):
        return "[secret]"
    if path and redaction.is_secret_key(path) and value not in (None, "[secret]"):
        return redaction.REDACTED
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(value)) + "}" if value else "{}"
    text = redaction.redact(json.dumps(value, default=str, ensure_ascii=False))
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    messages = {
        "missing": "a value: this key is required",
        "extra_forbidden": "no such key (check the spelling against components/config.py)",
        "greater_than_equal": f"a number >= {ctx.get('ge')}",
        "less_than_equal": f"a number <= {ctx.get('le')}",
        "greater_than": f"a number > {ctx.get('gt')}",
        "less_than": f"a number < {ctx.get('lt')}",
        "string_pattern_mismatch": PATTERN_MEANINGS.get(
            ctx.get("pattern"), f"text matching {ctx.get('pattern')}"
        ),
        "literal_error": f"one of {ctx.get('expected')}",
        "too_short": "at least one entry",
        "union_tag_invalid": f"one of {ctx.get('expected_tags')}",
        "union_tag_not_found": "a mode key: aks or existing",
    }
    if kind in messages:
        return messages[kind]
    if kind.endswith("_type"):
        return {
            "int_type": "a whole number",
            "bool_type": "true or false",
            "string_type": "text",
            "list_type": "a list",
            "model_type": "an object with keys",
            "dict_type": "an object with keys",
        }.get(kind, kind.removesuffix("_type"))
    return error["msg"]
