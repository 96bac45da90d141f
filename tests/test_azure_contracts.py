"""Contracts with Azure: what every plan hands to the azure-native provider, checked against
the installed SDK's own type metadata (the `@pulumi.input_type` classes, their
`@pulumi.getter(name=...)` wire names, the type hints of each property and the enums of
`_enums.py`), and every Azure name against its resource type's naming rule.

The SDK is the pinned pulumi-azure-native in uv.lock: its classes are generated from the
provider's schema at that version, so they are the provider's truth, not our expectation."""

from __future__ import annotations

import ast
import collections.abc
import enum
import functools
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi import _types
from pulumi_azure_native import monitor

from components import azure_names
from components.config import LOG_ANALYTICS_RETENTION_DAYS
from tests.conftest import STACKS, copy_config_root, read_stack, write_stack
from tools.mock_engine import (
    SECRET,
    azure_args_class,
    azure_name_input,
    azure_resource_class,
    required_arguments,
)
from tools.plan import ROOT, build_plan

# Container Insights' extension data source takes the streams of its own onboarding
# template (microsoft/Docker-Provider, vendored), which no SDK enum lists.
CONTAINER_INSIGHTS = (
    Path(__file__).parent / "upstream" / "docker-provider-b780558-container-insights"
)
CONTAINER_INSIGHTS_STREAMS = enum.Enum(
    "ContainerInsightsStreams",
    [(s, s) for s in json.loads((CONTAINER_INSIGHTS / "parameters.json").read_text())["streams"]],
)
# SDK enums whose values are not all the API accepts: a data flow carries the streams of
# its rule's data sources (the Prometheus forwarder's stream is in that source's own enum),
# and an extension data source the streams of its extension. Every other enum is closed: a
# value outside it fails.
WIDER_ENUMS = {
    monitor.KnownDataFlowStreams: (
        monitor.KnownPrometheusForwarderDataSourceStreams,
        CONTAINER_INSIGHTS_STREAMS,
    ),
    monitor.KnownExtensionDataSourceStreams: (CONTAINER_INSIGHTS_STREAMS,),
}

# Values the plan shows in place of what only the cloud knows, or what is secret.
PLACEHOLDERS = {SECRET, "[unknown]"}


# -- reading the SDK's metadata --------------------------------------------------------------


def property_hints(input_type: type) -> dict[str, Any]:
    """Each property's wire name and declared type, resolved in the SDK module's namespace."""
    namespace = dict(sys.modules[input_type.__module__].__dict__)
    local = {"Output": pulumi.Output, "T": type(None)}
    hints = {}
    for _, wire_name, prop in _types._py_properties(input_type):
        hints[wire_name] = typing.get_type_hints(prop.fget, namespace, local)["return"]
    return hints


def alternatives(hint: Any) -> list[Any]:
    """What a value may be, without the Input/Output/Awaitable/Optional wrappers."""
    if typing.get_origin(hint) is typing.Union:
        found = []
        for member in typing.get_args(hint):
            for alternative in alternatives(member):
                if alternative not in found:
                    found.append(alternative)
        return found
    origin = typing.get_origin(hint)
    if hint is type(None) or origin in (collections.abc.Awaitable, pulumi.Output):
        return []
    return [hint]


# -- checking values ------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.resources = 0
        self.properties = 0


def object_problems(input_type: type, value: Any, path: str, tally: Tally) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: {value!r} is not an object ({input_type.__name__})"]
    hints = property_hints(input_type)
    names = _types.input_type_py_to_pulumi_names(input_type)
    problems = [
        f"{path}.{names[py_name]}: missing; required by {input_type.__name__}"
        for py_name in sorted(required_arguments(input_type))
        if value.get(names[py_name]) is None
    ]
    for key, item in value.items():
        if key not in hints:
            problems.append(f"{path}.{key}: no such property in {input_type.__name__}")
            continue
        tally.properties += 1
        problems += value_problems(hints[key], item, f"{path}.{key}", tally)
    return problems


