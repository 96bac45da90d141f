"""The price refresher's parsing of Retail Prices API items (the API is not reachable here)."""

from __future__ import annotations

import pytest

from tools import refresh_prices

ITEMS = [
    # The shape of the Retail Prices API's items; the prices are test values.
    {
        "type": "Consumption",
        "unitOfMeasure": "1 Hour",
        "currencyCode": "USD",
        "retailPrice": 1.25,
        "productName": "Virtual Machines NCasT4_v3 Series",
        "skuName": "NC4as T4 v3",
    },
    {
        "type": "Consumption",
        "unitOfMeasure": "1 Hour",
        "currencyCode": "USD",
        "retailPrice": 0.25,
        "productName": "Virtual Machines NCasT4_v3 Series",
        "skuName": "NC4as T4 v3 Spot",
    },
    {
        "type": "Consumption",
        "unitOfMeasure": "1 Hour",
        "currencyCode": "USD",
        "retailPrice": 9.0,
        "productName": "Virtual Machines NCasT4_v3 Series Windows",
        "skuName": "NC4as T4 v3",
    },
    {
        "type": "Consumption",
        "unitOfMeasure": "1 Hour",
        "currencyCode": "USD",
        "retailPrice": 0.1,
        "productName": "Virtual Machines NCasT4_v3 Series",
        "skuName": "NC4as T4 v3 Low Priority",
    },
    {
        "type": "Reservation",
        "unitOfMeasure": "1 Hour",
        "currencyCode": "USD",
        "retailPrice": 0.7,
        "productName": "Virtual Machines NCasT4_v3 Series",
        "skuName": "NC4as T4 v3",
    },
]


def test_linux_on_demand_and_spot_are_picked_out() -> None:
    assert refresh_prices.linux_prices(ITEMS) == {"onDemand": 1.25, "spot": 0.25}


def test_query_names_region_sku_and_consumption_prices() -> None:
    url = refresh_prices.query_url("eastus", "Standard_NC4as_T4_v3")
    assert url.startswith(
        "https://prices.azure.com/api/retail/prices?api-version=2023-01-01-preview&"
    )
    assert "armRegionName+eq+%27eastus%27" in url
    assert "armSkuName+eq+%27Standard_NC4as_T4_v3%27" in url


def test_refresh_records_region_date_and_source_and_skips_unsold_skus() -> None:
    def fetch(url: str) -> list[dict]:
        return ITEMS if "NC4as_T4" in url else []

    lines: list[str] = []
    document = refresh_prices.refresh("eastus", "2026-11-23", fetch=fetch, progress=lines.append)
    assert list(document["prices"]) == ["Standard_NC4as_T4_v3"]
    spot = document["prices"]["Standard_NC4as_T4_v3"]["spot"]
    assert spot["usd"] == 0.25 and spot["region"] == "eastus" and spot["taken"] == "2026-11-23"
    assert spot["source"].startswith("Azure Retail Prices API: https://prices.azure.com/")
    assert "Standard_NC24ads_A100_v4: none" in lines
    # The CPU sizes of ONNX Runtime pools are priced the same way.
    assert "Standard_D4s_v5: none" in lines and "Standard_E16s_v5: none" in lines


def test_bad_region_exits_2() -> None:
    assert refresh_prices.main(["--region", "East US"]) == 2


def test_two_different_linux_prices_of_one_kind_stop_the_refresh() -> None:
    # A Windows meter whose product name lacks the "Windows" suffix looks like a second Linux
    # price; whichever the API lists last must not silently become the recorded price.
    mislabelled = {**ITEMS[2], "productName": "Virtual Machines NCasT4_v3 Series"}
    with pytest.raises(refresh_prices.AmbiguousPrice) as raised:
        refresh_prices.linux_prices([*ITEMS, mislabelled])
    assert str(raised.value) == (
        "NC4as T4 v3: two Linux onDemand prices per hour, 1.25 and 9.0 "
        "(Virtual Machines NCasT4_v3 Series); expected one"
    )
    # The same price listed twice is one price.
    assert refresh_prices.linux_prices([*ITEMS, ITEMS[0]]) == {"onDemand": 1.25, "spot": 0.25}


def test_an_ambiguous_price_exits_1_and_writes_nothing(monkeypatch, tmp_path, capsys) -> None:
    target = tmp_path / "prices.json"
    monkeypatch.setattr(refresh_prices, "PRICES_FILE", target)
    monkeypatch.setattr(
        refresh_prices, "fetch_items", lambda url: [*ITEMS, ITEMS[0] | {"retailPrice": 2.5}]
    )
    assert refresh_prices.main(["--region", "eastus"]) == 1
    assert not target.exists()
    error = capsys.readouterr().err.strip()
    assert error.endswith("expected one; nothing written") and "\n" not in error
