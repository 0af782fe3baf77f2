"""kpi.kpi_daily reads a per-channel table whose key is within its grain (web_daily: date, source, account_id,
channel) row by row, without summing each one-row group again (issue #21 target 5): the rows are exactly those the
grouped SQL gives, bit for bit, including NULL and repeated quality flags, NULL parts and values with more than nine
decimals (the exact DECIMAL sum's rounding). Values below are worked out by hand from the rows inserted."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from kpi_models import catalogue as cat
from kpi_models.catalogue import Catalogue, kpi_daily_sql, parse_catalogue

D1, D2 = date(2026, 3, 1), date(2026, 3, 2)


def _catalogue(table: str) -> Catalogue:
    """A count and a ratio over `table` for GA4."""
    def kpi(name: str, unit: str, aggregation: str, source: dict) -> dict:
        return {"kpi": name, "family": "web", "unit": unit, "aggregation": aggregation, "direction": "higher",
                "formula": name, "sources": [{"source": "ga4", "relation": "w", **source}]}

    return parse_catalogue({"relations": {"w": {"table": table, "grain": "day"}}, "kpis": [
        kpi("sessions", "count", "sum", {"numerator": "sessions"}),
        kpi("avg_session_duration", "seconds", "ratio", {"numerator": "duration", "denominator": "sessions"}),
    ]}, "test.yaml")


@pytest.fixture()
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("CREATE SCHEMA kpi")
    c.execute("CREATE TABLE kpi.web_daily (date DATE, source VARCHAR, account_id VARCHAR, channel VARCHAR, "
              "sessions BIGINT, duration DOUBLE, is_final BOOLEAN, quality VARCHAR[])")
    c.executemany("INSERT INTO kpi.web_daily VALUES (?, 'ga4', ?, ?, ?, ?, ?, ?)", [
        # flags unsorted and repeated; a duration with twelve decimals (exact sums keep nine)
        (D1, "p1", "organic", 10, 12.123456789123, True, ["thresholded", "sampled", "thresholded"]),
        # no quality list at all, finality unknown, no duration
        (D1, "p1", "direct", 4, None, None, None),
        (D2, "p2", "organic", 0, 0.0, False, [None, "other_row"]),
    ])
    return c


def _rows(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    sql = kpi_daily_sql(_catalogue("kpi.web_daily"))
    return conn.execute(f"SELECT date, channel, account_id, kpi, numerator, denominator, value, is_final, quality "
                        f"FROM ({sql}) ORDER BY ALL", {"start": D1, "end": D2}).fetchall()


def test_a_table_keyed_at_the_grain_is_read_row_by_row_with_the_grouped_rows(conn, monkeypatch):
    sql = kpi_daily_sql(_catalogue("kpi.web_daily"))
    assert "GROUP BY" not in sql  # read row by row
    assert "GROUP BY" in kpi_daily_sql(_catalogue("kpi.paid_search_daily"))  # keyed by campaign too: summed
    rows = _rows(conn)
    # by hand: 12.123456789123 s kept to nine decimals; NULL flags gone, the rest distinct and sorted
    assert rows == [
        (D1, "direct", "p1", "avg_session_duration", None, 4.0, None, None, ["provisional"]),
        (D1, "direct", "p1", "sessions", 4.0, None, 4.0, None, ["provisional"]),
        (D1, "organic", "p1", "avg_session_duration", 12.123456789, 10.0, 1.2123456789, True,
         ["sampled", "thresholded"]),
        (D1, "organic", "p1", "sessions", 10.0, None, 10.0, True, ["sampled", "thresholded"]),
        (D2, "organic", "p2", "avg_session_duration", 0.0, 0.0, None, False, ["other_row", "provisional"]),
        (D2, "organic", "p2", "sessions", 0.0, None, 0.0, False, ["other_row", "provisional"]),
    ]
    # the grouped SQL (every relation summed per group, as before) gives the same rows, bit for bit
    monkeypatch.setattr(cat, "_one_row_per_group", lambda relation, fx: False)
    assert "GROUP BY" in kpi_daily_sql(_catalogue("kpi.web_daily"))
    assert _rows(conn) == rows
