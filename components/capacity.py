"""Pure capacity model: what one replica serves, at what latency, for what price.

No Pulumi imports. sizing.py answers "does it fit"; this module answers "how much does it
serve". docs/capacity.md derives each formula and shows the predictions against every
published measurement in capacity_measurements/.

vLLM runs the engine in steps. Each step decodes one token for every running sequence and
prefills the prompt tokens that arrived (chunked prefill puts both in one batch). One step
costs

    step = STEP_OVERHEAD_S                                     (scheduler, sampler, launches)
         + (weights read + KV cache read) / (bandwidth * BANDWIDTH_EFFICIENCY)
         + (tokens in the step * FLOPs per token) / (dense peak * COMPUTE_EFFICIENCY)

The memory term is what makes decoding memory-bound at small batches; the compute term takes
over as the batch and the prefill share grow. The three constants are global, fitted once to
the records (docs/capacity.md, "Calibration"), not per GPU or per point.

In steady state with `m` requests in the engine (Little's law): latency = TTFT + (output-1) *
step, request rate = m / latency, and the step holds rate * (output-1) * step decoding
sequences and rate * input * step prompt tokens; the step time is the fixed point of these.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property, lru_cache
from pathlib import Path

from components import sizing
from components.catalog import GPU_SKUS, MODELS, GpuSku, ModelSpec, linear_parameter_count
from components.sizing import GIB, LoraSlots, ServingShape

SPECS_FILE = Path(__file__).with_name("gpu_specs.json")
MEASUREMENTS_DIR = Path(__file__).with_name("capacity_measurements")

# -- calibrated constants (docs/capacity.md, "Calibration": fitted to every record at once) --
# Fixed cost of one engine step: scheduling, sampling, kernel launches, detokenisation.
STEP_OVERHEAD_S = 0.001
# Fraction of the datasheet memory bandwidth a decode step achieves (weights and KV reads).
BANDWIDTH_EFFICIENCY = 0.60
# Fraction of the datasheet dense tensor peak the step's matrix products achieve.
COMPUTE_EFFICIENCY = 0.60
# What a client sees on top of the engine's time to first token: HTTP, tokenisation, the
# first streamed chunk. KAITO's lowest loads show it on both GPUs (docs/capacity.md).
REQUEST_OVERHEAD_S = 0.32

# vLLM allocates KV cache in blocks of 16 tokens: a sequence holds whole blocks.
KV_BLOCK_TOKENS = sizing.KV_BLOCK_TOKENS
# Candidates for --max-num-batched-tokens (prompt tokens per step) that best_shape weighs.
BATCHED_TOKENS_CANDIDATES = (512, 1024, 2048, 4096, 8192)
# The most sequences best_shape considers: the most a stack file accepts (config.py's
# maxNumSeqs bound) and vLLM 0.31.0's own default on GPUs of 70 GiB and more
# (vllm_default_shape). Below it, the targets and the KV cache decide.
MAX_NUM_SEQS_SEARCHED = 1024
# The 95th percentile of a standard normal, for Poisson quantiles of large means.
Z95 = 1.6449
# Fixed-point iterations for the step time: it settles to 1e-4 relative within ten.
FIXED_POINT_ITERATIONS = 20


@dataclass(frozen=True)
class Workload:
    """One request's shape: prompt tokens in, generated tokens out."""

    input_tokens: int
    output_tokens: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Targets:
    ttft_p95_s: float
    itl_p95_s: float


@dataclass(frozen=True)
class MigProfile:
    aks_name: str  # AKS AgentPool gpuInstanceProfile: MIG1g .. MIG7g
    name: str  # NVIDIA's profile name, e.g. 3g.40gb
    instances: int  # slices per GPU
    memory_fraction: Fraction
    compute_fraction: Fraction


@dataclass(frozen=True)
class GpuSpec:
    gpu_model: str
    dense_tflops: dict[str, float | None]
    hbm_gb_per_s: float
    source: str
    mig_profiles: dict[str, MigProfile]


