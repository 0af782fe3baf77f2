"""HubSpot raw tables: CRM objects read incrementally, deal associations, owners, deal stages, the portal's
details, marketing e-mail statistics with the daily activity of automated e-mails, and NPS answers.

Business purpose: where leads become customers and e-mail campaigns are measured; kpi.crm_monthly and
kpi.email_daily read these tables. CRM objects are not partitioned by day: each materialisation reads
what changed since the cursor committed with the previous load (a full list on the first run), upserts
it by id, and commits the new cursor in the same transaction.

The portal is read in one step (`hubspot_portal`), as `HubSpotConnector.fetch_portal` reads it: its independent
cursor chains (each object type, owners, pipelines, the portal, the e-mails) at once through the one portal-wide rate
limiter, every table loaded in one transaction with its cursor. A step selecting some tables reads only their chains;
a table read with a selected one (the deals with their associations, the e-mails with their daily events) is written
too, and its materialisation is recorded.
"""

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import duckdb

from connectors import registry
from connectors.batches import Stream, Window
from connectors.hubspot import (
    ACCOUNT_DETAILS,
    ASSOCIATIONS,
    DEAL_STAGES,
    EMAIL_EVENTS_DAILY,
    EMAIL_STATISTICS,
    OBJECT_PROPERTIES,
    OWNERS,
    SOURCE,
    HubSpotConnector,
    chain_tables,
    portal_chains,
)
from connectors.warehouse import LoadResult, read_cursor, table_exists
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


def _spec(table: str, description: str, primary_key: str) -> dg.AssetSpec:
    return dg.AssetSpec(table.split("."), **HUBSPOT_ASSET, description=description,
                        metadata={"dagster/table_name": table, "primary_key": primary_key})


def portal_specs() -> list[dg.AssetSpec]:
    """Every HubSpot table's asset, in the order fetch_portal hands them on (built in a function: the defs loader
    would take module-level specs for assets of their own)."""
    return [
        *(_spec(f"hubspot.{object_type}", OBJECT_DESCRIPTIONS[object_type], "id")
          for object_type in ("contacts", "companies", "feedback_submissions")),
        _spec("hubspot.deals", "Deals (amount, pipeline, stage, close date), read incrementally.", "id"),
        _spec(ASSOCIATIONS.table, "Which contacts and companies each deal is associated with (loyalty_rate): every "
              "contact (the buyer and colleagues) and company of the deals read; per-deal errors HubSpot answers "
              "beside the data (HTTP 207) are named in partial_error_list.", ", ".join(ASSOCIATIONS.key)),
        _spec(OWNERS.table, "CRM owners (active and archived).", "id"),
        _spec(DEAL_STAGES.table, "Deal pipeline stages; is_won comes from stage metadata (closed, probability 1.0).",
              "pipeline_id, stage_id"),
        _spec(ACCOUNT_DETAILS.table, "The HubSpot portal: its id (the account_id of KPI tables), time zone, company "
              "currency and UI domain (GET /account-info/v3/details), read on every run.", "portal_id"),
        _spec(EMAIL_STATISTICS.table, "Marketing e-mails with their statistics counters (sent, delivered, open, click, "
              "bounce, unsubscribed, spam reports), published_at (publishDate, else publishedAt; UTC) and "
              "is_automated. Batch e-mails of the last 30 days are re-read on every run (counters keep moving); "
              "automated ones (lifetime counters) while they are running, whatever their age.", "email_id"),
        _spec(EMAIL_EVENTS_DAILY.table, "What each automated e-mail did per day (the portal's time zone), from the "
              "statistics histogram: the whole history the first time, the last 30 days afterwards.", "email_id, date"),
    ]


STREAMS_BY_TABLE: dict[str, Stream] = {s.table: s for s in (ASSOCIATIONS, OWNERS, DEAL_STAGES, ACCOUNT_DETAILS,
                                                            EMAIL_STATISTICS, EMAIL_EVENTS_DAILY)}


def _table(key: dg.AssetKey) -> str:
    return ".".join(key.path)


def _cursors(conn: duckdb.DuckDBPyConnection, chains: set[str]) -> dict[str, str | None]:
    """Each object type's committed cursor (None: never loaded, a full list), for the object chains read."""
    return {object_type: read_cursor(conn, SOURCE, object_type, "portal")
            for object_type in OBJECT_PROPERTIES if f"hubspot.{object_type}" in chains}


def _known_emails(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """E-mails already loaded: their old counters are final, only the trailing window is re-read."""
    if not table_exists(conn, EMAIL_STATISTICS.table):
        return set()
    return {r[0] for r in conn.execute("SELECT email_id FROM hubspot.email_statistics").fetchall()}


def _table_metadata(context: dg.AssetExecutionContext, connector: HubSpotConnector, table: str, result: LoadResult,
                    window: Window, stats: dict[str, float | int], modes: Mapping[str, str]) -> dict[str, object]:
    """One table's materialisation metadata: rows written, the window, the portal read's request counters, and what
    the table adds (the object read's mode, the e-mail days' windows, the associations' per-record errors)."""
    object_type = table.split(".", 1)[1]
    stream = STREAMS_BY_TABLE.get(table) or connector.stream_for(object_type)
    extra: dict[str, object] = {}
    if object_type in modes:
        extra["mode"] = modes[object_type]
    if table == EMAIL_EVENTS_DAILY.table:
        extra["windows_read"] = ", ".join(result.windows.get(table, []))
    if table == ASSOCIATIONS.table:
        extra.update(_partial_errors(context, connector))
    return _metadata(stream, result.rows_by_table.get(table, 0), window, stats, **extra)


@dg.multi_asset(specs=portal_specs(), pool=DUCKDB_POOL, name="hubspot_portal", can_subset=True)
def hubspot_portal(context: dg.AssetExecutionContext, hubspot: HubSpotResource, warehouse: WarehouseResource,
                   settings: SettingsResource) -> Iterator[dg.MaterializeResult]:
    """The portal's selected tables read at once (`fetch_portal`) and loaded in one transaction with their cursors."""
    selected = {_table(key) for key in context.selected_asset_keys}
    chains = portal_chains(selected)
    connector = hubspot.connector()
    connector.check()
    window = _today_window(settings)
    with warehouse.connection() as conn:
        cursors = _cursors(conn, chains)
        known = _known_emails(conn) if EMAIL_STATISTICS.table in chains else None
    modes = {o: "full list" if c is None else f"changes since {c}" for o, c in cursors.items()}
    for object_type, mode in modes.items():
        context.log.info(f"HubSpot {object_type}: {mode}")
    with retry_transient_failures():
        result = warehouse.load(connector.fetch_portal(window, cursors, known_email_ids=known, tables=chains))
    stats = connector.stats.as_metadata()
    written = chain_tables(chains)
    for spec in context.assets_def.specs:
        table = _table(spec.key)
        if table not in written:
            continue
        metadata = _table_metadata(context, connector, table, result, window, stats, modes)
        if table in selected:
            yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)
        else:  # written with a selected table's chain: recorded as what it is
            with_it = sorted(selected & chain_tables(portal_chains([table])))
            context.log_event(dg.AssetMaterialization(
                asset_key=spec.key, metadata=metadata,
                description=f"written with {', '.join(with_it)} (selected), read in the same chain"))


# each asset links to the code that loads it (the UI's "code references")
(hubspot_portal,) = dg.with_source_code_references([hubspot_portal])
