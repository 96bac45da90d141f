"""ONNX Runtime GenAI on CPU nodes: memory fit, AKS's reservations, refusals, cost.

Every expected number is worked out here from the cited inputs: the checkpoint's recorded
files (components/models/phi-4-mini.json), Phi-4-mini's architecture (32 layers, 8 KV heads
of 128), the size pages' memory and AKS's reservation rule (components/sizing.py).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from components import sizing
from components.catalog import CPU_SKUS, MODELS, CpuSku, HourlyPrice
from components.sizing import KV_DTYPE_NAMES, ServingShape, SizingError

# The tiny CPU int4 model test_onnx_server.py builds (once per session, shared by workers).
from tests.test_onnx_server import ROOT, model_dir, onnx_python  # noqa: F401

PHI = MODELS["microsoft/Phi-4-mini-instruct-onnx"]
D4S = CPU_SKUS["Standard_D4s_v5"]
MIB = 1024**2
GIB = 1024**3
# model.onnx + model.onnx.data, as the tree page gives them.
WEIGHTS = (52_100_000 + 4_860_000_000) / GIB
# K and V x 128 head dim x 8 KV heads x 32 layers x 4 bytes (float32): 0.25 MiB per token.
KV_PER_TOKEN = 2 * 128 * 8 * 32 * 4


def _allocatable_mib(ram_gib: int, max_pods: int = 250) -> float:
    """AKS 1.29+: RAM - min(20 x maxPods + 50, 25% of RAM) - 100 (MiB)."""
    ram = ram_gib * 1024
    return ram - min(20 * max_pods + 50, ram / 4) - 100


def test_kv_cache_is_a_quarter_mib_per_token_in_float32() -> None:
    assert KV_PER_TOKEN == MIB // 4
    fit = sizing.cpu_fit(PHI, D4S, ServingShape(max_model_len=4096, max_num_seqs=4))
    assert fit.kv_cache_gib == 4096 * 4 * KV_PER_TOKEN / GIB == 4.0
    assert fit.weights_gib == WEIGHTS


def test_aks_keeps_a_quarter_of_a_small_node_and_the_per_pod_rule_on_a_large_one() -> None:
    # 16 GiB: 25% (4,096 MiB) is less than 20 x 250 + 50 = 5,050 MiB.
    assert _allocatable_mib(16) == 16384 - 4096 - 100 == 12188
    assert sizing.allocatable_memory_gib(D4S) == 12188 / 1024
    # 128 GiB: the per-pod rule, 5,050 MiB, is the lesser.
    e16 = CPU_SKUS["Standard_E16s_v5"]
    assert sizing.allocatable_memory_gib(e16) == (131072 - 5050 - 100) / 1024
    # A pool with maxPods 30 (the page's own example): 20 x 30 + 50 = 650 MiB.
    assert sizing.allocatable_memory_gib(D4S, max_pods=30) == (16384 - 650 - 100) / 1024


def test_every_cpu_sku_has_a_cpu_reservation_and_a_replica_takes_its_whole_vcpus() -> None:
    assert {s.vcpus for s in CPU_SKUS.values()} <= set(sizing.AKS_KUBE_RESERVED_MILLICORES)
    assert sizing.allocatable_millicores(D4S) == 4000 - 140
    assert sizing.allocatable_millicores(CPU_SKUS["Standard_D16as_v5"]) == 16000 - 260
    requested = {s.vm_size: sizing.cpu_fit(PHI, s, ServingShape(4096, 1)).requested_vcpus
                 for s in CPU_SKUS.values()}  # fmt: skip
    assert set(requested.values()) == {3, 7, 15}
    assert requested["Standard_E8s_v5"] == 7


def test_phi4_mini_fits_a_d4s_v5_at_4096_tokens_x_4_with_its_headroom() -> None:
    plan = sizing.plan_onnx("phi", PHI, D4S, ServingShape(max_model_len=4096, max_num_seqs=4))
    fit = plan.cpu
    # The files, 4 x 4,096 tokens x 0.25 MiB of KV cache, and the server process (87 MiB).
    assert fit.required_gib == pytest.approx(WEIGHTS + 4.0 + 87 / 1024)
    assert round(fit.required_gib, 2) == 8.66
    assert fit.allocatable_gib == 12188 / 1024
    assert round(fit.headroom_gib, 2) == 3.24
    assert fit.fits and fit.requested_vcpus == 3
    assert plan.engine_args == ("--max-concurrent=4", "--max-model-len=4096", "--threads=3")
    # What else the node holds: (12,188 MiB - weights - server) / (4,096 tokens x 0.25 MiB) =
    # 7.x generators at 4,096 tokens; at 4, 7,417 MiB / 1 MiB a token in 256-token steps.
    free_mib = 12188 - WEIGHTS * 1024 - 87
    assert plan.max_num_seqs_at_context == int(free_mib // 1024) == 7
    # 4 generators x 0.25 MiB = 1 MiB per token of context.
    assert plan.max_model_len_at_num_seqs == int(free_mib / (4 * 0.25)) // 256 * 256
    assert plan.max_model_len_at_num_seqs == 7168
    # Not modelled for CPU: no capacity figures, no GPU fit; the startup floor applies.
    assert plan.capacity is None and plan.fit is None and plan.sku is None
    assert plan.startup_budget_seconds == 600


def test_too_much_for_the_node_is_one_line_with_the_nearest_fits() -> None:
    with pytest.raises(SizingError) as raised:
        sizing.plan_onnx("phi", PHI, D4S, ServingShape(max_model_len=8192, max_num_seqs=8))
    # KV: 8 x 8,192 tokens x 0.25 MiB = 16 GiB; with the weights and server, 20.7 GiB > 11.9.
    # maxModelLen: 7,417 MiB free / 8 sequences / 0.25 MiB = 3,708 tokens -> 3,584 (14 x 256);
    # maxNumSeqs: 7,417 / 2,048 MiB = 3; the smallest size holding 20.7 GiB is a 32 GiB one
    # (26.97 allocatable), the Esv5 with 4 vCPUs before the Dsv5s with 8.
    assert str(raised.value) == (
        "phi (microsoft/Phi-4-mini-instruct-onnx) on Standard_D4s_v5 (4 vCPUs, 16 GiB): needs "
        "20.7 GiB (weights 4.6, KV cache 16.0 for 8 x 8192 tokens in float32, server 0.08; ONNX "
        "Runtime's own memory not modelled), 11.9 GiB allocatable after AKS's reservations; "
        "fits with "
        "maxModelLen <= 3584, or maxNumSeqs <= 3, or vmSize Standard_E4s_v5"
    )
    assert int((12188 - WEIGHTS * 1024 - 87) / 8 / 0.25) // 256 * 256 == 3584


def test_a_context_no_single_sequence_fits_offers_no_concurrency_and_a_larger_node() -> None:
    with pytest.raises(SizingError) as raised:
        sizing.plan_onnx("phi", PHI, D4S, ServingShape(max_model_len=131072, max_num_seqs=1))
    # One sequence of 131,072 tokens: 32 GiB of KV cache, 36.7 GiB in all: a 64 GiB node
    # (58.97 allocatable), the Esv5 with 8 vCPUs first.
    assert str(raised.value).endswith(
        "needs 36.7 GiB (weights 4.6, KV cache 32.0 for 1 x 131072 tokens in float32, server "
        "0.08; ONNX Runtime's own memory not modelled), 11.9 GiB allocatable after AKS's "
        "reservations; fits with maxModelLen <= 29440, or vmSize Standard_E8s_v5"
    )
    assert int((12188 - WEIGHTS * 1024 - 87) / 0.25) // 256 * 256 == 29440


def test_a_context_past_the_models_and_unrecorded_files_are_refused() -> None:
    with pytest.raises(SizingError) as longer:
        sizing.plan_onnx("phi", PHI, D4S, ServingShape(max_model_len=131328, max_num_seqs=1))
    assert str(longer.value) == (
        "phi (microsoft/Phi-4-mini-instruct-onnx): maxModelLen 131328 exceeds the model's "
        "context of 131072 tokens"
    )
    unrecorded = replace(PHI, files=(), file_bytes=None)
    with pytest.raises(SizingError) as unsized:
        sizing.plan_onnx("phi", unrecorded, D4S, ServingShape(max_model_len=4096, max_num_seqs=1))
    assert str(unsized.value) == (
        "phi (microsoft/Phi-4-mini-instruct-onnx): no file sizes are recorded for "
        "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4, so its memory cannot be sized; "
        "record them in components/models/"
    )


def test_cpu_pool_cost_is_unknown_without_a_recorded_price_and_730_hours_with_one() -> None:
    unknown = sizing.cpu_pool_monthly_cost(D4S, 1, 3, spot=False)
    assert (unknown.known, unknown.monthly_min_usd, unknown.monthly_max_usd) == (False, None, None)
    # A stand-in price of one dollar an hour, to check the arithmetic only.
    dollar = HourlyPrice(1.0, "eastus", "2026-12-03", "test stand-in")
    priced = replace(D4S, on_demand=dollar, spot=replace(dollar, usd=0.25))
    assert sizing.cpu_pool_monthly_cost(priced, 1, 3, spot=False).monthly_max_usd == 2190.0
    spot = sizing.cpu_pool_monthly_cost(priced, 1, 3, spot=True)
    assert (spot.monthly_min_usd, spot.monthly_max_usd) == (182.5, 547.5)


def test_a_cpu_sku_gets_a_managed_os_disk_as_it_has_no_temp_disk() -> None:
    assert sizing.os_disk(D4S, None) == sizing.OsDisk(sizing.DEFAULT_OS_DISK_GIB, "Managed")
    assert isinstance(D4S, CpuSku)


def test_the_docs_table_is_what_sizing_computes() -> None:
    docs = (ROOT / "docs" / "capacity.md").read_text()
    for sku in CPU_SKUS.values():
        millicores = sizing.allocatable_millicores(sku)
        row = (
            f"| {sku.vm_size} | {sku.vcpus} | {sku.ram_gib} | "
            f"{sizing.aks_reserved_memory_gib(sku):.2f} | {sizing.allocatable_memory_gib(sku):.2f} "
            f"| {millicores}m | {millicores // 1000} |"
        )
        assert row in docs, row


# -- contract: what the pinned server and model builder make of the plan ----------------------

# Run in .venv-onnx (onnxruntime-genai 0.18.0, the image's): the KV-cache inputs' element type
# of a CPU int4 graph from the pinned model builder, and the server's own parse of the plan's
# arguments.
CONTRACT = r"""
import json, sys
import onnx
sys.path.insert(0, sys.argv[2])
import server
folder = sys.argv[1]
graph = onnx.load(folder + "/model.onnx", load_external_data=False).graph
kv = {onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name
      for i in graph.input if i.name.startswith("past_key_values")}
