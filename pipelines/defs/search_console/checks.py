"""Checks on Search Console raw tables."""

from pipelines.defs.search_console.assets import site_totals
from pipelines.lib.checks import build_row_rule_check

search_console_totals_consistent = build_row_rule_check(
    site_totals,
    name="search_console_totals_consistent",
    table="search_console.site_totals",
    violation="clicks > impressions OR clicks < 0 OR (position IS NOT NULL AND position < 1)",
    description="Clicks never exceed impressions and positions are >= 1 when present: otherwise CTR and average "
    "position in kpi.seo_daily would be wrong.",
)
