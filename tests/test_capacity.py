"""The capacity model (components/capacity.py): hand-computed cases, the directions it must
move in, the GPU facts it reads, and every published measurement against its prediction."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from components import capacity, sizing
from components.capacity import Targets, Workload
from components.catalog import GPU_SKUS, MODELS
from components.sizing import ServingShape

ROOT = Path(__file__).resolve().parents[1]
PHI4 = MODELS["microsoft/Phi-4-mini-instruct"]
A100 = GPU_SKUS["Standard_NC24ads_A100_v4"]
A10 = GPU_SKUS["Standard_NV36ads_A10_v5"]
T4 = GPU_SKUS["Standard_NC4as_T4_v3"]
H100 = GPU_SKUS["Standard_NC40ads_H100_v5"]
CHAT = Workload(200, 200)


# -- hand-computed cases ----------------------------------------------------------------------


def test_flops_per_token_of_phi4_mini():
    # Phi-4-mini: 32 layers, hidden 3072, intermediate 8192, 24 heads, 8 KV heads, head_dim
    # 128, vocab 200,064. Projections per layer: 3072*128*(2*24 + 2*8) = 25,165,824 for
    # attention + 3*3072*8192 = 75,497,472 for the MLP = 100,663,296; x 32 = 3,221,225,472.
    # LM head: 200,064 * 3072 = 614,596,608. Matrix weights 3,835,822,080, x 2 FLOPs each =
    # 7,671,644,160. Attention over 300 tokens: 4 * 24 heads * 128 * 32 layers * 300 =
    # 117,964,800. Total 7,789,608,960.
    assert capacity.flops_per_token(PHI4, 300) == 7_789_608_960


def test_weight_bytes_read_per_step():
    # All 3,836,021,760 parameters (3,221,225,472 projections + 614,596,608 tied embedding +
    # 32 * 2 * 3072 + 3072 = 199,680 norm weights) in bf16, 2 bytes each: the embedding is
    # tied, so it is read as the LM head; there is no vision tower.
    assert capacity.weight_bytes_read(PHI4) == 7_672_043_520
    # Qwen3-8B unties its embedding: the input table (151,936 * 4096 bf16 weights) is only
    # gathered row by row, so a step reads that much less than the checkpoint holds.
    qwen = MODELS["Qwen/Qwen3-8B"]
    assert sizing.weight_bytes(qwen) - capacity.weight_bytes_read(qwen) == 151_936 * 4096 * 2


def test_one_decode_step_on_an_a100():
    # The constants this hand computation uses; a refit must redo it.
    assert (capacity.STEP_OVERHEAD_S, capacity.BANDWIDTH_EFFICIENCY) == (0.001, 0.60)
    assert capacity.COMPUTE_EFFICIENCY == 0.60
    # One Phi-4-mini sequence at the mean decode context of a 200-in/200-out request
    # (200 + 200/2 = 300 tokens), nothing to prefill, on an A100 80GB PCIe:
    #   read  = 7,672,043,520 weight bytes + 300 * 131,072 KV bytes = 7,711,365,120 B
    #           / (1,935e9 B/s * 0.60 = 1.161e12 B/s)              = 6.642003 ms
    #   work  = 7,789,608,960 FLOPs / (312e12 * 0.60 = 187.2e12)   = 0.041611 ms
    #   step  = 1 ms + 6.642003 ms + 0.041611 ms                   = 7.683614 ms
    engine = capacity._Engine(PHI4, capacity.accelerator(A100), "bfloat16", CHAT, 1, 2048)
    assert engine.step_s(1, 0) == pytest.approx(0.007683614, abs=1e-9)


def test_kv_capacity_of_phi4_mini_on_an_a100():
    # maxModelLen 4,096, 16 sequences, 2,048 batched tokens, gpu_memory_utilization 0.90:
    #   usable      80 GiB * 0.90                                             = 72 GiB
    #   weights     7,672,043,520 B                                         = 7.145147 GiB
    #   activations 2,048 * (3.18*3072 + 3.47*8192) * 2 = 156,447,539.2 B
    #               + sampler 16 * 200,064 * 4 = 12,804,096 B              = 0.157628 GiB
    #   overhead    0.69 + 0.6                                              = 1.29 GiB
    #   free        72 - 7.145147 - 0.157628 - 1.29                         = 63.407225 GiB
    # At 131,072 B (1/8,192 GiB) per token: 63.407225 * 8192 = 519,431.99 -> 519,431.
    shape = ServingShape(max_model_len=4096, max_num_seqs=16)
    assert capacity.kv_capacity_tokens(PHI4, A100, shape) == 519_431
    # Sequences of 200 + 200 tokens hold 400 tokens (25 whole 16-token blocks), 52.4 MB
    # each: 519,431.99 / 400 = 1,298.6 -> 1,298, not the 126 that 4,096-token contexts give.
    assert capacity.sequences_that_fit(PHI4, A100, shape, CHAT) == 1298
    assert capacity.kv_capacity_tokens(PHI4, A100, shape) // 4096 == 126


def test_poisson_quantiles():
    # Mean 1: P(0..2) = e^-1 * (1 + 1 + 1/2) = 0.9197 < 0.95 <= P(0..3) = 0.9810.
    assert capacity.poisson_quantile(1.0) == 3
    # Mean 0.2: P(0) = e^-0.2 = 0.819 already covers the median.
    assert capacity.poisson_quantile(0.2, 0.5) == 0
    # Mean 100 (normal approximation): 100 + 1.6449 * 10 = 116.45 -> 117.
    assert capacity.poisson_quantile(100.0) == 117


def test_dollars_per_million_output_tokens():
    # 3.67 USD an hour, one replica at 1,000 tok/s = 3.6 M tokens an hour: 3.67 / 3.6.
    assert capacity.usd_per_million_output_tokens(3.67, 1, 1000.0) == pytest.approx(1.019444, 1e-6)
    # Seven MIG replicas at 200 tok/s each: 5.04 M tokens an hour.
    assert capacity.usd_per_million_output_tokens(3.67, 7, 200.0) == pytest.approx(0.728175, 1e-6)
    with pytest.raises(ValueError, match="no output to price"):
        capacity.usd_per_million_output_tokens(3.67, 1, 0.0)


# -- directions -------------------------------------------------------------------------------


def _engine_with(hbm_gb_per_s: float, workload: Workload = CHAT) -> capacity._Engine:
    base = capacity.accelerator(A100)
    return capacity._Engine(
        PHI4, replace(base, hbm_gb_per_s=hbm_gb_per_s), "bfloat16", workload, 1, 2048
    )


def test_throughput_rises_with_bandwidth():
    # Same compute, same 32 requests in flight: only the memory bandwidth changes.
    runs = [capacity._steady_state(_engine_with(gbps), 32) for gbps in (600, 1000, 2000, 4000)]
    throughput = [run.output_tokens_per_s for run in runs]
    assert throughput == sorted(throughput) and len(set(throughput)) == 4
    assert [run.itl_s for run in runs] == sorted((run.itl_s for run in runs), reverse=True)


def test_throughput_falls_with_context():
    runs = [
        capacity.performance(PHI4, A100, "bfloat16", Workload(prompt, 200), 32)
        for prompt in (200, 2000, 8000)
    ]
    throughput = [run.output_tokens_per_s for run in runs]
    assert throughput == sorted(throughput, reverse=True) and len(set(throughput)) == 3
    # Fewer long requests fit in the same KV cache.
    shape = ServingShape(max_model_len=16384, max_num_seqs=16)
    fits = [
        capacity.sequences_that_fit(PHI4, A100, shape, Workload(prompt, 200))
        for prompt in (200, 2000, 8000)
    ]
    assert fits == sorted(fits, reverse=True) and len(set(fits)) == 3


def test_steady_state_obeys_littles_law():
    perf = capacity.at_request_rate(PHI4, A100, "bfloat16", CHAT, 16.0, 256)
    assert perf.request_rate == pytest.approx(16.0, rel=1e-6)
    assert perf.output_tokens_per_s == pytest.approx(16.0 * 200, rel=1e-6)
    engine_ttft = perf.ttft_s - capacity.REQUEST_OVERHEAD_S
    latency = engine_ttft + 199 * perf.itl_s
    # The mean TTFT inside the engine differs from the median prompt's only by bunching,
    # which is one prompt at this load.
    assert perf.concurrency == pytest.approx(perf.request_rate * latency, rel=1e-3)


# -- GPU facts and MIG ------------------------------------------------------------------------


def test_every_catalog_gpu_has_sourced_facts():
    document = json.loads(capacity.SPECS_FILE.read_text())
    assert {sku.gpu_model for sku in GPU_SKUS.values()} == set(document["gpus"])
    for gpu, entry in document["gpus"].items():
        assert document["sources"][entry["source"]].startswith("https://"), gpu
        # MIG facts cite the MIG guide (fractions), mig-parted (names, counts) and AKS.
        expected = ["migFractions", "migNames", "aksProfiles"] if entry["migProfiles"] else []
        assert entry["migSources"] == expected, gpu
        assert all(document["sources"][key].startswith("https://") for key in expected)
        assert entry["hbmGBps"] > 0
        assert set(entry["denseTflops"]) == {"float16", "bfloat16", "fp8", "int8"}
        # A dtype without a tensor-core path is null, never 0.
        assert all(v is None or v > 0 for v in entry["denseTflops"].values()), gpu
    assert capacity.accelerator(T4).dense_tflops["bfloat16"] is None
    with pytest.raises(ValueError, match="T4 has no dense bfloat16"):
        capacity.accelerator(T4).peak_flops("bfloat16")
    assert capacity.accelerator(A100).dense_tflops["fp8"] is None
    assert capacity.accelerator(H100).peak_flops("fp8") == 1670.5e12


def test_mig_profiles_per_gpu():
    assert capacity.mig_profiles(T4) == capacity.mig_profiles(A10) == ()
    assert capacity.mig_profiles(A100) == ("MIG1g", "MIG2g", "MIG3g", "MIG4g", "MIG7g")
    assert capacity.mig_profiles(H100) == capacity.mig_profiles(A100)
    names = [capacity.mig_profile(H100, p).name for p in capacity.mig_profiles(H100)]
    assert names == ["1g.12gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"]
    for sku in (A100, H100):
        for aks in capacity.mig_profiles(sku):
            profile = capacity.mig_profile(sku, aks)
            # The AKS name counts compute slices, and the slices never oversubscribe the GPU.
            assert profile.compute_fraction == Fraction(int(aks[3]), 7)
            assert profile.instances * profile.compute_fraction <= 1
            assert profile.instances * profile.memory_fraction <= 1


def test_a_slice_gets_its_share():
    # 3g.40gb: 4/8 of the memory and of its bandwidth, 3/7 of the SMs.
    slice_ = capacity.accelerator(A100, "MIG3g")
    assert slice_.name == "A100 80GB MIG 3g.40gb"
    assert slice_.memory_gib == 40.0
    assert slice_.hbm_gb_per_s == 967.5
    assert slice_.dense_tflops["bfloat16"] == pytest.approx(312 * 3 / 7)
    assert slice_.dense_tflops["fp8"] is None
    vm = capacity.sliced(A100, "MIG3g")
    assert (vm.gpus, vm.gpu_memory_gib, vm.gpu_model) == (2, 40.0, "A100 80GB MIG 3g.40gb")
    assert (vm.on_demand, vm.spot, vm.vm_size) == (A100.on_demand, A100.spot, A100.vm_size)
    assert capacity.replicas_per_node(A100, 1, "MIG1g") == 7
    assert capacity.replicas_per_node(GPU_SKUS["Standard_NC80adis_H100_v5"], 2) == 1


def test_an_unsupported_profile_is_refused():
    with pytest.raises(ValueError, match="MIG1g is not supported on A10 .*none: the GPU has no"):
        capacity.sliced(A10, "MIG1g")
    with pytest.raises(ValueError, match="allowed: MIG1g, MIG2g, MIG3g, MIG4g, MIG7g"):
        capacity.accelerator(A100, "MIG5g")


# -- choosing a shape -------------------------------------------------------------------------


def test_best_shape_meets_its_targets():
    targets = Targets(ttft_p95_s=1.5, itl_p95_s=0.05)
    choice = capacity.best_shape(PHI4, A100, "bfloat16", CHAT, targets, 4096)
    perf = choice.performance
    assert perf.ttft_p95_s <= 1.5 and perf.itl_p95_s <= 0.05
    assert choice.max_num_seqs <= min(capacity.MAX_NUM_SEQS_SEARCHED, choice.max_num_batched_tokens)
    # 95% of the time the Poisson number in flight fits the sequence slots.
    assert capacity.poisson_quantile(perf.concurrency) <= choice.max_num_seqs
    # Far more than the prod stack's 16 sequences (the KV cache holds 1,298 such requests):
    # the ITL target decides, at 49.9 ms, not the KV cache or a cap.
    assert choice.max_num_seqs == 366
    assert 0.049 < perf.itl_p95_s <= 0.05
    # A tighter ITL target buys latency with throughput.
    tight = capacity.best_shape(PHI4, A100, "bfloat16", CHAT, Targets(1.5, 0.015), 4096)
    assert tight.performance.itl_p95_s <= 0.015
    assert tight.performance.output_tokens_per_s < perf.output_tokens_per_s


def test_an_explicit_shape_is_held_to_its_slots():
    # The shipped prod shape, 16 sequences: mean concurrency stays where the 95th percentile
    # of the Poisson number in flight is 16, which caps throughput far below what the same
    # A100 serves with the slots its KV cache allows.
    targets = Targets(ttft_p95_s=1.5, itl_p95_s=0.05)
    fixed = capacity.shape_choice(PHI4, A100, "bfloat16", CHAT, targets, 4096, 16, 2048)
    assert (fixed.max_num_seqs, fixed.max_num_batched_tokens) == (16, 2048)
    assert capacity.poisson_quantile(fixed.performance.concurrency) <= 16
    best = capacity.best_shape(PHI4, A100, "bfloat16", CHAT, targets, 4096)
    assert best.performance.output_tokens_per_s > 5 * fixed.performance.output_tokens_per_s


def test_best_shape_says_when_nothing_works():
    # No replica decodes Phi-4-mini at 5 ms a token on an A100 (one step reads 7.7 GB).
    assert capacity.best_shape(PHI4, A100, "bfloat16", CHAT, Targets(1.5, 0.005), 4096) is None
    # A 1g.10gb slice (10 GiB, 9 usable) leaves too little KV cache for a 4,096-token context.
    targets = Targets(1.5, 0.05)
    assert capacity.best_shape(PHI4, A100, "bfloat16", CHAT, targets, 4096, profile="MIG1g") is None
    # ...while H100 NVL's 1g.12gb slice serves it.
    assert capacity.best_shape(PHI4, H100, "bfloat16", CHAT, targets, 4096, profile="MIG1g")


# -- calibration against published measurements -----------------------------------------------

RECORDS = capacity.measurement_records()
POINTS = [(record, point) for record in RECORDS for point in record.points]


def _ids(case) -> str:
    record, point = case
    return f"{record.name}@{point.request_rate:g}"


@pytest.mark.parametrize("case", POINTS, ids=[_ids(c) for c in POINTS])
def test_every_measurement_within_25_percent(case):
    record, point = case
    perf = capacity.predict(record, point.request_rate)
    # Where the measured replica fell behind (its queue grew), the model must say so too.
    assert (perf is not None) == capacity.sustained(record, point)
    if perf is None:
        return
    assert abs(perf.output_tokens_per_s / point.output_tokens_per_s - 1) <= 0.25
    assert abs(perf.itl_s * 1000 / point.itl_p50_ms - 1) <= 0.25


def test_the_published_kaito_loads():
    by_name = {record.name: record for record in RECORDS}
    a100, a10 = by_name["kaito-phi-4-mini-a100"], by_name["kaito-phi-4-mini-a10"]
    for record, rate, tokens, itl_ms in ((a100, 16, 3006, 10.7), (a100, 32, 5718, 25.1)):
        perf = capacity.predict(record, rate)
        assert perf.output_tokens_per_s == pytest.approx(tokens, rel=0.25)
        assert perf.itl_s * 1000 == pytest.approx(itl_ms, rel=0.25)
    perf = capacity.predict(a10, 4)
    assert perf.output_tokens_per_s == pytest.approx(750, rel=0.25)
    assert perf.itl_s * 1000 == pytest.approx(25.1, rel=0.25)
    # KAITO's A10 collapses at 16 req/s (median TTFT 12 s): one replica cannot sustain it.
    assert capacity.predict(a10, 16) is None


def _worst_log_error() -> float:
    errors = []
    for record, point in POINTS:
        perf = capacity.predict(record, point.request_rate)
        if perf is None:
            continue
        errors.append(math.log(perf.itl_s * 1000 / point.itl_p50_ms))
        errors.append(math.log(perf.output_tokens_per_s / point.output_tokens_per_s))
    return max(abs(e) for e in errors)


def test_which_measured_points_kept_up():
    def point(rate, ttft):
        return capacity.MeasuredPoint(rate, ttft, None, None, None, None)

    points = (point(1, 300.0), point(8, 590.0), point(16, 610.0), point(32, None))
    record = capacity.Record("r", "s", PHI4.source, A100.vm_size, None, CHAT, points)
    # Within twice the lowest-rate median TTFT (300 ms) the queue did not grow; past it, it
    # did; a rate where no request completed has no TTFT and did not keep up.
    assert [capacity.sustained(record, p) for p in points] == [True, True, False, False]


def test_constants_are_the_calibrated_optimum(monkeypatch):
    """The three constants minimise the worst log error over every record on their grid
    (overhead in 0.5 ms steps, efficiencies in 0.05 steps): moving any one a step is no
    better. A new record must be followed by a refit (docs/capacity.md, "Calibration")."""
    best = _worst_log_error()
    steps = {"STEP_OVERHEAD_S": 0.0005, "BANDWIDTH_EFFICIENCY": 0.05, "COMPUTE_EFFICIENCY": 0.05}
    for (name, step), sign in itertools.product(steps.items(), (-1, 1)):
        with monkeypatch.context() as patch:
            patch.setattr(capacity, name, getattr(capacity, name) + sign * step)
            assert _worst_log_error() >= best, f"{name} {sign * step:+}"


def test_docs_table_is_current():
    docs = (ROOT / "docs" / "capacity.md").read_text()
    assert capacity.comparison_table() in docs, (
        "docs/capacity.md is stale: paste the output of `python -m components.capacity`"
    )


def test_vllm_default_shapes():
    # vllm serve's defaults: 1,024 sequences and 8,192 tokens on 70 GiB and larger GPUs other
    # than the A100, 256 and 2,048 elsewhere; a MIG slice shows its own memory.
    assert capacity.vllm_default_shape(capacity.accelerator(H100)) == (1024, 8192)
    assert capacity.vllm_default_shape(capacity.accelerator(A100)) == (256, 2048)
    assert capacity.vllm_default_shape(capacity.accelerator(A10)) == (256, 2048)
    assert capacity.vllm_default_shape(capacity.accelerator(H100, "MIG7g")) == (1024, 8192)
    assert capacity.vllm_default_shape(capacity.accelerator(H100, "MIG3g")) == (256, 2048)


def test_records_follow_the_shared_format():
    for path in sorted(capacity.MEASUREMENTS_DIR.glob("*.json")):
        document = json.loads(path.read_text())
        required = {"about", "source", "thirdParty", "taken", "tool", "engine", "model"}
        assert required | {"vmSize", "gpuInstanceProfile", "workload", "points"} <= set(document)
        assert document["model"] in MODELS and document["vmSize"] in GPU_SKUS, path.name
        assert set(document.get("engineArgs", {})) <= {"maxNumSeqs", "maxNumBatchedTokens"}
        for point in document["points"]:
            assert set(point) == {
                "requestRate",
                "concurrency",
                "ttftMs",
                "itlMs",
                "outputTokensPerSecond",
            }
