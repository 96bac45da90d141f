"""Create, once per organisation, a self-managed Pulumi backend on Azure: state in a Blob container,
stack secrets encrypted with a Key Vault key.

    python -m tools.bootstrap_state --subscription <id> --location <region> \\
        --resource-group <name> --storage-account <name> --container <name> \\
        --key-vault <name> [--key-name pulumi-state] [--deployer-object-id <guid> ...] \\
        [--admin-object-id <guid>] [--sku Standard_GRS] [--no-change-feed] \\
        [--no-delete-lock] [--dry-run]

It drives the Azure CLI (`az`, signed in with `az login`) through nine steps, each safe to
run again: what exists is kept (and its security settings enforced), what is missing is
created. One line per step goes to stderr (`[2/9] storage account stslmstate ... created`);
what to run next (`pulumi login`, `pulumi stack init --secrets-provider`) goes to stdout.
`--dry-run` prints the `az` commands a first run would execute and runs nothing.

Why each setting is what it is, who needs which role, how CI signs in, locking and recovery:
docs/state-backend.md.

Exit status: 0 done (or printed, with --dry-run); 2 a bad argument or no `az` on PATH (one
line on stderr, nothing run); 1 an `az` step failed (one line on stderr naming the step).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

PROG = "bootstrap_state"
EXIT_USAGE = 2
EXIT_FAILED = 1

# Blob soft delete and container soft delete, in days. Long enough to notice a bad or
# deleted checkpoint after a holiday or a quiet month; the state blobs are kilobytes, so
# keeping them longer costs nothing worth counting. (Azure allows 1-365.)
SOFT_DELETE_DAYS = 30
# Change feed retention: an ordered log of every change to the state blobs (which blob,
# when), kept a quarter for audits and incident timelines. (Azure allows 1-146000.)
CHANGE_FEED_DAYS = 90
# Key Vault soft-delete retention, the maximum Azure allows: with purge protection on, a
# deleted vault and its key can be recovered for this long and cannot be purged sooner.
VAULT_RETENTION_DAYS = 90
# RSA key for Pulumi's azurekeyvault secrets provider (gocloud.dev: RSA-OAEP-256 encrypt
# and decrypt of each stack's data key). 3072 bits: NIST SP 800-57's size for use past
# 2030. wrapKey/unwrapKey are the same RSA-OAEP operation on key material, allowed so that
# a library switching to them cannot lock stacks out; nothing else (no sign, no verify).
KEY_SIZE = 3072
KEY_OPERATIONS = ("encrypt", "decrypt", "wrapKey", "unwrapKey")
# Geo-redundant by default: the state survives the loss of the region the clusters run in.
# Regions without a paired region cannot hold GRS; choose Standard_ZRS or Standard_LRS.
STORAGE_SKUS = ("Standard_GRS", "Standard_GZRS", "Standard_ZRS", "Standard_LRS")
DEFAULT_SKU = "Standard_GRS"
# A new Key Vault role assignment can take minutes to reach the vault's data plane; the key
# step retries a refused (403 Forbidden) call this many times, this far apart.
KEY_ATTEMPTS = 12
KEY_RETRY_SECONDS = 10.0
TAGS = ("purpose=pulumi-state", "created-by=tools.bootstrap_state")

# Built-in role definition ids (the same in every tenant), from Azure's built-in roles list.
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
KEY_VAULT_CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"

STEPS = 9
Command = list[str]


# --- settings and their validation ------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    subscription: str
    location: str
    resource_group: str
    storage_account: str
    container: str
    key_vault: str
    key_name: str = "pulumi-state"
    deployers: tuple[str, ...] = ()
    # What the deployers are (User, Group, ServicePrincipal): stated, Azure assigns a role
    # to a principal created moments before without waiting for Entra ID to replicate it.
    deployer_type: str | None = None
    admin: str | None = None
    sku: str = DEFAULT_SKU
    change_feed: bool = True
    delete_lock: bool = True


class UsageError(Exception):
    """A bad argument: one line on stderr, exit status 2, nothing run."""


GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
OBJECT_ID_RULE = (
    GUID,
    "an Entra ID object id (a GUID; for a service principal its object id, not its application id)",
)
# Azure's naming rules for each resource, as (pattern the whole value must match, what the
# error says is allowed).
NAME_RULES: dict[str, tuple[str, str]] = {
    "subscription": (GUID, "a subscription id (a GUID)"),
    "location": (r"[a-z][a-z0-9]{1,39}", "an Azure region name such as eastus or swedencentral"),
    "resource_group": (
        r"[-\w.()]{0,89}[-\w()]",
        "1-90 letters, digits, underscores, hyphens, periods or parentheses, not ending in"
        " a period",
    ),
    "storage_account": (
        r"[a-z0-9]{3,24}",
        "3-24 lowercase letters and digits (the name is global to Azure)",
    ),
    "container": (
        r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]",
        "3-63 lowercase letters, digits and single hyphens, starting and ending with a"
        " letter or digit",
    ),
    "key_vault": (
        r"[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]",
        "3-24 letters, digits and single hyphens, starting with a letter and ending with a"
        " letter or digit (the name is global to Azure)",
    ),
    "key_name": (r"[a-zA-Z0-9-]{1,127}", "1-127 letters, digits and hyphens"),
    "deployers": OBJECT_ID_RULE,
    "admin": OBJECT_ID_RULE,
}


def check_name(option: str, value: str, rule: tuple[str, str]) -> None:
    pattern, allowed = rule
    if not re.fullmatch(pattern, value):
        raise UsageError(f"{option}: {json.dumps(value)} is not allowed; expected {allowed}")


def validate(values: dict[str, Any]) -> Settings:
    """Settings from parsed arguments, every name checked against Azure's rules first."""
    for field, rule in NAME_RULES.items():
        option = "--" + {"deployers": "deployer-object-id", "admin": "admin-object-id"}.get(
            field, field.replace("_", "-")
        )
        value = values.get(field)
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is not None:
                check_name(option, item, rule)
    deployers = tuple(dict.fromkeys(d.lower() for d in values.get("deployers") or ()))
    admin = values.get("admin")
    return Settings(
        subscription=values["subscription"].lower(),
        location=values["location"],
        resource_group=values["resource_group"],
        storage_account=values["storage_account"],
        container=values["container"],
        key_vault=values["key_vault"],
        key_name=values.get("key_name") or "pulumi-state",
        deployers=deployers,
        deployer_type=values.get("deployer_type"),
        admin=admin.lower() if admin else None,
        sku=values.get("sku") or DEFAULT_SKU,
        change_feed=values.get("change_feed", True),
        delete_lock=values.get("delete_lock", True),
    )


