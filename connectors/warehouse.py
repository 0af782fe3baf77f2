"""The one loader into DuckDB, and the connection helper every writer uses.

Why it looks like this:
- A batch *replaces its partition window* (delete the window for its account, insert the rows) so
  loading the same window twice leaves identical rows, and re-read windows restate recent days.
- Everything a materialisation writes is one transaction: a crash, an API error on the third
  account or a duplicate key rolls it all back, so the file is never left half-written.
- Rows go in as Arrow tables (a relation's `insert_into`, see `_insert`), never row by row.
- Connections are closed in `finally` (dagster-duckdb's resource does not on error, which keeps the
  single-writer lock until garbage collection), and opening retries while another writer holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from connectors.batches import Batch, Cursor, Stream, Window
from connectors.ducklake import is_ducklake, open_lake, retry_on_conflict
from connectors.errors import ConfigError, InvalidResponse
from connectors.settings import WarehouseSettings

log = logging.getLogger("mkpi.warehouse")

META_COLUMNS = ("_loaded_at", "_window_start", "_window_end")


def quote_ident(name: str) -> str:
    """Quote a (possibly schema-qualified) identifier for DuckDB."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


@contextmanager
def connect(path: str | Path, *, read_only: bool = False, lock_timeout: float = 60.0) -> Iterator[
    duckdb.DuckDBPyConnection
]:
    """Open the DuckDB file at `path`, always a file (the analysts' copy, a test's or a benchmark's file), waiting
    for another process's lock; always close it. The working warehouse is opened by `open_warehouse`."""
    path = Path(path)
    if not read_only and str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def open_warehouse(settings: WarehouseSettings, *, read_only: bool = False, lock_timeout: float = 60.0) -> Iterator[
    duckdb.DuckDBPyConnection
]:
    """The working warehouse the settings name, chosen by `backend` and nothing else: the DuckDB file `duckdb_path`
    (one writer at a time; a lock is waited for up to `lock_timeout`) or the DuckLake (several writers at once;
    catalog MKPI_DUCKLAKE_CATALOG, Parquet files under `ducklake_data_path`, docs/ducklake.md). Always closed."""
    if settings.backend == "duckdb":
        with connect(settings.duckdb_path, read_only=read_only, lock_timeout=lock_timeout) as conn:
            yield conn
        return
    if settings.ducklake_catalog is None:  # WarehouseSettings refuses it when built; never fall back to a file
        raise ConfigError("warehouse.backend is ducklake but MKPI_DUCKLAKE_CATALOG is not set",
                          key="MKPI_DUCKLAKE_CATALOG")
    with open_lake(settings.ducklake_catalog, settings.ducklake_data_path, read_only=read_only) as conn:
        yield conn


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, rolling back on any exception, then CHECKPOINT so the WAL stays small."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")  # a COMMIT that fails (a DuckLake conflict) has rolled back already: no ROLLBACK
    if not is_ducklake(conn):  # a lake has no WAL; its CHECKPOINT is maintenance (docs/ducklake.md), not per load
        conn.execute("CHECKPOINT")


@dataclass
class LoadResult:
    """What a load wrote, for run metadata."""

    rows_by_table: dict[str, int] = field(default_factory=dict)
    windows: dict[str, list[str]] = field(default_factory=dict)
    schemas: dict[str, pa.Schema] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.rows_by_table.values())


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether `schema.name` is a table or view of the current database (the DuckDB file, or the DuckLake
    catalog in use), not of another attached one. The one way every module asks."""
    schema, name = table.split(".", 1)
    row = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                       "AND table_schema = ? AND table_name = ?", [schema, name]).fetchone()
    return bool(row and row[0])


def _table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    schema, name = table.split(".", 1)
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _ensure_table(conn: duckdb.DuckDBPyConnection, stream: Stream, view: str) -> None:
    """Create the table from the batch's Arrow schema; add columns the source started sending."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(stream.schema_name)}")
    existing = _table_columns(conn, stream.table)
    if not existing:
        conn.execute(
            f"CREATE TABLE {quote_ident(stream.table)} AS SELECT *, "
            "CAST(NULL AS TIMESTAMPTZ) AS _loaded_at, CAST(NULL AS DATE) AS _window_start, "
            f"CAST(NULL AS DATE) AS _window_end FROM {view} LIMIT 0"
        )
        return
    described = conn.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
    for column_name, column_type, *_ in described:
        if column_name not in existing:
            log.info("%s: new column %s %s", stream.table, column_name, column_type)
            conn.execute(
                f"ALTER TABLE {quote_ident(stream.table)} ADD COLUMN {quote_ident(column_name)} {column_type}"
            )


