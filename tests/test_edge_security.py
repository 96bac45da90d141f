"""What the edge publishes, checked against vLLM's own route table and played as an attacker.

vLLM's API key guards only some path prefixes; every other route it registers answers
without a key (/invocations generates like /v1/chat/completions). The route table and the
guarded prefixes come from the vendored extract of vLLM v0.31.0
(tests/upstream/vllm-0.31.0-routes). The rendered Ingress objects are read the way
ingress-nginx v1.13 (what AKS application routing runs) turns them into NGINX locations;
that reading is checked against a real NGINX with the same locations, in front of a
loopback server that stands in for vLLM.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import http.client
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import access
from components.network import AKS_APP_ROUTING_CLASS, ModelIngressArgs, ingress_annotations
from tests.conftest import (
    NGINX_ANNOTATION_PREFIX,
    STACKS,
    copy_config_root,
    invalid_manifests,
    read_stack,
    unknown_annotations,
    write_stack,
)
from tools.plan import build_plan, kubernetes_manifests

ROUTES = Path(__file__).parent / "upstream" / "vllm-0.31.0-routes"
EXTERNAL_AUTH = Path(__file__).parent / "upstream" / "ingress-nginx-v1.13.7-external-auth"
ENTRY = ("vllm.entrypoints.launchers.app", "build_app")
AUTHENTICATE = "vllm.entrypoints.serve.middleware.authenticate"

# FastAPI's own URLs for the docs routes, used where vLLM's FastAPI(...) call leaves them
# at their defaults: fastapi 0.136.3 (the newest vLLM 0.31.0 accepts, <0.137),
# fastapi/applications.py; the OAuth2 redirect is added only with docs_url.
FASTAPI_DOCS = {
    "openapi_url": "/openapi.json",
    "docs_url": "/docs",
    "redoc_url": "/redoc",
    "swagger_ui_oauth2_redirect_url": "/docs/oauth2-redirect",
}
SWAGGER_REDIRECT = "<app.swagger_ui_oauth2_redirect_url>"


# -- vLLM's route table, from the vendored extract ------------------------------------------


@dataclass(frozen=True)
class Route:
    path: str
    methods: tuple[str, ...]
    mount: bool
    # The `if` tests (vLLM's source text) that must all hold for the route to exist.
    when: tuple[str, ...]


@cache
def extract(module: str) -> dict[str, Any]:
    local = module.removeprefix("vllm.entrypoints.")
    for name in (f"{local}.json", f"{local}.__init__.json"):
        if (ROUTES / name).exists():
            return json.loads((ROUTES / name).read_text())
    raise AssertionError(f"{module} is reached from build_app but not vendored")


def guarded_prefixes() -> tuple[str, ...]:
    return tuple(extract(AUTHENTICATE)["constants"]["GUARDED_PREFIX"])


def _route(entry: dict, when: tuple[str, ...]) -> Route:
    path = (
        FASTAPI_DOCS["swagger_ui_oauth2_redirect_url"]
        if entry["path"] == SWAGGER_REDIRECT
        else entry["path"]
    )
    assert not path.startswith("<"), f"a route path vLLM computes: {path}"
    return Route(path, tuple(entry["methods"]), entry["mount"], (*when, *entry["when"]))


def _router_routes(router: str, scope: tuple[str, str], when: tuple[str, ...]) -> list[Route]:
    """The routes of `module.router`: declared at module level, or in the scope that
    includes it (vLLM declares some routes inside the function that attaches them)."""
    module, name = router.rsplit(".", 1)
    return [
        _route(entry, when)
        for entry in extract(module)["routes"]
        if entry["router"] == name
        and (entry["scope"] == "<module>" or (module, entry["scope"]) == scope)
    ]


def _scope_routes(scope: tuple[str, str], when: tuple[str, ...], seen: set) -> list[Route]:
    if scope in seen:
        return []
    seen.add(scope)
    module, function = scope
    found = extract(module)
    routes = [
        _route(entry, when)
        for entry in found["routes"]
        if entry["scope"] == function and entry["router"] in ("app", None)
    ]
    for include in (i for i in found["includes"] if i["scope"] == function):
        routes += _router_routes(include["router"], scope, (*when, *include["when"]))
    for call in (c for c in found["calls"] if c["scope"] == function):
        target = tuple(call["target"].rsplit(".", 1))
        routes += _scope_routes(target, (*when, *call["when"]), seen)
    return routes


def docs_routes() -> list[Route]:
    """FastAPI's docs routes under each way build_app constructs the app."""
    routes = []
    for app in extract(ENTRY[0])["apps"]:
        urls = {k: v for k, v in FASTAPI_DOCS.items() if app["keywords"].get(k) != "None"}
        if "docs_url" not in urls:
            urls.pop("swagger_ui_oauth2_redirect_url", None)
        routes += [Route(url, ("GET",), False, tuple(app["when"])) for url in urls.values()]
    return routes


@cache
def vllm_routes() -> tuple[Route, ...]:
    """Every route the OpenAI API server may register, each with what it depends on."""
    routes = _scope_routes(ENTRY, (), set()) + docs_routes()
    return tuple(dict.fromkeys(routes))


def is_guarded(path: str) -> bool:
    return path.startswith(guarded_prefixes())


def route_matches(route: Route, path: str) -> bool:
    """Starlette's matching: a {param} is one segment; a mount takes what follows it."""
    if route.mount:
        return path == route.path or path.startswith(route.path.rstrip("/") + "/")
    pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(route.path))
    return re.fullmatch(pattern, path) is not None


def sample_path(route: Route) -> str:
    return re.sub(r"\{[^}]*\}", "x", route.path)


def unconditional(route: Route) -> bool:
    return not route.when


# -- ingress-nginx's reading of the rendered Ingress objects --------------------------------


class BadRequest(Exception):
    """NGINX refuses the request line before choosing a location (400)."""


