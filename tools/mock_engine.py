"""Run the program under Pulumi's mock engine and record every resource it declares.

The program is `__main__.py`, run exactly as the Pulumi language host runs it; only the
engine differs. Resources get deterministic ids and echo their inputs as outputs; invokes
(provider functions such as AKS credentials) answer from `INVOKE_RESPONSES`, and an invoke
with no response stops the plan so that a new provider call is never silently mocked.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib
import inspect
import re
import runpy
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi import _types
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

SECRET = "[secret]"


@dataclass
class RecordedResource:
    urn: str
    type: str
    name: str
    parent: str
    provider: str
    protect: bool
    retain_on_delete: bool
    custom: bool
    inputs: dict[str, Any]
    # What it waits for: depends_on and the resources its inputs come from (a component in
    # the list stands for its children). Children wait for their parent's registration.
    dependencies: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "provider": self.provider,
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "dependencies": self.dependencies,
            "inputs": self.inputs,
        }


@dataclass
class Recording:
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


class PlanMocks(mocks.Mocks):
    """Deterministic stand-ins for what the cloud would return."""

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        name_input = azure_name_input(args.typ)
        if args.typ.startswith("azure-native:") and name_input is None:
            raise UnknownAzureName(
                f"the offline plan cannot tell which input names {args.typ} from the "
                "installed azure-native SDK (see azure_name_input in tools/mock_engine.py)"
            )
        if name_input in state:
            # azure-native resources take their name in one input (registryName,
            # resourceName, name...) and Azure returns it as the "name" output.
            state["name"] = state[name_input]
        identity = state.get("identity")
        if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
            # azure-native takes user-assigned identities as a list of ids and returns them
            # as a map of id -> {principalId, clientId}.
            state["identity"] = identity | {
                "userAssignedIdentities": {
                    ident: {"principalId": _MOCK_GUID.format(5), "clientId": _MOCK_GUID.format(6)}
                    for ident in identity["userAssignedIdentities"]
                }
            }
        computed = COMPUTED_OUTPUTS.get(args.typ)
        if computed:
            state |= computed(args.name, state)
        return f"{args.name}-id", state

    def call(self, args: mocks.MockCallArgs) -> dict:
        respond = INVOKE_RESPONSES.get(args.token)
        if respond is None:
            raise MissingInvokeMock(
                f"the offline plan has no response for invoke {args.token}: "
                "add one to INVOKE_RESPONSES in tools/mock_engine.py"
            )
        return respond(args.args)


class MissingInvokeMock(Exception):
    pass


class UnknownAzureName(Exception):
    pass


class RecordingMonitor(mocks.MockMonitor):
    """The mock monitor, also keeping what the engine would see of each registration."""

    def __init__(self, plan_mocks: PlanMocks, recording: Recording):
        super().__init__(plan_mocks)
        self.recording = recording

    def RegisterResource(self, request):  # noqa: N802 (the gRPC method name)
        response = _mark_secret_outputs(super().RegisterResource(request), request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
            self.recording.resources.append(
                RecordedResource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    provider=request.provider.rsplit("::", 1)[0] if request.provider else "",
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    custom=bool(request.custom),
                    inputs=scrub_secrets(inputs),
                    dependencies=sorted(set(request.dependencies)),
                )
            )
        return response


def _mark_secret_outputs(response, request):
    """Mark the outputs a resource declares secret (additionalSecretOutputs, e.g. a random
    password's result) as the engine does, so that secrecy flows on as in `pulumi up`."""
    names = list(request.additionalSecretOutputs)
    if not names:
        return response
    state = rpc.deserialize_properties(response.object, keep_unknowns=True)
    for key in names:
        if key in state and not rpc.is_rpc_secret(state[key]):
            state[key] = rpc.wrap_rpc_secret(state[key])
    return resource_pb2.RegisterResourceResponse(
        urn=response.urn, id=response.id, object=_sync_await(rpc.serialize_properties(state, {}))
    )


def run_program(
    program: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    recording: Recording | None = None,
) -> Recording:
    """Run `program` as `pulumi up` would, against the mock engine, on a fresh event loop.

    Pass `recording` to inspect what was declared even when the program raises."""
    recording = Recording() if recording is None else recording
    loop = asyncio.new_event_loop()
    # The SDK sends each registration to the engine from the loop's default executor. One
    # worker serialises them in the order the program's tasks reach the engine, so that two
    # runs record the same order (with many workers, threads race and the order varies).
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine"))
    asyncio.set_event_loop(loop)
    try:
        settings.reset_options(project=project, stack=stack, preview=False)
        set_all_config(config, secret_keys)
        plan_mocks = PlanMocks()
        mocks.set_mocks(
            plan_mocks,
            project,
            stack,
            preview=False,
            monitor=RecordingMonitor(plan_mocks, recording),
        )
        loop.run_until_complete(
            run_pulumi_func(lambda: runpy.run_path(str(program), run_name="__main__"))
        )
        recording.outputs = loop.run_until_complete(_stack_outputs())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
    return recording


async def _stack_outputs() -> dict[str, Any]:
    root = settings.get_root_resource()
    outputs = {}
    for name, value in root.outputs.items():
        output = pulumi.Output.from_input(value)
        resolved = await output.future()
        outputs[name] = SECRET if await output.is_secret() else scrub_secrets(resolved)
    return outputs


def scrub_secrets(value: Any) -> Any:
    """Replace every secret value (and unknown) with a placeholder, recursively.

    A secret object keeps its keys (names are not secret) so that a Secret's manifest keeps
    its shape; every value inside becomes the placeholder."""
    if rpc.is_rpc_secret(value):
        return _masked(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: scrub_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_secrets(v) for v in value]
    if value is rpc.UNKNOWN or type(value).__name__ == "Unknown":
        return "[unknown]"
    if isinstance(value, pulumi.Resource):
        return f"[resource {type(value).__name__}]"
    return value


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return SECRET


# -- the azure-native SDK's own metadata ------------------------------------------------------

_AZURE_TOKEN = re.compile(r"^azure-native:(?P<module>[a-z0-9]+):(?P<resource>\w+)$")


@functools.cache
def azure_resource_class(token: str) -> type | None:
    """The installed SDK's class for an azure-native resource type token (None: not one)."""
    match = _AZURE_TOKEN.match(token)
    if not match:
        return None
    try:
        module = importlib.import_module(f"pulumi_azure_native.{match['module']}")
    except ModuleNotFoundError:
        return None
    resource = getattr(module, match["resource"], None)
    # The SDK marks each resource class with its token (@pulumi.type_token).
    if getattr(resource, "pulumi_type", None) != token:
        return None
    return resource


@functools.cache
def azure_args_class(token: str) -> type | None:
    """The resource's `@pulumi.input_type` arguments class (the one its __init__ takes)."""
    resource = azure_resource_class(token)
    if resource is None:
        return None
    module = sys.modules[resource.__module__]
    candidates = [
        getattr(module, name)
        for name in module.__all__
        if name != resource.__name__ and _types.is_input_type(getattr(module, name))
    ]
    return candidates[0] if len(candidates) == 1 else None


@functools.cache
def azure_name_input(token: str) -> str | None:
    """The input that names an azure-native resource, which Azure returns as `name`.

    The SDK's get function takes exactly the resource's path parameters (its name and its
    parents'). Of those, the parents are required inputs and the resource's own name is the
    one optional input: the provider names the resource itself when it is left out."""
    resource, args = azure_resource_class(token), azure_args_class(token)
    if resource is None or args is None:
        return None
    package, module_name = resource.__module__.rsplit(".", 1)
    try:
        getter = importlib.import_module(f"{package}.get_{module_name}")
    except ModuleNotFoundError:
        return None
    lookup = getattr(getter, f"get_{module_name}")
    path = set(inspect.signature(lookup).parameters) - {"opts"}
    names = _types.input_type_py_to_pulumi_names(args)
    optional = sorted(path & names.keys() - required_arguments(args))
    return names[optional[0]] if len(optional) == 1 else None


def required_arguments(input_type: type) -> set[str]:
    """The Python names of an input type's required properties: its __init__ parameters
    without a default (the SDK gives every optional one `= None`)."""
    parameters = inspect.signature(input_type.__init__).parameters.values()
    return {
        parameter.name
        for parameter in parameters
        if parameter.default is inspect.Parameter.empty
        and parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


# -- outputs a provider computes ------------------------------------------------------------

# What the cloud would fill in after creation, where the program reads it (a kubelet
# identity to grant a role, a random suffix in a name). Stand-ins, deterministic and
# recognisable; a resource type missing here simply echoes its inputs.
_MOCK_GUID = "00000000-0000-0000-0000-0000000000{:02d}"


def _managed_cluster_outputs(name: str, state: dict) -> dict:
    return {
        "identityProfile": {
            "kubeletidentity": {
                "objectId": _MOCK_GUID.format(1),
                "clientId": _MOCK_GUID.format(2),
                "resourceId": f"{name}-kubelet-identity-id",
            }
        },
        "oidcIssuerProfile": {
            **(state.get("oidcIssuerProfile") or {}),
            "issuerURL": f"https://offline-plan.oic.azure/{state.get('resourceName')}/",
        },
        "fqdn": f"{state.get('dnsPrefix')}.hcp.offline-plan.azmk8s.io",
    }


def _random_string_outputs(name: str, state: dict) -> dict:
    return {"result": "mock" + "0" * max(0, int(state.get("length", 4)) - 4)}


def _random_password_outputs(name: str, state: dict) -> dict:
    # RandomPassword's result is a secret: the plan shows "[secret]" wherever it flows.
    return {"result": "mock-password", "bcryptHash": "mock-hash"}


def _registry_outputs(name: str, state: dict) -> dict:
    return {"loginServer": f"{state.get('registryName')}.azurecr.io"}


def mock_identity_ids(name: str) -> tuple[str, str]:
    """A managed identity's principal and client ids, distinct per identity (derived from
    its resource name), so that the plan shows which identity each role, federated
    credential and SecretProviderClass names."""
    return (
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"offline-plan/principal/{name}")),
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"offline-plan/client/{name}")),
    )


