"""The policy pack: every rule on minimal resources, every stack's plan, and the pack's wiring."""

from __future__ import annotations

import ast
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pulumi_policy
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policies import rules
from policies.rules import ResourceView
from tests.conftest import STACKS, read_stack, write_stack
from tools.plan import ROOT, build_plan

POLICIES = ROOT / "policies"
DIGEST = "sha256:" + "0" * 64
VLLM_IMAGE = "vllm/vllm-openai:v0.32.0"
SECRET_REF = {"secretKeyRef": {"name": "slm-api-key", "key": "api-key"}}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


# --- minimal resources -----------------------------------------------------------------------


def view(type_: str, props: dict[str, Any], name: str = "r") -> ResourceView:
    return ResourceView(
        type=type_, name=name, urn=f"urn:pulumi:test::slm-deploy::{type_}::{name}", props=props
    )


def namespace(environment: str) -> ResourceView:
    labels = {rules.ENVIRONMENT_LABEL: environment}
    return view(rules.NAMESPACE, {"metadata": {"name": "ns", "labels": labels}}, name="ns")


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "main", "image": "busybox:1.37", **fields}


def vllm_container(**fields: Any) -> dict[str, Any]:
    base = {
        "name": "vllm",
        "image": VLLM_IMAGE,
        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        "env": [{"name": "VLLM_API_KEY", "valueFrom": SECRET_REF}],
    }
    return base | fields


def deployment(
    *containers: dict[str, Any],
    tolerations: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
    name: str = "app",
) -> ResourceView:
    spec: dict[str, Any] = {"containers": list(containers)}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if init_containers is not None:
        spec["initContainers"] = init_containers
    metadata = {"labels": labels or {rules.PART_OF_LABEL: rules.PART_OF_VALUE}}
    if annotations:
        metadata["annotations"] = annotations
    props = {"kind": "Deployment", "spec": {"template": {"metadata": metadata, "spec": spec}}}
    return view("kubernetes:apps/v1:Deployment", props, name=name)


def helm_release(values: dict[str, Any], version: Any = "92.2.0") -> ResourceView:
    props = {"chart": "kube-prometheus-stack", "version": version, "values": values}
    return view("kubernetes:helm.sh/v3:Release", props, name="kps")


def config_map(data: dict[str, str]) -> ResourceView:
    return view("kubernetes:core/v1:ConfigMap", {"kind": "ConfigMap", "data": data}, name="cm")


def k8s_secret(string_data: dict[str, str]) -> ResourceView:
    return view(rules.K8S_SECRET, {"kind": "Secret", "stringData": string_data}, name="sec")


def cluster(**props: Any) -> ResourceView:
    base = {"disableLocalAccounts": True, "aadProfile": {"managed": True, "enableAzureRBAC": True}}
    return view(rules.MANAGED_CLUSTER, base | props, name="aks")


def vault(**properties: Any) -> ResourceView:
    base = {
        "enableRbacAuthorization": True,
        "enablePurgeProtection": True,
        "enableSoftDelete": True,
    }
    return view(rules.KEY_VAULT, {"vaultName": "kv", "properties": base | properties}, name="kv")


def violations_of(rule_name: str, *resources: ResourceView) -> list[rules.Violation]:
    rule = next(rule for rule in rules.RULES if rule.name == rule_name)
    found = rule.check(list(resources))
    assert all(violation.rule == rule_name for violation in found)
    return found


def messages(rule_name: str, *resources: ResourceView) -> list[str]:
    return [violation.message for violation in violations_of(rule_name, *resources)]


# --- the environment -------------------------------------------------------------------------


def test_environment_comes_from_the_namespace_label() -> None:
    assert rules.stack_environment([namespace("dev")]) == "dev"
    assert rules.stack_environment([namespace("staging")]) == "staging"


def test_environment_without_a_label_is_the_strictest() -> None:
    assert rules.stack_environment([]) == "prod"
    unlabelled = view(rules.NAMESPACE, {"metadata": {"name": "x"}})
    assert rules.stack_environment([unlabelled]) == "prod"


def test_disagreeing_namespaces_are_judged_by_the_strictest() -> None:
    assert rules.stack_environment([namespace("dev"), namespace("staging")]) == "staging"
    assert rules.stack_environment([namespace("staging"), namespace("prod")]) == "prod"


# --- a) vllm-endpoint-authenticated ----------------------------------------------------------

VLLM = rules.VLLM_ENDPOINT_AUTHENTICATED


def test_vllm_key_from_a_secret_passes() -> None:
    assert violations_of(VLLM, namespace("prod"), deployment(vllm_container())) == []


def test_vllm_key_as_a_literal_fails() -> None:
    literal = vllm_container(env=[{"name": "VLLM_API_KEY", "value": "hunter2-hunter2"}])
    [message] = messages(VLLM, namespace("staging"), deployment(literal))
    assert "env VLLM_API_KEY has a literal value" in message
    assert "valueFrom.secretKeyRef" in message
    assert "'vllm'" in message and "spec.template.spec.containers[0]" in message
    assert "hunter2" not in message


