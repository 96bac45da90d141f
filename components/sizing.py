"""Pure sizing: will a model fit its GPUs, how far can it stretch, what does it cost.

No Pulumi imports: the plan, the program and the tests call these functions directly.

The memory model, per GPU, for vLLM serving `max_num_seqs` sequences that each hold
`tokens_held` tokens (the workload's input + output; max_model_len when no workload is
given), with tensor-parallel size `tp`:

    required  = weights / tp
              + max(kv_cache(tokens_held) * max_num_seqs,          (per GPU, below)
                    kv_cache(max_model_len))                       (vLLM's start-up check)
              + activations(max_num_batched_tokens, max_num_seqs)  (one engine step)
              + CALIBRATION.non_torch_gib + CUDA_GRAPH_ALLOWANCE_GIB
              + lora (the adapter slots vLLM preallocates with --enable-lora; lora_bytes)
    usable    = GPU memory * gpu_memory_utilization

    weights   = parameters * bytes per weight (2 for bf16/fp16, 1 for fp8, ~0.5 for 4-bit
                with its scales), vision tower included
    kv_cache  = 2 (K and V) * head_dim * kv_heads_per_gpu * bytes per element
                * (global_layers * max_model_len + local_layers * min(window, max_model_len))
                kv_heads_per_gpu = ceil(kv_heads / tp): vLLM replicates KV heads when tp
                exceeds them. Sliding-window layers (Gemma 3) keep only `window` tokens:
                vLLM's hybrid KV-cache manager allocates them that way.
    activations = the peak of one forward pass over `max_num_batched_tokens` tokens:
                tokens * 2 bytes * (hidden_factor * hidden + intermediate_factor *
                intermediate / tp), the factors fitted to measurements (CALIBRATION), plus
                the sampler's fp32 logits for every running sequence
                (max_num_seqs * vocab * 4 bytes), which vLLM's profiling run reserves.

KAITO's published estimator uses the same weights and KV terms with fixed runtime constants;
ours measures them instead (tools/calibrate_memory.py, docs/memory-calibration.md).

`fits` means required <= usable: after its own profiling vLLM then has the KV budget for
max_num_seqs sequences of the workload's length, so none is preempted at full load at that
shape, and for one sequence of max_model_len. vLLM allocates the cache in 16-token pages as
tokens arrive (PagedAttention), so budgeting every sequence at max_model_len would leave
most of a large GPU idle; longer requests than the workload's are served, and when the
cache runs out vLLM preempts and recomputes a sequence rather than failing it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from components.catalog import CPU_SKUS, CpuSku, GpuSku, HourlyPrice, ModelSpec

GIB = 1024**3
# Azure bills and quotes monthly prices on 730 hours a month (8,760 hours / 12).
HOURS_PER_MONTH = 730

# The fraction of each GPU's memory vLLM may use for everything. We always pass it, so the
# budget checked here is the one the engine runs with: 0.90 was vLLM's long-standing default
# (recent releases default to 0.92; the extra margin is ours).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.90
# On GPUs under 20 GB (KAITO lowers the fraction there too) fixed overheads weigh more:
# 0.85 leaves 2.25 GiB of a T4's 15 GiB to the driver, other processes and fragmentation.
SMALL_GPU_MEMORY_UTILIZATION = 0.85
SMALL_GPU_GIB = 20 * 1e9 / GIB
# Prompt tokens per engine step (chunked prefill). We pass it to vLLM explicitly, so the
# activation peak budgeted here is the one the engine runs with; 2,048 keeps that peak small
# (a few hundred MiB, docs/memory-calibration.md) at a modest cost in prefill throughput.
DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048
# vLLM's own default for --max-num-seqs: the most sequences we ever suggest.
MAX_NUM_SEQS_LIMIT = 256
# vLLM allocates the KV cache in blocks of 16 tokens (its default --block-size on CUDA).
KV_BLOCK_TOKENS = 16
# Contexts are suggested in steps of 256 tokens (sixteen of vLLM's 16-token KV blocks).
CONTEXT_STEP = 256

# Memory outside the tensors: the CUDA context, cuBLAS workspaces and CUDA-graph pools.
# Measured part: CUDA context + workspaces (docs/memory-calibration.md, "non-torch").
# Allowance part: vLLM captures CUDA graphs for decode batch sizes; KAITO budgets 0.6 GiB
# "outside PyTorch" for this; we keep that published figure on top of the measurement.
CUDA_GRAPH_ALLOWANCE_GIB = 0.6

# Compute capability needed per activation dtype (NVIDIA: bf16 tensor cores from Ampere 8.0).
MIN_COMPUTE_CAPABILITY = {"float16": 7.0, "bfloat16": 8.0}
# The least compute capability vLLM v0.31.0 serves each checkpoint format on: its
# quantization configs' get_min_capability() (AutoAWQConfig 75, AutoGPTQConfig 60, Fp8Config
# 75), which VllmConfig checks at start-up. tests/test_vllm_contract.py reads them from vLLM.
QUANTIZATION_MIN_COMPUTE_CAPABILITY = {"awq": 7.5, "gptq": 6.0, "fp8": 7.5}
# FP8 checkpoints below this run weight-only. The catalog's FP8 checkpoints are block-wise
# (128x128 scales); vLLM v0.31.0 picks their kernel from a list (model_executor/kernels/
# linear: DeepGEMM and the CUTLASS block kernel, both Hopper 9.0 and newer, then Marlin from
# 7.5): below 9.0 that is Marlin, which keeps the weights in 8 bits and multiplies in the
# 16-bit activation dtype ("Weight-only FP8 compression ... may degrade performance for
# compute-heavy workloads", its start-up warning). Memory is the same either way.
FP8_BLOCK_NATIVE_COMPUTE_CAPABILITY = 9.0

# Startup budget: weights must download (once per cache) and load, then vLLM profiles and
# captures CUDA graphs. production-stack's proven default is 10 minutes (10 s x 60 tries);
# we never go below it and add one minute per 2 GiB of weights for larger checkpoints.
STARTUP_FLOOR_SECONDS = 600
STARTUP_SECONDS_PER_GIB = 30
STARTUP_PROBE_PERIOD_SECONDS = 10


@dataclass(frozen=True)
class Calibration:
    """Per-token activation bytes and non-torch overhead, fitted to measurements."""

    # activations(tokens) = tokens * (hidden_factor * hidden + intermediate_factor *
    # intermediate) * 2 bytes, the shape of a decoder layer's widest intermediate tensors.
    hidden_factor: float
    intermediate_factor: float
    non_torch_gib: float


# Least-squares fit over the 27 measurements in docs/memory-calibration.json (9 models x
# 512/2,048/8,192 tokens; transformers' eager modules, an upper bound for vLLM's fused
# kernels); non_torch_gib is the largest non-torch figure measured (730,660,864 bytes).
CALIBRATION = Calibration(hidden_factor=3.18, intermediate_factor=3.47, non_torch_gib=0.69)


# vLLM's accepted --max-lora-rank values (MaxLoRARanks, vllm/config/lora.py at v0.31.0).
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class LoraSlots:
    """What `--max-loras` and `--max-lora-rank` ask vLLM to preallocate."""

    max_loras: int
    max_lora_rank: int


def max_lora_rank(ranks: list[int]) -> int:
    """The smallest rank vLLM accepts that holds every adapter's r (vLLM refuses an adapter
    whose r exceeds --max-lora-rank, and a rank outside its list)."""
    return min(choice for choice in MAX_LORA_RANKS if choice >= max(ranks))


@dataclass(frozen=True)
class LoraLayout:
    """How vLLM 0.31.0 wraps one model class with LoRA: the packed_modules_mapping list
    lengths of qkv_proj and gate_up_proj (one LoRA slice per packed part), and whether the
    class lists embed_tokens and lm_head in embedding_modules (then the input embedding and
    the logits processor get adapter slots too)."""

    qkv_slices: int
    gate_up_slices: int
    embeddings: bool


# Per catalog family, the vLLM class that serves it (vllm/model_executor/models/ at v0.31.0):
# Phi3ForCausalLM maps qkv_proj and gate_up_proj to themselves (phi3.py) and inherits
# Llama's embedding_modules; Qwen3ForCausalLM packs [q, k, v] and [gate, up] and lists both
# embeddings (qwen3.py). Gemma 3 is left out: its multimodal class differs and its
# 262,144-token vocabulary exceeds the 258,048 LogitsProcessorWithLoRA accepts.
LORA_LAYOUTS = {
    "phi-4-mini": LoraLayout(qkv_slices=1, gate_up_slices=1, embeddings=True),
    **{
        family: LoraLayout(qkv_slices=3, gate_up_slices=2, embeddings=True)
        for family in ("qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b")
    },
}
# LoRA weights take the model's dtype (--lora-dtype auto); dtype_for picks a 16-bit one.
LORA_BYTES_PER_ELEMENT = 2


def lora_bytes(model: ModelSpec, slots: LoraSlots, tp: int = 1) -> float:
    """GPU bytes vLLM preallocates for the adapter slots, per GPU: zero tensors of
    max_loras x max_lora_rank for every wrapped module (lora/layers/base_linear.py
    create_lora_weights; vocab_parallel_embedding.py; logits_processor.py). Per linear
    slice lora_a is rank x input and lora_b output x rank, the input or output divided by
    tp where the layer is sharded (column-parallel: output; row-parallel: input).
    The adapter weight slots only: the second set of CUDA graphs vLLM 0.31.0 captures with
    LoRA (cudagraph_specialize_lora, on by default) and the punica kernels' buffers are not
    counted, for want of a GPU measurement; the fit's headroom has to cover them."""
    arch = model.architecture
    layout = LORA_LAYOUTS[model.family]
    h, i, vocab = arch.hidden, arch.intermediate, arch.vocab
    q, kv = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    per_layer = (
        layout.qkv_slices * h
        + (q + 2 * kv) / tp  # qkv_proj, column-parallel
        + q / tp
        + h  # o_proj, row-parallel
        + layout.gate_up_slices * h
        + 2 * i / tp  # gate_up_proj, column-parallel
        + i / tp
        + h  # down_proj, row-parallel
    )
    # The input embedding (vocab x rank, hidden x rank) and the logits processor (rank x
    # hidden, vocab x rank), unsharded.
    embeddings = 2 * vocab + 2 * h if layout.embeddings else 0
    elements = arch.layers * per_layer + embeddings
    return slots.max_loras * slots.max_lora_rank * LORA_BYTES_PER_ELEMENT * elements


