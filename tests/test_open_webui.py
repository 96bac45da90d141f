"""Open WebUI and Ollama as their pinned upstream code reads what the plan hands them.

The upstream truth is vendored under tests/upstream/open-webui-0.8.12/ and
tests/upstream/ollama-0.31.1/ (see their README.md): the environment variables each program
reads, and the start-up facts components/ollama.py relies on.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import OLLAMA_IMAGE, OPEN_WEBUI_IMAGE
from components.ollama import (
    OLLAMA_DEFAULT_HOST,
    OLLAMA_DEFAULT_NAMESPACE,
    OLLAMA_DEFAULT_TAG,
    ollama_listed_name,
)
from tests.conftest import STACKS, copy_config_root, resources_of
from tools.plan import ROOT, build_plan, kubernetes_manifests

UPSTREAM = ROOT / "tests" / "upstream"
OPEN_WEBUI = UPSTREAM / "open-webui-0.8.12"
OLLAMA = UPSTREAM / "ollama-0.31.1"
# Read by the process, not by the program's settings: Go's os.UserHomeDir (Ollama's keys
# under ~/.ollama) and Python's libraries (caches under ~). Both images' HOME is read-only.
PROCESS_VARIABLES = frozenset({"HOME"})
SERVICE_URL = "http://{}.slm-inference.svc.cluster.local:11434"


def _tag(image: str) -> str:
    return image.split("@")[0].rpartition(":")[2]


def _upstream(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / name).read_text())


def _source(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "source.json").read_text())


def open_webui_environment() -> frozenset[str]:
    return frozenset(
        name
        for file in ("env.json", "config.json")
        for name in _upstream(OPEN_WEBUI, file)["environment"]
    )


def ollama_environment() -> frozenset[str]:
    return frozenset(_upstream(OLLAMA, "environment.json")["environment"])


def _local_with(tmp_path: Path, models: list[dict[str, Any]], open_webui: bool) -> Path:
    """A copy of the stacks whose local stack serves `models` (after its own)."""
    copy_config_root(tmp_path)
    path = tmp_path / "stacks" / "Pulumi.local.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["slm-deploy:models"] += models
    document["config"]["slm-deploy:serving"] = {"ollama": {"openWebUi": {"enabled": open_webui}}}
    path.write_text(yaml.safe_dump(document))
    return tmp_path


PIRATE = {
    "name": "qwen3-pirate",
    "engine": "ollama",
    "source": "qwen3:1.7b",
    "variants": [{"name": "pirate", "system": "Answer as a pirate."}],
}


@pytest.fixture(scope="module")
def two_ollama_models(tmp_path_factory) -> dict[str, Any]:
    """local (qwen3-tiny) plus a second Ollama model with a variant, Open WebUI on."""
    root = _local_with(tmp_path_factory.mktemp("two-ollama"), [PIRATE], open_webui=True)
    return build_plan("local", config_root=root)


def _open_webui_container(plan: dict[str, Any]) -> dict[str, Any]:
    manifests = kubernetes_manifests(plan["resources"])
    spec = manifests["slm-inference/deployment-open-webui.yaml"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# -- the vendored extracts are what this project pins ----------------------------------------


def test_the_extracts_are_of_the_versions_the_images_pin() -> None:
    # Open WebUI tags its images like its releases (v0.8.12); Ollama's images drop the "v".
    assert _source(OPEN_WEBUI)["ref"] == _tag(OPEN_WEBUI_IMAGE) == "v0.8.12"
    assert _source(OLLAMA)["ref"] == f"v{_tag(OLLAMA_IMAGE)}" == "v0.31.1"


def test_open_webui_facts_the_component_relies_on() -> None:
    facts = {
        name: value
        for file in _source(OPEN_WEBUI)["files"]
        for name, value in _upstream(OPEN_WEBUI, file)["facts"].items()
    }
    assert facts == {
        "secretKeyRequiredWithAuth": True,
        "offlineModeSetsHubOffline": True,
        "sqliteDatabaseInDataDir": True,
        "dataDirMadeOnlyByServe": True,
        "persistentConfigSwitch": True,
        "ollamaBaseUrlsSplitOnSemicolon": True,
        "opensDatabaseAtImport": True,
        "createsAdminFromEnvironment": True,
        "signupRefusedWhenDisabled": True,
        "localhostEmailAccepted": True,
    }


# -- a: a session key from a Secret ----------------------------------------------------------


def test_open_webui_reads_a_generated_secret_key_and_admin_password(two_ollama_models) -> None:
    env = _env(_open_webui_container(two_ollama_models))
    assert env["WEBUI_AUTH"] == "True"
    assert env["WEBUI_SECRET_KEY"] == {"secretKeyRef": {"name": "open-webui", "key": "secret-key"}}
    assert env["WEBUI_ADMIN_PASSWORD"] == {
        "secretKeyRef": {"name": "open-webui", "key": "admin-password"}
    }
    manifests = kubernetes_manifests(two_ollama_models["resources"])
    secret = manifests["slm-inference/secret-open-webui.yaml"]
    assert secret["stringData"] == {"secret-key": "[secret]", "admin-password": "[secret]"}
    passwords = [
        r
        for r in resources_of(two_ollama_models, "random:index/randomPassword:RandomPassword")
        if r["name"].startswith("slm-open-webui-")
    ]
    assert sorted(
        (r["name"], r["inputs"]["length"], r["inputs"]["special"]) for r in passwords
    ) == [
        ("slm-open-webui-admin-password", 48, False),
        ("slm-open-webui-secret-key", 48, False),
    ]


# -- b: DATA_DIR is the mounted claim --------------------------------------------------------


def test_data_dir_is_the_claim_itself(two_ollama_models) -> None:
    manifests = kubernetes_manifests(two_ollama_models["resources"])
    deployment = manifests["slm-inference/deployment-open-webui.yaml"]["spec"]["template"]
    container = _open_webui_container(two_ollama_models)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["volumes"]}
    data_dir = _env(container)["DATA_DIR"]
    assert data_dir == "/data"
    # The folder exists before Open WebUI imports: it is the claim's mount point.
    assert volumes[mounts[data_dir]] == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": "open-webui-models"},
    }


# -- c: Ollama's names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "listed"),
    [
        ("qwen3-pirate", "qwen3-pirate:latest"),
        ("qwen3:0.6b", "qwen3:0.6b"),
        ("library/qwen3", "qwen3:latest"),
        ("registry.ollama.ai/library/qwen3:4b", "qwen3:4b"),
        ("someone/model", "someone/model:latest"),
        ("hf.co/unsloth/Qwen3-4B-GGUF:Q4_K_M", "hf.co/unsloth/Qwen3-4B-GGUF:Q4_K_M"),
    ],
)
def test_ollama_lists_a_model_by_name_and_tag(reference: str, listed: str) -> None:
    assert ollama_listed_name(reference) == listed


def test_the_names_follow_ollamas_defaults() -> None:
    assert _upstream(OLLAMA, "names.json") == {
        "defaultHost": OLLAMA_DEFAULT_HOST,
        "defaultNamespace": OLLAMA_DEFAULT_NAMESPACE,
        "defaultTag": OLLAMA_DEFAULT_TAG,
    }
    # /api/tags gives both fields as Name.DisplayShortest(); Open WebUI's id is "model".
    assert _upstream(OLLAMA, "model-list.json") == {"listedAsDisplayShortest": ["Model", "Name"]}


def test_default_model_is_the_first_models_variant_by_its_listed_name(tmp_path) -> None:
    first = dict(PIRATE, name="first")
    plan = build_plan("local", config_root=_local_with(tmp_path, [], open_webui=True))
    assert _env(_open_webui_container(plan))["DEFAULT_MODELS"] == "qwen3:0.6b"
    document_root = tmp_path / "variant"
    document_root.mkdir()
    plan = build_plan("local", config_root=_local_with(document_root, [first], open_webui=True))
    assert _env(_open_webui_container(plan))["DEFAULT_MODELS"] == "qwen3:0.6b"
    # qwen3-tiny comes first in local; give it the variant instead.
    variant_root = tmp_path / "first-variant"
    variant_root.mkdir()
    root = _local_with(variant_root, [], open_webui=True)
    path = root / "stacks" / "Pulumi.local.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["slm-deploy:models"][0]["variants"] = PIRATE["variants"]
    path.write_text(yaml.safe_dump(document))
    plan = build_plan("local", config_root=root)
    assert _env(_open_webui_container(plan))["DEFAULT_MODELS"] == "pirate:latest"


# -- d: nobody registers; the admin account is generated -------------------------------------


def test_sign_up_is_off_and_the_admin_account_is_declared(two_ollama_models) -> None:
    env = _env(_open_webui_container(two_ollama_models))
    assert env["ENABLE_SIGNUP"] == "False"
    assert env["WEBUI_ADMIN_EMAIL"] == "admin@localhost"
    # The stack file, not the first start's database, decides these settings.
    assert env["ENABLE_PERSISTENT_CONFIG"] == "False"
    assert env["OFFLINE_MODE"] == "True"
    outputs = two_ollama_models["outputs"]
    assert outputs["openWebUiAdminEmail"] == "admin@localhost"
    assert outputs["openWebUiAdminPasswordCommand"] == (
        "kubectl get secret open-webui -n slm-inference"
        " -o jsonpath='{.data.admin-password}' | base64 -d"
    )
    assert outputs["openWebUiPortForwardCommand"] == (
        "kubectl port-forward -n slm-inference svc/open-webui 8080:80"
    )


def test_without_open_webui_there_is_no_sign_in_output(plans) -> None:
    assert not [key for key in plans["local"]["outputs"] if key.startswith("openWebUi")]


# -- e: one Open WebUI for every Ollama model -------------------------------------------------


def test_one_open_webui_serves_every_ollama_model(two_ollama_models) -> None:
    manifests = kubernetes_manifests(two_ollama_models["resources"])
    assert sorted(path for path in manifests if "open-webui" in path) == [
        "slm-inference/deployment-open-webui.yaml",
        "slm-inference/persistentvolumeclaim-open-webui-models.yaml",
        "slm-inference/secret-open-webui.yaml",
        "slm-inference/service-open-webui.yaml",
    ]
    components = resources_of(two_ollama_models, "slm:ollama:OpenWebUi")
    assert [c["name"] for c in components] == ["slm-open-webui"]
    env = _env(_open_webui_container(two_ollama_models))
    assert env["OLLAMA_BASE_URLS"] == ";".join(
        SERVICE_URL.format(model) for model in ("qwen3-tiny", "qwen3-pirate")
    )
    assert "OLLAMA_BASE_URL" not in env


def test_the_first_models_open_webui_keeps_its_resources(monkeypatch, tmp_path) -> None:
    """Stacks deployed when each Ollama model had its own Open WebUI (named after it): the
    alias moves the first one's claim, Deployment and Service under the new name."""
    from tools.mock_engine import RecordingMonitor

    registered = RecordingMonitor.RegisterResource
    aliases: dict[tuple[str, str], list[str]] = {}

    def spy(self, request):
        aliases[request.type, request.name] = [a.spec.name for a in request.aliases]
        return registered(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", spy)
    build_plan("local", config_root=_local_with(tmp_path, [PIRATE], open_webui=True))
    # Children follow: the engine renames a child whose name starts with its parent's.
    assert aliases["slm:ollama:OpenWebUi", "slm-open-webui"] == ["slm-qwen3-tiny-webui"]


# -- contract: every variable the plan sets is one the program reads -------------------------


def _containers(plan: dict[str, Any], app: str) -> list[dict[str, Any]]:
    """Every container (init containers too) of the Deployments of one app."""
    containers = []
    for deployment in resources_of(plan, "kubernetes:apps/v1:Deployment"):
        template = deployment["inputs"]["spec"]["template"]
        if template["metadata"]["labels"]["app.kubernetes.io/name"] == app:
            spec = template["spec"]
            containers += spec.get("initContainers", []) + spec["containers"]
    return containers


# An image built from images/ollama-preloaded (the stock image holds no models).
PRELOADED_IMAGE = "registry.example.com/ollama-preloaded:0.31.1-1@sha256:" + "a" * 64


def _preloaded_plan(tmp_path: Path) -> dict[str, Any]:
    # Variants are built at deploy time: a preloaded (read-only) store has none.
    second = {key: value for key, value in PIRATE.items() if key != "variants"}
    root = _local_with(tmp_path, [second], open_webui=True)
    path = root / "stacks" / "Pulumi.local.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["slm-deploy:serving"] |= {
        "ollamaImage": PRELOADED_IMAGE,
        "ollama": {"openWebUi": {"enabled": True}, "preloaded": True},
    }
    path.write_text(yaml.safe_dump(document))
    return build_plan("local", config_root=root)


