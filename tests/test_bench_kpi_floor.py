"""bench/bench_kpi.py `--floor` (issue #21 target 5): what only writing a full rebuild's rows costs, measured on the
run's own file after the run, leaves that file as it was: the same KPI rows, no table of its own, the connection's
checkpoint settings back. No timing is checked here (that is `make bench`): which tables, how many rows."""

from datetime import date

from bench.bench_kpi import write_floor
from connectors.warehouse import connect


def test_the_floor_rewrites_each_partitioned_kpi_table_and_leaves_the_file_as_it_was(tmp_path):
    with connect(tmp_path / "floor.duckdb") as conn:
        conn.execute("CREATE SCHEMA kpi")
        conn.execute("CREATE TABLE kpi.web_daily (date DATE, source VARCHAR, sessions BIGINT)")
        conn.execute("INSERT INTO kpi.web_daily VALUES ('2026-03-02', 'ga4', 5), ('2026-03-01', 'ga4', 7), "
                     "('2026-03-03', 'matomo', 1)")
        conn.execute("CREATE TABLE kpi.kpi_daily (date DATE, kpi VARCHAR, numerator DOUBLE, quality VARCHAR[])")
        conn.execute("INSERT INTO kpi.kpi_daily SELECT DATE '2026-03-01' + CAST(i % 3 AS INTEGER), 'sessions', i, [] "
                     "FROM range(5) AS t(i)")
        conn.execute("CREATE TABLE kpi.crm_monthly (month DATE, leads BIGINT)")  # whole-table model: left out
        conn.execute("INSERT INTO kpi.crm_monthly VALUES ('2026-03-01', 4)")
        before = conn.execute("SELECT * FROM kpi.web_daily ORDER BY date").fetchall()
        settings = conn.execute("SELECT current_setting('checkpoint_threshold'), "
                                "current_setting('disabled_compression_methods'), "
                                "current_setting('enable_progress_bar')").fetchone()

        floor = write_floor(conn)

        # the two date-partitioned tables present (seo_daily, paid_search_daily ... were never built), 3 and 5 rows
        assert [(name, rows) for name, rows, _, _ in floor] == [("kpi.web_daily", 3), ("kpi.kpi_daily", 5)]
        assert all(wall >= 0 and cpu >= 0 for _, _, wall, cpu in floor)
        assert conn.execute("SELECT * FROM kpi.web_daily ORDER BY date").fetchall() == before == [
            (date(2026, 3, 1), "ga4", 7), (date(2026, 3, 2), "ga4", 5), (date(2026, 3, 3), "matomo", 1)]
        assert conn.execute("SELECT count(*) FROM kpi.kpi_daily").fetchone() == (5,)
        left = conn.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%floor%'").fetchall()
        assert left == []
        assert conn.execute("SELECT current_setting('checkpoint_threshold'), "
                            "current_setting('disabled_compression_methods'), "
                            "current_setting('enable_progress_bar')").fetchone() == settings
