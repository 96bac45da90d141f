"""The mode matrix: a stack file's switches planned in combination, pairwise.

A stack file has many switches (components/config.py): the tier, the cluster mode, the
monitoring mode, how GPU nodes get their software, a private API server, the ingress and
its TLS, the cache warmer and its source, preloaded Ollama, Open WebUI, several Ollama
models and their variants, gated models, quantized checkpoints, the GPU, tensor
parallelism, spot pools and the replica range. A rule or a name that breaks one mode
only shows when that mode is planned, so every pair of switch values the configuration
accepts is planned at least once, from tests/fixtures/mode-matrix/ (never the shipped
stacks), and each plan must:

- pass the policy pack (tools.plan.policy_violations, as `plan` exits 1 otherwise);
- validate strictly against the Kubernetes schemas, custom resources against their CRDs
  (tests/conftest.py invalid_manifests);
- pass the Helm contract (every value path in the pinned chart, every ServiceMonitor's
  timeout within its interval: tests/test_helm_contracts.py), the azure-native contract
  (inputs against the installed SDK's types) and every Azure name against its rule
  (tests/test_azure_contracts.py);
- declare no two Kubernetes objects with the same kind, namespace and name (the second
  fails on `pulumi up`; the plan's one-file-per-object listing would hide it);
- be deterministic (two runs, the same resources and outputs).

The pairs the configuration refuses are listed in REFUSALS, each with its reason; each is
planned once and must stop with one configuration line naming the key (exit 2), so that a
refusal nobody intended fails here instead of silently shrinking the matrix.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import catalog
from tests.conftest import invalid_manifests
from tests.test_azure_contracts import (
    Tally,
    azurerm_rules,
    names_breaking_rules,
    naming_tool_rules,
    resource_problems,
    swagger_constraints,
)
from tests.test_helm_contracts import (
    CHARTS,
    merged,
    service_monitor_blocks,
    timing_problems,
    unknown_paths,
)
from tools.plan import ROOT, PlanConfigError, build_plan, helm_releases, plain_numbers

FIXTURES = Path(__file__).parent / "fixtures" / "mode-matrix"
P = "slm-deploy:"

# --- the switches ----------------------------------------------------------------------------

# Each factor is one switch of a stack file and the values the matrix gives it. Larger
# factors first: the generator seeds each case with the first pair still uncovered.
FACTORS: dict[str, tuple[str, ...]] = {
    "environment": ("local", "dev", "staging", "prod"),
    "gpu": ("T4", "A10", "A100x2", "H100"),  # the vLLM models' pool (switches.yaml gpuSkus)
    # How GPU nodes get their driver, device plugin and DCGM exporter. default: on AKS the
    # pool's driver from AKS (gpuDriver aks), on an existing cluster what it already runs
    # (gpuSoftware present); other: NVIDIA's GPU Operator (gpuDriver gpu-operator), or the
    # template's device plugin and DCGM exporter charts (gpuSoftware install).
    "gpuSoftware": ("default", "other"),
    "ingress": ("off", "http", "tls-secret", "tls-key-vault"),
    "monitoring": ("in-cluster", "azure-managed", "none"),
    "cacheWarmer": ("off", "huggingface", "azure-blob"),
    "checkpoint": ("bf16", "awq", "fp8"),  # the first vLLM model's checkpoint
    "replicas": ("fixed", "range", "zero-awake"),  # the first vLLM model's replicas
    "cluster": ("aks", "existing"),
    "privateApi": ("public", "private"),
    "ollamaModels": ("one", "two"),
    "ollamaPreloaded": ("pull", "preloaded"),
    "ollamaVariants": ("none", "variant"),
    "openWebUi": ("off", "on"),
    "gated": ("none", "gemma"),  # a second vLLM model that needs a Hugging Face token
    "tensorParallel": ("1", "2"),
    "spot": ("on-demand", "spot"),
    # A third engine: an ONNX Runtime GenAI model on a CPU pool (switches.yaml onnxModel).
    "onnx": ("none", "cpu"),
}

SINGLE_GPU = ("T4", "A10", "H100")


@dataclass(frozen=True)
class Refusal:
    """A pair of switch values the configuration refuses on purpose, and why."""

    first: tuple[str, tuple[str, ...]]  # factor, the values refused with `second`
    second: tuple[str, tuple[str, ...]]
    key: str  # a regular expression for the key path the error line names
    reason: str

    def pairs(self) -> Iterator[frozenset[tuple[str, str]]]:
        (f1, levels1), (f2, levels2) = self.first, self.second
        for l1, l2 in itertools.product(levels1, levels2):
            yield frozenset({(f1, l1), (f2, l2)})


REFUSALS: tuple[Refusal, ...] = (
    Refusal(
        ("environment", ("local",)),
        ("cluster", ("aks",)),
        r"cluster\.mode",
        "local runs on a cluster you already have (a laptop), never a new AKS cluster",
    ),
    Refusal(
        ("environment", ("staging", "prod")),
        ("cluster", ("existing",)),
        r"cluster\.mode",
        "staging and prod promise Key Vault, private endpoints and the AKS settings the policy"
        " pack checks",
    ),
    Refusal(
        ("monitoring", ("azure-managed",)),
        ("cluster", ("existing",)),
        r"monitoring\.mode",
        "Azure Monitor's managed Prometheus is an AKS add-on",
    ),
    Refusal(
        ("privateApi", ("private",)),
        ("cluster", ("existing",)),
        r"cluster\.private",
        "a private API server is an AKS setting; an existing cluster's API is what it is",
    ),
    Refusal(
        ("ingress", ("http",)),
        ("environment", ("staging", "prod")),
        r"ingress\.tlsSecretName",
        "no plain HTTP in staging or prod",
    ),
    Refusal(
        ("ingress", ("tls-key-vault",)),
        ("cluster", ("existing",)),
        r"ingress\.tlsKeyVaultCertificateUri",
        "a Key Vault certificate reaches the ingress through AKS application routing only",
    ),
    Refusal(
        ("cacheWarmer", ("azure-blob",)),
        ("cluster", ("existing",)),
        r"serving\.cacheWarmer\.source",
        "the warmer reads the Blob mirror with AKS workload identity",
    ),
    Refusal(
        ("ollamaPreloaded", ("preloaded",)),
        ("ollamaVariants", ("variant",)),
        r"models\[\d+\]\.variants",
        "variants are built at deploy time into a writable store; a preloaded one is read-only",
    ),
    Refusal(
        ("tensorParallel", ("2",)),
        ("gpu", SINGLE_GPU),
        r"models\[0\]",
        "a replica never spans nodes: tensor parallelism needs that many GPUs on one node",
    ),
    Refusal(
        ("gated", ("gemma",)),
        ("gpu", ("T4",)),
        r"models\[1\]",
        "Gemma 3 needs bfloat16 (vLLM refuses float16 for it) and a T4 has none",
    ),
    Refusal(
        ("replicas", ("range", "zero-awake")),
        ("cluster", ("existing",)),
        r"models\[0\]\.replicas\.max",
        "autoscaling relies on the AKS KEDA add-on; nothing installs KEDA on your cluster",
    ),
    Refusal(
        ("replicas", ("zero-awake",)),
        ("environment", ("staging", "prod")),
        r"models\[0\]\.replicas\.min",
        "scale to zero is for dev and local: the first request after idle waits for a GPU node",
    ),
    Refusal(
        ("onnx", ("cpu",)),
        ("cacheWarmer", ("off",)),
        r"serving\.cacheWarmer\.enabled",
        "the ONNX Runtime server reads the weights the warmer puts in the cache, never the Hub",
    ),
    Refusal(
        ("replicas", ("range", "zero-awake")),
        ("monitoring", ("none",)),
        r"models\[0\]\.replicas\.max",
        "autoscaling reads vLLM's queue from Prometheus",
    ),
)
FORBIDDEN = frozenset(pair for refusal in REFUSALS for pair in refusal.pairs())

Case = dict[str, str]


# --- a deterministic pairwise generator -------------------------------------------------------


def consistent(case: Mapping[str, str], forbidden: frozenset = FORBIDDEN) -> bool:
    """No two values of `case` form a refused pair."""
    items = sorted(case.items())
    return not any(frozenset(pair) in forbidden for pair in itertools.combinations(items, 2))


def complete(case: Case, forbidden: frozenset = FORBIDDEN) -> Case | None:
    """`case` with every other factor given a value, first values first, so that no refused
    pair occurs; None where no such case exists (depth-first with forward checking: each
    factor keeps only the values compatible with those already chosen)."""
    if not consistent(case, forbidden):
        return None
    domains = {
        factor: [level for level in levels if _compatible(factor, level, case, forbidden)]
        for factor, levels in FACTORS.items()
        if factor not in case
    }
    return _search(dict(case), domains, forbidden)


def _compatible(factor: str, level: str, case: Mapping[str, str], forbidden: frozenset) -> bool:
    return not any(frozenset({(factor, level), item}) in forbidden for item in case.items())


def _search(case: Case, domains: dict[str, list[str]], forbidden: frozenset) -> Case | None:
    if not domains:
        return case
    if not all(domains.values()):
        return None
    factor = next(iter(domains))
    for level in domains[factor]:
        rest = {
            other: [
                value
                for value in values
                if frozenset({(factor, level), (other, value)}) not in forbidden
            ]
            for other, values in domains.items()
            if other != factor
        }
        found = _search({**case, factor: level}, rest, forbidden)
        if found is not None:
            return found
    return None


def all_pairs() -> list[tuple[tuple[str, str], tuple[str, str]]]:
    factors = list(FACTORS)
    return [
        ((f1, l1), (f2, l2))
        for f1, f2 in itertools.combinations(factors, 2)
        for l1 in FACTORS[f1]
        for l2 in FACTORS[f2]
    ]


def allowed_pairs() -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Every pair of values that some accepted case holds: not refused, directly or through
    other refusals (local forces an existing cluster, which refuses a private API...)."""
    return [pair for pair in all_pairs() if complete(dict(pair)) is not None]


