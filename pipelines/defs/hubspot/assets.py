"""HubSpot raw tables: CRM objects read incrementally, deal associations, owners, deal stages, the portal's
details, marketing e-mail statistics with the daily activity of automated e-mails, and NPS answers.

Business purpose: where leads become customers and e-mail campaigns are measured; kpi.crm_monthly and
kpi.email_daily read these tables. CRM objects are not partitioned by day: each materialisation reads
what changed since the cursor committed with the previous load (a full list on the first run), upserts
it by id, and commits the new cursor in the same transaction.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from connectors import registry
from connectors.batches import Stream, Window
from connectors.hubspot import (
    ACCOUNT_DETAILS,
    ASSOCIATIONS,
    DEAL_STAGES,
    EMAIL_EVENTS_DAILY,
    EMAIL_STATISTICS,
    OWNERS,
    SOURCE,
    HubSpotConnector,
)
from connectors.warehouse import read_cursor, table_exists
from pipelines.lib.metadata import column_schema_from_arrow, table_metadata
from pipelines.lib.partitions import DUCKDB_POOL, retry_transient_failures
from pipelines.lib.resources import HubSpotResource, SettingsResource, WarehouseResource

# What every HubSpot asset carries: its group, kinds, owners and freshness (the registry's stale_after_days: HubSpot
# is read every morning; a table not refreshed for that long is late).
HUBSPOT_ASSET: dict[str, Any] = {
    "group_name": SOURCE, "kinds": {"python", "duckdb"}, "owners": ["team:crm"],
    "freshness_policy": dg.FreshnessPolicy.time_window(
        fail_window=timedelta(days=registry.source(SOURCE).stale_after_days)),
}

OBJECT_DESCRIPTIONS = {
    "contacts": "Contacts with creation, lifecycle (lead, customer) and churn dates and original source: leads, "
    "contacts_created, new_customers and churn_rate come from here.",
    "companies": "Companies (name, domain, dates).",
    "feedback_submissions": "Feedback submissions: NPS answers (0-10) with their submission time.",
}


def _today_window(settings: SettingsResource) -> Window:
    today = datetime.now(settings.load().tz).date()
    return Window(today, today)


def _metadata(stream: Stream, rows: int, window: Window, stats: dict[str, float | int], **extra: object
              ) -> dict[str, object]:
    return table_metadata(stream.table, rows, window, column_schema_from_arrow(stream.schema), **stats, **extra)


MAX_NAMED_ERRORS = 50


def _partial_errors(context: dg.AssetExecutionContext, connector: HubSpotConnector) -> dict[str, object]:
    """Per-record errors HubSpot answered beside the data (HTTP 207), named in the run's metadata and log: the
    rest of the answer was loaded, these records were not."""
    errors = connector.partial_errors
    if errors:
        context.log.warning(f"HubSpot answered {len(errors)} per-record errors beside the data: {errors[:5]}")
    shown = errors[:MAX_NAMED_ERRORS] + ([f"... and {len(errors) - MAX_NAMED_ERRORS} more"]
                                         if len(errors) > MAX_NAMED_ERRORS else [])
    return {"partial_errors": len(errors), "partial_error_list": dg.MetadataValue.json(shown)}


def build_object_asset(object_type: str) -> dg.AssetsDefinition:
    @dg.asset(key=["hubspot", object_type], **HUBSPOT_ASSET, pool=DUCKDB_POOL,
              description=OBJECT_DESCRIPTIONS[object_type],
              metadata={"dagster/table_name": f"hubspot.{object_type}", "primary_key": "id"})
    def _asset(context: dg.AssetExecutionContext, hubspot: HubSpotResource, warehouse: WarehouseResource,
               settings: SettingsResource) -> dg.MaterializeResult:
        connector = hubspot.connector()
        connector.check()
        with warehouse.connection() as conn:
            cursor = read_cursor(conn, SOURCE, object_type, "portal")
        mode = "full list" if cursor is None else f"changes since {cursor}"
        context.log.info(f"HubSpot {object_type}: {mode}")
        window = _today_window(settings)
        stream = connector.stream_for(object_type)
        with retry_transient_failures():
            result = warehouse.load(connector.fetch_objects(object_type, cursor, window))
        return dg.MaterializeResult(metadata=_metadata(
            stream, result.rows_by_table.get(stream.table, 0), window, connector.stats.as_metadata(), mode=mode))

    return _asset


contacts = build_object_asset("contacts")
companies = build_object_asset("companies")
feedback_submissions = build_object_asset("feedback_submissions")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["hubspot", "deals"], **HUBSPOT_ASSET,
                     description="Deals (amount, pipeline, stage, close date), read incrementally.",
                     metadata={"dagster/table_name": "hubspot.deals", "primary_key": "id"}),
        dg.AssetSpec(["hubspot", "deal_associations"], **HUBSPOT_ASSET,
                     description="Which contacts and companies each deal is associated with (loyalty_rate): every "
                     "contact (the buyer and colleagues) and company of the deals read; per-deal errors HubSpot "
                     "answers beside the data (HTTP 207) are named in partial_error_list.",
                     metadata={"dagster/table_name": ASSOCIATIONS.table, "primary_key": ", ".join(ASSOCIATIONS.key)}),
    ],
    pool=DUCKDB_POOL,
    name="hubspot_deals",
)
def hubspot_deals(context: dg.AssetExecutionContext, hubspot: HubSpotResource, warehouse: WarehouseResource,
                  settings: SettingsResource) -> Iterator[dg.MaterializeResult]:
    connector = hubspot.connector()
    connector.check()
    with warehouse.connection() as conn:
        cursor = read_cursor(conn, SOURCE, "deals", "portal")
    window = _today_window(settings)
    stream = connector.stream_for("deals")
    with retry_transient_failures():
        result = warehouse.load(connector.fetch_objects("deals", cursor, window))
    stats = connector.stats.as_metadata()
    yield dg.MaterializeResult(asset_key=["hubspot", "deals"],
                               metadata=_metadata(stream, result.rows_by_table.get(stream.table, 0), window, stats))
    yield dg.MaterializeResult(asset_key=["hubspot", "deal_associations"],
                               metadata=_metadata(ASSOCIATIONS, result.rows_by_table.get(ASSOCIATIONS.table, 0),
                                                  window, stats, **_partial_errors(context, connector)))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["hubspot", "owners"], **HUBSPOT_ASSET,
                     description="CRM owners (active and archived).",
                     metadata={"dagster/table_name": OWNERS.table, "primary_key": "id"}),
        dg.AssetSpec(["hubspot", "deal_stages"], **HUBSPOT_ASSET,
                     description="Deal pipeline stages; is_won comes from stage metadata (closed, probability 1.0).",
                     metadata={"dagster/table_name": DEAL_STAGES.table, "primary_key": "pipeline_id, stage_id"}),
        dg.AssetSpec(["hubspot", "account_details"], **HUBSPOT_ASSET,
                     description="The HubSpot portal: its id (the account_id of KPI tables), time zone, company "
                     "currency and UI domain (GET /account-info/v3/details), read on every run.",
                     metadata={"dagster/table_name": ACCOUNT_DETAILS.table, "primary_key": "portal_id"}),
    ],
    pool=DUCKDB_POOL,
    name="hubspot_metadata",
)
def hubspot_metadata(context: dg.AssetExecutionContext, hubspot: HubSpotResource, warehouse: WarehouseResource,
                     settings: SettingsResource) -> Iterator[dg.MaterializeResult]:
    connector = hubspot.connector()
    connector.check()
    window = _today_window(settings)

    def batches() -> Iterator:
        yield from connector.fetch_owners(window)
        yield from connector.fetch_deal_stages(window)
        yield from connector.fetch_account_details(window)

    with retry_transient_failures():
        result = warehouse.load(batches())
    stats = connector.stats.as_metadata()
    for stream in (OWNERS, DEAL_STAGES, ACCOUNT_DETAILS):
        yield dg.MaterializeResult(asset_key=dg.AssetKey(stream.table.split(".")), metadata=_metadata(
            stream, result.rows_by_table.get(stream.table, 0), window, stats))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["hubspot", "email_statistics"], **HUBSPOT_ASSET,
                     description="Marketing e-mails with their statistics counters (sent, delivered, open, click, "
                     "bounce, unsubscribed, spam reports), published_at (publishDate, else publishedAt; UTC) and "
                     "is_automated. Batch e-mails of the last 30 days are re-read on every run (counters keep "
                     "moving); automated ones (lifetime counters) while they are running, whatever their age.",
                     metadata={"dagster/table_name": EMAIL_STATISTICS.table, "primary_key": "email_id"}),
        dg.AssetSpec(["hubspot", "email_events_daily"], **HUBSPOT_ASSET,
                     description="What each automated e-mail did per day (the portal's time zone), from the statistics "
                     "histogram: the whole history the first time, the last 30 days afterwards.",
                     metadata={"dagster/table_name": EMAIL_EVENTS_DAILY.table, "primary_key": "email_id, date"}),
    ],
    pool=DUCKDB_POOL,
    name="hubspot_emails",
)
def email_statistics(context: dg.AssetExecutionContext, hubspot: HubSpotResource, warehouse: WarehouseResource,
                     settings: SettingsResource) -> Iterator[dg.MaterializeResult]:
    """Marketing e-mail statistics and the daily activity of automated e-mails, loaded in one transaction."""
    connector = hubspot.connector()
    connector.check()
    window = _today_window(settings)
    with warehouse.connection() as conn:
        known = {r[0] for r in conn.execute("SELECT email_id FROM hubspot.email_statistics").fetchall()} if (
            table_exists(conn, EMAIL_STATISTICS.table)) else set()
    with retry_transient_failures():
        result = warehouse.load(connector.fetch_email_statistics(window, known_ids=known))
    stats = connector.stats.as_metadata()
    yield dg.MaterializeResult(asset_key=["hubspot", "email_statistics"], metadata=_metadata(
        EMAIL_STATISTICS, result.rows_by_table.get(EMAIL_STATISTICS.table, 0), window, stats))
    yield dg.MaterializeResult(asset_key=["hubspot", "email_events_daily"], metadata=_metadata(
        EMAIL_EVENTS_DAILY, result.rows_by_table.get(EMAIL_EVENTS_DAILY.table, 0), window, stats,
        windows_read=", ".join(result.windows.get(EMAIL_EVENTS_DAILY.table, []))))


# each asset links to the code that loads it (the UI's "code references")
contacts, companies, feedback_submissions, hubspot_deals, hubspot_metadata, email_statistics = (
    dg.with_source_code_references([contacts, companies, feedback_submissions, hubspot_deals, hubspot_metadata,
                                    email_statistics]))
