"""A range run plans an unpartitioned check or asset once, a daily one with the run's days
(pipelines/lib/planned_events.py), and the check's result then settles its planned row."""

from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as db
from dagster._core.events import AssetMaterializationPlannedData
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

from pipelines.lib import event_storage, instance_env, planned_events
from tests.tmpfs import instance_in_memory

DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01")
KEYS = DAYS.get_partition_keys()[:30]


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily_table() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset
def all_time_copy() -> None:
    """Unpartitioned, as the objectives and the analysts' copy are. (Named to sort before the daily table: Dagster
    1.13 gives a new run the partitions subset of its range when its last asset step, by step key, is partitioned
    (`RunDomain.construct_run_with_snapshots`), as the pipeline's range runs have it.)"""


@dg.asset_check(asset=daily_table, blocking=True)
def rows_unique() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset=daily_table)
def rows_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False)


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in instance_env.DAGSTER_ENV.items():
        monkeypatch.setenv(name, value)
    event_storage.install()
    planned_events.install()
    yield
    planned_events.uninstall()


def _range_run() -> tuple[list[tuple], dict[str, AssetMaterializationPlannedData]]:
    """A 30-day range run of the three assets' job on a SQLite instance: the check executions table's rows of the
    run, and each asset's planned event."""
    job = dg.define_asset_job("range_job", selection=dg.AssetSelection.all())  # as the pipeline's jobs
    defs = dg.Definitions(assets=[daily_table, all_time_copy], asset_checks=[rows_unique, rows_positive], jobs=[job])
    with instance_in_memory() as instance:
        result = defs.resolve_job_def("range_job").execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]})
        table = AssetCheckExecutionsTable
        with instance.event_log_storage.index_connection() as conn:
            rows = conn.execute(db.select(table.c.check_name, table.c.partition, table.c.execution_status)
                                .where(table.c.run_id == result.run_id).order_by(table.c.id)).fetchall()
        plans = {entry.dagster_event.asset_key.to_user_string(): entry.dagster_event.event_specific_data
                 for entry in instance.all_logs(result.run_id,
                                                of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)}
        materialised = instance.get_materialized_partitions(dg.AssetKey("daily_table"))
        run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.partitions_subset is not None  # the case of the pipeline's range runs
    assert materialised == set(KEYS)  # every day of the range shows materialised
    return [tuple(r) for r in rows], plans


def test_an_unpartitioned_check_is_planned_once_and_settled_by_its_result(planned: None) -> None:
    rows, plans = _range_run()
    # one row per check: planned at the run's creation, then updated by the check's result
    assert sorted(rows) == [("rows_positive", None, "FAILED"), ("rows_unique", None, "SUCCEEDED")]
    # the daily asset is planned with the run's 30 days, the unpartitioned one without days
    assert plans["daily_table"].partitions_subset.get_partition_keys() == KEYS
    assert plans["all_time_copy"].partitions_subset is None and plans["all_time_copy"].partition is None


def test_dagsters_own_planning_leaves_a_planned_row_per_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the module changes: Dagster 1.13 plans each unpartitioned check of a range run once per day, and its
    result (with no day) is a row of its own, so those 30 rows per check stay planned."""
    for name, value in instance_env.DAGSTER_ENV.items():
        monkeypatch.setenv(name, value)
    event_storage.install()
    planned_events.uninstall()
    rows, plans = _range_run()
    for check, status in (("rows_unique", "SUCCEEDED"), ("rows_positive", "FAILED")):
        mine = [r for r in rows if r[0] == check]
        assert sorted(r[1] for r in mine if r[2] == "PLANNED") == KEYS
        assert [r for r in mine if r[2] != "PLANNED"] == [(check, None, status)]
    assert plans["all_time_copy"].partitions_subset.get_partition_keys() == KEYS


def test_the_guard_keeps_dagsters_method_when_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """At the pinned Dagster the method and its callers are the ones written against; a changed caller keeps
    Dagster's own method."""
    assert planned_events.WRITTEN_AGAINST_DAGSTER
    changed = dict(event_storage.WRITTEN_AGAINST)
    changed["RunDomain._log_asset_planned_events"] = "0" * 16
    monkeypatch.setattr(event_storage, "WRITTEN_AGAINST", changed)
    assert not planned_events._guarded()