def value_problems(hint: Any, value: Any, path: str, tally: Tally) -> list[str]:
    if value in PLACEHOLDERS if isinstance(value, str) else False:
        return []
    options = alternatives(hint)
    if Any in options:
        return []
    enums = [o for o in options if isinstance(o, type) and issubclass(o, enum.Enum)]
    if enums and isinstance(value, str):
        widened = [wider for e in enums for wider in WIDER_ENUMS.get(e, ())]
        allowed = sorted({member.value for e in [*enums, *widened] for member in e})
        return [] if value in allowed else [f"{path}: {value!r} not in {allowed}"]
    failures = []
    for option in options:
        problems = _one_option(option, value, path, tally)
        if not problems:
            return []
        failures.append(problems)
    return failures[0] if len(failures) == 1 else [f"{path}: {value!r} fits none of {options}"]


def _one_option(option: Any, value: Any, path: str, tally: Tally) -> list[str]:
    origin = typing.get_origin(option)
    if origin in (collections.abc.Sequence, list):
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        (item,) = typing.get_args(option)
        return [
            p for i, v in enumerate(value) for p in value_problems(item, v, f"{path}[{i}]", tally)
        ]
    if origin in (collections.abc.Mapping, dict):
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a map"]
        _, item = typing.get_args(option)
        return [p for k, v in value.items() for p in value_problems(item, v, f"{path}.{k}", tally)]
    if isinstance(option, type) and _types.is_input_type(option):
        return object_problems(option, value, path, tally)
    if option is bool:
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a boolean"]
    if option is int:
        # Under the mock engine, integers arrive as floats (0 becomes 0.0).
        whole = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = whole and float(value).is_integer()
        return [] if ok else [f"{path}: {value!r} is not an integer"]
    if option is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if option is str:
        return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]
    return [f"{path}: the contract does not know the SDK type {option!r}"]


def resource_problems(resources: list[dict[str, Any]], tally: Tally) -> list[str]:
    problems = []
    for resource in resources:
        if not resource["type"].startswith("azure-native:"):
            continue
        args = azure_args_class(resource["type"])
        if args is None:
            problems.append(f"{resource['name']}: {resource['type']} is not in the installed SDK")
            continue
        tally.resources += 1
        problems += object_problems(args, resource["inputs"], resource["name"], tally)
    return problems


# -- the plans ------------------------------------------------------------------------------

# A Blob mirror for the cache warmer (documentation-style account, any subscription id).
MIRROR = {
    "source": "azure-blob",
    "blobUrl": "https://slmmodels.blob.core.windows.net/models/hf",
    "blobStorageAccountId": (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-models"
        "/providers/Microsoft.Storage/storageAccounts/slmmodels"
    ),
}
WARMER_IMAGE = "registry.example.com/slm/model-cache-warmer:0.1.0@sha256:" + "0" * 64


def _managed_monitoring(config: dict[str, Any]) -> None:
    config["slm-deploy:monitoring"] = {"mode": "azure-managed"}
    config["slm-deploy:models"][0]["replicas"] = {"min": 1, "max": 2}


def _private_api(config: dict[str, Any]) -> None:
    cluster = config["slm-deploy:cluster"]
    cluster.pop("authorizedIpRanges", None)
    cluster["private"] = True


def _blob_cache_warmer(config: dict[str, Any]) -> None:
    # The cache holds one exact revision (the commit the prod stack pins for Phi-4-mini).
    config["slm-deploy:models"][0]["revision"] = "c0fb9e74abda11b496b7907a9c6c9009a7a0488f"
    serving = config.setdefault("slm-deploy:serving", {})
    serving["cacheWarmer"] = {"enabled": True, "image": WARMER_IMAGE, **MIRROR}


# Each variant: the shipped stack it starts from, and what it changes. Together with the
# shipped stacks they declare every azure-native resource type the program can declare.
VARIANTS = {
    "staging-managed-monitoring": ("staging", [_managed_monitoring]),
    "prod-private-managed": ("prod", [_private_api, _managed_monitoring]),
    "dev-blob-warmer": ("dev", [_blob_cache_warmer]),
}


