"""The slm-deploy program: what `pulumi up -s <stack>` and the offline plan both run."""

import pulumi

try:
    from components.config import load_stack_config
    from components.platform import Platform
except ValueError as err:
    # components/catalog.py checks the model catalog's files as it loads them: a broken one
    # is one line naming the file and key (CatalogError), like a bad stack value, and no
    # traceback.
    raise pulumi.RunError(str(err)) from None

platform = Platform("slm", load_stack_config())
for name, value in platform.outputs.items():
    pulumi.export(name, value)
