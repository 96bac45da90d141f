"""What AKS runs for each Kubernetes minor: its support calendar and the add-on versions.

AKS picks the KEDA and Secrets Store CSI driver versions of its add-ons from the cluster's
Kubernetes minor (only patches change within a minor), so every feature that depends on an
add-on version reads it here. The data and its sources live in aks_versions.json beside
this module; refresh it from AKS's supported-versions page when a minor is added or retired.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DATA_FILE = Path(__file__).with_name("aks_versions.json")


@dataclass(frozen=True)
class AddOns:
    keda: str
    secrets_store_csi_driver: str
    secrets_store_provider_azure: str


@dataclass(frozen=True)
class AksMinor:
    minor: str
    ga: str  # year-month of AKS GA
    end_of_standard_support: date
    add_ons: AddOns | None  # None where AKS publishes no add-on versions for the minor


def _load() -> tuple[date, dict[str, AksMinor], dict[str, str]]:
    data = json.loads(DATA_FILE.read_text())
    minors = {}
    for minor, entry in data["minors"].items():
        add_ons = entry["addOns"]
        minors[minor] = AksMinor(
            minor=minor,
            ga=entry["ga"],
            end_of_standard_support=date.fromisoformat(entry["endOfStandardSupport"]),
            add_ons=None
            if add_ons is None
            else AddOns(
                keda=add_ons["keda"],
                secrets_store_csi_driver=add_ons["secretsStoreCsiDriver"],
                secrets_store_provider_azure=add_ons["secretsStoreProviderAzure"],
            ),
        )
    return date.fromisoformat(data["checked"]), minors, data["managedPrometheus"]


# The day the data was checked against AKS's calendar: "supported" means on that day, so a
# plan does not change with the clock; refreshing the data moves the window. The managed
# Prometheus add-on (ama-metrics) is not tied to a minor: AKS rolls each of its releases out
# to every minor, so one release (and its tag in Azure/prometheus-collector) is recorded.
CHECKED, MINORS, MANAGED_PROMETHEUS = _load()


def in_standard_support(minor: AksMinor, on: date = CHECKED) -> bool:
    return minor.ga <= on.strftime("%Y-%m") and on <= minor.end_of_standard_support


def aks_minors() -> tuple[str, ...]:
    """The minors a new AKS cluster may use: in standard support (a cluster outside it gets
    no add-on fixes, and AKS refuses to create one in platform support) and with published
    add-on versions (the autoscaler and the contract checks follow them)."""
    return tuple(
        name
        for name, minor in MINORS.items()
        if minor.add_ons is not None and in_standard_support(minor)
    )


def add_ons(minor: str) -> AddOns:
    entry = MINORS.get(minor)
    if entry is None or entry.add_ons is None:
        raise KeyError(f"no AKS add-on versions recorded for Kubernetes {minor}")
    return entry.add_ons


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def keda_version(minor: str) -> tuple[int, ...]:
    """The KEDA version of AKS's add-on on this Kubernetes minor, e.g. (2, 19, 0)."""
    return version_tuple(add_ons(minor).keda)
