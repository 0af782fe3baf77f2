"""GA4 connector against the sandbox GA4 server over a real socket, through the official client."""

import math
from datetime import date

import pyarrow as pa
import pytest

from connectors.batches import Window
from connectors.errors import ConfigError, RetriesExhausted, SourceError
from connectors.ga4 import ECOMMERCE, TRAFFIC, Ga4Connector
from connectors.http import RetryPolicy
from connectors.settings import GA4Settings
from sandbox.ga4_server import Ga4Server
from sandbox.world import World

TODAY = date(2026, 3, 31)
PROPERTY = "123456789"
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 10))


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture
def server(world):
    with Ga4Server(world) as srv:
        yield srv


def connector(url: str, **overrides) -> tuple[Ga4Connector, list[float]]:
    sleeps: list[float] = []
    settings = GA4Settings(property_ids=(PROPERTY,), endpoint=url, timeout_seconds=5, **overrides)
    return Ga4Connector(settings, sleep=sleeps.append, policy=RetryPolicy(base_delay=0.01, max_delay=0.05)), sleeps


def fetch_all(conn: Ga4Connector, report=TRAFFIC, window=WINDOW) -> pa.Table:
    return pa.concat_tables([b.data for b in conn.fetch(report, window)])


def world_totals(world, window, group_metric):
    totals: dict[tuple[date, str], int] = {}
    for day in window.dates():
        for fact in world.ga4_facts(PROPERTY, day):
            key = (day, fact.dims["sessionDefaultChannelGroup"])
            totals[key] = totals.get(key, 0) + fact.metrics[group_metric]
    return totals


def test_traffic_rows_match_the_world_and_are_typed(server, world):
    conn, _ = connector(server.url)
    table = fetch_all(conn)
    assert table.schema.equals(TRAFFIC.stream.schema)
    got = {(r["date"], r["session_default_channel_group"]): r for r in table.to_pylist()}
    sessions = world_totals(world, WINDOW, "sessions")
    engaged = world_totals(world, WINDOW, "engagedSessions")
    converting = world_totals(world, WINDOW, "convertingSessions")
    assert set(got) == set(sessions)
    for key, row in got.items():
        assert row["sessions"] == sessions[key]
        assert row["engaged_sessions"] == engaged[key]
        assert row["converting_sessions"] == converting[key]  # recovered exactly from the rate
        assert row["property_id"] == PROPERTY and row["is_other"] is False
        assert row["time_zone"] == "Europe/Paris" and row["currency_code"] == "EUR"
    assert conn.stats.requests == 1  # the whole 10-day window in one request


def test_ecommerce_report_by_date(server, world):
    conn, _ = connector(server.url)
    table = fetch_all(conn, ECOMMERCE)
    assert table.num_rows == WINDOW.days
    day = date(2026, 3, 5)
    row = next(r for r in table.to_pylist() if r["date"] == day)
    facts = world.ga4_facts(PROPERTY, day)
    assert row["ecommerce_purchases"] == sum(f.metrics["ecommercePurchases"] for f in facts)
    assert row["add_to_carts"] == sum(f.metrics["addToCarts"] for f in facts)
    assert row["purchase_revenue"] == pytest.approx(sum(f.metrics["purchaseRevenue"] for f in facts), abs=0.01)


def test_paging_with_a_small_page_returns_every_row_once(server):
    big, _ = connector(server.url)
    expected = fetch_all(big).sort_by([("date", "ascending"), ("session_default_channel_group", "ascending")])
    small, _ = connector(server.url, page_size=7)
    batches = list(small.fetch(TRAFFIC, WINDOW))
    got = pa.concat_tables([b.data for b in batches]).sort_by(
        [("date", "ascending"), ("session_default_channel_group", "ascending")])
    assert got.equals(expected)
    assert small.stats.requests == math.ceil(expected.num_rows / 7) == len(batches)


