"""The platform's secrets, and how each workload that needs one gets it.

Values: the vLLM API key and Grafana's admin password are generated (pulumi-random, never
written in a stack file); the Hugging Face token for gated models comes from secret stack
config. Every workload reads them from Kubernetes Secrets with fixed names and keys
(env `secretKeyRef`, Grafana's `admin.existingSecret`), so where the values live can change
without touching a workload. Two stores fill those Secrets, behind one interface:

- KeyVaultSecrets (AKS): an Azure Key Vault per stack holds the values. Each consuming
  workload gets its own managed identity, federated to its service account and allowed to
  read this vault only; a SecretProviderClass makes the Secrets Store CSI driver (the AKS
  add-on) mount the values into the pod and sync them into the Kubernetes Secrets.
- ClusterSecrets (existing clusters: local): the same Secrets, written directly, no Azure.

`wiring(consumer)` tells a workload what to add to its pods (service account, CSI volume).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from pulumi_azure_native import (
    keyvault,
    monitor,
    network,
    operationalinsights,
    privatedns,
)
from pydantic import SecretStr

from components import access, azure_names
from components.identity import (
    AzurePlacement,
    WorkloadIdentityArgs,
    assign_role,
    declare_workload_identity,
)


@dataclass(frozen=True)
class SecretItem:
    """One value: its name in Key Vault, and the Kubernetes Secret and key it lands in."""

    vault_name: str
    secret: str
    key: str
    # Read by the pod as a file of this name, straight from the CSI mount on AKS (the CSI
    # objectAlias, Azure provider pkg/provider/types: the file's name) rather than from the
    # synced Secret, which a starting pod may read before the driver has updated it.
    file: str | None = None

    def env(self, name: str) -> dict[str, Any]:
        """A container variable of this name that reads the value from its Secret."""
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": self.secret, "key": self.key}}}


# The shared key of a stack without consumers (components/access.py), as it always was.
API_KEY = SecretItem("vllm-api-key", "slm-api-key", "api-key")
# Every live key, as vLLM's --config file (access.keys_file): what the servers read.
API_KEYS = SecretItem("vllm-api-keys", "slm-api-keys", "keys.yaml", file="vllm-api-keys.yaml")
# Where the servers find that file on existing clusters (a Secret volume).
API_KEYS_DIR = "/var/run/slm-api-keys"
# The same live keys as the edge key check's NGINX map entries (access.edge_keys_map).
EDGE_KEYS = SecretItem(
    "edge-auth-keys", "slm-edge-auth-keys", "keys.map", file="edge-auth-keys.map"
)
# Where the edge key check finds them on existing clusters (a Secret volume).
EDGE_KEYS_DIR = "/var/run/slm-edge-keys"
HF_TOKEN = SecretItem("hugging-face-token", "slm-hf-token", "token")
GRAFANA_USER = SecretItem("grafana-admin-user", "grafana-admin", "admin-user")
GRAFANA_PASSWORD = SecretItem("grafana-admin-password", "grafana-admin", "admin-password")
GRAFANA_ADMIN_USER = "admin"
# 48 letters and digits: about 285 bits, far past guessing, and safe in an HTTP header.
API_KEY_LENGTH = 48
GRAFANA_PASSWORD_LENGTH = 32


@dataclass(frozen=True)
class Consumer:
    """A workload that reads secrets, as the service account its pods run as."""

    name: str  # also the SecretProviderClass's and the federated credential's name
    namespace: str
    service_account: str
    items: tuple[SecretItem, ...]
    # False when a Helm chart creates the service account (Grafana): we only annotate it.
    create_service_account: bool = True


@dataclass(frozen=True)
class PodWiring:
    """What a consumer's pods add to read their secrets."""

    service_account: str
    service_account_annotations: dict[str, Any] = field(default_factory=dict)
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    # The path of the API keys file (API_KEYS) in the pod, when the consumer reads it.
    api_keys_file: str | None = None
    # The path of the edge's key map (EDGE_KEYS) in the pod, when the consumer reads it.
    edge_keys_file: str | None = None


