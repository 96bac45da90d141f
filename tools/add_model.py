"""Add a Hugging Face model to the catalog from its config.json, and print the stack lines.

    python -m tools.add_model --source HuggingFaceTB/SmolLM3-3B [--revision <commit>]
    python -m tools.add_model --source HuggingFaceTB/SmolLM3-3B --config path/to/config.json

The first form reads config.json and the repository's gating from the Hub (HF_TOKEN is sent
when set: a gated repository's files need it); the second reads a local copy, offline, and
takes --gated from the command line. The entry lands in components/models/<series>.json,
the file of the model's family (the series is the family less its size: smollm3-3b ->
smollm3), a new file for a new family; an entry for the same source is replaced. The
architecture is derived from config.json (text_config for multimodal models) the way the
catalog records it; the tool-call and reasoning parsers come from a small table keyed by
model_type, with vLLM's parser names. Then it prints what it wrote and the stack lines to
add under `slm-deploy:models`.

Exit status: 0 when written; 2 for a bad argument or a config.json the catalog cannot size
(one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from components import catalog
from components.catalog import GIB, Architecture, ModelSpec

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "components" / "models"
HUB = "https://huggingface.co"
TIMEOUT_SECONDS = 30
HF_REPO = re.compile(r"^[A-Za-z0-9][-\w.]*/[-\w.]+$")
GIT_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# The served name: a DNS-1123 label as components/config.py's MODEL_NAME wants it.
MODEL_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
# What the serving default is where the model card says nothing: the catalog's model cards
# (Phi-4-mini, Qwen3) recommend 32,768 tokens; a shorter checkpoint serves its whole window.
DEFAULT_RECOMMENDED_CONTEXT = 32768
REQUIRED = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads")
# Keys that mean experts (Qwen3-MoE, Mixtral, DeepSeek): the catalog's memory formula counts
# one dense MLP per layer, so such a model would be sized wrong.
EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")

# Per model_type, what the modelling code adds beside the linear layers (the catalog's
# Architecture.norms_per_layer and qk_norm): Gemma 2/3 normalise before and after both the
# attention and the MLP (4 norms a layer); Qwen3 and Gemma 3 normalise queries and keys per
# head (Transformers' Qwen3Attention and Gemma3Attention q_norm/k_norm).
FOUR_NORMS = {"gemma2", "gemma3", "gemma3_text"}
QK_NORM = {"qwen3", "gemma3", "gemma3_text"}
# vLLM v0.31.0 refuses these model types in float16 (vllm/config/model.py,
# _FLOAT16_NOT_SUPPORTED_MODELS; tests/upstream/vllm-0.31.0-parsers checks this copy).
FLOAT16_NOT_SUPPORTED = {"gemma2", "gemma3", "gemma3_text", "glm4"}


@dataclass(frozen=True)
class Parsers:
    tool_call: str | None
    reasoning: str | None = None


# The parsers vLLM serves each family's tool calls and reasoning with, keyed by model_type,
# or by (model_type, vocabulary size) where one model_type covers families that call tools
# differently (phi3 is Phi-3 and Phi-4-mini; llama is Llama 3 and many others): vLLM's tool
# calling guide (docs/features/tool_calling.md: Qwen2.5 and Qwen3 hermes, Llama 3.1/3.2
# llama3_json, Phi-4-mini phi4_mini_json), Qwen3's model card (reasoning parser qwen3) and
# SmolLM3's (hermes). tests/test_add_model.py checks every name against vLLM's registries.
PARSERS: dict[str | tuple[str, int], Parsers] = {
    "qwen3": Parsers("hermes", "qwen3"),
    "qwen2": Parsers("hermes"),
    "smollm3": Parsers("hermes"),
    ("phi3", 200064): Parsers("phi4_mini_json"),  # Phi-4-mini's o200k vocabulary
    ("llama", 128256): Parsers("llama3_json"),  # Llama 3's vocabulary
}
# Quantization methods the catalog sizes (components/catalog.py QUANTIZED_BYTES_PER_WEIGHT),
# with the format its bytes per weight assume.
GROUP_128_4BIT = {"bits": 4, "group_size": 128}


class AddModelError(Exception):
    """One line for stderr: exit status 2, nothing written."""


@dataclass(frozen=True)
class Derived:
    """What config.json says, in the catalog's terms."""

    model_type: str
    architecture: Architecture
    max_context: int
    quantization: str | None
    trust_remote_code: bool
    float16_ok: bool
    parsers: Parsers