def test_other_rows_are_kept_and_flagged(world):
    with Ga4Server(world, cardinality_limit=12) as srv:
        conn, _ = connector(srv.url)
        table = fetch_all(conn)
    other = [r for r in table.to_pylist() if r["is_other"]]
    assert len(other) == 1
    assert other[0]["date"] is None and other[0]["session_default_channel_group"] == "(other)"
    assert table.num_rows == 12


def test_missing_property_fails_before_any_request(server):
    conn = Ga4Connector(GA4Settings(property_ids=(), endpoint=server.url))
    with pytest.raises(ConfigError, match="MKPI_GA4_PROPERTY_IDS"):
        list(conn.fetch(TRAFFIC, WINDOW))
    assert server.request_count == 0


def test_non_numeric_property_is_refused_before_any_request(server):
    conn = Ga4Connector(GA4Settings(property_ids=("UA-1234-5",), endpoint=server.url))
    with pytest.raises(ConfigError, match="not numeric"):
        list(conn.fetch(TRAFFIC, WINDOW))
    assert server.request_count == 0


def test_missing_credentials_name_the_variable():
    conn = Ga4Connector(GA4Settings(property_ids=(PROPERTY,), endpoint=None))
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        conn.check()


def test_credentials_file_that_does_not_exist(tmp_path):
    conn = Ga4Connector(GA4Settings(property_ids=(PROPERTY,), credentials_file=str(tmp_path / "missing.json")))
    with pytest.raises(ConfigError, match="is not a file"):
        conn.check()


def test_unknown_property_gives_platform_message_and_id(server):
    conn, sleeps = connector(server.url)
    with pytest.raises(SourceError) as info:
        list(conn.fetch(TRAFFIC, WINDOW, property_ids=["999"]))
    assert "ga4 account 999" in str(info.value) and "404" in str(info.value)
    assert sleeps == [] and server.request_count == 1  # not retried


def test_permission_denied_is_not_retried(world):
    with Ga4Server(world, forbidden_properties=(PROPERTY,)) as srv:
        conn, sleeps = connector(srv.url)
        with pytest.raises(SourceError, match="403"):
            list(conn.fetch(TRAFFIC, WINDOW))
        assert srv.request_count == 1 and sleeps == []


def test_429_with_retry_after_is_waited_out_then_succeeds(server):
    body = {"error": {"code": 429, "message": "Exhausted concurrent requests quota.", "status": "RESOURCE_EXHAUSTED"}}
    server.faults.put(("status", 429, body, {"Retry-After": "2"}))
    conn, sleeps = connector(server.url)
    table = fetch_all(conn)
    assert table.num_rows > 0
    assert len(sleeps) == 1 and sleeps[0] >= 30  # GA4's concurrent-requests quota wait, above Retry-After
    assert conn.stats.retries == 1


def test_server_errors_and_truncated_bodies_are_retried(server):
    body = {"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}}
    server.faults.put(("status", 503, body, {}))
    server.faults.put(("truncate",))
    server.faults.put(("reset",))
    conn, sleeps = connector(server.url)
    assert fetch_all(conn).num_rows > 0
    assert conn.stats.retries == 3 and len(sleeps) == 3


def test_persistent_server_errors_stop_before_the_hourly_quota(server):
    body = {"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}
    for _ in range(20):
        server.faults.put(("status", 500, body, {}))
    conn, _ = connector(server.url)
    with pytest.raises(SourceError, match="server-error quota|gave up"):
        list(conn.fetch(TRAFFIC, WINDOW))
    assert server.request_count <= 6  # at most 5 server errors per property spent


def test_daily_token_quota_fails_fast(world):
    with Ga4Server(world, tokens_per_day=0) as srv:
        conn, sleeps = connector(srv.url)
        with pytest.raises(RetriesExhausted, match="asks to wait"):
            list(conn.fetch(TRAFFIC, WINDOW))
        assert sleeps == []