@dataclass(frozen=True)
class ServingShape:
    """What the stack asks of one model on one pool."""

    max_model_len: int
    max_num_seqs: int
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS
    # The tokens a sequence holds in the KV cache at its end: the workload's input + output.
    # vLLM allocates the cache in pages as tokens arrive, so max_num_seqs sequences of this
    # length must fit at once, and one sequence of max_model_len (vLLM refuses to start
    # otherwise). None: every sequence at max_model_len, the worst case.
    tokens_per_sequence: int | None = None
    # vLLM with LoRA adapters: the GPU slots it preallocates; None without adapters.
    lora: LoraSlots | None = None

    @property
    def tokens_held(self) -> int:
        """Tokens a sequence holds, in whole KV blocks as vLLM allocates them."""
        if self.tokens_per_sequence is None:
            return self.max_model_len
        blocks = math.ceil(self.tokens_per_sequence / KV_BLOCK_TOKENS)
        return min(blocks * KV_BLOCK_TOKENS, self.max_model_len)


@dataclass(frozen=True)
class MemoryFit:
    """The memory requirement of one model on one GPU of its pool, in GiB."""

    weights_gib: float
    kv_cache_gib: float
    activations_gib: float
    overhead_gib: float
    usable_gib: float
    gpu_memory_utilization: float
    # The LoRA adapter slots vLLM preallocates at model load (0 without adapters).
    lora_gib: float = 0.0

    @property
    def required_gib(self) -> float:
        return (
            self.weights_gib
            + self.kv_cache_gib
            + self.activations_gib
            + self.overhead_gib
            + self.lora_gib
        )

    @property
    def headroom_gib(self) -> float:
        return self.usable_gib - self.required_gib

    @property
    def fits(self) -> bool:
        return self.headroom_gib >= 0


