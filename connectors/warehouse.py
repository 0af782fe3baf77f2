"""The one loader into DuckDB, and the connection helper every writer uses.

Why it looks like this:
- A batch *replaces its partition window* (delete the window for its account, insert the rows) so
  loading the same window twice leaves identical rows, and re-read windows restate recent days.
- Everything a materialisation writes is one transaction: a crash, an API error on the third
  account or a duplicate key rolls it all back, so the file is never left half-written.
- Rows go in as Arrow, never row by row: a window's pages are streamed into INSERT statements of a few row groups
  each (`_StreamedInsert`), which DuckDB scans with all its threads while the next page is checked and read; a
  page is released once written (nothing registered with the connection): memory stays flat in a load's rows.
- Upsert streams (CRM records by id) stage a load's pages and merge them into the table once
  (`_UpsertStage`): the cost per page does not grow with the table.
- Connections are closed in `finally` (dagster-duckdb's resource does not on error, which keeps the
  single-writer lock until garbage collection), and opening retries while another writer holds it.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from connectors.batches import Batch, Cursor, Stream, Window
from connectors.ducklake import is_ducklake, open_lake, retry_on_conflict
from connectors.errors import ConfigError, InvalidResponse
from connectors.settings import WarehouseSettings

if TYPE_CHECKING:
    import numpy as np

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


# The connection inside `backend_known`, with the answers `is_lake` gave for it there (by the function that asked).
_BACKEND: ContextVar[tuple[duckdb.DuckDBPyConnection, dict[Callable[..., bool], bool]] | None] = ContextVar(
    "mkpi_backend", default=None)


@contextmanager
def backend_known(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Inside it, `is_lake(conn)` asks DuckDB once and answers from that afterwards (a nested block on the same
    connection shares it): a KPI rebuild asked duckdb_databases() at every transaction and branch, 19 times a one-day
    recompute of the per-table path (issue #21 target 5). Scoped to a call, never kept per connection: a `USE`
    between calls changes the answer (connectors.ducklake.is_ducklake); none runs inside a rebuild."""
    current = _BACKEND.get()
    if current is not None and current[0] is conn:
        yield
        return
    token = _BACKEND.set((conn, {}))
    try:
        yield
    finally:
        _BACKEND.reset(token)


def is_lake(conn: duckdb.DuckDBPyConnection, ask: Callable[[duckdb.DuckDBPyConnection], bool] | None = None) -> bool:
    """Whether `conn` is a DuckLake's: `ask(conn)` (connectors.ducklake.is_ducklake unless given), asked once inside
    a `backend_known` block for the same connection."""
    ask = ask or is_ducklake
    current = _BACKEND.get()
    if current is None or current[0] is not conn:
        return ask(conn)
    answers = current[1]
    if ask not in answers:
        answers[ask] = ask(conn)
    return answers[ask]


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
    if not is_lake(conn):  # a lake has no WAL; its CHECKPOINT is maintenance (docs/ducklake.md), not per load
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


def _duckdb_columns(conn: duckdb.DuckDBPyConnection, data: pa.Table) -> dict[str, str]:
    """The DuckDB column types of an Arrow table, as DuckDB reads it (a relation: nothing is registered)."""
    relation = conn.from_arrow(data)
    return {name: str(dtype) for name, dtype in zip(relation.columns, relation.dtypes, strict=True)}