def variant_plan(root: Path, variant: str) -> dict[str, Any]:
    stack, edits = VARIANTS[variant]
    document = read_stack(root, stack)
    for edit in edits:
        edit(document["config"])
    write_stack(root, stack, document)
    return build_plan(stack, config_root=root)


@pytest.fixture(scope="module")
def variant_plans(tmp_path_factory) -> dict[str, dict[str, Any]]:
    built = {}
    for variant in VARIANTS:
        root = tmp_path_factory.mktemp(variant)
        copy_config_root(root)
        built[variant] = variant_plan(root, variant)
    return built


# -- azure-native inputs --------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_hand_the_sdk_only_inputs_it_defines(plans, stack: str) -> None:
    tally = Tally()
    assert resource_problems(plans[stack]["resources"], tally) == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_stacks_hand_the_sdk_only_inputs_it_defines(variant_plans, variant) -> None:
    tally = Tally()
    assert resource_problems(variant_plans[variant]["resources"], tally) == []
    assert tally.resources > 0


def program_azure_types(folder: Path = ROOT / "components") -> set[str]:
    """Every azure-native resource type the components construct: each call of
    `<module>.<Class>(...)` on a module imported from pulumi_azure_native."""
    found = set()
    for source in sorted(folder.glob("*.py")):
        tree = ast.parse(source.read_text())
        modules = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "pulumi_azure_native"
            for alias in node.names
        }
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                token = f"azure-native:{func.value.id}:{func.attr}"
                if func.value.id in modules and azure_resource_class(token):
                    found.add(token)
    return found


def test_the_plans_declare_every_azure_type_the_program_constructs(plans, variant_plans) -> None:
    declared = {
        resource["type"]
        for plan in [*plans.values(), *variant_plans.values()]
        for resource in plan["resources"]
        if resource["type"].startswith("azure-native:")
    }
    constructed = program_azure_types()
    assert len(constructed) >= 20  # the scan finds calls (guards against a silent no-op)
    assert constructed - declared == set()


# A ManagedCluster's inputs with one of each mistake, as the engine would receive them.
BROKEN_CLUSTER = {
    "location": "eastus",
    "dnsPrefix": 7,  # a number where the SDK takes text
    "kubernetesVersion": "1.34",
    "agentPoolProfiles": [
        # mode outside the AgentPoolMode enum; name missing (required); a misspelt key
        {"mode": "Sytem", "vmSize": "Standard_D4s_v5", "count": 1.0, "maxPods": 2.5},
        {"name": "user", "mode": "User", "vmsize": "Standard_D4s_v5"},
    ],
    "addonProfiles": {"azureKeyvaultSecretsProvider": {"config": {"x": "y"}}},
    "disableLocalAccounts": "true",
}


def test_the_contract_names_each_kind_of_mistake() -> None:
    tally = Tally()
    resource = {"type": "azure-native:containerservice:ManagedCluster", "name": "aks"}
    problems = resource_problems([resource | {"inputs": BROKEN_CLUSTER}], tally)
    assert problems == [
        "aks.resourceGroupName: missing; required by ManagedClusterArgs",
        "aks.dnsPrefix: 7 is not a string",
        "aks.agentPoolProfiles[0].name: missing; required by ManagedClusterAgentPoolProfileArgs",
        "aks.agentPoolProfiles[0].mode: 'Sytem' not in ['Gateway', 'System', 'User']",
        "aks.agentPoolProfiles[0].maxPods: 2.5 is not an integer",
        "aks.agentPoolProfiles[1].vmsize: no such property in ManagedClusterAgentPoolProfileArgs",
        "aks.addonProfiles.azureKeyvaultSecretsProvider.enabled: missing; required by "
        "ManagedClusterAddonProfileArgs",
        "aks.disableLocalAccounts: 'true' is not a boolean",
    ]
    # 6 top-level properties, 4 + 2 in the pools, 1 in the add-on (a misspelt one is not)
    assert (tally.resources, tally.properties) == (1, 13)


