"""The offline plan: what a stack would declare, without the Pulumi CLI, a cloud or a cluster.

    python -m tools.plan <stack> [--out DIR]

Runs `__main__.py` under Pulumi's mock engine with the config of `stacks/Pulumi.<stack>.yaml`
and writes `<out>/<stack>/`:

    resources.json   every resource in creation order (after its parent, provider and
                     dependencies; ties by URN) (urn, type, name, parent, provider,
                     protect, retainOnDelete, dependencies, inputs as the engine sees them;
                     secrets hidden)
    outputs.json     the stack outputs
    helm.json        each Helm chart: chart, repository, pinned version, namespace, values
    manifests/       every Kubernetes object as plain YAML, one file each, by namespace
    summary.md       resources by type, GPU pools, models, outputs

Exit status: 0 plan written; 2 configuration error (one line on stderr, nothing written);
1 a policy of policies/ is violated (one line each on stderr; nothing written, and an older
plan of the stack removed: a refused plan may hold the credential the policy found) or
anything else. Error lines never carry a credential (components/redaction.py). Two runs
produce byte-identical files.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components import redaction

if TYPE_CHECKING:
    from tools.stack_files import StackConfigValues

ROOT = Path(__file__).resolve().parent.parent
EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: the <name> of stacks/Pulumi.<name>.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="output folder (out/)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_CONFIG if exit_.code else 0
    started = time.perf_counter()
    # One short-lived run: the provider SDKs import hundreds of thousands of objects, and
    # the cyclic collector would rescan them all through the program's many small async
    # steps. Measured on the prod stack: about 0.5 s of a 4.7 s plan, same peak memory.
    gc.disable()
    try:
        plan = build_plan(args.stack)
    except PlanConfigError as err:
        print(redaction.redact(f"plan {args.stack}: {err}"), file=sys.stderr)
        return EXIT_CONFIG
    target = args.out / args.stack
    if plan["violations"]:
        # The same rules `pulumi preview --policy-pack policies` enforces: a mandatory
        # violation stops a deployment, so it fails the plan too. Nothing is written (and an
        # older plan of the stack is removed): a refused plan may hold the very credential
        # the policy found, and CI publishes what lies in out/.
        shutil.rmtree(target, ignore_errors=True)
        for violation in plan["violations"]:
            print(redaction.redact(f"plan {args.stack}: policy {violation}"), file=sys.stderr)
        return 1
    write_plan(plan, target)
    if not args.quiet:
        elapsed = time.perf_counter() - started
        print(console_summary(plan, target, elapsed))
    return 0


class PlanConfigError(Exception):
    """The stack's configuration is invalid: exit status 2."""


def build_plan(stack: str, config_root: Path = ROOT) -> dict[str, Any]:
    """Run the program for `stack` under the mock engine; return what it declared.

    `config_root` holds Pulumi.yaml and the stack files (tests point it at a copy); the
    program is always this repository's `__main__.py`."""
    # Imported here so that `--help` and bad arguments answer without loading the SDK.
    from tools.stack_files import StackFileError, load_stack_config_values

    try:
        values = load_stack_config_values(config_root, stack)
    except StackFileError as err:
        raise PlanConfigError(str(err)) from None
    return plan_from_values(values)


def plan_from_values(values: StackConfigValues) -> dict[str, Any]:
    """The plan of already-read stack config values (as the CLI hands them to the program)."""
    from pulumi import RunError

    from tools.mock_engine import run_program

    try:
        recording = run_program(
            ROOT / "__main__.py", values.project, values.stack, values.values, values.secret_keys
        )
    except RunError as err:  # the program's one-line errors (config.ConfigError among them)
        raise PlanConfigError(str(err)) from None
    resources = creation_order([r.as_json() for r in recording.resources])
    clashes = duplicate_objects(resources)
    if clashes:
        raise PlanConfigError(clashes[0])
    return {
        "stack": values.stack,
        "resources": resources,
        "outputs": recording.outputs,
        "violations": policy_violations(resources),
    }


