"""The report sources' one Dagster Component (pipelines/components/source_assets.py) as each defs.yaml configures it.

What the UI and the schedules rely on is stated here by hand: asset keys and steps, check names, owners, freshness
windows (each source's `stale_after_days`), column descriptions, and partitions that start at the configured start
date (that importing the pipeline's modules reads no configuration is tests/test_settings_import.py's check).
"""

from datetime import timedelta

import dagster as dg
import pytest

from connectors.settings import load_settings
from pipelines.components.source_assets import SourceAssets, source_component, source_defs

# per source: its assets (raw tables), its steps, its checks, its owners and its freshness window in days
EXPECTED = {
    "ga4": ({"traffic_by_channel", "ecommerce_by_date", "cart_funnel_daily"},
            {"ga4__traffic_by_channel", "ga4__ecommerce_by_date", "ga4__cart_funnel_daily"},
            {("traffic_by_channel", "every_account_loaded"), ("ecommerce_by_date", "every_account_loaded"),
             ("cart_funnel_daily", "every_account_loaded"), ("traffic_by_channel", "ga4_traffic_counts_consistent"),
             ("cart_funnel_daily", "ga4_cart_funnel_consistent")},
            ["team:web-analytics"], 2),
    "search_console": ({"site_totals", "pages", "queries", "devices", "countries"},
                       {f"search_console__{t}" for t in ("site_totals", "pages", "queries", "devices", "countries")},
                       {*((t, "every_account_loaded") for t in ("site_totals", "pages", "queries", "devices",
                                                                 "countries")),
                        ("site_totals", "search_console_totals_consistent")},
                       ["team:seo"], 4),
    "matomo": ({"visits_summary", "referrer_types", "goals", "campaign_mediums"}, {"matomo_reports"},
               {("visits_summary", "every_account_loaded"), ("referrer_types", "matomo_referrer_counts_consistent"),
                ("campaign_mediums", "matomo_campaign_medium_counts_consistent")},
               ["team:web-analytics"], 2),
    "google_ads": ({"campaign_daily"}, {"google_ads__campaign_daily"},
                   {("campaign_daily", "every_account_loaded"), ("campaign_daily", "google_ads_rows_consistent")},
                   ["team:paid-search"], 2),
}


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_defs_yaml_gives_the_assets_steps_and_checks_the_ui_knows(code):
    tables, steps, checks, owners, stale_days = EXPECTED[code]
    defs = source_defs(code)
    assets = [a for a in defs.assets or () if isinstance(a, dg.AssetsDefinition)]
    specs = [spec for a in assets for spec in a.specs]
    assert {s.key for s in specs} == {dg.AssetKey([code, t]) for t in tables}
    assert {a.node_def.name for a in assets} == steps
    assert all(a.backfill_policy == dg.BackfillPolicy.single_run() and a.op.pool == "duckdb_write" for a in assets)
    assert {(k.asset_key.path[1], k.name) for c in defs.asset_checks or () for k in c.check_keys} == checks
    for spec in specs:
        assert spec.group_name == code and spec.owners == owners and spec.description
        assert spec.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=timedelta(days=stale_days))
        assert spec.metadata["dagster/table_name"] == ".".join(spec.key.path)


def test_columns_are_described_from_the_catalogue_and_the_yaml():
    (spec,) = [s for a in source_defs("ga4").assets or () for s in a.specs
               if s.key == dg.AssetKey(["ga4", "traffic_by_channel"])]
    columns = {c.name: c.description for c in spec.metadata["dagster/column_schema"].columns}
    # the catalogue's raw presence column (relations.web_daily.raw.ga4: table ga4.traffic_by_channel, date: date)
    assert "a day GA4 reported" in columns["date"] and "web_daily" in columns["date"]
    assert columns["engaged_sessions"].startswith("Sessions that lasted 10 s or more")  # pipelines/defs/ga4/defs.yaml
    assert columns["new_users"] is None  # described nowhere: no invented text


def test_partitions_start_at_the_configured_start_date(tmp_path):
    config = tmp_path / "mkpi.yaml"
    config.write_text('start_date: "2026-02-03"\nreporting_timezone: America/New_York\n', encoding="utf-8")
    defs = source_component("google_ads").build(load_settings(config, environ={}))
    (asset,) = defs.assets or ()
    assert asset.partitions_def.get_first_partition_key() == "2026-02-03"
    assert asset.partitions_def.timezone == "America/New_York"


def test_a_yaml_naming_a_table_the_source_lacks_is_refused():
    component = SourceAssets.resolve_from_dict({"source": "matomo", "streams": {"visits": {"description": "x"}}})
    with pytest.raises(ValueError, match=r"unknown streams \['visits'\].*matomo.visits_summary"):
        component.build(load_settings())


def test_hubspot_assets_carry_owners_freshness_and_code_references():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if k.path[0] == "hubspot" and not graph.get(k).is_external]
    # contacts, companies, feedback submissions, deals and their associations, owners, deal stages, the portal's
    # details, e-mail statistics and the automated e-mails' daily events
    assert len(keys) == 10
    for key in keys:
        node = graph.get(key)
        assert node.owners == ["team:crm"]
        assert node.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=timedelta(days=3))
        assert node.metadata["dagster/code_references"].code_references
