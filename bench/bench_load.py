"""Target 2 (issue #21): the loader against a bare streamed DuckDB INSERT and dlt's fastest paths, same rows, same run.

Ways to put the same typed rows (9 columns, one account, one year) into a fresh DuckDB file, in the same run:
- the loader: `load_batches` with connector-sized Arrow pages of one account and one window (delete the window,
  insert each page, check the key is unique, commit, CHECKPOINT: what every materialisation does);
- the bare streamed INSERT: BEGIN, `INSERT INTO t SELECT * FROM page` for each page, COMMIT, CHECKPOINT; nothing
  else (no window delete, no key check, no load metadata);
- dlt (the `bench` extra) given the same rows as one Arrow table and writing parquet files
  (`loader_file_format="parquet"`), its fastest input and file format: `replace` (the table replaced whole) and
  `merge` with the delete-insert strategy on merge key (account_id, date): the loader's semantics (the days of
  the account's window replaced). No primary key: dlt would deduplicate by it (the loader refuses a duplicate
  instead), and its delete then joins on an OR of both keys, which DuckDB runs as a nested loop (a re-load of 5M
  rows did not finish in 13 minutes). `append` is shown too, with no goal (it replaces nothing).
The loader and dlt's replace and merge are timed twice: into a fresh file, then the same rows again onto the file
holding them (what a re-read window does: the rows deleted, then written anew).
Rates are rows per second; ratios are per run (loader rate / baseline rate in that run), then the median.
Generating the rows is never timed; every method writes a fresh file and is timed to its COMMIT and CHECKPOINT.
What makes the comparison fair: every method gets the same rows (one generated Arrow table; the loader and the bare
INSERT read it in pages of PAGE_ROWS, dlt whole, its fastest input); the loader's time holds all it guarantees (the
window delete, the rows' dates and account checked, the load metadata, the duplicate-key check, COMMIT, CHECKPOINT),
dlt's the whole `pipeline.run` (extract to parquet, normalize, `INSERT ... FROM read_parquet`, its commit; its file
is checkpointed when the run returns: no WAL is left), with dlt's telemetry off (it would send an event over the
network on each run; the benchmark stays offline and dlt's time holds none of it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from bench.common import Row, Sample, ratio_sample, table
from connectors.batches import Batch, Stream, Window

START = date(2025, 1, 1)
DAYS = 365
PAGE_ROWS = 100_000  # about one connector page (GA4 pages are up to 250,000 rows)
STREAM = Stream(
    table="bench.load_rows",
    schema=pa.schema([
        ("account_id", pa.string()), ("date", pa.date32()), ("item_id", pa.int64()), ("channel", pa.string()),
        ("sessions", pa.int64()), ("engaged_sessions", pa.int64()), ("conversions", pa.int64()),
        ("revenue", pa.float64()), ("engagement_seconds", pa.float64()),
    ]),
    key=("account_id", "date", "item_id"),
    scope_column="account_id",
)
WINDOW = Window(START, START + timedelta(days=DAYS - 1))
CHANNELS = ("Direct", "Organic Search", "Paid Search", "Email", "Referral", "Organic Social", "Display")
DLT_CONFIGS = ("append", "replace", "merge")  # append: no replacement, shown without a goal


def make_rows(n: int, seed: int = 0, offset: int = 0) -> pa.Table:
    """`n` typed rows of one account over one year, unique on (account_id, date, item_id); `offset` gives the
    next rows of a longer sequence (pages generated one at a time)."""
    import numpy as np

    rng = np.random.default_rng(seed + offset)
    idx = np.arange(offset, offset + n, dtype=np.int64)
    days = (idx % DAYS).astype("int32") + (START - date(1970, 1, 1)).days
    sessions = rng.integers(1, 500, n)
    channels = pa.array(CHANNELS, pa.string()).take(pa.array(idx % len(CHANNELS)))
    return pa.table({
        "account_id": pa.array(["123456789"] * n, pa.string()),
        "date": pa.array(days, pa.int32()).cast(pa.date32()),
        "item_id": pa.array(idx // DAYS),
        "channel": channels,
        "sessions": pa.array(sessions),
        "engaged_sessions": pa.array(sessions // 2),
        "conversions": pa.array(rng.integers(0, 20, n)),
        "revenue": pa.array(rng.random(n) * 1000),
        "engagement_seconds": pa.array(rng.random(n) * 600),
    }, schema=STREAM.schema)


def pages(data: pa.Table, page_rows: int = PAGE_ROWS) -> Iterator[Batch]:
    for offset in range(0, data.num_rows, page_rows):
        yield Batch(STREAM, data.slice(offset, page_rows), WINDOW, {"account_id": "123456789"})


def load_with_loader(path: Path, data: pa.Table) -> float:
    """Seconds for the project's loader to write `data` (pages of one window) into a fresh file."""
    from connectors.warehouse import connect, load_batches

    with connect(path) as conn:
        start = time.perf_counter()
        load_batches(conn, pages(data))
        return time.perf_counter() - start


