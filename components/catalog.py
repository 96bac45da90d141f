"""Model and GPU SKU facts, each with its source. Data only: no Pulumi, no pydantic.

Models are keyed by what a stack file names as `source`: a Hugging Face repository for vLLM
and ONNX Runtime GenAI, an Ollama library tag for Ollama. They are data, one file per model
family under components/models/ (written by tools/add_model.py from a model's config.json,
text_config for multimodal models), checked here as they load; each entry names the
config.json it was read from. Parameter counts are computed from the architecture
(`parameter_count`) and checked against the instantiated models in
docs/memory-calibration.md. GPU SKUs carry Azure's published GPU facts and hourly prices for
one region on one date: prices move, so re-take them (and the date) before relying on them.
CPU SKUs carry vCPUs and memory from Azure's size pages, for ONNX Runtime GenAI on CPU nodes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

GIB = 1024**3

# Model tiers from the source chapter ("Deploying Small Language Models").
TIERS = ((1.4e9, "micro"), (13.9e9, "small"), (30e9, "medium"))


@dataclass(frozen=True)
class Architecture:
    """The transformer shape that decides weights and KV-cache memory (from config.json)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    # RMSNorm weights: hidden-size norms per layer (2 for Phi-3/Qwen, 4 for Gemma 3, which
    # also normalises around the MLP), and per-head query/key norms (Qwen3, Gemma 3).
    norms_per_layer: int = 2
    qk_norm: bool = True
    # Gemma 3 interleaves sliding-window ("local") layers with full ("global") ones: one
    # global layer in every `global_every`; local layers attend to `sliding_window` tokens.
    sliding_window: int = 0
    global_every: int = 1
    # Image input (Gemma 3 4B and up): a SigLIP vision tower and projector beside the
    # language model, with `vision_parameters` parameters (kept in 16 bits).
    multimodal: bool = False
    vision_parameters: int = 0

    @property
    def global_layers(self) -> int:
        return self.layers // self.global_every if self.sliding_window else self.layers

    @property
    def local_layers(self) -> int:
        return self.layers - self.global_layers


def linear_parameter_count(arch: Architecture) -> int:
    """Parameters in the decoder layers' linear projections (what quantization shrinks)."""
    attention = arch.hidden * arch.head_dim * (2 * arch.heads + 2 * arch.kv_heads)
    mlp = 3 * arch.hidden * arch.intermediate  # gate, up and down projections
    return arch.layers * (attention + mlp)


def other_parameter_count(arch: Architecture) -> int:
    """Embeddings, the LM head when untied, norms and the vision tower (kept in 16 bits)."""
    embeddings = arch.vocab * arch.hidden * (1 if arch.tied_embeddings else 2)
    qk_norms = 2 * arch.head_dim if arch.qk_norm else 0
    norms = arch.layers * (arch.norms_per_layer * arch.hidden + qk_norms) + arch.hidden
    return embeddings + norms + arch.vision_parameters


def parameter_count(arch: Architecture) -> int:
    return linear_parameter_count(arch) + other_parameter_count(arch)


