"""Checks on HubSpot raw tables."""

from pipelines.defs.hubspot.assets import email_statistics
from pipelines.lib.checks import build_row_rule_check

email_counters_consistent = build_row_rule_check(
    email_statistics,
    name="email_counters_consistent",
    table="hubspot.email_statistics",
    violation='delivered > sent OR "open" > delivered OR click > delivered OR bounce > sent OR sent < 0',
    description="Counters are consistent (delivered <= sent, opens and clicks <= delivered, bounces <= sent): "
    "otherwise e-mail rates would be wrong.",
)
