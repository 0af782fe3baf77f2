"""Target 3: loading typed rows through the project's loader, against a bare DuckDB INSERT and dlt.

Three ways to put the same rows into a fresh DuckDB file on the same machine, in the same run:
- the loader: `load_batches` with connector-sized Arrow pages of one account and one window (delete the
  window, insert each page, check the key is unique, commit, CHECKPOINT: what every materialisation does);
- the bare baseline: `INSERT INTO t SELECT * FROM arrow_table`, one statement, nothing else;
- dlt (`pipeline.run` of the same records as dicts into DuckDB; the bench extra installs it).
Rates are rows per second; ratios are per run (loader rate / baseline rate in that run), then the median.
dlt is slow per row, so it loads a smaller slice by default (`--dlt-rows`); rows per second make the sizes
comparable, and the docs say which sizes were used.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from bench.common import Row, Sample, table
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


def make_rows(n: int, seed: int = 0, offset: int = 0) -> pa.Table:
    """`n` typed rows of one account over one year, unique on (account_id, date, item_id); `offset` gives the
    next rows of a longer sequence (pages generated one at a time)."""
    import numpy as np

    rng = np.random.default_rng(seed + offset)
    idx = np.arange(offset, offset + n, dtype=np.int64)
    days = (idx % DAYS).astype("int32") + (START - date(1970, 1, 1)).days
    sessions = rng.integers(1, 500, n)
    return pa.table({
        "account_id": pa.array(["123456789"] * n, pa.string()),
        "date": pa.array(days, pa.int32()).cast(pa.date32()),
        "item_id": pa.array(idx // DAYS),
        "channel": pa.array([CHANNELS[i % len(CHANNELS)] for i in range(len(CHANNELS))] * (n // len(CHANNELS))
                            + list(CHANNELS[: n % len(CHANNELS)]), pa.string()),
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


def load_bare(path: Path, data: pa.Table) -> float:
    """Seconds for one bare `INSERT INTO t SELECT * FROM arrow_table` (table created beforehand, untimed)."""
    conn = duckdb.connect(str(path))
    try:
        arrow_table = data  # noqa: F841 - DuckDB's replacement scan reads the local variable by name
        conn.execute("CREATE TABLE t AS SELECT * FROM arrow_table LIMIT 0")
        start = time.perf_counter()
        conn.execute("INSERT INTO t SELECT * FROM arrow_table")
        return time.perf_counter() - start
    finally:
        conn.close()


def load_with_dlt(workdir: Path, data: pa.Table) -> float:
    """Seconds for `dlt.pipeline(...).run(records)` of the same rows as dicts into a DuckDB file."""
    import dlt

    records = data.to_pylist()
    pipeline = dlt.pipeline(pipeline_name=f"bench_{time.monotonic_ns()}", pipelines_dir=str(workdir / "dlt"),
                            destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
                            dataset_name="bench")
    start = time.perf_counter()
    pipeline.run(records, table_name="load_rows", write_disposition="append")
    return time.perf_counter() - start


def dlt_available() -> bool:
    try:
        import dlt  # noqa: F401
    except ImportError:
        return False
    return True


def measure(sizes: tuple[int, ...], runs: int, dlt_rows: int, dlt_runs: int) -> list[Row]:
    out: list[Row] = []
    for size in sizes:
        data = make_rows(size)
        loader_rates: list[float] = []
        bare_rates: list[float] = []
        for _ in range(runs):
            workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-load-"))
            try:
                bare_rates.append(size / load_bare(workdir / "bare.duckdb", data))
                loader_rates.append(size / load_with_loader(workdir / "loader.duckdb", data))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        loader, bare = Sample(tuple(loader_rates)), Sample(tuple(bare_rates))
        ratio = Sample(tuple(a / b for a, b in zip(loader_rates, bare_rates, strict=True)))
        out.append(Row("3 load", f"loader vs bare INSERT, {size:,} rows", f"{_rate(loader)} rows/s",
                       f"{_rate(bare)} rows/s", ratio.show("x", 2), ">= 0.5x", ok=ratio.median >= 0.5))
    if dlt_runs <= 0:
        return out
    if not dlt_available():
        out.append(Row("3 load", "dlt: not installed (make bench installs the bench extra)", "-", ok=None))
        return out
    data = make_rows(dlt_rows)
    loader_rates, dlt_rates = [], []
    for _ in range(dlt_runs):
        workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-dlt-"))
        try:
            dlt_rates.append(dlt_rows / load_with_dlt(workdir, data))
            loader_rates.append(dlt_rows / load_with_loader(workdir / "loader.duckdb", data))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    ratio = Sample(tuple(a / b for a, b in zip(loader_rates, dlt_rates, strict=True)))
    out.append(Row("3 load", f"loader vs dlt pipeline.run (dicts), {dlt_rows:,} rows",
                   f"{_rate(Sample(tuple(loader_rates)))} rows/s", f"{_rate(Sample(tuple(dlt_rates)))} rows/s",
                   ratio.show("x", 3), ">= 5x", ok=ratio.median >= 5))
    return out


def _rate(sample: Sample) -> str:
    """Rows per second, in thousands."""
    return f"{sample.median / 1e3:,.0f}k ({sample.low / 1e3:,.0f}-{sample.high / 1e3:,.0f})"


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000", help="comma-separated row counts")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dlt-rows", type=int, default=100_000)
    parser.add_argument("--dlt-runs", type=int, default=5)
    args = parser.parse_args(argv)
    result = measure(tuple(int(s) for s in args.sizes.split(",")), args.runs, args.dlt_rows, args.dlt_runs)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
