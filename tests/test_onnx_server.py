"""images/onnxruntime-genai-server/server.py, run for real: the server process in .venv-onnx
(`make onnx-env`: the image's locked requirements plus the model builder's), serving a tiny
int4 Llama that tests/onnx_fixtures.py builds with random weights and
onnxruntime-genai's own model builder. Nothing is downloaded.

The model's end-of-sequence logit is fixed at 0 (onnx_fixtures.py), so greedy requests
(temperature 0) always run to max_tokens: the token counts below are exact.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components import access, sizing
from tests.onnx_fixtures import CONTEXT_LENGTH, EXPECTED, MESSAGES

ROOT = Path(__file__).resolve().parent.parent
ONNX_PYTHON = ROOT / ".venv-onnx" / "bin" / "python"
SERVER = ROOT / "images" / "onnxruntime-genai-server" / "server.py"
UPSTREAM_METRICS = ROOT / "tests" / "upstream" / "vllm-0.31.0-metrics" / "metrics.json"
MODEL = "tiny-llama"
KEYS = ("sk-onnx-test-current", "sk-onnx-test-next")  # two live keys, as during a rotation
MAX_CONCURRENT = 2
# full_server serves less than the model's context (--max-model-len), as a deployment sized
# for a shorter context does.
FULL_SERVER_CONTEXT = CONTEXT_LENGTH // 2
# Building the model imports PyTorch and transformers (about 15 s here); generous for two
# shared cores, and a hung build fails instead of hanging the suite.
BUILD_TIMEOUT_S = 300
START_TIMEOUT_S = 60


def onnx_python() -> Path:
    # `make test` builds the environment first: missing, it is a broken setup, not a skip.
    if not ONNX_PYTHON.exists():
        pytest.fail(f"{ONNX_PYTHON.relative_to(ROOT)} is missing: run `make onnx-env`")
    return ONNX_PYTHON


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per test session: xdist workers share the folder above their own temp
    folders, and a lock lets the first build while the others wait for it."""
    root = tmp_path_factory.getbasetemp()
    shared = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "onnx-tiny-model"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "onnx" / "genai_config.json").exists():
            result = subprocess.run(
                [str(onnx_python()), str(ROOT / "tests" / "onnx_fixtures.py"), str(shared)],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return shared


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    base_url: str
    expected_prompt_tokens: int
    pid: int


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys_file.write_text(access.keys_file(list(KEYS)))  # the file the pods mount
    options = ["--max-concurrent", str(MAX_CONCURRENT), "--api-keys-file", str(keys_file)]
    yield from serving(model_dir, tmp_path_factory, options, {})


@pytest.fixture(scope="module")
def full_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One generator, no waiting room, half the model's context, one ONNX Runtime thread;
    its key from the environment."""
    options = ["--max-concurrent", "1", "--max-waiting", "0"]
    options += ["--max-model-len", str(FULL_SERVER_CONTEXT), "--threads", "1"]
    yield from serving(model_dir, tmp_path_factory, options, {"OGA_SERVER_API_KEY": KEYS[0]})


def serving(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory, options: list[str],
    environment: dict[str, str],
) -> Iterator[Server]:  # fmt: skip
    port = _free_port()
    log = (tmp_path_factory.mktemp("log") / "server.log").open("w+")
    command = [
        str(onnx_python()), str(SERVER), "--model-dir", str(model_dir / "onnx"),
        "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port), *options,
    ]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k != "OGA_SERVER_API_KEY"}
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=clean | environment
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base_url, process, log)
        expected = json.loads((model_dir / EXPECTED).read_text())["prompt_tokens"]
        yield Server(base_url, expected, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read()[-4000:]}")
        try:
            if call(base_url, "GET", "/health", key=None).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    log.seek(0)
    pytest.fail(f"the server did not answer /health in {START_TIMEOUT_S} s:\n{log.read()[-4000:]}")


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base_url: str, method: str, path: str, body: Any = None, key: str | None = KEYS[0],
    raw: bytes | None = None, scheme: str = "Bearer",
) -> Answer:  # fmt: skip
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"{scheme} {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Answer(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers["Content-Type"], error.read())


def chat(server: Server, **fields: Any) -> Answer:
    body = {"model": MODEL, "messages": MESSAGES, "temperature": 0} | fields
    return call(server.base_url, "POST", "/v1/chat/completions", body)


def events(answer: Answer) -> list[Any]:
    """The server-sent events' data, decoded; "[DONE]" kept as the string."""
    assert answer.status == 200, answer.body
    assert answer.content_type.startswith("text/event-stream")
    blocks = answer.body.decode().split("\n\n")
    assert blocks[-1] == ""  # every event ends with a blank line
    data = []
    for block in blocks[:-1]:
        assert block.startswith("data: "), block
        payload = block.removeprefix("data: ")
        data.append(payload if payload == "[DONE]" else json.loads(payload))
    return data


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


# -- the key --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "scheme"),
    [(None, "Bearer"), ("sk-wrong", "Bearer"), (KEYS[0], "Basic"), (KEYS[0] + "x", "Bearer")],
    ids=["missing", "wrong", "not-bearer", "longer"],
)
@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions", "/v1/unknown"])
def test_v1_needs_a_live_key(server: Server, key: str | None, scheme: str, path: str) -> None:
    method = "POST" if path.endswith("completions") else "GET"
    answer = call(server.base_url, method, path, {"model": MODEL}, key=key, scheme=scheme)
    assert answer.status == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_every_live_key_is_taken_and_health_and_metrics_are_open(server: Server) -> None:
    for key in KEYS:
        assert call(server.base_url, "GET", "/v1/models", key=key).status == 200
    # As vLLM: the key guards /v1 only, so probes and scrapes need none.
    assert call(server.base_url, "GET", "/health", key=None).status == 200
    metrics = call(server.base_url, "GET", "/metrics", key=None)
    assert metrics.status == 200 and metrics.content_type.startswith("text/plain")