@dataclass(frozen=True)
class Accelerator:
    """One GPU, or one MIG slice, as a replica sees it."""

    name: str
    memory_gib: float
    dense_tflops: dict[str, float | None]
    hbm_gb_per_s: float

    def peak_flops(self, dtype: str) -> float:
        tflops = self.dense_tflops.get(dtype)
        if tflops is None:
            raise ValueError(f"{self.name} has no dense {dtype} tensor throughput")
        return tflops * 1e12


@dataclass(frozen=True)
class Performance:
    """Steady state of one replica: `concurrency` is the mean number of requests in it."""

    concurrency: float
    request_rate: float
    output_tokens_per_s: float
    ttft_s: float  # median, as a client sees it
    itl_s: float  # mean inter-token latency (each request's ITL averages its steps)
    ttft_p95_s: float
    itl_p95_s: float


@dataclass(frozen=True)
class Choice:
    max_num_seqs: int
    max_num_batched_tokens: int
    performance: Performance


# -- GPU facts --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def gpu_specs() -> dict[str, GpuSpec]:
    document = json.loads(SPECS_FILE.read_text())
    return {
        model: GpuSpec(
            gpu_model=model,
            dense_tflops=entry["denseTflops"],
            hbm_gb_per_s=entry["hbmGBps"],
            source=document["sources"][entry["source"]],
            mig_profiles={
                aks: MigProfile(
                    aks_name=aks,
                    name=p["name"],
                    instances=p["instances"],
                    memory_fraction=Fraction(*p["memoryFraction"]),
                    compute_fraction=Fraction(*p["computeFraction"]),
                )
                for aks, p in entry["migProfiles"].items()
            },
        )
        for model, entry in document["gpus"].items()
    }


def gpu_spec(sku: GpuSku) -> GpuSpec:
    spec = gpu_specs().get(sku.gpu_model)
    if spec is None:
        raise ValueError(f"no GPU facts recorded for {sku.gpu_model} ({SPECS_FILE.name})")
    return spec


def mig_profiles(sku: GpuSku) -> tuple[str, ...]:
    """The AKS gpuInstanceProfile values this SKU's GPU supports (empty: no MIG)."""
    return tuple(gpu_spec(sku).mig_profiles)


def mig_profile(sku: GpuSku, gpu_instance_profile: str) -> MigProfile:
    profiles = gpu_spec(sku).mig_profiles
    if gpu_instance_profile not in profiles:
        allowed = ", ".join(profiles) or "none: the GPU has no MIG"
        raise ValueError(
            f"gpuInstanceProfile {gpu_instance_profile} is not supported on {sku.gpu_model} "
            f"({sku.vm_size}); allowed: {allowed}"
        )
    return profiles[gpu_instance_profile]


def accelerator(sku: GpuSku, gpu_instance_profile: str | None = None) -> Accelerator:
    spec = gpu_spec(sku)
    if gpu_instance_profile is None:
        return Accelerator(sku.gpu_model, sku.gpu_memory_gib, spec.dense_tflops, spec.hbm_gb_per_s)
    profile = mig_profile(sku, gpu_instance_profile)
    return Accelerator(
        name=f"{sku.gpu_model} MIG {profile.name}",
        memory_gib=float(sku.gpu_memory_gib * profile.memory_fraction),
        dense_tflops={
            dtype: None if tflops is None else float(tflops * profile.compute_fraction)
            for dtype, tflops in spec.dense_tflops.items()
        },
        hbm_gb_per_s=float(spec.hbm_gb_per_s * profile.memory_fraction),
    )


def sliced(sku: GpuSku, gpu_instance_profile: str) -> GpuSku:
    """The VM as sizing.py sees it when each GPU is split: one 'GPU' per slice."""
    profile = mig_profile(sku, gpu_instance_profile)
    return replace(
        sku,
        gpu_model=f"{sku.gpu_model} MIG {profile.name}",
        gpus=sku.gpus * profile.instances,
        gpu_memory_gib=float(sku.gpu_memory_gib * profile.memory_fraction),
    )


