"""The model-cache warmer: its script (images/model-cache-warmer/warm_cache.py) with fake
download backends, and what a stack with `serving.cacheWarmer` declares: a Job per vLLM
model, servers that wait for it and run offline, egress for the warmer alone, its secrets
and its identity. huggingface_hub and the Azure SDK are not installed in the project's
.venv: the script imports them only inside the real backends, which these tests replace.
Where the script must agree with huggingface_hub (which files allow_patterns selects, where
the cache puts a revision), the library's own code runs at the image's pinned version, in
.venv-onnx (`make onnx-env`), which pins the same version."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import cache_warmer, workload
from components.config import ModelConfig
from tests.conftest import (
    copy_config_root,
    invalid_manifests,
    read_stack,
    resources_of,
    write_stack,
)
from tests.netpol import External, Pod, allowed, policies_by_namespace
from tools.plan import ROOT, build_plan, kubernetes_manifests

SCRIPT = ROOT / "images" / "model-cache-warmer" / "warm_cache.py"
REPO = "microsoft/Phi-4-mini-instruct"
REVISION = "c0fb9e74abda11b496b7907a9c6c9009a7a0488f"  # as the prod stack pins it
SNAPSHOT = Path("hub/models--microsoft--Phi-4-mini-instruct/snapshots") / REVISION
WARMER_IMAGE = "registry.example.com/slm/model-cache-warmer:0.1.0@sha256:" + "0" * 64
MIRROR_URL = "https://slmmodels.blob.core.windows.net/models/hf"
MIRROR_ACCOUNT_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-models"
    "/providers/Microsoft.Storage/storageAccounts/slmmodels"
)
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
PUBLIC = External("104.16.0.1")


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location("warm_cache", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["warm_cache"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


warm_cache = _load_script()


class Recorder:
    """A download backend that writes a small snapshot and counts its calls."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = files if files is not None else {"config.json": b"{}"}
        self.calls = 0

    def __call__(self, request, say) -> None:
        self.calls += 1
        for relative, content in self.files.items():
            target = request.snapshot / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)


def _request(tmp_path: Path, **overrides: Any):
    fields = {"repo": REPO, "revision": REVISION, "dest": tmp_path / "models" / "huggingface"}
    return warm_cache.FillRequest(**(fields | overrides))


def _fill(request, backend, lines: list[str] | None = None, poll: float = 0.01) -> int:
    say = lines.append if lines is not None else (lambda _: None)
    return warm_cache.fill(request, {request.source: backend}, say, poll)


# -- fill ---------------------------------------------------------------------------------


def test_fill_writes_the_hub_cache_layout_then_the_marker(tmp_path: Path) -> None:
    request = _request(tmp_path)
    backend = Recorder({"config.json": b"{}", "model.safetensors": b"weights"})
    assert _fill(request, backend) == 0
    dest = tmp_path / "models" / "huggingface"
    assert (dest / SNAPSHOT / "model.safetensors").read_bytes() == b"weights"
    marker = tmp_path / "models" / ".slm-warm" / f"microsoft--Phi-4-mini-instruct@{REVISION}"
    assert request.marker == marker
    record = json.loads(marker.read_text())
    assert (record["repo"], record["revision"], record["source"]) == (REPO, REVISION, "huggingface")


def test_the_template_and_the_script_name_the_same_marker() -> None:
    request = warm_cache.FillRequest(REPO, REVISION, Path(workload.HF_HOME))
    assert str(request.marker) == cache_warmer.marker_path(REPO, REVISION)
    assert str(request.snapshot).startswith(f"{workload.HF_HOME}/hub/")


def test_a_marked_revision_is_not_downloaded_again(tmp_path: Path) -> None:
    backend, lines = Recorder(), []
    assert _fill(_request(tmp_path), backend) == 0
    assert _fill(_request(tmp_path), backend, lines) == 0
    assert backend.calls == 1
    assert lines == [f"{REPO}@{REVISION} is already in the cache"]


def test_a_second_warmer_waits_for_the_lock_then_finds_the_marker(tmp_path: Path) -> None:
    request, backend = _request(tmp_path), Recorder()
    request.marker.parent.mkdir(parents=True)
    lock = request.marker.with_name(request.marker.name + ".lock")
    with open(lock, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another warmer is downloading
        results: list[int] = []
        waiter = threading.Thread(target=lambda: results.append(_fill(request, backend)))
        waiter.start()
        time.sleep(0.2)
        assert waiter.is_alive() and backend.calls == 0
        Recorder()(request, None)  # ... and finishes: its files, its marker, its lock
        warm_cache.write_marker(request)
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(timeout=5)
    assert results == [0] and backend.calls == 0


def test_a_lock_held_too_long_fails_with_one_line(tmp_path: Path) -> None:
    request, lines = _request(tmp_path, lock_timeout=0.1), []
    request.marker.parent.mkdir(parents=True)
    with open(request.marker.with_name(request.marker.name + ".lock"), "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert _fill(request, Recorder(), lines) == 1
    assert lines[-1].startswith("failed: TimeoutError: another warmer held")


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (Recorder({}), "failed: RuntimeError: the download left no snapshot at"),
        (lambda request, say: 1 / 0, "failed: ZeroDivisionError: division by zero"),
    ],
)
def test_a_failed_download_leaves_no_marker(tmp_path: Path, backend, reason: str) -> None:
    request, lines = _request(tmp_path), []
    assert _fill(request, backend, lines) == 1
    assert lines[-1].startswith(reason)
    assert not request.marker.exists()


