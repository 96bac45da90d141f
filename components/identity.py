"""Workload identity: an Azure managed identity that one Kubernetes service account becomes.

Each consuming workload (KEDA's operator, the model servers, Grafana) gets its own
user-assigned identity, federated to exactly one service account and granted one role on
exactly what it reads (one resource; for a Key Vault consumer, each of its secrets, never the
whole vault), so a compromised pod reaches nothing else. No client secret
exists anywhere: Entra ID trusts the cluster's OIDC issuer for that subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import authorization, managedidentity

from components import azure_names

# The audience AKS workload identity tokens carry (Microsoft Entra's token exchange).
WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"


def role_definition(client: Any, role_guid: str) -> pulumi.Output[str]:
    """The subscription-scoped id of a built-in role (the same GUID in every tenant)."""
    return client.subscription_id.apply(
        lambda sub: (
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
        )
    )


def assign_role(
    name: str,
    client: Any,
    role_guid: str,
    principal_id: pulumi.Input[str],
    scope: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    principal_type: str = "ServicePrincipal",
) -> authorization.RoleAssignment:
    """One built-in role for one principal on one resource (never wider than `scope`).

    `principal_type` is stated because Azure needs it to assign a role to an identity
    created moments before, which Entra ID may not have replicated yet."""
    return authorization.RoleAssignment(
        name,
        principal_id=principal_id,
        principal_type=principal_type,
        role_definition_id=role_definition(client, role_guid),
        scope=scope,
        opts=opts,
    )


def service_account_subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


@dataclass(frozen=True)
class AzurePlacement:
    """Where a stack's Azure resources beside the cluster go, and who deploys them: built
    once from the cluster (components/platform.py), shared by every component that declares
    Azure resources."""

    stack: str
    location: str
    resource_group_name: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]  # the cluster's, which workload identities trust
    client: Any  # the deploying identity's client config: tenant, subscription, object id
    deployer_principal_type: str


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    purpose: str  # names the identity: id-slm-<stack>-<purpose>
    placement: AzurePlacement
    namespace: str
    service_account: str
    role_guid: str
    # The resources the role applies to, one assignment each, by the assignment's resource
    # name after the identity's (a rename would make Azure refuse the new assignment as a
    # duplicate of the old one before it is deleted): one resource as a rule; for a Key
    # Vault consumer, one secret each, never the whole vault.
    scopes: dict[str, pulumi.Input[str]]


def declare_workload_identity(
    name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions
) -> managedidentity.UserAssignedIdentity:
    """The identity, its federated credential and its role on each of its scopes."""
    place = args.placement
    identity = managedidentity.UserAssignedIdentity(
        name,
        resource_name_=azure_names.managed_identity(place.stack, args.purpose),
        resource_group_name=place.resource_group_name,
        location=place.location,
        opts=opts,
    )
    managedidentity.FederatedIdentityCredential(
        f"{name}-federation",
        federated_identity_credential_resource_name=args.service_account,
        resource_group_name=place.resource_group_name,
        resource_name_=identity.name,
        issuer=place.oidc_issuer_url,
        subject=service_account_subject(args.namespace, args.service_account),
        audiences=[WORKLOAD_IDENTITY_AUDIENCE],
        opts=opts,
    )
    for suffix, scope in args.scopes.items():
        assign_role(
            f"{name}-{suffix}", place.client, args.role_guid, identity.principal_id, scope, opts
        )
    return identity
