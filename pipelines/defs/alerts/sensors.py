"""When the alerts are evaluated: after every refresh or publish run, successful or failed.

Business purpose: the digest must follow each KPI rebuild the same morning, including the runs the schedules launch
one per source (their asset selections name their own assets), the publish run that follows a failed refresh
(pipelines/defs/sensors.py) and a failed run itself, whose failure goes through the same channels. Each sensor asks
for one `alerts_job` run (run key: the run it follows, so a tick never asks twice).
"""

import dagster as dg

from pipelines.defs.alerts.assets import AFTER_RUN_TAG, ALERTS_KEY, FAILED_RUN_TAG
from pipelines.defs.schedules import daily_refresh_job, hubspot_refresh_job
from pipelines.defs.sensors import publish_job

alerts_job = dg.define_asset_job(
    "alerts_job",
    selection=dg.AssetSelection.assets(ALERTS_KEY),
    description="Evaluate the alerts on the KPI tables as they are and send the digest (no source read).",
)
MONITORED = [daily_refresh_job, hubspot_refresh_job, publish_job]


@dg.run_status_sensor(
    name="alerts_after_a_run",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=MONITORED,
    request_job=alerts_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a refresh or publish run succeeds: evaluate the alerts and send the digest (a source's "
    "earlier run failure clears).",
)
def alerts_after_a_run(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    run_id = context.dagster_run.run_id
    return dg.RunRequest(run_key=f"alerts_after:{run_id}", tags={AFTER_RUN_TAG: run_id})


@dg.run_failure_sensor(
    name="alerts_after_a_failed_run",
    monitored_jobs=MONITORED,
    request_job=alerts_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When a refresh or publish run fails: send the failure (its steps and error) through the alert "
    "channels, with whatever else the KPI tables show.",
)
def alerts_after_a_failed_run(context: dg.RunFailureSensorContext) -> dg.RunRequest:
    run_id = context.dagster_run.run_id
    return dg.RunRequest(run_key=f"alerts_after_failure:{run_id}", tags={FAILED_RUN_TAG: run_id})
