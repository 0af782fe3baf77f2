"""Checks on Search Console raw tables."""

import dagster as dg

from pipelines.defs.search_console.assets import site_totals
from pipelines.lib.resources import WarehouseResource


@dg.asset_check(asset=site_totals, blocking=True, description=(
    "Clicks never exceed impressions and positions are >= 1 when present: otherwise CTR and average "
    "position in kpi.seo_daily would be wrong."))
def search_console_totals_consistent(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM search_console.site_totals WHERE clicks > impressions OR clicks < 0 "
            "OR (position IS NOT NULL AND position < 1)"
        ).fetchone()
    bad = int(row[0]) if row else 0
    return dg.AssetCheckResult(passed=bad == 0, metadata={"inconsistent_rows": bad})
