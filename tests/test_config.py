"""Stack configuration: defaults, and one clear line for every kind of bad input."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components import aks_versions, azure_names, catalog, redaction
from components.config import PROJECT, ConfigError, parse_stack_config
from tests.conftest import copy_program, read_stack, write_stack
from tools.mock_engine import Recording, run_program
from tools.plan import ROOT, PlanConfigError, build_plan
from tools.stack_files import load_stack_config_values

P = "slm-deploy:"


def test_dev_defaults_come_from_code(config_root: Path) -> None:
    values = load_stack_config_values(config_root, "dev")
    assert values.values[f"{P}environment"] == "dev"
    raw = {"stack": "dev", "environment": "dev", "cluster": {"mode": "aks"}}
    raw["models"] = [{"name": "m", "engine": "ollama", "source": "qwen3:0.6b"}]
    config = parse_stack_config(raw)
    assert config.cluster.location == "eastus"
    assert config.cluster.kubernetes_version == "1.36"
    assert config.cluster.system_pool.min_count == 2
    assert config.cluster.system_pool.zones == ["1", "2", "3"]
    assert config.models[0].replicas.min == 1
    assert config.monitoring.mode == "in-cluster"
    assert config.protect_stateful is False


def test_prod_protects_stateful_resources() -> None:
    raw = {
        "stack": "prod",
        "environment": "prod",
        "cluster": {"mode": "aks", "private": True},
        "models": [{"name": "m", "engine": "ollama", "source": "qwen3:0.6b"}],
    }
    assert parse_stack_config(raw).protect_stateful is True


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Set `slm-deploy:<key>` then a dotted / indexed path inside it."""

    def mutate(config: dict) -> None:
        parts = [p for p in path.replace("]", "").replace("[", ".").split(".") if p]
        parts[0] = f"{P}{parts[0]}"
        node: Any = config
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _all(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        for mutation in mutations:
            mutation(config)

    return mutate


def _drop(key: str) -> Callable[[dict], None]:
    return lambda config: config.pop(f"{P}{key}")


def _add_model_copy(config: dict) -> None:
    config[f"{P}models"].append(copy.deepcopy(config[f"{P}models"][0]))


# The cache warmer's settings in the rows below: a syntactically valid (not a real) digest.
WARMER_IMAGE = "registry.example.com/slm/model-cache-warmer:0.1.0@sha256:" + "0" * 64
PHI4_REVISION = "c0fb9e74abda11b496b7907a9c6c9009a7a0488f"  # as the prod stack pins it
MIRROR_ACCOUNT_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-models"
    "/providers/Microsoft.Storage/storageAccounts/slmmodels"
)


def _warmer(**settings: Any) -> Callable[[dict], None]:
    """Enable the cache warmer (with settings) on dev, its model pinned to a revision."""
    return _all(
        _set("models[0].revision", PHI4_REVISION),
        _set("serving.cacheWarmer", {"enabled": True, "image": WARMER_IMAGE, **settings}),
    )


