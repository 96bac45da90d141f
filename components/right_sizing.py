"""Each vLLM model's serving decision from the capacity model: how many sequences a replica
runs, what it carries within the targets, how many replicas the peak needs, what a million
output tokens cost, when KEDA adds a replica, and the cheapest catalog option that meets the
same targets.

Pure logic, no Pulumi: components/config.py calls `decide` while planning; the plan summary
and the stack outputs show its figures; autoscaling reads its queue threshold. The figures
are components/capacity.py's, calibrated against components/capacity_measurements/
(docs/capacity.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from components import capacity, sizing
from components.catalog import GpuSku, HourlyPrice, ModelSpec


class TargetsMissed(ValueError):
    """The targets cannot be met as configured: the key under the model that decides it
    (".maxNumSeqs", ".replicas.max", "" for the model as a whole) and one line with the
    figures and a way out."""

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(message)


@dataclass(frozen=True)
class Placement:
    """Where replicas run: a VM size, whole GPUs or MIG slices of one profile."""

    sku: GpuSku  # the VM as Azure sells it (whole GPUs, its prices)
    gpu_instance_profile: str | None = None
    tensor_parallel_size: int = 1

    @property
    def replica_sku(self) -> GpuSku:
        """The VM as a replica sees it: one 'GPU' per slice with MIG (sizing.py's view)."""
        if self.gpu_instance_profile:
            return capacity.sliced(self.sku, self.gpu_instance_profile)
        return self.sku

    @property
    def replicas_per_node(self) -> int:
        return capacity.replicas_per_node(
            self.sku, self.tensor_parallel_size, self.gpu_instance_profile
        )

    def describe(self) -> str:
        if self.gpu_instance_profile:
            return f"{self.sku.vm_size} {self.gpu_instance_profile}"
        return self.sku.vm_size


@dataclass(frozen=True)
class Option:
    """One way to serve a model within the targets, and its price per million tokens."""

    model: ModelSpec
    placement: Placement
    choice: capacity.Choice
    usd_per_mtok: float  # on-demand

    def describe(self) -> str:
        return (
            f"{self.model.source} on {self.placement.describe()} with maxNumSeqs "
            f"{self.choice.max_num_seqs}: {self.usd_per_mtok:.3f} USD/Mtok on-demand"
        )


@dataclass(frozen=True)
class ModelCapacity:
    """One model's capacity figures, as the plan shows them and the components use them."""

    workload: capacity.Workload
    targets: capacity.Targets
    choice: capacity.Choice  # max_num_seqs, max_num_batched_tokens, Performance per replica
    replicas_per_node: int
    replicas_max: int
    peak_requests_per_second: float | None
    replicas_needed: int | None  # at the peak; None without one
    usd_per_mtok_on_demand: float | None  # None: no price recorded for the VM size
    usd_per_mtok_spot: float | None
    queue_threshold: int
    cheapest: Option | None  # None: no catalog option with a price meets the targets

    @property
    def per_replica(self) -> capacity.Performance:
        return self.choice.performance

    @property
    def carried_at_max(self) -> float:
        """Requests/s replicas.max carries within the targets."""
        return self.replicas_max * self.per_replica.request_rate


def usd_per_mtok(price: HourlyPrice | None, placement: Placement, tokens_per_s: float):
    if price is None:
        return None
    return capacity.usd_per_million_output_tokens(
        price.usd, placement.replicas_per_node, tokens_per_s
    )


def queue_threshold(performance: capacity.Performance, ttft_target_s: float) -> int:
    """KEDA's waiting-requests target per replica. A request that finds n waiting starts
    after about n / (the replica's completion rate) seconds, since each finishing request
    frees one slot; the TTFT target leaves (target - predicted p95 TTFT) seconds for that
    wait, so KEDA adds a replica before more than slack x rate are waiting."""
    slack = max(ttft_target_s - performance.ttft_p95_s, 0.0)
    return max(1, math.floor(slack * performance.request_rate))


@lru_cache(maxsize=4096)
def best_shape(
    model: ModelSpec,
    placement: Placement,
    workload: capacity.Workload,
    targets: capacity.Targets,
    max_model_len: int,
    gpu_memory_utilization: float | None = None,
    lora: sizing.LoraSlots | None = None,
) -> capacity.Choice | None:
    """capacity.best_shape for a placement; cached, since the cheapest-option search and
    every plan of the same stack ask the same questions."""
    if sizing.unsupported_reason(
        model,
        placement.replica_sku,
        sizing.ServingShape(max_model_len, 1, placement.tensor_parallel_size),
    ):
        return None
    return capacity.best_shape(
        model,
        placement.sku,
        sizing.dtype_for(model, placement.sku),
        workload,
        targets,
        max_model_len,
        placement.tensor_parallel_size,
        placement.gpu_instance_profile,
        gpu_memory_utilization,
        lora,
    )


def _placements(skus: tuple[GpuSku, ...]) -> list[Placement]:
    """Every catalog VM size with a recorded on-demand price, whole and in each MIG slice,
    one replica per GPU or slice."""
    placements = []
    for sku in skus:
        if sku.on_demand is None:
            continue
        placements.append(Placement(sku))
        placements += [Placement(sku, p) for p in capacity.mig_profiles(sku)]
    return placements


def _throughput_bound(model: ModelSpec, placement: Placement, workload: capacity.Workload):
    """No replica outruns every sequence slot decoding with no prefill (capacity's bound)."""
    return capacity.output_tokens_bound(
        model,
        placement.sku,
        sizing.dtype_for(model, placement.sku),
        workload,
        capacity.MAX_NUM_SEQS_SEARCHED,
        placement.tensor_parallel_size,
        placement.gpu_instance_profile,
    )


@lru_cache(maxsize=256)
def cheapest_option(
    models: tuple[ModelSpec, ...],
    skus: tuple[GpuSku, ...],
    workload: capacity.Workload,
    targets: capacity.Targets,
    max_model_len: int,
    lora: sizing.LoraSlots | None = None,
) -> Option | None:
    """The lowest on-demand USD per million output tokens over the checkpoints and catalog
    placements that meet the targets. Each candidate's floor price (its replica-hour over its
    throughput bound) orders the search, most promising first, and a candidate whose floor
    cannot beat the best found is not modelled in full: the answer is the exhaustive
    search's (tests/test_right_sizing.py), at a fraction of its cost."""
    floors = sorted(
        (_floor_usd_per_mtok(model, placement, workload), index, model, placement)
        for index, (model, placement) in enumerate(
            (model, placement) for model in models for placement in _placements(skus)
        )
    )
    best: Option | None = None
    for floor, _, model, placement in floors:
        if best and floor >= best.usd_per_mtok:
            break
        choice = best_shape(model, placement, workload, targets, max_model_len, lora=lora)
        if choice is None:
            continue
        tokens_per_s = choice.performance.output_tokens_per_s
        price = usd_per_mtok(placement.sku.on_demand, placement, tokens_per_s)
        if best is None or price < best.usd_per_mtok:
            best = Option(model, placement, choice, price)
    return best


def _floor_usd_per_mtok(model: ModelSpec, placement: Placement, workload: capacity.Workload):
    bound = _throughput_bound(model, placement, workload)
    return _replica_hour_usd(placement) / (bound * 3600) * 1e6


def _replica_hour_usd(placement: Placement) -> float:
    return placement.sku.on_demand.usd / placement.replicas_per_node


@dataclass(frozen=True)
class Request:
    """What the stack file asks of one vLLM model."""

    model: ModelSpec
    placement: Placement
    max_model_len: int
    workload: capacity.Workload
    targets: capacity.Targets
    max_num_seqs: int | None  # explicit: checked against the targets
    gpu_memory_utilization: float | None  # explicit; None: sizing's default for the GPU
    peak_requests_per_second: float | None
    replicas_max: int
    queue_per_replica: int | None  # explicit KEDA threshold
    alternatives: tuple[ModelSpec, ...]  # the same model's other checkpoints
    skus: tuple[GpuSku, ...]  # the catalog's VM sizes
    # The LoRA adapter slots vLLM preallocates (they come out of the KV cache); None: none.
    lora: sizing.LoraSlots | None = None


def decide(request: Request) -> ModelCapacity:
    """The model's shape and figures; TargetsMissed when the targets cannot be met."""
    cheapest = cheapest_option(
        (request.model, *request.alternatives),
        request.skus,
        request.workload,
        request.targets,
        request.max_model_len,
        request.lora,
    )
    choice = _choice(request, cheapest)
    performance = choice.performance
    placement = request.placement
    replicas_needed = None
    if request.peak_requests_per_second is not None:
        replicas_needed = math.ceil(request.peak_requests_per_second / performance.request_rate)
        if replicas_needed > request.replicas_max:
            raise TargetsMissed(
                ".replicas.max",
                f"{request.replicas_max} is too few: targets.peakRequestsPerSecond "
                f"{request.peak_requests_per_second:g} needs {replicas_needed} replicas of "
                f"{performance.request_rate:.3g} requests/s each within the targets; raise "
                "replicas.max (and the pool's maxCount) or lower the peak",
            )
    tokens_per_s = performance.output_tokens_per_s
    return ModelCapacity(
        workload=request.workload,
        targets=request.targets,
        choice=choice,
        replicas_per_node=placement.replicas_per_node,
        replicas_max=request.replicas_max,
        peak_requests_per_second=request.peak_requests_per_second,
        replicas_needed=replicas_needed,
        usd_per_mtok_on_demand=usd_per_mtok(placement.sku.on_demand, placement, tokens_per_s),
        usd_per_mtok_spot=usd_per_mtok(placement.sku.spot, placement, tokens_per_s),
        queue_threshold=request.queue_per_replica
        or queue_threshold(performance, request.targets.ttft_p95_s),
        cheapest=cheapest,
    )


def _choice(request: Request, cheapest: Option | None) -> capacity.Choice:
    """The shape the replica runs and what it carries. Derived and explicit values follow
    one rule (capacity.shape_choice): the highest load at which the targets hold while the
    requests in flight stay within maxNumSeqs 95% of the time."""
    placement = request.placement
    way_out = f"; meets them: {cheapest.describe()}" if cheapest else ""
    if request.max_num_seqs is None:
        choice = best_shape(
            request.model,
            placement,
            request.workload,
            request.targets,
            request.max_model_len,
            request.gpu_memory_utilization,
            request.lora,
        )
    else:
        seqs = request.max_num_seqs
        choice = capacity.shape_choice(
            request.model,
            placement.sku,
            sizing.dtype_for(request.model, placement.sku),
            request.workload,
            request.targets,
            request.max_model_len,
            seqs,
            max(sizing.DEFAULT_MAX_NUM_BATCHED_TOKENS, seqs),
            placement.tensor_parallel_size,
            placement.gpu_instance_profile,
            request.gpu_memory_utilization,
            request.lora,
        )
    if choice is None:
        single = _performance(request, 1, sizing.DEFAULT_MAX_NUM_BATCHED_TOKENS)
        raise TargetsMissed(
            ".targets",
            f"{_where(request)}: no load meets {_targets(request.targets)} (one request "
            f"alone: {_figures(single)}){way_out}",
        )
    return choice


def _performance(request: Request, concurrency: int, batched: int) -> capacity.Performance:
    placement = request.placement
    return capacity.performance(
        request.model,
        placement.sku,
        sizing.dtype_for(request.model, placement.sku),
        request.workload,
        concurrency,
        placement.tensor_parallel_size,
        placement.gpu_instance_profile,
        batched,
    )


def _where(request: Request) -> str:
    return f"{request.model.source} on {request.placement.describe()}"


def _targets(targets: capacity.Targets) -> str:
    return f"TTFT p95 <= {targets.ttft_p95_s:g} s and ITL p95 <= {targets.itl_p95_s * 1000:g} ms"


def _figures(performance: capacity.Performance) -> str:
    return f"TTFT p95 {performance.ttft_p95_s:.2f} s, ITL p95 {performance.itl_p95_s * 1000:.1f} ms"