def batched_tokens(shape: ServingShape) -> int:
    """Tokens per engine step: vLLM needs at least one per running sequence."""
    return max(shape.max_num_batched_tokens, shape.max_num_seqs)


def weight_bytes(model: ModelSpec) -> float:
    return model.parameters * model.bytes_per_weight


def kv_cache_bytes_per_sequence(model: ModelSpec, max_model_len: int, tp: int = 1) -> float:
    """KV-cache bytes one sequence of `max_model_len` tokens needs on each GPU."""
    arch = model.architecture
    kv_heads_per_gpu = math.ceil(arch.kv_heads / tp)
    per_token_per_layer = 2 * arch.head_dim * kv_heads_per_gpu * model.kv_bytes_per_element
    local_tokens = min(arch.sliding_window, max_model_len) if arch.sliding_window else 0
    return per_token_per_layer * (
        arch.global_layers * max_model_len + arch.local_layers * local_tokens
    )


def kv_cache_bytes(model: ModelSpec, shape: ServingShape) -> float:
    """The KV cache `shape` needs on each GPU: max_num_seqs sequences of the tokens they hold,
    and never less than one sequence of max_model_len."""
    tp = shape.tensor_parallel_size
    concurrent = kv_cache_bytes_per_sequence(model, shape.tokens_held, tp) * shape.max_num_seqs
    return max(concurrent, kv_cache_bytes_per_sequence(model, shape.max_model_len, tp))


def kv_cache_use(model: ModelSpec, shape: ServingShape) -> str:
    """What the KV-cache budget of `shape` holds, as an error line says it."""
    tp = shape.tensor_parallel_size
    concurrent = kv_cache_bytes_per_sequence(model, shape.tokens_held, tp) * shape.max_num_seqs
    if concurrent >= kv_cache_bytes_per_sequence(model, shape.max_model_len, tp):
        return f"{shape.max_num_seqs} x {shape.tokens_held} tokens"
    return f"one sequence of maxModelLen {shape.max_model_len} tokens"


def forward_activation_bytes(model: ModelSpec, tokens: int, tp: int = 1) -> float:
    """Peak activation memory of one forward pass over `tokens` prompt tokens."""
    arch = model.architecture
    per_token = (
        CALIBRATION.hidden_factor * arch.hidden
        + CALIBRATION.intermediate_factor * arch.intermediate / tp
    ) * 2
    return tokens * per_token


def sampler_logits_bytes(model: ModelSpec, max_num_seqs: int) -> float:
    """fp32 logits over the vocabulary for every sequence sampled in one step."""
    return max_num_seqs * model.architecture.vocab * 4


def gpu_memory_utilization(sku: GpuSku, requested: float | None = None) -> float:
    if requested is not None:
        return requested
    if sku.gpu_memory_gib < SMALL_GPU_GIB:
        return SMALL_GPU_MEMORY_UTILIZATION
    return DEFAULT_GPU_MEMORY_UTILIZATION


def memory_fit(model: ModelSpec, sku: GpuSku, shape: ServingShape) -> MemoryFit:
    """The per-GPU memory requirement of `model` served with `shape` on `sku`."""
    tp = shape.tensor_parallel_size
    utilization = gpu_memory_utilization(sku, shape.gpu_memory_utilization)
    tokens = min(batched_tokens(shape), shape.max_model_len * shape.max_num_seqs)
    return MemoryFit(
        weights_gib=weight_bytes(model) / tp / GIB,
        kv_cache_gib=kv_cache_bytes(model, shape) / GIB,
        activations_gib=(
            forward_activation_bytes(model, tokens, tp)
            + sampler_logits_bytes(model, shape.max_num_seqs)
        )
        / GIB,
        overhead_gib=CALIBRATION.non_torch_gib + CUDA_GRAPH_ALLOWANCE_GIB,
        usable_gib=sku.gpu_memory_gib * utilization,
        gpu_memory_utilization=utilization,
        lora_gib=lora_bytes(model, shape.lora, tp) / GIB if shape.lora else 0.0,
    )


def max_num_seqs_that_fit(model: ModelSpec, sku: GpuSku, shape: ServingShape) -> int:
    """How many sequences of the tokens they hold fit at once (0: not even one)."""
    return most_seqs_that_fit(shape, lambda s: memory_fit(model, sku, s).fits)