def creation_order(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Resources in an order the engine could create them: each after its parent, its
    provider and its dependencies; among those ready together, by URN.

    The order in which registrations reach the engine is not stable when several wait on
    the same resources (asyncio wakes them in the order their outputs resolve), so the
    plan sorts instead, and two plans of one commit stay byte-identical."""
    by_urn = {resource["urn"]: resource for resource in resources}
    waiting_on = {
        urn: {
            d for d in (r["parent"], r["provider"], *r["dependencies"]) if d in by_urn and d != urn
        }
        for urn, r in by_urn.items()
    }
    dependents: dict[str, list[str]] = {urn: [] for urn in by_urn}
    for urn, needs in waiting_on.items():
        for need in needs:
            dependents[need].append(urn)
    ready = [urn for urn, needs in waiting_on.items() if not needs]
    heapq.heapify(ready)
    ordered = []
    while ready:
        urn = heapq.heappop(ready)
        ordered.append(by_urn[urn])
        for dependent in dependents[urn]:
            waiting_on[dependent].discard(urn)
            if not waiting_on[dependent]:
                heapq.heappush(ready, dependent)
    return ordered


def object_identity(manifest: dict[str, Any]) -> tuple[str, str, str, str]:
    """What Kubernetes keeps one object per: API group (not version), kind, namespace, name."""
    api_version = manifest.get("apiVersion", "")
    group = api_version.rpartition("/")[0]  # "v1" is the core group: ""
    metadata = manifest.get("metadata") or {}
    return group, manifest.get("kind", ""), metadata.get("namespace", ""), metadata.get("name", "")


def duplicate_objects(resources: list[dict[str, Any]]) -> list[str]:
    """One line per Kubernetes object declared twice: the second would fail on `pulumi up`
    (it exists already), and the plan's one file per object would hide it."""
    first: dict[tuple[str, str, str, str], str] = {}
    clashes = []
    for resource in resources:
        inputs = resource["inputs"]
        if not resource["type"].startswith("kubernetes:") or "kind" not in inputs:
            continue
        identity = object_identity(inputs)
        if identity in first:
            group, kind, namespace, name = identity
            where = f"{namespace}/{name}" if namespace else name
            clashes.append(
                f"{kind}{f'.{group}' if group else ''} {where} is declared twice, by "
                f"{first[identity]} and by {_declared_by(resource)}: Kubernetes keeps one "
                "object per group, kind, namespace and name"
            )
        else:
            first[identity] = _declared_by(resource)
    return clashes


def _declared_by(resource: dict[str, Any]) -> str:
    """A resource as a reader finds it: its name and the component that declares it."""
    parent = (resource.get("parent") or "").rpartition("::")[0].rpartition("$")[2]
    component = parent.rpartition("::")[2] if parent else ""
    return f"{resource['name']} ({component})" if component else resource["name"]


def policy_violations(resources: list[dict[str, Any]]) -> list[str]:
    """The policy pack's rules (policies/rules.py) over the declared resources, one line
    per violation: `<rule>: <message>`."""
    from policies import rules

    return [
        f"{violation.rule}: {violation.message}"
        for violation in rules.check(rules.views_from_plan(resources))
    ]


def write_plan(plan: dict[str, Any], target: Path) -> None:
    """Write the plan files into a fresh folder, then swap it in place of `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _write_json(staging / "resources.json", plan["resources"])
        _write_json(staging / "outputs.json", plan["outputs"])
        _write_json(staging / "helm.json", helm_releases(plan["resources"]))
        for relative, manifest in kubernetes_manifests(plan["resources"]).items():
            path = staging / "manifests" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        (staging / "summary.md").write_text(summary_markdown(plan))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def helm_releases(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each Helm chart or release: chart, repository, pinned version, namespace, values."""
    releases = []
    for resource in resources:
        if not resource["type"].startswith("kubernetes:helm.sh/"):
            continue
        inputs = resource["inputs"]
        releases.append(
            {
                "name": resource["name"],
                "type": resource["type"],
                "chart": inputs.get("chart"),
                "version": inputs.get("version"),
                "repository": (inputs.get("repositoryOpts") or {}).get("repo"),
                "namespace": inputs.get("namespace"),
                "values": inputs.get("values", {}),
            }
        )
    return releases


def kubernetes_manifests(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every declared Kubernetes object, keyed by `<namespace or _cluster>/<kind>-<name>.yaml`."""
    manifests = {}
    for resource in resources:
        inputs = resource["inputs"]
        if not resource["type"].startswith("kubernetes:") or "kind" not in inputs:
            continue
        manifest = canonical_manifest(plain_numbers(inputs))
        metadata = manifest.get("metadata", {})
        folder = metadata.get("namespace", "_cluster")
        manifests[f"{folder}/{manifest['kind'].lower()}-{metadata['name']}.yaml"] = manifest
    return manifests


MANIFEST_HEAD = ("apiVersion", "kind", "metadata")


def canonical_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata first, then every key sorted: a stable, readable diff."""
    ordered = _sorted_keys(manifest)
    head = {key: ordered[key] for key in MANIFEST_HEAD if key in ordered}
    return head | {key: value for key, value in ordered.items() if key not in head}


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def plain_numbers(value: Any) -> Any:
    """The engine carries every number as a float; Kubernetes wants integers where whole."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    return value


def summary_markdown(plan: dict[str, Any]) -> str:
    outputs = plan["outputs"]
    lines = [f"# Offline plan: stack `{plan['stack']}`", ""]
    lines += [
        f"Environment `{outputs.get('environment')}`, cluster mode `{outputs.get('clusterMode')}`,"
        f" {len(plan['resources'])} resources.",
        "",
        "## Resources by type",
        "",
        "| type | count |",
        "| --- | --- |",
    ]
    counts = Counter(r["type"] for r in plan["resources"])
    lines += [f"| `{kind}` | {count} |" for kind, count in sorted(counts.items())]
    lines += ["", "## GPU pools", ""] + _pool_lines(outputs.get("gpuPools") or {})
    if outputs.get("cpuPools"):
        lines += ["", "## CPU pools", ""] + _cpu_pool_lines(outputs["cpuPools"])
    lines += ["", "## Models", ""] + _model_lines(outputs.get("models") or {})
    lines += ["", "## Capacity and cost", ""] + _capacity_lines(outputs.get("models") or {})
    lines += ["", "## Logs", ""] + _logs_lines(outputs.get("logs"))
    lines += ["", "## Policies", ""] + _policy_lines(plan["violations"])
    lines += ["", "## Stack outputs", "", "```json", _dumps(outputs), "```", ""]
    return "\n".join(lines)


def _logs_lines(logs: dict[str, Any] | None) -> list[str]:
    """Where the containers' logs go, how long they stay and what that costs (no volume is
    estimated: it depends on what the models log)."""
    if not logs or not logs["destinations"]:
        return [(logs or {}).get("note") or "No container logs are declared."]
    lines = []
    for where in logs["destinations"]:
        price = ""
        if "price" in where:
            usd = where["usdPerGbIngested"]
            price = f"; {where['price'] if usd is None else f'{usd} USD per GB ingested'}"
        lines.append(
            f"- {where['store']}, through {where['through']}: kept {where['retentionDays']}"
            f" days{price}"
        )
    # vLLM's --enable-log-requests; the ONNX Runtime server and Ollama log no prompts.
    prompts = "on: vLLM models' prompts are in the logs" if logs["requestLogging"] else "off"
    return lines + ["", f"Request logging (monitoring.logs.requestLogging): {prompts}."]


def _policy_lines(violations: list[str]) -> list[str]:
    from policies import rules

    if not violations:
        names = ", ".join(f"`{rule.name}`" for rule in rules.RULES)
        return [f"Every rule of the policy pack passes: {names}."]
    return [f"- {violation}" for violation in violations]


def _pool_lines(pools: dict[str, Any]) -> list[str]:
    if not pools:
        return ["None: models run on CPU nodes."]
    lines = [
        "| pool | VM size | GPUs | nodes | spot | USD/month at min | at max | price"
        " | the other pricing, USD/month |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, pool in sorted(pools.items()):
        if pool.get("existingNodes"):
            # Nodes of an existing cluster: the template neither creates nor prices them.
            lines.append(
                f"| {name} | {pool['vmSize']} | {pool['gpu']} | {pool['maxCount']} existing"
                f" | {pool['spot']} | - | - | {pool['costNote']} | - |"
            )
            continue
        cost = pool["monthlyCostUsd"]
        other_key = "monthlyCostUsdIfOnDemand" if pool["spot"] else "monthlyCostUsdIfSpot"
        other = pool[other_key]
        other_text = (
            f"{'on-demand' if pool['spot'] else 'spot'} {_money(other['min'])}"
            f"-{_money(other['max'])}"
        )
        lines.append(
            f"| {name} | {pool['vmSize']} | {pool['gpu']} | {pool['minCount']}-{pool['maxCount']}"
            f" | {pool['spot']} | {_money(cost['min'])} | {_money(cost['max'])} | {_price(cost)}"
            f" | {other_text} |"
        )
    if any(not pool.get("existingNodes") for pool in pools.values()):
        lines += [
            "",
            "Costs are VM hours only (730 hours a month), from components/prices.json. A pool's"
            " VM size is immutable: changing it replaces the pool and its nodes.",
        ]
    else:
        lines += [
            "",
            "Existing nodes of your cluster: the VM size names the catalog SKU whose GPU they"
            " have, for the memory and capacity checks.",
        ]
    return lines


def _cpu_pool_lines(pools: dict[str, Any]) -> list[str]:
    lines = [
        "| pool | VM size | machine | nodes | spot | USD/month at min | at max | price |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, pool in sorted(pools.items()):
        if pool.get("existingNodes"):
            lines.append(
                f"| {name} | {pool['vmSize']} | {pool['machine']} | {pool['maxCount']} existing"
                f" | {pool['spot']} | - | - | {pool['costNote']} |"
            )
            continue
        cost = pool["monthlyCostUsd"]
        lines.append(
            f"| {name} | {pool['vmSize']} | {pool['machine']} | {pool['minCount']}-"
            f"{pool['maxCount']} | {pool['spot']} | {_money(cost['min'])} | {_money(cost['max'])}"
            f" | {_price(cost)} |"
        )
    return lines + [
        "",
        "ONNX Runtime GenAI models run here, one replica per node on every whole vCPU the node"
        " leaves to pods (components/sizing.py cpu_fit).",
    ]


def _model_lines(models: dict[str, Any]) -> list[str]:
    lines = [
        "| model | engine | source | tier | pool | context x seqs | needs GiB | usable GiB"
        " | headroom GiB | max seqs at workload length | max context at seqs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, model in sorted(models.items()):
        shape = f"{model['maxModelLen']} x {model['maxNumSeqs']}"
        if "requiredGiB" in model:
            memory = (
                f"{model['requiredGiB']} | {model['usableGiB']} | {model['headroomGiB']}"
                f" | {model['maxNumSeqsAtContext']} | {model['maxModelLenAtNumSeqs']}"
            )
        elif "cpuRequiredGiB" in model:
            memory = (
                f"{model['cpuRequiredGiB']} (CPU RAM) | {model['cpuAllocatableGiB']} |"
                f" {model['cpuHeadroomGiB']} | {model['maxNumSeqsAtContext']} |"
                f" {model['maxModelLenAtNumSeqs']}"
            )
        else:
            memory = f"{model['cpuMemoryGiB']} (CPU RAM) | - | - | - | -"
        lines.append(
            f"| {name} | {model['engine']} | `{model['source']}` | {model['tier']} |"
            f" {model['pool'] or 'CPU'} | {shape} | {memory} |"
        )
    lines += [
        "",
        "Memory per GPU for vLLM, as components/sizing.py computes it: the KV cache holds"
        " maxNumSeqs sequences of the workload's length (vLLM pages it), and never less than"
        " one of maxModelLen; Ollama holds every slot's full context. ONNX Runtime on CPU:"
        " its files and a full-context KV cache per generator, against the node's allocatable"
        " memory (its runtime's own memory is not modelled).",
    ]
    # LoRA adapters: their preallocated slots are part of "needs GiB".
    lora = [
        f"- {n}: LoRA adapters {', '.join(a['name'] for a in m['adapters'])}:"
        f" {m['loraGiB']} GiB of adapter slots"
        " in the needs"
        for n, m in sorted(models.items())
        if m.get("adapters")
    ]
    if lora:
        lines += ["", *lora]
    # What the engine gives up on this GPU (FP8 weights without FP8 compute, ...).
    notes = [f"- {n}: {note}" for n, m in sorted(models.items()) for note in m.get("notes", [])]
    if notes:
        lines += ["", *notes]
    return lines


def _capacity_lines(models: dict[str, Any]) -> list[str]:
    """One line per model: what a replica carries within its targets, what the peak needs,
    the price of a million output tokens, and the cheapest catalog option."""
    lines = [f"- {name}: {_capacity_line(m['capacity'])}" for name, m in sorted(models.items())]
    return lines + [
        "",
        "Per replica at the model's workload and targets, from components/capacity.py"
        " (calibrated against published measurements: docs/capacity.md). USD per million"
        " output tokens: the VM's hourly price over the tokens its replicas generate at that"
        " rate.",
    ]


def _capacity_line(figures: dict[str, Any] | str) -> str:
    if isinstance(figures, str):
        return figures
    workload, targets, replica = figures["workload"], figures["targets"], figures["perReplica"]
    peak = targets["peakRequestsPerSecond"]
    demand = (
        f"peak {peak:g} req/s needs {figures['replicasNeeded']} replica(s)"
        if peak is not None
        else "no peak set"
    )
    usd = figures["usdPerMillionOutputTokens"]
    cheapest = figures["cheapestMeetingTargets"] or "no priced catalog option meets the targets"
    return (
        f"{replica['requestsPerSecond']:g} req/s and {replica['outputTokensPerSecond']:,} output"
        f" tok/s per replica at TTFT p95 {replica['ttftP95Seconds']:g} s, ITL p95"
        f" {replica['itlP95Seconds'] * 1000:.1f} ms (targets {targets['ttftP95Seconds']:g} s,"
        f" {targets['itlP95Seconds'] * 1000:g} ms; {workload['inputTokens']:,} tokens in,"
        f" {workload['outputTokens']:,} out); {demand}, max replicas carry"
        f" {figures['requestsPerSecondAtMaxReplicas']:g} req/s; {_per_mtok(usd['onDemand'])}"
        f" on-demand, {_per_mtok(usd['spot'])} spot; {_scaling(figures)}; cheapest meeting"
        f" the targets: {cheapest}"
    )


def _console_capacity(figures: dict[str, Any] | str) -> str:
    """The console's short form of a model's capacity: per replica, and its price."""
    if isinstance(figures, str):
        return ""
    replica = figures["perReplica"]
    return (
        f"; {replica['requestsPerSecond']:g} req/s, {replica['outputTokensPerSecond']:,} tok/s"
        f" per replica, {_per_mtok(figures['usdPerMillionOutputTokens']['onDemand'])}"
    )


def _scaling(figures: dict[str, Any]) -> str:
    if not figures["autoscaled"]:
        return "fixed replicas (no autoscaling)"
    return f"KEDA adds a replica past {figures['queuePerReplica']} waiting per replica"


def _per_mtok(usd: float | None) -> str:
    return "no price recorded" if usd is None else f"{usd:.3f} USD/Mtok"


def _price(cost: dict[str, Any]) -> str:
    if cost["hourlyUsd"] is None:
        return "not recorded"
    return f"{cost['hourlyUsd']}/h, {cost['priceRegion']}, {cost['priceTaken']}"


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.2f}"


def console_summary(plan: dict[str, Any], target: Path, elapsed: float) -> str:
    counts = Counter(r["type"].split(":")[0] for r in plan["resources"])
    by_package = ", ".join(f"{n} {pkg}" for pkg, n in sorted(counts.items()))
    manifests = len(kubernetes_manifests(plan["resources"]))
    where = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    lines = [
        f"plan {plan['stack']}: {len(plan['resources'])} resources ({by_package}), "
        f"{manifests} Kubernetes manifests -> {where}/ in {elapsed:.1f}s"
    ]
    for name, model in sorted((plan["outputs"].get("models") or {}).items()):
        if "requiredGiB" in model:
            lines.append(
                f"  {name}: fits {model['pool']}, {model['requiredGiB']} of "
                f"{model['usableGiB']} GiB per GPU ({model['headroomGiB']} spare)"
                + _console_capacity(model["capacity"])
            )
        elif "cpuRequiredGiB" in model:
            lines.append(
                f"  {name}: fits {model['pool']}, {model['cpuRequiredGiB']} of"
                f" {model['cpuAllocatableGiB']} GiB of node memory"
                f" ({model['cpuHeadroomGiB']} spare)"
            )
        else:
            lines.append(f"  {name}: CPU, {model['cpuMemoryGiB']} GiB of memory")
    pools = (plan["outputs"].get("gpuPools") or {}) | (plan["outputs"].get("cpuPools") or {})
    for name, pool in sorted(pools.items()):
        cost = pool["monthlyCostUsd"]
        if pool.get("existingNodes"):
            machine = pool.get("gpu") or pool["machine"]
            estimate = f"{pool['maxCount']} existing {machine} nodes, no cost estimate"
        elif cost["hourlyUsd"] is not None:
            estimate = f"{_money(cost['min'])}-{_money(cost['max'])} USD/month"
        else:
            estimate = f"cost unknown (no price recorded for {pool['vmSize']})"
        lines.append(f"  pool {name}: {estimate}")
    violations = len(plan["violations"])
    lines.append(f"  policies: {violations} violation{'' if violations == 1 else 's'}")
    lines.append(f"  see {where}/summary.md")
    return "\n".join(lines)


def _dumps(value: Any) -> str:
    return json.dumps(plain_numbers(value), indent=2, sort_keys=True, ensure_ascii=False)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(_dumps(value) + "\n")


if __name__ == "__main__":
    sys.exit(main())