# (mutation of the dev stack's config, the exact first line we expect)
BAD_DEV_CONFIGS = [
    (
        _set("environment", "qa"),
        'slm-deploy:environment: "qa" is not allowed; expected one of local, dev, staging, prod',
    ),
    (
        _drop("environment"),
        "Stack 'dev' is missing configuration value 'environment' (Pulumi.yaml declares it)",
    ),
    (
        _set("clustr", {"mode": "aks"}),
        "slm-deploy:clustr: unknown key, allowed: environment, cluster, gpuPools, cpuPools, models, monitoring, secrets, serving, ingress, access",
    ),
    (
        _set("cluster.mode", "gke"),
        "slm-deploy:cluster.mode: \"gke\" is not allowed; expected one of 'aks', 'existing'",
    ),
    (
        _set("cluster.locaton", "westeurope"),
        'slm-deploy:cluster.locaton: "westeurope" is not allowed; expected no such key (check the spelling against components/config.py)',
    ),
    (
        _set("cluster.systemPool.vmSzie", "Standard_D8s_v5"),
        'slm-deploy:cluster.systemPool.vmSzie: "Standard_D8s_v5" is not allowed; expected no such key (check the spelling against components/config.py)',
    ),
    # -- Kubernetes versions a new AKS cluster may run (components/aks_versions.json) --
    (
        _set("cluster.kubernetesVersion", "1.20"),
        'slm-deploy:cluster.kubernetesVersion: "1.20" is not allowed; expected a minor in AKS standard support on 2026-12-03 with known add-on versions (components/aks_versions.json): 1.35, 1.36',
    ),
    (
        # Standard support ended 2026-07-31; the old default.
        _set("cluster.kubernetesVersion", "1.33"),
        'slm-deploy:cluster.kubernetesVersion: "1.33" is not allowed; expected a minor in AKS standard support on 2026-12-03 with known add-on versions (components/aks_versions.json): 1.35, 1.36',
    ),
    (
        # Standard support ended 2026-11-30.
        _set("cluster.kubernetesVersion", "1.34"),
        'slm-deploy:cluster.kubernetesVersion: "1.34" is not allowed; expected a minor in AKS standard support on 2026-12-03 with known add-on versions (components/aks_versions.json): 1.35, 1.36',
    ),
    (
        # GA, but AKS publishes no add-on versions for it yet.
        _set("cluster.kubernetesVersion", "1.37"),
        'slm-deploy:cluster.kubernetesVersion: "1.37" is not allowed; expected a minor in AKS standard support on 2026-12-03 with known add-on versions (components/aks_versions.json): 1.35, 1.36',
    ),
    (
        _set("gpuPools[0].minCount", -1),
        "slm-deploy:gpuPools[0].minCount: -1 is not allowed; expected a number >= 0",
    ),
    (
        _set("gpuPools[0].minCount", 3),
        "slm-deploy:gpuPools[0].minCount: 3 is not allowed; expected at most maxCount (2)",
    ),
    (
        _set("gpuPools[0].maxCount", "two"),
        'slm-deploy:gpuPools[0].maxCount: "two" is not allowed; expected a whole number',
    ),
    (
        _set("gpuPools[0].name", "T4_spot"),
        'slm-deploy:gpuPools[0].name: "T4_spot" is not allowed; expected 1-12 lowercase letters and digits, starting with a letter',
    ),
    (
        _set("gpuPools[0].spot", "yes"),
        'slm-deploy:gpuPools[0].spot: "yes" is not allowed; expected true or false',
    ),
    (
        _set("gpuPools[0].vmSize", "NC4as_T4_v3"),
        'slm-deploy:gpuPools[0].vmSize: "NC4as_T4_v3" is not allowed; expected an Azure VM size such as Standard_NC24ads_A100_v4',
    ),
    (
        _set("models[0].pool", "a100"),
        'slm-deploy:models[0].pool: "a100" is not allowed; expected a gpuPools name: t4spot',
    ),
    (
        _set("models[0].engine", "tgi"),
        "slm-deploy:models[0].engine: \"tgi\" is not allowed; expected one of 'vllm', 'ollama' or 'onnxruntime'",
    ),
    (
        _set("models[0].replicas", {"min": 3, "max": 1}),
        "slm-deploy:models[0].replicas.min: 3 is not allowed; expected at most max (1)",
    ),
    (
        _set("models[0].maxModelLen", 0),
        "slm-deploy:models[0].maxModelLen: 0 is not allowed; expected a number >= 256",
    ),
    (
        _set("models[0].source", "phi4"),
        'slm-deploy:models[0].source: "phi4" is not allowed; expected a Hugging Face repository such as microsoft/Phi-4-mini-instruct',
    ),
    (
        _set("models[0].pool", None),
        "slm-deploy:models[0].pool: null is not allowed; expected a GPU pool name: vLLM models run on GPUs",
    ),
    (
        _set("models[0].revision", "main"),
        'slm-deploy:models[0].revision: "main" is not allowed; expected a full 40-character commit hash of the model repository',
    ),
    (
        _add_model_copy,
        'slm-deploy:models[1].name: "phi4-mini" is not allowed; expected a name not used earlier in the list',
    ),
    (_set("models", []), "slm-deploy:models: [] is not allowed; expected at least one entry"),
    (_set("models", "phi4-mini"), 'slm-deploy:models: "phi4-mini" is not allowed; expected a list'),
    (_drop("models"), "slm-deploy:models: missing; this key is required"),
    (
        _set("monitoring.mode", "datadog"),
        "slm-deploy:monitoring.mode: \"datadog\" is not allowed; expected one of 'in-cluster', 'azure-managed' or 'none'",
    ),
    (
        _set("monitoring.retentionDays", 0),
        "slm-deploy:monitoring.retentionDays: 0 is not allowed; expected a number >= 1",
    ),
    (
        _set("cluster.authorizedIpRanges", ["10.0.0.1/8"]),
        'slm-deploy:cluster.authorizedIpRanges: "10.0.0.1/8" is not allowed; expected CIDR ranges such as 203.0.113.0/24',
    ),
    (
        _set("gpuPools[0].vmSize", "Standard_NC6s_v3"),
        'slm-deploy:gpuPools[0].vmSize: "Standard_NC6s_v3" is not allowed; expected a GPU SKU from components/catalog.py: Standard_NC4as_T4_v3, Standard_NC8as_T4_v3, Standard_NV36ads_A10_v5, Standard_NC24ads_A100_v4, Standard_NC48ads_A100_v4, Standard_NC40ads_H100_v5, Standard_NC80adis_H100_v5',
    ),
    (
        _set("models[0].source", "microsoft/phi-4"),
        'slm-deploy:models[0].source: "microsoft/phi-4" is not allowed; expected a vllm model of the catalog (components/models/; add one with tools/add_model.py): Qwen/Qwen3-0.6B, Qwen/Qwen3-0.6B-FP8, Qwen/Qwen3-1.7B, Qwen/Qwen3-1.7B-FP8, Qwen/Qwen3-14B, Qwen/Qwen3-14B-AWQ, Qwen/Qwen3-14B-FP8, Qwen/Qwen3-4B, Qwen/Qwen3-4B-AWQ, Qwen/Qwen3-4B-FP8, Qwen/Qwen3-8B, Qwen/Qwen3-8B-AWQ, Qwen/Qwen3-8B-FP8, google/gemma-3-12b-it, google/gemma-3-1b-it, google/gemma-3-4b-it, microsoft/Phi-4-mini-instruct',
    ),
    (
        # vLLM refuses to start unless one sequence of maxModelLen fits: 65,536 tokens x
        # 32 layers x 8 KV heads x 128 x 2 (K and V) x 2 bytes = 8.0 GiB beside the weights.
        _set("models[0].maxModelLen", 65536),
        "slm-deploy:models[0]: phi4-mini (microsoft/Phi-4-mini-instruct) on pool t4spot (Standard_NC4as_T4_v3, 1x T4): needs 16.6 GiB per GPU (weights 7.1, KV cache 8.0 for one sequence of maxModelLen 65536 tokens, runtime 1.4), 12.8 GiB usable at gpu_memory_utilization 0.85; fits with maxModelLen <= 34048, or vmSize Standard_NV36ads_A10_v5",
    ),
    (
        _set("models[0].targets", {"peakRequestsPerSecond": 40}),
        "slm-deploy:models[0].replicas.max: 2 is too few: targets.peakRequestsPerSecond 40 needs 173 replicas of 0.232 requests/s each within the targets; raise replicas.max (and the pool's maxCount) or lower the peak",
    ),
    (
        _set("models[0].source", "google/gemma-3-4b-it"),
        "slm-deploy:models[0]: phi4-mini (google/gemma-3-4b-it) on pool t4spot (Standard_NC4as_T4_v3, 1x T4): gemma-3-4b needs bfloat16 (vLLM refuses float16 for it: numerical instability) and the T4 (compute capability 7.5) has no bfloat16; works with vmSize Standard_NV36ads_A10_v5",
    ),
    (
        _set("models[0].tensorParallelSize", 2),
        "slm-deploy:models[0]: phi4-mini (microsoft/Phi-4-mini-instruct) on pool t4spot (Standard_NC4as_T4_v3, 1x T4): tensor-parallel size 2 does not divide the 1 GPUs of Standard_NC4as_T4_v3; works with tensorParallelSize 1, or vmSize Standard_NC48ads_A100_v4",
    ),
    (
        _set("models[0].gpuMemoryUtilization", 0.99),
        "slm-deploy:models[0].gpuMemoryUtilization: 0.99 is not allowed; expected a number <= 0.95",
    ),
    (
        _set("cluster.maintenanceWindow.startTime", "25:00"),
        'slm-deploy:cluster.maintenanceWindow.startTime: "25:00" is not allowed; expected a time of day as HH:MM (24-hour clock)',
    ),
    (
        _set("cluster.maintenanceWindow.durationHours", 2),
        "slm-deploy:cluster.maintenanceWindow.durationHours: 2 is not allowed; expected a number >= 4",
    ),
    (
        _set("cluster.gpuDriver", "nvidia"),
        "slm-deploy:cluster.gpuDriver: \"nvidia\" is not allowed; expected one of 'aks' or 'gpu-operator'",
    ),
    (
        _set("cluster.deployerPrincipalType", "App"),
        "slm-deploy:cluster.deployerPrincipalType: \"App\" is not allowed; expected one of 'User', 'ServicePrincipal' or 'Group'",
    ),
    (
        _set("environment", "local"),
        'slm-deploy:cluster.mode: "aks" is not allowed; expected existing for the local environment',
    ),
    (
        _set("environment", "prod"),
        "slm-deploy:cluster.authorizedIpRanges: [] is not allowed; expected at least one CIDR, or cluster.private: true, for prod (no public API server)",
    ),
    # -- autoscaling and monitoring (issue 6) --
    (
        _set("gpuPools[0].maxCount", 1),
        "slm-deploy:gpuPools[0].maxCount: 1 is not allowed; expected at least 2: its models may scale to 2 x phi4-mini (2 GPUs, 1 per Standard_NC4as_T4_v3 node)",
    ),
    (
        _set("models[0].replicas.awake", None),
        "slm-deploy:models[0].replicas.awake: null is not allowed; expected the hours to keep one replica up (timezone, days, start, end) when replicas.min is 0: a queue metric cannot wake a model with no pods",
    ),
    (
        _set("models[0].replicas.awake.timezone", "Mars/Olympus"),
        'slm-deploy:models[0].replicas.awake.timezone: "Mars/Olympus" is not allowed; expected an IANA time zone such as Europe/London or UTC',
    ),
    (
        _set("models[0].replicas.awake.end", "07:00"),
        'slm-deploy:models[0].replicas.awake.end: "07:00" is not allowed; expected a time after start (08:00)',
    ),
    (
        _set("models[0].replicas.awake.days", "mon-fri"),
        'slm-deploy:models[0].replicas.awake.days: "mon-fri" is not allowed; expected days of the week as a cron field: '
        "0-6 (0 is Sunday), single days or ranges low-high such as 1-5, separated by commas",
    ),
    (
        _set("monitoring.logs", {"retentionDays": 7}),
        "slm-deploy:monitoring.logs.retentionDays: 7 is not allowed; expected 30 to 730 on AKS: "
        "the container logs' Log Analytics workspace keeps them that long, and Azure refuses "
        "other values",
    ),
    (
        _set("monitoring", {"mode": "none"}),
        "slm-deploy:models[0].replicas.max: 2 is not allowed; expected 0 (the minimum) while monitoring.mode is none: autoscaling reads the servers' queue from Prometheus",
    ),
    (
        _set("models[0].queuePerReplica", 0),
        "slm-deploy:models[0].queuePerReplica: 0 is not allowed; expected a number >= 1",
    ),
    (
        _set("monitoring", {"storageGib": 2}),
        "slm-deploy:monitoring.storageGib: 2 is not allowed; expected a number >= 5",
    ),
    (
        _set("monitoring", {"alerts": {"errorRatio": 1.5}}),
        "slm-deploy:monitoring.alerts.errorRatio: 1.5 is not allowed; expected a number < 1.0",
    ),
    (
        _set("monitoring", {"runbookUrl": "docs/runbook.md"}),
        'slm-deploy:monitoring.runbookUrl: "docs/runbook.md" is not allowed; expected text matching ^https://\\S+$',
    ),
    # -- secrets and hardening (issue 7) --
    (
        _set("secrets", {"huggingFaceToken": "hf_WrittenInClearText0123456789"}),
        'slm-deploy:secrets: "[clear text]" is not allowed; expected values set with `pulumi config set --secret --path secrets.<name> <value>` (encrypted in the stack file)',
    ),
    (
        _all(
            _set("gpuPools[0].vmSize", "Standard_NV36ads_A10_v5"),
            _set("models[0].source", "google/gemma-3-4b-it"),
        ),
        "slm-deploy:secrets.huggingFaceToken: null is not allowed; expected a token for models[0] (google/gemma-3-4b-it), a gated model: pulumi config set --secret --path secrets.huggingFaceToken hf_...",
    ),
    # -- images, preloaded Ollama and the cache warmer (issue 8) --
    (
        _set("serving.cacheWarmer", {"enabled": True}),
        "slm-deploy:serving.cacheWarmer.image: null is not allowed; expected the image built from images/model-cache-warmer when enabled",
    ),
    (
        _set(
            "serving.cacheWarmer", {"enabled": True, "image": "registry.example.com/warmer:latest"}
        ),
        'slm-deploy:serving.cacheWarmer.image: "registry.example.com/warmer:latest" is not allowed; expected a version tag or an @sha256 digest, never latest',
    ),
    (
        _set("serving.cacheWarmer", {"enabled": True, "image": WARMER_IMAGE}),
        "slm-deploy:models[0].revision: null is not allowed; expected a pinned commit while serving.cacheWarmer is enabled: the cache holds one exact revision",
    ),
    (
        _all(_warmer(), _set("serving.modelCache", "node")),
        'slm-deploy:serving.modelCache: "node" is not allowed; expected shared while serving.cacheWarmer is enabled: the warmer fills the volume the model servers read',
    ),
    (
        _warmer(source="s3"),
        "slm-deploy:serving.cacheWarmer.source: \"s3\" is not allowed; expected one of 'huggingface' or 'azure-blob'",
    ),
    (
        _warmer(source="azure-blob"),
        "slm-deploy:serving.cacheWarmer.blobUrl: null is not allowed; expected https://<account>.blob.core.windows.net/<container>[/<prefix>] when source is azure-blob",
    ),
    (
        _warmer(
            source="azure-blob",
            blobUrl="https://slmmodels.blob.core.windows.net/models?sv=2024&sig=x",
        ),
        'slm-deploy:serving.cacheWarmer.blobUrl: "https://slmmodels.blob.core.windows.net/models?sv=2024&[... is not allowed; expected a container URL https://<account>.blob.core.windows.net/<container>[/<prefix>], without a SAS token',
    ),
    (
        _warmer(source="azure-blob", blobUrl="https://slmmodels.blob.core.windows.net/models/hf"),
        "slm-deploy:serving.cacheWarmer.blobStorageAccountId: null is not allowed; expected the mirror's storage account id when source is azure-blob: the warmer's identity is granted Storage Blob Data Reader on it",
    ),
    (
        _warmer(blobStorageAccountId="slmmodels"),
        'slm-deploy:serving.cacheWarmer.blobStorageAccountId: "slmmodels" is not allowed; expected a storage account resource id: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/<name>',
    ),
    (
        _warmer(
            source="azure-blob",
            blobUrl="https://othermodels.blob.core.windows.net/models",
            blobStorageAccountId=MIRROR_ACCOUNT_ID,
        ),
        "slm-deploy:serving.cacheWarmer.blobStorageAccountId: \"/subscriptions/00000000-0000-0000-0000-000000000000/reso... is not allowed; expected the id of blobUrl's account (othermodels)",
    ),
    (
        _set("serving.ollama", {"preloaded": True}),
        'slm-deploy:serving.ollamaImage: "ollama/ollama:0.31.1@sha256:f1a705f2bd113fb8d15f85f7c217... is not allowed; expected an image built from images/ollama-preloaded when serving.ollama.preloaded is true (the stock image holds no models)',
    ),
]

