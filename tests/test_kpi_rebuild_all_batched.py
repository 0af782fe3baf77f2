"""rebuild_all commits every KPI table at once (issue #21 target 5), with the rows and the errors of the steps run one
transaction each, on hand-made raw rows.

- One COMMIT and one CHECKPOINT for the whole rebuild (there were one per table: half of a one-day recompute).
- The same rows in every KPI table as the steps committed one by one (built on a second file from the same rows).
- A source whose raw table broke: the batch rolls back, the steps run one transaction each, so the broken source
  keeps its last good rows, the other source is rebuilt and the error names the broken one, as before.
Expected values are worked out by hand in the comments.
"""

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from connectors.batches import Window
from connectors.warehouse import connect
from kpi_models import layer
from kpi_models.context import KpiContext
from kpi_models.layer import _rebuild_steps, rebuild_all
from kpi_models.runner import MODELS, KpiRebuildError, ensure_model_table, rebuild, step_transaction
from tests.rows import insert

D1 = date(2026, 3, 2)
WINDOW = Window(D1, D1 + timedelta(days=2))
CTX = KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 17),
                 channels={"ga4": {"Direct": "direct"}, "matomo": {"direct": "direct"},
                           "hubspot": {"ORGANIC_SEARCH": "organic_search"}})
LOADED = datetime(2026, 3, 16, 4, tzinfo=UTC)


class Counting:
    """A connection that counts the statements sent through it (by their first word)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.sent: list[str] = []

    def execute(self, query: str, *args: object) -> duckdb.DuckDBPyConnection:
        self.sent.append(query.split()[0].upper())
        return self.conn.execute(query, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def load_rows(c: duckdb.DuckDBPyConnection) -> None:
    """Three days of GA4 (two properties) and Matomo, two HubSpot contacts (leads on day 1 and day 4)."""
    for model in ("web_daily", "crm_daily"):  # their raw tables, empty
        ensure_model_table(c, model, CTX)
    insert(c, "ga4.traffic_by_channel", [
        {"property_id": prop, "date": D1 + timedelta(days=i), "session_default_channel_group": "Direct",
         "sessions": sessions + i, "engaged_sessions": 5, "converting_sessions": 1,
         "session_duration_seconds": 60.0 * sessions, "user_engagement_duration": 30.0, "is_other": False,
         "_loaded_at": LOADED} for i in range(3) for prop, sessions in (("1", 10), ("2", 12))])
    insert(c, "matomo.referrer_types", [
        {"site_id": "1", "date": D1 + timedelta(days=i), "referrer_type": "direct", "nb_visits": 90 + i,
         "bounce_count": 30, "nb_visits_converted": 2, "sum_visit_length": 8000, "_loaded_at": LOADED}
        for i in range(3)])
    insert(c, "hubspot.account_details", [{"portal_id": "147258369", "time_zone": "Europe/Paris"}])
    insert(c, "hubspot.contacts", [
        {"id": str(n), "archived": False, "createdate": datetime(2026, 3, day, 9, tzinfo=UTC),
         "hs_analytics_source": "ORGANIC_SEARCH", "hs_lifecyclestage_lead_date": datetime(2026, 3, day, 10, tzinfo=UTC)}
        for n, day in ((1, 2), (2, 5))])


def kpi_tables(c: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every row of every KPI table (and the roll-up views), sorted."""
    names = [m.table for m in MODELS.values()] + ["kpi.kpi_weekly", "kpi.kpi_monthly"]
    return {name: c.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in names}


def sessions(c: duckdb.DuckDBPyConnection, source: str) -> dict[date, float]:
    return dict(c.execute("SELECT date, sum(numerator) FROM kpi.kpi_daily WHERE kpi = 'sessions' AND source = ? "
                          "GROUP BY date", [source]).fetchall())


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "batched.duckdb") as c:
        load_rows(c)
        yield c


