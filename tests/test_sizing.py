"""Sizing: the memory model against hand-computed cases, every catalog pair, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import catalog, sizing
from components.catalog import GPU_SKUS, MODELS
from components.sizing import GIB, ServingShape

PHI = MODELS["microsoft/Phi-4-mini-instruct"]
GEMMA_1B = MODELS["google/gemma-3-1b-it"]
QWEN_8B = MODELS["Qwen/Qwen3-8B"]
T4 = GPU_SKUS["Standard_NC4as_T4_v3"]
A10 = GPU_SKUS["Standard_NV36ads_A10_v5"]
A100 = GPU_SKUS["Standard_NC24ads_A100_v4"]
A100X2 = GPU_SKUS["Standard_NC48ads_A100_v4"]
H100 = GPU_SKUS["Standard_NC40ads_H100_v5"]


def test_kv_cache_per_sequence_by_hand() -> None:
    # Phi-4-mini: 2 (K,V) x 128 head_dim x 8 KV heads x 2 bytes x 32 layers = 128 KiB/token.
    assert sizing.kv_cache_bytes_per_sequence(PHI, 4096) == 2 * 128 * 8 * 2 * 32 * 4096
    assert sizing.kv_cache_bytes_per_sequence(PHI, 4096) == 536_870_912
    # Gemma 3 1B: 1,024 bytes per token per layer; 4 global layers keep all 4,096 tokens,
    # 22 sliding-window layers keep 512.
    assert sizing.kv_cache_bytes_per_sequence(GEMMA_1B, 4096) == 1024 * (4 * 4096 + 22 * 512)
    # Shorter than the window: every layer keeps every token.
    assert sizing.kv_cache_bytes_per_sequence(GEMMA_1B, 256) == 1024 * 26 * 256


def test_tensor_parallel_splits_kv_heads_but_never_below_one() -> None:
    assert sizing.kv_cache_bytes_per_sequence(QWEN_8B, 8192, tp=2) * 2 == (
        sizing.kv_cache_bytes_per_sequence(QWEN_8B, 8192, tp=1)
    )
    # One KV head cannot be split: each GPU keeps a copy.
    assert sizing.kv_cache_bytes_per_sequence(GEMMA_1B, 8192, tp=2) == (
        sizing.kv_cache_bytes_per_sequence(GEMMA_1B, 8192, tp=1)
    )


def test_weights_by_hand() -> None:
    assert PHI.parameters == 3_836_021_760
    assert sizing.weight_bytes(PHI) == 3_836_021_760 * 2
    # AWQ: linear weights at 4.156 bits, embeddings and norms at 16 bits.
    awq = MODELS["Qwen/Qwen3-8B-AWQ"]
    linear = catalog.linear_parameter_count(awq.architecture)
    other = catalog.other_parameter_count(awq.architecture)
    assert sizing.weight_bytes(awq) == pytest.approx(linear * 4.15625 / 8 + other * 2)


def test_phi4_mini_on_a_t4_by_hand() -> None:
    fit = sizing.memory_fit(PHI, T4, ServingShape(max_model_len=4096, max_num_seqs=4))
    weights = 3_836_021_760 * 2 / GIB
    kv = 4 * 536_870_912 / GIB
    forward = 2048 * (3.18 * 3072 + 3.47 * 8192) * 2
    logits = 4 * 200_064 * 4
    overhead = 0.69 + 0.6
    assert fit.weights_gib == pytest.approx(weights)
    assert fit.kv_cache_gib == pytest.approx(2.0)
    assert fit.activations_gib == pytest.approx((forward + logits) / GIB)
    assert fit.overhead_gib == pytest.approx(overhead)
    assert fit.gpu_memory_utilization == 0.85  # a GPU under 20 GB
    assert fit.usable_gib == pytest.approx(15.0 * 0.85)
    assert fit.required_gib == pytest.approx(weights + kv + (forward + logits) / GIB + overhead)
    assert fit.headroom_gib == pytest.approx(12.75 - fit.required_gib)
    assert round(fit.required_gib, 2) == 10.58


def test_largest_context_and_concurrency_sit_on_the_edge() -> None:
    shape = ServingShape(max_model_len=4096, max_num_seqs=4)
    seqs = sizing.max_num_seqs_that_fit(PHI, T4, shape)
    assert seqs == 8
    assert sizing.memory_fit(PHI, T4, ServingShape(4096, seqs)).fits
    assert not sizing.memory_fit(PHI, T4, ServingShape(4096, seqs + 1)).fits
    context = sizing.max_model_len_that_fits(PHI, T4, shape)
    # By hand: 12.75 usable - 7.145 weights - 0.149 step - 1.29 overhead = 4.167 GiB for the
    # KV cache of 4 sequences at 128 KiB per token each: 8,533 tokens, 8,448 in 256 steps.
    free = (
        12.75
        - 3_836_021_760 * 2 / GIB
        - (2048 * (3.18 * 3072 + 3.47 * 8192) * 2 + 4 * 200_064 * 4) / GIB
        - 1.29
    )
    assert context == math.floor(free * GIB / (4 * 131_072) / 256) * 256 == 8448
    assert sizing.memory_fit(PHI, T4, ServingShape(context, 4)).fits
    assert not sizing.memory_fit(PHI, T4, ServingShape(context + 256, 4)).fits


def test_dtype_follows_compute_capability() -> None:
    assert sizing.dtype_for(PHI, T4) == "float16"
    assert sizing.dtype_for(PHI, A10) == "bfloat16"
    assert sizing.dtype_for(PHI, H100) == "bfloat16"


@pytest.mark.parametrize(
    ("model", "sku", "tp", "reason"),
    [
        (
            QWEN_8B,
            A100,
            2,
            "tensor-parallel size 2 does not divide the 1 GPUs of Standard_NC24ads_A100_v4",
        ),
        (PHI, A100X2, 2, None),
        # vLLM v0.31.0 serves FP8 checkpoints from 7.5 (weight-only below 9.0: see below).
        (MODELS["Qwen/Qwen3-8B-FP8"], A100, 1, None),
        (MODELS["Qwen/Qwen3-4B-FP8"], T4, 1, None),
        (MODELS["Qwen/Qwen3-8B-FP8"], H100, 1, None),
        (MODELS["Qwen/Qwen3-8B-AWQ"], T4, 1, None),
        (
            GEMMA_1B,
            T4,
            1,
            "gemma-3-1b needs bfloat16 (vLLM refuses float16 for it: numerical instability) and the T4 (compute capability 7.5) has no bfloat16",
        ),
        (GEMMA_1B, A10, 1, None),
    ],
)
def test_unsupported_combinations(model, sku, tp, reason) -> None:
    shape = ServingShape(max_model_len=4096, max_num_seqs=4, tensor_parallel_size=tp)
    assert sizing.unsupported_reason(model, sku, shape) == reason


def test_engine_arguments_for_phi4_mini_on_a_t4() -> None:
    plan = sizing.plan_vllm(
        "phi4-mini",
        PHI,
        T4,
        "t4spot",
        ServingShape(4096, 4),
        "a" * 40,
        alternatives=[],
        skus=list(GPU_SKUS.values()),
    )
    assert plan.engine_args == (
        "microsoft/Phi-4-mini-instruct",
        "--served-model-name=phi4-mini",
        "--max-model-len=4096",
        "--max-num-seqs=4",
        "--max-num-batched-tokens=2048",
        "--gpu-memory-utilization=0.85",
        "--tensor-parallel-size=1",
        "--dtype=float16",
        "--enable-prefix-caching",
        "--enable-chunked-prefill",
        "--revision=" + "a" * 40,
        "--enable-auto-tool-choice",
        "--tool-call-parser=phi4_mini_json",
    )
    assert plan.max_num_seqs_at_context == 8
    assert plan.startup_budget_seconds == 600


@pytest.mark.parametrize(
    ("sku", "dtype"),
    [(T4, "float16"), (A10, "bfloat16"), (A100, "bfloat16")],
    ids=["T4", "A10", "A100"],
)
def test_fp8_below_hopper_is_served_weight_only_and_says_so(sku, dtype) -> None:
    model = MODELS["Qwen/Qwen3-4B-FP8"]
    plan = sizing.plan_vllm("q", model, sku, "pool", ServingShape(4096, 4), None, [], [])
    assert plan.notes == (
        f"fp8 weight-only on {sku.gpu_model} (compute capability {sku.compute_capability}, "
        f"native FP8 from 9.0): vLLM's Marlin kernel keeps the weights in 8 bits and "
        f"multiplies in {dtype}, slower for prefill and large batches than FP8 compute",
    )
    # Memory is computed as for FP8 compute: the weights stay one byte each.
    assert plan.fit.weights_gib == sizing.weight_bytes(model) / GIB
    assert "--quantization=fp8" in plan.engine_args and f"--dtype={dtype}" in plan.engine_args


def test_fp8_on_hopper_and_other_checkpoints_carry_no_note() -> None:
    fp8 = MODELS["Qwen/Qwen3-8B-FP8"]
    assert sizing.plan_vllm("q", fp8, H100, "h", ServingShape(4096, 4), None, [], []).notes == ()
    assert sizing.plan_vllm("p", PHI, T4, "t", ServingShape(4096, 4), None, [], []).notes == ()


def test_qwen3_awq_passes_its_quantization_and_parsers() -> None:
    model = MODELS["Qwen/Qwen3-8B-AWQ"]
    plan = sizing.plan_vllm("q", model, T4, "t4", ServingShape(4096, 4), None, [], [])
    assert "--quantization=awq" in plan.engine_args
    assert "--tool-call-parser=hermes" in plan.engine_args
    assert "--reasoning-parser=qwen3" in plan.engine_args
    assert "--dtype=float16" in plan.engine_args


def test_a_model_that_does_not_fit_names_the_numbers_and_the_ways_out() -> None:
    with pytest.raises(sizing.SizingError) as raised:
        sizing.plan_vllm(
            "qwen3-8b",
            QWEN_8B,
            T4,
            "t4",
            ServingShape(8192, 4),
            None,
            alternatives=catalog.variants_of(QWEN_8B),
            skus=list(GPU_SKUS.values()),
        )
    assert str(raised.value) == (
        "qwen3-8b (Qwen/Qwen3-8B) on pool t4 (Standard_NC4as_T4_v3, 1x T4): needs 21.3 GiB per "
        "GPU (weights 15.3, KV cache 4.5 for 4 x 8192 tokens, runtime 1.5), 12.8 GiB usable at "
        "gpu_memory_utilization 0.85; fits with source Qwen/Qwen3-8B-AWQ, or vmSize "
        "Standard_NC24ads_A100_v4"
    )


def test_startup_budget_grows_with_the_checkpoint() -> None:
    assert sizing.startup_budget_seconds(PHI) == 600  # 7.1 GiB: the proven floor
    qwen14 = MODELS["Qwen/Qwen3-14B"]
    expected = math.ceil(qwen14.parameters * 2 / GIB * 30 / 10) * 10
    assert sizing.startup_budget_seconds(qwen14) == expected == 830


def test_pool_cost_by_hand() -> None:
    spot = sizing.gpu_pool_monthly_cost(T4, 0, 2, spot=True)
    assert spot.monthly_min_usd == 0.0
    assert spot.monthly_max_usd == round(0.1492 * 2 * 730, 2) == 217.83
    on_demand = sizing.gpu_pool_monthly_cost(A100, 1, 4, spot=False)
    assert on_demand.monthly_min_usd == round(3.673 * 730, 2) == 2681.29
    assert on_demand.monthly_max_usd == 10725.16
    unknown = sizing.gpu_pool_monthly_cost(A10, 1, 2, spot=False)
    assert not unknown.known and unknown.monthly_max_usd is None


VLLM_MODELS = sorted(s for s, m in MODELS.items() if m.engine == "vllm")


@pytest.mark.parametrize("source", VLLM_MODELS)
@pytest.mark.parametrize("vm_size", sorted(GPU_SKUS))
def test_every_catalog_pair_fits_with_headroom_or_fails_clearly(source: str, vm_size: str):
    model, sku = MODELS[source], GPU_SKUS[vm_size]
    shape = ServingShape(max_model_len=8192, max_num_seqs=8, tensor_parallel_size=sku.gpus)
    if model.architecture.heads % sku.gpus:
        shape = ServingShape(max_model_len=8192, max_num_seqs=8)
    try:
        plan = sizing.plan_vllm(
            "m",
            model,
            sku,
            "pool",
            shape,
            None,
            catalog.variants_of(model),
            list(GPU_SKUS.values()),
        )
    except sizing.SizingError as err:
        message = str(err)
        assert message.startswith(
            f"m ({source}) on pool pool ({vm_size}, {sku.gpus}x {sku.gpu_model}): "
        )
        assert "\n" not in message
        assert ("GiB usable" in message and "fits with" in message) or "works with" in message
        return
    assert plan.fit.headroom_gib >= 0
    assert plan.fit.required_gib <= plan.fit.usable_gib
    assert plan.max_num_seqs_at_context >= 8


@settings(max_examples=60, deadline=None)
@given(
    source=st.sampled_from(VLLM_MODELS),
    vm_size=st.sampled_from(sorted(GPU_SKUS)),
    context=st.integers(min_value=256, max_value=32768),
    seqs=st.integers(min_value=1, max_value=256),
    more_context=st.integers(min_value=1, max_value=8192),
    more_seqs=st.integers(min_value=1, max_value=64),
)
def test_requirement_grows_with_context_and_concurrency(
    source, vm_size, context, seqs, more_context, more_seqs
) -> None:
    model, sku = MODELS[source], GPU_SKUS[vm_size]
    base = sizing.memory_fit(model, sku, ServingShape(context, seqs)).required_gib
    longer = sizing.memory_fit(model, sku, ServingShape(context + more_context, seqs))
    wider = sizing.memory_fit(model, sku, ServingShape(context, seqs + more_seqs))
    assert longer.required_gib > base
    assert wider.required_gib > base
