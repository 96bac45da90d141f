"""The deploy workflow's smoke step: which address each model is tested at, and how."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STACKS
from tools.plan import kubernetes_manifests
from tools.smoke_stack import (
    NO_KEY,
    Kubectl,
    KubectlError,
    Service,
    Target,
    main,
    smoke_stack,
    targets,
)

DEV_PHI4 = "http://phi4-mini.slm-inference.svc.cluster.local:8000/v1"


def test_dev_models_are_reached_through_their_service(plans: dict[str, Any]) -> None:
    assert targets(plans["dev"]["outputs"]) == [
        Target("phi4-mini", DEV_PHI4, "phi4-mini", Service("phi4-mini", "slm-inference", 8000))
    ]


def test_ollama_is_asked_through_its_openai_api_by_its_tag(plans: dict[str, Any]) -> None:
    assert targets(plans["local"]["outputs"]) == [
        Target(
            "qwen3-tiny",
            "http://qwen3-tiny.slm-inference.svc.cluster.local:11434/v1",
            "qwen3:0.6b",
            Service("qwen3-tiny", "slm-inference", 11434),
        )
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_in_cluster_endpoint_has_a_deployment_and_service_of_that_name(
    plans: dict[str, Any], stack: str
) -> None:
    """The tool waits for deployment/<service> and forwards to service/<service>: both must
    exist, with the endpoint's port, in every stack's plan."""
    manifests = kubernetes_manifests(plans[stack]["resources"])
    for target in targets(plans[stack]["outputs"]):
        svc = target.service
        if svc is None:  # an ingress URL: tested as it is
            continue
        assert f"{svc.namespace}/deployment-{svc.name}.yaml" in manifests
        service = manifests[f"{svc.namespace}/service-{svc.name}.yaml"]
        assert svc.port in [port["port"] for port in service["spec"]["ports"]]


def test_an_ingress_url_is_tested_as_it_is() -> None:
    outputs = {
        "endpoints": {"phi4-mini": "https://models.example.com/models/phi4-mini/v1"},
        "servedModelNames": {"phi4-mini": ["phi4-mini"]},
    }
    assert targets(outputs) == [
        Target("phi4-mini", "https://models.example.com/models/phi4-mini/v1", "phi4-mini", None)
    ]


class FakeKubectl(Kubectl):
    def __init__(self, replicas: dict[str, int], failing: dict[str, str] | None = None) -> None:
        self.replicas = replicas
        self.failing = failing or {}
        self.calls: list[str] = []

    def desired_replicas(self, svc: Service) -> int:
        self.calls.append(f"replicas {svc.name}")
        return self.replicas[svc.name]

    def wait_rolled_out(self, svc: Service, timeout_s: int) -> None:
        self.calls.append(f"rollout {svc.name} {timeout_s}")
        if svc.name in self.failing:
            raise KubectlError(self.failing[svc.name])

    @contextmanager
    def port_forward(self, svc: Service):
        self.calls.append(f"forward {svc.namespace}/{svc.name}:{svc.port}")
        yield 40000 + len(self.calls)
        self.calls.append(f"stop {svc.name}")


class FakeSmoke:
    def __init__(self, failing: set[str] = frozenset()) -> None:
        self.failing = failing
        self.runs: list[tuple[str, str | None, str, list[str]]] = []

    def __call__(self, url: str, served: str | None, key: str, extra: list[str]) -> int:
        self.runs.append((url, served, key, extra))
        return 1 if served in self.failing else 0


def two_models(key_command: str | None = "echo the-key") -> dict[str, Any]:
    return {
        "endpoints": {
            "phi4-mini": DEV_PHI4,
            "qwen3-8b": "http://qwen3-8b.slm-inference.svc.cluster.local:8000/v1",
        },
        "servedModelNames": {"phi4-mini": ["phi4-mini"], "qwen3-8b": ["qwen3-8b"]},
        "apiKeyCommand": key_command,
    }


@pytest.fixture(autouse=True)
def no_preset_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLM_API_KEY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


def test_waits_for_each_rollout_then_smokes_through_a_port_forward(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubectl, smoke = FakeKubectl({"phi4-mini": 1, "qwen3-8b": 2}), FakeSmoke()
    assert smoke_stack(two_models(), kubectl, smoke, 600, ["--skip-tools"]) == 0
    assert kubectl.calls == [
        "replicas phi4-mini",
        "rollout phi4-mini 600",
        "forward slm-inference/phi4-mini:8000",
        "stop phi4-mini",
        "replicas qwen3-8b",
        "rollout qwen3-8b 600",
        "forward slm-inference/qwen3-8b:8000",
        "stop qwen3-8b",
    ]
    assert smoke.runs == [
        ("http://127.0.0.1:40003/v1", "phi4-mini", "the-key", ["--skip-tools"]),
        ("http://127.0.0.1:40007/v1", "qwen3-8b", "the-key", ["--skip-tools"]),
    ]
    assert capsys.readouterr().out.endswith("smoke_stack: models 2 passed, 0 failed, 0 skipped\n")


def test_a_model_scaled_to_zero_is_skipped_with_a_warning_and_no_key_is_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    outputs = {**two_models(key_command="exit 1"), "endpoints": {"phi4-mini": DEV_PHI4}}
    kubectl, smoke = FakeKubectl({"phi4-mini": 0}), FakeSmoke()
    assert smoke_stack(outputs, kubectl, smoke) == 0
    assert kubectl.calls == ["replicas phi4-mini"]
    assert smoke.runs == []
    out = capsys.readouterr().out
    assert "::warning::phi4-mini: scaled to zero" in out
    assert out.endswith("models 0 passed, 0 failed, 1 skipped\n")


def test_a_failing_model_fails_the_run_and_the_others_are_still_tested(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubectl = FakeKubectl({"phi4-mini": 1, "qwen3-8b": 1}, failing={"phi4-mini": "timed out"})
    smoke = FakeSmoke(failing={"qwen3-8b"})
    assert smoke_stack(two_models(), kubectl, smoke) == 1
    assert [run[1] for run in smoke.runs] == ["qwen3-8b"]
    out = capsys.readouterr().out
    assert "smoke_stack: phi4-mini: FAILED: timed out\n" in out
    assert out.endswith("models 0 passed, 2 failed, 0 skipped\n")


def test_the_key_comes_from_slm_api_key_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLM_API_KEY", "from-env")
    smoke = FakeSmoke()
    smoke_stack(
        two_models(key_command="exit 1"), FakeKubectl({"phi4-mini": 1, "qwen3-8b": 1}), smoke
    )
    assert {run[2] for run in smoke.runs} == {"from-env"}


def test_the_key_is_masked_in_github_actions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    smoke_stack(two_models(), FakeKubectl({"phi4-mini": 1, "qwen3-8b": 1}), FakeSmoke())
    assert capsys.readouterr().out.count("::add-mask::the-key\n") == 1  # read once


def test_a_key_command_that_fails_fails_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = two_models(key_command="echo 'Error from server (NotFound)' >&2; exit 1")
    assert smoke_stack(outputs, FakeKubectl({"phi4-mini": 1, "qwen3-8b": 1}), FakeSmoke()) == 1
    assert (
        "phi4-mini: FAILED: apiKeyCommand: Error from server (NotFound)" in capsys.readouterr().out
    )


def test_without_vllm_models_smoke_gets_a_placeholder_key() -> None:
    outputs = {
        "endpoints": {"qwen3-tiny": "http://qwen3-tiny.slm-inference.svc.cluster.local:11434"},
        "servedModelNames": {"qwen3-tiny": ["qwen3:0.6b"]},
        "apiKeyCommand": None,
    }
    smoke = FakeSmoke()
    assert smoke_stack(outputs, FakeKubectl({"qwen3-tiny": 1}), smoke) == 0
    assert smoke.runs == [("http://127.0.0.1:40003/v1", "qwen3:0.6b", NO_KEY, [])]


def fake_kubectl(tmp_path: Path, body: str) -> Kubectl:
    script = tmp_path / "kubectl.py"
    script.write_text(f"import sys, time\n{body}\n")
    return Kubectl(command=(sys.executable, str(script)))


def test_port_forward_yields_the_port_kubectl_chose_and_stops_it(tmp_path: Path) -> None:
    marker = tmp_path / "args"
    kubectl = fake_kubectl(
        tmp_path,
        f"open({str(marker)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        "print('Forwarding from 127.0.0.1:43210 -> 8000', flush=True)\n"
        "print('Forwarding from [::1]:43210 -> 8000', flush=True)\n"
        "time.sleep(60)",
    )
    with kubectl.port_forward(Service("phi4-mini", "slm-inference", 8000)) as port:
        assert port == 43210
    assert marker.read_text() == "port-forward -n slm-inference service/phi4-mini :8000"


def test_port_forward_that_exits_reports_kubectls_last_words(tmp_path: Path) -> None:
    kubectl = fake_kubectl(
        tmp_path, "print('error: unable to forward port: no pods for service/x', flush=True)"
    )
    with (
        pytest.raises(KubectlError, match="no pods for service/x"),
        kubectl.port_forward(Service("x", "ns", 80)),
    ):
        pass


def test_kubectl_errors_carry_its_last_line(tmp_path: Path) -> None:
    kubectl = fake_kubectl(
        tmp_path,
        "print('error: deployments.apps \"x\" not found', file=sys.stderr); sys.exit(1)",
    )
    with pytest.raises(KubectlError, match='deployments.apps "x" not found'):
        kubectl.desired_replicas(Service("x", "ns", 80))


def test_replicas_are_read_from_the_deployment_spec(tmp_path: Path) -> None:
    kubectl = fake_kubectl(tmp_path, "print('0', end='')")
    assert kubectl.desired_replicas(Service("x", "ns", 80)) == 0


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        ([], None, "the following arguments are required: outputs"),
        (["missing.json"], None, "missing.json: No such file or directory"),
        (["outputs.json"], "not json", "outputs.json: not JSON"),
        (["outputs.json"], "[1]", "expected the JSON object"),
        (["outputs.json"], '{"endpoints": {}}', "the outputs list no endpoints"),
        (["outputs.json"], '{"endpoints": {"m": "ftp://x"}}', "is not an http(s) URL"),
        (["outputs.json", "--ready-timeout", "0"], "{}", "above 0"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    content: str | None,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / "outputs.json").write_text(content)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("smoke_stack: ") and err.count("\n") == 1
    assert message in err


def test_an_onnx_runtime_model_skips_the_tool_check_and_the_others_keep_it() -> None:
    outputs = two_models() | {
        "models": {"phi4-mini": {"engine": "vllm"}, "qwen3-8b": {"engine": "onnxruntime"}}
    }
    kubectl, smoke = FakeKubectl({"phi4-mini": 1, "qwen3-8b": 1}), FakeSmoke()
    assert smoke_stack(outputs, kubectl, smoke, 600, ["--json"]) == 0
    assert [run[3] for run in smoke.runs] == [["--json"], ["--json", "--skip-tools"]]


def test_smoke_args_after_a_double_dash_reach_smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(
        "tools.smoke_stack.smoke_stack",
        lambda outputs, kubectl, smoke, timeout, extra: seen.append((timeout, extra)) or 0,
    )
    (tmp_path / "outputs.json").write_text(json.dumps(two_models()))
    args = [str(tmp_path / "outputs.json"), "--ready-timeout", "90", "--", "--skip-tools"]
    assert main(args) == 0
    assert seen == [(90, ["--skip-tools"])]


def test_with_consumers_and_no_shared_key_the_first_consumers_key_is_used() -> None:
    outputs = two_models(key_command=None) | {
        "apiKeyCommands": {"support-bot": "echo bot-key", "search-team": "echo search-key"}
    }
    smoke = FakeSmoke()
    assert smoke_stack(outputs, FakeKubectl({"phi4-mini": 1, "qwen3-8b": 1}), smoke) == 0
    assert [run[2] for run in smoke.runs] == ["search-key", "search-key"]


def test_a_models_first_adapter_is_smoked_by_its_name_through_the_same_forward(
    capsys: pytest.CaptureFixture[str],
) -> None:
    adapters = [{"name": "qwen3-8b-sql"}, {"name": "qwen3-8b-legal"}]
    outputs = two_models() | {"models": {"qwen3-8b": {"engine": "vllm", "adapters": adapters}}}
    kubectl, smoke = FakeKubectl({"phi4-mini": 1, "qwen3-8b": 1}), FakeSmoke()
    assert smoke_stack(outputs, kubectl, smoke) == 0
    assert [(run[0], run[1]) for run in smoke.runs] == [
        ("http://127.0.0.1:40003/v1", "phi4-mini"),
        ("http://127.0.0.1:40007/v1", "qwen3-8b"),
        ("http://127.0.0.1:40007/v1", "qwen3-8b-sql"),
    ]
    assert "smoke_stack: qwen3-8b: adapter qwen3-8b-sql\n" in capsys.readouterr().out


def test_a_failing_adapter_fails_its_model(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = two_models() | {
        "models": {"qwen3-8b": {"engine": "vllm", "adapters": [{"name": "qwen3-8b-sql"}]}}
    }
    kubectl, smoke = FakeKubectl({"phi4-mini": 1, "qwen3-8b": 1}), FakeSmoke({"qwen3-8b-sql"})
    assert smoke_stack(outputs, kubectl, smoke) == 1
    assert capsys.readouterr().out.endswith("models 1 passed, 1 failed, 0 skipped\n")
