"""Checks on HubSpot raw tables."""

import dagster as dg

from pipelines.lib.checks import build_row_rule_check

email_counters_consistent = build_row_rule_check(
    dg.AssetKey(["hubspot", "email_statistics"]),
    name="email_counters_consistent",
    table="hubspot.email_statistics",
    violation='delivered > sent OR "open" > delivered OR click > delivered OR bounce > sent OR sent < 0',
    description="Counters are consistent (delivered <= sent, opens and clicks <= delivered, bounces <= sent): "
    "otherwise e-mail rates would be wrong.",
)

email_events_consistent = build_row_rule_check(
    dg.AssetKey(["hubspot", "email_events_daily"]),
    name="email_events_consistent",
    table="hubspot.email_events_daily",
    violation='delivered > sent OR "open" > delivered OR click > delivered OR bounce > sent',
    description="A day of an automated e-mail has consistent counters (delivered <= sent, opens and clicks <= "
    "delivered, bounces <= sent). HubSpot's spec says a bucket holds the statistics of the e-mails sent in it, so "
    "this holds; a failure means a portal's buckets count events otherwise, and that day's rates need a look. "
    "Not blocking: the lifetime counters of email_statistics stay right either way.",
    blocking=False,
)
