"""Schedules: the daily refresh that re-reads restated days and rebuilds KPIs.

Each source restates recent days over a different horizon (GA4 ~3 days, Search Console ~4,
Matomo 3, Google Ads conversions ~30; windows from config). Every morning the schedule emits ONE
run per configured report source of the registry (connectors/registry.py), covering that source's trailing re-read
window (ending yesterday in the reporting time zone) as a single partition-range run: its raw assets first, then the
KPI tables that read them (asset dependencies order them; blocking checks gate them). A failing source does not hold
the other sources' KPIs back.

HubSpot goes first, by a declared order rather than by cron times: when HubSpot is configured, the `hubspot_refresh`
schedule launches HubSpot's run, and the report sources' runs follow it (pipelines/defs/sensors.py,
`daily_refresh_after_hubspot*`: on its success, its failure AND its cancellation, so one source never stops the
others); the `daily_refresh` schedule then steps aside. When HubSpot is not configured, `daily_refresh` emits them
itself.

Nothing here reads the configuration when the module is imported: the schedules (their time zone) are built when the
definitions are built (`schedules()`), and each tick reads the settings of that moment.
"""

import os
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from connectors import registry
from connectors.settings import Settings, load_settings
from kpi_models.runner import MODELS
from pipelines.components.source_assets import REPORT_SOURCE_TAG, source_component
from pipelines.lib.partition_status import mark_failed_partitions
from pipelines.lib.partitions import SOURCE_TAG

RUN_KEY_TAG = "dagster/run_key"  # the tag Dagster puts on a run launched from a request with a run key
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Cross-source reconciliation (pipelines/defs/kpi/reconciliation.py) follows every report source's KPI tables.
RECONCILIATION = dg.AssetKey(["kpi", "reconciliation"])
PARTITIONED_KPIS = [dg.AssetKey(["kpi", m.name]) for m in MODELS.values() if m.partition_column is not None
                    ] + [RECONCILIATION]
# Unpartitioned KPI tables read from HubSpot, and HubSpot's rows of kpi_daily (kpi/kpi_daily_hubspot, rebuilt whole
# after every HubSpot run: the report sources' daily runs never touch them).
HUBSPOT_KPIS = [dg.AssetKey(["kpi", m.name]) for m in MODELS.values()
                if m.partition_column is None and any(s.schema_name == "hubspot" for s in m.inputs)
                ] + [dg.AssetKey(["kpi", "kpi_daily_hubspot"])]
OBJECTIVES = dg.AssetKey(["kpi", "kpi_vs_objective"])
PUBLISH = [dg.AssetKey(["publish", "analyst_copy"]), dg.AssetKey(["publish", "dashboard"])]

# Every report source's raw assets carry this tag (pipelines/components/source_assets.py), so the job covers a source
# added to the registry without naming it; its partitions are the assets' (built with the definitions).
daily_refresh_job = dg.define_asset_job(
    "daily_refresh_job",
    selection=dg.AssetSelection.tag(*REPORT_SOURCE_TAG) | dg.AssetSelection.groups("publish")
    | dg.AssetSelection.assets(*PARTITIONED_KPIS, OBJECTIVES),
    description="Re-read a trailing window of the report sources, then rebuild the daily KPI tables for it.",
    hooks={mark_failed_partitions},  # a failed range shows its days failed (pipelines/lib/partition_status.py)
)

hubspot_refresh_job = dg.define_asset_job(
    "hubspot_refresh_job",
    selection=dg.AssetSelection.groups("hubspot", "publish") | dg.AssetSelection.assets(*HUBSPOT_KPIS, OBJECTIVES),
    description="Read what changed in HubSpot since the committed cursors, then rebuild the CRM and e-mail KPIs and "
    "HubSpot's rows of kpi_daily.",
    hooks={mark_failed_partitions},
)


@dataclass(frozen=True)
class SourceRefresh:
    """One source's share of the daily refresh."""

    source: str
    raw_tables: tuple[str, ...]

    def asset_keys(self) -> list[dg.AssetKey]:
        """The source's raw assets, the partitioned KPI tables that read them, and those downstream."""
        raw = [dg.AssetKey(t.split(".")) for t in self.raw_tables]
        names = {m.name for m in MODELS.values() if any(s.schema_name == self.source for s in m.inputs)}
        while True:
            more = {m.name for m in MODELS.values() if set(getattr(m, "depends_on", ())) & names} - names
            if not more:
                break
            names |= more
        kpis = [dg.AssetKey(["kpi", m.name]) for m in MODELS.values()
                if m.name in names and m.partition_column is not None]
        return [*raw, *kpis, RECONCILIATION, OBJECTIVES, *PUBLISH]


def refreshes() -> tuple[SourceRefresh, ...]:
    """One refresh per report source of the registry, in run order, with the raw tables its component loads."""
    return tuple(SourceRefresh(code, tuple(s.table for s in source_component(code).raw_streams()))
                 for code in registry.codes("report"))


def __getattr__(name: str) -> object:
    """`REFRESHES` (the registry's report sources, read when asked, so a source added to the registry is in it) and
    the two schedules (built with the settings of that moment, as `schedules()` builds them)."""
    if name == "REFRESHES":
        return refreshes()
    if name in ("daily_refresh", "hubspot_refresh"):
        return next(s for s in build_schedules(load_settings()) if s.name == name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def reread_days(settings: Settings, source: str) -> int | None:
    """The source's re-read window, or None when the source is not configured (nothing to refresh)."""
    spec = registry.source(source)
    if not spec.configured(settings):
        return None
    return spec.configured_reread_days(settings)


def refresh_window(run_day: date, days: int, first_day: date) -> tuple[date, date]:
    """The inclusive range a run on `run_day` re-reads: the `days` days ending yesterday."""
    end = run_day - timedelta(days=1)
    start = max(first_day, end - timedelta(days=max(1, days) - 1))
    return start, end


def range_tags(start: date, end: date) -> dict[str, str]:
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}