def test_vllm_key_as_a_pulumi_secret_in_env_value_fails() -> None:
    placeholder = vllm_container(env=[{"name": "VLLM_API_KEY", "value": "[secret]"}])
    [message] = messages(VLLM, namespace("prod"), deployment(placeholder))
    assert "literal value" in message


def test_vllm_without_a_key_fails() -> None:
    [message] = messages(VLLM, namespace("prod"), deployment(vllm_container(env=[])))
    assert "env VLLM_API_KEY is missing" in message


def test_vllm_key_from_a_config_map_fails() -> None:
    entry = {"name": "VLLM_API_KEY", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
    [message] = messages(VLLM, namespace("prod"), deployment(vllm_container(env=[entry])))
    assert "VLLM_API_KEY.valueFrom is not a secretKeyRef" in message


@pytest.mark.parametrize("args", [["--api-key=abc123"], ["--api-key", "abc123"]])
def test_vllm_api_key_argument_with_a_literal_fails(args: list[str]) -> None:
    [message] = messages(VLLM, namespace("prod"), deployment(vllm_container(args=args)))
    assert "args pass --api-key a literal" in message
    assert "abc123" not in message


def test_vllm_api_key_argument_expanded_from_env_passes() -> None:
    server = vllm_container(args=["--api-key=$(VLLM_API_KEY)"])
    assert violations_of(VLLM, namespace("prod"), deployment(server)) == []


@pytest.mark.parametrize(
    "server",
    [
        container(command=["vllm", "serve", "Qwen/Qwen3-8B"]),
        container(command=["/bin/sh", "-c", "exec vllm serve Qwen/Qwen3-8B"]),
        container(image=f"registry.example.com/vllm/vllm-openai@{DIGEST}"),
        container(image="localhost:5000/vllm-openai:v0.32.0"),
    ],
    ids=["vllm-serve", "shell", "image-digest", "image-registry-port"],
)
def test_vllm_servers_are_recognised_by_command_or_image(server: dict[str, Any]) -> None:
    [message] = messages(VLLM, namespace("prod"), deployment(server))
    assert "VLLM_API_KEY is missing" in message


def test_other_containers_need_no_vllm_key() -> None:
    ollama = container(image="ollama/ollama:0.31.1", command=["/bin/ollama"], args=["serve"])
    assert violations_of(VLLM, namespace("prod"), deployment(ollama)) == []


@pytest.mark.parametrize("environment", ["local", "dev"])
def test_local_and_dev_may_serve_vllm_without_a_key(environment: str) -> None:
    assert violations_of(VLLM, namespace(environment), deployment(vllm_container(env=[]))) == []


def test_vllm_without_an_environment_label_is_judged_as_prod() -> None:
    assert len(violations_of(VLLM, deployment(vllm_container(env=[])))) == 1


def test_vllm_in_a_bare_pod_and_an_init_container_is_checked() -> None:
    pod = view(
        "kubernetes:core/v1:Pod", {"kind": "Pod", "spec": {"containers": [vllm_container(env=[])]}}
    )
    [message] = messages(VLLM, namespace("prod"), pod)
    assert "(spec.containers[0])" in message
    sidecar = deployment(container(), init_containers=[vllm_container(env=[])])
    [message] = messages(VLLM, namespace("prod"), sidecar)
    assert "spec.template.spec.initContainers[0]" in message


# --- b) aks-local-accounts-disabled ----------------------------------------------------------

AKS = rules.AKS_LOCAL_ACCOUNTS_DISABLED


def test_aks_with_entra_id_only_passes() -> None:
    assert violations_of(AKS, namespace("dev"), cluster()) == []


def test_aks_with_local_accounts_fails_in_every_environment() -> None:
    [message] = messages(AKS, namespace("local"), cluster(disableLocalAccounts=False))
    assert "disableLocalAccounts is False" in message and "allowed: true" in message


def test_aks_without_a_managed_aad_profile_fails() -> None:
    [message] = messages(AKS, namespace("dev"), cluster(aadProfile=None))
    assert "aadProfile.managed is None" in message
    both = cluster(disableLocalAccounts=None, aadProfile={"managed": False})
    assert len(violations_of(AKS, both)) == 2


# --- c) key-vault-purge-protection -----------------------------------------------------------

VAULT = rules.KEY_VAULT_PURGE_PROTECTION


def test_vault_with_rbac_and_purge_protection_passes() -> None:
    assert violations_of(VAULT, namespace("prod"), vault()) == []


def test_vault_without_purge_protection_fails_outside_local_and_dev() -> None:
    [message] = messages(VAULT, namespace("staging"), vault(enablePurgeProtection=None))
    assert "properties.enablePurgeProtection is None in environment staging" in message


def test_dev_vault_may_skip_purge_protection_but_not_rbac() -> None:
    assert violations_of(VAULT, namespace("dev"), vault(enablePurgeProtection=False)) == []
    [message] = messages(VAULT, namespace("dev"), vault(enableRbacAuthorization=False))
    assert "properties.enableRbacAuthorization is False in environment dev" in message


# --- d) no-plaintext-secrets -----------------------------------------------------------------

SECRETS = rules.NO_PLAINTEXT_SECRETS


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "adminPassword",
        "passwd",
        "secret",
        "clientSecret",
        "token",
        "hfToken",
        "HF_TOKEN",
        "apiKey",
        "api_key",
        "api-key",
        "VLLM_API_KEY",
        "connectionString",
        "privateKey",
        "accessKey",
        "secretKey",
        "apiKeySecret",
    ],
)
def test_secret_bearing_keys(key: str) -> None:
    assert rules.secret_bearing_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "secretName",
        "existingSecret",
        "existingSecretPasswordKey",
        "passwordKey",
        "userKey",
        "tokenKey",
        "secretKeyRef",
        "secretRef",
        "nodePublishSecretRef",
        "secretProviderClass",
        "secretObjects",
        "imagePullSecrets",
        "passwordFile",
        "AZURE_FEDERATED_TOKEN_FILE",
        "tokenPath",
        "mountPath",
        "accessKeyId",
        "secretType",
        "enableSecretRotation",
        "max-num-batched-tokens",
        "TOKENIZERS_PARALLELISM",
        "secrets-store.csi.k8s.io/used",
        "azure.workload.identity/client-id",
        "kubeconfig",
        "name",
    ],
)
def test_reference_and_unrelated_keys(key: str) -> None:
    assert not rules.secret_bearing_key(key)


