"""A small evaluator of Kubernetes NetworkPolicy semantics, to test who can reach whom.

Only what the template's policies use: namespace and pod label selectors (matchLabels),
ipBlock with except (for addresses outside the cluster), numbered and named ports, and
policyTypes. A pod no policy of its namespace selects for a direction is open in that
direction; a selected pod takes only what some selecting policy allows. Host-network pods
and kubelet probes are outside policies and outside this model.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    # Container ports by name, as the pod declares them ("http" -> 8000).
    ports: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class External:
    ip: str


Endpoint = Pod | External


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    wanted = (selector or {}).get("matchLabels", {})
    return all(labels.get(key) == value for key, value in wanted.items())


def _namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}


def _peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, External):
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        inside = ip in ipaddress.ip_network(block["cidr"])
        return inside and not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], _namespace_labels(other.namespace)):
            return False
    elif other.namespace != policy_namespace:
        return False
    return _matches(peer.get("podSelector"), other.labels)


def _port_matches(rule_ports: list[dict] | None, target: Pod | None, port: int, protocol: str):
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None or wanted == port:
            return True
        if isinstance(wanted, str) and target is not None and target.ports.get(wanted) == port:
            return True
    return False


def _direction_allows(
    policies: dict[str, dict[str, dict]],
    pod: Pod,
    other: Endpoint,
    port: int,
    protocol: str,
    direction: str,
) -> bool:
    """Whether `pod`'s namespace lets traffic in (Ingress, from `other`) or out (Egress)."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        spec
        for spec in policies.get(pod.namespace, {}).values()
        if direction in spec.get("policyTypes", []) and _matches(spec["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    target = pod if direction == "Ingress" else (other if isinstance(other, Pod) else None)
    for spec in selecting:
        for rule in spec.get(key, []):
            peers = rule.get(peers_key)
            peer_ok = peers is None or any(_peer_matches(p, pod.namespace, other) for p in peers)
            if peer_ok and _port_matches(rule.get("ports"), target, port, protocol):
                return True
    return False


def allowed(
    policies: dict[str, dict[str, dict]],
    source: Pod,
    destination: Endpoint,
    port: int,
    protocol: str = "TCP",
) -> bool:
    """Whether a connection from `source` to `destination:port` passes every policy."""
    out = _direction_allows(policies, source, destination, port, protocol, "Egress")
    if isinstance(destination, External):
        return out
    return out and _direction_allows(policies, destination, source, port, protocol, "Ingress")


def policies_by_namespace(resources: list[dict[str, Any]]) -> dict[str, dict[str, dict]]:
    """The plan's NetworkPolicies: namespace -> name -> spec."""
    by_namespace: dict[str, dict[str, dict]] = {}
    for resource in resources:
        if resource["type"] == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            meta = resource["inputs"]["metadata"]
            by_namespace.setdefault(meta["namespace"], {})[meta["name"]] = resource["inputs"][
                "spec"
            ]
    return by_namespace
