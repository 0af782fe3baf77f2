"""Checks on the Google Ads raw table."""

import dagster as dg

from pipelines.defs.google_ads.assets import campaign_daily
from pipelines.lib.resources import WarehouseResource


@dg.asset_check(asset=campaign_daily, blocking=True, description=(
    "Clicks never exceed impressions, nothing is negative, and every row has a currency: otherwise CTR, "
    "CPC, CPA and ROAS would be wrong or amounts in unknown currencies could be added."))
def google_ads_rows_consistent(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM google_ads.campaign_daily WHERE clicks > impressions OR clicks < 0 "
            "OR cost_micros < 0 OR conversions < 0 OR currency_code IS NULL"
        ).fetchone()
    bad = int(row[0]) if row else 0
    return dg.AssetCheckResult(passed=bad == 0, metadata={"inconsistent_rows": bad})
