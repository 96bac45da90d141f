"""The cluster's virtual network: a subnet for the nodes and one for private endpoints.

AKS would create a VNet of its own, but then nothing else could join it: the Key Vault's
network rule (dev, staging) and its private endpoint (prod) need a subnet we own. The
address plan is AKS's own default (10.224.0.0/12), clear of the overlay pod range
(10.244.0.0/16) and the service range (10.0.0.0/16), so pods, services and nodes never
overlap. Pods take no VNet addresses (Azure CNI overlay), so one /16 holds any node count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import network

from components import azure_names
from components.identity import assign_role

VNET_ADDRESS_SPACE = "10.224.0.0/12"
NODES_SUBNET = "10.224.0.0/16"
ENDPOINTS_SUBNET = "10.225.0.0/24"
# Built-in "Network Contributor": the cluster's identity joins nodes and load balancers to
# a subnet it does not own (AKS's documented requirement for a bring-your-own subnet).
NETWORK_CONTRIBUTOR_ROLE = "4d97b98b-1d4f-4787-a291-c67834d212e7"


@dataclass(frozen=True)
class ClusterNetworkArgs:
    stack: str
    location: str
    resource_group_name: pulumi.Input[str]
    # The cluster's control-plane identity, made Network Contributor on the VNet.
    cluster_principal_id: pulumi.Input[str]
    client: Any  # the deploying identity's client config (for the subscription id)


class ClusterNetwork(pulumi.ComponentResource):
    """A VNet with the node subnet (Key Vault service endpoint on) and an endpoint subnet."""

    def __init__(
        self, name: str, args: ClusterNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:azure_network:ClusterNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=azure_names.virtual_network(args.stack),
            resource_group_name=args.resource_group_name,
            location=args.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[VNET_ADDRESS_SPACE]),
            opts=child,
        )
        nodes = network.Subnet(
            f"{name}-nodes",
            subnet_name="nodes",
            resource_group_name=args.resource_group_name,
            virtual_network_name=vnet.name,
            address_prefix=NODES_SUBNET,
            # The vault admits this subnet by a network rule: traffic to it stays on
            # Azure's backbone and the vault needs no public allow-list for the cluster.
            service_endpoints=[
                network.ServiceEndpointPropertiesFormatArgs(service="Microsoft.KeyVault")
            ],
            opts=child,
        )
        endpoints = network.Subnet(
            f"{name}-endpoints",
            subnet_name="private-endpoints",
            resource_group_name=args.resource_group_name,
            virtual_network_name=vnet.name,
            address_prefix=ENDPOINTS_SUBNET,
            # Sequential: Azure rejects concurrent writes to one VNet's subnets.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes]),
        )
        self.role_assignment = assign_role(
            f"{name}-cluster-network-contributor",
            args.client,
            NETWORK_CONTRIBUTOR_ROLE,
            args.cluster_principal_id,
            vnet.id,
            child,
        )
        self.vnet_id = vnet.id
        self.nodes_subnet_id = nodes.id
        self.endpoints_subnet_id = endpoints.id
        self.register_outputs({"vnetId": vnet.id, "nodesSubnetId": nodes.id})
