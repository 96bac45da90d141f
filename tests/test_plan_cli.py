"""The offline plan as a command: files written, exit statuses, determinism."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import STACKS, copy_program, fixture_root, read_stack, write_stack
from tools.plan import ROOT, build_plan


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of the program and the fixture stacks, so a test can break a stack file safely."""
    return copy_program(tmp_path / "repo")


@pytest.fixture(scope="module")
def fixture_program(tmp_path_factory) -> Path:
    """The program with the fixture stacks, which the tests below read and never change."""
    return copy_program(tmp_path_factory.mktemp("program") / "repo")


def run_plan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.plan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plan_writes_the_contract_files_and_is_byte_identical(
    tmp_path: Path, fixture_program: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    result = run_plan("dev", "--out", str(first), cwd=fixture_program)
    assert result.returncode == 0, result.stderr
    resources = json.loads((first / "dev" / "resources.json").read_text())
    azure = sum(r["type"].startswith("azure-native:") for r in resources)
    # cluster, VNet, Key Vault, identities and a role per secret read: test_aks, test_secrets;
    # the container logs' workspace, collection rule and its association: test_container_logs
    assert azure == 30
    assert result.stdout.startswith(f"plan dev: {len(resources)} resources ({azure} azure-native, ")
    assert (
        "  phi4-mini: fits t4spot, 9.08 of 12.75 GiB per GPU (3.67 spare); 0.23 req/s, 46 tok/s"
        " per replica, 3.171 USD/Mtok\n" in result.stdout
    )
    assert "  pool t4spot: 0.00-217.83 USD/month\n" in result.stdout
    assert run_plan("dev", "--out", str(second), "--quiet", cwd=fixture_program).returncode == 0
    files = sorted(p.relative_to(first / "dev") for p in (first / "dev").rglob("*") if p.is_file())
    assert [str(f) for f in files] == [
        "helm.json",
        "manifests/_cluster/namespace-slm-inference.yaml",
        "manifests/_cluster/namespace-slm-monitoring.yaml",
        "manifests/_cluster/namespace-slm-system.yaml",
        "manifests/slm-inference/deployment-phi4-mini.yaml",
        "manifests/slm-inference/networkpolicy-allow-clients.yaml",
        "manifests/slm-inference/networkpolicy-allow-dns.yaml",
        "manifests/slm-inference/networkpolicy-allow-model-downloads.yaml",
        "manifests/slm-inference/networkpolicy-allow-same-namespace.yaml",
        "manifests/slm-inference/networkpolicy-default-deny.yaml",
        "manifests/slm-inference/persistentvolumeclaim-phi4-mini-models.yaml",
        "manifests/slm-inference/poddisruptionbudget-phi4-mini.yaml",
        "manifests/slm-inference/scaledobject-phi4-mini.yaml",
        "manifests/slm-inference/secretproviderclass-model-server.yaml",
        "manifests/slm-inference/service-phi4-mini.yaml",
        "manifests/slm-inference/serviceaccount-slm-model-server.yaml",
        "manifests/slm-monitoring/configmap-dashboard-slm-serving.yaml",
        "manifests/slm-monitoring/networkpolicy-allow-log-push.yaml",
        "manifests/slm-monitoring/networkpolicy-allow-prometheus-queries.yaml",
        "manifests/slm-monitoring/networkpolicy-allow-same-namespace.yaml",
        "manifests/slm-monitoring/networkpolicy-default-deny-ingress.yaml",
        "manifests/slm-monitoring/prometheusrule-slm-serving.yaml",
        "manifests/slm-monitoring/secretproviderclass-grafana.yaml",
        "manifests/slm-monitoring/servicemonitor-vllm.yaml",
        "manifests/slm-system/networkpolicy-allow-gpu-metrics-scrape.yaml",
        "manifests/slm-system/networkpolicy-allow-same-namespace.yaml",
        "manifests/slm-system/networkpolicy-default-deny-ingress.yaml",
        "outputs.json",
        "resources.json",
        "summary.md",
    ]
    for relative in files:
        assert (first / "dev" / relative).read_bytes() == (second / "dev" / relative).read_bytes()
    resources = json.loads((first / "dev" / "resources.json").read_text())
    assert set(resources[0]) == {
        "urn",
        "type",
        "name",
        "parent",
        "provider",
        "protect",
        "retainOnDelete",
        "dependencies",
        "inputs",
    }
    manifest = yaml.safe_load(
        (first / "dev" / "manifests/_cluster/namespace-slm-inference.yaml").read_text()
    )
    assert list(manifest)[:3] == ["apiVersion", "kind", "metadata"]
    summary = (first / "dev" / "summary.md").read_text()
    assert (
        "| t4spot | Standard_NC4as_T4_v3 | 1x T4 | 0-2 | True | 0.00 | 217.83 |"
        " 0.1492/h, eastus, 2026-09-26 | on-demand 0.00-773.80 |" in summary
    )
    assert (
        "| phi4-mini | vllm | `microsoft/Phi-4-mini-instruct` | small | t4spot | 4096 x 4"
        " | 9.08 | 12.75 | 3.67 | 84 | 34048 |" in summary
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda cfg: cfg.update(
                {
                    "slm-deploy:gpuPools": [
                        {"name": "t4", "vmSize": "Standard_NC4as_T4_v3", "maxCount": -1}
                    ]
                }
            ),
            "plan dev: slm-deploy:gpuPools[0].maxCount: -1 is not allowed; expected a number >= 1\n",
        ),
        (
            lambda cfg: cfg.update({"slm-deploy:environment": "qa"}),
            'plan dev: slm-deploy:environment: "qa" is not allowed; expected one of local, dev, staging, prod\n',
        ),
    ],
)
def test_config_error_exits_2_with_one_line_and_writes_nothing(
    repo_copy: Path, edit, expected: str
) -> None:
    document = read_stack(repo_copy, "dev")
    edit(document["config"])
    write_stack(repo_copy, "dev", document)
    out = repo_copy / "out"
    result = run_plan("dev", "--out", str(out), cwd=repo_copy)
    assert result.returncode == 2
    assert result.stderr == expected
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists()


