"""The plan-diff workflow's summary (each resource's create, update, replace or delete, a
table per stack and a bounded diff) and its replacement guard."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import STACKS, copy_config_root, read_stack, write_stack
from tools.plan import ROOT, build_plan, plain_numbers, write_plan
from tools.plan_diff import (
    ALLOW_LABEL,
    AZURE_FACTS,
    EXIT_STATEFUL_REPLACE,
    KUBERNETES_FACTS,
    Change,
    all_changes,
    azure_force_new,
    azure_path_parameters,
    kubernetes_fields,
    main,
    report,
)
from tools.stack_files import available_stacks
from tools.stateful_golden import golden_entries, golden_path, missing_from_golden


def load_workflow() -> dict[str, Any]:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "plan-diff.yml").read_text())


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def plan_files(tmp_path: Path) -> tuple[Path, Path]:
    base = write(
        tmp_path / "base",
        {
            "dev/resources.json": '[\n  {"maxCount": 2}\n]\n',
            "dev/summary.md": "# dev\n",
            "prod/resources.json": "[]\n",
            "old/resources.json": "[]\n",
        },
    )
    head = write(
        tmp_path / "head",
        {
            "dev/resources.json": '[\n  {"maxCount": 3}\n]\n',
            "dev/summary.md": "# dev\n",
            "dev/manifests/slm-inference/service-x.yaml": "kind: Service\n",
            "prod/resources.json": "[]\n",
            "qa/resources.json": "[]\n",
        },
    )
    return base, head


def test_the_table_says_what_happened_to_each_stack(plan_files: tuple[Path, Path]) -> None:
    markdown, _ = report(*plan_files, limit=100_000)
    assert markdown.startswith(
        "No resource is created, updated, replaced or deleted.\n\n"
        "| stack | offline plan |\n"
        "| --- | --- |\n"
        "| dev | changed: `manifests/slm-inference/service-x.yaml`, `resources.json` |\n"
        "| old | removed |\n"
        "| prod | unchanged |\n"
        "| qa | added |\n"
    )


def test_the_diff_shows_changed_added_and_removed_files(plan_files: tuple[Path, Path]) -> None:
    _, whole = report(*plan_files, limit=100_000)
    assert whole == (
        "--- base/dev/manifests/slm-inference/service-x.yaml\n"
        "+++ head/dev/manifests/slm-inference/service-x.yaml\n"
        "@@ -0,0 +1 @@\n"
        "+kind: Service\n"
        "--- base/dev/resources.json\n"
        "+++ head/dev/resources.json\n"
        "@@ -1,3 +1,3 @@\n"
        " [\n"
        '-  {"maxCount": 2}\n'
        '+  {"maxCount": 3}\n'
        " ]\n"
        "--- base/old/resources.json\n"
        "+++ head/old/resources.json\n"
        "@@ -1 +0,0 @@\n"
        "-[]\n"
        "--- base/qa/resources.json\n"
        "+++ head/qa/resources.json\n"
        "@@ -0,0 +1 @@\n"
        "+[]\n"
    )


def test_identical_plans_say_so(tmp_path: Path) -> None:
    base = write(tmp_path / "base", {"dev/resources.json": "[]\n"})
    head = write(tmp_path / "head", {"dev/resources.json": "[]\n"})
    markdown, whole = report(base, head, limit=100_000)
    assert whole == ""
    assert markdown.endswith("| dev | unchanged |\n\nNo stack's plan changes.\n")


def test_a_long_diff_is_cut_at_a_line_with_a_note(tmp_path: Path) -> None:
    base = write(tmp_path / "base", {"dev/resources.json": ""})
    head = write(
        tmp_path / "head", {"dev/resources.json": "".join(f"line {i}\n" for i in range(1000))}
    )
    markdown, whole = report(base, head, limit=2000)
    diff_part = markdown.split("```diff\n", 1)[1].split("\n```", 1)[0] + "\n"
    assert len(diff_part.encode()) <= 2000
    assert whole.startswith(diff_part)  # whole lines, from the start
    left = len(whole.encode()) - len(diff_part.encode())
    assert markdown.endswith(
        f"\nThe diff is cut here: {left} more bytes in the whole diff (the artifact).\n"
    )


def test_backticks_in_the_plans_cannot_close_the_fence(tmp_path: Path) -> None:
    base = write(tmp_path / "base", {"dev/summary.md": "a\n"})
    head = write(tmp_path / "head", {"dev/summary.md": "````\ncode\n````\n"})
    markdown, _ = report(base, head, limit=100_000)
    assert "`````diff\n" in markdown
    assert markdown.rstrip().endswith("\n`````")


def test_cli_prints_markdown_and_writes_the_whole_diff(
    plan_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = tmp_path / "plan.diff"
    assert (
        main([str(plan_files[0]), str(plan_files[1]), "--full", str(full), "--limit", "1000"]) == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("No resource is created, updated, replaced or deleted.\n\n| stack |")
    assert full.read_text().startswith("--- base/dev/manifests/slm-inference/service-x.yaml\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "."], "nowhere is not a folder"),
        (["."], "the following arguments are required: head"),
        ([".", ".", "--limit", "10"], "at least 1000"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("plan_diff: ") and err.count("\n") == 1
    assert message in err


def test_a_failed_plan_says_so_with_its_message(tmp_path: Path) -> None:
    base = write(tmp_path / "base", {"dev/resources.json": "[]\n", "prod/resources.json": "[]\n"})
    head = write(
        tmp_path / "head",
        {
            "dev.error": "plan dev: slm-deploy:gpuPools[0].minCount: 3 is not allowed | x\n",
            "prod/resources.json": "[]\n",
        },
    )
    markdown, _ = report(base, head, limit=100_000)
    assert (
        "| dev | plan fails at head: plan dev: slm-deploy:gpuPools[0].minCount: 3 is not"
        " allowed \\| x |\n| prod | unchanged |\n"
    ) in markdown


# -- resource changes and the replacement guard ----------------------------------------------

PROD = "prod"
AGENT_POOL = "azure-native:containerservice:AgentPool"
CLUSTER = "azure-native:containerservice:ManagedCluster"
VAULT = "azure-native:keyvault:Vault"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
# A priced catalog size whose GPU holds what the fixture prod's A100 pool serves.
NEW_VM_SIZE = "Standard_NC40ads_H100_v5"


@pytest.fixture(scope="module")
def prod_resources(plans: dict[str, Any]) -> list[dict[str, Any]]:
    """The fixture prod plan's resources, as resources.json holds them."""
    return json.loads(json.dumps(plain_numbers(plans[PROD]["resources"])))


