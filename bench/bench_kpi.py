"""Issue #21 target 5: rebuilding every KPI table from a sandbox world scaled to 10M raw rows, and one day after a
real re-read, each beside the same SQL run once by hand.

Setup (untimed): a 365-day backfill of all five sources from the sandbox through the project's connectors
and loader, then the report tables (GA4, Search Console, Google Ads, Matomo) are multiplied with renamed
accounts (property, site, customer ids suffixed `~k`) until the raw tables hold `--raw-rows` rows. HubSpot
tables keep the sandbox's own size (CRM objects do not grow with accounts). `--base FILE` keeps that file between
invocations (built when missing), for measuring again without the backfill.
Timed, on a fresh copy of it each run:
(a) full rebuild: every KPI table over the year, with the rebuild calls the Dagster assets make, through
    kpi_models.layer.rebuild_all (the per-channel tables, kpi.kpi_daily for every source, the roll-up views): for a
    window of up to 31 days it runs them in ONE transaction (one COMMIT and CHECKPOINT), while the Dagster KPI assets
    are steps of their own, one transaction each; so each recompute is also timed that way, on its own row (b');
(b) one-day recomputes, `--recomputes` K (7) of them in a row, each of a different day (the real case: each day's run
    re-reads trailing days after earlier runs recomputed theirs, not one recompute right after a full rebuild): the
    day RE-READ first (untimed: that day's rows of every report table deleted and inserted again with restated values
    and a new _loaded_at, as the loader replaces a re-read window), then the same calls for that one-day window,
    through their COMMIT and CHECKPOINT; the run fails if the recomputed KPIs do not show the restated values. The
    figure is the median and min-max over every recompute of every run, and their mean on its own row (one batch in
    VACUUM_EVERY = 7 vacuums at its checkpoint: the default K includes one per run); the first one after the full
    rebuild (what this benchmark reported before) is shown on its own row. Closing the connection after the K
    recomputes is timed too (it checkpoints whatever a recompute left in the WAL), reported per recompute beside it;
(b') the same recompute as the Dagster KPI steps run it: the day re-read again (untimed), then the same calls one
    transaction (COMMIT and CHECKPOINT) per table, as kpi_models.layer's steps without the batch (each asset of
    pipelines/defs/kpi/assets.py calls `rebuild` for its table in its own step; each table's checkpoint vacuums once
    in VACUUM_EVERY of its own rebuilds, as a batch's does), checked the same way; a step's own cost (its process,
    opening the file) is not in it;
(c) kpi.kpi_vs_objective after the full rebuild and after the last recompute (its own row: objectives are judged over
    whole periods, not one day).
Each of (a) and (b) also in CPU seconds (user + system of this process: DuckDB's threads included), which a loaded
machine inflates less than wall time. `--profile` prints each statement's wall and CPU seconds (the largest first).
(d) after each run, on its file: what only WRITING the full rebuild's rows costs (`write_floor`: the rows computed and
    sorted already, inserted and committed, no query), the full rebuild's lower bound, with kpi_daily's part on a row
    of its own; a goal below it is named on the full rebuild's row (no rewrite of the SQL can reach it). `--floor`
    prints it per table, and before it what only REWRITING each recomputed day's KPI rows costs (`day_write_floor`:
    its DELETEs, INSERTs and COMMIT): no figure changes.
Baselines, in the same run: the SELECT of every model part for the same window (the per-channel tables' and
kpi_daily's), run once by hand into a temporary table: the bare cost of the queries, with none of the rebuild's
transactions, deletes, checks of inputs or commits; for a recompute, right after it, on the same file in the same
state (after the same earlier recomputes).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from bench.backfill import SOURCES, backfill, environment, window_ending_yesterday
from bench.common import Row, Sample, ratio_sample, table
from connectors.batches import Batch, Window
from connectors.settings import Settings
from kpi_models.context import KpiContext

# Report tables and the account column whose renamed copies scale the world.
SCALED = {
    "ga4.traffic_by_channel": "property_id", "ga4.ecommerce_by_date": "property_id",
    "search_console.site_totals": "site_url", "search_console.pages": "site_url",
    "search_console.queries": "site_url", "search_console.devices": "site_url",
    "search_console.countries": "site_url",
    "google_ads.campaign_daily": "customer_id",
    "matomo.visits_summary": "site_id", "matomo.referrer_types": "site_id", "matomo.goals": "site_id",
}
# What a re-read restates on the day (a count grows by one per raw row); the other tables' rows are rewritten as
# they were (a re-read returns them again), with a new _loaded_at.
RESTATED = {
    "ga4.traffic_by_channel": "sessions",
    "google_ads.campaign_daily": "impressions",
    "search_console.site_totals": "impressions",
    "matomo.referrer_types": "nb_visits",
}
# (KPI, source, raw table): the recomputed day must show each restated row's +1.
PROOFS = (("sessions", "ga4", "ga4.traffic_by_channel"), ("ad_impressions", "google_ads", "google_ads.campaign_daily"))
OBJECTIVES = Path(__file__).resolve().parent.parent / "sandbox" / "objectives.yaml"
FULL_GOAL, DAY_GOAL = 4.0, 0.3


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


def base_file(path: Path, raw_target: int, days: int) -> tuple[Window, int]:
    """The scaled base at `path` (built when missing): its window (the days loaded) and raw row count."""
    from connectors.warehouse import connect

    if not path.exists():
        build_base(path, days)
        with connect(path) as conn:
            scale(conn, raw_target)
    with connect(path) as conn:
        first, last = conn.execute("SELECT min(date), max(date) FROM ga4.traffic_by_channel").fetchone()
        return Window(first, last), raw_rows(conn)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (every thread: DuckDB's workers too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StatementTimes:
    """A connection that records each statement's wall and CPU seconds (`--profile`); everything else is the
    connection's own. The same object is handed to every call, so the runner's batch sees one connection."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn
        self.times: list[tuple[float, float, str]] = []

    def execute(self, query: str, *args: object, **kwargs: object) -> StatementTimes:
        wall, cpu = time.perf_counter(), cpu_seconds()
        self._conn.execute(query, *args, **kwargs)
        self.times.append((time.perf_counter() - wall, cpu_seconds() - cpu, " ".join(str(query).split())))
        return self

    def fetchone(self) -> tuple | None:
        return self._conn.fetchone()

    def fetchall(self) -> list[tuple]:
        return self._conn.fetchall()

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def print_profile(label: str, times: list[tuple[float, float, str]], top: int = 15) -> None:
    """The statements of one timed call, the largest wall time first, with the totals."""
    print(f"{label}: {len(times)} statements, {sum(t[0] for t in times):.3f} s wall, "
          f"{sum(t[1] for t in times):.2f} s CPU")
    for wall, cpu, query in sorted(times, key=lambda t: -t[0])[:top]:
        print(f"  {wall:8.3f} s {cpu:7.2f} CPU-s  {query[:110]}")


