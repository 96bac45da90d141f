"""Check rendered `vllm serve` command lines with vLLM's own parser and config validation.

Runs with .venv-vllm/bin/python (vLLM at the pinned image's version, a CPU torch: see
tools/vllm_check/requirements.in), never with the project's .venv. Reads one JSON document
on stdin:

    {"hf_home": "/tmp/hf",                       # a Hugging Face cache holding config.json
     "cases": [{"name": "dev/phi4-mini",
                "argv": ["vllm", "serve", "microsoft/Phi-4-mini-instruct", "--dtype=float16"],
                "compute_capability": 7.5}]}                # the target GPU's

and writes one JSON document on stdout:

    {"vllm": "0.31.0",
     "results": [{"name": ..., "errors": [...], "docs_disabled": true,
                  "quantization": "auto_awq" | null,
                  "dtype": "torch.float16", "min_capability": 75 | null,
                  "act_dtypes": ["torch.float16", ...] | null,
                  "lora": {"max_loras": 1, "max_lora_rank": 16} | null,
                  "lora_modules": [{"name": ..., "path": ...}] | null}]}

This machine has no GPU, so vLLM is given a stand-in platform (`TargetGpu`): vLLM's base
Platform marked as CUDA, with the case's compute capability and no device code. vLLM's
config code then takes its CUDA branches (how an AWQ checkpoint's method is resolved, the
quantization method's minimum capability); anything that needs a real device fails loudly.
For each case, in the order `vllm serve` runs them at start-up, as far as that allows:

1. the top-level `vllm` parser with the `serve` subcommand, built by vLLM's own
   make_arg_parser (FlexibleArgumentParser: the positional model, unknown flags, choices);
2. validate_parsed_serve_args and the API server's parser-name checks
   (validate_api_server_args: tool-call and reasoning parsers);
3. EngineArgs.from_cli_args and create_model_config: ModelConfig reads the checkpoint's
   config.json from the cache (offline) and checks dtype, max_model_len and the
   quantization method against it, then the tensor-parallel size against its heads;
4. the quantization config vLLM builds from that (VllmConfig.get_quantization_config), which
   refuses a dtype the method's kernels do not take; its minimum compute capability and
   activation dtypes are reported for the caller to compare with the target GPU;
5. with --enable-lora, the LoRAConfig the engine builds (max_loras, max_lora_rank,
   max_cpu_loras) and its check against the model config; the slots are reported.

Exit status: 0 when every case was checked (each result lists its own errors), 2 for bad
input. Nothing here downloads: HF_HUB_OFFLINE is set before vLLM is imported.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from typing import Any


def _offline(hf_home: str) -> None:
    # Read by huggingface_hub and vLLM at import time: set before either is imported.
    os.environ["HF_HOME"] = hf_home
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["VLLM_NO_USAGE_STATS"] = "1"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


# The compute capability of the case being checked, as (major, minor); set per case.
_CAPABILITY: list[tuple[int, int]] = [(0, 0)]


def install_target_gpu() -> None:
    """Make vLLM see a CUDA GPU with the case's compute capability (see the docstring).

    vLLM's modules bind current_platform when they are imported, and with a CUDA platform
    some of them call compiled CUDA kernels at import time (the model loader's attention
    imports, the quantization kernels' capability probes). Those are imported first, on
    vLLM's own detection of this machine; the stand-in then answers every later question,
    among them the one that matters here: VllmConfig's check of the quantization method's
    minimum capability, which asks current_platform when it runs."""
    import vllm.model_executor.model_loader  # noqa: F401
    import vllm.platforms
    from vllm.model_executor.layers.quantization import get_quantization_config

    get_quantization_config("fp8")  # imports every method's config class
    from vllm.platforms.interface import DeviceCapability, Platform, PlatformEnum

    class TargetGpu(Platform):
        _enum = PlatformEnum.CUDA
        device_name = "cuda"
        device_type = "cuda"
        dispatch_key = "CUDA"

        @classmethod
        def get_device_capability(cls, device_id: int = 0) -> DeviceCapability:
            return DeviceCapability(*_CAPABILITY[0])

        @classmethod
        def get_device_name(cls, device_id: int = 0) -> str:
            return "target GPU"

    vllm.platforms.current_platform = TargetGpu()


def serve_parser():
    """The `vllm` command's parser with its `serve` subcommand, as vllm/entrypoints/cli
    builds it (main.py and serve.py), without importing the server itself."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    serve = subparsers.add_parser("serve", usage="vllm serve [model_tag] [options]")
    make_arg_parser(serve)
    return parser


def parse(parser, argv: list[str]) -> tuple[Any, list[str]]:
    """Parse argv[1:] (argv[0] must be the `vllm` command); argparse's own message on error."""
    if not argv or argv[0] != "vllm":
        return None, [f"the command is {argv[:1]}, not the `vllm` CLI"]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv[1:])
    except SystemExit:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        return None, [lines[-1] if lines else "argument parsing failed"]
    except (ValueError, TypeError) as err:
        return None, [str(err)]
    if args.subparser != "serve":
        return None, [f"subcommand {args.subparser!r}, expected 'serve'"]
    # `vllm serve` (entrypoints/cli/serve.py) serves the positional model.
    if args.model_tag is not None:
        args.model = args.model_tag
    return args, []


