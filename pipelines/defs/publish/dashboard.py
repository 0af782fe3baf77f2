"""The static KPI dashboard (MKPI_DASHBOARD_PATH, default data/dashboard.html).

Business purpose: marketing managers open one HTML file, offline, to see each KPI family against its objective
this month, its trend by channel and how fresh each source is, without a BI tool or database access. It is
rebuilt after the KPI tables and objectives and replaced atomically, so nobody opens a half-written page.
"""

import dagster as dg

from kpi_models.catalogue import FAMILIES
from kpi_models.dashboard import dashboard_path, write_dashboard
from pipelines.lib.partitions import DUCKDB_POOL
from pipelines.lib.resources import SettingsResource, WarehouseResource


@dg.asset(
    key=["publish", "dashboard"],
    deps=[dg.AssetKey(["kpi", "kpi_vs_objective"]), dg.AssetKey(["kpi", "kpi_daily"]),
          dg.AssetKey(["publish", "analyst_copy"])],  # after it: meta.source_status is current
    group_name="publish",
    kinds={"html", "plotly"},
    pool=DUCKDB_POOL,  # reads the working file, which only one process may open
    description="A self-contained HTML dashboard (plotly.js inlined, opens offline): per KPI family, this period's "
    "value against its objective with a status colour, 90-day trends by channel and source, the sessions channel "
    "mix, formulas and sources, and per-source freshness. Written atomically to MKPI_DASHBOARD_PATH.",
)
def dashboard(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
              ) -> dg.MaterializeResult:
    tz = settings.load().reporting_timezone  # times and source ages are shown in the reporting time zone
    target = dashboard_path()  # MKPI_DASHBOARD_PATH, else data/dashboard.html
    with warehouse.connection() as conn:
        result = write_dashboard(conn, target, timezone=tz)
    missing = [family for family in FAMILIES if family not in result.families]
    context.log.info(f"wrote the dashboard to {result.path} ({result.bytes:,} bytes); no data yet for: "
                     f"{', '.join(missing) or 'none'}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(result.path),
        "bytes": result.bytes,
        "families": ", ".join(result.families),
        "families_without_data": ", ".join(missing),
        "generated_at": result.generated_at.isoformat(),
    })