def pairs_of(case: Mapping[str, str]) -> set[tuple[tuple[str, str], tuple[str, str]]]:
    factors = list(FACTORS)
    return {
        ((f1, case[f1]), (f2, case[f2]))
        for f1, f2 in itertools.combinations(factors, 2)
        if f1 in case and f2 in case
    }


def pairwise_cases() -> list[Case]:
    """Accepted cases that together hold every allowed pair (greedy, deterministic): each
    case starts from the first uncovered pair of the two factors with the most uncovered
    pairs, and gives every other factor the value that covers the most uncovered pairs and
    still leads to an accepted case."""
    uncovered = set(allowed_pairs())
    cases: list[Case] = []
    while uncovered:
        by_factors = Counter((first[0], second[0]) for first, second in uncovered)
        hardest = max(sorted(by_factors), key=lambda factors: by_factors[factors])
        case: Case = dict(min(p for p in uncovered if (p[0][0], p[1][0]) == hardest))
        for factor in FACTORS:
            if factor in case:
                continue
            ranked = sorted(
                FACTORS[factor],
                key=lambda level, factor=factor: (
                    -len(pairs_of({**case, factor: level}) & uncovered),
                    FACTORS[factor].index(level),
                ),
            )
            case[factor] = next(
                level for level in ranked if complete({**case, factor: level}) is not None
            )
        cases.append(case)
        uncovered -= pairs_of(case)
    return cases