def test_every_variable_given_to_ollama_and_open_webui_is_one_they_read(
    plans, two_ollama_models, tmp_path
) -> None:
    variants = [*(plans[stack] for stack in STACKS), two_ollama_models, _preloaded_plan(tmp_path)]
    readers = {"ollama": ollama_environment(), "open-webui": open_webui_environment()}
    checked: dict[str, set[str]] = {app: set() for app in readers}
    for plan in variants:
        for app, known in readers.items():
            for container in _containers(plan, app):
                names = {e["name"] for e in container["env"]}
                assert names - known - PROCESS_VARIABLES == set(), container["name"]
                checked[app] |= names
    # What the plans set, so that a variable dropped from every plan shows here too.
    assert checked == {
        "ollama": {
            "HOME",
            "OLLAMA_CONTEXT_LENGTH",
            "OLLAMA_FLASH_ATTENTION",
            "OLLAMA_HOST",
            "OLLAMA_KEEP_ALIVE",
            "OLLAMA_MAX_LOADED_MODELS",
            "OLLAMA_MODELS",
            "OLLAMA_NOPRUNE",
            "OLLAMA_NUM_PARALLEL",
        },
        "open-webui": {
            "DATA_DIR",
            "DEFAULT_MODELS",
            "ENABLE_OPENAI_API",
            "ENABLE_PERSISTENT_CONFIG",
            "ENABLE_SIGNUP",
            "HOME",
            "OFFLINE_MODE",
            "OLLAMA_BASE_URLS",
            "WEBUI_ADMIN_EMAIL",
            "WEBUI_ADMIN_PASSWORD",
            "WEBUI_AUTH",
            "WEBUI_SECRET_KEY",
        },
    }


