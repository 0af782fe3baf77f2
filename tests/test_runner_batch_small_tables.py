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


class Hashing:
    """A connection that records which tables are content-hashed (the whole-table models' input fingerprints)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.hashed: list[str] = []

    def execute(self, query: str, *args: object) -> duckdb.DuckDBPyConnection:
        if query.startswith("SELECT count(*), bit_xor(hash(t))"):
            self.hashed.append(query.split(" FROM ")[1].split(" AS t")[0].replace('"', ""))
        return self.conn.execute(query, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_raw_tables_hashed_once_per_batch_and_a_changed_contact_still_rebuilds(tmp_path) -> None:
    with connect(tmp_path / "hashes.duckdb") as c:
        ensure_model_table(c, "crm_daily", CTX)
        insert(c, "hubspot.account_details", [{"portal_id": "147258369", "time_zone": "Europe/Paris"}])
        # one contact, a lead on day 1 (10:00 UTC = 11:00 in Paris, the same day)
        insert(c, "hubspot.contacts", [
            {"id": "1", "archived": False, "createdate": datetime(2026, 3, 2, 9, tzinfo=UTC),
             "hs_analytics_source": "DIRECT_TRAFFIC",
             "hs_lifecyclestage_lead_date": datetime(2026, 3, 2, 10, tzinfo=UTC)}])
        window = Window(D1, D1)
        rebuild_all(c, window, CTX)
        hashing = Hashing(c)
        rebuild_all(hashing, window, CTX)  # type: ignore[arg-type]
        raw = [t for t in hashing.hashed if not t.startswith(("kpi.", "_mkpi."))]
        assert "hubspot.contacts" in raw and len(raw) == len(set(raw))  # crm_daily and crm_monthly share it
        leads = "SELECT sum(numerator) FROM kpi.kpi_daily WHERE kpi = 'leads' AND source = 'hubspot'"
        assert c.execute(leads).fetchone() == (1.0,)
        # a second lead the same day: the next batch hashes the changed table afresh and rebuilds: 2 leads
        insert(c, "hubspot.contacts", [
            {"id": "2", "archived": False, "createdate": datetime(2026, 3, 2, 9, tzinfo=UTC),
             "hs_analytics_source": "DIRECT_TRAFFIC",
             "hs_lifecyclestage_lead_date": datetime(2026, 3, 2, 12, tzinfo=UTC)}])
        rebuild_all(c, window, CTX)
        assert c.execute(leads).fetchone() == (2.0,)