def refused_case(refusal: Refusal) -> Case:
    """An otherwise accepted case that holds the refusal's first pair (and no other)."""
    pair = min(refusal.pairs(), key=sorted)
    others = FORBIDDEN - frozenset(refusal.pairs())
    found = complete(dict(pair), others)
    assert found is not None, f"no case isolates {refusal}"
    return found


CASES = pairwise_cases()


def case_id(index: int) -> str:
    return f"mx{index + 1:02d}"


def describe(case: Mapping[str, str]) -> str:
    return " ".join(f"{factor}={case[factor]}" for factor in FACTORS)


# --- the stack file of a case -------------------------------------------------------------------


def load_fixture(name: str) -> Any:
    return yaml.safe_load((FIXTURES / name).read_text())


BASE = load_fixture("Pulumi.base.yaml")
SWITCHES = load_fixture("switches.yaml")["switches"]


def stack_document(case: Mapping[str, str]) -> dict[str, Any]:
    """Pulumi.base.yaml with the case's switches applied."""
    config = copy.deepcopy(BASE["config"])
    config[f"{P}environment"] = case["environment"]
    config[f"{P}cluster"] = cluster_config(case)
    models = model_configs(case)
    config[f"{P}models"] = models
    config[f"{P}gpuPools"] = [gpu_pool(case, models)]
    if case["onnx"] == "cpu":
        config[f"{P}cpuPools"] = [copy.deepcopy(SWITCHES["cpuPool"])]
    config[f"{P}monitoring"] = {"mode": case["monitoring"]}
    config[f"{P}serving"] = serving_config(case)
    if case["ingress"] != "off":
        config[f"{P}ingress"] = ingress_config(case["ingress"])
    if case["gated"] == "gemma":
        config[f"{P}secrets"] = {"huggingFaceToken": copy.deepcopy(SWITCHES["hubToken"])}
    return {"config": config}


