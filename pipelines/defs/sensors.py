"""Publish even when a source fails: the analysts' copy and the dashboard always show what is good.

Business purpose: Dagster skips every step downstream of a failed one, so a source's failed daily run would
never reach the publish steps, and the copy would say nothing of the failure until another source's run published.
When a refresh run fails, this sensor asks for a publish run (objectives, analysts' copy, dashboard): they then
show the other sources' current numbers, the failing source's last good rows flagged stale, and
`meta.source_status` naming its error (pipelines/lib/source_status.py).
"""

import dagster as dg

from pipelines.defs.schedules import OBJECTIVES, PUBLISH, daily_refresh_job, hubspot_refresh_job
from pipelines.lib.partition_status import mark_failed_partitions, mark_runs

publish_job = dg.define_asset_job(
    "publish_job",
    selection=dg.AssetSelection.assets(OBJECTIVES, *PUBLISH),
    description="Objectives, the analysts' copy and the dashboard from the KPI tables as they are (no source read).",
    hooks={mark_failed_partitions},
)


@dg.run_failure_sensor(
    name="publish_after_a_failed_refresh",
    monitored_jobs=[daily_refresh_job, hubspot_refresh_job],
    request_job=publish_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When a refresh run fails, publish what is good: objectives, the analysts' copy (with each "
    "source's status) and the dashboard.",
)
def publish_after_a_failed_refresh(context: dg.RunFailureSensorContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"publish_after:{context.dagster_run.run_id}",
                         tags={"mkpi/after_failed_run": context.dagster_run.run_id})


@dg.run_failure_sensor(
    name="mark_failed_partitions_of_failed_runs",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When a run fails without its failure hook having run (a killed run worker), the days it planned "
    "and did not materialise are marked per day, so the UI shows them failed, never materialised "
    "(pipelines/lib/partition_status.py).",
)
def mark_failed_partitions_of_failed_runs(context: dg.RunFailureSensorContext) -> None:
    marked = mark_runs(context.instance, [context.dagster_run.run_id])
    if marked:
        context.log.info(f"run {context.dagster_run.run_id}: {marked} planned partition(s) marked failed")