def load_bare(path: Path, data: pa.Table, page_rows: int = PAGE_ROWS) -> float:
    """Seconds for the bare streamed INSERT: the same pages, one `INSERT INTO t SELECT * FROM page` each, in one
    transaction, then COMMIT and CHECKPOINT (table created beforehand, untimed)."""
    conn = duckdb.connect(str(path))
    try:
        empty = data.slice(0, 0)  # noqa: F841 - DuckDB's replacement scan reads the local variable by name
        conn.execute("CREATE TABLE t AS SELECT * FROM empty")
        start = time.perf_counter()
        conn.execute("BEGIN TRANSACTION")
        for offset in range(0, data.num_rows, page_rows):
            page = data.slice(offset, page_rows)  # noqa: F841 - read by name, as above
            conn.execute("INSERT INTO t SELECT * FROM page")
        conn.execute("COMMIT")
        conn.execute("CHECKPOINT")
        return time.perf_counter() - start
    finally:
        conn.close()


def load_with_dlt(workdir: Path, data: pa.Table, disposition: str = "merge") -> float:
    """Seconds for `dlt.pipeline(...).run` of the same rows as one Arrow table, written as parquet files, into a
    DuckDB file (`workdir/dlt.duckdb`, table bench.load_rows): `append`, `replace`, or `merge` (delete-insert
    on the window's days)."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # no network call in a baseline's time (docstring)
    import dlt

    hints: dict[str, object] = {"write_disposition": disposition}
    if disposition == "merge":
        hints = {"write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
                 "merge_key": ["account_id", "date"]}
    resource = dlt.resource(data, name="load_rows", **hints)
    pipeline = dlt.pipeline(pipeline_name=f"bench_{time.monotonic_ns()}", pipelines_dir=str(workdir / "dlt"),
                            destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
                            dataset_name="bench")
    start = time.perf_counter()
    pipeline.run(resource, loader_file_format="parquet")
    return time.perf_counter() - start


def dlt_available() -> bool:
    try:
        import dlt  # noqa: F401
    except ImportError:
        return False
    return True


def one_run(size: int, data: pa.Table, with_dlt: bool) -> dict[str, float]:
    """Rows per second of each method on `data`, each into a fresh file of its own; then, for the methods that
    replace, the same rows loaded again onto the file holding them (" again": a re-read window restated)."""
    workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-load-"))
    try:
        rates = {"bare": size / load_bare(workdir / "bare.duckdb", data),
                 "loader": size / load_with_loader(workdir / "loader.duckdb", data),
                 "loader again": size / load_with_loader(workdir / "loader.duckdb", data)}
        for disposition in DLT_CONFIGS if with_dlt else ():
            folder = workdir / f"dlt-{disposition}"
            folder.mkdir()
            rates[f"dlt {disposition}"] = size / load_with_dlt(folder, data, disposition)
            if disposition != "append":
                rates[f"dlt {disposition} again"] = size / load_with_dlt(folder, data, disposition)
        return rates
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(sizes: tuple[int, ...], runs: int, dlt_runs: int) -> list[Row]:
    out: list[Row] = []
    with_dlt = dlt_runs > 0 and dlt_available()
    if dlt_runs > 0 and not with_dlt:
        out.append(Row("2 load", "dlt: not installed (make bench installs the bench extra)", "-", ok=None))
    for size in sizes:
        data = make_rows(size)
        measured = [one_run(size, data, with_dlt and run < dlt_runs) for run in range(runs)]
        out.extend(rows_for(size, measured))
    return out


INCLUDES = {"loader": "load_batches to its COMMIT and CHECKPOINT: window delete, dates and account checked, pages "
                      "streamed with load metadata into INSERTs of 4 row groups, duplicate-key check; rows generated "
                      "beforehand, untimed",
            "bare": "BEGIN, one INSERT per page, COMMIT, CHECKPOINT; nothing else",
            "dlt": "pipeline.run of one Arrow table: extract to parquet, normalize, load into DuckDB and commit "
                   "(file checkpointed), telemetry off"}


def _compared(what: str, size: int, ours: list[float], theirs: list[float], goal: float | None,
              includes: str) -> Row:
    """A row of rows/s against a baseline's rows/s in the same runs; `goal` the least ratio, None for none."""
    ratio = ratio_sample(ours, theirs)
    mine, base = Sample(tuple(ours)), Sample(tuple(theirs))
    return Row("2 load", what, f"{_rate(mine)} rows/s", f"{_rate(base)} rows/s", ratio.show("x", 2),
               f">= {goal:g}x" if goal is not None else "", ok=ratio.median >= goal if goal is not None else None,
               size=f"{size:,} rows (9 columns, pages of {PAGE_ROWS:,})", includes=includes, sample=mine,
               base=base.median, ratios=ratio, limit=goal)