def cluster_config(case: Mapping[str, str]) -> dict[str, Any]:
    if case["cluster"] == "existing":
        cluster: dict[str, Any] = {"mode": "existing", "context": SWITCHES["existingContext"]}
    else:
        cluster = copy.deepcopy(BASE["config"][f"{P}cluster"])
        if case["privateApi"] == "private":
            cluster.pop("authorizedIpRanges")
    # A refused case keeps the other mode's keys, so that the refusal is what stops it.
    if case["privateApi"] == "private":
        cluster["private"] = True
    other = case["gpuSoftware"] == "other"
    if case["cluster"] == "aks":
        cluster["gpuDriver"] = "gpu-operator" if other else "aks"
    else:
        cluster["gpuSoftware"] = "install" if other else "present"
    return cluster


def model_configs(case: Mapping[str, str]) -> list[dict[str, Any]]:
    base_models = BASE["config"][f"{P}models"]
    chat = copy.deepcopy(next(m for m in base_models if m["engine"] == "vllm"))
    chat["source"] = SWITCHES["checkpoints"][case["checkpoint"]]
    chat["tensorParallelSize"] = int(case["tensorParallel"])
    chat["replicas"] = {
        "fixed": {"min": 1, "max": 1},
        "range": {"min": 1, "max": 2},
        "zero-awake": {"min": 0, "max": 1, "awake": copy.deepcopy(SWITCHES["awake"])},
    }[case["replicas"]]
    models = [chat]
    if case["gated"] == "gemma":
        models.append(copy.deepcopy(SWITCHES["gatedModel"]))
    local = copy.deepcopy(next(m for m in base_models if m["engine"] == "ollama"))
    if case["ollamaVariants"] == "variant":
        local["variants"] = [copy.deepcopy(SWITCHES["ollamaVariant"])]
    models.append(local)
    if case["ollamaModels"] == "two":
        models.append(copy.deepcopy(SWITCHES["secondOllamaModel"]))
    if case["onnx"] == "cpu":
        models.append(copy.deepcopy(SWITCHES["onnxModel"]))
    return models


def gpu_pool(case: Mapping[str, str], models: list[dict[str, Any]]) -> dict[str, Any]:
    """The one GPU pool, with room for every replica its models may scale to."""
    vm_size = SWITCHES["gpuSkus"][case["gpu"]]
    gpus = sum(
        model.get("replicas", {}).get("max", 1) * model.get("tensorParallelSize", 1)
        for model in models
        if model["engine"] == "vllm"
    )
    per_node = catalog.GPU_SKUS[vm_size].gpus
    pool = dict(BASE["config"][f"{P}gpuPools"][0], vmSize=vm_size)
    pool["maxCount"] = -(-gpus // per_node)
    if case["spot"] == "spot":
        pool["spot"] = True
    return pool


def serving_config(case: Mapping[str, str]) -> dict[str, Any]:
    serving: dict[str, Any] = {}
    if case["cacheWarmer"] != "off":
        warmer = {"enabled": True, "image": SWITCHES["cacheWarmerImage"]}
        if case["cacheWarmer"] == "azure-blob":
            warmer |= {
                "source": "azure-blob",
                "blobUrl": SWITCHES["blobUrl"],
                "blobStorageAccountId": SWITCHES["blobStorageAccountId"],
            }
        serving["cacheWarmer"] = warmer
    ollama: dict[str, Any] = {}
    if case["ollamaPreloaded"] == "preloaded":
        ollama["preloaded"] = True
        serving["ollamaImage"] = SWITCHES["preloadedOllamaImage"]
    if case["openWebUi"] == "on":
        ollama["openWebUi"] = {"enabled": True}
    if ollama:
        serving["ollama"] = ollama
    if case["onnx"] == "cpu":
        serving["onnxImage"] = SWITCHES["onnxImage"]
    return serving


def ingress_config(level: str) -> dict[str, Any]:
    ingress = {"enabled": True, "host": SWITCHES["ingressHost"]}
    if level == "tls-secret":
        ingress["tlsSecretName"] = SWITCHES["tlsSecretName"]
    elif level == "tls-key-vault":
        ingress["tlsKeyVaultCertificateUri"] = SWITCHES["tlsKeyVaultCertificateUri"]
    return ingress


# --- planning -------------------------------------------------------------------------------------


class MatrixPlans:
    """A folder with Pulumi.yaml where each case's stack file is written and planned."""

    def __init__(self, root: Path):
        self.root = root
        shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
        (root / "stacks").mkdir()

    def build(self, stack: str, case: Mapping[str, str]) -> dict[str, Any] | PlanConfigError:
        path = self.root / "stacks" / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump(stack_document(case), sort_keys=False))
        try:
            return build_plan(stack, config_root=self.root)
        except PlanConfigError as err:
            return err


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> MatrixPlans:
    return MatrixPlans(tmp_path_factory.mktemp("mode-matrix"))


