"""Dagster's bookkeeping of a range run does not grow with its days, and a failed range is never shown materialised.

A small graph of the pipeline's shape (two raw assets, a KPI asset reading both, single-run backfill policy, the
jobs' failure hook) on a SQLite instance of its own, with the settings every pipeline process runs with
(pipelines/lib/instance_env.py). Expected counts are the graph's: one planned event per asset per run, whatever the
days; per-day materialisations; and the partition status a person sees in the UI.
"""

import os
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from pipelines.lib import event_storage, instance_env
from pipelines.lib.partition_status import mark_failed_partitions, mark_unmaterialised_partitions
from tests.tmpfs import instance_in_memory

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-03-01")
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
FAIL_VARIABLE = "MKPI_TEST_FAIL_RAW_B"


def _raw(name: str) -> dg.AssetsDefinition:
    @dg.asset(key=["raw", name], partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        if name == "b" and os.environ.get(FAIL_VARIABLE):
            raise dg.Failure("the platform refused the request")
        return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})

    return _asset


@dg.asset(key=["kpi", "web"], deps=[dg.AssetKey(["raw", "a"]), dg.AssetKey(["raw", "b"])], partitions_def=DAILY,
          backfill_policy=dg.BackfillPolicy.single_run())
def kpi_web(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


JOB = dg.define_asset_job("range_job", selection="*", hooks={mark_failed_partitions})
DEFS = dg.Definitions(assets=[_raw("a"), _raw("b"), kpi_web], jobs=[JOB])
KEYS = [dg.AssetKey(["raw", "a"]), dg.AssetKey(["raw", "b"]), dg.AssetKey(["kpi", "web"])]


@pytest.fixture(params=["dagster_sqlite", "batched_sqlite"])
def instance(request, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """A SQLite instance writing batches Dagster's way, or the project's way (pipelines/lib/event_storage.py), on
    tmpfs and without compute logs (tests/tmpfs.py: the same storage and API; no step output is read here)."""
    for name in instance_env.DAGSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    instance_env.apply()  # monkeypatch restores the environment after the test
    monkeypatch.delenv(FAIL_VARIABLE, raising=False)
    batched = event_storage.store_event_batch if request.param == "batched_sqlite" else (
        event_storage.DAGSTER_STORE_EVENT_BATCH)
    monkeypatch.setattr(SqliteEventLogStorage, "store_event_batch", batched)
    with instance_in_memory() as test_instance:
        yield test_instance


def run_range(instance: dg.DagsterInstance, first: str, last: str) -> dg.ExecuteInProcessResult:
    return DEFS.resolve_job_def("range_job").execute_in_process(
        instance=instance, tags={RANGE_START_TAG: first, RANGE_END_TAG: last}, raise_on_error=False)


def count(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> int:
    return len(instance.all_logs(run_id, of_type=kind))


def status(instance: dg.DagsterInstance, key: dg.AssetKey, days: list[str]) -> set[AssetPartitionStatus | None]:
    by_day = instance.get_status_by_partition(key, days, DAILY) or {}
    return {by_day.get(day) for day in days}


def days(first: str, last: str) -> list[str]:
    keys = DAILY.get_partition_keys()
    return keys[keys.index(first):keys.index(last) + 1]


def test_the_pipeline_sets_the_range_bookkeeping_switches_when_its_definitions_load():
    import pipelines.definitions  # noqa: F401 - applies instance_env on import

    assert os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] == "1"
    assert int(os.environ["DAGSTER_EVENT_BATCH_SIZE"]) > 0
    assert SqliteEventLogStorage.store_event_batch is event_storage.store_event_batch


def test_planned_events_are_one_per_asset_whatever_the_days(instance):
    short = run_range(instance, "2026-01-01", "2026-01-03")
    long = run_range(instance, "2026-01-01", "2026-01-30")
    assert short.success and long.success
    planned = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    assert count(instance, short.run_id, planned) == count(instance, long.run_id, planned) == len(KEYS)
    # the days are still materialised one by one: 3 assets x 30 days
    assert count(instance, long.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION) == 3 * 30
    for key in KEYS:
        assert status(instance, key, days("2026-01-01", "2026-01-30")) == {AssetPartitionStatus.MATERIALIZED}
        # each day's materialisation is findable with its own metadata (one per day, 30 days)
        records = instance.fetch_materializations(key, limit=100).records
        assert len(records) == 3 + 30
        assert {r.partition_key for r in records} == set(days("2026-01-01", "2026-01-30"))
        latest = instance.get_latest_materialization_event(key)
        assert latest is not None and latest.run_id == long.run_id


def test_a_failed_range_shows_its_days_failed_never_materialised(instance, monkeypatch):
    window = days("2026-02-01", "2026-02-10")
    assert run_range(instance, "2026-02-01", "2026-02-05").success  # five of the days loaded before
    monkeypatch.setenv(FAIL_VARIABLE, "1")
    failed = run_range(instance, "2026-02-01", "2026-02-10")
    assert not failed.success
    # raw/b failed, kpi/web was skipped: all ten days of both show failed, including the five loaded before
    assert status(instance, dg.AssetKey(["raw", "b"]), window) == {AssetPartitionStatus.FAILED}
    assert status(instance, dg.AssetKey(["kpi", "web"]), window) == {AssetPartitionStatus.FAILED}
    # raw/a succeeded in the same run: materialised
    assert status(instance, dg.AssetKey(["raw", "a"]), window) == {AssetPartitionStatus.MATERIALIZED}
    # marking again (the sensor after the hook) writes nothing more
    assert mark_unmaterialised_partitions(instance, failed.run_id) == 0
    # a later successful run makes them materialised again
    monkeypatch.delenv(FAIL_VARIABLE)
    assert run_range(instance, "2026-02-01", "2026-02-10").success
    for key in KEYS:
        assert status(instance, key, window) == {AssetPartitionStatus.MATERIALIZED}


def test_the_pipelines_jobs_carry_the_failure_hook():
    from pipelines.definitions import defs

    for name in ("daily_refresh_job", "hubspot_refresh_job", "publish_job"):
        assert mark_failed_partitions in defs.resolve_job_def(name).hook_defs, name
