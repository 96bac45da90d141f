"""Measure GPU memory of the catalog's architectures, to calibrate components/sizing.py.

    python3 tools/calibrate_memory.py --out docs/memory-calibration.json

Runs on a machine with an NVIDIA GPU, PyTorch and transformers (not part of the project's
lock: it is a measuring tool, run by hand, whose result is committed). For every bf16 vLLM
model in the catalog it builds the architecture from the catalog's numbers with random
weights (no download: the weights' values don't change their size), then measures:

  parameters      the instantiated model's parameter count (checks parameter_count)
  weights_bytes   allocated memory after the model is on the GPU
  kv_bytes_per_token
                  the KV cache transformers keeps after a prefill of `--kv-tokens` tokens,
                  divided by those tokens (checks kv_cache_bytes_per_sequence, sliding
                  windows included)
  activation_bytes
                  peak allocated memory during one forward pass over N prompt tokens
                  (logits for the last token only, as vLLM computes them), minus the memory
                  allocated before it, for each N in --tokens
  non_torch_bytes memory the process holds outside PyTorch's allocator (CUDA context,
                  cuBLAS workspace): the driver's used memory minus PyTorch's reserved
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.catalog import MODELS, Architecture, ModelSpec, parameter_count  # noqa: E402


def hf_config(model: ModelSpec):
    arch: Architecture = model.architecture
    common = dict(
        vocab_size=arch.vocab,
        hidden_size=arch.hidden,
        intermediate_size=arch.intermediate,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads,
        head_dim=arch.head_dim,
        max_position_embeddings=model.max_context,
        tie_word_embeddings=arch.tied_embeddings,
    )
    if model.family.startswith("qwen3"):
        return transformers.Qwen3Config(**common)
    if model.family.startswith("phi-4"):
        common.pop("head_dim")
        return transformers.Phi3Config(**common, partial_rotary_factor=0.75)
    if model.family.startswith("gemma-3"):
        text = transformers.Gemma3TextConfig(
            **common,
            sliding_window=arch.sliding_window,
            layer_types=[
                "full_attention" if (i + 1) % arch.global_every == 0 else "sliding_attention"
                for i in range(arch.layers)
            ],
        )
        if not arch.multimodal:
            return text
        # Gemma 3's SigLIP encoder (896 px images, 14 px patches), as its config.json gives it.
        vision = transformers.SiglipVisionConfig(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            image_size=896,
            patch_size=14,
            vision_use_head=False,
        )
        return transformers.Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict())
    raise ValueError(f"no transformers config for {model.family}")


def build(model: ModelSpec):
    config = hf_config(model)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        if isinstance(config, transformers.Gemma3Config):
            instance = transformers.Gemma3ForConditionalGeneration._from_config(
                config, dtype=torch.bfloat16
            )
        else:
            instance = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    return instance.eval()


def non_torch_bytes() -> int:
    free, total = torch.cuda.mem_get_info()
    return total - free - torch.cuda.memory_reserved()


def measure(model: ModelSpec, token_counts: list[int], kv_tokens: int) -> dict:
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    started = time.perf_counter()
    instance = build(model)
    torch.cuda.synchronize()
    weights = torch.cuda.memory_allocated() - before
    parameters = sum(p.numel() for p in instance.parameters())
    vision = 0
    if hasattr(instance, "model") and hasattr(instance.model, "vision_tower"):
        vision = sum(p.numel() for p in instance.model.vision_tower.parameters()) + sum(
            p.numel() for p in instance.model.multi_modal_projector.parameters()
        )
    result = {
        "source": model.source,
        "parameters": parameters,
        "parameters_predicted": parameter_count(model.architecture),
        "vision_parameters": vision,
        "weights_bytes": weights,
    }
    vocab = model.architecture.vocab
    with torch.inference_mode():
        ids = torch.randint(0, vocab, (1, kv_tokens), device="cuda")
        output = instance(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache = output.past_key_values
        kv = sum(
            t.numel() * t.element_size()
            for layer in cache.layers
            for t in (layer.keys, layer.values)
            if t is not None
        )
        result["kv_tokens"] = kv_tokens
        result["kv_bytes"] = kv
        del output, cache
        gc.collect()
        torch.cuda.empty_cache()
        result["non_torch_bytes"] = non_torch_bytes()
        activations = {}
        for tokens in token_counts:
            ids = torch.randint(0, vocab, (1, tokens), device="cuda")
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            instance(input_ids=ids, use_cache=False, logits_to_keep=1)
            torch.cuda.synchronize()
            activations[str(tokens)] = torch.cuda.max_memory_allocated() - base
            del ids
        result["activation_bytes"] = activations
    result["seconds"] = round(time.perf_counter() - started, 1)
    del instance
    gc.collect()
    torch.cuda.empty_cache()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokens", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--kv-tokens", type=int, default=4096)
    parser.add_argument("--only", nargs="*", help="sources to measure (default: all bf16 vLLM)")
    args = parser.parse_args()
    chosen = [
        m
        for m in MODELS.values()
        if m.engine == "vllm"
        and m.quantization is None
        and (not args.only or m.source in args.only)
    ]
    results = []
    for model in chosen:
        print(f"measuring {model.source} ...", flush=True)
        try:
            results.append(measure(model, args.tokens, args.kv_tokens))
            print(f"  {json.dumps(results[-1])}", flush=True)
        except Exception as err:  # one architecture failing must not lose the others
            print(f"  FAILED: {type(err).__name__}: {err}", flush=True)
            results.append({"source": model.source, "error": f"{type(err).__name__}: {err}"})
    report = {
        "how": "tools/calibrate_memory.py: random bf16 weights, sdpa attention, batch 1",
        "gpu": torch.cuda.get_device_name(),
        "gpu_total_bytes": torch.cuda.mem_get_info()[1],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "measurements": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
