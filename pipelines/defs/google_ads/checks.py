"""Checks on the Google Ads raw table."""

from pipelines.defs.google_ads.assets import campaign_daily
from pipelines.lib.accounts import build_every_account_loaded_check
from pipelines.lib.checks import build_row_rule_check

google_ads_rows_consistent = build_row_rule_check(
    campaign_daily,
    name="google_ads_rows_consistent",
    table="google_ads.campaign_daily",
    violation="clicks > impressions OR clicks < 0 OR cost_micros < 0 OR conversions < 0 OR currency_code IS NULL",
    description="Clicks never exceed impressions, nothing is negative, and every row has a currency: otherwise CTR, "
    "CPC, CPA and ROAS would be wrong or amounts in unknown currencies could be added.",
)


# a customer that failed is named, and fails the run
google_ads_every_customer_loaded = build_every_account_loaded_check(campaign_daily, "google_ads")