def _identity_outputs(name: str, state: dict) -> dict:
    principal, client = mock_identity_ids(name)
    return {"principalId": principal, "clientId": client}


def _monitor_workspace_outputs(name: str, state: dict) -> dict:
    workspace = state.get("azureMonitorWorkspaceName")
    endpoint = f"https://{workspace}.{state.get('location')}.prometheus.offline-plan.azure"
    return {"metrics": {"prometheusQueryEndpoint": endpoint, "internalId": f"{name}-internal"}}


def _grafana_outputs(name: str, state: dict) -> dict:
    return {
        "identity": {**(state.get("identity") or {}), "principalId": _MOCK_GUID.format(7)},
        "properties": {
            **(state.get("properties") or {}),
            "endpoint": f"https://{state.get('workspaceName')}.offline-plan.grafana.azure",
        },
    }


COMPUTED_OUTPUTS = {
    "azure-native:containerservice:ManagedCluster": _managed_cluster_outputs,
    "azure-native:containerregistry:Registry": _registry_outputs,
    "azure-native:managedidentity:UserAssignedIdentity": _identity_outputs,
    "azure-native:monitor:AzureMonitorWorkspace": _monitor_workspace_outputs,
    "azure-native:dashboard:Grafana": _grafana_outputs,
    "random:index/randomString:RandomString": _random_string_outputs,
    "random:index/randomPassword:RandomPassword": _random_password_outputs,
}


# -- invoke responses ---------------------------------------------------------------------

# A stand-in CA: only ever copied into the kubeconfig, never used to connect.
_MOCK_CA = base64.b64encode(b"offline-plan mock certificate authority").decode()


def _aks_user_credentials(args: dict[str, Any]) -> dict[str, Any]:
    name = args.get("resourceName") or "cluster"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": f"https://{name}.hcp.offline-plan.azmk8s.io:443",
                    "certificate-authority-data": _MOCK_CA,
                },
            }
        ],
        "users": [{"name": "clusterUser", "user": {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "clusterUser"}}],
    }
    encoded = base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()
    return {"kubeconfigs": [{"name": "clusterUser", "value": encoded}]}


def _azure_client_config(_: dict[str, Any]) -> dict[str, Any]:
    zero = "00000000-0000-0000-0000-000000000000"
    return {"clientId": zero, "objectId": zero, "subscriptionId": zero, "tenantId": zero}


INVOKE_RESPONSES = {
    "azure-native:containerservice:listManagedClusterUserCredentials": _aks_user_credentials,
    "azure-native:authorization:getClientConfig": _azure_client_config,
}