def test_unknown_stack_and_bad_arguments_exit_2(tmp_path: Path, fixture_program: Path) -> None:
    result = run_plan("qa", "--out", str(tmp_path), cwd=fixture_program)
    assert result.returncode == 2
    assert result.stderr == (
        "plan qa: stack 'qa': no file stacks/Pulumi.qa.yaml; stacks: dev, local, prod, staging\n"
    )
    assert run_plan("--no-such-flag", cwd=fixture_program).returncode == 2


def _staging_without_purge_protection() -> dict:
    from tools.plan import build_plan, policy_violations

    plan = build_plan("staging", config_root=fixture_root())
    for resource in plan["resources"]:
        if resource["type"] == "azure-native:keyvault:Vault":
            del resource["inputs"]["properties"]["enablePurgeProtection"]
    plan["violations"] = policy_violations(plan["resources"])
    return plan


def test_the_plan_runs_the_policy_pack_over_what_it_declares() -> None:
    plan = _staging_without_purge_protection()
    assert len(plan["violations"]) == 1
    assert plan["violations"][0].startswith("key-vault-purge-protection: ")
    assert "slm-secrets-vault" in plan["violations"][0]


def test_a_policy_violation_fails_the_plan_and_writes_nothing(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import tools.plan

    plan = _staging_without_purge_protection()
    monkeypatch.setattr(tools.plan, "build_plan", lambda stack: plan)
    stale = tmp_path / "staging" / "summary.md"  # an older plan of the same stack
    stale.parent.mkdir()
    stale.write_text("an older plan")
    assert tools.plan.main(["staging", "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"plan staging: policy {plan['violations'][0]}"]
    assert not (tmp_path / "staging").exists()


PLANTED_TOKEN = "hf_PlantedTokenValue0123456789abcdefXYZ"


def test_a_plan_refused_for_a_clear_text_token_leaves_the_token_nowhere(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A token written into a pod's environment in clear text: the policy refuses the plan,
    no file is written for CI to publish, and no error line carries the token."""
    import tools.plan

    plan = build_plan("dev", config_root=fixture_root())
    (deployment,) = [
        r
        for r in plan["resources"]
        if r["type"] == "kubernetes:apps/v1:Deployment"
        and r["inputs"]["metadata"]["name"] == "phi4-mini"
    ]
    container = deployment["inputs"]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "HF_TOKEN", "value": PLANTED_TOKEN})
    planted = f"spec.template.spec.containers[0].env[{len(container['env']) - 1}].value"
    plan["violations"] = tools.plan.policy_violations(plan["resources"])
    # Found twice: by its name (HF_TOKEN) and by its shape (hf_...).
    assert [v.split(": ", 3)[2] for v in plan["violations"]] == [planted, planted]
    monkeypatch.setattr(tools.plan, "build_plan", lambda stack: plan)
    assert tools.plan.main(["dev", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("plan dev: policy no-plaintext-secrets: ")
    assert PLANTED_TOKEN not in captured.out + captured.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stack", STACKS)
def test_resources_are_listed_after_what_they_need(plans, stack: str) -> None:
    declared = {resource["urn"] for resource in plans[stack]["resources"]}
    seen: set[str] = set()
    for resource in plans[stack]["resources"]:
        needs = [resource["parent"], resource["provider"]]
        needs += resource["dependencies"]
        assert all(need in seen for need in needs if need in declared), resource["urn"]
        seen.add(resource["urn"])
    assert seen == declared
    if stack != "local":  # Kubernetes resources come after the cluster's provider
        providers = [r["provider"] for r in plans[stack]["resources"] if r["provider"]]
        assert any(p.endswith("pulumi:providers:kubernetes::slm-cluster-k8s") for p in providers)


def _object(kind: str, api_version: str, name: str, namespace: str | None, parent: str) -> dict:
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "type": f"kubernetes:{api_version if '/' in api_version else 'core/' + api_version}:{kind}",
        "name": f"slm-{name}",
        "parent": f"urn:pulumi:dev::slm-deploy::slm:platform:Platform${parent}::slm-{name}",
        "inputs": {"apiVersion": api_version, "kind": kind, "metadata": metadata},
    }


def test_two_objects_with_one_group_kind_namespace_and_name_are_refused() -> None:
    from tools.plan import duplicate_objects

    deployment = _object("Deployment", "apps/v1", "chat", "slm-inference", "slm:a:First")
    assert duplicate_objects(
        [
            deployment,
            # Another version of the same group is the same object.
            _object("Deployment", "apps/v1beta2", "chat", "slm-inference", "slm:b:Second"),
            # Another namespace, kind or group is another object.
            _object("Deployment", "apps/v1", "chat", "slm-monitoring", "slm:b:Second"),
            _object("Service", "v1", "chat", "slm-inference", "slm:b:Second"),
            _object("Namespace", "v1", "chat", None, "slm:b:Second"),
            _object("ScaledObject", "keda.sh/v1alpha1", "chat", "slm-inference", "slm:b:Second"),
        ]
    ) == [
        "Deployment.apps slm-inference/chat is declared twice, by slm-chat (slm:a:First) and by"
        " slm-chat (slm:b:Second): Kubernetes keeps one object per group, kind, namespace and"
        " name"
    ]


def test_a_model_named_like_open_webui_stops_the_plan_with_one_line(repo_copy: Path) -> None:
    document = read_stack(repo_copy, "local")
    document["config"]["slm-deploy:models"][0]["name"] = "open-webui"
    document["config"]["slm-deploy:serving"] = {"ollama": {"openWebUi": {"enabled": True}}}
    write_stack(repo_copy, "local", document)
    out = repo_copy / "out"
    result = run_plan("local", "--out", str(out), cwd=repo_copy)
    assert result.returncode == 2
    # The config check names the key before any object is declared; the plan's duplicate
    # check (tested above with duplicate_objects) stays the net for clashes config misses.
    assert result.stderr == (
        'plan local: slm-deploy:models[0].name: "open-webui" is not allowed; expected a name'
        " other than open-webui while serving.ollama.openWebUi is enabled: Open WebUI's"
        " Deployment, Service and claim have that name in the same namespace\n"
    )
    assert not out.exists()


# One clear line and exit 2 for each class of stack-file problem (tests/test_stack_files.py
# and tests/test_config.py cover every case in-process).
PLANTED_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"
REGIONS = "an Azure region name from components/azure_regions.json (67 regions, e.g. eastus,"


def _duplicate_key(copy: Path) -> str:
    fixture = ROOT / "tests" / "fixtures" / "stack-files" / "Pulumi.duplicate-key.yaml"
    shutil.copy(fixture, copy / "stacks" / "Pulumi.dev.yaml")
    return "dev"


def _unknown_region(copy: Path) -> str:
    document = read_stack(copy, "dev")
    document["config"]["slm-deploy:cluster"]["location"] = "atlantis"
    write_stack(copy, "dev", document)
    return "dev"


def _open_to_everyone(copy: Path) -> str:
    document = read_stack(copy, "prod")
    document["config"]["slm-deploy:cluster"]["authorizedIpRanges"] = ["0.0.0.0/0"]
    write_stack(copy, "prod", document)
    return "prod"


def _token_as_host(copy: Path) -> str:
    document = read_stack(copy, "dev")
    document["config"]["slm-deploy:ingress"] = {"enabled": True, "host": PLANTED_TOKEN}
    write_stack(copy, "dev", document)
    return "dev"


def _stack_name(copy: Path) -> str:
    shutil.copy(copy / "stacks" / "Pulumi.dev.yaml", copy / "stacks" / "Pulumi.team_a.dev.yaml")
    return "team_a.dev"


@pytest.mark.parametrize(
    ("break_stack", "line"),
    [
        (
            _duplicate_key,
            "plan dev: Pulumi.dev.yaml: line 6, column 3: the key 'slm-deploy:environment' is "
            "given twice (first on line 2); the Pulumi CLI refuses duplicate keys",
        ),
        (_unknown_region, f'plan dev: slm-deploy:cluster.location: "atlantis" is not allowed; expected {REGIONS}'),
        (
            _open_to_everyone,
            'plan prod: slm-deploy:cluster.authorizedIpRanges[0]: "0.0.0.0/0" is not allowed; '
            "expected a range of /16 or narrower (IPv4) in staging and prod",
        ),
        (
            _token_as_host,
            'plan dev: slm-deploy:ingress.host: "[redacted]" is not allowed; expected a DNS host',
        ),
        (_stack_name, 'plan team_a.dev: slm-deploy: stack "team_a.dev" is not allowed; expected a'),
    ],
)  # fmt: skip
def test_stack_file_problems_exit_2_with_one_line(repo_copy: Path, break_stack, line) -> None:
    stack = break_stack(repo_copy)
    out = repo_copy / "out"
    result = run_plan(stack, "--out", str(out), cwd=repo_copy)
    assert result.returncode == 2
    assert result.stderr.startswith(line)
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert PLANTED_TOKEN not in result.stderr + result.stdout
    assert not out.exists()


def test_a_broken_catalog_file_stops_the_program_with_one_line(repo_copy: Path) -> None:
    """The program itself turns the catalog loader's error into Pulumi's one-line error, so
    `pulumi up` and the plan say the same thing and neither prints a traceback."""
    family = repo_copy / "components" / "models" / "qwen3.json"
    family.write_text(family.read_text().replace('"layers": 28,', '"layer": 28,', 1))
    result = run_plan("dev", "--out", str(repo_copy / "out"), cwd=repo_copy)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("plan dev: ") and "qwen3.json" in line and "layer" in line
