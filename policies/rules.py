"""The policy pack's rules: what this template promises, as pure functions over resources.

Each rule takes every resource a stack declares (a `ResourceView`: type, name, URN and
input properties, camelCase as the engine sees them) and returns its `Violation`s. Nothing
here imports Pulumi: `policies/__main__.py` adapts the policy engine's resources for
`pulumi preview --policy-pack policies`, and the tests adapt the offline plan's
`resources.json` (`ResourceView.from_plan`), so both run the same rules.

In the offline plan a value that Pulumi holds as a secret reads "[secret]". The policy
engine hands stack policies the plain value instead (pulumi_policy unwraps secrets): there
a Pulumi secret in a secret-bearing field is reported like any literal (stricter), but one
under an innocent key (a ConfigMap's data, an env value, Helm values) cannot be told from
any other string. That check holds in the offline plan only, which CI runs on every change.
"""

from __future__ import annotations

import functools
import re
import types as types_module
import typing
from collections import abc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

# The rules, by name (kebab-case, as `pulumi preview` reports them).
VLLM_ENDPOINT_AUTHENTICATED = "vllm-endpoint-authenticated"
AKS_LOCAL_ACCOUNTS_DISABLED = "aks-local-accounts-disabled"
KEY_VAULT_PURGE_PROTECTION = "key-vault-purge-protection"
NO_PLAINTEXT_SECRETS = "no-plaintext-secrets"
GPU_WORKLOADS_TOLERATE_GPU_TAINT = "gpu-workloads-tolerate-gpu-taint"
IMAGES_PINNED_IN_PROD = "images-pinned-in-prod"
HELM_CHART_VERSIONS_PINNED = "helm-chart-versions-pinned"

SECRET_PLACEHOLDER = "[secret]"

NAMESPACE = "kubernetes:core/v1:Namespace"
K8S_SECRET = "kubernetes:core/v1:Secret"
MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
KEY_VAULT = "azure-native:keyvault:Vault"
KEY_VAULT_SECRET = "azure-native:keyvault:Secret"
HELM_TYPES = frozenset(
    {
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:helm.sh/v3:Chart",
        "kubernetes:helm.sh/v4:Chart",
    }
)

ENVIRONMENT_LABEL = "slm-deploy/environment"
# local and dev relax cost, never security (the architecture principles): they may skip the
# controls that only protect shared or long-lived data (an API key on a private endpoint,
# purge protection on a vault that is torn down daily).
RELAXED_ENVIRONMENTS = frozenset({"local", "dev"})
PROD = "prod"

PART_OF_LABEL = "app.kubernetes.io/part-of"
PART_OF_VALUE = "slm-deploy"


# --- the resources, as every rule sees them -------------------------------------------------


@dataclass(frozen=True)
class ResourceView:
    """One declared resource: what the rules read, whichever engine produced it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]

    @classmethod
    def from_plan(cls, entry: Mapping[str, Any]) -> ResourceView:
        """An entry of the offline plan's resources.json (its `inputs` are the props)."""
        return cls(entry["type"], entry["name"], entry["urn"], entry.get("inputs") or {})

    @property
    def label(self) -> str:
        return f"{self.type} '{self.name}'"


@dataclass(frozen=True)
class Violation:
    rule: str
    urn: str
    message: str


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[Sequence[ResourceView]], list[Violation]]


def check(resources: Iterable[ResourceView]) -> list[Violation]:
    """Every rule over the same resources, in the order of RULES."""
    views = tuple(resources)
    return [violation for rule in RULES for violation in rule.check(views)]


def views_from_plan(entries: Iterable[Mapping[str, Any]]) -> list[ResourceView]:
    return [ResourceView.from_plan(entry) for entry in entries]


def stack_environment(resources: Iterable[ResourceView]) -> str:
    """The stack's tier, from the `slm-deploy/environment` label of its Namespaces.

    Every stack of this template labels its namespaces. A stack without the label (a fork
    that dropped it, or a resource set with no namespace) is judged as prod, the strictest
    tier, so that losing a label can never relax a rule. Namespaces that disagree are judged
    by the strictest of their labels for the same reason."""
    labels = {
        label
        for resource in resources
        if resource.type == NAMESPACE
        for label in [dig(resource.props, "metadata", "labels", ENVIRONMENT_LABEL)]
        if isinstance(label, str) and label
    }
    if not labels or PROD in labels:
        return PROD
    strict = sorted(labels - RELAXED_ENVIRONMENTS)
    return strict[0] if strict else sorted(labels)[0]


