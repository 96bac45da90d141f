"""Smoke-test every model of a deployed stack from CI, right after `pulumi up`.

    python -m tools.smoke_stack OUTPUTS [--ready-timeout SECONDS] [-- SMOKE_ARGS ...]

OUTPUTS is the stack's outputs as `pulumi stack output --json` prints them (a file, or `-` for
stdin). Each model in `endpoints` is tested with tools/smoke.py, asked for by its served name
(`servedModelNames`), at the address a client would use, where CI can reach it:

- an ingress URL (`https://<host>/models/<name>/v1`, stacks with `ingress.enabled`) as it is,
  so that TLS, routing and the API key are part of the test;
- an in-cluster URL (`http://<service>.<namespace>.svc.cluster.local:<port>`: the stack has no
  ingress, its models answer only inside the cluster) through `kubectl port-forward` to that
  Service, once its Deployment has rolled out (--ready-timeout, 30 minutes unless told: a new
  GPU node, the image and the weights come first). This tests the model server, not a public
  path, because there is none. A Deployment scaled to zero (a dev model outside its awake
  hours) has no pod to ask: it is reported as skipped, with a warning, and not woken up.

kubectl reads KUBECONFIG. The API key is SLM_API_KEY when set, else what the stack's
`apiKeyCommand` prints, fetched only once a model is ready (the Kubernetes Secret it reads is
synced while a model pod runs) and passed to smoke.py in its environment, never on a command
line. SMOKE_ARGS go to smoke.py unchanged (e.g. `-- --skip-tools`), plus `--skip-tools` for an
ONNX Runtime model (`models.<name>.engine`), whose server calls no tools. A vLLM model with
LoRA adapters (`models.<name>.adapters`) is tested once more under its first adapter's name.

Exit status: 0 every model passed or was skipped; 1 a model failed; 2 bad arguments or outputs
without endpoints (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tools.cli_args import OneLineParser, UsageError

ROOT = Path(__file__).resolve().parent.parent
EXIT_FAILED = 1
EXIT_USAGE = 2
API_KEY_ENV = "SLM_API_KEY"  # the variable tools/smoke.py reads
# Ollama has no authentication, but smoke.py wants a key: any value will do.
NO_KEY = "no-key"
DEFAULT_READY_TIMEOUT_S = 1800
# How long kubectl port-forward may take to say where it listens.
PORT_FORWARD_START_S = 60
IN_CLUSTER_HOST = re.compile(r"^(?P<name>[^.]+)\.(?P<namespace>[^.]+)\.svc(\.cluster\.local)?$")
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(?P<port>\d+) ->")


class KubectlError(Exception):
    """kubectl failed: the model is reported as failed, with kubectl's own words."""


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    port: int


@dataclass(frozen=True)
class Target:
    model: str
    url: str  # the OpenAI-compatible base URL, ending in /v1
    served_name: str | None
    service: Service | None  # set when the model answers only inside the cluster
    # Engines without tool calling (ONNX Runtime's server refuses `tools`) skip that check.
    calls_tools: bool = True
    # A vLLM model's first LoRA adapter (models.<name>.adapters), smoke-tested once more by
    # its own served name at the same address.
    adapter: str | None = None

    @property
    def names(self) -> list[str | None]:
        return [self.served_name, *([self.adapter] if self.adapter else [])]


def targets(outputs: dict[str, Any]) -> list[Target]:
    endpoints = outputs.get("endpoints")
    if not isinstance(endpoints, dict) or not endpoints:
        raise UsageError("the outputs list no endpoints (`pulumi stack output --json` expected)")
    served = outputs.get("servedModelNames") or {}
    models = outputs.get("models") or {}
    found = []
    for model, url in endpoints.items():
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise UsageError(f"endpoint of {model!r} is not an http(s) URL: {url!r}")
        names = served.get(model) or []
        engine = (models.get(model) or {}).get("engine")
        adapters = (models.get(model) or {}).get("adapters") or []
        found.append(
            Target(
                model,
                openai_base_url(url),
                names[0] if names else None,
                service(url),
                calls_tools=engine not in ENGINES_WITHOUT_TOOLS,
                adapter=adapters[0]["name"] if adapters else None,
            )
        )
    return found


# The stack outputs' models.<name>.engine values whose servers have no tool calling.
ENGINES_WITHOUT_TOOLS = ("onnxruntime",)