def test_the_command_line_runs_fill_in_process(tmp_path: Path) -> None:
    dest = tmp_path / "huggingface"
    argv = ["fill", f"--repo={REPO}", f"--revision={REVISION}", f"--dest={dest}"]
    backend = Recorder()
    assert warm_cache.main(argv, {"huggingface": backend}) == 0
    assert (dest / SNAPSHOT / "config.json").exists() and backend.calls == 1


# -- LoRA adapters: adapter_config.json against the declared rank -------------------------

ADAPTER = {"r": 16, "bias": "none", "use_dora": False, "lora_alpha": 32}


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (None, "no adapter_config.json in "),
        (ADAPTER | {"r": 8}, "adapter_config.json has r 8, the stack says 16"),
        (ADAPTER | {"bias": "all"}, "adapter_config.json has bias 'all': vLLM takes none"),
        (ADAPTER | {"use_dora": True}, "adapter_config.json has use_dora true: vLLM serves no"),
    ],
)
def test_an_adapter_that_vllm_would_refuse_is_not_marked(tmp_path: Path, config, reason) -> None:
    files = {"adapter_model.safetensors": b"weights"}
    if config is not None:
        files["adapter_config.json"] = json.dumps(config).encode()
    request, lines = _request(tmp_path, lora_rank=16), []
    assert _fill(request, Recorder(files), lines) == 1
    assert lines[-1].startswith(f"failed: RuntimeError: {reason}")
    assert not request.marker.exists()


def test_an_adapter_without_safetensors_weights_is_not_marked(tmp_path: Path) -> None:
    files = {"adapter_config.json": json.dumps(ADAPTER).encode(), "adapter_model.bin": b"w"}
    request, lines = _request(tmp_path, lora_rank=16), []
    assert _fill(request, Recorder(files), lines) == 1
    assert lines[-1].startswith("failed: RuntimeError: no adapter_model.safetensors in ")
    assert not request.marker.exists()


def test_a_cached_adapter_is_checked_again_at_a_changed_rank(tmp_path: Path) -> None:
    """The marker names the revision only: a stack that changes an adapter's rank finds it
    marked, and the rank is checked again instead of vLLM refusing it at start-up."""
    files = {"adapter_config.json": json.dumps(ADAPTER).encode(), "adapter_model.safetensors": b"w"}
    assert _fill(_request(tmp_path, lora_rank=16), Recorder(files), []) == 0
    again, lines = _request(tmp_path, lora_rank=8), []
    backend = Recorder(files)
    assert _fill(again, backend, lines) == 1
    assert backend.calls == 0
    assert lines[-1] == "failed: RuntimeError: adapter_config.json has r 16, the stack says 8"


def test_the_command_line_checks_an_adapter_at_its_rank_then_marks_it(tmp_path: Path) -> None:
    dest = tmp_path / "huggingface"
    argv = ["fill", f"--repo={REPO}", f"--revision={REVISION}", f"--dest={dest}", "--lora-rank=16"]
    files = {"adapter_config.json": json.dumps(ADAPTER).encode(), "adapter_model.safetensors": b"w"}
    backend = Recorder(files)
    assert warm_cache.main(argv, {"huggingface": backend}) == 0
    assert warm_cache.main([*argv[:-1], "--lora-rank=0"], {"huggingface": backend}) == 2
    assert (tmp_path / ".slm-warm" / f"microsoft--Phi-4-mini-instruct@{REVISION}").exists()


# -- the Azure Blob mirror ----------------------------------------------------------------


class Blob:
    def __init__(self, name: str, content: bytes = b"", folder: bool = False) -> None:
        self.name, self.content, self.size = name, content, len(content)
        self.metadata = {"hdi_isfolder": "true"} if folder else {}


class FakeContainer:
    """The two ContainerClient calls the warmer makes, over blobs in memory."""

    def __init__(self, blobs: list[Blob]) -> None:
        self.blobs = {blob.name: blob for blob in blobs}
        self.downloads: list[str] = []

    def list_blobs(self, name_starts_with: str, include: list[str]):
        assert include == ["metadata"]
        return [b for name, b in self.blobs.items() if name.startswith(name_starts_with)]

    def download_blob(self, name: str):
        self.downloads.append(name)
        content = self.blobs[name].content
        return type("Downloader", (), {"readinto": lambda _, out: out.write(content)})()


@pytest.mark.parametrize(
    ("url", "container", "base"),
    [
        (MIRROR_URL, "https://slmmodels.blob.core.windows.net/models", f"hf/{REPO}/{REVISION}/"),
        (
            MIRROR_URL + "/",
            "https://slmmodels.blob.core.windows.net/models",
            f"hf/{REPO}/{REVISION}/",
        ),
        (
            "https://slmmodels.blob.core.windows.net/models",
            "https://slmmodels.blob.core.windows.net/models",
            f"{REPO}/{REVISION}/",
        ),
    ],
)
def test_blob_location_maps_the_url_to_the_revisions_prefix(tmp_path, url, container, base):
    request = _request(tmp_path, source="azure-blob", blob_url=url)
    assert warm_cache.blob_location(request) == (container, base)


def test_blob_plan_keeps_the_revisions_files_and_refuses_escapes() -> None:
    base = f"hf/{REPO}/{REVISION}/"
    names = [base + "config.json", base + "original/tokenizer.model", base, "hf/other/x"]
    assert warm_cache.blob_plan(names, base) == [
        (base + "config.json", "config.json"),
        (base + "original/tokenizer.model", "original/tokenizer.model"),
    ]
    with pytest.raises(ValueError, match="outside the snapshot"):
        warm_cache.blob_plan([base + "../../../../etc/passwd"], base)


