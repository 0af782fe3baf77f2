"""A range step's per-day materialisations are written from one packed template per asset
(pipelines/lib/event_storage.py `_DayTemplates`): every row must be exactly what Dagster's own serialiser writes, and
an event that differs from its asset's first one anywhere but its day, time and messages must go through Dagster's
serialiser."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster_shared.serdes import serialize_value

from pipelines.lib import event_storage, instance_env

DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01")


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[object, list[EventLogEntry], list[dict]]]]:
    """Every batch the pipeline's batched write serialised, with the rows it produced."""
    seen: list[tuple[object, list[EventLogEntry], list[dict]]] = []
    original = event_storage._rows

    def spy(storage: object, events: list[EventLogEntry]) -> list[dict]:
        rows = original(storage, events)  # type: ignore[arg-type]
        seen.append((storage, list(events), rows))
        return rows

    monkeypatch.setattr(event_storage, "_rows", spy)
    for name, value in instance_env.DAGSTER_ENV.items():  # a range step's materialisations sent as one batch
        monkeypatch.setenv(name, value)
    event_storage.install()
    yield seen


def _asset(name: str, per_day: bool) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
    def _a(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        if per_day:  # partition-scoped metadata: each day's event differs beyond its day
            for key in context.partition_keys:
                context.add_asset_metadata({"day_rows": int(key.replace("-", ""))}, partition_key=key)
        return dg.MaterializeResult(metadata={"dagster/row_count": 7, "share": 0.25, "note": "é \"quoted\"",
                                              "dagster/column_schema": dg.TableSchema(
                                                  columns=[dg.TableColumn(f"c{i}", "int") for i in range(5)])})

    return _a


def test_rows_equal_dagsters_own_serialiser(tmp_path: Path, captured: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 40-day range run of two assets on a SQLite instance: every stored row, byte for byte, is what Dagster's
    `_event_to_row` makes with its own serialiser; the asset with per-day metadata took Dagster's path."""
    rendered: list[str] = []
    render = event_storage._render

    def counted(packed: dict, event: EventLogEntry) -> str:
        rendered.append(event.get_dagster_event().asset_key.to_user_string())
        return render(packed, event)

    monkeypatch.setattr(event_storage, "_render", counted)
    defs = dg.Definitions(assets=[_asset("same_every_day", False), _asset("own_metadata_per_day", True)])
    keys = DAYS.get_partition_keys()[:40]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, tags={"dagster/asset_partition_range_start": keys[0],
                                     "dagster/asset_partition_range_end": keys[-1]})
        assert result.success
        stored = {(r.asset_key.to_user_string(), r.partition_key) for r in instance.fetch_materializations(
            dg.AssetKey("own_metadata_per_day"), limit=100).records}
    assert len(stored) == 40
    rows = [(storage, event, row) for storage, events, batch in captured
            for event, row in zip(events, batch, strict=True)]
    assert len(rows) == 80  # 40 days x 2 assets, all through the batched write
    dagster_serialize = event_storage.DAGSTER_SERIALIZE
    for storage, event, row in rows:
        assert row == storage._event_to_row(event)
        assert row["event"] == dagster_serialize(event)
    days = {row["partition"] for _, _, row in rows}
    assert days == set(keys)
    # the template path was taken: each asset's first day packed and checked against Dagster's string, then written
    # from its packing, as were the 39 other days of the asset whose days differ only by their day; the other
    # asset's later days all went through Dagster's serialiser
    assert rendered.count("same_every_day") == 1 + 40
    assert rendered.count("own_metadata_per_day") == 1 + 1


def test_postgres_batch_rows_equal_dagsters(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                                            captured: list) -> None:
    """PostgreSQL storage's write of a range step's batch (its rows made by the same code, inserted by one statement
    executed over them): the stored events are Dagster's strings, stored in the batch's order, every day's
    materialisation is read back with its own day, the asset's latest is the last day."""
    from dagster_postgres.event_log.event_log import PostgresEventLogStorage

    from tests.postgres import file_server

    assert PostgresEventLogStorage.store_event_batch is event_storage.store_event_batch_postgres  # installed
    keys = DAYS.get_partition_keys()[:30]
    with file_server(request.config, "day_templates") as server:
        database = server.create_database("day_templates")
        url = database.url.replace("postgresql://", "postgresql+psycopg2://")
        overrides = {"event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                                           "config": {"postgres_url": url}}}
        with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("home")), overrides=overrides) as instance:
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            job = dg.Definitions(assets=[_asset("same_every_day", False)]).resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(instance=instance, tags={
                "dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
            assert result.success
            records = instance.fetch_materializations(dg.AssetKey("same_every_day"), limit=100).records
            assert sorted(r.partition_key for r in records) == keys
            assert {r.event_log_entry.dagster_event.step_key for r in records} == {"same_every_day"}
            # stored in the batch's order (ids returned in the rows' order), the asset's latest is the last day
            stored = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            assert [entry.dagster_event.partition for entry in stored] == keys
            latest = instance.get_latest_materialization_event(dg.AssetKey("same_every_day"))
            assert latest is not None and latest.dagster_event.partition == keys[-1]
            for day in (keys[0], keys[-1]):  # each day's record found by its partition (the batch's tags)
                assert instance.fetch_materializations(dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey("same_every_day"), asset_partitions=[day]), limit=5).records
    rows = [(storage, event, row) for storage, events, batch in captured
            for event, row in zip(events, batch, strict=True)]
    assert len(rows) == 30
    for storage, event, row in rows:
        assert row == storage._event_to_row(event)


def _materialization(day: str, rows: int, message: str = "m") -> EventLogEntry:
    materialization = dg.AssetMaterialization(asset_key="a", partition=day, metadata={"rows": rows})
    event = DagsterEvent(event_type_value="ASSET_MATERIALIZATION", job_name="j", message=f"{message} {day}",
                         event_specific_data=StepMaterializationData(materialization), step_key="s")
    return EventLogEntry(error_info=None, level=10, user_message=f"{message} {day}", run_id="r", timestamp=1.5,
                         step_key="s", job_name="j", dagster_event=event)


def test_a_day_that_differs_elsewhere_is_serialised_by_dagster() -> None:
    """Same asset and step, another metadata value: not written from the template (Dagster's string for it)."""
    import threading

    templates = event_storage._DayTemplates(threading.get_ident())
    first, same, other = _materialization("2025-01-01", 3), _materialization("2025-01-02", 3), \
        _materialization("2025-01-03", 4)
    for event in (first, same, other):
        assert templates.serialize(event) == serialize_value(event)
    assert event_storage._same_but_day(same, first)
    assert not event_storage._same_but_day(other, first)


def test_sqlite_remembers_a_table_once_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`has_table` (asked before every asset check event) opens the index database once per table found; a table not
    found is asked again."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    event_storage.install()
    asked: list[str] = []
    original = event_storage.DAGSTER_HAS_TABLE

    def counted(storage: SqliteEventLogStorage, name: str) -> bool:
        asked.append(name)
        return original(storage, name)

    monkeypatch.setattr(event_storage, "DAGSTER_HAS_TABLE", counted)
    storage = SqliteEventLogStorage(str(tmp_path))
    try:
        assert all(storage.has_table("asset_check_executions") for _ in range(3))
        assert not any(storage.has_table("no_such_table") for _ in range(2))
        assert asked == ["asset_check_executions", "no_such_table", "no_such_table"]
        storage.wipe()  # its tables made anew
        assert storage.has_table("asset_check_executions")
    finally:
        storage.dispose()


def test_a_days_own_values_are_written_as_dagster_writes_them() -> None:
    """The template is the first day's JSON cut at its four per-day values: later days whose messages hold quotes,
    backslashes, control and non-ASCII characters, with other times and keys, render as Dagster's serialiser writes
    them, from the template (not by Dagster's serialiser)."""
    import threading

    templates = event_storage._DayTemplates(threading.get_ident())
    days = [("2025-01-01", "m", 1.5), ("2025-01-02", 'quote " backslash \\ é ☃', 1733612345.123456),
            ("2025|03", "tab\tnew line\n", 0.1), ("2025-01-04", "", 2e-07)]
    events = [_materialization(day, 3, message)._replace(timestamp=at) for day, message, at in days]
    for event in events:
        assert templates.serialize(event) == serialize_value(event)
    [(first, template)] = [found for found in templates.templates.values() if found is not None]
    assert first is events[0]
    for event in events:
        assert event_storage._same_but_day(event, first)
        assert event_storage._render(template, event) == serialize_value(event)
