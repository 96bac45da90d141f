"""Shared fixtures: every fixture stack's plan, built once per test session under the mock
engine.

Tests that pin exact shapes (a pool's name, a count of resources, the only model) read the
fixture stacks in tests/fixtures/stacks/, a snapshot of the stacks this repository shipped,
never stacks/: a fork edits its stacks and keeps these tests green.
tests/test_shipped_stacks.py checks the files in stacks/, whatever they are, by properties."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components import aks_versions
from tools.plan import ROOT, build_plan, kubernetes_manifests
from tools.stack_files import available_stacks, stack_file_path

FIXTURE_STACKS = ROOT / "tests" / "fixtures" / "stacks"
# What `python -m tools.plan` needs beside the stack files, in a copy of the program.
PROGRAM_FILES = ("__main__.py", "Pulumi.yaml", "components", "policies", "tools")


def copy_config_root(target: Path) -> Path:
    """The real Pulumi.yaml and the fixture stacks, as stackConfigDir names them, in target."""
    shutil.copy(ROOT / "Pulumi.yaml", target / "Pulumi.yaml")
    shutil.copytree(FIXTURE_STACKS, stack_file_path(target, "x").parent)
    return target


@functools.cache
def fixture_root() -> Path:
    """A read-only config root for build_plan(stack, config_root=fixture_root()), made once
    per test process (the plan reads the stack folder that Pulumi.yaml names)."""
    root = Path(tempfile.mkdtemp(prefix="slm-fixture-stacks-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return copy_config_root(root)


def copy_program(target: Path) -> Path:
    """The program with the fixture stacks in target, for tests that run `python -m tools.plan`
    there (the command plans the stacks next to its own code)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROGRAM_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif name != "Pulumi.yaml":
            shutil.copy(source, target / name)
    return copy_config_root(target)


STACKS = available_stacks(fixture_root())


@pytest.fixture(scope="session")
def plans() -> dict[str, dict[str, Any]]:
    return {stack: build_plan(stack, config_root=fixture_root()) for stack in STACKS}


@pytest.fixture
def config_root(tmp_path: Path) -> Path:
    """A copy of Pulumi.yaml and the fixture stacks that a test may edit."""
    return copy_config_root(tmp_path)


def read_stack(root: Path, stack: str) -> dict[str, Any]:
    return yaml.safe_load((root / "stacks" / f"Pulumi.{stack}.yaml").read_text())


def write_stack(root: Path, stack: str, document: dict[str, Any]) -> None:
    (root / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))


def resources_of(plan: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == type_]


# Custom resources are checked against the CRD schema of the exact upstream version the
# target cluster runs, vendored under tests/upstream/<folder>/ (see its README): the folder
# follows the plan's Kubernetes minor through components/aks_versions.py where AKS's add-on
# version does. Each entry: (apiVersion, kind) -> (folder for a minor, file in the folder).
UPSTREAM = ROOT / "tests" / "upstream"


def _keda(minor: str) -> str:
    return f"keda-{aks_versions.add_ons(minor).keda}"


def _secrets_store(minor: str) -> str:
    return f"secrets-store-csi-driver-{aks_versions.add_ons(minor).secrets_store_csi_driver}"


def _prometheus_operator(minor: str) -> str:
    # A lower bound for the operator kube-prometheus-stack 92.2.0 installs (its source.json
    # says why that is sound): the chart, not the cluster's minor, decides the version.
    return "prometheus-operator-0.93.1"


def _managed_prometheus(minor: str) -> str:
    return f"azmonitoring-{aks_versions.MANAGED_PROMETHEUS['release']}"


CRD_CONTRACTS: dict[tuple[str, str], tuple[Callable[[str], str], str]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): (_keda, "scaledobjects.yaml"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): (_keda, "triggerauthentications.yaml"),
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"): (
        _secrets_store,
        "secretproviderclasses.yaml",
    ),
    ("azmonitoring.coreos.com/v1", "ServiceMonitor"): (_managed_prometheus, "servicemonitors.yaml"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (_prometheus_operator, "servicemonitors.yaml"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): (_prometheus_operator, "prometheusrules.yaml"),
}


def crd_folder(api_version: str, kind: str, minor: str) -> tuple[str, str]:
    """The vendored folder and file holding the CRD of this kind on this minor."""
    folder_for, file = CRD_CONTRACTS[(api_version, kind)]
    return folder_for(minor), file


@functools.cache
def crd_schema(folder: str, file: str, version: str) -> dict[str, Any]:
    """The served version's openAPIV3Schema, as a JSON schema that refuses every field that
    structural pruning would drop."""
    crd = yaml.safe_load((UPSTREAM / folder / file).read_text())
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    schema = pruning_schema(served["schema"]["openAPIV3Schema"])
    # The API server validates metadata as ObjectMeta, not by the CRD's schema.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


