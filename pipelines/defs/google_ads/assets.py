"""Google Ads raw table: campaign performance per day and customer.

Business purpose: the cost side of paid acquisition (spend, clicks, conversions, conversion value) behind
CPC, CPA and ROAS in kpi.paid_search_daily. One search_stream per customer covers the whole range, and the
daily refresh re-reads the 30-day conversion window because Google restates conversions for weeks.
"""

import dagster as dg

from connectors.google_ads import CAMPAIGN_DAILY, SOURCE
from connectors.parallel import AccountLog
from pipelines.lib.accounts import accounts_metadata, settle_accounts
from pipelines.lib.metadata import column_schema_from_arrow, table_metadata
from pipelines.lib.partitions import DAILY, DUCKDB_POOL, retry_transient_failures, window_from_context
from pipelines.lib.resources import GoogleAdsResource, WarehouseResource


@dg.asset(
    key=["google_ads", "campaign_daily"],
    group_name="google_ads",
    kinds={"python", "duckdb"},
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    metadata={"dagster/table_name": CAMPAIGN_DAILY.table, "primary_key": ", ".join(CAMPAIGN_DAILY.key)},
)
def campaign_daily(context: dg.AssetExecutionContext, google_ads: GoogleAdsResource, warehouse: WarehouseResource
                   ) -> dg.MaterializeResult:
    """Impressions, clicks, cost (micros and currency units), conversions and conversion value per day,
    customer and campaign, with the account's currency and time zone on every row."""
    window = window_from_context(context)
    connector = google_ads.connector()
    customers = connector.check()
    context.log.info(f"Google Ads: customers {customers}, window {window}")
    accounts = AccountLog(SOURCE)
    with retry_transient_failures():
        # every good customer is loaded; a failed one is named and fails the run (pipelines/lib/accounts.py)
        result = warehouse.load(connector.fetch(window, accounts=accounts))
        settle_accounts(context, accounts)
    rows = result.rows_by_table.get(CAMPAIGN_DAILY.table, 0)
    return dg.MaterializeResult(
        metadata=table_metadata(CAMPAIGN_DAILY.table, rows, window, column_schema_from_arrow(CAMPAIGN_DAILY.schema),
                                customers=", ".join(customers), **connector.stats.as_metadata(),
                                **accounts_metadata(accounts))
    )
