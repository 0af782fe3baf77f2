"""The DuckLake warehouse backend: several writers at once, catalog in PostgreSQL, data in Parquet files.

Why it exists: a DuckDB file has one writer at a time, so sources wait for each other. DuckLake keeps the
catalog (tables, snapshots, which Parquet file holds which rows) in PostgreSQL and the rows in Parquet files
under a data path (a directory or an object store), and commits by optimistic concurrency: writers of different
tables never wait for each other. The loader and the KPI SQL see an ordinary DuckDB connection whose current
database is the lake, so they run unchanged apart from the few branches `is_ducklake` guards.

Why it looks like this:
- The `ducklake` and `postgres` extensions are loaded from their PyPI packages (`duckdb-extension-ducklake`,
  `duckdb-extension-postgres`, pinned to the DuckDB version), with DuckDB's automatic install and load of known
  extensions switched off: nothing is ever downloaded at run time, and a version mismatch fails with the fix.
- The catalog connection string may hold a password: it never appears in a log line, an error or metadata
  (errors that quote it are re-raised with it masked).
- A conflicting concurrent commit (two writers deleting from the same table, creating the same schema) aborts
  the transaction; `retry_on_conflict` re-runs the whole unit of work, a bounded number of times with backoff.
- Loading the extensions (DuckDB checks each file's signature: tens of MB) and attaching the catalog cost seconds,
  so each process keeps one in-memory DuckDB instance per lake and every `open_lake` is a cursor on it: its own
  connection and transactions, sharing the loaded extensions and the attached lake.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import ParamSpec, TypeVar

import duckdb

from connectors.errors import ConfigError
from connectors.settings import Secret

log = logging.getLogger("mkpi.ducklake")

LAKE_ALIAS = "lake"
READ_ONLY_ALIAS = "lake_read_only"
# The extension packages, and the file names their extension may carry (the postgres extension's own name,
# which DuckDB derives from the file name when loading a path, is `postgres_scanner`).
_PACKAGES = {
    "postgres_scanner": ("duckdb_extension_postgres", ("postgres_scanner", "postgres")),
    "ducklake": ("duckdb_extension_ducklake", ("ducklake",)),
}
# S3, GCS, Azure and HTTP data paths need httpfs: not a dependency of the project, loaded only when asked for.
_OBJECT_STORE_PACKAGES = {"httpfs": ("duckdb_extension_httpfs", ("httpfs",))}
# Settings of the in-memory DuckDB session that hosts the lake: never fetch or auto-load an extension.
_OFFLINE_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}

T = TypeVar("T")
P = ParamSpec("P")

# One DuckDB instance per (process, catalog, data path), holding the loaded extensions and the attached lake.
_INSTANCES: dict[tuple[int, str, str], duckdb.DuckDBPyConnection] = {}
_INSTANCES_LOCK = threading.Lock()
_ATTACHED: set[tuple[tuple[int, str, str], str]] = set()
# The connections open_lake handed out: is_ducklake answers for them without a query.
_LAKE_CONNECTIONS: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()


def extension_files(packages: Mapping[str, tuple[str, tuple[str, ...]]] = _PACKAGES) -> dict[str, Path]:
    """The extension files shipped in the installed packages, by extension name, for this DuckDB version."""
    version = f"v{duckdb.__version__}"
    found: dict[str, Path] = {}
    for name, (package, file_names) in packages.items():
        try:
            module = import_module(package)
        except ImportError as exc:
            dist = package.replace("_", "-")
            raise ConfigError(f"the DuckLake backend needs the package {dist}=={duckdb.__version__} "
                              f"(pip install '{dist}=={duckdb.__version__}')", key="warehouse.backend") from exc
        folder = Path(module.__file__ or "").parent / "extensions" / version
        paths = [folder / f"{file_name}.duckdb_extension" for file_name in file_names]
        existing = [p for p in paths if p.is_file()]
        if not existing:
            built_for = sorted(p.name for p in folder.parent.glob("v*")) if folder.parent.is_dir() else []
            dist = package.replace("_", "-")
            raise ConfigError(f"{dist} holds no extension for DuckDB {duckdb.__version__} "
                              f"(it has {built_for or 'none'}): install {dist}=={duckdb.__version__}",
                              key="warehouse.backend")
        found[name] = existing[0]
    return found


def _loadable(name: str, path: Path) -> Path:
    """A path DuckDB will load under the extension's own name: DuckDB takes the name (and so the entry point it
    calls) from the file name, and the postgres package names its file `postgres`, not `postgres_scanner`. Such a
    file is reached through a symbolic link with the right name in a per-user cache folder (never a copy)."""
    if path.name == f"{name}.duckdb_extension":
        return path
    folder = Path(tempfile.gettempdir()) / f"mkpi-duckdb-extensions-{os.getuid()}" / f"v{duckdb.__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / f"{name}.duckdb_extension"
    target = path.resolve()
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    staged = folder / f".{name}.{uuid.uuid4().hex}"
    os.symlink(target, staged)
    os.replace(staged, link)  # atomic: a concurrent process sees the old link or the new one
    return link


def load_extensions(conn: duckdb.DuckDBPyConnection, *, object_store: bool = False) -> None:
    """LOAD the postgres and ducklake extensions from their packages (never from the network), and httpfs (package
    duckdb-extension-httpfs, installed only by those who need it) for a data path on an object store."""
    files = extension_files()
    if object_store:
        files |= extension_files(_OBJECT_STORE_PACKAGES)
    for name, path in files.items():
        conn.execute(f"LOAD {_sql_string(str(_loadable(name, path)))}")


def is_ducklake(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether unqualified names on the connection are a DuckLake's (the loader's and KPI runner's few lake-only
    branches: no ENUM columns, no primary keys, no CHECKPOINT per load). A connection from `open_lake` answers without
    a query; any other is asked which database is its current one (`USE lake` on a plain DuckDB connection with a
    DuckLake attached makes it a lake connection too; duckdb_databases() gives each attached database's `type`,
    'ducklake' for a lake: https://duckdb.org/docs/stable/sql/meta/duckdb_table_functions#duckdb_databases)."""
    if conn in _LAKE_CONNECTIONS:
        return True
    row = conn.execute("SELECT type FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return row is not None and row[0] == "ducklake"


def catalog_conninfo(catalog: str) -> str:
    """The libpq connection string or URL from MKPI_DUCKLAKE_CATALOG, without a `ducklake:` / `postgres:` prefix
    (all of `host=db dbname=lake`, `postgres:host=db dbname=lake` and `postgresql://db/lake` are accepted)."""
    value = catalog.strip()
    if value.startswith("ducklake:"):
        value = value[len("ducklake:"):]
    if value.startswith("postgres:") and not value.startswith("postgres://"):
        value = value[len("postgres:"):]
    if not value:
        raise ConfigError("MKPI_DUCKLAKE_CATALOG is empty: give a libpq string such as "
                          "'host=127.0.0.1 dbname=lake user=mkpi' or a postgresql:// URL", key="MKPI_DUCKLAKE_CATALOG")
    return value


_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def redact(text: str, conninfo: str) -> str:
    """`text` with the catalog connection string, and any password or URL credentials in it, masked."""
    text = text.replace(conninfo, "<MKPI_DUCKLAKE_CATALOG>")
    text = _PASSWORD.sub(r"\1***", text)
    return _URL_USERINFO.sub(r"\1***@", text)


def data_path(path: str) -> str:
    """The data path as DuckLake stores it in the catalog: a local folder made absolute and created (a relative
    path would be resolved against each writer's working directory), an object-store URL unchanged."""
    if "://" in path:
        return path if path.endswith("/") else path + "/"
    folder = Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder) + os.sep