# --- the az commands (pure) --------------------------------------------------------------------


def _arm(s: Settings, *words: str) -> Command:
    """An Azure Resource Manager command in the chosen subscription, answering JSON."""
    return ["az", *words, "--subscription", s.subscription, "--output", "json"]


def _data(*words: str) -> Command:
    """A Key Vault data-plane or Microsoft Graph command (no subscription), answering JSON."""
    return ["az", *words, "--output", "json"]


def _only(name: str) -> str:
    return f"[?name=='{name}']"


def group_exists(s: Settings) -> Command:
    return _arm(s, "group", "exists", "--name", s.resource_group)


def group_create(s: Settings) -> Command:
    return _arm(
        s, "group", "create", "--name", s.resource_group, "--location", s.location,
        "--tags", *TAGS,
    )  # fmt: skip


def storage_account_lookup(s: Settings) -> Command:
    return _arm(
        s, "storage", "account", "list", "--resource-group", s.resource_group,
        "--query", _only(s.storage_account),
    )  # fmt: skip


# Every storage account setting that protects the state, for create and update alike:
# HTTPS and TLS 1.2 only; no anonymous blob access; Entra ID only (no account keys or SAS:
# Pulumi's azblob backend signs in with DefaultAzureCredential when no key is set); no
# copying the state to other tenants.
STORAGE_SECURITY = (
    "--https-only", "true",
    "--min-tls-version", "TLS1_2",
    "--allow-blob-public-access", "false",
    "--allow-shared-key-access", "false",
    "--allow-cross-tenant-replication", "false",
)  # fmt: skip


def storage_account_create(s: Settings) -> Command:
    return _arm(
        s, "storage", "account", "create", "--name", s.storage_account,
        "--resource-group", s.resource_group, "--location", s.location,
        "--kind", "StorageV2", "--sku", s.sku, "--access-tier", "Hot",
        *STORAGE_SECURITY, "--tags", *TAGS,
    )  # fmt: skip