@dataclass(frozen=True)
class ModelSpec:
    source: str  # Hugging Face repository (vllm, onnxruntime) or Ollama tag (ollama)
    engine: str  # "vllm", "ollama" or "onnxruntime"
    family: str  # the base model, shared by its quantized variants
    architecture: Architecture
    max_context: int  # the longest context the checkpoint supports
    recommended_context: int  # what the model card recommends serving by default
    source_url: str
    revision: str | None = None  # a pinned commit, where recorded
    gated: bool = False  # Hugging Face requires accepting a licence (needs HF_TOKEN)
    # How the checkpoint stores its linear weights: None (bf16), "awq", "gptq", "fp8", "q4_K_M"
    # (Ollama's GGUF) or "int4" (ONNX Runtime GenAI's 4-bit MatMulNBits).
    quantization: str | None = None
    # Ollama: the GGUF download size in bytes (the library page's figure). ONNX Runtime GenAI:
    # the sum of `files`, the variant's recorded files.
    file_bytes: int | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    trust_remote_code: bool = False
    # False where vLLM refuses float16 (its _FLOAT16_NOT_SUPPORTED_MODELS: Gemma 2/3), so
    # the model cannot run on GPUs without bfloat16 (compute capability under 8.0).
    float16_ok: bool = True
    # ONNX Runtime GenAI: the variant's folder inside the Hugging Face repository (one
    # repository publishes several: CPU int4, GPU int4) and its files with their sizes in
    # bytes, as recorded (empty: not recorded, so the checkpoint cannot be sized).
    subfolder: str | None = None
    files: tuple[tuple[str, int], ...] = ()

    @property
    def parameters(self) -> int:
        return parameter_count(self.architecture)

    @property
    def tier(self) -> str:
        for limit, name in TIERS:
            if self.parameters <= limit:
                return name
        return "large"

    @property
    def bytes_per_weight(self) -> float:
        """Average bytes per parameter, from how the checkpoint stores its weights."""
        if self.file_bytes is not None:
            return self.file_bytes / self.parameters
        if self.quantization == "int4":
            # No generic figure: the builder keeps embeddings and more in 32 bits on CPU, so
            # only a checkpoint's own recorded files say what it weighs.
            raise ValueError(f"{self.source}: no file sizes recorded, so no weights to size")
        if self.quantization == "q4_K_M":
            return Q4_K_M_BYTES_PER_WEIGHT
        linear = linear_parameter_count(self.architecture)
        other = other_parameter_count(self.architecture)
        linear_bytes = linear * QUANTIZED_BYTES_PER_WEIGHT.get(self.quantization, 2.0)
        return (linear_bytes + other * 2.0) / (linear + other)

    # vLLM keeps the KV cache in the model's activation dtype (16 bits) unless told otherwise;
    # an ONNX GenAI checkpoint fixes it in its graph (its entry's "kv_dtype").
    kv_bytes_per_element: int = 2


# 4-bit AWQ/GPTQ with group size 128: 4 bits per weight + one 16-bit scale and one 4-bit
# zero point per 128 weights = 4.156 bits. FP8 (block-wise): 8 bits + one fp32 scale per
# 128x128 block, which rounds to 1 byte.
_GROUP_128_4BIT = (4 + 16 / 128 + 4 / 128) / 8
QUANTIZED_BYTES_PER_WEIGHT = {"awq": _GROUP_128_4BIT, "gptq": _GROUP_128_4BIT, "fp8": 1.0}


@dataclass(frozen=True)
class HourlyPrice:
    """One recorded price: where, when and from where it was taken."""

    usd: float
    region: str
    taken: str  # ISO date (or year-month where the source gives only that)
    source: str


@dataclass(frozen=True)
class GpuSku:
    vm_size: str
    gpu_model: str
    gpus: int
    gpu_memory_gib: float  # per GPU, as the driver reports it (GiB)
    compute_capability: float
    vcpus: int
    ram_gib: int
    # The local temp disk, where AKS places an ephemeral OS disk on these "d" sizes.
    temp_disk_gib: int
    # Linux pay-as-you-go and spot prices per VM hour; None where none is recorded yet
    # (tools/refresh_prices.py records them from the Azure Retail Prices API).
    on_demand: HourlyPrice | None = None
    spot: HourlyPrice | None = None

    @property
    def gpu_family(self) -> str:
        return self.gpu_model.split()[0]


# -- models ---------------------------------------------------------------------------------

# The catalog's models are data: components/models/<family>.json, one file per model family
# (a base model's sizes, their quantized checkpoints and their Ollama tags share one
# config.json shape and one reviewer). tools/add_model.py writes entries from a model's
# config.json. Each file:
#   {"about": "...",
#    "architectures": {"<name>": {<every Architecture field>, "provenance": {...}}},
#    "checkpoints": [{<every ModelSpec field but kv_bytes_per_element, subfolder and files;
#                     "architecture" names one of the file's architectures>,
#                     "provenance": {...}}]}
# An ONNX Runtime GenAI checkpoint (engine "onnxruntime") adds "subfolder", "files" and
# "kv_dtype" (ONNX_CHECKPOINT_FIELDS).
# A provenance names where the numbers were read: "config_json" (a URL) and "commit" (the
# revision it was read at, or null where none was recorded), and any other notes as text.
MODELS_DIR = Path(__file__).with_name("models")


class CatalogError(ValueError):
    """A catalog file that is not what the loader expects: one line naming file and key."""