def max_model_len_that_fits(model: ModelSpec, sku: GpuSku, shape: ServingShape) -> int:
    """The longest context, in steps of 256 tokens, that fits `max_num_seqs` (0: none)."""
    return longest_context_that_fits(model, shape, lambda s: memory_fit(model, sku, s).fits)


def most_seqs_that_fit(shape: ServingShape, fits: Callable[[ServingShape], bool]) -> int:
    """The most sequences (generators) of `shape`'s context that `fits` accepts (0: none)."""
    return _largest(lambda seqs: fits(replace(shape, max_num_seqs=seqs)), MAX_NUM_SEQS_LIMIT)


def longest_context_that_fits(
    model: ModelSpec, shape: ServingShape, fits: Callable[[ServingShape], bool]
) -> int:
    """The longest context, in 256-token steps, at `shape`'s concurrency that `fits`
    accepts (0: none)."""
    steps = _largest(
        lambda step: fits(replace(shape, max_model_len=step * CONTEXT_STEP)),
        model.max_context // CONTEXT_STEP,
    )
    return steps * CONTEXT_STEP


def _largest(fits_at: Callable[[int], bool], upper: int) -> int:
    """The largest n in [0, upper] that fits (memory grows with n: binary search)."""
    low, high = 0, upper
    while low < high:
        mid = (low + high + 1) // 2
        if fits_at(mid):
            low = mid
        else:
            high = mid - 1
    return low


def dtype_for(model: ModelSpec, sku: GpuSku) -> str:
    """bfloat16 where the GPU has it (the checkpoints' own dtype), float16 on older GPUs."""
    if sku.compute_capability >= MIN_COMPUTE_CAPABILITY["bfloat16"]:
        return "bfloat16"
    return "float16"


def unsupported_reason(model: ModelSpec, sku: GpuSku, shape: ServingShape) -> str | None:
    """Why this model cannot be served this way on this SKU at all (memory aside)."""
    tp = shape.tensor_parallel_size
    if sku.gpus == 0:
        return f"{sku.vm_size} has no GPU; vLLM models need one"
    if sku.gpus % tp:
        return f"tensor-parallel size {tp} does not divide the {sku.gpus} GPUs of {sku.vm_size}"
    if model.architecture.heads % tp:
        heads = model.architecture.heads
        return f"tensor-parallel size {tp} does not divide the model's {heads} attention heads"
    if dtype_for(model, sku) == "float16" and not model.float16_ok:
        return (
            f"{model.family} needs bfloat16 (vLLM refuses float16 for it: numerical "
            f"instability) and the {sku.gpu_model} (compute capability "
            f"{sku.compute_capability}) has no bfloat16"
        )
    if model.quantization:
        needed = QUANTIZATION_MIN_COMPUTE_CAPABILITY[model.quantization]
        if sku.compute_capability < needed:
            return (
                f"{model.quantization} needs compute capability {needed}; "
                f"{sku.gpu_model} has {sku.compute_capability}"
            )
    if shape.max_model_len > model.max_context:
        return (
            f"maxModelLen {shape.max_model_len} exceeds the model's context of "
            f"{model.max_context} tokens"
        )
    return None


def compute_notes(model: ModelSpec, sku: GpuSku) -> tuple[str, ...]:
    """What serving this checkpoint on this GPU costs beyond memory: one line each."""
    if model.quantization == "fp8" and sku.compute_capability < FP8_BLOCK_NATIVE_COMPUTE_CAPABILITY:
        return (
            f"fp8 weight-only on {sku.gpu_model} (compute capability {sku.compute_capability}, "
            f"native FP8 from {FP8_BLOCK_NATIVE_COMPUTE_CAPABILITY}): vLLM's Marlin kernel keeps "
            f"the weights in 8 bits and multiplies in {dtype_for(model, sku)}, slower for "
            "prefill and large batches than FP8 compute",
        )
    return ()


def startup_budget_seconds(model: ModelSpec) -> int:
    """How long the startup probe waits: the proven floor, more for large checkpoints."""
    scaled = weight_bytes(model) / GIB * STARTUP_SECONDS_PER_GIB
    budget = max(STARTUP_FLOOR_SECONDS, scaled)
    return int(math.ceil(budget / STARTUP_PROBE_PERIOD_SECONDS) * STARTUP_PROBE_PERIOD_SECONDS)


@dataclass(frozen=True)
class PoolCost:
    """Estimated monthly cost of one GPU pool (VM hours only: no disks, network or control
    plane), or unknown where the catalog records no price for the SKU."""

    price: HourlyPrice | None
    min_nodes: int
    max_nodes: int

    @property
    def known(self) -> bool:
        return self.price is not None

    @property
    def monthly_min_usd(self) -> float | None:
        return round(self.price.usd * self.min_nodes * HOURS_PER_MONTH, 2) if self.price else None

    @property
    def monthly_max_usd(self) -> float | None:
        return round(self.price.usd * self.max_nodes * HOURS_PER_MONTH, 2) if self.price else None


def gpu_pool_monthly_cost(sku: GpuSku, min_nodes: int, max_nodes: int, spot: bool) -> PoolCost:
    return PoolCost(sku.spot if spot else sku.on_demand, min_nodes, max_nodes)


# -- node OS disks ----------------------------------------------------------------------------

# An ephemeral OS disk lives on the VM's temp disk: faster image pulls and node-local model
# caches, no managed-disk cost, but it must fit there (at most 2,040 GiB, Azure's limit).
EPHEMERAL_OS_DISK_MAX_GIB = 2040
# Default OS disk: room for the serving images (vLLM's are several GB) and a node-local copy
# of the largest catalog checkpoint (Qwen3-14B in bf16, 27.5 GiB) with margin.
DEFAULT_OS_DISK_GIB = 256
# Smallest OS disk worth making ephemeral rather than falling back to a managed disk.
MIN_EPHEMERAL_OS_DISK_GIB = 128


