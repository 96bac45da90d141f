"""Secrets: the Key Vault per AKS stack, workload identity per consumer, the CSI wiring that
fills the Kubernetes Secrets, the plain Secrets on existing clusters, and no secret value in
clear text anywhere in a plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.azure_names import key_vault_prefix
from components.secrets import (
    API_KEY,
    GRAFANA_PASSWORD,
    GRAFANA_USER,
    HF_TOKEN,
    Consumer,
    VaultPolicy,
    provider_objects,
    vault_policy,
)
from tests.conftest import STACKS, fixture_root, read_stack, resources_of, write_stack
from tools.mock_engine import mock_identity_ids
from tools.plan import ROOT, build_plan, kubernetes_manifests, plan_from_values, write_plan
from tools.stack_files import load_stack_config_values

AKS_STACKS = ["dev", "staging", "prod"]
SECRETS_USER_ROLE = "4633458b-17de-408a-b874-0445c86b69e6"
# The offline plan's client ids of the model servers' and Grafana's identities.
MODEL_SERVER_CLIENT_ID = mock_identity_ids("slm-secrets-model-server")[1]
GRAFANA_CLIENT_ID = mock_identity_ids("slm-secrets-grafana")[1]


def _one(plan: dict, type_: str, name: str | None = None) -> dict[str, Any]:
    found = [r for r in resources_of(plan, type_) if name is None or r["name"] == name]
    assert len(found) == 1, [r["name"] for r in found]
    return found[0]


def _role_guid(assignment: dict) -> str:
    return assignment["inputs"]["roleDefinitionId"].rsplit("/", 1)[1]


# -- the vault ------------------------------------------------------------------------------


def test_vault_policy_per_environment() -> None:
    assert vault_policy("dev") == VaultPolicy(
        purge_protection=False, soft_delete_days=7, private_endpoint=False, log_retention_days=30
    )
    assert vault_policy("staging") == VaultPolicy(
        purge_protection=True, soft_delete_days=90, private_endpoint=False, log_retention_days=30
    )
    assert vault_policy("prod") == VaultPolicy(
        purge_protection=True, soft_delete_days=90, private_endpoint=True, log_retention_days=90
    )


def test_vault_names_fit_key_vaults_24_characters() -> None:
    assert key_vault_prefix("prod") == "kv-slm-prod-"
    # Forks name stacks freely: the prefix keeps 10 letters and digits, plus 6 random.
    assert key_vault_prefix("Prod_EU.West-2") == "kv-slm-prodeuwest-"
    assert len(key_vault_prefix("a-very-long-stack-name") + "abcdef") == 24


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_vault_uses_rbac_soft_delete_and_a_deny_by_default_firewall(plans, stack: str) -> None:
    vault = _one(plans[stack], "azure-native:keyvault:Vault")
    props = vault["inputs"]["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["sku"] == {"family": "A", "name": "standard"}
    assert props["networkAcls"]["defaultAction"] == "Deny"
    assert props["networkAcls"]["bypass"] == "None"
    assert props["networkAcls"]["virtualNetworkRules"] == [{"id": "slm-cluster-network-nodes-id"}]
    assert vault["inputs"]["vaultName"] == f"kv-slm-{stack}-mock00"


def test_dev_vault_can_be_purged_and_is_public_behind_its_firewall(plans) -> None:
    props = _one(plans["dev"], "azure-native:keyvault:Vault")["inputs"]["properties"]
    assert "enablePurgeProtection" not in props  # Azure refuses false; unset means off
    assert props["softDeleteRetentionInDays"] == 7
    assert props["publicNetworkAccess"] == "Enabled"
    assert props["networkAcls"]["ipRules"] == []
    assert resources_of(plans["dev"], "azure-native:network:PrivateEndpoint") == []


def test_staging_vault_keeps_deleted_secrets_and_admits_operator_ranges(plans, config_root) -> None:
    props = _one(plans["staging"], "azure-native:keyvault:Vault")["inputs"]["properties"]
    assert props["enablePurgeProtection"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert props["publicNetworkAccess"] == "Enabled"
    document = read_stack(config_root, "staging")
    document["config"]["slm-deploy:cluster"]["authorizedIpRanges"] = ["198.51.100.0/24"]
    write_stack(config_root, "staging", document)
    plan = build_plan("staging", config_root=config_root)
    acls = _one(plan, "azure-native:keyvault:Vault")["inputs"]["properties"]["networkAcls"]
    assert acls["ipRules"] == [{"value": "198.51.100.0/24"}]


def test_prod_vault_is_reached_only_through_its_private_endpoint(plans) -> None:
    prod = plans["prod"]
    vault = _one(prod, "azure-native:keyvault:Vault")
    assert vault["inputs"]["properties"]["publicNetworkAccess"] == "Disabled"
    assert vault["inputs"]["properties"]["enablePurgeProtection"] is True
    assert (vault["protect"], vault["retainOnDelete"]) == (True, True)
    endpoint = _one(prod, "azure-native:network:PrivateEndpoint")["inputs"]
    assert endpoint["subnet"]["id"] == "slm-cluster-network-endpoints-id"
    assert endpoint["privateLinkServiceConnections"] == [
        {"name": "vault", "privateLinkServiceId": "slm-secrets-vault-id", "groupIds": ["vault"]}
    ]
    zone = _one(prod, "azure-native:privatedns:PrivateZone")["inputs"]
    assert (zone["privateZoneName"], zone["location"]) == (
        "privatelink.vaultcore.azure.net",
        "global",
    )
    link = _one(prod, "azure-native:privatedns:VirtualNetworkLink")["inputs"]
    assert link["virtualNetwork"] == {"id": "slm-cluster-network-vnet-id"}
    assert link["registrationEnabled"] is False
    group = _one(prod, "azure-native:network:PrivateDnsZoneGroup")["inputs"]
    assert group["privateDnsZoneConfigs"] == [
        {"name": "vault", "privateDnsZoneId": "slm-secrets-vault-dns-id"}
    ]


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_only_prod_protects_the_vault(plans, stack: str) -> None:
    vault = _one(plans[stack], "azure-native:keyvault:Vault")
    assert (vault["protect"], vault["retainOnDelete"]) == (False, False)


@pytest.mark.parametrize(("stack", "days"), [("dev", 30), ("staging", 30), ("prod", 90)])
def test_vault_audit_logs_go_to_log_analytics(plans, stack: str, days: int) -> None:
    # The vault's own workspace, not the container logs' (components/container_logs.py).
    workspace = _one(plans[stack], "azure-native:operationalinsights:Workspace", "slm-secrets-logs")
    workspace = workspace["inputs"]
    assert workspace["retentionInDays"] == days
    assert workspace["sku"] == {"name": "PerGB2018"}
    setting = _one(plans[stack], "azure-native:monitor:DiagnosticSetting")["inputs"]
    assert setting["resourceUri"] == "slm-secrets-vault-id"
    assert setting["workspaceId"] == "slm-secrets-logs-id"
    assert setting["logs"] == [{"categoryGroup": "audit", "enabled": True}]


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_vault_holds_generated_values_only_as_secrets(plans, stack: str) -> None:
    secrets = {
        r["inputs"]["secretName"]: r["inputs"]["properties"]["value"]
        for r in resources_of(plans[stack], "azure-native:keyvault:Secret")
    }
    assert secrets == {
        "vllm-api-key": "[secret]",
        "grafana-admin-user": "admin",  # a name, not a secret: Grafana's chart wants both keys
        "grafana-admin-password": "[secret]",
    }
    passwords = {
        r["name"]: r
        for r in resources_of(plans[stack], "random:index/randomPassword:RandomPassword")
    }
    assert passwords["slm-secrets-api-key"]["inputs"]["length"] == 48
    assert passwords["slm-secrets-api-key"]["inputs"]["special"] is False
    assert passwords["slm-secrets-grafana-admin"]["inputs"]["length"] == 32
    assert all(p["protect"] == (stack == "prod") for p in passwords.values())


# -- workload identity and the CSI driver ---------------------------------------------------


@pytest.mark.parametrize(
    ("consumer", "subject"),
    [
        ("model-server", "system:serviceaccount:slm-inference:slm-model-server"),
        ("grafana", "system:serviceaccount:slm-monitoring:slm-grafana"),
    ],
)
@pytest.mark.parametrize("stack", AKS_STACKS)
def test_each_consumer_has_its_own_identity_reading_this_vault_only(
    plans, stack: str, consumer: str, subject: str
) -> None:
    plan = plans[stack]
    identity = _one(
        plan, "azure-native:managedidentity:UserAssignedIdentity", f"slm-secrets-{consumer}"
    )
    assert identity["inputs"]["resourceName"] == f"id-slm-{stack}-{consumer}"
    federation = _one(
        plan,
        "azure-native:managedidentity:FederatedIdentityCredential",
        f"slm-secrets-{consumer}-federation",
    )
    # The credential belongs to this identity (its required resourceName) and waits for it.
    assert identity["urn"] in federation["dependencies"]
    credential = federation["inputs"]
    assert credential["resourceName"] == f"id-slm-{stack}-{consumer}"
    assert credential["federatedIdentityCredentialResourceName"] == f"slm-{consumer}"
    assert credential["subject"] == subject
    assert credential["audiences"] == ["api://AzureADTokenExchange"]
    assert credential["issuer"] == f"https://offline-plan.oic.azure/aks-slm-{stack}/"
    # One Secrets User assignment per secret its pods read, none on the vault itself.
    roles = [
        r
        for r in resources_of(plan, "azure-native:authorization:RoleAssignment")
        if r["name"].startswith(f"slm-secrets-{consumer}-role-")
    ]
    (provider,) = [
        m
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == "SecretProviderClass" and m["metadata"]["name"] == consumer
    ]
    read = [
        yaml.safe_load(entry)["objectName"]
        for entry in yaml.safe_load(provider["spec"]["parameters"]["objects"])["array"]
    ]
    assert read
    assert {_role_guid(r) for r in roles} == {SECRETS_USER_ROLE}
    assert sorted(r["inputs"]["scope"] for r in roles) == sorted(
        f"slm-secrets-vault-id/secrets/{secret}" for secret in read
    )
    assert sorted(r["name"] for r in roles) == sorted(
        f"slm-secrets-{consumer}-role-{secret}" for secret in read
    )


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_secrets_user_is_granted_on_the_vault_and_nowhere_else(plans, stack: str) -> None:
    grants = [
        r
        for r in resources_of(plans[stack], "azure-native:authorization:RoleAssignment")
        if _role_guid(r) == SECRETS_USER_ROLE
    ]
    # The deployer reads the vault (keyVaultApiKeyCommand); every workload, single secrets.
    on_vault = [r["name"] for r in grants if r["inputs"]["scope"] == "slm-secrets-vault-id"]
    assert on_vault == ["slm-secrets-deployer-reads-secrets"]
    assert all(
        r["inputs"]["scope"].startswith("slm-secrets-vault-id/secrets/")
        for r in grants
        if r["name"] != "slm-secrets-deployer-reads-secrets"
    )


def test_provider_objects_are_yaml_documents_the_provider_parses() -> None:
    objects = yaml.safe_load(provider_objects((API_KEY, HF_TOKEN)))
    assert [yaml.safe_load(entry) for entry in objects["array"]] == [
        {"objectName": "vllm-api-key", "objectType": "secret"},
        {"objectName": "hugging-face-token", "objectType": "secret"},
    ]


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_model_servers_secret_provider_class_syncs_the_api_key(plans, stack: str) -> None:
    manifests = kubernetes_manifests(plans[stack]["resources"])
    provider = manifests["slm-inference/secretproviderclass-model-server.yaml"]["spec"]
    parameters = dict(provider["parameters"])
    objects = yaml.safe_load(parameters.pop("objects"))
    assert parameters == {
        "usePodIdentity": "false",
        "clientID": MODEL_SERVER_CLIENT_ID,
        "keyvaultName": f"kv-slm-{stack}-mock00",
        "tenantId": "00000000-0000-0000-0000-000000000000",
    }
    assert objects == {"array": ["objectName: vllm-api-key\nobjectType: secret\n"]}
    assert provider["provider"] == "azure"
    assert provider["secretObjects"] == [
        {
            "secretName": "slm-api-key",
            "type": "Opaque",
            "data": [{"objectName": "vllm-api-key", "key": "api-key"}],
        }
    ]
    grafana = manifests["slm-monitoring/secretproviderclass-grafana.yaml"]["spec"]
    assert grafana["secretObjects"] == [
        {
            "secretName": "grafana-admin",
            "type": "Opaque",
            "data": [
                {"objectName": "grafana-admin-user", "key": "admin-user"},
                {"objectName": "grafana-admin-password", "key": "admin-password"},
            ],
        }
    ]


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_vllm_pods_mount_the_csi_volume_as_their_own_service_account(plans, stack: str) -> None:
    manifests = kubernetes_manifests(plans[stack]["resources"])
    account = manifests["slm-inference/serviceaccount-slm-model-server.yaml"]
    assert account["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": MODEL_SERVER_CLIENT_ID
    }
    assert account["automountServiceAccountToken"] is False
    deployments = [
        m
        for path, m in manifests.items()
        if path.startswith("slm-inference/deployment-") and "vllm" in json.dumps(m)
    ]
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "slm-model-server"
        assert pod["automountServiceAccountToken"] is False
        assert {
            "name": "secrets-store",
            "csi": {
                "driver": "secrets-store.csi.k8s.io",
                "readOnly": True,
                "volumeAttributes": {"secretProviderClass": "model-server"},
            },
        } in pod["volumes"]
        mounts = pod["containers"][0]["volumeMounts"]
        assert {
            "name": "secrets-store",
            "mountPath": "/mnt/secrets-store",
            "readOnly": True,
        } in mounts
        # No workload-identity label: the webhook would hand the server a token it never
        # uses; the CSI driver gets the service account's token from kubelet.
        assert (
            "azure.workload.identity/use"
            not in deployment["spec"]["template"]["metadata"]["labels"]
        )


def test_grafana_reads_its_admin_secret_through_the_csi_driver(plans) -> None:
    (kps,) = [
        r
        for r in resources_of(plans["prod"], "kubernetes:helm.sh/v3:Release")
        if r["inputs"]["chart"] == "kube-prometheus-stack"
    ]
    grafana = kps["inputs"]["values"]["grafana"]
    assert grafana["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    assert grafana["serviceAccount"] == {
        "create": True,
        "name": "slm-grafana",
        "annotations": {"azure.workload.identity/client-id": GRAFANA_CLIENT_ID},
    }
    assert grafana["extraSecretMounts"] == [
        {
            "name": "secrets-store",
            "mountPath": "/mnt/secrets-store",
            "readOnly": True,
            "csi": {
                "driver": "secrets-store.csi.k8s.io",
                "readOnly": True,
                "volumeAttributes": {"secretProviderClass": "grafana"},
            },
        }
    ]


def _depends_on(plan: dict, resource: dict, name_part: str) -> bool:
    del plan
    return any(name_part in urn for urn in resource["dependencies"])


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_workloads_wait_for_the_secrets(plans, stack: str) -> None:
    plan = plans[stack]
    for provider in resources_of(
        plan, "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass"
    ):
        assert _depends_on(plan, provider, "keyvault:Secret::slm-secrets-vllm-api-key")
    # The release is registered only after its parent, which waits for the secrets.
    monitoring = _one(plan, "slm:monitoring:InClusterMonitoring")
    assert _depends_on(plan, monitoring, "SecretProviderClass::slm-secrets-grafana-provider")
    assert _depends_on(plan, monitoring, "RoleAssignment::slm-secrets-grafana-role")
    for service in resources_of(plan, "slm:vllm:VllmService"):
        assert _depends_on(plan, service, "SecretProviderClass::slm-secrets-model-server-provider")
        assert _depends_on(plan, service, "RoleAssignment::slm-secrets-model-server-role")


def test_outputs_name_the_vault_and_how_to_read_the_key(plans) -> None:
    outputs = plans["staging"]["outputs"]
    assert outputs["keyVaultName"] == "kv-slm-staging-mock00"
    assert outputs["keyVaultApiKeyCommand"] == (
        "az keyvault secret show --vault-name kv-slm-staging-mock00 --name vllm-api-key"
        " --query value -o tsv"
    )
    assert outputs["apiKeyCommand"] == (
        "kubectl get secret slm-api-key -n slm-inference -o jsonpath='{.data.api-key}' | base64 -d"
    )


# -- existing clusters: the same Secrets, written directly ------------------------------------


def test_local_declares_no_azure_and_no_secret_it_does_not_need(plans) -> None:
    local = plans["local"]
    assert [r for r in local["resources"] if r["type"].startswith("azure-native:")] == []
    # Ollama alone reads no secret; without vLLM there is no API key to generate.
    assert resources_of(local, "kubernetes:core/v1:Secret") == []
    assert local["outputs"]["keyVaultName"] is None
    assert local["outputs"]["apiKeyCommand"] is None


def test_existing_cluster_fills_the_same_secrets_from_config(config_root) -> None:
    document = read_stack(config_root, "local")
    document["config"]["slm-deploy:monitoring"] = {"mode": "in-cluster"}
    write_stack(config_root, "local", document)
    plan = build_plan("local", config_root=config_root)
    manifests = kubernetes_manifests(plan["resources"])
    secret = manifests["slm-monitoring/secret-grafana-admin.yaml"]
    assert secret["stringData"] == {"admin-user": "[secret]", "admin-password": "[secret]"}
    assert [r for r in plan["resources"] if r["type"].startswith("azure-native:")] == []
    kps = _one(plan, "kubernetes:helm.sh/v3:Release", "slm-monitoring-kps")
    grafana = kps["inputs"]["values"]["grafana"]
    # Same Secret name and keys as on AKS; no CSI volume and no identity annotation.
    assert grafana["admin"]["existingSecret"] == "grafana-admin"
    assert grafana["serviceAccount"] == {"create": True, "name": "slm-grafana", "annotations": {}}
    assert "extraSecretMounts" not in grafana


def test_consumers_read_only_their_own_items() -> None:
    from components.platform import CACHE_WARMER, GRAFANA, MODEL_SERVER

    assert (
        Consumer("model-server", "slm-inference", "slm-model-server", (API_KEY, HF_TOKEN))
        == MODEL_SERVER
    )
    # The cache warmer downloads gated models from the Hub: the token, nothing else.
    assert CACHE_WARMER.items == (HF_TOKEN,)
    assert CACHE_WARMER.service_account == "slm-cache-warmer"
    assert GRAFANA.items == (GRAFANA_USER, GRAFANA_PASSWORD)
    assert GRAFANA.create_service_account is False


# -- no secret in clear text, anywhere ------------------------------------------------------

PLANTED_TOKEN = "hf_PlantedTokenValue0123456789abcdefXYZ"
# What tools/mock_engine makes a RandomPassword's result: generated values must not leak.
MOCK_PASSWORD = "mock-password"


# Each stack as it is, and local with in-cluster monitoring: there the generated Grafana
# password goes through ClusterSecrets (plain Kubernetes Secrets) instead of Key Vault.
PLANTED_CASES = [(stack, None) for stack in STACKS] + [("local", {"mode": "in-cluster"})]


@pytest.mark.parametrize(("stack", "monitoring"), PLANTED_CASES)
def test_a_planted_secret_appears_nowhere_in_the_plan(
    stack: str, monitoring: dict | None, tmp_path: Path
) -> None:
    values = load_stack_config_values(ROOT, stack)
    key = "slm-deploy:secrets"
    values.values[key] = json.dumps({"huggingFaceToken": PLANTED_TOKEN})
    values.secret_keys.append(key)
    if monitoring:
        values.values["slm-deploy:monitoring"] = json.dumps(monitoring)
    plan = plan_from_values(values)
    write_plan(plan, tmp_path / stack)
    files = [p for p in (tmp_path / stack).rglob("*") if p.is_file()]
    assert len(files) > 5
    for path in files:
        text = path.read_text()
        assert PLANTED_TOKEN not in text, path
        assert MOCK_PASSWORD not in text, path
    # The values did flow somewhere, as secrets: the check above had something to find.
    held = _secret_values_held(plan)
    if stack == "local" and not monitoring:
        assert held == {}  # Ollama alone: no secret is generated or stored
    elif stack == "local":
        assert held == {"grafana-admin": {"admin-user": "[secret]", "admin-password": "[secret]"}}
    else:
        assert held["hugging-face-token"] == "[secret]"
        assert held["vllm-api-key"] == "[secret]"


def _secret_values_held(plan: dict) -> dict[str, Any]:
    """Key Vault secrets by name, Kubernetes Secrets' stringData by name."""
    held: dict[str, Any] = {
        r["inputs"]["secretName"]: r["inputs"]["properties"]["value"]
        for r in resources_of(plan, "azure-native:keyvault:Secret")
    }
    for secret in resources_of(plan, "kubernetes:core/v1:Secret"):
        held[secret["inputs"]["metadata"]["name"]] = secret["inputs"]["stringData"]
    return held