def dig(value: Any, *path: str | int) -> Any:
    """value[path[0]][path[1]]..., or None where any step is missing."""
    for step in path:
        if isinstance(value, Mapping) and isinstance(step, str):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _violation(rule: str, resource: ResourceView, text: str) -> Violation:
    return Violation(rule, resource.urn, f"{resource.label}: {text}")


# --- pod templates ----------------------------------------------------------------------------

# Where each workload kind keeps its pod template (metadata + spec); a Pod is its own.
POD_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template"),
    "kubernetes:batch/v1:Job": ("spec", "template"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template"),
    "kubernetes:core/v1:Pod": (),
}
CONTAINER_LISTS = ("initContainers", "containers")


@dataclass(frozen=True)
class PodTemplate:
    resource: ResourceView
    path: str  # of the pod spec, e.g. "spec.template.spec"
    labels: Mapping[str, Any]
    spec: Mapping[str, Any]

    def containers(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """(path, container) for every init container and container."""
        for key in CONTAINER_LISTS:
            for index, container in enumerate(_list(self.spec.get(key))):
                if isinstance(container, Mapping):
                    yield f"{self.path}.{key}[{index}]", container

    def container_label(self, path: str, container: Mapping[str, Any]) -> str:
        return f"container '{container.get('name')}' ({path})"


def pod_templates(resources: Iterable[ResourceView]) -> Iterator[PodTemplate]:
    for resource in resources:
        prefix = POD_TEMPLATE_PATHS.get(resource.type)
        if prefix is None:
            continue
        template = dig(resource.props, *prefix) if prefix else resource.props
        spec = dig(template, "spec")
        if isinstance(spec, Mapping):
            labels = dig(template, "metadata", "labels")
            path = ".".join((*prefix, "spec"))
            yield PodTemplate(resource, path, labels if isinstance(labels, Mapping) else {}, spec)


def image_repository(image: Any) -> str:
    """`registry/repo` of an image reference, without its tag or digest."""
    if not isinstance(image, str):
        return ""
    reference = image.split("@", 1)[0]
    head, _, last = reference.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


# --- a) vllm-endpoint-authenticated ----------------------------------------------------------

VLLM_API_KEY_ENV = "VLLM_API_KEY"
VLLM_SERVER_MARKERS = ("vllm.entrypoints.openai.api_server", "vllm serve")
VLLM_IMAGE_SUFFIX = "vllm-openai"
API_KEY_FLAG = "--api-key"
# `$(NAME)`: Kubernetes expands it from the container's env, so it is a reference.
ENV_EXPANSION = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)")


def command_words(container: Mapping[str, Any]) -> list[str]:
    """command + args, shell strings split on whitespace (`sh -c "vllm serve ..."`)."""
    items = _list(container.get("command")) + _list(container.get("args"))
    return [word for item in items if isinstance(item, str) for word in item.split()]


def runs_vllm_server(container: Mapping[str, Any]) -> bool:
    line = " ".join(command_words(container))
    return any(marker in line for marker in VLLM_SERVER_MARKERS) or image_repository(
        container.get("image")
    ).endswith(VLLM_IMAGE_SUFFIX)


def literal_flag_values(words: Sequence[str], flag: str) -> list[str]:
    """Values given to `flag` (as `flag=value` or `flag value`) that are not env expansions."""
    values = []
    for index, word in enumerate(words):
        if word.startswith(f"{flag}="):
            values.append(word.split("=", 1)[1])
        elif word == flag and index + 1 < len(words) and not words[index + 1].startswith("-"):
            values.append(words[index + 1])
    return [value for value in values if not ENV_EXPANSION.fullmatch(value)]


CONFIG_FLAG = "--config"
# Volumes whose files come from a Kubernetes Secret or the Secrets Store CSI driver.
SECRET_VOLUME_KINDS = ("secret", "csi")


