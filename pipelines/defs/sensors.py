"""Publish even when a source fails: the analysts' copy and the dashboard always show what is good.

Business purpose: Dagster skips every step downstream of a failed one, so a source's failed daily run would
never reach the publish steps, and the copy would say nothing of the failure until another source's run published.
When a refresh run fails, this sensor asks for a publish run (objectives, analysts' copy, dashboard): they then
show the other sources' current numbers, the failing source's last good rows flagged stale, and
`meta.source_status` naming its error (pipelines/lib/source_status.py).
"""

from datetime import date

import dagster as dg

from connectors.settings import load_settings
from pipelines.defs.schedules import (
    OBJECTIVES,
    PUBLISH,
    REFRESH_DAY_TAG,
    daily_refresh_job,
    hubspot_refresh_job,
    not_launched,
    refresh_requests,
)
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


def report_runs_after_hubspot(run: dg.DagsterRun, instance: dg.DagsterInstance) -> list[dg.RunRequest] | dg.SkipReason:
    """The report sources' runs of the morning whose HubSpot run just ended (succeeded or failed: one source never
    stops the others). Only HubSpot's scheduled run names a morning (schedules.py, REFRESH_DAY_TAG); a HubSpot run
    started by hand or by a backfill leads nothing. The run keys are the daily refresh's, so each runs once."""
    day = run.tags.get(REFRESH_DAY_TAG)
    if not day:
        return dg.SkipReason(f"run {run.run_id} is not a scheduled HubSpot refresh: no report runs follow it")
    requests = refresh_requests(date.fromisoformat(day), load_settings())
    if not requests:
        return dg.SkipReason("no report source configured")
    # daily_refresh launched them already when HubSpot's run came after its tick
    return not_launched(instance, requests) or dg.SkipReason("the report runs of that morning were launched already")


@dg.run_status_sensor(
    name="daily_refresh_after_hubspot",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[hubspot_refresh_job],
    request_job=daily_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When HubSpot's scheduled run succeeds, the daily refresh's per-source runs of that morning.",
)
def daily_refresh_after_hubspot(context: dg.RunStatusSensorContext) -> list[dg.RunRequest] | dg.SkipReason:
    return report_runs_after_hubspot(context.dagster_run, context.instance)


@dg.run_failure_sensor(
    name="daily_refresh_after_hubspot_failed",
    monitored_jobs=[hubspot_refresh_job],
    request_job=daily_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When HubSpot's scheduled run fails, the daily refresh's per-source runs of that morning all the "
    "same: a failing HubSpot never holds the other sources back.",
)
def daily_refresh_after_hubspot_failed(context: dg.RunFailureSensorContext) -> list[dg.RunRequest] | dg.SkipReason:
    return report_runs_after_hubspot(context.dagster_run, context.instance)


@dg.run_status_sensor(
    name="daily_refresh_after_hubspot_canceled",
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=[hubspot_refresh_job],
    request_job=daily_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When HubSpot's scheduled run is canceled (by hand, or by run monitoring's maximum runtime), the "
    "daily refresh's per-source runs of that morning all the same: a canceled run is neither a success nor a failure, "
    "and without this the report sources would not run that day.",
)
def daily_refresh_after_hubspot_canceled(context: dg.RunStatusSensorContext) -> list[dg.RunRequest] | dg.SkipReason:
    return report_runs_after_hubspot(context.dagster_run, context.instance)
