"""The mock engine records remote components and invokes the way the real engine sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi.runtime import mocks

from tools.mock_engine import (
    MissingInvokeMock,
    PlanMocks,
    UnknownAzureName,
    azure_name_input,
    run_program,
)

PROGRAM_WITH_REMOTE_COMPONENTS = """
import pulumi
import pulumi_kubernetes as k8s

provider = k8s.Provider("p", context="kind-test", cluster_identifier="kind-test")
opts = pulumi.ResourceOptions(provider=provider)
k8s.helm.v4.Chart(
    "plugin",
    chart="nvidia-device-plugin",
    version="0.17.1",
    namespace="gpu",
    repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo="https://nvidia.github.io/k8s-device-plugin"),
    values={"gfd": {"enabled": False}},
    opts=opts,
)
k8s.yaml.v2.ConfigGroup("crds", objs=[{"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "c", "namespace": "gpu"}, "data": {"k": "v"}}], opts=opts)
pulumi.export("token", pulumi.Output.secret("s3cr3t-value"))
"""

PROGRAM_WITH_UNMOCKED_INVOKE = """
import pulumi_azure_native as azure
azure.containerservice.list_managed_cluster_admin_credentials_output(
    resource_group_name="rg", resource_name="aks")
"""


def _run(tmp_path: Path, source: str):
    program = tmp_path / "__main__.py"
    program.write_text(source)
    return run_program(program, "slm-deploy", "test", {}, [])


def test_helm_chart_and_config_group_are_recorded_with_their_inputs(tmp_path: Path) -> None:
    recording = _run(tmp_path, PROGRAM_WITH_REMOTE_COMPONENTS)
    by_type = {r.type: r for r in recording.resources}
    chart = by_type["kubernetes:helm.sh/v4:Chart"]
    assert chart.inputs["chart"] == "nvidia-device-plugin"
    assert chart.inputs["version"] == "0.17.1"
    assert chart.inputs["repositoryOpts"] == {"repo": "https://nvidia.github.io/k8s-device-plugin"}
    assert chart.inputs["values"] == {"gfd": {"enabled": False}}
    assert chart.provider == by_type["pulumi:providers:kubernetes"].urn
    group = by_type["kubernetes:yaml/v2:ConfigGroup"]
    assert group.inputs["objs"][0]["metadata"] == {"name": "c", "namespace": "gpu"}
    assert recording.outputs == {"token": "[secret]"}


def test_an_invoke_without_a_mock_stops_the_plan(tmp_path: Path) -> None:
    with pytest.raises(MissingInvokeMock, match="listManagedClusterAdminCredentials"):
        _run(tmp_path, PROGRAM_WITH_UNMOCKED_INVOKE)


PROGRAM_WITH_A_GENERATED_PASSWORD = """
import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

key = random.RandomPassword("key", length=16, special=False)
k8s.core.v1.Secret("s", metadata={"name": "s", "namespace": "n"}, string_data={"k": key.result})
pulumi.export("plain", key.result.apply(lambda r: r))
"""


def test_declared_secret_outputs_stay_secret_downstream(tmp_path: Path) -> None:
    recording = _run(tmp_path, PROGRAM_WITH_A_GENERATED_PASSWORD)
    secret = next(r for r in recording.resources if r.type == "kubernetes:core/v1:Secret")
    assert secret.inputs["stringData"] == {"k": "[secret]"}
    assert recording.outputs == {"plain": "[secret]"}


# Each resource takes its name in an input the SDK defines, not one derived from its type
# name: a user-assigned identity in `resourceName`, a federated credential in
# `federatedIdentityCredentialResourceName` (its `resourceName` is the identity's name).
PROGRAM_WITH_AZURE_NAMES = """
import pulumi
from pulumi_azure_native import (
    alertsmanagement, containerservice, dashboard, managedidentity, monitor)

identity = managedidentity.UserAssignedIdentity(
    "identity", resource_name_="id-slm-test-keda", resource_group_name="rg", location="eastus")
managedidentity.FederatedIdentityCredential(
    "federation",
    federated_identity_credential_resource_name="keda-operator",
    resource_group_name="rg",
    resource_name_=identity.name,
    issuer="https://issuer",
    subject="system:serviceaccount:kube-system:keda-operator",
    audiences=["api://AzureADTokenExchange"],
)
named = {
    "maintenance": containerservice.MaintenanceConfiguration(
        "maintenance", config_name="aksManagedAutoUpgradeSchedule",
        resource_group_name="rg", resource_name_="aks"),
    "grafana": dashboard.Grafana("grafana", workspace_name="graf-slm-test",
        resource_group_name="rg"),
    "rules": alertsmanagement.PrometheusRuleGroup("rules", rule_group_name="slm-serving-test",
        resource_group_name="rg", scopes=["ws"], rules=[]),
    "association": monitor.DataCollectionRuleAssociation("association",
        association_name="dcra-test", resource_uri="aks-id"),
}
for key, resource in named.items():
    pulumi.export(key, resource.name)
"""


def test_azure_names_come_from_the_inputs_the_sdk_defines(tmp_path: Path) -> None:
    recording = _run(tmp_path, PROGRAM_WITH_AZURE_NAMES)
    by_type = {r.type: r for r in recording.resources}
    identity = by_type["azure-native:managedidentity:UserAssignedIdentity"]
    federation = by_type["azure-native:managedidentity:FederatedIdentityCredential"]
    assert federation.inputs["resourceName"] == "id-slm-test-keda"
    assert identity.urn in federation.dependencies
    assert recording.outputs == {
        "maintenance": "aksManagedAutoUpgradeSchedule",
        "grafana": "graf-slm-test",
        "rules": "slm-serving-test",
        "association": "dcra-test",
    }


@pytest.mark.parametrize(
    ("token", "name_input"),
    [
        ("azure-native:managedidentity:UserAssignedIdentity", "resourceName"),
        (
            "azure-native:managedidentity:FederatedIdentityCredential",
            "federatedIdentityCredentialResourceName",
        ),
        ("azure-native:containerservice:ManagedCluster", "resourceName"),
        ("azure-native:containerservice:MaintenanceConfiguration", "configName"),
        ("azure-native:dashboard:Grafana", "workspaceName"),
        ("azure-native:alertsmanagement:PrometheusRuleGroup", "ruleGroupName"),
        ("azure-native:monitor:DataCollectionRuleAssociation", "associationName"),
        ("azure-native:monitor:DiagnosticSetting", "name"),
        ("azure-native:network:Subnet", "subnetName"),
    ],
)
def test_the_name_input_is_read_from_the_sdk(token: str, name_input: str) -> None:
    assert azure_name_input(token) == name_input


def test_an_azure_type_whose_name_input_is_unknown_stops_the_plan(tmp_path: Path) -> None:
    # A type this SDK does not have (a newer provider's, or a typo in a token).
    token = "azure-native:containerservice:FleetOfClusters"
    with pytest.raises(UnknownAzureName, match=token):
        PlanMocks().new_resource(mocks.MockResourceArgs(token, "p", {}, "", ""))
