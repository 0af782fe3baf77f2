"""GA4 raw tables: traffic by channel, e-commerce by day and the daily cart funnel, for every configured property.

Business purpose: GA4 is where sessions, engagement, conversions and e-commerce funnels are
measured; these raw tables feed `kpi.web_daily` and `kpi.ecommerce_daily`. Each materialisation
reads its whole partition range (one request per report per property, plus pages; the funnel one per
property and day) and replaces that window in DuckDB atomically, so backfills, re-reads and retries never
duplicate a row. With each report's rows, what GA4 said about the answers (thresholding, sampling, the
`(other)` row, truncation) replaces that report's days in `ga4.report_quality`, in the same transaction.
"""


from itertools import chain

import dagster as dg

from connectors.ga4 import CART_FUNNEL, ECOMMERCE, SOURCE, TRAFFIC, Ga4FunnelReport, Ga4Report
from connectors.parallel import AccountLog
from pipelines.lib.accounts import accounts_metadata, settle_accounts
from pipelines.lib.metadata import column_schema_from_arrow, table_metadata
from pipelines.lib.partitions import DAILY, DUCKDB_POOL, retry_transient_failures, window_from_context
from pipelines.lib.resources import GA4Resource, WarehouseResource


def build_ga4_report_asset(report: Ga4Report | Ga4FunnelReport, description: str) -> dg.AssetsDefinition:
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
            # every good property is loaded; a failed one is named and fails the run (pipelines/lib/accounts.py).
            # The quality rows follow in the same load, for the properties read whole.
            result = warehouse.load(chain(connector.fetch(report, window, accounts=accounts),
                                          connector.quality_batches(report.name, window)))
            settle_accounts(context, accounts)
        rows = result.rows_by_table.get(report.stream.table, 0)
        quality = connector.quality_counts(report.name)
        context.log.info(f"GA4 {report.name}: {rows} rows, {connector.stats.requests} requests, "
                         f"answer quality {quality}")
        return dg.MaterializeResult(
            metadata=table_metadata(
                report.stream.table,
                rows,
                window,
                column_schema_from_arrow(report.stream.schema),
                properties=", ".join(properties),
                **connector.stats.as_metadata(),
                **accounts_metadata(accounts),
                **quality,
                **{
                    f"quota_{pid}_tokens_per_day_remaining": q.get("tokens_per_day_remaining", -1)
                    for pid, q in connector.quota.items()
                },
            )
        )

    return _asset


traffic_by_channel = build_ga4_report_asset(
    TRAFFIC,
    "GA4 sessions, engaged sessions, engagement time, average session duration (and sessions x it), key-event "
    "sessions and new users by day and default channel group: the base of web analytics KPIs (engagement, "
    "bounce, conversion rates, average session duration and engagement time).",
)
ecommerce_by_date = build_ga4_report_asset(
    ECOMMERCE,
    "GA4 purchases, revenue, add-to-carts and checkouts by day: the base of e-commerce KPIs "
    "(orders, revenue, average basket). A day with sessions but no e-commerce event has no row (GA4 leaves out "
    "all-zero rows): KPIs start from the sessions side.",
)
cart_funnel_daily = build_ga4_report_asset(
    CART_FUNNEL,
    "GA4's closed funnel add_to_cart -> purchase per property and day (runFunnelReport, Data API v1alpha, one "
    "request per day): users at add_to_cart and those who then purchased, the base of GA4's cart abandonment "
    "rate. A day nobody added to cart has no row.",
)
