"""A loopback OpenAI-compatible server with a known service-time model, for tools/loadtest.py.

It answers as vLLM's OpenAI server does where a load generator looks: GET /v1/models, and
POST /v1/chat/completions streamed as server-sent events: a first chunk with the role and
empty content, one token per chunk, a chunk with the finish reason, then (with
stream_options.include_usage) a chunk with empty choices and the usage, then `data: [DONE]`
(vLLM 0.31.0, the pinned image's, vllm/entrypoints/openai/chat_completion/serving.py,
chat_completion_stream_generator; installed in .venv-vllm). Every request must carry
`Authorization: Bearer <key>`; any other answers 401 with an OpenAI error body.

Service time, per request and independent of load (every request has its own thread, so
there is no queueing or batching):

    TTFT = ttft_base_s + ttft_per_input_token_s * input_tokens
    each later token ITL = itl_s after the one before it

so a load generator's report can be checked against numbers known in advance. Input tokens
are the whitespace-separated words of the messages' text: the test's tokenizer makes one
word per token. Output tokens are max_tokens (max_completion_tokens), as vLLM emits them
with ignore_eos. Each answered completion is logged (tokens, whether the key matched) so
that a test can see what reached the server.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODEL = "fake-model"


@dataclass(frozen=True)
class ServiceModel:
    ttft_base_s: float
    ttft_per_input_token_s: float
    itl_s: float

    def ttft_s(self, input_tokens: int) -> float:
        return self.ttft_base_s + self.ttft_per_input_token_s * input_tokens


@dataclass(frozen=True)
class Served:
    """One request as the server saw it."""

    path: str
    authorized: bool
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class FakeOpenAI:
    """The server's state: what it serves, the key it wants, what it saw."""

    api_key: str
    service: ServiceModel
    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, entry: Served) -> None:
        with self.lock:
            self.served.append(entry)

    def completions(self) -> list[Served]:
        with self.lock:
            return [s for s in self.served if s.path.endswith("/chat/completions")]


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive with chunked streams, as a real server: the client's connection pool reuses
    # connections, so TTFT measures the service time, not a TCP handshake per request.
    protocol_version = "HTTP/1.1"
    server: _Server

    def handle(self) -> None:
        # The client hung up: guidellm cancels what is in flight when a rate ends.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (upstream's name)
        pass  # the test reads the log in FakeOpenAI, not on stderr

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server.fake.api_key}"

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self) -> None:
        self.server.fake.record(Served(self.path, authorized=False))
        error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
        self._send_json(401, {"error": {**error, "param": None, "code": "invalid_api_key"}})

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self._authorized():
            self._refuse()
            return
        self.server.fake.record(Served(self.path, authorized=True))
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "fake"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self._authorized():
            self._refuse()
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        started = time.perf_counter()
        input_tokens = sum(_words(message.get("content")) for message in body["messages"])
        output_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        self.server.fake.record(Served(self.path, True, input_tokens, output_tokens))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(started, input_tokens, output_tokens, include_usage)
        else:
            _sleep_until(started + self._finish_s(input_tokens, output_tokens))
            message = {"role": "assistant", "content": "tok " * output_tokens}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
            self._send_json(
                200,
                {
                    **_head(),
                    "object": "chat.completion",
                    "choices": [choice],
                    "usage": _usage(input_tokens, output_tokens),
                },
            )

    def _finish_s(self, input_tokens: int, output_tokens: int) -> float:
        service = self.server.fake.service
        return service.ttft_s(input_tokens) + service.itl_s * (output_tokens - 1)

    def _stream(self, started: float, input_tokens: int, output_tokens: int, usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = {**_head(), "object": "chat.completion.chunk"}
        # vLLM's first chunk names the role with empty content: not a token.
        self._event({**head, "choices": [_delta({"role": "assistant", "content": ""})]})
        service = self.server.fake.service
        first_token_at = started + service.ttft_s(input_tokens)
        # Each token at its own deadline, so that sleep overshoot does not accumulate.
        for index in range(output_tokens):
            _sleep_until(first_token_at + index * service.itl_s)
            self._event({**head, "choices": [_delta({"content": "tok "})]})
        self._event({**head, "choices": [_delta({}, finish_reason="length")]})
        if usage:
            self._event({**head, "choices": [], "usage": _usage(input_tokens, output_tokens)})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, payload: dict[str, Any]) -> None:
        self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI


def _words(content: Any) -> int:
    """Whitespace-separated words of a message's text (a string, or OpenAI's text parts)."""
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(len(part.get("text", "").split()) for part in content if isinstance(part, dict))
    return 0


def _head() -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "created": int(time.time()), "model": MODEL}


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    total = input_tokens + output_tokens
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": total,
    }


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)


def write_word_tokenizer(folder: Path) -> Path:
    """A Hugging Face tokenizer, made offline, that gives one token per whitespace-separated
    word: a load generator that cuts prompts to N tokens with it sends N words, which is what
    this server counts. Every word is the same token ("w"), so prompts decode to "w w w ...";
    the server reads only their length."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {"w": 0}, "unk_token": "w"},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"})
    )
    return folder


class running:  # noqa: N801 (used as a context manager, like open)
    """`with running(fake) as base_url:` serves `fake` on 127.0.0.1 in a thread."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = fake
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