def storage_account_update(s: Settings) -> Command:
    """Re-assert the security settings on an existing account (never its SKU or tags)."""
    return _arm(
        s, "storage", "account", "update", "--name", s.storage_account,
        "--resource-group", s.resource_group, *STORAGE_SECURITY,
    )  # fmt: skip


LOCK_NAME = "pulumi-state-cannot-delete"


def storage_account_lock(s: Settings) -> Command:
    """A CanNotDelete management lock on the account: deleting the account, or its container
    through Resource Manager, fails until someone with Owner rights removes the lock. (Blob
    deletes through the data plane are not affected; versioning and soft delete cover those.)
    A lock is written by name, so re-running it changes nothing."""
    return _arm(
        s, "lock", "create", "--name", LOCK_NAME, "--lock-type", "CanNotDelete",
        "--resource-group", s.resource_group, "--resource-name", s.storage_account,
        "--resource-type", "Microsoft.Storage/storageAccounts",
        "--notes", "Pulumi state of every stack: see docs/state-backend.md before removing.",
    )  # fmt: skip


def blob_service_update(s: Settings) -> Command:
    """Versioning (every checkpoint write keeps the previous one), blob and container soft
    delete, and the change feed: the same command whether new or re-run."""
    feed = (
        ["--enable-change-feed", "true", "--change-feed-retention-days", str(CHANGE_FEED_DAYS)]
        if s.change_feed
        else ["--enable-change-feed", "false"]
    )
    return _arm(
        s, "storage", "account", "blob-service-properties", "update",
        "--account-name", s.storage_account, "--resource-group", s.resource_group,
        "--enable-versioning", "true",
        "--enable-delete-retention", "true", "--delete-retention-days", str(SOFT_DELETE_DAYS),
        "--enable-container-delete-retention", "true",
        "--container-delete-retention-days", str(SOFT_DELETE_DAYS),
        *feed,
    )  # fmt: skip


def container_exists(s: Settings) -> Command:
    # container-rm goes through Azure Resource Manager: it needs no data-plane role and
    # works with account keys disabled.
    return _arm(
        s, "storage", "container-rm", "exists", "--storage-account", s.storage_account,
        "--resource-group", s.resource_group, "--name", s.container,
    )  # fmt: skip


def container_create(s: Settings) -> Command:
    return _arm(
        s, "storage", "container-rm", "create", "--storage-account", s.storage_account,
        "--resource-group", s.resource_group, "--name", s.container, "--public-access", "off",
    )  # fmt: skip


def vault_lookup(s: Settings) -> Command:
    return _arm(
        s, "keyvault", "list", "--resource-group", s.resource_group,
        "--resource-type", "vault", "--query", _only(s.key_vault),
    )  # fmt: skip


def deleted_vault_lookup(s: Settings) -> Command:
    return _arm(
        s, "keyvault", "list-deleted", "--resource-type", "vault", "--query", _only(s.key_vault)
    )


# Access by Azure RBAC only (no access policies) and purge protection: a deleted vault or
# key stays recoverable for VAULT_RETENTION_DAYS and nobody can purge it sooner.
VAULT_SECURITY = ("--enable-rbac-authorization", "true", "--enable-purge-protection", "true")


def vault_create(s: Settings) -> Command:
    return _arm(
        s, "keyvault", "create", "--name", s.key_vault, "--resource-group", s.resource_group,
        "--location", s.location, "--sku", "standard", *VAULT_SECURITY,
        "--retention-days", str(VAULT_RETENTION_DAYS), "--tags", *TAGS,
    )  # fmt: skip


def vault_recover(s: Settings) -> Command:
    """A soft-deleted vault of that name holds it for VAULT_RETENTION_DAYS: recover it."""
    return _arm(s, "keyvault", "recover", "--name", s.key_vault, "--location", s.location)


def vault_update(s: Settings) -> Command:
    """An existing vault is never created again: its settings are re-asserted. The vault is
    meant for Pulumi's key only: RBAC replaces any access policies it had."""
    return _arm(
        s, "keyvault", "update", "--name", s.key_vault, "--resource-group", s.resource_group,
        *VAULT_SECURITY,
    )  # fmt: skip


def signed_in_user() -> Command:
    return _data("ad", "signed-in-user", "show", "--query", "id")