_CHECKS = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "str | None": (lambda v: v is None or (isinstance(v, str) and v != ""), "a string or null"),
    "int | None": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "an integer or null",
    ),
}
ENGINES = ("vllm", "ollama", "onnxruntime")
# None is bf16; q4_K_M is Ollama's default GGUF quantization; int4 is ONNX Runtime GenAI's
# 4-bit checkpoints, whose bytes per weight come only from each one's recorded files.
QUANTIZATIONS = (None, "awq", "gptq", "fp8", "q4_K_M", "int4")
# Fields every architecture and checkpoint entry carries, with their declared types (strings:
# this module uses postponed annotations). The KV-cache element size is the engine's, not
# the checkpoint's, so it stays out of the data.
ARCHITECTURE_FIELDS = {f.name: f.type for f in fields(Architecture)}
ONNX_FIELDS = ("subfolder", "files")
CHECKPOINT_FIELDS = {
    f.name: f.type
    for f in fields(ModelSpec)
    if f.name != "kv_bytes_per_element" and f.name not in ONNX_FIELDS
} | {"architecture": "str"}
# An ONNX Runtime GenAI checkpoint also names its variant's folder, its files (a list of
# [name, bytes] pairs, or null where no sizes were recorded) and the KV cache's element type,
# which its graph fixes (the model builder's input/output dtype).
ONNX_CHECKPOINT_FIELDS = CHECKPOINT_FIELDS | {"subfolder": "str", "files": None, "kv_dtype": "str"}
KV_DTYPE_BYTES = {"float32": 4, "float16": 2}
_COMMIT_HEX = 40


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"key {key!r} appears twice")
    return dict(pairs)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError) as err:
        raise CatalogError(f"{_name(path)}: not a valid JSON catalog file: {err}") from None


def _name(path: Path) -> str:
    return f"components/models/{path.name}"


def _check_keys(path: Path, where: str, entry: Any, expected: dict[str, str | None]) -> None:
    """Exactly the expected keys, each value of its type (None: checked by the caller)."""
    label = where or "the file"
    if not isinstance(entry, dict):
        raise CatalogError(f"{_name(path)}: {label}: expected a JSON object")
    for key in entry:
        if key not in expected and key != "provenance":
            raise CatalogError(
                f"{_name(path)}: {where + '.' if where else ''}{key}: not a known key; "
                f"expected one of {', '.join(expected)}"
            )
    for key, type_ in expected.items():
        if key not in entry:
            raise CatalogError(f"{_name(path)}: {label}: {key!r} is missing")
        if type_ is not None:
            check, allowed = _CHECKS[type_]
            if not check(entry[key]):
                raise CatalogError(
                    f"{_name(path)}: {where + '.' if where else ''}{key}: {entry[key]!r} "
                    f"is not allowed; expected {allowed}"
                )


def _check_provenance(path: Path, where: str, entry: dict[str, Any]) -> None:
    provenance = entry.get("provenance")
    if not isinstance(provenance, dict) or not isinstance(provenance.get("config_json"), str):
        raise CatalogError(
            f"{_name(path)}: {where}.provenance: {provenance!r} is not allowed; expected an "
            'object with "config_json" (where the numbers were read) and "commit"'
        )
    if "commit" not in provenance:
        raise CatalogError(f"{_name(path)}: {where}.provenance: 'commit' is missing")


