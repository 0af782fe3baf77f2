"""The analysts' published copy of the KPI tables (MKPI_ANALYST_DB, default data/kpis.duckdb).

Business purpose: analysts query KPIs at any time from notebooks, the DuckDB CLI or BI tools without
ever blocking a scheduled run or seeing half-written KPIs: the working database stays private, and this
asset replaces the analysts' file atomically after the KPI tables are rebuilt.
"""

import dagster as dg

from connectors.publish import publish_analyst_copy
from connectors.warehouse import transaction
from kpi_models.runner import MODELS
from pipelines.lib.partitions import DUCKDB_POOL
from pipelines.lib.resources import SettingsResource, WarehouseResource
from pipelines.lib.source_status import source_statuses, stale_sources, statuses_metadata, write_source_status


@dg.asset(
    key=["publish", "analyst_copy"],
    deps=[*(dg.AssetKey(["kpi", name]) for name in MODELS), dg.AssetKey(["kpi", "kpi_daily_hubspot"])],
    group_name="publish",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,  # reads the working file, which only one process may open
    description="A consistent copy of the kpi schema and the raw tables for analysts, with build time, run id, "
    "per-source freshness and status (meta.build, meta.source_freshness, meta.source_status: last success, last "
    "failure, error, stale since), swapped in with one atomic rename; a failing source's KPI rows are flagged "
    "stale_source.",
)
def analyst_copy(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
                 ) -> dg.MaterializeResult:
    target = settings.load().analyst_db
    # each source's health from Dagster's records: a failing source's rows are its last good ones, flagged stale
    from pipelines.definitions import defs  # the code location's asset graph: a source's raw assets are its group

    statuses = source_statuses(context.instance, defs.get_repository_def().asset_graph)
    stale = stale_sources(statuses)
    with warehouse.connection() as conn:
        with transaction(conn):
            write_source_status(conn, statuses)
        result = publish_analyst_copy(conn, target, run_id=context.run_id, stale_sources=stale)
    context.log.info(f"published {result.tables} tables to {result.path} (build {result.build_id})")
    if stale:
        context.log.warning(f"sources failing since their last success (their KPI rows are the last good ones, "
                            f"flagged stale_source): {', '.join(stale)}")
    return dg.MaterializeResult(metadata={"path": result.path, "build_id": result.build_id,
                                          "tables": result.tables, "bytes": result.bytes,
                                          "stale_sources": ", ".join(stale) or "none",
                                          "source_status": dg.MetadataValue.json(statuses_metadata(statuses))})