def _positive(config: dict[str, Any], key: str) -> int:
    value = config.get(key)
    if value is None:
        raise AddModelError(
            f"config.json: {key} is missing; expected a dense decoder-only transformer's "
            f"config.json ({', '.join(REQUIRED)}, vocab_size, max_position_embeddings)"
        )
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise AddModelError(
            f"config.json: {key}: {value!r} is not allowed; expected an integer > 0"
        )
    return value


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's settings: text_config for multimodal configs (Gemma 3 4B+)."""
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, dict) else config


def sliding(text: dict[str, Any], layers: int) -> tuple[int, int]:
    """(sliding_window, global_every): one full-attention layer in every `global_every`.

    A window counts only where layers use it: Qwen2 records one with use_sliding_window
    false; newer configs list each layer's kind in layer_types; Gemma 3's older configs give
    sliding_window_pattern. A window on every layer (no pattern) is sized as full attention,
    which over-counts the KV cache rather than under-counts it."""
    window = text.get("sliding_window")
    if not window or text.get("use_sliding_window") is False:
        return 0, 1
    kinds = text.get("layer_types")
    if isinstance(kinds, list):
        full = [i for i, kind in enumerate(kinds) if kind == "full_attention"]
        if len(kinds) != layers or not full:
            return 0, 1
        every = full[0] + 1
        if full != list(range(every - 1, layers, every)):
            raise AddModelError(
                "config.json: layer_types: full-attention layers are not one in every N; "
                "expected a regular interleave (the catalog's global_every)"
            )
        return (0, 1) if every == 1 else (window, every)
    pattern = text.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 1:
        return window, pattern
    return 0, 1


def quantization(config: dict[str, Any]) -> str | None:
    """awq, gptq or fp8 from quantization_config, in the format the catalog sizes."""
    settings = config.get("quantization_config")
    if settings is None:
        return None
    method = settings.get("quant_method")
    if method in ("awq", "gptq"):
        shape = {key: settings.get(key) for key in GROUP_128_4BIT}
        if shape != GROUP_128_4BIT:
            raise AddModelError(
                f"config.json: quantization_config: {shape} is not allowed; expected 4 bits "
                f"in groups of 128 for {method} (the format the catalog's bytes per weight assume)"
            )
        return method
    if method == "fp8":
        return "fp8"
    raise AddModelError(
        f"config.json: quantization_config.quant_method: {method!r} is not allowed; "
        "expected awq, gptq or fp8"
    )


def parsers_for(model_type: str, vocab: int) -> Parsers:
    return PARSERS.get((model_type, vocab)) or PARSERS.get(model_type) or Parsers(None)


