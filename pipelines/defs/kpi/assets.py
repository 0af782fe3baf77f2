"""KPI tables, rebuilt for the partition window from raw tables by the SQL in `kpi_models/`.

Business purpose: analysts query `kpi.*` instead of five platforms' raw fields; every rate there is
a ratio of sums computed the catalogue's way, with its numerator and denominator stored beside it.
"""

import dagster as dg

from connectors import registry
from kpi_models.context import KpiContext
from kpi_models.layer import KpiDailyResult, create_rollup_views, rebuild_hubspot_kpi_daily, rebuild_kpi_daily
from kpi_models.objectives import build_kpi_vs_objective
from kpi_models.runner import MODELS, GeneratedKpiModel, KpiModel, rebuild, unmapped_channel_values
from pipelines.lib.kpi_sources import settle_sources, sources_metadata
from pipelines.lib.metadata import column_schema_from_pairs, range_metadata, table_metadata
from pipelines.lib.partitions import DUCKDB_POOL, daily_partitions, run_sources, window_from_context
from pipelines.lib.resources import SettingsResource, WarehouseResource

_DESCRIPTIONS = {
    "web_daily": "Web analytics KPIs per day, source (ga4, matomo), account (property, site) and channel: sessions, "
    "engagement_rate, bounce_rate (each source's own definition), conversion_rate, avg_session_duration, "
    "avg_engagement_time; is_final and quality on every row.",
    "seo_daily": "SEO KPIs per day and Search Console property, from byProperty totals only: search_clicks, "
    "search_impressions, search_ctr, search_avg_position (impression-weighted); days after firstIncompleteDate "
    "are provisional.",
    "ecommerce_daily": "E-commerce KPIs per day, source, account and currency, built from the sessions side: orders, "
    "revenue, average_basket, cart_abandonment_rate (GA4: funnel add_to_cart -> purchase), "
    "ecommerce_conversion_rate.",
    "paid_search_daily": "Paid search KPIs per day, customer and campaign, in the account's currency: ad_cost, "
    "ad_clicks, ad_impressions, ad_conversions, ad_ctr, ad_cpc, ad_cpa, ad_roas, ad_conversion_rate "
    "(conversions / interactions).",
    "email_daily": "E-mail KPIs per day (batch e-mails by publish day in the reporting time zone, automated e-mails "
    "by event day), per e-mail and per day (email_id = 'all'): deliverability, open, click, click-to-open, bounce "
    "and unsubscribe rates from HubSpot's statistics counters.",
    "crm_daily": "HubSpot outcomes per day and channel (original source) up to yesterday: leads, contacts created, "
    "new customers, won deals and their revenue (company currency).",
    "crm_monthly": "CRM and retention KPIs per month up to yesterday: leads, contacts_created, new_customers by "
    "channel; churn_rate, loyalty_rate, nps (with its response count) for the whole portal.",
}


# Models whose `channel` comes from the editable mapping: their materialisations list unmapped raw values.
_CHANNEL_MODELS = ("web_daily", "paid_search_daily")


def kpi_asset_key(model: KpiModel) -> dg.AssetKey:
    return dg.AssetKey(["kpi", model.name])


