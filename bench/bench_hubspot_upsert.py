"""Target 4 (issue #21): HubSpot upserts linear in rows, the per-page cost flat from 20k to 500k records.

HubSpot's records come 100 per page (CRM list and search pages) and are upserted by id (`write_mode="upsert"`).
Pages of synthetic contacts typed as the real `hubspot.contacts` table (connectors/raw_tables.py's declared stream,
HubSpot's default property types) are loaded, timed per page, two ways:
- full list: N records in 100-record pages into an empty table in one load (a first run, or a full re-list);
  per page = the load's time / pages. The loader stages an upsert stream's pages and merges them once per load;
- per-page delete (the baseline, the loader before issue #21, run here): each page deletes the table's rows with
  its keys (`DELETE ... WHERE EXISTS`, a scan of the whole table) then inserts, in one transaction. At 500k records
  it is timed on the last `--tail-pages` pages of the list only (the table already holding the rest), since its
  cost is the table's size: those pages are its most expensive, which is what grows.
- incremental: `--tail-pages` pages of changed records (half updates of existing ids, half new) into a table of N
  records, both ways; per page includes the one merge (one scan of the table) the load makes.
Flat: per-page cost at 500k over the same at 20k (goal <= 1.25x).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from bench.common import Row, Sample, ratio_sample, table
from connectors.batches import Batch, Stream, Window

PAGE = 100
TODAY = Window(date(2026, 3, 31), date(2026, 3, 31))
EPOCH_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)


def contacts_stream() -> Stream:
    """The real `hubspot.contacts` table declaration, with HubSpot's default property types."""
    from connectors.raw_tables import hubspot_default_stream

    return hubspot_default_stream("contacts")


def make_page(stream: Stream, first_id: int, n: int = PAGE, version: int = 0) -> pa.Table:
    """`n` contacts with ids first_id.., every declared column filled by type (`version` changes the values)."""
    import numpy as np

    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    columns: dict[str, pa.Array] = {}
    for field in stream.schema:
        if field.name == "id":
            columns[field.name] = pa.array(ids.astype(str), pa.string())
        elif pa.types.is_timestamp(field.type):
            columns[field.name] = pa.array(EPOCH_MS + ids * 60_000 + version, pa.int64()).cast(field.type)
        elif pa.types.is_date(field.type):
            columns[field.name] = pa.array((19_700 + ids % 400).astype(np.int32), pa.int32()).cast(field.type)
        elif pa.types.is_floating(field.type):
            columns[field.name] = pa.array((ids % 1000) * 1.5 + version, field.type)
        elif pa.types.is_boolean(field.type):
            columns[field.name] = pa.array(ids % 2 == 0, pa.bool_())
        else:
            columns[field.name] = pa.array([f"{field.name}-{i % 97}-{version}" for i in ids], pa.string())
    return pa.table(columns, schema=stream.schema)


def list_pages(stream: Stream, first: int, count: int) -> Iterator[Batch]:
    """`count` pages of new contacts, ids from `first`."""
    for page in range(count):
        yield Batch(stream, make_page(stream, first + page * PAGE), TODAY)


def changed_pages(stream: Stream, size: int, count: int) -> list[Batch]:
    """`count` pages of changed contacts: half updates of ids already in a table of `size`, half new ids."""
    half = PAGE // 2
    return [Batch(stream, pa.concat_tables([make_page(stream, (page * 7_919) % max(1, size - half), half, 1),
                                            make_page(stream, size + page * half, half, 1)]), TODAY)
            for page in range(count)]


def load_staged(path: Path, pages: Iterator[Batch] | list[Batch]) -> tuple[float, int]:
    """Seconds and pages of one `load_batches` (the project's loader: pages staged, merged once)."""
    from connectors.warehouse import connect, load_batches

    batches = list(pages)
    with connect(path) as conn:
        start = time.perf_counter()
        load_batches(conn, batches)
        return time.perf_counter() - start, len(batches)