def derive(config: Any, vision_parameters: int = 0) -> Derived:
    """The catalog's view of a config.json (AddModelError for what it cannot size)."""
    if not isinstance(config, dict):
        raise AddModelError("config.json: expected a JSON object")
    text = text_config(config)
    for key in EXPERT_KEYS:
        if text.get(key):
            raise AddModelError(
                f"config.json: {key}: {text[key]!r} is not allowed; expected a dense model "
                "(the catalog's memory formula has no experts)"
            )
    layers, hidden, intermediate, heads = (_positive(text, key) for key in REQUIRED)
    vocab = _positive(text, "vocab_size")
    kv_heads = _positive(text, "num_key_value_heads") if "num_key_value_heads" in text else heads
    if "head_dim" in text:
        head_dim = _positive(text, "head_dim")
    elif hidden % heads == 0:
        head_dim = hidden // heads
    else:
        raise AddModelError(
            f"config.json: head_dim is missing and hidden_size {hidden} is not a multiple of "
            f"num_attention_heads {heads}; expected a head_dim"
        )
    if heads % kv_heads:
        raise AddModelError(
            f"config.json: num_key_value_heads: {kv_heads} is not allowed; expected a divisor "
            f"of num_attention_heads ({heads})"
        )
    model_type = str(text.get("model_type") or config.get("model_type") or "")
    multimodal = isinstance(config.get("vision_config"), dict)
    if multimodal and vision_parameters <= 0:
        raise AddModelError(
            "config.json: vision_config: an image tower is not counted from config.json; "
            "expected --vision-parameters (measured: tools/calibrate_memory.py)"
        )
    window, every = sliding(text, layers)
    # Transformers' PretrainedConfig ties the embeddings unless a config says otherwise.
    tied = text.get("tie_word_embeddings", config.get("tie_word_embeddings", True))
    architecture = Architecture(
        layers=layers,
        hidden=hidden,
        intermediate=intermediate,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        tied_embeddings=bool(tied),
        norms_per_layer=4 if model_type in FOUR_NORMS else 2,
        qk_norm=model_type in QK_NORM,
        sliding_window=window,
        global_every=every,
        multimodal=multimodal,
        vision_parameters=vision_parameters if multimodal else 0,
    )
    types = {model_type, str(config.get("model_type") or "")}
    return Derived(
        model_type=model_type,
        architecture=architecture,
        max_context=_positive(text, "max_position_embeddings"),
        quantization=quantization(config),
        # auto_map: the modelling code lives in the repository, which vLLM runs only when told.
        trust_remote_code="auto_map" in config,
        float16_ok=not types & FLOAT16_NOT_SUPPORTED,
        parsers=parsers_for(model_type, vocab),
    )


# -- where it goes ---------------------------------------------------------------------------

QUANTIZED_SUFFIX = re.compile(r"-(awq|gptq|fp8|int4|int8)$")
CHAT_SUFFIX = re.compile(r"-(instruct|it|chat)$")
SIZE_SUFFIX = re.compile(r"-\d+(\.\d+)?[bm]$")


def family_of(source: str) -> str:
    """The base model a checkpoint belongs to: the repository name, lower case, less its
    quantization and chat suffixes (Qwen/Qwen3-8B-AWQ -> qwen3-8b, google/gemma-3-4b-it ->
    gemma-3-4b), as the catalog's families are named."""
    name = source.split("/")[1].lower()
    name = QUANTIZED_SUFFIX.sub("", name)
    return CHAT_SUFFIX.sub("", name)


def series_of(family: str) -> str:
    """The family file's name: the family less its size (qwen3-8b -> qwen3)."""
    return SIZE_SUFFIX.sub("", family) or family