def build_kpi_asset(model: KpiModel, daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """A daily-partitioned KPI table that depends on the raw tables its SQL reads."""

    partitioned = model.partition_column is not None

    upstream = [dg.AssetKey(stream.table.split(".")) for stream in model.inputs]
    upstream += [dg.AssetKey(["kpi", name]) for name in getattr(model, "depends_on", ())]

    @dg.asset(
        key=kpi_asset_key(model),
        deps=upstream,
        group_name="kpi",
        description=_DESCRIPTIONS.get(model.name, f"KPI table kpi.{model.name} (see kpi_models/sql/{model.name}.sql)."),
        kinds={"sql", "duckdb"},
        partitions_def=daily if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        pool=DUCKDB_POOL,
        metadata={"dagster/table_name": model.table, "primary_key": ", ".join(model.key)},
    )
    def _asset(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
               ) -> dg.MaterializeResult:
        loaded = settings.load()
        window = window_from_context(context) if partitioned else None
        with warehouse.connection() as conn:
            result = rebuild(conn, model, window, KpiContext.from_settings(loaded),
                             sources=run_sources(context, model.sources), isolate_sources=True)
            unmapped = unmapped_channel_values(conn, window) if model.name in _CHANNEL_MODELS and window else {}
        settle_sources(context, result)
        if unmapped:
            context.log.warning(f"raw channel values not in the channel mapping (counted as other): {unmapped}")
        extra = {"unmapped_channel_values": dg.MetadataValue.json(unmapped)} if model.name in _CHANNEL_MODELS else {}
        extra.update(sources_metadata(result))
        schema = column_schema_from_pairs(result.columns)
        if window is None:
            return dg.MaterializeResult(metadata={"dagster/row_count": result.rows, "dagster/table_name": result.table,
                                                  "dagster/column_schema": schema, **extra})
        return dg.MaterializeResult(metadata=range_metadata(context, table_metadata(result.table, result.rows, window,
                                                                                    schema, **extra)))

    return _asset


def _kpi_daily_metadata(context: dg.AssetExecutionContext, result: KpiDailyResult, views: list[str],
                        currency: str) -> dict[str, object]:
    """Row count, schema and what the FX sync did; a changed published rate is a warning with the command."""
    if result.fx.pending:
        days = sorted({d for d, *_ in result.fx.pending})
        context.log.warning(
            f"{len(result.fx.pending)} stored FX rates differ from what the rate source now gives "
            f"({days[0]}..{days[-1]}); the stored ones were used. Run `mkpi fx refresh --start {days[0]} "
            f"--end {days[-1]}` to apply the new rates and rebuild those days.")
    return {"views": ", ".join(views), "reporting_currency": currency, **result.fx.metadata()}


def build_kpi_daily_asset(daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """kpi/kpi_daily as the registry stands now (the code location calls this when it loads): it follows the
    per-channel tables of the report sources and the raw tables of every source that brings its own KPI SQL, and a
    run rebuilds the rows of its own report source (any registered one)."""
    model = MODELS["kpi_daily"]
    report = registry.codes("report")
    deps = [dg.AssetKey(["kpi", name]) for name in model.depends_on if set(MODELS[name].sources) & set(report)]
    deps += [dg.AssetKey(stream.table.split(".")) for stream in model.inputs]

    @dg.asset(
        key=["kpi", "kpi_daily"],
        deps=deps,
        group_name="kpi",
        kinds={"sql", "duckdb"},
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        metadata={"dagster/table_name": "kpi.kpi_daily", "primary_key": "date, source, channel, account_id, kpi"},
    )
    def kpi_daily(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
                  ) -> dg.MaterializeResult:
        """The unified long table: one row per (date, source, channel, account, kpi) with numerator, denominator,
        value, is_final and quality, generated from kpi_models/catalogue.yaml over every per-channel table (and the
        registered sources' own KPI SQL); money in the reporting currency at each day's rate (kpi.fx_rate). This
        asset rebuilds the report sources' rows of its partitions (GA4, Search Console, Matomo, Google Ads and any
        report source added to the registry); HubSpot's rows are kpi/kpi_daily_hubspot's. Also (re)writes
        kpi.kpi_definition and the kpi_weekly / kpi_monthly views (ratios of sums)."""
        loaded = settings.load()
        window = window_from_context(context)
        with warehouse.connection() as conn:
            result = rebuild_kpi_daily(conn, window, KpiContext.from_settings(loaded),
                                       sources=run_sources(context, registry.codes("report")), isolate_sources=True)
            views = create_rollup_views(conn)
        settle_sources(context, result.rebuild)
        return dg.MaterializeResult(metadata=range_metadata(context, table_metadata(
            result.rebuild.table, result.rows, window, column_schema_from_pairs(result.rebuild.columns),
            **sources_metadata(result.rebuild),
            **_kpi_daily_metadata(context, result, views, loaded.reporting_currency))))

    return kpi_daily


@dg.asset(
    key=["kpi", "kpi_daily_hubspot"],
    deps=[dg.AssetKey(["kpi", "email_daily"]), dg.AssetKey(["kpi", "crm_daily"]), dg.AssetKey(["kpi", "crm_monthly"])],
    group_name="kpi",
    kinds={"sql", "duckdb"},
    pool=DUCKDB_POOL,
    metadata={"dagster/table_name": "kpi.kpi_daily", "primary_key": "date, source, channel, account_id, kpi"},
)
def kpi_daily_hubspot(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
                      ) -> dg.MaterializeResult:
    """HubSpot's rows of kpi.kpi_daily (leads, contacts created, new customers, e-mail KPIs), rebuilt whole up to
    yesterday after every HubSpot run: a contact whose lifecycle date moved, or an automated e-mail's new activity,
    changes old days, which a trailing window would leave stale."""
    loaded = settings.load()
    with warehouse.connection() as conn:
        result = rebuild_hubspot_kpi_daily(conn, KpiContext.from_settings(loaded))
        views = create_rollup_views(conn)
    if result is not None:
        settle_sources(context, result.rebuild)
    if result is None:
        return dg.MaterializeResult(metadata={"dagster/row_count": 0, "sources": "hubspot",
                                              "note": "HubSpot has no contact or e-mail yet"})
    window = result.rebuild.window
    assert window is not None
    return dg.MaterializeResult(metadata=table_metadata(
        result.rebuild.table, result.rows, window, column_schema_from_pairs(result.rebuild.columns),
        **sources_metadata(result.rebuild), **_kpi_daily_metadata(context, result, views, loaded.reporting_currency)))


@dg.asset(
    key=["kpi", "kpi_vs_objective"],
    deps=[dg.AssetKey(["kpi", "kpi_daily"]), dg.AssetKey(["kpi", "kpi_daily_hubspot"]),
          dg.AssetKey(["kpi", "crm_monthly"])],
    group_name="kpi",
    kinds={"python", "duckdb"},
    pool=DUCKDB_POOL,
    metadata={"dagster/table_name": "kpi.kpi_vs_objective"},
)
def kpi_vs_objective(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
                     ) -> dg.MaterializeResult:
    """Every KPI beside its objective (the objectives YAML, MKPI_OBJECTIVES): actual, target, target pro-rated
    to the elapsed part of the period and a forecast for additive KPIs, ratio of sums so far for rates,
    attainment (inverted when lower is better), status and the gap to close."""
    loaded = settings.load()
    with warehouse.connection() as conn:
        rows = build_kpi_vs_objective(conn, loaded.objectives_path, tz=loaded.reporting_timezone,
                                      min_denominators=loaded.min_denominators)
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[str(row["status"])] = statuses.get(str(row["status"]), 0) + 1
    return dg.MaterializeResult(metadata={"dagster/row_count": len(rows), "objectives_file": loaded.objectives_path,
                                          "statuses": dg.MetadataValue.json(statuses)})


@dg.definitions
def kpi_asset_defs() -> dg.Definitions:
    """This module's assets, built when the code location loads, never at import: the daily partitions from the
    settings read then, kpi/kpi_daily with the registry as it stands (a source added to it is in its deps). One
    asset per per-channel model in kpi_models.MODELS: a new KPI table is a new SQL file and one registry entry. A
    module with a definitions function contributes only what the function returns."""
    daily = daily_partitions()
    kpi_assets = [build_kpi_asset(model, daily) for model in MODELS.values()
                  if not isinstance(model, GeneratedKpiModel)]
    return dg.Definitions(assets=[*kpi_assets, build_kpi_daily_asset(daily), kpi_daily_hubspot, kpi_vs_objective])
