"""A range step's column schema goes on its last day only, the asset's latest materialisation
(pipelines/lib/metadata.py `range_metadata`); every day keeps its other keys; a one-day run keeps it all."""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import pytest

from connectors.batches import Window
from pipelines.lib import event_storage, instance_env
from pipelines.lib.metadata import range_metadata, table_metadata
from tests.tmpfs import instance_in_memory

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01")
SCHEMA = dg.TableSchema(columns=[dg.TableColumn("sessions", "BIGINT"), dg.TableColumn("date", "DATE")])


def _metadata(context: dg.AssetExecutionContext) -> dict:
    window = Window(date.fromisoformat(context.partition_keys[0]), date.fromisoformat(context.partition_keys[-1]))
    return table_metadata("kpi.web_daily", 42, window, SCHEMA, sources="ga4")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def one_table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=range_metadata(context, _metadata(context)))


@dg.multi_asset(specs=[dg.AssetSpec("first"), dg.AssetSpec("second")], partitions_def=DAYS,
                backfill_policy=dg.BackfillPolicy.single_run())
def two_tables(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
    for key in (dg.AssetKey("first"), dg.AssetKey("second")):
        yield dg.MaterializeResult(asset_key=key, metadata=range_metadata(context, _metadata(context), key))


@pytest.fixture
def instance(monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    for name, value in instance_env.DAGSTER_ENV.items():  # the pipeline's batched range writes
        monkeypatch.setenv(name, value)
    event_storage.install()
    with instance_in_memory() as instance:
        yield instance


def _run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dict[str, dict[str, dict]]:
    """{asset: {day: metadata}} of the run's materialisations, and the run's success."""
    job = dg.Definitions(assets=[one_table, two_tables]).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, tags=tags)
    assert result.success
    found: dict[str, dict[str, dict]] = {}
    for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.dagster_event.event_specific_data.materialization
        found.setdefault(materialization.asset_key.to_user_string(), {})[materialization.partition] = dict(
            materialization.metadata)
    return found


def test_a_range_puts_the_schema_on_its_last_day_only(instance: dg.DagsterInstance) -> None:
    days = [f"2026-01-0{d}" for d in range(2, 7)]
    found = _run(instance, {"dagster/asset_partition_range_start": days[0],
                            "dagster/asset_partition_range_end": days[-1]})
    assert set(found) == {"one_table", "first", "second"}
    for asset, by_day in found.items():
        assert sorted(by_day) == days, asset  # every day materialised
        for day in days:
            metadata = by_day[day]
            assert metadata["dagster/row_count"].value == 42 and metadata["window_days"].value == 5
            assert metadata["dagster/table_name"].text == "kpi.web_daily" and metadata["sources"].text == "ga4"
            assert ("dagster/column_schema" in metadata) == (day == days[-1]), (asset, day)
        assert [c.name for c in by_day[days[-1]]["dagster/column_schema"].schema.columns] == ["sessions", "date"]
        # the asset's latest materialisation (the UI's asset page) is the last day's, with the columns
        latest = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert latest is not None and latest.dagster_event.partition == days[-1]
        assert "dagster/column_schema" in latest.dagster_event.event_specific_data.materialization.metadata
    assert instance.get_materialized_partitions(dg.AssetKey("one_table")) == set(days)


def test_a_one_day_run_keeps_all_its_metadata(instance: dg.DagsterInstance) -> None:
    found = _run(instance, {"dagster/partition": "2026-01-03"})
    for asset in ("one_table", "first", "second"):
        metadata = found[asset]["2026-01-03"]
        assert metadata["dagster/row_count"].value == 42 and "dagster/column_schema" in metadata