def duplicate_objects(plan: dict[str, Any]) -> list[str]:
    """Kubernetes objects declared more than once under the same kind, namespace and name."""
    keys = Counter(
        (
            resource["inputs"]["kind"],
            (resource["inputs"].get("metadata") or {}).get("namespace", ""),
            (resource["inputs"].get("metadata") or {}).get("name", ""),
        )
        for resource in plan["resources"]
        if resource["type"].startswith("kubernetes:") and "kind" in resource["inputs"]
    )
    return [
        f"{kind} {namespace or '(cluster)'}/{name} declared {count} times"
        for (kind, namespace, name), count in sorted(keys.items())
        if count > 1
    ]


@functools.cache
def _azure_name_sources() -> dict[str, Any]:
    return {
        "swagger": swagger_constraints(),
        "naming_tool": naming_tool_rules(),
        "azurerm": azurerm_rules(),
    }


def helm_problems(plan: dict[str, Any]) -> list[str]:
    """The Helm contract (tests/test_helm_contracts.py): every value path we set exists in
    the pinned chart, and every ServiceMonitor the chart renders times out within its
    interval."""
    problems = []
    for release in helm_releases(plan["resources"]):
        values = plain_numbers(release["values"])
        vendored = CHARTS[(release["chart"], release["version"])]
        problems += unknown_paths(values, vendored.values(), vendored.free_form)
        for where, block in service_monitor_blocks(merged(vendored.values(), values)):
            problems += timing_problems(f"{release['chart']} {where}", block)
    return problems


def plan_problems(plan: dict[str, Any]) -> list[str]:
    """The policy pack, strict manifests and the CRD contract, the Helm and azure-native
    contracts, every Azure name against its rule, and no duplicate object."""
    return (
        [f"policy {violation}" for violation in plan["violations"]]
        + [f"manifest {problem}" for problem in invalid_manifests(plan)]
        + [f"duplicate {problem}" for problem in duplicate_objects(plan)]
        + [f"helm {problem}" for problem in helm_problems(plan)]
        + [f"azure {problem}" for problem in resource_problems(plan["resources"], Tally())]
        + [f"azure name {p}" for p in names_breaking_rules(plan, _azure_name_sources())]
    )


# --- the generator ------------------------------------------------------------------------------


def test_every_allowed_pair_is_planned_and_no_case_holds_a_refused_pair() -> None:
    planned = set().union(*(pairs_of(case) for case in CASES))
    assert set(allowed_pairs()) <= planned
    assert all(complete(case) == case for case in CASES)


def cluster_modes(item: tuple[str, str]) -> set[str]:
    """The cluster modes a switch value is accepted with."""
    return {
        mode for mode in FACTORS["cluster"] if frozenset({item, ("cluster", mode)}) not in FORBIDDEN
    }


