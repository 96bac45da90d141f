"""An OpenAI-compatible chat server on ONNX Runtime GenAI (onnxruntime-genai 0.18.0).

Endpoints: POST /v1/chat/completions (streamed as server-sent events or not), GET /v1/models,
GET /health and GET /metrics (Prometheus text, with vLLM's metric names and labels where the
meaning is the same, so the template's dashboards, alerts and autoscalers read this engine
as they read vLLM). As vLLM does, the API key guards /v1 only; /health and /metrics stay open
for probes and scrapes.

Concurrency: at most --max-concurrent generators run at once (one per request, each in its
own thread); the others wait in a queue, counted by vllm:num_requests_waiting. With
--max-waiting, a request that finds the queue full gets 503 at once instead of waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import onnxruntime_genai as og
import prometheus_client
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

# One key, from the environment (as VLLM_API_KEY gives vLLM one key).
API_KEY_ENV = "OGA_SERVER_API_KEY"
# vLLM's guarded prefix for this server's only guarded routes (vLLM v0.31.0,
# vllm/entrypoints/serve/middleware/authenticate.py GUARDED_PREFIX).
GUARDED_PREFIX = "/v1"
ROLES = ("system", "user", "assistant", "tool", "developer")
# vLLM labels every engine metric with the engine's index; one engine here.
ENGINE_INDEX = "0"
# Histogram buckets, in seconds: chosen to span a small model on CPU, from a first token in
# milliseconds to a long answer in minutes.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0)
TOKEN_GAP_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5)


class ApiError(Exception):
    """An answer in OpenAI's error shape: {"error": {message, type, param, code}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.code = code or "invalid_request"

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


# -- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    served_model_name: str
    host: str
    port: int
    max_concurrent: int
    max_waiting: int | None
    api_keys: tuple[str, ...]
    max_model_len: int | None = None
    threads: int | None = None


def served_context(genai_config: dict[str, Any], settings: Settings) -> int:
    """The context this server serves: the model's, or less where --max-model-len says so.

    A generator's KV cache is sized for its max_length, so this caps each request's memory
    as the deployment was sized (components/sizing.py)."""
    model_context = int(genai_config["model"]["context_length"])
    if settings.max_model_len is None:
        return model_context
    return min(model_context, settings.max_model_len)


def model_config(settings: Settings) -> Any:
    """The model folder's genai_config.json, with the thread count overlaid when given.

    ONNX Runtime picks its thread pool from the CPUs the process may run on, and a
    container's CPU limit does not narrow those (it is a time quota, not an affinity): on a
    node larger than the pod's share, more threads than CPUs fight over the quota."""
    config = og.Config(str(settings.model_dir))
    if settings.threads is not None:
        options = {"session_options": {"intra_op_num_threads": settings.threads}}
        config.overlay(json.dumps({"model": {"decoder": options}}))
    return config


