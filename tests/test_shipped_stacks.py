"""The stacks in stacks/, whatever a fork keeps there, checked by properties only.

The tests that pin exact shapes read the fixture stacks (tests/fixtures/stacks/): a fork
that adds a model, an environment or a pool changes stacks/ and keeps those tests green.
What holds for any correct stack file is checked here, over every file in stacks/: it
plans (the offline plan would exit 0, with no PlanConfigError), the policy pack finds
nothing, every manifest validates strictly (custom resources against the vendored CRDs),
the Helm values and azure-native inputs meet their upstream contracts, every Azure name
meets its rule, and no Kubernetes object is declared twice."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_mode_matrix import plan_problems
from tools.plan import ROOT, PlanConfigError, build_plan
from tools.stack_files import available_stacks

SHIPPED = available_stacks(ROOT)


@pytest.fixture(scope="module")
def shipped_plans() -> dict[str, dict[str, Any] | PlanConfigError]:
    plans: dict[str, dict[str, Any] | PlanConfigError] = {}
    for stack in SHIPPED:
        try:
            plans[stack] = build_plan(stack)
        except PlanConfigError as err:  # reported by the test below, one line per stack
            plans[stack] = err
    return plans


def test_stacks_folder_holds_stacks() -> None:
    assert SHIPPED, f"no Pulumi.<stack>.yaml in {ROOT / 'stacks'}"


@pytest.mark.parametrize("stack", SHIPPED)
def test_the_stack_plans(shipped_plans, stack: str) -> None:
    """`make plan STACK=<stack>` would not stop with exit 2 on a config error."""
    plan = shipped_plans[stack]
    assert not isinstance(plan, PlanConfigError), f"{stack}: {plan}"


@pytest.mark.parametrize("stack", SHIPPED)
def test_the_plan_passes_every_check(shipped_plans, stack: str) -> None:
    plan = shipped_plans[stack]
    if isinstance(plan, PlanConfigError):
        pytest.fail(f"{stack} does not plan: {plan}")
    assert plan["resources"], f"{stack} declares nothing"
    assert plan_problems(plan) == []
