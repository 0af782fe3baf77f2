"""Matomo raw tables from one bulk request per site: visits, referrer types, goals and campaign mediums per day.

Business purpose: Matomo's privacy-first view of traffic and e-commerce, reported beside GA4's
(`source = 'matomo'`) in kpi.web_daily and kpi.ecommerce_daily. One `API.getBulkRequest` per site
carries every method for the whole range, so the tables are written together, atomically. The campaign
mediums need the MarketingCampaignsReporting plugin; without it that table gets no rows and the
materialisation says `campaign_plugin: absent`, never failing the run.
"""

from collections.abc import Iterator

import dagster as dg

from connectors.matomo import SOURCE, STREAMS
from connectors.parallel import AccountLog
from pipelines.lib.accounts import accounts_metadata, settle_accounts
from pipelines.lib.metadata import column_schema_from_arrow, table_metadata
from pipelines.lib.partitions import DAILY, DUCKDB_POOL, retry_transient_failures, window_from_context
from pipelines.lib.resources import MatomoResource, WarehouseResource

_DESCRIPTIONS = {
    "matomo.visits_summary": "VisitsSummary.get per day: visits, unique visitors, actions, converted visits, "
    "bounces (visits with one action), total visit length.",
    "matomo.referrer_types": "Referrers.getReferrerType per day: the same measures by referrer type (direct, "
    "search, website, campaign, social), with e-commerce orders and revenue per type.",
    "matomo.goals": "Goals.get per day for all goals, ecommerceOrder and ecommerceAbandonedCart: conversions, "
    "converted visits, revenue, items.",
    "matomo.campaign_mediums": "MarketingCampaignsReporting.getMedium per day: the 'campaign' referrer type's visits, "
    "converted visits, bounces, visit length and actions by campaign medium (cpc, email, ...), for the channel "
    "mapping channels.matomo_campaign_medium. Empty where the plugin is not installed (campaign_plugin: absent).",
}


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            _key(stream.table),
            group_name="matomo",
            description=_DESCRIPTIONS[stream.table],
            kinds={"python", "duckdb"},
            metadata={"dagster/table_name": stream.table, "primary_key": ", ".join(stream.key)},
        )
        for stream in STREAMS
    ],
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    name="matomo_reports",
)
def matomo_reports(context: dg.AssetExecutionContext, matomo: MatomoResource, warehouse: WarehouseResource
                   ) -> Iterator[dg.MaterializeResult]:
    window = window_from_context(context)
    connector = matomo.connector()
    sites = connector.check()
    context.log.info(f"Matomo: sites {sites}, window {window}")
    accounts = AccountLog(SOURCE)
    with retry_transient_failures():
        # every good site is loaded; a failed one is named and fails the run (pipelines/lib/accounts.py)
        result = warehouse.load(connector.fetch(window, accounts=accounts))
        settle_accounts(context, accounts)
    for stream in STREAMS:
        yield dg.MaterializeResult(
            asset_key=_key(stream.table),
            metadata=table_metadata(stream.table, result.rows_by_table.get(stream.table, 0), window,
                                    column_schema_from_arrow(stream.schema), sites=", ".join(sites),
                                    campaign_plugin=connector.campaign_plugin_status(),
                                    **connector.stats.as_metadata(), **accounts_metadata(accounts)),
        )
