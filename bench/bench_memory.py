"""Target 2 (issue #21): peak RSS of the loader against a bare streamed INSERT of the same pages, at 1M, 5M, 10M rows.

Each size and method runs in a fresh child process (its VmHWM is the honest peak): a connector-like generator yields
Arrow pages of 100,000 typed rows one at a time (as a paging connector does, never holding the whole range), and
- the loader (`load_batches`) writes them into a fresh DuckDB file in one transaction, or
- the bare streamed INSERT writes them into a fresh file: BEGIN, `INSERT INTO t SELECT * FROM page` per page,
  COMMIT, CHECKPOINT (bench_load's baseline).
Both children import the same modules; each reports its RSS after imports, and the figure compared is the peak
above it (what loading the rows added). Goal: the loader's within 1.5x of the bare INSERT's at 10M rows.
The sandbox world is far smaller than 1M rows per year, so the rows are synthetic (bench_load's generator).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.common import Row, Sample, peak_rss_of, ratio_sample, report_peak_rss, table

PAGE_ROWS = 100_000
METHODS = ("loader", "bare")
GOAL_ROWS = 10_000_000


def child(rows: int, method: str) -> None:
    """In the child: import, report the baseline RSS, stream `rows` rows with `method`, report the peak."""
    import duckdb

    from bench.bench_load import STREAM, WINDOW, make_rows
    from bench.common import rss_mb
    from connectors.batches import Batch
    from connectors.warehouse import connect, load_batches

    print(f"BASE_RSS_MB {rss_mb():.1f}", flush=True)

    def pages() -> Iterator[Batch]:
        for offset in range(0, rows, PAGE_ROWS):
            data = make_rows(min(PAGE_ROWS, rows - offset), offset=offset)
            yield Batch(STREAM, data, WINDOW, {"account_id": "123456789"})

    workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-mem-"))
    try:
        if method == "loader":
            with connect(workdir / "mem.duckdb") as conn:
                print(f"ROWS {load_batches(conn, pages()).rows}", flush=True)
        else:
            conn = duckdb.connect(str(workdir / "mem.duckdb"))
            empty = STREAM.schema.empty_table()  # noqa: F841 - DuckDB's replacement scan reads it by name
            conn.execute("CREATE TABLE t AS SELECT * FROM empty")
            conn.execute("BEGIN TRANSACTION")
            for batch in pages():
                page = batch.data  # noqa: F841 - read by name, as above
                conn.execute("INSERT INTO t SELECT * FROM page")
            conn.execute("COMMIT")
            conn.execute("CHECKPOINT")
            print(f"ROWS {conn.execute('SELECT count(*) FROM t').fetchone()[0]}", flush=True)
            conn.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report_peak_rss()


def run_child(size: int, method: str) -> tuple[float, float]:
    """(peak, RSS after imports) of one child, MB."""
    peak, out = peak_rss_of(["-m", "bench.bench_memory", "--child", str(size), "--method", method])
    base = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("BASE_RSS_MB"))
    rows = next(int(line.split()[1]) for line in out.splitlines() if line.startswith("ROWS"))
    if rows != size:
        raise RuntimeError(f"{method} child wrote {rows} rows, not {size}")
    return peak, base


def measure(sizes: tuple[int, ...], runs: int) -> list[Row]:
    out: list[Row] = []
    for size in sizes:
        above: dict[str, list[float]] = {method: [] for method in METHODS}
        peaks: dict[str, list[float]] = {method: [] for method in METHODS}
        for _ in range(runs):
            for method in METHODS:
                peak, base = run_child(size, method)
                peaks[method].append(peak)
                above[method].append(peak - base)
        ratio = ratio_sample(above["loader"], above["bare"])
        goal = size >= GOAL_ROWS
        out.append(Row("2 memory", f"peak RSS above imports, loader vs bare streamed INSERT, {size:,} rows "
                                   f"(pages of {PAGE_ROWS:,})", _show(above["loader"], peaks["loader"]),
                       _show(above["bare"], peaks["bare"]), ratio.show("x", 3), "<= 1.5x at 10M" if goal else "",
                       ok=ratio.median <= 1.5 if goal else None, size=f"{size:,} rows (9 columns, pages of "
                       f"{PAGE_ROWS:,} generated one at a time)", includes="VmHWM of a fresh child minus its RSS "
                       "after imports: the pages alive, DuckDB's buffers, the loader's key hashes",
                       sample=Sample(tuple(above["loader"])), base=Sample(tuple(above["bare"])).median, ratios=ratio,
                       limit=1.5 if goal else None))
    return out


def _show(above: list[float], peaks: list[float]) -> str:
    """MB above imports (median, min-max), and the median peak itself."""
    return f"{Sample(tuple(above)).show(' MB', 4)} (peak {Sample(tuple(peaks)).median:.0f} MB)"


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000,10000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=METHODS, default="loader", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.method)
        return []
    result = measure(tuple(int(s) for s in args.sizes.split(",")), args.runs)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