@dataclass(frozen=True)
class SecretsArgs:
    stack: str
    environment: str
    consumers: tuple[Consumer, ...]
    hugging_face_token: SecretStr | None
    # Production keeps the generated values and the vault across `pulumi destroy` mistakes.
    protect: bool = False
    # Set on AKS: where the vault goes and who may reach it. None: ClusterSecrets.
    azure: AzureVaultArgs | None = None
    # The API keys to generate and serve (access.live_keys): the shared key by default.
    api_keys: tuple[access.KeyRef, ...] = (access.SHARED_KEY,)


@dataclass(frozen=True)
class AzureVaultArgs:
    placement: AzurePlacement
    vnet_id: pulumi.Input[str]
    nodes_subnet_id: pulumi.Input[str]
    endpoints_subnet_id: pulumi.Input[str]
    # Operators' ranges (the cluster's authorizedIpRanges) may read the vault.
    allowed_ip_ranges: tuple[str, ...] = ()


def consumer_key_item(key: access.KeyRef) -> SecretItem:
    """A consumer's key: in Key Vault by consumer and rotation; on existing clusters its
    current key in a Secret of its own, so that reading it shows no other consumer's."""
    return SecretItem(key.slug, f"slm-api-key-{key.consumer}", "api-key")


def api_key_values(
    name: str, args: SecretsArgs, parent: pulumi.Resource
) -> dict[access.KeyRef, pulumi.Output[str]]:
    """One generator per live key. The shared key keeps its generator's historic name and
    its protection in prod; a consumer's key is named by its rotation, so raising the
    rotation adds a generator and keeps the previous one (and its value) while it is live,
    and removing a key from the live set deletes its generator: no value comes back."""
    generated = {}
    for key in args.api_keys:
        shared = key.consumer is None
        generated[key] = random.RandomPassword(
            f"{name}-api-key" if shared else f"{name}-{key.slug}",
            length=API_KEY_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=parent, protect=args.protect and shared),
        ).result
    return generated


def secret_values(
    name: str, args: SecretsArgs, parent: pulumi.Resource
) -> dict[SecretItem, pulumi.Input[str]]:
    """The values the consumers need: generated, or from secret stack config."""
    needed = {item for consumer in args.consumers for item in consumer.items}
    values: dict[SecretItem, pulumi.Input[str]] = {}
    protected = pulumi.ResourceOptions(parent=parent, protect=args.protect)
    if needed & {API_KEY, API_KEYS, EDGE_KEYS}:
        keys = api_key_values(name, args, parent)
        for key, value in keys.items():
            values[API_KEY if key.consumer is None else consumer_key_item(key)] = value
        if API_KEYS in needed:
            values[API_KEYS] = pulumi.Output.all(*keys.values()).apply(access.keys_file)
        if EDGE_KEYS in needed:
            values[EDGE_KEYS] = pulumi.Output.all(*keys.values()).apply(access.edge_keys_map)
    if HF_TOKEN in needed and args.hugging_face_token:
        values[HF_TOKEN] = pulumi.Output.secret(args.hugging_face_token.get_secret_value())
    if GRAFANA_PASSWORD in needed:
        values[GRAFANA_USER] = GRAFANA_ADMIN_USER
        values[GRAFANA_PASSWORD] = random.RandomPassword(
            f"{name}-grafana-admin", length=GRAFANA_PASSWORD_LENGTH, special=False, opts=protected
        ).result
    return values


def present_items(consumer: Consumer, values: dict[SecretItem, Any]) -> tuple[SecretItem, ...]:
    """A consumer's items that have a value (no token configured: no token Secret)."""
    return tuple(item for item in consumer.items if item in values)


def by_secret(items: tuple[SecretItem, ...]) -> dict[str, list[SecretItem]]:
    grouped: dict[str, list[SecretItem]] = {}
    for item in items:
        grouped.setdefault(item.secret, []).append(item)
    return grouped


# Before Key Vault, one component held the API key: stacks deployed then keep their key.
PREVIOUS_TYPE = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_="slm:secrets:ServingSecrets")])


