"""Checks on Matomo raw tables."""

import dagster as dg

from pipelines.lib.resources import WarehouseResource


@dg.asset_check(asset=dg.AssetKey(["matomo", "referrer_types"]), blocking=True, description=(
    "Bounces and converted visits never exceed visits: otherwise Matomo's bounce and conversion rates "
    "would be wrong."))
def matomo_referrer_counts_consistent(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM matomo.referrer_types WHERE bounce_count > nb_visits "
            "OR nb_visits_converted > nb_visits OR nb_visits < 0"
        ).fetchone()
    bad = int(row[0]) if row else 0
    return dg.AssetCheckResult(passed=bad == 0, metadata={"inconsistent_rows": bad})