def load_per_page_delete(path: Path, pages: list[Batch]) -> float:
    """Seconds for the pre-#21 upsert of `pages` into the table at `path`: per page, delete the table's rows with the
    page's ids (a scan of the table), insert the page; one transaction; then COMMIT and CHECKPOINT."""
    from connectors.warehouse import _projection, quote_ident

    conn = duckdb.connect(str(path))
    try:
        table = quote_ident(pages[0].stream.table)
        columns = {r[0]: r[1] for r in conn.execute(f"DESCRIBE {table}").fetchall()}
        loaded_at = datetime.now(UTC)
        start = time.perf_counter()
        conn.execute("BEGIN TRANSACTION")
        for batch in pages:
            conn.register("__mkpi_batch", batch.data)
            conn.execute(f"DELETE FROM {table} AS t WHERE EXISTS (SELECT 1 FROM __mkpi_batch AS b WHERE t.id = b.id)")
            conn.from_arrow(batch.data).project(_projection(columns, batch, loaded_at)).insert_into(table)
            conn.unregister("__mkpi_batch")
        conn.execute("COMMIT")
        conn.execute("CHECKPOINT")
        return time.perf_counter() - start
    finally:
        conn.close()


def timed_pages(size: int, tail: int) -> int:
    """The pages timed for the baseline and the incremental load: `tail`, or half a small list's pages."""
    return max(1, min(tail, size // PAGE // 2))


def one_run(size: int, tail: int) -> dict[str, float]:
    """Milliseconds per page of each way at table size `size`."""
    stream = contacts_stream()
    tail = timed_pages(size, tail)
    workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-hubspot-"))
    try:
        seconds, count = load_staged(workdir / "full.duckdb", list_pages(stream, 0, size // PAGE))
        out = {"full": seconds / count * 1000}
        shutil.copyfile(workdir / "full.duckdb", workdir / "base.duckdb")
        seconds, count = load_staged(workdir / "full.duckdb", changed_pages(stream, size, tail))
        out["incremental"] = seconds / count * 1000
        # the baseline: the list's last pages (the table holding the rest), then the same changed pages
        load_staged(workdir / "old.duckdb", list_pages(stream, 0, size // PAGE - tail))
        out["full old"] = load_per_page_delete(workdir / "old.duckdb",
                                               list(list_pages(stream, size - tail * PAGE, tail))) / tail * 1000
        out["incremental old"] = load_per_page_delete(workdir / "base.duckdb",
                                                      changed_pages(stream, size, tail)) / tail * 1000
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(sizes: tuple[int, ...], runs: int, tail: int) -> list[Row]:
    per: dict[int, list[dict[str, float]]] = {size: [one_run(size, tail) for _ in range(runs)] for size in sizes}
    out: list[Row] = []
    for size, measured in per.items():
        for way, what in (("full", f"full list of {size:,} records"),
                          ("incremental", f"{timed_pages(size, tail)} pages of changes into {size:,} records")):
            ours, old = Sample(tuple(m[way] for m in measured)), Sample(tuple(m[f"{way} old"] for m in measured))
            ratio = ratio_sample(old.values, ours.values)
            out.append(Row("4 hubspot upsert", f"ms per 100-record page, {what}", ours.show(" ms"),
                           f"{old.show(' ms')} per-page delete", ratio.show("x faster", 2), "",
                           size=f"{size:,} records", includes=INCLUDES[way], sample=ours, base=old.median,
                           ratios=ratio))
    if len(sizes) >= 2:
        small, large = min(sizes), max(sizes)
        ratio = ratio_sample([m["full"] for m in per[large]], [m["full"] for m in per[small]])
        old = ratio_sample([m["full old"] for m in per[large]], [m["full old"] for m in per[small]])
        out.append(Row("4 hubspot upsert", f"per-page cost of a full list, {large:,} vs {small:,} records",
                       ratio.show("x", 3), f"per-page delete: {old.show('x', 3)}", "", "<= 1.25x (flat)",
                       ok=ratio.median <= 1.25, size=f"{small:,} and {large:,} records", includes=INCLUDES["full"],
                       sample=ratio, base=old.median, ratios=ratio, limit=1.25))
    return out


INCLUDES = {"full": "load_batches of the whole list to COMMIT and CHECKPOINT, over its pages; the baseline's "
                    "last pages only, the table holding the rest",
            "incremental": "load_batches of the changed pages to COMMIT and CHECKPOINT (one merge: one scan of the "
                           "table), over its pages; the baseline the same pages deleted and inserted page by page"}


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,500000", help="comma-separated record counts")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tail-pages", type=int, default=20, help="pages timed for the baseline and incremental")
    args = parser.parse_args(argv)
    result = measure(tuple(int(s) for s in args.sizes.split(",")), args.runs, args.tail_pages)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
