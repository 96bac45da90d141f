"""The memory model against the measured table in docs/memory-calibration.json.

The table was measured on an H100 with tools/calibrate_memory.py (random weights, the
catalog's architectures, see docs/memory-calibration.md); these tests keep the catalog and
the formulas honest to it without a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components import sizing
from components.catalog import MODELS

TABLE = json.loads((Path(__file__).parent.parent / "docs" / "memory-calibration.json").read_text())
MEASURED = {m["source"]: m for m in TABLE["measurements"]}
ENGINE_STEP_TOKENS = sizing.DEFAULT_MAX_NUM_BATCHED_TOKENS


def test_every_bf16_vllm_model_was_measured_without_error() -> None:
    bf16 = {s for s, m in MODELS.items() if m.engine == "vllm" and m.quantization is None}
    assert set(MEASURED) == bf16
    assert not [m for m in MEASURED.values() if "error" in m]
    assert TABLE["gpu"] == "NVIDIA H100 80GB HBM3"


@pytest.mark.parametrize("source", sorted(MEASURED))
def test_parameter_count_is_exact(source: str) -> None:
    model, measured = MODELS[source], MEASURED[source]
    assert model.parameters == measured["parameters"]
    assert model.architecture.vision_parameters == measured["vision_parameters"]


@pytest.mark.parametrize("source", sorted(MEASURED))
def test_weights_within_two_percent(source: str) -> None:
    # Measured memory also holds transformers' buffers (rotary tables and the like): at most
    # 1.6% more than the parameters, for Gemma 3 1B.
    predicted = sizing.weight_bytes(MODELS[source])
    assert predicted == pytest.approx(MEASURED[source]["weights_bytes"], rel=0.02)


@pytest.mark.parametrize("source", sorted(MEASURED))
def test_kv_cache_within_one_percent(source: str) -> None:
    # transformers keeps window - 1 tokens in sliding-window layers; vLLM keeps the window.
    measured = MEASURED[source]
    predicted = sizing.kv_cache_bytes_per_sequence(MODELS[source], measured["kv_tokens"])
    assert predicted == pytest.approx(measured["kv_bytes"], rel=0.01)
    assert predicted >= measured["kv_bytes"]


@pytest.mark.parametrize("source", sorted(MEASURED))
def test_engine_step_memory_within_five_percent(source: str) -> None:
    """Weights + KV cache + one 2,048-token step + non-torch memory, predicted vs measured."""
    model, measured = MODELS[source], MEASURED[source]
    measured_total = (
        measured["weights_bytes"]
        + measured["kv_bytes"]
        + measured["activation_bytes"][str(ENGINE_STEP_TOKENS)]
        + measured["non_torch_bytes"]
    )
    predicted_total = (
        sizing.weight_bytes(model)
        + sizing.kv_cache_bytes_per_sequence(model, measured["kv_tokens"])
        + sizing.forward_activation_bytes(model, ENGINE_STEP_TOKENS)
        + sizing.CALIBRATION.non_torch_gib * sizing.GIB
    )
    assert predicted_total == pytest.approx(measured_total, rel=0.05)


@pytest.mark.parametrize("source", sorted(MEASURED))
def test_activations_follow_the_fitted_shape(source: str) -> None:
    # The fit spans three families; each prediction stays within a fifth of the measurement.
    for tokens, measured in MEASURED[source]["activation_bytes"].items():
        predicted = sizing.forward_activation_bytes(MODELS[source], int(tokens))
        assert predicted == pytest.approx(measured, rel=0.20), tokens


def test_non_torch_overhead_covers_every_measurement() -> None:
    largest = max(m["non_torch_bytes"] for m in MEASURED.values())
    assert sizing.CALIBRATION.non_torch_gib * sizing.GIB >= largest