def smoke_args(target: Target, extra: list[str]) -> list[str]:
    """SMOKE_ARGS, with --skip-tools for a model whose engine calls no tools."""
    if target.calls_tools or "--skip-tools" in extra:
        return extra
    return [*extra, "--skip-tools"]


def openai_base_url(url: str) -> str:
    """vLLM's endpoints end in /v1; Ollama's is its native API, with the OpenAI API under /v1."""
    stripped = url.rstrip("/")
    return stripped if stripped.endswith("/v1") else f"{stripped}/v1"


def service(url: str) -> Service | None:
    """The Service behind an in-cluster URL; None for any other URL."""
    parts = urlsplit(url)
    match = IN_CLUSTER_HOST.match(parts.hostname or "")
    if not match:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Service(match["name"], match["namespace"], port)


class Kubectl:
    """The few kubectl calls the smoke test needs. Deployments are named like their Service
    (components/vllm.py, components/ollama.py; tests/test_smoke_stack.py checks it)."""

    def __init__(self, command: tuple[str, ...] = ("kubectl",)) -> None:
        self.command = command

    def desired_replicas(self, svc: Service) -> int:
        jsonpath = "jsonpath={.spec.replicas}"
        text = self._run("get", "deployment", svc.name, "-n", svc.namespace, "-o", jsonpath)
        return int(text.strip() or "1")  # an unset spec.replicas means 1

    def wait_rolled_out(self, svc: Service, timeout_s: int) -> None:
        deployment = f"deployment/{svc.name}"
        self._run("rollout", "status", deployment, "-n", svc.namespace, f"--timeout={timeout_s}s")

    @contextmanager
    def port_forward(self, svc: Service) -> Iterator[int]:
        """Forward a free local port to the Service; yield that port."""
        args = ["port-forward", "-n", svc.namespace, f"service/{svc.name}", f":{svc.port}"]
        process = subprocess.Popen(
            [*self.command, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: queue.Queue[str | None] = queue.Queue()
        # Drain kubectl's output for as long as it runs: a full pipe would stall the forward.
        threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
        try:
            yield _forwarded_port(lines, PORT_FORWARD_START_S)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _run(self, *args: str) -> str:
        result = subprocess.run([*self.command, *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise KubectlError(_last_line(result.stderr or result.stdout, f"kubectl {args[0]}"))
        return result.stdout


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)  # kubectl exited


def _forwarded_port(lines: queue.Queue[str | None], timeout_s: float) -> int:
    said = []
    while True:
        try:
            line = lines.get(timeout=timeout_s)
        except queue.Empty:
            raise KubectlError(f"port-forward said nothing useful in {timeout_s:.0f} s") from None
        if line is None:
            raise KubectlError(_last_line("\n".join(said), "port-forward exited"))
        match = FORWARDING.search(line)
        if match:
            return int(match["port"])
        said.append(line)


def _last_line(text: str, fallback: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else fallback


# (base URL, served model name, API key, extra smoke.py arguments) -> smoke.py's exit status
SmokeRunner = Callable[[str, str | None, str, list[str]], int]


def run_smoke(base_url: str, served_name: str | None, api_key: str, extra: list[str]) -> int:
    """tools/smoke.py in a child process: its progress lines go straight to the CI log."""
    command = [sys.executable, "-m", "tools.smoke", "--base-url", base_url, *extra]
    if served_name:
        command += ["--model", served_name]
    environment = {**os.environ, API_KEY_ENV: api_key}
    return subprocess.run(command, cwd=ROOT, env=environment).returncode


class ApiKey:
    """SLM_API_KEY, or the output of the stack's apiKeyCommand, read once when first needed."""

    def __init__(self, command: str | None) -> None:
        self.command = command
        self.value = os.environ.get(API_KEY_ENV) or None

    def get(self) -> str:
        if self.value is None:
            self.value = self._from_command() if self.command else NO_KEY
            if os.environ.get("GITHUB_ACTIONS") == "true":
                print(f"::add-mask::{self.value}", flush=True)
        return self.value

    def _from_command(self) -> str:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", self.command], capture_output=True, text=True
        )
        key = result.stdout.strip()
        if result.returncode != 0 or not key:
            raise KubectlError(f"apiKeyCommand: {_last_line(result.stderr, 'printed no key')}")
        return key


def key_command(outputs: dict[str, Any]) -> str | None:
    """The shared key's command, or, once a stack names consumers and the shared key is
    revoked, the first consumer's (by name): any live key will do for a smoke test."""
    consumers = outputs.get("apiKeyCommands") or {}
    return outputs.get("apiKeyCommand") or next(
        (consumers[name] for name in sorted(consumers)), None
    )


def smoke_stack(
    outputs: dict[str, Any],
    kubectl: Kubectl,
    smoke: SmokeRunner,
    ready_timeout_s: int = DEFAULT_READY_TIMEOUT_S,
    extra: list[str] | None = None,
) -> int:
    api_key = ApiKey(key_command(outputs))
    statuses = []
    for target in targets(outputs):
        try:
            status = smoke_one(target, kubectl, smoke, api_key, ready_timeout_s, extra or [])
        except KubectlError as err:  # one model's trouble: the others are still worth testing
            print(f"smoke_stack: {target.model}: FAILED: {err}", flush=True)
            status = "failed"
        statuses.append(status)
    counts = {status: statuses.count(status) for status in ("passed", "failed", "skipped")}
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    print(f"smoke_stack: models {summary}", flush=True)
    return EXIT_FAILED if counts["failed"] else 0


def smoke_one(
    target: Target,
    kubectl: Kubectl,
    smoke: SmokeRunner,
    api_key: ApiKey,
    ready_timeout_s: int,
    extra: list[str],
) -> str:
    if target.service is None:
        print(f"smoke_stack: {target.model}: {target.url}", flush=True)
        return smoke_names(target, target.url, api_key.get(), smoke, extra)
    svc = target.service
    if kubectl.desired_replicas(svc) == 0:
        note = f"{target.model}: scaled to zero (outside its awake hours?): not smoke-tested"
        print(f"smoke_stack: {note}", flush=True)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            print(f"::warning::{note}", flush=True)
        return "skipped"
    print(f"smoke_stack: {target.model}: waiting for deployment/{svc.name} to roll out", flush=True)
    kubectl.wait_rolled_out(svc, ready_timeout_s)
    key = api_key.get()
    with kubectl.port_forward(svc) as port:
        local = f"http://127.0.0.1:{port}{urlsplit(target.url).path}"
        print(
            f"smoke_stack: {target.model}: service/{svc.name} port {svc.port} at {local}",
            flush=True,
        )
        return smoke_names(target, local, key, smoke, extra)


def smoke_names(target: Target, url: str, key: str, smoke: SmokeRunner, extra: list[str]) -> str:
    """smoke.py for the model, then for its first adapter: each must pass."""
    codes = []
    for name in target.names:
        if name != target.served_name:
            print(f"smoke_stack: {target.model}: adapter {name}", flush=True)
        codes.append(smoke(url, name, key, smoke_args(target, extra)))
    return "passed" if not any(codes) else "failed"


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds above 0, not {text!r}")
    return int(text)


def read_outputs(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        outputs = json.loads(text)
    except OSError as err:
        raise UsageError(f"{source}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{source}: not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(outputs, dict):
        raise UsageError(f"{source}: expected the JSON object of `pulumi stack output --json`")
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="smoke_stack",
        usage="%(prog)s OUTPUTS [--ready-timeout SECONDS] [-- SMOKE_ARGS ...]",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("outputs", help="`pulumi stack output --json` of the stack, or - for stdin")
    parser.add_argument(
        "--ready-timeout",
        type=_positive_int,
        default=DEFAULT_READY_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long each model may take to roll out ({DEFAULT_READY_TIMEOUT_S})",
    )
    # Everything after `--` is smoke.py's: split it off before argparse sees it.
    ours = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in ours:
        ours, extra = ours[: ours.index("--")], ours[ours.index("--") + 1 :]
    try:
        args = parser.parse_args(ours)
        outputs = read_outputs(args.outputs)
        targets(outputs)  # refuse unusable outputs before touching the cluster
    except SystemExit as exit_:  # --help
        return EXIT_USAGE if exit_.code else 0
    except UsageError as err:
        print(f"smoke_stack: {err}", file=sys.stderr)
        return EXIT_USAGE
    return smoke_stack(outputs, Kubectl(), run_smoke, args.ready_timeout, extra)


if __name__ == "__main__":
    sys.exit(main())
