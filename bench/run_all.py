"""`make bench`: every benchmark of issue #9 in one run, one table, and docs/benchmarks.md.

Baselines (bare DuckDB INSERT, dlt, the stock HubSpot models, the minimum request count, the latency lower
bound) are measured in the same run as the figures they are compared with, never copied. The latency
benchmark runs last. `--quick` shrinks every size for a smoke run (its figures are not the documented ones).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    bench_demo,
    bench_hubspot_parse,
    bench_kpi,
    bench_latency,
    bench_load,
    bench_memory,
    bench_requests,
)
from bench.common import ROOT, Row, machine, table

# (script, arguments for the documented run, arguments for --quick)
PLAN: list[tuple[str, Callable[[list[str]], list[Row]], list[str], list[str]]] = [
    ("bench/bench_hubspot_parse.py", bench_hubspot_parse.main, ["--runs", "5", "--pages", "20"],
     ["--runs", "2", "--pages", "5"]),
    ("bench/bench_requests.py", bench_requests.main, ["--runs", "5"], ["--days", "30"]),
    ("bench/bench_load.py", bench_load.main, ["--sizes", "1000000", "--runs", "5", "--dlt-rows", "100000",
                                              "--dlt-runs", "5"],
     ["--sizes", "100000", "--runs", "2", "--dlt-rows", "5000", "--dlt-runs", "1"]),
    ("bench/bench_load.py", bench_load.main, ["--sizes", "5000000", "--runs", "5", "--dlt-runs", "0"],
     ["--sizes", "300000", "--runs", "1", "--dlt-runs", "0"]),
    ("bench/bench_memory.py", bench_memory.main, ["--sizes", "1000000,5000000", "--runs", "5"],
     ["--sizes", "100000,300000", "--runs", "1"]),
    ("bench/bench_kpi.py", bench_kpi.main, ["--raw-rows", "10000000", "--runs", "5"],
     ["--raw-rows", "200000", "--runs", "1", "--days", "60"]),
    ("bench/bench_demo.py", bench_demo.main, ["--runs", "5", "--days", "90"], ["--runs", "1", "--days", "7"]),
    ("bench/bench_latency.py", bench_latency.main, ["--runs", "5", "--ga4", "3", "--search-console", "3",
                                                    "--google-ads", "3", "--matomo", "3"],
     ["--runs", "1", "--days", "30", "--ga4", "2", "--search-console", "2", "--google-ads", "2", "--matomo", "2"]),
]
# Every figure is a median of 5 runs (min-max beside it), at the sizes of issue #9. dlt is timed on 100k rows
# (its rate is per row; 1M rows through dlt alone would take most of the run).


def run(quick: bool, only: set[str] | None) -> tuple[list[Row], list[str], dict[str, float]]:
    rows: list[Row] = []
    commands: list[str] = []
    seconds: dict[str, float] = {}
    for script, main, full_args, quick_args in PLAN:
        name = Path(script).stem
        if only and name not in only:
            continue
        seconds_key = name if name not in seconds else f"{name} ({args_label(quick_args if quick else full_args)})"
        args = quick_args if quick else full_args
        commands.append(f".venv/bin/python -m bench.{name} {' '.join(args)}")
        print(f"\n== {script} {' '.join(args)}", flush=True)
        start = time.perf_counter()
        try:
            rows.extend(main(args))
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            rows.append(Row(name, f"ERROR: {type(exc).__name__}: {str(exc)[:200]}", "-", ok=False))
        seconds[seconds_key] = time.perf_counter() - start
    return rows, commands, seconds


def args_label(args: list[str]) -> str:
    return " ".join(args[:2])


def write_doc(path: Path, rows: list[Row], commands: list[str], seconds: dict[str, float], quick: bool,
              load: tuple[float, float]) -> None:
    info = machine()
    notes = [f"- {r.target} / {r.what.strip()}: {n}" for r in rows for n in r.notes]
    passed = sum(1 for r in rows if r.ok)
    failed = [r for r in rows if r.ok is False]
    text = f"""# Benchmarks (issue #9)

