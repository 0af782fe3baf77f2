"""The analysts' copy: what analysts read, published atomically so they never block or see a half-run.

Why: DuckDB lets one process write a file, and a reader holding the file open blocks that writer.
Analysts keep notebooks, the DuckDB CLI or a BI tool open all day. So the working database stays private
to the pipeline, and after each successful KPI materialisation the `kpi` schema and the raw tables are
copied into a NEW file, which then replaces the analysts' file with one atomic rename. A reader that has
the old file open keeps reading that consistent snapshot; the next open sees the new one. The pipeline
never opens the analysts' file, so no reader can ever make a run fail.

Each copy records when it was built, from which run (`meta.build`) and how fresh each source is
(`meta.source_freshness`), so an analyst can tell how current a number is.
"""

import errno
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from connectors import registry
from connectors.errors import ConnectorError
from connectors.warehouse import quote_ident

# every source's raw schema is named after its registry code
RAW_SCHEMAS = registry.codes()
PUBLISHED_SCHEMAS = ("kpi", *RAW_SCHEMAS)
# meta tables of the working database copied too (each source's status, written by the publish step)
PUBLISHED_META = ("source_status",)
_ALIAS = "__mkpi_publish"


# How a full disk reads in an error: DuckDB passes the OS's strerror() through ('Could not write file "...": No
# space left on device', wrapped in 'CHECKPOINT during DETACH failed' when the copy is checkpointed on DETACH).
_DISK_FULL = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


class DiskFull(ConnectorError):
    """The disk holding the analysts' copy filled up while the new copy was written. The previous copy is left as it
    was (the new one is swapped in only when complete) and the temporary copy is removed."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) says the disk or the user's quota is full."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(exc) for text in _DISK_FULL):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True)
class PublishResult:
    path: str
    build_id: str
    tables: int
    bytes: int


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "AND table_catalog = current_database()", [schema, table]).fetchall()}


def publish_analyst_copy(conn: duckdb.DuckDBPyConnection, target: str | os.PathLike[str], *, run_id: str,
                         stale_sources: Sequence[str] = ()) -> PublishResult:
    """Copy the published schemas (and `meta.source_status`) from the working database (`conn`) into `target`,
    atomically. The KPI rows of `stale_sources` (sources failing since their last success: their rows are the
    last good ones) carry the quality flag `stale_source` in the copy."""
    target_path = Path(target)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    build_id = uuid.uuid4().hex
    tmp = target_path.with_name(f".{target_path.name}.{build_id}.tmp")
    # a copy a killed run left half-built (kill -9 runs no cleanup) is a whole database's worth of disk: drop it
    for stale in target_path.parent.glob(f".{target_path.name}.*.tmp*"):
        stale.unlink(missing_ok=True)
    built_at = datetime.now(UTC)
    relations = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE (table_schema IN ({', '.join(_sql_string(s) for s in PUBLISHED_SCHEMAS)}) "
        f"OR (table_schema = 'meta' AND table_name IN ({', '.join(_sql_string(t) for t in PUBLISHED_META)}))) "
        "AND table_catalog = current_database() ORDER BY 1, 2"
    ).fetchall()
    conn.execute(f"ATTACH {_sql_string(str(tmp))} AS {_ALIAS}")
    try:
        for schema in sorted({s for s, _ in relations} | {"meta"}):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ALIAS}.{quote_ident(schema)}")
        for schema, table in relations:  # views (weekly, monthly roll-ups) are materialised as tables
            name = f"{quote_ident(schema)}.{quote_ident(table)}"
            conn.execute(f"CREATE TABLE {_ALIAS}.{name} AS SELECT * FROM {name}")
        conn.execute(f"CREATE TABLE {_ALIAS}.meta.build AS SELECT ? AS build_id, ? AS run_id, ? AS built_at",
                     [build_id, run_id, built_at])
        if stale_sources:
            for schema, table in relations:
                if schema == "kpi" and "quality" in _columns(conn, schema, table):
                    conn.execute(f"UPDATE {_ALIAS}.kpi.{quote_ident(table)} SET quality = list_append(quality, "
                                 "'stale_source') WHERE source IN (SELECT unnest(?::VARCHAR[]))", [list(stale_sources)])
        freshness = []
        for schema, table in relations:
            if schema not in RAW_SCHEMAS:
                continue
            columns = _columns(conn, schema, table)
            last_date = "max(date)" if "date" in columns else "NULL"
            loaded = "max(_loaded_at)" if "_loaded_at" in columns else "NULL"
            freshness.append(
                f"SELECT {_sql_string(schema)} AS source, {_sql_string(table)} AS table_name, "
                f"CAST({last_date} AS DATE) AS last_date, CAST({loaded} AS TIMESTAMPTZ) AS last_loaded_at, "
                f"count(*) AS row_count FROM {quote_ident(schema)}.{quote_ident(table)}")
        if freshness:
            conn.execute(f"CREATE TABLE {_ALIAS}.meta.source_freshness AS {' UNION ALL '.join(freshness)}")
        else:
            conn.execute(f"CREATE TABLE {_ALIAS}.meta.source_freshness (source VARCHAR, table_name VARCHAR, "
                         "last_date DATE, last_loaded_at TIMESTAMPTZ, row_count BIGINT)")
        conn.execute(f"DETACH {_ALIAS}")  # checkpoints: the file is complete, with no WAL left beside it
    except BaseException as exc:
        _discard(conn, tmp)
        if is_disk_full(exc):
            raise DiskFull(_disk_full_message(target_path)) from exc
        raise
    os.replace(tmp, target_path)  # atomic: readers see the old file or the new one, never a mix
    return PublishResult(str(target_path), build_id, len(relations), target_path.stat().st_size)


def _discard(conn: duckdb.DuckDBPyConnection, tmp: Path) -> None:
    """Drop a copy that could not be finished: detach it if DuckDB still has it, then delete it and its WAL.

    The DETACH may fail again (a full disk fails its checkpoint twice: 'CHECKPOINT during DETACH failed'); the
    files go either way, or every failed publish would leave a database's worth of disk behind."""
    try:
        conn.execute(f"DETACH DATABASE IF EXISTS {_ALIAS}")
    except duckdb.Error:
        pass  # DuckDB has already invalidated and detached it
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)


def _disk_full_message(target: Path) -> str:
    """Which disk is full, for which file, what was kept, and how much room there is now."""
    try:
        free = f"; {shutil.disk_usage(target.parent).free / 1e6:,.1f} MB free there now"
    except OSError:
        free = ""
    kept = (f"The previous copy is unchanged (it takes {target.stat().st_size / 1e6:,.1f} MB)" if target.exists()
            else "There is no previous copy")
    return (f"the disk is full: no space left in {target.parent} to write the analysts' copy {target.name}{free}. "
            f"{kept} and the unfinished copy was removed; free space there, or set MKPI_ANALYST_DB to a file on a "
            "disk with room, then re-run")