def fail(message: str) -> NoReturn:
    """A bad setting: one line, exit status 2 (as argparse's own errors)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def load_api_keys(keys_file: str | None, environ: dict[str, str]) -> tuple[str, ...]:
    """The keys file is vLLM's --config YAML (`api-key: [k1, k2]`, what
    components/access.py keys_file writes); else one key from the environment."""
    if keys_file:
        try:
            loaded = yaml.safe_load(Path(keys_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            fail(f"--api-keys-file {keys_file}: cannot be read ({error})")
        keys = loaded.get("api-key") if isinstance(loaded, dict) else None
        keys = [keys] if isinstance(keys, str) else keys
        if (
            not isinstance(keys, list)
            or not keys
            or not all(isinstance(k, str) and k for k in keys)
        ):
            fail(f"--api-keys-file {keys_file}: needs `api-key:` with one or more keys")
        return tuple(keys)
    if environ.get(API_KEY_ENV):
        return (environ[API_KEY_ENV],)
    fail(f"no API key: set {API_KEY_ENV} or pass --api-keys-file (the key is required)")


def parse_settings(argv: list[str], environ: dict[str, str]) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True, type=Path, help="an ONNX GenAI model folder")
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-concurrent", type=int, default=1, help="generators at once")
    parser.add_argument(
        "--max-waiting", type=int, default=None, help="queued requests; 503 past it"
    )
    parser.add_argument("--api-keys-file", default=None)
    parser.add_argument(
        "--max-model-len",
        type=int,
        default=None,
        help="the longest prompt plus answer served (default: the model's context_length); "
        "each generator holds a KV cache this long, so it bounds the memory",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="ONNX Runtime's intra-op threads (default: its own choice from the CPUs it "
        "sees); set it to the container's CPUs",
    )
    args = parser.parse_args(argv)
    if args.max_concurrent < 1:
        parser.error(f"--max-concurrent {args.max_concurrent}: must be 1 or more")
    if args.max_waiting is not None and args.max_waiting < 0:
        parser.error(f"--max-waiting {args.max_waiting}: must be 0 or more")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: must be 1 or more")
    if args.max_model_len is not None and args.max_model_len < 1:
        parser.error(f"--max-model-len {args.max_model_len}: must be 1 or more")
    if not (args.model_dir / "genai_config.json").is_file():
        parser.error(f"--model-dir {args.model_dir}: no genai_config.json there")
    return Settings(
        model_dir=args.model_dir,
        served_model_name=args.served_model_name,
        host=args.host,
        port=args.port,
        max_concurrent=args.max_concurrent,
        max_waiting=args.max_waiting,
        api_keys=load_api_keys(args.api_keys_file, environ),
        max_model_len=args.max_model_len,
        threads=args.threads,
    )


# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool


def _typed(body: dict[str, Any], key: str, kinds: tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    # bool is an int in Python; JSON's true is not a number.
    if value is not None and (
        isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds)
    ):
        raise ApiError(400, f"'{key}' must be {what}, got {json.dumps(value)}", key)
    return value


def _content(message: Any, index: int) -> dict[str, str]:
    param = f"messages[{index}]"
    if not isinstance(message, dict):
        raise ApiError(400, f"{param} must be an object with 'role' and 'content'", param)
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise ApiError(
            400, f"{param}.role must be one of {', '.join(ROLES)}, got {json.dumps(role)}", param
        )
    if isinstance(content, list):  # OpenAI's content parts: only text is served here
        if not all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        ):
            raise ApiError(400, f"{param}.content: only text parts are supported", param)
        content = "".join(part["text"] for part in content)
    if not isinstance(content, str):
        raise ApiError(400, f"{param}.content must be a string or a list of text parts", param)
    return {"role": role, "content": content}


def parse_chat(body: Any, served_model_name: str) -> ChatRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = _typed(body, "model", (str,), "a string")
    if model != served_model_name:
        raise ApiError(
            404,
            f"The model `{model}` does not exist; this server serves `{served_model_name}`",
            "model",
            "model_not_found",
        )
    messages = _typed(body, "messages", (list,), "a list")
    if messages is None:
        raise ApiError(400, "'messages' is required: a list of messages", "messages")
    if not messages:
        raise ApiError(400, "'messages' must hold at least one message", "messages")
    # No tool calling here: an answer in plain text to a request for tools would look like
    # a model that chose not to call one, so the request is refused instead.
    if _typed(body, "tools", (list,), "a list"):
        raise ApiError(400, "'tools' is not supported: this server does not call tools", "tools")
    if _typed(body, "tool_choice", (str, dict), "a string or an object") not in (None, "none"):
        raise ApiError(
            400, "'tool_choice' must be \"none\": this server does not call tools", "tool_choice"
        )
    if _typed(body, "n", (int,), "an integer") not in (None, 1):
        raise ApiError(400, "'n' must be 1: one choice per request", "n")
    max_tokens = _typed(body, "max_completion_tokens", (int,), "an integer")
    if max_tokens is None:
        max_tokens = _typed(body, "max_tokens", (int,), "an integer")
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, f"'max_tokens' must be at least 1, got {max_tokens}", "max_tokens")
    temperature = _typed(body, "temperature", (int, float), "a number")
    if temperature is not None and not 0 <= temperature <= 2:
        raise ApiError(
            400, f"'temperature' must be between 0 and 2, got {temperature}", "temperature"
        )
    top_p = _typed(body, "top_p", (int, float), "a number")
    if top_p is not None and not 0 < top_p <= 1:
        raise ApiError(400, f"'top_p' must be above 0 and at most 1, got {top_p}", "top_p")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, "'stop' must be a non-empty string or a list of them", "stop")
    options = _typed(body, "stream_options", (dict,), "an object") or {}
    return ChatRequest(
        messages=[_content(message, i) for i, message in enumerate(messages)],
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=tuple(stop),
        stream=bool(_typed(body, "stream", (bool,), "true or false")),
        include_usage=bool(_typed(options, "include_usage", (bool,), "true or false")),
    )


# -- stop strings -----------------------------------------------------------------------


class StopMatcher:
    """Cuts the text at the first stop string. While streaming it holds back the tail that
    could still become a stop string, so a stop string is never sent in part."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops, self.pending = stops, ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """The text that is safe to send now, and whether a stop string was found."""
        self.pending += piece
        found = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if found:
            text, self.pending = self.pending[: min(found)], ""
            return text, True
        keep = max((self._held(stop) for stop in self.stops), default=0)
        text, self.pending = (
            self.pending[: len(self.pending) - keep],
            self.pending[len(self.pending) - keep :],
        )
        return text, False

    def _held(self, stop: str) -> int:
        """The longest tail of the pending text that begins `stop`."""
        for size in range(min(len(stop) - 1, len(self.pending)), 0, -1):
            if stop.startswith(self.pending[-size:]):
                return size
        return 0

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text


# -- metrics ----------------------------------------------------------------------------


class Metrics:
    def __init__(self, model_name: str) -> None:
        # No *_created series: they double the series count and nothing here reads them.
        prometheus_client.disable_created_metrics()
        self.registry = prometheus_client.CollectorRegistry()
        labels = ["model_name", "engine"]
        values = {"model_name": model_name, "engine": ENGINE_INDEX}

        def make(cls: Callable[..., Any], name: str, doc: str, **extra: Any) -> Any:
            return cls(name, doc, labels, registry=self.registry, **extra).labels(**values)

        self.running = make(
            prometheus_client.Gauge, "vllm:num_requests_running", "Requests holding a generator."
        )
        self.waiting = make(
            prometheus_client.Gauge,
            "vllm:num_requests_waiting",
            "Requests waiting for a generator.",
        )
        self.prompt_tokens = make(
            prometheus_client.Counter, "vllm:prompt_tokens", "Prompt tokens prefilled."
        )
        self.generation_tokens = make(
            prometheus_client.Counter, "vllm:generation_tokens", "Tokens generated."
        )
        self.ttft = make(
            prometheus_client.Histogram,
            "vllm:time_to_first_token_seconds",
            "Time to the first token.",
            buckets=TTFT_BUCKETS,
        )
        self.e2e = make(
            prometheus_client.Histogram,
            "vllm:e2e_request_latency_seconds",
            "Whole request latency.",
            buckets=LATENCY_BUCKETS,
        )
        self.queue_time = make(
            prometheus_client.Histogram,
            "vllm:request_queue_time_seconds",
            "Time spent waiting for a generator.",
            buckets=LATENCY_BUCKETS,
        )
        self.inter_token = make(
            prometheus_client.Histogram,
            "vllm:inter_token_latency_seconds",
            "Time between tokens.",
            buckets=TOKEN_GAP_BUCKETS,
        )
        self._success = prometheus_client.Counter(
            "vllm:request_success",
            "Finished requests by reason.",
            [*labels, "finished_reason"],
            registry=self.registry,
        )
        self._values = values

    def finished(self, reason: str) -> None:
        self._success.labels(**self._values, finished_reason=reason).inc()


# -- generation -------------------------------------------------------------------------


@dataclass
class Outcome:
    prompt_tokens: int
    completion_tokens: int = 0
    finish_reason: str = "length"


@dataclass
class Engine:
    model: Any
    tokenizer: Any
    context_length: int
    eos_token_ids: frozenset[int]
    settings: Settings
    metrics: Metrics
    slots: asyncio.Semaphore = field(init=False)
    threads: ThreadPoolExecutor = field(init=False)
    waiting: int = 0

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.settings.max_concurrent)
        # A thread for each slot: the generate loops never queue behind other work.
        self.threads = ThreadPoolExecutor(self.settings.max_concurrent, "generator")

    @classmethod
    def load(cls, settings: Settings) -> Engine:
        config = json.loads((settings.model_dir / "genai_config.json").read_text())
        model = og.Model(model_config(settings))
        tokenizer = og.Tokenizer(model)
        return cls(
            model=model,
            tokenizer=tokenizer,
            context_length=served_context(config, settings),
            eos_token_ids=frozenset(int(t) for t in tokenizer.eos_token_ids),
            settings=settings,
            metrics=Metrics(settings.served_model_name),
        )

    def prompt_ids(self, chat: ChatRequest) -> Any:
        prompt = self.tokenizer.apply_chat_template(
            json.dumps(chat.messages), add_generation_prompt=True
        )
        ids = self.tokenizer.encode(prompt)
        room = self.context_length - len(ids)
        wanted = chat.max_tokens if chat.max_tokens is not None else max(room, 1)
        if wanted > room:
            raise ApiError(
                400,
                f"This model's context is {self.context_length} tokens: the messages take "
                f"{len(ids)} and max_tokens asks for {wanted} more; reduce either",
                "max_tokens",
                "context_length_exceeded",
            )
        return ids, wanted

    def _params(self, chat: ChatRequest, prompt_len: int, wanted: int) -> Any:
        params = og.GeneratorParams(self.model)
        # max_length counts the prompt too. Options not given keep the model's own defaults
        # (the search section of its genai_config.json).
        options: dict[str, Any] = {"max_length": prompt_len + wanted}
        # Temperature 0 asks for greedy decoding; a temperature above 0 or a top_p alone
        # asks for sampling, as they do from OpenAI's API, whose default is to sample.
        if chat.temperature is not None or chat.top_p is not None:
            options["do_sample"] = chat.temperature is None or chat.temperature > 0
        if chat.temperature:
            options["temperature"] = float(chat.temperature)
        if chat.top_p is not None:
            options["top_p"] = float(chat.top_p)
        params.set_search_options(**options)
        return params

    def generate(
        self,
        chat: ChatRequest,
        ids: Any,
        wanted: int,
        emit: Callable[[str], None],
        cancelled: threading.Event,
    ) -> Outcome:
        """The generate loop, on a worker thread: one token a step, its text passed to emit."""
        outcome = Outcome(prompt_tokens=len(ids))
        generator = og.Generator(self.model, self._params(chat, len(ids), wanted))
        generator.append_tokens(ids)
        stream, matcher = self.tokenizer.create_stream(), StopMatcher(chat.stop)
        last = None
        while not generator.is_done() and not cancelled.is_set():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            now = time.monotonic()
            if last is not None:
                self.metrics.inter_token.observe(now - last)
            last = now
            outcome.completion_tokens += 1
            if token in self.eos_token_ids:
                outcome.finish_reason = "stop"
                break
            text, stopped = matcher.feed(stream.decode(token))
            if text:
                emit(text)
            if stopped:
                outcome.finish_reason = "stop"
                return outcome
        if rest := matcher.flush():
            emit(rest)
        if cancelled.is_set():
            outcome.finish_reason = "abort"
        return outcome

    async def run(self, chat: ChatRequest) -> AsyncIterator[str | Outcome]:
        """Waits for a generator slot, then yields text pieces and, last, the Outcome."""
        ids, wanted = self.prompt_ids(chat)
        limit = self.settings.max_waiting
        if limit is not None and self.slots.locked() and self.waiting >= limit:
            raise ApiError(
                503, f"the server is full: {limit} requests already wait", code="queue_full"
            )
        started = time.monotonic()
        self.waiting += 1
        self.metrics.waiting.inc()
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
            self.metrics.waiting.dec()
        self.metrics.queue_time.observe(time.monotonic() - started)
        self.metrics.running.inc()
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()
        cancelled = threading.Event()

        def emit(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        def work() -> None:
            try:
                result: Any = self.generate(chat, ids, wanted, emit, cancelled)
            except Exception as error:  # noqa: BLE001 (handed to the request's task)
                result = error
            loop.call_soon_threadsafe(queue.put_nowait, result)

        worker = loop.run_in_executor(self.threads, work)
        first = True
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                if first and isinstance(item, str | Outcome):
                    self.metrics.ttft.observe(time.monotonic() - started)
                    first = False
                if isinstance(item, Outcome):
                    self._record(item, started)  # before the caller may close this
                    yield item
                    return
                yield item
        finally:
            cancelled.set()
            # The slot is free only once its generator has stopped, and never later: a
            # callback rather than `await worker`, which a client hanging up cancels (the
            # slot would then stay taken for good, and the server stop answering).
            worker.add_done_callback(lambda _: self._free_slot())

    def _free_slot(self) -> None:
        self.metrics.running.dec()
        self.slots.release()

    def _record(self, outcome: Outcome, started: float) -> None:
        self.metrics.prompt_tokens.inc(outcome.prompt_tokens)
        self.metrics.generation_tokens.inc(outcome.completion_tokens)
        self.metrics.e2e.observe(time.monotonic() - started)
        self.metrics.finished(outcome.finish_reason)


# -- HTTP -------------------------------------------------------------------------------


def _usage(outcome: Outcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
    }


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


async def _streamed(
    engine: Engine, chat: ChatRequest, run: AsyncIterator[str | Outcome], first: str | Outcome
) -> AsyncIterator[str]:
    head = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": engine.settings.served_model_name,
    }
    # With include_usage every chunk carries "usage": null but the last, which has the
    # usage and no choices (OpenAI's stream_options).
    usage_field = {"usage": None} if chat.include_usage else {}

    def chunk(delta: dict[str, str], reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return _sse({**head, "choices": [choice], **usage_field})

    try:
        yield chunk({"role": "assistant", "content": ""})
        item = first
        while not isinstance(item, Outcome):
            yield chunk({"content": item})
            item = await anext(run)
        yield chunk({}, item.finish_reason)
        if chat.include_usage:
            yield _sse({**head, "choices": [], "usage": _usage(item)})
        yield "data: [DONE]\n\n"
    finally:
        await run.aclose()  # a client gone: stops its generator and frees the slot


class KeyCheck:
    """The API key on every /v1 request (not OPTIONS), before routing, as vLLM checks it
    (vllm/entrypoints/serve/middleware/authenticate.py): the Authorization header's Bearer
    token against every key, by SHA-256 digest in constant time."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        self.app = app
        self.digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def authorised(self, headers: Headers) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        digest = hashlib.sha256(token.encode()).digest()
        matches = [secrets.compare_digest(digest, known) for known in self.digests]
        return scheme.lower() == "bearer" and any(matches)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") != "OPTIONS"
            and scope["path"].startswith(GUARDED_PREFIX)
            and not self.authorised(Headers(scope=scope))
        ):
            refused = ApiError(
                401,
                "a valid API key is required: Authorization: Bearer <key>",
                code="invalid_api_key",
            )
            await refused.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(engine: Engine) -> ASGIApp:
    settings = engine.settings
    name = settings.served_model_name

    async def chat_completions(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "the request body is not valid JSON") from None
        chat = parse_chat(body, name)
        run = engine.run(chat)
        first = await anext(run)  # errors before the first token still get their status
        if chat.stream:
            return StreamingResponse(
                _streamed(engine, chat, run, first), media_type="text/event-stream"
            )
        pieces = []
        try:
            while not isinstance(first, Outcome):
                pieces.append(first)
                first = await anext(run)
        finally:
            await run.aclose()
        message = {"role": "assistant", "content": "".join(pieces)}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": first.finish_reason,
        }
        created = int(time.time())
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": created,
                "model": name,
                "choices": [choice],
                "usage": _usage(first),
            }
        )

    async def models(request: Request) -> Response:
        card = {
            "id": name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "onnxruntime-genai",
            "max_model_len": engine.context_length,
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def health(request: Request) -> Response:
        return Response(status_code=200)  # the model loads before the server listens

    async def metrics(request: Request) -> Response:
        text = prometheus_client.generate_latest(engine.metrics.registry)
        return Response(text, media_type=prometheus_client.CONTENT_TYPE_LATEST)

    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return error.response()

    routes = [
        Route(f"{GUARDED_PREFIX}/chat/completions", chat_completions, methods=["POST"]),
        Route(f"{GUARDED_PREFIX}/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: api_error})
    return KeyCheck(app, settings.api_keys)


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(sys.argv[1:] if argv is None else argv, dict(os.environ))
    engine = Engine.load(settings)
    uvicorn.run(build_app(engine), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
