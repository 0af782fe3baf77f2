"""A one-day recompute inside `batched` (issue #21 target 5) asks the catalog, not DuckDB, what it already knows.

- No `duckdb_databases()` query between its BEGIN and COMMIT: `batched` refused a DuckLake when it started, so the
  kpi_daily parts (one per source) no longer ask again whether the file is a lake.
- No CREATE SCHEMA / CREATE TABLE for kpi.channel_map or _mkpi.kpi_builds once they exist (they were sent again by
  every model's preparation and every view refresh).
- The recompute still reads the re-read day: GA4 day 2 of property 1 set to 40 sessions gives 40 + 13 = 53 (by hand,
  the rows of tests/test_kpi_rebuild_all_batched.py: property 2 has 12 + 1 = 13 that day).
"""

from datetime import timedelta

import pytest

from connectors.batches import Window
from connectors.warehouse import connect
from kpi_models.layer import rebuild_all
from tests.recording import Recording
from tests.test_kpi_rebuild_all_batched import CTX, D1, WINDOW, load_rows, sessions


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "catalog.duckdb") as c:
        load_rows(c)
        yield c


def test_a_one_day_recompute_in_a_batch_sends_no_lake_query_and_no_repeated_create(conn):
    rebuild_all(conn, WINDOW, CTX)  # every table and the bookkeeping tables exist from here on
    day = D1 + timedelta(days=1)
    conn.execute("UPDATE ga4.traffic_by_channel SET sessions = 40 WHERE date = ? AND property_id = '1'", [day])
    recording = Recording(conn)
    rebuild_all(recording, Window(day, day), CTX)  # type: ignore[arg-type]
    begin = recording.sent.index("BEGIN TRANSACTION")
    inside = recording.sent[begin:recording.sent.index("COMMIT")]
    assert not [s for s in inside if "duckdb_databases()" in s]
    assert not [s for s in inside if s.startswith("CREATE SCHEMA IF NOT EXISTS _mkpi")
                or s.startswith("CREATE TABLE IF NOT EXISTS kpi.channel_map")
                or s.startswith("CREATE TABLE IF NOT EXISTS _mkpi.kpi_builds")]
    assert sessions(conn, "ga4") == {D1: 22, day: 53, D1 + timedelta(days=2): 26}


def test_a_fresh_file_still_gets_the_mapping_and_bookkeeping_tables(conn):
    rebuild_all(conn, WINDOW, CTX)
    tables = {r[0] for r in conn.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()}
    assert {"kpi.channel_map", "_mkpi.kpi_builds"} <= tables
    # the run's mapping was written: GA4's Direct is direct, so day 1's sessions are on the `direct` channel
    assert conn.execute("SELECT sum(numerator) FROM kpi.kpi_daily WHERE kpi = 'sessions' AND source = 'ga4' "
                        "AND channel = 'direct' AND date = ?", [D1]).fetchone() == (22,)
