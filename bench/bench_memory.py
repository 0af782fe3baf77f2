"""Target 5: peak RSS of a backfill at 1M and 5M rows (sub-linear growth; under 1 GB at 5M).

Each size runs in a fresh child process (its VmHWM is the honest peak): a connector-like generator yields
Arrow pages of 100,000 typed rows one at a time (as a paging connector does, never holding the whole range),
and the project's loader writes them into a fresh DuckDB file in one transaction. The child's RSS after its
imports is reported too, so the growth with rows is visible apart from the interpreter and libraries.
The sandbox world is far smaller than 1M rows per year, so the rows are synthetic (bench_load's generator).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.common import Row, Sample, peak_rss_of, report_peak_rss, table

PAGE_ROWS = 100_000


def child(rows: int) -> None:
    """In the child: import, report the baseline RSS, stream `rows` rows through the loader, report the peak."""
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
        with connect(workdir / "mem.duckdb") as conn:
            result = load_batches(conn, pages())
        print(f"ROWS {result.rows}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report_peak_rss()


def measure(sizes: tuple[int, ...], runs: int) -> list[Row]:
    peaks: dict[int, list[float]] = {}
    bases: dict[int, list[float]] = {}
    for size in sizes:
        for _ in range(runs):
            peak, out = peak_rss_of(["-m", "bench.bench_memory", "--child", str(size)])
            base = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("BASE_RSS_MB"))
            peaks.setdefault(size, []).append(peak)
            bases.setdefault(size, []).append(base)
    out_rows: list[Row] = []
    for size in sizes:
        peak, base = Sample(tuple(peaks[size])), Sample(tuple(bases[size]))
        out_rows.append(Row("5 memory", f"peak RSS, backfill of {size:,} rows (pages of {PAGE_ROWS:,})",
                            peak.show(" MB", 4), f"{base.median:.0f} MB after imports", "",
                            "< 1 GB at 5M" if size >= 5_000_000 else "", ok=(peak.median < 1024)
                            if size >= 5_000_000 else None))
    if len(sizes) >= 2:
        small, large = min(sizes), max(sizes)
        grow_rows = large / small
        grow_rss = (Sample(tuple(peaks[large])).median - Sample(tuple(bases[large])).median) / max(
            1.0, Sample(tuple(peaks[small])).median - Sample(tuple(bases[small])).median)
        out_rows.append(Row("5 memory", f"RSS growth above imports, {small:,} -> {large:,} rows",
                            f"{grow_rss:.2f}x", f"{grow_rows:.0f}x rows", f"{grow_rss / grow_rows:.2f}",
                            "< 1 (sub-linear)", ok=grow_rss < grow_rows))
    return out_rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return []
    result = measure(tuple(int(s) for s in args.sizes.split(",")), args.runs)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
