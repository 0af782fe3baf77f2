"""The DuckLake warehouse backend (issue #10): several writers at once, the same KPIs as the DuckDB file.

Why these tests: the point of the backend is concurrent writers, so four OS processes load four sources into one
lake at the same moment (released together once all four are ready) on a real PostgreSQL catalog; the KPIs built
on the lake must then equal, row for row, the KPIs built from the same sandbox data loaded one source after another
into a DuckDB file. The extensions must come from the pinned packages, never a download, and the catalog's password must
never show in an error. PostgreSQL comes from tests/postgres.py (skipped with the reason where it is missing).
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import connectors.warehouse as warehouse
from connectors.batches import Batch, Cursor, Stream, Window
from connectors.ducklake import (
    close_instances,
    conflict_retried,
    extension_files,
    is_ducklake,
    load_extensions,
    open_lake,
    redact,
    retry_on_conflict,
)
from connectors.errors import ConfigError
from connectors.publish import publish_analyst_copy
from connectors.settings import Secret, load_settings
from tests.forkserver import writer_processes
from tests.postgres import Postgres, file_server

TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 16), date(2026, 3, 29))
SOURCES = ("ga4", "search_console", "matomo", "google_ads")
LOAD_COLUMNS = {"_loaded_at", "_window_start", "_window_end"}
MODELS = ("web_daily", "seo_daily", "ecommerce_daily", "paid_search_daily", "email_daily", "crm_monthly")


# ---- what a writer does (in a child process for the lake, in this process for the DuckDB file) -------------------


def load_source(source: str, window: Window, before_load: Any = None) -> tuple[float, float]:
    """Load every report of one source for `window` through its connector and the loader, the way its Dagster
    assets do (one transaction per asset); returns when the loading started and ended (monotonic clock)."""
    settings = load_settings()
    if source == "ga4":  # each writer imports only its own client library: they are slow to import
        from connectors import ga4

        connector = ga4.Ga4Connector(settings.ga4)
        fetched = [list(connector.fetch(report, window)) for report in ga4.REPORTS.values()]
    elif source == "search_console":
        from connectors import search_console

        gsc = search_console.SearchConsoleConnector(settings.search_console)
        fetched = [list(gsc.fetch(report, window)) for report in search_console.REPORTS.values()]
    elif source == "matomo":
        from connectors import matomo

        mat = matomo.MatomoConnector(settings.matomo)
        mat.check()
        fetched = [list(mat.fetch(window))]
    else:
        from connectors import google_ads

        ads = google_ads.GoogleAdsConnector(settings.google_ads)
        ads.check()
        fetched = [list(ads.fetch(window))]
    with warehouse.open_warehouse(settings.warehouse) as conn:
        if before_load is not None:
            before_load()
        started = time.monotonic()
        for batches in fetched:
            warehouse.load_batches(conn, batches)
        return started, time.monotonic()


RENDEZVOUS_SECONDS = 600


def _writer(source: str, env: dict[str, str], pipe: Any) -> None:
    """A writer process: the same code as the sequential load, released together with the others.

    The rendezvous is explicit: the writer says "ready" once it has fetched and opened the lake, then waits for
    the test's "go". (A multiprocessing.Barrier once left one writer asleep after the others had passed it.)
    """
    os.environ.update(env)

    def rendezvous() -> None:
        pipe.send("ready")
        if not pipe.poll(RENDEZVOUS_SECONDS):
            raise TimeoutError(f"{source}: no 'go' from the test within {RENDEZVOUS_SECONDS} s")
        pipe.recv()

    try:
        started, ended = load_source(source, WINDOW, before_load=rendezvous)
        pipe.send((started, ended, None))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test with it
        pipe.send((0.0, 0.0, traceback.format_exc()))


def _receive(source: str, pipe: Any) -> Any:
    if not pipe.poll(RENDEZVOUS_SECONDS):
        raise AssertionError(f"writer {source} said nothing within {RENDEZVOUS_SECONDS} s")
    return pipe.recv()


def run_writers_together(ctx: Any, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Start one writer process per source, release them together once every one is ready; their load spans."""
    pipes = {source: ctx.Pipe() for source in SOURCES}
    writers = [ctx.Process(target=_writer, args=(source, env, pipes[source][1]), name=f"writer-{source}")
               for source in SOURCES]
    try:
        for process in writers:
            process.start()
        for source, (pipe, _) in pipes.items():
            message = _receive(source, pipe)
            assert message == "ready", {source: message}
        for pipe, _ in pipes.values():
            pipe.send("go")
        reports = {source: _receive(source, pipe) for source, (pipe, _) in pipes.items()}
        failures = {source: error for source, (_, _, error) in reports.items() if error}
        assert not failures, failures
        return {source: (started, ended) for source, (started, ended, _) in reports.items()}
    finally:
        for process in writers:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()


