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
