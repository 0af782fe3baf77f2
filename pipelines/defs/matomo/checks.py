"""Checks on Matomo raw tables."""

import dagster as dg

from pipelines.lib.checks import build_row_rule_check

matomo_referrer_counts_consistent = build_row_rule_check(
    dg.AssetKey(["matomo", "referrer_types"]),
    name="matomo_referrer_counts_consistent",
    table="matomo.referrer_types",
    violation="bounce_count > nb_visits OR nb_visits_converted > nb_visits OR nb_visits < 0",
    description="Bounces and converted visits never exceed visits: otherwise Matomo's bounce and conversion rates "
    "would be wrong.",
)
