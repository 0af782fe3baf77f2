"""GA4 cart funnel (runFunnelReport, Data API v1alpha): the sandbox route, the connector and the asset.

Expected users are sums of the World's cells (`cartUsers`, `cartPurchasers`) per property and day, never read
back from the connector. The real client (AlphaAnalyticsDataClient, REST) talks to the sandbox over a socket.
"""

from datetime import date

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
from google.analytics.data_v1alpha import AlphaAnalyticsDataClient
from google.analytics.data_v1alpha.types import Dimension as AlphaDimension
from google.analytics.data_v1alpha.types import (
    DimensionHeader,
    DimensionValue,
    FunnelBreakdown,
    FunnelSubReport,
    MetricHeader,
    MetricType,
    MetricValue,
    Row,
    RunFunnelReportRequest,
    RunFunnelReportResponse,
)
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from connectors.batches import Window
from connectors.errors import InvalidResponse
from connectors.ga4 import CART_FUNNEL, Ga4Connector
from connectors.ga4_funnel import funnel_request, parse_funnel
from connectors.settings import GA4Settings
from connectors.warehouse import load_batches
from sandbox.ga4_server import Ga4Server
from sandbox.world import DEFAULT_GA4_PROPERTY_ID, SMALL_GA4_PROPERTY_ID, World

TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 10))
PID, SMALL = DEFAULT_GA4_PROPERTY_ID, SMALL_GA4_PROPERTY_ID


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, today=TODAY)


@pytest.fixture
def server(world):
    with Ga4Server(world) as srv:
        yield srv


def expected(world: World, property_id: str, day: date) -> tuple[int, int]:
    facts = world.ga4_facts(property_id, day)
    return (sum(int(f.metrics["cartUsers"]) for f in facts), sum(int(f.metrics["cartPurchasers"]) for f in facts))


def alpha_client(url: str) -> AlphaAnalyticsDataClient:
    return AlphaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                    client_options=ClientOptions(api_endpoint=url))


def test_world_funnel_users_are_bounded_per_cell(world):
    facts = [f for p in world.ga4_properties for d in WINDOW.dates() for f in world.ga4_facts(p, d)]
    for f in facts:
        m = f.metrics
        assert 0 <= m["cartUsers"] <= min(m["users"], m["addToCarts"])
        assert 0 <= m["cartPurchasers"] <= min(m["cartUsers"], m["ecommercePurchases"])
        assert (m["cartUsers"] > 0) == (m["addToCarts"] > 0)
    carts = sum(f.metrics["cartUsers"] for f in facts)
    bought = sum(f.metrics["cartPurchasers"] for f in facts)
    assert 0.5 < (carts - bought) / carts < 0.85  # a cart abandonment rate as e-commerce sites see it


def test_the_request_on_the_wire_and_the_sandbox_answer(world, server):
    day = date(2026, 3, 5)
    response = alpha_client(server.url).run_funnel_report(request=funnel_request(CART_FUNNEL, PID, day))
    logged = server.requests[-1]
    assert logged.path == f"/v1alpha/properties/{PID}:runFunnelReport"
    assert logged.json == {
        "dateRanges": [{"startDate": "2026-03-05", "endDate": "2026-03-05"}],
        "funnel": {"steps": [
            {"name": "add_to_cart", "filterExpression": {"funnelEventFilter": {"eventName": "add_to_cart"}}},
            {"name": "purchase", "filterExpression": {"funnelEventFilter": {"eventName": "purchase"}}}]},
        "funnelVisualizationType": 1,  # STANDARD_FUNNEL; isOpenFunnel false (closed) is the default, not sent
        "returnPropertyQuota": True,
    }
    table = response.funnel_table
    assert [h.name for h in table.dimension_headers] == ["funnelStepName"]
    assert [h.name for h in table.metric_headers] == ["activeUsers", "funnelStepCompletionRate",
                                                      "funnelStepAbandonments", "funnelStepAbandonmentRate"]
    cart, bought = expected(world, PID, day)
    rows = {r.dimension_values[0].value: [float(v.value) for v in r.metric_values] for r in table.rows}
    assert rows == {"1. add_to_cart": [cart, pytest.approx(bought / cart), cart - bought,
                                       pytest.approx((cart - bought) / cart)],
                    "2. purchase": [bought, 1, 0, 0]}  # nobody abandons after the last step
    assert [r.metric_values[0].value for r in response.funnel_visualization.rows] == [str(cart), str(bought)]
    assert response.property_quota.tokens_per_day.consumed >= 1
    assert response.kind == "analyticsData#runFunnelReport"


