"""Dagster's PostgreSQL run, schedule and event log storages each on one kept connection per process
(pipelines/lib/event_storage.py `_postgres_connect`), counted on the server.

dagster-postgres (0.29, each storage's `__init__`: NullPool) opens a new connection, hence a new PostgreSQL backend
process, for every storage call; a run makes hundreds (run lookups, run events, latest materialisations, pool
claims). Here 10 calls of each storage and a second run open no new session (the server's `pg_stat_database.
sessions`, and one backend pid per storage answering every call) and ask the catalog nothing (tables and columns
once found are remembered); a forked child opens its own connections and leaves its parent's in use. Dagster's own
methods, on the same calls, open a session per call and ask the catalog for each run record read (what the counts are
checked against).
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from pipelines.lib import event_storage
from tests.postgres import Postgres, file_server

CALLS = 10


@dg.asset(key=["raw", "one"])
def one() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@pytest.fixture(scope="module")
def server(request) -> Iterator[Postgres]:
    """This file's share of the process's PostgreSQL server (tests/postgres.py): its databases, dropped at its end."""
    with file_server(request.config, "pg_storage_connections") as pg:
        yield pg


@pytest.fixture
def kept(monkeypatch) -> None:
    """The project's methods on the three storages, as `event_storage.install` sets them."""
    for cls, name, ours, _dagsters in event_storage.PG_PATCHES:
        monkeypatch.setattr(cls, name, ours)


@pytest.fixture
def dagsters(monkeypatch) -> None:
    """Dagster's own methods on the three storages."""
    for cls, name, _ours, dagsters in event_storage.PG_PATCHES:
        monkeypatch.setattr(cls, name, dagsters)


def _instance(server: Postgres, name: str, tmp_path) -> tuple[Postgres, dg.DagsterInstance]:
    database = server.create_database(name)
    url = database.url.replace("postgresql://", "postgresql+psycopg2://")
    instance = dg.instance_for_test(temp_dir=str(tmp_path), overrides={"storage": {"postgres": {"postgres_url": url}}})
    return database, instance


def _sessions(server: Postgres, database: Postgres) -> int:
    """Sessions the server has opened to the database so far (asked from another database), once every closed one
    has ended: a backend counts its session at its first idle moment, and a closed connection's backend at its
    exit."""
    count, settled = -1, 0
    while settled < 3:
        time.sleep(0.15)
        now = int(server.psql(f"SELECT sessions FROM pg_stat_database WHERE datname = '{database.database}'"))
        settled, count = (settled + 1, now) if now == count else (0, now)
    return count


def _calls(instance: dg.DagsterInstance, run_id: str) -> None:
    """CALLS calls of each storage, as a run and the daemon make them."""
    for _ in range(CALLS):
        assert instance.get_run_by_id(run_id) is not None  # run storage
        assert instance.get_run_record_by_id(run_id) is not None  # run storage: asks for the runs table's columns
        assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "one"])) is not None  # event log
        assert instance.all_instigator_state() == []  # schedule storage


@contextmanager
def _catalog_questions() -> Iterator[list[str]]:
    """The statements this process sends to PostgreSQL's catalog (what has_table and column reflection ask)."""
    asked: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "pg_catalog" in statement or "information_schema" in statement:
            asked.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield asked
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _backends(instance: dg.DagsterInstance) -> list[int]:
    """The server backend each storage's connection is served by (run, event log, schedule)."""
    pids = []
    for storage, connect in ((instance.run_storage, "connect"), (instance.event_log_storage, "_connect"),
                             (instance.schedule_storage, "connect")):
        with getattr(storage, connect)() as conn:
            pids.append(int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()))
    return pids


def _run(instance: dg.DagsterInstance) -> str:
    result = dg.Definitions(assets=[one]).resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance)
    assert result.success
    return result.run_id


def test_each_storage_keeps_one_connection_per_process(server, kept, tmp_path) -> None:
    database, context = _instance(server, "kept", tmp_path)
    with context as instance:
        for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
            assert type(storage) in (PostgresRunStorage, PostgresEventLogStorage, PostgresScheduleStorage)
        run_id = _run(instance)  # the tables exist and the run's own calls are done
        _calls(instance, run_id)  # each question asked once
        pids = _backends(instance)  # each storage's kept connection opened
        before = _sessions(server, database)
        with _catalog_questions() as asked:
            _calls(instance, run_id)
            _run(instance)  # a second run: its asset and check events
        assert asked == []  # tables and columns found once are remembered
        assert _backends(instance) == pids  # every call served by the same three backends
        assert _sessions(server, database) == before  # not one new session for 4 x 10 calls and a run
        assert len(set(pids)) == 3  # one per storage

        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # a forked child: its own connections, its parent's left alone
            code = 1
            try:
                _calls(instance, run_id)
                os.write(write, ",".join(map(str, _backends(instance))).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        answer = os.read(read, 200).decode()
        os.close(read)
        assert os.waitpid(child, 0)[1] == 0
        child_pids = [int(pid) for pid in answer.split(",")]
        assert set(child_pids).isdisjoint(pids) and len(set(child_pids)) == 3
        assert _backends(instance) == pids  # the parent's connections still serve it after the child's exit
        assert _sessions(server, database) == before + 3  # the child's three, nothing else
    # the instance disposes its run and event log storages, never its schedule storage (Dagster's
    # `StorageMethods.dispose`): that one's connection is closed by its own dispose (or the process's end)
    assert _open(server, database) == 1
    instance.schedule_storage.dispose()
    assert _open(server, database) == 0


def _open(server: Postgres, database: Postgres) -> int:
    """Connections open to the database, once closed ones have ended."""
    time.sleep(0.3)
    return int(server.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database.database}'"))


def test_dagsters_own_storages_open_a_session_per_call(server, dagsters, tmp_path) -> None:
    """The control: the same calls on Dagster's NullPool engines open a session each."""
    database, context = _instance(server, "dagsters", tmp_path)
    with context as instance:
        run_id = _run(instance)
        before = _sessions(server, database)
        with _catalog_questions() as asked:
            _calls(instance, run_id)
            _run(instance)
        assert len(asked) >= CALLS  # the runs table's columns, for each run record read
        assert _sessions(server, database) >= before + 4 * CALLS


def test_a_webserver_storage_keeps_dagsters_pool(server, kept, tmp_path) -> None:
    """The webserver's storages (`optimize_for_webserver`: Dagster's own kept connection with its statement timeout)
    are left as Dagster made them."""
    database, context = _instance(server, "webserver", tmp_path)
    with context as instance:
        instance.optimize_for_webserver(statement_timeout=4321, pool_recycle=3600, max_overflow=2)
        for storage, connect in ((instance.run_storage, "connect"), (instance.event_log_storage, "_connect"),
                                 (instance.schedule_storage, "connect")):
            with getattr(storage, connect)() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "4321ms"
            assert event_storage._PG_ENGINE not in storage.__dict__  # noqa: SLF001