class ClusterSecrets(pulumi.ComponentResource):
    """The Kubernetes Secrets written directly (clusters without Azure)."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(opts, PREVIOUS_TYPE)
        super().__init__("slm:secrets:ClusterSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        values = secret_values(name, args, self)
        written: set[tuple[str, str]] = set()
        for consumer in args.consumers:
            if consumer.create_service_account:
                _service_account(name, consumer, {}, self)
            groups = by_secret(present_items(consumer, values))
            if API_KEYS in consumer.items:
                # Each consumer's current key beside the servers, to be read on its own.
                for key in access.current_keys(args.api_keys).values():
                    item = consumer_key_item(key)
                    groups.setdefault(item.secret, []).append(item)
            for secret, items in groups.items():
                if (consumer.namespace, secret) in written:
                    continue
                written.add((consumer.namespace, secret))
                k8s.core.v1.Secret(
                    f"{name}-{secret}",
                    metadata={"name": secret, "namespace": consumer.namespace},
                    type="Opaque",
                    string_data={item.key: values[item] for item in items},
                    opts=child,
                )
        self._consumers = {consumer.name: consumer for consumer in args.consumers}
        self.api_keys = args.api_keys
        self.vault_name: pulumi.Output[str] | None = None
        self.register_outputs({})

    def wiring(self, consumer: str) -> PodWiring:
        found = self._consumers[consumer]
        if EDGE_KEYS in found.items:
            volume, mount, path = _secret_file("edge-keys", EDGE_KEYS, EDGE_KEYS_DIR)
            return PodWiring(
                service_account=found.service_account,
                volumes=(volume,),
                volume_mounts=(mount,),
                edge_keys_file=path,
            )
        if API_KEYS not in found.items:
            return PodWiring(service_account=found.service_account)
        volume, mount, path = _secret_file("api-keys", API_KEYS, API_KEYS_DIR)
        return PodWiring(
            service_account=found.service_account,
            volumes=(volume,),
            volume_mounts=(mount,),
            api_keys_file=path,
        )


def _secret_file(
    volume_name: str, item: SecretItem, directory: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """One key of a plain Secret as a read-only file (existing clusters): the volume, its
    mount and the file's path."""
    volume = {
        "name": volume_name,
        "secret": {"secretName": item.secret, "items": [{"key": item.key, "path": item.key}]},
    }
    mount = {"name": volume_name, "mountPath": directory, "readOnly": True}
    return volume, mount, f"{directory}/{item.key}"


# -- Azure Key Vault --------------------------------------------------------------------------

KEY_VAULT_SECRETS_USER_ROLE = "4633458b-17de-408a-b874-0445c86b69e6"
CSI_DRIVER = "secrets-store.csi.k8s.io"
SECRET_PROVIDER_CLASS_API = "secrets-store.csi.x-k8s.io/v1"
SECRETS_MOUNT = "/mnt/secrets-store"
KEY_VAULT_DNS_ZONE = "privatelink.vaultcore.azure.net"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"


@dataclass(frozen=True)
class VaultPolicy:
    """How one environment's vault is protected and reached."""

    # Purge protection cannot be turned off once on: dev leaves it off so a torn-down dev
    # vault's name is free again; staging and prod keep deleted secrets for the full term.
    purge_protection: bool
    soft_delete_days: int
    # prod: no public endpoint at all, a private endpoint in the VNet. Others: the public
    # endpoint with a deny-by-default firewall admitting the node subnet and the operators.
    private_endpoint: bool
    # Audit logs (who read which secret) kept for a quarter in prod, a month elsewhere.
    log_retention_days: int


def vault_policy(environment: str) -> VaultPolicy:
    production = environment in ("staging", "prod")
    return VaultPolicy(
        purge_protection=production,
        # 7 days is Key Vault's minimum, 90 its maximum and default.
        soft_delete_days=90 if production else 7,
        private_endpoint=environment == "prod",
        log_retention_days=90 if environment == "prod" else 30,
    )