# What PostgreSQL answers a writer that creates a new lake's catalog tables while another writer does the same.
_CATALOG_RACE = ("already exists", "duplicate key value")


def _lost_catalog_race(exc: duckdb.Error) -> bool:
    return any(text in str(exc) for text in _CATALOG_RACE)


def _attach(base: duckdb.DuckDBPyConnection, statement: str) -> None:
    """ATTACH the lake. The first ATTACH of a new catalog creates its tables: writers starting together on a
    new lake race to create them, and the losers' ATTACH fails ("relation ducklake_metadata already exists",
    seen in CI with four writers). The catalog is there by then, so the ATTACH is tried again."""
    retry_on_conflict(lambda: base.execute(statement), retryable=_lost_catalog_race, first_delay=0.1,
                      what="catalog creation race")


def _instance(conninfo: str, data_path_text: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """This process's DuckDB instance for the lake, created on first use (the lake attached as `lake`, and as
    `lake_read_only` with READ_ONLY once a read-only connection is asked for)."""
    location = data_path(data_path_text)
    key = (os.getpid(), conninfo, location)  # never an instance inherited through fork
    alias = READ_ONLY_ALIAS if read_only else LAKE_ALIAS
    with _INSTANCES_LOCK:
        base = _INSTANCES.get(key)
        created = base is None
        if base is None:
            base = duckdb.connect(":memory:", config=dict(_OFFLINE_CONFIG))
        try:
            if created:
                load_extensions(base, object_store="://" in location)
            if (key, alias) not in _ATTACHED:
                options = f"DATA_PATH {_sql_string(location)}" + (", READ_ONLY" if read_only else "")
                _attach(base, f"ATTACH {_sql_string('ducklake:postgres:' + conninfo)} AS {alias} ({options})")
                _ATTACHED.add((key, alias))
        except BaseException:
            if created:
                base.close()
            raise
        _INSTANCES[key] = base
        return base


def close_instances() -> None:
    """Close this process's lake instances (tests whose catalog server stops; the process exit does it too)."""
    with _INSTANCES_LOCK:
        for key in [k for k in _INSTANCES if k[0] == os.getpid()]:
            _INSTANCES.pop(key).close()
            _ATTACHED.difference_update({(key, LAKE_ALIAS), (key, READ_ONLY_ALIAS)})


@contextmanager
def open_lake(catalog: Secret, data_path_text: str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose current database is the lake (`USE lake`), so unqualified names such as
    `ga4.traffic_by_channel` or `kpi.kpi_daily` are the lake's; always closed. A read-only connection sees the
    lake attached READ_ONLY."""
    conninfo = catalog_conninfo(catalog.reveal())
    failure: duckdb.Error | None = None
    conn: duckdb.DuckDBPyConnection | None = None
    try:
        conn = _instance(conninfo, data_path_text, read_only).cursor()
        conn.execute(f"USE {READ_ONLY_ALIAS if read_only else LAKE_ALIAS}")
    except duckdb.Error as exc:  # raised outside this block, so the original (which may quote it) is not chained
        failure = type(exc)(redact(str(exc), conninfo))
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    if failure is not None or conn is None:
        if conn is not None:
            conn.close()
        raise failure or RuntimeError("no lake connection")
    _LAKE_CONNECTIONS.add(conn)
    try:
        yield conn
    except duckdb.Error as exc:
        masked = redact(str(exc), conninfo)
        if masked == str(exc):
            raise
        failure = type(exc)(masked)
    finally:
        _LAKE_CONNECTIONS.discard(conn)
        conn.close()
    if failure is not None:
        raise failure


def is_conflict(exc: BaseException) -> bool:
    """A DuckLake commit refused because a concurrent transaction changed the same thing: retrying helps."""
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


def retry_on_conflict(work: Callable[[], T], *, attempts: int = 6, first_delay: float = 0.2,
                      max_delay: float = 5.0, sleep: Callable[[float], None] = time.sleep,
                      retryable: Callable[[duckdb.Error], bool] = is_conflict, what: str = "commit conflict") -> T:
    """Run `work` (one whole transaction, safe to re-run) again after a commit conflict (or what `retryable`
    says another writer caused), up to `attempts` times, waiting `first_delay` doubled each time (with jitter so
    racing writers spread out, at most `max_delay`)."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except duckdb.Error as exc:
            if not retryable(exc) or attempt == attempts:
                raise
            wait = min(delay, max_delay) * (0.5 + random.random())
            log.warning("DuckLake %s (attempt %d of %d), retrying in %.2f s: %s", what, attempt, attempts, wait,
                        str(exc).splitlines()[-1])
            sleep(wait)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


_RETRYING = threading.local()


def conflict_retried(function: Callable[P, T]) -> Callable[P, T]:
    """Decorate a function that is one replayable unit of lake work (a KPI rebuild: it recomputes from the raw
    tables, so running it again is safe): a commit conflict re-runs it (`retry_on_conflict`). Calls nested in an
    already retried call run once, so the outermost unit is what is retried. A DuckDB file never conflicts (one
    writer), so there it simply runs."""

    @functools.wraps(function)
    def retried(*args: P.args, **kwargs: P.kwargs) -> T:
        if getattr(_RETRYING, "active", False):
            return function(*args, **kwargs)
        _RETRYING.active = True
        try:
            return retry_on_conflict(lambda: function(*args, **kwargs))
        finally:
            _RETRYING.active = False

    return retried


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