@dataclass(frozen=True)
class OsDisk:
    size_gib: int
    kind: str  # "Ephemeral" or "Managed"


def os_disk(sku: GpuSku, requested_gib: int | None) -> OsDisk:
    """Ephemeral where the SKU's temp disk holds it, else a managed disk."""
    fits_ephemeral = min(sku.temp_disk_gib, EPHEMERAL_OS_DISK_MAX_GIB)
    if requested_gib is not None:
        kind = "Ephemeral" if requested_gib <= fits_ephemeral else "Managed"
        return OsDisk(requested_gib, kind)
    if fits_ephemeral >= MIN_EPHEMERAL_OS_DISK_GIB:
        return OsDisk(min(DEFAULT_OS_DISK_GIB, fits_ephemeral), "Ephemeral")
    return OsDisk(DEFAULT_OS_DISK_GIB, "Managed")


# -- pod resources on GPU nodes ---------------------------------------------------------------

# A replica on a GPU node requests half of its GPUs' share of the node's vCPUs and memory and
# may use three quarters: the rest stays for the kubelet, AKS's reservations and the GPU
# DaemonSets, so a replica always schedules on an empty node of its pool.
NODE_SHARE_REQUESTED = 0.5
NODE_SHARE_LIMIT = 0.75


@dataclass(frozen=True)
class ReplicaResources:
    cpu_request: int
    cpu_limit: int
    memory_request_gib: int
    memory_limit_gib: int
    gpus: int


def replica_resources(sku: GpuSku, tensor_parallel_size: int) -> ReplicaResources:
    share = tensor_parallel_size / sku.gpus
    return ReplicaResources(
        cpu_request=max(1, math.floor(sku.vcpus * share * NODE_SHARE_REQUESTED)),
        cpu_limit=max(1, math.floor(sku.vcpus * share * NODE_SHARE_LIMIT)),
        memory_request_gib=max(1, math.floor(sku.ram_gib * share * NODE_SHARE_REQUESTED)),
        memory_limit_gib=max(1, math.floor(sku.ram_gib * share * NODE_SHARE_LIMIT)),
        gpus=tensor_parallel_size,
    )


# Ollama on CPU: weights and KV cache (cpu_memory_gib) plus llama.cpp's compute buffers and
# the server, for which one GiB is allowed; the limit doubles the request for prompt spikes.
OLLAMA_RUNTIME_GIB = 1.0


def cpu_replica_resources(model: ModelSpec, shape: ServingShape) -> ReplicaResources:
    request = math.ceil(cpu_memory_gib(model, shape) + OLLAMA_RUNTIME_GIB)
    return ReplicaResources(
        cpu_request=1, cpu_limit=4, memory_request_gib=request, memory_limit_gib=2 * request, gpus=0
    )


# -- model caches --------------------------------------------------------------------------

# Azure Files premium shares start at 100 GiB; other classes get the weights plus a quarter
# (partial downloads, tokenizer and config files).
AZURE_FILES_PREMIUM_MIN_GIB = 100
CACHE_MARGIN = 1.25


def model_cache_gib(model: ModelSpec, minimum_gib: int = 0) -> int:
    return max(minimum_gib, math.ceil(weight_bytes(model) / GIB * CACHE_MARGIN))


# -- one model on one pool: the decision the components declare ------------------------------


class SizingError(ValueError):
    """A model that cannot be served as configured: one line with numbers and a way out."""


@dataclass(frozen=True)
class EnginePlan:
    """Everything decided for one model: its memory fit, engine arguments and budgets."""

    model: ModelSpec
    sku: GpuSku | None  # None: CPU (Ollama on the local stack)
    shape: ServingShape
    fit: MemoryFit | None
    dtype: str | None
    max_num_seqs_at_context: int | None
    max_model_len_at_num_seqs: int | None
    engine_args: tuple[str, ...]
    startup_budget_seconds: int
    # What the model costs on this GPU beyond memory (sizing.compute_notes); () when nothing.
    notes: tuple[str, ...] = ()
    # vLLM: the capacity model's figures (components/right_sizing.ModelCapacity); None for
    # Ollama and ONNX Runtime GenAI, which the capacity model does not cover.
    capacity: Any = None
    # ONNX Runtime GenAI: the fit in a CPU node's memory (plan_onnx); None for other engines.
    cpu: CpuFit | None = None


