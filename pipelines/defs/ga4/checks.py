"""Checks on GA4 raw tables: counts that cannot be true stop the KPI rebuild (blocking)."""

from pipelines.defs.ga4.assets import cart_funnel_daily, ecommerce_by_date, traffic_by_channel
from pipelines.lib.accounts import build_every_account_loaded_check
from pipelines.lib.checks import build_row_rule_check

ga4_traffic_counts_consistent = build_row_rule_check(
    traffic_by_channel,
    name="ga4_traffic_counts_consistent",
    table="ga4.traffic_by_channel",
    violation="engaged_sessions > sessions OR converting_sessions > sessions OR sessions < 0 "
    "OR engaged_sessions < 0 OR new_users < 0 OR session_duration_seconds < 0",
    description="Engaged and converting sessions never exceed sessions, and no count or duration is negative: "
    "otherwise every rate computed from this table would be wrong.",
)

ga4_cart_funnel_consistent = build_row_rule_check(
    cart_funnel_daily,
    name="ga4_cart_funnel_consistent",
    table="ga4.cart_funnel_daily",
    violation="purchased_after_cart_users > cart_users OR purchased_after_cart_users < 0 OR cart_users <= 0",
    description="In a closed funnel, users who purchased after add_to_cart never exceed the users at add_to_cart, "
    "and a stored day has someone at add_to_cart: otherwise the cart abandonment rate would be wrong.",
)


# one per report asset (each is its own step): a property that failed is named, and fails the run
ga4_every_property_loaded = [build_every_account_loaded_check(asset, "ga4")
                             for asset in (traffic_by_channel, ecommerce_by_date, cart_funnel_daily)]
