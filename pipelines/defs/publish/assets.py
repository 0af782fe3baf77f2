"""The analysts' published copy of the KPI tables (MKPI_ANALYST_DB, default data/kpis.duckdb).

Business purpose: analysts query KPIs at any time from notebooks, the DuckDB CLI or BI tools without
ever blocking a scheduled run or seeing half-written KPIs: the working database stays private, and this
asset replaces the analysts' file atomically after the KPI tables are rebuilt.
"""

import dagster as dg

from connectors.publish import publish_analyst_copy
from kpi_models.runner import MODELS
from pipelines.lib.partitions import DUCKDB_POOL
from pipelines.lib.resources import SettingsResource, WarehouseResource


@dg.asset(
    key=["publish", "analyst_copy"],
    deps=[dg.AssetKey(["kpi", name]) for name in MODELS],
    group_name="publish",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,  # reads the working file, which only one process may open
    description="A consistent copy of the kpi schema and the raw tables for analysts, with build time, run id "
    "and per-source freshness (meta.build, meta.source_freshness), swapped in with one atomic rename.",
)
def analyst_copy(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
                 ) -> dg.MaterializeResult:
    target = settings.load().analyst_db
    with warehouse.connection() as conn:
        result = publish_analyst_copy(conn, target, run_id=context.run_id)
    context.log.info(f"published {result.tables} tables to {result.path} (build {result.build_id})")
    return dg.MaterializeResult(metadata={"path": result.path, "build_id": result.build_id,
                                          "tables": result.tables, "bytes": result.bytes})
