"""A failed range run shows its days failed in the UI, never materialised, with one planned event per asset.

Business purpose: the partition status is how a person sees which days of which table can be trusted. A range run
is created with ONE "materialisation planned" event per asset naming the whole range
(pipelines/lib/instance_env.py); Dagster 1.13 derives a failed day from a per-day planned event of a failed run that
has no materialisation of that day (`_core/storage/partition_status_cache.py`
`build_failed_and_in_progress_partition_subset`), so with range events alone a failed run's days would keep their
previous status, "materialised" if an earlier run had loaded them. When a step fails, the job's failure hook
writes the per-day planned events of every day the run planned and has not materialised (yet), with the run's id:
those days show in progress until the run ends, then failed; a day materialised later in the same run (another
branch) shows materialised. The run-failure sensor and the stale-run sweep do the same for a run that died without
its hook (a killed worker). Bookkeeping is thus proportional to days only when something failed.
"""

import logging
from collections.abc import Iterable

import dagster as dg
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, DagsterEventType

log = logging.getLogger("mkpi")

_PLANNED = DagsterEventType.ASSET_MATERIALIZATION_PLANNED
_MATERIALIZED = DagsterEventType.ASSET_MATERIALIZATION


def unmaterialised_partitions(instance: dg.DagsterInstance, run_id: str
                              ) -> dict[tuple[dg.AssetKey, str], dict[str, str]]:
    """{(asset, step): {day: job}} the run planned as a range and has neither materialised nor marked per day."""
    planned: dict[tuple[dg.AssetKey, str], dict[str, str]] = {}
    done: set[tuple[dg.AssetKey, str]] = set()
    for entry in instance.all_logs(run_id, of_type={_PLANNED, _MATERIALIZED}):
        event = entry.dagster_event
        if event is None or event.asset_key is None:
            continue
        if event.event_type == _MATERIALIZED:
            if event.partition is not None:
                done.add((event.asset_key, event.partition))
            continue
        data = event.event_specific_data
        if not isinstance(data, AssetMaterializationPlannedData):
            continue
        if data.partition is not None:  # a per-day planned event: already marked (or Dagster's own)
            done.add((data.asset_key, data.partition))
        elif data.partitions_subset is not None:
            days = planned.setdefault((data.asset_key, event.step_key or ""), {})
            days.update(dict.fromkeys(data.partitions_subset.get_partition_keys(), event.job_name or ""))
    return {where: {day: job for day, job in days.items() if (where[0], day) not in done}
            for where, days in planned.items() if any((where[0], day) not in done for day in days)}


def mark_unmaterialised_partitions(instance: dg.DagsterInstance, run_id: str) -> int:
    """Write a per-day planned event (with this run's id) for every day the run planned as a range and did not
    materialise, so Dagster's partition status shows those days failed once the run has failed. Idempotent; returns
    how many days were marked."""
    marked = 0
    for (asset_key, step_key), days in unmaterialised_partitions(instance, run_id).items():
        for day, job in sorted(days.items()):
            event = DagsterEvent.build_asset_materialization_planned_event(
                job, step_key, AssetMaterializationPlannedData(asset_key, partition=day))
            instance.report_dagster_event(event, run_id=run_id, log_level=logging.DEBUG)
            marked += 1
    return marked


def mark_runs(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> int:
    """mark_unmaterialised_partitions for several failed runs; a failure to mark is logged, never raised (the run's
    own failure is what matters to the caller)."""
    marked = 0
    for run_id in run_ids:
        try:
            marked += mark_unmaterialised_partitions(instance, run_id)
        except Exception:  # noqa: BLE001 - bookkeeping must not hide the run's own error
            log.warning("could not mark the unmaterialised partitions of run %s", run_id, exc_info=True)
    return marked


@dg.failure_hook(name="mark_failed_partitions")
def mark_failed_partitions(context: dg.HookContext) -> None:
    """On a step's failure: the run's planned days not materialised so far are marked per day (see the module)."""
    marked = mark_runs(context.instance, [context.run_id])
    if marked:
        context.log.info(f"{marked} planned partition(s) not materialised by this run marked per day: the UI shows "
                         "them failed once the run has failed")
