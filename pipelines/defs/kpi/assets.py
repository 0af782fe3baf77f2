"""KPI tables, rebuilt for the partition window from raw tables by the SQL in `kpi_models/`.

Business purpose: analysts query `kpi.*` instead of five platforms' raw fields; every rate there is
a ratio of sums computed the catalogue's way, with its numerator and denominator stored beside it.
"""


import dagster as dg

from kpi_models.runner import MODELS, rebuild, unmapped_channel_values
from pipelines.defs.ga4.assets import traffic_by_channel
from pipelines.lib.metadata import column_schema_from_pairs, table_metadata
from pipelines.lib.partitions import DAILY, DUCKDB_POOL, window_from_context
from pipelines.lib.resources import SettingsResource, WarehouseResource


@dg.asset(
    key=["kpi", "web_daily"],
    deps=[traffic_by_channel],
    group_name="kpi",
    kinds={"sql", "duckdb"},
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DUCKDB_POOL,
    metadata={"dagster/table_name": "kpi.web_daily", "primary_key": "date, source, channel"},
)
def web_daily(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
              ) -> dg.MaterializeResult:
    """Web analytics KPIs per day and channel from GA4: sessions, engagement_rate, bounce_rate,
    conversion_rate, avg_session_duration (KPI_CATALOGUE, web analytics)."""
    window = window_from_context(context)
    with warehouse.connection() as conn:
        result = rebuild(conn, MODELS["web_daily"], window, channels=settings.load().channels)
        unmapped = unmapped_channel_values(conn, window)
    if unmapped:
        context.log.warning(f"GA4 channel groups not in the channel mapping (counted as other): {unmapped}")
    return dg.MaterializeResult(
        metadata=table_metadata(
            result.table, result.rows, window, column_schema_from_pairs(result.columns),
            unmapped_channel_values=dg.MetadataValue.json(unmapped),
        )
    )
