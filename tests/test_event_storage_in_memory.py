"""Dagster's in-memory event log (`DagsterInstance.ephemeral()`) writing a range step's batch in one go
(pipelines/lib/event_storage.py `store_event_batch_in_memory`): the same rows as Dagster's event-by-event path, each
day its own record, the run's watchers told of every event in order.

Expected values are the batch's by construction (three days of one asset, two of another, in that order) and
Dagster's own rows for the same events written its own way (`EventLogStorage.store_event_batch`, one `store_event`
per event), compared column by column.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.in_memory import InMemoryEventLogStorage
from dagster._core.storage.event_log.schema import AssetEventTagsTable, AssetKeyTable, SqlEventLogStorageTable
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from pipelines.lib import event_storage

RUN_ID = "run-in-memory"
SCHEMA = dg.TableSchema(columns=[dg.TableColumn("sessions", "int64", description="Sessions of the day")])


def _materialisation(asset: str, day: str, metadata: dict[str, Any], timestamp: float) -> EventLogEntry:
    materialisation = dg.AssetMaterialization(["raw", asset], partition=day, metadata=metadata,
                                              tags={"dagster/data_version": f"{asset}-{day}"})
    event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, job_name="job", step_key=f"raw__{asset}",
                         event_specific_data=StepMaterializationData(materialisation))
    return EventLogEntry(error_info=None, level=10, user_message="", run_id=RUN_ID, timestamp=timestamp,
                         step_key=f"raw__{asset}", job_name="job", dagster_event=event)


def _batch() -> list[EventLogEntry]:
    """A range step's batch: three days of raw/a sharing their metadata objects, then two of raw/b."""
    shared = {"dagster/column_schema": SCHEMA, "rows": dg.MetadataValue.int(3)}
    days_a = [("a", f"2026-01-0{day}", shared) for day in (1, 2, 3)]
    days_b = [("b", f"2026-01-0{day}", {"rows": day}) for day in (1, 2)]
    return [_materialisation(asset, day, metadata, 1_800_000_000.0 + index)
            for index, (asset, day, metadata) in enumerate(days_a + days_b)]