def test_every_table_is_committed_once_with_the_rows_of_the_steps_one_by_one(conn, tmp_path):
    counting = Counting(conn)
    rebuild_all(counting, WINDOW, CTX)  # type: ignore[arg-type]
    assert counting.sent.count("COMMIT") == 1 and counting.sent.count("CHECKPOINT") == 1
    # GA4 sessions by hand: day 1 = 10 + 12, day 2 = 11 + 13, day 3 = 12 + 14; Matomo 90, 91, 92
    assert sessions(conn, "ga4") == {D1: 22, D1 + timedelta(days=1): 24, D1 + timedelta(days=2): 26}
    assert sessions(conn, "matomo") == {D1: 90, D1 + timedelta(days=1): 91, D1 + timedelta(days=2): 92}
    # HubSpot leads: one on March 2, one on March 5 in crm_daily (a whole table, in the same commit); kpi_daily holds
    # the window's (March 2-4): March 2's only
    assert conn.execute("SELECT date, leads FROM kpi.crm_daily WHERE channel = 'organic_search' AND leads > 0 "
                        "ORDER BY date").fetchall() == [(D1, 1), (date(2026, 3, 5), 1)]
    assert conn.execute("SELECT date, numerator FROM kpi.kpi_daily WHERE kpi = 'leads' AND channel = "
                        "'organic_search' ORDER BY date").fetchall() == [(D1, 1)]
    with connect(tmp_path / "steps.duckdb") as steps:
        load_rows(steps)
        counting_steps = Counting(steps)
        _rebuild_steps(counting_steps, WINDOW, CTX)  # type: ignore[arg-type]
        assert counting_steps.sent.count("COMMIT") > 5  # the steps alone commit table by table
        assert kpi_tables(conn) == kpi_tables(steps)
    # a one-day recompute in one commit too, and it gives the re-read day's value: GA4 day 2, property 1 11 -> 40
    conn.execute("UPDATE ga4.traffic_by_channel SET sessions = 40 WHERE date = ? AND property_id = '1'",
                 [D1 + timedelta(days=1)])
    counting = Counting(conn)
    rebuild_all(counting, Window(D1 + timedelta(days=1), D1 + timedelta(days=1)), CTX)  # type: ignore[arg-type]
    assert counting.sent.count("COMMIT") == 1
    assert sessions(conn, "ga4") == {D1: 22, D1 + timedelta(days=1): 53, D1 + timedelta(days=2): 26}


def test_a_broken_source_rolls_the_batch_back_and_the_steps_keep_its_rows_and_name_it(conn):
    rebuild_all(conn, WINDOW, CTX)
    # GA4's raw table changes shape (sessions arrives as text a KPI cannot sum), Matomo moves on
    conn.execute("ALTER TABLE ga4.traffic_by_channel ALTER sessions TYPE VARCHAR")
    conn.execute("UPDATE ga4.traffic_by_channel SET sessions = 'n/a'")
    conn.execute("UPDATE matomo.referrer_types SET nb_visits = 95")
    with pytest.raises(KpiRebuildError, match="ga4 part failed") as raised:
        rebuild_all(conn, WINDOW, CTX)
    assert set(raised.value.failed) == {"ga4"}
    # GA4's last good rows kept (web_daily and kpi_daily), Matomo rebuilt from its new rows
    assert dict(conn.execute("SELECT source, sum(sessions) FROM kpi.web_daily GROUP BY source").fetchall()) == {
        "ga4": 22 + 24 + 26, "matomo": 3 * 95}


def test_a_step_transaction_inside_no_batch_is_its_own(conn):
    counting = Counting(conn)
    with step_transaction(counting):  # type: ignore[arg-type]
        counting.execute("CREATE TABLE t (x INTEGER)")
    # (a read of duckdb_databases() after the COMMIT asks whether the file is a DuckLake, which is not checkpointed)
    assert [s for s in counting.sent if s != "SELECT"] == ["BEGIN", "CREATE", "COMMIT", "CHECKPOINT"]
    assert counting.sent.count("SELECT") <= 1


def test_the_rows_a_rebuild_reports_are_the_windows_with_or_without_a_failed_source(conn):
    ensure_model_table(conn, "web_daily", CTX)
    # GA4: two properties x three days (one channel) = 6 rows, Matomo one a day = 3: the rows inserted
    assert rebuild(conn, "web_daily", WINDOW, CTX).rows == 9
    assert rebuild(conn, "web_daily", Window(D1, D1), CTX).rows == 3  # one day: 2 + 1
    conn.execute("ALTER TABLE ga4.traffic_by_channel ALTER sessions TYPE VARCHAR")
    conn.execute("UPDATE ga4.traffic_by_channel SET sessions = 'n/a'")
    result = rebuild(conn, "web_daily", WINDOW, CTX, isolate_sources=True)
    # counted: GA4's 6 kept rows and Matomo's 3 rebuilt ones
    assert set(result.failed) == {"ga4"} and result.rows == 9


def test_a_window_longer_than_the_batch_commits_table_by_table(conn, monkeypatch):
    monkeypatch.setattr(layer, "BATCH_DAYS", 2)  # WINDOW is 3 days: a backfill, committed table by table
    counting = Counting(conn)
    rebuild_all(counting, WINDOW, CTX)  # type: ignore[arg-type]
    assert counting.sent.count("COMMIT") > 5
    assert sessions(conn, "ga4") == {D1: 22, D1 + timedelta(days=1): 24, D1 + timedelta(days=2): 26}
