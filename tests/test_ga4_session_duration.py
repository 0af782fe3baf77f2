"""Average session duration: GA4's averageSessionDuration per report row, and the additive seconds behind it.

GA4 computes averageSessionDuration per output row as total session duration / sessions (never a sum of
averages); the connector stores it and sessions x it (`session_duration_seconds`), so a KPI over any grain is
sum(session_duration_seconds) / sum(sessions). Expected values are sums of the World's cells.
"""

from collections import defaultdict
from datetime import date

import pyarrow as pa
import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import DateRange, Dimension, Metric, MetricType, RunReportRequest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from connectors.batches import Window
from connectors.ga4 import TRAFFIC, Ga4Connector
from connectors.settings import GA4Settings
from sandbox.ga4_server import Ga4Server
from sandbox.world import DEFAULT_GA4_PROPERTY_ID, SMALL_GA4_PROPERTY_ID, World

TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 2), date(2026, 3, 8))
PID = DEFAULT_GA4_PROPERTY_ID


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, today=TODAY)


@pytest.fixture(scope="module")
def server(world):
    with Ga4Server(world) as srv:
        yield srv


def test_world_session_duration_is_additive_and_never_below_engagement_time(world):
    facts = [f for p in world.ga4_properties for d in WINDOW.dates() for f in world.ga4_facts(p, d)]
    assert facts
    for f in facts:
        assert isinstance(f.metrics["sessionDuration"], int)
        assert f.metrics["sessionDuration"] >= f.metrics["userEngagementDuration"] >= 0
    sessions = sum(f.metrics["sessions"] for f in facts)
    assert 60 < sum(f.metrics["sessionDuration"] for f in facts) / sessions < 400  # a plausible minute or few


def test_sandbox_serves_average_session_duration_per_row_never_summed(world, server):
    client = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                     client_options=ClientOptions(api_endpoint=server.url))

    def report(dims: list[str]) -> dict[tuple[str, ...], tuple[float, int]]:
        response = client.run_report(RunReportRequest(
            property=f"properties/{PID}", dimensions=[Dimension(name=d) for d in dims],
            metrics=[Metric(name="averageSessionDuration"), Metric(name="sessions")],
            date_ranges=[DateRange(start_date=WINDOW.start.isoformat(), end_date=WINDOW.end.isoformat())]))
        assert [(h.name, h.type_) for h in response.metric_headers] == [
            ("averageSessionDuration", MetricType.TYPE_SECONDS), ("sessions", MetricType.TYPE_INTEGER)]
        return {tuple(v.value for v in r.dimension_values): (float(r.metric_values[0].value),
                                                             int(r.metric_values[1].value)) for r in response.rows}

    duration: dict[str, int] = defaultdict(int)
    sessions: dict[str, int] = defaultdict(int)
    for day in WINDOW.dates():
        for f in world.ga4_facts(PID, day):
            duration[f.dims["sessionDefaultChannelGroup"]] += f.metrics["sessionDuration"]
            sessions[f.dims["sessionDefaultChannelGroup"]] += f.metrics["sessions"]
    by_channel = report(["sessionDefaultChannelGroup"])
    assert set(by_channel) == {(c,) for c in sessions}
    for (channel,), (average, n) in by_channel.items():
        assert n == sessions[channel]
        assert average == pytest.approx(duration[channel] / sessions[channel], rel=1e-12)

    (whole,) = report([]).values()  # the window in one row: the ratio of the sums, not a mean of channel rows
    assert whole[0] == pytest.approx(sum(duration.values()) / sum(sessions.values()), rel=1e-12)
    assert whole[0] != pytest.approx(sum(a for a, _ in by_channel.values()) / len(by_channel), rel=1e-3)


def test_connector_stores_the_average_and_the_seconds_behind_it(world, server):
    settings = GA4Settings(property_ids=(PID, SMALL_GA4_PROPERTY_ID), endpoint=server.url, timeout_seconds=5)
    table = pa.concat_tables([b.data for b in Ga4Connector(settings).fetch(TRAFFIC, WINDOW)])
    assert table.schema.field("average_session_duration").type == pa.float64()
    assert table.schema.field("session_duration_seconds").type == pa.float64()
    rows = table.to_pylist()
    assert {r["property_id"] for r in rows} == {PID, SMALL_GA4_PROPERTY_ID}
    for row in rows:
        facts = [f for f in world.ga4_facts(row["property_id"], row["date"])
                 if f.dims["sessionDefaultChannelGroup"] == row["session_default_channel_group"]]
        duration = sum(f.metrics["sessionDuration"] for f in facts)
        sessions = sum(f.metrics["sessions"] for f in facts)
        assert row["sessions"] == sessions
        assert row["average_session_duration"] == pytest.approx(duration / sessions, rel=1e-12)
        assert row["session_duration_seconds"] == pytest.approx(duration, rel=1e-12)
        # engagement time stays its own metric (the separate KPI avg_engagement_time)
        assert row["user_engagement_duration"] == sum(f.metrics["userEngagementDuration"] for f in facts)
        assert row["session_duration_seconds"] >= row["user_engagement_duration"]