def _choice(path: Path, where: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise CatalogError(
            f"{_name(path)}: {where}: {value!r} is not allowed; expected one of "
            + ", ".join(json.dumps(a) for a in allowed)
        )


def family_models(path: Path, document: Any) -> list[ModelSpec]:
    """The checkpoints of one family file's parsed document, checked (CatalogError)."""
    _check_keys(path, "", document, {"about": "str", "architectures": None, "checkpoints": None})
    architectures = {}
    if not isinstance(document["architectures"], dict):
        raise CatalogError(f"{_name(path)}: architectures: expected a JSON object")
    for name, entry in document["architectures"].items():
        where = f"architectures.{name}"
        _check_keys(path, where, entry, ARCHITECTURE_FIELDS)
        _check_provenance(path, where, entry)
        architectures[name] = Architecture(**{k: entry[k] for k in ARCHITECTURE_FIELDS})
    if not isinstance(document["checkpoints"], list):
        raise CatalogError(f"{_name(path)}: checkpoints: expected a JSON list")
    models = []
    for index, entry in enumerate(document["checkpoints"]):
        where = f"checkpoints[{index}]"
        onnx = isinstance(entry, dict) and entry.get("engine") == "onnxruntime"
        _check_keys(path, where, entry, ONNX_CHECKPOINT_FIELDS if onnx else CHECKPOINT_FIELDS)
        _check_provenance(path, where, entry)
        _choice(path, f"{where}.engine", entry["engine"], ENGINES)
        _choice(path, f"{where}.quantization", entry["quantization"], QUANTIZATIONS)
        _choice(path, f"{where}.architecture", entry["architecture"], tuple(architectures))
        _check_revision(path, where, entry["revision"])
        fields_ = {k: entry[k] for k in CHECKPOINT_FIELDS}
        fields_["architecture"] = architectures[entry["architecture"]]
        if onnx:
            fields_ |= _onnx_fields(path, where, entry)
        models.append(ModelSpec(**fields_))
    return models


def _check_revision(path: Path, where: str, revision: str | None) -> None:
    """A pinned revision is a full commit: a branch or a short hash can move or collide."""
    if revision is not None and not (
        len(revision) == _COMMIT_HEX and all(c in "0123456789abcdef" for c in revision)
    ):
        raise CatalogError(
            f"{_name(path)}: {where}.revision: {revision!r} is not allowed; expected a "
            "40-character lowercase hex commit or null"
        )


def _onnx_fields(path: Path, where: str, entry: dict[str, Any]) -> dict[str, Any]:
    """An ONNX checkpoint's folder, files and KV element size, checked against file_bytes."""
    _choice(path, f"{where}.kv_dtype", entry["kv_dtype"], tuple(KV_DTYPE_BYTES))
    files = _files(path, f"{where}.files", entry["files"])
    total = sum(size for _, size in files) if files else None
    if entry["file_bytes"] != total:
        raise CatalogError(
            f"{_name(path)}: {where}.file_bytes: {entry['file_bytes']!r} is not allowed; "
            f"expected the sum of its files, {total!r}"
        )
    return {
        "subfolder": entry["subfolder"],
        "files": files,
        "kv_bytes_per_element": KV_DTYPE_BYTES[entry["kv_dtype"]],
    }


def _files(path: Path, where: str, value: Any) -> tuple[tuple[str, int], ...]:
    if value is None:
        return ()
    pairs = value if isinstance(value, list) and value else [None]
    for pair in pairs:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and _CHECKS["str"][0](pair[0])
            and _CHECKS["int"][0](pair[1])
            and pair[1] > 0
        ):
            raise CatalogError(
                f"{_name(path)}: {where}: {pair!r} is not allowed; expected a non-empty list "
                "of [file name, size in bytes] pairs, or null"
            )
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise CatalogError(f"{_name(path)}: {where}: {twice!r} appears twice")
    return tuple((name, size) for name, size in pairs)


def load_models(directory: Path = MODELS_DIR) -> dict[str, ModelSpec]:
    """Every checkpoint of every family file, keyed by source; files in name order."""
    models: dict[str, ModelSpec] = {}
    origin: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        for model in family_models(path, _read(path)):
            if model.source in models:
                raise CatalogError(
                    f"{_name(path)}: source {model.source!r} is already in {origin[model.source]}"
                )
            models[model.source] = model
            origin[model.source] = _name(path)
    return models


MODELS: dict[str, ModelSpec] = load_models()

# Ollama's library publishes phi4-mini:3.8b-q4_K_M as a 2.5 GB download (its entry's
# file_bytes); llama.cpp's Q4_K_M keeps embeddings and some tensors at higher precision, so
# the average is above 4 bits. Other q4_K_M tags are estimated with the same bytes per
# parameter until their own size is recorded.
Q4_K_M_REFERENCE = "phi4-mini:3.8b"
PHI4_MINI_Q4_K_M_BYTES = MODELS[Q4_K_M_REFERENCE].file_bytes
Q4_K_M_BYTES_PER_WEIGHT = PHI4_MINI_Q4_K_M_BYTES / MODELS[Q4_K_M_REFERENCE].parameters


def variants_of(model: ModelSpec) -> list[ModelSpec]:
    """The same base model's other checkpoints for the same engine, smallest weights first."""
    same = [
        m
        for m in MODELS.values()
        if m.family == model.family and m.engine == model.engine and m.source != model.source
    ]
    return sorted(same, key=lambda m: (m.parameters * m.bytes_per_weight, m.source))


# -- GPU SKUs ---------------------------------------------------------------------------------

# GPU memory per GPU as nvidia-smi reports it (MiB / 1024): T4 15360 MiB, A10 23028 MiB,
# A100 80GB PCIe 81920 MiB, H100 NVL 95830 MiB (public nvidia-smi logs of each card). vLLM
# applies gpu_memory_utilization to this figure, not to the marketing "16 GB" or "94 GB".
T4_GIB = 15360 / 1024
A10_GIB = 23028 / 1024
A100_80GB_GIB = 81920 / 1024
H100_NVL_GIB = 95830 / 1024