@pytest.mark.parametrize(
    "values",
    [
        {
            "grafana": {
                "admin": {
                    "existingSecret": "grafana-admin",
                    "passwordKey": "admin-password",
                    "userKey": "admin-user",
                }
            }
        },
        {"auth": {"secretName": "db", "existingSecretPasswordKey": "password"}},
        {"env": [{"name": "HF_TOKEN", "valueFrom": SECRET_REF}]},
    ],
    ids=["grafana-existing-secret", "bitnami-style", "env-secret-ref"],
)
def test_references_in_helm_values_pass(values: dict[str, Any]) -> None:
    assert violations_of(SECRETS, helm_release(values)) == []


def test_literal_password_in_helm_values_fails() -> None:
    [message] = messages(SECRETS, helm_release({"grafana": {"adminPassword": "prom-operator"}}))
    assert "values.grafana.adminPassword" in message and "'adminPassword'" in message
    assert "prom-operator" not in message
    assert "existingSecret" in message  # what is allowed instead


def test_pulumi_secret_in_helm_values_fails() -> None:
    [message] = messages(SECRETS, helm_release({"grafana": {"adminPassword": "[secret]"}}))
    assert "values.grafana.adminPassword" in message and "clear text" in message


def test_pulumi_secret_in_a_helm_repository_password_passes() -> None:
    release = view(
        "kubernetes:helm.sh/v3:Release",
        {
            "chart": "c",
            "version": "1.0.0",
            "repositoryOpts": {"repo": "https://x", "password": "[secret]"},
        },
    )
    assert violations_of(SECRETS, release) == []


def test_pulumi_secret_in_a_config_map_fails() -> None:
    [message] = messages(SECRETS, config_map({"password": "[secret]"}))
    assert "data.password" in message and "clear text" in message
    [message] = messages(SECRETS, config_map({"settings.json": "[secret]"}))
    assert "data.settings.json" in message


def test_literal_password_in_a_config_map_fails() -> None:
    [message] = messages(SECRETS, config_map({"DB_PASSWORD": "s3cr3t-value"}))
    assert "data.DB_PASSWORD" in message and "literal secret" in message


def test_pulumi_secret_and_literals_in_a_kubernetes_secret_pass() -> None:
    assert (
        violations_of(SECRETS, k8s_secret({"api-key": "[secret]", "admin-password": "[secret]"}))
        == []
    )
    assert violations_of(SECRETS, k8s_secret({"HF_TOKEN": "hf_" + "a" * 34})) == []


def test_secret_metadata_is_still_checked() -> None:
    secret = view(
        rules.K8S_SECRET,
        {
            "metadata": {"annotations": {"token": "abc-literal"}},
            "stringData": {"token": "[secret]"},
        },
    )
    [message] = messages(SECRETS, secret)
    assert "metadata.annotations.token" in message


@pytest.mark.parametrize("name", ["TOKEN", "HF_TOKEN", "DB_PASSWORD", "OPENAI_API_KEY"])
def test_env_literal_with_a_secret_name_fails(name: str) -> None:
    app = deployment(container(env=[{"name": name, "value": "abc-literal"}]))
    [message] = messages(SECRETS, app)
    assert (
        f"spec.template.spec.containers[0].env[0].value: env {name} has a literal value" in message
    )
    assert "abc-literal" not in message


