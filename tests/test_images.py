"""The Dockerfiles under images/: hadolint clean at warning level, every base pinned by
digest, an unprivileged final user, OCI labels, hashed Python requirements; and in step
with the template (the pinned bases, the paths and environment the pods use). Nothing is
built here (no Docker): these are static checks."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from components import cache_warmer, ollama, workload
from components.config import OLLAMA_IMAGE, VLLM_IMAGE
from tools.plan import ROOT, kubernetes_manifests

IMAGES = ROOT / "images"
HADOLINT = ROOT / ".venv" / "bin" / "hadolint"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
PINNED_BASE = re.compile(r"^[a-z0-9][-a-z0-9./_]*:[\w][\w.-]*@sha256:[0-9a-f]{64}$")
REQUIRED_LABELS = ("source", "description", "licenses", "version", "title")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def _stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in _instructions(dockerfile):
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, arguments))
    return stages


def _key_values(arguments: str) -> dict[str, str]:
    """LABEL / ENV key=value pairs (quotes removed, ${ARG}s left as written)."""
    return dict(pair.split("=", 1) for pair in shlex.split(arguments))


def _final(dockerfile: Path, instruction: str) -> list[str]:
    return [args for name, args in _stages(dockerfile)[-1] if name == instruction]


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _id(path: Path) -> str:
    return path.parent.name


def test_the_four_images() -> None:
    assert [path.parent.name for path in DOCKERFILES] == [
        "model-cache-warmer",
        "ollama-preloaded",
        "onnxruntime-genai-server",
        "vllm-extras",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_hadolint_passes_at_warning_level(dockerfile: Path) -> None:
    result = _hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    """Proof that the check above can fail: a floating base and an unpinned apt install."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015"):  # latest; unpinned apt; recommends
        assert rule in result.stdout, result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_every_base_is_pinned_by_tag_and_digest(dockerfile: Path) -> None:
    stages = []
    for arguments in [args for name, args in _instructions(dockerfile) if name == "FROM"]:
        words = arguments.split()
        base = next(word for word in words if not word.startswith("--"))
        if base not in stages:  # FROM <an earlier stage> needs no pin
            assert PINNED_BASE.match(base), f"{_id(dockerfile)}: FROM {base}"
        if len(words) >= 3 and words[-2].upper() == "AS":
            stages.append(words[-1])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_the_final_stage_runs_as_the_templates_unprivileged_user(dockerfile: Path) -> None:
    users = _final(dockerfile, "USER")
    assert users, f"{_id(dockerfile)}: no USER in the final stage (hadolint does not check)"
    user, _, group = users[-1].partition(":")
    assert user not in ("root", "0") and group not in ("root", "0")
    assert users[-1] == f"{workload.RUN_AS_USER}:{workload.RUN_AS_USER}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_the_final_stage_has_oci_labels(dockerfile: Path) -> None:
    labels: dict[str, str] = {}
    for arguments in _final(dockerfile, "LABEL"):
        labels |= _key_values(arguments)
    for label in REQUIRED_LABELS:
        assert labels.get(f"org.opencontainers.image.{label}"), f"{_id(dockerfile)}: {label}"


@pytest.mark.parametrize("requirements", sorted(IMAGES.glob("*/requirements.txt")), ids=_id)
def test_python_requirements_are_pinned_and_hashed(requirements: Path) -> None:
    pinned = re.findall(r"^([A-Za-z0-9][-\w.]*)==[\w.]+", requirements.read_text(), re.M)
    for block in re.split(r"\n(?=[A-Za-z0-9])", requirements.read_text()):
        if re.match(r"^[A-Za-z0-9]", block):
            assert "==" in block.split()[0] and "--hash=sha256:" in block, block.splitlines()[0]
    sources = requirements.with_suffix(".in").read_text()
    direct = [line for line in sources.splitlines() if line and not line.startswith("#")]
    assert all("==" in line for line in direct)
    # Every direct requirement is in the locked file (vllm-extras may list none).
    assert {_normalised(line.split("==")[0]) for line in direct} <= {
        _normalised(name) for name in pinned
    }


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_warmer_locks_what_it_imports() -> None:
    # The one image whose own code needs extra packages: an empty lock there is a defect.
    locked = (IMAGES / "model-cache-warmer" / "requirements.txt").read_text()
    assert {"huggingface-hub", "azure-identity", "azure-storage-blob"} <= {
        _normalised(name) for name in re.findall(r"^([A-Za-z0-9][-\w.]*)==", locked, re.M)
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_id)
def test_pip_installs_only_hashed_requirements(dockerfile: Path) -> None:
    runs = [args for name, args in _instructions(dockerfile) if name == "RUN"]
    for run in runs:
        if "pip install" in run:
            assert "--require-hashes" in run and "--no-cache-dir" in run, run


# -- in step with the template ------------------------------------------------------------


def _bases(name: str) -> set[str]:
    return {
        args.split()[0]
        for kind, args in _instructions(IMAGES / name / "Dockerfile")
        if kind == "FROM"
    }


def test_ollama_and_vllm_images_build_on_the_templates_pinned_images() -> None:
    assert _bases("ollama-preloaded") == {OLLAMA_IMAGE}
    assert _bases("vllm-extras") == {VLLM_IMAGE}


def test_preloaded_models_are_where_the_pod_looks_for_them() -> None:
    dockerfile = IMAGES / "ollama-preloaded" / "Dockerfile"
    (copy,) = _final(dockerfile, "COPY")
    assert copy.split()[-1] == ollama.PRELOADED_MODELS_PATH
    assert f"--chown={workload.RUN_AS_USER}:{workload.RUN_AS_USER}" in copy.split()
    env = _key_values(" ".join(_final(dockerfile, "ENV")))
    assert env["OLLAMA_MODELS"] == ollama.PRELOADED_MODELS_PATH
    assert env["OLLAMA_NOPRUNE"] == "1"


def test_the_warmer_script_is_where_the_pods_run_it() -> None:
    dockerfile = IMAGES / "model-cache-warmer" / "Dockerfile"
    copies = [args.split() for args in _final(dockerfile, "COPY")]
    assert ["warm_cache.py", cache_warmer.WARMER_SCRIPT] in copies
    assert _final(dockerfile, "ENTRYPOINT") == [f'["python3", "{cache_warmer.WARMER_SCRIPT}"]']


def test_vllm_extras_uses_xet_not_the_retired_hf_transfer() -> None:
    # huggingface_hub >= 1.31.0 (what vLLM v0.31.0 requires) downloads through hf-xet and
    # only warns about HF_HUB_ENABLE_HF_TRANSFER (huggingface_hub/constants.py at v1.31.0).
    folder = IMAGES / "vllm-extras"
    image_env = _key_values(" ".join(_final(folder / "Dockerfile", "ENV")))
    assert image_env["HF_XET_HIGH_PERFORMANCE"] == "1"
    assert "HF_HUB_ENABLE_HF_TRANSFER" not in image_env
    for name in ("requirements.in", "requirements.txt"):
        assert "hf_transfer==" not in (folder / name).read_text().replace("-", "_")


def test_vllm_extras_sets_the_environment_the_server_pod_sets(plans) -> None:
    dockerfile = IMAGES / "vllm-extras" / "Dockerfile"
    image_env = _key_values(" ".join(_final(dockerfile, "ENV")))
    deployment = kubernetes_manifests(plans["dev"]["resources"])[
        "slm-inference/deployment-phi4-mini.yaml"
    ]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    pod_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert "HF_HOME" in pod_env and pod_env.items() <= image_env.items()