def test_models_lists_the_served_model(server: Server) -> None:
    answer = call(server.base_url, "GET", "/v1/models")
    (card,) = answer.json()["data"]
    assert (card["id"], card["object"], card["max_model_len"]) == (MODEL, "model", CONTEXT_LENGTH)


# -- chats ----------------------------------------------------------------------------------


def test_a_chat_not_streamed(server: Server) -> None:
    answer = chat(server, max_tokens=12)
    assert answer.status == 200
    body = answer.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] == "length"
    prompt = server.expected_prompt_tokens
    assert body["usage"] == {"prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12}  # fmt: skip
    # Greedy decoding: the same request, the same text.
    assert chat(server, max_tokens=12).json()["choices"][0]["message"] == choice["message"]


def test_a_streamed_chat_with_usage(server: Server) -> None:
    whole = chat(server, max_tokens=20).json()["choices"][0]["message"]["content"]
    data = events(chat(server, max_tokens=20, stream=True, stream_options={"include_usage": True}))
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {MODEL}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    # The text arrives over several chunks and adds up to the non-streamed answer's.
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 1
    assert streamed_text(chunks) == whole
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert reasons[:-1] == [None] * (len(reasons) - 1) and reasons[-1] == "length"
    # The usage: null on every chunk but the last, which has no choices.
    assert [c["usage"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    prompt = server.expected_prompt_tokens
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": prompt, "completion_tokens": 20, "total_tokens": prompt + 20}  # fmt: skip


def test_a_streamed_chat_without_usage_has_none(server: Server) -> None:
    chunks = events(chat(server, max_tokens=5, stream=True))[:-1]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_a_stop_string_ends_the_answer_before_it(server: Server) -> None:
    whole = chat(server, max_tokens=60).json()["choices"][0]["message"]["content"]
    # A stop string taken from the middle of the greedy answer: two characters, so that a
    # stream must hold back a first character that might begin it.
    assert len(whole) >= 8, f"the fixture's greedy answer is too short: {whole!r}"
    stop = whole[len(whole) // 2 : len(whole) // 2 + 2]
    expected = whole[: whole.index(stop)]
    answer = chat(server, max_tokens=60, stop=[stop, "never appears \u2603"]).json()
    assert answer["choices"][0]["message"]["content"] == expected
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] < 60
    chunks = events(chat(server, max_tokens=60, stop=stop, stream=True))[:-1]
    assert streamed_text(chunks) == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_temperature_samples(server: Server) -> None:
    # Greedy answers are all alike (above); sampled ones from a random model are not.
    texts = {chat(server, max_tokens=8, temperature=1.0, top_p=0.95).json()["choices"][0]["message"]["content"] for _ in range(5)}  # fmt: skip
    assert len(texts) > 1, texts


def test_max_tokens_up_to_the_context_is_served(server: Server) -> None:
    room = CONTEXT_LENGTH - server.expected_prompt_tokens
    answer = chat(server, max_tokens=room).json()
    assert answer["usage"]["completion_tokens"] == room
    assert answer["choices"][0]["finish_reason"] == "length"


# -- bad requests ---------------------------------------------------------------------------

GOOD = {"model": MODEL, "messages": MESSAGES}
BAD_REQUESTS = [
    # (id, body, status, param, words in the message)
    ("unknown-model", GOOD | {"model": "gpt-9"}, 404, "model", "gpt-9"),
    ("model-not-a-string", GOOD | {"model": 7}, 400, "model", "string"),
    ("no-messages", {"model": MODEL}, 400, "messages", "list"),
    ("empty-messages", GOOD | {"messages": []}, 400, "messages", "at least one"),
    ("messages-not-a-list", GOOD | {"messages": "hi"}, 400, "messages", "list"),
    (
        "bad-role",
        GOOD | {"messages": [{"role": "robot", "content": "x"}]},
        400,
        "messages[0]",
        "robot",
    ),
    (
        "content-not-text",
        GOOD | {"messages": [{"role": "user", "content": 5}]},
        400,
        "messages[0]",
        "string",
    ),
    ("max-tokens-a-string", GOOD | {"max_tokens": "ten"}, 400, "max_tokens", "integer"),
    ("max-tokens-a-bool", GOOD | {"max_tokens": True}, 400, "max_tokens", "integer"),
    ("max-tokens-zero", GOOD | {"max_tokens": 0}, 400, "max_tokens", "at least 1"),
    (
        "over-the-context",
        GOOD | {"max_tokens": CONTEXT_LENGTH},
        400,
        "max_tokens",
        str(CONTEXT_LENGTH),
    ),
    ("temperature-too-high", GOOD | {"temperature": 2.5}, 400, "temperature", "between 0 and 2"),
    ("top-p-zero", GOOD | {"top_p": 0}, 400, "top_p", "above 0"),
    ("stop-empty", GOOD | {"stop": [""]}, 400, "stop", "non-empty"),
    ("stream-not-bool", GOOD | {"stream": "yes"}, 400, "stream", "true or false"),
    ("n-two", GOOD | {"n": 2}, 400, "n", "1"),
    (
        "tools",
        GOOD | {"tools": [{"type": "function", "function": {"name": "f"}}]},
        400,
        "tools",
        "does not call tools",
    ),
    ("tool-choice", GOOD | {"tool_choice": "required"}, 400, "tool_choice", "does not call tools"),
    ("body-a-list", [GOOD], 400, None, "JSON object"),
]


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_a_bad_request_gets_a_clear_error(
    server: Server, body: Any, status: int, param: str | None, words: str
) -> None:
    answer = call(server.base_url, "POST", "/v1/chat/completions", body)
    assert answer.status == status, answer.body
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert words in error["message"], error["message"]


def test_a_body_that_is_not_json_gets_a_400(server: Server) -> None:
    answer = call(server.base_url, "POST", "/v1/chat/completions", raw=b"{not json")
    assert answer.status == 400
    assert "not valid JSON" in answer.json()["error"]["message"]


# -- concurrency and metrics ----------------------------------------------------------------


def scrape(server: Server) -> dict[str, float]:
    """Every sample of /metrics, by its full series text."""
    text = call(server.base_url, "GET", "/metrics", key=None).body.decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def series(name: str, **extra: str) -> str:
    """A sample's name and labels as the Python client writes them: labels sorted."""
    labels = {"engine": "0", "model_name": MODEL} | extra
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def test_more_requests_than_generators_wait_and_all_complete(server: Server) -> None:
    requests, room = 3 * MAX_CONCURRENT + 2, CONTEXT_LENGTH - server.expected_prompt_tokens
    before = scrape(server)
    seen: list[dict[str, float]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(scrape(server))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(requests) as pool:
            answers = list(pool.map(lambda _: chat(server, max_tokens=room), range(requests)))
    finally:
        done.set()
        watcher.join()
    after = scrape(server)

    assert [a.status for a in answers] == [200] * requests
    assert {a.json()["usage"]["completion_tokens"] for a in answers} == {room}
    running = [s[series("vllm:num_requests_running")] for s in seen]
    waiting = [s[series("vllm:num_requests_waiting")] for s in seen]
    # Never more generators than allowed; the others were seen waiting for one.
    assert max(running) == MAX_CONCURRENT, running
    assert max(waiting) >= 1, waiting
    assert after[series("vllm:num_requests_running")] == 0
    assert after[series("vllm:num_requests_waiting")] == 0

    def grew(series: str) -> float:
        return after[series] - before.get(series, 0.0)

    prompt = server.expected_prompt_tokens
    assert grew(series("vllm:prompt_tokens_total")) == requests * prompt
    assert grew(series("vllm:generation_tokens_total")) == requests * room
    finished = series("vllm:request_success_total", finished_reason="length")
    assert grew(finished) == requests
    for histogram in ("time_to_first_token_seconds", "e2e_request_latency_seconds"):
        assert grew(series(f"vllm:{histogram}_count")) == requests
        assert grew(series(f"vllm:{histogram}_bucket", le="+Inf")) == requests


def test_the_vllm_named_metrics_have_vllms_kinds_and_labels(server: Server) -> None:
    """Each vllm:* family this server exposes is one vLLM v0.31.0 declares (the vendored
    extract of vllm/v1/metrics/loggers.py), with the same kind and the same label names."""
    chat(server, max_tokens=2)  # every family has a sample
    text = call(server.base_url, "GET", "/metrics", key=None).body.decode()
    # The client writes a counter's TYPE line with or without `_total`, by version.
    declared = re.findall(r"^# TYPE (vllm:\S+) (\w+)$", text, re.M)
    kinds = {re.sub(r"_total$", "", name): kind for name, kind in declared}
    upstream = json.loads(UPSTREAM_METRICS.read_text())
    assert set(kinds) == {
        "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:prompt_tokens",
        "vllm:generation_tokens", "vllm:request_success", "vllm:time_to_first_token_seconds",
        "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds",
        "vllm:inter_token_latency_seconds",
    }  # fmt: skip
    for family, kind in kinds.items():
        assert upstream[family]["kind"] == kind, family
        samples = re.findall(rf"^{re.escape(family)}(?:_total|_bucket|_count|_sum)?{{([^}}]*)}}", text, re.M)  # fmt: skip
        # Histogram buckets add Prometheus' own `le` to the declared labels.
        labels = {frozenset(re.findall(r'(\w+)="', s)) - {"le"} for s in samples}
        assert labels == {frozenset(upstream[family]["labels"])}, family


def _hang_up_after_the_first_event(server: Server, max_tokens: int) -> None:
    """A streamed chat whose client closes the connection once the first event arrives."""
    host, port = server.base_url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": MODEL, "messages": MESSAGES, "temperature": 0, "stream": True}
        | {"max_tokens": max_tokens}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {KEYS[0]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head + body)
        received = b""
        while b"data: " not in received:
            chunk = connection.recv(4096)
            assert chunk, received
            received += chunk


def test_a_client_that_hangs_up_mid_stream_frees_its_generator(server: Server) -> None:
    room = CONTEXT_LENGTH - server.expected_prompt_tokens
    running = series("vllm:num_requests_running")
    for hang_up in range(5):
        _hang_up_after_the_first_event(server, room)
        deadline = time.monotonic() + 10
        while scrape(server)[running] != 0:
            assert time.monotonic() < deadline, f"hang-up {hang_up} left its generator held"
            time.sleep(0.1)
    # Every slot is free: requests up to the generators' count are served at once.
    with ThreadPoolExecutor(MAX_CONCURRENT) as pool:
        answers = list(pool.map(lambda _: chat(server, max_tokens=4), range(MAX_CONCURRENT)))
    assert [a.status for a in answers] == [200] * MAX_CONCURRENT


def test_a_full_queue_answers_503_at_once(full_server: Server) -> None:
    requests, room = 4, FULL_SERVER_CONTEXT - full_server.expected_prompt_tokens
    with ThreadPoolExecutor(requests) as pool:
        answers = list(pool.map(lambda _: chat(full_server, max_tokens=room), range(requests)))
    statuses = sorted(a.status for a in answers)
    # One generator, no waiting room: while the first request generates its hundreds of
    # tokens, the others arriving with it are turned away.
    assert statuses[0] == 200 and statuses[-1] == 503, statuses
    assert set(statuses) == {200, 503}
    refused = next(a for a in answers if a.status == 503).json()["error"]
    assert refused["code"] == "queue_full" and refused["type"] == "server_error"
    assert scrape(full_server)[series("vllm:num_requests_waiting")] == 0


def test_max_model_len_caps_what_a_request_may_ask(full_server: Server) -> None:
    card = call(full_server.base_url, "GET", "/v1/models").json()["data"][0]
    assert card["max_model_len"] == FULL_SERVER_CONTEXT
    room = FULL_SERVER_CONTEXT - full_server.expected_prompt_tokens
    refused = chat(full_server, max_tokens=room + 1)
    assert refused.status == 400
    error = refused.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "max_tokens"
    assert f"context is {FULL_SERVER_CONTEXT} tokens" in error["message"]


def test_the_server_process_is_what_sizing_counts_for_it(full_server: Server) -> None:
    """sizing.SERVER_PROCESS_MIB is this process's peak resident set with the tiny model:
    re-measured here after a chat, it must not be understated by more than a tenth."""
    assert chat(full_server, max_tokens=8).status == 200
    status = Path(f"/proc/{full_server.pid}/status").read_text()
    peak_kib = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))
    assert peak_kib / 1024 <= sizing.SERVER_PROCESS_MIB * 1.1, peak_kib


# -- the environments ---------------------------------------------------------------------


def _pins(requirements: Path) -> dict[str, str]:
    text = requirements.read_text()
    return dict(re.findall(r"^([A-Za-z0-9][-\w.]*)==([\w.+]+)", text, re.M))


def test_the_tests_run_the_images_exact_packages() -> None:
    """What is tested is what the image installs: every package of the image's lock, at
    the same version, in the tests' lock (made with the image's lock as constraints)."""
    image = _pins(SERVER.parent / "requirements.txt")
    tests = _pins(ROOT / "tests" / "onnx_server" / "requirements.txt")
    assert {"onnxruntime-genai", "onnxruntime", "starlette", "uvicorn"} <= image.keys()
    assert {name: tests.get(name) for name in image} == image


# -- start-up -------------------------------------------------------------------------------


def test_the_server_refuses_to_start_without_a_key(model_dir: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "OGA_SERVER_API_KEY"}
    result = subprocess.run(
        [str(onnx_python()), str(SERVER), "--model-dir", str(model_dir / "onnx"),
         "--served-model-name", MODEL],
        capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "no API key: set OGA_SERVER_API_KEY or pass --api-keys-file (the key is required)"
    ]
