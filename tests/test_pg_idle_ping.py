"""The PostgreSQL storages' kept connections are checked before reuse only after being idle
(pipelines/lib/event_storage.py `_ping_after_idle`), counted by the pings sent and by the server's backends.

SQLAlchemy's `pool_pre_ping` sent a `SELECT 1` before every storage call (3,500 of the ~9,600 statements of the 30-day
demo on PostgreSQL). Here a burst of calls sends none; a connection idle for longer than the threshold is pinged once,
and one the server dropped while it sat idle (`pg_terminate_backend`, as a restart or `idle_session_timeout` would)
is replaced before the call, which succeeds on a new backend: what the pre-ping guarded stays guarded.
"""

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import text

from pipelines.lib import event_storage
from tests.postgres import Postgres, file_server

IDLE = 0.3  # seconds: the threshold in these tests (1 s in the pipeline)


class Clock:
    """The monotonic clock `event_storage` reads (its `time` module's `monotonic`), moved only by the test: whether a
    connection counts as idle then depends on the time the test lets pass, not on how fast a loaded machine makes the
    calls (a real clock failed CI when a burst of 30 calls took longer than the threshold at load 14)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@dg.asset(key=["raw", "ping"])
def ping_asset() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 1})


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[Postgres]:
    with file_server(request.config, "pg_idle_ping") as pg:
        yield pg


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(event_storage, "time", fake)
    return fake


@pytest.fixture
def pings(monkeypatch, clock) -> list[Any]:
    """The project's methods on the three storages (as `event_storage.install` sets them), the idle threshold at IDLE,
    the test's clock and every ping sent recorded."""
    for cls, name, ours, _dagsters in event_storage.PG_PATCHES:
        monkeypatch.setattr(cls, name, ours)
    monkeypatch.setattr(event_storage, "PG_PING_AFTER_IDLE_SECONDS", IDLE)
    sent: list[Any] = []
    original = event_storage._ping  # noqa: SLF001

    def counted(dbapi_connection: Any) -> None:
        sent.append(dbapi_connection)
        original(dbapi_connection)

    monkeypatch.setattr(event_storage, "_ping", counted)
    return sent


def _instance(server: Postgres, name: str, tmp_path) -> dg.DagsterInstance:
    url = server.create_database(name).url.replace("postgresql://", "postgresql+psycopg2://")
    return dg.instance_for_test(temp_dir=str(tmp_path), overrides={"storage": {"postgres": {"postgres_url": url}}})


def _calls(instance: dg.DagsterInstance, run_id: str) -> None:
    """One call of each storage, as a run and the daemon make them."""
    assert instance.get_run_record_by_id(run_id) is not None
    assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "ping"])) is not None
    assert instance.all_instigator_state() == []


def _backend(instance: dg.DagsterInstance) -> int:
    with instance.event_log_storage._connect() as conn:  # noqa: SLF001
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_burst_sends_no_ping_an_idle_connection_one(server, pings, clock, tmp_path) -> None:
    with _instance(server, "burst", tmp_path) as instance:
        result = dg.Definitions(assets=[ping_asset]).resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance)
        assert result.success
        _calls(instance, result.run_id)  # every storage's connection opened
        pings.clear()
        for _ in range(10):
            clock.now += IDLE / 20  # calls a few milliseconds apart, as a run makes them
            _calls(instance, result.run_id)
        assert pings == []  # 30 calls in a burst: not one ping (the pre-ping sent 30)
        clock.now += IDLE + 0.2
        _calls(instance, result.run_id)
        assert len(pings) == 3  # each storage's connection, idle since the burst: pinged once before its call


def test_a_connection_dropped_while_idle_is_replaced_before_the_call(server, pings, clock, tmp_path) -> None:
    with _instance(server, "dropped", tmp_path) as instance:
        result = dg.Definitions(assets=[ping_asset]).resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance)
        assert result.success
        before = _backend(instance)
        # as a restart would; PostgreSQL waits (up to 10 s) until the backend has gone
        assert server.psql(f"SELECT pg_terminate_backend({before}, 10000)") == "t"
        clock.now += IDLE + 0.2
        _calls(instance, result.run_id)  # no error: the dead connection was found by the ping and replaced
        assert len(pings) >= 1
        after = _backend(instance)
        assert after != before
        assert int(server.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {after}")) == 1
