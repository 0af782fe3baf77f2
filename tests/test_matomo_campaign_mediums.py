"""Matomo's campaign referrer type split by campaign medium (MarketingCampaignsReporting.getMedium), end to end:
sandbox server over a real socket, connector, loader and the Dagster asset's metadata, with and without the plugin.

Expected values come from the World: the medium split of the campaign referrer type (World.matomo_day
``campaign_mediums``), which adds up to ``by_referrer_type["campaign"]``.
"""

from datetime import date

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from connectors.batches import Window
from connectors.http import RetryPolicy
from connectors.matomo import CAMPAIGN_MEDIUMS, REFERRERS, STREAMS, MatomoConnector
from connectors.settings import MatomoSettings, Secret, load_settings
from connectors.warehouse import load_batches
from sandbox.matomo_server import MatomoServer
from sandbox.world import World

TODAY = date(2026, 3, 31)
TOKEN = "0123456789abcdef0123456789abcdef"
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 10))
MEDIUM_FIELDS = ("nb_visits", "nb_visits_converted", "bounce_count", "sum_visit_length", "nb_actions")


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, today=TODAY)


def connector(url: str) -> MatomoConnector:
    settings = MatomoSettings(url=url + "/", site_ids=("1",), token=Secret(TOKEN), timeout_seconds=5)
    return MatomoConnector(settings, sleep=lambda _: None, policy=RetryPolicy(base_delay=0.01, max_delay=0.05))


def tables(conn: MatomoConnector, window: Window = WINDOW) -> dict[str, pa.Table]:
    return {batch.stream.table: batch.data for batch in conn.fetch(window)}


def test_mediums_match_the_world_and_add_up_to_the_campaign_referrer_type(world):
    with MatomoServer(world, token=TOKEN) as server:
        conn = connector(server.url)
        got = tables(conn)
        assert server.request_count == 1  # in the same bulk request as the other reports
    assert set(got) == {s.table for s in STREAMS}
    mediums = got[CAMPAIGN_MEDIUMS.table]
    assert mediums.schema.equals(CAMPAIGN_MEDIUMS.schema)
    rows = {(r["date"], r["campaign_medium"]): r for r in mediums.to_pylist()}
    expected = {(day, medium): v for day in WINDOW.dates()
                for medium, v in world.matomo_day("1", day).campaign_mediums.items()}
    assert set(rows) == set(expected)
    for key, v in expected.items():
        assert tuple(rows[key][f] for f in MEDIUM_FIELDS) == tuple(getattr(v, f) for f in MEDIUM_FIELDS)
        assert (rows[key]["site_id"], rows[key]["time_zone"]) == ("1", "Europe/Paris")
    # the GA4 campaign channels' mediums, lower-case as Matomo stores them
    assert {m for _, m in rows} == {"cpc", "display", "email", "paid_social"}
    # per day, every additive field adds up to the campaign referrer type's row
    campaign = {r["date"]: r for r in got[REFERRERS.table].to_pylist() if r["referrer_type"] == "campaign"}
    for day in WINDOW.dates():
        truth = world.matomo_day("1", day).by_referrer_type["campaign"]
        for f in MEDIUM_FIELDS:
            total = sum(r[f] for (d, _), r in rows.items() if d == day)
            assert total == getattr(truth, f) == campaign[day][f]
    # a hand check of one day: 2026-03-04 splits 916 campaign visits into cpc 579, email 200, paid_social 92,
    # display 45 (GA4's Paid Search/Shopping/Cross-network, Email, Paid Social and Display sessions)
    assert {m: r["nb_visits"] for (d, m), r in rows.items() if d == date(2026, 3, 4)} == {
        "cpc": 579, "email": 200, "paid_social": 92, "display": 45}
    assert conn.campaign_plugin_status() == "present"


def test_without_the_plugin_no_rows_are_loaded_nothing_is_lost_and_the_run_goes_on(world, tmp_path):
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as warehouse:
        with MatomoServer(world, token=TOKEN) as server:
            load_batches(warehouse, connector(server.url).fetch(WINDOW))
        before = warehouse.execute("SELECT count(*), sum(nb_visits) FROM matomo.campaign_mediums").fetchone()
        with MatomoServer(world, token=TOKEN, campaign_plugin=False) as server:
            conn = connector(server.url)
            result = load_batches(warehouse, conn.fetch(WINDOW))
            (logged,) = server.matomo_requests
        after = warehouse.execute("SELECT count(*), sum(nb_visits) FROM matomo.campaign_mediums").fetchone()
        visits = warehouse.execute("SELECT count(*) FROM matomo.visits_summary").fetchone()
    assert "MarketingCampaignsReporting.getMedium" in [b["method"] for b in logged.bulk_requests]
    assert conn.campaign_plugin_status() == "absent"
    assert result.rows_by_table.get(CAMPAIGN_MEDIUMS.table, 0) == 0
    assert visits == (WINDOW.days,)  # the other reports loaded as usual
    expected_visits = sum(v.nb_visits for day in WINDOW.dates()
                          for v in world.matomo_day("1", day).campaign_mediums.values())
    assert before[1] == expected_visits
    assert after == before  # the rows loaded while the plugin was there are kept


def test_asset_metadata_says_whether_the_plugin_is_there(world, tmp_path, monkeypatch):
    from pipelines.components.source_assets import source_asset
    from pipelines.lib.resources import MatomoResource, WarehouseResource

    matomo_reports = source_asset("matomo", "matomo.campaign_mediums")  # the one step of every Matomo table

    for present, status in ((True, "present"), (False, "absent")):
        with MatomoServer(world, token=TOKEN, campaign_plugin=present) as server:
            monkeypatch.setenv("MKPI_MATOMO_URL", server.url + "/")
            monkeypatch.setenv("MKPI_MATOMO_SITE_IDS", "1")
            result = dg.materialize([matomo_reports], partition_key="2026-03-04", resources={
                "matomo": MatomoResource(token=TOKEN), "warehouse": WarehouseResource(database=str(tmp_path / "w.db"))})
        assert result.success
        events = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
        metadata = events[dg.AssetKey(["matomo", "campaign_mediums"])]
        assert metadata["campaign_plugin"].value == status
        expected_rows = len(world.matomo_day("1", date(2026, 3, 4)).campaign_mediums) if present else 0
        assert metadata["dagster/row_count"].value == expected_rows


def test_channel_mapping_maps_campaign_to_campaign_tagged_and_mediums_to_channels():
    channels = load_settings().channels
    assert channels["matomo"]["campaign"] == "campaign_tagged"
    mediums = channels["matomo_campaign_medium"]
    # every medium the sandbox serves has a channel, as the catalogue's vocabulary names them
    assert {m: mediums[m] for m in ("cpc", "email", "display", "paid_social")} == {
        "cpc": "paid_search", "email": "email", "display": "paid_other", "paid_social": "paid_other"}
    assert mediums["newsletter"] == "email" and mediums["ppc"] == "paid_search" and mediums["social"] == "social"
    vocabulary = {"organic_search", "paid_search", "paid_other", "email", "referral", "direct", "social",
                  "campaign_tagged", "other"}
    assert set(mediums.values()) <= vocabulary
    assert all(m == m.lower() for m in mediums)  # Matomo stores mediums lower-case
