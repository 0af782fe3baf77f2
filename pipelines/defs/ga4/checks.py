"""Checks on GA4 raw tables: counts that cannot be true stop the KPI rebuild (blocking)."""


import dagster as dg

from pipelines.defs.ga4.assets import traffic_by_channel
from pipelines.lib.resources import WarehouseResource


@dg.asset_check(asset=traffic_by_channel, blocking=True, description=(
    "Engaged and converting sessions never exceed sessions, and no count is negative: otherwise every "
    "rate computed from this table would be wrong."))
def ga4_traffic_counts_consistent(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connection() as conn:
        bad = conn.execute(
            "SELECT count(*) FROM ga4.traffic_by_channel WHERE engaged_sessions > sessions "
            "OR converting_sessions > sessions OR sessions < 0 OR engaged_sessions < 0 OR new_users < 0"
        ).fetchone()
    bad_rows = int(bad[0]) if bad else 0
    return dg.AssetCheckResult(passed=bad_rows == 0, metadata={"inconsistent_rows": bad_rows})
