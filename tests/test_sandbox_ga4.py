"""The GA4 emulator, driven through the official google-analytics-data client over a real socket.

Using the real client is the point: it proves the connector code under test will see exactly what the
library produces from the wire (int64 strings, enum encodings, error classes), not what a mock assumes.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import (
    DateRange,
    Dimension,
    Metric,
    MetricType,
    OrderBy,
    RunReportRequest,
)
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from sandbox.ga4_server import Ga4Server
from sandbox.launcher import start_sandbox
from sandbox.world import SMALL_GA4_PROPERTY_ID, World

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 1, 31)
PID = "123456789"
START, END = "2026-01-02", "2026-01-31"
DAYS = [date(2026, 1, 2) + timedelta(days=i) for i in range(30)]


def _client(url: str) -> BetaAnalyticsDataClient:
    return BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                   client_options=ClientOptions(api_endpoint=url))


def _request(dims, metrics, start=START, end=END, prop=PID, **kwargs) -> RunReportRequest:
    return RunReportRequest(property=f"properties/{prop}", dimensions=[Dimension(name=d) for d in dims],
                            metrics=[Metric(name=m) for m in metrics],
                            date_ranges=[DateRange(start_date=start, end_date=end)], **kwargs)


def _rows(response):
    return [([v.value for v in r.dimension_values], [v.value for v in r.metric_values])
            for r in response.rows]


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture(scope="module")
def server(world):
    with Ga4Server(world, forbidden_properties=("555",)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return _client(server.url)


def test_channel_sums_match_world_facts(world, client):
    metrics = ["sessions", "engagedSessions", "userEngagementDuration", "keyEvents", "ecommercePurchases",
               "purchaseRevenue", "addToCarts", "checkouts", "newUsers"]
    response = client.run_report(_request(["sessionDefaultChannelGroup"], metrics))
    expected: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for day in DAYS:
        for f in world.ga4_facts(PID, day):
            for m in metrics:
                expected[f.dims["sessionDefaultChannelGroup"]][m] += f.metrics[m]
    got = {dims[0]: dict(zip(metrics, values, strict=True)) for dims, values in _rows(response)}
    assert set(got) == set(expected)
    for channel, values in got.items():
        for m in metrics:
            if m == "purchaseRevenue":
                assert float(values[m]) == pytest.approx(expected[channel][m], abs=0.006)
            else:
                assert values[m] == str(int(expected[channel][m])), (channel, m)
    assert response.row_count == len(expected)
    assert response.metadata.currency_code == "EUR" and response.metadata.time_zone == "Europe/Paris"
    assert not response.metadata.data_loss_from_other_row


def test_session_key_event_rate_is_a_ratio_of_sums(world, client):
    response = client.run_report(_request(["deviceCategory"], ["sessions", "sessionKeyEventRate"]))
    converting, sessions = defaultdict(int), defaultdict(int)
    for day in DAYS:
        for f in world.ga4_facts(PID, day):
            converting[f.dims["deviceCategory"]] += f.metrics["convertingSessions"]
            sessions[f.dims["deviceCategory"]] += f.metrics["sessions"]
    for (device,), (_, rate) in _rows(response):
        assert float(rate) == converting[device] / sessions[device]


def test_paging_returns_every_row_exactly_once(client):
    request = _request(["date", "deviceCategory"], ["sessions"])
    full = client.run_report(request)
    assert full.row_count == len(full.rows) == 30 * 3
    pages, offset = [], 0
    while True:
        request.limit, request.offset = 7, offset
        page = client.run_report(request)
        assert page.row_count == full.row_count
        assert len(page.rows) <= 7
        pages.extend(_rows(page))
        offset += 7
        if offset >= page.row_count:
            break
    assert pages == _rows(full)
    assert len({tuple(d) for d, _ in pages}) == len(pages)


def test_default_order_and_order_bys(client):
    rows = _rows(client.run_report(_request(["date", "sessionDefaultChannelGroup"], ["sessions"])))
    assert [d for d, _ in rows] == sorted(d for d, _ in rows)
    by_metric = _rows(client.run_report(_request(
        ["sessionDefaultChannelGroup"], ["sessions"],
        order_bys=[OrderBy(metric=OrderBy.MetricOrderBy(metric_name="sessions"), desc=True)])))
    values = [int(v[0]) for _, v in by_metric]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    by_date_desc = _rows(client.run_report(_request(
        ["date", "deviceCategory"], ["sessions"],
        order_bys=[OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name="date"), desc=True),
                   OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name="deviceCategory"))])))
    keys = [tuple(d) for d, _ in by_date_desc]
    assert keys[0] == ("20260131", "desktop") and keys[-1] == ("20260102", "tablet")
    assert keys == sorted(keys, key=lambda k: (-int(k[0]), k[1]))


def test_wire_values_are_strings_and_metric_types(server, client):
    metrics = ["sessions", "userEngagementDuration", "sessionKeyEventRate", "purchaseRevenue", "totalUsers"]
    response = client.run_report(_request(["date"], metrics, start="2026-01-30", end="2026-01-31"))
    assert [(h.name, h.type_) for h in response.metric_headers] == [
        ("sessions", MetricType.TYPE_INTEGER), ("userEngagementDuration", MetricType.TYPE_SECONDS),
        ("sessionKeyEventRate", MetricType.TYPE_FLOAT), ("purchaseRevenue", MetricType.TYPE_CURRENCY),
        ("totalUsers", MetricType.TYPE_INTEGER)]
    # Also read the raw JSON, as another HTTP client would see it.
    body = {"dimensions": [{"name": "date"}], "metrics": [{"name": m} for m in metrics],
            "dateRanges": [{"startDate": "2026-01-30", "endDate": "today"}], "limit": "250000"}
    req = urllib.request.Request(f"{server.url}/v1beta/properties/{PID}:runReport",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        raw = json.loads(resp.read())
    assert raw["kind"] == "analyticsData#runReport" and raw["rowCount"] == 2
    assert raw["metricHeaders"][3] == {"name": "purchaseRevenue", "type": "TYPE_CURRENCY"}
    for row in raw["rows"]:
        assert all(isinstance(v["value"], str) for v in row["dimensionValues"] + row["metricValues"])
    assert raw["rows"][0]["dimensionValues"][0]["value"] == "20260130"
    assert "propertyQuota" not in raw


def test_property_quota_counts_down(client):
    first = client.run_report(_request(["date"], ["sessions"], return_property_quota=True)).property_quota
    second = client.run_report(_request(["date"], ["sessions"], return_property_quota=True)).property_quota
    assert first.tokens_per_day.consumed >= 1
    assert second.tokens_per_day.remaining == first.tokens_per_day.remaining - second.tokens_per_day.consumed
    assert second.concurrent_requests.remaining == 10
    assert second.tokens_per_project_per_hour.remaining < first.tokens_per_project_per_hour.remaining


def test_total_users_are_not_additive_over_days(client):
    month = _rows(client.run_report(_request([], ["totalUsers", "sessions"])))
    daily = _rows(client.run_report(_request(["date"], ["totalUsers"])))
    assert len(month) == 1 and len(daily) == 30
    assert int(month[0][1][0]) < 0.9 * sum(int(v[0]) for _, v in daily)
    assert int(month[0][1][0]) < int(month[0][1][1])


def test_other_row_with_small_cardinality_limit(world):
    with Ga4Server(world, cardinality_limit=5) as srv:
        response = _client(srv.url).run_report(_request(["date", "sessionSource"], ["sessions"]))
    rows = _rows(response)
    assert response.row_count == len(rows) == 5
    assert response.metadata.data_loss_from_other_row
    other = [r for r in rows if r[0] == ["(other)", "(other)"]]
    assert len(other) == 1
    total = sum(f.metrics["sessions"] for d in DAYS for f in world.ga4_facts(PID, d))
    assert sum(int(v[0]) for _, v in rows) == total
    kept = [int(v[0]) for d, v in rows if d != ["(other)", "(other)"]]
    assert min(kept) > 0 and int(other[0][1][0]) > max(kept)  # thousands of small rows add up


def test_errors_map_to_api_core_exceptions(world, client):
    # Over REST, google-api-core picks the class from the HTTP status alone: 403 is Forbidden, 400 is
    # BadRequest, 429 is TooManyRequests. Their gRPC-named subclasses (PermissionDenied, InvalidArgument,
    # ResourceExhausted) are never raised, so connectors must catch the HTTP-named base classes.
    with pytest.raises(exceptions.NotFound, match="properties/999"):
        client.run_report(_request(["date"], ["sessions"], prop="999"))
    with pytest.raises(exceptions.Forbidden) as forbidden:
        client.run_report(_request(["date"], ["sessions"], prop="555"))
    assert forbidden.value.code == 403 and not isinstance(forbidden.value, exceptions.PermissionDenied)
    with pytest.raises(exceptions.BadRequest, match="Field fooBar is not a valid dimension"):
        client.run_report(_request(["fooBar"], ["sessions"]))
    with pytest.raises(exceptions.BadRequest, match="Field fooBar is not a valid metric"):
        client.run_report(_request(["date"], ["fooBar"]))
    with pytest.raises(exceptions.BadRequest, match="dimensionFilter is not supported"):
        client.run_report(_request(["date"], ["sessions"], dimension_filter={
            "filter": {"field_name": "deviceCategory", "string_filter": {"value": "mobile"}}}))
    with Ga4Server(world, tokens_per_day=2) as srv:
        small = _client(srv.url)
        small.run_report(_request(["date"], ["sessions"]))
        small.run_report(_request(["date"], ["sessions"]))
        exhausted_message = "Exhausted property tokens per day"
        with pytest.raises(exceptions.TooManyRequests, match=exhausted_message) as exhausted:
            small.run_report(_request(["date"], ["sessions"]))
        assert exhausted.value.code == 429
        assert srv.reads == 2


def test_restatement_follows_the_read_counter():
    world = World(seed=7, today=TODAY, restatement_days=3)
    with Ga4Server(world) as srv:
        client = _client(srv.url)
        request = _request(["date"], ["sessions"], start="2026-01-27")
        reads = [_rows(client.run_report(request)) for _ in range(3)]
        assert srv.reads == 3
    old = [r[1] for r in reads[0][:2]]  # Jan 27-28 are outside the 3-day window
    assert all([r[1] for r in read[:2]] == old for read in reads)
    recent = [[int(r[1][0]) for r in read[2:]] for read in reads]
    assert recent[0] != recent[1] != recent[2]
    assert all(a < b < c for a, b, c in zip(*recent, strict=True))


def test_scripted_fault_then_normal_answer(server, client):
    server.add_fault("status", 503, {"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}})
    with pytest.raises(exceptions.ServiceUnavailable):
        client.run_report(_request(["date"], ["sessions"]), retry=None)
    assert client.run_report(_request(["date"], ["sessions"])).row_count == 30
    assert server.requests[-1].path == f"/v1beta/properties/{PID}:runReport"


def test_requests_are_fast_thanks_to_tcp_nodelay(client):
    request = _request(["deviceCategory"], ["sessions"], start="2026-01-31", end="2026-01-31")
    client.run_report(request)
    started = time.perf_counter()
    for _ in range(50):
        client.run_report(request)
    assert time.perf_counter() - started < 2.0  # ~40 ms each without TCP_NODELAY


def test_launcher_env_points_at_a_working_ga4(world):
    with start_sandbox(World(seed=7, today=TODAY, ga4_properties={PID: 1.0, "222": 0.5})) as sandbox:
        assert sandbox.env["MKPI_GA4_PROPERTY_IDS"] == f"{PID},222"
        url = sandbox.env["MKPI_GA4_ENDPOINT"]
        assert url.startswith("http://127.0.0.1:")
        assert _client(url).run_report(_request(["date"], ["sessions"], prop="222")).row_count == 30
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_python_m_sandbox_prints_exports_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--today", "2026-01-31"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert env["MKPI_GA4_PROPERTY_IDS"] == f"{PID},{SMALL_GA4_PROPERTY_ID}"  # the default world's two properties
        assert _client(env["MKPI_GA4_ENDPOINT"]).run_report(_request(["date"], ["sessions"])).row_count == 30
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
