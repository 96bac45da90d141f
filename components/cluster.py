"""Where the platform runs: a new AKS cluster, or an existing cluster's kubeconfig context.

Either way the result is one Kubernetes provider that every Kubernetes resource uses. Its
kubeconfig is built only from stable inputs (server, CA, cluster name) and it carries
`cluster_identifier`, so rotated credentials or unrelated cluster changes never replace the
provider, and with it every Kubernetes resource, in a diff.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml
from pulumi_azure_native import (
    authorization,
    containerregistry,
    containerservice,
    managedidentity,
    resources,
)

from components import azure_names, container_logs, value_rules
from components.azure_network import ClusterNetwork, ClusterNetworkArgs
from components.config import AksCluster, ExistingCluster, Logs, MaintenanceWindow
from components.identity import AzurePlacement, assign_role
from components.network import namespace_specs

# The application ID of the Azure Kubernetes Service AAD server, the audience kubelogin asks
# Microsoft Entra ID for when local accounts are disabled (the same for every AKS cluster).
AKS_AAD_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# The system pool keeps application pods off it (AKS's documented taint for system pools).
CRITICAL_ADDONS_ONLY = "CriticalAddonsOnly=true:NoSchedule"


# Built-in Azure role definitions, the same GUIDs in every tenant (Azure built-in roles docs).
ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
AKS_RBAC_CLUSTER_ADMIN_ROLE = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
IMAGE_CLEANER_INTERVAL_HOURS = 168  # weekly
# The namespaces whose pods' logs reach the workspace: every one the template may create
# (components/network.py). The cluster is declared before them and does not know which the
# stack creates; a listed namespace that does not exist sends nothing.
TEMPLATE_NAMESPACES = tuple(
    spec.name for spec in namespace_specs(gpu=True, monitoring_in_cluster=True, edge_auth=True)
)
# The cluster autoscaler, tuned for expensive GPU nodes.
GPU_AUTOSCALER_PROFILE = containerservice.ManagedClusterPropertiesAutoScalerProfileArgs(
    # Of the pools that can host a pending pod, grow the one that leaves the least idle.
    expander="least-waste",
    # Pods with emptyDir volumes (vLLM's /dev/shm, caches) must not pin an idle GPU node.
    skip_nodes_with_local_storage="false",
    # Let a replica finish its streams (vLLM's graceful shutdown) before a node goes.
    max_graceful_termination_sec="900",
)


@dataclass(frozen=True)
class ClusterArgs:
    stack: str
    settings: AksCluster | ExistingCluster
    monitoring: str = "none"
    # The AKS application routing add-on (managed NGINX) serves the model ingress.
    app_routing: bool = False
    # monitoring.logs: how long the AKS container logs' workspace keeps them.
    logs: Logs = field(kw_only=True)


class Cluster(pulumi.ComponentResource):
    """An AKS cluster (mode aks) or a reference to an existing one (mode existing)."""

    provider: k8s.Provider
    resource_group_name: pulumi.Output[str] | None = None
    cluster_name: pulumi.Output[str] | None = None
    oidc_issuer_url: pulumi.Output[str] | None = None
    registry_login_server: pulumi.Output[str] | None = None
    kubeconfig: pulumi.Output[str] | None = None
    cluster_id: pulumi.Output[str] | None = None
    # The cluster's VNet (AKS only): its node subnet and the subnet for private endpoints.
    network: ClusterNetwork | None = None
    # Where the other Azure resources of the stack go, and who deploys them (AKS only).
    placement: AzurePlacement | None = None

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:cluster:Cluster", name, None, opts)
        settings = args.settings
        if isinstance(settings, AksCluster):
            self._declare_aks(name, args, settings)
        else:
            self.provider = k8s.Provider(
                f"{name}-k8s",
                context=settings.context,
                cluster_identifier=settings.context,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "oidcIssuerUrl": self.oidc_issuer_url,
                "registryLoginServer": self.registry_login_server,
            }
        )

    def _declare_aks(self, name: str, args: ClusterArgs, settings: AksCluster) -> None:
        stack = args.stack
        child = pulumi.ResourceOptions(parent=self)
        client = authorization.get_client_config_output()
        group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=azure_names.resource_group(stack),
            location=settings.location,
            opts=child,
        )
        # Every AKS stack, whatever its monitoring mode (components/container_logs.py: why).
        log_workspace = container_logs.declare_workspace(
            f"{name}-logs-workspace",
            stack,
            settings.location,
            group.name,
            args.logs.retention_days,
            child,
        )
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=azure_names.managed_identity(stack, "aks"),
            resource_group_name=group.name,
            location=settings.location,
            opts=child,
        )
        self.network = ClusterNetwork(
            f"{name}-network",
            ClusterNetworkArgs(
                stack=stack,
                location=settings.location,
                resource_group_name=group.name,
                cluster_principal_id=identity.principal_id,
                client=client,
            ),
            opts=child,
        )
        cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=group.name,
            identity=containerservice.ManagedClusterIdentityArgs(
                type="UserAssigned",
                user_assigned_identities=[identity.id],
            ),
            **managed_cluster_args(
                stack,
                settings,
                args.monitoring,
                args.app_routing,
                self.network.nodes_subnet_id,
                log_workspace.id,
            ),
            # The identity must be allowed to join the subnet before the nodes are created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.network.role_assignment]),
        )
        for config_name, channel in (
            ("aksManagedAutoUpgradeSchedule", "cluster"),
            ("aksManagedNodeOSUpgradeSchedule", "node-os"),
        ):
            containerservice.MaintenanceConfiguration(
                f"{name}-maintenance-{channel}",
                config_name=config_name,
                resource_group_name=group.name,
                resource_name_=cluster.name,
                maintenance_window=maintenance_window(settings.maintenance_window),
                opts=child,
            )
        registry = containerregistry.Registry(
            f"{name}-acr",
            registry_name=pulumi.Output.concat(
                azure_names.container_registry_prefix(stack), _suffix(name, child)
            ),
            resource_group_name=group.name,
            location=settings.location,
            sku=containerregistry.SkuArgs(name=settings.registry_sku),
            # Nodes pull with their managed identity; no shared admin password exists.
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            opts=child,
        )
        kubelet = cluster.identity_profile.apply(lambda p: p["kubeletidentity"].object_id)
        assign_role(f"{name}-acr-pull", client, ACR_PULL_ROLE, kubelet, registry.id, child)
        # The identity running `pulumi up` administers the cluster through Azure RBAC: with
        # local accounts disabled there is no other way in.
        assign_role(
            f"{name}-deployer-admin",
            client,
            AKS_RBAC_CLUSTER_ADMIN_ROLE,
            client.object_id,
            cluster.id,
            child,
            principal_type=settings.deployer_principal_type,
        )
        self.resource_group_name = group.name
        self.cluster_name = cluster.name
        self.cluster_id = cluster.id
        self.oidc_issuer_url = cluster.oidc_issuer_profile.apply(
            lambda profile: profile.issuer_url if profile else None
        )
        self.placement = AzurePlacement(
            stack=stack,
            location=settings.location,
            resource_group_name=group.name,
            oidc_issuer_url=self.oidc_issuer_url,
            client=client,
            deployer_principal_type=settings.deployer_principal_type,
        )
        container_logs.ContainerLogs(
            f"{name}-container-logs",
            container_logs.ContainerLogsArgs(
                placement=self.placement,
                cluster_id=cluster.id,
                workspace_id=log_workspace.id,
                namespaces=TEMPLATE_NAMESPACES,
            ),
            opts=child,
        )
        self.registry_login_server = registry.login_server
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name,
            resource_name=cluster.name,
            format="exec",
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, credentials.kubeconfigs).apply(
                lambda parts: kubelogin_kubeconfig(parts[0], parts[1][0]["value"])
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            cluster_identifier=cluster.id,
            opts=child,
        )


def managed_cluster_args(
    stack: str,
    settings: AksCluster,
    monitoring: str,
    app_routing: bool,
    nodes_subnet_id: pulumi.Input[str] | None,
    log_workspace_id: pulumi.Input[str],
) -> dict:
    """The ManagedCluster's settings: production-shaped, from the stack's cluster config."""
    return dict(
        resource_name_=azure_names.managed_cluster(stack),
        location=settings.location,
        dns_prefix=azure_names.dns_prefix(stack),
        kubernetes_version=settings.kubernetes_version,
        sku=containerservice.ManagedClusterSKUArgs(name="Base", tier=settings.sku_tier),
        agent_pool_profiles=[_system_pool(settings, nodes_subnet_id)],
        # Entra ID sign-in with Azure RBAC for Kubernetes; no local (certificate) accounts.
        aad_profile=containerservice.ManagedClusterAADProfileArgs(
            managed=True, enable_azure_rbac=True
        ),
        disable_local_accounts=True,
        enable_rbac=True,
        oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
        security_profile=containerservice.ManagedClusterSecurityProfileArgs(
            workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                enabled=True
            ),
            # Removes unused images from nodes weekly: serving images are large.
            image_cleaner=containerservice.ManagedClusterSecurityProfileImageCleanerArgs(
                enabled=True, interval_hours=IMAGE_CLEANER_INTERVAL_HOURS
            ),
        ),
        # Azure CNI overlay with Cilium: pod IPs outside the VNet, network policy enforced.
        network_profile=containerservice.ContainerServiceNetworkProfileArgs(
            network_plugin="azure",
            network_plugin_mode="overlay",
            network_dataplane="cilium",
            network_policy="cilium",
        ),
        api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
            enable_private_cluster=settings.private,
            authorized_ip_ranges=settings.authorized_ip_ranges or None,
        ),
        auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
            upgrade_channel=settings.upgrade_channel,
            node_os_upgrade_channel=settings.node_os_upgrade_channel,
        ),
        auto_scaler_profile=GPU_AUTOSCALER_PROFILE,
        # KEDA as an AKS add-on: its version follows the cluster's, Azure keeps it patched.
        workload_auto_scaler_profile=containerservice.ManagedClusterWorkloadAutoScalerProfileArgs(
            keda=containerservice.ManagedClusterWorkloadAutoScalerProfileKedaArgs(enabled=True)
        ),
        addon_profiles={
            # Key Vault secrets through the CSI driver, re-read every two minutes so a rotated
            # secret reaches the pods without a redeploy.
            "azureKeyvaultSecretsProvider": containerservice.ManagedClusterAddonProfileArgs(
                enabled=True,
                config={"enableSecretRotation": "true", "rotationPollInterval": "2m"},
            ),
            # Container logs to the stack's Log Analytics workspace (components/container_logs.py
            # says why the add-on, and declares the data collection rule it needs).
            container_logs.ADDON: container_logs.addon_profile(log_workspace_id),
        },
        azure_monitor_profile=containerservice.ManagedClusterAzureMonitorProfileArgs(
            metrics=containerservice.ManagedClusterAzureMonitorProfileMetricsArgs(enabled=True)
        )
        if monitoring == "azure-managed"
        else None,
        ingress_profile=containerservice.ManagedClusterIngressProfileArgs(
            web_app_routing=containerservice.ManagedClusterIngressProfileWebAppRoutingArgs(
                enabled=True
            )
        )
        if app_routing
        else None,
    )


def maintenance_window(window: MaintenanceWindow) -> containerservice.MaintenanceWindowArgs:
    return containerservice.MaintenanceWindowArgs(
        schedule=containerservice.ScheduleArgs(
            weekly=containerservice.WeeklyScheduleArgs(
                day_of_week=window.day_of_week, interval_weeks=1
            )
        ),
        duration_hours=window.duration_hours,
        start_time=window.start_time,
        utc_offset=window.utc_offset,
    )


def _suffix(name: str, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """Six random characters, created once and kept in state: ACR names are global."""
    return random.RandomString(
        f"{name}-acr-suffix",
        length=azure_names.RANDOM_SUFFIX_LENGTH,
        special=False,
        upper=False,
        opts=opts,
    ).result


def _system_pool(
    settings: AksCluster, nodes_subnet_id: pulumi.Input[str] | None
) -> containerservice.ManagedClusterAgentPoolProfileArgs:
    pool = settings.system_pool
    return containerservice.ManagedClusterAgentPoolProfileArgs(
        name=value_rules.SYSTEM_POOL_NAME,
        mode="System",
        os_type="Linux",
        vm_size=pool.vm_size,
        count=pool.min_count,
        min_count=pool.min_count,
        max_count=pool.max_count,
        enable_auto_scaling=True,
        availability_zones=pool.zones or None,
        node_taints=[CRITICAL_ADDONS_ONLY],
        vnet_subnet_id=nodes_subnet_id,
    )


def kubelogin_kubeconfig(cluster_name: str, user_kubeconfig_b64: str) -> str:
    """A kubeconfig that signs in through kubelogin, from the server and CA alone.

    AKS returns the user kubeconfig base64-encoded; only its server address and CA are
    kept, so the result changes only when the cluster's endpoint or CA does. `azurecli`
    works locally after `az login` and in CI after azure/login with OIDC federation; set
    AAD_LOGIN_METHOD=workloadidentity (kubelogin honours it over --login) to sign in with a
    workload identity token instead, without changing the kubeconfig.
    """
    source = yaml.safe_load(base64.b64decode(user_kubeconfig_b64))
    endpoint = source["clusters"][0]["cluster"]
    user = f"{cluster_name}-user"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": endpoint["server"],
                    "certificate-authority-data": endpoint["certificate-authority-data"],
                },
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
        "users": [
            {
                "name": user,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "kubelogin",
                        "args": [
                            "get-token",
                            "--login",
                            "azurecli",
                            "--server-id",
                            AKS_AAD_SERVER_APP_ID,
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)