PRELOADED_OLLAMA_IMAGE = "registry.example.com/slm/ollama-preloaded:0.1.0@sha256:" + "1" * 64


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            # An existing cluster may run any minor we hold schemas for, not one outside.
            _set("cluster.kubernetesVersion", "1.24"),
            'slm-deploy:cluster.kubernetesVersion: "1.24" is not allowed; expected a minor version from 1.25 to 1.37',
        ),
        (
            _all(
                _set("serving.ollamaImage", PRELOADED_OLLAMA_IMAGE),
                _set("serving.ollama.preloaded", True),
                _set("models[0].variants", [{"name": "tiny-coder", "system": "You write Python."}]),
            ),
            'slm-deploy:models[0].variants: "[...]" is not allowed; expected nothing while serving.ollama.preloaded is true: variants are built at deploy time into a writable model store, the preloaded one is read-only',
        ),
        (
            # The path names the variant itself (it used to name models[1], an index into
            # a list of models and variants together that the stack file does not have).
            _set("models[0].variants", [{"name": "qwen3-tiny", "system": "You write Python."}]),
            'slm-deploy:models[0].variants[0].name: "qwen3-tiny" is not allowed; expected a '
            "name no other model, variant or adapter has (models[0].name has it)",
        ),
        (
            _set(
                "serving.cacheWarmer",
                {
                    "enabled": True,
                    "image": WARMER_IMAGE,
                    "source": "azure-blob",
                    "blobUrl": "https://slmmodels.blob.core.windows.net/models",
                },
            ),
            'slm-deploy:serving.cacheWarmer.source: "azure-blob" is not allowed; expected huggingface off AKS: the warmer reads the mirror with workload identity',
        ),
    ],
)
def test_bad_local_config_stops_with_one_line(config_root: Path, mutate, expected: str) -> None:
    document = read_stack(config_root, "local")
    mutate(document["config"])
    write_stack(config_root, "local", document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan("local", config_root=config_root)
    assert str(raised.value) == expected


def test_prod_refuses_a_cache_warmer_pinned_by_tag_only(config_root: Path) -> None:
    document = read_stack(config_root, "prod")
    image = "registry.example.com/slm/model-cache-warmer:0.1.0"
    document["config"][f"{P}serving"] = {"cacheWarmer": {"enabled": True, "image": image}}
    write_stack(config_root, "prod", document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan("prod", config_root=config_root)
    assert str(raised.value) == (
        f'slm-deploy:serving.cacheWarmer.image: "{image}" is not allowed; expected an image '
        "pinned by @sha256 digest in prod"
    )


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("vllmImage", "vllm/vllm-openai:v0.31.0", "serving.vllmImage"),
        ("ollamaImage", "ollama/ollama:0.31.1", "serving.ollamaImage"),
        (
            "ollama",
            {"openWebUi": {"image": "ghcr.io/open-webui/open-webui:v0.8.12"}},
            "serving.ollama.openWebUi.image",
        ),
    ],
)
def test_prod_refuses_images_pinned_by_tag_only(config_root: Path, key, value, path) -> None:
    document = read_stack(config_root, "prod")
    document["config"][f"{P}serving"] = {key: value}
    write_stack(config_root, "prod", document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan("prod", config_root=config_root)
    image = value if isinstance(value, str) else value["openWebUi"]["image"]
    assert str(raised.value) == (
        f'slm-deploy:{path}: "{image}" is not allowed; expected an image pinned by @sha256 digest in prod'
    )


def test_scale_to_zero_is_refused_in_staging(config_root: Path) -> None:
    document = read_stack(config_root, "staging")
    document["config"][f"{P}models"][0]["replicas"] = {"min": 0, "max": 2}
    write_stack(config_root, "staging", document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan("staging", config_root=config_root)
    assert str(raised.value) == (
        "slm-deploy:models[0].replicas.min: 0 is not allowed; expected at least 1 in staging: "
        "scale to zero is for dev and local"
    )


@pytest.mark.parametrize(("mutate", "expected"), BAD_DEV_CONFIGS)
def test_bad_config_stops_with_one_line(config_root: Path, mutate, expected: str) -> None:
    document = read_stack(config_root, "dev")
    mutate(document["config"])
    write_stack(config_root, "dev", document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan("dev", config_root=config_root)
    assert str(raised.value) == expected
    assert "\n" not in str(raised.value)


def test_bad_config_declares_nothing(config_root: Path) -> None:
    document = read_stack(config_root, "dev")
    document["config"][f"{P}gpuPools"][0]["maxCount"] = -5
    write_stack(config_root, "dev", document)
    values = load_stack_config_values(config_root, "dev")
    recording = Recording()
    with pytest.raises(ConfigError):
        run_program(
            ROOT / "__main__.py",
            values.project,
            "dev",
            values.values,
            values.secret_keys,
            recording,
        )
    assert recording.resources == []


def test_secret_value_is_never_echoed_in_an_error() -> None:
    raw = {
        "stack": "dev",
        "environment": "dev",
        "cluster": {"mode": "existing", "context": "kind"},
        "models": [{"name": "m", "engine": "ollama", "source": "qwen3:0.6b"}],
        "secrets": {"huggingFaceToken": 12345678},
    }
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(raw)
    assert "12345678" not in str(raised.value)
    assert str(raised.value) == (
        'slm-deploy:secrets.huggingFaceToken: "[secret]" is not allowed; expected text'
    )


def test_malformed_yaml_names_file_and_line(config_root: Path) -> None:
    path = config_root / "stacks" / "Pulumi.dev.yaml"
    path.write_text("config:\n  slm-deploy:environment: dev\n   bad: [\n")
    with pytest.raises(PlanConfigError) as raised:
        build_plan("dev", config_root=config_root)
    assert str(raised.value).startswith("Pulumi.dev.yaml: line 3, column 7: malformed YAML")


def test_unknown_stack_lists_the_stacks(config_root: Path) -> None:
    with pytest.raises(PlanConfigError) as raised:
        build_plan("qa", config_root=config_root)
    assert str(raised.value) == (
        "stack 'qa': no file stacks/Pulumi.qa.yaml; stacks: dev, local, prod, staging"
    )


def test_secure_values_reach_the_program_as_secret_keys(config_root: Path) -> None:
    document = read_stack(config_root, "dev")
    document["config"][f"{P}secrets"] = {"huggingFaceToken": {"secure": "v1:AAAA"}}
    write_stack(config_root, "dev", document)
    values = load_stack_config_values(config_root, "dev")
    assert values.secret_keys == [f"{P}secrets"]
    # Go's encoding/json, as the CLI writes objects: no spaces.
    assert values.values[f"{P}secrets"] == '{"huggingFaceToken":"[secret]"}'


@pytest.mark.parametrize("version", ["1.25", "1.33", "1.37"])
def test_an_existing_cluster_keeps_any_minor_with_schemas(config_root: Path, version) -> None:
    """AKS's calendar binds the clusters AKS creates; an existing cluster's version is a fact
    we only validate manifests for (nothing there depends on an AKS add-on)."""
    document = read_stack(config_root, "local")
    document["config"][f"{P}cluster"]["kubernetesVersion"] = version
    write_stack(config_root, "local", document)
    assert build_plan("local", config_root=config_root)["outputs"]["kubernetesVersion"] == version


def test_plan_exits_2_with_one_line_for_a_minor_aks_does_not_support(tmp_path: Path) -> None:
    """The command a user runs: exit 2, the one line on stderr, no traceback, nothing written."""
    copy_program(tmp_path)
    document = read_stack(tmp_path, "staging")
    document["config"][f"{P}cluster"]["kubernetesVersion"] = "1.33"
    write_stack(tmp_path, "staging", document)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "staging", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        'plan staging: slm-deploy:cluster.kubernetesVersion: "1.33" is not allowed; expected a '
        "minor in AKS standard support on 2026-12-03 with known add-on versions "
        "(components/aks_versions.json): 1.35, 1.36\n"
    )
    assert not out.exists()


# -- every value against the rule of what it becomes (components/value_rules.py) ----------

RULES_BASE = {
    "stack": "dev",
    "environment": "dev",
    "cluster": {"mode": "aks"},
    "gpuPools": [{"name": "t4", "vmSize": "Standard_NC4as_T4_v3", "maxCount": 2}],
    "models": [
        {"name": "chat", "engine": "ollama", "source": "qwen3:0.6b"},
        {
            "name": "phi4-mini",
            "engine": "vllm",
            "source": "microsoft/Phi-4-mini-instruct",
            "pool": "t4",
            "maxModelLen": 4096,
            "maxNumSeqs": 4,
        },
    ],
}
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"
K8S_SUBDOMAIN = (
    "a Kubernetes name (DNS-1123 subdomain): at most 253 characters of lowercase letters, "
    "digits, '-' and '.', each part starting and ending with a letter or digit"
)
HOST = (
    "a DNS host name such as models.example.com: labels of 1-63 lowercase letters, digits "
    "and '-' (not at either end), separated by '.', at most 253 characters"
)
REGION = (
    "an Azure region name from components/azure_regions.json (67 regions, e.g. eastus, "
    "westeurope, swedencentral; a new region: add it there with its source)"
)
OFFSET = (
    "a UTC offset in use somewhere (IANA time zone database), from -12:00 to +14:00, such "
    "as +01:00 or +05:30"
)
DAYS = (
    "days of the week as a cron field: 0-6 (0 is Sunday), single days or ranges low-high "
    "such as 1-5, separated by commas"
)


def _raw_with(changes: dict[str, Any], base: dict[str, Any] = RULES_BASE) -> dict[str, Any]:
    raw = copy.deepcopy(base)
    for path, value in changes.items():
        parts = [p for p in path.replace("]", "").replace("[", ".").split(".") if p]
        node: Any = raw
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value
    return raw


VALUES_AGAINST_THEIR_RULES = [
    ({"serving.cacheStorageClass": "Fast SSD ü"}, 'serving.cacheStorageClass: "Fast SSD ü"', K8S_SUBDOMAIN),
    ({"serving.cacheStorageClass": "a" * 300}, f'serving.cacheStorageClass: "{"a" * 56}...', K8S_SUBDOMAIN),
    ({"ingress.host": "a" * 70 + ".example.com"}, f'ingress.host: "{"a" * 56}...', HOST),
    ({"ingress.host": "a..example.com"}, 'ingress.host: "a..example.com"', HOST),
    ({"ingress.host": "203.0.113.7"}, 'ingress.host: "203.0.113.7"', HOST + ", not an IP address"),
    ({"ingress.className": "Nginx Internal"}, 'ingress.className: "Nginx Internal"', K8S_SUBDOMAIN),
    ({"ingress.tlsSecretName": "My_Cert"}, 'ingress.tlsSecretName: "My_Cert"', K8S_SUBDOMAIN),
    ({"cluster.location": "atlantis"}, 'cluster.location: "atlantis"', REGION),
    ({"cluster.location": "eastus9"}, 'cluster.location: "eastus9"', REGION),
    ({"cluster.location": "global"}, 'cluster.location: "global"', REGION),
    (
        {"cluster.kubernetesVersion": "1.25"},
        'cluster.kubernetesVersion: "1.25"',
        f"a minor in AKS standard support on {aks_versions.CHECKED} with known add-on versions "
        f"(components/aks_versions.json): {', '.join(aks_versions.aks_minors())}",
    ),
    (
        {"models[1].replicas": {"min": 0, "max": 1, "awake": {"days": "5-1"}}},
        'models[1].replicas.awake.days: "5-1"',
        DAYS + "; 5-1 runs backwards (write 1-5, or split it)",
    ),
    ({"cluster.maintenanceWindow.utcOffset": "+14:30"}, 'cluster.maintenanceWindow.utcOffset: "+14:30"', OFFSET),
    ({"cluster.maintenanceWindow.utcOffset": "-13:00"}, 'cluster.maintenanceWindow.utcOffset: "-13:00"', OFFSET),
    (
        {"cluster.systemPool.vmSize": "Standard_Fake_v9"},
        'cluster.systemPool.vmSize: "Standard_Fake_v9"',
        "a general-purpose size for AKS's system pool from components/value_rules.py, e.g. "
        "Standard_D4s_v5 or Standard_D8ds_v5",
    ),
    (
        {"gpuPools[0].name": "system", "models[1].pool": "system"},
        'gpuPools[0].name: "system"',
        "a name other than system (the cluster's system pool)",
    ),
    (
        {"gpuPools[0].vmSize": "Standard_NC6s_v3"},
        'gpuPools[0].vmSize: "Standard_NC6s_v3"',
        "a GPU SKU from components/catalog.py: " + ", ".join(catalog.GPU_SKUS),
    ),
    (
        {"cluster.systemPool.zones": [1, 2, 3]},
        "cluster.systemPool.zones[0]: 1",
        "one of '1', '2' or '3' (text: write \"1\" in quotes, YAML reads 1 as a number)",
    ),
    (
        {"models": RULES_BASE["models"][1:], "serving.ollama.openWebUi.enabled": True},
        "serving.ollama.openWebUi.enabled: true",
        "false while no model has engine ollama: Open WebUI is deployed beside Ollama models "
        "only, so this deploys nothing",
    ),
    (
        {"models[0].name": "open-webui", "serving.ollama.openWebUi.enabled": True},
        'models[0].name: "open-webui"',
        "a name other than open-webui while serving.ollama.openWebUi is enabled: Open WebUI's "
        "Deployment, Service and claim have that name in the same namespace",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "shown", "allowed"), VALUES_AGAINST_THEIR_RULES)
def test_each_value_is_checked_against_what_it_becomes(changes, shown, allowed) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_raw_with(changes))
    assert str(raised.value) == f"{P}{shown} is not allowed; expected {allowed}"


@pytest.mark.parametrize(
    "changes",
    [
        {"ingress.host": "models.example.com"},
        {"ingress.host": ("a" * 63 + ".") * 3 + "b" * 61},  # 253 characters, 63 per label
        {"serving.cacheStorageClass": "azurefile-csi-premium"},
        {"ingress.className": "webapprouting.kubernetes.azure.com"},
        {"cluster.location": "swedencentral"},
        {"cluster.location": "newzealandnorth"},
        {"cluster.maintenanceWindow.utcOffset": "+05:45"},
        {"cluster.maintenanceWindow.utcOffset": "-09:30"},
        {"cluster.maintenanceWindow.utcOffset": "+14:00"},
        {"cluster.maintenanceWindow.utcOffset": "-12:00"},
        {"models[1].replicas": {"min": 0, "max": 1, "awake": {"days": "0,6"}}},
        {"models[1].replicas": {"min": 0, "max": 1, "awake": {"days": "1-5,0"}}},
        {"cluster.systemPool.vmSize": "Standard_D8ds_v5"},
        {"serving.ollama.openWebUi.enabled": True},
    ],
)
def test_valid_values_are_accepted(changes) -> None:
    config = parse_stack_config(_raw_with(changes))
    assert config.stack == "dev"


def test_the_reserved_pool_name_is_the_system_pool_the_cluster_declares(plans) -> None:
    from components import ollama, value_rules
    from components.config import OPEN_WEBUI_NAME

    (cluster,) = [
        r
        for r in plans["dev"]["resources"]
        if r["type"] == "azure-native:containerservice:ManagedCluster"
    ]
    assert [p["name"] for p in cluster["inputs"]["agentPoolProfiles"]] == [
        value_rules.SYSTEM_POOL_NAME
    ]
    assert OPEN_WEBUI_NAME == ollama.OPEN_WEBUI_NAME


# -- security: API server ranges and credentials in error lines ----------------------------

PROD_BASE = _raw_with(
    {
        "stack": "prod",
        "environment": "prod",
        "cluster": {"mode": "aks", "authorizedIpRanges": ["203.0.113.0/24"]},
        "models": RULES_BASE["models"][1:],
        "models[0].revision": "c0e9ee8a5b5b4e6d2f2f8d2f6b7c8a9d0e1f2a3b",
    }
)
WIDE = (
    "a range of /{limit} or narrower (IPv{version}) in staging and prod: a wider range admits "
    "addresses outside your organisation"
)


@pytest.mark.parametrize("environment", ["staging", "prod"])
@pytest.mark.parametrize(
    ("cidr", "limit", "version"),
    [("0.0.0.0/0", 16, 4), ("10.0.0.0/8", 16, 4), ("203.0.0.0/15", 16, 4), ("::/0", 48, 6)],
)
def test_production_refuses_wide_api_server_ranges(environment, cidr, limit, version) -> None:
    raw = _raw_with(
        {"environment": environment, "cluster.authorizedIpRanges": ["198.51.100.0/24", cidr]},
        PROD_BASE,
    )
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(raw)
    assert str(raised.value) == (
        f'{P}cluster.authorizedIpRanges[1]: "{cidr}" is not allowed; expected '
        + WIDE.format(limit=limit, version=version)
    )


@pytest.mark.parametrize("cidr", ["203.0.0.0/16", "2001:db8::/48"])
def test_production_accepts_ranges_at_the_limit(cidr) -> None:
    raw = _raw_with({"cluster.authorizedIpRanges": [cidr]}, PROD_BASE)
    assert parse_stack_config(raw).cluster.authorized_ip_ranges == [cidr]


def test_dev_may_still_open_the_api_server() -> None:
    raw = _raw_with({"cluster.authorizedIpRanges": ["0.0.0.0/0"]})
    assert parse_stack_config(raw).cluster.authorized_ip_ranges == ["0.0.0.0/0"]


# Known credential formats, each planted under a key that does not expect one.
PLANTED = {
    "hugging face": HF_TOKEN,
    "github classic": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "github fine-grained": "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "azure storage key": "Zm9vYmFyYmF6cXV4" * 5 + "AbCdEf12345678==",
    "jwt": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlX2J5dGVz",
    "hex api key": "0123456789abcdef" * 3,
    "storage connection string": "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc/def+ghi==",
}


WRONG_KEYS = ["ingress.host", "serving.cacheStorageClass", "cluster.location", "models[0].source"]
# A lowercase hex key is a valid DNS name: accepted as a host or class name, so never shown.
PLANTED_CASES = [
    (kind, key)
    for kind in sorted(PLANTED)
    for key in WRONG_KEYS
    if not (kind == "hex api key" and key in ("ingress.host", "serving.cacheStorageClass"))
]


@pytest.mark.parametrize(("kind", "key"), PLANTED_CASES)
def test_a_credential_under_a_wrong_key_is_never_echoed(kind, key) -> None:
    token = PLANTED[kind]
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_raw_with({key: token}))
    line = str(raised.value)
    assert line.startswith(f"{P}{key}: ")
    assert "[redacted]" in line
    for part in re.findall(r"[A-Za-z0-9+/=_-]{12,}", token):
        if any(c.isdigit() for c in part):
            assert part[:12] not in line, (part, line)