def plan_vllm(
    name: str,
    model: ModelSpec,
    sku: GpuSku,
    pool: str,
    shape: ServingShape,
    revision: str | None,
    alternatives: list[ModelSpec],
    skus: list[GpuSku],
    slices: tuple[tuple[str, GpuSku], ...] = (),
) -> EnginePlan:
    """Check `model` on `sku` as `shape` asks; raise SizingError with the nearest fit.
    `slices`: on a MIG pool, the VM under each other gpuInstanceProfile (a way out)."""
    where = f"{name} ({model.source}) on pool {pool} ({sku.vm_size}, {sku.gpus}x {sku.gpu_model})"
    reason = unsupported_reason(model, sku, shape)
    if reason:
        ways_out = nearest_fits(model, sku, shape, alternatives, skus, memory=False, slices=slices)
        raise SizingError(f"{where}: {reason}; works with {ways_out}")
    fit = memory_fit(model, sku, shape)
    if not fit.fits:
        raise SizingError(
            f"{where}: needs {fit.required_gib:.1f} GiB per GPU (weights {fit.weights_gib:.1f}, "
            f"KV cache {fit.kv_cache_gib:.1f} for {kv_cache_use(model, shape)}, "
            f"runtime {fit.activations_gib + fit.overhead_gib:.1f}"
            + (f", LoRA slots {fit.lora_gib:.2f}" if fit.lora_gib else "")
            + "), "
            f"{fit.usable_gib:.1f} GiB usable at gpu_memory_utilization "
            f"{fit.gpu_memory_utilization:.2f}; fits with "
            + nearest_fits(model, sku, shape, alternatives, skus, slices=slices)
        )
    dtype = dtype_for(model, sku)
    return EnginePlan(
        model=model,
        sku=sku,
        shape=shape,
        fit=fit,
        dtype=dtype,
        max_num_seqs_at_context=max_num_seqs_that_fit(model, sku, shape),
        max_model_len_at_num_seqs=max_model_len_that_fits(model, sku, shape),
        engine_args=vllm_engine_args(name, model, shape, fit, dtype, revision),
        startup_budget_seconds=startup_budget_seconds(model),
        notes=compute_notes(model, sku),
    )


def nearest_fits(
    model: ModelSpec,
    sku: GpuSku,
    shape: ServingShape,
    alternatives: list[ModelSpec],
    skus: list[GpuSku],
    memory: bool = True,
    slices: tuple[tuple[str, GpuSku], ...] = (),
) -> str:
    """The closest changes that make the model fit, as a readable list (or 'nothing').

    With memory=False (the model can't run on this SKU at all) only other checkpoints and
    other SKUs are offered. On a MIG pool (`slices` given) a replica lives in one slice: a
    larger slice is offered instead of tensor parallelism."""
    options = []
    context = max_model_len_that_fits(model, sku, shape) if memory else 0
    # A context shorter than the workload's requests is no way out (the plan refuses it).
    if context and context >= (shape.tokens_per_sequence or 0):
        options.append(f"maxModelLen <= {context}")
    if memory and (seqs := max_num_seqs_that_fit(model, sku, shape)):
        options.append(f"maxNumSeqs <= {seqs}")
    whole_node = ServingShape(**{**shape.__dict__, "tensor_parallel_size": sku.gpus})
    if slices:
        larger = [(label, s) for label, s in slices if s.gpu_memory_gib > sku.gpu_memory_gib]
        for label, sliced in sorted(larger, key=lambda item: item[1].gpu_memory_gib):
            if _serves(model, sliced, shape):
                options.append(f"gpuInstanceProfile {label}")
                break
    elif shape.tensor_parallel_size != sku.gpus and _serves(model, sku, whole_node):
        options.append(f"tensorParallelSize {sku.gpus}")
    for variant in alternatives:
        if _serves(variant, sku, shape):
            options.append(f"source {variant.source}")
            break
    others = [other for other in skus if other.vm_size != sku.vm_size and other.gpus]
    for other in sorted(others, key=lambda s: (s.gpus * s.gpu_memory_gib, s.vm_size)):
        whole = ServingShape(**{**shape.__dict__, "tensor_parallel_size": other.gpus})
        # The same shape elsewhere, or spread over more GPUs than this SKU has.
        if _serves(model, other, shape) or (other.gpus > sku.gpus and _serves(model, other, whole)):
            options.append(f"vmSize {other.vm_size}")
            break
    return ", or ".join(options) if options else "nothing in the catalog: choose a smaller model"


def _serves(model: ModelSpec, sku: GpuSku, shape: ServingShape) -> bool:
    return unsupported_reason(model, sku, shape) is None and memory_fit(model, sku, shape).fits


def vllm_engine_args(
    name: str,
    model: ModelSpec,
    shape: ServingShape,
    fit: MemoryFit,
    dtype: str,
    revision: str | None,
) -> tuple[str, ...]:
    """`vllm serve`'s arguments: the model first, as its positional argument (v0.31.0 warns
    that `--model` will be removed from `vllm serve`)."""
    args = [
        model.source,
        f"--served-model-name={name}",
        f"--max-model-len={shape.max_model_len}",
        f"--max-num-seqs={shape.max_num_seqs}",
        f"--max-num-batched-tokens={batched_tokens(shape)}",
        f"--gpu-memory-utilization={fit.gpu_memory_utilization:.2f}",
        f"--tensor-parallel-size={shape.tensor_parallel_size}",
        f"--dtype={dtype}",
        "--enable-prefix-caching",
        "--enable-chunked-prefill",
    ]
    if revision:
        args.append(f"--revision={revision}")
    if shape.lora:
        # Every adapter resident in its own slot (no swapping between GPU and host); the
        # adapters themselves are --lora-modules, added where their paths are known
        # (components/vllm.py).
        args += [
            "--enable-lora",
            f"--max-loras={shape.lora.max_loras}",
            f"--max-lora-rank={shape.lora.max_lora_rank}",
        ]
    if model.quantization:
        args.append(f"--quantization={model.quantization}")
    if model.tool_call_parser:
        args += ["--enable-auto-tool-choice", f"--tool-call-parser={model.tool_call_parser}"]
    if model.reasoning_parser:
        args.append(f"--reasoning-parser={model.reasoning_parser}")
    if model.trust_remote_code:
        args.append("--trust-remote-code")
    return tuple(args)