def _delete_window(conn: duckdb.DuckDBPyConnection, batch: Batch) -> int:
    stream = batch.stream
    part = quote_ident(stream.partition_column)
    where = f"(({part} BETWEEN ? AND ?) OR ({part} IS NULL AND _window_start >= ? AND _window_end <= ?))"
    params: list[object] = [batch.window.start, batch.window.end, batch.window.start, batch.window.end]
    for column, value in batch.scope.items():
        where += f" AND {quote_ident(column)} = ?"
        params.append(value)
    row = conn.execute(f"DELETE FROM {quote_ident(stream.table)} WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0


CURSOR_TABLE = "_mkpi.cursors"


def _ensure_cursor_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS _mkpi")
    # DuckLake has no PRIMARY KEY: there _write_cursor keeps the key unique by deleting before inserting.
    key = "" if is_ducklake(conn) else ", PRIMARY KEY (source, stream, account)"
    conn.execute(f"CREATE TABLE IF NOT EXISTS {CURSOR_TABLE} (source VARCHAR, stream VARCHAR, account VARCHAR, "
                 f"value VARCHAR, updated_at TIMESTAMPTZ{key})")


def _write_cursor(conn: duckdb.DuckDBPyConnection, cursor: Cursor, at: datetime) -> None:
    _ensure_cursor_table(conn)
    values = [cursor.source, cursor.stream, cursor.account, cursor.value, at]
    if is_ducklake(conn):  # no INSERT OR REPLACE without a primary key
        conn.execute(f"DELETE FROM {CURSOR_TABLE} WHERE source = ? AND stream = ? AND account = ?", values[:3])
        conn.execute(f"INSERT INTO {CURSOR_TABLE} VALUES (?, ?, ?, ?, ?)", values)
        return
    conn.execute(f"INSERT OR REPLACE INTO {CURSOR_TABLE} VALUES (?, ?, ?, ?, ?)", values)


def read_cursor(conn: duckdb.DuckDBPyConnection, source: str, stream: str, account: str) -> str | None:
    """The committed cursor of an incremental stream, or None before its first load."""
    if not table_exists(conn, CURSOR_TABLE):
        return None
    row = conn.execute(f"SELECT value FROM {CURSOR_TABLE} WHERE source = ? AND stream = ? AND account = ?",
                       [source, stream, account]).fetchone()
    return str(row[0]) if row else None


def _upsert(conn: duckdb.DuckDBPyConnection, batch: Batch, view: str) -> None:
    """Replace the rows whose key is in the batch (delete by key, then insert), within the transaction; also the
    rows of the keys the batch `replaces` (keys whose rows are all gone at the source)."""
    stream = batch.stream
    columns = stream.replace_by or stream.key
    on = " AND ".join(f"t.{quote_ident(k)} = b.{quote_ident(k)}" for k in columns)
    conn.execute(f"DELETE FROM {quote_ident(stream.table)} AS t WHERE EXISTS (SELECT 1 FROM {view} AS b WHERE {on})")
    if batch.replaces is not None and batch.replaces.num_rows:
        conn.register("__mkpi_replaces", batch.replaces)
        try:
            conn.execute(f"DELETE FROM {quote_ident(stream.table)} AS t "
                         f"WHERE EXISTS (SELECT 1 FROM __mkpi_replaces AS b WHERE {on})")
        finally:
            conn.unregister("__mkpi_replaces")


def _check_unique_keys(conn: duckdb.DuckDBPyConnection, stream: Stream) -> None:
    keys = ", ".join(quote_ident(k) for k in stream.key)
    dup = conn.execute(f"SELECT {keys}, count(*) FROM {quote_ident(stream.table)} GROUP BY ALL HAVING count(*) > 1 "
                       "LIMIT 1").fetchone()
    if dup is not None:
        shown = dict(zip(stream.key, dup[:-1], strict=True))
        raise ValueError(f"{stream.table}: duplicate key {shown} ({dup[-1]} rows); nothing was written")


def _check_unique(conn: duckdb.DuckDBPyConnection, stream: Stream, window: Window) -> None:
    """Refuse to commit duplicate keys in the window just written: duplicates are never silent. Exact for the
    table when the new rows decide (`_new_rows_decide`): a key holds a date inside this window."""
    keys = ", ".join(quote_ident(k) for k in stream.key)
    part = quote_ident(stream.partition_column)
    dup = conn.execute(
        f"SELECT {keys}, count(*) AS n FROM {quote_ident(stream.table)} "
        f"WHERE ({part} BETWEEN ? AND ?) OR ({part} IS NULL AND _window_start >= ? AND _window_end <= ?) "
        f"GROUP BY ALL HAVING count(*) > 1 LIMIT 1",
        [window.start, window.end, window.start, window.end],
    ).fetchone()
    if dup is not None:
        shown = dict(zip(stream.key, dup[:-1], strict=True))
        raise ValueError(f"{stream.table}: duplicate key {shown} ({dup[-1]} rows); nothing was written")


def _check_within(batch: Batch) -> None:
    """Refuse a window batch holding a row outside what it replaces: dated outside its window, or of another
    account than its scope. The loader deletes exactly the batch's window for its account; such a row would be
    committed beside the row already loaded for its day (a duplicate key: two `site_totals` rows for one day, the
    day's clicks counted twice), or on a day nobody asked for. An answer error, raised before anything of the load
    is committed (issue #19). Undated rows (a NULL date) belong to the window they are loaded with.

    Arrow's min/max and equality kernels over the batch's columns: a few milliseconds per million rows."""
    stream, window = batch.stream, batch.window
    account = ", ".join(str(value) for value in batch.scope.values()) or "all accounts"
    endpoint = f"{stream.table} rows read for {window}"
    for column, value in batch.scope.items():
        values = batch.data[column]
        same = pc.equal(values if pa.types.is_string(values.type) else values.cast(pa.string()), str(value))
        if not pc.all(same, skip_nulls=False).as_py():
            other = pc.filter(values, pc.invert(pc.fill_null(same, False)))[0].as_py()
            raise InvalidResponse(stream.schema_name, account, endpoint, column,
                                  f"a row of another account than {value!r}, whose window was not cleared", other)
    bounds = pc.min_max(batch.data[stream.partition_column])
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None:
        return
    offending = low if low < window.start else high if high > window.end else None
    if offending is not None:
        raise InvalidResponse(stream.schema_name, account, endpoint, stream.partition_column,
                              f"a row dated {offending.isoformat()}, outside the requested window {window} "
                              "(nothing was written)", offending)


def _new_rows_decide(stream: Stream, batch: Batch) -> bool:
    """True when only the rows written now can share a key: the key holds the date column and every scope
    column, every row is dated inside the batch's window and of its scope (`_check_within`), and that window
    was just deleted for that scope, so every older row differs in date or scope. An undated row (NULL date)
    may share its key with an undated row of another window, which the delete kept: the table is checked."""
    return (stream.partition_column in stream.key and all(column in stream.key for column in batch.scope)
            and batch.data[stream.partition_column].null_count == 0)


def _key_hashes(conn: duckdb.DuckDBPyConnection, stream: Stream, data: pa.Table) -> pa.Array:
    """One 64-bit hash per new row's key, computed by DuckDB over the Arrow batch (a relation, see `_insert`)."""
    keys = ", ".join(quote_ident(k) for k in stream.key)
    return pa.array(conn.from_arrow(data).project(f"hash({keys}) AS h").fetchnumpy()["h"], pa.uint64())


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _insert(conn: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], batch: Batch,
            loaded_at: datetime) -> None:
    """Append a batch through a relation (`from_arrow(...).insert_into`), its columns put in the table's order.

    Why not `INSERT ... SELECT FROM` a registered view: inside a transaction, DuckDB held about 75 bytes per
    row more until COMMIT that way (measured at 2M rows), so a backfill's memory grew with its rows
    (docs/benchmarks.md, target 5)."""
    present = set(batch.data.schema.names)
    meta = {"_loaded_at": f"CAST({_literal(loaded_at.isoformat())} AS TIMESTAMPTZ)",
            "_window_start": f"CAST({_literal(batch.window.start.isoformat())} AS DATE)",
            "_window_end": f"CAST({_literal(batch.window.end.isoformat())} AS DATE)"}
    select = [quote_ident(name) if name in present else meta.get(name, f"CAST(NULL AS {dtype})")
              for name, dtype in columns.items()]
    conn.from_arrow(batch.data).project(", ".join(select)).insert_into(table)


