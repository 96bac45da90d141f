"""The state-backend bootstrap: the exact az commands, their order and idempotence (a fake
`az` on PATH records every call), dry runs, argument errors and failing steps."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import bootstrap_state as bs
from tools.plan import ROOT

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
DEPLOYER = "11111111-1111-1111-1111-111111111111"
ADMIN = "22222222-2222-2222-2222-222222222222"
VERSION = "0123456789abcdef0123456789abcdef"
KID = f"https://kv-slm-state.vault.azure.net/keys/pulumi-state/{VERSION}"
RG_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-pulumi-state/providers"
CONTAINER_SCOPE = (
    f"{RG_ID}/Microsoft.Storage/storageAccounts/stslmstate/blobServices/default/containers/state"
)
VAULT_SCOPE = f"{RG_ID}/Microsoft.KeyVault/vaults/kv-slm-state"
ARGS = [
    "--subscription", SUBSCRIPTION, "--location", "swedencentral",
    "--resource-group", "rg-pulumi-state", "--storage-account", "stslmstate",
    "--container", "state", "--key-vault", "kv-slm-state", "--deployer-object-id", DEPLOYER,
]  # fmt: skip
SETTINGS = bs.Settings(
    subscription=SUBSCRIPTION,
    location="swedencentral",
    resource_group="rg-pulumi-state",
    storage_account="stslmstate",
    container="state",
    key_vault="kv-slm-state",
    deployers=(DEPLOYER,),
)
TAIL = ["--subscription", SUBSCRIPTION, "--output", "json"]

# A stand-in for the Azure CLI: records its arguments (one JSON list a line) and answers as
# Azure would with nothing created yet ("fresh") or with everything in place ("existing").
FAKE_AZ = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
words = []
for arg in args:
    if arg.startswith("-"):
        break
    words.append(arg)
command = " ".join(words)
if command == os.environ.get("FAKE_AZ_FAIL"):
    print("WARNING: this command is in preview", file=sys.stderr)
    print("ERROR: (StorageAccountAlreadyTaken) The storage account named stslmstate is already taken.", file=sys.stderr)
    print("Code: StorageAccountAlreadyTaken", file=sys.stderr)
    sys.exit(1)
there = os.environ.get("FAKE_AZ_WORLD") == "existing"
answers = {{
    "group exists": there,
    "storage account list": [{{"name": "stslmstate"}}] if there else [],
    "storage container-rm exists": {{"exists": there}},
    "keyvault list": [{{"name": "kv-slm-state"}}] if there else [],
    "keyvault list-deleted": [],
    "ad signed-in-user show": "{ADMIN}",
    "role assignment list": ["{RG_ID}/x/providers/Microsoft.Authorization/roleAssignments/y"] if there else [],
    "keyvault key list": ["https://kv-slm-state.vault.azure.net/keys/pulumi-state"] if there else [],
    "keyvault key show": "{KID}",
    "keyvault key create": "{KID}",
}}
print(json.dumps(answers.get(command, {{"id": "/some/resource"}})))
"""