def test_the_mirror_is_copied_into_the_snapshot_and_resumed(tmp_path: Path, monkeypatch) -> None:
    base = f"hf/{REPO}/{REVISION}/"
    container = FakeContainer(
        [
            Blob(base + "config.json", b"{}"),
            Blob(base + "model.safetensors", b"weights"),
            Blob(base + "original", folder=True),  # a hierarchical namespace's directory
            Blob(base + "original/params.json", b"[]"),
            Blob(f"hf/{REPO}/{'f' * 40}/config.json", b"another revision"),
        ]
    )
    request = _request(tmp_path, source="azure-blob", blob_url=MIRROR_URL)
    # The Azure SDK's ContainerClient, stood in for (the package is in the image only).
    monkeypatch.setattr(warm_cache, "_container_client", lambda url: container)
    backend = warm_cache.download_from_blob

    assert _fill(request, backend) == 0
    snapshot = tmp_path / "models" / "huggingface" / SNAPSHOT
    assert sorted(
        p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()
    ) == [
        "config.json",
        "model.safetensors",
        "original/params.json",
    ]
    assert (snapshot / "model.safetensors").read_bytes() == b"weights"
    # A retry (the marker removed, as after a failure) fetches only what is missing.
    request.marker.unlink()
    (snapshot / "model.safetensors").unlink()
    container.downloads.clear()
    assert _fill(request, backend) == 0
    assert container.downloads == [base + "model.safetensors"]


def test_an_empty_mirror_fails(tmp_path: Path, monkeypatch) -> None:
    request, lines = _request(tmp_path, source="azure-blob", blob_url=MIRROR_URL), []
    monkeypatch.setattr(warm_cache, "_container_client", lambda url: FakeContainer([]))

    assert _fill(request, warm_cache.download_from_blob, lines) == 1
    assert "is the revision mirrored?" in lines[-1]


# -- wait ---------------------------------------------------------------------------------


def test_wait_returns_when_the_marker_appears(tmp_path: Path) -> None:
    marker, ticks = tmp_path / "marker", iter(range(100))

    def sleep(_: float) -> None:
        if next(ticks) == 3:
            marker.write_text("{}")

    lines: list[str] = []
    assert warm_cache.wait(marker, 60, lines.append, clock=lambda: 0.0, sleep=sleep) == 0
    assert lines == [f"waiting for {marker} (0 s of 60 s)", f"found {marker}"]


def test_wait_gives_up_after_its_timeout(tmp_path: Path) -> None:
    lines: list[str] = []
    assert warm_cache.wait(tmp_path / "marker", 0.1, lines.append, poll=0.01) == 1
    assert lines[-1].startswith("timed out after 0 s: no ")


# -- the command line, as the pods run it -------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["fill", "--repo=microsoft", f"--revision={REVISION}", "--dest=/tmp/x"],
            "--repo 'microsoft': expected a Hugging Face repository ORG/NAME",
        ),
        (
            ["fill", f"--repo={REPO}", "--revision=main", "--dest=/tmp/x"],
            "--revision 'main': expected a 40-character commit hash",
        ),
        (
            ["fill", f"--repo={REPO}", f"--revision={REVISION}", "--dest=/tmp/x", "--source=s3"],
            "argument --source: invalid choice: 's3' (choose from ",  # quoting varies by Python
        ),
        (
            [
                "fill",
                f"--repo={REPO}",
                f"--revision={REVISION}",
                "--dest=/x",
                "--source=azure-blob",
            ],
            "--blob-url is required with --source azure-blob",
        ),
        (
            [
                "fill",
                f"--repo={REPO}",
                f"--revision={REVISION}",
                "--dest=/tmp/x",
                "--source=azure-blob",
                "--blob-url=https://slmmodels.blob.core.windows.net/models?sig=secret",
            ],
            "--blob-url 'https://slmmodels.blob.core.windows.net/models?...': expected "
            "https://<account>.blob.core.windows.net/<container>[/<prefix>] without a SAS token",
        ),
        (
            ["fill", f"--repo={REPO}", "--dest=/tmp/x"],
            "the following arguments are required: --revision",
        ),
        (
            ["wait", "--marker=/tmp/m", "--timeout=0"],
            "--timeout 0: expected a number of seconds above 0",
        ),
        ([], "the following arguments are required: command"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], line: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"warm_cache.py: {line}")
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")


def test_the_script_needs_no_download_library_to_start(tmp_path: Path) -> None:
    """`wait` (the servers' init container) and argument errors never import them."""
    marker = tmp_path / "marker"
    marker.write_text("{}")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "wait", f"--marker={marker}", "--timeout=5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"warm_cache: found {marker}\n"


# -- what a stack with the warmer declares ------------------------------------------------


def _warm_dev(root: Path, warmer: dict[str, Any], gated: bool = False) -> dict[str, Any]:
    document = read_stack(root, "dev")
    config = document["config"]
    model = config["slm-deploy:models"][0]
    model["revision"] = REVISION
    if gated:  # Gemma 3 needs bfloat16: an A10 pool; and the token
        config["slm-deploy:gpuPools"][0]["vmSize"] = "Standard_NV36ads_A10_v5"
        model["source"] = "google/gemma-3-4b-it"
        config["slm-deploy:secrets"] = {"huggingFaceToken": {"secure": "v1:abc"}}
    config["slm-deploy:serving"] = {
        "cacheWarmer": {"enabled": True, "image": WARMER_IMAGE, **warmer}
    }
    write_stack(root, "dev", document)
    return build_plan("dev", config_root=root)