def test_env_pulumi_secret_value_fails_whatever_its_name() -> None:
    app = deployment(container(env=[{"name": "SETTINGS", "value": "[secret]"}]))
    [message] = messages(SECRETS, app)
    assert "spec.template.spec.containers[0].env[0].value" in message and "clear text" in message


def test_env_from_a_secret_and_ordinary_env_pass() -> None:
    env = [
        {"name": "HF_TOKEN", "valueFrom": SECRET_REF},
        {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "TOKEN_PATH", "value": "/var/run/secrets/token"},
    ]
    assert violations_of(SECRETS, deployment(container(env=env))) == []


def test_pulumi_secret_in_pod_annotations_and_labels_fails() -> None:
    app = deployment(container(), annotations={"checksum/config": "[secret]"})
    [message] = messages(SECRETS, app)
    assert "spec.template.metadata.annotations.checksum/config" in message
    app = deployment(container(), labels={"owner": "[secret]"})
    assert len(violations_of(SECRETS, app)) == 1


@pytest.mark.parametrize(
    "args", [["--hf-token=abc-literal"], ["--password", "abc-literal"], ["--api-key=abc-literal"]]
)
def test_secret_flags_with_literals_in_args_fail(args: list[str]) -> None:
    [message] = messages(SECRETS, deployment(container(args=args)))
    assert "spec.template.spec.containers[0].args" in message and "literal secret" in message


def test_ordinary_args_pass() -> None:
    args = [
        "--max-num-batched-tokens=2048",
        "--tokenizer-mode",
        "auto",
        "--use-token",
        "--port=8000",
    ]
    assert violations_of(SECRETS, deployment(container(args=args))) == []


def test_pulumi_secrets_outside_kubernetes_pass() -> None:
    provider = view("pulumi:providers:kubernetes", {"kubeconfig": "[secret]"}, name="k8s")
    kv_secret = view(
        rules.KEY_VAULT_SECRET, {"secretName": "hf-token", "properties": {"value": "[secret]"}}
    )
    aks = cluster(windowsProfile={"adminUsername": "azureuser", "adminPassword": "[secret]"})
    assert violations_of(SECRETS, provider, kv_secret, aks) == []


def test_literal_password_on_an_azure_resource_fails() -> None:
    aks = cluster(
        windowsProfile={"adminUsername": "azureuser", "adminPassword": "P@ssw0rd-literal"}
    )
    [message] = messages(SECRETS, aks)
    assert "windowsProfile.adminPassword" in message


def test_random_resources_and_key_vault_secret_values_are_stores() -> None:
    password = view(
        "random:index/randomPassword:RandomPassword", {"length": 32, "password": "x" * 10}
    )
    kv_secret = view(rules.KEY_VAULT_SECRET, {"properties": {"value": "hf_" + "b" * 34}})
    assert violations_of(SECRETS, password, kv_secret) == []


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("hf_" + "AbC1" * 9, "Hugging Face token"),
        ("Bearer sk-" + "x1Y2" * 6, "OpenAI-style API key"),
        ("ghp_" + "a" * 36, "GitHub token"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "private key"),
        (
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=" + "A" * 86 + "==",
            "Azure storage account key",
        ),
    ],
)
def test_well_known_secret_shapes_fail_anywhere(value: str, kind: str) -> None:
    [message] = messages(SECRETS, config_map({"notes.txt": value}))
    assert "data.notes.txt" in message and kind in message
    assert value not in message


def test_lookalikes_are_not_secret_shapes() -> None:
    cm = config_map({"a": "disk-" + "a" * 30, "b": "hf_short", "c": "task-sk-" + "x" * 10})
    assert violations_of(SECRETS, cm) == []


GRAFANA = "azure-native:dashboard:Grafana"


def grafana(api_key: Any) -> ResourceView:
    """Managed Grafana as components/monitoring.py declares it (azure-managed mode)."""
    properties = {"grafanaMajorVersion": "11", "apiKey": api_key}
    return view(GRAFANA, {"workspaceName": "graf-slm-dev", "properties": properties}, name="graf")


@pytest.mark.parametrize("switch", ["Disabled", "Enabled"])
def test_an_enum_switch_named_like_a_secret_passes(switch: str) -> None:
    """Managed Grafana's apiKey is the SDK's ApiKey enum (Enabled/Disabled), not a key."""
    assert violations_of(SECRETS, grafana(switch)) == []


@pytest.mark.parametrize("literal", ["glsa_0123456789abcdef", "disabled", "Disabled "])
def test_a_value_outside_the_enum_in_an_enum_field_still_fails(literal: str) -> None:
    # azure-native enums are open (str or the enum): any other string is judged as a literal.
    [message] = messages(SECRETS, grafana(literal))
    assert "properties.apiKey: field 'apiKey' holds a literal secret" in message
    assert literal not in message