def provider_objects(items: tuple[SecretItem, ...]) -> str:
    """The SecretProviderClass `objects` parameter: a YAML document whose `array` holds one
    YAML document per Key Vault object, written as the provider's documentation shows it."""
    entries = "".join(
        f"  - |\n    objectName: {item.vault_name}\n    objectType: secret\n"
        + (f"    objectAlias: {item.file}\n" if item.file else "")
        for item in items
    )
    return f"array:\n{entries}"


def secret_provider_class_spec(
    items: tuple[SecretItem, ...],
    vault_name: pulumi.Input[str],
    client_id: pulumi.Input[str],
    tenant_id: pulumi.Input[str],
) -> dict[str, Any]:
    return {
        "provider": "azure",
        "parameters": {
            # Workload identity: the driver signs in with the pod's service account token.
            "usePodIdentity": "false",
            "clientID": client_id,
            "keyvaultName": vault_name,
            "tenantId": tenant_id,
            "objects": provider_objects(items),
        },
        # Mirrored into Kubernetes Secrets while a pod mounts the volume.
        "secretObjects": [
            {
                "secretName": secret,
                "type": "Opaque",
                "data": [{"objectName": item.vault_name, "key": item.key} for item in grouped],
            }
            # A file item is read from the mount itself, never from a synced Secret.
            for secret, grouped in by_secret(tuple(i for i in items if not i.file)).items()
        ],
    }


def csi_wiring(consumer: Consumer, client_id: pulumi.Input[str]) -> PodWiring:
    reads_keys = API_KEYS in consumer.items
    return PodWiring(
        api_keys_file=f"{SECRETS_MOUNT}/{API_KEYS.file}" if reads_keys else None,
        edge_keys_file=f"{SECRETS_MOUNT}/{EDGE_KEYS.file}" if EDGE_KEYS in consumer.items else None,
        service_account=consumer.service_account,
        service_account_annotations={CLIENT_ID_ANNOTATION: client_id},
        volumes=(
            {
                "name": "secrets-store",
                "csi": {
                    "driver": CSI_DRIVER,
                    "readOnly": True,
                    "volumeAttributes": {"secretProviderClass": consumer.name},
                },
            },
        ),
        volume_mounts=({"name": "secrets-store", "mountPath": SECRETS_MOUNT, "readOnly": True},),
    )


