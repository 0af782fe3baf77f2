"""A KPI batch (kpi_models.runner.batched: a recompute's one transaction) checkpoints every time, but vacuums only once
every VACUUM_EVERY batches (issue #21 target 5: each recompute's checkpoint merged the same tail row groups again).

- The batches are counted in the warehouse (`_mkpi.kpi_batches`), so the count survives the process (a Dagster step's).
- The 7th, 14th, ... batch checkpoints with DuckDB's vacuum tasks as configured; the others with none; the setting the
  connection had is restored after each batch, and after a batch that failed (whose count is rolled back too).
- Without vacuum, a checkpoint leaves row groups with deleted rows as they are; with it, DuckDB merges them: what
  the policy trades (the rows read are the same either way).
"""

import duckdb
import pytest

from connectors.warehouse import connect
from kpi_models.runner import VACUUM_EVERY, batched
from tests.recording import Recording


def setting(conn: duckdb.DuckDBPyConnection) -> int:
    row = conn.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()
    return int(row[0]) if row else -1


def row_groups(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    row = conn.execute(f"SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('{table}')").fetchone()
    return int(row[0]) if row else 0


def test_one_batch_in_seven_vacuums_and_the_connections_setting_is_restored(tmp_path):
    assert VACUUM_EVERY == 7
    with connect(tmp_path / "v.duckdb") as conn:
        conn.execute("SET max_vacuum_tasks = 42")
        without = []
        for n in range(1, 15):
            recording = Recording(conn)
            with batched(recording):  # type: ignore[arg-type]
                recording.execute("CREATE OR REPLACE TABLE t AS SELECT 1 AS x")
            if "SET max_vacuum_tasks = 0" in recording.sent:
                without.append(n)
            assert recording.sent.count("CHECKPOINT") == 1  # every batch checkpoints: the WAL is emptied
            assert setting(conn) == 42
        assert without == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13]  # batches 7 and 14 vacuum
        assert conn.execute("SELECT batches FROM _mkpi.kpi_batches").fetchall() == [(14,)]
        with pytest.raises(duckdb.CatalogException), batched(conn):
            conn.execute("SELECT * FROM kpi.no_such_table")
        assert setting(conn) == 42
        assert conn.execute("SELECT batches FROM _mkpi.kpi_batches").fetchall() == [(14,)]  # rolled back with it
    with connect(tmp_path / "v.duckdb") as conn:  # a later process (a Dagster step) goes on counting
        recording = Recording(conn)
        with batched(recording):  # type: ignore[arg-type]
            pass
        assert "SET max_vacuum_tasks = 0" in recording.sent
        assert conn.execute("SELECT batches FROM _mkpi.kpi_batches").fetchall() == [(15,)]


def test_a_batch_without_vacuum_leaves_deleted_rows_where_they_are_and_the_seventh_merges_them(tmp_path):
    with connect(tmp_path / "v.duckdb") as conn:
        # 3 x 122,880 rows: three full row groups (DuckDB's default row group size)
        conn.execute("CREATE TABLE t AS SELECT range AS k FROM range(3 * 122880)")
        conn.execute("CHECKPOINT")
        assert row_groups(conn, "t") == 3
        # batch 1: 80 % of the first two row groups deleted; checkpointed without vacuum, they stay two
        with batched(conn):
            conn.execute("DELETE FROM t WHERE k < 2 * 122880 AND k % 5 <> 0")
        assert row_groups(conn, "t") == 3
        for _ in range(2, VACUUM_EVERY):  # batches 2 to 6: nothing to do
            with batched(conn):
                pass
        assert row_groups(conn, "t") == 3
        with batched(conn):  # batch 7 vacuums: the two depleted row groups (2 x 24,576 rows left) become one
            pass
        assert row_groups(conn, "t") == 2
        # the rows are the same either way: 2 x 122,880 / 5 = 49,152 kept, plus the third row group's 122,880
        assert conn.execute("SELECT count(*), sum(k) FROM t").fetchone() == (
            49_152 + 122_880, sum(k for k in range(2 * 122880) if k % 5 == 0) + sum(range(2 * 122880, 3 * 122880)))
