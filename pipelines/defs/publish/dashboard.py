"""The static KPI dashboard (MKPI_DASHBOARD_PATH, default data/dashboard.html).

Business purpose: marketing managers open one HTML file, offline, to see each KPI against its objective and against
the previous period and last year, for the period they pick, with breakdowns by source and channel, drill-downs and
trends, and how fresh each source is, without a BI tool or database access (docs/dashboard.md). It is rebuilt after
the KPI tables, objectives and the analysts' copy and replaced atomically, so nobody opens a half-written page.
"""

import dagster as dg

from kpi_models.catalogue import FAMILIES
from kpi_models.dashboard import MAX_BYTES, write_settings_dashboard
from pipelines.lib.partitions import DUCKDB_POOL
from pipelines.lib.resources import SettingsResource, WarehouseResource


@dg.asset(
    key=["publish", "dashboard"],
    deps=[dg.AssetKey(["kpi", "kpi_vs_objective"]), dg.AssetKey(["kpi", "kpi_daily"]),
          dg.AssetKey(["publish", "analyst_copy"])],  # after it: meta.source_status is current
    group_name="publish",
    kinds={"html"},
    pool=DUCKDB_POOL,  # reads the working file, which only one process may open
    description="A self-contained HTML dashboard (one file under 1.5 MB, opens offline): periods (this month, last "
    "month, this quarter, last 7/28/90 days, custom), each KPI card against its objective, the previous period and "
    "the same period last year, its breakdown by source and channel, drill-downs (channels, campaigns, Search Console "
    "queries and pages, e-mails), trends per family, freshness, source status and open alerts. Written atomically "
    "to MKPI_DASHBOARD_PATH.",
)
def dashboard(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
              ) -> dg.MaterializeResult:
    loaded = settings.load()
    with warehouse.connection() as conn:
        result = write_settings_dashboard(conn, loaded)
    missing = [family for family in FAMILIES if family not in result.families]
    context.log.info(f"wrote the dashboard to {result.path} ({result.bytes:,} bytes); no data yet for: "
                     f"{', '.join(missing) or 'none'}")
    if result.bytes > MAX_BYTES:  # still written: a heavy page beats none, but someone should know
        context.log.warning(f"the dashboard is {result.bytes:,} bytes, over its {MAX_BYTES:,}-byte budget")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(result.path),
        "bytes": result.bytes,
        "families": ", ".join(result.families),
        "families_without_data": ", ".join(missing),
        "generated_at": result.generated_at.isoformat(),
    })