def test_an_azure_type_the_sdk_lacks_is_a_problem() -> None:
    resource = {"type": "azure-native:network:Subnets", "name": "s", "inputs": {}}
    assert resource_problems([resource], Tally()) == [
        "s: azure-native:network:Subnets is not in the installed SDK"
    ]


# -- Azure names ----------------------------------------------------------------------------

UPSTREAM = ROOT / "tests" / "upstream"
BICEP_TYPES = UPSTREAM / "azure-bicep-types-1f896de2"
NAMING_TOOL = UPSTREAM / "azure-naming-tool-v5.0.2" / "resourcetypes.json"
AZURERM = UPSTREAM / "azure-terraform-azurerm-v4.81.0"

# The ARM resource type each azure-native type creates (the SDK's Python classes do not
# carry it; their docstrings carry the API version, checked against the vendored file).
ARM_TYPES = {
    "alertsmanagement:PrometheusRuleGroup": "Microsoft.AlertsManagement/prometheusRuleGroups",
    "authorization:RoleAssignment": "Microsoft.Authorization/roleAssignments",
    "containerregistry:Registry": "Microsoft.ContainerRegistry/registries",
    "containerservice:AgentPool": "Microsoft.ContainerService/managedClusters/agentPools",
    "containerservice:MaintenanceConfiguration": (
        "Microsoft.ContainerService/managedClusters/maintenanceConfigurations"
    ),
    "containerservice:ManagedCluster": "Microsoft.ContainerService/managedClusters",
    "dashboard:Grafana": "Microsoft.Dashboard/grafana",
    "keyvault:Secret": "Microsoft.KeyVault/vaults/secrets",
    "keyvault:Vault": "Microsoft.KeyVault/vaults",
    "managedidentity:FederatedIdentityCredential": (
        "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
    ),
    "managedidentity:UserAssignedIdentity": "Microsoft.ManagedIdentity/userAssignedIdentities",
    "monitor:AzureMonitorWorkspace": "Microsoft.Monitor/accounts",
    "monitor:DataCollectionEndpoint": "Microsoft.Insights/dataCollectionEndpoints",
    "monitor:DataCollectionRule": "Microsoft.Insights/dataCollectionRules",
    "monitor:DataCollectionRuleAssociation": "Microsoft.Insights/dataCollectionRuleAssociations",
    "monitor:DiagnosticSetting": "Microsoft.Insights/diagnosticSettings",
    "network:PrivateDnsZoneGroup": "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
    "network:PrivateEndpoint": "Microsoft.Network/privateEndpoints",
    "network:Subnet": "Microsoft.Network/virtualNetworks/subnets",
    "network:VirtualNetwork": "Microsoft.Network/virtualNetworks",
    "operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces",
    "privatedns:PrivateZone": "Microsoft.Network/privateDnsZones",
    "privatedns:VirtualNetworkLink": "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
    "resources:ResourceGroup": "Microsoft.Resources/resourceGroups",
}
API_VERSION = re.compile(r"Uses Azure REST API version (\S+?)\.")


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def swagger_constraints() -> dict[str, dict[str, Any]]:
    """`<ARM type>@<api version>` -> the name's pattern and lengths, from every file."""
    found: dict[str, dict[str, Any]] = {}
    for local_name in _json(BICEP_TYPES / "source.json")["files"]:
        found |= _json(BICEP_TYPES / local_name)
    return found


@functools.cache
def sdk_api_version(token: str) -> str:
    """The API version the SDK's class uses (its constructor's docstring says it)."""
    module = sys.modules[azure_resource_class(f"azure-native:{token}").__module__]
    return API_VERSION.search(Path(module.__file__).read_text())[1]


def go_regex(pattern: str) -> str:
    """Go's `[\\d-...]` keeps the hyphen literal where Python reads a range: escape it."""
    return pattern.replace(r"\d-", r"\d\-")


