"""Model and GPU SKU facts, each with its source. Data only: no Pulumi, no pydantic.

Models are keyed by what a stack file names as `source`: a Hugging Face repository for vLLM,
an Ollama library tag for Ollama. Architecture numbers are copied from each repository's
`config.json` (text_config for Gemma 3); parameter counts are computed from them
(`parameter_count`) and checked against the instantiated models in
docs/memory-calibration.md. GPU SKUs carry Azure's published GPU facts and hourly prices for
one region on one date: prices move, so re-take them (and the date) before relying on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
    source: str  # Hugging Face repository (vllm) or Ollama tag (ollama)
    engine: str  # "vllm" or "ollama"
    family: str  # the base model, shared by its quantized variants
    architecture: Architecture
    max_context: int  # the longest context the checkpoint supports
    recommended_context: int  # what the model card recommends serving by default
    source_url: str
    revision: str | None = None  # a pinned commit, where recorded
    gated: bool = False  # Hugging Face requires accepting a licence (needs HF_TOKEN)
    # How the checkpoint stores its linear weights: None (bf16), "awq", "gptq", "fp8".
    quantization: str | None = None
    # Ollama: the GGUF download size in bytes (the library page's figure).
    file_bytes: int | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    trust_remote_code: bool = False
    # False where vLLM refuses float16 (its _FLOAT16_NOT_SUPPORTED_MODELS: Gemma 2/3), so
    # the model cannot run on GPUs without bfloat16 (compute capability under 8.0).
    float16_ok: bool = True

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
        if self.quantization == "q4_K_M":
            return Q4_K_M_BYTES_PER_WEIGHT
        linear = linear_parameter_count(self.architecture)
        other = other_parameter_count(self.architecture)
        linear_bytes = linear * QUANTIZED_BYTES_PER_WEIGHT.get(self.quantization, 2.0)
        return (linear_bytes + other * 2.0) / (linear + other)

    # vLLM keeps the KV cache in the model's activation dtype (16 bits) unless told otherwise.
    kv_bytes_per_element: int = 2


# 4-bit AWQ/GPTQ with group size 128: 4 bits per weight + one 16-bit scale and one 4-bit
# zero point per 128 weights = 4.156 bits. FP8 (block-wise): 8 bits + one fp32 scale per
# 128x128 block, which rounds to 1 byte.
_GROUP_128_4BIT = (4 + 16 / 128 + 4 / 128) / 8
QUANTIZED_BYTES_PER_WEIGHT = {"awq": _GROUP_128_4BIT, "gptq": _GROUP_128_4BIT, "fp8": 1.0}
# Ollama's library publishes phi4-mini:3.8b-q4_K_M as a 2.5 GB download
# (ollama.com/library/phi4-mini, blob 3c168af1dea0); llama.cpp's Q4_K_M keeps embeddings and
# some tensors at higher precision, so the average is above 4 bits. Other q4_K_M tags are
# estimated with the same bytes per parameter until their own size is recorded.
PHI4_MINI_Q4_K_M_BYTES = 2.5e9
Q4_K_M_BYTES_PER_WEIGHT = 0.0  # set below, once the architecture is known


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

HF = "https://huggingface.co/{}/blob/main/config.json"

PHI4_MINI = Architecture(
    layers=32,
    hidden=3072,
    intermediate=8192,
    heads=24,
    kv_heads=8,
    head_dim=128,
    vocab=200064,
    tied_embeddings=True,
    qk_norm=False,
)
QWEN3_0_6B = Architecture(
    layers=28,
    hidden=1024,
    intermediate=3072,
    heads=16,
    kv_heads=8,
    head_dim=128,
    vocab=151936,
    tied_embeddings=True,
)
QWEN3_1_7B = Architecture(
    layers=28,
    hidden=2048,
    intermediate=6144,
    heads=16,
    kv_heads=8,
    head_dim=128,
    vocab=151936,
    tied_embeddings=True,
)
QWEN3_4B = Architecture(
    layers=36,
    hidden=2560,
    intermediate=9728,
    heads=32,
    kv_heads=8,
    head_dim=128,
    vocab=151936,
    tied_embeddings=True,
)
QWEN3_8B = Architecture(
    layers=36,
    hidden=4096,
    intermediate=12288,
    heads=32,
    kv_heads=8,
    head_dim=128,
    vocab=151936,
    tied_embeddings=False,
)
QWEN3_14B = Architecture(
    layers=40,
    hidden=5120,
    intermediate=17408,
    heads=40,
    kv_heads=8,
    head_dim=128,
    vocab=151936,
    tied_embeddings=False,
)
# Gemma 3: five sliding-window layers for each global one.
GEMMA3_1B = Architecture(
    layers=26,
    hidden=1152,
    intermediate=6912,
    heads=4,
    kv_heads=1,
    head_dim=256,
    vocab=262144,
    tied_embeddings=True,
    norms_per_layer=4,
    sliding_window=512,
    global_every=6,
)
GEMMA3_4B = Architecture(
    layers=34,
    hidden=2560,
    intermediate=10240,
    heads=8,
    kv_heads=4,
    head_dim=256,
    vocab=262208,
    tied_embeddings=True,
    norms_per_layer=4,
    sliding_window=1024,
    global_every=6,
    multimodal=True,
    vision_parameters=419_816_304,  # measured: docs/memory-calibration.json
)
GEMMA3_12B = Architecture(
    layers=48,
    hidden=3840,
    intermediate=15360,
    heads=16,
    kv_heads=8,
    head_dim=256,
    vocab=262208,
    tied_embeddings=True,
    norms_per_layer=4,
    sliding_window=1024,
    global_every=6,
    multimodal=True,
    vision_parameters=421_290_864,  # measured: docs/memory-calibration.json
)

QWEN3_TOOLS = {"tool_call_parser": "hermes", "reasoning_parser": "qwen3"}
_QWEN3 = {
    "Qwen/Qwen3-0.6B": ("qwen3-0.6b", QWEN3_0_6B),
    "Qwen/Qwen3-1.7B": ("qwen3-1.7b", QWEN3_1_7B),
    "Qwen/Qwen3-4B": ("qwen3-4b", QWEN3_4B),
    "Qwen/Qwen3-8B": ("qwen3-8b", QWEN3_8B),
    "Qwen/Qwen3-14B": ("qwen3-14b", QWEN3_14B),
}


def _vllm_models() -> list[ModelSpec]:
    models = [
        ModelSpec(
            source="microsoft/Phi-4-mini-instruct",
            engine="vllm",
            family="phi-4-mini",
            architecture=PHI4_MINI,
            max_context=131072,
            recommended_context=32768,
            source_url=HF.format("microsoft/Phi-4-mini-instruct"),
            tool_call_parser="phi4_mini_json",
        ),
    ]
    for source, (family, arch) in _QWEN3.items():
        # Qwen3: 32,768 tokens natively (40,960 positions), 131,072 with YaRN.
        common = dict(
            engine="vllm",
            family=family,
            architecture=arch,
            max_context=40960,
            recommended_context=32768,
            **QWEN3_TOOLS,
        )
        models.append(ModelSpec(source=source, source_url=HF.format(source), **common))
        for method, suffix in (("awq", "AWQ"), ("fp8", "FP8")):
            if family in ("qwen3-0.6b", "qwen3-1.7b") and method == "awq":
                continue  # Qwen publishes no AWQ checkpoints this small
            variant = f"{source}-{suffix}"
            models.append(
                ModelSpec(
                    source=variant, source_url=HF.format(variant), quantization=method, **common
                )
            )
    for source, family, arch, context in (
        ("google/gemma-3-1b-it", "gemma-3-1b", GEMMA3_1B, 32768),
        ("google/gemma-3-4b-it", "gemma-3-4b", GEMMA3_4B, 131072),
        ("google/gemma-3-12b-it", "gemma-3-12b", GEMMA3_12B, 131072),
    ):
        models.append(
            ModelSpec(
                source=source,
                engine="vllm",
                family=family,
                architecture=arch,
                max_context=context,
                recommended_context=min(context, 32768),
                source_url=HF.format(source),
                gated=True,
                float16_ok=False,
            )
        )
    return models


Q4_K_M_BYTES_PER_WEIGHT = PHI4_MINI_Q4_K_M_BYTES / parameter_count(PHI4_MINI)

# Ollama library tags (default quantization q4_K_M); the GGUF holds the same architecture.
_OLLAMA = (
    ("phi4-mini:3.8b", "phi-4-mini", PHI4_MINI, 131072, PHI4_MINI_Q4_K_M_BYTES),
    ("qwen3:0.6b", "qwen3-0.6b", QWEN3_0_6B, 40960, None),
    ("qwen3:1.7b", "qwen3-1.7b", QWEN3_1_7B, 40960, None),
    ("qwen3:4b", "qwen3-4b", QWEN3_4B, 40960, None),
    ("qwen3:8b", "qwen3-8b", QWEN3_8B, 40960, None),
    ("qwen3:14b", "qwen3-14b", QWEN3_14B, 40960, None),
    ("gemma3:1b", "gemma-3-1b", GEMMA3_1B, 32768, None),
    ("gemma3:4b", "gemma-3-4b", GEMMA3_4B, 131072, None),
    ("gemma3:12b", "gemma-3-12b", GEMMA3_12B, 131072, None),
)


def _ollama_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            source=tag,
            engine="ollama",
            family=family,
            architecture=arch,
            max_context=context,
            recommended_context=4096,
            quantization="q4_K_M",
            file_bytes=size,
            source_url=f"https://ollama.com/library/{tag.replace(':', '/tags/')}",
        )
        for tag, family, arch, context, size in _OLLAMA
    ]


MODELS: dict[str, ModelSpec] = {m.source: m for m in _vllm_models() + _ollama_models()}


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