def test_pairs_no_accepted_case_holds_are_refused_or_need_two_cluster_modes() -> None:
    """What the matrix never plans: the refused pairs, and pairs whose two values need
    different cluster modes (local needs an existing cluster, which refuses a private API
    server), never a pair lost to refusals combining in a way nobody listed."""
    unreachable = set(all_pairs()) - set(allowed_pairs())
    refused = {pair for pair in all_pairs() if frozenset(pair) in FORBIDDEN}
    assert refused <= unreachable
    implied = unreachable - refused
    assert [
        pair for pair in sorted(implied) if cluster_modes(pair[0]) & cluster_modes(pair[1])
    ] == []


def test_the_matrix_stays_small() -> None:
    # Each plan takes a few seconds on one core; `make test` must stay under 5 minutes.
    assert len(CASES) <= 25
    assert len(FORBIDDEN) == sum(len(r.first[1]) * len(r.second[1]) for r in REFUSALS), (
        "two refusals name the same pair"
    )


def test_cases_and_refusals_are_deterministic() -> None:
    assert pairwise_cases() == CASES
    assert [refused_case(r) for r in REFUSALS] == [refused_case(r) for r in REFUSALS]


def test_the_case_of_first_values_is_the_base_stack_spelt_out() -> None:
    """A case's stack file differs from Pulumi.base.yaml only where its switches say: the
    first value of every switch gives the base stack, with its defaults written out."""
    case = complete({"environment": "dev", "gpu": "A10", "cluster": "aks"})
    assert case is not None
    expected = copy.deepcopy(BASE["config"])
    expected[f"{P}cluster"]["gpuDriver"] = "aks"
    expected[f"{P}models"][0] |= {"tensorParallelSize": 1, "replicas": {"min": 1, "max": 1}}
    expected[f"{P}serving"] = {}
    assert stack_document(case) == {"config": expected}


# --- the cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case_id(i)) for i, case in enumerate(CASES)]
)
def test_matrix_case_plans_cleanly(
    matrix: MatrixPlans, case: Case, request: pytest.FixtureRequest
) -> None:
    """One test per case, so that each case is planned exactly twice (the second run for
    determinism) whichever worker runs it."""
    stack = request.node.callspec.id
    plan = matrix.build(stack, case)
    assert not isinstance(plan, PlanConfigError), f"refused: {plan} ({describe(case)})"
    again = matrix.build(stack, case)
    assert not isinstance(again, PlanConfigError), again
    problems = plan_problems(plan)
    if json.dumps(again, sort_keys=True) != json.dumps(plan, sort_keys=True):
        problems.append("the plan differs between two runs")
    assert problems == [], describe(case)


def test_duplicate_objects_are_found_by_kind_namespace_and_name() -> None:
    def entry(kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
        return {
            "type": f"kubernetes:core/v1:{kind}",
            "inputs": {"kind": kind, "metadata": metadata},
        }

    plan = {
        "resources": [
            entry("Service", "slm-inference", "open-webui"),
            entry("Service", "slm-inference", "open-webui"),
            entry("Service", "slm-monitoring", "open-webui"),
            entry("PersistentVolumeClaim", "slm-inference", "open-webui"),
            entry("Namespace", None, "slm-inference"),
            entry("Namespace", None, "slm-inference"),
            {"type": "azure-native:dashboard:Grafana", "inputs": {"workspaceName": "g"}},
        ]
    }
    assert duplicate_objects(plan) == [
        "Namespace (cluster)/slm-inference declared 2 times",
        "Service slm-inference/open-webui declared 2 times",
    ]


@pytest.mark.parametrize(
    "refusal",
    [pytest.param(r, id=f"{r.first[0]}-{r.second[0]}-{i}") for i, r in enumerate(REFUSALS)],
)
def test_refused_pairs_stop_the_plan_with_one_line(matrix: MatrixPlans, refusal: Refusal) -> None:
    case = refused_case(refusal)
    stack = f"rf{REFUSALS.index(refusal) + 1:02d}"
    built = matrix.build(stack, case)
    assert isinstance(built, PlanConfigError), f"{refusal.reason}: accepted ({describe(case)})"
    line = str(built)
    assert "\n" not in line
    assert re.match(rf"{re.escape(P)}{refusal.key}(\.|\[|:)", line), line