# -- what one token costs ---------------------------------------------------------------------


def flops_per_token(model: ModelSpec, attended_tokens: float) -> float:
    """Forward FLOPs for one token: 2 per weight of every matrix product (the decoder's
    projections and the LM head), plus attention's QK^T and AV over the attended tokens."""
    arch = model.architecture
    matmul_weights = linear_parameter_count(arch) + arch.vocab * arch.hidden
    local = min(arch.sliding_window, attended_tokens) if arch.sliding_window else 0
    attended = arch.global_layers * attended_tokens + arch.local_layers * local
    return 2 * matmul_weights + 4 * arch.heads * arch.head_dim * attended


def weight_bytes_read(model: ModelSpec) -> float:
    """Weights a decode step streams from memory: all of them but the vision tower (text
    requests skip it) and an untied input embedding (only the batch's rows are gathered)."""
    arch = model.architecture
    unread = arch.vision_parameters + (0 if arch.tied_embeddings else arch.vocab * arch.hidden)
    return sizing.weight_bytes(model) - unread * 2


def held_tokens(workload: Workload) -> int:
    """KV tokens one request holds at its longest, in whole 16-token blocks."""
    return math.ceil(workload.tokens / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS


def _free_kv_bytes(model: ModelSpec, sku: GpuSku, shape: ServingShape) -> float:
    fit = sizing.memory_fit(model, sku, shape)
    # vLLM's profiling counts the LoRA slots in the model load, so the cache gets the rest.
    free_gib = (
        fit.usable_gib - fit.weights_gib - fit.activations_gib - fit.overhead_gib - fit.lora_gib
    )
    return max(0.0, free_gib * GIB)


def kv_capacity_tokens(model: ModelSpec, sku: GpuSku, shape: ServingShape) -> int:
    """KV-cache tokens left per GPU after weights, activations and runtime (sizing.py's
    terms), at the per-token cost of a `max_model_len` sequence. For a MIG slice pass
    `sliced(sku, profile)`."""
    length = shape.max_model_len
    per_token = sizing.kv_cache_bytes_per_sequence(model, length, shape.tensor_parallel_size)
    return int(_free_kv_bytes(model, sku, shape) / (per_token / length))


def sequences_that_fit(
    model: ModelSpec, sku: GpuSku, shape: ServingShape, workload: Workload
) -> int:
    """Requests of this workload whose whole KV cache fits at once (tokens held, not
    max_model_len: vLLM pages the cache)."""
    tp = shape.tensor_parallel_size
    per_sequence = sizing.kv_cache_bytes_per_sequence(model, held_tokens(workload), tp)
    return int(_free_kv_bytes(model, sku, shape) / per_sequence)


# -- one engine step --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Engine:
    """Everything a step time needs that does not change with load."""

    model: ModelSpec
    accelerator: Accelerator
    dtype: str
    workload: Workload
    tp: int
    max_num_batched_tokens: int

    @property
    def decode_context(self) -> float:
        """Mean context a decoding sequence attends to: the prompt and half the output."""
        return self.workload.input_tokens + self.workload.output_tokens / 2

    @cached_property
    def _step_terms(self) -> tuple[float, float, float]:
        """Seconds per step for the weights, per decoding sequence and per prompt token:
        computed once per engine, since the fixed points and searches call step_s thousands
        of times (the plan of a stack must stay within seconds)."""
        context = self.decode_context
        bandwidth = self.accelerator.hbm_gb_per_s * 1e9 * BANDWIDTH_EFFICIENCY
        compute = self.accelerator.peak_flops(self.dtype) * COMPUTE_EFFICIENCY * self.tp
        kv = sizing.kv_cache_bytes_per_sequence(self.model, round(context), self.tp)
        weights = weight_bytes_read(self.model) / self.tp / bandwidth
        per_decode = kv / bandwidth + flops_per_token(self.model, context) / compute
        prefill_flops = flops_per_token(self.model, self.workload.input_tokens / 2)
        return STEP_OVERHEAD_S + weights, per_decode, prefill_flops / compute

    def step_s(self, decode_seqs: float, prefill_tokens: float) -> float:
        fixed, per_decode, per_prompt_token = self._step_terms
        return fixed + decode_seqs * per_decode + prefill_tokens * per_prompt_token

    def ttft_s(self, step: float, decode_seqs: float, prompts: int, wait_fraction: float):
        """Client TTFT for a prompt that arrives `wait_fraction` through a running step and
        is prefilled with `prompts` prompts in all (itself included), in as many steps as
        the batched-token budget left beside the decoding sequences needs."""
        tokens = prompts * self.workload.input_tokens
        room = max(1.0, self.max_num_batched_tokens - decode_seqs)
        chunks = math.ceil(tokens / room)
        prefill = chunks * self.step_s(decode_seqs, tokens / chunks)
        return REQUEST_OVERHEAD_S + wait_fraction * step + prefill


def poisson_quantile(mean: float, q: float = 0.95) -> int:
    """The q-quantile of a Poisson count with this mean (normal approximation past 50)."""
    if mean > 50:
        return math.ceil(mean + Z95 * math.sqrt(mean))
    term = cumulative = math.exp(-mean)
    k = 0
    while cumulative < q:
        k += 1
        term *= mean / k
        cumulative += term
    return k


def _steady_state(engine: _Engine, concurrency: float) -> Performance:
    """Fixed point of step time and request rate with `concurrency` requests in flight."""
    out = engine.workload.output_tokens
    decode_seqs = concurrency
    step = engine.step_s(decode_seqs, 0.0)
    for _ in range(FIXED_POINT_ITERATIONS):
        ttft = engine.ttft_s(step, decode_seqs, 1, 0.5) - REQUEST_OVERHEAD_S
        rate = concurrency / (ttft + (out - 1) * step)
        decode_seqs = rate * (out - 1) * step
        step = engine.step_s(decode_seqs, rate * engine.workload.input_tokens * step)
    # Prompts that arrive during one step are prefilled together: Poisson bunching.
    arrivals = rate * step
    median_prompts = max(1, poisson_quantile(arrivals, 0.5))
    p95_prompts = max(1, poisson_quantile(arrivals, 0.95))
    # With Poisson arrivals and no queue the number decoding is itself Poisson (M/G/inf):
    # the slow steps are those with its 95th percentile in the batch.
    busy = poisson_quantile(decode_seqs, 0.95)
    busy_prefill = rate * engine.workload.input_tokens * step * busy / max(decode_seqs, 1e-9)
    return Performance(
        concurrency=concurrency,
        request_rate=rate,
        output_tokens_per_s=rate * out,
        ttft_s=engine.ttft_s(step, decode_seqs, median_prompts, 0.5),
        itl_s=step,
        ttft_p95_s=engine.ttft_s(step, decode_seqs, p95_prompts, 0.95),
        itl_p95_s=max(step, engine.step_s(busy, busy_prefill)),
    )


def _engine(model, sku, dtype, workload, tp, profile, budget) -> _Engine:
    return _Engine(model, accelerator(sku, profile), dtype, workload, tp, budget)


def output_tokens_bound(
    model: ModelSpec,
    sku: GpuSku,
    dtype: str,
    workload: Workload,
    max_num_seqs: int,
    tensor_parallel_size: int = 1,
    profile: str | None = None,
) -> float:
    """An upper bound on a replica's output tokens/s: every sequence slot decoding and no
    prompt ever prefilled. A step's time only grows with prefill, and tokens per step with
    the sequences in it, so no load or target does better; the cheapest-option search skips
    placements whose bound cannot beat the best found."""
    engine = _engine(model, sku, dtype, workload, tensor_parallel_size, profile, 0)
    return max_num_seqs / engine.step_s(max_num_seqs, 0.0)


def performance(
    model: ModelSpec,
    sku: GpuSku,
    dtype: str,
    workload: Workload,
    concurrency: float,
    tensor_parallel_size: int = 1,
    profile: str | None = None,
    max_num_batched_tokens: int = sizing.DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> Performance:
    """Steady state of one replica with `concurrency` requests in it on average."""
    engine = _engine(
        model, sku, dtype, workload, tensor_parallel_size, profile, max_num_batched_tokens
    )
    return _steady_state(engine, concurrency)


def at_request_rate(
    model: ModelSpec,
    sku: GpuSku,
    dtype: str,
    workload: Workload,
    request_rate: float,
    max_concurrency: int,
    tensor_parallel_size: int = 1,
    profile: str | None = None,
    max_num_batched_tokens: int = sizing.DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> Performance | None:
    """Steady state under Poisson arrivals at `request_rate`, or None when the replica cannot
    sustain it: even `max_concurrency` requests in flight (max_num_seqs, or the KV cache)
    complete fewer per second, so the queue grows without bound.

    The rate a concurrency sustains rises with it, so bisection finds the concurrency whose
    predicted latency gives `request_rate` by Little's law."""
    engine = _engine(
        model, sku, dtype, workload, tensor_parallel_size, profile, max_num_batched_tokens
    )
    if _steady_state(engine, max_concurrency).request_rate < request_rate:
        return None
    low, high = 0.0, float(max_concurrency)
    for _ in range(50):
        mid = (low + high) / 2
        if _steady_state(engine, mid).request_rate < request_rate:
            low = mid
        else:
            high = mid
    return _steady_state(engine, high)


# -- choosing an engine shape -----------------------------------------------------------------


def meets(perf: Performance, targets: Targets) -> bool:
    return perf.ttft_p95_s <= targets.ttft_p95_s and perf.itl_p95_s <= targets.itl_p95_s


def _best_concurrency(engine: _Engine, targets: Targets, seqs_limit: int) -> float | None:
    """The largest mean concurrency that meets the targets while the 95th percentile of the
    (Poisson) number in flight stays within `seqs_limit`, so that at most 5% of the time a
    request waits in vLLM's queue for a free sequence slot."""
    if seqs_limit < 1 or not meets(_steady_state(engine, 1.0), targets):
        return None
    low, high = 1.0, float(seqs_limit)
    for _ in range(30):
        mid = (low + high) / 2
        fits = poisson_quantile(mid) <= seqs_limit
        if fits and meets(_steady_state(engine, mid), targets):
            low = mid
        else:
            high = mid
    return low


def shape_choice(
    model: ModelSpec,
    sku: GpuSku,
    dtype: str,
    workload: Workload,
    targets: Targets,
    max_model_len: int,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    tensor_parallel_size: int = 1,
    profile: str | None = None,
    gpu_memory_utilization: float | None = None,
    lora: LoraSlots | None = None,
) -> Choice | None:
    """What one engine shape serves within the targets: the highest throughput at which the
    targets hold and the requests in flight fit `max_num_seqs` and the KV cache; None when
    none does, or when the cache cannot hold one max_model_len sequence (vLLM refuses to
    start). The choice's max_num_seqs is the slots that throughput uses, at most the one
    given. Checks an explicit stack value against the targets."""
    memory_sku = sliced(sku, profile) if profile else sku
    shape = ServingShape(
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization,
        max_num_batched_tokens=max_num_batched_tokens,
        lora=lora,
    )
    if kv_capacity_tokens(model, memory_sku, shape) < max_model_len:
        return None
    # vLLM needs a step to hold one token of every running sequence: seqs <= budget.
    fit = sequences_that_fit(model, memory_sku, shape, workload)
    limit = min(max_num_seqs, max_num_batched_tokens, fit)
    engine = _engine(
        model, sku, dtype, workload, tensor_parallel_size, profile, max_num_batched_tokens
    )
    concurrency = _best_concurrency(engine, targets, limit)
    if concurrency is None:
        return None
    slots = max(1, poisson_quantile(concurrency))
    return Choice(slots, max_num_batched_tokens, _steady_state(engine, concurrency))


def best_shape(
    model: ModelSpec,
    sku: GpuSku,
    dtype: str,
    workload: Workload,
    targets: Targets,
    max_model_len: int,
    tensor_parallel_size: int = 1,
    profile: str | None = None,
    gpu_memory_utilization: float | None = None,
    lora: LoraSlots | None = None,
) -> Choice | None:
    """max_num_seqs and max_num_batched_tokens that maximise a replica's throughput within
    the targets and its KV cache (ties: the smaller token budget, less activation memory);
    None when no shape meets the targets even at concurrency 1 or fits one max_model_len
    sequence."""
    best: Choice | None = None
    for budget in BATCHED_TOKENS_CANDIDATES:
        choice = shape_choice(
            model,
            sku,
            dtype,
            workload,
            targets,
            max_model_len,
            MAX_NUM_SEQS_SEARCHED,
            budget,
            tensor_parallel_size,
            profile,
            gpu_memory_utilization,
            lora,
        )
        if choice is None:
            continue
        throughput = choice.performance.output_tokens_per_s
        if best is None or throughput > best.performance.output_tokens_per_s:
            best = choice
    return best


# -- cost -------------------------------------------------------------------------------------


def replicas_per_node(
    sku: GpuSku, tensor_parallel_size: int = 1, profile: str | None = None
) -> int:
    """Replicas one VM holds: one per `tensor_parallel_size` GPUs, or per slice with MIG."""
    gpus = sliced(sku, profile).gpus if profile else sku.gpus
    return gpus // tensor_parallel_size


def usd_per_million_output_tokens(
    hourly_usd: float, replicas_per_node: int, output_tokens_per_s: float
) -> float:
    """The VM's hourly price spread over the output tokens its replicas generate in an hour
    at the given per-replica throughput."""
    if replicas_per_node < 1 or output_tokens_per_s <= 0:
        raise ValueError(
            f"no output to price: {replicas_per_node} replicas at {output_tokens_per_s} tok/s"
        )
    tokens_per_hour = replicas_per_node * output_tokens_per_s * 3600
    return hourly_usd / tokens_per_hour * 1e6


# -- calibration records ----------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredPoint:
    request_rate: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    itl_p50_ms: float | None
    itl_p95_ms: float | None
    output_tokens_per_s: float | None


@dataclass(frozen=True)
class Record:
    """One file of capacity_measurements/: a model on a SKU under a request-rate sweep."""

    name: str
    source: str
    model: str
    vm_size: str
    gpu_instance_profile: str | None
    workload: Workload
    points: tuple[MeasuredPoint, ...]
    # The engine shape the run used, where the record says ("engineArgs"); None: vLLM's default.
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None


def _point(entry: dict) -> MeasuredPoint:
    ttft, itl = entry["ttftMs"], entry["itlMs"]
    return MeasuredPoint(
        request_rate=entry["requestRate"],
        ttft_p50_ms=ttft["p50"],
        ttft_p95_ms=ttft["p95"],
        itl_p50_ms=itl["p50"],
        itl_p95_ms=itl["p95"],
        output_tokens_per_s=entry["outputTokensPerSecond"],
    )


def measurement_records(directory: Path = MEASUREMENTS_DIR) -> list[Record]:
    records = []
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text())
        shape = document["workload"]
        engine_args = document.get("engineArgs") or {}
        records.append(
            Record(
                name=path.stem,
                source=document["source"],
                model=document["model"],
                vm_size=document["vmSize"],
                gpu_instance_profile=document["gpuInstanceProfile"],
                workload=Workload(shape["inputTokens"], shape["outputTokens"]),
                points=tuple(_point(p) for p in document["points"]),
                max_num_seqs=engine_args.get("maxNumSeqs"),
                max_num_batched_tokens=engine_args.get("maxNumBatchedTokens"),
            )
        )
    return records


def sustained(record: Record, point: MeasuredPoint) -> bool:
    """Whether the measured replica kept up: a queue that grows through the run shows as a
    median TTFT more than twice the one at the record's lowest rate; a rate where no request
    completed (no TTFT) did not keep up either."""
    if point.ttft_p50_ms is None:
        return False
    floor = min(p.ttft_p50_ms for p in record.points if p.ttft_p50_ms is not None)
    return point.ttft_p50_ms <= 2 * floor


def vllm_default_shape(accelerator: Accelerator) -> tuple[int, int]:
    """`vllm serve`'s own --max-num-seqs and --max-num-batched-tokens (engine/arg_utils.py,
    get_batch_defaults): 1,024 and 8,192 on GPUs of 70 GiB and more other than the A100,
    256 and 2,048 elsewhere. A MIG slice shows the engine its own memory."""
    if accelerator.memory_gib >= 70 and "A100" not in accelerator.name:
        return 1024, 8192
    return 256, 2048


def predict(record: Record, request_rate: float) -> Performance | None:
    """The model's steady state for a record's setup at one rate, with the engine shape the
    record states, else vLLM's default for its GPU."""
    model = MODELS[record.model]
    sku = GPU_SKUS[record.vm_size]
    profile = record.gpu_instance_profile
    default_seqs, default_budget = vllm_default_shape(accelerator(sku, profile))
    seqs = record.max_num_seqs or default_seqs
    budget = record.max_num_batched_tokens or default_budget
    shape = ServingShape(
        max_model_len=held_tokens(record.workload),
        max_num_seqs=seqs,
        max_num_batched_tokens=budget,
    )
    memory_sku = sliced(sku, profile) if profile else sku
    limit = min(seqs, sequences_that_fit(model, memory_sku, shape, record.workload))
    dtype = sizing.dtype_for(model, sku)
    return at_request_rate(
        model,
        sku,
        dtype,
        record.workload,
        request_rate,
        limit,
        profile=profile,
        max_num_batched_tokens=budget,
    )


def _versus(measured: float | None, predicted: float, scale: float = 1.0) -> str:
    if measured is None:
        return f"— / {predicted * scale:,.1f}"
    error = predicted * scale / measured - 1
    return f"{measured:,.1f} / {predicted * scale:,.1f} ({error:+.0%})"


def comparison_table(records: list[Record] | None = None) -> str:
    """Markdown: each measured point beside the model's prediction (measured / model)."""
    lines = [
        "| record | req/s | output tok/s | ITL p50 ms | ITL p95 ms | TTFT p50 ms | TTFT p95 ms |",
        "| --- | ---: | --- | --- | --- | --- | --- |",
    ]
    for record in records if records is not None else measurement_records():
        for point in record.points:
            perf = predict(record, point.request_rate)
            head = f"| {record.name} | {point.request_rate:g} "
            if perf is None:
                kept = "kept up" if sustained(record, point) else "did not keep up either"
                lines.append(head + f"| model: cannot sustain (measured: {kept}) | | | | |")
                continue
            cells = (
                _versus(point.output_tokens_per_s, perf.output_tokens_per_s),
                _versus(point.itl_p50_ms, perf.itl_s, 1000),
                _versus(point.itl_p95_ms, perf.itl_p95_s, 1000),
                _versus(point.ttft_p50_ms, perf.ttft_s, 1000),
                _versus(point.ttft_p95_ms, perf.ttft_p95_s, 1000),
            )
            lines.append(head + "| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # Regenerates the table in docs/capacity.md (tests/test_capacity.py checks it is current).
    print(comparison_table(), end="")
