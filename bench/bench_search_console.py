"""Issue #21 target 3: a big Search Console site backfilled in one run, peak RSS and rows per second.

The sandbox's big site (sandbox/gsc_server.py `BigSite`, MKPI_SANDBOX_GSC_BIG_SITE) has `--rows-per-day` query
rows a day; Search Console exposes at most 50,000 rows a day per search type per property, so that many rows are
read as ceil(rows / 50,000) URL-prefix properties (1M a day: 20). The Search Console server runs in a process of
its own (bench/sandbox_process.py) so its Python work does not share the measured process. Each run is a fresh
child process that reads the `queries` stream (date x query, web) of every property for `--days` days ending
yesterday through the connector (official discovery client, 25,000-row pages, `startRow` paging, the next page
asked while this one is parsed) and loads every batch with the loader into a fresh DuckDB file in one
transaction: the single-run backfill. The child's VmHWM is the peak RSS; rows/s is the rows loaded over the
child's time from its first request to the loader's commit (imports and the sandbox's start excluded).
Goals: peak RSS under 1.5 GB and at least 100,000 rows/s.

Properties are read one at a time (`--parallel`, search_console.parallel_accounts): the shared account helper
holds each property's read whole until it is loaded (a failed property leaves nothing behind), two reads per
worker, and a 30-day read of a 50,000-row property is 1.5M rows (~165 MB of Arrow). One at a time loses no
speed, since the connector already overlaps the API's time with its parsing within a read; four (the default for
many small sites) would hold eight such reads.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from bench.common import Row, Sample, peak_rss_of, report_peak_rss, table

GOAL_RSS_MB = 1536.0
GOAL_ROWS_PER_SECOND = 100_000.0
DAILY_ROW_CAP = 50_000  # sandbox/gsc_server.py DAILY_ROW_CAP: Search Console's documented limit


def child(today: date, days: int, parallel: int) -> None:
    """In the child: read the queries stream (web) of every configured site, `parallel` sites at once, through the
    connector into a fresh DuckDB file; print ROWS, SECONDS and the peak RSS. The environment points the settings
    at the sandbox."""
    from bench.backfill import window_ending_yesterday
    from connectors.search_console import QUERIES, SearchConsoleConnector
    from connectors.settings import load_settings
    from connectors.warehouse import connect, load_batches

    settings = replace(load_settings().search_console, search_types=("web",), parallel_accounts=parallel)
    connector = SearchConsoleConnector(settings)
    window = window_ending_yesterday(days, today)
    workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-gsc-"))
    try:
        start, cpu = time.perf_counter(), time.process_time()
        with connect(workdir / "gsc.duckdb") as conn:
            result = load_batches(conn, connector.fetch(QUERIES, window))
        seconds = time.perf_counter() - start
        print(f"ROWS {result.rows}", flush=True)
        print(f"SECONDS {seconds:.3f}", flush=True)
        print(f"CPU_SECONDS {time.process_time() - cpu:.3f}", flush=True)
        print(f"REQUESTS {connector.stats.requests}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report_peak_rss()


def _value(out: str, name: str) -> float:
    return next(float(line.split()[1]) for line in out.splitlines() if line.startswith(name + " "))


def one_run(days: int, rows_per_day: int, parallel: int) -> tuple[float, float, int, int, int, float]:
    """Start the big site's sandbox, run one child backfill; (peak MB, seconds, rows, requests, properties, the
    child's CPU seconds)."""
    from bench.sandbox_process import sandbox_process
    from sandbox.gsc_server import BIG_SITE_ENV

    with sandbox_process(0.0, "default", platforms=("gsc",), env={BIG_SITE_ENV: str(rows_per_day)}) as started:
        env = started["env"]
        sites = [s for s in env["MKPI_SEARCH_CONSOLE_SITES"].split(",") if s]
        peak, out = peak_rss_of(["-m", "bench.bench_search_console", "--child", started["today"],
                                 "--days", str(days), "--parallel", str(parallel)], env=env)
    return (peak, _value(out, "SECONDS"), int(_value(out, "ROWS")), int(_value(out, "REQUESTS")), len(sites),
            _value(out, "CPU_SECONDS"))


def measure(days: int, rows_per_day: int, runs: int, parallel: int) -> list[Row]:
    results = [one_run(days, rows_per_day, parallel) for _ in range(runs)]
    peaks = Sample(tuple(r[0] for r in results))
    rates = Sample(tuple(r[2] / r[1] for r in results))
    rows, requests, properties = results[0][2], results[0][3], results[0][4]
    minimum = properties * math.ceil(min(rows_per_day / properties, DAILY_ROW_CAP) * days / 25_000)
    size = (f"{days} days x {rows_per_day:,} query rows a day = {rows:,} rows, {properties} properties read "
            f"{parallel} at a time, {requests} requests (minimum {minimum})")
    per_cpu = Sample(tuple(r[2] / r[5] for r in results))
    note = (f"rows per CPU second of the reading process: {per_cpu.show(digits=6)} (the sandbox's own CPU apart; "
            "on a loaded machine this says more than the wall-clock rate)")
    includes = ("the child's whole process (interpreter, imports, discovery clients, pages, Arrow batches, the "
                "loader's DuckDB) at its high-water mark")
    return [
        Row("3 search_console", f"big site, {days}-day single-run backfill: peak RSS", peaks.show(" MB", 4), "",
            f"{peaks.median / GOAL_RSS_MB:.2f} of the goal", f"< {GOAL_RSS_MB:.0f} MB",
            ok=peaks.median < GOAL_RSS_MB, size=size, includes=includes, sample=peaks, limit=GOAL_RSS_MB),
        Row("3 search_console", f"big site, {days}-day single-run backfill: rows/s end to end",
            Sample(tuple(v / 1000 for v in rates.values)).show("k rows/s", 4), "",
            f"{rates.median / GOAL_ROWS_PER_SECOND:.2f}x the goal",
            f">= {GOAL_ROWS_PER_SECOND:,.0f} rows/s", ok=rates.median >= GOAL_ROWS_PER_SECOND, size=size,
            includes="from the first request to the loader's commit: HTTP, JSON, validation, Arrow, DuckDB insert "
                     "(the sandbox's own work is in its own process, on the same cores)",
            sample=rates, limit=GOAL_ROWS_PER_SECOND, notes=[note]),
    ]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=1_000_000, help="the big site's query rows a day")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=1,
                        help="properties read at once (search_console.parallel_accounts; each one read is held whole "
                             "until loaded, so a big site's memory grows with it)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(date.fromisoformat(args.child), args.days, args.parallel)
        return []
    result = measure(args.days, args.rows_per_day, args.runs, args.parallel)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
