"""The SQLite event log's kept engines (pipelines/lib/event_storage.py): fewer connections and fsyncs, same records.

Expected values are SQLite's own (PRAGMA synchronous: 1 = NORMAL, 2 = FULL, https://www.sqlite.org/pragma.html) and
the small job's shape (one asset, one run: its materialisation is found in the index database).
"""

import os
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from sqlalchemy import text

from pipelines.lib import event_storage


@dg.asset(key=["raw", "one"])
def one() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


DEFS = dg.Definitions(assets=[one])


@pytest.fixture
def storage(tmp_path, monkeypatch) -> Iterator[tuple[dg.DagsterInstance, SqliteEventLogStorage]]:
    monkeypatch.setattr(SqliteEventLogStorage, "_connect", event_storage._connect)
    monkeypatch.setattr(SqliteEventLogStorage, "dispose", event_storage._dispose)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert isinstance(instance.event_log_storage, SqliteEventLogStorage)
        yield instance, instance.event_log_storage


def _synchronous(storage: SqliteEventLogStorage, shard: str) -> int:
    with storage._connect(shard) as conn:  # noqa: SLF001
        return int(conn.execute(text("PRAGMA synchronous")).scalar_one())


def test_events_are_written_with_synchronous_normal_on_kept_engines(storage) -> None:
    instance, events = storage
    result = DEFS.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert result.success
    assert _synchronous(events, INDEX_SHARD_NAME) == 1
    assert _synchronous(events, result.run_id) == 1
    pid, engines = events.__dict__[event_storage._ENGINES]  # noqa: SLF001
    assert pid == os.getpid()
    assert set(engines) == {INDEX_SHARD_NAME, result.run_id}  # one engine per database file, not one per write
    # the records are Dagster's: the materialisation is found across runs (index database) with its metadata
    latest = instance.get_latest_materialization_event(dg.AssetKey(["raw", "one"]))
    assert latest is not None and latest.run_id == result.run_id
    assert latest.asset_materialization is not None and latest.asset_materialization.metadata["rows"].value == 3


def test_a_running_runs_events_reach_a_watcher_as_they_are_written(storage) -> None:
    """The UI follows a running run with Dagster's watchdog on <run_id>.db: each write through the kept connection
    (events in the write-ahead log) still reaches it, as when every write closed and checkpointed the file."""
    import threading
    import time

    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
    from dagster._core.events.log import EventLogEntry

    instance, events = storage
    run_id = "run-followed-live"
    seen: list[str] = []
    arrived = threading.Event()

    def callback(entry: EventLogEntry, _cursor: object) -> None:
        seen.append(entry.user_message)
        if "third" in seen:
            arrived.set()

    def write(message: str) -> None:
        event = DagsterEvent(DagsterEventType.ENGINE_EVENT.value, job_name="job", message=message,
                             event_specific_data=EngineEventData())
        events.store_event(EventLogEntry(error_info=None, level=20, user_message=message, run_id=run_id,
                                         timestamp=time.time(), dagster_event=event))

    write("first")  # the run's database exists before it is watched, as for a run the UI opens
    events.watch(run_id, None, callback)
    try:
        write("second")
        write("third")
        assert arrived.wait(15), seen
    finally:
        events.end_watch(run_id, callback)
    assert seen == ["first", "second", "third"]  # from the start of the run (no cursor), each once
    # written through a connection kept open between writes, not one per write
    pid, engines = events.__dict__[event_storage._ENGINES]  # noqa: SLF001
    assert run_id in engines and engines[run_id].pool.checkedin() == 1


def test_a_forked_child_makes_its_own_engines(storage) -> None:
    """SQLite connections must not cross a fork: a child process writing events opens its own."""
    instance, events = storage
    assert DEFS.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).success
    parent_pid, parent_engines = events.__dict__[event_storage._ENGINES]  # noqa: SLF001
    child = os.fork()
    if child == 0:  # the child: write through the inherited storage, report by exit code
        code = 1
        try:
            event_storage._engine(events, INDEX_SHARD_NAME)  # noqa: SLF001
            pid, engines = events.__dict__[event_storage._ENGINES]  # noqa: SLF001
            code = 0 if pid == os.getpid() and engines is not parent_engines else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert events.__dict__[event_storage._ENGINES][0] == parent_pid  # noqa: SLF001 - the parent's untouched
    assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "one"])) is not None


def test_dispose_closes_the_kept_engines_and_uninstall_restores_dagsters_way(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(SqliteEventLogStorage, "_connect", event_storage._connect)
    monkeypatch.setattr(SqliteEventLogStorage, "dispose", event_storage._dispose)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        events = instance.event_log_storage
        assert DEFS.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).success
        assert events.__dict__.get(event_storage._ENGINES)  # noqa: SLF001
    assert event_storage._ENGINES not in events.__dict__  # noqa: SLF001
    monkeypatch.setattr(SqliteEventLogStorage, "store_event_batch", SqliteEventLogStorage.store_event_batch)
    event_storage.uninstall()  # monkeypatch puts back what this process had before the test
    assert SqliteEventLogStorage._connect is event_storage.DAGSTER_CONNECT  # noqa: SLF001
    assert SqliteEventLogStorage.store_event_batch is event_storage.DAGSTER_STORE_EVENT_BATCH


DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-02-01")


@dg.asset(key=["raw", "daily"], partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def daily(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


def test_a_range_batch_is_stored_once_per_day_with_each_days_own_record(storage, monkeypatch) -> None:
    """Five days in one batch (one serialisation per event, one executemany): each day is its own record, and the
    asset's latest record is the batch's last day, pointing at that day's own storage id."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    monkeypatch.setattr(SqliteEventLogStorage, "store_event_batch", event_storage.store_event_batch)
    instance, _ = storage
    result = dg.Definitions(assets=[daily]).resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": "2026-01-03",
                                 "dagster/asset_partition_range_end": "2026-01-07"})
    assert result.success
    key = dg.AssetKey(["raw", "daily"])
    records = instance.fetch_materializations(key, limit=10).records
    assert sorted(r.partition_key for r in records) == [f"2026-01-0{d}" for d in range(3, 8)]
    assert all(r.asset_materialization.metadata["days"].value == 5 for r in records)  # type: ignore[union-attr]
    latest = instance.get_latest_materialization_event(key)
    assert latest is not None and latest.dagster_event is not None and latest.dagster_event.partition == "2026-01-07"
    [record] = instance.get_asset_records([key])
    newest = max(records, key=lambda r: r.storage_id)
    assert record.asset_entry.last_materialization_record is not None
    assert record.asset_entry.last_materialization_record.storage_id == newest.storage_id
    assert newest.partition_key == "2026-01-07"


@dg.asset_check(asset=daily, name="daily_ok")
def daily_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _check_rows(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str, str | None, str, str]]:
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
    from dagster_shared.serdes import deserialize_value

    table = AssetCheckExecutionsTable
    with instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(table.select().where(table.c.run_id == run_id)).fetchall()
    return sorted(((r.asset_key, r.check_name, r.partition, r.execution_status,
                    type(deserialize_value(r.evaluation_event)).__name__) for r in rows), key=str)


def test_a_planned_range_check_writes_dagsters_rows_one_per_day(tmp_path, monkeypatch) -> None:
    """The planned check's rows (one per day of the range, status PLANNED, the planned event) are the same whether
    Dagster writes them or pipelines/lib/event_storage.py does (event serialised once, one executemany). The run is
    planned Dagster's way (one row per day for this unpartitioned check), whether or not pipelines/lib/
    planned_events.py, which plans it once, was installed in this process by an earlier test."""
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    from pipelines.lib import planned_events

    monkeypatch.setattr(DagsterRun, "get_resolved_partitions_subset_for_events",
                        planned_events.DAGSTER_RESOLVED_SUBSET)

    job = dg.Definitions(assets=[daily], asset_checks=[daily_ok]).resolve_implicit_global_asset_job_def()
    tags = {"dagster/asset_partition_range_start": "2026-01-03", "dagster/asset_partition_range_end": "2026-01-07"}
    found = {}
    for name, method in (("dagster", event_storage.DAGSTER_STORE_CHECK_PLANNED),
                         ("ours", event_storage.store_asset_check_evaluation_planned)):
        monkeypatch.setattr(SqlEventLogStorage, "_store_asset_check_evaluation_planned", method)
        (tmp_path / name).mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / name)) as instance:
            result = job.execute_in_process(instance=instance, tags=tags)
            assert result.success
            found[name] = [row for row in _check_rows(instance, result.run_id) if row[2] is not None]
    planned = [(r[0], r[1], r[2], r[3]) for r in found["ours"]]
    assert planned == [('["raw", "daily"]', "daily_ok", f"2026-01-0{d}", "PLANNED") for d in range(3, 8)]
    assert found["ours"] == found["dagster"]


def test_rows_packed_with_shared_metadata_are_dagsters_own(storage) -> None:
    """Per-day materialisations sharing their metadata objects (and one with its own) give byte for byte the rows
    Dagster's serialiser gives."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    _, events_storage = storage
    schema = dg.TableSchema(columns=[dg.TableColumn("sessions", "int64", description="Sessions of the day")])
    shared = {"dagster/column_schema": schema, "rows": dg.MetadataValue.int(3),
              "failed_accounts": dg.MetadataValue.json({"p": "403"})}
    entries = []
    for day, metadata in (("2026-01-01", shared), ("2026-01-02", dict(shared)), ("2026-01-03", {"rows": 4})):
        event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, job_name="job", event_specific_data=(
            StepMaterializationData(dg.AssetMaterialization(["raw", "one"], partition=day, metadata=metadata))))
        entries.append(EventLogEntry(error_info=None, level=10, user_message="", run_id="r", timestamp=1.0,
                                     dagster_event=event))
    ours = event_storage._rows(events_storage, entries)  # noqa: SLF001
    assert ours == [events_storage._event_to_row(entry) for entry in entries]  # noqa: SLF001
    assert '"2026-01-03"' in ours[2]["event"] and "Sessions of the day" not in ours[2]["event"]
