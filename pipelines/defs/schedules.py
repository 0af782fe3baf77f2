"""Schedules: the daily refresh that re-reads restated days and rebuilds KPIs, in one run.

GA4 restates the last ~72 hours, so each morning the trailing re-read window (ga4.reread_days,
default 3, ending yesterday in the reporting time zone) is re-materialised as one partition-range run,
raw tables first and KPI tables after (asset dependencies order them; blocking checks gate them).
"""


from datetime import date, timedelta

import dagster as dg

from connectors.settings import load_settings
from pipelines.lib.partitions import DAILY

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

daily_refresh_job = dg.define_asset_job(
    "daily_refresh_job",
    selection=dg.AssetSelection.groups("ga4", "kpi"),
    partitions_def=DAILY,
    description="Re-read the trailing window of every source, then rebuild KPI tables for it.",
)


def refresh_window(run_day: date, reread_days: int, first_day: date) -> tuple[date, date]:
    """The inclusive range a run on `run_day` re-reads: the `reread_days` days ending yesterday."""
    end = run_day - timedelta(days=1)
    start = max(first_day, end - timedelta(days=max(1, reread_days) - 1))
    return start, end


def range_tags(start: date, end: date) -> dict[str, str]:
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}


_settings = load_settings()


@dg.schedule(
    name="daily_refresh",
    job=daily_refresh_job,
    cron_schedule="0 6 * * *",
    execution_timezone=_settings.reporting_timezone,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every morning at 06:00 (reporting time zone): re-read the trailing window, rebuild KPIs.",
)
def daily_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    settings = load_settings()
    run_day = context.scheduled_execution_time.astimezone(settings.tz).date()
    start, end = refresh_window(run_day, settings.ga4.reread_days, settings.start_date)
    return dg.RunRequest(run_key=f"daily_refresh:{run_day.isoformat()}", tags=range_tags(start, end))
