"""Checks on HubSpot raw tables."""

import dagster as dg

from pipelines.defs.hubspot.assets import email_statistics
from pipelines.lib.resources import WarehouseResource


@dg.asset_check(asset=email_statistics, blocking=True, description=(
    "Counters are consistent (delivered <= sent, opens <= delivered, clicks <= opens is not required but "
    "clicks <= delivered is): otherwise e-mail rates would be wrong."))
def email_counters_consistent(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connection() as conn:
        row = conn.execute(
            'SELECT count(*) FROM hubspot.email_statistics WHERE delivered > sent OR "open" > delivered '
            "OR click > delivered OR bounce > sent OR sent < 0"
        ).fetchone()
    bad = int(row[0]) if row else 0
    return dg.AssetCheckResult(passed=bad == 0, metadata={"inconsistent_rows": bad})
