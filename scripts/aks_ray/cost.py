"""What an aks run cost, estimated: node-seconds times each VM size's pay-as-you-go price.

The prices come from Azure's Retail Prices API, which is public (no sign-in):
one query per VM size and region, filtered to pay-as-you-go Linux compute (the
OS of AKS nodes), paged through NextPageLink. It is an estimate and says so: it
leaves out disks, load balancer, egress and discounts, and uses the list price
of the day it ran. An unreachable price list is a notice for the caller, never
a failure of the run.

The node-seconds are the caller's: a list of (vm_size, seconds) per node, from
the nodes the cluster reports (the Ray pool and the system pool) while the run
lasted.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from . import gha
from .retry import retry

log = logging.getLogger(__name__)

PRICES_URL = "https://prices.azure.com/api/retail/prices"
SOURCE = "Azure Retail Prices API (pay-as-you-go, Linux)"
TIMEOUT = httpx.Timeout(15.0, connect=10.0)
ATTEMPTS = 3
# One VM size in one region has a handful of meters; more pages than this means a filter went wrong.
MAX_PAGES = 10


class PricesUnavailable(Exception):
    """The price list could not be read; the message says why, for a notice."""


@dataclass(frozen=True)
class CostLine:
    vm_size: str
    node_seconds: float
    hourly_price: float | None

    @property
    def cost(self) -> float | None:
        return None if self.hourly_price is None else self.node_seconds / 3600 * self.hourly_price


@dataclass(frozen=True)
class CostEstimate:
    region: str
    currency: str
    lines: tuple[CostLine, ...]
    date: str
    source: str = SOURCE

    @property
    def total(self) -> float:
        return sum(line.cost or 0.0 for line in self.lines)

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(line.vm_size for line in self.lines if line.hourly_price is None)

    def as_dict(self) -> dict[str, Any]:
        """The `cost` block of metrics.json."""
        return {
            "estimate": True,
            "currency": self.currency,
            "total": round(self.total, 4),
            "region": self.region,
            "source": self.source,
            "date": self.date,
            "lines": [
                {
                    "vm_size": line.vm_size,
                    "node_seconds": round(line.node_seconds, 1),
                    "hourly_price": line.hourly_price,
                    "cost": None if line.cost is None else round(line.cost, 4),
                }
                for line in self.lines
            ],
            "unpriced": list(self.unpriced),
        }


INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


def node_seconds(nodes: Iterable[dict[str, Any]], started: dt.datetime, ended: dt.datetime) -> list[tuple[str, float]]:
    """(vm_size, seconds) per node from Kubernetes Node objects (as dicts): the part of the run each node existed for.

    AKS labels every node with its VM size. A node the autoscaler removed before
    this was asked is not in the list, so the estimate errs low, never high.
    """
    found = []
    for node in nodes:
        metadata = node.get("metadata") or {}
        vm_size = (metadata.get("labels") or {}).get(INSTANCE_TYPE_LABEL)
        created = metadata.get("creationTimestamp") or metadata.get("creation_timestamp")
        if not vm_size:
            continue
        if isinstance(created, str):
            created = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        since = max(started, created) if isinstance(created, dt.datetime) else started
        found.append((vm_size, max(0.0, (ended - since).total_seconds())))
    return found


def node_seconds_by_size(nodes: Iterable[tuple[str, float]]) -> dict[str, float]:
    """(vm_size, seconds) per node -> seconds per VM size, in first-seen order."""
    totals: dict[str, float] = {}
    for vm_size, seconds in nodes:
        totals[vm_size] = totals.get(vm_size, 0.0) + max(0.0, float(seconds))
    return totals


def is_pay_as_you_go_linux(item: dict[str, Any]) -> bool:
    """A meter for an on-demand Linux VM hour: not Windows, Spot, Low Priority, reserved or a savings plan."""
    names = " ".join(str(item.get(k, "")) for k in ("productName", "skuName", "meterName"))
    return (
        item.get("type") == "Consumption"
        and str(item.get("unitOfMeasure", "")).endswith("Hour")
        and "Windows" not in str(item.get("productName", ""))
        and not any(word in names for word in ("Spot", "Low Priority"))
    )


def hourly_price(items: Iterable[dict[str, Any]], vm_size: str) -> tuple[float, str] | None:
    """The pay-as-you-go Linux price of one VM size from the API's items, and its currency."""
    prices = [
        (float(item["retailPrice"]), str(item.get("currencyCode", "USD")))
        for item in items
        if item.get("armSkuName") == vm_size and is_pay_as_you_go_linux(item) and item.get("retailPrice") is not None
    ]
    # Several regional meters can match (a primary and a secondary meter); the highest is the safe estimate.
    return max(prices, default=None)