# Azure's size pages (learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/
# ncast4v3-series, nvadsa10v5-series, nca100v4-series, ncadsh100v5-series): GPUs, vCPUs,
# memory (GiB) and temp disk (GiB) per size. Compute capability: NVIDIA's CUDA GPU list
# (T4 7.5, A10 8.6, A100 8.0, H100 9.0).
_SKUS = (
    ("Standard_NC4as_T4_v3", "T4", 1, T4_GIB, 7.5, 4, 28, 176),
    ("Standard_NC8as_T4_v3", "T4", 1, T4_GIB, 7.5, 8, 56, 352),
    ("Standard_NV36ads_A10_v5", "A10", 1, A10_GIB, 8.6, 36, 440, 1440),
    ("Standard_NC24ads_A100_v4", "A100 80GB", 1, A100_80GB_GIB, 8.0, 24, 220, 64),
    ("Standard_NC48ads_A100_v4", "A100 80GB", 2, A100_80GB_GIB, 8.0, 48, 440, 128),
    ("Standard_NC40ads_H100_v5", "H100 NVL", 1, H100_NVL_GIB, 9.0, 40, 320, 3576),
    ("Standard_NC80adis_H100_v5", "H100 NVL", 2, H100_NVL_GIB, 9.0, 80, 640, 7152),
)

PRICES_FILE = Path(__file__).with_name("prices.json")


def _recorded_prices() -> dict[str, dict[str, HourlyPrice]]:
    document = json.loads(PRICES_FILE.read_text())
    return {
        vm_size: {kind: HourlyPrice(**entry) for kind, entry in kinds.items()}
        for vm_size, kinds in document["prices"].items()
    }


def _gpu_skus() -> dict[str, GpuSku]:
    prices = _recorded_prices()
    return {
        vm_size: GpuSku(
            vm_size,
            gpu,
            gpus,
            memory,
            capability,
            vcpus,
            ram,
            temp_disk,
            on_demand=prices.get(vm_size, {}).get("onDemand"),
            spot=prices.get(vm_size, {}).get("spot"),
        )
        for vm_size, gpu, gpus, memory, capability, vcpus, ram, temp_disk in _SKUS
    }


GPU_SKUS: dict[str, GpuSku] = _gpu_skus()


# -- CPU SKUs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSku:
    """A CPU-only VM size, for engines that serve from CPU (ONNX Runtime GenAI)."""

    vm_size: str
    vcpus: int
    ram_gib: int  # the size page's memory column
    # None of these series has a local temp disk, so an OS disk on them is a managed disk
    # (sizing.os_disk reads this as it does for GPU sizes).
    temp_disk_gib: int = 0
    on_demand: HourlyPrice | None = None
    spot: HourlyPrice | None = None


# vCPUs and memory from Microsoft's size pages, MicrosoftDocs/azure-compute-docs,
# articles/virtual-machines/sizes/...:
#   general-purpose/dsv5-series.md @005f8f6e0693849201f057b38475bfaecb85b3e8,
#   general-purpose/dasv5-series.md @2072bfd7009384b9fde1357342d91953104e293d,
#   memory-optimized/esv5-series.md @0175d5fa261b3b237e603855c1988eb287fbe018. Each page says
# "No local storage present in this series" (temp disk 0). Intel Dsv5 and AMD Dasv5 hold 4 GiB
# per vCPU, memory-optimised Esv5 8 GiB per vCPU, for a model whose weights and KV cache
# outgrow the cores it needs.
_CPU_SKUS = (
    ("Standard_D4s_v5", 4, 16),
    ("Standard_D8s_v5", 8, 32),
    ("Standard_D16s_v5", 16, 64),
    ("Standard_D4as_v5", 4, 16),
    ("Standard_D8as_v5", 8, 32),
    ("Standard_D16as_v5", 16, 64),
    ("Standard_E4s_v5", 4, 32),
    ("Standard_E8s_v5", 8, 64),
    ("Standard_E16s_v5", 16, 128),
)


def _cpu_skus() -> dict[str, CpuSku]:
    prices = _recorded_prices()
    return {
        vm_size: CpuSku(
            vm_size,
            vcpus,
            ram,
            on_demand=prices.get(vm_size, {}).get("onDemand"),
            spot=prices.get(vm_size, {}).get("spot"),
        )
        for vm_size, vcpus, ram in _CPU_SKUS
    }


CPU_SKUS: dict[str, CpuSku] = _cpu_skus()