def normalise(uri: str) -> str:
    """NGINX's $uri: query dropped, %XX decoded (a decoded / or . counts as one), repeated
    slashes merged (merge_slashes on, ingress-nginx leaves the default), . and .. resolved;
    a .. above the root is a 400."""
    path = urllib.parse.unquote(uri.split("?", 1)[0], errors="strict")
    if not path.startswith("/") or "\x00" in path:
        raise BadRequest(uri)
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if not segments:
                raise BadRequest(uri)
            segments.pop()
        elif segment not in (".", ""):
            segments.append(segment)
    trailing = "/" if path.endswith(("/", "/.", "/..")) and segments else ""
    return "/" + "/".join(segments) + trailing


@dataclass(frozen=True)
class Location:
    path: str
    rewrite_target: str | None
    # (service, port), or None for the controller's default backend (404).
    backend: tuple[str, int] | None
    regex: bool


def _rule_locations(ingress: dict) -> list[Location]:
    annotations = ingress["metadata"].get("annotations", {})
    target = annotations.get("nginx.ingress.kubernetes.io/rewrite-target")
    regex = annotations.get("nginx.ingress.kubernetes.io/use-regex") == "true"
    locations = []
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            service = path["backend"]["service"]
            backend = (service["name"], service["port"]["number"])
            locations.append(Location(path["path"], target, backend, regex or bool(target)))
    return locations


def host_locations(ingresses: list[dict], host: str) -> list[Location]:
    """A host's locations in the order ingress-nginx writes them (controller.go: by path,
    descending, then by length, descending), with the default backend's "/" added. Once
    any location of the host uses a regex or a rewrite, all of them are regex locations
    (template.go enforceRegexModifier), tried in that order."""
    locations = [
        location
        for ingress in ingresses
        if any(rule.get("host") == host for rule in ingress["spec"]["rules"])
        for location in _rule_locations(ingress)
    ]
    locations.append(Location("/", None, None, False))
    locations.sort(key=lambda loc: loc.path, reverse=True)
    locations.sort(key=lambda loc: len(loc.path), reverse=True)
    return locations


def _apply_target(location: Location, uri: str) -> str:
    if not location.rewrite_target:
        return uri
    match = re.search(location.path, uri, re.IGNORECASE)
    assert match, (location, uri)
    return re.sub(r"\$(\d)", lambda m: match.group(int(m.group(1))) or "", location.rewrite_target)


def edge(locations: list[Location], uri: str) -> tuple[tuple[str, int], str] | None:
    """Where NGINX sends a request: (backend, path on the backend), or None for a 404.
    Raises BadRequest where NGINX answers 400."""
    path = normalise(uri)
    enforce_regex = any(loc.regex for loc in locations)
    for location in locations:
        if enforce_regex:
            if not re.match(location.path, path, re.IGNORECASE):
                continue
        elif not path.startswith(location.path):
            continue
        if location.backend is None:
            return None
        return location.backend, _apply_target(location, path)
    return None


# A rewrite target of the shape "<literal>$<n>": the capture is a suffix of the path the
# backend sees, which is what `candidate_uris` relies on. Any other shape stops the test.
TARGET_SHAPE = re.compile(r"^(/[^$]*)?\$\d$")
REGEX_META = re.compile(r"[()\[\]{}.*+?^$|\\]")


def candidate_uris(location: Location, upstream: str) -> list[str]:
    """External paths that could reach `upstream` through `location`: its literal prefix
    followed by every suffix of `upstream`, with and without a joining slash."""
    if location.rewrite_target is None:
        return [upstream]
    assert TARGET_SHAPE.match(location.rewrite_target), location.rewrite_target
    prefix = REGEX_META.split(location.path, maxsplit=1)[0]
    suffixes = [upstream[i:] for i in range(len(upstream) + 1)]
    return [prefix + s for s in suffixes] + [prefix + "/" + s for s in suffixes]


def reachable(locations: list[Location], backends: set[tuple[str, int]], route: Route) -> list[str]:
    """The external paths that reach `route` on one of `backends`."""
    hits = []
    for location in locations:
        if location.backend not in backends:
            continue
        for uri in candidate_uris(location, sample_path(route)):
            try:
                landed = edge(locations, uri)
            except BadRequest:
                continue
            if landed and landed[0] in backends and route_matches(route, landed[1]):
                hits.append(uri)
    return list(dict.fromkeys(hits))


def exposed_unguarded(ingresses: list[dict], host: str, backends: set) -> dict[str, list[str]]:
    locations = host_locations(ingresses, host)
    found = {}
    for route in vllm_routes():
        if is_guarded(route.path):
            continue
        if hits := reachable(locations, backends, route):
            found[route.path] = hits
    return found


# -- the rendered objects of every stack, with its ingress on --------------------------------


def ingress_settings(stack: str) -> dict:
    settings = {"enabled": True, "host": f"slm.{stack}.example.com"}
    if stack in ("staging", "prod"):
        settings["tlsSecretName"] = f"slm-{stack}-tls"
    return settings


@pytest.fixture(scope="module")
def edge_plans(tmp_path_factory) -> dict[str, dict]:
    root = copy_config_root(tmp_path_factory.mktemp("edge"))
    plans = {}
    for stack in STACKS:
        document = read_stack(root, stack)
        document["config"]["slm-deploy:ingress"] = ingress_settings(stack)
        write_stack(root, stack, document)
        plans[stack] = build_plan(stack, config_root=root)
    return plans


def rendered(plan: dict, kind: str) -> list[dict]:
    return [m for m in kubernetes_manifests(plan["resources"]).values() if m["kind"] == kind]


