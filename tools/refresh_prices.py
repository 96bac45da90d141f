"""Re-take the catalog's GPU VM prices from the Azure Retail Prices API.

    python -m tools.refresh_prices --region eastus

For every GPU SKU in components/catalog.py it asks the public, unauthenticated Retail Prices
API for the Linux pay-as-you-go and spot prices per hour in the region, and rewrites
components/prices.json with the region, today's date and the query as the source. A SKU the
region does not sell keeps no price (the plan then says "cost unknown"). Needs network access
to the API; it changes nothing when a query fails or a SKU has two Linux prices of one kind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from components.catalog import CPU_SKUS, GPU_SKUS, PRICES_FILE

API = "https://prices.azure.com/api/retail/prices"
API_VERSION = "2023-01-01-preview"


def query_url(region: str, vm_size: str) -> str:
    odata = (
        f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' "
        f"and armSkuName eq '{vm_size}' and priceType eq 'Consumption'"
    )
    return f"{API}?{urllib.parse.urlencode({'api-version': API_VERSION, '$filter': odata})}"


def fetch_items(url: str) -> list[dict[str, Any]]:
    """Every item of a query, following NextPageLink."""
    items: list[dict[str, Any]] = []
    while url:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (fixed https URL)
            page = json.load(response)
        items += page.get("Items", [])
        url = page.get("NextPageLink") or ""
    return items


class AmbiguousPrice(ValueError):
    """One SKU's items hold two different Linux prices of the same kind."""


def linux_prices(items: list[dict[str, Any]]) -> dict[str, float]:
    """{"onDemand": usd, "spot": usd} from one SKU's price items (Linux, per hour, USD).

    Two different prices of one kind stop the refresh: the API does not order its items, so
    keeping either would be a guess (a Windows meter named unlike the filter expects would
    otherwise pass for the Linux price whenever it came last)."""
    found: dict[str, float] = {}
    for item in items:
        if (
            item.get("type") != "Consumption"
            or item.get("unitOfMeasure") != "1 Hour"
            or item.get("currencyCode", "USD") != "USD"
            or item.get("productName", "").endswith("Windows")
            or "Low Priority" in item.get("skuName", "")
        ):
            continue
        kind = "spot" if item.get("skuName", "").endswith("Spot") else "onDemand"
        usd = float(item["retailPrice"])
        if found.get(kind, usd) != usd:
            raise AmbiguousPrice(
                f"{item.get('armSkuName', item.get('skuName'))}: two Linux {kind} prices per "
                f"hour, {found[kind]} and {usd} ({item.get('productName')}); expected one"
            )
        found[kind] = usd
    return found


def refresh(
    region: str,
    today: str,
    fetch: Callable[[str], list[dict[str, Any]]] = fetch_items,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    prices: dict[str, Any] = {}
    for vm_size in sorted(GPU_SKUS | CPU_SKUS):
        url = query_url(region, vm_size)
        found = linux_prices(fetch(url))
        progress(f"{vm_size}: " + (", ".join(f"{k} {v}" for k, v in found.items()) or "none"))
        if found:
            prices[vm_size] = {
                kind: {
                    "usd": usd,
                    "region": region,
                    "taken": today,
                    "source": f"Azure Retail Prices API: {url}",
                }
                for kind, usd in sorted(found.items())
            }
    return {
        "about": "Linux VM prices per hour in USD, from the Azure Retail Prices API "
        "(python -m tools.refresh_prices).",
        "prices": prices,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refresh_prices", description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", required=True, help="Azure region name, e.g. eastus")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    if not args.region.isalnum() or not args.region.islower():
        print(
            f"refresh_prices: --region {args.region!r}: expected a region name such as eastus",
            file=sys.stderr,
        )
        return 2
    try:
        document = refresh(args.region, dt.date.today().isoformat(), fetch=fetch_items)
    except OSError as err:
        print(f"refresh_prices: the Retail Prices API could not be read: {err}", file=sys.stderr)
        return 1
    except AmbiguousPrice as err:
        print(f"refresh_prices: {err}; nothing written", file=sys.stderr)
        return 1
    PRICES_FILE.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {PRICES_FILE.name}: {len(document['prices'])} of {len(GPU_SKUS) + len(CPU_SKUS)} SKUs priced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