settings = server.parse_settings(
    ["--model-dir", folder, "--served-model-name", "m", *json.loads(sys.argv[3])],
    {"OGA_SERVER_API_KEY": "k"},
)
print(json.dumps({"kv": sorted(kv), "kv_inputs": sum(i.name.startswith("past_key_values")
                  for i in graph.input), "settings": [settings.max_concurrent,
                  settings.max_model_len, settings.threads]}))
"""


def test_the_pinned_builder_keeps_a_cpu_int4_kv_cache_in_float32_and_the_server_takes_the_args(
    model_dir: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    """The float32 the sizing uses for the published CPU int4 checkpoint is the pinned
    builder's choice for every CPU int4 graph (tests/onnx_fixtures.py builds one the same way);
    and the arguments plan_onnx hands the server parse to the shape it sized."""
    plan = sizing.plan_onnx("phi", PHI, D4S, ServingShape(max_model_len=4096, max_num_seqs=4))
    server_dir = ROOT / "images" / "onnxruntime-genai-server"
    result = subprocess.run(
        [str(onnx_python()), "-c", CONTRACT, str(model_dir / "onnx"), str(server_dir),
         json.dumps(plan.engine_args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    # The tiny model has 2 layers: a key and a value input for each, all float32.
    assert found["kv"] == ["float32"] and found["kv_inputs"] == 4
    assert KV_DTYPE_NAMES[PHI.kv_bytes_per_element] == "float32"
    assert found["settings"] == [4, 4096, 3]


def test_the_aks_reservation_constants_are_the_ones_aks_documents() -> None:
    """Against tests/upstream/azure-aks-docs-fb060ab-node-reservations: the CPU table, the
    1.29+ memory rule and Azure CNI Overlay's default max pods."""
    upstream = ROOT / "tests" / "upstream" / "azure-aks-docs-fb060ab-node-reservations"
    reservations = json.loads((upstream / "reservations.json").read_text())
    cpu = {int(cores): m for cores, m in reservations["kubeReservedMillicoresByCores"].items()}
    assert cpu == sizing.AKS_KUBE_RESERVED_MILLICORES
    since = reservations["since1.29"]
    assert (
        since["evictionThresholdMi"],
        since["kubeReservedMBPerMaxPod"],
        since["kubeReservedMBBase"],
        since["kubeReservedMaxPercentOfMemory"],
    ) == (
        sizing.AKS_EVICTION_THRESHOLD_MIB,
        sizing.AKS_KUBE_RESERVED_MIB_PER_POD,
        sizing.AKS_KUBE_RESERVED_BASE_MIB,
        sizing.AKS_KUBE_RESERVED_MAX_SHARE * 100,
    )
    max_pods = json.loads((upstream / "max-pods.json").read_text())
    assert max_pods["Azure CNI Overlay"] == sizing.AKS_OVERLAY_DEFAULT_MAX_PODS
