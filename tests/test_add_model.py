"""tools/add_model.py: a model outside the catalog costs one command and the lines it prints,
and the plan then sizes and serves it like any other.

The model is SmolLM3-3B, whose config.json is vendored whole in
tests/upstream/smollm3-3b-config-24f7882/. The command and its output are read from
docs/fork-guide.md ("Add a model"), so the guide and this test cannot drift. The parser
names are checked against vLLM v0.31.0's registries (tests/upstream/vllm-0.31.0-parsers/)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import catalog, sizing
from tests.conftest import copy_program
from tests.test_fork import GUIDE, apply_example, planned_examples
from tools import add_model
from tools.plan import ROOT

UPSTREAM = ROOT / "tests" / "upstream"
SMOLLM3 = UPSTREAM / "smollm3-3b-config-24f7882" / "config.json"
VLLM = UPSTREAM / "vllm-0.31.0-parsers"
# The guide's fenced blocks of one language, inside the "Add a model" section.
SECTION = re.compile(r"^## Add a model\n(?P<body>.*?)^## ", re.M | re.S)
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def guide_section_blocks(lang: str) -> list[str]:
    section = SECTION.search(GUIDE.read_text())["body"]
    return [
        "".join(line.removeprefix(m["indent"]) for line in m["body"].splitlines(True))
        for m in FENCE.finditer(section)
        if m["lang"] == lang
    ]


def guide_command(config: Path) -> list[str]:
    """The guide's offline add_model command, run by this interpreter on `config`."""
    (line,) = [
        line
        for block in guide_section_blocks("sh")
        for line in block.splitlines()
        if "--config" in line
    ]
    argv = shlex.split(line)
    assert argv[:3] == [".venv/bin/python", "-m", "tools.add_model"]
    argv[argv.index("--config") + 1] = str(config)
    return [sys.executable, *argv[1:]]


