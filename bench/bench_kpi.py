"""Target 4: rebuilding every KPI table from a sandbox world scaled to 10M raw rows, and one day after a re-read.

Setup (untimed): a 365-day backfill of all five sources from the sandbox through the project's connectors
and loader, then the report tables (GA4, Search Console, Google Ads, Matomo) are multiplied with renamed
accounts (property, site, customer ids suffixed `~k`) until the raw tables hold `--raw-rows` rows. HubSpot
tables keep the sandbox's own size (CRM objects do not grow with accounts).
Timed: (a) a full rebuild of every KPI table over the year: the per-channel tables, kpi.kpi_daily with its
roll-up views, and kpi.kpi_vs_objective, exactly the calls the Dagster assets make; (b) after a re-read of
one day (that day's raw rows rewritten), the same rebuild for that one-day window.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb

from bench.backfill import SOURCES, backfill, environment, window_ending_yesterday
from bench.common import Row, Sample, table
from connectors.batches import Batch, Window

# Report tables and the account column whose renamed copies scale the world.
SCALED = {
    "ga4.traffic_by_channel": "property_id", "ga4.ecommerce_by_date": "property_id",
    "search_console.site_totals": "site_url", "search_console.pages": "site_url",
    "search_console.queries": "site_url", "search_console.devices": "site_url",
    "search_console.countries": "site_url",
    "google_ads.campaign_daily": "customer_id",
    "matomo.visits_summary": "site_id", "matomo.referrer_types": "site_id", "matomo.goals": "site_id",
}
OBJECTIVES = Path(__file__).resolve().parent.parent / "sandbox" / "objectives.yaml"


def build_base(path: Path, days: int) -> Window:
    """A DuckDB file with a `days`-day sandbox backfill of every source, loaded by the project's loader."""
    from connectors.warehouse import connect, load_batches
    from sandbox.launcher import start_sandbox

    batches: list[Batch] = []
    with start_sandbox() as sandbox, environment(sandbox.env):
        window = window_ending_yesterday(days, sandbox.world.today)
        backfill(window, SOURCES, sink=batches.append)
    with connect(path) as conn:
        by_table: dict[str, list[Batch]] = {}
        for batch in batches:
            by_table.setdefault(batch.stream.table, []).append(batch)
        for group in by_table.values():  # upserted HubSpot tables one load each, like the assets
            load_batches(conn, group)
    return window


def raw_rows(conn: duckdb.DuckDBPyConnection) -> int:
    tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN "
                          "('ga4', 'search_console', 'google_ads', 'matomo', 'hubspot')").fetchall()
    return sum(int(conn.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0]) for s, t in tables)


def scale(conn: duckdb.DuckDBPyConnection, target_rows: int) -> int:
    """Copy the report tables with renamed accounts until the raw tables hold about `target_rows` rows."""
    present = {f"{s}.{t}" for s, t in conn.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
    scaled = {t: c for t, c in SCALED.items() if t in present}
    base = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in scaled}
    other = raw_rows(conn) - sum(base.values())
    copies = max(0, -(-(target_rows - other) // max(1, sum(base.values()))) - 1)
    if copies:
        for table_name, column in scaled.items():
            conn.execute(f"INSERT INTO {table_name} SELECT src.* REPLACE (src.{column} || '~' || r.k AS {column}) "
                         f"FROM {table_name} AS src, range(1, {copies + 1}) AS r(k)")
        conn.execute("CHECKPOINT")
    return raw_rows(conn)


def rebuild_all(conn: duckdb.DuckDBPyConnection, window: Window) -> None:
    """Every KPI table for `window`, in the assets' order, with the calls the assets make."""
    from connectors.settings import load_settings
    from kpi_models.context import KpiContext
    from kpi_models.layer import rebuild_all
    from kpi_models.objectives import build_kpi_vs_objective

    settings = load_settings()
    tz = settings.reporting_timezone
    rebuild_all(conn, window, KpiContext.from_settings(settings))
    build_kpi_vs_objective(conn, OBJECTIVES, tz=tz, min_denominators=settings.min_denominators)


def reread_day(conn: duckdb.DuckDBPyConnection, day: object) -> None:
    """What a re-read of one day does to the raw tables: that day's rows rewritten (values restated)."""
    for table_name in SCALED:
        conn.execute(f"UPDATE {table_name} SET _loaded_at = now() WHERE date = ?", [day])


def measure(raw_target: int, runs: int, days: int) -> tuple[list[Row], int]:
    workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-kpi-"))
    try:
        base = workdir / "base.duckdb"
        window = build_base(base, days)
        from connectors.warehouse import connect

        with connect(base) as conn:
            rows = scale(conn, raw_target)
        full: list[float] = []
        one_day: list[float] = []
        day = window.end - timedelta(days=2)
        for i in range(runs):
            path = workdir / f"run{i}.duckdb"
            shutil.copy(base, path)
            with connect(path) as conn:
                start = time.perf_counter()
                rebuild_all(conn, window)
                full.append(time.perf_counter() - start)
                reread_day(conn, day)
                start = time.perf_counter()
                rebuild_all(conn, Window(day, day))
                one_day.append(time.perf_counter() - start)
            path.unlink()
        full_s, day_s = Sample(tuple(full)), Sample(tuple(one_day))
        return [
            Row("4 KPI", f"rebuild every KPI table, {days} days, {rows:,} raw rows", full_s.show(" s"), "", "",
                "< 10 s", ok=full_s.median < 10),
            Row("4 KPI", f"recompute one day after a re-read, {rows:,} raw rows", day_s.show(" s"), "", "",
                "< 1 s", ok=day_s.median < 1),
        ], rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    result, _ = measure(args.raw_rows, args.runs, args.days)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
