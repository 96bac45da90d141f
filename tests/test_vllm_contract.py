"""Contract: every rendered vLLM command line, parsed and validated by vLLM's own code at the
version the pinned image runs (v0.31.0), on CPU.

tools/vllm_check/check_args.py runs in .venv-vllm (`make vllm-env`: vLLM and PyTorch's CPU
build, locked in tools/vllm_check/requirements.txt). It parses each container's command and
arguments with the `vllm serve` parser vLLM builds (make_arg_parser), runs the serve checks,
then builds the ModelConfig and the quantization config as the engine does at start-up:
dtype x quantization, context length against the checkpoint, the quantization method's
minimum compute capability against the pool's GPU.

The checkpoints' config.json files are not vendored: Hugging Face cannot be reached from
here, and no copy at a recorded revision was found. Each config.json is written from the
catalog (components/catalog.py: architecture, context, and the checkpoint format it
declares), so what is checked is vLLM's reading of our flags for a checkpoint as the catalog
describes it, not the catalog itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components import sizing
from components.catalog import GPU_SKUS, MODELS, ModelSpec
from tests.conftest import (
    FIXTURE_STACKS,
    STACKS,
    copy_config_root,
    fixture_root,
    read_stack,
    write_stack,
)
from tests.test_lora import lora_stack
from tools.plan import ROOT, build_plan, kubernetes_manifests, summary_markdown

VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
CHECK = ROOT / "tools" / "vllm_check" / "check_args.py"
# vLLM's start-up imports torch and its config code: about 20-40 s on two busy cores.
CHECK_TIMEOUT_SECONDS = 600
# A revision for checkpoints the stack does not pin: the cache's refs/main points at it.
UNPINNED = "0" * 40

# Variants of dev (one T4 spot pool) that reach what the shipped stacks do not: AWQ on a GPU
# with bfloat16 (issue 18), FP8 below Hopper (weight-only) and on Hopper, tensor parallel,
# and a gated Gemma 3 checkpoint (bfloat16 only).
VARIANT_POOLS = [
    {"name": "a100x2", "vmSize": "Standard_NC48ads_A100_v4", "minCount": 0, "maxCount": 2},
    {"name": "h100", "vmSize": "Standard_NC40ads_H100_v5", "minCount": 0, "maxCount": 1},
    {"name": "a10", "vmSize": "Standard_NV36ads_A10_v5", "minCount": 0, "maxCount": 1},
]
VARIANT_MODELS = [
    ("qwen3-4b-awq", "Qwen/Qwen3-4B-AWQ", "t4spot", 1),
    ("qwen3-4b-fp8", "Qwen/Qwen3-4B-FP8", "t4spot", 1),
    ("qwen3-8b-awq", "Qwen/Qwen3-8B-AWQ", "a100x2", 1),
    ("qwen3-8b-tp2", "Qwen/Qwen3-8B", "a100x2", 2),
    ("qwen3-8b-fp8", "Qwen/Qwen3-8B-FP8", "h100", 1),
    ("gemma3-1b", "google/gemma-3-1b-it", "a10", 1),
]


def vllm_cases(plan: dict[str, Any], stack: dict[str, Any], label: str) -> list[dict[str, Any]]:
    """One case per vLLM container of a plan: its command line and its pool's GPU."""
    skus = {
        pool["name"]: GPU_SKUS[pool["vmSize"]]
        for pool in stack["config"].get("slm-deploy:gpuPools", [])
    }
    cases = []
    for _path, manifest in sorted(kubernetes_manifests(plan["resources"]).items()):
        if manifest["kind"] != "Deployment":
            continue
        pod = manifest["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if container["name"] != "vllm":
                continue
            pool = next(iter(pod["nodeSelector"].values()))
            cases.append(
                {
                    "name": f"{label}/{manifest['metadata']['name']}",
                    "argv": container["command"] + container["args"],
                    "compute_capability": skus[pool].compute_capability,
                }
            )
    return cases


def variant_stack(root: Path) -> dict[str, Any]:
    document = read_stack(root, "dev")
    config = document["config"]
    # Room on dev's T4 pool for its model and two more (the plan checks GPUs per pool).
    config["slm-deploy:gpuPools"][0]["maxCount"] = 4
    config["slm-deploy:gpuPools"] += VARIANT_POOLS
    for name, source, pool, tp in VARIANT_MODELS:
        config["slm-deploy:models"].append(
            {
                "name": name,
                "engine": "vllm",
                "source": source,
                "pool": pool,
                "tensorParallelSize": tp,
                "maxModelLen": 4096,
                "maxNumSeqs": 4,
            }
        )
    config["slm-deploy:secrets"] = {"huggingFaceToken": {"secure": "v1:abc"}}
    # The request log switch's flag goes through vLLM's own parser too.
    config["slm-deploy:monitoring"]["logs"] = {"requestLogging": True}
    write_stack(root, "dev", document)
    return document


def hf_config(model: ModelSpec) -> dict[str, Any]:
    """The config.json of a checkpoint as the catalog describes it (see the module doc)."""
    arch = model.architecture
    config: dict[str, Any] = {
        "hidden_size": arch.hidden,
        "intermediate_size": arch.intermediate,
        "num_hidden_layers": arch.layers,
        "num_attention_heads": arch.heads,
        "num_key_value_heads": arch.kv_heads,
        "head_dim": arch.head_dim,
        "vocab_size": arch.vocab,
        "max_position_embeddings": model.max_context,
        "tie_word_embeddings": arch.tied_embeddings,
        "torch_dtype": "bfloat16",
    }
    if model.family.startswith("qwen3"):
        config |= {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}
    elif model.family == "phi-4-mini":
        config |= {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3"}
    elif model.family == "gemma-3-1b":
        config |= {
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": "gemma3_text",
            "sliding_window": arch.sliding_window,
            "sliding_window_pattern": arch.global_every,
        }
    else:
        raise AssertionError(f"no config.json shape for {model.family}: add one here")
    # The formats the catalog's bytes per weight assume (components/catalog.py).
    if model.quantization == "awq":
        config["quantization_config"] = {
            "quant_method": "awq",
            "bits": 4,
            "group_size": 128,
            "zero_point": True,
            "version": "gemm",
        }
    elif model.quantization == "fp8":
        config["quantization_config"] = {
            "quant_method": "fp8",
            "activation_scheme": "dynamic",
            "fmt": "e4m3",
            "weight_block_size": [128, 128],
        }
    return config


def write_hf_cache(home: Path, cases: list[dict[str, Any]]) -> None:
    """A Hugging Face cache holding each served checkpoint's config.json at its revision."""
    for case in cases:
        argv = case["argv"]
        if argv[:2] != ["vllm", "serve"]:
            continue  # refused before any checkpoint is read
        source = argv[2]
        revisions = [a.split("=", 1)[1] for a in argv if a.startswith("--revision=")]
        revision = revisions[0] if revisions else UNPINNED
        repo = home / "hub" / f"models--{source.replace('/', '--')}"
        snapshot = repo / "snapshots" / revision
        snapshot.mkdir(parents=True, exist_ok=True)
        (snapshot / "config.json").write_text(json.dumps(hf_config(MODELS[source])))
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(UNPINNED)


def run_check(home: Path, cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON.relative_to(ROOT)} is missing: run `make vllm-env`")
    write_hf_cache(home, cases)
    done = subprocess.run(
        [str(VLLM_PYTHON), str(CHECK)],
        input=json.dumps({"hf_home": str(home), "cases": cases}),
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["vllm"] == "0.31.0"
    return {result["name"]: result for result in report["results"]}


@pytest.fixture(scope="module")
def variant(tmp_path_factory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The variant of dev (AWQ, FP8, tensor parallel, gated) and its stack document."""
    root = tmp_path_factory.mktemp("variant")
    (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (root / "stacks").mkdir()
    for stack in STACKS:
        source = FIXTURE_STACKS / f"Pulumi.{stack}.yaml"
        (root / "stacks" / source.name).write_text(source.read_text())
    document = variant_stack(root)
    return build_plan("dev", config_root=root), document


@pytest.fixture(scope="module")
def lora_variant(tmp_path_factory) -> tuple[dict[str, Any], dict[str, Any]]:
    """prod with LoRA adapters on both models (tests/test_lora.py's lora_stack)."""
    root = copy_config_root(tmp_path_factory.mktemp("lora"))
    document = lora_stack(root)
    return build_plan("prod", config_root=root), document


@pytest.fixture(scope="module")
def checked(
    plans, variant, lora_variant, tmp_path_factory
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every vLLM container of every shipped stack and of the variants, plus a misspelt flag,
    checked in one run of vLLM (its imports dominate the time)."""
    cases = [
        case
        for stack in STACKS
        for case in vllm_cases(plans[stack], read_stack(fixture_root(), stack), stack)
    ]
    plan, document = variant
    cases += vllm_cases(plan, document, "variant")
    plan, document = lora_variant
    cases += vllm_cases(plan, document, "lora")
    results = run_check(tmp_path_factory.mktemp("hf"), [*cases, *broken(cases)])
    return cases, results


def broken(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rendered command lines with one mistake each, which vLLM must refuse: they show that
    each stage of the check can fail."""
    by_name = {case["name"]: case for case in cases}

    def edited(name: str, label: str, old: str, new: str) -> dict[str, Any]:
        case = by_name[name]
        return dict(case, name=label, argv=[arg.replace(old, new) for arg in case["argv"]])

    return [
        edited("dev/phi4-mini", "misspelt", "--max-model-len=", "--max-modle-len="),
        edited(
            "variant/qwen3-8b-tp2", "tp3", "--tensor-parallel-size=2", "--tensor-parallel-size=3"
        ),
        edited("variant/qwen3-4b-awq", "awq-fp32", "--dtype=float16", "--dtype=float32"),
        edited("variant/qwen3-4b-awq", "too-long", "--max-model-len=4096", "--max-model-len=65536"),
        # LoRA: a rank vLLM has no slot size for, a name its --lora-modules parser reads as
        # JSON, and fewer host slots than GPU slots (LoRAConfig's own check).
        edited("lora/qwen3-8b", "lora-rank-24", "--max-lora-rank=64", "--max-lora-rank=24"),
        edited("lora/phi4-mini", "lora-comma", "phi4-mini-support=", "phi4,mini-support="),
        dict(
            by_name["lora/qwen3-8b"],
            name="lora-cpu-slots",
            argv=[*by_name["lora/qwen3-8b"]["argv"], "--max-cpu-loras=1"],
        ),
        # The entry point this project ran before v0.31.0 deprecated it.
        dict(
            by_name["dev/phi4-mini"],
            name="module-entry-point",
            argv=["python3", "-m", "vllm.entrypoints.openai.api_server"]
            + by_name["dev/phi4-mini"]["argv"][3:],
        ),
    ]


def test_every_rendered_vllm_command_line_passes_vllms_own_checks(checked) -> None:
    cases, results = checked
    # The shipped stacks' models and every variant model are all here.
    assert {case["name"] for case in cases} >= {
        f"variant/{name}" for name, *_ in VARIANT_MODELS
    } | {"dev/phi4-mini", "prod/qwen3-8b"}
    failures = {
        case["name"]: results[case["name"]]["errors"]
        for case in cases
        if results[case["name"]]["errors"]
    }
    assert failures == {}
    # Prompts reach the logs only where a stack turns the request log on (the variant does).
    logged = {case["name"] for case in cases if "--enable-log-requests" in case["argv"]}
    assert logged == {case["name"] for case in cases if case["name"].startswith("variant/")}


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("misspelt", "check_args.py: error: unrecognized arguments: --max-modle-len=4096"),
        (
            "tp3",
            "ValueError: Total number of attention heads (32) must be divisible by tensor "
            "parallel size (3).",
        ),
        (
            "awq-fp32",
            "ValueError: torch.float32 is not supported for quantization method auto_awq. "
            "Supported dtypes: [torch.float16, torch.bfloat16]",
        ),
        ("too-long", "ValidationError: Value error, User-specified max_model_len (65536)"),
        ("module-entry-point", "the command is ['python3'], not the `vllm` CLI"),
        (
            "lora-rank-24",
            "check_args.py serve: error: argument --max-lora-rank: invalid choice: 24 (choose from "
            "1, 8, 16, 32, 64, 128, 256, 320, 512)",
        ),
        ("lora-comma", "check_args.py serve: error: Invalid JSON format for --lora-modules"),
        (
            "lora-cpu-slots",
            "ValidationError: Value error, max_cpu_loras (1) must be >= max_loras (2)",
        ),
    ],
)
def test_each_kind_of_mistake_is_refused(checked, case, error) -> None:
    _, results = checked
    (message,) = results[case]["errors"]
    assert message.startswith(error)


def test_the_lora_ranks_sizing_chooses_from_are_vllms(checked) -> None:
    # vLLM's parser lists MaxLoRARanks (vllm/config/lora.py) when it refuses a rank.
    _, results = checked
    (message,) = results["lora-rank-24"]["errors"]
    assert message.endswith(f"(choose from {', '.join(map(str, sizing.MAX_LORA_RANKS))})")


def test_vllm_reads_the_adapters_and_slots_the_plan_renders(checked) -> None:
    """vLLM's parser takes each --lora-modules value as name=path, and the LoRAConfig it
    builds has the slots sizing counted (tests/test_lora.py asserts the memory)."""
    _, results = checked
    phi, qwen = results["lora/phi4-mini"], results["lora/qwen3-8b"]
    assert phi["lora"] == {"max_loras": 1, "max_lora_rank": 16}
    assert phi["lora_modules"] == [
        {
            "name": "phi4-mini-support",
            "path": "/models/huggingface/hub/models--example-org--phi4-mini-support-lora"
            "/snapshots/" + "1" * 40,
        }
    ]
    assert qwen["lora"] == {"max_loras": 2, "max_lora_rank": 64}
    assert [m["name"] for m in qwen["lora_modules"]] == ["qwen3-8b-sql", "qwen3-8b-legal"]
    assert results["prod/phi4-mini"]["lora"] is None
    assert results["prod/phi4-mini"]["lora_modules"] is None


def test_awq_with_bfloat16_is_accepted_by_vllm(checked) -> None:
    # Issue 18 asked whether `--dtype=bfloat16 --quantization=awq` can start. At v0.31.0
    # `awq` resolves to the AutoAWQ config, whose kernels take float16 and bfloat16.
    _, results = checked
    awq = results["variant/qwen3-8b-awq"]
    assert awq["dtype"] == "torch.bfloat16"
    assert awq["quantization"] == "auto_awq"
    assert awq["act_dtypes"] == ["torch.float16", "torch.bfloat16"]


@pytest.mark.parametrize(
    ("case", "method"),
    [("variant/qwen3-4b-awq", "awq"), ("variant/qwen3-4b-fp8", "fp8")],
)
def test_sizing_minimum_capability_is_vllms(checked, case, method) -> None:
    _, results = checked
    assert results[case]["errors"] == []
    assert (
        sizing.QUANTIZATION_MIN_COMPUTE_CAPABILITY[method] * 10 == (results[case]["min_capability"])
    )


def test_fp8_on_a_t4_starts_in_vllm(checked) -> None:
    # Below 8.9 the plan used to refuse FP8; vLLM's Fp8Config takes 7.5 (weight-only there).
    _, results = checked
    fp8 = results["variant/qwen3-4b-fp8"]
    assert (fp8["errors"], fp8["quantization"], fp8["dtype"]) == ([], "fp8", "torch.float16")


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_runs_as_vllm_serve_without_its_api_docs(checked, stack) -> None:
    cases, results = checked
    mine = [case for case in cases if case["name"].startswith(f"{stack}/")]
    for case in mine:
        assert case["argv"][:2] == ["vllm", "serve"]
        assert not any(arg.startswith("--model") for arg in case["argv"])
        # vLLM's parser reads the flag as dropping /docs, /redoc and /openapi.json.
        assert results[case["name"]]["docs_disabled"] is True


def test_the_plan_summary_says_what_fp8_weight_only_costs(variant) -> None:
    """The FP8 checkpoint on a T4 runs, and the summary says it runs without FP8 compute;
    the one on an H100 carries no note."""
    plan, _ = variant
    models = plan["outputs"]["models"]
    assert models["qwen3-4b-fp8"]["notes"] == [
        "fp8 weight-only on T4 (compute capability 7.5, native FP8 from 9.0): vLLM's Marlin "
        "kernel keeps the weights in 8 bits and multiplies in float16, slower for prefill and "
        "large batches than FP8 compute"
    ]
    assert "notes" not in models["qwen3-8b-fp8"]
    assert f"- qwen3-4b-fp8: {models['qwen3-4b-fp8']['notes'][0]}" in summary_markdown(plan)