def vllm_backends(plan: dict) -> set[tuple[str, int]]:
    """The Services (name, port) in front of vLLM pods, found from the rendered objects."""
    images = {}
    for deployment in rendered(plan, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        containers = deployment["spec"]["template"]["spec"]["containers"]
        images[tuple(sorted(labels.items()))] = " ".join(c["image"] for c in containers)
    backends = set()
    for service in rendered(plan, "Service"):
        selector = service["spec"].get("selector", {})
        for labels, image in images.items():
            if selector and set(selector.items()) <= set(labels) and "vllm" in image:
                backends |= {
                    (service["metadata"]["name"], p["port"]) for p in service["spec"]["ports"]
                }
    return backends


def test_route_table_names_the_unguarded_routes_and_what_attaches_them() -> None:
    routes = {(r.path, r.methods): r for r in vllm_routes()}
    assert guarded_prefixes() == ("/v1", "/v2", "/inference", "/cohere")
    # SageMaker's router is attached whatever the flags: /invocations generates, no key.
    assert routes[("/invocations", ("POST",))].when == ()
    assert not is_guarded("/invocations")
    assert {r.path for r in vllm_routes() if unconditional(r)} == {
        "/health",
        "/load",
        "/version",
        "/kv_event_sources",
        "/metrics",
        "/tokenize",
        "/detokenize",
        "/v1/models",
        "/ping",
        "/invocations",
    }
    chat = routes[("/v1/chat/completions", ("POST",))]
    assert chat.when == ("'generate' in supported_tasks",) and is_guarded(chat.path)
    # --disable-fastapi-docs removes FastAPI's docs; --enable-offline-docs serves its own.
    docs = [r for r in vllm_routes() if r.path in ("/docs", "/openapi.json", "/redoc")]
    assert all("args.disable_fastapi_docs" not in r.when for r in docs)
    assert ("not (args.disable_fastapi_docs)", "not (args.enable_offline_docs)") in {
        r.when for r in docs if r.path == "/redoc"
    }
    assert routes[("/tokenizer_info", ("GET",))].when == (
        "getattr(app.state.args, 'enable_tokenizer_info_endpoint', False)",
    )
    assert routes[("/collective_rpc", ("POST",))].when == ("envs.VLLM_SERVER_DEV_MODE",)
    # 80 routes (method variants and conditions apart) on 75 paths, 47 of them keyless.
    paths = {r.path for r in vllm_routes()}
    assert (len(vllm_routes()), len(paths)) == (80, 75)
    assert len({p for p in paths if not is_guarded(p)}) == 47


def test_the_key_is_checked_only_when_one_is_set() -> None:
    register = extract("vllm.entrypoints.serve.middleware.register")["middlewares"]
    auth = [m for m in register if m["middleware"] == f"{AUTHENTICATE}.AuthenticationMiddleware"]
    assert [m["when"] for m in auth] == [
        ["(tokens := [key for key in args.api_key or [envs.VLLM_API_KEY] if key])"]
    ]


# The Ingress rule this template rendered until only /v1 was published (commit 03d2dd5).
PUBLISHED_EVERYTHING = {
    "metadata": {
        "name": "phi4-mini",
        "annotations": {
            "nginx.ingress.kubernetes.io/use-regex": "true",
            "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
        },
    },
    "spec": {
        "rules": [
            {
                "host": "slm.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/models/phi4-mini(/|$)(.*)",
                            "pathType": "ImplementationSpecific",
                            "backend": {"service": {"name": "phi4-mini", "port": {"number": 8000}}},
                        }
                    ]
                },
            }
        ]
    },
}


def test_the_check_catches_an_edge_that_publishes_every_path() -> None:
    found = exposed_unguarded([PUBLISHED_EVERYTHING], "slm.example.com", {("phi4-mini", 8000)})
    assert "/models/phi4-mini/invocations" in found["/invocations"]
    assert {
        "/invocations",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/ping",
        "/load",
        "/version",
        "/health",
        "/tokenize",
        "/tokenizer_info",
    } <= set(found)


@pytest.mark.parametrize("stack", ["local", "dev", "staging", "prod"])
def test_no_unguarded_vllm_route_is_reachable_from_outside(edge_plans, stack: str) -> None:
    plan = edge_plans[stack]
    ingresses = rendered(plan, "Ingress")
    host = ingress_settings(stack)["host"]
    backends = vllm_backends(plan)
    assert exposed_unguarded(ingresses, host, backends) == {}
    locations = host_locations(ingresses, host)
    published = {r.path for r in vllm_routes() if reachable(locations, backends, r)}
    assert published == {r.path for r in vllm_routes() if r.path.startswith("/v1/")} or not backends