@pytest.fixture
def fake_az(tmp_path: Path) -> Path:
    """A folder holding only the fake `az`, to put on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ)
    az.chmod(0o755)
    return bin_dir


def run_tool(
    *args: str, path: Path, log: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    result = subprocess.run(
        [sys.executable, "-m", "tools.bootstrap_state", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(path), "FAKE_AZ_LOG": str(log), **env},
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def words(call: list[str]) -> str:
    """The command part of an az call, without its options: "storage account create"."""
    head = []
    for arg in call:
        if arg.startswith("-"):
            break
        head.append(arg)
    return " ".join(head)


# --- the commands themselves ------------------------------------------------------------------


def test_storage_account_is_https_tls12_private_and_entra_only() -> None:
    assert bs.storage_account_create(SETTINGS) == [
        "az", "storage", "account", "create", "--name", "stslmstate",
        "--resource-group", "rg-pulumi-state", "--location", "swedencentral",
        "--kind", "StorageV2", "--sku", "Standard_GRS", "--access-tier", "Hot",
        "--https-only", "true", "--min-tls-version", "TLS1_2",
        "--allow-blob-public-access", "false", "--allow-shared-key-access", "false",
        "--allow-cross-tenant-replication", "false",
        "--tags", "purpose=pulumi-state", "created-by=tools.bootstrap_state", *TAIL,
    ]  # fmt: skip
    # Re-running enforces the same settings on an existing account, and nothing else.
    assert bs.storage_account_update(SETTINGS) == [
        "az", "storage", "account", "update", "--name", "stslmstate",
        "--resource-group", "rg-pulumi-state",
        "--https-only", "true", "--min-tls-version", "TLS1_2",
        "--allow-blob-public-access", "false", "--allow-shared-key-access", "false",
        "--allow-cross-tenant-replication", "false", *TAIL,
    ]  # fmt: skip


def test_versioning_soft_delete_and_change_feed() -> None:
    assert bs.blob_service_update(SETTINGS) == [
        "az", "storage", "account", "blob-service-properties", "update",
        "--account-name", "stslmstate", "--resource-group", "rg-pulumi-state",
        "--enable-versioning", "true",
        "--enable-delete-retention", "true", "--delete-retention-days", "30",
        "--enable-container-delete-retention", "true", "--container-delete-retention-days", "30",
        "--enable-change-feed", "true", "--change-feed-retention-days", "90", *TAIL,
    ]  # fmt: skip
    without = bs.blob_service_update(bs.Settings(**{**vars(SETTINGS), "change_feed": False}))
    assert without[-6:-4] == ["--enable-change-feed", "false"]
    assert "--change-feed-retention-days" not in without


def test_private_container_through_resource_manager() -> None:
    assert bs.container_create(SETTINGS) == [
        "az", "storage", "container-rm", "create", "--storage-account", "stslmstate",
        "--resource-group", "rg-pulumi-state", "--name", "state", "--public-access", "off", *TAIL,
    ]  # fmt: skip


def test_key_vault_uses_rbac_purge_protection_and_90_days_of_soft_delete() -> None:
    assert bs.vault_create(SETTINGS) == [
        "az", "keyvault", "create", "--name", "kv-slm-state",
        "--resource-group", "rg-pulumi-state", "--location", "swedencentral",
        "--sku", "standard", "--enable-rbac-authorization", "true",
        "--enable-purge-protection", "true", "--retention-days", "90",
        "--tags", "purpose=pulumi-state", "created-by=tools.bootstrap_state", *TAIL,
    ]  # fmt: skip
    assert bs.vault_update(SETTINGS) == [
        "az", "keyvault", "update", "--name", "kv-slm-state",
        "--resource-group", "rg-pulumi-state",
        "--enable-rbac-authorization", "true", "--enable-purge-protection", "true", *TAIL,
    ]  # fmt: skip


def test_the_storage_account_gets_a_delete_lock() -> None:
    assert bs.storage_account_lock(SETTINGS) == [
        "az", "lock", "create", "--name", "pulumi-state-cannot-delete",
        "--lock-type", "CanNotDelete", "--resource-group", "rg-pulumi-state",
        "--resource-name", "stslmstate", "--resource-type", "Microsoft.Storage/storageAccounts",
        "--notes", "Pulumi state of every stack: see docs/state-backend.md before removing.",
        *TAIL,
    ]  # fmt: skip
    az = scripted()
    lines: list[str] = []
    bs.bootstrap(bs.Settings(**{**vars(SETTINGS), "delete_lock": False}), az, lines.append)
    assert "az lock create" not in az.calls
    assert (
        lines[-1]
        == "[9/9] delete lock on storage account stslmstate ... skipped (--no-delete-lock)"
    )


def test_rsa_key_for_encryption_only() -> None:
    assert bs.key_create(SETTINGS) == [
        "az", "keyvault", "key", "create", "--vault-name", "kv-slm-state",
        "--name", "pulumi-state", "--kty", "RSA", "--size", "3072",
        "--ops", "encrypt", "decrypt", "wrapKey", "unwrapKey",
        "--query", "key.kid", "--output", "json",
    ]  # fmt: skip
    # Key Vault lists version-less ids; either form must find the key, never a namesake.
    query = bs.key_lookup(SETTINGS)[bs.key_lookup(SETTINGS).index("--query") + 1]
    assert (
        query
        == "[?ends_with(kid, '/keys/pulumi-state') || contains(kid, '/keys/pulumi-state/')].kid"
    )


def test_deployers_get_blob_data_on_the_container_and_crypto_user_on_the_vault() -> None:
    roles = bs.deployer_roles(SETTINGS)
    assert roles == [
        ("ba92f5b4-2d11-453d-a403-e96b0029c9fe", CONTAINER_SCOPE),  # Storage Blob Data Contributor
        ("12338af0-0e69-4776-bea7-57ae8d297424", VAULT_SCOPE),  # Key Vault Crypto User
    ]
    assert bs.role_assignment_create(SETTINGS, DEPLOYER, *roles[0]) == [
        "az", "role", "assignment", "create", "--assignee-object-id", DEPLOYER,
        "--role", "ba92f5b4-2d11-453d-a403-e96b0029c9fe", "--scope", CONTAINER_SCOPE, *TAIL,
    ]  # fmt: skip
    assert bs.role_assignment_create(SETTINGS, DEPLOYER, *roles[1], "ServicePrincipal") == [
        "az", "role", "assignment", "create", "--assignee-object-id", DEPLOYER,
        "--assignee-principal-type", "ServicePrincipal",
        "--role", "12338af0-0e69-4776-bea7-57ae8d297424", "--scope", VAULT_SCOPE, *TAIL,
    ]  # fmt: skip
    assert bs.role_assignment_lookup(SETTINGS, DEPLOYER, *roles[1]) == [
        "az", "role", "assignment", "list", "--scope", VAULT_SCOPE,
        "--role", "12338af0-0e69-4776-bea7-57ae8d297424",
        "--query", f"[?principalId=='{DEPLOYER}'].id", *TAIL,
    ]  # fmt: skip


def test_the_secrets_provider_url_is_pinned_to_the_key_version() -> None:
    assert bs.secrets_provider_url(KID) == (
        f"azurekeyvault://kv-slm-state.vault.azure.net/keys/pulumi-state/{VERSION}"
    )
    for bad in ["https://kv-slm-state.vault.azure.net/keys/pulumi-state", "", "http://x/keys/k/1"]:
        with pytest.raises(ValueError, match="unexpected Key Vault key id"):
            bs.secrets_provider_url(bad)
    assert bs.backend_url(SETTINGS) == "azblob://state?storage_account=stslmstate"


def test_dry_run_lines_are_shell_lines_that_mean_the_same_command() -> None:
    for command in [bs.key_lookup(SETTINGS), bs.vault_lookup(SETTINGS), bs.group_create(SETTINGS)]:
        assert shlex.split(bs.shell_line(command)) == command
    assert "--query \"[?name=='kv-slm-state']\"" in bs.shell_line(bs.vault_lookup(SETTINGS))


# --- a run against the fake az ----------------------------------------------------------------

FRESH_RUN = [
    "group exists", "group create",
    "storage account list", "storage account create",
    "storage account blob-service-properties update",
    "storage container-rm exists", "storage container-rm create",
    "keyvault list", "keyvault list-deleted", "keyvault create",
    "ad signed-in-user show", "role assignment list", "role assignment create",
    "keyvault key list", "keyvault key create",
    "role assignment list", "role assignment create", "role assignment list", "role assignment create",
    "lock create",
]  # fmt: skip


def test_a_first_run_creates_everything_in_order(fake_az: Path, tmp_path: Path) -> None:
    result, calls = run_tool(*ARGS, path=fake_az, log=tmp_path / "az.log")
    assert result.returncode == 0, result.stderr
    assert [words(call) for call in calls] == FRESH_RUN
    assert all(call[-2:] == ["--output", "json"] for call in calls)
    assert result.stderr.splitlines() == [
        "[1/9] resource group rg-pulumi-state ... created",
        "[2/9] storage account stslmstate ... created",
        "[3/9] blob versioning, soft delete (30 days), change feed (90 days) ... set",
        "[4/9] container state ... created (private)",
        "[5/9] key vault kv-slm-state ... created",
        f"[6/9] key administrator (Key Vault Crypto Officer) ... assigned to {ADMIN}",
        f"[7/9] key pulumi-state ... created (RSA 3072), version {VERSION}",
        "[8/9] deployer roles ... 2 assigned, 0 already there, for 1 deployer",
        "[9/9] delete lock on storage account stslmstate ... set (pulumi-state-cannot-delete, CanNotDelete)",
    ]
    # The key's creator gets Key Vault Crypto Officer on the vault before the key is made.
    officer = calls[FRESH_RUN.index("ad signed-in-user show") + 2]
    assert officer[officer.index("--assignee-object-id") + 1] == ADMIN
    assert officer[officer.index("--role") + 1] == "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
    assert officer[officer.index("--scope") + 1] == VAULT_SCOPE
    url = f"azurekeyvault://kv-slm-state.vault.azure.net/keys/pulumi-state/{VERSION}"
    assert "  pulumi login 'azblob://state?storage_account=stslmstate'\n" in result.stdout
    assert "export AZURE_STORAGE_ACCOUNT=stslmstate; pulumi login azblob://state\n" in result.stdout
    assert f"  pulumi stack init <stack> --secrets-provider {url}\n" in result.stdout
    assert f"  pulumi stack change-secrets-provider {url}\n" in result.stdout


def test_a_second_run_creates_nothing_and_re_asserts_the_settings(
    fake_az: Path, tmp_path: Path
) -> None:
    result, calls = run_tool(
        *ARGS, "--admin-object-id", ADMIN, path=fake_az, log=tmp_path / "az.log",
        FAKE_AZ_WORLD="existing",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [words(call) for call in calls] == [
        "group exists",
        "storage account list", "storage account update",
        "storage account blob-service-properties update",
        "storage container-rm exists",
        "keyvault list", "keyvault update",
        "role assignment list",
        "keyvault key list", "keyvault key show",
        "role assignment list", "role assignment list",
        "lock create",
    ]  # fmt: skip
    created = [words(call) for call in calls if "create" in call[:5]]
    assert created == ["lock create"]  # a lock is written by name; no new key version, above all
    assert "[7/9] key pulumi-state ... exists, version " + VERSION in result.stderr
    assert "[8/9] deployer roles ... 0 assigned, 2 already there, for 1 deployer" in result.stderr
    assert f"keys/pulumi-state/{VERSION}" in result.stdout


def test_dry_run_prints_the_first_run_and_runs_nothing(fake_az: Path, tmp_path: Path) -> None:
    log = tmp_path / "az.log"
    dry, calls = run_tool(*ARGS, "--dry-run", path=fake_az, log=log)
    assert dry.returncode == 0, dry.stderr
    assert calls == [] and not log.exists() and dry.stderr == ""
    printed = [shlex.split(line) for line in dry.stdout.splitlines() if line.startswith("az ")]
    lookups = [
        shlex.split(line.split("lookup: ", 1)[1])
        for line in dry.stdout.splitlines()
        if "lookup: " in line
    ]
    # The same commands, in the same order, as a real first run, but for the signed-in user's
    # id, which only Azure can tell.
    real, real_calls = run_tool(*ARGS, path=fake_az, log=tmp_path / "real.log")
    assert real.returncode == 0
    ran = [["az", *call] for call in real_calls]
    shown = [c for c in ran if c in printed or c in lookups]
    differ = [c for c in ran if c not in shown]
    assert all(ADMIN in " ".join(c) for c in differ) and len(differ) == 2
    assert len(printed) + len(lookups) == len(ran)
    assert "# [5/9] key vault kv-slm-state" in dry.stdout
    assert "keys/pulumi-state/<version>" in dry.stdout
    assert "After a real run" in dry.stdout


def test_dry_run_needs_no_az(tmp_path: Path) -> None:
    result, _ = run_tool(*ARGS, "--dry-run", path=tmp_path, log=tmp_path / "az.log")
    assert result.returncode == 0, result.stderr
    assert "az storage account create" in result.stdout


def test_no_az_on_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result, _ = run_tool(*ARGS, path=tmp_path, log=tmp_path / "az.log")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("bootstrap_state: the Azure CLI (az) is not on PATH; ")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        (
            "--storage-account",
            "St_Slm",
            'bootstrap_state: --storage-account: "St_Slm" is not allowed; expected 3-24 lowercase'
            " letters and digits (the name is global to Azure)",
        ),
        (
            "--storage-account",
            "stslmstatetoolongforazure1",
            'bootstrap_state: --storage-account: "stslmstatetoolongforazure1" is not allowed;'
            " expected 3-24 lowercase letters and digits (the name is global to Azure)",
        ),
        (
            "--key-vault",
            "kv--slm",
            'bootstrap_state: --key-vault: "kv--slm" is not allowed; expected 3-24 letters, digits'
            " and single hyphens, starting with a letter and ending with a letter or digit (the"
            " name is global to Azure)",
        ),
        (
            "--key-vault",
            "1kv",
            'bootstrap_state: --key-vault: "1kv" is not allowed; expected 3-24 letters, digits and'
            " single hyphens, starting with a letter and ending with a letter or digit (the name"
            " is global to Azure)",
        ),
        (
            "--container",
            "State",
            'bootstrap_state: --container: "State" is not allowed; expected 3-63 lowercase letters,'
            " digits and single hyphens, starting and ending with a letter or digit",
        ),
        (
            "--container",
            "state-",
            'bootstrap_state: --container: "state-" is not allowed; expected 3-63 lowercase letters,'
            " digits and single hyphens, starting and ending with a letter or digit",
        ),
        (
            "--resource-group",
            "rg.",
            'bootstrap_state: --resource-group: "rg." is not allowed; expected 1-90 letters,'
            " digits, underscores, hyphens, periods or parentheses, not ending in a period",
        ),
        (
            "--subscription",
            "my-subscription",
            'bootstrap_state: --subscription: "my-subscription" is not allowed; expected a'
            " subscription id (a GUID)",
        ),
        (
            "--location",
            "West Europe",
            'bootstrap_state: --location: "West Europe" is not allowed; expected an Azure region'
            " name such as eastus or swedencentral",
        ),
        (
            "--deployer-object-id",
            "pulumi-ci",
            'bootstrap_state: --deployer-object-id: "pulumi-ci" is not allowed; expected an Entra'
            " ID object id (a GUID; for a service principal its object id, not its application"
            " id)",
        ),
        (
            "--key-name",
            "pulumi_state",
            'bootstrap_state: --key-name: "pulumi_state" is not allowed; expected 1-127 letters,'
            " digits and hyphens",
        ),
    ],
)
def test_a_bad_name_is_one_line_exit_2_and_runs_nothing(
    fake_az: Path, tmp_path: Path, option: str, value: str, expected: str
) -> None:
    args = list(ARGS)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    result, calls = run_tool(*args, path=fake_az, log=tmp_path / "az.log")
    assert result.returncode == 2
    assert result.stderr == expected + "\n"
    assert calls == [] and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (ARGS[2:], "bootstrap_state: the following arguments are required: --subscription\n"),
        ([*ARGS, "--sku", "Premium_LRS"], "bootstrap_state: argument --sku: invalid choice:"),
        ([*ARGS, "--no-such-flag"], "bootstrap_state: unrecognized arguments: --no-such-flag\n"),
    ],
)
def test_argument_errors_are_one_line(
    fake_az: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    result, calls = run_tool(*args, path=fake_az, log=tmp_path / "az.log")
    assert result.returncode == 2
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1
    assert calls == []


def test_a_failing_step_stops_the_run_with_one_line_naming_it(
    fake_az: Path, tmp_path: Path
) -> None:
    result, calls = run_tool(
        *ARGS, path=fake_az, log=tmp_path / "az.log", FAKE_AZ_FAIL="storage account create"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "[1/9] resource group rg-pulumi-state ... created",
        "[2/9] storage account stslmstate ... failed",
        "bootstrap_state: [2/9] storage account stslmstate failed: `az storage account create`"
        " exited with status 1: ERROR: (StorageAccountAlreadyTaken) The storage account named"
        " stslmstate is already taken.",
    ]
    assert "Traceback" not in result.stdout + result.stderr and result.stdout == ""
    assert words(calls[-1]) == "storage account create"  # nothing after the failure


# --- the steps' decisions, in process ---------------------------------------------------------


class Scripted:
    """A runner answering from a table keyed by the command's words; an answer that is an
    exception is raised (once per listed item when a list of them is given)."""

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers
        self.calls: list[str] = []

    def section(self, label: str) -> None:
        pass

    def query(self, command: list[str], assume: Any = None) -> Any:
        return self._answer(command)

    def change(self, command: list[str], assume: Any = None) -> Any:
        return self._answer(command)

    def _answer(self, command: list[str]) -> Any:
        key = words(command)
        self.calls.append(key)
        answer = self.answers.get(key, [])
        if isinstance(answer, list) and answer and isinstance(answer[0], Exception):
            raise answer.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


FORBIDDEN = bs.AzFailed(
    ["az", "keyvault", "key", "list"], 1, "ERROR: (Forbidden) Caller is not authorized"
)


def scripted(overrides: dict[str, Any] | None = None) -> Scripted:
    """Azure with the resource group and container there, nothing else, unless overridden."""
    answers = {
        "az group exists": True,
        "az storage container-rm exists": {"exists": True},
        "az ad signed-in-user show": ADMIN,
        "az keyvault key create": KID,
    }
    return Scripted({**answers, **(overrides or {})})


def test_the_key_step_waits_for_the_new_role_to_reach_the_vault() -> None:
    az = scripted({"az keyvault key list": [FORBIDDEN, FORBIDDEN]})
    lines: list[str] = []
    waits: list[float] = []
    kid = bs.bootstrap(SETTINGS, az, lines.append, sleep=waits.append)
    assert kid == KID
    assert waits == [10.0, 10.0]
    assert az.calls.count("az keyvault key list") == 3
    assert lines[6] == (
        "[7/9] key pulumi-state ... refused; waiting 10 s for the Crypto Officer role to reach"
        " the vault (attempt 2 of 12)"
    )


def test_the_key_step_gives_up_after_its_attempts(monkeypatch) -> None:
    monkeypatch.setattr(bs, "KEY_ATTEMPTS", 3)
    az = scripted({"az keyvault key list": [FORBIDDEN] * 3})
    with pytest.raises(bs.StepFailed, match=r"^\[7/9\] key pulumi-state failed: `az keyvault key"):
        bs.bootstrap(SETTINGS, az, lambda line: None, sleep=lambda seconds: None)


def test_other_key_errors_are_not_retried() -> None:
    boom = bs.AzFailed(["az", "keyvault", "key", "list"], 1, "ERROR: (VaultNotFound) gone")
    az = scripted({"az keyvault key list": [boom]})
    with pytest.raises(bs.StepFailed, match="VaultNotFound"):
        bs.bootstrap(SETTINGS, az, lambda line: None, sleep=lambda seconds: pytest.fail("slept"))


def test_a_soft_deleted_vault_is_recovered_not_recreated() -> None:
    deleted = [{"name": "kv-slm-state", "properties": {"vaultId": f"{VAULT_SCOPE}"}}]
    az = scripted({"az keyvault list-deleted": deleted})
    lines: list[str] = []
    bs.bootstrap(SETTINGS, az, lines.append, sleep=lambda seconds: None)
    assert [
        c
        for c in az.calls
        if c.startswith("az keyvault") and c.split()[2] in {"recover", "update", "create"}
    ] == ["az keyvault recover", "az keyvault update"]
    assert lines[4].endswith("recovered from soft delete, RBAC and purge protection enforced")


def test_a_soft_deleted_vault_of_another_group_stops_the_run() -> None:
    other = VAULT_SCOPE.replace("rg-pulumi-state", "rg-elsewhere")
    az = scripted({"az keyvault list-deleted": [{"properties": {"vaultId": other}}]})
    with pytest.raises(bs.StepFailed) as failure:
        bs.bootstrap(SETTINGS, az, lambda line: None)
    assert str(failure.value).startswith(
        "[5/9] key vault kv-slm-state failed: a soft-deleted vault kv-slm-state of resource"
        " group rg-elsewhere holds the name"
    )
    assert "az keyvault recover" not in az.calls and "az keyvault create" not in az.calls


def test_a_service_principal_login_is_told_to_name_the_admin() -> None:
    me = bs.AzFailed(
        ["az", "ad", "signed-in-user", "show"],
        1,
        "ERROR: /me request is only valid with delegated authentication flow.",
    )
    with pytest.raises(
        bs.StepFailed, match=r"\(signed in as a service principal\? pass --admin-object-id\)$"
    ):
        bs.bootstrap(SETTINGS, scripted({"az ad signed-in-user show": me}), lambda line: None)


def test_an_unexpected_key_id_stops_the_key_step() -> None:
    az = scripted(
        {"az keyvault key create": "https://kv-slm-state.vault.azure.net/keys/pulumi-state"}
    )
    with pytest.raises(
        bs.StepFailed, match=r"^\[7/9\] key pulumi-state failed: Key Vault answered"
    ):
        bs.bootstrap(SETTINGS, az, lambda line: None)


def test_deployers_are_deduplicated_and_lowercased() -> None:
    values = {
        "subscription": SUBSCRIPTION.upper(),
        "location": "eastus",
        "resource_group": "rg",
        "storage_account": "stslm",
        "container": "state",
        "key_vault": "kv-slm",
        "deployers": [DEPLOYER.upper(), DEPLOYER, ADMIN],
    }
    settings = bs.validate(values)
    assert settings.deployers == (DEPLOYER, ADMIN)
    assert settings.subscription == SUBSCRIPTION
    assert settings.key_name == "pulumi-state" and settings.sku == "Standard_GRS"