def test_enum_values_count_only_where_the_sdk_declares_that_enum() -> None:
    """The same word is still a literal secret in a field the SDK types as a string, in a
    Kubernetes object, and on an azure-native type the SDK does not declare."""
    aks = cluster(windowsProfile={"adminUsername": "azureuser", "adminPassword": "Disabled"})
    unknown = view("azure-native:dashboard:NoSuchResource", {"properties": {"apiKey": "Disabled"}})
    found = violations_of(SECRETS, aks, config_map({"apiKey": "Disabled"}), unknown)
    assert [violation.message.split(": ")[1] for violation in found] == [
        "windowsProfile.adminPassword",
        "data.apiKey",
        "properties.apiKey",
    ]


def test_declared_enum_values_are_read_from_the_sdk() -> None:
    assert rules.declared_enum_values(GRAFANA, ("properties", "apiKey")) == {"Enabled", "Disabled"}
    # Through a list of nested input types: an agent pool's mode.
    assert rules.declared_enum_values(rules.MANAGED_CLUSTER, ("agentPoolProfiles", 0, "mode")) == {
        "System",
        "User",
        "Gateway",
    }
    # A free string, a path the SDK lacks, a non-Azure type, a malformed token: no enum.
    assert rules.declared_enum_values(GRAFANA, ("properties", "grafanaMajorVersion")) == set()
    assert rules.declared_enum_values(GRAFANA, ("properties", "noSuchField")) == set()
    assert rules.declared_enum_values(GRAFANA, ("properties", 0)) == set()
    assert rules.declared_enum_values("kubernetes:core/v1:ConfigMap", ("data", "apiKey")) == set()
    assert rules.declared_enum_values("azure-native:dashboard", ("apiKey",)) == set()


def test_azure_managed_monitoring_plan_passes_every_rule(config_root: Path) -> None:
    """Defect: every stack with monitoring.mode azure-managed exited 1 on Grafana's apiKey."""
    document = read_stack(config_root, "staging")
    document["config"]["slm-deploy:monitoring"] = {"mode": "azure-managed"}
    write_stack(config_root, "staging", document)
    plan = build_plan("staging", config_root=config_root)
    [managed_grafana] = [r for r in plan["resources"] if r["type"] == GRAFANA]
    assert managed_grafana["inputs"]["properties"]["apiKey"] == "Disabled"
    assert plan["violations"] == []


def test_workload_identity_and_secrets_store_shapes_pass() -> None:
    """The shapes the secrets component declares: Key Vault, CSI driver, workload identity."""
    resources = [
        vault(
            networkAcls={"bypass": "AzureServices", "defaultAction": "Deny", "ipRules": []},
            publicNetworkAccess="Disabled",
        ),
        view(
            rules.KEY_VAULT_SECRET,
            {"secretName": "hf-token", "vaultName": "kv", "properties": {"value": "[secret]"}},
        ),
        view(
            "azure-native:managedidentity:FederatedIdentityCredential",
            {
                "audiences": ["api://AzureADTokenExchange"],
                "issuer": "https://oidc.example/issuer",
                "subject": "system:serviceaccount:slm-inference:vllm",
                "federatedIdentityCredentialResourceName": "vllm",
            },
        ),
        view(
            "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass",
            {
                "kind": "SecretProviderClass",
                "spec": {
                    "provider": "azure",
                    "parameters": {
                        "clientID": "00000000-0000-0000-0000-000000000002",
                        "keyvaultName": "kv-slm-prod",
                        "tenantId": "00000000-0000-0000-0000-000000000003",
                        "usePodIdentity": "false",
                        "objects": "array:\n  - |\n    objectName: hf-token\n    objectType: secret\n",
                    },
                    "secretObjects": [
                        {
                            "secretName": "hf-token",
                            "type": "Opaque",
                            "data": [{"objectName": "hf-token", "key": "HF_TOKEN"}],
                        }
                    ],
                },
            },
        ),
        view(
            "kubernetes:core/v1:ServiceAccount",
            {
                "kind": "ServiceAccount",
                "metadata": {
                    "annotations": {
                        "azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000002"
                    }
                },
            },
        ),
        deployment(
            container(
                env=[
                    {
                        "name": "HF_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}},
                    }
                ],
                volumeMounts=[
                    {"name": "secrets-store", "mountPath": "/mnt/secrets-store", "readOnly": True}
                ],
            ),
            labels={
                rules.PART_OF_LABEL: rules.PART_OF_VALUE,
                "azure.workload.identity/use": "true",
            },
        ),
        cluster(
            addonProfiles={
                "azureKeyvaultSecretsProvider": {
                    "enabled": True,
                    "config": {"enableSecretRotation": "true", "rotationPollInterval": "2m"},
                }
            }
        ),
    ]
    volume = {
        "name": "secrets-store",
        "csi": {
            "driver": "secrets-store.csi.k8s.io",
            "readOnly": True,
            "volumeAttributes": {"secretProviderClass": "hf-token"},
        },
    }
    resources[-2].props["spec"]["template"]["spec"]["volumes"] = [volume]
    assert rules.check([namespace("staging"), *resources]) == []


