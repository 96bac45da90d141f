"""Measure a deployed model: guidellm over a request-rate sweep, one calibration record out.

    SLM_API_KEY=... .venv-loadtest/bin/python -m tools.loadtest \\
        --base-url https://host/models/phi4-mini/v1 \\
        --model-source microsoft/Phi-4-mini-instruct --vm-size Standard_NC24ads_A100_v4 \\
        --input-tokens 200 --output-tokens 200 --rates 2,4,8,16 [--seconds 60] \\
        [--arrivals poisson] [--warmup-seconds 0] [--gpu-instance-profile MIG3g] \\
        [--served-model NAME] [--tokenizer ID_OR_PATH] [--engine "vllm 0.31.0"] \\
        [--max-num-seqs N] [--max-num-batched-tokens N] \\
        [--api-key-env SLM_API_KEY] [--out-dir components/capacity_measurements] \\
        [--report guidellm-report.json]

It runs in its own environment, .venv-loadtest (`make loadtest-env`, locked in
tools/loadtest/requirements.txt): guidellm, the load generator KAITO's published figures
come from, so that our points and theirs are measured the same way. guidellm sends the
requests, times them and summarises them; this tool chooses the workload, checks the
endpoint and the key first, and turns guidellm's JSON report into one record.

The workload is guidellm's synthetic text: every prompt exactly --input-tokens long by the
model's tokenizer (--tokenizer, the Hugging Face id --model-source by default), every reply
exactly --output-tokens long (max_tokens with ignore_eos), streamed, arriving at each rate
of --rates in turn (Poisson or evenly spaced) for --seconds each.

--max-num-seqs and --max-num-batched-tokens record the engine shape the replica runs (the
stack's vLLM flags, in its plan): the capacity model predicts each point with that shape,
and with vLLM's defaults where the record does not say.

The API key is read from the environment variable --api-key-env names (SLM_API_KEY unless
told), never from the command line, and never printed; guidellm sends it as
`Authorization: Bearer <key>` and its report masks it. Certificates are verified.

Output: guidellm's progress lines, then one line per rate (TTFT and ITL p50/p95, output
tokens per second, mean concurrency, requests completed and failed), then the record, in the
format components/capacity.py reads (docs/loadtest.md), written to --out-dir as
loadtest--<model>--<vmSize>[--<profile>]--<in>in-<out>out[--<n>seqs][--<n>batched].json; a
new run of the same setup replaces it.

Exit status: 0 the record was written; 1 the endpoint, the key or guidellm failed (one line
on stderr); 2 bad arguments or the key's variable unset (one line on stderr).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import capacity, catalog
from tools.cli_args import (
    UsageError,
    check_base_url,
    endpoint_parser,
    non_negative,
    positive,
    refuse_key_argument,
    settings_and_key,
)

EXIT_FAILED = 1
DEFAULT_API_KEY_ENV = "SLM_API_KEY"
DEFAULT_OUT_DIR = Path(__file__).resolve().parent.parent / "components" / "capacity_measurements"
# guidellm's profile kinds for open-loop arrivals at a fixed mean rate.
ARRIVALS = ("poisson", "constant")
PREFLIGHT_TIMEOUT_S = 30
REASON_MAX_CHARS = 240


class EndpointError(Exception):
    """The endpoint, the key or the load generator failed: exit status 1."""


@dataclass(frozen=True)
class Settings:
    base_url: str
    api_key_env: str
    model_source: str
    vm_size: str
    gpu_instance_profile: str | None
    input_tokens: int
    output_tokens: int
    rates: tuple[float, ...]
    arrivals: str
    seconds: float
    warmup_seconds: float
    served_model: str | None
    tokenizer: str
    engine: str | None
    # The engine shape the replica runs (vLLM's flags), where given: the record's engineArgs.
    engine_args: dict[str, int]
    out_dir: Path
    report: Path | None


def main(argv: list[str] | None = None) -> int:
    parsed = settings_and_key("loadtest", parse_arguments, argv)
    if isinstance(parsed, int):
        return parsed
    settings, api_key = parsed
    try:
        record = measure(settings, api_key)
    except EndpointError as err:
        print(f"loadtest: {err}", file=sys.stderr)
        return EXIT_FAILED
    path = write_record(record, settings)
    print(f"loadtest: wrote {path}", flush=True)
    return 0


# -- arguments ----------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None) -> Settings:
    parser = endpoint_parser("loadtest", __doc__.split("\n\n")[0], DEFAULT_API_KEY_ENV)
    parser.add_argument("--model-source", required=True, help="the catalog model measured")
    parser.add_argument("--vm-size", required=True, help="the catalog GPU SKU it runs on")
    parser.add_argument(
        "--gpu-instance-profile", help="the MIG slice each replica has (none: a whole GPU)"
    )
    parser.add_argument("--input-tokens", required=True, type=positive(int))
    parser.add_argument("--output-tokens", required=True, type=positive(int))
    parser.add_argument("--rates", required=True, help="requests per second, e.g. 2,4,8,16")
    parser.add_argument("--arrivals", default="poisson", help="poisson (default) or constant")
    parser.add_argument(
        "--seconds", type=positive(float), default=60.0, help="measured time per rate (60)"
    )
    parser.add_argument(
        "--warmup-seconds",
        type=non_negative(float),
        default=0.0,
        help="time at the start of each rate left out of the figures (0)",
    )
    parser.add_argument("--served-model", help="the name the endpoint serves (the first listed)")
    parser.add_argument("--tokenizer", help="Hugging Face id or folder (--model-source)")
    parser.add_argument("--engine", help='the serving engine and version, e.g. "vllm 0.31.0"')
    parser.add_argument(
        "--max-num-seqs", type=positive(int), help="the replica's vLLM --max-num-seqs"
    )
    parser.add_argument(
        "--max-num-batched-tokens",
        type=positive(int),
        help="the replica's vLLM --max-num-batched-tokens",
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--report", type=Path, help="also keep guidellm's JSON report here")
    args = parser.parse_args(argv)
    refuse_key_argument(args)
    return Settings(
        base_url=check_base_url(args.base_url),
        api_key_env=args.api_key_env,
        model_source=check_choice("--model-source", args.model_source, catalog.MODELS),
        vm_size=check_choice("--vm-size", args.vm_size, catalog.GPU_SKUS),
        gpu_instance_profile=check_profile(args.gpu_instance_profile, args.vm_size),
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        rates=parse_rates(args.rates),
        arrivals=check_choice("--arrivals", args.arrivals, ARRIVALS),
        seconds=args.seconds,
        warmup_seconds=check_warmup(args.warmup_seconds, args.seconds),
        served_model=args.served_model,
        tokenizer=args.tokenizer or args.model_source,
        engine=check_engine(args.engine),
        engine_args=engine_args(args.max_num_seqs, args.max_num_batched_tokens),
        out_dir=check_out_dir(args.out_dir),
        report=check_report(args.report),
    )


def check_choice(option: str, value: str, allowed: Any) -> str:
    if value not in allowed:
        raise UsageError(f"{option} {value!r} is not one of: {', '.join(sorted(allowed))}")
    return value


def check_profile(value: str | None, vm_size: str) -> str | None:
    """A MIG profile the SKU's GPU has (the capacity model's GPU facts, as the plan checks)."""
    if value is None:
        return None
    profiles = capacity.mig_profiles(catalog.GPU_SKUS[vm_size])
    if not profiles:
        raise UsageError(f"--gpu-instance-profile {value!r}: {vm_size} has no MIG")
    return check_choice("--gpu-instance-profile", value, profiles)


def parse_rates(text: str) -> tuple[float, ...]:
    """Comma-separated requests per second, each positive and finite, none repeated."""
    rates: list[float] = []
    for item in text.split(","):
        try:
            rate = float(item)
        except ValueError:
            rate = float("nan")
        if not 0 < rate < float("inf"):
            raise UsageError(
                f"--rates {text!r}: {item.strip()!r} is not a rate; give requests per second"
                " greater than 0, comma-separated, e.g. 2,4,8,16"
            )
        if rate in rates:
            raise UsageError(f"--rates {text!r}: {item.strip()} is given twice")
        rates.append(rate)
    return tuple(rates)


def check_warmup(warmup: float, seconds: float) -> float:
    if warmup >= seconds:
        raise UsageError(
            f"--warmup-seconds {warmup:g} leaves nothing to measure: it must be less than"
            f" --seconds ({seconds:g})"
        )
    return warmup


def check_engine(engine: str | None) -> str | None:
    if engine is not None and not engine.strip():
        raise UsageError('--engine must name the engine and its version, e.g. "vllm 0.31.0"')
    return engine


def check_out_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out-dir {str(path)!r} is a file, not a folder for the record")
    return path


def check_report(path: Path | None) -> Path | None:
    # Checked now, not after a sweep of many minutes whose report would have nowhere to go.
    if path is not None and path.is_dir():
        raise UsageError(f"--report {str(path)!r} is a folder: name the file to write")
    return path


def engine_args(max_num_seqs: int | None, max_num_batched_tokens: int | None) -> dict[str, int]:
    """The record's engineArgs: only what was given (the capacity model assumes vLLM's
    defaults for the rest)."""
    given = {"maxNumSeqs": max_num_seqs, "maxNumBatchedTokens": max_num_batched_tokens}
    return {name: value for name, value in given.items() if value is not None}


# -- the measurement ----------------------------------------------------------------------


def measure(settings: Settings, api_key: str) -> dict[str, Any]:
    """Check the endpoint and the key, run guidellm's sweep, and make the record."""
    served = preflight(settings, api_key)
    print(
        f"loadtest: {settings.base_url} serves {served}; the key in {settings.api_key_env} is"
        f" accepted. {len(settings.rates)} rates x {settings.seconds:g} s, {settings.arrivals}"
        f" arrivals, {settings.input_tokens} tokens in, {settings.output_tokens} out",
        flush=True,
    )
    report = run_guidellm(settings, api_key, served)
    benchmarks = report["benchmarks"]
    points = []
    for number, benchmark in enumerate(benchmarks, start=1):
        points.append(point_from_benchmark(benchmark))
        print(f"rate {number}/{len(benchmarks)}: {point_line(points[-1], benchmark)}", flush=True)
    return make_record(settings, report, points)