class KeyVaultSecrets(pulumi.ComponentResource):
    """A Key Vault per stack, and workload identity plus CSI wiring per consumer."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(opts, PREVIOUS_TYPE)
        super().__init__("slm:secrets:KeyVaultSecrets", name, None, opts)
        azure = args.azure
        policy = vault_policy(args.environment)
        child = pulumi.ResourceOptions(parent=self)
        values = secret_values(name, args, self)
        vault = self._vault(name, args, policy)
        self._diagnostics(name, args, policy, vault, child)
        if policy.private_endpoint:
            self._private_endpoint(name, args, vault, child)
        expiries = {
            consumer_key_item(key): key.valid_until
            for key in args.api_keys
            if key.consumer is not None and key.valid_until
        }
        written = [
            keyvault.Secret(
                f"{name}-{item.vault_name}",
                secret_name=item.vault_name,
                vault_name=vault.name,
                resource_group_name=azure.placement.resource_group_name,
                properties=keyvault.SecretPropertiesArgs(
                    value=values[item],
                    content_type="text/plain",
                    attributes=_expiry(expiries.get(item)),
                ),
                opts=child,
            )
            for item in values
        ]
        # The deployer reads the API key (apiKeyVaultCommand) like any other consumer would.
        assign_role(
            f"{name}-deployer-reads-secrets",
            azure.placement.client,
            KEY_VAULT_SECRETS_USER_ROLE,
            azure.placement.client.object_id,
            vault.id,
            child,
            principal_type=azure.placement.deployer_principal_type,
        )
        self._wiring: dict[str, PodWiring] = {}
        for consumer in args.consumers:
            items = present_items(consumer, values)
            if items:
                self._wiring[consumer.name] = self._consumer(
                    name, args, consumer, items, vault, written
                )
            else:
                self._wiring[consumer.name] = self._nothing_to_read(name, consumer)
        self.api_keys = args.api_keys
        self.vault_name = vault.name
        self.vault_uri = vault.properties.apply(lambda p: p.vault_uri)
        self.register_outputs({"vaultName": vault.name})

    def wiring(self, consumer: str) -> PodWiring:
        return self._wiring[consumer]

    def _vault(self, name: str, args: SecretsArgs, policy: VaultPolicy) -> keyvault.Vault:
        azure = args.azure
        suffix = random.RandomString(
            f"{name}-vault-suffix",
            length=azure_names.RANDOM_SUFFIX_LENGTH,
            special=False,
            upper=False,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        return keyvault.Vault(
            f"{name}-vault",
            vault_name=pulumi.Output.concat(
                azure_names.key_vault_prefix(args.stack), suffix.result
            ),
            resource_group_name=azure.placement.resource_group_name,
            location=azure.placement.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=azure.placement.client.tenant_id,
                sku=keyvault.SkuArgs(family="A", name=keyvault.SkuName.STANDARD),
                # Azure RBAC decides who reads what (one role per identity), not access
                # policies.
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=policy.soft_delete_days,
                # Azure refuses `false`: leave it unset where it is off.
                enable_purge_protection=True if policy.purge_protection else None,
                public_network_access="Disabled" if policy.private_endpoint else "Enabled",
                network_acls=keyvault.NetworkRuleSetArgs(
                    default_action="Deny",
                    # No "trusted Azure services" exception: only the rules below.
                    bypass="None",
                    ip_rules=[keyvault.IPRuleArgs(value=cidr) for cidr in azure.allowed_ip_ranges],
                    virtual_network_rules=[
                        keyvault.VirtualNetworkRuleArgs(id=azure.nodes_subnet_id)
                    ],
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, retain_on_delete=args.protect
            ),
        )

    def _diagnostics(self, name, args, policy, vault, child) -> None:
        """Every secret read and change, to a Log Analytics workspace (AuditEvent logs)."""
        azure = args.azure
        workspace = operationalinsights.Workspace(
            f"{name}-logs",
            workspace_name=azure_names.log_analytics_workspace(args.stack),
            resource_group_name=azure.placement.resource_group_name,
            location=azure.placement.location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=policy.log_retention_days,
            opts=child,
        )
        monitor.DiagnosticSetting(
            f"{name}-vault-audit",
            name="audit-to-log-analytics",
            resource_uri=vault.id,
            workspace_id=workspace.id,
            logs=[monitor.DiagnosticsLogSettingsArgs(category_group="audit", enabled=True)],
            metrics=[monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)],
            opts=child,
        )

    def _private_endpoint(self, name, args, vault, child) -> None:
        """The vault's only way in (prod): an address in the VNet, resolved by private DNS."""
        azure = args.azure
        endpoint = network.PrivateEndpoint(
            f"{name}-vault-endpoint",
            private_endpoint_name=azure_names.vault_private_endpoint(args.stack),
            resource_group_name=azure.placement.resource_group_name,
            location=azure.placement.location,
            subnet=network.SubnetArgs(id=azure.endpoints_subnet_id),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name="vault", private_link_service_id=vault.id, group_ids=["vault"]
                )
            ],
            opts=child,
        )
        zone = privatedns.PrivateZone(
            f"{name}-vault-dns",
            private_zone_name=KEY_VAULT_DNS_ZONE,
            resource_group_name=azure.placement.resource_group_name,
            location="global",
            opts=child,
        )
        privatedns.VirtualNetworkLink(
            f"{name}-vault-dns-link",
            virtual_network_link_name="cluster-vnet",
            private_zone_name=zone.name,
            resource_group_name=azure.placement.resource_group_name,
            location="global",
            registration_enabled=False,
            virtual_network=privatedns.SubResourceArgs(id=azure.vnet_id),
            opts=child,
        )
        network.PrivateDnsZoneGroup(
            f"{name}-vault-dns-group",
            private_dns_zone_group_name="vault",
            private_endpoint_name=endpoint.name,
            resource_group_name=azure.placement.resource_group_name,
            private_dns_zone_configs=[
                network.PrivateDnsZoneConfigArgs(name="vault", private_dns_zone_id=zone.id)
            ],
            opts=child,
        )

    def _nothing_to_read(self, name: str, consumer: Consumer) -> PodWiring:
        """A consumer whose items have no value (no token configured): its service account,
        no identity, no CSI volume (a SecretProviderClass with no object fails to mount)."""
        if consumer.create_service_account:
            _service_account(name, consumer, {}, self)
        return PodWiring(service_account=consumer.service_account)

    def _consumer(self, name, args, consumer, items, vault, written) -> PodWiring:
        """One identity that reads its own secrets of this vault only, federated to the
        consumer's account."""
        azure = args.azure
        prefix = f"{name}-{consumer.name}"
        identity = declare_workload_identity(
            prefix,
            WorkloadIdentityArgs(
                purpose=consumer.name,
                placement=azure.placement,
                namespace=consumer.namespace,
                service_account=consumer.service_account,
                role_guid=KEY_VAULT_SECRETS_USER_ROLE,
                # Each secret it reads, not the vault: the edge's key check must not read
                # the Hugging Face token, nor Grafana the consumers' keys.
                scopes={
                    f"role-{item.vault_name}": vault.id.apply(
                        lambda vault_id, secret=item.vault_name: f"{vault_id}/secrets/{secret}"
                    )
                    for item in items
                },
            ),
            pulumi.ResourceOptions(parent=self),
        )
        wiring = csi_wiring(consumer, identity.client_id)
        if consumer.create_service_account:
            _service_account(name, consumer, wiring.service_account_annotations, self)
        k8s.apiextensions.CustomResource(
            f"{prefix}-provider",
            api_version=SECRET_PROVIDER_CLASS_API,
            kind="SecretProviderClass",
            metadata={"name": consumer.name, "namespace": consumer.namespace},
            spec=secret_provider_class_spec(
                items, vault.name, identity.client_id, azure.placement.client.tenant_id
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=written),
        )
        return wiring


