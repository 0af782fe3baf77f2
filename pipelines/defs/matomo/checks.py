"""Checks on Matomo raw tables."""

import dagster as dg

from pipelines.lib.accounts import build_every_account_loaded_check
from pipelines.lib.checks import build_row_rule_check

matomo_referrer_counts_consistent = build_row_rule_check(
    dg.AssetKey(["matomo", "referrer_types"]),
    name="matomo_referrer_counts_consistent",
    table="matomo.referrer_types",
    violation="bounce_count > nb_visits OR nb_visits_converted > nb_visits OR nb_visits < 0",
    description="Bounces and converted visits never exceed visits: otherwise Matomo's bounce and conversion rates "
    "would be wrong.",
)

matomo_campaign_medium_counts_consistent = build_row_rule_check(
    dg.AssetKey(["matomo", "campaign_mediums"]),
    name="matomo_campaign_medium_counts_consistent",
    table="matomo.campaign_mediums",
    violation="bounce_count > nb_visits OR nb_visits_converted > nb_visits OR nb_visits < 0",
    description="Per campaign medium, bounces and converted visits never exceed visits: otherwise the channel "
    "split of Matomo's campaign traffic would carry impossible rates.",
)


# the Matomo tables are one step: one check names the sites that failed, and fails the run
matomo_every_site_loaded = build_every_account_loaded_check(dg.AssetKey(["matomo", "visits_summary"]), "matomo")
