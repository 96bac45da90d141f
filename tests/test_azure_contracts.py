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
import shutil
import sys
import typing
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi import _types
from pulumi_azure_native import monitor

from tests.conftest import STACKS, read_stack, write_stack
from tools.mock_engine import (
    SECRET,
    azure_args_class,
    azure_resource_class,
    required_arguments,
)
from tools.plan import ROOT, build_plan

# An SDK enum whose values are not all the API accepts: a data flow carries the streams of
# its rule's data sources (the Prometheus forwarder's stream is in that source's own enum).
# Every other enum is closed: a value outside it fails.
WIDER_ENUMS = {
    monitor.KnownDataFlowStreams: (monitor.KnownPrometheusForwarderDataSourceStreams,),
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
        shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
        shutil.copytree(ROOT / "stacks", root / "stacks")
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