def container_scope(s: Settings) -> str:
    return (
        f"/subscriptions/{s.subscription}/resourceGroups/{s.resource_group}/providers/"
        f"Microsoft.Storage/storageAccounts/{s.storage_account}/blobServices/default/"
        f"containers/{s.container}"
    )


def vault_scope(s: Settings) -> str:
    return (
        f"/subscriptions/{s.subscription}/resourceGroups/{s.resource_group}/providers/"
        f"Microsoft.KeyVault/vaults/{s.key_vault}"
    )


def role_assignment_lookup(s: Settings, principal: str, role: str, scope: str) -> Command:
    return _arm(
        s, "role", "assignment", "list", "--scope", scope, "--role", role,
        "--query", f"[?principalId=='{principal}'].id",
    )  # fmt: skip


def role_assignment_create(
    s: Settings, principal: str, role: str, scope: str, principal_type: str | None = None
) -> Command:
    # --assignee-object-id: no Microsoft Graph lookup, so it works for a caller without
    # directory read permissions; with the principal's type, also for one created moments
    # ago (az documents the pair against Graph replication latency).
    typed = ["--assignee-principal-type", principal_type] if principal_type else []
    return _arm(
        s, "role", "assignment", "create", "--assignee-object-id", principal, *typed,
        "--role", role, "--scope", scope,
    )  # fmt: skip


def deployer_roles(s: Settings) -> list[tuple[str, str]]:
    """(role, scope) each deployer gets: read and write the state blobs of this container
    only, and encrypt and decrypt with this vault's keys (no key management)."""
    return [
        (STORAGE_BLOB_DATA_CONTRIBUTOR, container_scope(s)),
        (KEY_VAULT_CRYPTO_USER, vault_scope(s)),
    ]


def key_lookup(s: Settings) -> Command:
    # `az keyvault key create` adds a new version to an existing key: look first. The list
    # gives version-less ids; match either form so an existing key is never missed.
    key = f"/keys/{s.key_name}"
    return _data(
        "keyvault", "key", "list", "--vault-name", s.key_vault,
        "--query", f"[?ends_with(kid, '{key}') || contains(kid, '{key}/')].kid",
    )  # fmt: skip


def key_show(s: Settings) -> Command:
    return _data(
        "keyvault", "key", "show", "--vault-name", s.key_vault, "--name", s.key_name,
        "--query", "key.kid",
    )  # fmt: skip


def key_create(s: Settings) -> Command:
    return _data(
        "keyvault", "key", "create", "--vault-name", s.key_vault, "--name", s.key_name,
        "--kty", "RSA", "--size", str(KEY_SIZE), "--ops", *KEY_OPERATIONS, "--query", "key.kid",
    )  # fmt: skip


KEY_ID = re.compile(r"https://[a-zA-Z0-9-]+\.vault\.azure\.net/keys/[a-zA-Z0-9-]+/[0-9a-fA-F]{32}")


def secrets_provider_url(kid: str) -> str:
    """The azurekeyvault:// URL of a key version. Pinned to the version on purpose: without
    one the provider decrypts with the latest version, and the first rotation would leave
    every stack's data key undecryptable (pulumi/pulumi#22338)."""
    if not KEY_ID.fullmatch(kid):
        raise ValueError(f"unexpected Key Vault key id {kid!r}")
    return "azurekeyvault://" + kid.removeprefix("https://")


def backend_url(s: Settings) -> str:
    return f"azblob://{s.container}?storage_account={s.storage_account}"


def next_steps(s: Settings, provider_url: str, dry_run: bool = False) -> str:
    q = shlex.quote
    ready = (
        "After a real run (the key's version is known then):"
        if dry_run
        else f"Pulumi backend ready: container {s.container} in storage account"
        f" {s.storage_account}, secrets key {s.key_name} in Key Vault {s.key_vault}."
    )
    return "\n".join(
        [
            ready,
            "",
            "Every engineer and CI job, once signed in to Azure (az login, or azure/login):",
            f"  pulumi login {q(backend_url(s))}",
            f"  # or: export AZURE_STORAGE_ACCOUNT={s.storage_account};"
            f" pulumi login azblob://{s.container}",
            "A new stack:",
            f"  pulumi stack init <stack> --secrets-provider {q(provider_url)}",
            "An existing stack, once it lives in this backend (docs/state-backend.md):",
            f"  pulumi stack change-secrets-provider {q(provider_url)}",
            "",
            "Role assignments take a few minutes to apply: a 403 (AuthorizationPermissionMismatch)"
            " right after this run usually means wait and retry.",
        ]
    )