# --- e) gpu-workloads-tolerate-gpu-taint -----------------------------------------------------

GPU = rules.GPU_WORKLOADS_TOLERATE_GPU_TAINT


def gpu_container(section: str = "limits") -> dict[str, Any]:
    return container(name="gpu", resources={section: {"nvidia.com/gpu": "1"}})


@pytest.mark.parametrize(
    "toleration",
    [
        GPU_TOLERATION,
        {"key": "nvidia.com/gpu", "operator": "Exists"},
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "value": "present"},
    ],
    ids=["exists-noschedule", "exists-any-effect", "equal-noschedule", "default-operator"],
)
def test_gpu_pod_tolerating_the_taint_passes(toleration: dict[str, Any]) -> None:
    assert violations_of(GPU, deployment(gpu_container(), tolerations=[toleration])) == []


@pytest.mark.parametrize("section", ["requests", "limits"])
def test_gpu_pod_without_the_toleration_fails(section: str) -> None:
    spot = {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot"}
    [message] = messages(GPU, deployment(gpu_container(section), tolerations=[spot]))
    assert "spec.template.spec.tolerations" in message and "nvidia.com/gpu" in message
    assert "containers gpu request" in message


def test_gpu_toleration_for_another_effect_fails() -> None:
    no_execute = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}
    assert len(violations_of(GPU, deployment(gpu_container(), tolerations=[no_execute]))) == 1


def test_pods_without_gpus_need_no_toleration() -> None:
    zero = container(resources={"limits": {"nvidia.com/gpu": "0", "cpu": "1"}})
    assert violations_of(GPU, deployment(container(), zero)) == []


# --- f) images-pinned-in-prod ----------------------------------------------------------------

PINNED = rules.IMAGES_PINNED_IN_PROD


def test_prod_images_pinned_by_digest_pass() -> None:
    app = deployment(
        container(image=f"vllm/vllm-openai:v0.32.0@{DIGEST}"),
        init_containers=[container(name="init", image=f"busybox@{DIGEST}")],
    )
    assert violations_of(PINNED, namespace("prod"), app) == []


def test_prod_image_pinned_by_tag_fails() -> None:
    [message] = messages(PINNED, namespace("prod"), deployment(container(image=VLLM_IMAGE)))
    assert f"image is '{VLLM_IMAGE}'" in message and "@sha256:" in message


def test_prod_init_container_image_is_checked() -> None:
    app = deployment(
        container(image=f"busybox@{DIGEST}"),
        init_containers=[container(name="pull", image="ollama/ollama:0.31.1")],
    )
    [message] = messages(PINNED, namespace("prod"), app)
    assert "container 'pull' (spec.template.spec.initContainers[0])" in message


def test_short_or_uppercase_digest_fails() -> None:
    short = container(image="busybox@sha256:abc123")
    upper = container(name="upper", image="busybox@sha256:" + "A" * 64)
    assert len(violations_of(PINNED, namespace("prod"), deployment(short, upper))) == 2


@pytest.mark.parametrize("environment", ["local", "dev", "staging"])
def test_tags_are_allowed_outside_prod(environment: str) -> None:
    assert (
        violations_of(PINNED, namespace(environment), deployment(container(image=VLLM_IMAGE))) == []
    )


def test_charts_pods_are_left_to_the_chart_version() -> None:
    chart_pod = deployment(
        container(image="nvcr.io/nvidia/k8s-device-plugin:v0.17.0"), labels={"app": "x"}
    )
    assert violations_of(PINNED, namespace("prod"), chart_pod) == []


# --- g) helm-chart-versions-pinned -----------------------------------------------------------

HELM = rules.HELM_CHART_VERSIONS_PINNED


@pytest.mark.parametrize("version", ["92.2.0", "v1.2.3", "0.20.0", "1.0.0-rc.1", "2.1.0+build.5"])
def test_exact_chart_versions_pass(version: str) -> None:
    assert violations_of(HELM, helm_release({}, version=version)) == []


@pytest.mark.parametrize(
    "version",
    [
        None,
        "",
        "latest",
        "^1.2.0",
        "~1.2.0",
        ">=1.0.0",
        "<2",
        "1.x",
        "1.2.*",
        "*",
        "1.2",
        "1.0.0 || 2.0.0",
        "1.0.0 - 2.0.0",
        " 1.0.0",
    ],
)
def test_missing_or_ranged_chart_versions_fail(version: Any) -> None:
    [message] = messages(HELM, helm_release({}, version=version))
    assert f"version is {version!r}" in message and "exact version" in message


