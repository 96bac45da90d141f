"""Catalog data: complete, sourced and consistent."""

from __future__ import annotations

import pytest

from components import catalog
from components.catalog import GPU_SKUS, MODELS


def test_the_featured_models_are_there_with_their_tiers() -> None:
    tiers = {
        source: MODELS[source].tier
        for source in (
            "microsoft/Phi-4-mini-instruct",
            "Qwen/Qwen3-0.6B",
            "Qwen/Qwen3-1.7B",
            "Qwen/Qwen3-4B",
            "Qwen/Qwen3-8B",
            "Qwen/Qwen3-14B",
            "google/gemma-3-1b-it",
            "google/gemma-3-4b-it",
            "google/gemma-3-12b-it",
        )
    }
    assert tiers == {
        "microsoft/Phi-4-mini-instruct": "small",
        "Qwen/Qwen3-0.6B": "micro",
        "Qwen/Qwen3-1.7B": "small",
        "Qwen/Qwen3-4B": "small",
        "Qwen/Qwen3-8B": "small",
        "Qwen/Qwen3-14B": "medium",
        "google/gemma-3-1b-it": "micro",
        "google/gemma-3-4b-it": "small",
        "google/gemma-3-12b-it": "small",
    }


@pytest.mark.parametrize("source", sorted(MODELS))
def test_every_model_is_sourced_and_sane(source: str) -> None:
    model = MODELS[source]
    assert model.source_url.startswith(("https://huggingface.co/", "https://ollama.com/"))
    assert model.recommended_context <= model.max_context
    assert model.architecture.heads % model.architecture.kv_heads == 0
    assert model.engine in ("vllm", "ollama")
    assert 0.4 < model.bytes_per_weight <= 2.0


def test_quantized_variants_share_the_family_and_shrink_the_weights() -> None:
    variants = catalog.variants_of(MODELS["Qwen/Qwen3-8B"])
    assert [v.source for v in variants] == ["Qwen/Qwen3-8B-AWQ", "Qwen/Qwen3-8B-FP8"]
    assert (
        MODELS["Qwen/Qwen3-8B-AWQ"].bytes_per_weight
        < MODELS["Qwen/Qwen3-8B-FP8"].bytes_per_weight
        < 2
    )


def test_gemma_is_gated_and_needs_bfloat16() -> None:
    for source in ("google/gemma-3-1b-it", "google/gemma-3-4b-it", "google/gemma-3-12b-it"):
        assert MODELS[source].gated and not MODELS[source].float16_ok


def test_ollama_phi4_mini_uses_the_published_download_size() -> None:
    assert MODELS["phi4-mini:3.8b"].file_bytes == 2.5e9
    assert MODELS["qwen3:0.6b"].file_bytes is None  # estimated from the q4_K_M ratio


def test_gpu_skus_carry_driver_visible_memory_and_capability() -> None:
    facts = {
        s.vm_size: (s.gpus, round(s.gpu_memory_gib, 2), s.compute_capability)
        for s in GPU_SKUS.values()
    }
    assert facts == {
        "Standard_NC4as_T4_v3": (1, 15.0, 7.5),
        "Standard_NC8as_T4_v3": (1, 15.0, 7.5),
        "Standard_NV36ads_A10_v5": (1, 22.49, 8.6),
        "Standard_NC24ads_A100_v4": (1, 80.0, 8.0),
        "Standard_NC48ads_A100_v4": (2, 80.0, 8.0),
        "Standard_NC40ads_H100_v5": (1, 93.58, 9.0),
        "Standard_NC80adis_H100_v5": (2, 93.58, 9.0),
    }


def test_every_recorded_price_names_region_date_and_source() -> None:
    recorded = [p for s in GPU_SKUS.values() for p in (s.on_demand, s.spot) if p]
    assert len(recorded) == 3
    for price in recorded:
        assert price.usd > 0 and price.region == "eastus" and price.taken.startswith("2026-")
        assert price.source
