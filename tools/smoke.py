"""The post-deploy smoke test: is a deployed model answering on its OpenAI-compatible endpoint?

    python -m tools.smoke --base-url https://host/models/phi4-mini/v1 [--api-key-env SLM_API_KEY]
                          [--model NAME] [--timeout 120] [--max-tokens 64] [--skip-tools] [--json]

CI runs it after `pulumi up`. The API key is read from the environment variable named by
`--api-key-env` (SLM_API_KEY unless told), never from the command line, where it would land in
shell history and CI logs. Four checks run in order, each printed as a progress line:

    [1/4] list models      /v1/models answers and lists the model (--model, else the first one)
    [2/4] chat completion  a maths prompt gets non-empty content back; the answer is reported
    [3/4] streamed chat    a code prompt, streamed: time to first token and tokens per second
    [4/4] tool call        the reply calls get_weather with a JSON "city" (--skip-tools: skipped)

then `smoke: N passed, M failed`. A failed check is one line with the reason, never a traceback.
If the endpoint is unreachable, or refuses the key, or does not serve the model, the run stops
there: every later check would fail the same way.

With `--json`, stdout holds only a JSON report (checks with status, seconds and details, ttft_ms,
tokens_per_second) for CI to archive, and the progress lines go to stderr.

Exit status: 0 every check passed or was skipped; 1 a check failed; 2 bad arguments or the API
key's variable unset (one line on stderr).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import openai

from tools.cli_args import (
    check_base_url,
    endpoint_parser,
    positive,
    refuse_key_argument,
    settings_and_key,
)

EXIT_FAILED = 1
DEFAULT_API_KEY_ENV = "SLM_API_KEY"
# A smoke test reports the first failure instead of hiding it behind retries, and without
# retries --timeout bounds each request.
MAX_RETRIES = 0
REASON_MAX_CHARS = 240

MATHS_PROMPT = "What is 17 * 23? Answer with the number only."
MATHS_ANSWER = "391"
CODE_PROMPT = (
    "Write a short Python function is_prime(n) that returns True when n is a prime number. "
    "Reply with the code only."
)
WEATHER_PROMPT = "What is the weather like in Paris right now?"
TOOL_NAME = "get_weather"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
            "required": ["city"],
        },
    },
}

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class CheckResult:
    status: str
    detail: str = ""
    # Facts a later check or the JSON report needs (model, answer, ttft_ms, ...).
    data: dict[str, Any] = field(default_factory=dict)
    # The endpoint cannot serve any later check: unreachable, or the key refused.
    stop: bool = False
    # Filled in by run_check.
    name: str = ""
    seconds: float = 0.0


@dataclass
class Settings:
    base_url: str
    api_key_env: str
    model: str | None
    timeout: float
    max_tokens: int
    skip_tools: bool
    json: bool


def main(argv: list[str] | None = None) -> int:
    parsed = settings_and_key("smoke", parse_arguments, argv)
    if isinstance(parsed, int):
        return parsed
    settings, api_key = parsed
    client = openai.OpenAI(
        base_url=settings.base_url,
        api_key=api_key,
        timeout=settings.timeout,
        max_retries=MAX_RETRIES,
    )
    # With --json, stdout is the report alone, so that CI can redirect it to a file.
    progress = sys.stderr if settings.json else sys.stdout
    results = run_checks(client, settings, progress)
    print(summary_line(results), file=progress, flush=True)
    if settings.json:
        print(json.dumps(json_report(settings, results), indent=2))
    return EXIT_FAILED if any(r.status == FAILED for r in results) else 0


def parse_arguments(argv: list[str] | None) -> Settings:
    parser = endpoint_parser("smoke", __doc__.split("\n\n")[0], DEFAULT_API_KEY_ENV)
    parser.add_argument("--model", help="the model to test (the first listed)")
    parser.add_argument(
        "--timeout", type=positive(float), default=120.0, help="seconds per request (120)"
    )
    parser.add_argument(
        "--max-tokens", type=positive(int), default=64, help="tokens per completion (64)"
    )
    parser.add_argument("--skip-tools", action="store_true", help="skip the tool-call check")
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    args = parser.parse_args(argv)
    refuse_key_argument(args)
    check_base_url(args.base_url)
    return Settings(
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        model=args.model,
        timeout=args.timeout,
        max_tokens=args.max_tokens,
        skip_tools=args.skip_tools,
        json=args.json,
    )


CHECK_NAMES = ("list models", "chat completion", "streamed chat", "tool call")


def run_checks(client: openai.OpenAI, settings: Settings, progress: TextIO) -> list[CheckResult]:
    """Each check in order, with a progress line as it runs; stop where the rest would fail."""
    listing = run_check(1, lambda: check_list_models(client, settings.model), progress)
    if listing.status == FAILED:  # no model to ask, or no endpoint to ask it
        return [listing]
    model = listing.data["model"]
    tokens = settings.max_tokens
    later = [
        lambda: check_chat_completion(client, model, tokens),
        lambda: check_streamed_chat(client, model, tokens),
        lambda: check_tool_call(client, model, tokens, settings.skip_tools),
    ]
    results = [listing]
    for number, check in enumerate(later, start=2):
        results.append(run_check(number, check, progress))
        if results[-1].stop:
            break
    return results


def run_check(number: int, check: Callable[[], CheckResult], progress: TextIO) -> CheckResult:
    """Run one check between its progress line's start and end; time it; never raise."""
    name = CHECK_NAMES[number - 1]
    print(f"[{number}/{len(CHECK_NAMES)}] {name} ... ", end="", file=progress, flush=True)
    started = time.perf_counter()
    try:
        result = check()
    except Exception as err:  # a smoke test reports what failed, it never crashes
        reason, stop = describe_error(err)
        result = CheckResult(FAILED, detail=reason, stop=stop)
    result.name = name
    result.seconds = round(time.perf_counter() - started, 3)
    print(outcome_text(result), file=progress, flush=True)
    return result