def preflight(settings: Settings, api_key: str) -> str:
    """GET /v1/models with the key: a refused key or a wrong URL is one clear line before
    guidellm starts (its own check reports only that validation failed). Returns the served
    model's name."""
    url = f"{api_root(settings.base_url)}/v1/models"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=PREFLIGHT_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            raise EndpointError(
                f"the endpoint refused the API key in {settings.api_key_env}"
                f" (HTTP {err.code} on GET {url})"
            ) from None
        raise EndpointError(f"HTTP {err.code} on GET {url}: {one_line(err.reason)}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise EndpointError(f"endpoint unreachable: {one_line(str(reason))} (GET {url})") from None
    return served_model(settings, url, body)


def served_model(settings: Settings, url: str, body: bytes) -> str:
    """The model to measure, from the endpoint's OpenAI model list."""
    try:
        listing = json.loads(body)
        served = [str(m["id"]) for m in listing["data"] if isinstance(m, dict) and "id" in m]
    except (ValueError, KeyError, TypeError):
        raise EndpointError(f"GET {url} did not answer an OpenAI model list") from None
    if not served:
        raise EndpointError(f"the endpoint lists no models (GET {url})")
    if settings.served_model is None:
        return served[0]
    if settings.served_model not in served:
        raise EndpointError(
            f"--served-model {settings.served_model!r} is not served (listed: {', '.join(served)})"
        )
    return settings.served_model


def api_root(base_url: str) -> str:
    """The URL the OpenAI paths hang from: --base-url without its /v1, as guidellm takes it."""
    return base_url.rstrip("/").removesuffix("/v1")


def guidellm_spec(settings: Settings, api_key: str, served: str, report: Path) -> dict[str, Any]:
    """guidellm's benchmark arguments (its BenchmarkArgs), common to every rate."""
    warmup = {"value": settings.warmup_seconds, "mode": "duration"}
    return {
        "backend": {
            "kind": "openai_http",
            "target": settings.base_url,
            "model": served,
            "api_key": api_key,
            # guidellm checks /health first; a stack publishes only /v1 (components/network.py),
            # so the check lists the models instead, with the key, as the preflight did.
            "api_routes": {"/health": "v1/models"},
            # guidellm does not verify certificates unless told; the key must not go to a
            # server that is not the endpoint.
            "verify": True,
        },
        "profile": {"kind": settings.arrivals, "warmup": warmup},
        "constraints": [
            {"kind": "max_duration", "seconds": settings.seconds + settings.warmup_seconds}
        ],
        "tokenizer": {"kind": "huggingface_auto", "model": settings.tokenizer},
        "data": [
            {
                "kind": "synthetic_text",
                "prompt_tokens": settings.input_tokens,
                "output_tokens": settings.output_tokens,
            }
        ],
        "outputs": [{"kind": "json", "path": str(report)}],
    }


def run_guidellm(settings: Settings, api_key: str, served: str) -> dict[str, Any]:
    """guidellm's sweep through its Python API; its JSON report, parsed."""
    try:  # imported here: arguments are checked in a second, guidellm loads in several
        from guidellm.benchmark.entrypoints import benchmark_generative_text
        from guidellm.schemas.benchmark import BenchmarkScenario
    except ImportError as err:
        raise EndpointError(
            f"guidellm is not installed in {sys.executable} ({err.name}): run `make loadtest-env`"
            " and `.venv-loadtest/bin/python -m tools.loadtest ...`"
        ) from None
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        report_path = settings.report or Path(scratch) / "guidellm-report.json"
        spec = guidellm_spec(settings, api_key, served, report_path)
        try:
            # One benchmark per rate, as guidellm's `--override profile.rate` makes them.
            per_rate = [{"profile.rate": rate} for rate in settings.rates]
            scenario = BenchmarkScenario.create(scenario=None, spec=spec, benchmarks=per_rate)
            asyncio.run(
                benchmark_generative_text(args=scenario, progress=sys.stdout.isatty(), console=None)
            )
            text = report_path.read_text()
        except Exception as err:  # one line, not guidellm's traceback
            raise EndpointError(f"guidellm failed: {describe(err)}") from None
    return json.loads(text)


def describe(err: BaseException) -> str:
    """The error and its causes, one line: guidellm wraps the HTTP error that says what."""
    parts = []
    while err is not None and len(parts) < 3:
        parts.append(f"{type(err).__name__}: {one_line(str(err), 120)}")
        err = err.__cause__ or err.__context__
    return " <- ".join(parts)


# -- the report, as a record --------------------------------------------------------------


def point_from_benchmark(benchmark: dict[str, Any]) -> dict[str, Any]:
    """One rate of guidellm's report as a record point. Latencies are over completed
    requests and throughput over all of them, as guidellm's own summary tables show them."""
    metrics = benchmark["metrics"]
    return {
        "requestRate": float(benchmark["config"]["strategy"]["rate"]),
        "concurrency": _rounded(_stat(metrics, "request_concurrency", "total", "mean"), 1),
        "ttftMs": _percentiles(metrics, "time_to_first_token_ms"),
        "itlMs": _percentiles(metrics, "inter_token_latency_ms"),
        "outputTokensPerSecond": _rounded(
            _stat(metrics, "output_tokens_per_second", "total", "mean"), 1
        ),
    }


def _percentiles(metrics: dict[str, Any], name: str) -> dict[str, float | None]:
    return {
        "p50": _rounded(_stat(metrics, name, "successful", "p50"), 2),
        "p95": _rounded(_stat(metrics, name, "successful", "p95"), 2),
    }


def _stat(metrics: dict[str, Any], name: str, status: str, statistic: str) -> float | None:
    """A statistic of one of guidellm's distributions; None where no request gave one."""
    summary = (metrics.get(name) or {}).get(status)
    if not summary or not summary.get("count"):
        return None
    if statistic == "mean":
        return summary["mean"]
    return summary["percentiles"][statistic]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def point_line(point: dict[str, Any], benchmark: dict[str, Any]) -> str:
    totals = benchmark["metrics"]["request_totals"]

    def ms(pair: dict[str, float | None]) -> str:
        return "/".join("n/a" if v is None else f"{v:g}" for v in (pair["p50"], pair["p95"]))

    throughput = point["outputTokensPerSecond"]
    concurrency = point["concurrency"]
    return (
        f"{point['requestRate']:g} req/s: TTFT p50/p95 {ms(point['ttftMs'])} ms,"
        f" ITL p50/p95 {ms(point['itlMs'])} ms,"
        f" {'n/a' if throughput is None else f'{throughput:g}'} output tok/s,"
        f" {'n/a' if concurrency is None else f'{concurrency:g}'} in flight;"
        f" {totals['successful']} completed, {totals['errored']} failed,"
        f" {totals['incomplete']} cut off at the end"
    )


def make_record(
    settings: Settings, report: dict[str, Any], points: list[dict[str, Any]]
) -> dict[str, Any]:
    """The record components/capacity.py reads (the format in docs/loadtest.md)."""
    tool = f"guidellm {report['metadata']['guidellm_version']}"
    rates = ", ".join(f"{rate:g}" for rate in settings.rates)
    slice_ = f" ({settings.gpu_instance_profile} slice)" if settings.gpu_instance_profile else ""
    return {
        "about": (
            f"Our own {tool} sweep of {settings.model_source} on one {settings.vm_size}"
            f" replica{slice_} ({settings.arrivals} arrivals at {rates} req/s,"
            f" {settings.seconds:g} s measured per rate after {settings.warmup_seconds:g} s"
            f" warm-up, {settings.input_tokens} prompt and {settings.output_tokens} output"
            " tokens): per rate, the median and 95th percentile TTFT and ITL of completed"
            " requests, the mean concurrency and the mean output tokens per second."
        ),
        "source": "tools/loadtest.py",
        "thirdParty": False,
        "taken": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "tool": tool,
        "engine": settings.engine,
        "model": settings.model_source,
        "vmSize": settings.vm_size,
        "gpuInstanceProfile": settings.gpu_instance_profile,
        "workload": {
            "inputTokens": settings.input_tokens,
            "outputTokens": settings.output_tokens,
            "arrivals": settings.arrivals,
        },
        "points": sorted(points, key=lambda point: point["requestRate"]),
    } | ({"engineArgs": settings.engine_args} if settings.engine_args else {})


def record_name(settings: Settings) -> str:
    """One file per model x SKU x slice x workload x engine shape: a new run of the same
    setup replaces it, a run of another setup adds a record beside it."""
    parts = ["loadtest", settings.model_source.replace("/", "--"), settings.vm_size]
    if settings.gpu_instance_profile:
        parts.append(settings.gpu_instance_profile)
    parts.append(f"{settings.input_tokens}in-{settings.output_tokens}out")
    if "maxNumSeqs" in settings.engine_args:
        parts.append(f"{settings.engine_args['maxNumSeqs']}seqs")
    if "maxNumBatchedTokens" in settings.engine_args:
        parts.append(f"{settings.engine_args['maxNumBatchedTokens']}batched")
    return "--".join(parts) + ".json"


def write_record(record: dict[str, Any], settings: Settings) -> Path:
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    path = settings.out_dir / record_name(settings)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def one_line(text: str, limit: int = REASON_MAX_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
