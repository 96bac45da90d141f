"""The slm-deploy policy pack: `pulumi preview --policy-pack policies` from the repo root.

One mandatory stack policy per rule of rules.py; this file only adapts the policy engine's
resources to the rules' ResourceView. Building the PolicyPack starts the analyzer's gRPC
server and never returns, so nothing may import this module: tests import policies.rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Pulumi runs a Python pack as runpy.run_path(".") from this directory (the analyzer's
# `python -m pulumi.policy <engine> .`), which puts the directory first on sys.path: the
# rules import as a top-level module here, and as policies.rules from the repo root.
import rules
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError


def plain(value: Any) -> Any:
    """The engine's props (read-only proxies that raise on values unknown during preview) as
    plain dicts and lists. An unknown value becomes None: the rules read it as not set, or
    skip it where only a known value can be judged (an image computed from an output)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {key: plain(_known(value, key)) for key in value}
    if isinstance(value, Sequence):
        return [plain(_known(value, index)) for index in range(len(value))]
    return value


def _known(container: Any, key: Any) -> Any:
    try:
        return container[key]
    except UnknownValueError:
        return None


def resource_view(resource: PolicyResource) -> rules.ResourceView:
    return rules.ResourceView(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=plain(resource.props),
    )


def stack_policy(rule: rules.Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        views = [resource_view(resource) for resource in args.resources]
        for violation in rule.check(views):
            report_violation(violation.message, violation.urn)

    return StackValidationPolicy(name=rule.name, description=rule.description, validate=validate)


PolicyPack(
    name="slm-deploy",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[stack_policy(rule) for rule in rules.RULES],
)