def validate_serve(args) -> list[str]:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager

    try:
        validate_parsed_serve_args(args)
    except (TypeError, ValueError, KeyError) as err:
        return [str(err)]
    # entrypoints/launchers/launcher.py validate_api_server_args, which reads the reasoning
    # parser from the structured-outputs config the engine arguments build.
    if args.enable_auto_tool_choice and args.tool_call_parser not in (
        ToolParserManager.list_registered()
    ):
        return [f"invalid tool call parser: {args.tool_call_parser}"]
    reasoning = AsyncEngineArgs.from_cli_args(args).reasoning_parser
    if reasoning and reasoning not in ReasoningParserManager.list_registered():
        return [f"invalid reasoning parser: {reasoning}"]
    return []


def validate_engine(args) -> tuple[dict[str, Any], list[str]]:
    from vllm.config import VllmConfig
    from vllm.engine.arg_utils import AsyncEngineArgs

    found: dict[str, Any] = {
        "quantization": None,
        "dtype": None,
        "min_capability": None,
        "act_dtypes": None,
        "lora": None,
    }
    try:
        engine_args = AsyncEngineArgs.from_cli_args(args)
        model_config = engine_args.create_model_config()
        found["dtype"] = str(model_config.dtype)
        found["quantization"] = model_config.quantization
        quant = VllmConfig.get_quantization_config(model_config, engine_args.create_load_config())
        model_config.verify_with_parallel_config(parallel_config(engine_args))
        lora = lora_config(engine_args)
        if lora is not None:
            lora.verify_with_model_config(model_config)
            found["lora"] = {"max_loras": lora.max_loras, "max_lora_rank": lora.max_lora_rank}
    except Exception as err:  # vLLM raises ValueError, pydantic's ValidationError, OSError...
        return found, [f"{type(err).__name__}: {_first_line(err)}"]
    if quant is not None:
        found["min_capability"] = quant.get_min_capability()
        found["act_dtypes"] = [str(dtype) for dtype in quant.get_supported_act_dtypes()]
    return found, []


def lora_config(engine_args):
    """The LoRAConfig create_engine_config builds when --enable-lora is given (its
    adapter-slot fields, as engine/arg_utils.py passes them: a max_cpu_loras of 0 or less
    means unset), so its validator's errors surface here; None without --enable-lora."""
    from vllm.config import LoRAConfig

    if not engine_args.enable_lora:
        return None
    cpu_loras = engine_args.max_cpu_loras
    return LoRAConfig(
        max_lora_rank=engine_args.max_lora_rank,
        max_loras=engine_args.max_loras,
        fully_sharded_loras=engine_args.fully_sharded_loras,
        lora_dtype=engine_args.lora_dtype,
        max_cpu_loras=cpu_loras if cpu_loras and cpu_loras > 0 else None,
    )


def parallel_config(engine_args):
    """The parallel layout the engine builds (create_engine_config), as far as the model's
    checks read it: tensor and pipeline parallel sizes on one node."""
    from vllm.config import ParallelConfig

    return ParallelConfig(
        tensor_parallel_size=engine_args.tensor_parallel_size,
        pipeline_parallel_size=engine_args.pipeline_parallel_size,
    )


def _first_line(err: BaseException) -> str:
    # pydantic's ValidationError (vLLM's configs are pydantic dataclasses): its messages.
    if callable(getattr(err, "errors", None)):
        return "; ".join(_first_line(ValueError(e["msg"])) for e in err.errors())
    text = str(err).strip()
    return text.splitlines()[0] if text else repr(err)


def check(parser, case: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"name": case["name"], "errors": []}
    major, minor = str(case["compute_capability"]).split(".")
    _CAPABILITY[0] = (int(major), int(minor))
    args, errors = parse(parser, case["argv"])
    if not errors:
        # FastAPI's /docs, /redoc and /openapi.json (entrypoints/launchers/app.py).
        result["docs_disabled"] = args.disable_fastapi_docs
        # --lora-modules as vLLM's LoRAParserAction parsed them (LoRAModulePath).
        modules = args.lora_modules
        result["lora_modules"] = (
            [{"name": m.name, "path": m.path} for m in modules] if modules else None
        )
        errors = validate_serve(args)
    if not errors:
        found, errors = validate_engine(args)
        result |= found
    result["errors"] = errors
    return result


def main() -> int:
    try:
        request = json.load(sys.stdin)
        hf_home, cases = request["hf_home"], request["cases"]
    except (ValueError, KeyError, TypeError) as err:
        print(f"check_args: bad input on stdin: {err}", file=sys.stderr)
        return 2
    _offline(hf_home)
    install_target_gpu()
    import vllm

    parser = serve_parser()
    results = [check(parser, case) for case in cases]
    json.dump({"vllm": vllm.__version__, "results": results}, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