# --- running them ------------------------------------------------------------------------------


class AzFailed(Exception):
    """An az command failed; `message` is az's first ERROR line (else its last line)."""

    def __init__(self, command: Command, status: int, message: str):
        super().__init__(message)
        self.command, self.status, self.message = command, status, message

    def describe(self) -> str:
        words = []
        for word in self.command:
            if word.startswith("-"):
                break
            words.append(word)
        return f"`{' '.join(words)}` exited with status {self.status}: {self.message}"


class Runner(Protocol):
    def section(self, label: str) -> None: ...
    def query(self, command: Command, assume: Any = None) -> Any: ...
    def change(self, command: Command, assume: Any = None) -> Any: ...


class Az:
    """The one place commands run: `az` as a subprocess, its JSON answer parsed. `assume`
    is what DryRun answers instead; a real run ignores it."""

    def __init__(self, executable: str):
        self.executable = executable

    def section(self, label: str) -> None:
        pass

    def query(self, command: Command, assume: Any = None) -> Any:
        return self._run(command)

    def change(self, command: Command, assume: Any = None) -> Any:
        return self._run(command)

    def _run(self, command: Command) -> Any:
        try:
            done = subprocess.run(
                [self.executable, *command[1:]], capture_output=True, text=True, check=False
            )
        except OSError as err:
            raise AzFailed(command, 127, str(err)) from None
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR")]
            message = errors[0] if errors else (lines[-1] if lines else "no message")
            raise AzFailed(command, done.returncode, message)
        try:
            return json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            raise AzFailed(command, 0, "answered with something other than JSON") from None


class DryRun:
    """Prints each command instead of running it, and answers as a first run would find
    Azure: nothing there yet. Lookups are printed as comments."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write

    def section(self, label: str) -> None:
        self.write(f"# {label}")

    def query(self, command: Command, assume: Any = None) -> Any:
        self.write(f"#   lookup: {shell_line(command)}")
        return assume

    def change(self, command: Command, assume: Any = None) -> Any:
        self.write(shell_line(command))
        return assume


def shell_line(command: Command) -> str:
    """The command as one shell line; JMESPath queries (single quotes inside) in double
    quotes, which read better than shlex's '"'"' and mean the same to a POSIX shell."""
    return " ".join(
        f'"{word}"' if "'" in word and not set(word) & set('"$`\\!') else shlex.quote(word)
        for word in command
    )


class Refused(Exception):
    """A step found Azure in a state it must not change on its own; the message says why."""

    def describe(self) -> str:
        return str(self)


class StepFailed(Exception):
    def __init__(self, label: str, cause: AzFailed | Refused):
        super().__init__(f"{label} failed: {cause.describe()}")


# --- the steps ---------------------------------------------------------------------------------

KEY_STEP = 7
PLACEHOLDER_ADMIN = "<signed-in-user-object-id>"


