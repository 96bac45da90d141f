"""tools/loadtest.py: the real guidellm (0.8.1, in .venv-loadtest, `make loadtest-env`) drives
a loopback fake OpenAI server whose service time is known in advance (tests/fake_openai.py),
and the record it writes must show that service time.

The fake answers every request on its own thread, so nothing queues and each figure follows
from the service model alone:

    TTFT        = 0.08 s + 0.0006 s x 200 prompt tokens = 200 ms, at every rate
    ITL         = 15 ms
    latency     = TTFT + (24 - 1) x ITL = 545 ms
    output tok/s = rate x 24 (every request's tokens, spread over its decode)
    concurrency = rate x latency (Little's law)

Tolerances: medians within 10 % (the fake sleeps to absolute deadlines, so only scheduling
delay on two shared cores is left); 95th percentiles within 25 % (that delay shows in the
tail); throughput and concurrency within 10 % (arrivals are evenly spaced and the first
second of each rate is left out as warm-up, so the window sees the steady state). A figure
in the wrong unit, the wrong metric (TTFT for ITL, successful for total) or the wrong rate
misses by far more.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components import capacity
from tests.fake_openai import FakeOpenAI, ServiceModel, running, write_word_tokenizer
from tools import loadtest

ROOT = Path(__file__).resolve().parent.parent
LOADTEST_PYTHON = ROOT / ".venv-loadtest" / "bin" / "python"

SERVICE = ServiceModel(ttft_base_s=0.08, ttft_per_input_token_s=0.0006, itl_s=0.015)
INPUT_TOKENS = 200
OUTPUT_TOKENS = 24
RATES = (4.0, 8.0)
# Short: guidellm starts a worker process per rate (about 6 s each here), the window itself
# only has to hold enough requests for a median.
SECONDS = 2
WARMUP_SECONDS = 1
KEY_ENV = "LOADTEST_TEST_KEY"
TTFT_MS = SERVICE.ttft_s(INPUT_TOKENS) * 1000
ITL_MS = SERVICE.itl_s * 1000
LATENCY_S = SERVICE.ttft_s(INPUT_TOKENS) + (OUTPUT_TOKENS - 1) * SERVICE.itl_s
# The whole run: guidellm and torch load in about 9 s, then each rate. Generous for a
# machine whose two cores are shared; a hung run fails here instead of hanging the suite.
RUN_TIMEOUT_S = 300

MODEL_SOURCE = "microsoft/Phi-4-mini-instruct"
VM_SIZE = "Standard_NC24ads_A100_v4"
PROFILE = "MIG3g"
ENGINE = "vllm 0.31.0"
ENGINE_ARGS = {"maxNumSeqs": 48, "maxNumBatchedTokens": 4096}


def loadtest_python() -> Path:
    # `make test` builds the environment first: missing, it is a broken setup, not a skip.
    if not LOADTEST_PYTHON.exists():
        pytest.fail(f"{LOADTEST_PYTHON.relative_to(ROOT)} is missing: run `make loadtest-env`")
    return LOADTEST_PYTHON


def arguments(base_url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--base-url",
        base_url,
        "--api-key-env",
        KEY_ENV,
        "--model-source",
        MODEL_SOURCE,
        "--vm-size",
        VM_SIZE,
        "--gpu-instance-profile",
        PROFILE,
        "--input-tokens",
        str(INPUT_TOKENS),
        "--output-tokens",
        str(OUTPUT_TOKENS),
        "--rates",
        ",".join(f"{rate:g}" for rate in RATES),
        "--arrivals",
        "constant",
        "--seconds",
        str(SECONDS),
        "--warmup-seconds",
        str(WARMUP_SECONDS),
        "--engine",
        ENGINE,
        "--tokenizer",
        str(write_word_tokenizer(tmp_path / "tokenizer")),
        "--out-dir",
        str(tmp_path / "records"),
        *extra,
    ]


def run_tool(args: list[str], key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, KEY_ENV: key}
    # guidellm starts up to 10 worker processes unless told (its settings); one keeps up
    # with these rates and spares the shared cores.
    env["GUIDELLM__MAX_WORKER_PROCESSES"] = "1"
    return subprocess.run(
        [str(loadtest_python()), "-m", "tools.loadtest", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def within(measured: float | None, expected: float, tolerance: float) -> bool:
    return measured is not None and abs(measured - expected) <= tolerance * expected


# -- the sweep: one run, every assertion on it (xdist would run a shared fixture per worker)


def test_sweep_records_the_fakes_service_time(tmp_path: Path) -> None:
    key = "sk-loadtest-" + secrets.token_hex(12)
    fake = FakeOpenAI(api_key=key, service=SERVICE)
    report = tmp_path / "guidellm-report.json"
    taken_before = datetime.datetime.now(datetime.UTC).date().isoformat()
    with running(fake) as base_url:
        shape = ["--max-num-seqs", "48", "--max-num-batched-tokens", "4096"]
        result = run_tool(arguments(base_url, tmp_path, "--report", str(report), *shape), key)
    taken_after = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert result.returncode == 0, result.stderr[-3000:]

    name = (
        f"loadtest--microsoft--Phi-4-mini-instruct--{VM_SIZE}--{PROFILE}--200in-24out"
        "--48seqs--4096batched.json"
    )
    written = sorted(p.name for p in (tmp_path / "records").iterdir())
    assert written == [name]
    record = json.loads((tmp_path / "records" / name).read_text())
    # The capacity model reads it as it reads the published records.
    (read,) = capacity.measurement_records(tmp_path / "records")
    assert [point.request_rate for point in read.points] == list(RATES)
    assert (read.max_num_seqs, read.max_num_batched_tokens) == (48, 4096)

    assert_what_reached_the_server(fake)
    assert_record_header(record, {taken_before, taken_after})
    assert [point["requestRate"] for point in record["points"]] == list(RATES)
    for point in record["points"]:
        assert_point_matches_service_time(point)
    assert_progress(result.stdout)
    # The key travels only in the header: not on the console, the record or guidellm's report.
    for text in (result.stdout, result.stderr, json.dumps(record), report.read_text()):
        assert key not in text


def assert_what_reached_the_server(fake: FakeOpenAI) -> None:
    completions = fake.completions()
    # Evenly spaced arrivals: rate x (warm-up + window) each, less the few cut off at the end.
    least = sum(rate * (SECONDS + WARMUP_SECONDS) for rate in RATES) * 0.8
    assert len(completions) >= least
    assert {(c.input_tokens, c.output_tokens) for c in completions} == {
        (INPUT_TOKENS, OUTPUT_TOKENS)
    }
    # Every request, guidellm's model listing included, carried the right key.
    assert all(served.authorized for served in fake.served)
    assert any(served.path == "/v1/models" for served in fake.served)


def assert_record_header(record: dict[str, Any], dates: set[str]) -> None:
    assert set(record) == {
        "about",
        "source",
        "thirdParty",
        "taken",
        "tool",
        "engine",
        "model",
        "vmSize",
        "gpuInstanceProfile",
        "workload",
        "points",
        "engineArgs",
    }
    assert record["source"] == "tools/loadtest.py"
    assert record["thirdParty"] is False
    assert record["taken"] in dates
    assert record["tool"] == "guidellm 0.8.1"
    assert record["engine"] == ENGINE
    assert record["model"] == MODEL_SOURCE
    assert record["vmSize"] == VM_SIZE
    assert record["gpuInstanceProfile"] == PROFILE
    assert record["engineArgs"] == ENGINE_ARGS
    assert record["workload"] == {
        "inputTokens": INPUT_TOKENS,
        "outputTokens": OUTPUT_TOKENS,
        "arrivals": "constant",
    }


def assert_point_matches_service_time(point: dict[str, Any]) -> None:
    rate = point["requestRate"]
    assert set(point) == {"requestRate", "concurrency", "ttftMs", "itlMs", "outputTokensPerSecond"}
    ttft, itl = point["ttftMs"], point["itlMs"]
    assert within(ttft["p50"], TTFT_MS, 0.10), (rate, ttft, TTFT_MS)
    assert within(ttft["p95"], TTFT_MS, 0.25), (rate, ttft, TTFT_MS)
    # The server cannot answer before its service time: a figure below it is mis-measured.
    assert ttft["p50"] >= TTFT_MS * 0.99
    assert within(itl["p50"], ITL_MS, 0.10), (rate, itl, ITL_MS)
    assert within(itl["p95"], ITL_MS, 0.25), (rate, itl, ITL_MS)
    throughput = rate * OUTPUT_TOKENS
    assert within(point["outputTokensPerSecond"], throughput, 0.10), (rate, point, throughput)
    assert within(point["concurrency"], rate * LATENCY_S, 0.10), (rate, point, rate * LATENCY_S)


def assert_progress(stdout: str) -> None:
    lines = stdout.splitlines()
    assert lines[0].startswith("loadtest: http://127.0.0.1:")
    assert "2 rates x 2 s, constant arrivals, 200 tokens in, 24 out" in lines[0]
    rate_lines = [line for line in lines if line.startswith("rate ")]
    assert [line.split(":")[0] for line in rate_lines] == ["rate 1/2", "rate 2/2"]
    assert rate_lines[0].startswith("rate 1/2: 4 req/s: TTFT p50/p95 ")
    assert " 0 failed" in rate_lines[0]
    assert lines[-1].startswith("loadtest: wrote ")


# -- a refused key, an endpoint that is not there ------------------------------------------


def test_a_wrong_key_is_one_line_and_status_1(tmp_path: Path) -> None:
    fake = FakeOpenAI(api_key="sk-the-right-one", service=SERVICE)
    wrong = "sk-wrong-" + secrets.token_hex(8)
    with running(fake) as base_url:
        result = run_tool(arguments(base_url, tmp_path), wrong)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"loadtest: the endpoint refused the API key in {KEY_ENV}"
        f" (HTTP 401 on GET {base_url}/models)\n"
    )
    assert wrong not in result.stderr
    # It stopped at the first refusal: guidellm never started.
    assert [(s.path, s.authorized) for s in fake.served] == [("/v1/models", False)]
    assert not (tmp_path / "records").exists()


def test_an_unreachable_endpoint_is_one_line_and_status_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOpenAI(api_key="k", service=SERVICE)
    with running(fake) as base_url:
        pass  # the port is closed again: nothing listens there now
    monkeypatch.setenv(KEY_ENV, "k")
    assert loadtest.main(arguments(base_url, tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.startswith("loadtest: endpoint unreachable: ")
    assert err.endswith(f"(GET {base_url}/models)\n")
    assert err.count("\n") == 1


def test_a_wrong_path_is_one_line_and_status_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOpenAI(api_key="k", service=SERVICE)
    monkeypatch.setenv(KEY_ENV, "k")
    with running(fake) as base_url:
        wrong = base_url.removesuffix("/v1") + "/models/phi4-mini/v1"
        assert loadtest.main(arguments(wrong, tmp_path)) == 1
    assert capsys.readouterr().err == f"loadtest: HTTP 404 on GET {wrong}/models: Not Found\n"


def test_a_served_model_the_endpoint_does_not_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeOpenAI(api_key="k", service=SERVICE)
    monkeypatch.setenv(KEY_ENV, "k")
    with running(fake) as base_url:
        status = loadtest.main(arguments(base_url, tmp_path, "--served-model", "phi4-mini"))
    assert status == 1
    assert capsys.readouterr().err == (
        "loadtest: --served-model 'phi4-mini' is not served (listed: fake-model)\n"
    )


# -- bad arguments: one line naming the argument and the value, status 2 --------------------

BAD_ARGUMENTS = [
    (["--rates", "4,x"], "loadtest: --rates '4,x': 'x' is not a rate;"),
    (["--rates", "0"], "loadtest: --rates '0': '0' is not a rate;"),
    (["--rates", "4,4"], "loadtest: --rates '4,4': 4 is given twice"),
    (["--vm-size", "Standard_D4s_v5"], "loadtest: --vm-size 'Standard_D4s_v5' is not one of: "),
    (["--model-source", "acme/none"], "loadtest: --model-source 'acme/none' is not one of: "),
    (
        ["--gpu-instance-profile", "MIG5g"],
        "loadtest: --gpu-instance-profile 'MIG5g' is not one of: MIG1g, MIG2g, MIG3g, MIG4g, MIG7g",
    ),
    (["--arrivals", "burst"], "loadtest: --arrivals 'burst' is not one of: constant, poisson"),
    (["--seconds", "0"], "loadtest: argument --seconds: must be greater than 0, not 0"),
    (["--input-tokens", "many"], "loadtest: argument --input-tokens: not a number: 'many'"),
    (["--warmup-seconds", "2"], "loadtest: --warmup-seconds 2 leaves nothing to measure"),
    (["--base-url", "host:8000/v1"], "loadtest: --base-url must be an http(s) URL"),
    (["--engine", " "], "loadtest: --engine must name the engine and its version"),
    (["--max-num-seqs", "0"], "loadtest: argument --max-num-seqs: must be greater than 0, not 0"),
    (["--report", "/"], "loadtest: --report '/' is a folder: name the file to write"),
    (["--out-dir", "/dev/null"], "loadtest: --out-dir '/dev/null' is a file, not a folder"),
    (
        ["--api-key", "sk-secret"],
        f"loadtest: --api-key is not accepted: put the key in the environment variable {KEY_ENV}",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_ARGUMENTS, ids=lambda v: str(v))
def test_bad_arguments_are_one_line_and_status_2(
    change: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(KEY_ENV, "k")
    # Later options win in argparse: the bad value replaces the good one.
    assert loadtest.main(arguments("http://127.0.0.1:9/v1", tmp_path, *change)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message), captured.err
    assert captured.err.count("\n") == 1
    assert "sk-secret" not in captured.err


def test_engine_args_hold_only_what_was_given() -> None:
    # Left out, a flag is vLLM's default, which the capacity model knows: not a null.
    assert loadtest.engine_args(None, None) == {}
    assert loadtest.engine_args(64, None) == {"maxNumSeqs": 64}
    assert loadtest.engine_args(None, 8192) == {"maxNumBatchedTokens": 8192}


def test_an_unset_key_variable_is_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert loadtest.main(arguments("http://127.0.0.1:9/v1", tmp_path)) == 2
    assert capsys.readouterr().err == (
        f"loadtest: the API key's environment variable {KEY_ENV} is not set\n"
    )


def test_bad_arguments_exit_2_from_the_command_line(tmp_path: Path) -> None:
    """The status the shell sees, from the environment the tool runs in."""
    result = run_tool(arguments("http://127.0.0.1:9/v1", tmp_path, "--rates", "-1"), "k")
    assert result.returncode == 2
    assert result.stderr.startswith("loadtest: --rates '-1': '-1' is not a rate;")
    assert result.stderr.count("\n") == 1
