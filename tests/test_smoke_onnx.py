"""tools/smoke.py against the real ONNX Runtime GenAI server (images/onnxruntime-genai-server),
run as tests/test_onnx_server.py runs it: in .venv-onnx, serving the tiny random int4 model
that tests/onnx_fixtures.py builds offline (the same build, shared with that module).

The model's folder is where a deployment finds it: one folder of a repository that holds two
variants and top-level files, filled by the cache warmer's script with the template's
--include for that folder (cache_warmer.include_patterns), and served from
cache_warmer.snapshot_dir, the --model-dir the template gives the server. The Hub's download
is stood in for by a copy that selects files with warm_cache.included, which
tests/test_cache_warmer.py checks against huggingface_hub's own selection. The snapshot holds
that folder alone, so the server's loader (onnxruntime-genai 0.18.0) is seen to need no file
of the repository outside it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import access, cache_warmer
from tests.test_cache_warmer import warm_cache
from tests.test_onnx_server import (  # model_dir: the tiny model, a module-scoped fixture
    MODEL,
    SERVER,
    _free_port,
    _wait_until_healthy,
    model_dir,  # noqa: F401
    onnx_python,
)
from tools.smoke import main

REPO = "example-org/tiny-llama-onnx"
REVISION = "0123456789abcdef0123456789abcdef01234567"
FOLDER = "cpu_and_mobile/cpu-int4"
KEY = "sk-smoke-onnx"
# Few tokens keep each chat short; the fixture's model never ends early (its end-of-sequence
# logit is 0), so every answer has exactly this many.
MAX_TOKENS = 16


def copy_included(repository: Path) -> warm_cache.Backend:
    """A download backend over a local repository: the files --include selects, into the
    snapshot, as snapshot_download writes them."""

    def download(request: Any, say: Any) -> None:
        for source in sorted(p for p in repository.rglob("*") if p.is_file()):
            relative = source.relative_to(repository).as_posix()
            if warm_cache.included(relative, request.include):
                target = request.snapshot / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)

    return download


@pytest.fixture(scope="module")
def cached_model(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    repository = tmp_path_factory.mktemp("repository")
    (repository / "README.md").write_text("two variants\n")
    shutil.copytree(model_dir / "onnx", repository / FOLDER)
    shutil.copytree(model_dir / "onnx", repository / "gpu" / "gpu-int4")
    hf_home = tmp_path_factory.mktemp("models") / "huggingface"
    argv = ["fill", f"--repo={REPO}", f"--revision={REVISION}", f"--dest={hf_home}"]
    argv += [f"--include={pattern}" for pattern in cache_warmer.include_patterns(FOLDER)]
    assert warm_cache.main(argv, {"huggingface": copy_included(repository)}) == 0
    folder = Path(cache_warmer.snapshot_dir(str(hf_home), REPO, REVISION, FOLDER))
    snapshot = Path(cache_warmer.snapshot_dir(str(hf_home), REPO, REVISION))
    # The folder alone: no top-level file, no other variant.
    assert [p.relative_to(snapshot).as_posix() for p in snapshot.iterdir()] == ["cpu_and_mobile"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (model_dir / "onnx").iterdir()
    )
    return folder


@pytest.fixture(scope="module")
def base_url(cached_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys_file.write_text(access.keys_file([KEY]))  # the file the pods mount
    port = _free_port()
    log = (tmp_path_factory.mktemp("log") / "server.log").open("w+")
    command = [
        str(onnx_python()), str(SERVER), "--model-dir", str(cached_model),
        "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port),
        "--api-keys-file", str(keys_file),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log)
        yield f"{url}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def smoke(base_url: str, capsys: Any, monkeypatch: Any) -> Any:
    """tools/smoke.py's main against the server, with a key: (exit status, stdout, stderr)."""

    def run(*options: str, key: str = KEY) -> tuple[int, str, str]:
        monkeypatch.setenv("SLM_API_KEY", key)
        status = main(["--base-url", base_url, "--max-tokens", str(MAX_TOKENS), *options])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_every_check_passes_with_the_tool_check_skipped(smoke: Any, base_url: str) -> None:
    status, out, err = smoke("--skip-tools", "--json")
    assert status == 0
    lines = err.splitlines()
    assert lines[0] == f"[1/4] list models ... ok ({MODEL})"
    # A random model does not know 17 * 23: a note, not a failure.
    assert re.fullmatch(
        r"\[2/4\] chat completion \.\.\. ok \(answer '.+', expected 391\)", lines[1]
    )
    assert re.fullmatch(
        rf"\[3/4\] streamed chat \.\.\. ok \(TTFT \d+ ms, [\d.]+ tok/s, {MAX_TOKENS} tokens\)",
        lines[2],
    )
    assert lines[3:] == [
        "[4/4] tool call ... skipped (--skip-tools)",
        "smoke: 3 passed, 0 failed, 1 skipped",
    ]
    report = json.loads(out)
    assert (report["base_url"], report["model"], report["ok"]) == (base_url, MODEL, True)
    streamed = report["checks"][2]
    # The token count is the server's usage (stream_options.include_usage), not a guess.
    assert streamed["completion_tokens"] == MAX_TOKENS
    assert streamed["completion_tokens_from"] == "usage"
    assert report["ttft_ms"] == streamed["ttft_ms"] > 0
    assert report["tokens_per_second"] == streamed["tokens_per_second"] > 0


def test_the_tool_check_fails_on_a_server_that_calls_no_tools(smoke: Any) -> None:
    """The server has no tool calling and refuses a request for tools: the check says so,
    and exits 1 unless skipped."""
    status, out, _ = smoke()
    assert status == 1
    assert out.splitlines()[3:] == [
        "[4/4] tool call ... FAILED: HTTP 400: 'tools' is not supported: this server does not"
        " call tools",
        "smoke: 3 passed, 1 failed",
    ]


def test_a_wrong_key_stops_at_the_first_check(smoke: Any) -> None:
    status, out, _ = smoke(key=KEY + "-wrong")
    assert status == 1
    assert out.splitlines() == [
        "[1/4] list models ... FAILED: authentication failed (HTTP 401): check the API key",
        "smoke: 0 passed, 1 failed, 3 not run",
    ]


def test_a_model_the_server_does_not_serve_is_named(smoke: Any) -> None:
    status, out, _ = smoke("--model", "phi4-mini")
    assert status == 1
    assert out.splitlines() == [
        f"[1/4] list models ... FAILED: model 'phi4-mini' is not served (listed: {MODEL})",
        "smoke: 0 passed, 1 failed, 3 not run",
    ]
