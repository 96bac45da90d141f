"""LoRA adapters of vLLM models (issue 15): the config rules, the rendered flags and init
containers, the warmer's Job, the memory the adapter slots take, and the served names.

vLLM's own parser and LoRAConfig check these command lines in tests/test_vllm_contract.py
(lora_stack below is its LoRA variant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components import capacity, catalog, sizing
from tests.conftest import copy_config_root, read_stack, write_stack
from tools import smoke_stack
from tools.plan import PlanConfigError, build_plan, kubernetes_manifests, summary_markdown

WARMER_IMAGE = "registry.example.com/slm/model-cache-warmer:0.1.0@sha256:" + "0" * 64
SUPPORT = {
    "name": "phi4-mini-support",
    "source": "example-org/phi4-mini-support-lora",
    "revision": "1" * 40,
    "rank": 12,
}
QWEN_ADAPTERS = [
    {
        "name": "qwen3-8b-sql",
        "source": "example-org/qwen3-8b-sql-lora",
        "revision": "2" * 40,
        "rank": 8,
    },
    {
        "name": "qwen3-8b-legal",
        "source": "example-org/qwen3-8b-legal-lora",
        "revision": "3" * 40,
        "rank": 64,
    },
]
HUB = "/models/huggingface/hub"


def lora_stack(root: Path) -> dict[str, Any]:
    """prod with the cache warmer, one adapter on phi4-mini and two on qwen3-8b."""
    document = read_stack(root, "prod")
    config = document["config"]
    config.setdefault("slm-deploy:serving", {})["cacheWarmer"] = {
        "enabled": True,
        "image": WARMER_IMAGE,
    }
    models = config["slm-deploy:models"]
    models[0]["adapters"] = [dict(SUPPORT)]
    models[1]["adapters"] = [dict(a) for a in QWEN_ADAPTERS]
    write_stack(root, "prod", document)
    return document


@pytest.fixture(scope="module")
def lora_plan(tmp_path_factory) -> dict[str, Any]:
    root = copy_config_root(tmp_path_factory.mktemp("lora"))
    lora_stack(root)
    return build_plan("prod", config_root=root)


def _pod(plan: dict[str, Any], kind: str, prefix: str) -> dict[str, Any]:
    (found,) = [
        m
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == kind and m["metadata"]["name"].startswith(prefix)
    ]
    return found["spec"]["template"]["spec"]


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in pod["containers"] if c["name"] == name]
    return found


def test_adapters_render_vllms_lora_flags_by_value(lora_plan) -> None:
    phi = _container(_pod(lora_plan, "Deployment", "phi4-mini"), "vllm")["args"]
    assert phi[phi.index("--enable-lora") : phi.index("--enable-lora") + 3] == [
        "--enable-lora",
        "--max-loras=1",
        "--max-lora-rank=16",  # the smallest of vLLM's ranks holding r=12
    ]
    start = phi.index("--lora-modules")
    assert phi[start : start + 2] == [
        "--lora-modules",
        f"phi4-mini-support={HUB}/models--example-org--phi4-mini-support-lora/snapshots/"
        + "1" * 40,
    ]
    qwen = _container(_pod(lora_plan, "Deployment", "qwen3-8b"), "vllm")["args"]
    assert {"--max-loras=2", "--max-lora-rank=64"} <= set(qwen)
    start = qwen.index("--lora-modules")
    assert qwen[start + 1 : start + 3] == [
        f"qwen3-8b-sql={HUB}/models--example-org--qwen3-8b-sql-lora/snapshots/" + "2" * 40,
        f"qwen3-8b-legal={HUB}/models--example-org--qwen3-8b-legal-lora/snapshots/" + "3" * 40,
    ]
    # The runtime load/unload endpoints stay off: the /v1/ Ingress would publish them.
    env = _container(_pod(lora_plan, "Deployment", "qwen3-8b"), "vllm")["env"]
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in {e["name"] for e in env}


def test_the_server_waits_for_every_adapter_and_the_job_fills_each(lora_plan) -> None:
    pod = _pod(lora_plan, "Deployment", "qwen3-8b")
    waits = [(c["name"], c["args"][1]) for c in pod["initContainers"]]
    assert waits == [
        ("wait-for-cache", "--marker=/models/.slm-warm/Qwen--Qwen3-8B@" + QWEN_REVISION),
        (
            "wait-for-adapter-0",
            "--marker=/models/.slm-warm/example-org--qwen3-8b-sql-lora@" + "2" * 40,
        ),
        (
            "wait-for-adapter-1",
            "--marker=/models/.slm-warm/example-org--qwen3-8b-legal-lora@" + "3" * 40,
        ),
    ]
    job = _pod(lora_plan, "Job", "qwen3-8b-warm-")
    fills = [(c["name"], c["args"][1:3]) for c in job["containers"]]
    assert fills == [
        ("warm-cache", ["--repo=Qwen/Qwen3-8B", f"--revision={QWEN_REVISION}"]),
        ("warm-adapter-0", ["--repo=example-org/qwen3-8b-sql-lora", "--revision=" + "2" * 40]),
        ("warm-adapter-1", ["--repo=example-org/qwen3-8b-legal-lora", "--revision=" + "3" * 40]),
    ]
    assert _container(job, "warm-adapter-1")["args"] == [
        "fill",
        "--repo=example-org/qwen3-8b-legal-lora",
        "--revision=" + "3" * 40,
        "--dest=/models/huggingface",
        "--source=huggingface",
        "--lora-rank=64",  # checked against adapter_config.json before the marker
    ]


QWEN_REVISION = "b968826d9c46dd6066d109eabc6255188de91218"


def test_outputs_list_adapters_as_served_names_with_their_memory(lora_plan) -> None:
    outputs = lora_plan["outputs"]
    assert outputs["servedModelNames"] == {
        "phi4-mini": ["phi4-mini", "phi4-mini-support"],
        "qwen3-8b": ["qwen3-8b", "qwen3-8b-sql", "qwen3-8b-legal"],
    }
    phi = outputs["models"]["phi4-mini"]
    # sizing.lora_bytes for Phi-4-mini, 1 slot at rank 16: 59,138,048 bytes.
    assert phi["loraGiB"] == round(59_138_048 / 2**30, 3)
    assert phi["adapters"] == [SUPPORT]


def test_the_summary_names_each_models_adapters_and_their_slots(lora_plan) -> None:
    lines = summary_markdown(lora_plan).splitlines()
    assert (
        "- phi4-mini: LoRA adapters phi4-mini-support: 0.055 GiB of adapter slots in the needs"
        in lines
    )


def test_smoke_stack_tests_each_models_first_adapter_from_the_outputs(lora_plan) -> None:
    adapters = {t.model: t.adapter for t in smoke_stack.targets(lora_plan["outputs"])}
    assert adapters == {"phi4-mini": "phi4-mini-support", "qwen3-8b": "qwen3-8b-sql"}


def test_phi4_mini_lora_slots_are_what_vllm_allocates() -> None:
    """The design's figure, recomputed from vLLM 0.31.0's layer code: Phi3ForCausalLM packs
    qkv_proj and gate_up_proj as one slice each; per layer lora_a rank x in and lora_b
    out x rank for qkv (3072 -> 3072 + 2 x 1024), o (3072 -> 3072), gate_up (3072 -> 2 x
    8192), down (8192 -> 3072); then the embedding (200064 x r + 3072 x r) and the logits
    processor (r x 3072 + 200064 x r)."""
    phi = catalog.MODELS["microsoft/Phi-4-mini-instruct"]
    per_layer = (3072 + 5120) + (3072 + 3072) + (3072 + 16384) + (8192 + 3072)
    expected = 16 * 2 * (32 * per_layer + 2 * 200064 + 2 * 3072)
    assert expected == 59_138_048
    assert sizing.lora_bytes(phi, sizing.LoraSlots(1, 16)) == 59_138_048
    # Two slots at twice the rank: four times the bytes.
    assert sizing.lora_bytes(phi, sizing.LoraSlots(2, 32)) == 4 * 59_138_048


def test_qwen3_packs_three_and_two_slices_and_tp_divides_the_sharded_side() -> None:
    qwen = catalog.MODELS["Qwen/Qwen3-8B"]  # h 4096, i 12288, 32 x 128 q, 8 x 128 kv, 36 L
    per_layer = (3 * 4096 + 6144) + (4096 + 4096) + (2 * 4096 + 24576) + (12288 + 4096)
    embeddings = 2 * 151936 + 2 * 4096
    assert sizing.lora_bytes(qwen, sizing.LoraSlots(1, 8)) == 8 * 2 * (36 * per_layer + embeddings)
    sharded = (
        (3 * 4096 + 6144 / 2) + (4096 / 2 + 4096) + (2 * 4096 + 24576 / 2) + (12288 / 2 + 4096)
    )
    assert sizing.lora_bytes(qwen, sizing.LoraSlots(1, 8), tp=2) == 8 * 2 * (
        36 * sharded + embeddings
    )


@pytest.mark.parametrize(
    ("ranks", "expected"), [([1], 1), ([2], 8), ([8, 16], 16), ([17], 32), ([300], 320)]
)
def test_max_lora_rank_is_the_smallest_of_vllms_choices(ranks, expected) -> None:
    assert sizing.max_lora_rank(ranks) == expected


def test_the_slots_come_out_of_the_kv_cache_and_the_fit() -> None:
    phi = catalog.MODELS["microsoft/Phi-4-mini-instruct"]
    sku = catalog.GPU_SKUS["Standard_NC24ads_A100_v4"]
    shape = sizing.ServingShape(max_model_len=16384, max_num_seqs=16)
    with_lora = sizing.ServingShape(16384, 16, lora=sizing.LoraSlots(1, 16))
    plain, lora = sizing.memory_fit(phi, sku, shape), sizing.memory_fit(phi, sku, with_lora)
    assert lora.lora_gib == 59_138_048 / 2**30
    assert lora.required_gib - plain.required_gib == pytest.approx(59_138_048 / 2**30)
    per_token = sizing.kv_cache_bytes_per_sequence(phi, 16384) / 16384
    assert capacity.kv_capacity_tokens(phi, sku, shape) - capacity.kv_capacity_tokens(
        phi, sku, with_lora
    ) == pytest.approx(59_138_048 / per_token, abs=1)


# -- config rules ---------------------------------------------------------------------------


def _refusal(root: Path, edit) -> str:
    document = lora_stack(root)
    edit(document["config"])
    write_stack(root, "prod", document)
    with pytest.raises(PlanConfigError) as err:
        build_plan("prod", config_root=root)
    return str(err.value)


P = "slm-deploy:models[0]"
ADAPTER = f"{P}.adapters[0]"


def _adapter(**change):
    return lambda c: c["slm-deploy:models"][0]["adapters"][0].update(change)


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (
            lambda c: c["slm-deploy:serving"]["cacheWarmer"].update(enabled=False),
            "slm-deploy:serving.cacheWarmer.enabled: false is not allowed; expected true while "
            "models[0] has adapters: vLLM would download each adapter's newest revision itself, "
            "the warmer fetches the pinned one",
        ),
        (
            _adapter(name="qwen3-8b"),
            f'{ADAPTER}.name: "qwen3-8b" is not allowed; expected a name no other model, '
            "variant or adapter has (models[1].name has it)",
        ),
        (
            _adapter(name="qwen3-8b-sql"),
            'slm-deploy:models[1].adapters[0].name: "qwen3-8b-sql" is not allowed; expected a '
            "name no other model, variant or adapter has (models[0].adapters[0].name has it)",
        ),
        (
            # vLLM's --lora-modules reads name=path: '=' (and ',') cannot be in a name.
            _adapter(name="a=b"),
            f'{ADAPTER}.name: "a=b" is not allowed; expected a DNS label of at most 40 '
            "characters: lowercase letters, digits, '-'",
        ),
        (_adapter(rank=513), f"{ADAPTER}.rank: 513 is not allowed; expected a number <= 512"),
        (_adapter(rank=0), f"{ADAPTER}.rank: 0 is not allowed; expected a number >= 1"),
        (
            _adapter(source="not a repo"),
            f'{ADAPTER}.source: "not a repo" is not allowed; expected a Hugging Face '
            "repository such as org/name",
        ),
        (
            lambda c: c["slm-deploy:models"][0]["adapters"][0].pop("revision"),
            f"{ADAPTER}.revision: missing; this key is required",
        ),
        (
            lambda c: c["slm-deploy:models"].append(
                {
                    "name": "small",
                    "engine": "ollama",
                    "source": "qwen3:0.6b",
                    "adapters": [dict(SUPPORT, name="other")],
                }
            ),
            'slm-deploy:models[2].adapters: "[...]" is not allowed; expected nothing: LoRA '
            "adapters are served by vLLM",
        ),
        (
            lambda c: c["slm-deploy:models"][0].update(source="google/gemma-3-4b-it"),
            f'{P}.adapters: "[...]" is not allowed; expected nothing for '
            "google/gemma-3-4b-it: vLLM's LoRA layout, which sizes the adapters' memory, is "
            "recorded for these families only: phi-4-mini, qwen3-0.6b, qwen3-1.7b, qwen3-14b, "
            "qwen3-4b, qwen3-8b",
        ),
    ],
)
def test_bad_adapters_are_refused_with_one_line(config_root, edit, line) -> None:
    assert _refusal(config_root, edit) == line


def test_a_model_that_does_not_fit_names_the_lora_slots_in_its_line() -> None:
    phi = catalog.MODELS["microsoft/Phi-4-mini-instruct"]
    t4 = catalog.GPU_SKUS["Standard_NC4as_T4_v3"]
    shape = sizing.ServingShape(131072, 8, lora=sizing.LoraSlots(1, 16))
    with pytest.raises(sizing.SizingError) as err:
        sizing.plan_vllm("phi4-mini", phi, t4, "t4", shape, None, [], [])
    assert "(weights 7.1, KV cache 128.0 for 8 x 131072 tokens, runtime 1.4, LoRA slots 0.06)" in (
        str(err.value)
    )
