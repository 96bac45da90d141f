"""Reduce ingress-nginx's annotation table (generated from its parsers) to a JSON map:
annotation name (without the nginx.ingress.kubernetes.io/ prefix) -> risk and scope."""

from __future__ import annotations

import json
import re

ROW = re.compile(r"^\|\s*(\w+)\s*\|\s*([a-z0-9-]+)\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|$")


def extract(local_name: str, text: str) -> str:
    annotations = {
        match.group(2): {"group": match.group(1), "risk": match.group(3), "scope": match.group(4)}
        for match in map(ROW.match, text.splitlines())
        if match
    }
    if not annotations:
        raise ValueError("no annotation rows")
    return json.dumps(annotations, indent=1, sort_keys=True) + "\n"