# OpenAPI v3 keywords that mean the same in JSON schema draft 4 (the OpenAPI 3.0 base);
# `format` is left out: the API server checks only a few formats, jsonschema others.
_VALUE_KEYWORDS = (
    "type", "enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "required",
    "multipleOf", "minProperties", "maxProperties",
)  # fmt: skip


def pruning_schema(node: dict[str, Any], in_combinator: bool = False) -> dict[str, Any]:
    """A structural CRD schema as a JSON schema: an object keeps only its declared
    properties (what pruning keeps) unless it says x-kubernetes-preserve-unknown-fields;
    x-kubernetes-int-or-string takes an integer or a string; nullable takes null."""
    out = {key: node[key] for key in _VALUE_KEYWORDS if key in node}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in node:
        out["properties"] = {k: pruning_schema(v) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = pruning_schema(node["items"])
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in node:
            out[combinator] = [pruning_schema(n, in_combinator=True) for n in node[combinator]]
    if "not" in node:
        out["not"] = pruning_schema(node["not"], in_combinator=True)
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = pruning_schema(additional)
    elif additional is not None:
        out["additionalProperties"] = additional
    elif (
        node.get("type") == "object"
        and not in_combinator
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        if node.get("x-kubernetes-embedded-resource"):
            embedded = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
            out["properties"] = {
                **embedded,
                "metadata": {"type": "object"},
                **out.get("properties", {}),
            }
        out["additionalProperties"] = False
    return out


def custom_resource_problems(path: str, manifest: dict[str, Any], minor: str) -> list[str]:
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    try:
        folder, file = crd_folder(api_version, kind, minor)
    except KeyError as err:
        return [f"{path}: no vendored CRD schema for {kind} on Kubernetes {minor}: {err}"]
    schema = crd_schema(folder, file, api_version.split("/")[1])
    validator = jsonschema.Draft4Validator(schema)
    return [
        f"{path}: {error.message} at {list(error.absolute_path)} ({folder}/{file})"
        for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    ]


# The ingress controller's own annotations (ingress-nginx controller-v1.13.7, what AKS
# application routing runs): an annotation it does not read is silently ignored.
NGINX_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"


@functools.cache
def nginx_annotations() -> frozenset[str]:
    table = UPSTREAM / "ingress-nginx-v1.13.7-annotations" / "annotations.json"
    return frozenset(json.loads(table.read_text()))


def unknown_annotations(path: str, manifest: dict[str, Any]) -> list[str]:
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    return [
        f"{path}: annotation {key} is not one ingress-nginx controller-v1.13.7 reads"
        for key in sorted(annotations)
        if key.startswith(NGINX_ANNOTATION_PREFIX)
        and key.removeprefix(NGINX_ANNOTATION_PREFIX) not in nginx_annotations()
    ]


def azure_provider_problems(path: str, manifest: dict[str, Any], minor: str) -> list[str]:
    """A SecretProviderClass's parameters, as the Azure provider AKS runs on this minor
    reads them (its CRD leaves them free-form): unknown names are silently ignored there."""
    spec = manifest.get("spec") or {}
    if spec.get("provider") != "azure":
        return []
    version = aks_versions.add_ons(minor).secrets_store_provider_azure
    folder = f"secrets-store-provider-azure-{version}"
    known = json.loads((UPSTREAM / folder / "parameters.json").read_text())
    parameters = spec.get("parameters") or {}
    problems = [
        f"{path}: parameter {name} is not one the Azure provider {version} reads"
        for name in sorted(set(parameters) - set(known["parameters"]))
    ]
    for entry in (yaml.safe_load(parameters.get("objects") or "{}") or {}).get("array", []):
        item = yaml.safe_load(entry)
        problems += [
            f"{path}: object field {name} is not one the Azure provider {version} reads"
            for name in sorted(set(item) - set(known["objectFields"]))
        ]
        if item.get("objectType") not in known["objectTypes"]:
            problems.append(f"{path}: objectType {item.get('objectType')!r} is unknown")
    return problems


def invalid_manifests(plan: dict[str, Any]) -> list[str]:
    """Every rendered manifest that fails strict validation for the stack's Kubernetes
    version: built-in kinds by kubernetes-validate, custom resources by the vendored CRD
    schema the cluster runs; a kind with neither fails; an ingress-nginx annotation the
    pinned controller does not read. One line each."""
    version = plan["outputs"]["kubernetesVersion"]
    problems = []
    for path, manifest in kubernetes_manifests(plan["resources"]).items():
        problems.extend(unknown_annotations(path, manifest))
        key = (manifest["apiVersion"], manifest["kind"])
        if key in CRD_CONTRACTS:
            problems.extend(custom_resource_problems(path, manifest, version))
            if key == ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"):
                problems.extend(azure_provider_problems(path, manifest, version))
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{path}: {err.message} at {list(err.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{path}: no schema for {manifest['kind']} (a CRD we don't vendor?)")
    return problems