def test_every_ingress_publishes_only_its_models_v1(edge_plans) -> None:
    ingresses = {i["metadata"]["name"]: i for i in rendered(edge_plans["prod"], "Ingress")}
    assert sorted(ingresses) == ["phi4-mini", "qwen3-8b"]
    rule = ingresses["phi4-mini"]["spec"]["rules"][0]["http"]["paths"][0]
    assert rule["path"] == "/models/phi4-mini/v1/(.*)"
    assert rule["pathType"] == "ImplementationSpecific"
    annotations = ingresses["phi4-mini"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/rewrite-target"] == "/v1/$1"
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "16m"
    assert ingresses["phi4-mini"]["spec"]["ingressClassName"] == AKS_APP_ROUTING_CLASS


def test_ollama_is_published_only_in_local_and_only_its_v1(edge_plans) -> None:
    local = rendered(edge_plans["local"], "Ingress")
    paths = [p["path"] for i in local for r in i["spec"]["rules"] for p in r["http"]["paths"]]
    assert paths == ["/models/qwen3-tiny/v1/(.*)"]
    locations = host_locations(local, "slm.local.example.com")
    assert edge(locations, "/models/qwen3-tiny/v1/chat/completions") == (
        ("qwen3-tiny", 11434),
        "/v1/chat/completions",
    )
    for management in ("/api/pull", "/api/delete", "/api/create", "/api/tags"):
        assert edge(locations, f"/models/qwen3-tiny{management}") is None
    # Ollama takes no key, so no stack on AKS publishes it, dev included.
    local = edge_plans["local"]["outputs"]["endpoints"]
    assert "/models/qwen3-tiny/v1" in local["qwen3-tiny"]


# -- the attacker, against the rendered prod objects ----------------------------------------

MODEL = "/models/phi4-mini"
# (request path as sent, where NGINX sends it: the backend path, None for 404, 400).
TRICKS = [
    (f"{MODEL}/v1/chat/completions", "/v1/chat/completions"),
    (f"{MODEL}/v1/models", "/v1/models"),
    (f"{MODEL}/invocations", None),
    (f"{MODEL}/metrics", None),
    (f"{MODEL}/docs", None),
    (f"{MODEL}/openapi.json", None),
    (f"{MODEL}/ping", None),
    (f"{MODEL}/version", None),
    (f"{MODEL}/load", None),
    (f"{MODEL}/tokenize", None),
    (f"{MODEL}/v1", None),
    ("/invocations", None),
    ("/v1/chat/completions", None),
    (f"{MODEL}//v1/chat/completions", "/v1/chat/completions"),
    (f"{MODEL}/v1//chat/completions", "/v1/chat/completions"),
    (f"{MODEL}/v1/../invocations", None),
    (f"{MODEL}/v1/../../invocations", None),
    (f"{MODEL}/v1/../v1/models", "/v1/models"),
    (f"{MODEL}/v1/%2e%2e/invocations", None),
    (f"{MODEL}/v1%2F..%2Finvocations", None),
    (f"{MODEL}/v1/..%2finvocations", None),
    (f"{MODEL}/v1/%2e%2e%2f%2e%2e%2finvocations", None),
    (f"{MODEL}/v1/./models", "/v1/models"),
    (f"{MODEL}/V1/models", "/v1/models"),
    ("/MODELS/PHI4-MINI/v1/models", "/v1/models"),
    (f"{MODEL}/v1/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2finvocations", 400),
    (f"{MODEL}/v1/models?next=/invocations", "/v1/models"),
    (f"{MODEL}/v1/invocations", "/v1/invocations"),  # no such vLLM route: its 404, after the key
]


def test_path_tricks_against_the_rendered_prod_ingress(edge_plans) -> None:
    ingresses = rendered(edge_plans["prod"], "Ingress")
    locations = host_locations(ingresses, ingress_settings("prod")["host"])
    for uri, expected in TRICKS:
        try:
            landed = edge(locations, uri)
        except BadRequest:
            landed = 400
        path = landed if landed in (None, 400) else landed[1]
        assert path == expected, uri
        if isinstance(path, str):
            assert landed[0] == ("phi4-mini", 8000) and is_guarded(path), uri


# -- the same locations in a real NGINX, before a stand-in for vLLM ---------------------------

API_KEY = "test-key"
# The flags our stacks run vLLM with, as the route table's conditions read them: a
# generating model, FastAPI's docs left on (the worst case; prod turns them off).
STAND_IN_FLAGS = {
    "'generate' in supported_tasks",
    "not (args.disable_fastapi_docs)",
    "not (args.enable_offline_docs)",
}
# ingress-nginx's defaults for what the Ingress objects do not set (config.go,
# controller-v1.13.7): client_body_timeout and client_header_timeout 60 s. The slow client
# below gets 1 s instead, so that the test takes a second, not a minute.
SLOW_CLIENT_TIMEOUT_S = 1


def nginx() -> str:
    """NGINX must be there: a missing one fails the suite, never skips it."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if not found:
        pytest.fail("nginx not found: install Debian's nginx-light package (.ci/run does)")
    return found


class StandIn(BaseHTTPRequestHandler):
    """vLLM as the vendored extract describes it: its key check on the guarded prefixes
    (any of its keys: the `api-key` list of its --config file), then its routes (under
    STAND_IN_FLAGS); it records every request that reaches it. `busy` plays a full request
    queue (--max-num-queued-reqs reached: 503, vllm/exceptions.py QueueOverflowError), and
    `delay` a request that takes that long."""

    seen: list[tuple[str, str]] = []
    keys: frozenset[str] = frozenset({API_KEY})
    busy = False
    delay = 0.0

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        self.seen.append((self.command, path))
        presented = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if is_guarded(path) and presented not in self.keys:
            return self._send(401, {"error": "Unauthorized"})
        if self.busy:
            return self._send(503, {"error": {"message": "The engine is currently busy"}})
        time.sleep(self.delay)
        routes = [r for r in vllm_routes() if set(r.when) <= STAND_IN_FLAGS]
        if any(route_matches(r, path) for r in routes):
            return self._send(200, {"path": path})
        return self._send(404, {"detail": "Not Found"})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NGINX_ANNOTATION = "nginx.ingress.kubernetes.io/"
# The headers-more module, which ingress-nginx builds into its NGINX (images/nginx/rootfs/
# build.sh, controller-v1.13.7) and Debian packages as libnginx-mod-http-headers-more-filter.
HEADERS_MORE = Path("/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so")


def rate_limits(annotations: dict[str, str], zone: str) -> tuple[list[str], list[str]]:
    """The zones (http level) and limits (location level) ingress-nginx writes for the
    rate-limit annotations (template.go buildRateLimitZones, buildRateLimit at
    controller-v1.13.7): keyed by the client's address ($binary_remote_addr, the default
    limit-conn-zone-variable, behind its allowlist map), 5 MB zones, burst = limit x
    limit-burst-multiplier, nodelay; connections first, then requests per second."""
    rps = int(annotations.get(f"{NGINX_ANNOTATION}limit-rps", 0))
    connections = int(annotations.get(f"{NGINX_ANNOTATION}limit-connections", 0))
    multiplier = int(annotations.get(f"{NGINX_ANNOTATION}limit-burst-multiplier", 5))
    zones, limits = [], []
    if connections:
        zones.append(f"limit_conn_zone $binary_remote_addr zone={zone}_conn:5m;")
        limits.append(f"limit_conn {zone}_conn {connections};")
    if rps:
        zones.append(f"limit_req_zone $binary_remote_addr zone={zone}_rps:5m rate={rps}r/s;")
        limits.append(f"limit_req zone={zone}_rps burst={rps * multiplier} nodelay;")
    return zones, limits


def auth_location_path(location: Location) -> str:
    """ingress-nginx's internal location for a location's auth-url (template.go
    buildAuthLocation, controller-v1.13.7): the path, URL-safe base64 without padding."""
    encoded = base64.urlsafe_b64encode(location.path.encode()).decode().replace("=", "")
    return f"/_external-auth-{encoded}-ImplementationSpecific"


def nginx_auth_location(location: Location, auth_target: str, annotations: dict) -> str:
    """The `location = /_external-auth-...` block ingress-nginx writes for auth-url
    (nginx.tmpl, controller-v1.13.7; no cache key, no keepalive): the client's headers
    without its body, with auth-method as the method."""
    method = annotations.get(f"{NGINX_ANNOTATION}auth-method")
    lines = [
        f"    location = {auth_location_path(location)} {{",
        "        internal;",
        "        proxy_intercept_errors off;",
        "        proxy_pass_request_body off;",
        '        proxy_set_header Content-Length "";',
        *([f"        proxy_method {method};"] if method else []),
        "        proxy_set_header X-Original-URI $request_uri;",
        "        proxy_pass_request_headers on;",
        # proxy-http-version's default, "1.1" (config.go, controller-v1.13.7).
        "        proxy_http_version 1.1;",
        f'        set $target "{auth_target}";',
        "        proxy_pass $target;",
        "    }",
    ]
    return "\n".join(lines) + "\n"


def test_the_auth_location_and_annotations_are_ingress_nginxs(edge_plans) -> None:
    """What the test's NGINX writes for auth-url is what the controller's template writes:
    each line matches a line of its `location = {{ $authPath }}` block (a template action
    standing for any text), and the location is named as buildAuthLocation names it."""
    template = json.loads((EXTERNAL_AUTH / "auth-location.json").read_text())
    patterns = [
        re.compile(re.sub(r"\\\{\\\{.*?\\\}\\\}", ".+", re.escape(" ".join(line.split()))))
        for line in template
        if not line.startswith(("{{", "#"))
    ]
    location = Location("/models/phi4-mini/v1/(.*)", "/v1/$1", ("phi4-mini", 8000), True)
    written = nginx_auth_location(
        location, "http://127.0.0.1:1/auth", {f"{NGINX_ANNOTATION}auth-method": "GET"}
    )
    for line in written.splitlines():
        assert any(p.fullmatch(" ".join(line.split())) for p in patterns), line
    name = json.loads((EXTERNAL_AUTH / "auth-location-name.json").read_text())
    assert name == {
        "encoding": "URLEncoding",
        "format": "/_external-auth-%v-%v",
        "padding removed": True,
        "path type when unset": "default",
    }
    assert (
        auth_location_path(location)
        == "/_external-auth-L21vZGVscy9waGk0LW1pbmkvdjEvKC4qKQ-ImplementationSpecific"
    )
    # The rendered Ingress uses only auth annotations the controller reads, a method its
    # auth-method accepts, and nothing above AKS's risk level (Critical allows all).
    upstream = json.loads((EXTERNAL_AUTH / "annotations.json").read_text())
    for ingress in rendered(edge_plans["prod"], "Ingress"):
        annotations = ingress["metadata"]["annotations"]
        auth = {
            k.removeprefix(NGINX_ANNOTATION): v for k, v in annotations.items() if "/auth-" in k
        }
        assert sorted(auth) == ["auth-method", "auth-url"]
        assert {a: upstream["risk"][a] for a in auth} == {"auth-method": "Low", "auth-url": "High"}
        assert auth["auth-method"] in upstream["auth-method values"]


def nginx_location(
    location: Location, upstream: str, annotations: dict[str, str], auth: bool = False
) -> str:
    """One location as ingress-nginx's template writes it (buildLocation, buildProxyPass;
    the rate limits, the auth request, then the configuration snippet)."""
    if location.backend is None:
        return '    location ~* "^/" { return 404; }\n'
    settings = {
        "client_max_body_size": annotations["nginx.ingress.kubernetes.io/proxy-body-size"],
        "proxy_read_timeout": annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] + "s",
        "proxy_send_timeout": annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] + "s",
        "proxy_buffering": annotations["nginx.ingress.kubernetes.io/proxy-buffering"],
    }
    lines = [f'    location ~* "^{location.path}" {{']
    lines += [f"        {limit}" for limit in rate_limits(annotations, "edge")[1]]
    if auth:
        lines.append(f"        auth_request {auth_location_path(location)};")
    lines += [f"        {key} {value};" for key, value in settings.items()]
    snippet = annotations.get(f"{NGINX_ANNOTATION}configuration-snippet", "")
    lines += [f"        {line}" for line in snippet.splitlines()]
    if location.rewrite_target:
        lines.append(f'        rewrite "(?i){location.path}" {location.rewrite_target} break;')
    lines += [f"        proxy_pass http://{upstream};", "    }"]
    return "\n".join(lines) + "\n"


def auth_target(annotations: dict[str, str], auth_services: dict[str, str]) -> str | None:
    """The auth-url with its host:port replaced by where that Service listens here."""
    url = annotations.get(f"{NGINX_ANNOTATION}auth-url")
    if url is None:
        return None
    parsed = urllib.parse.urlsplit(url)
    return parsed._replace(netloc=auth_services[parsed.netloc]).geturl()


def nginx_conf(
    prefix: Path,
    port: int,
    host: str,
    ingresses: list[dict],
    upstreams: dict,
    auth_services: dict[str, str] | None = None,
) -> str:
    annotations = ingresses[0]["metadata"]["annotations"]
    # Each location with its own Ingress's auth-url (ingress-nginx keeps them per location).
    targets = {
        loc.backend: auth_target(ingress["metadata"]["annotations"], auth_services or {})
        for ingress in ingresses
        for loc in _rule_locations(ingress)
    }
    locations = ""
    for loc in host_locations(ingresses, host):
        target = targets.get(loc.backend)
        if target:
            locations += nginx_auth_location(loc, target, annotations)
        locations += nginx_location(loc, upstreams.get(loc.backend, ""), annotations, bool(target))
    temp = " ".join(
        f"{name}_temp_path {prefix}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    zones = "".join(f"  {zone}\n" for zone in rate_limits(annotations, "edge")[0])
    modules = ""
    if "more_set_headers" in annotations.get(f"{NGINX_ANNOTATION}configuration-snippet", ""):
        if not HEADERS_MORE.exists():
            pytest.fail(f"{HEADERS_MORE} not found: install libnginx-mod-http-headers-more-filter")
        modules = f"load_module {HEADERS_MORE};\n"
    return (
        f"{modules}pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nworker_processes 1;\n"
        "events {}\n"
        f"http {{\n  access_log off;\n  {temp}\n{zones}"
        f"  client_body_timeout {SLOW_CLIENT_TIMEOUT_S}s;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    server_name {host};\n"
        f"{locations}  }}\n}}\n"
    )


def _wait_for(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


def auth_service_address(plan: dict) -> str:
    """The edge key check's Service as the auth-url names it: <name>.<namespace>.svc..."""
    (service,) = [s for s in rendered(plan, "Service") if s["metadata"]["name"] == "edge-auth"]
    port = service["spec"]["ports"][0]["port"]
    return (
        f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{port}"
    )