def _hashes_collide(hashes: list[pa.Array]) -> bool:
    """Whether two new rows may share a key. Checking hashes in Arrow is several times cheaper than grouping
    the window by its key columns in SQL; a collision (a duplicate, or rarely two keys with one hash) sends
    the table to the exact check, which names the duplicate key. Sorted with numpy (a second for 5M rows, twice
    the hashes' memory): Arrow's count_distinct needs about 200 bytes and 4 us per row."""
    import numpy as np

    if sum(len(h) for h in hashes) < 2:
        return False
    ordered = np.sort(np.concatenate([h.to_numpy(zero_copy_only=False) for h in hashes]))
    return bool((ordered[1:] == ordered[:-1]).any())


def load_batches(conn: duckdb.DuckDBPyConnection, batches: Iterable[Batch]) -> LoadResult:
    """Replace each batch's window in one transaction (see `_load_batches_once`). On a DuckLake, a commit that
    conflicts with another writer's is re-run whole (`retry_on_conflict`), so the batches are read first: a
    failing source still fails before anything is written."""
    if not is_ducklake(conn):
        return _load_batches_once(conn, batches)
    pages = list(batches)
    return retry_on_conflict(lambda: _load_batches_once(conn, pages))


def _load_batches_once(conn: duckdb.DuckDBPyConnection, batches: Iterable[Batch]) -> LoadResult:
    """Replace each batch's window in one transaction. Several batches (pages) of one account and
    window delete that window once. If iterating `batches` raises (an API error on a later page or
    account), nothing is written."""
    result = LoadResult()
    loaded_at = datetime.now(UTC)
    cleared: set[tuple[str, Window, tuple[tuple[str, str], ...]]] = set()
    written: dict[str, tuple[Stream, list[Window]]] = {}
    cursors: dict[tuple[str, str, str], Cursor] = {}
    ensured: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}  # pages of one stream share a schema
    key_hashes: dict[str, list[pa.Array]] = {}  # window tables whose new rows alone decide key uniqueness
    full_check: set[str] = set()  # window tables whose new rows do not decide: the whole table is checked
    with transaction(conn):
        for batch in batches:
            stream = batch.stream
            view = "__mkpi_batch"
            conn.register(view, batch.data)
            try:
                shape = (stream.table, tuple(batch.data.schema.names))
                if shape not in ensured:  # check (and evolve) the table once per stream and schema per load
                    _ensure_table(conn, stream, view)
                    ensured[shape] = _table_columns(conn, stream.table)
                if stream.write_mode == "window" and batch.num_rows:
                    _check_within(batch)
                if stream.write_mode == "window" and not _new_rows_decide(stream, batch):
                    full_check.add(stream.table)
                elif stream.write_mode == "window" and batch.num_rows:
                    key_hashes.setdefault(stream.table, []).append(_key_hashes(conn, stream, batch.data))
                if stream.write_mode == "upsert":
                    _upsert(conn, batch, view)
                else:
                    scope_key = (stream.table, batch.window, tuple(sorted(batch.scope.items())))
                    if scope_key not in cleared:
                        _delete_window(conn, batch)
                        cleared.add(scope_key)
                if batch.num_rows:
                    _insert(conn, quote_ident(stream.table), ensured[shape], batch, loaded_at)
            finally:
                conn.unregister(view)
            result.rows_by_table[stream.table] = result.rows_by_table.get(stream.table, 0) + batch.num_rows
            result.schemas[stream.table] = stream.schema
            windows = result.windows.setdefault(stream.table, [])
            if str(batch.window) not in windows:
                windows.append(str(batch.window))
            written.setdefault(stream.table, (stream, []))[1].append(batch.window)
            if batch.cursor is not None:
                cursors[(batch.cursor.source, batch.cursor.stream, batch.cursor.account)] = batch.cursor
        for stream, windows in written.values():
            if stream.write_mode == "upsert" or stream.table in full_check:
                _check_unique_keys(conn, stream)  # the whole table: older rows outside the window may share a key
                continue
            if not _hashes_collide(key_hashes.get(stream.table, [])):
                continue  # every new key is distinct, and nothing else in the table can share one
            for window in sorted(set(windows)):
                _check_unique(conn, stream, window)
        for cursor in cursors.values():  # committed with the rows they cover, or not at all
            _write_cursor(conn, cursor, loaded_at)
    return result


def ensure_tables(conn: duckdb.DuckDBPyConnection, streams: Iterable[Stream]) -> None:
    """Create any missing raw table, empty, from its declared schema: KPI SQL can always read every
    source, even one that is not configured or not loaded yet (it simply contributes no rows)."""
    for stream in streams:
        if _table_columns(conn, stream.table):
            continue
        view = "__mkpi_empty"
        conn.register(view, stream.schema.empty_table())
        try:
            _ensure_table(conn, stream, view)
        finally:
            conn.unregister(view)


def replace_table(conn: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    """Replace a small whole table (a mapping, a definition or rate table) with an Arrow table, in the
    caller's transaction if one is open."""
    schema, name = table.split(".", 1)
    view = f"__mkpi_replace_{name}"
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
    conn.register(view, data)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {quote_ident(table)} AS SELECT * FROM {view}")
    finally:
        conn.unregister(view)
