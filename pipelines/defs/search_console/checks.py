"""Checks on Search Console raw tables."""

from pipelines.defs.search_console.assets import countries, devices, pages, queries, site_totals
from pipelines.lib.accounts import build_every_account_loaded_check
from pipelines.lib.checks import build_row_rule_check

search_console_totals_consistent = build_row_rule_check(
    site_totals,
    name="search_console_totals_consistent",
    table="search_console.site_totals",
    violation="clicks > impressions OR clicks < 0 OR (position IS NOT NULL AND position < 1)",
    description="Clicks never exceed impressions and positions are >= 1 when present: otherwise CTR and average "
    "position in kpi.seo_daily would be wrong.",
)


# one per report asset (each is its own step): a site that failed is named, and fails the run
search_console_every_site_loaded = [
    build_every_account_loaded_check(asset, "search_console")
    for asset in (site_totals, pages, queries, devices, countries)]