def auth_nginx_conf(plan: dict, prefix: Path, port: int) -> str:
    """The key check's nginx.conf exactly as the plan's ConfigMap holds it, with only its
    listen address, its /tmp and its keys file moved to this test's places."""
    (configmap,) = [c for c in rendered(plan, "ConfigMap") if c["metadata"]["name"] == "edge-auth"]
    text = configmap["data"]["nginx.conf"]
    include = re.search(r"include (\S+);", text)[1]
    moved = {"listen 8080;": f"listen 127.0.0.1:{port};", include: f"{prefix}/keys.map"}
    text = text.replace(" /tmp/", f" {prefix}/")
    for old, new in moved.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def running_auth(prefix: Path, plan: dict, keys: frozenset[str]):
    """The edge key check: Debian's NGINX with the plan's configuration and a keys.map made
    from `keys` the way the secrets store receives it (access.edge_keys_map)."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "keys.map").write_text(access.edge_keys_map(sorted(keys)))
    port = _free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(auth_nginx_conf(plan, prefix, port))
    server = subprocess.Popen([nginx(), "-e", "stderr", "-p", str(prefix), "-c", str(conf)])
    _wait_for(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextlib.contextmanager
def running_edge(
    prefix: Path,
    plan: dict,
    host: str,
    ingresses: list[dict],
    keys: frozenset[str] = frozenset({API_KEY}),
):
    """NGINX with these Ingress objects' locations, before the stand-in for every vLLM model,
    consulting the edge key check (with `keys` live) where an Ingress names it."""
    backend = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    upstream = f"127.0.0.1:{backend.server_address[1]}"
    port = _free_port()
    conf = prefix / "nginx.conf"
    upstreams = dict.fromkeys(vllm_backends(plan), upstream)
    StandIn.keys = keys
    with running_auth(prefix / "auth", plan, keys) as auth:
        services = {auth_service_address(plan): auth}
        conf.write_text(nginx_conf(prefix, port, host, ingresses, upstreams, services))
        server = subprocess.Popen(
            [nginx(), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
        )
        _wait_for(port)
        try:
            yield {"port": port, "host": host}
        finally:
            server.terminate()
            server.wait(timeout=10)
            backend.shutdown()
            StandIn.keys = frozenset({API_KEY})


@pytest.fixture(scope="module")
def real_edge(edge_plans, tmp_path_factory):
    """NGINX with prod's rendered locations, in front of the stand-in for every vLLM model."""
    plan = edge_plans["prod"]
    host = ingress_settings("prod")["host"]
    prefix = tmp_path_factory.mktemp("nginx")
    with running_edge(prefix, plan, host, rendered(plan, "Ingress")) as edge:
        yield edge