def test_a_value_under_a_credential_key_is_never_echoed_whatever_its_shape() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_raw_with({"ingress.apiToken": "s3cr3t"}))
    assert str(raised.value) == (
        f"{P}ingress.apiToken: [redacted] is not allowed; expected no such key (check the "
        "spelling against components/config.py)"
    )


def test_an_image_digest_stays_readable() -> None:
    image = "vllm/vllm-openai:latest@sha256:" + "ab12" * 16
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_raw_with({"serving.vllmImage": image.replace(":latest", ":latest!")}))
    assert "sha256:ab12ab12" in str(raised.value)


# -- the stack name (components/azure_names.check_stack_name) ------------------------------


def test_a_stack_name_azure_names_cannot_be_built_from_stops_the_plan(config_root: Path) -> None:
    shutil.copy(
        config_root / "stacks" / "Pulumi.dev.yaml",
        config_root / "stacks" / "Pulumi.team_a.dev.yaml",
    )
    with pytest.raises(PlanConfigError) as raised:
        build_plan("team_a.dev", config_root=config_root)
    assert str(raised.value) == (
        f'{PROJECT}: stack "team_a.dev" is not allowed; expected a stack name of lowercase '
        "letters, digits and single hyphens, starting and ending with a letter or digit, at "
        f"most {azure_names.MAX_STACK_LENGTH} characters: Azure names such as "
        f'{azure_names.RESOURCE_GROUP_PREFIX}<stack> are built from it (rename it, e.g. "team-a-dev")'
    )