def keys_file_from_secret(container: Mapping[str, Any], volumes: Sequence[Any]) -> bool:
    """vLLM reads its keys from `--config <file>` (its `api-key:` list) on a Secret or CSI
    volume: the keys file of components/secrets.py (several keys, one per consumer)."""
    words = command_words(container)
    if CONFIG_FLAG not in words or words.index(CONFIG_FLAG) + 1 >= len(words):
        return False
    path = words[words.index(CONFIG_FLAG) + 1]
    secret_volumes = {
        volume.get("name")
        for volume in volumes
        if isinstance(volume, Mapping) and any(kind in volume for kind in SECRET_VOLUME_KINDS)
    }
    return any(
        isinstance(mount, Mapping)
        and mount.get("name") in secret_volumes
        and path.startswith(str(mount.get("mountPath", "")).rstrip("/") + "/")
        for mount in _list(container.get("volumeMounts"))
    )


def api_key_problems(container: Mapping[str, Any], volumes: Sequence[Any] = ()) -> list[str]:
    entries = [
        entry
        for entry in _list(container.get("env"))
        if isinstance(entry, Mapping) and entry.get("name") == VLLM_API_KEY_ENV
    ]
    from_file = keys_file_from_secret(container, volumes)
    problems = [] if entries or from_file else [f"env {VLLM_API_KEY_ENV} is missing"]
    for entry in entries:
        if entry.get("value") is not None:
            problems.append(f"env {VLLM_API_KEY_ENV} has a literal value")
        elif not isinstance(dig(entry, "valueFrom", "secretKeyRef"), Mapping):
            problems.append(f"env {VLLM_API_KEY_ENV}.valueFrom is not a secretKeyRef")
    if literal_flag_values(command_words(container), API_KEY_FLAG):
        problems.append(f"args pass {API_KEY_FLAG} a literal")
    return problems


def check_vllm_endpoint_authenticated(resources: Sequence[ResourceView]) -> list[Violation]:
    environment = stack_environment(resources)
    if environment in RELAXED_ENVIRONMENTS:
        return []
    violations = []
    for pod in pod_templates(resources):
        for path, container in pod.containers():
            if not runs_vllm_server(container):
                continue
            for problem in api_key_problems(container, _list(pod.spec.get("volumes"))):
                violations.append(
                    _violation(
                        VLLM_ENDPOINT_AUTHENTICATED,
                        pod.resource,
                        f"{pod.container_label(path, container)} serves vLLM's OpenAI API in"
                        f" environment {environment} but {problem}; allowed: env"
                        f" {VLLM_API_KEY_ENV} with valueFrom.secretKeyRef (a Kubernetes Secret),"
                        f" or {CONFIG_FLAG} <file> on a Secret or CSI volume",
                    )
                )
    return violations


# --- b) aks-local-accounts-disabled ----------------------------------------------------------


def fields_not_true(
    resources: Sequence[ResourceView],
    resource_type: str,
    paths: Sequence[tuple[str, ...]],
    rule: str,
    allowed: str,
) -> list[Violation]:
    """A violation for each resource of `resource_type` whose field at a path is not true."""
    violations = []
    for resource in resources:
        if resource.type != resource_type:
            continue
        for path in paths:
            value = dig(resource.props, *path)
            if value is not True:
                text = f"{'.'.join(path)} is {value!r}{allowed}"
                violations.append(_violation(rule, resource, text))
    return violations


def check_aks_local_accounts_disabled(resources: Sequence[ResourceView]) -> list[Violation]:
    # Local accounts hand out a static cluster-admin kubeconfig that bypasses Entra ID and
    # Azure RBAC; a managed AAD profile is what makes Entra ID the only way in.
    return fields_not_true(
        resources,
        MANAGED_CLUSTER,
        (("disableLocalAccounts",), ("aadProfile", "managed")),
        AKS_LOCAL_ACCOUNTS_DISABLED,
        "; allowed: true (sign-in through Entra ID only, no local cluster-admin accounts)",
    )


# --- c) key-vault-purge-protection -----------------------------------------------------------


def check_key_vault_purge_protection(resources: Sequence[ResourceView]) -> list[Violation]:
    environment = stack_environment(resources)
    # RBAC authorization everywhere: access policies are a second, unaudited permission
    # model. Purge protection outside local/dev: a deleted vault (and the model-hub token
    # in it) stays recoverable, and nobody can purge it early.
    required = [("properties", "enableRbacAuthorization")]
    if environment not in RELAXED_ENVIRONMENTS:
        required.append(("properties", "enablePurgeProtection"))
    return fields_not_true(
        resources,
        KEY_VAULT,
        required,
        KEY_VAULT_PURGE_PROTECTION,
        f" in environment {environment}; allowed: true",
    )