def test_a_day_nobody_added_to_cart_has_no_funnel_rows(world, server):
    day = next(d for d in WINDOW.dates() if expected(world, SMALL, d)[0] == 0)
    table = alpha_client(server.url).run_funnel_report(request=funnel_request(CART_FUNNEL, SMALL, day)).funnel_table
    assert list(table.rows) == [] and [h.name for h in table.dimension_headers] == ["funnelStepName"]


@pytest.mark.parametrize("change, message", [
    (lambda r: setattr(r, "funnel_breakdown", FunnelBreakdown(breakdown_dimension=AlphaDimension(name="date"))),
     "funnelBreakdown is not supported"),
    (lambda r: setattr(r.funnel, "is_open_funnel", True), "isOpenFunnel is not supported"),
    (lambda r: setattr(r.date_ranges[0], "end_date", "2026-03-06"), "one day only"),
    (lambda r: setattr(r, "funnel_visualization_type",
                       RunFunnelReportRequest.FunnelVisualizationType.TRENDED_FUNNEL), "not supported"),
    (lambda r: setattr(r.funnel.steps[1].filter_expression.funnel_event_filter, "event_name", "begin_checkout"),
     "add_to_cart -> purchase only"),
])
def test_what_the_sandbox_does_not_implement_is_refused(server, change, message):
    request = funnel_request(CART_FUNNEL, PID, date(2026, 3, 5))
    change(request)
    with pytest.raises(exceptions.BadRequest, match=message):
        alpha_client(server.url).run_funnel_report(request=request)


def test_connector_reads_every_property_and_day_into_cart_funnel_daily(world, server):
    connector = Ga4Connector(GA4Settings(property_ids=(PID, SMALL), endpoint=server.url, timeout_seconds=5))
    batches = list(connector.fetch(CART_FUNNEL, WINDOW))
    assert [b.scope for b in batches] == [{"property_id": PID}, {"property_id": SMALL}]  # one per property
    table = pa.concat_tables([b.data for b in batches])
    assert table.schema.equals(CART_FUNNEL.stream.schema)
    got = {(r["property_id"], r["date"]): r for r in table.to_pylist()}
    truth = {(p, d): expected(world, p, d) for p in (PID, SMALL) for d in WINDOW.dates()}
    assert set(got) == {k for k, (cart, _b) in truth.items() if cart > 0}  # a day without add_to_cart: no row
    assert len(got) < len(truth)  # the small property has such days in the window
    for key, row in got.items():
        assert (row["cart_users"], row["purchased_after_cart_users"]) == truth[key]
        assert row["time_zone"] == "Europe/Paris"
    # one funnel request per property and day, plus one 1-row runReport per property for its time zone
    assert connector.stats.requests == 2 * WINDOW.days + 2
    assert sum(r.path.endswith(":runFunnelReport") for r in server.requests) == 2 * WINDOW.days


def test_loading_twice_replaces_the_window(world, server, tmp_path):
    connector = Ga4Connector(GA4Settings(property_ids=(PID, SMALL), endpoint=server.url, timeout_seconds=5))
    with duckdb.connect(str(tmp_path / "w.db")) as conn:
        for _ in range(2):
            load_batches(conn, connector.fetch(CART_FUNNEL, WINDOW))
        rows = conn.execute("SELECT property_id, date, cart_users, purchased_after_cart_users "
                            "FROM ga4.cart_funnel_daily ORDER BY ALL").fetchall()
    truth = sorted((p, d, *expected(world, p, d)) for p in (PID, SMALL) for d in WINDOW.dates()
                   if expected(world, p, d)[0] > 0)
    assert rows == truth


def _response(rows: list[tuple[str, str]], metrics: list[str] | None = None) -> RunFunnelReportResponse:
    metrics = metrics or ["activeUsers", "funnelStepCompletionRate", "funnelStepAbandonments",
                          "funnelStepAbandonmentRate"]
    return RunFunnelReportResponse(funnel_table=FunnelSubReport(
        dimension_headers=[DimensionHeader(name="funnelStepName")],
        metric_headers=[MetricHeader(name=m, type_=MetricType.TYPE_INTEGER) for m in metrics],
        rows=[Row(dimension_values=[DimensionValue(value=step)],
                  metric_values=[MetricValue(value=users)] + [MetricValue(value="0")] * 3) for step, users in rows]))