def outcome_text(result: CheckResult) -> str:
    if result.status == PASSED:
        return f"ok ({result.detail})" if result.detail else "ok"
    if result.status == SKIPPED:
        return f"skipped ({result.detail})"
    return f"FAILED: {result.detail}"


def check_list_models(client: openai.OpenAI, wanted: str | None) -> CheckResult:
    served = [model.id for model in client.models.list().data]
    if not served:
        return CheckResult(FAILED, detail="the endpoint lists no models")
    if wanted is not None and wanted not in served:
        detail = f"model {wanted!r} is not served (listed: {', '.join(served)})"
        return CheckResult(FAILED, detail=detail, data={"models": served})
    model = wanted or served[0]
    return CheckResult(PASSED, detail=model, data={"model": model, "models": served})


def check_chat_completion(client: openai.OpenAI, model: str, max_tokens: int) -> CheckResult:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": MATHS_PROMPT}],
        max_tokens=max_tokens,
        temperature=0,
    )
    choice = reply.choices[0] if reply.choices else None
    answer = (choice.message.content or "").strip() if choice else ""
    if not answer:
        finish = choice.finish_reason if choice else "no choices"
        return CheckResult(FAILED, detail=f"empty content (finish_reason={finish})")
    # A wrong sum is worth a note, not a failure: the check is that the model answers at all.
    note = "" if MATHS_ANSWER in answer else f", expected {MATHS_ANSWER}"
    detail = f"answer {one_line(answer, 60)!r}{note}"
    return CheckResult(PASSED, detail=detail, data={"answer": answer})


def check_streamed_chat(client: openai.OpenAI, model: str, max_tokens: int) -> CheckResult:
    started = time.perf_counter()
    first_token_at = last_token_at = None
    content_chunks = 0
    usage_tokens = None
    with client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": CODE_PROMPT}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage_tokens = chunk.usage.completion_tokens
            # The first chunk usually carries only the role, with empty content: not a token.
            if chunk.choices and chunk.choices[0].delta.content:
                last_token_at = time.perf_counter()
                if first_token_at is None:
                    first_token_at = last_token_at
                content_chunks += 1
    if first_token_at is None or last_token_at is None:
        return CheckResult(FAILED, detail="the stream carried no content")
    tokens = usage_tokens if usage_tokens is not None else content_chunks
    ttft_ms = round((first_token_at - started) * 1000, 1)
    decoding = last_token_at - first_token_at
    tokens_per_second = round(tokens / decoding, 1) if decoding > 0 else None
    rate = "tok/s n/a (one chunk)" if tokens_per_second is None else f"{tokens_per_second} tok/s"
    source = "usage" if usage_tokens is not None else "content chunks"
    data = {
        "ttft_ms": ttft_ms,
        "tokens_per_second": tokens_per_second,
        "completion_tokens": tokens,
        "completion_tokens_from": source,
    }
    detail = f"TTFT {ttft_ms:.0f} ms, {rate}, {tokens} tokens"
    return CheckResult(PASSED, detail=detail, data=data)