def send(edge: dict, method: str, uri: str, key: str | None = None, body: bytes = b""):
    """One request with its path as written (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", edge["port"], timeout=10)
    headers = {"Host": edge["host"]}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    StandIn.seen.clear()
    connection.request(method, uri, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, list(StandIn.seen)


def stand_in_status(path: str) -> int:
    """The stand-in's answer to a request with a valid key: its route, or its 404."""
    routes = [r for r in vllm_routes() if set(r.when) <= STAND_IN_FLAGS]
    return 200 if any(route_matches(r, path) for r in routes) else 404


def test_path_tricks_against_real_nginx_agree_with_the_reading(real_edge) -> None:
    for uri, expected in TRICKS:
        status, seen = send(real_edge, "POST", uri)
        if expected is None:
            assert (status, seen) == (404, []), uri
        elif expected == 400:
            assert (status, seen) == (400, []), uri
        else:
            # Without a key the edge refuses it: the model never sees the request.
            assert (status, seen) == (401, []), uri
            # With one, it lands on the guarded path the reading says.
            status, seen = send(real_edge, "POST", uri, key=API_KEY)
            assert (status, seen) == (stand_in_status(expected), [("POST", expected)]), uri


def test_only_the_right_key_gets_an_answer(real_edge) -> None:
    models = f"{MODEL}/v1/models"
    # Refused at the edge: no key, a wrong one, the right one with its case changed (NGINX
    # matches a map's plain strings ignoring case; the map's entries are regexes), the key
    # without its scheme, with another. The model sees none of them.
    for key in (None, "wrong-key", API_KEY.upper(), f"{API_KEY}x"):
        assert send(real_edge, "GET", models, key=key) == (401, []), key
    for header in (API_KEY, f"Basic {API_KEY}", f"bearer {API_KEY}", f"Bearer  {API_KEY}"):
        assert send_raw_authorization(real_edge, models, header) == (401, []), header
    assert send(real_edge, "GET", models, key=API_KEY) == (200, [("GET", "/v1/models")])
    # Keyless routes of vLLM stay unreachable even with a valid key.
    for path in ("/invocations", "/metrics", "/docs", "/openapi.json"):
        assert send(real_edge, "GET", f"{MODEL}{path}", key=API_KEY) == (404, []), path
    # A valid key on a route vLLM lacks: its own 404, after the key check.
    status, seen = send(real_edge, "POST", f"{MODEL}/v1/invocations", key=API_KEY)
    assert (status, seen) == (404, [("POST", "/v1/invocations")])


