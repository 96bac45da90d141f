"""The rule each stack-file value must meet because of what it becomes, one rule per kind.

Each function returns None when the value is valid, or the text of what is allowed (for
the config error line), and names its source. components/config.py applies them; nothing
else here knows about the stack file's layout.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import re
import zoneinfo
from pathlib import Path

# -- Kubernetes object names ---------------------------------------------------------------
# kubernetes/apimachinery pkg/util/validation/validation.go: IsDNS1123Label (namespaces,
# Service names, label-like names) and IsDNS1123Subdomain (most object names: StorageClass,
# IngressClass, Secret; the API server checks a PVC's storageClassName and an Ingress's
# ingressClassName with the same rule).
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253


def dns1123_label(name: str) -> str | None:
    if len(name) <= DNS1123_LABEL_MAX and _DNS1123_LABEL.match(name):
        return None
    return (
        f"a Kubernetes name (DNS-1123 label): at most {DNS1123_LABEL_MAX} lowercase letters, "
        "digits and '-', starting and ending with a letter or digit"
    )


def dns1123_subdomain(name: str) -> str | None:
    labels = name.split(".")
    if len(name) <= DNS1123_SUBDOMAIN_MAX and all(_DNS1123_LABEL.match(p) for p in labels):
        return None
    return (
        f"a Kubernetes name (DNS-1123 subdomain): at most {DNS1123_SUBDOMAIN_MAX} characters "
        "of lowercase letters, digits, '-' and '.', each part starting and ending with a "
        "letter or digit"
    )


# -- host names ----------------------------------------------------------------------------
# An Ingress rule's host: Kubernetes checks it as a DNS-1123 subdomain (networking
# validation, ValidateIngressSpec), and DNS itself (RFC 1035 2.3.4, RFC 1123 2.1) limits each
# label to 63 octets and the name to 253 characters: no empty label (`a..example.com`), no
# label of 70 characters, no IP address (Kubernetes refuses one as a host).


def host_name(host: str) -> str | None:
    allowed = (
        "a DNS host name such as models.example.com: labels of 1-63 lowercase letters, "
        "digits and '-' (not at either end), separated by '.', at most 253 characters"
    )
    try:
        ipaddress.ip_address(host)
        return allowed + ", not an IP address"
    except ValueError:
        pass
    labels = host.split(".")
    if len(host) > DNS1123_SUBDOMAIN_MAX or any(dns1123_label(p) for p in labels):
        return allowed
    return None


# -- Azure regions -------------------------------------------------------------------------
REGIONS_FILE = Path(__file__).with_name("azure_regions.json")


@functools.cache
def _regions() -> dict:
    return json.loads(REGIONS_FILE.read_text())


def azure_region(location: str) -> str | None:
    regions = _regions()["regions"]
    if location in regions:
        return None
    return (
        f"an Azure region name from components/azure_regions.json ({len(regions)} regions, "
        "e.g. eastus, westeurope, swedencentral; a new region: add it there with its source)"
    )


# -- cron fields (KEDA's cron scaler) ------------------------------------------------------
# KEDA's cron trigger parses its schedule with robfig/cron v3, whose getRange refuses a range
# whose start is after its end ("beginning of range beyond end of range"): `5-1` never
# wraps round to Monday, it stops the scaler.
_DAYS = re.compile(r"^[0-6](-[0-6])?(,[0-6](-[0-6])?)*$")


def cron_days(days: str) -> str | None:
    allowed = (
        "days of the week as a cron field: 0-6 (0 is Sunday), single days or ranges "
        "low-high such as 1-5, separated by commas"
    )
    if not _DAYS.match(days):
        return allowed
    for part in days.split(","):
        low, _, high = part.partition("-")
        if high and int(low) > int(high):
            return allowed + f"; {part} runs backwards (write {high}-{low}, or split it)"
    return None


# -- UTC offsets ---------------------------------------------------------------------------
_OFFSET = re.compile(r"^[+-][0-9]{2}:[0-9]{2}$")
# Offsets are computed from the IANA time zone database the program runs with (the same
# one AwakeHours' time zones come from), at both solstice months of a fixed year, so that
# summer time counts and the answer does not depend on today's date.
_OFFSET_YEAR = 2026


@functools.cache
def utc_offsets() -> tuple[str, ...]:
    """Every UTC offset some place uses (-12:00 .. +14:00, with the half and quarter hours)."""
    minutes = set()
    for name in zoneinfo.available_timezones():
        zone = zoneinfo.ZoneInfo(name)
        for month in (1, 7):
            offset = datetime.datetime(_OFFSET_YEAR, month, 15, tzinfo=zone).utcoffset()
            minutes.add(int(offset.total_seconds()) // 60)
    return tuple(
        f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in sorted(minutes)
    )


def utc_offset(offset: str) -> str | None:
    offsets = utc_offsets()
    if _OFFSET.match(offset) and offset in offsets:
        return None
    return (
        f"a UTC offset in use somewhere (IANA time zone database), from {offsets[0]} to "
        f"{offsets[-1]}, such as +01:00 or +05:30"
    )


# -- CPU VM sizes for the system pool ------------------------------------------------------
# The GPU SKUs live in components/catalog.py. The system pool runs AKS's add-ons: AKS asks
# for at least 2 vCPUs and 4 GB of memory there and advises against burstable (B-series)
# sizes (Microsoft Learn, "Manage system node pools in AKS"). The sizes below are the
# general-purpose v5 series Microsoft Learn lists (Dsv5, Ddsv5, Dasv5, Dadsv5: 2 to 96
# vCPUs, "sizes/general-purpose/d*-series"); a fork that needs another adds it here.
SYSTEM_POOL_VM_SIZES = tuple(
    f"Standard_D{vcpus}{series}_v5"
    for series in ("s", "ds", "as", "ads")
    for vcpus in (2, 4, 8, 16, 32, 48, 64, 96)
)


def system_vm_size(vm_size: str) -> str | None:
    if vm_size in SYSTEM_POOL_VM_SIZES:
        return None
    return (
        "a general-purpose size for AKS's system pool from components/value_rules.py, "
        "e.g. Standard_D4s_v5 or Standard_D8ds_v5"
    )


# -- reserved pool names -------------------------------------------------------------------
# The cluster's own agent pool (components/cluster.py, _system_pool): a GPU pool of the same
# name would be a second agent pool with that name in the cluster.
SYSTEM_POOL_NAME = "system"
RESERVED_POOL_NAMES = (SYSTEM_POOL_NAME,)


def pool_name_free(name: str) -> str | None:
    if name not in RESERVED_POOL_NAMES:
        return None
    return f"a name other than {', '.join(RESERVED_POOL_NAMES)} (the cluster's system pool)"


# -- API server access ---------------------------------------------------------------------
# staging and prod may not open the API server to a wide range: 0.0.0.0/0 (or ::/0) is
# everyone, and a range wider than /16 (IPv4, 65,536 addresses, the largest block a single
# organisation is normally assigned: the old class B) or /48 (IPv6, one site's allocation,
# RFC 6177) spans other organisations' addresses: cloud providers' shared egress ranges
# among them. Offices and CI runners' egress fit in far smaller prefixes.
MIN_PREFIX = {4: 16, 6: 48}


def authorized_range(cidr: str) -> str | None:
    network = ipaddress.ip_network(cidr, strict=False)
    limit = MIN_PREFIX[network.version]
    if network.prefixlen >= limit:
        return None
    return (
        f"a range of /{limit} or narrower (IPv{network.version}) in staging and prod: a wider "
        "range admits addresses outside your organisation"
    )