@pytest.fixture(scope="module")
def vm_size_plans(tmp_path_factory: pytest.TempPathFactory, plans: dict[str, Any]) -> Path:
    """plans/base and plans/head, as the workflow lays them out: the fixture prod, and the
    same stack with its GPU pool's vmSize changed (planned once for this module)."""
    root = tmp_path_factory.mktemp("vm-size")
    (root / "config").mkdir()
    config = copy_config_root(root / "config")
    stack = read_stack(config, PROD)
    pool = stack["config"]["slm-deploy:gpuPools"][0]
    assert pool["vmSize"] != NEW_VM_SIZE
    pool["vmSize"] = NEW_VM_SIZE
    write_stack(config, PROD, stack)
    write_plan(plans[PROD], root / "plans" / "base" / PROD)
    write_plan(build_plan(PROD, config_root=config), root / "plans" / "head" / PROD)
    return root / "plans"


def one(resources: list[dict[str, Any]], type_: str, index: int = 0) -> dict[str, Any]:
    return [r for r in resources if r["type"] == type_][index]


def changes_after(
    tmp_path: Path, resources: list[dict[str, Any]], edit: Callable[[list[dict]], None]
) -> list[Change]:
    """The resource changes from a plan to a copy of it that `edit` changes."""
    head = copy.deepcopy(resources)
    edit(head)
    for side, content in (("base", resources), ("head", head)):
        write(tmp_path / side, {f"{PROD}/resources.json": json.dumps(content)})
    return all_changes(tmp_path / "base", tmp_path / "head")


def summary(changes: list[Change]) -> list[tuple[str, str, str, str]]:
    return [(c.action, c.type, c.name, c.why) for c in changes]


