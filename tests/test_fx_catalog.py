"""kpi_models/fx.py asks the catalog whether its tables exist instead of sending statements (issue #21 target 5: a
one-day recompute ran `CREATE SCHEMA` and `CREATE TABLE IF NOT EXISTS kpi.fx_rate` twice and counted
information_schema.tables once, ~2-3 ms). What it guarantees is unchanged:

- kpi.fx_rate is created (empty, with its columns) when missing, and an existing one keeps its rows;
- a kpi.fx_refresh_pending that does not exist means no pending day; marked days are listed, and a rebuilt window
  clears only its own days.
"""

from datetime import date

from connectors.warehouse import connect
from kpi_models.fx import (
    FX_TABLE,
    clear_refresh_pending,
    ensure_fx_table,
    mark_refresh_pending,
    pending_refresh_days,
)
from tests.recording import Recording


def test_fx_table_created_once_then_only_looked_up(tmp_path):
    with connect(tmp_path / "fx.duckdb") as conn:
        ensure_fx_table(conn)
        assert [r[0] for r in conn.execute(f"DESCRIBE {FX_TABLE}").fetchall()] == [
            "date", "currency", "rate", "reporting_currency", "rate_source", "is_final"]
        conn.execute(f"INSERT INTO {FX_TABLE} VALUES ('2026-03-02', 'USD', 0.92, 'EUR', 'ecb', true)")
        recording = Recording(conn)
        ensure_fx_table(recording)  # type: ignore[arg-type]
        assert recording.sent == []  # a catalog lookup: no statement for a table that exists
        assert conn.execute(f"SELECT currency, rate FROM {FX_TABLE}").fetchall() == [("USD", 0.92)]


def test_pending_days_without_the_table_then_marked_and_cleared_by_window(tmp_path):
    with connect(tmp_path / "fx.duckdb") as conn:
        recording = Recording(conn)
        assert pending_refresh_days(recording) == []  # type: ignore[arg-type]
        clear_refresh_pending(recording, date(2026, 3, 1), date(2026, 3, 31))  # type: ignore[arg-type]
        assert recording.sent == []  # nothing to clear, nothing asked of information_schema
        ensure_fx_table(conn)  # as `mkpi fx refresh` does (refresh_fx_rates) before marking days
        mark_refresh_pending(conn, [date(2026, 3, 2), date(2026, 3, 5), date(2026, 4, 1)])
        assert pending_refresh_days(conn) == [date(2026, 3, 2), date(2026, 3, 5), date(2026, 4, 1)]
        clear_refresh_pending(conn, date(2026, 3, 1), date(2026, 3, 31))
        assert pending_refresh_days(conn) == [date(2026, 4, 1)]
