"""Where the platform runs: a new AKS cluster, or an existing cluster's kubeconfig context.

Either way the result is one Kubernetes provider that every Kubernetes resource uses. Its
kubeconfig is built only from stable inputs (server, CA, cluster name) and it carries
`cluster_identifier`, so rotated credentials or unrelated cluster changes never replace the
provider, and with it every Kubernetes resource, in a diff.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_azure_native import containerservice, resources

from components.config import AksCluster, ExistingCluster

# The application ID of the Azure Kubernetes Service AAD server, the audience kubelogin asks
# Microsoft Entra ID for when local accounts are disabled (the same for every AKS cluster).
AKS_AAD_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
# The system pool keeps application pods off it (AKS's documented taint for system pools).
CRITICAL_ADDONS_ONLY = "CriticalAddonsOnly=true:NoSchedule"


@dataclass(frozen=True)
class ClusterArgs:
    stack: str
    settings: AksCluster | ExistingCluster


class Cluster(pulumi.ComponentResource):
    """An AKS cluster (mode aks) or a reference to an existing one (mode existing)."""

    provider: k8s.Provider
    resource_group_name: pulumi.Output[str] | None = None
    cluster_name: pulumi.Output[str] | None = None

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:cluster:Cluster", name, None, opts)
        settings = args.settings
        if isinstance(settings, AksCluster):
            self._declare_aks(name, args.stack, settings)
        else:
            self.provider = k8s.Provider(
                f"{name}-k8s",
                context=settings.context,
                cluster_identifier=settings.context,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"clusterName": self.cluster_name})

    def _declare_aks(self, name: str, stack: str, settings: AksCluster) -> None:
        child = pulumi.ResourceOptions(parent=self)
        group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=f"rg-slm-{stack}",
            location=settings.location,
            opts=child,
        )
        cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_name_=f"aks-slm-{stack}",
            resource_group_name=group.name,
            location=settings.location,
            dns_prefix=f"slm-{stack}",
            kubernetes_version=settings.kubernetes_version,
            sku=containerservice.ManagedClusterSKUArgs(name="Base", tier=settings.sku_tier),
            identity=containerservice.ManagedClusterIdentityArgs(type="SystemAssigned"),
            agent_pool_profiles=[_system_pool(settings)],
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
                )
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
            opts=child,
        )
        self.resource_group_name = group.name
        self.cluster_name = cluster.name
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name,
            resource_name=cluster.name,
            format="exec",
        )
        kubeconfig = pulumi.Output.all(cluster.name, credentials.kubeconfigs).apply(
            lambda parts: kubelogin_kubeconfig(parts[0], parts[1][0]["value"])
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.secret(kubeconfig),
            cluster_identifier=cluster.id,
            opts=child,
        )


def _system_pool(settings: AksCluster) -> containerservice.ManagedClusterAgentPoolProfileArgs:
    pool = settings.system_pool
    return containerservice.ManagedClusterAgentPoolProfileArgs(
        name="system",
        mode="System",
        os_type="Linux",
        vm_size=pool.vm_size,
        count=pool.min_count,
        min_count=pool.min_count,
        max_count=pool.max_count,
        enable_auto_scaling=True,
        availability_zones=pool.zones or None,
        node_taints=[CRITICAL_ADDONS_ONLY],
    )


def kubelogin_kubeconfig(cluster_name: str, user_kubeconfig_b64: str) -> str:
    """A kubeconfig that signs in through kubelogin, from the server and CA alone.

    AKS returns the user kubeconfig base64-encoded; only its server address and CA are
    kept, so the result changes only when the cluster's endpoint or CA does. `azurecli`
    works locally after `az login` and in CI after azure/login with OIDC federation.
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
