"""GA4 raw tables: traffic by channel and e-commerce by day, for every configured property.

Business purpose: GA4 is where sessions, engagement, conversions and e-commerce funnels are
measured; these raw tables feed `kpi.web_daily` (and later the e-commerce KPIs). Each materialisation
reads its whole partition range in one request per property (plus pages) and replaces that window
in DuckDB atomically, so backfills, re-reads and retries never duplicate a row.
"""


import dagster as dg

from connectors.ga4 import ECOMMERCE, SOURCE, TRAFFIC, Ga4Report
from connectors.parallel import AccountLog
from pipelines.lib.accounts import accounts_metadata, settle_accounts
from pipelines.lib.metadata import column_schema_from_arrow, table_metadata
from pipelines.lib.partitions import DAILY, DUCKDB_POOL, retry_transient_failures, window_from_context
from pipelines.lib.resources import GA4Resource, WarehouseResource


def build_ga4_report_asset(report: Ga4Report, description: str) -> dg.AssetsDefinition:
    """One daily-partitioned asset per GA4 report; a backfill is a single run over the range."""

    @dg.asset(
        key=["ga4", report.name],
        group_name="ga4",
        description=description,
        kinds={"python", "duckdb"},
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        metadata={"dagster/table_name": report.stream.table, "primary_key": ", ".join(report.stream.key)},
    )
    def _asset(context: dg.AssetExecutionContext, ga4: GA4Resource, warehouse: WarehouseResource
               ) -> dg.MaterializeResult:
        window = window_from_context(context)
        connector = ga4.connector()
        properties = connector.property_ids()
        context.log.info(f"GA4 {report.name}: properties {properties}, window {window}")
        accounts = AccountLog(SOURCE)
        with retry_transient_failures():
            # every good property is loaded; a failed one is named and fails the run (pipelines/lib/accounts.py)
            result = warehouse.load(connector.fetch(report, window, accounts=accounts))
            settle_accounts(context, accounts)
        rows = result.rows_by_table.get(report.stream.table, 0)
        context.log.info(f"GA4 {report.name}: {rows} rows, {connector.stats.requests} requests")
        return dg.MaterializeResult(
            metadata=table_metadata(
                report.stream.table,
                rows,
                window,
                column_schema_from_arrow(report.stream.schema),
                properties=", ".join(properties),
                **connector.stats.as_metadata(),
                **accounts_metadata(accounts),
                **{
                    f"quota_{pid}_tokens_per_day_remaining": q.get("tokens_per_day_remaining", -1)
                    for pid, q in connector.quota.items()
                },
            )
        )

    return _asset


traffic_by_channel = build_ga4_report_asset(
    TRAFFIC,
    "GA4 sessions, engaged sessions, engagement time, key-event sessions and new users by day and "
    "default channel group: the base of web analytics KPIs (engagement, bounce, conversion rates).",
)
ecommerce_by_date = build_ga4_report_asset(
    ECOMMERCE,
    "GA4 purchases, revenue, add-to-carts and checkouts by day: the base of e-commerce KPIs "
    "(orders, revenue, average basket, cart abandonment).",
)