@pytest.fixture(scope="module")
def fork(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The program in a temporary folder, after the guide's add_model command."""
    fork = copy_program(tmp_path_factory.mktemp("fork"))
    added = subprocess.run(
        guide_command(SMOLLM3), cwd=fork, capture_output=True, text=True, check=False
    )
    return fork, added


def test_the_guides_command_writes_a_new_family_file_and_prints_what_the_guide_shows(
    fork: tuple[Path, subprocess.CompletedProcess],
) -> None:
    root, added = fork
    assert (added.returncode, added.stderr) == (0, "")
    (shown,) = guide_section_blocks("text")
    assert added.stdout == shown
    stack_lines = added.stdout.split("add to the stack file:\n")[1].splitlines()
    assert len(stack_lines) <= 10
    new_files = sorted(p.name for p in (root / "components" / "models").glob("*.json"))
    assert new_files == ["gemma-3.json", "phi-4-mini.json", "qwen3.json", "smollm3.json"]
    entry = json.loads((root / "components" / "models" / "smollm3.json").read_text())
    assert entry["architectures"]["smollm3-3b"] | {"provenance": None} == {
        "layers": 36,
        "hidden": 2048,
        "intermediate": 11008,
        "heads": 16,
        "kv_heads": 4,
        "head_dim": 128,  # no head_dim in config.json: 2048 / 16
        "vocab": 128256,
        "tied_embeddings": True,  # no tie_word_embeddings: Transformers' default
        "norms_per_layer": 2,
        "qk_norm": False,
        "sliding_window": 0,  # sliding_window null, every layer full_attention
        "global_every": 1,
        "multimodal": False,
        "vision_parameters": 0,
        "provenance": None,
    }
    (checkpoint,) = entry["checkpoints"]
    assert checkpoint["provenance"]["config_sha256"] == (
        "cef25c6da5422f151c06095e524529d9baed243ec9dc4ae7e045618b1ae06e3b"
    )
    assert (checkpoint["max_context"], checkpoint["recommended_context"]) == (65536, 32768)


def test_the_printed_lines_plan_sized_and_served_with_the_right_engine_args(
    fork: tuple[Path, subprocess.CompletedProcess],
) -> None:
    root, added = fork
    # The guide's a10 pool, then the lines add_model printed, merged into dev's stack file.
    (pool,) = [
        block
        for how, stack, block in planned_examples()
        if (how, stack) == ("merge", "dev") and "slm-deploy:gpuPools" in block
    ]
    apply_example(root / "stacks", "merge", "dev", pool)
    apply_example(
        root / "stacks", "merge", "dev", added.stdout.split("add to the stack file:\n")[1]
    )
    ran = subprocess.run(
        [sys.executable, "-m", "tools.plan", "dev", "--quiet"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ran.returncode, ran.stderr) == (0, "")
    outputs = json.loads((root / "out" / "dev" / "outputs.json").read_text())
    planned = outputs["models"]["smollm3-3b"]
    summary = (root / "out" / "dev" / "summary.md").read_text()
    (row,) = [line for line in summary.splitlines() if line.startswith("| smollm3-3b |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:4] == ["smollm3-3b", "vllm", "`HuggingFaceTB/SmolLM3-3B`", "small"]
    assert (cells[4], cells[5].split(" x ")[0]) == ("a10", "32768")
    # What the plan sized, from the entry add_model wrote. By hand from config.json: per
    # layer, attention 2048*128*(2*16 + 2*4) = 10,485,760 and MLP 3*2048*11008 = 67,633,152,
    # times 36 layers = 2,812,280,832; tied embeddings 128256*2048 = 262,668,288; norms
    # 36*2*2048 + 2048 = 149,504: 3,075,098,624 parameters, 6,150,197,248 bytes (5.73 GiB)
    # in bfloat16. KV cache: 2 (K and V) * 36 layers * 4 heads * 128 * 2 bytes = 73,728 bytes
    # a token, 2.25 GiB for one 32768-token sequence, which vLLM must hold to start.
    spec = catalog.load_models(root / "components" / "models")["HuggingFaceTB/SmolLM3-3B"]
    assert (spec.parameters, sizing.weight_bytes(spec)) == (3_075_098_624, 6_150_197_248)
    assert sizing.kv_cache_bytes_per_sequence(spec, 1) == 73_728
    # The A10's 22.49 GiB at vLLM's 0.90 share; the need is the weights, the KV cache (at
    # least one full sequence), activations and the runtime, so above 5.73 + 2.25 GiB.
    assert planned["usableGiB"] == 20.24 == float(cells[7])
    assert 5.73 + 2.25 < planned["requiredGiB"] == float(cells[6]) <= planned["usableGiB"]
    deployment = yaml.safe_load(
        (
            root / "out" / "dev" / "manifests" / "slm-inference" / "deployment-smollm3-3b.yaml"
        ).read_text()
    )
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"
    ]
    args = container["args"]
    assert args[:3] == [
        "HuggingFaceTB/SmolLM3-3B",
        "--served-model-name=smollm3-3b",
        "--max-model-len=32768",  # the catalog's serving default: min(65536, 32768)
    ]
    assert args[: len(planned["engineArgs"])] == planned["engineArgs"]
    assert "--dtype=bfloat16" in args  # the A10 has bfloat16 (compute capability 8.6)
    assert args.index("--enable-auto-tool-choice") + 1 == args.index("--tool-call-parser=hermes")
    assert not [a for a in args if a.startswith(("--quantization", "--trust", "--reasoning"))]


# -- the same source again, and a revision ------------------------------------------------


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the catalog's family files that add_model writes into."""
    target = tmp_path / "models"
    target.mkdir()
    for path in catalog.MODELS_DIR.glob("*.json"):
        (target / path.name).write_text(path.read_text())
    monkeypatch.setattr(add_model, "MODELS_DIR", target)
    return target


def test_adding_the_same_source_again_replaces_its_entry(
    models_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["--source", "HuggingFaceTB/SmolLM3-3B", "--config", str(SMOLLM3)]
    assert add_model.main(argv) == 0
    first = (models_dir / "smollm3.json").read_text()
    assert add_model.main([*argv, "--revision", "a" * 40, "--gated"]) == 0
    entry = json.loads((models_dir / "smollm3.json").read_text())
    assert first != (models_dir / "smollm3.json").read_text()
    (checkpoint,) = entry["checkpoints"]
    assert (checkpoint["revision"], checkpoint["gated"]) == ("a" * 40, True)
    assert checkpoint["source_url"] == (
        f"https://huggingface.co/HuggingFaceTB/SmolLM3-3B/blob/{'a' * 40}/config.json"
    )
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "    pool: <a gpuPools name>",
        f'    revision: "{"a" * 40}"',
        "# gated: pulumi config set --secret --path secrets.huggingFaceToken hf_...",
    ]
    assert len(catalog.load_models(models_dir)) == len(catalog.MODELS) + 1


def test_a_quantized_checkpoint_joins_its_familys_file(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = json.loads(SMOLLM3.read_text()) | {
        "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    for source, config_path in (
        ("HuggingFaceTB/SmolLM3-3B", SMOLLM3),
        ("HuggingFaceTB/SmolLM3-3B-AWQ", path),
    ):
        assert add_model.main(["--source", source, "--config", str(config_path)]) == 0
    models = catalog.load_models(models_dir)
    monkeypatch.setattr(catalog, "MODELS", models)  # what variants_of searches
    awq = models["HuggingFaceTB/SmolLM3-3B-AWQ"]
    assert (awq.family, awq.quantization) == ("smollm3-3b", "awq")
    assert [v.source for v in catalog.variants_of(models["HuggingFaceTB/SmolLM3-3B"])] == [
        "HuggingFaceTB/SmolLM3-3B-AWQ"
    ]
    document = json.loads((models_dir / "smollm3.json").read_text())
    assert list(document["architectures"]) == ["smollm3-3b"]


def test_a_new_size_of_a_catalog_series_lands_in_the_series_file(
    models_dir: Path, tmp_path: Path
) -> None:
    # A Qwen3 shape: qk norms, the hermes and qwen3 parsers, the series file qwen3.json.
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(model_type="qwen3", num_key_value_heads=8, head_dim=128)))
    assert add_model.main(["--source", "Qwen/Qwen3-32B", "--config", str(path)]) == 0
    assert sorted(p.name for p in models_dir.glob("*.json")) == [
        "gemma-3.json",
        "phi-4-mini.json",
        "qwen3.json",
    ]
    model = catalog.load_models(models_dir)["Qwen/Qwen3-32B"]
    assert (model.family, model.tool_call_parser, model.reasoning_parser) == (
        "qwen3-32b",
        "hermes",
        "qwen3",
    )
    assert (model.architecture.qk_norm, model.architecture.head_dim) == (True, 128)


def test_a_variant_whose_numbers_differ_from_its_familys_is_refused(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert add_model.main(["--source", "HuggingFaceTB/SmolLM3-3B", "--config", str(SMOLLM3)]) == 0
    before = (models_dir / "smollm3.json").read_text()
    other = _broken(tmp_path, {"num_hidden_layers": 28})
    assert add_model.main(["--source", "HuggingFaceTB/SmolLM3-3B-FP8", "--config", other]) == 2
    assert capsys.readouterr().err == (
        "add_model: architecture smollm3-3b: layers is 28 in this config.json but 36 for "
        "HuggingFaceTB/SmolLM3-3B; expected the same numbers for one family (give --family to "
        "record it apart)\n"
    )
    assert (models_dir / "smollm3.json").read_text() == before


# -- bad inputs: one line, exit 2, nothing written ---------------------------------------------


def _broken(tmp_path: Path, change: dict[str, Any] | None = None, drop: str = "") -> str:
    config = json.loads(SMOLLM3.read_text()) | (change or {})
    config.pop(drop, None)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            lambda t: ["--source", "x/y", "--config", _broken(t, drop="num_hidden_layers")],
            "add_model: config.json: num_hidden_layers is missing; expected a dense "
            "decoder-only transformer's config.json (num_hidden_layers, hidden_size, "
            "intermediate_size, num_attention_heads, vocab_size, max_position_embeddings)",
        ),
        (
            lambda t: ["--source", "x/y", "--config", _broken(t, {"num_experts": 128})],
            "add_model: config.json: num_experts: 128 is not allowed; expected a dense model "
            "(the catalog's memory formula has no experts)",
        ),
        (
            lambda t: ["--source", "x/y", "--config", _broken(t, {"hidden_size": "2048"})],
            "add_model: config.json: hidden_size: '2048' is not allowed; expected an integer > 0",
        ),
        (
            lambda t: [
                "--source",
                "x/y",
                "--config",
                _broken(t, {"quantization_config": {"quant_method": "bitsandbytes"}}),
            ],
            "add_model: config.json: quantization_config.quant_method: 'bitsandbytes' is not "
            "allowed; expected awq, gptq or fp8",
        ),
        (
            lambda t: [
                "--source",
                "x/y",
                "--config",
                _broken(t, {"quantization_config": {"quant_method": "gptq", "bits": 8}}),
            ],
            "add_model: config.json: quantization_config: {'bits': 8, 'group_size': None} is "
            "not allowed; expected 4 bits in groups of 128 for gptq (the format the catalog's "
            "bytes per weight assume)",
        ),
        (
            lambda t: ["--source", "x/y", "--config", _broken(t, {"vision_config": {}})],
            "add_model: config.json: vision_config: an image tower is not counted from "
            "config.json; expected --vision-parameters (measured: tools/calibrate_memory.py)",
        ),
        (
            lambda t: ["--source", "x/y", "--config", str(t / "absent.json")],
            "add_model: --config: {t}/absent.json: No such file or directory",
        ),
        (
            lambda t: ["--source", "x/y", "--config", str(UPSTREAM / "README.md")],
            "add_model: config.json: not a JSON file (Expecting value: line 1 column 1 (char 0))",
        ),
        (
            lambda t: ["--source", "SmolLM3-3B", "--config", str(SMOLLM3)],
            "add_model: --source: 'SmolLM3-3B' is not allowed; expected a Hugging Face "
            "repository such as HuggingFaceTB/SmolLM3-3B",
        ),
        (
            lambda t: ["--source", "x/y", "--revision", "main", "--config", str(SMOLLM3)],
            "add_model: --revision: 'main' is not allowed; expected a 40-character commit",
        ),
        (
            lambda t: ["--source", "x/y", "--config", str(SMOLLM3), "--recommended-context", "0"],
            "add_model: --recommended-context: 0 is not allowed; expected 1 to "
            "max_position_embeddings (65536)",
        ),
        (
            lambda t: ["--source", "x/y", "--config", str(SMOLLM3), "--pool", "A10"],
            "add_model: --pool: 'A10' is not allowed; expected a DNS-1123 label",
        ),
        (
            lambda t: ["--config", str(SMOLLM3)],
            "add_model: the following arguments are required: --source",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv, line: str, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    before = {p.name: p.read_text() for p in models_dir.glob("*.json")}
    assert add_model.main(argv(tmp_path)) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", line.replace("{t}", str(tmp_path)) + "\n")
    assert {p.name: p.read_text() for p in models_dir.glob("*.json")} == before


# -- what it derives --------------------------------------------------------------------------


def _config(**settings: Any) -> dict[str, Any]:
    base = {
        "model_type": "llama",
        "num_hidden_layers": 4,
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_attention_heads": 8,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
    }
    return base | settings


def test_defaults_follow_transformers_kv_heads_head_dim_and_tied_embeddings() -> None:
    arch = add_model.derive(_config()).architecture
    assert (arch.kv_heads, arch.head_dim, arch.tied_embeddings) == (8, 32, True)


def test_a_window_counts_only_where_layers_use_it() -> None:
    # Qwen2.5 records a window it does not use; newer configs list each layer's kind.
    assert add_model.sliding(_config(sliding_window=32768, use_sliding_window=False), 4) == (0, 1)
    kinds = ["sliding_attention"] * 5 + ["full_attention"]
    assert add_model.sliding({"sliding_window": 512, "layer_types": kinds * 2}, 12) == (512, 6)
    assert add_model.sliding({"sliding_window": 1024, "sliding_window_pattern": 6}, 34) == (1024, 6)
    with pytest.raises(add_model.AddModelError, match="not one in every N"):
        add_model.sliding({"sliding_window": 512, "layer_types": kinds[::-1] + kinds}, 12)


def test_a_gemma3_multimodal_config_is_read_from_its_text_config() -> None:
    config = {
        "model_type": "gemma3",
        "vision_config": {"model_type": "siglip_vision_model"},
        "text_config": _config(
            model_type="gemma3_text",
            num_key_value_heads=4,
            head_dim=256,
            sliding_window=1024,
            sliding_window_pattern=6,
        ),
    }
    derived = add_model.derive(config, vision_parameters=419_816_304)
    arch = derived.architecture
    assert (arch.norms_per_layer, arch.qk_norm, arch.head_dim, arch.kv_heads) == (4, True, 256, 4)
    assert (arch.sliding_window, arch.global_every, arch.multimodal) == (1024, 6, True)
    assert (derived.float16_ok, derived.parsers) == (False, add_model.Parsers(None))


def test_quantization_and_remote_code_come_from_the_config() -> None:
    fp8 = _config(quantization_config={"quant_method": "fp8", "weight_block_size": [128, 128]})
    assert add_model.derive(fp8).quantization == "fp8"
    assert add_model.derive(_config(auto_map={"AutoModel": "x.Y"})).trust_remote_code


def test_the_parser_table_agrees_with_the_catalogs_families() -> None:
    models = catalog.MODELS
    phi = models["microsoft/Phi-4-mini-instruct"]
    qwen = models["Qwen/Qwen3-8B"]
    assert add_model.parsers_for("phi3", phi.architecture.vocab) == add_model.Parsers(
        phi.tool_call_parser, phi.reasoning_parser
    )
    assert add_model.parsers_for("qwen3", qwen.architecture.vocab) == add_model.Parsers(
        qwen.tool_call_parser, qwen.reasoning_parser
    )
    assert add_model.parsers_for("phi3", 32064) == add_model.Parsers(None)  # Phi-3's vocabulary


# -- contract: parser names and float16 refusals of the pinned vLLM --------------------------


def test_every_parser_name_is_one_the_pinned_vllm_registers() -> None:
    tools = set(json.loads((VLLM / "tool_parsers.json").read_text()))
    reasoning = set(json.loads((VLLM / "reasoning_parsers.json").read_text()))
    known = list(add_model.PARSERS.values()) + [
        add_model.Parsers(m.tool_call_parser, m.reasoning_parser) for m in catalog.MODELS.values()
    ]
    assert {p.tool_call for p in known} - {None} <= tools
    assert {p.reasoning for p in known} - {None} <= reasoning
    assert (len(tools), len(reasoning)) == (51, 35)


def test_the_float16_table_is_the_pinned_vllms() -> None:
    refused = set(json.loads((VLLM / "float16_not_supported.json").read_text()))
    assert refused == add_model.FLOAT16_NOT_SUPPORTED
