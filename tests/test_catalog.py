"""Catalog data: complete, sourced and consistent."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert model.engine in ("vllm", "ollama", "onnxruntime")
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
    assert len(recorded) == 4
    for price in recorded:
        assert price.usd > 0 and price.region == "eastus" and price.taken.startswith("2026-")
        assert price.source


# -- the catalog as data: components/models/<family>.json ------------------------------------


def test_each_family_has_its_file_and_every_entry_names_its_config_json() -> None:
    files = {
        path.name: [c["source"] for c in json.loads(path.read_text())["checkpoints"]]
        for path in sorted(catalog.MODELS_DIR.glob("*.json"))
    }
    assert {name: len(sources) for name, sources in files.items()} == {
        "gemma-3.json": 6,
        "phi-4-mini.json": 3,
        "qwen3.json": 18,
    }
    assert sorted(s for sources in files.values() for s in sources) == sorted(MODELS)
    for path in catalog.MODELS_DIR.glob("*.json"):
        document = json.loads(path.read_text())
        entries = [*document["architectures"].values(), *document["checkpoints"]]
        for entry in entries:
            assert entry["provenance"]["config_json"].startswith("https://huggingface.co/")
            assert entry["provenance"]["config_json"].endswith("/config.json")


def test_q4_k_m_bytes_per_weight_is_computed_from_phi4_minis_recorded_download() -> None:
    # Ollama's 2.5 GB download over Phi-4-mini's 3,836,021,760 parameters (its config.json).
    phi = MODELS["phi4-mini:3.8b"]
    assert (phi.file_bytes, phi.parameters) == (2_500_000_000, 3_836_021_760)
    assert pytest.approx(2.5e9 / 3_836_021_760) == catalog.Q4_K_M_BYTES_PER_WEIGHT
    assert MODELS["qwen3:8b"].bytes_per_weight == catalog.Q4_K_M_BYTES_PER_WEIGHT


@pytest.fixture
def family_files(tmp_path: Path) -> Path:
    for path in catalog.MODELS_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    return tmp_path


def _edit(folder: Path, name: str, change) -> None:
    path = folder / name
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_the_copied_files_load_as_the_catalog(family_files: Path) -> None:
    assert catalog.load_models(family_files) == MODELS


@pytest.mark.parametrize(
    ("name", "change", "line"),
    [
        (
            "qwen3.json",
            lambda d: d["checkpoints"][3].update(max_context="40960"),
            "components/models/qwen3.json: checkpoints[3].max_context: '40960' is not "
            "allowed; expected an integer",
        ),
        (
            "qwen3.json",
            lambda d: d["checkpoints"][0].pop("gated"),
            "components/models/qwen3.json: checkpoints[0]: 'gated' is missing",
        ),
        (
            "gemma-3.json",
            lambda d: d["checkpoints"][0].update(gatd=True),
            "components/models/gemma-3.json: checkpoints[0].gatd: not a known key; expected "
            "one of " + ", ".join(catalog.CHECKPOINT_FIELDS),
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][0].update(engine="sglang"),
            "components/models/phi-4-mini.json: checkpoints[0].engine: 'sglang' is not "
            'allowed; expected one of "vllm", "ollama", "onnxruntime"',
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][0].update(quantization="int3"),
            "components/models/phi-4-mini.json: checkpoints[0].quantization: 'int3' is not "
            'allowed; expected one of null, "awq", "gptq", "fp8", "q4_K_M", "int4"',
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][0].update(architecture="phi-4"),
            "components/models/phi-4-mini.json: checkpoints[0].architecture: 'phi-4' is not "
            'allowed; expected one of "phi-4-mini"',
        ),
        (
            "phi-4-mini.json",
            lambda d: d["architectures"]["phi-4-mini"].update(tied_embeddings="true"),
            "components/models/phi-4-mini.json: architectures.phi-4-mini.tied_embeddings: "
            "'true' is not allowed; expected true or false",
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][0].pop("provenance"),
            "components/models/phi-4-mini.json: checkpoints[0].provenance: None is not "
            'allowed; expected an object with "config_json" (where the numbers were read) '
            'and "commit"',
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"].append(d["checkpoints"][0]),
            "components/models/phi-4-mini.json: source 'microsoft/Phi-4-mini-instruct' is "
            "already in components/models/phi-4-mini.json",
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][2].pop("subfolder"),
            "components/models/phi-4-mini.json: checkpoints[2]: 'subfolder' is missing",
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][0].update(subfolder="cpu"),
            "components/models/phi-4-mini.json: checkpoints[0].subfolder: not a known key; "
            "expected one of " + ", ".join(catalog.CHECKPOINT_FIELDS),
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][2].update(file_bytes=4_933_948_717),
            "components/models/phi-4-mini.json: checkpoints[2].file_bytes: 4933948717 is not "
            "allowed; expected the sum of its files, 4933948716",
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][2]["files"].append(["model.onnx", 1]),
            "components/models/phi-4-mini.json: checkpoints[2].files: 'model.onnx' appears twice",
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][2]["files"].append(["vocab.txt", "3.9 MB"]),
            "components/models/phi-4-mini.json: checkpoints[2].files: ['vocab.txt', '3.9 MB'] "
            "is not allowed; expected a non-empty list of [file name, size in bytes] pairs, "
            "or null",
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][2].update(kv_dtype="bfloat16"),
            "components/models/phi-4-mini.json: checkpoints[2].kv_dtype: 'bfloat16' is not "
            'allowed; expected one of "float32", "float16"',
        ),
        (
            "phi-4-mini.json",
            lambda d: d["checkpoints"][2].update(revision="a64b530"),
            "components/models/phi-4-mini.json: checkpoints[2].revision: 'a64b530' is not "
            "allowed; expected a 40-character lowercase hex commit or null",
        ),
    ],
)
def test_a_bad_family_file_stops_with_one_line_naming_file_and_key(
    family_files: Path, name: str, change, line: str
) -> None:
    _edit(family_files, name, change)
    with pytest.raises(catalog.CatalogError) as raised:
        catalog.load_models(family_files)
    assert str(raised.value) == line


def test_a_key_given_twice_or_a_broken_file_is_one_line(family_files: Path) -> None:
    path = family_files / "phi-4-mini.json"
    path.write_text(path.read_text().replace('"about":', '"about": "x", "about":', 1))
    with pytest.raises(catalog.CatalogError) as twice:
        catalog.load_models(family_files)
    assert str(twice.value) == (
        "components/models/phi-4-mini.json: not a valid JSON catalog file: "
        "key 'about' appears twice"
    )
    path.write_bytes(b'{"about": "caf\xe9"}')  # Latin-1, not UTF-8
    with pytest.raises(catalog.CatalogError) as broken:
        catalog.load_models(family_files)
    assert str(broken.value).startswith(
        "components/models/phi-4-mini.json: not a valid JSON catalog file: 'utf-8' codec"
    )


# -- ONNX Runtime GenAI checkpoints and CPU SKUs -----------------------------------------------

PHI_ONNX = "microsoft/Phi-4-mini-instruct-onnx"


def test_the_phi4_mini_onnx_cpu_variant_records_its_folder_files_and_revision() -> None:
    onnx = MODELS[PHI_ONNX]
    assert (onnx.engine, onnx.family, onnx.quantization) == ("onnxruntime", "phi-4-mini", "int4")
    assert onnx.subfolder == "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4"
    assert onnx.revision == "a64b5309e58f6ac22cacdf9d143ab7455d8b9f5b"
    # The 11 files of the Hugging Face tree page, in bytes as it prints them (SI units).
    assert dict(onnx.files) == {
        "added_tokens.json": 249,
        "config.json": 2_500,
        "configuration_phi3.py": 10_900,
        "genai_config.json": 1_520,
        "merges.txt": 2_420_000,
        "model.onnx": 52_100_000,
        "model.onnx.data": 4_860_000_000,
        "special_tokens_map.json": 587,
        "tokenizer.json": 15_500_000,
        "tokenizer_config.json": 2_960,
        "vocab.json": 3_910_000,
    }
    # Their sum, which the page rounds to the folder's 4.93 GB.
    assert onnx.file_bytes == 4_933_948_716
    assert round(onnx.file_bytes / 1e9, 2) == 4.93
    # The builder's CPU int4 graphs keep the KV cache in float32.
    assert onnx.kv_bytes_per_element == 4


def test_int4_bytes_per_weight_comes_only_from_recorded_files(family_files: Path) -> None:
    # 4,933,948,716 bytes over Phi-4-mini's 3,836,021,760 parameters: 1.286, not 0.5, since
    # the CPU build keeps the 200,064 x 3,072 embedding in float32.
    onnx = MODELS[PHI_ONNX]
    assert onnx.bytes_per_weight == pytest.approx(4_933_948_716 / 3_836_021_760)
    _edit(
        family_files,
        "phi-4-mini.json",
        lambda d: d["checkpoints"][2].update(files=None, file_bytes=None),
    )
    unrecorded = catalog.load_models(family_files)[PHI_ONNX]
    assert unrecorded.files == () and unrecorded.file_bytes is None
    with pytest.raises(ValueError, match="no file sizes recorded"):
        _ = unrecorded.bytes_per_weight


def test_cpu_skus_carry_the_size_pages_vcpus_and_memory() -> None:
    facts = {s.vm_size: (s.vcpus, s.ram_gib, s.temp_disk_gib) for s in catalog.CPU_SKUS.values()}
    assert facts == {
        "Standard_D4s_v5": (4, 16, 0),
        "Standard_D8s_v5": (8, 32, 0),
        "Standard_D16s_v5": (16, 64, 0),
        "Standard_D4as_v5": (4, 16, 0),
        "Standard_D8as_v5": (8, 32, 0),
        "Standard_D16as_v5": (16, 64, 0),
        "Standard_E4s_v5": (4, 32, 0),
        "Standard_E8s_v5": (8, 64, 0),
        "Standard_E16s_v5": (16, 128, 0),
    }
    # No CPU price has a citable source yet: none is recorded, none is invented.
    assert all(s.on_demand is None and s.spot is None for s in catalog.CPU_SKUS.values())
