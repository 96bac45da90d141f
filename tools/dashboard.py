"""Print the serving dashboard's JSON, for Grafanas that no ConfigMap reaches.

    python -m tools.dashboard [--namespace slm-inference] > slm-serving.json
    az grafana dashboard import -g <resource group> -n <grafana> --definition slm-serving.json

In-cluster monitoring loads the same dashboard through a ConfigMap (components/monitoring.py);
Azure Managed Grafana has no Azure resource for dashboards, so it is imported once, and again
after a change to components/dashboards.py.
"""

from __future__ import annotations

import argparse
import sys

from components import dashboards
from components.network import INFERENCE_NAMESPACE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.dashboard", description=__doc__)
    parser.add_argument("--namespace", default=INFERENCE_NAMESPACE, help="the models' namespace")
    args = parser.parse_args(argv)
    board = dashboards.serving_dashboard(args.namespace)
    sys.stdout.write(dashboards.dashboard_json(board) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
