"""bench/bench_kpi.py `--floor`'s one-day part (issue #21 target 5): what only rewriting one day's KPI rows costs
(`day_write_floor`: the day's rows of each date-partitioned KPI table deleted and inserted again, one COMMIT), measured
on the run's own file after the run, leaves every KPI value as it was, no table of its own and the connection's
checkpoint settings back. No timing is checked here (that is `make bench`): which tables, how many rows."""

from datetime import date

from bench.bench_kpi import day_write_floor
from connectors.warehouse import connect

SETTINGS = ("SELECT current_setting('checkpoint_threshold'), current_setting('disabled_compression_methods'), "
            "current_setting('max_vacuum_tasks')")


def test_the_day_floor_rewrites_that_days_rows_of_each_partitioned_table_and_changes_no_value(tmp_path):
    with connect(tmp_path / "day_floor.duckdb") as conn:
        conn.execute("CREATE SCHEMA kpi")
        conn.execute("CREATE TABLE kpi.web_daily (date DATE, source VARCHAR, sessions BIGINT)")
        conn.execute("INSERT INTO kpi.web_daily VALUES ('2026-03-02', 'ga4', 5), ('2026-03-01', 'ga4', 7), "
                     "('2026-03-02', 'matomo', 1), ('2026-03-03', 'matomo', 2)")
        conn.execute("CREATE TABLE kpi.kpi_daily (date DATE, kpi VARCHAR, numerator DOUBLE, quality VARCHAR[])")
        # i = 0..5 on days 1, 2, 3, 1, 2, 3: two rows on 2026-03-02 (i = 1 and 4)
        conn.execute("INSERT INTO kpi.kpi_daily SELECT DATE '2026-03-01' + CAST(i % 3 AS INTEGER), 'sessions', i, "
                     "['late'] FROM range(6) AS t(i)")
        conn.execute("CREATE TABLE kpi.crm_monthly (month DATE, leads BIGINT)")  # whole-table model: left out
        conn.execute("INSERT INTO kpi.crm_monthly VALUES ('2026-03-01', 4)")
        settings = conn.execute(SETTINGS).fetchone()

        rows, wall, cpu = day_write_floor(conn, date(2026, 3, 2))

        # the two date-partitioned tables present (seo_daily, paid_search_daily ... were never built): their rows of
        # 2026-03-02, 2 each (web_daily's ga4 and matomo rows, kpi_daily's i = 1 and 4)
        assert rows == [("kpi.web_daily", 2), ("kpi.kpi_daily", 2)]
        assert wall >= 0 and cpu >= 0
        assert conn.execute("SELECT * FROM kpi.web_daily ORDER BY date, source").fetchall() == [
            (date(2026, 3, 1), "ga4", 7), (date(2026, 3, 2), "ga4", 5), (date(2026, 3, 2), "matomo", 1),
            (date(2026, 3, 3), "matomo", 2)]
        assert conn.execute("SELECT date, numerator, quality FROM kpi.kpi_daily ORDER BY numerator").fetchall() == [
            (date(2026, 3, 1), 0.0, ["late"]), (date(2026, 3, 2), 1.0, ["late"]), (date(2026, 3, 3), 2.0, ["late"]),
            (date(2026, 3, 1), 3.0, ["late"]), (date(2026, 3, 2), 4.0, ["late"]), (date(2026, 3, 3), 5.0, ["late"])]
        assert conn.execute("SELECT * FROM kpi.crm_monthly").fetchall() == [(date(2026, 3, 1), 4)]
        left = conn.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%floor%'").fetchall()
        assert left == []
        assert conn.execute(SETTINGS).fetchone() == settings


def test_a_day_without_rows_rewrites_nothing_and_changes_nothing(tmp_path):
    with connect(tmp_path / "empty_day.duckdb") as conn:
        conn.execute("CREATE SCHEMA kpi")
        conn.execute("CREATE TABLE kpi.seo_daily (date DATE, search_clicks BIGINT)")
        conn.execute("INSERT INTO kpi.seo_daily VALUES ('2026-03-01', 3)")

        rows, _, _ = day_write_floor(conn, date(2026, 3, 9))

        assert rows == [("kpi.seo_daily", 0)]
        assert conn.execute("SELECT * FROM kpi.seo_daily").fetchall() == [(date(2026, 3, 1), 3)]