def test_a_pools_vm_size_replaces_it_and_the_guard_fails_without_the_label(
    vm_size_plans: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = vm_size_plans / "base", vm_size_plans / "head"
    assert main([str(base), str(head), "--fail-on-stateful-replace"]) == EXIT_STATEFUL_REPLACE
    out, err = capsys.readouterr()
    assert err == (
        f"plan_diff: prod: replace {AGENT_POOL} slm-pool-a100 (node pool: its nodes and the"
        " pods on them): vmSize; the label allow-replace allows it\n"
    )
    # Listed first, above every other change and the file table.
    assert out.startswith(
        "**1 stateful or protected resource(s) replaced or deleted.** CI fails unless the pull"
        " request has the label `allow-replace` (docs/ci.md).\n\n"
        "| stack | action | resource | type | why | stateful |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        f"| prod | replace | `slm-pool-a100` | `{AGENT_POOL}` | `vmSize` | node pool: its nodes"
        " and the pods on them |\n\n"
    )
    # The models' pods follow the new nodes' size: updates in place, not guarded.
    updates = [c for c in all_changes(base, head) if c.action == "update"]
    assert {c.name for c in updates} >= {"slm-phi4-mini", "slm-qwen3-8b"}
    assert all(c.type != AGENT_POOL for c in updates)


def test_without_the_flag_the_same_change_passes(
    vm_size_plans: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The override: with the label, the workflow does not ask for the guard."""
    assert main([str(vm_size_plans / "base"), str(vm_size_plans / "head")]) == 0
    assert capsys.readouterr().err == ""


def test_the_workflow_step_fails_unlabelled_and_passes_with_the_label(
    vm_size_plans: Path, tmp_path: Path
) -> None:
    """The guard step's own script, run by bash in the workflow's layout (head/ the checkout
    with its .venv, plans/ beside it), with and without the label."""
    (job,) = load_workflow()["jobs"].values()
    (step,) = [s for s in job["steps"] if "--fail-on-stateful-replace" in s.get("run", "")]
    assert step["env"] == {
        "ALLOW_REPLACE": f"${{{{ contains(github.event.pull_request.labels.*.name,"
        f" '{ALLOW_LABEL}') }}}}"
    }
    (tmp_path / "head").mkdir()
    for name in ("tools", "components", ".venv", "tests"):
        (tmp_path / "head" / name).symlink_to(ROOT / name)
    shutil.copytree(vm_size_plans, tmp_path / "plans")

    def run_step(label: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
            cwd=tmp_path,
            env={**os.environ, "ALLOW_REPLACE": label},
            capture_output=True,
            text=True,
            timeout=120,
        )

    unlabelled = run_step("false")
    assert unlabelled.returncode == EXIT_STATEFUL_REPLACE, unlabelled.stderr
    assert unlabelled.stdout == (
        f"::error::plan_diff: prod: replace {AGENT_POOL} slm-pool-a100 (node pool: its nodes"
        " and the pods on them): vmSize; the label allow-replace allows it\n"
    )
    labelled = run_step("true")
    assert labelled.returncode == 0
    assert labelled.stdout.startswith("::notice::label allow-replace")


def test_the_workflow_runs_again_when_a_label_changes() -> None:
    on = load_workflow().get("on", load_workflow().get(True))
    assert {"labeled", "unlabeled", "synchronize"} <= set(on["pull_request"]["types"])


def test_a_clusters_network_plugin_replaces_it_its_load_balancer_sku_does_not(
    tmp_path: Path, prod_resources: list[dict[str, Any]]
) -> None:
    def plugin(resources: list[dict]) -> None:
        one(resources, CLUSTER)["inputs"]["networkProfile"]["networkPlugin"] = "kubenet"

    assert summary(changes_after(tmp_path / "a", prod_resources, plugin)) == [
        ("replace", CLUSTER, "slm-cluster-aks", "`networkProfile.networkPlugin`")
    ]

    def load_balancer(resources: list[dict]) -> None:
        one(resources, CLUSTER)["inputs"]["networkProfile"]["loadBalancerSku"] = "standard"

    assert summary(changes_after(tmp_path / "b", prod_resources, load_balancer)) == [
        ("update", CLUSTER, "slm-cluster-aks", "`networkProfile.loadBalancerSku`")
    ]


def test_a_vaults_name_replaces_it_a_tag_does_not(
    tmp_path: Path, prod_resources: list[dict[str, Any]]
) -> None:
    def rename(resources: list[dict]) -> None:
        one(resources, VAULT)["inputs"]["vaultName"] = "kv-slm-prod-other"

    (renamed,) = changes_after(tmp_path / "a", prod_resources, rename)
    assert (renamed.action, renamed.why, renamed.guarded) == ("replace", "`vaultName`", True)

    def tag(resources: list[dict]) -> None:
        one(resources, VAULT)["inputs"]["tags"] = {"owner": "platform"}

    (tagged,) = changes_after(tmp_path / "b", prod_resources, tag)
    assert (tagged.action, tagged.why, tagged.guarded) == ("update", "`tags`", False)


def test_a_claims_storage_class_replaces_it_its_size_does_not(
    tmp_path: Path, prod_resources: list[dict[str, Any]]
) -> None:
    def storage_class(resources: list[dict]) -> None:
        one(resources, CLAIM)["inputs"]["spec"]["storageClassName"] = "azurefile-csi"

    (changed,) = changes_after(tmp_path / "a", prod_resources, storage_class)
    assert (changed.action, changed.name, changed.why) == (
        "replace",
        "slm-phi4-mini-models",
        "`spec.storageClassName`",
    )
    assert changed.stateful == "volume claim: its data (the model cache); protect"

    def grow(resources: list[dict]) -> None:
        one(resources, CLAIM)["inputs"]["spec"]["resources"]["requests"]["storage"] = "200Gi"

    (grown,) = changes_after(tmp_path / "b", prod_resources, grow)
    assert (grown.action, grown.why) == ("update", "`spec.resources.requests.storage`")


def test_a_deployments_replicas_update_it_its_selector_replaces_it_unguarded(
    tmp_path: Path, prod_resources: list[dict[str, Any]]
) -> None:
    def replicas(resources: list[dict]) -> None:
        one(resources, DEPLOYMENT)["inputs"]["spec"]["replicas"] = 3

    assert summary(changes_after(tmp_path / "a", prod_resources, replicas)) == [
        ("update", DEPLOYMENT, "slm-phi4-mini", "`spec.replicas`")
    ]

    def selector(resources: list[dict]) -> None:
        one(resources, DEPLOYMENT)["inputs"]["spec"]["selector"]["matchLabels"]["tier"] = "a"

    (replaced,) = changes_after(tmp_path / "b", prod_resources, selector)
    assert (replaced.action, replaced.why) == ("replace", "`spec.selector.matchLabels.tier`")
    assert not replaced.guarded  # a Deployment keeps no data


def test_a_config_maps_data_replaces_it_unless_the_provider_makes_it_mutable(
    tmp_path: Path, prod_resources: list[dict[str, Any]]
) -> None:
    def data(resources: list[dict]) -> None:
        one(resources, CONFIG_MAP)["inputs"]["data"]["x.json"] = "{}"

    (immutable,) = changes_after(tmp_path / "a", prod_resources, data)
    assert (immutable.action, immutable.why) == ("replace", "`data.x.json`")

    def mutable(resources: list[dict]) -> None:
        data(resources)
        one(resources, "pulumi:providers:kubernetes")["inputs"]["enableConfigMapMutable"] = True

    changed = changes_after(tmp_path / "b", prod_resources, mutable)
    assert {(c.action, c.type) for c in changed} == {
        ("update", CONFIG_MAP),
        ("update", "pulumi:providers:kubernetes"),
    }


def test_a_new_parent_is_a_replacement_and_a_removed_claim_a_guarded_delete(
    tmp_path: Path, prod_resources: list[dict[str, Any]]
) -> None:
    def reparent(resources: list[dict]) -> None:
        pool = one(resources, AGENT_POOL)
        pool["urn"] = pool["urn"].replace("slm:gpu_pool:GpuNodePool$", "slm:gpu_pool:Pool$")

    (moved,) = changes_after(tmp_path / "a", prod_resources, reparent)
    assert (moved.action, moved.guarded) == ("replace", True)
    assert moved.why.startswith("its URN changes (was `urn:pulumi:prod::slm-deploy::slm:gpu_pool")

    def remove(resources: list[dict]) -> None:
        resources.remove(one(resources, CLAIM, 1))

    (removed,) = changes_after(tmp_path / "b", prod_resources, remove)
    assert (removed.action, removed.name, removed.guarded) == (
        "delete",
        "slm-qwen3-8b-models",
        True,
    )


def test_the_replace_facts_hold_the_known_cases() -> None:
    """The vendored provider facts (tests/upstream/pulumi-*/) carry what the cases rest on."""
    assert {"vmSize", "gpuInstanceProfile"} <= azure_force_new(AGENT_POOL)
    assert "networkPlugin" in azure_force_new(CLUSTER)
    assert "vaultName" in azure_path_parameters(VAULT)
    assert azure_path_parameters(AGENT_POOL) == {
        "agentPoolName",
        "resourceGroupName",
        "resourceName",
    }
    assert ".spec.storageClassName" in kubernetes_fields(CLAIM, {}, {})
    assert ".spec.replicas" not in kubernetes_fields(DEPLOYMENT, {}, {})


def test_the_replace_facts_are_those_of_the_locked_provider_versions() -> None:
    """Bumping a provider in uv.lock fails here until its facts are refreshed at that tag."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {package["name"]: package["version"] for package in lock["package"]}
    for facts, package in (
        (KUBERNETES_FACTS, "pulumi-kubernetes"),
        (AZURE_FACTS, "pulumi-azure-native"),
    ):
        source = json.loads((facts.parent / "source.json").read_text())
        assert (facts.parent.name, source["ref"]) == (
            f"{package}-v{locked[package]}",
            f"v{locked[package]}",
        )
        assert source["files"] == {facts.name: source["files"][facts.name]}


# -- golden lists of stateful resources ------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_fixture_stacks_golden_lists_are_exact(plans: dict[str, Any], stack: str) -> None:
    pinned = json.loads(golden_path(stack, fixtures=True).read_text())
    assert golden_entries(plans[stack]["resources"]) == pinned


def test_the_fixture_prods_stateful_resources() -> None:
    pinned = json.loads(golden_path(PROD, fixtures=True).read_text())
    assert [(e["type"].rsplit(":", 1)[1], e["name"]) for e in pinned] == [
        ("Registry", "slm-cluster-acr"),
        ("AgentPool", "slm-pool-a100"),
        ("ManagedCluster", "slm-cluster-aks"),
        ("Vault", "slm-secrets-vault"),
        ("Workspace", "slm-cluster-logs-workspace"),
        ("Workspace", "slm-secrets-logs"),
        ("PersistentVolumeClaim", "slm-phi4-mini-models"),
        ("PersistentVolumeClaim", "slm-qwen3-8b-models"),
        ("RandomPassword", "slm-secrets-api-key"),
        ("RandomPassword", "slm-secrets-grafana-admin"),
        ("RandomString", "slm-secrets-vault-suffix"),
    ]


@pytest.fixture(scope="module")
def shipped_resources() -> dict[str, list[dict[str, Any]]]:
    return {stack: build_plan(stack)["resources"] for stack in available_stacks(ROOT)}


def test_every_shipped_stacks_stateful_resource_is_in_its_golden_list(
    shipped_resources: dict[str, list[dict[str, Any]]],
) -> None:
    """A property, not a pin: a fork's stacks differ; it regenerates with the command."""
    missing = [line for s, rs in shipped_resources.items() for line in missing_from_golden(s, rs)]
    assert missing == []


def test_a_stateful_resource_missing_from_the_golden_list_says_how_to_fix_it(
    prod_resources: list[dict[str, Any]],
) -> None:
    claim = copy.deepcopy(one(prod_resources, CLAIM)) | {"name": "slm-new-model-models"}
    assert missing_from_golden(PROD, [*prod_resources, claim]) == [
        f"prod: {CLAIM} slm-new-model-models is stateful (volume claim: its data (the model"
        " cache); protect) but not in tests/golden/stateful/prod.json: run `python -m"
        " tools.stateful_golden prod` and review the diff"
    ]