def build_kpis() -> dict[str, list[tuple[Any, ...]]]:
    """Build every KPI table for the window on the configured warehouse; return each kpi table's rows, sorted."""
    from kpi_models.context import KpiContext
    from kpi_models.layer import rebuild_all

    settings = load_settings()
    with warehouse.open_warehouse(settings.warehouse) as conn:
        rebuild_all(conn, WINDOW, KpiContext.from_settings(settings))
        return snapshot(conn, "kpi")


def _normalised(value: Any) -> Any:
    # Sums of doubles may differ in the last bits with the order rows are added in (Parquet files vs DuckDB
    # blocks, parallel aggregation); 12 significant digits is far below any KPI's meaning.
    return float(f"{value:.12g}") if isinstance(value, float) else value


def snapshot(conn: duckdb.DuckDBPyConnection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table and view of `schema`, without load-time columns, rows sorted (read in one transaction: one
    consistent snapshot, and a lake loads its catalog once instead of once per statement)."""
    conn.execute("BEGIN TRANSACTION")
    try:
        return _snapshot(conn, schema)
    finally:
        conn.execute("ROLLBACK")


def _snapshot(conn: duckdb.DuckDBPyConnection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "AND table_catalog = current_database() ORDER BY 1", [schema]).fetchall()]
    found: dict[str, list[tuple[Any, ...]]] = {}
    for table in tables:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "AND table_catalog = current_database() ORDER BY ordinal_position", [schema, table]).fetchall()
            if r[0] not in LOAD_COLUMNS]
        listed = ", ".join(f'"{c}"' for c in columns)
        rows = conn.execute(f'SELECT {listed} FROM "{schema}"."{table}"').fetchall()
        found[table] = sorted((tuple(_normalised(v) for v in row) for row in rows), key=repr)
    return found


# ---- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake_writers() -> Iterator[Any]:
    """The writer processes' multiprocessing context, one server for the module's tests (tests/forkserver.py)."""
    with writer_processes([__name__]) as ctx:
        yield ctx


@pytest.fixture(scope="module")
def postgres(request: pytest.FixtureRequest) -> Iterator[Postgres]:
    """This file's share of the process's PostgreSQL server (tests/postgres.py): its catalogs, dropped at its end."""
    with file_server(request.config, "ducklake") as server:
        try:
            yield server
        finally:
            close_instances()  # this process's lake sessions, before their catalog server stops


def _lake_env(monkeypatch: pytest.MonkeyPatch, catalog: str, tmp_path: Path) -> dict[str, str]:
    env = {"MKPI_WAREHOUSE_BACKEND": "ducklake", "MKPI_DUCKLAKE_CATALOG": catalog,
           "MKPI_DUCKLAKE_DATA_PATH": str(tmp_path / "lake-data"), "MKPI_DUCKDB_PATH": str(tmp_path / "work.duckdb")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


# ---- tests --------------------------------------------------------------------------------------------------------


def test_extensions_load_from_the_packages_with_no_download(tmp_path: Path) -> None:
    import duckdb_extension_ducklake
    import duckdb_extension_postgres

    files = extension_files()
    assert files["ducklake"].is_relative_to(Path(duckdb_extension_ducklake.__file__).parent)
    assert files["postgres_scanner"].is_relative_to(Path(duckdb_extension_postgres.__file__).parent)
    assert all(f.parent.name == f"v{duckdb.__version__}" for f in files.values())
    # An empty extension directory and no automatic install or load: a download attempt would have nowhere to
    # come from silently, and the directory stays empty.
    extension_dir = tmp_path / "extensions"
    conn = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                              "autoload_known_extensions": False,
                                              "extension_directory": str(extension_dir)})
    try:
        load_extensions(conn)
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT extension_name, loaded, installed, install_mode FROM duckdb_extensions() "
            "WHERE extension_name IN ('ducklake', 'postgres_scanner')").fetchall()}
    finally:
        conn.close()
    # loaded straight from a file (NOT_INSTALLED), not installed from a repository
    assert rows == {"ducklake": (True, False, "NOT_INSTALLED"), "postgres_scanner": (True, False, "NOT_INSTALLED")}
    assert not extension_dir.exists() or not any(extension_dir.rglob("*"))


def test_backend_settings() -> None:
    assert load_settings(environ={}).warehouse.backend == "duckdb"
    with pytest.raises(ConfigError, match="warehouse.backend must be one of"):
        load_settings(environ={"MKPI_WAREHOUSE_BACKEND": "sqlite"})
    with pytest.raises(ConfigError, match="MKPI_DUCKLAKE_CATALOG"):
        load_settings(environ={"MKPI_WAREHOUSE_BACKEND": "ducklake"})
    lake = load_settings(environ={"MKPI_WAREHOUSE_BACKEND": "DuckLake", "MKPI_DUCKLAKE_CATALOG": "dbname=x password=s3",
                                  "MKPI_DUCKLAKE_DATA_PATH": "s3://bucket/lake"}).warehouse
    assert (lake.backend, lake.ducklake_data_path) == ("ducklake", "s3://bucket/lake")
    assert "s3" not in repr(lake.ducklake_catalog)


def test_catalog_password_never_shows_in_errors(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on: the connection is refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    catalog = f"host=127.0.0.1 port={port} user=mkpi password=hunter2 dbname=lake connect_timeout=2"
    with pytest.raises(duckdb.Error) as caught, open_lake(Secret(catalog), str(tmp_path / "data")):
        pass
    shown = str(caught.value)
    assert "hunter2" not in shown and caught.value.__context__ is None and caught.value.__cause__ is None
    assert "Postgres" in shown  # the cause is still there for the reader
    assert redact("postgresql://mkpi:hunter2@db/lake failed", "x") == "postgresql://mkpi:***@db/lake failed"


def test_conflicts_are_retried_a_bounded_number_of_times() -> None:
    conflict = duckdb.TransactionException("Failed to commit DuckLake transaction.\nTransaction conflict - ...")
    calls: list[str] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append("x")
        if len(calls) < 3:
            raise conflict
        return "done"

    assert retry_on_conflict(flaky, sleep=waits.append) == "done"
    assert len(calls) == 3 and len(waits) == 2 and waits[1] > waits[0] * 0.5

    def always() -> None:
        calls.append("y")
        raise conflict

    with pytest.raises(duckdb.TransactionException):
        retry_on_conflict(always, attempts=4, sleep=waits.append)
    assert calls.count("y") == 4
    with pytest.raises(duckdb.TransactionException, match="no transaction"):  # not a conflict: never retried
        retry_on_conflict(lambda: (_ for _ in ()).throw(duckdb.TransactionException("no transaction is active")),
                          sleep=waits.append)

    outer_runs: list[int] = []
    inner_runs: list[int] = []

    @conflict_retried
    def inner() -> None:
        inner_runs.append(1)
        if len(inner_runs) == 1:
            raise duckdb.TransactionException("Transaction conflict - another transaction has deleted from it")

    @conflict_retried
    def outer() -> None:
        outer_runs.append(1)
        inner()

    outer()  # the nested call's conflict is retried by the outermost unit only
    assert (len(outer_runs), len(inner_runs)) == (2, 2)


def _stream() -> Stream:
    schema = pa.schema([("date", pa.date32()), ("account", pa.string()), ("clicks", pa.int64())])
    return Stream(table="test.clicks", schema=schema, key=("date", "account"), scope_column="account")


def _batch(stream: Stream, account: str, clicks: int) -> Batch:
    data = pa.table({"date": [WINDOW.start], "account": [account], "clicks": [clicks]}, schema=stream.schema)
    return Batch(stream=stream, data=data, window=WINDOW, scope={"account": account})


def test_a_conflicting_commit_is_retried(postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """Another writer deletes from the same table between our delete and our commit: DuckLake refuses our commit,
    the loader re-runs the whole transaction, and both writers' rows are there once."""
    db = postgres.create_database("lake_conflict")
    _lake_env(monkeypatch, db.libpq, tmp_path)
    stream = _stream()
    lake = load_settings().warehouse
    with warehouse.open_warehouse(lake) as conn:
        assert is_ducklake(conn)
        warehouse.load_batches(conn, [_batch(stream, "a", 1), _batch(stream, "b", 2)])
    real = warehouse.transaction
    attempts: list[int] = []

    @contextmanager
    def interfered(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        with real(conn) as inner:
            yield inner
            attempts.append(1)
            if len(attempts) == 1:  # the other writer commits first, on the same table
                with warehouse.open_warehouse(lake) as other:
                    warehouse.load_batches(other, [_batch(stream, "b", 20)])

    monkeypatch.setattr(warehouse, "transaction", interfered)
    with warehouse.open_warehouse(lake) as conn:
        warehouse.load_batches(conn, [_batch(stream, "a", 10)])
        rows = conn.execute(f"SELECT account, clicks FROM {stream.table} ORDER BY 1").fetchall()
    assert len(attempts) == 3  # ours, the other writer's, ours again after the conflict
    assert rows == [("a", 10), ("b", 20)]
    with warehouse.open_warehouse(lake, read_only=True) as reader:  # a read-only connection reads, and cannot write
        assert reader.execute(f"SELECT count(*) FROM {stream.table}").fetchone() == (2,)
        with pytest.raises(duckdb.Error, match="read-only"):
            reader.execute(f"DELETE FROM {stream.table}")


def _attach_when_told(env: dict[str, str], pipe: Any) -> None:
    """A process that opens a brand-new lake when the test says "go" (to all four at once), as writers starting
    together do."""
    os.environ.update(env)
    try:
        settings = load_settings().warehouse
        pipe.send("ready")
        pipe.recv()
        with warehouse.open_warehouse(settings) as conn:
            conn.execute("SELECT 1").fetchone()
        pipe.send(None)
    except BaseException:  # noqa: BLE001 - reported to the parent
        pipe.send(traceback.format_exc())


def test_writers_opening_a_new_lake_together_all_get_in(postgres: Postgres, lake_writers: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The first ATTACH of a new catalog creates its tables; writers racing to do it must not fail (the losers
    saw "relation ducklake_metadata already exists" in CI)."""
    db = postgres.create_database("lake_race")
    env = _lake_env(monkeypatch, db.libpq, tmp_path)
    pipes = [lake_writers.Pipe() for _ in range(4)]
    processes = [lake_writers.Process(target=_attach_when_told, args=(env, child)) for _, child in pipes]
    for process in processes:
        process.start()
    try:
        # released together once every process has started and imported what it needs
        assert [parent.recv() if parent.poll(120) else "not ready within 120 s" for parent, _ in pipes] == [
            "ready"] * len(pipes)
        for parent, _ in pipes:
            parent.send("go")
        errors = [parent.recv() if parent.poll(120) else "no answer within 120 s" for parent, _ in pipes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [e for e in errors if e] == []


def test_cursors_stay_one_row_per_stream_without_a_primary_key(postgres: Postgres, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckLake has no PRIMARY KEY (so no INSERT OR REPLACE): the loader deletes the cursor before inserting it."""
    db = postgres.create_database("lake_cursors")
    _lake_env(monkeypatch, db.libpq, tmp_path)
    stream = _stream()
    with warehouse.open_warehouse(load_settings().warehouse) as conn:
        assert is_ducklake(conn)
        for value in ("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"):
            batch = _batch(stream, "a", 1)
            batch = Batch(stream=stream, data=batch.data, window=WINDOW, scope=batch.scope,
                          cursor=Cursor(source="test", stream="clicks", account="a", value=value))
            warehouse.load_batches(conn, [batch])
        assert warehouse.read_cursor(conn, "test", "clicks", "a") == "2026-03-02T00:00:00Z"
        assert conn.execute(f"SELECT count(*) FROM {warehouse.CURSOR_TABLE}").fetchone() == (1,)


def test_four_writers_at_once_give_the_duckdb_file_kpis(postgres: Postgres, lake_writers: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.world import World
    from tests.sandboxes import start_servers

    with start_servers(World(seed=11, today=TODAY)) as sandbox:  # four report sources: no HubSpot portal
        for key, value in sandbox.env.items():
            monkeypatch.setenv(key, value)
        # The lake: four writer processes, released together once each has fetched and opened the lake.
        db = postgres.create_database("lake_kpis")
        lake_env = _lake_env(monkeypatch, db.libpq, tmp_path)
        env = {**sandbox.env, **lake_env}
        spans = run_writers_together(lake_writers, env)
        # all four were loading at the same moment: the last to start began before the first to end finished
        assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values()), spans
        lake = build_kpis()
        with warehouse.open_warehouse(load_settings().warehouse, read_only=True) as conn:  # the copy from the lake
            published = publish_analyst_copy(conn, tmp_path / "kpis.duckdb", run_id="lake")
        with duckdb.connect(published.path, read_only=True) as copy:
            copied = snapshot(copy, "kpi")

        # The DuckDB file: the same sources, one after another.
        file_path = str(tmp_path / "file.duckdb")
        monkeypatch.setenv("MKPI_WAREHOUSE_BACKEND", "duckdb")
        monkeypatch.setenv("MKPI_DUCKDB_PATH", file_path)
        for source in SOURCES:
            load_source(source, WINDOW)
        reference = build_kpis()

    assert sorted(lake) == sorted(reference)
    assert copied == lake
    for table, rows in reference.items():
        assert lake[table] == rows, table
    daily = reference["kpi_daily"]
    assert {row[1] for row in daily} >= set(SOURCES)  # every source contributed KPIs
    for table in ("web_daily", "seo_daily", "ecommerce_daily", "paid_search_daily", "kpi_daily", "kpi_weekly"):
        assert reference[table], f"{table} is empty: the comparison would prove nothing"
