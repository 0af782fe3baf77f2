"""Schedules: the daily refresh that re-reads restated days and rebuilds KPIs.

Each source restates recent days over a different horizon (GA4 ~3 days, Search Console ~4,
Matomo 3, Google Ads conversions ~30; windows from config). Every morning the schedule emits ONE
run per configured source, covering that source's trailing re-read window (ending yesterday in the
reporting time zone) as a single partition-range run: its raw assets first, then the KPI tables that
read them (asset dependencies order them; blocking checks gate them). A failing source does not hold
the other sources' KPIs back.
"""

import os
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from connectors import ga4, google_ads, matomo, search_console
from connectors.settings import Settings, load_settings
from kpi_models.runner import MODELS
from pipelines.lib.partitions import DAILY, SOURCE_TAG

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

daily_refresh_job = dg.define_asset_job(
    "daily_refresh_job",
    selection=dg.AssetSelection.groups("ga4", "search_console", "matomo", "google_ads", "publish")
    | dg.AssetSelection.assets(*PARTITIONED_KPIS, OBJECTIVES),
    partitions_def=DAILY,
    description="Re-read a trailing window of the report sources, then rebuild the daily KPI tables for it.",
)

hubspot_refresh_job = dg.define_asset_job(
    "hubspot_refresh_job",
    selection=dg.AssetSelection.groups("hubspot", "publish") | dg.AssetSelection.assets(*HUBSPOT_KPIS, OBJECTIVES),
    description="Read what changed in HubSpot since the committed cursors, then rebuild the CRM and e-mail KPIs and "
    "HubSpot's rows of kpi_daily.",
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


REFRESHES = (
    SourceRefresh("ga4", tuple(r.stream.table for r in ga4.REPORTS.values())),
    SourceRefresh("search_console", tuple(r.stream.table for r in search_console.REPORTS.values())),
    SourceRefresh("matomo", tuple(s.table for s in matomo.STREAMS)),
    SourceRefresh("google_ads", (google_ads.CAMPAIGN_DAILY.table,)),
)


def reread_days(settings: Settings, source: str) -> int | None:
    """The source's re-read window, or None when the source is not configured (nothing to refresh)."""
    if source == "ga4":
        return settings.ga4.reread_days if settings.ga4.property_ids else None
    if source == "search_console":
        return settings.search_console.reread_days if settings.search_console.sites else None
    if source == "matomo":
        return settings.matomo.reread_days if settings.matomo.site_ids and settings.matomo.url else None
    if source == "google_ads":
        return settings.google_ads.reread_days if settings.google_ads.customer_ids else None
    raise KeyError(source)


def refresh_window(run_day: date, days: int, first_day: date) -> tuple[date, date]:
    """The inclusive range a run on `run_day` re-reads: the `days` days ending yesterday."""
    end = run_day - timedelta(days=1)
    start = max(first_day, end - timedelta(days=max(1, days) - 1))
    return start, end


def range_tags(start: date, end: date) -> dict[str, str]:
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}


def refresh_requests(run_day: date, settings: Settings) -> list[dg.RunRequest]:
    requests = []
    for refresh in REFRESHES:
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


_settings = load_settings()

# When the schedules tick, in the reporting time zone. A service that needs other hours sets these (the two runs
# write different rows of kpi_daily, so their order no longer matters); the service-mode
# test (tests/test_service_mode.py) sets the daily one to the minute just passed so that a tick comes without
# waiting for the morning. Read when the code location loads: restart the code server after changing them.
DAILY_REFRESH_CRON = os.environ.get("MKPI_DAILY_REFRESH_CRON") or "0 6 * * *"
HUBSPOT_REFRESH_CRON = os.environ.get("MKPI_HUBSPOT_REFRESH_CRON") or "30 5 * * *"


@dg.schedule(
    name="daily_refresh",
    job=daily_refresh_job,
    cron_schedule=DAILY_REFRESH_CRON,
    execution_timezone=_settings.reporting_timezone,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every morning at 06:00 (reporting time zone; MKPI_DAILY_REFRESH_CRON changes it): per "
    "configured source, re-read its trailing window and rebuild the KPI tables that read it.",
)
def daily_refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    settings = load_settings()
    run_day = context.scheduled_execution_time.astimezone(settings.tz).date()
    requests = refresh_requests(run_day, settings)
    if not requests:
        return dg.SkipReason("no source configured: set MKPI_GA4_PROPERTY_IDS, MKPI_SEARCH_CONSOLE_SITES, "
                             "MKPI_MATOMO_URL and MKPI_MATOMO_SITE_IDS, or MKPI_GOOGLE_ADS_CUSTOMER_IDS")
    return requests


@dg.schedule(
    name="hubspot_refresh",
    job=hubspot_refresh_job,
    cron_schedule=HUBSPOT_REFRESH_CRON,
    execution_timezone=_settings.reporting_timezone,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every morning at 05:30 (MKPI_HUBSPOT_REFRESH_CRON changes it): HubSpot changes since the "
    "cursors, then crm_monthly, email_daily and HubSpot's rows of kpi_daily.",
)
def hubspot_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    settings = load_settings()
    if settings.hubspot.token is None:
        return dg.SkipReason("HubSpot is not configured: set MKPI_HUBSPOT_TOKEN")
    day = context.scheduled_execution_time.astimezone(settings.tz).date()
    return dg.RunRequest(run_key=f"hubspot_refresh:{day.isoformat()}", tags={SOURCE_TAG: "hubspot"})
