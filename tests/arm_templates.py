"""The plan's azure-native resources re-nested as an ARM template, for checkov's `arm` checks.

azure-native takes ARM's request body with `properties` flattened into the arguments for
most types (ManagedCluster, AgentPool, Registry) and kept for others (Vault, Secret); ARM
keeps `location`, `sku`, `identity` and `tags` beside `properties`. Only the types checkov
has checks for are rendered.
"""

from __future__ import annotations

from typing import Any

ARM_TYPES = {
    "azure-native:containerservice:ManagedCluster": "Microsoft.ContainerService/managedClusters",
    "azure-native:containerservice:AgentPool": (
        "Microsoft.ContainerService/managedClusters/agentPools"
    ),
    "azure-native:containerregistry:Registry": "Microsoft.ContainerRegistry/registries",
    "azure-native:keyvault:Vault": "Microsoft.KeyVault/vaults",
    "azure-native:keyvault:Secret": "Microsoft.KeyVault/vaults/secrets",
}
BESIDE_PROPERTIES = ("location", "sku", "identity", "tags")
# Path parameters of the REST call, not part of the body.
NAME_ARGUMENTS = (
    "resourceGroupName",
    "resourceName",
    "vaultName",
    "registryName",
    "secretName",
    "agentPoolName",
)


def arm_resource(resource: dict[str, Any]) -> dict[str, Any]:
    inputs = dict(resource["inputs"])
    body: dict[str, Any] = {
        "type": ARM_TYPES[resource["type"]],
        "apiVersion": "2024-01-01",
        "name": resource["name"],
    }
    for key in BESIDE_PROPERTIES:
        if key in inputs:
            body[key] = inputs.pop(key)
    for key in NAME_ARGUMENTS:
        inputs.pop(key, None)
    body["properties"] = {**inputs, **(inputs.pop("properties", None) or {})}
    body["properties"].pop("properties", None)
    return body


def arm_template(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [arm_resource(r) for r in resources if r["type"] in ARM_TYPES],
    }