def test_the_contract_catches_a_variable_open_webui_does_not_read() -> None:
    """ANONYMIZED_TELEMETRY, which the plan used to set, is chromadb's setting: Open WebUI
    0.8.12 reads no such variable (it turns chromadb's telemetry off itself)."""
    assert "ANONYMIZED_TELEMETRY" not in open_webui_environment()
    assert {"WEBUI_SECRET_KEY", "DATA_DIR", "OLLAMA_BASE_URLS"} <= open_webui_environment()


# -- the real program: Open WebUI 0.8.12 from PyPI, started with the rendered environment ----
#
# Its environment (.venv-openwebui, `make openwebui-env`) is locked in
# tools/openwebui/requirements.txt: the wheel's own pinned dependencies without the torch
# stack (sentence-transformers, accelerate), which only the local RAG embedder imports. The
# server runs as the image's start script runs it (uvicorn open_webui.main:app), in a mount
# namespace where the program's files are read-only, as the pod's root filesystem is; the
# claim and the emptyDirs are fresh temporary folders.

OPEN_WEBUI_PYTHON = ROOT / ".venv-openwebui" / "bin" / "python"
# Measured here: about 14 s from start to a healthy /health on an idle machine.
START_SECONDS = 120


def _in_read_only_root(command: list[str], program: Path, workdir: Path) -> list[str]:
    """`command` in a new mount namespace where `program` (its environment) and `workdir`
    are read-only. Unprivileged users map themselves to root inside a user namespace."""
    script = (
        'for dir in "$1" "$2"; do mount --bind "$dir" "$dir" && '
        'mount -o remount,bind,ro "$dir" || exit 97; done; cd "$2" && shift 2 && exec "$@"'
    )
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return [
        "unshare",
        "--mount",
        *user,
        "sh",
        "-c",
        script,
        "sh",
        str(program),
        str(workdir),
        *command,
    ]