def test_parse_funnel_edge_cases():
    def users(response: RunFunnelReportResponse) -> tuple[int, int] | None:
        return parse_funnel(response, CART_FUNNEL, PID, "test")[0]

    assert users(_response([])) is None
    assert users(_response([("1. add_to_cart", "7")])) == (7, 0)  # an all-zero step left out
    assert users(_response([("1. add_to_cart", "0"), ("2. purchase", "0")])) is None
    # a metric header block sent twice still puts activeUsers first
    doubled = ["activeUsers", "funnelStepCompletionRate", "funnelStepAbandonments", "funnelStepAbandonmentRate"] * 2
    assert users(_response([("1. add_to_cart", "9"), ("2. purchase", "4")], doubled)) == (9, 4)
    for rows, field in (([("1. add_to_cart", "3"), ("2. purchase", "4")], "funnelTable.rows"),
                        ([("2. purchase", "4")], "funnelTable.rows"),
                        ([("1. add_to_cart", "3"), ("3. begin_checkout", "1")], "funnelStepName"),
                        ([("1. add_to_cart", "3"), ("1. add_to_cart", "3")], "funnelStepName"),
                        ([("1. add_to_cart", "2.5")], "activeUsers"),
                        ([("1. add_to_cart", "-1")], "activeUsers")):
        with pytest.raises(InvalidResponse, match=field) as info:
            parse_funnel(_response(rows), CART_FUNNEL, PID, "runFunnelReport test")
        assert PID in str(info.value)


def test_the_asset_loads_the_day_and_its_checks_pass(world, server, tmp_path, monkeypatch):
    from pipelines.components.source_assets import source_asset, source_check
    from pipelines.lib.resources import GA4Resource, WarehouseResource

    cart_funnel_daily = source_asset("ga4", "ga4.cart_funnel_daily")
    ga4_cart_funnel_consistent = source_check("ga4", "ga4_cart_funnel_consistent")

    monkeypatch.setenv("MKPI_GA4_ENDPOINT", server.url)
    monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", f"{PID},{SMALL}")
    database = str(tmp_path / "w.db")
    result = dg.materialize([cart_funnel_daily, ga4_cart_funnel_consistent], partition_key="2026-03-05",
                            resources={"ga4": GA4Resource(), "warehouse": WarehouseResource(database=database)})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    day = date(2026, 3, 5)
    truth = {p: expected(world, p, day) for p in (PID, SMALL)}
    assert metadata["dagster/row_count"] == sum(cart > 0 for cart, _b in truth.values())
    assert metadata["accounts"] == 2 and metadata["accounts_failed"] == 0
    assert metadata["quality_days"] == 2 and metadata["quality_days_sampled"] == 0
    assert all(c.passed for c in result.get_asset_check_evaluations())
    with duckdb.connect(database, read_only=True) as conn:
        rows = dict((p, (c, b)) for p, c, b in conn.execute(
            "SELECT property_id, cart_users, purchased_after_cart_users FROM ga4.cart_funnel_daily").fetchall())
        quality = conn.execute("SELECT property_id, report, date, subject_to_thresholding, sampled "
                               "FROM ga4.report_quality ORDER BY ALL").fetchall()
    assert rows == {p: t for p, t in truth.items() if t[0] > 0}
    assert quality == [(p, "cart_funnel_daily", day, None, False) for p in (PID, SMALL)]


def test_the_funnel_is_one_of_the_reports_a_ga4_load_reads(world, server):
    from connectors.ga4 import REPORTS

    # the daily refresh and `mkpi backfill` take GA4's raw tables from REPORTS (pipelines/defs/schedules.py)
    assert [r.stream.table for r in REPORTS.values()] == [
        "ga4.traffic_by_channel", "ga4.ecommerce_by_date", "ga4.cart_funnel_daily"]
    connector = Ga4Connector(GA4Settings(property_ids=(SMALL,), endpoint=server.url, timeout_seconds=5))
    day = date(2026, 3, 3)
    (batch,) = connector.fetch("cart_funnel_daily", Window(day, day))
    cart, bought = expected(world, SMALL, day)
    assert cart > 0 and batch.data.to_pylist() == [{"property_id": SMALL, "date": day, "cart_users": cart,
                                                    "purchased_after_cart_users": bought,
                                                    "time_zone": "Europe/Paris"}]
