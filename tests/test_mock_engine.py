"""The mock engine records remote components and invokes the way the real engine sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.mock_engine import MissingInvokeMock, run_program

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
