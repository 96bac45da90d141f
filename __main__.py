"""The slm-deploy program: what `pulumi up -s <stack>` and the offline plan both run."""

import pulumi

from components.config import load_stack_config
from components.platform import Platform

platform = Platform("slm", load_stack_config())
for name, value in platform.outputs.items():
    pulumi.export(name, value)
