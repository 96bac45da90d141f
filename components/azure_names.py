"""Every Azure name the platform derives from the stack name, and the rule each must meet.

Each resource type's rule (length, characters, first and last character) is written once,
in RULES, with where it comes from; every name is built by one function below, which cuts
the stack's part to length (never leaving a hyphen at the cut) and checks the result
against its rule. tests/test_azure_contracts.py checks every name in the plans, and every
name these functions derive, against the vendored upstream rules (tests/upstream/azure-*).

Stack names. Pulumi allows letters, digits, `-`, `_` and `.`; Azure names built from them
allow less (a registry only letters and digits, a Key Vault no `--`, most names no `.` at
the end). A stack whose name could not be used as it is is refused, with one line, rather
than mapped (`team_a.dev` -> `team-a-dev`): a mapping would give two stacks (`team_a.dev`
and `team-a.dev`, or `Dev` and `dev`: Azure names ignore case) the same resource group and
the same resources, and names an operator could no longer find from the stack's name. A
stack is renamed in one command before its first deployment (`pulumi stack rename`).

Uniqueness. Names scoped to the resource group are unique because each stack has its own
group, rg-slm-<stack>, which is never cut (check_stack_name bounds the stack's length);
globally unique names (the registry, the vault) end in a random suffix kept in state.
Cutting a longer name to its type's limit only removes characters at the end of the
stack's part, so the names of stacks deployed before this module (cut the same way) stay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The sources, each vendored under tests/upstream/<folder> with its source.json.
BICEP_TYPES = "the API's swagger at the SDK's API version (azure-bicep-types-1f896de2)"
NAMING_TOOL = "Microsoft's naming rules page, per the Azure Naming Tool (azure-naming-tool-v5.0.2)"
AZURERM = "terraform-provider-azurerm's validators (azure-terraform-azurerm-v4.81.0)"
# Microsoft's own managed Prometheus add-on template (Azure/prometheus-collector,
# AddonBicepTemplate) cuts MSProm-<region>-<cluster> to 44 characters for the endpoint and
# 64 for the rule; no upstream states the characters: ours are letters, digits, hyphens.
PROMETHEUS_ADDON_TEMPLATE = "Azure/prometheus-collector add-on template (not vendored)"


@dataclass(frozen=True)
class NameRule:
    resource_type: str  # the ARM type (and property) the name is for
    min_length: int
    max_length: int
    pattern: str  # the whole name must match
    source: str

    def problem(self, name: str) -> str | None:
        """Why `name` breaks this rule (None: it does not)."""
        if not self.min_length <= len(name) <= self.max_length:
            return f"{len(name)} characters, allowed {self.min_length}-{self.max_length}"
        if not re.fullmatch(self.pattern, name):
            return f"does not match {self.pattern}"
        return None


_ALNUM_ENDS = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"  # letters, digits, inner hyphens

RULES = {
    "resource_group": NameRule(
        "Microsoft.Resources/resourceGroups", 1, 90, r"[-\w.()]*[-\w()]", BICEP_TYPES
    ),
    "virtual_network": NameRule(
        "Microsoft.Network/virtualNetworks",
        2,
        64,
        r"[A-Za-z0-9](?:[\w.-]*\w)?",
        NAMING_TOOL,
    ),
    "user_assigned_identity": NameRule(
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        3,
        128,
        r"[A-Za-z0-9][\w-]*",
        NAMING_TOOL,
    ),
    "managed_cluster": NameRule(
        "Microsoft.ContainerService/managedClusters",
        1,
        63,
        r"[A-Za-z0-9](?:[\w-]*[A-Za-z0-9])?",
        BICEP_TYPES,
    ),
    "dns_prefix": NameRule(
        "Microsoft.ContainerService/managedClusters properties.dnsPrefix",
        1,
        54,
        _ALNUM_ENDS,
        AZURERM,
    ),
    "container_registry": NameRule(
        "Microsoft.ContainerRegistry/registries", 5, 50, r"[A-Za-z0-9]+", BICEP_TYPES
    ),
    "key_vault": NameRule(
        "Microsoft.KeyVault/vaults",
        3,
        24,
        r"(?!.*--)[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]",
        f"{BICEP_TYPES}; {NAMING_TOOL}",
    ),
    "log_analytics_workspace": NameRule(
        "Microsoft.OperationalInsights/workspaces", 4, 63, _ALNUM_ENDS, BICEP_TYPES
    ),
    "private_endpoint": NameRule(
        "Microsoft.Network/privateEndpoints", 1, 80, r"[A-Za-z0-9](?:[\w.-]*\w)?", AZURERM
    ),
    # The swagger states no maximum; none found upstream: the group's 90 bounds it.
    "monitor_workspace": NameRule(
        "Microsoft.Monitor/accounts", 2, 90, r"(?!-)[A-Za-z0-9-]+[^-]", BICEP_TYPES
    ),
    "prometheus_rule_group": NameRule(
        "Microsoft.AlertsManagement/prometheusRuleGroups",
        1,
        260,
        r"[^:@/#{}%&+*<>?]+",
        f"{BICEP_TYPES}; {AZURERM}",
    ),
    "data_collection": NameRule(
        "Microsoft.Insights/dataCollectionEndpoints, dataCollectionRules, "
        "dataCollectionRuleAssociations",
        1,
        44,
        _ALNUM_ENDS,
        PROMETHEUS_ADDON_TEMPLATE,
    ),
    "grafana": NameRule(
        "Microsoft.Dashboard/grafana",
        2,
        23,
        r"[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]",
        f"{BICEP_TYPES}; {AZURERM}",
    ),
}

RESOURCE_GROUP_PREFIX = "rg-slm-"
# The longest stack whose resource group is never cut (a cut could give two stacks one group).
MAX_STACK_LENGTH = RULES["resource_group"].max_length - len(RESOURCE_GROUP_PREFIX)
STACK_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"
# Random characters after the registry's and the vault's names (globally unique names).
RANDOM_SUFFIX_LENGTH = 6


class StackNameError(ValueError):
    """A stack name that cannot make valid Azure names: `allowed` says what can."""

    def __init__(self, stack: str, allowed: str):
        self.value, self.allowed = stack, allowed
        super().__init__(f"{stack!r}: {allowed}")


def check_stack_name(stack: str) -> None:
    """Refuse a stack name that the Azure names below cannot be built from as it is."""
    if len(stack) <= MAX_STACK_LENGTH and re.fullmatch(STACK_PATTERN, stack):
        return
    suggestion = "-".join(re.findall(r"[a-z0-9]+", stack.lower()))[:MAX_STACK_LENGTH]
    hint = f' (rename it, e.g. "{suggestion}")' if suggestion else ""
    raise StackNameError(
        stack,
        "a stack name of lowercase letters, digits and single hyphens, starting and ending "
        f"with a letter or digit, at most {MAX_STACK_LENGTH} characters: Azure names such as "
        f"{RESOURCE_GROUP_PREFIX}<stack> are built from it{hint}",
    )


class AzureNameError(ValueError):
    """A derived name breaks its type's rule: a stack name check_stack_name let through."""