def test_a_count_of_tokens_is_shown_while_an_access_token_is_not() -> None:
    """workload.inputTokens counts text, so a bad count is echoed; a key that holds an access
    token (ingress.apiToken, maxToken is not one) stays hidden."""
    assert not redaction.is_secret_key("models[0].workload.inputTokens")
    assert not redaction.is_secret_key("models[0].workload.outputTokens")
    assert redaction.is_secret_key("secrets.huggingFaceToken")
    assert redaction.is_secret_key("ingress.apiTokens")
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(_raw_with({"models[0].workload": {"inputTokens": -1}}))
    assert str(raised.value) == (
        f"{P}models[0].workload.inputTokens: -1 is not allowed; expected a number >= 1"
    )


def test_capacity_settings_on_an_ollama_model_are_refused_not_ignored(config_root) -> None:
    document = read_stack(config_root, "local")
    document["config"][f"{P}models"][0]["targets"] = {"peakRequestsPerSecond": 5}
    write_stack(config_root, "local", document)
    with pytest.raises(PlanConfigError) as raised:
        build_plan("local", config_root=config_root)
    assert str(raised.value) == (
        f'{P}models[0].targets: "{{...}}" is not allowed; expected nothing for Ollama: the '
        "capacity model and the autoscaler that read it cover vLLM only"
    )