def rows_for(size: int, measured: list[dict[str, float]]) -> list[Row]:
    """The size's rows: loader vs bare streamed INSERT (goal 0.8x), vs dlt's fastest replace or merge (goal 1x),
    fresh and again; then each dlt configuration's own rate, the loader's ratio to it beside (no goal)."""
    out = [_compared(f"loader vs bare streamed INSERT, {size:,} rows", size, [m["loader"] for m in measured],
                     [m["bare"] for m in measured], 0.8, f"loader: {INCLUDES['loader']}; bare: {INCLUDES['bare']}")]
    with_dlt = [m for m in measured if "dlt merge" in m]
    if not with_dlt:
        return out
    for again, what in (("", "into a fresh file"), (" again", "again onto themselves")):
        out.append(_compared(f"loader vs dlt's fastest replace/merge (Arrow, parquet), {size:,} rows {what}", size,
                             [m[f"loader{again}"] for m in with_dlt],
                             [max(m[f"dlt replace{again}"], m[f"dlt merge{again}"]) for m in with_dlt], 1.0,
                             f"loader: {INCLUDES['loader']}; dlt (the faster of replace and merge per run): "
                             f"{INCLUDES['dlt']}"))
    for disposition in DLT_CONFIGS:
        out.append(_compared(f"  loader vs dlt {disposition} (Arrow, parquet), {size:,} rows", size,
                             [m["loader"] for m in with_dlt], [m[f"dlt {disposition}"] for m in with_dlt], None,
                             f"dlt {disposition}: {INCLUDES['dlt']}"))
    return out


def _rate(sample: Sample) -> str:
    """Rows per second, in thousands."""
    return f"{sample.median / 1e3:,.0f}k ({sample.low / 1e3:,.0f}-{sample.high / 1e3:,.0f})"


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000,10000000", help="comma-separated row counts")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dlt-runs", type=int, default=5, help="runs (of --runs) that also time dlt; 0: none")
    parser.add_argument("--dlt-rows", type=int, default=0, help=argparse.SUPPRESS)  # older run_all arguments
    args = parser.parse_args(argv)
    result = measure(tuple(int(s) for s in args.sizes.split(",")), args.runs, args.dlt_runs)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