def rebuild_kpis(conn: duckdb.DuckDBPyConnection, window: Window, ctx: KpiContext) -> None:
    """Every KPI table for `window`, in the assets' order, with the calls the assets make."""
    from kpi_models.layer import rebuild_all

    rebuild_all(conn, window, ctx)


def build_objectives(conn: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """kpi.kpi_vs_objective, as its asset builds it after the KPI tables."""
    from kpi_models.objectives import build_kpi_vs_objective

    build_kpi_vs_objective(conn, OBJECTIVES, tz=settings.reporting_timezone, min_denominators=settings.min_denominators)


def bare_sql(conn: duckdb.DuckDBPyConnection, window: Window, ctx: KpiContext) -> float:
    """Seconds to run, once by hand, the SELECT of every part of every model the rebuild runs for `window` (whole
    models over their whole table), each into a temporary table: the queries' own cost."""
    from kpi_models.runner import MODELS, used_params

    queries = []
    for model in MODELS.values():
        bounds = {"start": window.start, "end": window.end} if model.partition_column else {}
        for query in model.parts().values():
            queries.append((query, used_params(query, {**bounds, **ctx.params()})))
    start = time.perf_counter()
    for query, params in queries:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE __bench_bare AS SELECT * FROM ({query})", params)
    seconds = time.perf_counter() - start
    conn.execute("DROP TABLE IF EXISTS __bench_bare")
    return seconds


def reread_day(conn: duckdb.DuckDBPyConnection, day: date) -> None:
    """What a re-read of one day does to the raw tables, as the loader does it: that day's rows deleted and inserted
    again, restated (RESTATED's counts + 1), with a new _loaded_at, in one transaction."""
    from connectors.warehouse import transaction

    present = {f"{s}.{t}" for s, t in conn.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
    with transaction(conn):
        for table_name in (t for t in SCALED if t in present):
            column = RESTATED.get(table_name)
            restated = f", {column} + 1 AS {column}" if column else ""
            conn.execute(f"CREATE OR REPLACE TEMP TABLE __bench_reread AS SELECT * REPLACE (now() AS _loaded_at"
                         f"{restated}) FROM {table_name} WHERE date = ?", [day])
            conn.execute(f"DELETE FROM {table_name} WHERE date = ?", [day])
            conn.execute(f"INSERT INTO {table_name} SELECT * FROM __bench_reread")
        conn.execute("DROP TABLE IF EXISTS __bench_reread")


def kpi_total(conn: duckdb.DuckDBPyConnection, kpi: str, source: str, day: date) -> float:
    row = conn.execute("SELECT coalesce(sum(numerator), 0) FROM kpi.kpi_daily WHERE kpi = ? AND source = ? "
                       "AND date = ?", [kpi, source, day]).fetchone()
    return float(row[0])


def check_recomputed(conn: duckdb.DuckDBPyConnection, day: date, before: dict[str, float]) -> None:
    """The recompute read the re-read rows: each proof KPI grew by exactly the number of restated raw rows (+1 each),
    counted from the raw table, not from the code under test."""
    for kpi, source, raw_table in PROOFS:
        rows = int(conn.execute(f"SELECT count(*) FROM {raw_table} WHERE date = ?", [day]).fetchone()[0])
        grown = kpi_total(conn, kpi, source, day) - before[kpi]
        if rows == 0 or grown != rows:
            raise RuntimeError(f"one-day recompute did not show the re-read: {kpi} on {day} grew by {grown}, "
                               f"expected {rows} (one per restated {raw_table} row)")


def recompute_days(window: Window, recomputes: int) -> list[date]:
    """The days recomputed one after another: `recomputes` different days ending two days before the window's last
    (the trailing days a daily run re-reads), oldest first, as successive daily runs reach them."""
    last = window.end - timedelta(days=2)
    return [last - timedelta(days=recomputes - 1 - i) for i in range(recomputes)]


def timed_recompute(conn: duckdb.DuckDBPyConnection, timed_conn: object, day: date, ctx: KpiContext,
                    profile: bool) -> dict[str, float]:
    """Re-read `day` (untimed), recompute it (timed, wall and CPU, through its COMMIT and CHECKPOINT), check the
    recompute shows the restated values, then the bare SQL of the same window in the same state."""
    before = {kpi: kpi_total(conn, kpi, source, day) for kpi, source, _ in PROOFS}
    reread_day(conn, day)
    start, cpu = time.perf_counter(), cpu_seconds()
    rebuild_kpis(timed_conn, Window(day, day), ctx)  # type: ignore[arg-type]
    out = {"day": time.perf_counter() - start, "day_cpu": cpu_seconds() - cpu}
    if isinstance(timed_conn, StatementTimes):
        print_profile(f"one-day recompute of {day}", timed_conn.times)
        timed_conn.times.clear()
    check_recomputed(conn, day, before)
    out["day_bare"] = bare_sql(conn, Window(day, day), ctx)
    out.update(recompute_per_table(conn, day, ctx))
    return out


def recompute_per_table(conn: duckdb.DuckDBPyConnection, day: date, ctx: KpiContext) -> dict[str, float]:
    """Re-read `day` again (untimed) and recompute it as the Dagster KPI steps do, one transaction per table (timed,
    wall and CPU), checked to show the restated values."""
    from kpi_models.layer import _rebuild_steps  # the steps rebuild_all batches, each committing on its own

    before = {kpi: kpi_total(conn, kpi, source, day) for kpi, source, _ in PROOFS}
    reread_day(conn, day)
    start, cpu = time.perf_counter(), cpu_seconds()
    _rebuild_steps(conn, Window(day, day), ctx)
    out = {"day_steps": time.perf_counter() - start, "day_steps_cpu": cpu_seconds() - cpu}
    check_recomputed(conn, day, before)
    return out


@contextmanager
def kpi_commit_settings(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The settings a KPI transaction's COMMIT runs with (kpi_models.runner.set_commit_settings; no vacuum: six
    batches in VACUUM_EVERY) and no progress bar, for the floors below; the values before restored after."""
    from kpi_models.runner import restore_settings, set_commit_settings

    bar = conn.execute("SELECT current_setting('enable_progress_bar')").fetchone()
    conn.execute("SET enable_progress_bar = false")  # seconds-long statements: no bar drawn over the printout
    previous = set_commit_settings(conn, vacuum=False)
    try:
        yield
    finally:
        restore_settings(conn, previous)
        conn.execute(f"SET enable_progress_bar = {str(bool(bar and bar[0])).lower()}")


def partitioned_kpi_models(conn: duckdb.DuckDBPyConnection) -> list[Any]:
    """The date-partitioned KPI models whose table the file holds (the small whole-table models left out)."""
    from connectors.warehouse import table_exists
    from kpi_models.runner import MODELS

    return [m for m in MODELS.values() if m.partition_column is not None and table_exists(conn, m.table)]


def write_floor(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, int, float, float]]:
    """What only writing a full rebuild's rows costs, per date-partitioned KPI table (the full rebuild's lower bound,
    measured every run): the table's rows, computed already and held in a temporary table in date order (untimed),
    inserted in that order into an empty table of the same shape and committed with the KPI commit's settings
    (`kpi_commit_settings`), as a rebuild inserts them (timed). No query runs and nothing is sorted (a rebuild sorts
    each source's part by date): it is what writing the rows costs, which no rewrite of the KPI SQL removes. (table,
    rows, wall seconds, CPU seconds) each."""
    out = []
    with kpi_commit_settings(conn):
        for model in partitioned_kpi_models(conn):
            conn.execute(f"CREATE OR REPLACE TEMP TABLE __bench_floor_rows AS SELECT * FROM {model.table} "
                         f"ORDER BY {model.partition_column}")
            conn.execute(f"CREATE TABLE kpi.__bench_floor AS SELECT * FROM {model.table} LIMIT 0")
            conn.execute("CHECKPOINT")
            start, cpu = time.perf_counter(), cpu_seconds()
            conn.execute("BEGIN")
            row = conn.execute("INSERT INTO kpi.__bench_floor SELECT * FROM __bench_floor_rows").fetchone()
            conn.execute("COMMIT")
            out.append((model.table, int(row[0]) if row else 0, time.perf_counter() - start, cpu_seconds() - cpu))
            conn.execute("DROP TABLE kpi.__bench_floor")
            conn.execute("DROP TABLE __bench_floor_rows")
            conn.execute("CHECKPOINT")
    return out


def day_write_floor(conn: duckdb.DuckDBPyConnection, day: date) -> tuple[list[tuple[str, int]], float, float]:
    """What only REWRITING one day's KPI rows costs (`--floor`, after the run, for each recomputed day): each
    date-partitioned KPI table's rows of `day`, held in temporary tables (untimed), deleted and inserted again in date
    order in ONE transaction committed with the KPI commit's settings (`kpi_commit_settings`), as a batched one-day
    recompute deletes, inserts and commits them (timed). No KPI query runs: the part of a recompute (its DELETEs,
    INSERTs and COMMIT with the checkpoint) that no rewrite of the KPI SQL removes. The same rows go back, so every
    KPI value is unchanged. ([(table, rows)], wall seconds, CPU seconds)."""
    models = partitioned_kpi_models(conn)
    for i, model in enumerate(models):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE __bench_day_floor_{i} AS SELECT * FROM {model.table} "
                     f"WHERE {model.partition_column} = ?", [day])
    conn.execute("CHECKPOINT")  # the temporary tables are not in the file; nothing of them is left for the timed one
    rows = []
    try:
        with kpi_commit_settings(conn):
            start, cpu = time.perf_counter(), cpu_seconds()
            conn.execute("BEGIN")
            for i, model in enumerate(models):
                conn.execute(f"DELETE FROM {model.table} WHERE {model.partition_column} = ?", [day])
                row = conn.execute(f"INSERT INTO {model.table} SELECT * FROM __bench_day_floor_{i} "
                                   f"ORDER BY {model.partition_column}").fetchone()
                rows.append((model.table, int(row[0]) if row else 0))
            conn.execute("COMMIT")
            wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        for i in range(len(models)):
            conn.execute(f"DROP TABLE IF EXISTS __bench_day_floor_{i}")
    return rows, wall, cpu


def print_floor(path: Path, days: Sequence[date], floor: Sequence[tuple[str, int, float, float]]) -> None:
    """`day_write_floor` of each of `days` (the recomputed days) of the file at `path` (a run's copy, after its run and
    its `write_floor`), printed, then that run's `floor` per table."""
    from connectors.warehouse import connect

    with connect(path) as conn:
        for day in days:
            rows, wall, cpu = day_write_floor(conn, day)
            print(f"one-day write floor of {day} (only rewriting its KPI rows: DELETE, INSERT, COMMIT): {wall:.3f} s "
                  f"wall, {cpu:.3f} s CPU, " + ", ".join(f"{name} {n:,}" for name, n in rows))
    print(f"write floor (only writing the full rebuild's rows, sorted already, committed): "
          f"{sum(f[2] for f in floor):.3f} s wall, {sum(f[3] for f in floor):.2f} s CPU")
    for name, rows_, wall_, cpu_ in floor:
        print(f"  {wall_:8.3f} s {cpu_:7.2f} CPU-s  {rows_:>11,} rows  {name}")


def floor_of_run(path: Path) -> tuple[dict[str, list[float]], list[tuple[str, int, float, float]]]:
    """`write_floor` of a run's file after its run (the full rebuild's rows as the run left them): the lower bound of
    the full rebuild that the benchmark reports beside it, as figures for `rows_of` and per table."""
    from connectors.warehouse import connect

    with connect(path) as conn:
        floor = write_floor(conn)
    daily = [f for f in floor if f[0] == "kpi.kpi_daily"]
    return {"full_floor": [sum(f[2] for f in floor)], "full_floor_cpu": [sum(f[3] for f in floor)],
            "full_floor_rows": [float(sum(f[1] for f in floor))],
            "full_floor_kpi_daily": [daily[0][2] if daily else 0.0],
            "full_floor_kpi_daily_rows": [float(daily[0][1]) if daily else 0.0]}, floor


def one_run(path: Path, window: Window, days: Sequence[date], profile: bool = False) -> dict[str, list[float]]:
    """One run on a fresh copy: full rebuild, objectives, bare SQL; then for each of `days` in turn a re-read,
    recompute and bare SQL; objectives after the last; closing the connection. Seconds of each (every recompute's),
    and CPU seconds of the rebuilds; `profile`: each rebuild's statements printed."""
    from connectors.settings import load_settings
    from connectors.warehouse import connect

    out: dict[str, list[float]] = {}
    settings = load_settings()  # read before the timed calls, as a run's resources are
    ctx = KpiContext.from_settings(settings)
    with connect(path) as conn:
        timed_conn = StatementTimes(conn) if profile else conn
        start, cpu = time.perf_counter(), cpu_seconds()
        rebuild_kpis(timed_conn, window, ctx)  # type: ignore[arg-type]
        out["full"], out["full_cpu"] = [time.perf_counter() - start], [cpu_seconds() - cpu]
        if isinstance(timed_conn, StatementTimes):
            print_profile("full rebuild", timed_conn.times)
            timed_conn.times.clear()
        start = time.perf_counter()
        build_objectives(conn, settings)
        out["full_objectives"] = [time.perf_counter() - start]
        out["full_bare"] = [bare_sql(conn, window, ctx)]
        for day in days:
            for key, value in timed_recompute(conn, timed_conn, day, ctx, profile).items():
                out.setdefault(key, []).append(value)
        start = time.perf_counter()
        build_objectives(conn, settings)
        out["day_objectives"] = [time.perf_counter() - start]
        closing = time.perf_counter()
    out["day_close"] = [time.perf_counter() - closing]  # the checkpoint a close does of what the WAL still holds
    return out


def rows_of(runs: list[dict[str, list[float]]], days: int, raw: int) -> list[Row]:
    """The result rows: each figure beside its same-run baseline (per-recompute ratios), the first recompute and the
    close on their own, and objectives on their own."""
    def sample(key: str, first: bool = False) -> Sample:
        return Sample(tuple(v for r in runs for v in (r[key][:1] if first else r[key])))

    recomputes = len(runs[0]["day"])
    size = f"{raw:,} raw rows, {days} days"
    out = []
    for key, what, goal, includes in (
        ("full", f"rebuild every KPI table, {days} days", FULL_GOAL,
         "per-channel tables, kpi_daily for every source, roll-up views (layer.rebuild_all), on a fresh copy"),
        ("day", f"recompute one day after a real re-read ({recomputes} in a row)", DAY_GOAL,
         f"the same calls for the re-read day (changed raw rows), through COMMIT and CHECKPOINT, {recomputes} "
         "different days one after another after the full rebuild, each checked to show the restated values; "
         "median and min-max over every recompute of every run"),
    ):
        value, base = sample(key), sample(f"{key}_bare")
        ratios = ratio_sample(value.values, base.values)
        figure = Row("5 KPI", what, value.show(" s"), base.show(" s") + " bare SQL", ratios.show("x"),
                     f"< {goal:g} s", ok=value.median < goal, size=size, includes=includes, sample=value,
                     base=base.median, ratios=ratios, limit=goal)
        out.append(figure)
        cpu = sample(f"{key}_cpu")
        out.append(Row("5 KPI", f"  CPU time of it, user + system ({key})", cpu.show(" s"), size=size,
                       includes="this process's CPU seconds during the call above (DuckDB's threads included)",
                       sample=cpu))
        if key == "full" and all("full_floor" in r for r in runs):
            out.extend(floor_rows(runs, sample, size, figure))
        if key == "day":
            mean = Sample((statistics.fmean(value.values),))
            out.append(Row("5 KPI", "  mean of them", mean.show(" s"), size=size, sample=mean,
                           includes="the mean of the recomputes above: every VACUUM_EVERY-th batch's checkpoint "
                                    "vacuums (kpi_models.runner), the median may not show it, the mean does"))
            first, first_base = sample(key, first=True), sample(f"{key}_bare", first=True)
            out.append(Row("5 KPI", "  the first recompute only, right after the full rebuild", first.show(" s"),
                           first_base.show(" s") + " bare SQL", size=size, sample=first,
                           includes="the first of the recomputes above (what this row measured before)"))
            if all("day_steps" in r for r in runs):
                steps, steps_cpu = sample("day_steps"), sample("day_steps_cpu")
                out.append(Row("5 KPI", "  the same day recomputed as the Dagster KPI steps do, a transaction per "
                               "table", steps.show(" s"), size=size, sample=steps,
                               includes=f"the day re-read again, then the same calls one COMMIT and CHECKPOINT per "
                                        f"table (the assets' path; no step process or file opening), right after "
                                        f"each recompute above; CPU {steps_cpu.show(' s')}"))
            done = recomputes + len(runs[0].get("day_steps", ()))  # the per-table repeats are recomputes too
            close = Sample(tuple(r["day_close"][0] / done for r in runs))
            out.append(Row("5 KPI", "  closing the connection after them, per recompute", close.show(" s"),
                           size=size, sample=close,
                           includes=f"the connection's close (it checkpoints what the WAL holds) divided by the "
                                    f"{done} recomputes before it: a cost a deferred checkpoint would move here"))
        objectives = sample(f"{key}_objectives")
        out.append(Row("5 KPI", f"  kpi_vs_objective after it ({key})", objectives.show(" s"), size=size,
                       includes="kpi_models.objectives.build_kpi_vs_objective (whole periods), not in the figure "
                                "above", sample=objectives))
    return out


def floor_rows(runs: list[dict[str, list[float]]], sample: Callable[[str], Sample], size: str, full: Row
               ) -> list[Row]:
    """The full rebuild's lower bound (`write_floor` of each run's file, `floor_of_run`) as rows of its own, and on
    the full rebuild's row (`full`) a note when its goal is below that bound: no rewrite of the KPI SQL reaches a
    goal that only writing the rows it must store already exceeds."""
    floor, cpu, daily = sample("full_floor"), sample("full_floor_cpu"), sample("full_floor_kpi_daily")
    rows = int(statistics.median(v for r in runs for v in r["full_floor_rows"]))
    daily_rows = int(statistics.median(v for r in runs for v in r["full_floor_kpi_daily_rows"]))
    out = [Row("5 KPI", "  lower bound: only writing the rows it stores, no query", floor.show(" s"), size=size,
               sample=floor,
               includes=f"bench_kpi.write_floor on each run's file after the run: the {rows:,} rows of the "
                        f"date-partitioned KPI tables, computed and sorted by date already, inserted into empty "
                        f"tables and committed as a rebuild commits them; CPU {cpu.show(' s')}"),
           Row("5 KPI", "    of it, kpi_daily's rows (one per date, source, channel, account_id, KPI)",
               daily.show(" s"), size=size, sample=daily,
               includes=f"the part of the bound above that writes kpi.kpi_daily's {daily_rows:,} rows")]
    if full.limit is not None and floor.median >= full.limit:
        full.notes.append(
            f"the goal ({full.goal}) is below what only writing the rows costs ({floor.show(' s')}, of which "
            f"kpi.kpi_daily's {daily_rows:,} rows {daily.show(' s')}): unreachable by any rewrite of the KPI SQL "
            f"while kpi_daily stores one row per date, source, channel, account and KPI")
    return out


def measure(raw_target: int, runs: int, days: int, base: Path | None = None, profile: bool = False,
            recomputes: int = 7, floor: bool = False) -> tuple[list[Row], int]:
    workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-kpi-"))
    try:
        base_path = base or workdir / "base.duckdb"
        window, raw = base_file(base_path, raw_target, days)
        results = []
        for i in range(runs):
            path = workdir / f"run{i}.duckdb"
            shutil.copy(base_path, path)
            days_of_run = recompute_days(window, recomputes)
            result = one_run(path, window, days_of_run, profile)
            floors, per_table = floor_of_run(path)  # after the run, on its file: nothing it measured is changed
            results.append({**result, **floors})
            if floor:
                print_floor(path, days_of_run, per_table)
            path.unlink()
        return rows_of(results, window.days, raw), raw
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--base", type=Path, default=None,
                        help="keep the scaled base in this file (built when missing) instead of a temporary one")
    parser.add_argument("--profile", action="store_true",
                        help="print every rebuild's statements with their wall and CPU seconds (largest first)")
    parser.add_argument("--recomputes", type=int, default=7,
                        help="one-day recomputes in a row per run, each of a different re-read day (default 7: one "
                             "of every kpi_models.runner.VACUUM_EVERY batches vacuums, so each run includes one)")
    parser.add_argument("--floor", action="store_true",
                        help="after each run, print what only rewriting each recomputed day's KPI rows costs (its "
                             "rows deleted and inserted again, one COMMIT), then per table what only writing the "
                             "full rebuild's rows costs (measured every run: each date-partitioned KPI table's rows, "
                             "sorted already, inserted again and committed, no query)")
    args = parser.parse_args(argv)
    result, _ = measure(args.raw_rows, args.runs, args.days, args.base, args.profile, args.recomputes, args.floor)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