def _ensure_table(conn: duckdb.DuckDBPyConnection, stream: Stream, data: pa.Table) -> None:
    """Create the table from the batch's Arrow schema; add columns the source started sending.

    Through a relation of the Arrow table, never `conn.register`: inside a transaction a registered view keeps its
    Arrow table alive until COMMIT (measured: 5M rows in pages held ~400 MB more), so a load's memory grew with
    its rows (issue #21 target 2)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(stream.schema_name)}")
    existing = _table_columns(conn, stream.table)
    if not existing:
        conn.from_arrow(data).project(
            "*, CAST(NULL AS TIMESTAMPTZ) AS _loaded_at, CAST(NULL AS DATE) AS _window_start, "
            "CAST(NULL AS DATE) AS _window_end").limit(0).create(quote_ident(stream.table))
        return
    for column_name, column_type in _duckdb_columns(conn, data).items():
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


@dataclass
class _UpsertStage:
    """The pages one load brings for an upsert stream, staged in temporary tables and merged into the table once.

    Why: deleting by key per page scans the whole table each time (a `DELETE ... WHERE EXISTS` per 100-row page
    cost 10 ms at 20k rows and 25 ms at 300k, issue #21 target 4); staged, a page costs the same at any table size
    and the table is scanned once per load. `rows` holds the pages' rows, `replaced` the replace_by values each page
    replaces (its rows' and its `replaces`'), both tagged with the page's number: a later page wins, as when
    pages were applied one after the other. Pages are written to the stage some thousand rows at a time (one
    statement per 100-row page cost more than the page). Temporary tables live and die with the load's
    transaction."""

    FLUSH_ROWS = 10_000

    stream: Stream
    rows: str
    replaced: str
    staged: list[str]  # the staged rows' columns after _page: the table's when the stage was made, and since
    pages: int = 0
    pending: list[tuple[int, Batch]] = field(default_factory=list)  # pages not staged yet: one window and shape
    pending_rows: int = 0
    pending_columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, conn: duckdb.DuckDBPyConnection, stream: Stream, number: int) -> _UpsertStage:
        stage = cls(stream, f"__mkpi_stage_{number}", f"__mkpi_replaced_{number}",
                    list(_table_columns(conn, stream.table)))
        table = quote_ident(stream.table)
        conn.execute(f"CREATE TEMP TABLE {stage.rows} AS SELECT 0 AS _page, * FROM {table} LIMIT 0")
        conn.execute(f"CREATE TEMP TABLE {stage.replaced} AS SELECT 0 AS _page, {stage._replace_by()} "
                     f"FROM {table} LIMIT 0")
        return stage

    def _replace_by(self) -> str:
        return ", ".join(quote_ident(k) for k in self.stream.replace_by or self.stream.key)

    def add(self, conn: duckdb.DuckDBPyConnection, batch: Batch, columns: dict[str, str], loaded_at: datetime) -> None:
        """Stage one page (its rows, and the replace_by values it replaces), with the pages before it when they
        reach FLUSH_ROWS; a page of another window or shape first stages those before it."""
        if self.pending and (batch.window != self.pending[0][1].window
                             or batch.data.schema != self.pending[0][1].data.schema):
            self.flush(conn, loaded_at)
        self.pages += 1
        self.pending.append((self.pages, batch))
        self.pending_rows += batch.num_rows + (batch.replaces.num_rows if batch.replaces is not None else 0)
        self.pending_columns = columns
        if self.pending_rows >= self.FLUSH_ROWS:
            self.flush(conn, loaded_at)

    def flush(self, conn: duckdb.DuckDBPyConnection, loaded_at: datetime) -> None:
        """Write the pending pages to the stage: two or three statements, whatever their number."""
        if not self.pending:
            return
        self._sync_columns(conn, self.pending_columns)
        first = self.pending[0][1]
        # one chunk: DuckDB scans an Arrow table of a hundred 100-row chunks three times slower than one chunk
        rows = pa.concat_tables([_with_page(batch.data, page) for page, batch in self.pending]).combine_chunks()
        if rows.num_rows:
            select = _projection(self.pending_columns, first, loaded_at)
            conn.from_arrow(rows).project(f"_page, {select}").insert_into(self.rows)
            conn.from_arrow(rows).project(f"_page, {self._replace_by()}").insert_into(self.replaced)
        keys = pa.schema([self.stream.schema.field(k) for k in self.stream.replace_by or self.stream.key])
        replaces = [_with_page(batch.replaces.cast(keys), page) for page, batch in self.pending
                    if batch.replaces is not None and batch.replaces.num_rows]
        if replaces:
            replaced = pa.concat_tables(replaces).combine_chunks()
            conn.from_arrow(replaced).project(f"_page, {self._replace_by()}").insert_into(self.replaced)
        self.pending, self.pending_rows = [], 0

    def _sync_columns(self, conn: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> None:
        """Add to the staged rows the columns the table gained during this load (schema drift between pages)."""
        for name, dtype in columns.items():
            if name not in self.staged:
                conn.execute(f"ALTER TABLE {self.rows} ADD COLUMN {quote_ident(name)} {dtype}")
                self.staged.append(name)

    def merge(self, conn: duckdb.DuckDBPyConnection, columns: dict[str, str], loaded_at: datetime) -> None:
        """Refuse duplicate keys among the rows to insert, delete every row a page replaces, insert each staged row
        no later page replaced, drop the stage.

        The key check needs the staged rows only: every table row sharing a key with one of them is deleted (the
        key holds the replace_by columns, and each staged row's values are in `replaced`), so a duplicate after the
        merge can only be two rows inserted now; the table was unique before, as every load checks this."""
        self.flush(conn, loaded_at)
        table = quote_ident(self.stream.table)
        on = " AND ".join(f"t.{quote_ident(k)} = r.{quote_ident(k)}" for k in self.stream.replace_by or self.stream.key)
        names = ", ".join(quote_ident(name) for name in columns)
        kept = f"FROM {self.rows} AS t WHERE NOT EXISTS (SELECT 1 FROM {self.replaced} AS r WHERE {on} AND " \
               "r._page > t._page)"
        keys = ", ".join(f"t.{quote_ident(k)}" for k in self.stream.key)
        _refuse_duplicate(self.stream, conn.execute(f"SELECT {keys}, count(*) {kept} GROUP BY ALL HAVING count(*) > 1 "
                                                    "LIMIT 1").fetchone())
        conn.execute(f"DELETE FROM {table} AS t WHERE EXISTS (SELECT 1 FROM {self.replaced} AS r WHERE {on})")
        conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} {kept}")
        conn.execute(f"DROP TABLE {self.rows}")
        conn.execute(f"DROP TABLE {self.replaced}")


def _with_page(data: pa.Table, page: int) -> pa.Table:
    """`data` with its page number as a first column `_page`, for the stage."""
    return data.add_column(0, "_page", pa.repeat(pa.scalar(page, pa.int32()), data.num_rows))


def _refuse_duplicate(stream: Stream, dup: tuple[object, ...] | None) -> None:
    """Raise, naming the key and its count, when a check found a duplicate (its key values, then the count)."""
    if dup is not None:
        shown = dict(zip(stream.key, dup[:-1], strict=True))
        raise ValueError(f"{stream.table}: duplicate key {shown} ({dup[-1]} rows); nothing was written")


def _check_unique_keys(conn: duckdb.DuckDBPyConnection, stream: Stream) -> None:
    """Refuse duplicate keys anywhere in the table."""
    keys = ", ".join(quote_ident(k) for k in stream.key)
    _refuse_duplicate(stream, conn.execute(f"SELECT {keys}, count(*) FROM {quote_ident(stream.table)} GROUP BY ALL "
                                           "HAVING count(*) > 1 LIMIT 1").fetchone())


def _check_unique(conn: duckdb.DuckDBPyConnection, stream: Stream, window: Window) -> None:
    """Refuse to commit duplicate keys in the window just written: duplicates are never silent. Exact for the
    table when the new rows decide (`_new_rows_decide`): a key holds a date inside this window."""
    keys = ", ".join(quote_ident(k) for k in stream.key)
    part = quote_ident(stream.partition_column)
    _refuse_duplicate(stream, conn.execute(
        f"SELECT {keys}, count(*) AS n FROM {quote_ident(stream.table)} "
        f"WHERE ({part} BETWEEN ? AND ?) OR ({part} IS NULL AND _window_start >= ? AND _window_end <= ?) "
        f"GROUP BY ALL HAVING count(*) > 1 LIMIT 1",
        [window.start, window.end, window.start, window.end],
    ).fetchone())


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


def _key_hashes(conn: duckdb.DuckDBPyConnection, batch: Batch) -> np.ndarray:
    """One 64-bit hash per new row's key, computed by DuckDB over the Arrow batch (a relation: nothing registered).

    The batch's scope columns are one value for all its rows (`_check_within`), so DuckDB hashes the other key
    columns and the scope's hash is mixed in (xor: distinct keys of one scope keep distinct hashes). Hashing the
    account string on every row was two thirds of the time."""
    import numpy as np

    stream = batch.stream
    rest = [quote_ident(k) for k in stream.key if k not in batch.scope]
    if not rest:  # the key is the scope: every row of the batch has the same key
        return np.zeros(batch.num_rows, np.uint64) ^ _scope_hash(batch)
    hashes = conn.from_arrow(batch.data).project(f"hash({', '.join(rest)}) AS h").fetchnumpy()["h"]
    return np.asarray(hashes, np.uint64) ^ _scope_hash(batch)


def _scope_hash(batch: Batch) -> np.uint64:
    """A 64-bit hash of the batch's scope (its account): a stable digest, the same in every process."""
    import numpy as np

    text = "\x1f".join(f"{column}={value}" for column, value in sorted(batch.scope.items()))
    return np.uint64(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _projection(columns: dict[str, str], batch: Batch, loaded_at: datetime) -> str:
    """The SELECT list putting a batch's columns in the table's order: load metadata as constants, a column the
    batch lacks (the table gained it earlier) as a typed NULL."""
    present = set(batch.data.schema.names)
    meta = {"_loaded_at": f"CAST({_literal(loaded_at.isoformat())} AS TIMESTAMPTZ)",
            "_window_start": f"CAST({_literal(batch.window.start.isoformat())} AS DATE)",
            "_window_end": f"CAST({_literal(batch.window.end.isoformat())} AS DATE)"}
    return ", ".join(quote_ident(name) if name in present else meta.get(name, f"CAST(NULL AS {dtype})")
                     for name, dtype in columns.items())


class _StreamedInsert:
    """The INSERT statements of a run of pages of one table, window, account and schema, fed page by page.

    Why: an INSERT per page scans its one Arrow chunk on one thread and ends each statement on a partial row group
    (measured at 5M rows in pages of 100,000: ~1.8x the CPU of statements over whole row groups), where DuckDB
    scans a stream of row-group-sized batches with all its threads, as it reads dlt's parquet files (issue #21
    target 2). So the pages' rows are re-cut into batches of DuckDB's row group size and streamed, STATEMENT_BATCHES
    at a time, into statements that run on a thread of their own (`_Statement`) while the loading thread checks and
    hashes the next page and the connector reads it. A statement ends every STATEMENT_BATCHES row groups: DuckDB
    holds what a statement writes until it ends (one statement over 10M rows peaked at 2x the memory of an INSERT
    per page; four row groups at ~1.05x). Memory stays bounded whatever the rows: the rows being cut (under one row
    group, plus a page), the queue's batches, those DuckDB converts. Row order is the pages' (DuckDB keeps a
    stream's order: preserve_insertion_order stays on)."""

    ROW_GROUP_ROWS = 122_880  # DuckDB's row group size (duckdb/duckdb src/include/duckdb/storage/storage_info.hpp)
    STATEMENT_BATCHES = 4

    def __init__(self, conn: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], first: Batch,
                 loaded_at: datetime) -> None:
        self.conn, self.table, self.first = conn, table, first
        self.projection = _projection(columns, first, loaded_at)
        self.cut: list[pa.Table] = []  # rows handed over, not sent yet: fewer than a row group
        self.cut_rows = 0
        self.statement: _Statement | None = None

    def accepts(self, batch: Batch) -> bool:
        """Whether `batch` goes into these statements: a window page of the same table, window, account, schema."""
        first = self.first
        return (batch.stream.write_mode == "window" and batch.stream.table == first.stream.table
                and batch.window == first.window and batch.scope == first.scope
                and batch.data.schema.equals(first.data.schema))

    def put(self, data: pa.Table) -> None:
        """Hand a page's rows over; whole row groups are sent, the rest waits for the next page."""
        self.cut.append(data)
        self.cut_rows += data.num_rows
        if self.cut_rows < self.ROW_GROUP_ROWS:
            return
        rows = pa.concat_tables(self.cut).combine_chunks()
        whole = self.ROW_GROUP_ROWS * (rows.num_rows // self.ROW_GROUP_ROWS)
        for offset in range(0, whole, self.ROW_GROUP_ROWS):
            self._send(rows.slice(offset, self.ROW_GROUP_ROWS).to_batches()[0])
        rest = rows.slice(whole)
        self.cut, self.cut_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self, *, failed: bool = False) -> None:
        """Send the rest and end the statement, waiting for it; raise its error unless the load already `failed`
        (whose error goes on, and whose transaction is rolled back)."""
        try:
            if not failed and self.cut:
                for batch in pa.concat_tables(self.cut).to_batches():
                    self._send(batch)
        except BaseException:
            failed = True
            raise
        finally:
            self.cut, self.cut_rows = [], 0
            statement, self.statement = self.statement, None
            if statement is not None:
                statement.end(failed=failed)

    def _send(self, batch: pa.RecordBatch) -> None:
        """Send a batch to the open statement (started if none is), ending it at STATEMENT_BATCHES."""
        if self.statement is None:
            self.statement = _Statement(self.conn, self.table, self.projection, batch.schema)
        self.statement.send(batch)
        if self.statement.sent >= self.STATEMENT_BATCHES:
            statement, self.statement = self.statement, None
            statement.end()


class _Statement:
    """One `INSERT INTO table SELECT projection FROM` an Arrow stream, run on a thread of its own: the loading thread
    sends its batches through a queue of QUEUE_BATCHES, DuckDB's threads read them one at a time. Nothing else uses
    the connection until `end` has waited for the statement."""

    QUEUE_BATCHES = 2

    def __init__(self, conn: duckdb.DuckDBPyConnection, table: str, projection: str, schema: pa.Schema) -> None:
        self.queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(self.QUEUE_BATCHES)
        self.error: BaseException | None = None
        self.sent = 0
        reader = pa.RecordBatchReader.from_batches(schema, self._batches())
        relation = conn.from_arrow(reader).project(projection)
        self.thread = threading.Thread(target=self._run, args=(relation, table), name="mkpi-insert", daemon=True)
        self.thread.start()

    def send(self, batch: pa.RecordBatch) -> None:
        """Queue a batch; raise the statement's error if it stopped."""
        self._put(batch)
        self.sent += 1

    def end(self, *, failed: bool = False) -> None:
        """End the stream and wait for the statement; raise its error unless the load already `failed`."""
        try:
            self._put(None)
        finally:
            self.thread.join()
        if self.error is not None and not failed:
            raise self.error

    def _put(self, batch: pa.RecordBatch | None) -> None:
        """Queue a batch (None: the end) while the statement runs; once it stopped on an error, raise that."""
        while True:
            if not self.thread.is_alive():
                if batch is None:
                    return
                raise self.error or RuntimeError("the loader's INSERT ended before its last batch")
            try:
                self.queue.put(batch, timeout=0.05)
                return
            except queue.Full:
                continue

    def _batches(self) -> Iterator[pa.RecordBatch]:
        """The statement's batches, read by DuckDB's threads one at a time, until the end."""
        while (batch := self.queue.get()) is not None:
            yield batch

    def _run(self, relation: duckdb.DuckDBPyRelation, table: str) -> None:
        try:
            relation.insert_into(table)
        except BaseException as exc:  # raised by the loading thread (`end`, `_put`)
            self.error = exc


class _KeyHashes:
    """The key hashes of one table's new rows, to tell cheaply that no two new rows share a key.

    Checking hashes in numpy is several times cheaper than grouping the window by its key columns in SQL; a
    collision (a duplicate, or rarely two keys with one hash) sends the table to the exact check, which names the
    duplicate key. Each page's hashes are sorted as they come (8 bytes per row are kept); at the end they are
    merged one sixteenth of the hash range at a time, so the check needs little more memory than the hashes."""

    BUCKETS = 16

    def __init__(self) -> None:
        self.pages: list[np.ndarray] = []

    def add(self, hashes: np.ndarray) -> None:
        hashes.sort()
        self.pages.append(hashes)

    def collide(self) -> bool:
        """Whether two of the hashes are equal."""
        import numpy as np

        if any(bool((page[1:] == page[:-1]).any()) for page in self.pages):
            return True
        if len(self.pages) < 2:
            return False
        edges = np.arange(1, self.BUCKETS, dtype=np.uint64) * np.uint64(2**64 // self.BUCKETS)
        bounds = [(0, *np.searchsorted(page, edges).tolist(), len(page)) for page in self.pages]
        for bucket in range(self.BUCKETS):
            merged = np.concatenate([page[cut[bucket]:cut[bucket + 1]] for page, cut in zip(self.pages, bounds,
                                                                                           strict=True)])
            merged.sort(kind="stable")  # timsort: the pages' slices are sorted runs, merged in linear time
            if bool((merged[1:] == merged[:-1]).any()):
                return True
        return False


def load_batches(conn: duckdb.DuckDBPyConnection, batches: Iterable[Batch]) -> LoadResult:
    """Replace each batch's window in one transaction (see `_load_batches_once`). On a DuckLake, a commit that
    conflicts with another writer's is re-run whole (`retry_on_conflict`), so the batches are read first: a
    failing source still fails before anything is written."""
    if not is_ducklake(conn):
        return _load_batches_once(conn, batches)
    pages = list(batches)
    return retry_on_conflict(lambda: _load_batches_once(conn, pages))


class _Load:
    """One load's state inside its transaction: tables checked, windows cleared, upsert stages, keys to check.

    The pages of one window (one table, account and schema, one after the other) go into one INSERT statement fed
    page by page (`_StreamedInsert`): each statement costs milliseconds of its own and scans its input with all of
    DuckDB's threads. Key hashes are computed on a cursor of their own (another connection of the same database,
    outside the transaction: hashing reads no table) while that statement runs. `close` always ends the statement
    before COMMIT or ROLLBACK."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.result = LoadResult()
        self.loaded_at = datetime.now(UTC)
        self.cleared: set[tuple[str, Window, tuple[tuple[str, str], ...]]] = set()
        self.written: dict[str, tuple[Stream, list[Window]]] = {}
        self.cursors: dict[tuple[str, str, str], Cursor] = {}
        self.ensured: set[tuple[str, tuple[str, ...]]] = set()  # (table, column names) checked: pages share a schema
        self.columns: dict[str, dict[str, str]] = {}  # each table's columns after this load's evolutions
        self.stages: dict[str, _UpsertStage] = {}
        self.key_hashes: dict[str, _KeyHashes] = {}  # window tables whose new rows alone decide uniqueness
        self.full_check: set[str] = set()  # window tables whose new rows do not decide: the whole table is checked
        self.insert: _StreamedInsert | None = None  # the window pages' open statement
        self.hasher: duckdb.DuckDBPyConnection | None = None  # the key hashes' cursor, made at the first hash

    def add(self, batch: Batch) -> None:
        """Write (or stage) one page; nothing keeps it once written."""
        stream = batch.stream
        if self.insert is not None and not self.insert.accepts(batch):
            self._end_insert()  # before the table evolves or another window is deleted: pages apply in their order
        shape = (stream.table, tuple(batch.data.schema.names))
        if shape not in self.ensured:  # check (and evolve) the table once per stream and schema per load
            _ensure_table(self.conn, stream, batch.data)
            self.ensured.add(shape)
            self.columns[stream.table] = _table_columns(self.conn, stream.table)
        columns = self.columns[stream.table]  # the latest: a page without a column added earlier inserts NULL there
        if stream.write_mode == "upsert":
            if stream.table not in self.stages:
                self.stages[stream.table] = _UpsertStage.create(self.conn, stream, len(self.stages) + 1)
            self.stages[stream.table].add(self.conn, batch, columns, self.loaded_at)
        else:
            self._replace_window(batch, columns)
        self._account(batch)

    def _replace_window(self, batch: Batch, columns: dict[str, str]) -> None:
        """Delete the batch's window for its account (once per load), hand its rows to the window's INSERT, note
        their key hashes (while DuckDB writes them)."""
        stream = batch.stream
        if batch.num_rows:
            _check_within(batch)
        decides = _new_rows_decide(stream, batch)
        if not decides:
            self.full_check.add(stream.table)
        scope_key = (stream.table, batch.window, tuple(sorted(batch.scope.items())))
        if scope_key not in self.cleared:
            self._end_insert()  # the connection is the statement's while it runs
            _delete_window(self.conn, batch)
            self.cleared.add(scope_key)
        if not batch.num_rows:
            return
        hasher = self._hasher() if decides else None  # made before the statement: never while it runs
        if self.insert is None:
            self.insert = _StreamedInsert(self.conn, quote_ident(stream.table), columns, batch, self.loaded_at)
        self.insert.put(batch.data)
        if hasher is not None:
            self.key_hashes.setdefault(stream.table, _KeyHashes()).add(_key_hashes(hasher, batch))

    def _hasher(self) -> duckdb.DuckDBPyConnection:
        """The cursor the key hashes are computed on (the connection is the open INSERT's)."""
        if self.hasher is None:
            self._end_insert()  # a cursor is made from the connection: never while a statement runs on it
            self.hasher = self.conn.cursor()
        return self.hasher

    def _end_insert(self) -> None:
        """End the window pages' INSERT statement, raising its error."""
        insert, self.insert = self.insert, None
        if insert is not None:
            insert.close()

    def close(self, *, failed: bool) -> None:
        """Whatever happened: the open statement ended (its error raised unless the load `failed` already), the
        hashing cursor closed. Before COMMIT or ROLLBACK."""
        insert, self.insert = self.insert, None
        try:
            if insert is not None:
                insert.close(failed=failed)
        finally:
            if self.hasher is not None:
                self.hasher.close()
                self.hasher = None

    def _account(self, batch: Batch) -> None:
        """What the run's metadata says was written, and the cursor this page reached."""
        stream, result = batch.stream, self.result
        result.rows_by_table[stream.table] = result.rows_by_table.get(stream.table, 0) + batch.num_rows
        result.schemas[stream.table] = stream.schema
        windows = result.windows.setdefault(stream.table, [])
        if str(batch.window) not in windows:
            windows.append(str(batch.window))
        self.written.setdefault(stream.table, (stream, []))[1].append(batch.window)
        if batch.cursor is not None:
            self.cursors[(batch.cursor.source, batch.cursor.stream, batch.cursor.account)] = batch.cursor

    def finish(self) -> LoadResult:
        """Insert the last pages, merge the upsert stages, refuse duplicate keys, write the cursors: all before
        COMMIT. The new keys' hashes are compared while the last statement still writes."""
        collided = {table for table, hashes in self.key_hashes.items() if hashes.collide()}
        self._end_insert()
        for table, stage in self.stages.items():
            stage.merge(self.conn, self.columns[table], self.loaded_at)
        for stream, windows in self.written.values():
            if stream.write_mode == "upsert":
                continue  # checked by its merge
            if stream.table in self.full_check:
                _check_unique_keys(self.conn, stream)  # the whole table: older rows outside the window may share a key
                continue
            if stream.table not in collided:
                continue  # every new key is distinct, and nothing else in the table can share one
            for window in sorted(set(windows)):
                _check_unique(self.conn, stream, window)
        for cursor in self.cursors.values():  # committed with the rows they cover, or not at all
            _write_cursor(self.conn, cursor, self.loaded_at)
        return self.result


@contextmanager
def _no_progress_bar(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB's progress bar off during a load, then as it was (after COMMIT or ROLLBACK: an aborted transaction
    refuses SET): an INSERT fed by a slow connector lasts long enough for DuckDB to draw one into the run's log."""
    row = conn.execute("SELECT current_setting('enable_progress_bar')").fetchone()
    shown = bool(row and row[0])
    if shown:
        conn.execute("SET enable_progress_bar = false")
    try:
        yield
    finally:
        if shown:
            conn.execute("SET enable_progress_bar = true")


def _load_batches_once(conn: duckdb.DuckDBPyConnection, batches: Iterable[Batch]) -> LoadResult:
    """Replace each batch's window in one transaction. Several batches (pages) of one account and
    window delete that window once; an upsert stream's pages are staged and merged once. If iterating
    `batches` raises (an API error on a later page or account), nothing is written."""
    with _no_progress_bar(conn), transaction(conn):
        load = _Load(conn)
        try:
            for batch in batches:
                load.add(batch)
            result = load.finish()
        except BaseException:
            load.close(failed=True)
            raise
        load.close(failed=False)
        return result


def ensure_tables(conn: duckdb.DuckDBPyConnection, streams: Iterable[Stream]) -> None:
    """Create any missing raw table, empty, from its declared schema: KPI SQL can always read every
    source, even one that is not configured or not loaded yet (it simply contributes no rows)."""
    for stream in streams:
        if _table_columns(conn, stream.table):
            continue
        _ensure_table(conn, stream, stream.schema.empty_table())


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
