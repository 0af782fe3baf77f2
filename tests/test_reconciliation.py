"""Cross-source reconciliation on the sandbox (issue #24): the daily ratios equal the world's, and a controlled
tracking gap (GA4's tag on half the pages for two days) sends every pair that reads GA4 out of its band on exactly
those two days, with a warning naming them and the likely causes."""

from datetime import date

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import defs
from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG
from sandbox.world import DEFAULT_GSC_SITE, Incident, World
from tests.isolation import refresh_of
from tests.sandboxes import start_servers

START, END = date(2026, 3, 5), date(2026, 3, 12)
GAP = (date(2026, 3, 9), date(2026, 3, 10))
PROPERTY = "123456789"


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory):
    world = World(seed=13, today=date(2026, 3, 31),
                  incidents=[Incident("tracking_break", PROPERTY, GAP[0], GAP[1], factor=0.5)])
    db = tmp_path_factory.mktemp("reconciliation") / "work.duckdb"
    # the refresh of the four sources the pairs read (GA4, Matomo, Search Console, Google Ads: `refresh_of`), so no
    # HubSpot portal is built and no social source is read (their steps were a third of the run's CPU and no pair
    # reads them); no published file either (the publish left out): the reconciliation's rows and checks are the
    # working file's
    with start_servers(world) as running, pytest.MonkeyPatch.context() as mp:
        for name, value in running.env.items():
            mp.setenv(name, value)
        mp.setenv("MKPI_DUCKDB_PATH", str(db))
        mp.setenv("MKPI_ANALYST_DB", str(db.with_name("kpis.duckdb")))
        mp.setenv("MKPI_DASHBOARD_PATH", str(db.with_name("dashboard.html")))
        job = defs.resolve_job_def("daily_refresh_job")
        result = job.execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
            asset_selection=refresh_of("ga4", "matomo", "search_console", "google_ads"),
            tags={RANGE_START_TAG: START.isoformat(), RANGE_END_TAG: END.isoformat()})
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT check_name, date, value_a, value_b, ratio, in_band FROM kpi.reconciliation "
                            "WHERE site = 'shop'").fetchall()
    return world, result, {(r[0], r[1]): r[2:] for r in rows}


def test_ratios_are_the_worlds(reconciled):
    world, result, rows = reconciled
    assert result.success
    day = date(2026, 3, 6)
    ga4 = sum(f.metrics["sessions"] for f in world.ga4_facts(PROPERTY, day))
    matomo = world.matomo_day("1", day).summary.nb_visits
    assert rows[("ga4_sessions_per_matomo_visit", day)][:3] == (ga4, matomo, pytest.approx(ga4 / matomo))
    clicks = world.gsc_day(DEFAULT_GSC_SITE, day).clicks
    organic = sum(f.metrics["sessions"] for f in world.ga4_facts(PROPERTY, day)
                  if f.dims["sessionDefaultChannelGroup"] == "Organic Search")
    assert rows[("search_console_clicks_per_ga4_organic_session", day)][:3] == (clicks, organic,
                                                                                 pytest.approx(clicks / organic))
    ads = sum(c.clicks for c in world.ads_campaign_day("1234567890", day)
              if c.advertising_channel_type in ("SEARCH", "SHOPPING"))
    paid = sum(f.metrics["sessions"] for f in world.ga4_facts(PROPERTY, day)
               if f.dims["sessionDefaultChannelGroup"] in ("Paid Search", "Paid Shopping"))
    assert rows[("ga4_paid_search_sessions_per_ads_click", day)][:3] == (paid, ads, pytest.approx(paid / ads))


def test_a_tracking_gap_leaves_the_band_on_exactly_its_days(reconciled):
    _, result, rows = reconciled
    days = {d for _, d in rows}
    assert days == {date.fromordinal(o) for o in range(START.toordinal(), END.toordinal() + 1)}
    for pair in ("ga4_sessions_per_matomo_visit", "ga4_paid_search_sessions_per_ads_click",
                 "ga4_orders_per_matomo_order", "search_console_clicks_per_ga4_organic_session"):
        outside = {d for (p, d), (*_, in_band) in rows.items() if p == pair and not in_band}
        assert outside == set(GAP), pair
    warnings = {c.check_name: c for c in result.get_asset_check_evaluations()
                if c.asset_key == dg.AssetKey(["kpi", "reconciliation"])}
    check = warnings["ga4_sessions_per_matomo_visit"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "2026-03-09" in check.description and "2026-03-10" in check.description
    assert "tag missing" in check.description  # the likely causes are named


def test_each_pair_is_a_trend_in_the_ui(reconciled):
    """The materialisation carries one float per site and pair (the window's ratio of sums) and its days out of
    band: Dagster plots numeric metadata across runs."""
    world, result, rows = reconciled
    # one materialisation per day of the window, each with the window's figures
    materializations = result.asset_materializations_for_node("kpi__reconciliation")
    assert len(materializations) == (END - START).days + 1
    metadata = {k: v.value for k, v in materializations[-1].metadata.items()}
    pair = "ga4_sessions_per_matomo_visit"
    days = [date.fromordinal(o) for o in range(START.toordinal(), END.toordinal() + 1)]
    ga4 = sum(sum(f.metrics["sessions"] for f in world.ga4_facts(PROPERTY, d)) for d in days)
    matomo = sum(world.matomo_day("1", d).summary.nb_visits for d in days)
    assert metadata[f"shop/{pair}"] == pytest.approx(ga4 / matomo, abs=1e-4)
    assert metadata[f"shop/{pair}/days_out_of_band"] == 2
