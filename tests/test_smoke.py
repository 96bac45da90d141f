"""The post-deploy smoke test against a fake OpenAI-compatible server on an ephemeral port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tools.smoke import main

API_KEY = "test-key-123"
CODE_PIECES = [
    "def is_prime(n):",
    "\n    return n > 1",
    " and all(",
    "n % d for d",
    " in range(2, n))",
]
USAGE_COMPLETION_TOKENS = 12  # differs from len(CODE_PIECES): shows which count was used
CHUNK_DELAY_S = 0.02


@dataclass
class Behaviour:
    """What the fake server does; each test sets what it needs before calling main."""

    models: list[str] = field(default_factory=lambda: ["phi4-mini", "qwen3-4b"])
    tool_calls: bool = True
    stream_usage: bool = True
    stream_error: bool = False  # an error event after the first content chunk
    models_delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping must not hold up shutdown

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), FakeOpenAIHandler)
        self.behaviour = behaviour

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out and hang up are part of the tests, not errors."""


class FakeOpenAIHandler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the smoke test's output, not the server's."""

    def do_GET(self) -> None:
        if not self._authorised():
            return
        behaviour = self.server.behaviour
        behaviour.requests.append({"path": self.path})
        if self.path != "/v1/models":
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        time.sleep(behaviour.models_delay_s)
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in behaviour.models
        ]
        self._send_json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.behaviour.requests.append({"path": self.path, "body": body})
        if self.path != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
        elif body.get("stream"):
            self._stream(body)
        elif body.get("tools"):
            self._send_json(200, self._tool_reply(body))
        else:
            prompt = body["messages"][-1]["content"]
            answer = "391" if "17 * 23" in prompt else "hello"
            self._send_json(
                200, completion(body["model"], {"role": "assistant", "content": answer}, "stop")
            )

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {API_KEY}":
            return True
        error = {"message": "Invalid API key", "type": "authentication_error", "code": 401}
        self._send_json(401, {"error": error})
        return False

    def _tool_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.server.behaviour.tool_calls:
            message = {"role": "assistant", "content": "I cannot check the weather."}
            return completion(body["model"], message, "stop")
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return completion(body["model"], message, "tool_calls")

    def _stream(self, body: dict[str, Any]) -> None:
        behaviour = self.server.behaviour
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the closed connection ends the body
        model = body["model"]
        self._event(chunk(model, {"role": "assistant", "content": ""}))
        for number, piece in enumerate(CODE_PIECES):
            time.sleep(CHUNK_DELAY_S)
            self._event(chunk(model, {"content": piece}))
            if behaviour.stream_error and number == 0:
                self._event(
                    {"error": {"message": "engine crashed", "type": "internal_error", "code": 500}}
                )
                return
        self._event(chunk(model, {}, finish_reason="stop"))
        if behaviour.stream_usage and body.get("stream_options", {}).get("include_usage"):
            usage = {
                "prompt_tokens": 20,
                "completion_tokens": USAGE_COMPLETION_TOKENS,
                "total_tokens": 32,
            }
            self._event(chunk(model, None, usage=usage))
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def completion(model: str, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }


def chunk(
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A chat.completion.chunk; no delta means the usage-only chunk, which has no choices."""
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    )
    payload = {
        "id": "cmpl-2",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        payload["usage"] = usage
    return payload


@dataclass
class Endpoint:
    base_url: str
    behaviour: Behaviour


PROXY_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The right key in SLM_API_KEY, and no proxy: 127.0.0.1 must be reached directly."""
    for variable in PROXY_VARIABLES + [v.lower() for v in PROXY_VARIABLES]:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SLM_API_KEY", API_KEY)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """A fake server on 127.0.0.1 and a port the system picked, stopped after the test."""
    behaviour = Behaviour()
    server = FakeServer(behaviour)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    yield Endpoint(f"http://{host}:{port}/v1", behaviour)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def smoke(endpoint: Endpoint, *args: str) -> int:
    return main(["--base-url", endpoint.base_url, "--timeout", "5", *args])


def test_every_check_passes_against_a_healthy_endpoint(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke(endpoint) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[1/4] list models ... ok (phi4-mini)"
    assert lines[1] == "[2/4] chat completion ... ok (answer '391')"
    assert lines[2].startswith("[3/4] streamed chat ... ok (TTFT ")
    assert lines[2].endswith(f"tok/s, {USAGE_COMPLETION_TOKENS} tokens)")
    assert lines[3] == '[4/4] tool call ... ok (get_weather({"city": "Paris"}))'
    assert lines[4:] == ["smoke: 4 passed, 0 failed"]


def test_json_report_measures_ttft_and_tokens_per_second(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke(endpoint, "--json", "--max-tokens", "32") == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout is the report alone
    assert "[1/4] list models ... ok (phi4-mini)" in captured.err
    assert captured.err.endswith("smoke: 4 passed, 0 failed\n")
    assert report["ok"] is True
    assert report["model"] == "phi4-mini"
    assert report["summary"] == "smoke: 4 passed, 0 failed"
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("list models", "passed"),
        ("chat completion", "passed"),
        ("streamed chat", "passed"),
        ("tool call", "passed"),
    ]
    assert all(c["seconds"] >= 0 for c in report["checks"])
    streamed = report["checks"][2]
    assert streamed["completion_tokens"] == USAGE_COMPLETION_TOKENS
    assert streamed["completion_tokens_from"] == "usage"
    # The server sleeps before the first piece, so the first token cannot come sooner.
    assert report["ttft_ms"] >= CHUNK_DELAY_S * 1000
    assert report["ttft_ms"] == streamed["ttft_ms"]
    # Decoding is a part of the check's time, so the rate is at least tokens / that time.
    assert report["tokens_per_second"] == streamed["tokens_per_second"]
    assert report["tokens_per_second"] * streamed["seconds"] >= 0.99 * USAGE_COMPLETION_TOKENS
    chats = [r["body"] for r in endpoint.behaviour.requests if r["path"] == "/v1/chat/completions"]
    assert [c["max_tokens"] for c in chats] == [32, 32, 32]
    assert chats[1]["stream_options"] == {"include_usage": True}
    assert chats[2]["tool_choice"] == "auto"
    assert chats[2]["tools"][0]["function"]["parameters"]["required"] == ["city"]


def test_without_a_usage_chunk_tokens_are_counted_from_content_chunks(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.behaviour.stream_usage = False
    assert smoke(endpoint, "--json") == 0
    streamed = json.loads(capsys.readouterr().out)["checks"][2]
    assert streamed["completion_tokens"] == len(CODE_PIECES)
    assert streamed["completion_tokens_from"] == "content chunks"
    assert streamed["tokens_per_second"] > 0


def test_model_chosen_with_model_flag(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke(endpoint, "--model", "qwen3-4b") == 0
    assert capsys.readouterr().out.startswith("[1/4] list models ... ok (qwen3-4b)\n")
    chats = [r["body"] for r in endpoint.behaviour.requests if r["path"] == "/v1/chat/completions"]
    assert {c["model"] for c in chats} == {"qwen3-4b"}


def test_wrong_api_key_fails_with_one_line_and_stops(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLM_API_KEY", "wrong-key")
    assert smoke(endpoint) == 1
    captured = capsys.readouterr()
    assert captured.out == (
        "[1/4] list models ... FAILED: authentication failed (HTTP 401): check the API key\n"
        "smoke: 0 passed, 1 failed, 3 not run\n"
    )
    assert "Traceback" not in captured.out + captured.err
    assert "wrong-key" not in captured.out + captured.err


def test_unreachable_endpoint_fails_with_one_line_and_stops(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    assert main(["--base-url", f"http://127.0.0.1:{port}/v1", "--timeout", "5"]) == 1
    assert time.perf_counter() - started < 5  # no retries, no waiting for a timeout
    captured = capsys.readouterr()
    first, summary = captured.out.splitlines()
    assert first.startswith("[1/4] list models ... FAILED: endpoint unreachable: ")
    assert first.endswith(f"(GET http://127.0.0.1:{port}/v1/models)")
    assert summary == "smoke: 0 passed, 1 failed, 3 not run"
    assert captured.err == ""


def test_slow_endpoint_times_out(endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint.behaviour.models_delay_s = 1.0
    assert main(["--base-url", endpoint.base_url, "--timeout", "0.2"]) == 1
    assert capsys.readouterr().out == (
        "[1/4] list models ... FAILED: timed out (--timeout): the model may still be loading\n"
        "smoke: 0 passed, 1 failed, 3 not run\n"
    )


def test_model_not_listed_fails(endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke(endpoint, "--model", "nope") == 1
    assert capsys.readouterr().out == (
        "[1/4] list models ... FAILED: model 'nope' is not served (listed: phi4-mini, qwen3-4b)\n"
        "smoke: 0 passed, 1 failed, 3 not run\n"
    )
    assert [r["path"] for r in endpoint.behaviour.requests] == ["/v1/models"]


def test_endpoint_with_no_models_fails(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.behaviour.models = []
    assert smoke(endpoint) == 1
    assert "[1/4] list models ... FAILED: the endpoint lists no models\n" in capsys.readouterr().out


def test_missing_tool_call_fails_that_check_only(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.behaviour.tool_calls = False
    assert smoke(endpoint) == 1
    lines = capsys.readouterr().out.splitlines()
    outcomes = [line.split(" ... ")[1].split()[0] for line in lines[:4]]
    assert outcomes == ["ok", "ok", "ok", "FAILED:"]
    assert lines[3] == (
        "[4/4] tool call ... FAILED: no get_weather tool call in the reply (finish_reason=stop):"
        " the server may lack a tool-call parser; --skip-tools skips this check"
    )
    assert lines[4:] == ["smoke: 3 passed, 1 failed"]


def test_skip_tools_reports_the_check_as_skipped(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.behaviour.tool_calls = False
    assert smoke(endpoint, "--skip-tools", "--json") == 0
    captured = capsys.readouterr()
    assert "[4/4] tool call ... skipped (--skip-tools)\n" in captured.err
    assert captured.err.endswith("smoke: 3 passed, 0 failed, 1 skipped\n")
    report = json.loads(captured.out)
    assert report["ok"] is True
    skipped = report["checks"][3]
    assert (skipped["name"], skipped["status"], skipped["detail"]) == (
        "tool call",
        "skipped",
        "--skip-tools",
    )
    assert not any("tools" in r.get("body", {}) for r in endpoint.behaviour.requests)


def test_broken_stream_fails_that_check_and_the_rest_still_run(
    endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint.behaviour.stream_error = True
    assert smoke(endpoint, "--json") == 1
    captured = capsys.readouterr()
    assert "[3/4] streamed chat ... FAILED: server error: engine crashed\n" in captured.err
    assert "[4/4] tool call ... ok (get_weather" in captured.err
    report = json.loads(captured.out)
    assert report["summary"] == "smoke: 3 passed, 1 failed"
    assert report["ok"] is False
    assert report["ttft_ms"] is None
    assert report["tokens_per_second"] is None
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("variable", ["SLM_API_KEY", "PHI4_KEY"])
def test_missing_api_key_variable_is_a_usage_error(
    variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(variable, raising=False)
    assert main(["--base-url", "http://127.0.0.1:1/v1", "--api-key-env", variable]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"smoke: the API key's environment variable {variable} is not set\n"


def test_empty_api_key_variable_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLM_API_KEY", "  ")
    assert main(["--base-url", "http://127.0.0.1:1/v1"]) == 2
    assert (
        capsys.readouterr().err
        == "smoke: the API key's environment variable SLM_API_KEY is empty\n"
    )


def test_api_key_on_the_command_line_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--base-url", "http://127.0.0.1:1/v1", "--api-key", "sk-secret"]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err
        == "smoke: --api-key is not accepted: put the key in the environment variable SLM_API_KEY\n"
    )
    assert "sk-secret" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "smoke: the following arguments are required: --base-url (see --help)"),
        (
            ["--base-url", "http://h/v1", "--timeout", "-1"],
            "smoke: argument --timeout: must be greater than 0, not -1 (see --help)",
        ),
        (
            ["--base-url", "http://h/v1", "--timeout", "soon"],
            "smoke: argument --timeout: not a number: 'soon' (see --help)",
        ),
        (
            ["--base-url", "http://h/v1", "--max-tokens", "0"],
            "smoke: argument --max-tokens: must be greater than 0, not 0 (see --help)",
        ),
        (
            ["--base-url", "host/v1"],
            "smoke: --base-url must be an http(s) URL such as https://host/v1, not 'host/v1'",
        ),
        (
            ["--base-url", "http://h/v1", "--retries", "3"],
            "smoke: unrecognized arguments: --retries 3 (see --help)",
        ),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    arguments: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == message + "\n"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--api-key-env NAME" in capsys.readouterr().out