def _config_copy(root: Path) -> Path:
    """Pulumi.yaml and the stack files in `root`, to edit (conftest's config_root, per module)."""
    copy_config_root(root)
    return root


@pytest.fixture(scope="module")
def hub_plan(tmp_path_factory) -> dict[str, Any]:
    return _warm_dev(_config_copy(tmp_path_factory.mktemp("hub")), {})


@pytest.fixture(scope="module")
def blob_plan(tmp_path_factory) -> dict[str, Any]:
    mirror = {
        "source": "azure-blob",
        "blobUrl": MIRROR_URL,
        "blobStorageAccountId": MIRROR_ACCOUNT_ID,
    }
    return _warm_dev(_config_copy(tmp_path_factory.mktemp("blob")), mirror)


def _manifest(plan: dict[str, Any], kind: str, prefix: str) -> dict[str, Any]:
    (found,) = [
        m
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == kind and m["metadata"]["name"].startswith(prefix)
    ]
    return found


def _resource(plan: dict[str, Any], type_: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in resources_of(plan, type_) if r["name"] == name]
    return found


def test_each_vllm_model_gets_a_warmer_job_named_by_its_revision(hub_plan) -> None:
    job = _manifest(hub_plan, "Job", "phi4-mini-warm-")
    digest = hashlib.sha256(f"{REPO}@{REVISION}".encode()).hexdigest()
    assert job["metadata"]["name"] == f"phi4-mini-warm-{digest[:10]}"
    assert job["metadata"]["namespace"] == "slm-inference"
    spec = job["spec"]
    assert "ttlSecondsAfterFinished" not in spec  # Pulumi would recreate a deleted Job
    assert spec["backoffLimit"] == 3
    # Four attempts, each with the replica's startup budget (600 s for Phi-4-mini).
    assert spec["activeDeadlineSeconds"] == 4 * 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "slm-cache-warmer"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == workload.pod_security_context()
    (container,) = pod["containers"]
    assert container["image"] == WARMER_IMAGE
    assert container["command"] == ["python3", "/app/warm_cache.py"]
    assert container["args"] == [
        "fill",
        f"--repo={REPO}",
        f"--revision={REVISION}",
        "--dest=/models/huggingface",
        "--source=huggingface",
    ]
    assert container["securityContext"] == workload.container_security_context()
    assert (
        set(container["resources"]["requests"])
        == set(container["resources"]["limits"])
        == {
            "cpu",
            "memory",
        }
    )
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "phi4-mini-models"}} in pod[
        "volumes"
    ]
    assert pod["volumes"][0]["name"] == "models"
    assert "HF_TOKEN" not in {e["name"] for e in container["env"]}  # Phi-4-mini is not gated


def test_a_new_revision_makes_a_new_job() -> None:
    fields = {"name": "phi4-mini", "engine": "vllm", "source": REPO, "pool": "a100"}
    first = ModelConfig.model_validate(fields | {"revision": REVISION})
    second = ModelConfig.model_validate(fields | {"revision": "f" * 40})
    assert cache_warmer.job_name(first) != cache_warmer.job_name(second)
    assert len(cache_warmer.job_name(first.model_copy(update={"name": "m" * 40}))) <= 63


