"""Search Console raw tables: site totals, pages, queries, devices and countries per day.

Business purpose: organic search visibility before the click (impressions, position, CTR). Site totals
(`byProperty`) feed `kpi.seo_daily`; page, query, device and country tables are for drill-down only,
since page rows over-count impressions and query rows miss anonymised queries.
"""

import dagster as dg

from connectors.parallel import AccountLog
from connectors.search_console import (
    COUNTRIES,
    DEVICES,
    PAGES,
    QUERIES,
    SITE_TOTALS,
    SOURCE,
    GscReport,
    skipped_search_types,
)
from pipelines.lib.accounts import accounts_metadata, settle_accounts
from pipelines.lib.metadata import column_schema_from_arrow, table_metadata
from pipelines.lib.partitions import DAILY, DUCKDB_POOL, retry_transient_failures, window_from_context
from pipelines.lib.resources import SearchConsoleResource, WarehouseResource


def build_search_console_asset(report: GscReport, description: str) -> dg.AssetsDefinition:
    """One daily-partitioned asset per Search Analytics stream; a backfill is a single run."""

    @dg.asset(
        key=["search_console", report.name],
        group_name="search_console",
        description=description,
        kinds={"python", "duckdb"},
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        metadata={"dagster/table_name": report.stream.table, "primary_key": ", ".join(report.stream.key),
                  "aggregation_type": report.aggregation_type},
    )
    def _asset(context: dg.AssetExecutionContext, search_console: SearchConsoleResource,
               warehouse: WarehouseResource) -> dg.MaterializeResult:
        window = window_from_context(context)
        connector = search_console.connector()
        sites = connector.sites()
        context.log.info(f"Search Console {report.name}: sites {sites}, window {window}")
        accounts = AccountLog(SOURCE)
        with retry_transient_failures():
            # every good site is loaded; a failed one is named and fails the run (pipelines/lib/accounts.py)
            result = warehouse.load(connector.fetch(report, window, accounts=accounts))
            settle_accounts(context, accounts)
        rows = result.rows_by_table.get(report.stream.table, 0)
        # Discover and Google News lack some dimensions (query; device for Discover): those reads are skipped
        skipped = skipped_search_types(report, connector.settings.search_types)
        extra = {"skipped_search_types": "; ".join(f"{k}: {v}" for k, v in skipped.items())} if skipped else {}
        return dg.MaterializeResult(
            metadata=table_metadata(report.stream.table, rows, window, column_schema_from_arrow(report.stream.schema),
                                    sites=", ".join(sites), **extra, **connector.stats.as_metadata(),
                                    **accounts_metadata(accounts))
        )

    return _asset


site_totals = build_search_console_asset(
    SITE_TOTALS, "Clicks, impressions and impression-weighted position per day for the whole property "
    "(aggregationType=byProperty): the only correct base of site-level SEO KPIs.")
pages = build_search_console_asset(
    PAGES, "Clicks, impressions and position per day and page (byPage): drill-down; page impressions add up "
    "to more than the site total.")
queries = build_search_console_asset(
    QUERIES, "Clicks, impressions and position per day and query: drill-down; anonymised queries are missing.")
devices = build_search_console_asset(DEVICES, "Clicks, impressions and position per day and device.")
countries = build_search_console_asset(COUNTRIES, "Clicks, impressions and position per day and country.")
