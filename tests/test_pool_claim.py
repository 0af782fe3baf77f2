"""A pool slot is claimed once: a claim whose free slot was taken by another run between Dagster's SELECT and its
UPDATE is BLOCKED, not granted a second time (pipelines/lib/executor.py `_claim_concurrency_slot`).

tests/test_concurrency.py saw it on PostgreSQL: two writer steps of two runs forked at once both claimed the one
`duckdb_write` slot (Dagster 1.13 updates the selected row by id alone, and its AUTOCOMMIT storages release the
SELECT's row lock at once). Here the other run's claim is made, deterministically, between the two statements, on
a SQLite instance (the same SqlEventLogStorage code).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._utils.concurrency import ConcurrencySlotStatus

import pipelines.definitions  # noqa: F401  (installs the project's patches, as the code location does)
from pipelines.lib import executor

POOL = "duckdb_write"


class RacingConnection:
    """The claim's connection; just before its second statement (the UPDATE), another run takes the free slot."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.statements = conn, 0

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self.statements += 1
        if self.statements == 2:  # the other run's claim, committed before ours (SQLite: on this connection)
            self.conn.execute(ConcurrencySlotsTable.update().values(run_id="run-b", step_key="ga4__traffic")
                              .where(ConcurrencySlotsTable.c.concurrency_key == POOL))
        return self.conn.execute(statement, *args, **kwargs)


def slot_holders(storage: SqlEventLogStorage) -> list[tuple[str | None, str | None]]:
    with storage.index_connection() as conn:
        return [tuple(row) for row in conn.execute(
            ConcurrencySlotsTable.select().with_only_columns(ConcurrencySlotsTable.c.run_id,
                                                              ConcurrencySlotsTable.c.step_key)
            .where(ConcurrencySlotsTable.c.concurrency_key == POOL)).fetchall()]


def test_a_slot_taken_between_select_and_update_is_not_claimed_again(tmp_path, monkeypatch: pytest.MonkeyPatch):
    assert SqlEventLogStorage._claim_concurrency_slot is executor._claim_concurrency_slot  # noqa: SLF001
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, SqlEventLogStorage)
        storage.set_concurrency_slots(POOL, 1)
        own = storage.index_connection

        @contextmanager
        def racing() -> Iterator[RacingConnection]:
            with own() as conn:
                yield RacingConnection(conn)

        monkeypatch.setattr(storage, "index_connection", racing)
        status = storage._claim_concurrency_slot(POOL, "run-a", "google_ads__campaign_daily")  # noqa: SLF001
        monkeypatch.setattr(storage, "index_connection", own)
        assert status == ConcurrencySlotStatus.BLOCKED
        assert slot_holders(storage) == [("run-b", "ga4__traffic")]  # the other run keeps its claim


def test_a_free_slot_is_claimed_and_a_held_one_blocks(tmp_path):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(POOL, 1)
        assert storage._claim_concurrency_slot(POOL, "run-a", "a") == ConcurrencySlotStatus.CLAIMED  # noqa: SLF001
        assert storage._claim_concurrency_slot(POOL, "run-b", "b") == ConcurrencySlotStatus.BLOCKED  # noqa: SLF001
        assert slot_holders(storage) == [("run-a", "a")]


def _claims(tmp_path, claim: Any, postgres_url: str | None = None) -> tuple[list[tuple[Any, ...]], list[int]]:
    """A pool of one slot: run a's step claims it, run b's waits (queued), a frees it, b claims it; each answer (status,
    priority, assigned or not, queued or not) and the statements each claim sent."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    answers: list[tuple[Any, ...]] = []
    sent: list[int] = []
    tmp_path.mkdir()
    with (dg.instance_for_test(temp_dir=str(tmp_path), overrides={"storage": {"postgres": {
            "postgres_url": postgres_url}}}) if postgres_url else dg.DagsterInstance.local_temp(str(tmp_path))
          ) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(POOL, 1)
        for run, step, free_first in (("run-a", "a", False), ("run-b", "b", False), ("run-b", "b", False),
                                      ("run-b", "b", True), ("run-b", "b", False)):
            if free_first:
                storage.free_concurrency_slot_for_step("run-a", "a")
            statements: list[str] = []

            def count(*_: Any, into: list[str] = statements) -> None:
                into.append("")

            event.listen(Engine, "before_cursor_execute", count)
            try:
                status = claim(storage, POOL, run, step, 3 if run == "run-b" else None)
            finally:
                event.remove(Engine, "before_cursor_execute", count)
            answers.append((status.slot_status, status.priority, status.assigned_timestamp is not None,
                            status.enqueued_timestamp is not None))
            sent.append(len(statements))
        answers.append(tuple(slot_holders(storage)))
    return answers, sent


def test_the_claim_answers_as_dagsters_in_fewer_statements(tmp_path) -> None:
    """The same answers as Dagster's own claim for a step that gets the slot, one that waits for it (queued with its
    priority), and that one once the slot is freed; a first claim in 5 statements instead of 8."""
    assert SqlEventLogStorage.claim_concurrency_slot is executor._claim_queued
    ours, ours_sent = _claims(tmp_path / "ours", executor._claim_queued)
    dagsters, dagsters_sent = _claims(tmp_path / "dagsters", executor._DAGSTER_CLAIM)
    assert ours == dagsters
    claimed, blocked = ConcurrencySlotStatus.CLAIMED, ConcurrencySlotStatus.BLOCKED
    assert ours[:5] == [(claimed, None, True, True), (blocked, 3, False, True), (blocked, 3, False, True),
                        (claimed, 3, True, True), (claimed, 3, True, True)]
    assert ours[5] == (("run-b", "b"),)
    assert (ours_sent[0], dagsters_sent[0]) == (5, 8)  # a step's first claim, granted
    assert all(o < d for o, d in zip(ours_sent, dagsters_sent, strict=True))


def test_a_changed_dagster_claim_keeps_dagsters_own(monkeypatch) -> None:
    from pipelines.lib import event_storage

    changed = dict(event_storage.WRITTEN_AGAINST)
    changed["SqlEventLogStorage.check_concurrency_claim"] = "0" * 16
    assert executor.claim_method() is executor._claim_queued  # at the Dagster written against
    monkeypatch.setattr(event_storage, "WRITTEN_AGAINST", changed)
    assert executor.claim_method() is executor._DAGSTER_CLAIM
    monkeypatch.setattr(event_storage, "WRITTEN_AGAINST", {})
    assert executor.claim_method() is executor._DAGSTER_CLAIM


def test_the_claim_answers_as_dagsters_on_postgresql(tmp_path, request: pytest.FixtureRequest) -> None:
    """The same on PostgreSQL (the service's storage): the queueing INSERT, its CASE and RETURNING, as Dagster's."""
    from tests.postgres import file_server

    pytest.importorskip("dagster_postgres")
    with file_server(request.config, "pool_claim") as server:
        urls = [server.create_database(name).url.replace("postgresql://", "postgresql+psycopg2://")
                for name in ("claim_ours", "claim_dagsters")]
        ours, ours_sent = _claims(tmp_path / "ours", executor._claim_queued, urls[0])
        dagsters, dagsters_sent = _claims(tmp_path / "dagsters", executor._DAGSTER_CLAIM, urls[1])
    assert ours == dagsters
    assert ours[5] == (("run-b", "b"),)
    assert (ours_sent[0], dagsters_sent[0]) == (5, 8)