def test_servers_wait_for_the_cache_run_offline_and_roll_out_after_the_job(hub_plan) -> None:
    deployment = _manifest(hub_plan, "Deployment", "phi4-mini")
    selector = workload.labels("vllm", "phi4-mini", "inference")
    assert deployment["spec"]["selector"] == {"matchLabels": selector}  # unchanged
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"] == selector  # no downloads label
    (init,) = template["spec"]["initContainers"]
    assert init["name"] == "wait-for-cache" and init["image"] == WARMER_IMAGE
    assert init["args"] == [
        "wait",
        f"--marker=/models/.slm-warm/microsoft--Phi-4-mini-instruct@{REVISION}",
        "--timeout=2400",
    ]
    assert init["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True}]
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    assert env["HF_HUB_OFFLINE"] == {"name": "HF_HUB_OFFLINE", "value": "1"}
    job = _resource(hub_plan, "kubernetes:batch/v1:Job", "slm-phi4-mini-cache-warmer")
    server = _resource(hub_plan, "kubernetes:apps/v1:Deployment", "slm-phi4-mini")
    assert job["urn"] in server["dependencies"]
    claim = _resource(hub_plan, "kubernetes:core/v1:PersistentVolumeClaim", "slm-phi4-mini-models")
    assert claim["urn"] in job["dependencies"]


def test_only_the_warmer_may_download(hub_plan) -> None:
    policies = policies_by_namespace(hub_plan["resources"])
    job = _manifest(hub_plan, "Job", "phi4-mini-warm-")["spec"]["template"]
    deployment = _manifest(hub_plan, "Deployment", "phi4-mini")["spec"]["template"]
    warmer = Pod("slm-inference", job["metadata"]["labels"])
    server = Pod("slm-inference", deployment["metadata"]["labels"], {"http": 8000})
    dns = Pod("kube-system", {"k8s-app": "kube-dns"})
    assert job["metadata"]["labels"][workload.DOWNLOADS_LABEL] == "true"
    assert allowed(policies, warmer, PUBLIC, 443) is True
    assert allowed(policies, warmer, External("10.1.2.3"), 443) is False
    assert allowed(policies, server, PUBLIC, 443) is False
    assert allowed(policies, server, dns, 53, "UDP") is True


def test_a_warmed_dev_plan_validates_and_passes_the_policies(hub_plan, blob_plan) -> None:
    for plan in (hub_plan, blob_plan):
        assert plan["violations"] == []
        assert invalid_manifests(plan) == []


def test_the_warmer_is_a_secrets_consumer_with_nothing_to_read_without_a_token(hub_plan) -> None:
    manifests = kubernetes_manifests(hub_plan["resources"])
    account = manifests["slm-inference/serviceaccount-slm-cache-warmer.yaml"]
    assert account["automountServiceAccountToken"] is False
    assert "slm-inference/secretproviderclass-cache-warmer.yaml" not in manifests
    identities = {
        r["name"]
        for r in resources_of(hub_plan, "azure-native:managedidentity:UserAssignedIdentity")
    }
    assert "slm-secrets-cache-warmer" not in identities


def test_a_gated_model_gives_the_token_to_the_warmer_not_the_servers(config_root: Path) -> None:
    plan = _warm_dev(config_root, {}, gated=True)
    manifests = kubernetes_manifests(plan["resources"])
    synced = {
        name: [entry["objectName"] for s in m["spec"]["secretObjects"] for entry in s["data"]]
        for name, m in manifests.items()
        if m["kind"] == "SecretProviderClass"
    }
    assert synced["slm-inference/secretproviderclass-cache-warmer.yaml"] == ["hugging-face-token"]
    assert synced["slm-inference/secretproviderclass-model-server.yaml"] == ["vllm-api-key"]
    pod = _manifest(plan, "Job", "phi4-mini-warm-")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "slm-hf-token", "key": "token"}
    }
    assert {"name": "secrets-store", "mountPath": "/mnt/secrets-store", "readOnly": True} in pod[
        "containers"
    ][0]["volumeMounts"]
    server = _manifest(plan, "Deployment", "phi4-mini")["spec"]["template"]["spec"]
    assert "HF_TOKEN" not in {e["name"] for e in server["containers"][0]["env"]}
    identity = _resource(
        plan, "azure-native:managedidentity:UserAssignedIdentity", "slm-secrets-cache-warmer"
    )
    assert identity["inputs"]["resourceName"] == "id-slm-dev-cache-warmer"