def served_name(source: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", source.split("/")[1].lower()).strip("-")
    return re.sub(r"-+", "-", name)[:40].rstrip("-")


def file_for(family: str, models_dir: Path) -> Path:
    """The file that already holds the family, else the series' file (new or not)."""
    for path in sorted(models_dir.glob("*.json")):
        document = json.loads(path.read_text())
        if any(c.get("family") == family for c in document.get("checkpoints", [])):
            return path
    return models_dir / f"{series_of(family)}.json"


# -- reading ---------------------------------------------------------------------------------


def _get_json(url: str) -> Any:
    request = urllib.request.Request(url)
    token = os.environ.get("HF_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        return json.loads(response.read().decode("utf-8"))


def read_hub(source: str, revision: str | None) -> tuple[bytes, bool, str]:
    """config.json's bytes, whether the repository is gated, and the commit read."""
    ref = revision or "main"
    try:
        info = _get_json(f"{HUB}/api/models/{source}/revision/{ref}")
        request = urllib.request.Request(f"{HUB}/{source}/resolve/{info['sha']}/config.json")
        if os.environ.get("HF_TOKEN"):
            request.add_header("Authorization", f"Bearer {os.environ['HF_TOKEN']}")
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            body = response.read()
    except (urllib.error.URLError, OSError, ValueError, KeyError) as err:
        raise AddModelError(
            f"--source {source}: config.json could not be read from the Hub ({err}); "
            "expected network access, or --config path/to/config.json"
        ) from None
    # The Hub reports gated as false, "auto" or "manual" (approval needed either way).
    return body, bool(info.get("gated")), info["sha"]


def parse_config(body: bytes, where: str) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise AddModelError(f"{where}: not a JSON file ({err})") from None


# -- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    source: str
    revision: str | None
    gated: bool
    recommended_context: int | None
    config_sha256: str
    read_from: str  # "the Hub" or "a local file"


def entries(request: Request, derived: Derived) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(architecture name, architecture entry, checkpoint entry) for a family file."""
    family = family_of(request.source)
    config_url = f"{HUB}/{request.source}/blob/{request.revision or 'main'}/config.json"
    provenance = {
        "config_json": config_url,
        "commit": request.revision,
        "read": f"tools/add_model.py, from {request.read_from}",
        "config_sha256": request.config_sha256,
    }
    architecture = {f.name: getattr(derived.architecture, f.name) for f in fields(Architecture)}
    architecture["provenance"] = provenance
    recommended = request.recommended_context or min(
        derived.max_context, DEFAULT_RECOMMENDED_CONTEXT
    )
    checkpoint = {
        "source": request.source,
        "engine": "vllm",
        "family": family,
        "architecture": family,
        "max_context": derived.max_context,
        "recommended_context": recommended,
        "source_url": config_url,
        "revision": request.revision,
        "gated": request.gated,
        "quantization": derived.quantization,
        "file_bytes": None,
        "tool_call_parser": derived.parsers.tool_call,
        "reasoning_parser": derived.parsers.reasoning,
        "trust_remote_code": derived.trust_remote_code,
        "float16_ok": derived.float16_ok,
        "provenance": provenance,
    }
    return family, architecture, checkpoint


def merged(document: dict[str, Any], name: str, arch: dict, checkpoint: dict) -> dict[str, Any]:
    """The family document with the entry added, or replacing the same source's."""
    checkpoints = [c for c in document["checkpoints"] if c["source"] != checkpoint["source"]]
    shared = [c["source"] for c in checkpoints if c["architecture"] == name]
    recorded = document["architectures"].get(name)
    numbers = {k: v for k, v in arch.items() if k != "provenance"}
    if recorded and shared and {k: recorded[k] for k in numbers} != numbers:
        differing = next(k for k in numbers if recorded[k] != numbers[k])
        raise AddModelError(
            f"architecture {name}: {differing} is {numbers[differing]!r} in this config.json "
            f"but {recorded[differing]!r} for {', '.join(shared)}; expected the same numbers "
            "for one family (give --family to record it apart)"
        )
    architectures = dict(document["architectures"])
    if not (recorded and shared):
        architectures[name] = arch
    index = next(
        (i for i, c in enumerate(document["checkpoints"]) if c["source"] == checkpoint["source"]),
        len(checkpoints),
    )
    checkpoints.insert(index, checkpoint)
    return {**document, "architectures": architectures, "checkpoints": checkpoints}


def write_entry(request: Request, derived: Derived, family: str | None, models_dir: Path) -> Path:
    name, arch, checkpoint = entries(request, derived)
    if family:
        name = checkpoint["family"] = checkpoint["architecture"] = family
    path = file_for(checkpoint["family"], models_dir)
    for other in sorted(models_dir.glob("*.json")):
        sources = [c.get("source") for c in json.loads(other.read_text())["checkpoints"]]
        if other != path and request.source in sources:
            raise AddModelError(
                f"--source: {request.source} is already in components/models/{other.name}, "
                f"family file of another family; expected --family naming its family"
            )
    if path.exists():
        document = json.loads(path.read_text())
    else:
        about = f"{series_of(checkpoint['family'])}: written by tools/add_model.py."
        document = {"about": about, "architectures": {}, "checkpoints": []}
    document = merged(document, name, arch, checkpoint)
    # The same checks the catalog makes when it loads the file, before anything is written.
    try:
        catalog.family_models(path, document)
    except catalog.CatalogError as err:
        raise AddModelError(str(err)) from None
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def stack_lines(spec: ModelSpec, name: str, pool: str | None) -> list[str]:
    """At most 10 lines for `slm-deploy:models` in a stack file."""
    lines = [
        "slm-deploy:models:",
        f"  - name: {name}",
        "    engine: vllm",
        f"    source: {spec.source}",
        f"    pool: {pool or '<a gpuPools name>'}",
    ]
    if spec.revision:
        lines.append(f'    revision: "{spec.revision}"')  # quoted: a commit may be all digits
    else:
        lines.append("    # revision: <commit>   (required in staging and prod)")
    if spec.gated:
        lines.append("# gated: pulumi config set --secret --path secrets.huggingFaceToken hf_...")
    return lines


def describe(spec: ModelSpec, path: Path) -> str:
    arch = spec.architecture
    weights = spec.parameters * spec.bytes_per_weight / GIB
    parsers = ", ".join(
        f"{kind} parser {value}"
        for kind, value in (
            ("tool-call", spec.tool_call_parser),
            ("reasoning", spec.reasoning_parser),
        )
        if value
    )
    return (
        f"wrote components/models/{path.name}: {spec.source} (family {spec.family}, "
        f"{spec.parameters:,} parameters, {spec.tier} tier, {weights:.2f} GiB of weights; "
        f"{arch.layers} layers, {arch.kv_heads} KV heads x {arch.head_dim}, "
        f"context {spec.max_context}, serving {spec.recommended_context}"
        + (f"; {parsers}" if parsers else "")
        + ("; gated" if spec.gated else "")
        + ")"
    )


# -- command line ----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse's checks, answered as one line (its usage text would make several)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise AddModelError(message)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="add_model", description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="the Hugging Face repository, org/name")
    parser.add_argument("--revision", help="the repository commit (40 hex digits) to read")
    parser.add_argument("--config", type=Path, help="a local config.json (offline)")
    parser.add_argument("--gated", action="store_true", help="offline: the repository is gated")
    parser.add_argument("--name", help="the served model name in the stack lines")
    parser.add_argument("--pool", help="the gpuPools name for the stack lines")
    parser.add_argument("--family", help="the base model's name (default: from --source)")
    parser.add_argument("--recommended-context", type=int, help="the model card's default")
    parser.add_argument(
        "--vision-parameters", type=int, default=0, help="a multimodal model's image tower"
    )
    return parser.parse_args(argv)


def check_arguments(args: argparse.Namespace) -> None:
    if not HF_REPO.match(args.source):
        raise AddModelError(
            f"--source: {args.source!r} is not allowed; expected a Hugging Face repository "
            "such as HuggingFaceTB/SmolLM3-3B"
        )
    if args.revision is not None and not GIT_COMMIT.match(args.revision):
        raise AddModelError(
            f"--revision: {args.revision!r} is not allowed; expected a 40-character commit"
        )
    name = args.name or served_name(args.source)
    if not MODEL_NAME.match(name):
        raise AddModelError(
            f"--name: {name!r} is not allowed; expected a DNS-1123 label (a-z, 0-9, -)"
        )
    for flag, value in (("--family", args.family), ("--pool", args.pool)):
        if value is not None and not MODEL_NAME.match(value):
            raise AddModelError(f"{flag}: {value!r} is not allowed; expected a DNS-1123 label")


def run(args: argparse.Namespace) -> str:
    check_arguments(args)
    models_dir = MODELS_DIR
    if args.config is not None:
        try:
            body = args.config.read_bytes()
        except OSError as err:
            raise AddModelError(f"--config: {args.config}: {err.strerror}") from None
        gated, revision, read_from = args.gated, args.revision, "a local file"
    else:
        body, gated, revision = read_hub(args.source, args.revision)
        gated, read_from = gated or args.gated, "the Hub"
    derived = derive(parse_config(body, "config.json"), args.vision_parameters)
    if args.recommended_context is not None and not (
        0 < args.recommended_context <= derived.max_context
    ):
        raise AddModelError(
            f"--recommended-context: {args.recommended_context} is not allowed; expected 1 to "
            f"max_position_embeddings ({derived.max_context})"
        )
    request = Request(
        args.source,
        revision,
        gated,
        args.recommended_context,
        hashlib.sha256(body).hexdigest(),
        read_from,
    )
    path = write_entry(request, derived, args.family, models_dir)
    spec = catalog.load_models(models_dir)[args.source]
    lines = stack_lines(spec, args.name or served_name(args.source), args.pool)
    return "\n".join([describe(spec, path), "add to the stack file:", *lines])


def main(argv: list[str] | None = None) -> int:
    try:
        print(run(arguments(argv)))
    except (AddModelError, catalog.CatalogError) as err:
        print(f"add_model: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