def bootstrap(
    s: Settings,
    az: Runner,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Run the nine steps in order; return the versioned key id (`kid`) of the secrets key.
    The first failing step stops the run: StepFailed names it."""
    key: dict[str, str] = {}
    steps: list[tuple[str, Callable[[], str]]] = [
        (f"resource group {s.resource_group}", lambda: _resource_group(s, az)),
        (f"storage account {s.storage_account}", lambda: _storage_account(s, az)),
        (_blob_service_title(s), lambda: _blob_service(s, az)),
        (f"container {s.container}", lambda: _container(s, az)),
        (f"key vault {s.key_vault}", lambda: _vault(s, az)),
        ("key administrator (Key Vault Crypto Officer)", lambda: _key_admin(s, az)),
        (f"key {s.key_name}", lambda: _key(s, az, key, progress, sleep)),
        ("deployer roles", lambda: _deployers(s, az)),
        (f"delete lock on storage account {s.storage_account}", lambda: _lock(s, az)),
    ]
    assert len(steps) == STEPS and steps[KEY_STEP - 1][0] == f"key {s.key_name}"
    for number, (title, run) in enumerate(steps, start=1):
        label = f"[{number}/{STEPS}] {title}"
        az.section(label)
        try:
            outcome = run()
        except (AzFailed, Refused) as failure:
            progress(f"{label} ... failed")
            raise StepFailed(label, failure) from None
        progress(f"{label} ... {outcome}")
    return key["kid"]


def _resource_group(s: Settings, az: Runner) -> str:
    if az.query(group_exists(s), assume=False):
        return "exists"
    az.change(group_create(s))
    return "created"


def _storage_account(s: Settings, az: Runner) -> str:
    if az.query(storage_account_lookup(s), assume=[]):
        az.change(storage_account_update(s))
        return "exists, security settings enforced"
    az.change(storage_account_create(s))
    return "created"


def _blob_service_title(s: Settings) -> str:
    feed = f", change feed ({CHANGE_FEED_DAYS} days)" if s.change_feed else ", no change feed"
    return f"blob versioning, soft delete ({SOFT_DELETE_DAYS} days){feed}"


def _blob_service(s: Settings, az: Runner) -> str:
    az.change(blob_service_update(s))
    return "set"


def _container(s: Settings, az: Runner) -> str:
    answer = az.query(container_exists(s), assume={"exists": False}) or {}
    if answer.get("exists"):
        return "exists"
    az.change(container_create(s))
    return "created (private)"


def _vault(s: Settings, az: Runner) -> str:
    if az.query(vault_lookup(s), assume=[]):
        az.change(vault_update(s))
        return "exists, RBAC and purge protection enforced"
    deleted = az.query(deleted_vault_lookup(s), assume=[])
    if deleted:
        where = _resource_group_of((deleted[0].get("properties") or {}).get("vaultId", ""))
        if where and where.lower() != s.resource_group.lower():
            raise Refused(
                f"a soft-deleted vault {s.key_vault} of resource group {where} holds the name"
                f" (purge protection keeps it up to {VAULT_RETENTION_DAYS} days); recover it"
                " there with az keyvault recover, or choose another --key-vault"
            )
        az.change(vault_recover(s))
        az.change(vault_update(s))
        return "recovered from soft delete, RBAC and purge protection enforced"
    az.change(vault_create(s))
    return "created"


def _resource_group_of(resource_id: str) -> str | None:
    match = re.search(r"/resourceGroups/([^/]+)/", resource_id, flags=re.IGNORECASE)
    return match.group(1) if match else None


def _assign(
    s: Settings, az: Runner, principal: str, role: str, scope: str, kind: str | None = None
) -> bool:
    """Assign `role` at `scope` unless it is there already; True when it was created."""
    if az.query(role_assignment_lookup(s, principal, role, scope), assume=[]):
        return False
    az.change(role_assignment_create(s, principal, role, scope, kind))
    return True


def _key_admin(s: Settings, az: Runner) -> str:
    # With RBAC authorization nobody, not even the vault's creator, may create a key until a
    # data-plane role allows it.
    admin = s.admin
    if admin is None:
        try:
            admin = az.query(signed_in_user(), assume=PLACEHOLDER_ADMIN)
        except AzFailed as failure:  # signed in as a service principal: no "me"
            failure.message += " (signed in as a service principal? pass --admin-object-id)"
            raise
    if not isinstance(admin, str) or not (re.fullmatch(GUID, admin) or admin == PLACEHOLDER_ADMIN):
        raise Refused(f"no object id for the signed-in user ({admin!r}); pass --admin-object-id")
    admin = admin.lower()
    created = _assign(s, az, admin, KEY_VAULT_CRYPTO_OFFICER, vault_scope(s))
    return f"{'assigned to' if created else 'already held by'} {admin}"


def _key(
    s: Settings,
    az: Runner,
    found: dict[str, str],
    progress: Callable[[str], None],
    sleep: Callable[[float], None],
) -> str:
    for attempt in range(1, KEY_ATTEMPTS + 1):
        try:
            if az.query(key_lookup(s), assume=[]):
                kid, outcome = az.query(key_show(s)), "exists"
            else:
                kid = az.change(key_create(s), assume=placeholder_kid(s))
                outcome = f"created (RSA {KEY_SIZE})"
            if not isinstance(kid, str) or not (KEY_ID.fullmatch(kid) or kid == placeholder_kid(s)):
                raise Refused(f"Key Vault answered with an unexpected key id: {kid!r}")
            found["kid"] = kid
            return f"{outcome}, version {kid.rsplit('/', 1)[-1]}"
        except AzFailed as failure:
            if "forbidden" not in failure.message.lower() or attempt == KEY_ATTEMPTS:
                raise
            progress(
                f"[{KEY_STEP}/{STEPS}] key {s.key_name} ... refused; waiting"
                f" {KEY_RETRY_SECONDS:.0f} s for the Crypto Officer role to reach the vault"
                f" (attempt {attempt + 1} of {KEY_ATTEMPTS})"
            )
            sleep(KEY_RETRY_SECONDS)
    raise AssertionError("unreachable")


def placeholder_kid(s: Settings) -> str:
    """What --dry-run shows in place of the key id that Key Vault will assign."""
    return f"https://{s.key_vault}.vault.azure.net/keys/{s.key_name}/<version>"


def _deployers(s: Settings, az: Runner) -> str:
    if not s.deployers:
        return "none requested (--deployer-object-id)"
    created = existed = 0
    for principal in s.deployers:
        for role, scope in deployer_roles(s):
            if _assign(s, az, principal, role, scope, s.deployer_type):
                created += 1
            else:
                existed += 1
    who = f"{len(s.deployers)} deployer{'s' if len(s.deployers) != 1 else ''}"
    return f"{created} assigned, {existed} already there, for {who}"


def _lock(s: Settings, az: Runner) -> str:
    if not s.delete_lock:
        return "skipped (--no-delete-lock)"
    az.change(storage_account_lock(s))
    return f"set ({LOCK_NAME}, CanNotDelete)"


# --- the command line --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(message)


def parse(argv: Sequence[str] | None) -> tuple[Settings, bool]:
    """(settings, dry_run) from the command line; UsageError on a bad argument."""
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscription", required=True, help="subscription id (GUID)")
    parser.add_argument("--location", required=True, help="Azure region, e.g. swedencentral")
    parser.add_argument("--resource-group", required=True, help="created if missing")
    parser.add_argument("--storage-account", required=True, help="3-24 lowercase letters, digits")
    parser.add_argument("--container", required=True, help="the state container")
    parser.add_argument("--key-vault", required=True, help="3-24 letters, digits, hyphens")
    parser.add_argument("--key-name", default="pulumi-state", help="the secrets key (pulumi-state)")
    parser.add_argument(
        "--deployer-object-id",
        dest="deployers",
        action="append",
        default=[],
        metavar="GUID",
        help="an identity that runs Pulumi (object id of a user, group, service principal or"
        " managed identity): Storage Blob Data Contributor on the container, Key Vault Crypto"
        " User on the vault; repeat for several",
    )
    parser.add_argument(
        "--deployer-principal-type",
        dest="deployer_type",
        choices=("User", "Group", "ServicePrincipal"),
        help="what the --deployer-object-id identities are (managed identities are"
        " ServicePrincipal): lets Azure assign roles to one created moments ago",
    )
    parser.add_argument(
        "--admin-object-id",
        dest="admin",
        metavar="GUID",
        help="who may create and manage the key (Key Vault Crypto Officer); default: the"
        " signed-in user",
    )
    parser.add_argument("--sku", choices=STORAGE_SKUS, default=DEFAULT_SKU, help="redundancy")
    parser.add_argument(
        "--change-feed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"keep a change feed of the state blobs ({CHANGE_FEED_DAYS} days)",
    )
    parser.add_argument(
        "--delete-lock",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="put a CanNotDelete lock on the storage account (needs Owner or User Access"
        " Administrator)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the az commands only")
    args = parser.parse_args(argv)
    return validate(vars(args)), args.dry_run


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings, dry_run = parse(argv)
    except UsageError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:  # --help
        return EXIT_USAGE if exit_.code else 0
    if dry_run:
        print(f"# {PROG} --dry-run: the az commands of a first run; nothing was run")
        kid = bootstrap(settings, DryRun(print), progress=lambda line: None)
        url = "azurekeyvault://" + kid.removeprefix("https://")
        print("\n" + next_steps(settings, url, dry_run=True))
        return 0
    executable = shutil.which("az")
    if executable is None:
        print(
            f"{PROG}: the Azure CLI (az) is not on PATH; install it"
            " (https://learn.microsoft.com/cli/azure/install-azure-cli) and sign in with az login",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        kid = bootstrap(settings, Az(executable), progress=_stderr)
    except StepFailed as failure:
        print(f"{PROG}: {failure}", file=sys.stderr)
        return EXIT_FAILED
    print(next_steps(settings, secrets_provider_url(kid)))
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