# --- d) no-plaintext-secrets -----------------------------------------------------------------

# A key names a secret when it contains one of these words. Keys are compared lowercased
# with "-" and "_" removed, so apiKey, api_key, API-KEY and VLLM_API_KEY all read "apikey".
# "token" followed by "s" or "iz" is about language-model tokens (max-num-batched-tokens,
# TOKENIZERS_PARALLELISM), not credentials. "secretkey" is its own word (an S3 or Django
# secret key is a credential), so that only what follows it decides "secretKeyRef".
SECRET_WORDS = re.compile(
    r"password|passwd|secretkey|clientsecret|secret|token(?!s|iz)|apikey"
    r"|connectionstring|privatekey|accesskey"
)
# A secret-bearing key is a reference, not a value, when what follows its last secret word
# ends in one of these: it names or locates a secret (secretName, passwordKey: the key inside
# a Secret, secretKeyRef, tokenPath, passwordFile, secretProviderClass, secretObjects,
# accessKeyId, secretUri, passwordFromEnv...), or describes one (secretType, passwordLength,
# tokenAudience, tokenTTL, tokenExpirationSeconds, enableSecretRotation, secretVersion).
REFERENCE_ENDINGS = (
    "name",
    "names",
    "ref",
    "refs",
    "key",
    "keys",
    "path",
    "paths",
    "file",
    "files",
    "dir",
    "class",
    "provider",
    "objects",
    "mount",
    "mounts",
    "volume",
    "volumes",
    "id",
    "ids",
    "uri",
    "url",
    "namespace",
    "type",
    "store",
    "fromenv",
    "audience",
    "audiences",
    "rotation",
    "version",
    "length",
    "ttl",
    "seconds",
    "enabled",
)
# A bare plural (imagePullSecrets, secrets) lists references to Secrets.
REFERENCE_SUFFIXES = frozenset({"s"})
# existingSecret, existingSecretPasswordKey...: the chart reads a Secret that exists.
REFERENCE_PREFIXES = ("existing",)
# Flags that Kubernetes and Helm carry as strings ("enableSecretRotation": "true").
FLAG_VALUES = frozenset({"true", "false", "yes", "no"})

# Where a clear value is what the resource is for: the secret stores themselves. A path
# prefix of () covers the whole resource.
SECRET_STORE_PATHS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    K8S_SECRET: (("data",), ("stringData",)),
    KEY_VAULT_SECRET: (("properties", "value"),),
}
RANDOM_PROVIDER_PREFIX = "random:"

# Well-known credential shapes, reported wherever they appear outside a store.
SECRET_SHAPES: Mapping[str, re.Pattern[str]] = {
    "Hugging Face token": re.compile(r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}"),
    "OpenAI-style API key": re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]*?[A-Za-z0-9]{20,}"),
    "GitHub token": re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,}"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "Azure storage account key": re.compile(r"AccountKey=[A-Za-z0-9+/]{40,}={0,2}"),
}

Path = tuple[str | int, ...]


def secret_bearing_key(key: str) -> bool:
    """Whether a field or env var of this name holds a secret value (not a reference to one).

    Label and annotation keys are judged by their name after the last "/", so that a
    prefix like secrets-store.csi.k8s.io/ does not make every such key secret-bearing."""
    normalized = key.rsplit("/", 1)[-1].lower().replace("-", "").replace("_", "")
    matches = list(SECRET_WORDS.finditer(normalized))
    if not matches or normalized.startswith(REFERENCE_PREFIXES):
        return False
    suffix = normalized[matches[-1].end() :]
    if not suffix:
        return True
    return not (suffix in REFERENCE_SUFFIXES or suffix.endswith(REFERENCE_ENDINGS))


def clear_value(value: Any) -> bool:
    """A literal that could be a credential: not empty, a flag, an expansion or a placeholder."""
    return (
        isinstance(value, str)
        and value.strip() != ""
        and value != SECRET_PLACEHOLDER
        and value.strip().lower() not in FLAG_VALUES
        and not ENV_EXPANSION.fullmatch(value.strip())
    )


