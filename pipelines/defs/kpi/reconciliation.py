"""Cross-source reconciliation: GA4 vs Matomo, Google Ads vs GA4, Search Console vs GA4, per day and site.

Business purpose: a tag removed from part of a site, an auto-tagging setting lost, or a consent banner misfiring
shows first as two platforms that usually agree drifting apart. `kpi.reconciliation` keeps the daily ratio of each
pair beside its band; one non-blocking check per pair warns, naming the days and the likely causes.
"""

import dagster as dg

from kpi_models.reconciliation import (
    PAIRS,
    TABLE,
    Pair,
    Site,
    describe,
    out_of_band,
    rebuild_reconciliation,
    window_summary,
)
from pipelines.defs.kpi.checks import group_checks
from pipelines.lib.partitions import DUCKDB_POOL, daily_partitions, window_from_context
from pipelines.lib.resources import SettingsResource, WarehouseResource

KEY = dg.AssetKey(["kpi", "reconciliation"])


def build_reconciliation_asset(daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """kpi/reconciliation over the daily partitions of the settings read when the code location loads."""

    @dg.asset(
        key=KEY,
        deps=[dg.AssetKey(["kpi", name])
              for name in ("web_daily", "seo_daily", "paid_search_daily", "ecommerce_daily")],
        group_name="kpi",
        kinds={"sql", "duckdb"},
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        metadata={"dagster/table_name": TABLE, "primary_key": "date, check_name, site"},
    )
    def reconciliation(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
                       ) -> dg.MaterializeResult:
        """The daily ratio of every pair of sources that see the same site (reconciliation.sites in config/mkpi.yaml):
        GA4 sessions per Matomo visit, GA4 paid-search sessions per Google Ads click, GA4 orders and revenue per Matomo
        order and revenue, Search Console clicks per GA4 organic session; each beside its band."""
        loaded = settings.load()
        sites = [Site(s.name, s.ga4_property, s.matomo_site, s.search_console_site, s.google_ads_customers)
                 for s in loaded.reconciliation.sites]
        window = window_from_context(context)
        with warehouse.connection() as conn:
            rows = rebuild_reconciliation(conn, window, sites, loaded.reconciliation.bands)
            summary = window_summary(conn, window)
        if not sites:
            context.log.info("no site in reconciliation.sites: nothing to compare")
        # One float per site and pair (the window's ratio of sums; days out of band): the UI plots each across runs.
        trends: dict[str, float | int] = {}
        for row in summary:
            name = f"{row['site']}/{row['check_name']}"
            if row["ratio"] is not None:
                trends[name] = round(float(row["ratio"]), 4)  # type: ignore[arg-type]
            trends[f"{name}/days_out_of_band"] = int(row["days_out_of_band"])  # type: ignore[call-overload]
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, "sites": ", ".join(s.name for s in sites),
                                              "window_start": window.start.isoformat(),
                                              "window_end": window.end.isoformat(), **trends})

    return reconciliation


def build_pair_check(pair: Pair) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=KEY, name=pair.name, blocking=False,
                    description=f"{pair.a} / {pair.b} stays within its band each day (a warning names the days "
                    f"outside it). Likely causes when it does not: {pair.causes}.")
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        window = window_from_context(context) if (context.has_partition_key or context.has_partition_key_range) \
            else None
        with warehouse.connection() as conn:
            days = out_of_band(conn, pair.name, window)
        if not days:
            return dg.AssetCheckResult(passed=True, metadata={"days_out_of_band": 0})
        shown = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()} for d in days[:50]]
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, description=describe(pair, days),
                                   metadata={"days_out_of_band": len(days), "days": dg.MetadataValue.json(shown)})

    return _check


@dg.definitions
def reconciliation_defs() -> dg.Definitions:
    """The asset and its checks, built when the code location loads (never at import: the partitions come from the
    settings read then). A module with a definitions function contributes only what the function returns."""
    # the pairs' warnings run in one step (issue #21 target 1: a step costs its events and resource set-up), each
    # keeping its name, description and result (pipelines/defs/kpi/checks.py `group_checks`)
    return dg.Definitions(assets=[build_reconciliation_asset(daily_partitions())],
                          asset_checks=group_checks([build_pair_check(pair) for pair in PAIRS]))
