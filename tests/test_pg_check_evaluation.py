"""PostgreSQL event log: a run's check result recorded in one statement (pipelines/lib/event_storage.py
`store_check_evaluation_postgres`), checked against Dagster's own `_update_asset_check_evaluation` on twin databases:
a result whose run planned the check (its row updated), one whose run did not (a row inserted), and duplicate
planned rows (Dagster's error, raised after the update)."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

import dagster as dg
import pytest
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pipelines.lib import event_storage
from tests.postgres import Postgres, postgres_server

KEY = dg.AssetKey(["raw", "checked"])


@dg.asset(key=KEY)
def checked() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=checked)
def rows_counted() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, metadata={"missing": 1})


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Postgres]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as pg:
        yield pg


@contextmanager
def _instance(server: Postgres, name: str, tmp_path) -> Iterator[dg.DagsterInstance]:
    url = server.create_database(name).url.replace("postgresql://", "postgresql+psycopg2://")
    (tmp_path / name).mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / name),
                              overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        yield instance


@pytest.fixture(scope="module")
def events(server, tmp_path_factory) -> dict[str, Any]:
    """A real run's planned check and its (failed) result."""
    with _instance(server, "check_source", tmp_path_factory.mktemp("source")) as instance:
        result = dg.Definitions(assets=[checked], asset_checks=[rows_counted]
                                ).resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
        logs = instance.all_logs(result.run_id)
    found = {entry.dagster_event_type: entry for entry in logs if entry.is_dagster_event}
    return {"planned": found[dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED],
            "result": found[dg.DagsterEventType.ASSET_CHECK_EVALUATION]}


def _record(server: Postgres, name: str, tmp_path, events: dict[str, Any], write: Any) -> dict[str, Any]:
    """The result stored for three runs: one that planned the check, one that did not, one that planned it twice."""
    sent: list[str] = []
    errors: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    with _instance(server, name, tmp_path) as instance:
        storage = instance.event_log_storage
        for run_id, planned_times in (("run-planned", 1), ("run-unplanned", 0), ("run-twice", 2)):
            for _ in range(planned_times):
                storage.store_asset_check_event(events["planned"]._replace(run_id=run_id), 1)
            event.listen(Engine, "before_cursor_execute", count)
            try:
                write(storage, events["result"]._replace(run_id=run_id), 42)
            except DagsterInvariantViolationError as exc:
                errors.append(f"{run_id}: {exc}")
            finally:
                event.remove(Engine, "before_cursor_execute", count)
        history = storage.get_asset_check_execution_history(dg.AssetCheckKey(KEY, "rows_counted"), limit=10)
        with storage.index_connection() as conn:
            stored = conn.execute(AssetCheckExecutionsTable.select().with_only_columns(
                AssetCheckExecutionsTable.c.run_id, AssetCheckExecutionsTable.c.execution_status,
                AssetCheckExecutionsTable.c.partition, AssetCheckExecutionsTable.c.evaluation_event_storage_id,
                AssetCheckExecutionsTable.c.materialization_event_storage_id,
                AssetCheckExecutionsTable.c.evaluation_event_timestamp)).fetchall()
    rows = sorted(tuple(row) for row in stored)
    assert all(r.event is not None and r.event.dagster_event.event_specific_data.passed is False for r in history)
    return {"rows": rows, "sent": len(sent), "errors": errors}


def test_check_result_recorded_as_dagster_in_one_statement(server, tmp_path, events) -> None:
    assert event_storage.CHECK_EVALUATION_IN_ONE
    ours = _record(server, "check_ours", tmp_path, events, event_storage.store_check_evaluation_postgres)
    dagsters = _record(server, "check_dagsters", tmp_path, events, SqlEventLogStorage._update_asset_check_evaluation)
    assert ours["rows"] == dagsters["rows"]
    when = events["result"].timestamp
    target = events["result"].dagster_event.event_specific_data.target_materialization_data.storage_id
    assert target is not None  # the source run's materialisation the check looked at
    assert [(run, status, partition, storage_id, materialization) for run, status, partition, storage_id,
            materialization, _ in ours["rows"]] == [
        ("run-planned", "FAILED", None, 42, target), ("run-twice", "FAILED", None, 42, target),
        ("run-twice", "FAILED", None, 42, target), ("run-unplanned", "FAILED", None, 42, target)]
    assert all(abs(row[5].replace(tzinfo=UTC).timestamp() - when) < 1e-3 for row in ours["rows"])
    assert ours["errors"] == dagsters["errors"] and len(ours["errors"]) == 1  # duplicate planned rows: Dagster's error
    assert "Updated 2 rows" in ours["errors"][0]
    assert (ours["sent"], dagsters["sent"]) == (3, 4)  # one statement a result; Dagster: UPDATE, then INSERT if none