def walk(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every node of a props tree with its path, depth first."""
    yield path, value
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from walk(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from walk(child, (*path, index))


def dotted(path: Path) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text or "(props)"


def store_paths(resource: ResourceView) -> tuple[Path, ...]:
    if resource.type.startswith(RANDOM_PROVIDER_PREFIX):
        return ((),)
    return SECRET_STORE_PATHS.get(resource.type, ())


def under(path: Path, prefixes: Iterable[Path]) -> bool:
    return any(path[: len(prefix)] == prefix for prefix in prefixes)


def clear_text_roots(resource: ResourceView) -> tuple[Path, ...]:
    """Where Kubernetes keeps what it is given in clear text, readable by anyone who can read
    the object: every Kubernetes object but a Secret (ConfigMaps, pod specs with their env,
    labels and annotations, custom resources), and the values of a Helm chart or release."""
    if resource.type in HELM_TYPES:
        return (("values",),)
    if resource.type.startswith("kubernetes:") and resource.type != K8S_SECRET:
        return ((),)
    return ()


# --- enums the azure-native SDK declares ----------------------------------------------------

AZURE_NATIVE_PREFIX = "azure-native:"
AZURE_NATIVE_PACKAGE = "pulumi_azure_native"


def declared_enum_values(resource_type: str, path: Path) -> frozenset[str]:
    """The values of the enum that the installed azure-native SDK declares for the input at
    `path` of `resource_type` ("azure-native:<module>:<Resource>"); empty where it declares
    none, or where the SDK does not know the type or the path.

    Read from the SDK's own Python types, the ones `pulumi up` serializes the inputs with:
    the resource's `<Resource>Args` input type, each property's getter name and annotation,
    and the `Enum` classes of its `_enums.py`. So an SDK upgrade that turns a switch into a
    free string (or back) changes what passes here without an edit. Only a value the enum
    lists is set aside: azure-native enums are open (`Union[str, Enum]`), so any other
    string in that field is still judged like any literal."""
    if not resource_type.startswith(AZURE_NATIVE_PREFIX):
        return frozenset()
    types = _sdk_input_type(resource_type)
    for step in path:
        types = _sdk_member_types(types, step)
    return frozenset(
        member.value
        for typ in _sdk_alternatives(types)
        if isinstance(typ, type) and issubclass(typ, Enum)
        for member in typ
        if isinstance(member.value, str)
    )


@functools.cache
def _sdk_input_type(resource_type: str) -> tuple[Any, ...]:
    """The SDK's `<Resource>Args` class for this type token, if the SDK declares it."""
    # Imported here, not at the top: only a secret-bearing azure-native field with a clear
    # value asks the SDK, and the rules stay importable (and their other checks runnable)
    # where the SDK is not installed; there no enum is known and every such field is reported.
    import importlib

    from pulumi.type_token import get_type_token

    parts = resource_type.split(":")
    if len(parts) != 3:
        return ()
    _, module_name, resource_name = parts
    try:
        module = importlib.import_module(f"{AZURE_NATIVE_PACKAGE}.{module_name.replace('/', '.')}")
    except ImportError:
        return ()
    resource_class = getattr(module, resource_name, None)
    args = getattr(module, f"{resource_name}Args", None)
    if resource_class is None or get_type_token(resource_class) != resource_type:
        return ()
    return () if args is None else (args,)


def _sdk_member_types(types: tuple[Any, ...], step: str | int) -> tuple[Any, ...]:
    """The types a property name (or list index) leads to from `types`."""
    from pulumi._types import input_type_types, is_input_type

    found: list[Any] = []
    for typ in _sdk_alternatives(types):
        origin, args = typing.get_origin(typ), typing.get_args(typ)
        if isinstance(step, str) and isinstance(typ, type) and is_input_type(typ):
            found.extend(_present(input_type_types(typ).get(step)))
        elif isinstance(step, str) and origin in (abc.Mapping, dict) and len(args) == 2:
            found.append(args[1])
        elif isinstance(step, int) and origin in (abc.Sequence, list) and args:
            found.append(args[0])
    return tuple(found)


def _sdk_alternatives(types: Iterable[Any]) -> Iterator[Any]:
    """Each concrete type of an SDK annotation: Union, Optional, Input and Awaitable unwrapped."""
    for typ in types:
        origin = typing.get_origin(typ)
        if origin in (typing.Union, types_module.UnionType):
            yield from _sdk_alternatives(typing.get_args(typ))
        elif origin is abc.Awaitable:
            yield from _sdk_alternatives(typing.get_args(typ)[:1])
        else:
            yield typ


def _present(typ: Any) -> tuple[Any, ...]:
    return () if typ is None else (typ,)


def secret_field_findings(
    path: Path, value: Any, resource_type: str = ""
) -> Iterator[tuple[Path, str]]:
    """(path, what) for each secret-bearing field at this node that holds a clear value.

    A field whose provider declares it an enum and that holds one of the enum's values is a
    switch, not a credential (Managed Grafana's apiKey: Enabled or Disabled)."""
    key = path[-1] if path else None
    if (
        isinstance(key, str)
        and secret_bearing_key(key)
        and clear_value(value)
        and value not in declared_enum_values(resource_type, path)
    ):
        yield path, f"field '{key}' holds a literal secret"
    if isinstance(value, Mapping):
        name, literal = value.get("name"), value.get("value")
        # {"name": "HF_TOKEN", "value": "..."}: a container env entry, or a Helm `set` pair.
        if isinstance(name, str) and secret_bearing_key(name) and clear_value(literal):
            yield (*path, "value"), f"env {name} has a literal value"
    if isinstance(key, str) and (key in ("command", "args") or key.endswith("Args")):
        words = [item for item in _list(value) if isinstance(item, str)]
        for flag in dict.fromkeys(word.split("=", 1)[0] for word in words):
            if not (flag.startswith("-") and secret_bearing_key(flag.lstrip("-"))):
                continue
            if any(clear_value(literal) for literal in literal_flag_values(words, flag)):
                yield path, f"argument {flag} is given a literal secret"


def shape_findings(path: Path, value: Any) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        for kind, pattern in SECRET_SHAPES.items():
            if pattern.search(value):
                yield path, f"holds a value shaped like a {kind}"


def plaintext_findings(resource: ResourceView) -> Iterator[tuple[Path, str]]:
    stores = store_paths(resource)
    clear_roots = clear_text_roots(resource)
    for path, value in walk(resource.props):
        if under(path, stores):
            continue
        yield from secret_field_findings(path, value, resource.type)
        yield from shape_findings(path, value)
        if value == SECRET_PLACEHOLDER and under(path, clear_roots):
            yield path, "holds a Pulumi secret where Kubernetes stores it in clear text"


def check_no_plaintext_secrets(resources: Sequence[ResourceView]) -> list[Violation]:
    allowed = (
        "allowed: a reference to a Secret (env valueFrom.secretKeyRef, existingSecret,"
        " secretName, a Key Vault object) or, outside Kubernetes objects and Helm values,"
        " a Pulumi secret"
    )
    violations = []
    for resource in resources:
        seen = set()
        for path, what in plaintext_findings(resource):
            if (path, what) not in seen:
                seen.add((path, what))
                violations.append(
                    _violation(NO_PLAINTEXT_SECRETS, resource, f"{dotted(path)}: {what}; {allowed}")
                )
    return violations


# --- e) gpu-workloads-tolerate-gpu-taint -----------------------------------------------------

GPU_RESOURCE = "nvidia.com/gpu"
# GPU pools carry the taint nvidia.com/gpu=present:NoSchedule (components/gpu_pool.py), so
# that nothing but GPU work lands on the expensive nodes. A toleration matches it with
# operator Exists, or Equal (the default operator), for effect NoSchedule or every effect.
TOLERATED_EFFECTS = frozenset({None, "", "NoSchedule"})
TOLERATING_OPERATORS = frozenset({"Exists", "Equal"})


def requests_gpu(container: Mapping[str, Any]) -> bool:
    for section in ("requests", "limits"):
        quantity = dig(container, "resources", section, GPU_RESOURCE)
        if quantity is not None and str(quantity).strip() not in ("", "0"):
            return True
    return False


def tolerates_gpu_taint(spec: Mapping[str, Any]) -> bool:
    return any(
        isinstance(toleration, Mapping)
        and toleration.get("key") == GPU_RESOURCE
        and toleration.get("operator", "Equal") in TOLERATING_OPERATORS
        and toleration.get("effect") in TOLERATED_EFFECTS
        for toleration in _list(spec.get("tolerations"))
    )


def check_gpu_workloads_tolerate_gpu_taint(resources: Sequence[ResourceView]) -> list[Violation]:
    violations = []
    for pod in pod_templates(resources):
        gpu_containers = [
            str(container.get("name"))
            for _, container in pod.containers()
            if requests_gpu(container)
        ]
        if gpu_containers and not tolerates_gpu_taint(pod.spec):
            violations.append(
                _violation(
                    GPU_WORKLOADS_TOLERATE_GPU_TAINT,
                    pod.resource,
                    f"{pod.path}.tolerations lacks the GPU taint {GPU_RESOURCE} while containers"
                    f" {', '.join(gpu_containers)} request {GPU_RESOURCE}; allowed: a toleration"
                    f" with key {GPU_RESOURCE}, operator Exists or Equal, effect NoSchedule or"
                    " none",
                )
            )
    return violations


# --- f) images-pinned-in-prod ----------------------------------------------------------------

PINNED_IMAGE = re.compile(r".+@sha256:[0-9a-f]{64}")


def check_images_pinned_in_prod(resources: Sequence[ResourceView]) -> list[Violation]:
    # A tag can be moved to other bytes; a digest cannot. Only the pod templates this
    # template declares: charts pin their own images through the chart version (rule g).
    if stack_environment(resources) != PROD:
        return []
    violations = []
    for pod in pod_templates(resources):
        if pod.labels.get(PART_OF_LABEL) != PART_OF_VALUE:
            continue
        for path, container in pod.containers():
            image = container.get("image")
            # A non-string image is unknown during preview; `pulumi up` checks the value.
            if isinstance(image, str) and not PINNED_IMAGE.fullmatch(image):
                violations.append(
                    _violation(
                        IMAGES_PINNED_IN_PROD,
                        pod.resource,
                        f"{pod.container_label(path, container)} image is {image!r} in"
                        " environment prod; allowed: an image pinned by digest"
                        " (<image>@sha256:<64 hex>)",
                    )
                )
    return violations


# --- g) helm-chart-versions-pinned -----------------------------------------------------------

# One exact SemVer version (an optional "v", an optional pre-release and build): Helm reads
# anything else (empty, "latest", ^1.2, ~1.2, >=1, 1.x, "1 || 2", 1.2) as a constraint and
# installs whatever newest chart matches it on the day.
EXACT_VERSION = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)


