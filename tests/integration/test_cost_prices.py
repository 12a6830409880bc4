"""The aks cost estimate against a loopback stand-in for Azure's Retail Prices API (its shape and paging)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

from aks_ray import cost, verdict

# The stand-ins live in tests/fakes, beside the other fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
from retail_prices import FakeRetailPrices, serve

pytestmark = pytest.mark.integration

D4, D2 = "Standard_D4s_v5", "Standard_D2s_v5"


@pytest.fixture
def prices():
    fake = FakeRetailPrices(page_size=2)
    fake.add(D4, "eastus", 0.192)
    fake.add(D2, "eastus", 0.096)
    fake.add(D4, "westeurope", 0.23)
    with serve(fake):
        yield fake


def test_node_seconds_times_the_pay_as_you_go_linux_price(prices):
    # Three Ray nodes for 20 minutes, one system node for 30.
    nodes = [(D4, 1200), (D4, 1200), (D4, 1200), (D2, 1800)]
    estimate = cost.estimate(nodes, "eastus", prices_url=prices.url + "/api/retail/prices", today=dt.date(2026, 12, 1))

    assert [(line.vm_size, line.node_seconds, line.hourly_price) for line in estimate.lines] == [(D4, 3600.0, 0.192), (D2, 1800.0, 0.096)]
    assert estimate.total == pytest.approx(0.192 + 0.048)
    assert estimate.currency == "USD" and estimate.unpriced == ()
    # Each size's meters spanned pages (Windows, Spot, Low Priority, Linux, ...): NextPageLink was followed.
    d4_pages = [q for q in prices.requests if "Standard_D4s_v5" in q["$filter"]]
    assert len(d4_pages) == 2 and d4_pages[1]["$skip"] == "2"
    assert "armRegionName eq 'eastus'" in d4_pages[0]["$filter"] and "priceType eq 'Consumption'" in d4_pages[0]["$filter"]

    block = estimate.as_dict()
    assert block["estimate"] is True and block["date"] == "2026-12-01" and block["source"] == cost.SOURCE
    text = cost.markdown(block)
    assert "**Estimated cost: 0.24 USD** in eastus" in text and "an estimate from the Azure Retail Prices API" in text
    assert "| Standard_D4s_v5 | 1.000 | 0.1920 | 0.1920 |" in text


def test_a_size_without_a_price_is_named_not_guessed(prices):
    estimate = cost.estimate([(D4, 3600), ("Standard_NC6s_v3", 3600)], "eastus", prices_url=prices.url + "/api/retail/prices")
    assert estimate.unpriced == ("Standard_NC6s_v3",) and estimate.total == pytest.approx(0.192)
    assert "| Standard_NC6s_v3 | 1.000 | no price found | – |" in cost.markdown(estimate.as_dict())


def test_an_unreachable_price_list_is_a_notice(prices, capsys):
    prices.down = True
    url = prices.url + "/api/retail/prices"
    with pytest.raises(cost.PricesUnavailable, match="HTTP 503"):
        cost.estimate([(D4, 60)], "eastus", prices_url=url, sleep=lambda s: None)
    assert len(prices.requests) == cost.ATTEMPTS

    assert cost.cost_block([(D4, 60)], "eastus", prices_url="http://127.0.0.1:9/api/retail/prices", sleep=lambda s: None) is None
    assert "::notice title=aks-ray%3A cost::no cost estimate: the Azure Retail Prices API did not answer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("item", "counted"),
    [
        pytest.param({"type": "Consumption", "unitOfMeasure": "1 Hour", "productName": "Virtual Machines Dsv5 Series"}, True, id="linux"),
        pytest.param(
            {"type": "Consumption", "unitOfMeasure": "1 Hour", "productName": "Virtual Machines Dsv5 Series Windows"}, False, id="windows"
        ),
        pytest.param({"type": "Consumption", "unitOfMeasure": "1 Hour", "productName": "X", "skuName": "D4s v5 Spot"}, False, id="spot"),
        pytest.param(
            {"type": "Consumption", "unitOfMeasure": "1 Hour", "productName": "X", "meterName": "D4s v5 Low Priority"},
            False,
            id="low-priority",
        ),
        pytest.param({"type": "Reservation", "unitOfMeasure": "1 Hour", "productName": "X"}, False, id="reservation"),
    ],
)
def test_which_meters_count(item, counted):
    assert cost.is_pay_as_you_go_linux(item) is counted


def test_the_comment_carries_the_cost_block_of_metrics_json(prices):
    doc = {"status": "SUCCEEDED", "target": "aks", "dataset": {"name": "mnist"}, "epochs": [], "final": {"test_accuracy": 0.98}}
    doc["cost"] = cost.estimate([(D4, 3600)], "eastus", prices_url=prices.url + "/api/retail/prices").as_dict()
    body = verdict.comment_body(verdict.comment_marker("a"), "## aks-ray verdict: ✅ pass\n", doc, {"train": 1.0, "total": 1.0})
    assert "### Cost\n\n**Estimated cost: 0.19 USD** in eastus" in body
    assert body.index("### Timings") < body.index("### Cost")


def test_node_seconds_from_the_nodes_the_cluster_reports():
    start = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(minutes=30)

    def node(size, created):
        return {"metadata": {"name": "n", "labels": {cost.INSTANCE_TYPE_LABEL: size}, "creationTimestamp": created}}

    nodes = [
        node(D2, "2026-11-20T08:00:00Z"),  # the system pool, there before the run: the whole run
        node(D4, "2026-12-01T10:10:00Z"),  # scaled up during the run: from then on
        {"metadata": {"name": "virtual-kubelet", "labels": {}}},  # no VM size, no price
    ]
    assert cost.node_seconds(nodes, start, end) == [(D2, 1800.0), (D4, 1200.0)]
