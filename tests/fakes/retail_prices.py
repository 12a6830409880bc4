"""A stand-in for Azure's Retail Prices API on 127.0.0.1: its response shape, its OData filter, its paging.

GET /api/retail/prices?$filter=serviceName eq 'Virtual Machines' and armRegionName eq '...' and armSkuName eq '...'
answers {"BillingCurrency", "CustomerEntityId", "CustomerEntityType", "Items", "NextPageLink", "Count"}, `page_size`
items a page, NextPageLink carrying $skip as the real API does. Each VM size has the meters the real list
has for it: pay-as-you-go Linux, Windows, Spot and Low Priority, and a reservation.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def meters(vm_size: str, region: str, linux_hourly: float) -> list[dict[str, Any]]:
    """The meters of one VM size in one region, in the Retail Prices API's item shape."""
    series = vm_size.removeprefix("Standard_").split("_")[0]
    short = vm_size.removeprefix("Standard_").replace("_", " ")

    def item(product: str, sku: str, meter: str, price: float, kind: str = "Consumption", **extra: Any) -> dict[str, Any]:
        return {
            "currencyCode": "USD",
            "tierMinimumUnits": 0.0,
            "retailPrice": price,
            "unitPrice": price,
            "armRegionName": region,
            "location": "US East" if region == "eastus" else region,
            "effectiveStartDate": "2025-06-01T00:00:00Z",
            "meterId": f"meter-{vm_size}-{kind}-{sku}".replace(" ", "-"),
            "meterName": meter,
            "productId": "DZH318Z0BQ4L",
            "skuId": "DZH318Z0BQ4L/00TG",
            "availabilityId": None,
            "productName": product,
            "skuName": sku,
            "serviceName": "Virtual Machines",
            "serviceId": "DZH313Z7MMC8",
            "serviceFamily": "Compute",
            "unitOfMeasure": "1 Hour",
            "type": kind,
            "isPrimaryMeterRegion": True,
            "armSkuName": vm_size,
            **extra,
        }

    linux = f"Virtual Machines {series} Series"
    return [
        item(f"{linux} Windows", short, short, round(linux_hourly * 1.8, 4)),
        item(linux, f"{short} Spot", f"{short} Spot", round(linux_hourly * 0.2, 4)),
        item(linux, f"{short} Low Priority", f"{short} Low Priority", round(linux_hourly * 0.2, 4)),
        item(linux, short, short, linux_hourly),
        item(linux, short, short, round(linux_hourly * 0.6, 4), kind="Reservation", reservationTerm="1 Year"),
    ]


@dataclass
class FakeRetailPrices:
    items: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    requests: list[dict[str, str]] = field(default_factory=list)
    down: bool = False
    url: str = ""

    def add(self, vm_size: str, region: str, linux_hourly: float) -> None:
        self.items += meters(vm_size, region, linux_hourly)

    def answer(self, query: dict[str, str]) -> tuple[int, Any]:
        if self.down:
            return 503, {"Error": {"Code": "ServiceUnavailable", "Message": "The service is temporarily unavailable."}}
        wanted = dict(re.findall(r"(\w+) eq '([^']*)'", query.get("$filter", "")))
        if not wanted:
            return 400, {"Error": {"Code": "InvalidFilter", "Message": "Invalid OData filter."}}
        matching = [i for i in self.items if all(str(i.get(k)) == v for k, v in wanted.items() if k != "priceType")]
        if "priceType" in wanted:
            matching = [i for i in matching if i["type"] == wanted["priceType"]]
        skip = int(query.get("$skip", 0))
        page = matching[skip : skip + self.page_size]
        following = None
        if skip + self.page_size < len(matching):
            following = f"{self.url}/api/retail/prices?" + urllib.parse.urlencode(
                {"$filter": query["$filter"], "$skip": skip + self.page_size}
            )
        return 200, {
            "BillingCurrency": "USD",
            "CustomerEntityId": "Default",
            "CustomerEntityType": "Retail",
            "Items": page,
            "NextPageLink": following,
            "Count": len(page),
        }


@contextmanager
def serve(fake: FakeRetailPrices) -> Iterator[FakeRetailPrices]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            fake.requests.append(query)
            status, body = fake.answer(query) if parts.path == "/api/retail/prices" else (404, {"Error": {"Code": "NotFound"}})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