def refresh_requests(run_day: date, settings: Settings) -> list[dg.RunRequest]:
    """One range run per configured report source for the morning of `run_day` (the same run keys whoever asks)."""
    requests = []
    for refresh in refreshes():
        days = reread_days(settings, refresh.source)
        if days is None:
            continue
        start, end = refresh_window(run_day, days, settings.start_date)
        requests.append(dg.RunRequest(
            run_key=f"daily_refresh:{refresh.source}:{run_day.isoformat()}",
            asset_selection=refresh.asset_keys(),
            tags={**range_tags(start, end), SOURCE_TAG: refresh.source},
        ))
    return requests


# When the schedules tick, in the reporting time zone. Their order is not set by these times any more: when HubSpot
# is configured the report sources' runs follow HubSpot's run (sensors.py), whatever the two crons say, and
# `daily_refresh` skips; MKPI_DAILY_REFRESH_CRON then only matters when HubSpot is not configured. The service-mode
# test (tests/test_service_mode.py) sets the daily one to the minute just passed so that a tick comes without waiting
# for the morning. Read when the code location loads: restart the code server after changing them.
DAILY_REFRESH_CRON_VARIABLE = "MKPI_DAILY_REFRESH_CRON"
HUBSPOT_REFRESH_CRON_VARIABLE = "MKPI_HUBSPOT_REFRESH_CRON"


# Tag of HubSpot's scheduled run: the morning whose report runs follow it (read by sensors.py).
REFRESH_DAY_TAG = "mkpi/refresh_day"


def morning_hubspot_run(instance: dg.DagsterInstance, day: date) -> bool:
    """Whether HubSpot's scheduled run of that morning exists (whatever its status): the report runs follow it."""
    return bool(instance.get_run_records(dg.RunsFilter(job_name=hubspot_refresh_job.name,
                                                       tags={REFRESH_DAY_TAG: day.isoformat()}), limit=1))


def not_launched(instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The requests whose run key has no run yet: the schedule and the sensors after HubSpot share the keys, and
    Dagster deduplicates a run key only within one schedule or sensor."""
    return [r for r in requests if not instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: str(r.run_key)}),
                                                                limit=1)]


def _daily_refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    """The report sources' runs of this morning. With HubSpot configured they follow this morning's HubSpot run
    (the sensors after it); when there is none (hubspot_refresh off, or its run never created), this schedule
    requests them itself, so HubSpot's absence never holds the other sources back."""
    settings = load_settings()
    run_day = context.scheduled_execution_time.astimezone(settings.tz).date()
    requests = refresh_requests(run_day, settings)
    if registry.source("hubspot").configured(settings):
        if morning_hubspot_run(context.instance, run_day):
            return dg.SkipReason("this morning's HubSpot run leads: the report sources' runs follow it (sensors "
                                 "daily_refresh_after_hubspot, _failed, _canceled)")
        requests = not_launched(context.instance, requests)
    if not requests:
        return dg.SkipReason("no source configured: " + "; ".join(
            f"{registry.source(code).label}: {registry.source(code).setup}" for code in registry.codes("report")))
    return requests


def _hubspot_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """HubSpot's run of this morning, tagged with the day whose report runs follow it."""
    settings = load_settings()
    if not registry.source("hubspot").configured(settings):
        return dg.SkipReason("HubSpot is not configured: set MKPI_HUBSPOT_TOKEN (daily_refresh runs the report "
                             "sources itself)")
    day = context.scheduled_execution_time.astimezone(settings.tz).date()
    return dg.RunRequest(run_key=f"hubspot_refresh:{day.isoformat()}",
                         tags={SOURCE_TAG: "hubspot", REFRESH_DAY_TAG: day.isoformat()})


# name, job, the variable that changes its cron, the default cron, what it does, the tick's function
_SCHEDULES = (
    ("daily_refresh", daily_refresh_job, DAILY_REFRESH_CRON_VARIABLE, "0 6 * * *",
     "Every morning at 06:00 (reporting time zone; MKPI_DAILY_REFRESH_CRON changes it), when HubSpot is not "
     "configured: per configured source, re-read its trailing window and rebuild the KPI tables that read it. With "
     "HubSpot configured these runs follow HubSpot's run instead (sensor daily_refresh_after_hubspot).",
     _daily_refresh),
    ("hubspot_refresh", hubspot_refresh_job, HUBSPOT_REFRESH_CRON_VARIABLE, "30 5 * * *",
     "Every morning at 05:30 (MKPI_HUBSPOT_REFRESH_CRON changes it): HubSpot changes since the cursors, then "
     "crm_monthly, email_daily and HubSpot's rows of kpi_daily; the report sources' runs follow it, whether it "
     "succeeds or fails.", _hubspot_refresh),
)


def build_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """The daily refresh (06:00) and HubSpot's (05:30), off until turned on, in these settings' reporting time
    zone."""
    return [dg.schedule(name=name, job=job, cron_schedule=os.environ.get(variable) or default,
                        execution_timezone=settings.reporting_timezone,
                        default_status=dg.DefaultScheduleStatus.STOPPED, description=description)(tick)
            for name, job, variable, default, description, tick in _SCHEDULES]


@dg.definitions
def schedules() -> dg.Definitions:
    """The jobs and schedules, built with the settings read now (when the code location loads)."""
    return dg.Definitions(jobs=[daily_refresh_job, hubspot_refresh_job], schedules=build_schedules(load_settings()))