@pytest.mark.parametrize("type_", sorted(rules.HELM_TYPES))
def test_every_helm_type_is_checked(type_: str) -> None:
    chart = view(type_, {"chart": "dcgm-exporter"})
    [message] = messages(HELM, chart)
    assert message.startswith(f"{type_} 'r': version is None (chart 'dcgm-exporter')")


# --- the rule set ----------------------------------------------------------------------------


def test_rules_are_named_in_kebab_case_and_described() -> None:
    names = [rule.name for rule in rules.RULES]
    assert names == [
        "vllm-endpoint-authenticated",
        "aks-local-accounts-disabled",
        "key-vault-purge-protection",
        "no-plaintext-secrets",
        "gpu-workloads-tolerate-gpu-taint",
        "images-pinned-in-prod",
        "helm-chart-versions-pinned",
    ]
    assert all(rule.description.endswith(".") for rule in rules.RULES)


def test_check_runs_every_rule() -> None:
    resources = [
        namespace("prod"),
        deployment(vllm_container(env=[], resources={"limits": {"nvidia.com/gpu": "1"}})),
        cluster(disableLocalAccounts=False),
        vault(enablePurgeProtection=False),
        config_map({"password": "[secret]"}),
        helm_release({}, version="latest"),
    ]
    assert {violation.rule for violation in rules.check(resources)} == {
        rule.name for rule in rules.RULES
    }


SDK_READERS = {"_sdk_input_type", "_sdk_member_types"}