def azurerm_rules() -> dict[str, tuple[list[str], tuple[int, int] | None]]:
    """The provider's validators for names the other sources leave open: every regex (for
    names of two or more characters: the validators' one-character branch does not apply)
    and the length limits, by what they name."""
    kubernetes = _json(AZURERM / "containers-validate-kubernetes.json")["functions"]
    endpoint = _json(AZURERM / "network-validate-private_link_name.json")["functions"]
    grafana = _json(AZURERM / "dashboard_grafana_resource.json")["name_argument"]
    rules = _json(AZURERM / "monitor_alert_prometheus_rule_group_resource.json")
    return {
        "dnsPrefix": ([kubernetes["KubernetesDNSPrefix"][-1]], None),
        "Microsoft.Network/privateEndpoints": ([endpoint["PrivateLinkName"][-1]], None),
        "Microsoft.Dashboard/grafana": (grafana["regexes"], None),
        "Microsoft.AlertsManagement/prometheusRuleGroups": (
            [],
            tuple(rules["name_argument"]["length_between"]),
        ),
    }


def test_log_retention_bounds_are_the_providers() -> None:
    """The container logs' workspace retention the config allows on AKS is the range
    terraform-provider-azurerm v4.81.0 validates a Log Analytics workspace's with."""
    workspace = _json(AZURERM / "loganalytics-log_analytics_workspace_resource.json")
    assert workspace["int_between"]["retention_in_days"] == list(LOG_ANALYTICS_RETENTION_DAYS)


def naming_tool_rules() -> dict[str, dict[str, Any]]:
    return {f"microsoft.{key.lower()}": rule for key, rule in _json(NAMING_TOOL).items()}


def name_problems_for(arm_type: str, name: str, sources: dict[str, Any]) -> list[str]:
    problems = []
    swagger = sources["swagger"].get(arm_type)
    if swagger:
        if "pattern" in swagger and not re.search(swagger["pattern"], name):
            problems.append(f"swagger pattern {swagger['pattern']}")
        low, high = swagger.get("minLength", 0), swagger.get("maxLength", len(name))
        if not low <= len(name) <= high:
            problems.append(f"swagger length {low}-{high}")
    tool = sources["naming_tool"].get(arm_type.split("@")[0].lower())
    if tool:
        if not re.search(tool["regex"], name):
            problems.append(f"Azure Naming Tool regex {tool['regex']} ({tool['rule']})")
        if not int(tool["min_length"]) <= len(name) <= int(tool["max_length"]):
            problems.append(f"Azure Naming Tool length {tool['min_length']}-{tool['max_length']}")
    regexes, length = sources["azurerm"].get(arm_type.split("@")[0], ([], None))
    problems += [f"azurerm regex {r}" for r in regexes if not re.search(go_regex(r), name)]
    if length and not length[0] <= len(name) <= length[1]:
        problems.append(f"azurerm length {length[0]}-{length[1]}")
    return problems


@pytest.fixture(scope="module")
def name_sources() -> dict[str, Any]:
    return {
        "swagger": swagger_constraints(),
        "naming_tool": naming_tool_rules(),
        "azurerm": azurerm_rules(),
    }