def plan_ollama(name: str, model: ModelSpec, sku: GpuSku | None, shape: ServingShape) -> EnginePlan:
    """Ollama (llama.cpp): GGUF weights + f16 KV cache for OLLAMA_NUM_PARALLEL contexts.

    On a GPU pool the same memory model applies (Ollama offloads every layer when they fit);
    on CPU (sku None) there is no GPU to check, and the plan reports the memory the
    container needs instead (MemoryFit with no usable GPU memory)."""
    if shape.max_model_len > model.max_context:
        raise SizingError(
            f"{name} ({model.source}): maxModelLen {shape.max_model_len} exceeds the model's "
            f"context of {model.max_context} tokens"
        )
    fit = memory_fit(model, sku, shape) if sku else None
    if fit and not fit.fits:
        raise SizingError(
            f"{name} ({model.source}) on {sku.vm_size}: needs {fit.required_gib:.1f} GiB of GPU "
            f"memory, {fit.usable_gib:.1f} GiB usable; fits with "
            + nearest_fits(model, sku, shape, [], [])
        )
    return EnginePlan(
        model=model,
        sku=sku,
        shape=shape,
        fit=fit,
        dtype=None,
        max_num_seqs_at_context=max_num_seqs_that_fit(model, sku, shape) if sku else None,
        max_model_len_at_num_seqs=max_model_len_that_fits(model, sku, shape) if sku else None,
        engine_args=(),
        startup_budget_seconds=startup_budget_seconds(model),
    )


def cpu_memory_gib(model: ModelSpec, shape: ServingShape) -> float:
    """Memory an engine on CPU needs for weights and the KV cache of `shape` (GiB)."""
    kv = kv_cache_bytes_per_sequence(model, shape.max_model_len) * shape.max_num_seqs
    return (weight_bytes(model) + kv) / GIB


# -- ONNX Runtime GenAI on CPU nodes ---------------------------------------------------------

# What AKS keeps from every node (MicrosoftDocs/azure-aks-docs
# @fb060abe6a8fef960d4c487b543bf7b1e97808fe, articles/aks/node-resource-reservations.md).
# Memory, "AKS 1.29 and later": the kubelet's eviction threshold plus kube-reserved, the
# lesser of 20 MB per pod the node supports + 50 MB and 25% of the node's memory. Every
# Kubernetes minor the template creates on AKS is 1.33 or later (components/aks_versions.json),
# so the older, regressive rule never applies. The page says MB; we read MiB, the larger, so
# allocatable memory is never overstated.
AKS_EVICTION_THRESHOLD_MIB = 100
AKS_KUBE_RESERVED_MIB_PER_POD = 20
AKS_KUBE_RESERVED_BASE_MIB = 50
AKS_KUBE_RESERVED_MAX_SHARE = 0.25
# Kube-reserved CPU in millicores by the host's cores (the same page's table).
AKS_KUBE_RESERVED_MILLICORES = {1: 60, 2: 100, 4: 140, 8: 180, 16: 260, 32: 420, 64: 740}
# The cluster runs Azure CNI Overlay and sets no maxPods: its default is 250 pods per node
# (articles/aks/concepts-network-ip-address-planning.md, "Maximum pods per node").
AKS_OVERLAY_DEFAULT_MAX_PODS = 250
MIB = 1024**2
KV_DTYPE_NAMES = {4: "float32", 2: "float16"}


def aks_reserved_memory_gib(sku: CpuSku, max_pods: int = AKS_OVERLAY_DEFAULT_MAX_PODS) -> float:
    """Memory AKS keeps from a node of `sku`: kube-reserved plus the eviction threshold."""
    per_pods = (AKS_KUBE_RESERVED_MIB_PER_POD * max_pods + AKS_KUBE_RESERVED_BASE_MIB) * MIB
    kube_reserved = min(per_pods, AKS_KUBE_RESERVED_MAX_SHARE * sku.ram_gib * GIB)
    return (kube_reserved + AKS_EVICTION_THRESHOLD_MIB * MIB) / GIB


def allocatable_memory_gib(sku: CpuSku, max_pods: int = AKS_OVERLAY_DEFAULT_MAX_PODS) -> float:
    return sku.ram_gib - aks_reserved_memory_gib(sku, max_pods)


def allocatable_millicores(sku: CpuSku) -> int:
    """CPU a node of `sku` leaves to pods (KeyError: a core count the table does not give)."""
    return sku.vcpus * 1000 - AKS_KUBE_RESERVED_MILLICORES[sku.vcpus]


@dataclass(frozen=True)
class CpuFit:
    """One ONNX Runtime GenAI replica in a CPU node's memory, in GiB.

    required = the ONNX files (graph + external weights, which the runtime loads into memory)
             + the KV cache: max_num_seqs generators (--max-concurrent), each allocating its
               cache for up to max_model_len tokens, in the checkpoint's KV dtype
             + the server process itself (SERVER_PROCESS_MIB, measured).
    The runtime's own memory beyond these (ONNX Runtime's arenas, pre-packed int4 weights,
    activations) is NOT in `required`: no measurement of it for these checkpoints on these
    VMs is recorded, so headroom must cover it (the container's limit is the node's
    allocatable memory for that reason). Nor are the DaemonSets' requests on the node."""

    sku: CpuSku
    weights_gib: float
    kv_cache_gib: float
    allocatable_gib: float
    requested_vcpus: int

    @property
    def server_gib(self) -> float:
        return SERVER_PROCESS_MIB / 1024

    @property
    def required_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.server_gib

    @property
    def headroom_gib(self) -> float:
        return self.allocatable_gib - self.required_gib

    @property
    def fits(self) -> bool:
        return self.headroom_gib >= 0