def test_the_secrets_component_keeps_the_previous_components_resources(monkeypatch) -> None:
    """Stacks deployed before Key Vault held the API key in slm:secrets:ServingSecrets: the
    alias keeps that RandomPassword (and so every client's key) across the upgrade."""
    from tools.mock_engine import RecordingMonitor

    registered = RecordingMonitor.RegisterResource
    aliases: dict[str, list[str]] = {}

    def spy(self, request):
        aliases[request.type] = [a.spec.type for a in request.aliases]
        return registered(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", spy)
    build_plan("dev", config_root=fixture_root())
    assert aliases["slm:secrets:KeyVaultSecrets"] == ["slm:secrets:ServingSecrets"]


@pytest.mark.parametrize("stack", AKS_STACKS)
def test_each_consumer_is_wired_to_its_own_identity(plans, stack: str) -> None:
    """Every identity has its own ids in the plan: each SecretProviderClass names the client
    id of its consumer's identity, and each Secrets User role goes to that identity."""
    plan = plans[stack]
    identities = {
        r["name"]: r["urn"]
        for r in resources_of(plan, "azure-native:managedidentity:UserAssignedIdentity")
    }
    providers = [
        m
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == "SecretProviderClass"
    ]
    assert providers
    for provider in providers:
        consumer = provider["metadata"]["name"]
        principal, client = mock_identity_ids(f"slm-secrets-{consumer}")
        assert f"slm-secrets-{consumer}" in identities
        assert provider["spec"]["parameters"]["clientID"] == client, consumer
        roles = [
            r
            for r in resources_of(plan, "azure-native:authorization:RoleAssignment")
            if r["name"].startswith(f"slm-secrets-{consumer}-role-")
        ]
        assert roles and {r["inputs"]["principalId"] for r in roles} == {principal}, consumer
