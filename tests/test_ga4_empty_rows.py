"""GA4 leaves out rows whose requested metrics are all zero (RunReportRequest.keepEmptyRows unset).

The default world's second property (a small brand) has days with sessions but no e-commerce event at all: its
e-commerce report has no row for them, while the traffic report still counts their sessions. Expected values
come from the World's cells, summed here.
"""

from datetime import date

import pyarrow as pa
import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import DateRange, Dimension, Metric, RunReportRequest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from connectors.batches import Window
from connectors.ga4 import ECOMMERCE, TRAFFIC, Ga4Connector
from connectors.settings import GA4Settings
from sandbox.ga4_server import Ga4Server
from sandbox.world import DEFAULT_GA4_PROPERTY_ID, SMALL_GA4_PROPERTY_ID, World

TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 20))
SMALL = SMALL_GA4_PROPERTY_ID
ECOMMERCE_METRICS = ("ecommercePurchases", "purchaseRevenue", "addToCarts", "checkouts")


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, today=TODAY)


@pytest.fixture(scope="module")
def server(world):
    with Ga4Server(world) as srv:
        yield srv


def day_sums(world: World, property_id: str, day: date) -> dict[str, float]:
    sums: dict[str, float] = {}
    for fact in world.ga4_facts(property_id, day):
        for name, value in fact.metrics.items():
            sums[name] = sums.get(name, 0) + value
    return sums


def days_without_ecommerce(world: World, property_id: str) -> list[date]:
    """Days with sessions and not one e-commerce event, from the World."""
    out = []
    for day in WINDOW.dates():
        sums = day_sums(world, property_id, day)
        if sums.get("sessions", 0) > 0 and not any(sums.get(m, 0) for m in ECOMMERCE_METRICS):
            out.append(day)
    return out


def test_the_default_world_has_a_small_second_property_with_days_without_ecommerce(world, server):
    assert list(world.ga4_properties) == [DEFAULT_GA4_PROPERTY_ID, SMALL]
    assert server.env()["MKPI_GA4_PROPERTY_IDS"] == f"{DEFAULT_GA4_PROPERTY_ID},{SMALL}"
    assert len(days_without_ecommerce(world, SMALL)) >= 3  # several such days in 20
    assert days_without_ecommerce(world, DEFAULT_GA4_PROPERTY_ID) == []


def _ecommerce_request(keep_empty_rows: bool | None = None) -> RunReportRequest:
    extra = {} if keep_empty_rows is None else {"keep_empty_rows": keep_empty_rows}
    return RunReportRequest(property=f"properties/{SMALL}", dimensions=[Dimension(name="date")],
                            metrics=[Metric(name=m) for m in ECOMMERCE_METRICS],
                            date_ranges=[DateRange(start_date=WINDOW.start.isoformat(),
                                                   end_date=WINDOW.end.isoformat())], **extra)


def test_sandbox_leaves_out_all_zero_rows_unless_keep_empty_rows(world, server):
    client = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                     client_options=ClientOptions(api_endpoint=server.url))
    empty = {d.strftime("%Y%m%d") for d in days_without_ecommerce(world, SMALL)}
    default = client.run_report(_ecommerce_request())
    dates = [r.dimension_values[0].value for r in default.rows]
    assert empty and not empty & set(dates)
    assert default.row_count == len(dates) == WINDOW.days - len(empty)
    assert "keepEmptyRows" not in (server.requests[-1].json or {})

    kept = client.run_report(_ecommerce_request(keep_empty_rows=True))
    assert server.requests[-1].json["keepEmptyRows"] is True
    rows = {r.dimension_values[0].value: [v.value for v in r.metric_values] for r in kept.rows}
    assert kept.row_count == len(rows) == WINDOW.days  # every day the property recorded
    assert all(rows[d] == ["0", "0", "0", "0"] for d in empty)


def test_connector_has_no_ecommerce_row_for_those_days_but_their_sessions_are_in_traffic(world, server):
    server.clear_log()
    settings = GA4Settings(property_ids=(DEFAULT_GA4_PROPERTY_ID, SMALL), endpoint=server.url, timeout_seconds=5)
    connector = Ga4Connector(settings)
    ecommerce = pa.concat_tables([b.data for b in connector.fetch(ECOMMERCE, WINDOW)]).to_pylist()
    traffic = pa.concat_tables([b.data for b in connector.fetch(TRAFFIC, WINDOW)]).to_pylist()
    empty = days_without_ecommerce(world, SMALL)

    ecommerce_days = {(r["property_id"], r["date"]) for r in ecommerce}
    assert not {(SMALL, d) for d in empty} & ecommerce_days
    assert len(ecommerce_days) == 2 * WINDOW.days - len(empty)
    for row in ecommerce:
        sums = day_sums(world, row["property_id"], row["date"])
        assert row["ecommerce_purchases"] == sums["ecommercePurchases"]
        assert row["add_to_carts"] == sums["addToCarts"]
    for day in empty:
        sessions = sum(r["sessions"] for r in traffic if r["property_id"] == SMALL and r["date"] == day)
        assert sessions == day_sums(world, SMALL, day)["sessions"] > 0
    assert all("keepEmptyRows" not in (r.json or {}) for r in server.requests)  # the connector never sets it