# The ONNX Runtime server process with no model in it: Python, ONNX Runtime GenAI and the web
# stack. Measured as the peak resident set (VmHWM) of images/onnxruntime-genai-server/server.py
# serving the tests' tiny model (tests/onnx_fixtures.py, 0.2 MB of weights) through one chat
# request, in .venv-onnx (onnxruntime-genai 0.18.0, onnxruntime 1.32.0) on x86-64 Linux:
# 88,952 kB, and 88,820 kB when measured again; tests/test_onnx_server.py re-measures it.
SERVER_PROCESS_MIB = 87


def onnx_weight_bytes(model: ModelSpec) -> int:
    """The ONNX graph and its external weights: what the runtime loads (tokenizer files and
    configs are a few MB and stay out)."""
    return sum(size for name, size in model.files if name.endswith((".onnx", ".onnx.data")))


def cpu_fit(model: ModelSpec, sku: CpuSku, shape: ServingShape) -> CpuFit:
    kv = kv_cache_bytes_per_sequence(model, shape.max_model_len) * shape.max_num_seqs
    return CpuFit(
        sku=sku,
        weights_gib=onnx_weight_bytes(model) / GIB,
        kv_cache_gib=kv / GIB,
        allocatable_gib=allocatable_memory_gib(sku),
        # One replica per node, on every whole vCPU the node leaves to pods: ONNX Runtime
        # sizes its thread pool to the node's cores, so a second replica would contend.
        requested_vcpus=allocatable_millicores(sku) // 1000,
    )


def cpu_max_num_seqs_that_fit(model: ModelSpec, sku: CpuSku, shape: ServingShape) -> int:
    return most_seqs_that_fit(shape, lambda s: cpu_fit(model, sku, s).fits)


def cpu_max_model_len_that_fits(model: ModelSpec, sku: CpuSku, shape: ServingShape) -> int:
    return longest_context_that_fits(model, shape, lambda s: cpu_fit(model, sku, s).fits)


def nearest_cpu_fits(model: ModelSpec, sku: CpuSku, shape: ServingShape) -> str:
    """The closest changes that make the model fit: a shorter context, fewer concurrent
    generators, or the smallest catalog CPU size that holds the shape as asked."""
    options = []
    if context := cpu_max_model_len_that_fits(model, sku, shape):
        options.append(f"maxModelLen <= {context}")
    if seqs := cpu_max_num_seqs_that_fit(model, sku, shape):
        options.append(f"maxNumSeqs <= {seqs}")
    others = [other for other in CPU_SKUS.values() if other.vm_size != sku.vm_size]
    for other in sorted(others, key=lambda s: (s.ram_gib, s.vcpus, s.vm_size)):
        if cpu_fit(model, other, shape).fits:
            options.append(f"vmSize {other.vm_size}")
            break
    return ", or ".join(options) if options else "nothing in the catalog: choose a smaller model"


def onnx_engine_args(shape: ServingShape, fit: CpuFit) -> tuple[str, ...]:
    """The server's arguments that sizing decides (images/onnxruntime-genai-server): as many
    generators at once as the KV cache was sized for, each capped at that context, and as
    many ONNX Runtime threads as the vCPUs requested (a CPU limit does not narrow the cores
    it sizes its pool from)."""
    return (
        f"--max-concurrent={shape.max_num_seqs}",
        f"--max-model-len={shape.max_model_len}",
        f"--threads={fit.requested_vcpus}",
    )


def plan_onnx(name: str, model: ModelSpec, sku: CpuSku, shape: ServingShape) -> EnginePlan:
    """ONNX Runtime GenAI on a CPU node of `sku` (config requires every ONNX model to name a
    CPU pool, on an existing cluster too). Raise SizingError, one line with the nearest fit,
    where the node cannot hold it."""
    where = f"{name} ({model.source})"
    if shape.max_model_len > model.max_context:
        raise SizingError(
            f"{where}: maxModelLen {shape.max_model_len} exceeds the model's context of "
            f"{model.max_context} tokens"
        )
    if not model.files:
        raise SizingError(
            f"{where}: no file sizes are recorded for {model.subfolder}, so its memory cannot "
            "be sized; record them in components/models/"
        )
    fit = cpu_fit(model, sku, shape)
    if not fit.fits:
        kv_dtype = KV_DTYPE_NAMES[model.kv_bytes_per_element]
        raise SizingError(
            f"{where} on {sku.vm_size} ({sku.vcpus} vCPUs, {sku.ram_gib} GiB): needs "
            f"{fit.required_gib:.1f} GiB (weights {fit.weights_gib:.1f}, KV cache "
            f"{fit.kv_cache_gib:.1f} for {shape.max_num_seqs} x {shape.max_model_len} tokens "
            f"in {kv_dtype}, server {fit.server_gib:.2f}; ONNX Runtime's own memory not "
            f"modelled), {fit.allocatable_gib:.1f} GiB "
            "allocatable after AKS's reservations; fits with " + nearest_cpu_fits(model, sku, shape)
        )
    return EnginePlan(
        model=model,
        sku=None,
        shape=shape,
        fit=None,
        dtype=None,
        max_num_seqs_at_context=cpu_max_num_seqs_that_fit(model, sku, shape),
        max_model_len_at_num_seqs=cpu_max_model_len_that_fits(model, sku, shape),
        engine_args=onnx_engine_args(shape, fit),
        startup_budget_seconds=startup_budget_seconds(model),
        cpu=fit,
    )


def cpu_pool_monthly_cost(sku: CpuSku, min_count: int, max_count: int, spot: bool) -> PoolCost:
    """VM hours of a CPU pool, as gpu_pool_monthly_cost: unknown where no price is recorded."""
    return PoolCost(sku.spot if spot else sku.on_demand, min_count, max_count)