def send_raw_authorization(edge: dict, uri: str, authorization: str):
    connection = http.client.HTTPConnection("127.0.0.1", edge["port"], timeout=10)
    StandIn.seen.clear()
    connection.request("GET", uri, headers={"Host": edge["host"], "Authorization": authorization})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, list(StandIn.seen)


def test_without_the_auth_annotations_keyless_requests_reach_the_model(edge_plans, tmp_path):
    """What the edge key check prevents: with prod's Ingress objects less their auth
    annotations, the model sees the keyless request (and answers its own 401)."""
    plan = edge_plans["prod"]
    ingresses = copy.deepcopy(rendered(plan, "Ingress"))
    for ingress in ingresses:
        annotations = ingress["metadata"]["annotations"]
        for name in ("auth-url", "auth-method"):
            del annotations[f"{NGINX_ANNOTATION}{name}"]
    with running_edge(tmp_path, plan, ingress_settings("prod")["host"], ingresses) as edge:
        for key in (None, "wrong-key"):
            assert send(edge, "GET", f"{MODEL}/v1/models", key=key) == (
                401,
                [("GET", "/v1/models")],
            )


def test_an_oversized_body_is_refused_at_the_edge(real_edge) -> None:
    limit = 16 * 1024 * 1024  # proxy-body-size "16m" on the rendered Ingress
    connection = http.client.HTTPConnection("127.0.0.1", real_edge["port"], timeout=10)
    StandIn.seen.clear()
    connection.putrequest("POST", f"{MODEL}/v1/chat/completions", skip_host=True)
    connection.putheader("Host", real_edge["host"])
    connection.putheader("Content-Length", str(limit + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, StandIn.seen) == (413, [])
    connection.close()


def test_a_slow_client_is_cut_off_before_the_model_sees_it(real_edge) -> None:
    with socket.create_connection(("127.0.0.1", real_edge["port"]), timeout=10) as sock:
        StandIn.seen.clear()
        started = time.monotonic()
        sock.sendall(
            f"POST {MODEL}/v1/chat/completions HTTP/1.1\r\nHost: {real_edge['host']}\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Length: 100\r\n\r\n{{".encode()
        )
        answer = sock.recv(4096)
        waited = time.monotonic() - started
    # NGINX buffers the body before it proxies: the model never saw the request. On the
    # body timeout NGINX closes the connection without an answer (its 408 is logged only).
    assert StandIn.seen == []
    assert answer == b""
    assert SLOW_CLIENT_TIMEOUT_S <= waited < SLOW_CLIENT_TIMEOUT_S + 5


# -- keys per consumer, rotation and revocation, through the real NGINX ------------------------

# Each generated key stands in as "<its name>-value"; the stand-in accepts the keys file's
# list, as vLLM does with `--config` (tests/test_consumer_keys.py reads it with vLLM's parser).
ROTATING = {
    "consumers": [
        {"name": "search-team", "rotation": 2, "previousValidUntil": "2027-01-31"},
        {"name": "support-bot"},
    ]
}


def served_keys(raw: dict, day: datetime.date) -> frozenset[str]:
    keys = access.live_keys(access.Access.model_validate(raw), day)
    text = access.keys_file([f"{key.slug}-value" for key in keys])
    return frozenset(yaml.safe_load(text)["api-key"])


def test_each_consumer_key_works_and_a_revoked_one_does_not(edge_plans, tmp_path) -> None:
    """The edge key check and the stand-in both get the live set of a day, as the pods of
    both do after the `pulumi up` of that day rolls them."""
    plan = edge_plans["prod"]
    host = ingress_settings("prod")["host"]
    models = f"{MODEL}/v1/models"
    overlap = served_keys(ROTATING, datetime.date(2027, 1, 31))
    with running_edge(tmp_path / "overlap", plan, host, rendered(plan, "Ingress"), overlap) as edge:
        for key in ("search-team-2", "search-team-1", "support-bot-1"):
            assert send(edge, "GET", models, key=f"api-key-{key}-value") == (
                200,
                [("GET", "/v1/models")],
            ), key
    # The day after previousValidUntil, the next `pulumi up` serves the new set: the
    # previous key of search-team is refused at the edge, the others still answer.
    after = served_keys(ROTATING, datetime.date(2027, 2, 1))
    with running_edge(tmp_path / "after", plan, host, rendered(plan, "Ingress"), after) as edge:
        assert send(edge, "GET", models, key="api-key-search-team-1-value") == (401, [])
        assert send(edge, "GET", models, key="api-key-search-team-2-value")[0] == 200
        assert send(edge, "GET", models, key="api-key-support-bot-1-value")[0] == 200
        # No key, a wrong key, the shared key of a stack that now has consumers, a key of a
        # consumer that was never declared: all refused before the model.
        for key in (None, "wrong-key", "vllm-api-key-value", "api-key-search-team-3-value"):
            assert send(edge, "GET", models, key=key) == (401, []), key
        # A valid key opens no keyless route.
        for path in ("/invocations", "/metrics", "/docs"):
            assert send(edge, "POST", f"{MODEL}{path}", key="api-key-support-bot-1-value") == (
                404,
                [],
            )


# -- per-address limits and overload, through the real NGINX --------------------------------


def limited_ingresses(plan: dict, limit: dict) -> list[dict]:
    """prod's Ingress objects with the annotations network.py renders for `limit`."""
    ingresses = copy.deepcopy(rendered(plan, "Ingress"))
    for ingress in ingresses:
        annotations = ingress["metadata"]["annotations"]
        args = ModelIngressArgs(
            namespace=ingress["metadata"]["namespace"],
            host=ingress["spec"]["rules"][0]["host"],
            class_name=ingress["spec"]["ingressClassName"],
            models=(),
            max_request_seconds=int(annotations[f"{NGINX_ANNOTATION}proxy-read-timeout"]),
            tls_secret_name=ingress["spec"]["tls"][0]["secretName"],
            tls_key_vault_certificate_uri=None,
            rate_limit=access.RateLimit.model_validate(limit),
            auth_url=annotations.get(f"{NGINX_ANNOTATION}auth-url"),
        )
        rendered_now = ingress_annotations(args)
        # Only the limit annotations are new: everything else is prod's rendering.
        assert {k: v for k, v in rendered_now.items() if k in annotations} == annotations
        ingress["metadata"]["annotations"] = rendered_now
    return ingresses


def send_with_headers(edge: dict, uri: str, key: str) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", edge["port"], timeout=10)
    connection.request("GET", uri, headers={"Host": edge["host"], "Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, response.getheader("Retry-After")


def test_a_client_over_its_rate_gets_429_with_retry_after(edge_plans, tmp_path) -> None:
    plan = edge_plans["prod"]
    host = ingress_settings("prod")["host"]
    ingresses = limited_ingresses(plan, {"rps": 1, "burstMultiplier": 1})
    with running_edge(tmp_path, plan, host, ingresses) as edge:
        StandIn.seen.clear()
        answers = [send_with_headers(edge, f"{MODEL}/v1/models", API_KEY) for _ in range(3)]
        # 1 request per second with a burst of 1 x 1: two pass at once, the third is refused
        # at the edge and never reaches the model.
        assert answers == [(200, None), (200, None), (429, "1")]
        assert len(StandIn.seen) == 2
    # Without the limit (today's prod rendering) nothing is refused.
    with running_edge(tmp_path, plan, host, rendered(plan, "Ingress")) as edge:
        answers = [send_with_headers(edge, f"{MODEL}/v1/models", API_KEY) for _ in range(3)]
        assert answers == [(200, None)] * 3


def test_a_client_over_its_connections_gets_429(edge_plans, tmp_path) -> None:
    plan = edge_plans["prod"]
    host = ingress_settings("prod")["host"]
    ingresses = limited_ingresses(plan, {"connections": 1})
    StandIn.delay = 1.0
    try:
        with running_edge(tmp_path, plan, host, ingresses) as edge:
            answers: list = []
            slow = threading.Thread(
                target=lambda: answers.append(
                    send_with_headers(edge, f"{MODEL}/v1/models", API_KEY)
                )
            )
            slow.start()
            time.sleep(0.3)  # the first request is now waiting on the model
            second = send_with_headers(edge, f"{MODEL}/v1/models", API_KEY)
            slow.join()
    finally:
        StandIn.delay = 0.0
    assert second == (429, "1")
    assert answers == [(200, None)]


def test_a_full_model_queue_answers_503_with_retry_after(edge_plans, tmp_path) -> None:
    plan = edge_plans["prod"]
    host = ingress_settings("prod")["host"]
    ingresses = limited_ingresses(plan, {"rps": 100})
    StandIn.busy = True
    try:
        with running_edge(tmp_path, plan, host, ingresses) as edge:
            # vLLM refuses with 503 once --max-num-queued-reqs requests are in flight; the
            # edge adds Retry-After, which vLLM does not send.
            assert send_with_headers(edge, f"{MODEL}/v1/models", API_KEY) == (503, "1")
            # A refused key stays a 401, with no Retry-After.
            assert send_with_headers(edge, f"{MODEL}/v1/models", "wrong-key") == (401, None)
    finally:
        StandIn.busy = False


def test_every_ingress_annotation_is_one_the_pinned_controller_reads(edge_plans) -> None:
    """Through invalid_manifests (tests/conftest.py), which every plan test runs: the rate
    limit, key check, rewrite and timeout annotations all exist in ingress-nginx
    controller-v1.13.7, and a misspelt one is caught."""
    for stack, plan in edge_plans.items():
        assert invalid_manifests(plan) == [], stack
    prod = rendered(edge_plans["prod"], "Ingress")[0]
    names = {k.removeprefix(NGINX_ANNOTATION_PREFIX) for k in prod["metadata"]["annotations"]}
    assert {"auth-url", "rewrite-target", "use-regex", "proxy-body-size"} <= names
    misspelt = copy.deepcopy(prod)
    misspelt["metadata"]["annotations"][f"{NGINX_ANNOTATION_PREFIX}limit-rsp"] = "5"
    assert unknown_annotations("ingress.yaml", misspelt) == [
        f"ingress.yaml: annotation {NGINX_ANNOTATION_PREFIX}limit-rsp is not one ingress-nginx"
        " controller-v1.13.7 reads"
    ]
