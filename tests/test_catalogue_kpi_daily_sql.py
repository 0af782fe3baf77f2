"""kpi.kpi_daily's generated SQL (issue #21 target 5): each relation is read and grouped once per source, and every
KPI's rows are still exactly those of its own sums. Values below are worked out by hand from the rows inserted."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from kpi_models.catalogue import Catalogue, kpi_daily_sql, parse_catalogue

D1, D2 = date(2026, 3, 1), date(2026, 3, 2)


def _catalogue() -> Catalogue:
    """Three KPIs of one relation for two sources, one of them money (converted at the day's rate)."""
    web = {"table": "kpi.t", "grain": "day", "currency_column": "currency_code", "money_columns": ["revenue"]}

    def kpi(name: str, unit: str, aggregation: str, sources: list[dict]) -> dict:
        return {"kpi": name, "family": "web", "unit": unit, "aggregation": aggregation, "direction": "higher",
                "formula": name, "sources": sources}

    both = ("ga4", "matomo")
    return parse_catalogue({"relations": {"w": web}, "kpis": [
        kpi("sessions", "count", "sum", [{"source": s, "relation": "w", "numerator": "sessions"} for s in both]),
        kpi("engagement_rate", "ratio", "ratio", [{"source": s, "relation": "w", "numerator": "engaged",
                                                   "denominator": "sessions"} for s in both]),
        kpi("revenue", "currency", "sum", [{"source": "ga4", "relation": "w", "numerator": "revenue * fx_rate"}]),
    ]}, "test.yaml")


@pytest.fixture()
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("CREATE SCHEMA kpi")
    c.execute("CREATE TABLE kpi.t (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, sessions BIGINT, "
              "engaged BIGINT, revenue DOUBLE, currency_code VARCHAR, is_final BOOLEAN, quality VARCHAR[])")
    rows = [
        # two rows of one (day, channel): summed; the second is provisional and flagged thresholded
        (D1, "ga4", "organic", "p1", 10, 4, 20.0, "USD", True, []),
        (D1, "ga4", "organic", "p1", 30, 16, 0.0, "USD", False, ["thresholded"]),
        # engaged > sessions: an out-of-range engagement rate, flagged on that KPI's row only
        (D2, "ga4", "paid", "p1", 5, 6, 10.0, "USD", True, ["out_of_range"]),
        (D1, "matomo", "organic", "s1", 8, 2, None, None, True, []),
        # outside the window: never read
        (date(2026, 3, 5), "ga4", "organic", "p1", 99, 99, 99.0, "USD", True, []),
    ]
    c.executemany("INSERT INTO kpi.t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    c.execute("CREATE TABLE kpi.fx_rate (date DATE, currency VARCHAR, rate DOUBLE, is_final BOOLEAN, "
              "reporting_currency VARCHAR)")
    # D2's rate is an estimate: that day's revenue is provisional and flagged
    c.executemany("INSERT INTO kpi.fx_rate VALUES (?, 'USD', ?, ?, 'EUR')", [(D1, 0.5, True), (D2, 0.8, False)])
    return c


def _rows(conn: duckdb.DuckDBPyConnection, sources: list[str] | None = None) -> set[tuple]:
    sql = kpi_daily_sql(_catalogue(), sources)
    out = conn.execute(f"SELECT date, source, channel, account_id, kpi, numerator, denominator, value, currency, "
                       f"is_final, quality, attribution FROM ({sql})", {"start": D1, "end": D2}).fetchall()
    return {(*r[:10], tuple(r[10]), r[11]) for r in out}


def test_every_kpi_row_from_the_shared_sums_by_hand(conn: duckdb.DuckDBPyConnection) -> None:
    assert _rows(conn) == {
        (D1, "ga4", "organic", "p1", "sessions", 40.0, None, 40.0, None, False, ("thresholded", "provisional"), None),
        (D1, "ga4", "organic", "p1", "engagement_rate", 20.0, 40.0, 0.5, None, False,
         ("thresholded", "provisional"), None),
        # 20 USD at 0.5 + 0 USD
        (D1, "ga4", "organic", "p1", "revenue", 10.0, None, 10.0, "EUR", False, ("thresholded", "provisional"), None),
        # the row's own out_of_range flag dropped from sessions, set again on the rate that is out of range
        (D2, "ga4", "paid", "p1", "sessions", 5.0, None, 5.0, None, True, (), None),
        (D2, "ga4", "paid", "p1", "engagement_rate", 6.0, 5.0, 1.2, None, True, ("out_of_range",), None),
        # 10 USD at the estimated 0.8
        (D2, "ga4", "paid", "p1", "revenue", 8.0, None, 8.0, "EUR", False,
         ("fx_rate_estimated", "provisional"), None),
        (D1, "matomo", "organic", "s1", "sessions", 8.0, None, 8.0, None, True, (), None),
        (D1, "matomo", "organic", "s1", "engagement_rate", 2.0, 8.0, 0.25, None, True, (), None),
    }


def test_one_source_alone_gives_its_rows_only(conn: duckdb.DuckDBPyConnection) -> None:
    assert _rows(conn, ["matomo"]) == {
        (D1, "matomo", "organic", "s1", "sessions", 8.0, None, 8.0, None, True, (), None),
        (D1, "matomo", "organic", "s1", "engagement_rate", 2.0, 8.0, 0.25, None, True, (), None),
    }


def test_each_relation_is_scanned_once_per_source_and_fx_join() -> None:
    sql = kpi_daily_sql(_catalogue())
    # ga4 without FX (sessions, engagement_rate), ga4 with FX (revenue), matomo: three scans for five parts
    assert sql.count("FROM kpi.t AS r") == 3
    # sessions is the sessions KPI's numerator and the rate's denominator: summed once per scan
    assert sql.count("sum(CAST(sessions AS DECIMAL(38, 9)))") == 2