def check_tool_call(client: openai.OpenAI, model: str, max_tokens: int, skip: bool) -> CheckResult:
    if skip:
        return CheckResult(SKIPPED, detail="--skip-tools")
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": WEATHER_PROMPT}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        max_tokens=max_tokens,
        temperature=0,
    )
    choice = reply.choices[0] if reply.choices else None
    calls = (choice.message.tool_calls or []) if choice else []
    for call in calls:
        function = getattr(call, "function", None)  # custom tool calls carry no function
        if function is None or function.name != TOOL_NAME:
            continue
        arguments = parse_arguments_json(function.arguments)
        if arguments is None or "city" not in arguments:
            detail = f"{TOOL_NAME} called without a city: {one_line(function.arguments, 80)!r}"
            return CheckResult(FAILED, detail=detail)
        detail = f"{TOOL_NAME}({json.dumps(arguments, ensure_ascii=False)})"
        return CheckResult(PASSED, detail=detail, data={"arguments": arguments})
    finish = choice.finish_reason if choice else "no choices"
    # Usually the server, not the model: vLLM parses tool calls only when told how.
    detail = (
        f"no {TOOL_NAME} tool call in the reply (finish_reason={finish}): the server may lack"
        " a tool-call parser; --skip-tools skips this check"
    )
    return CheckResult(FAILED, detail=detail)


def parse_arguments_json(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text or "")
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def describe_error(err: Exception) -> tuple[str, bool]:
    """One line that says what went wrong, and whether later checks are worth running."""
    # Subclasses before their bases: a timeout is a connection error, 401 a status error.
    if isinstance(err, openai.APITimeoutError):
        return "timed out (--timeout): the model may still be loading", False
    if isinstance(err, openai.APIConnectionError):
        cause = one_line(str(err.__cause__ or err), 120)
        return f"endpoint unreachable: {cause} ({err.request.method} {err.request.url})", True
    if isinstance(err, openai.AuthenticationError):
        return "authentication failed (HTTP 401): check the API key", True
    if isinstance(err, openai.PermissionDeniedError):
        return "permission denied (HTTP 403): check the API key's access", True
    if isinstance(err, openai.APIStatusError):
        return f"HTTP {err.status_code}: {one_line(server_message(err))}", False
    if isinstance(err, openai.APIError):  # an error event in the middle of a stream
        return f"server error: {one_line(server_message(err))}", False
    return f"{type(err).__name__}: {one_line(str(err))}", False


def server_message(err: openai.APIError) -> str:
    """The server's own words where its error body has them, else the SDK's message."""
    body = err.body
    if isinstance(body, dict):
        nested = body.get("error")
        message = nested.get("message") if isinstance(nested, dict) else body.get("message")
        if isinstance(message, str) and message:
            return message
        if isinstance(nested, str) and nested:
            return nested
    return err.message


def one_line(text: str, limit: int = REASON_MAX_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def summary_line(results: list[CheckResult]) -> str:
    counts = {status: sum(r.status == status for r in results) for status in (PASSED, FAILED)}
    line = f"smoke: {counts[PASSED]} passed, {counts[FAILED]} failed"
    skipped = sum(r.status == SKIPPED for r in results)
    not_run = len(CHECK_NAMES) - len(results)
    if skipped:
        line += f", {skipped} skipped"
    if not_run:
        line += f", {not_run} not run"
    return line


def json_report(settings: Settings, results: list[CheckResult]) -> dict[str, Any]:
    streamed = next((r.data for r in results if r.name == CHECK_NAMES[2]), {})
    model = next((r.data["model"] for r in results if "model" in r.data), settings.model)
    checks = [
        {"name": r.name, "status": r.status, "seconds": r.seconds, "detail": r.detail, **r.data}
        for r in results
    ]
    checks += [{"name": name, "status": "not run"} for name in CHECK_NAMES[len(results) :]]
    return {
        "base_url": settings.base_url,
        "model": model,
        "ok": not any(r.status == FAILED for r in results),
        "summary": summary_line(results),
        "checks": checks,
        "ttft_ms": streamed.get("ttft_ms"),
        "tokens_per_second": streamed.get("tokens_per_second"),
    }


if __name__ == "__main__":
    sys.exit(main())