def _table(storage: InMemoryEventLogStorage, table: Any, leave_out: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    columns = [column for column in table.c if column.name not in leave_out]
    with storage.index_connection() as conn:
        return [tuple(row) for row in conn.execute(table.select().with_only_columns(*columns)
                                                   .order_by(columns[0])).fetchall()]


def _store(method: Any) -> tuple[InMemoryEventLogStorage, list[tuple[str, str]]]:
    """A fresh in-memory storage with a watcher on the run, the batch written by `method`."""
    storage = InMemoryEventLogStorage()
    told: list[tuple[str, str]] = []
    storage.watch(RUN_ID, "", lambda entry, cursor: told.append((entry.dagster_event.partition, cursor)))
    method(storage, _batch())
    return storage, told


def test_a_batch_writes_dagsters_rows_byte_for_byte_and_tells_the_watchers_in_order() -> None:
    dagster, dagster_told = _store(event_storage.DAGSTER_IN_MEMORY_STORE_EVENT_BATCH)
    ours, ours_told = _store(event_storage.store_event_batch_in_memory)
    try:
        events = _table(ours, SqlEventLogStorageTable)
        assert len(events) == 5 and [row[0] for row in events] == [1, 2, 3, 4, 5]  # one record per day, in order
        assert events == _table(dagster, SqlEventLogStorageTable)
        assert _table(ours, AssetEventTagsTable) == _table(dagster, AssetEventTagsTable)
        assert len(_table(ours, AssetEventTagsTable)) == 5  # each day's data version indexed
        # the latest record of each asset: its last day of the batch (create_timestamp is the database's clock)
        assets = _table(ours, AssetKeyTable, leave_out=("create_timestamp",))
        assert assets == _table(dagster, AssetKeyTable, leave_out=("create_timestamp",))
        assert [row[1] for row in assets] == ['["raw", "a"]', '["raw", "b"]']
        assert ours_told == dagster_told
        assert [partition for partition, _ in ours_told] == ["2026-01-01", "2026-01-02", "2026-01-03",
                                                              "2026-01-01", "2026-01-02"]
        assert ours._storage_id == 5  # noqa: SLF001
    finally:
        ours.dispose()
        dagster.dispose()


def test_other_batches_go_through_dagsters_path() -> None:
    """A single event, or events of several runs, are not batched: Dagster's own `store_event` writes them."""
    calls: list[EventLogEntry] = []
    storage = InMemoryEventLogStorage()
    original = storage.store_event
    storage.store_event = lambda event: (calls.append(event), original(event))  # type: ignore[method-assign]
    try:
        one, other = _batch()[:2]
        other = other._replace(run_id="another-run")
        event_storage.store_event_batch_in_memory(storage, [one])
        event_storage.store_event_batch_in_memory(storage, [one, other])
        assert calls == [one, one, other]
        assert len(_table(storage, SqlEventLogStorageTable)) == 3
    finally:
        storage.dispose()


DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-02-01")


@dg.asset(key=["raw", "daily"], partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def daily(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


@pytest.fixture
def ephemeral(monkeypatch) -> Iterator[dg.DagsterInstance]:
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    monkeypatch.setattr(InMemoryEventLogStorage, "store_event_batch", event_storage.store_event_batch_in_memory)
    instance = dg.DagsterInstance.ephemeral()
    assert isinstance(instance.event_log_storage, InMemoryEventLogStorage)
    yield instance
    instance.dispose()


def test_a_range_run_on_an_ephemeral_instance_has_each_days_own_record(ephemeral, monkeypatch) -> None:
    stored: list[int] = []

    def counted(storage: InMemoryEventLogStorage, events: Any) -> None:
        stored.append(len(events))
        event_storage.store_event_batch_in_memory(storage, events)

    monkeypatch.setattr(InMemoryEventLogStorage, "store_event_batch", counted)
    result = dg.Definitions(assets=[daily]).resolve_implicit_global_asset_job_def().execute_in_process(
        instance=ephemeral, tags={"dagster/asset_partition_range_start": "2026-01-03",
                                  "dagster/asset_partition_range_end": "2026-01-07"})
    assert result.success
    assert 5 in stored  # the five days came as one batch
    key = dg.AssetKey(["raw", "daily"])
    records = ephemeral.fetch_materializations(key, limit=10).records
    assert sorted(r.partition_key for r in records) == [f"2026-01-0{d}" for d in range(3, 8)]
    assert all(r.asset_materialization.metadata["days"].value == 5 for r in records)  # type: ignore[union-attr]
    [record] = ephemeral.get_asset_records([key])
    newest = max(records, key=lambda r: r.storage_id)
    assert newest.partition_key == "2026-01-07"
    assert record.asset_entry.last_materialization_record is not None
    assert record.asset_entry.last_materialization_record.storage_id == newest.storage_id
    days = [f"2026-01-0{d}" for d in range(3, 8)]
    by_day = ephemeral.get_status_by_partition(key, days, DAILY) or {}
    assert {by_day.get(day) for day in days} == {AssetPartitionStatus.MATERIALIZED}
    assert by_day.get("2026-01-08") is None
    # the run's own log has the five days too (the run and index database are one)
    assert len(ephemeral.all_logs(result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)) == 5


def test_install_and_uninstall_switch_the_in_memory_storage(monkeypatch) -> None:
    for name in ("store_event_batch", "_connect", "dispose"):
        monkeypatch.setattr(event_storage.SqliteEventLogStorage, name,
                            getattr(event_storage.SqliteEventLogStorage, name))
    monkeypatch.setattr(event_storage.SqlEventLogStorage, "_store_asset_check_evaluation_planned",
                        event_storage.SqlEventLogStorage._store_asset_check_evaluation_planned)  # noqa: SLF001
    monkeypatch.setattr(InMemoryEventLogStorage, "store_event_batch", InMemoryEventLogStorage.store_event_batch)
    for cls, name, _ours, _dagsters in event_storage.PG_PATCHES:  # the PostgreSQL storages' methods as they are now
        monkeypatch.setattr(cls, name, getattr(cls, name))
    event_storage.install()
    assert InMemoryEventLogStorage.store_event_batch is event_storage.store_event_batch_in_memory
    event_storage.uninstall()
    assert InMemoryEventLogStorage.store_event_batch is event_storage.DAGSTER_IN_MEMORY_STORE_EVENT_BATCH
