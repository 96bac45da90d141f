"""Reduce AKS's node-reservation and IP-planning pages to the numbers sizing.py uses.

reservations.json (node-resource-reservations.md): kube-reserved CPU in millicores by the
host's cores (the page's table), and for "AKS 1.29 and later" the eviction threshold (Mi)
and the two terms of the memory reservation as the page writes them: MB per max pod, MB on
top, and the share of the node's memory that caps them.
max-pods.json (concepts-network-ip-address-planning.md): the default max pods per node by
CNI (the "Maximum pods per node" table).
"""

from __future__ import annotations

import json
import re

CORES = re.compile(r"^\| CPU cores on host \|(.+)\|\s*$", re.M)
MILLICORES = re.compile(r"^\| Kube-reserved CPU \(millicores\) \|(.+)\|\s*$", re.M)
SINCE_1_29 = re.compile(
    r"\*\*AKS 1\.29 and later\*\*(.*?)\*\*AKS versions prior to 1\.29\*\*", re.S
)
EVICTION = re.compile(r"memory\.available < (\d+) Mi")
PER_POD = re.compile(r"\*(\d+) MB \* Max Pods supported on the Node \+ (\d+) MB\*")
SHARE = re.compile(r"\*(\d+)% of the total system memory resources\*")
MAX_PODS_SECTION = re.compile(r"^## Maximum pods per node$(.*?)^## ", re.M | re.S)
MAX_PODS_ROW = re.compile(r"^\| ([A-Za-z][^|]*?)\s*\| (\d+)\s*\|", re.M)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.split("|")]


def _reservations(text: str) -> dict:
    cores = [int(cell.split()[0]) for cell in _cells(CORES.search(text).group(1))]
    millicores = [int(cell) for cell in _cells(MILLICORES.search(text).group(1))]
    since = SINCE_1_29.search(text).group(1)
    per_pod, base = PER_POD.search(since).groups()
    return {
        "kubeReservedMillicoresByCores": {
            str(c): m for c, m in zip(cores, millicores, strict=True)
        },
        "since1.29": {
            "evictionThresholdMi": int(EVICTION.search(since).group(1)),
            "kubeReservedMBPerMaxPod": int(per_pod),
            "kubeReservedMBBase": int(base),
            "kubeReservedMaxPercentOfMemory": int(SHARE.search(since).group(1)),
        },
    }


def _max_pods(text: str) -> dict:
    section = MAX_PODS_SECTION.search(text).group(1)
    return {cni: int(pods) for cni, pods in MAX_PODS_ROW.findall(section)}


EXTRACTORS = {"reservations.json": _reservations, "max-pods.json": _max_pods}


def extract(local_name: str, text: str) -> str:
    return json.dumps(EXTRACTORS[local_name](text), indent=1, sort_keys=True) + "\n"