def test_rules_module_imports_pulumi_only_to_read_the_azure_sdk() -> None:
    """The rules are pure functions over resources, whichever engine produced them: Pulumi
    is imported only inside the two functions that read the azure-native SDK's types, and
    only when a secret-bearing Azure field holds a clear value."""
    tree = ast.parse((POLICIES / "rules.py").read_text())
    readers = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name in SDK_READERS
    }
    inside = {id(n) for reader in readers.values() for n in ast.walk(reader)}
    imported = [
        (alias.name if isinstance(node, ast.Import) else node.module or "", id(node) in inside)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert [name for name, lazy in imported if name.startswith("pulumi") and not lazy] == []
    assert sorted(name for name, lazy in imported if name.startswith("pulumi")) == [
        "pulumi._types",
        "pulumi._types",
        "pulumi.type_token",
    ]
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, policies.rules; print(sorted(sys.modules))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'pulumi'" not in loaded and "pulumi_azure_native" not in loaded


# --- every stack's plan ----------------------------------------------------------------------


# Known failures of current stacks, each with its reason; strict, so a fix shows up.
def plan_case(stack: str, rule: rules.Rule) -> Any:
    return pytest.param(stack, rule, id=f"{stack}-{rule.name}")


@pytest.mark.parametrize(
    ("stack", "rule"), [plan_case(stack, rule) for stack in STACKS for rule in rules.RULES]
)
def test_every_stack_plan_passes_every_rule(
    plans: dict[str, dict[str, Any]], stack: str, rule: rules.Rule
) -> None:
    views = rules.views_from_plan(plans[stack]["resources"])
    assert [violation.message for violation in rule.check(views)] == []


def test_stack_plans_carry_their_environment(plans: dict[str, dict[str, Any]]) -> None:
    for stack in STACKS:
        views = rules.views_from_plan(plans[stack]["resources"])
        assert rules.stack_environment(views) == plans[stack]["outputs"]["environment"]


# --- the pack: PulumiPolicy.yaml and __main__.py, without starting the analyzer ----------------


class RecordedPack:
    """Stands in for pulumi_policy.PolicyPack, whose constructor serves gRPC forever."""

    packs: list[dict[str, Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        RecordedPack.packs.append(kwargs)


@pytest.fixture
def pack(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run policies/ the way Pulumi's Python analyzer does: runpy.run_path on the directory."""
    monkeypatch.setattr(pulumi_policy, "PolicyPack", RecordedPack)
    monkeypatch.setattr(RecordedPack, "packs", [])
    had_rules = "rules" in sys.modules
    try:
        runpy.run_path(str(POLICIES), run_name="__main__")
    finally:
        if not had_rules:
            sys.modules.pop("rules", None)  # the pack imported rules.py as a top-level module
    [recorded] = RecordedPack.packs
    return recorded


def test_pack_declares_one_mandatory_stack_policy_per_rule(pack: dict[str, Any]) -> None:
    assert pack["name"] == "slm-deploy"
    assert pack["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    policies = pack["policies"]
    assert all(isinstance(policy, pulumi_policy.StackValidationPolicy) for policy in policies)
    assert [(p.name, p.description) for p in policies] == [
        (r.name, r.description) for r in rules.RULES
    ]
    # Every policy inherits the pack's level: none overrides it to advisory or disabled.
    assert all(policy.enforcement_level is None for policy in policies)


def policy_resource(entry: dict[str, Any]) -> pulumi_policy.PolicyResource:
    """A plan entry as the policy engine hands it over: props behind the unknown-checking proxy."""
    options = pulumi_policy.PolicyResourceOptions(
        False, [], None, [], pulumi_policy.PolicyCustomTimeouts(0, 0, 0), []
    )
    props = unknown_checking_proxy(entry["inputs"])
    return pulumi_policy.PolicyResource(
        entry["type"], props, entry["urn"], entry["name"], options, None, None, [], {}
    )


def run_pack(pack: dict[str, Any], entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    args = pulumi_policy.StackValidationArgs([policy_resource(entry) for entry in entries])
    reported = []
    for policy in pack["policies"]:
        policy.validate(
            args, lambda message, urn=None, name=policy.name: reported.append((name, message, urn))
        )
    return reported


@pytest.mark.parametrize("stack", STACKS)
def test_pack_reports_what_the_rules_find_on_the_plan(
    pack: dict[str, Any], plans: dict[str, dict[str, Any]], stack: str
) -> None:
    entries = plans[stack]["resources"]
    expected = [(v.rule, v.message, v.urn) for v in rules.check(rules.views_from_plan(entries))]
    assert run_pack(pack, entries) == expected


def plan_entry(view_: ResourceView) -> dict[str, Any]:
    return {"type": view_.type, "name": view_.name, "urn": view_.urn, "inputs": view_.props}


def test_pack_reads_values_unknown_during_preview_as_not_set(pack: dict[str, Any]) -> None:
    """An unknown value (the proxy raises on it) is skipped, not a crash that voids the rule."""
    unknown_image = deployment(container(image=UNKNOWN_STRING_VALUE), name="unknown")
    literal_key = deployment(
        vllm_container(env=[{"name": "VLLM_API_KEY", "value": "abc-literal"}]), name="vllm"
    )
    entries = [plan_entry(namespace("prod")), plan_entry(unknown_image), plan_entry(literal_key)]
    assert [(name, urn) for name, _, urn in run_pack(pack, entries)] == [
        (rules.VLLM_ENDPOINT_AUTHENTICATED, literal_key.urn),
        (rules.NO_PLAINTEXT_SECRETS, literal_key.urn),
        (rules.IMAGES_PINNED_IN_PROD, literal_key.urn),
    ]


def test_policy_project_file_runs_python_in_the_repository_venv() -> None:
    project = yaml.safe_load((POLICIES / "PulumiPolicy.yaml").read_text())
    runtime = project["runtime"]
    assert runtime["name"] == "python"
    assert runtime["options"]["toolchain"] == "uv"
    assert (POLICIES / runtime["options"]["virtualenv"]).resolve() == (ROOT / ".venv").resolve()
    assert "main" not in project  # the pack directory itself: __main__.py next to rules.py
    assert (POLICIES / "__main__.py").is_file() and not (POLICIES / "requirements.txt").exists()


def test_readme_names_every_rule() -> None:
    readme = (POLICIES / "README.md").read_text()
    assert "pulumi preview --policy-pack policies" in readme
    assert all(f"`{rule.name}`" in readme for rule in rules.RULES)


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack started as Pulumi's Python analyzer starts it: `python -m pulumi.policy
    <engine> .` in the pack directory. It prints its gRPC port and serves until killed."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=POLICIES,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        port = process.stdout.readline().decode().strip() if process.stdout else ""
        assert port.isdigit(), process.stderr.read().decode() if process.stderr else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.kill()
        process.wait(timeout=30)


def analyze_stack_request(entries: list[dict[str, Any]]) -> analyzer_pb2.AnalyzeStackRequest:
    request = analyzer_pb2.AnalyzeStackRequest()
    for entry in entries:
        properties = struct_pb2.Struct()
        properties.update(entry["inputs"])
        request.resources.append(
            analyzer_pb2.AnalyzerResource(
                urn=entry["urn"], type=entry["type"], name=entry["name"], properties=properties
            )
        )
    return request


def test_started_pack_describes_mandatory_policies(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=60)
    assert info.name == "slm-deploy"
    assert [policy.name for policy in info.policies] == [rule.name for rule in rules.RULES]
    assert {policy.enforcementLevel for policy in info.policies} == {analyzer_pb2.MANDATORY}


@pytest.mark.parametrize("stack", STACKS)
def test_started_pack_reports_the_plan_violations(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, plans: dict[str, dict[str, Any]], stack: str
) -> None:
    entries = plans[stack]["resources"]
    response = analyzer.AnalyzeStack(analyze_stack_request(entries), timeout=120)
    descriptions = {rule.name: rule.description for rule in rules.RULES}
    expected = [
        (v.rule, f"{descriptions[v.rule]}\n{v.message}", v.urn, analyzer_pb2.MANDATORY)
        for v in rules.check(rules.views_from_plan(entries))
    ]
    reported = [(d.policyName, d.message, d.urn, d.enforcementLevel) for d in response.diagnostics]
    assert reported == expected
