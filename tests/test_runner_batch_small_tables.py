"""Inside one batched rebuild (kpi_models.runner.batched), the run's channel map and restatement windows are written
or compared once, not once per model (issue #21: ten comparisons a one-day recompute), and a mapping changed between
two runs still reaches the KPI rows. Expected values are worked out by hand in the comments."""

from datetime import UTC, date, datetime, timedelta

import duckdb

from connectors.batches import Window
from connectors.warehouse import connect
from kpi_models.context import KpiContext
from kpi_models.layer import rebuild_all
from kpi_models.runner import ensure_model_table
from tests.rows import insert

D1 = date(2026, 3, 2)
CTX = KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 17), channels={"ga4": {"Direct": "direct"}})
LOADED = datetime(2026, 3, 16, 4, tzinfo=UTC)


class ArrowCounting:
    """A connection that counts the Arrow tables handed to DuckDB (each small-table comparison reads one)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.from_arrow_calls = 0

    def from_arrow(self, data: object) -> duckdb.DuckDBPyRelation:
        self.from_arrow_calls += 1
        return self.conn.from_arrow(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_small_tables_once_per_batch_and_a_changed_mapping_still_applies(tmp_path) -> None:
    with connect(tmp_path / "small.duckdb") as c:
        ensure_model_table(c, "web_daily", CTX)
        # one GA4 property, one day, 10 Direct sessions
        insert(c, "ga4.traffic_by_channel", [
            {"property_id": "1", "date": D1, "session_default_channel_group": "Direct", "sessions": 10,
             "engaged_sessions": 5, "converting_sessions": 1, "session_duration_seconds": 600.0,
             "user_engagement_duration": 30.0, "is_other": False, "_loaded_at": LOADED}])
        window = Window(D1, D1 + timedelta(days=1))
        rebuild_all(c, window, CTX)
        counting = ArrowCounting(c)
        rebuild_all(counting, window, CTX)  # type: ignore[arg-type]
        # one comparison each for kpi.kpi_definition, kpi.channel_map, kpi.restatement_window (was one per model)
        assert counting.from_arrow_calls <= 3
        sessions = "SELECT channel, numerator FROM kpi.kpi_daily WHERE kpi = 'sessions' AND source = 'ga4'"
        assert c.execute(sessions).fetchall() == [("direct", 10.0)]
        # the next run maps Direct to referral: its batch writes the new mapping, the rows follow
        rebuild_all(c, window, KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 17),
                                          channels={"ga4": {"Direct": "referral"}}))
        assert c.execute(sessions).fetchall() == [("referral", 10.0)]
        assert c.execute("SELECT channel FROM kpi.channel_map WHERE source = 'ga4' AND raw_value = 'Direct'"
                         ).fetchall() == [("referral",)]