def checked(kind: str, name: str) -> str:
    rule = RULES[kind]
    problem = rule.problem(name)
    if problem:
        raise AzureNameError(f"{rule.resource_type} name {name!r}: {problem} ({rule.source})")
    return name


def fit(kind: str, prefix: str, stack: str, suffix: str = "") -> str:
    """prefix + stack + suffix, the stack's part cut so that the name fits its type's
    length, without a hyphen left at the cut; checked against the type's rule."""
    room = RULES[kind].max_length - len(prefix) - len(suffix)
    part = stack[:room].rstrip("-") if room > 0 else ""
    if not part:
        raise AzureNameError(f"{kind}: no room for the stack's name in {prefix}...{suffix}")
    return checked(kind, f"{prefix}{part}{suffix}")


def _letters_and_digits(stack: str) -> str:
    return re.sub(r"[^a-z0-9]", "", stack.lower())


# -- the names -----------------------------------------------------------------------------


def resource_group(stack: str) -> str:
    return fit("resource_group", RESOURCE_GROUP_PREFIX, stack)


def virtual_network(stack: str) -> str:
    return fit("virtual_network", "vnet-slm-", stack)


def managed_identity(stack: str, purpose: str) -> str:
    """id-slm-<stack>-<purpose>: the purpose is kept whole, the stack's part is cut."""
    return fit("user_assigned_identity", "id-slm-", stack, f"-{purpose}")


def managed_cluster(stack: str) -> str:
    return fit("managed_cluster", "aks-slm-", stack)


def dns_prefix(stack: str) -> str:
    return fit("dns_prefix", "slm-", stack)


def container_registry_prefix(stack: str) -> str:
    """acrslm<stack's letters and digits>, before RANDOM_SUFFIX_LENGTH random characters."""
    name = fit(
        "container_registry", "acrslm", _letters_and_digits(stack), "0" * RANDOM_SUFFIX_LENGTH
    )
    return name[:-RANDOM_SUFFIX_LENGTH]


def key_vault_prefix(stack: str) -> str:
    """kv-slm-<stack's letters and digits>-, before RANDOM_SUFFIX_LENGTH random characters
    (letters and digits only: a stack's hyphens would spend the vault's 24 characters)."""
    name = fit("key_vault", "kv-slm-", _letters_and_digits(stack), "-" + "0" * RANDOM_SUFFIX_LENGTH)
    return name[:-RANDOM_SUFFIX_LENGTH]


def log_analytics_workspace(stack: str) -> str:
    return fit("log_analytics_workspace", "log-slm-", stack)


def vault_private_endpoint(stack: str) -> str:
    return fit("private_endpoint", "pe-kv-slm-", stack)


def monitor_workspace(stack: str) -> str:
    return fit("monitor_workspace", "amw-slm-", stack)


def prometheus_rule_group(stack: str) -> str:
    return fit("prometheus_rule_group", "slm-serving-", stack)


def data_collection(location: str, stack: str) -> str:
    """MSProm-<region>-aks-slm-<stack>, as Microsoft's add-on template names the data
    collection endpoint, rule and association of a cluster (cut to the endpoint's 44)."""
    return fit("data_collection", f"MSProm-{location}-aks-slm-", stack)


def grafana_workspace(stack: str) -> str:
    return fit("grafana", "graf-slm-", stack)