def price_filter(vm_size: str, region: str) -> str:
    return f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and armSkuName eq '{vm_size}' and priceType eq 'Consumption'"


class RetailPrices:
    """A client of the Retail Prices API (or a test's loopback server at prices_url)."""

    def __init__(self, prices_url: str = PRICES_URL, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.prices_url, self.sleep = prices_url, sleep
        self._http = httpx.Client(timeout=TIMEOUT, headers={"User-Agent": "aks-ray-action"})

    def __enter__(self) -> RetailPrices:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _get(self, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            response = self._http.get(url, params=params)
            if response.status_code >= 500 or response.status_code == 429:
                raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
            response.raise_for_status()
            return response.json()

        def transient(exc: BaseException) -> bool:
            return not isinstance(exc, httpx.HTTPStatusError) or exc.response.status_code >= 500 or exc.response.status_code == 429

        try:
            return retry(
                once,
                what="reading the Azure price list",
                attempts=ATTEMPTS,
                retry_on=(httpx.HTTPError,),
                is_transient=transient,
                sleep=self.sleep,
            )
        except (httpx.HTTPError, ValueError) as exc:
            raise PricesUnavailable(f"the Azure Retail Prices API did not answer ({exc.__class__.__name__}: {exc})") from None

    def items(self, vm_size: str, region: str) -> list[dict[str, Any]]:
        """Every item for the size and region, following NextPageLink."""
        found: list[dict[str, Any]] = []
        url: str | None = self.prices_url
        params: dict[str, str] | None = {"$filter": price_filter(vm_size, region)}
        for _page in range(MAX_PAGES):
            body = self._get(url, params)
            found += body.get("Items") or []
            url, params = body.get("NextPageLink"), None
            if not url:
                return found
        log.warning("the price list for %s in %s has more than %d pages; using the first ones", vm_size, region, MAX_PAGES)
        return found


def estimate(
    nodes: Iterable[tuple[str, float]],
    region: str,
    *,
    prices_url: str = PRICES_URL,
    today: dt.date | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CostEstimate:
    """The estimate for the nodes' (vm_size, seconds); raises PricesUnavailable when the price list cannot be read."""
    seconds = node_seconds_by_size(nodes)
    lines, currency = [], "USD"
    with RetailPrices(prices_url, sleep=sleep) as prices:
        for vm_size, total in seconds.items():
            found = hourly_price(prices.items(vm_size, region), vm_size)
            if found is None:
                log.warning("no pay-as-you-go Linux price for %s in %s; it is left out of the estimate", vm_size, region)
            else:
                currency = found[1]
            lines.append(CostLine(vm_size, total, None if found is None else found[0]))
    return CostEstimate(
        region=region, currency=currency, lines=tuple(lines), date=(today or dt.datetime.now(dt.timezone.utc).date()).isoformat()
    )


def markdown(cost: dict[str, Any]) -> str:
    """The report's cost line and table, from the `cost` block of metrics.json."""
    lines = [
        f"**Estimated cost: {cost['total']:.2f} {cost['currency']}** in {cost['region']}: node-seconds times the list price; "
        f"an estimate from the {cost['source']} on {cost['date']}, without disks, network or discounts.",
        "",
        "| VM size | node-hours | price per hour | cost |",
        "| --- | ---: | ---: | ---: |",
    ]
    for line in cost["lines"]:
        price = "no price found" if line["hourly_price"] is None else f"{line['hourly_price']:.4f}"
        amount = "–" if line["cost"] is None else f"{line['cost']:.4f}"
        lines.append(f"| {line['vm_size']} | {line['node_seconds'] / 3600:.3f} | {price} | {amount} |")
    return "\n".join(lines) + "\n"


def cost_block(
    nodes: Iterable[tuple[str, float]], region: str, *, prices_url: str = PRICES_URL, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any] | None:
    """metrics.json's `cost` block for an aks run, or None after a notice when the price list is out of reach."""
    try:
        return estimate(nodes, region, prices_url=prices_url, sleep=sleep).as_dict()
    except PricesUnavailable as exc:
        gha.notice(f"no cost estimate: {exc}. The run itself is unaffected.", title="aks-ray: cost")
        return None
