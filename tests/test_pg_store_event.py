"""PostgreSQL event log: one event's row and its notification sent as one statement (pipelines/lib/event_storage.py
`store_event_postgres`), with what Dagster's `PostgresEventLogStorage.store_event` writes, checked against Dagster's
own method on the same run.

dagster-postgres sends `NOTIFY run_events, '<run_id>_<id>'` after each event's INSERT (a second round trip, kept for
listeners of older Dagster versions). Here the run's events are all stored, each notified once with its own
`<run_id>_<id>`, the asset's latest materialisation and its check's execution recorded, and no separate NOTIFY sent.
"""

import select
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import psycopg2
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pipelines.lib import event_storage
from tests.postgres import Postgres, file_server


@dg.asset(key=["raw", "notified"])
def notified() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 7})


@dg.asset_check(asset=notified)
def rows_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[Postgres]:
    with file_server(request.config, "pg_store_event") as pg:
        yield pg


def _run(server: Postgres, name: str, tmp_path, ours: bool, monkeypatch) -> dict[str, Any]:
    """A run of the asset and its check on a fresh database, with the project's storage methods or Dagster's; what
    was stored, notified and sent."""
    for cls, method, mine, dagsters in event_storage.PG_PATCHES:
        monkeypatch.setattr(cls, method, mine if ours else dagsters)
    database = server.create_database(name)
    listener = psycopg2.connect(host=database.host, port=database.port, user=database.user,
                                dbname=database.database)
    listener.autocommit = True
    listener.cursor().execute("LISTEN run_events")
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    url = database.url.replace("postgresql://", "postgresql+psycopg2://")
    (tmp_path / name).mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / name),
                              overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        event.listen(Engine, "before_cursor_execute", record)
        try:
            result = dg.Definitions(assets=[notified], asset_checks=[rows_positive]
                                    ).resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
        finally:
            event.remove(Engine, "before_cursor_execute", record)
        assert result.success
        ids = [int(i) for i in database.psql(f"SELECT id FROM event_logs WHERE run_id = '{result.run_id}'").split()]
        latest = instance.get_latest_materialization_event(dg.AssetKey(["raw", "notified"]))
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["raw", "notified"]), "rows_positive"), limit=5)
        logged = len(instance.all_logs(result.run_id))
    payloads: list[str] = []
    deadline = time.monotonic() + 2
    while len(payloads) < len(ids) and time.monotonic() < deadline:
        select.select([listener], [], [], 0.1)
        listener.poll()
        payloads += [n.payload for n in listener.notifies]
        listener.notifies.clear()
    listener.close()
    return {"run_id": result.run_id, "ids": ids, "payloads": payloads, "logged": logged, "checks": checks,
            "latest": latest, "notify_statements": [s for s in sent if s.lstrip().upper().startswith("NOTIFY")]}


@pytest.mark.parametrize("ours", [True, False], ids=["project", "dagster"])
def test_every_event_stored_and_notified_once(server, tmp_path, monkeypatch, ours) -> None:
    got = _run(server, "ours" if ours else "dagsters", tmp_path, ours, monkeypatch)
    assert len(got["ids"]) == got["logged"] > 5  # every event of the run stored (start, output, check, success...)
    assert sorted(got["payloads"]) == sorted(f"{got['run_id']}_{i}" for i in got["ids"])  # each once, its own id
    assert got["latest"] is not None and got["latest"].run_id == got["run_id"]
    assert got["latest"].asset_materialization.metadata["rows"].value == 7
    assert [c.status.value for c in got["checks"]] == ["SUCCEEDED"]
    assert (got["notify_statements"] == []) is ours  # the project's: no separate NOTIFY; Dagster's: one per event
    if not ours:
        assert len(got["notify_statements"]) == len(got["ids"])