def plan_names(resources: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(resource, ARM type@version or property, name) for every Azure name in a plan."""
    found = []
    for resource in resources:
        token = resource["type"].removeprefix("azure-native:")
        if token == resource["type"]:
            continue
        arm_type = f"{ARM_TYPES[token]}@{sdk_api_version(token)}"
        name = resource["inputs"].get(azure_name_input(resource["type"]))
        if name is not None and name not in PLACEHOLDERS:
            found.append((resource["name"], arm_type, name))
        if token == "containerservice:ManagedCluster":
            found.append((resource["name"], "dnsPrefix", resource["inputs"]["dnsPrefix"]))
            pools = f"{ARM_TYPES['containerservice:AgentPool']}@{sdk_api_version(token)}"
            for pool in resource["inputs"]["agentPoolProfiles"]:
                found.append((resource["name"], pools, pool["name"]))
    return found


def names_breaking_rules(plan: dict[str, Any], sources: dict[str, Any]) -> list[str]:
    return [
        f"{resource}: {name!r} ({arm_type}) breaks {problem}"
        for resource, arm_type, name in plan_names(plan["resources"])
        for problem in name_problems_for(arm_type, name, sources)
    ]


def test_every_sdk_api_version_has_its_vendored_swagger(name_sources) -> None:
    missing = [
        f"{ARM_TYPES[token]}@{sdk_api_version(token)}"
        for token in ARM_TYPES
        if f"{ARM_TYPES[token]}@{sdk_api_version(token)}" not in name_sources["swagger"]
    ]
    assert missing == []
    assert {f"azure-native:{token}" for token in ARM_TYPES} == program_azure_types()


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_names_meet_azure_rules(plans, name_sources, stack: str) -> None:
    assert names_breaking_rules(plans[stack], name_sources) == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_stacks_names_meet_azure_rules(variant_plans, name_sources, variant) -> None:
    assert names_breaking_rules(variant_plans[variant], name_sources) == []


# A stack name as long as check_stack_name allows: every name that has a limit is cut.
LONG_STACK = "team-a1-inference-" + "-".join(["westeurope"] * 6)


def test_the_long_stack_is_as_long_as_allowed() -> None:
    assert len(LONG_STACK) == azure_names.MAX_STACK_LENGTH == 83
    azure_names.check_stack_name(LONG_STACK)


def renamed_plan(root: Path, source: str, stack: str, edits=()) -> dict[str, Any]:
    document = read_stack(root, source)
    for edit in edits:
        edit(document["config"])
    write_stack(root, stack, document)
    return build_plan(stack, config_root=root)


@pytest.mark.parametrize("stack", ["staging-north-1", LONG_STACK])
def test_stack_names_with_cuts_give_valid_azure_names(config_root, name_sources, stack) -> None:
    plan = renamed_plan(config_root, "prod", stack, [_blob_cache_warmer])
    assert names_breaking_rules(plan, name_sources) == []
    names = {arm_type.split("@")[0]: name for _, arm_type, name in plan_names(plan["resources"])}
    assert names["Microsoft.Resources/resourceGroups"] == f"rg-slm-{stack}"  # never cut


def test_managed_monitoring_names_fit_their_rules(config_root, name_sources) -> None:
    plan = renamed_plan(config_root, "staging", "staging-north-1", [_managed_monitoring])
    assert names_breaking_rules(plan, name_sources) == []
    (grafana,) = [r for r in plan["resources"] if r["type"] == "azure-native:dashboard:Grafana"]
    assert grafana["inputs"]["workspaceName"] == "graf-slm-staging-north"


# -- the stack name and the names derived from it ---------------------------------------------

VALID_STACKS = ["dev", "staging", "prod", "staging-north-1", "1", "eu2-prod", LONG_STACK]


def derived_names(stack: str) -> list[tuple[str, str]]:
    """(ARM type, name) for every name components/azure_names.py derives from a stack,
    with the random suffixes the registry and the vault get at deployment."""
    suffix = "x" * azure_names.RANDOM_SUFFIX_LENGTH
    names = [
        ("Microsoft.Resources/resourceGroups", azure_names.resource_group(stack)),
        ("Microsoft.Network/virtualNetworks", azure_names.virtual_network(stack)),
        ("Microsoft.ContainerService/managedClusters", azure_names.managed_cluster(stack)),
        ("dnsPrefix", azure_names.dns_prefix(stack)),
        (
            "Microsoft.ContainerRegistry/registries",
            azure_names.container_registry_prefix(stack) + suffix,
        ),
        ("Microsoft.KeyVault/vaults", azure_names.key_vault_prefix(stack) + suffix),
        ("Microsoft.OperationalInsights/workspaces", azure_names.log_analytics_workspace(stack)),
        ("Microsoft.Network/privateEndpoints", azure_names.vault_private_endpoint(stack)),
        ("Microsoft.Monitor/accounts", azure_names.monitor_workspace(stack)),
        (
            "Microsoft.AlertsManagement/prometheusRuleGroups",
            azure_names.prometheus_rule_group(stack),
        ),
        ("Microsoft.Dashboard/grafana", azure_names.grafana_workspace(stack)),
        (
            "Microsoft.Insights/dataCollectionEndpoints",
            azure_names.data_collection("australiasoutheast", stack),
        ),
    ]
    for purpose in ("aks", "model-server", "grafana", "keda", "cache-warmer"):
        names.append(
            (
                "Microsoft.ManagedIdentity/userAssignedIdentities",
                azure_names.managed_identity(stack, purpose),
            )
        )
    return names


def _versioned(arm_type: str) -> str:
    by_type = {arm: token for token, arm in ARM_TYPES.items()}
    return f"{arm_type}@{sdk_api_version(by_type[arm_type])}" if arm_type in by_type else arm_type


@pytest.mark.parametrize("stack", VALID_STACKS)
def test_every_derived_name_meets_the_upstream_rules(name_sources, stack: str) -> None:
    problems = [
        f"{name!r} ({arm_type}) breaks {problem}"
        for arm_type, name in derived_names(stack)
        for problem in name_problems_for(_versioned(arm_type), name, name_sources)
    ]
    assert problems == []


def test_a_cut_never_leaves_a_hyphen() -> None:
    # graf-slm- + staging-north-1 is 24 characters: the cut at 23 falls after "north-".
    assert azure_names.grafana_workspace("staging-north-1") == "graf-slm-staging-north"
    assert azure_names.grafana_workspace("staging") == "graf-slm-staging"
    assert azure_names.dns_prefix(LONG_STACK) == "slm-" + LONG_STACK[:50]
    assert azure_names.managed_cluster(LONG_STACK) == "aks-slm-" + LONG_STACK[:55].rstrip("-")
    assert azure_names.data_collection("eastus", "staging-north-1") == (
        "MSProm-eastus-aks-slm-staging-north-1"
    )


def test_shipped_stacks_keep_their_names() -> None:
    # Renaming an Azure resource replaces it: these are the names deployed stacks have.
    assert [name for _, name in derived_names("staging")[:4]] == [
        "rg-slm-staging",
        "vnet-slm-staging",
        "aks-slm-staging",
        "slm-staging",
    ]
    assert azure_names.container_registry_prefix("staging") == "acrslmstaging"
    assert azure_names.key_vault_prefix("staging") == "kv-slm-staging-"
    assert azure_names.grafana_workspace("prod") == "graf-slm-prod"
    assert azure_names.data_collection("eastus", "prod") == "MSProm-eastus-aks-slm-prod"


@pytest.mark.parametrize("stack", VALID_STACKS)
def test_stack_names_that_make_valid_azure_names_are_accepted(stack: str) -> None:
    azure_names.check_stack_name(stack)


@pytest.mark.parametrize(
    ("stack", "suggestion"),
    [
        ("team_a.dev", "team-a-dev"),
        ("Dev", "dev"),
        ("a--b", "a-b"),
        ("-dev", "dev"),
        ("dev-", "dev"),
        (LONG_STACK + "x", (LONG_STACK + "x")[:83]),
    ],
)
def test_other_stack_names_are_refused_with_one_line(stack: str, suggestion: str) -> None:
    with pytest.raises(azure_names.StackNameError) as refused:
        azure_names.check_stack_name(stack)
    assert refused.value.value == stack
    assert refused.value.allowed == (
        "a stack name of lowercase letters, digits and single hyphens, starting and ending "
        "with a letter or digit, at most 83 characters: Azure names such as rg-slm-<stack> "
        f'are built from it (rename it, e.g. "{suggestion}")'
    )


def test_a_stack_named_with_underscore_and_dot_stops_the_plan(config_root) -> None:
    from tools.plan import PlanConfigError

    with pytest.raises(PlanConfigError, match=r'^slm-deploy: stack "team_a\.dev" is not allowed'):
        renamed_plan(config_root, "dev", "team_a.dev")