def _expiry(until) -> keyvault.SecretAttributesArgs | None:
    """A consumer's previous key carries its last day as the vault's expiry, for whoever
    reads the vault. Only there: the servers stop accepting it when it leaves the live set
    (access.live_keys), not from this date, and no other value gets one, since an expired
    value would stop serving, not protect it (the generated values rotate through Pulumi)."""
    if until is None:
        return None
    return keyvault.SecretAttributesArgs(expires=access.expires_epoch(until))


def _service_account(
    name: str, consumer: Consumer, annotations: dict[str, Any], parent: pulumi.Resource
) -> k8s.core.v1.ServiceAccount:
    return k8s.core.v1.ServiceAccount(
        f"{name}-{consumer.name}",
        metadata={
            "name": consumer.service_account,
            "namespace": consumer.namespace,
            "annotations": annotations,
        },
        # The workloads call no Kubernetes API; the CSI driver gets its token from kubelet.
        automount_service_account_token=False,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def secret_read_command(secret: str, namespace: str, key: str) -> str:
    """The kubectl line that prints one key of a Secret."""
    return f"kubectl get secret {secret} -n {namespace} -o jsonpath='{{.data.{key}}}' | base64 -d"


def api_key_command(namespace: str) -> str:
    """How an operator reads the API key from the cluster (printed as a stack output)."""
    return secret_read_command(API_KEY.secret, namespace, API_KEY.key)


def vault_read_command(vault_name: str, item: SecretItem) -> str:
    """How an operator reads a value from Key Vault (needs an allowed network)."""
    return (
        f"az keyvault secret show --vault-name {vault_name} --name {item.vault_name}"
        " --query value -o tsv"
    )


def consumer_key_commands(
    keys: tuple[access.KeyRef, ...], namespace: str, vault_name: str | None
) -> dict[str, str]:
    """Per consumer, how to read its current key (a stack output: commands, never values):
    from Key Vault on AKS, from its own Secret on existing clusters."""
    commands = {}
    for consumer, key in access.current_keys(keys).items():
        item = consumer_key_item(key)
        commands[consumer] = (
            vault_read_command(vault_name, item)
            if vault_name
            else secret_read_command(item.secret, namespace, item.key)
        )
    return commands