def check_helm_chart_versions_pinned(resources: Sequence[ResourceView]) -> list[Violation]:
    violations = []
    for resource in resources:
        if resource.type not in HELM_TYPES:
            continue
        version = resource.props.get("version")
        if not (isinstance(version, str) and EXACT_VERSION.fullmatch(version)):
            violations.append(
                _violation(
                    HELM_CHART_VERSIONS_PINNED,
                    resource,
                    f"version is {version!r} (chart {resource.props.get('chart')!r}); allowed:"
                    " one exact version such as 92.2.0 or v1.2.3, not empty, latest or a range",
                )
            )
    return violations


# --- the pack ------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule(
        VLLM_ENDPOINT_AUTHENTICATED,
        "Outside local and dev, every vLLM OpenAI server takes its API key from a Kubernetes"
        " Secret (env VLLM_API_KEY, valueFrom.secretKeyRef), never a literal.",
        check_vllm_endpoint_authenticated,
    ),
    Rule(
        AKS_LOCAL_ACCOUNTS_DISABLED,
        "Every AKS cluster disables local accounts and signs in through Entra ID"
        " (disableLocalAccounts true, aadProfile.managed true).",
        check_aks_local_accounts_disabled,
    ),
    Rule(
        KEY_VAULT_PURGE_PROTECTION,
        "Every Key Vault uses RBAC authorization; outside local and dev it also has purge"
        " protection.",
        check_key_vault_purge_protection,
    ),
    Rule(
        NO_PLAINTEXT_SECRETS,
        "No secret in clear text in any resource input: secret-bearing fields and env vars"
        " reference a Secret, and no Pulumi secret lands where Kubernetes stores it in clear.",
        check_no_plaintext_secrets,
    ),
    Rule(
        GPU_WORKLOADS_TOLERATE_GPU_TAINT,
        "Every pod that requests nvidia.com/gpu tolerates the GPU pools' nvidia.com/gpu taint.",
        check_gpu_workloads_tolerate_gpu_taint,
    ),
    Rule(
        IMAGES_PINNED_IN_PROD,
        "In prod, every image of the template's own pods is pinned by sha256 digest.",
        check_images_pinned_in_prod,
    ),
    Rule(
        HELM_CHART_VERSIONS_PINNED,
        "Every Helm chart and release pins one exact chart version.",
        check_helm_chart_versions_pinned,
    ),
)