def _resolved_env(container: dict[str, Any], volumes: Path) -> dict[str, str]:
    """The container's environment with each Secret key given a generated value and each
    mounted path moved under `volumes` (the claim at DATA_DIR, the scratch emptyDir)."""
    env = {}
    for entry in container["env"]:
        env[entry["name"]] = entry.get("value") or secrets.token_urlsafe(36)
    env["DATA_DIR"] = str(volumes / env["DATA_DIR"].lstrip("/"))
    env["HOME"] = str(volumes / env["HOME"].lstrip("/"))
    # Nothing listens here: Open WebUI must start without reaching Ollama.
    env["OLLAMA_BASE_URLS"] = "http://127.0.0.1:9"
    for mount in ("data", "scratch", "tmp"):
        (volumes / mount).mkdir(parents=True, exist_ok=True)
    return env | {"TMPDIR": str(volumes / "tmp"), "PATH": os.environ["PATH"]}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen, int, Path]:
    if not OPEN_WEBUI_PYTHON.exists():
        pytest.fail(f"Open WebUI is not installed at {OPEN_WEBUI_PYTHON}: run `make openwebui-env`")
    port = _free_port()
    workdir = tmp_path / "app"
    workdir.mkdir()
    log = tmp_path / "server.log"
    server = [str(OPEN_WEBUI_PYTHON), "-m", "uvicorn", "open_webui.main:app"]
    command = [*server, "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        _in_read_only_root(command, ROOT / ".venv-openwebui", workdir),
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return process, port, log


def _request(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _healthy(process: subprocess.Popen, port: int) -> bool:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if _request(port, "/health") == (200, {"status": True}):
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_open_webui_starts_on_a_read_only_root_with_the_rendered_environment(
    two_ollama_models, tmp_path
) -> None:
    env = _resolved_env(_open_webui_container(two_ollama_models), tmp_path / "volumes")
    # The namespace holds: nothing in the program's folder can be written.
    probe = ROOT / ".venv-openwebui" / "write-probe"
    touch = _in_read_only_root(["touch", str(probe)], ROOT / ".venv-openwebui", tmp_path)
    refused = subprocess.run(touch, capture_output=True, text=True, check=False)
    if "Read-only file system" not in refused.stderr:
        pytest.fail(
            "the test needs a mount namespace (unshare --mount, and --map-root-user when not"
            " root): on Ubuntu 24.04 allow unprivileged user namespaces with `sysctl"
            f" kernel.apparmor_restrict_unprivileged_userns=0`; got: {refused.stderr.strip()}"
        )
    assert not probe.exists()
    process, port, log = _start(env, tmp_path)
    try:
        assert _healthy(process, port), log.read_text()[-3000:]
        # Sign-up is off, also for a first user; the admin account exists with its password.
        status, _ = _request(
            port, "/api/v1/auths/signup", {"email": "a@b.example", "password": "x", "name": "a"}
        )
        assert status == 403
        status, session = _request(
            port,
            "/api/v1/auths/signin",
            {"email": env["WEBUI_ADMIN_EMAIL"], "password": env["WEBUI_ADMIN_PASSWORD"]},
        )
        assert (status, session["role"], session["email"]) == (200, "admin", "admin@localhost")
    finally:
        _stop(process)
    assert (Path(env["DATA_DIR"]) / "webui.db").is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # Before: no key in the pod; the image's start script, unable to write the key it
        # generates on a read-only root, handed Open WebUI an empty WEBUI_SECRET_KEY.
        ({"WEBUI_SECRET_KEY": ""}, "Required environment variable not found"),
        # Before: DATA_DIR a folder inside the claim, which nothing creates.
        ({"DATA_DIR": "models/data"}, "unable to open database file"),
    ],
)
def test_open_webui_stops_without_its_key_or_its_data_folder(
    two_ollama_models, tmp_path, change: dict[str, str], message: str
) -> None:
    volumes = tmp_path / "volumes"
    env = _resolved_env(_open_webui_container(two_ollama_models), volumes)
    if "DATA_DIR" in change:
        (volumes / "models").mkdir()  # the claim, mounted at /models
        change = {"DATA_DIR": str(volumes / change["DATA_DIR"])}
    process, _, log = _start(env | change, tmp_path)
    try:
        assert process.wait(timeout=START_SECONDS) != 0
    finally:
        _stop(process)
    assert message in log.read_text()
