"""A KPI table rebuilt in its own transaction (a Dagster KPI step: `rebuild` outside `batched`) follows the batches'
vacuum rule (issue #21 target 5): its checkpoint vacuums once in VACUUM_EVERY rebuilds OF THAT TABLE, the others
checkpoint without DuckDB's vacuum tasks.

- Counted per table in the warehouse (`_mkpi.kpi_table_rebuilds`), so a later process (the next day's step) goes on
  counting, and another table's steps in between do not move a table's turn.
- The connection's own setting is restored after every rebuild; a rebuild whose transaction failed counts nothing.
- A step transaction that rebuilds no table (FX rates, views) is left as it was: no count, no setting.
- A KPI transaction (a batch, a table's rebuild) checkpoints at its COMMIT, so its rows are not copied into the WAL
  first; the connection's checkpoint threshold is restored after it.
"""

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from connectors.batches import Window
from connectors.warehouse import connect, transaction
from kpi_models.context import KpiContext
from kpi_models.runner import (
    TABLE_REBUILDS_TABLE,
    VACUUM_EVERY,
    batched,
    ensure_model_table,
    rebuild,
    step_transaction,
)
from tests.recording import Recording
from tests.rows import insert

D1 = date(2026, 3, 2)
CTX = KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 17), channels={"ga4": {"Direct": "direct"}})
LOADED = datetime(2026, 3, 16, 4, tzinfo=UTC)


def setting(conn: duckdb.DuckDBPyConnection) -> int:
    row = conn.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()
    return int(row[0]) if row else -1


def without_vacuum(conn: duckdb.DuckDBPyConnection, model: str) -> bool:
    """Rebuild one day of `model` in its own transaction; whether its checkpoint ran without vacuum tasks."""
    recording = Recording(conn)
    rebuild(recording, model, Window(D1, D1), CTX)  # type: ignore[arg-type]
    assert recording.sent.count("CHECKPOINT") == 1  # every rebuild still checkpoints: the WAL is emptied
    return "SET max_vacuum_tasks = 0" in recording.sent


def test_each_table_vacuums_once_in_seven_of_its_own_rebuilds(tmp_path):
    assert VACUUM_EVERY == 7
    with connect(tmp_path / "s.duckdb") as conn:
        ensure_model_table(conn, "web_daily", CTX)
        insert(conn, "ga4.traffic_by_channel", [
            {"property_id": "1", "date": D1, "session_default_channel_group": "Direct", "sessions": 10,
             "engaged_sessions": 5, "converting_sessions": 1, "session_duration_seconds": 600.0,
             "user_engagement_duration": 30.0, "is_other": False, "_loaded_at": LOADED}])
        conn.execute("SET max_vacuum_tasks = 42")
        web, seo = [], []
        for n in range(1, 11):
            if without_vacuum(conn, "web_daily"):
                web.append(n)
            assert setting(conn) == 42
            if n % 3 == 0:  # another table's steps in between: counted on their own
                if without_vacuum(conn, "seo_daily"):
                    seo.append(n // 3)
        assert web == [1, 2, 3, 4, 5, 6, 8, 9, 10]  # web_daily's 7th rebuild vacuums
        assert seo == [1, 2, 3]  # seo_daily's first three do not
        # the rows are rebuilt all the same: 10 sessions on D1, by hand
        assert conn.execute("SELECT sum(sessions) FROM kpi.web_daily").fetchone() == (10,)
        # a failing rebuild (GA4's sessions no longer numbers) rolls its count back with it
        conn.execute("ALTER TABLE ga4.traffic_by_channel ALTER sessions TYPE VARCHAR")
        conn.execute("UPDATE ga4.traffic_by_channel SET sessions = 'n/a'")
        result = rebuild(conn, "web_daily", Window(D1, D1), CTX, sources=["ga4"], isolate_sources=True)
        assert set(result.failed) == {"ga4"}
        assert setting(conn) == 42
        counts = dict(conn.execute(f"SELECT table_name, batches FROM {TABLE_REBUILDS_TABLE}").fetchall())
        assert counts == {"kpi.web_daily": 10, "kpi.seo_daily": 3}
    with connect(tmp_path / "s.duckdb") as conn:  # a later process (the next step) goes on counting
        conn.execute("UPDATE ga4.traffic_by_channel SET sessions = '12'")
        conn.execute("ALTER TABLE ga4.traffic_by_channel ALTER sessions TYPE BIGINT")
        # web_daily's 11th to 14th rebuilds: the 14th vacuums
        assert [without_vacuum(conn, "web_daily") for _ in range(4)] == [True, True, True, False]
        assert conn.execute("SELECT sum(sessions) FROM kpi.web_daily").fetchone() == (12,)


def test_a_step_transaction_that_rebuilds_no_table_counts_nothing(tmp_path):
    with connect(tmp_path / "s.duckdb") as conn:
        recording = Recording(conn)
        with step_transaction(recording):  # type: ignore[arg-type]
            recording.execute("CREATE TABLE t (x INTEGER)")
        assert not any("max_vacuum_tasks" in s or "_mkpi" in s for s in recording.sent)
        assert conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = '_mkpi'").fetchone() == (0,)


class WalAtCheckpoint(Recording):
    """A recording connection that also notes the WAL file's size when the CHECKPOINT after a COMMIT is sent."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, wal: Path) -> None:
        super().__init__(conn)
        self.wal, self.sizes = wal, []

    def execute(self, query: str, *args: object) -> duckdb.DuckDBPyConnection:
        if query == "CHECKPOINT":
            self.sizes.append(self.wal.stat().st_size if self.wal.exists() else 0)
        return super().execute(query, *args)


def threshold(conn: duckdb.DuckDBPyConnection) -> str:
    return str(conn.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0])


def test_a_kpi_transaction_checkpoints_at_its_commit_without_a_wal_copy_of_its_rows(tmp_path):
    """50,000 rows (less than a row group, so not written to the file while inserted) in a KPI transaction: its COMMIT
    checkpoints, so the WAL holds nothing when the CHECKPOINT after it is sent; a plain transaction (the loader's)
    wrote them to the WAL first. The connection's threshold is restored after each KPI transaction."""
    path = tmp_path / "w.duckdb"
    wal = tmp_path / "w.duckdb.wal"
    with connect(path) as conn:
        conn.execute("CREATE TABLE kpi_t AS SELECT range AS k FROM range(10)")
        conn.execute("SET checkpoint_threshold = '7 MiB'")
        plain = WalAtCheckpoint(conn, wal)
        with transaction(plain):  # type: ignore[arg-type]
            plain.execute("INSERT INTO kpi_t SELECT range FROM range(50000)")
        assert plain.sizes[0] > 50_000 * 8  # the rows went through the WAL
        for scope in (batched, lambda c: step_transaction(c, rebuilds="main.kpi_t")):
            kpi = WalAtCheckpoint(conn, wal)
            with scope(kpi):  # type: ignore[operator]
                assert threshold(conn) == "0 bytes"
                kpi.execute("INSERT INTO kpi_t SELECT range FROM range(50000)")
            assert kpi.sizes == [0]  # written into the file by the COMMIT's checkpoint
            assert threshold(conn) == "7.0 MiB"
        assert conn.execute("SELECT count(*), sum(k) FROM kpi_t").fetchone() == (
            10 + 3 * 50_000, sum(range(10)) + 3 * sum(range(50_000)))
    with connect(path) as conn:  # and it is all there after a reopen
        assert conn.execute("SELECT count(*) FROM kpi_t").fetchone() == (150_010,)
