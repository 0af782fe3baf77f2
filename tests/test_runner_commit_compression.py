"""A KPI transaction's checkpoint (kpi_models.runner: a batch, or a table's rebuild in its own step) does not try
FSST compression (NOT_AT_COMMIT): its analysis of every text segment was a quarter of a one-day recompute's COMMIT at
10M raw rows (issue #21 target 5). Storage only:

- the text written inside a KPI transaction is stored without FSST, and reads back value for value;
- outside one (the loader, a plain CHECKPOINT) DuckDB still chooses FSST for the same text: the setting is the
  transaction's, restored afterwards to what the connection had (other methods it disabled stay disabled), after a
  failed batch too.
"""

import duckdb
import pytest

from connectors.warehouse import connect
from kpi_models.runner import NOT_AT_COMMIT, batched, step_transaction

# Long, varied text that DuckDB stores with FSST when it may (5,000 distinct URLs).
URLS = "SELECT range AS k, 'https://www.example.com/products/category-' || (range % 97) || '/item-' || range AS url " \
       "FROM range(5000)"


def compressions(conn: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = conn.execute(f"SELECT DISTINCT compression FROM pragma_storage_info('{table}') "
                        "WHERE column_name = 'url' AND segment_type = 'VARCHAR'").fetchall()
    return {r[0] for r in rows}


def disabled(conn: duckdb.DuckDBPyConnection) -> str:
    row = conn.execute("SELECT current_setting('disabled_compression_methods')").fetchone()
    return str(row[0]) if row else ""


def test_text_written_in_a_kpi_transaction_skips_fsst_and_reads_back_the_same(tmp_path):
    assert NOT_AT_COMMIT == "fsst"
    with connect(tmp_path / "c.duckdb") as conn:
        conn.execute("SET disabled_compression_methods = 'chimp'")
        conn.execute(f"CREATE TABLE plain AS {URLS}")
        conn.execute("CHECKPOINT")
        assert "FSST" in compressions(conn, "plain")  # what DuckDB picks for this text when it may
        with batched(conn):
            conn.execute(f"CREATE TABLE batch AS {URLS}")
        assert "FSST" not in compressions(conn, "batch")
        assert disabled(conn).lower() == "chimp"  # the connection's own setting, restored
        conn.execute("CREATE TABLE step (k BIGINT, url VARCHAR)")
        with step_transaction(conn, rebuilds="step"):  # a table's rebuild in its own transaction (a Dagster step)
            conn.execute(f"INSERT INTO step {URLS}")
        assert "FSST" not in compressions(conn, "step")
        assert disabled(conn).lower() == "chimp"
        for table in ("batch", "step"):  # the same values, row for row
            assert conn.execute(f"SELECT count(*) FROM (SELECT * FROM plain EXCEPT ALL SELECT * FROM {table})"
                                ).fetchone() == (0,)
            assert conn.execute(f"SELECT count(*), sum(k), max(url) FROM {table}").fetchone() == (
                5000, sum(range(5000)), max(f"https://www.example.com/products/category-{k % 97}/item-{k}"
                                            for k in range(5000)))
        with pytest.raises(duckdb.CatalogException), batched(conn):
            conn.execute("SELECT * FROM kpi.no_such_table")
        assert disabled(conn).lower() == "chimp"