def test_an_azure_blob_mirror_is_read_with_the_warmers_own_identity(blob_plan) -> None:
    identity = _resource(
        blob_plan, "azure-native:managedidentity:UserAssignedIdentity", "slm-cache-warmer"
    )
    assert identity["inputs"]["resourceName"] == "id-slm-dev-cache-warmer"
    federation = _resource(
        blob_plan,
        "azure-native:managedidentity:FederatedIdentityCredential",
        "slm-cache-warmer-federation",
    )
    assert federation["inputs"]["subject"] == "system:serviceaccount:slm-inference:slm-cache-warmer"
    role = _resource(
        blob_plan, "azure-native:authorization:RoleAssignment", "slm-cache-warmer-role"
    )
    assert role["inputs"]["roleDefinitionId"].endswith(
        f"/roleDefinitions/{STORAGE_BLOB_DATA_READER}"
    )
    assert role["inputs"]["scope"] == MIRROR_ACCOUNT_ID
    manifests = kubernetes_manifests(blob_plan["resources"])
    account = manifests["slm-inference/serviceaccount-slm-cache-warmer.yaml"]
    assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]
    assert "slm-inference/secretproviderclass-cache-warmer.yaml" not in manifests
    job = _manifest(blob_plan, "Job", "phi4-mini-warm-")["spec"]["template"]
    assert job["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    args = job["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--source=azure-blob", f"--blob-url={MIRROR_URL}"]


def test_the_warmer_job_passes_checkov(hub_plan, tmp_path: Path) -> None:
    """The stacks' checkov run (tests/test_checkov.py) sees no Job: check a warmed plan's."""
    from tests.test_checkov import CHECKOV, REQUIRED_WORKLOAD_CHECKS

    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make test`, which installs it")
    for relative, manifest in kubernetes_manifests(hub_plan["resources"]).items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    result = subprocess.run(
        [str(CHECKOV), "--config-file", str(ROOT / ".checkov.yaml"), "-d", str(tmp_path)]
        + ["-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)["results"]
    assert [f"{f['check_id']} {f['resource']}" for f in report["failed_checks"]] == []
    passed = {c["check_id"] for c in report["passed_checks"] if c["resource"].startswith("Job.")}
    # Probes do not apply to a Job; every other workload check must have passed.
    expected = set(REQUIRED_WORKLOAD_CHECKS) - {"CKV_K8S_8", "CKV_K8S_9"}
    assert expected <= passed


def test_a_gated_model_from_the_blob_mirror_needs_no_token(config_root: Path) -> None:
    document = read_stack(config_root, "dev")
    config = document["config"]
    config["slm-deploy:gpuPools"][0]["vmSize"] = "Standard_NV36ads_A10_v5"
    model = config["slm-deploy:models"][0]
    model["source"], model["revision"] = "google/gemma-3-4b-it", REVISION
    mirror = {
        "source": "azure-blob",
        "blobUrl": MIRROR_URL,
        "blobStorageAccountId": MIRROR_ACCOUNT_ID,
    }
    config["slm-deploy:serving"] = {
        "cacheWarmer": {"enabled": True, "image": WARMER_IMAGE, **mirror}
    }
    write_stack(config_root, "dev", document)
    plan = build_plan("dev", config_root=config_root)  # no secrets.huggingFaceToken: no error
    vault_secrets = {
        r["inputs"]["secretName"] for r in resources_of(plan, "azure-native:keyvault:Secret")
    }
    assert "hugging-face-token" not in vault_secrets
    assert plan["violations"] == []


def test_the_hub_backend_asks_for_the_pinned_revision_in_the_cache_vllm_reads(
    tmp_path: Path, monkeypatch
) -> None:
    """The real backend's call, with huggingface_hub stood in by a recorder (the package is
    in the image, not in this environment)."""
    calls: list[dict[str, Any]] = []
    fake = type(sys)("huggingface_hub")
    fake.snapshot_download = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    monkeypatch.setenv("HF_TOKEN", "hf_token_from_the_secret")
    request = _request(tmp_path)
    warm_cache.download_from_hub(request, lambda line: None)
    (call,) = calls
    assert call["repo_id"] == REPO and call["revision"] == REVISION
    assert call["cache_dir"] == tmp_path / "models" / "huggingface" / "hub"  # HF_HOME/hub
    assert call["token"] == "hf_token_from_the_secret"
    assert "*.safetensors" in call["allow_patterns"]
    assert not {"*.bin", "*.pth", "*.gguf"} & set(call["allow_patterns"])


# -- one folder of a repository: --include (ONNX GenAI checkpoints) -----------------------

ONNX_REPO = "microsoft/Phi-4-mini-instruct-onnx"
ONNX_FOLDER = "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4"
ONNX_INCLUDE = (f"{ONNX_FOLDER}/*",)
# A repository with two variants, each in its own folder, and top-level files: the shape of
# the published ONNX GenAI repositories (the paths here are made up, not their listing).
VARIANTS = {
    "README.md": b"card",
    "LICENSE": b"licence",
    f"{ONNX_FOLDER}/genai_config.json": b"{}",
    f"{ONNX_FOLDER}/model.onnx": b"graph",
    f"{ONNX_FOLDER}/model.onnx.data": b"weights",
    f"{ONNX_FOLDER}/tokenizer.json": b"{}",
    "gpu/gpu-int4-rtn-block-32/genai_config.json": b"{}",
    "gpu/gpu-int4-rtn-block-32/model.onnx": b"graph",
}


def test_include_replaces_the_default_patterns_for_the_hub(tmp_path: Path, monkeypatch) -> None:
    calls: list[dict[str, Any]] = []
    fake = type(sys)("huggingface_hub")
    fake.snapshot_download = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    warm_cache.download_from_hub(_request(tmp_path, include=ONNX_INCLUDE), lambda line: None)
    warm_cache.download_from_hub(_request(tmp_path), lambda line: None)
    assert [call["allow_patterns"] for call in calls] == [
        [f"{ONNX_FOLDER}/*"],
        list(warm_cache.HUB_PATTERNS),
    ]


def test_the_command_line_takes_repeated_includes(tmp_path: Path) -> None:
    seen: list[Any] = []
    argv = ["fill", f"--repo={ONNX_REPO}", f"--revision={REVISION}", f"--dest={tmp_path}"]
    argv += [f"--include={ONNX_FOLDER}/*", "--include=README.md"]
    backend = Recorder({"README.md": b"card"})
    assert (
        warm_cache.main(argv, {"huggingface": lambda r, say: (seen.append(r), backend(r, say))})
        == 0
    )
    assert seen[0].include == (f"{ONNX_FOLDER}/*", "README.md")


def test_a_folder_has_its_own_marker_in_the_template_and_the_script() -> None:
    whole = warm_cache.FillRequest(ONNX_REPO, REVISION, Path(workload.HF_HOME))
    folder = warm_cache.FillRequest(ONNX_REPO, REVISION, Path(workload.HF_HOME), include=ONNX_INCLUDE)  # fmt: skip
    other = warm_cache.FillRequest(ONNX_REPO, REVISION, Path(workload.HF_HOME), include=("gpu/*",))  # fmt: skip
    digest = hashlib.sha256(f"{ONNX_FOLDER}/*".encode()).hexdigest()[:12]
    assert folder.marker.name == f"microsoft--Phi-4-mini-instruct-onnx@{REVISION}+{digest}"
    assert len({whole.marker, folder.marker, other.marker}) == 3
    assert str(folder.marker) == cache_warmer.marker_path(ONNX_REPO, REVISION, ONNX_INCLUDE)
    assert str(whole.marker) == cache_warmer.marker_path(ONNX_REPO, REVISION)
    # The order of the patterns is not a different fill.
    assert cache_warmer.marker_name(ONNX_REPO, REVISION, ["b", "a"]) == cache_warmer.marker_name(
        ONNX_REPO, REVISION, ["a", "b"]
    )


def test_a_marked_folder_does_not_stand_for_another_folder(tmp_path: Path) -> None:
    """One revision, two folders (a model moved to another variant): the second is filled."""
    cpu = Recorder({f"{ONNX_FOLDER}/model.onnx": b"graph"})
    gpu = Recorder({"gpu/gpu-int4-rtn-block-32/model.onnx": b"graph"})
    assert _fill(_request(tmp_path, repo=ONNX_REPO, include=ONNX_INCLUDE), cpu) == 0
    assert _fill(_request(tmp_path, repo=ONNX_REPO, include=("gpu/gpu-int4-rtn-block-32/*",)), gpu) == 0  # fmt: skip
    assert (cpu.calls, gpu.calls) == (1, 1)


def test_a_fill_where_no_file_matches_the_include_fails(tmp_path: Path) -> None:
    """The Hub only warns when no file matches; here the snapshot even holds another folder."""
    request, lines = _request(tmp_path, repo=ONNX_REPO, include=("cpu_and_mobile/typo/*",)), []
    backend = Recorder({"gpu/gpu-int4-rtn-block-32/model.onnx": b"graph"})
    assert _fill(request, backend, lines) == 1
    assert lines[-1] == (
        f"failed: RuntimeError: no file of {ONNX_REPO}@{REVISION} matches cpu_and_mobile/typo/*"
    )
    assert not request.marker.exists()


def test_the_mirror_copies_only_the_included_folder(tmp_path: Path, monkeypatch) -> None:
    base = f"hf/{ONNX_REPO}/{REVISION}/"
    container = FakeContainer([Blob(base + path, content) for path, content in VARIANTS.items()])
    monkeypatch.setattr(warm_cache, "_container_client", lambda url: container)
    request = _request(
        tmp_path, repo=ONNX_REPO, source="azure-blob", blob_url=MIRROR_URL, include=ONNX_INCLUDE
    )
    assert _fill(request, warm_cache.download_from_blob) == 0
    assert sorted(container.downloads) == sorted(base + p for p in VARIANTS if p.startswith(ONNX_FOLDER))  # fmt: skip
    snapshot = Path(cache_warmer.snapshot_dir(str(request.dest), ONNX_REPO, REVISION, ONNX_FOLDER))
    assert sorted(p.name for p in snapshot.iterdir()) == [
        "genai_config.json", "model.onnx", "model.onnx.data", "tokenizer.json",
    ]  # fmt: skip


@pytest.mark.parametrize("pattern", ["", "/etc/*", "../other/*", f"{ONNX_FOLDER}/../../x"])
def test_an_include_outside_the_repository_exits_2(pattern: str) -> None:
    argv = ["fill", f"--repo={REPO}", f"--revision={REVISION}", "--dest=/tmp/x"]
    with pytest.raises(warm_cache.UsageError, match="expected a pattern of paths inside the"):
        warm_cache.fill_request(warm_cache.parser().parse_args([*argv, f"--include={pattern}"]))


@pytest.mark.parametrize(
    ("subfolder", "patterns"),
    [
        (None, ()),
        (ONNX_FOLDER, (f"{ONNX_FOLDER}/*",)),
        ("odd[1]?", ("odd[[]1][?]/*",)),  # fnmatch's own characters match only themselves
    ],
)
def test_include_patterns_for_a_subfolder(subfolder: str | None, patterns: tuple[str, ...]) -> None:
    assert cache_warmer.include_patterns(subfolder) == patterns


# -- huggingface_hub at the warmer's pinned version, run (in .venv-onnx, which pins the same)


def _pinned_hub_python() -> Path:
    """.venv-onnx's Python, which runs huggingface_hub's own code below: its version must be
    the one the warmer image pins (requirements.in), or these checks prove nothing."""
    from tests.test_onnx_server import onnx_python

    requirements = (SCRIPT.parent / "requirements.in").read_text()
    (pinned,) = re.findall(r"^huggingface_hub==(\S+)$", requirements, re.MULTILINE)
    python = onnx_python()
    installed = subprocess.run(
        [str(python), "-c", "import huggingface_hub; print(huggingface_hub.__version__)"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert installed == pinned, (
        f"the warmer pins huggingface_hub {pinned}, .venv-onnx has {installed}: lock "
        "the same version in tests/onnx_server/requirements.txt"
    )
    return python


def _run_hub(code: str, env: dict[str, str] | None = None) -> Any:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    result = subprocess.run(
        [str(_pinned_hub_python()), "-c", code],
        capture_output=True, text=True, timeout=60, env=clean | (env or {}),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_the_mirror_selects_files_as_the_hubs_allow_patterns_do() -> None:
    """warm_cache.included against huggingface_hub's filter_repo_objects, the function
    snapshot_download applies to allow_patterns."""
    paths = [*VARIANTS, "odd[1]?/x.json", "nested/a/b/c.onnx", "cpu_and_mobile/other/x.json"]
    pattern_sets = [
        list(ONNX_INCLUDE),
        ["cpu_and_mobile/"],  # a folder: everything under it
        ["*.json"],  # * crosses /
        ["gpu/*/genai_config.json", "README.md"],
        ["cpu_and_mobile\\cpu-int4-rtn-block-32-acc-level-4/*"],  # backslashes as slashes
        list(cache_warmer.include_patterns("odd[1]?")),
        ["Readme.md"],  # case-sensitive
        list(warm_cache.HUB_PATTERNS),
    ]
    code = (
        "import json, sys\nfrom huggingface_hub.utils import filter_repo_objects\n"
        f"paths, sets = json.loads({json.dumps(json.dumps([paths, pattern_sets]))})\n"
        "print(json.dumps([list(filter_repo_objects(paths, allow_patterns=s)) for s in sets]))"
    )
    hub = _run_hub(code)
    ours = [[p for p in paths if warm_cache.included(p, patterns)] for patterns in pattern_sets]
    assert ours == hub
    assert hub[0] == [p for p in VARIANTS if p.startswith(ONNX_FOLDER)]  # the folder alone


def test_snapshot_dir_is_where_huggingface_hub_finds_the_files(tmp_path: Path) -> None:
    """The server's --model-dir for a cached checkpoint: huggingface_hub, offline, with
    HF_HOME as the pods set it, finds the revision and a file of the folder exactly there."""
    hf_home = tmp_path / "huggingface"
    folder = Path(cache_warmer.snapshot_dir(str(hf_home), ONNX_REPO, REVISION, ONNX_FOLDER))
    assert folder == hf_home / "hub" / "models--microsoft--Phi-4-mini-instruct-onnx" / "snapshots" / REVISION / ONNX_FOLDER  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "genai_config.json").write_text("{}")
    code = (
        "import json\nfrom huggingface_hub import hf_hub_download, snapshot_download\n"
        f"repo, revision, name = {ONNX_REPO!r}, {REVISION!r}, {ONNX_FOLDER + '/genai_config.json'!r}\n"
        "print(json.dumps([snapshot_download(repo, revision=revision),"
        " hf_hub_download(repo, name, revision=revision)]))"
    )
    env = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    snapshot, config = _run_hub(code, env)
    assert snapshot == cache_warmer.snapshot_dir(str(hf_home), ONNX_REPO, REVISION)
    assert config == f"{folder}/genai_config.json"
    # And the script fills the same folder (its FillRequest.snapshot).
    request = warm_cache.FillRequest(ONNX_REPO, REVISION, hf_home)
    assert str(request.snapshot) == snapshot


# -- the template's Job and wait for an ONNX checkpoint (the catalog's subfolder) ----------

ONNX_REVISION = "a64b5309e58f6ac22cacdf9d143ab7455d8b9f5b"  # as the catalog pins it
CATALOG_FOLDER = "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4"


def _onnx_model(**fields: Any) -> ModelConfig:
    base = {"name": "phi4-mini-cpu", "engine": "onnxruntime", "source": ONNX_REPO}
    return ModelConfig.model_validate(base | {"pool": "cpu", "revision": ONNX_REVISION} | fields)


def _settings(**fields: Any) -> Any:
    from components.config import CacheWarmer as CacheWarmerSettings

    return CacheWarmerSettings.model_validate({"enabled": True, "image": WARMER_IMAGE} | fields)


def test_an_onnx_checkpoint_is_filled_and_awaited_as_its_folder_alone() -> None:
    model = _onnx_model()
    assert model.spec.subfolder == CATALOG_FOLDER
    assert cache_warmer.fill_args(model, _settings()) == [
        "fill",
        f"--repo={ONNX_REPO}",
        f"--revision={ONNX_REVISION}",
        "--dest=/models/huggingface",
        "--source=huggingface",
        f"--include={CATALOG_FOLDER}/*",
    ]
    mirror = _settings(source="azure-blob", blobUrl=MIRROR_URL, blobStorageAccountId=MIRROR_ACCOUNT_ID)  # fmt: skip
    assert cache_warmer.fill_args(model, mirror)[-3:] == [
        "--source=azure-blob",
        f"--blob-url={MIRROR_URL}",
        f"--include={CATALOG_FOLDER}/*",
    ]
    # The servers wait for the marker the script writes for exactly these arguments.
    args = warm_cache.parser().parse_args(cache_warmer.fill_args(model, _settings()))
    script_marker = warm_cache.fill_request(args).marker
    wait = cache_warmer.wait_for_cache_container(WARMER_IMAGE, model, 600)
    assert wait["args"][1] == f"--marker={script_marker}"
    assert str(script_marker).startswith(f"/models/.slm-warm/microsoft--Phi-4-mini-instruct-onnx@{ONNX_REVISION}+")  # fmt: skip


def test_a_model_without_a_folder_keeps_its_arguments_marker_and_job_name() -> None:
    fields = {"name": "phi4-mini", "engine": "vllm", "source": REPO, "pool": "a100"}
    model = ModelConfig.model_validate(fields | {"revision": REVISION})
    assert model.spec.subfolder is None
    assert not [a for a in cache_warmer.fill_args(model, _settings()) if a.startswith("--include")]
    wait = cache_warmer.wait_for_cache_container(WARMER_IMAGE, model, 600)
    assert (
        wait["args"][1] == f"--marker=/models/.slm-warm/microsoft--Phi-4-mini-instruct@{REVISION}"
    )
    digest = hashlib.sha256(f"{REPO}@{REVISION}".encode()).hexdigest()
    assert cache_warmer.job_name(model) == f"phi4-mini-warm-{digest[:10]}"


def test_another_folder_of_the_same_revision_is_a_new_job(monkeypatch) -> None:
    """A Job's arguments cannot change in place: another folder must be another Job (and
    another marker, above), or the old marker would stand for the new folder."""
    from components import catalog

    model = _onnx_model()
    digest = hashlib.sha256(f"{ONNX_REPO}@{ONNX_REVISION}/{CATALOG_FOLDER}".encode()).hexdigest()
    assert cache_warmer.job_name(model) == f"phi4-mini-cpu-warm-{digest[:10]}"
    moved = dataclasses.replace(model.spec, subfolder="gpu/gpu-int4-rtn-block-32")
    monkeypatch.setitem(catalog.MODELS, ONNX_REPO, moved)  # the catalog moved to a GPU build
    assert cache_warmer.job_name(model) != f"phi4-mini-cpu-warm-{digest[:10]}"