Written by `make bench` (`bench/run_all.py{' --quick' if quick else ''}`) on
{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. Every baseline was measured in this same run; ratios are
per run (figure / same-run baseline), then the median, with min-max in brackets. Goals met: {passed}, missed:
{len(failed)}.

**Noise**: this machine has {info.get('cpus')} cores; its 1-minute load average was {load[0]:.2f} when the run
started (other work already sharing the cores) and {load[1]:.2f} when it ended (the benchmark's own last minute
included). Absolute times are this machine's; the same-run ratios are what to read.

## Results

{table(rows)}

{chr(10).join(notes)}

## Machine and versions

{chr(10).join(f'- {k}: {v}' for k, v in info.items())}

## Commands

`make bench` installs the `bench` extra (`dlt[duckdb]`, `psutil`) and runs `bench/run_all.py`, which runs, in
this order (seconds each: {', '.join(f'{k} {v:.0f}' for k, v in seconds.items())}):

```
{chr(10).join(commands)}
```

One script per target, each runnable alone (`PYTHONPATH=. .venv/bin/python -m bench.<script> --help`).
`tests/test_bench_setup.py` (in `make test`) checks each benchmark's setup, never its timing.

## What each target measures, and the sizes used

Every target at the size issue #9 names, each figure the median of 5 runs with min-max beside it. The exact
arguments are under Commands.

1. **Requests** (`bench_requests.py`): a 365-day backfill of every report stream through the connectors
   against the sandbox (default accounts: 1 GA4 property, 1 site, 2 Ads customers, 1 Matomo site, 1 HubSpot
   portal); requests counted by the connectors' request statistics (retries included, so min-max shows any
   retry); the minimum is computed from the rows each stream and account returned (GA4 250,000 per page,
   Search Console 25,000, Google Ads one stream per customer, Matomo one bulk request per site, HubSpot 100
   per list page and batch read, one request per metadata list); the per-day pattern is one request per day
   per stream per account.
2. **Latency** (`bench_latency.py`): 100 ms added to every sandbox response, one sandbox process per
   platform (as the platforms are separate services), the five sources at once, one process each (as the
   multiprocess executor runs steps), 3 accounts per platform from the sandbox's "many" profile (HubSpot is
   one portal); bound = per platform, the busiest account's minimum requests x latency, and for HubSpot also
   its configured rolling quota (`hubspot.requests_per_10s`, 100: n requests need (n - 1) // 100 windows of
   10 s); the backfill's bound is the largest.
3. **Load** (`bench_load.py`): typed rows (9 columns) in pages of 100,000 through `load_batches` into a fresh
   DuckDB file (delete window, insert, key check, commit, CHECKPOINT) against one bare
   `INSERT INTO t SELECT * FROM arrow_table`, at 1M and 5M rows. dlt's `pipeline.run` of the same rows as
   dicts is timed on 100,000 rows (dlt normalises row by row: a million rows take minutes per run), as rows
   per second against the loader on the same 100,000 rows.
4. **KPI rebuild** (`bench_kpi.py`): a 365-day sandbox backfill of all sources, the report tables copied with
   renamed accounts to 10M raw rows; on a fresh copy each run, every KPI table rebuilt over the year
   (per-channel tables, kpi_daily and its roll-up views, kpi_vs_objective), then one day re-read and rebuilt.
5. **Memory** (`bench_memory.py`): peak RSS (VmHWM of a fresh child) of a backfill of 1M and 5M synthetic
   rows streamed page by page through the loader (the sandbox world has far fewer rows).
6. **HubSpot parsing** (`bench_hubspot_parse.py`): one real sandbox page of 100 contacts; the project's
   `json.loads` + `records_to_table` (including the response validation) against the stock client's
   `ApiClient.deserialize` into its models; each run 20 parses.
7. **Demo** (`bench_demo.py`): `python -m pipelines.demo` (90 days, as `make demo`) in a child process;
   extract and load told apart by wrapping the loader's batch iterator, KPI and dashboard steps from the
   Dagster event log, start-up = everything before the first step, "other" = Dagster's own work between
   steps (events written to the instance's SQLite storage, per-partition materialisations of the single run).
"""
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated script names (e.g. bench_load)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-doc", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    load_at_start = os.getloadavg()[0]
    rows, commands, seconds = run(args.quick, only)
    print("\n" + table(rows))
    if not args.no_doc:
        write_doc(Path(args.output), rows, commands, seconds, args.quick, (load_at_start, os.getloadavg()[0]))
        print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
