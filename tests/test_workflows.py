"""The GitHub workflows: actionlint over every file, then what each workflow must promise.

No workflow runs here (no GitHub, no Azure): actionlint checks syntax, expressions, the
inputs of the actions it knows (checkout, setup-python, upload-artifact, azure/login,
pulumi/actions) and, where shellcheck is installed, the `run:` scripts; the assertions below
check the design (docs/ci.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.plan import ROOT
from tools.stack_files import available_stacks

WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
ACTIONLINT = Path(sys.executable).parent / "actionlint"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@v\d+(\.\d+){0,2}$")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """`on:`, which YAML 1.1 (PyYAML) reads as the boolean True."""
    on = workflow.get("on", workflow.get(True))
    return on if isinstance(on, dict) else {on: None}


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    (step,) = [s for s in steps(job) if s.get("uses", "").startswith(f"{action}@")]
    return step


def index_of(job: dict[str, Any], predicate: Any) -> int:
    return next(i for i, step in enumerate(steps(job)) if predicate(step))


def actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_five_workflows_exist() -> None:
    names = [path.name for path in WORKFLOW_FILES]
    assert names == ["deploy-stack.yml", "deploy.yml", "drift.yml", "plan-diff.yml", "preview.yml"]


def test_actionlint_passes_on_every_workflow() -> None:
    result = actionlint(*WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: a misspelt action input and an undefined matrix value."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  preview:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: pulumi/actions@v7\n"
        "        with:\n"
        "          command: preview\n"
        "          stack-name: ${{ matrix.stack }}\n"
        "          policy-packs: policies\n"
    )
    result = actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1
    assert 'input "policy-packs" is not defined in action "pulumi/actions@v7"' in result.stdout
    assert 'property "stack" is not defined' in result.stdout


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_stored_azure_credential_anywhere(path: Path) -> None:
    text = path.read_text().lower()
    assert "client-secret" not in text
    assert "azure_client_secret" not in text
    assert "creds:" not in text  # azure/login's JSON service principal secret


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_version(path: Path) -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)", path.read_text(), flags=re.MULTILINE)
    for action in uses:
        if action.startswith("./"):  # this repository's own reusable workflow
            continue
        assert PINNED.match(action), f"{path.name}: {action} is not pinned to a version tag"
        assert not action.endswith(("@main", "@master"))


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_azure_sign_in_takes_ids_from_variables_through_oidc(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    for job in workflow["jobs"].values():
        for step in steps(job):
            if step.get("uses", "").startswith("azure/login@"):
                assert step["with"] == {
                    "client-id": "${{ vars.AZURE_CLIENT_ID }}",
                    "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
                    "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
                }
                assert job["env"]["ARM_USE_OIDC"] == "true"
                assert job["env"]["AAD_LOGIN_METHOD"] == "workloadidentity"


def test_the_pulumi_cli_matches_the_locked_sdk() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (sdk,) = [p["version"] for p in lock["package"] if p["name"] == "pulumi"]
    for name in ("preview.yml", "deploy-stack.yml"):
        assert load(name)["env"]["PULUMI_VERSION"] == sdk, name


def test_preview_runs_on_pull_requests_with_the_permissions_it_needs() -> None:
    preview = load("preview.yml")
    assert set(triggers(preview)) == {"pull_request"}
    assert preview["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "id-token": "write",
    }
    assert preview["concurrency"]["group"] == "preview-${{ github.event.pull_request.number }}"


def test_preview_runs_the_unit_tests_without_cloud_permissions() -> None:
    jobs = load("preview.yml")["jobs"]
    assert [step.get("run") for step in steps(jobs["test"])][-1] == ".ci/run"
    assert jobs["test"]["permissions"] == {"contents": "read"}
    assert jobs["stacks"]["permissions"] == {"contents": "read"}


def test_preview_previews_the_affected_stacks_after_the_tests() -> None:
    jobs = load("preview.yml")["jobs"]
    affected = next(s for s in steps(jobs["stacks"]) if s.get("id") == "affected")
    assert "git diff --name-only" in affected["run"]
    assert "python -m tools.affected_stacks" in affected["run"]
    preview = jobs["preview"]
    assert preview["needs"] == ["test", "stacks"]
    assert preview["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    # Forks get no OIDC token: the job is skipped for them (plan-diff.yml covers them).
    assert "github.event.pull_request.head.repo.full_name == github.repository" in preview["if"]
    pulumi = step_using(preview, "pulumi/actions")["with"]
    assert pulumi["command"] == "preview"
    assert pulumi["diff"] is True
    assert pulumi["comment-on-pr"] is True
    assert pulumi["policyPacks"] == "policies"
    assert pulumi["stack-name"] == "${{ vars.PULUMI_STACK_PREFIX }}${{ matrix.stack }}"
    assert index_of(preview, lambda s: s.get("run") == "make setup") < index_of(
        preview, lambda s: s.get("uses", "").startswith("pulumi/actions@")
    )


def _reaches(jobs: dict, job: str, ancestor: str) -> bool:
    """Whether `job` runs after `ancestor` through its chain of needs."""
    needs = jobs[job].get("needs") or []
    needs = [needs] if isinstance(needs, str) else needs
    return ancestor in needs or any(_reaches(jobs, n, ancestor) for n in needs)


def test_deploy_promotes_dev_then_staging_then_prod() -> None:
    deploy = load("deploy.yml")
    assert set(triggers(deploy)) == {"push", "workflow_dispatch"}
    assert triggers(deploy)["push"] == {
        "branches": ["main"],
        "paths-ignore": ["**.md", "docs/**", "tests/**"],
    }
    assert deploy["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    jobs = deploy["jobs"]
    # dev first, then staging, then prod (a fork's extra environments may sit in between).
    assert jobs["dev"].get("needs") is None
    assert _reaches(jobs, "staging", "dev") and _reaches(jobs, "prod", "staging")
    for name, job in jobs.items():
        assert job["uses"] == "./.github/workflows/deploy-stack.yml"
        assert job["with"] == {"stack": name}
    deployed = set(jobs)
    assert deployed <= set(available_stacks(ROOT))
    assert "local" not in deployed


def test_each_deployment_runs_in_its_environment_and_smokes_after_up() -> None:
    stack = load("deploy-stack.yml")
    assert set(triggers(stack)) == {"workflow_call"}
    assert triggers(stack)["workflow_call"]["inputs"]["stack"]["required"] is True
    (job,) = stack["jobs"].values()
    # The environment (its required reviewers) is named like the stack.
    assert job["environment"] == "${{ inputs.stack }}"
    up = step_using(job, "pulumi/actions")
    assert up["with"]["command"] == "up"
    assert up["with"]["policyPacks"] == "policies"
    assert up["with"]["stack-name"] == "${{ env.STACK }}"
    smoke = index_of(job, lambda s: "tools.smoke_stack" in s.get("run", ""))
    assert smoke > steps(job).index(up)
    assert "pulumi stack output --json" in steps(job)[smoke]["run"]


def test_plan_diff_needs_no_secret_and_only_reads() -> None:
    text = (WORKFLOWS / "plan-diff.yml").read_text()
    assert "secrets." not in text
    assert "id-token" not in text
    plan_diff = load("plan-diff.yml")
    # pull_request, never pull_request_target: fork code must not run with this repo's rights.
    assert set(triggers(plan_diff)) == {"pull_request"}
    assert plan_diff["permissions"] == {"contents": "read"}
    for job in plan_diff["jobs"].values():
        assert "permissions" not in job
        for step in steps(job):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_plan_diff_plans_base_and_head_and_summarises_the_diff() -> None:
    (job,) = load("plan-diff.yml")["jobs"].values()
    checkouts = [s["with"] for s in steps(job) if s.get("uses", "").startswith("actions/checkout@")]
    assert [c["path"] for c in checkouts] == ["head", "base"]
    assert checkouts[1]["ref"] == "${{ github.event.pull_request.base.sha }}"
    scripts = "\n".join(step.get("run", "") for step in steps(job))
    assert "for side in base head" in scripts
    assert '.venv/bin/python -m tools.plan "$stack" --out "../plans/$side"' in scripts
    assert "python -m tools.plan_diff ../plans/base ../plans/head" in scripts
    assert '>> "$GITHUB_STEP_SUMMARY"' in scripts
