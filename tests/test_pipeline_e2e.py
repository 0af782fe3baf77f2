"""End to end through Dagster: sandbox servers -> connectors -> DuckDB -> KPI tables, one range run.

KPI values are computed here independently from the sandbox world's facts (the channel mapping is
spelled out below), never read back from the pipeline's SQL. The 14-day run is made once for the module
(`e2e`) and read by every test; the tests that run again (idempotence, a bad property) work on their own file.
"""

import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import defs
from pipelines.defs.schedules import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    REFRESHES,
    SOURCE_TAG,
    daily_refresh,
    refresh_window,
)
from sandbox.matomo_server import goal_figures
from sandbox.world import DEFAULT_GSC_SITE, US_ADS_CUSTOMER_ID, World
from tests.ecb import eur_per
from tests.isolation import isolated_env
from tests.sandboxes import start_servers

TODAY = date(2026, 3, 31)
PROPERTY = "123456789"
START, END = date(2026, 3, 1), date(2026, 3, 14)
# GA4 default channel group -> our channel vocabulary, as the KPI catalogue asks.
CHANNEL_OF = {
    "Organic Search": "organic_search", "Paid Search": "paid_search", "Paid Shopping": "paid_search",
    "Direct": "direct", "Email": "email", "Referral": "referral", "Organic Social": "social",
    "Paid Social": "paid_other", "Display": "paid_other", "Cross-network": "paid_other", "Unassigned": "other",
}


SERVERS = ("ga4", "gsc", "matomo", "google_ads")


@dataclass(frozen=True)
class E2E:
    """The module's one 14-day run: the world it read, its sandbox, its DuckDB file, its result and the requests
    each server counted during that run (counted right after it, whatever the tests run later)."""

    world: World
    env: dict[str, str]
    db: Path
    result: dg.ExecuteInProcessResult
    requests: dict[str, int]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    world = World(seed=11, today=TODAY)
    tmp = tmp_path_factory.mktemp("e2e")
    db = tmp / "e2e.duckdb"
    with start_servers(world) as running:  # daily_refresh_job reads no HubSpot table: its portal is not built
        with isolated_env(tmp) as mp:
            for name, value in running.env.items():
                mp.setenv(name, value)
            mp.setenv("MKPI_DUCKDB_PATH", str(db))
            result = run_range(START, END)
        requests = {name: running.server(name).request_count for name in SERVERS}
        yield E2E(world, dict(running.env), db, result, requests)


def use_sandbox(e2e: E2E, monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    """Point this test's runs at the module's sandbox and at its own DuckDB file."""
    for name, value in e2e.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(db))


PUBLISH = {dg.AssetKey(["publish", "analyst_copy"]), dg.AssetKey(["publish", "dashboard"])}


def run_range(start: date, end: date, source: str | None = None, publish: bool = True) -> dg.ExecuteInProcessResult:
    """A range run of every report source, or of one source's refresh (its raw tables, the KPI tables built from
    them and the publish: what the morning schedule runs per source). Without `publish`, the refresh stops at the
    working file's tables: for a test that reads nothing else (the two files the publish writes cost ~20% of a
    GA4 refresh's CPU)."""
    job = defs.resolve_job_def("daily_refresh_job")
    selection = None if source is None else next(r for r in REFRESHES if r.source == source).asset_keys()
    if selection is not None and not publish:
        selection = [key for key in selection if key not in PUBLISH]
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
        asset_selection=selection,
        raise_on_error=False,
    )


def expected_web_daily(world: World, start: date, end: date) -> dict[tuple[date, str], dict[str, float]]:
    parts: dict[tuple[date, str], dict[str, float]] = {}
    day = start
    while day <= end:
        for fact in world.ga4_facts(PROPERTY, day):
            key = (day, CHANNEL_OF.get(fact.dims["sessionDefaultChannelGroup"], "other"))
            acc = parts.setdefault(key, {"sessions": 0, "engaged": 0, "converting": 0, "duration": 0,
                                         "engagement": 0})
            acc["sessions"] += fact.metrics["sessions"]
            acc["engaged"] += fact.metrics["engagedSessions"]
            acc["converting"] += fact.metrics["convertingSessions"]
            acc["duration"] += fact.metrics["sessionDuration"]
            acc["engagement"] += fact.metrics["userEngagementDuration"]
        day = date.fromordinal(day.toordinal() + 1)
    return parts


def test_range_run_materialises_raw_and_kpis_with_correct_values(e2e):
    world, db, result = e2e.world, e2e.db, e2e.result
    assert result.success
    # the whole 14-day range in one request per report per account: 2 GA4 reports per property, 5 Search Console
    # streams, 1 Matomo bulk request; GA4's cart funnel is one request per property and day (a funnel over a window
    # would follow users across days), plus one for the property's time zone
    properties = len(world.ga4_properties)
    assert e2e.requests["ga4"] == 2 * properties + 14 * properties + properties
    assert e2e.requests["gsc"] == 5
    assert e2e.requests["matomo"] == 1
    assert e2e.requests["google_ads"] == 2  # one search_stream per customer
    checks = result.get_asset_check_evaluations()
    assert all(c.passed for c in checks if c.severity == dg.AssetCheckSeverity.ERROR)
    assert {c.asset_key.to_user_string() for c in checks} >= {
        "ga4/traffic_by_channel", "search_console/site_totals", "matomo/referrer_types", "google_ads/campaign_daily",
        "kpi/web_daily", "kpi/seo_daily", "kpi/ecommerce_daily", "kpi/paid_search_daily", "kpi/kpi_daily"}
    warnings = {c.check_name for c in checks if not c.passed}
    assert warnings <= {"kpis_without_objective"}  # a warning: the example objectives cover a few KPIs only

    expected = expected_web_daily(world, START, END)
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "SELECT date, channel, sessions, engagement_rate, bounce_rate, conversion_rate, avg_session_duration, "
            "avg_engagement_time FROM kpi.web_daily WHERE source = 'ga4' AND account_id = ?", [PROPERTY]).fetchall()
        accounts = {r[0] for r in conn.execute("SELECT DISTINCT account_id FROM kpi.web_daily WHERE source = 'ga4'"
                                               ).fetchall()}
    assert accounts == set(world.ga4_properties)  # the second property has rows of its own, never summed in
    assert {(r[0], r[1]) for r in rows} == set(expected)
    for day, channel, sessions, engagement, bounce, conversion, duration, engaged_time in rows:
        e = expected[(day, channel)]
        assert sessions == e["sessions"]
        assert engagement == pytest.approx(e["engaged"] / e["sessions"])
        assert bounce == pytest.approx((e["sessions"] - e["engaged"]) / e["sessions"])
        assert conversion == pytest.approx(e["converting"] / e["sessions"])
        assert duration == pytest.approx(e["duration"] / e["sessions"])  # GA4's session length per session
        assert engaged_time == pytest.approx(e["engagement"] / e["sessions"])


def test_seo_daily_uses_by_property_totals_not_page_rows(e2e):
    world, db = e2e.world, e2e.db
    assert e2e.result.success
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT date, search_clicks, search_impressions, search_ctr, search_avg_position "
                            "FROM kpi.seo_daily WHERE site_url = ? AND search_type = 'web' ORDER BY date",
                            [DEFAULT_GSC_SITE]).fetchall()
    assert [r[0] for r in rows] == [date.fromordinal(START.toordinal() + i) for i in range(14)]
    for day, clicks, impressions, ctr, position in rows:
        truth = world.gsc_day(DEFAULT_GSC_SITE, day)
        assert (clicks, impressions) == (truth.clicks, truth.impressions)
        assert ctr == pytest.approx(truth.clicks / truth.impressions)
        assert position == pytest.approx(truth.position)
        # what summing page rows would (wrongly) give differs
        page_impressions = sum(p.impressions for p in truth.pages)
        page_position = sum(p.position * p.impressions for p in truth.pages) / page_impressions
        assert ctr != pytest.approx(sum(p.clicks for p in truth.pages) / page_impressions, rel=1e-3)
        assert position != pytest.approx(page_position, rel=1e-3)
    # a 14-day figure is re-weighted from the stored parts, not averaged
    with duckdb.connect(str(db), read_only=True) as conn:
        two_weeks = conn.execute("SELECT sum(position_x_impressions) / sum(search_impressions) FROM kpi.seo_daily"
                                 ).fetchone()[0]
    days = [world.gsc_day(DEFAULT_GSC_SITE, r[0]) for r in rows]
    assert two_weeks == pytest.approx(sum(d.position * d.impressions for d in days) / sum(d.impressions for d in days))


MATOMO_CHANNEL_OF = {"direct": "direct", "search": "organic_search", "website": "referral", "social": "social",
                     "campaign": "campaign_tagged"}
# campaign mediums (MarketingCampaignsReporting) -> channel, as config/mkpi.yaml maps them
MEDIUM_CHANNEL_OF = {"cpc": "paid_search", "email": "email", "display": "paid_other", "paid_social": "paid_other"}


def test_matomo_rows_sit_beside_ga4_with_matomos_own_definitions(e2e):
    world, db = e2e.world, e2e.db
    assert e2e.result.success
    day = date(2026, 3, 5)
    expected: dict[str, dict[str, int]] = {}
    mday = world.matomo_day("1", day)

    def add(channel: str, visits, sign: int = 1) -> None:
        acc = expected.setdefault(channel, {"v": 0, "b": 0, "c": 0, "l": 0})
        acc["v"] += sign * visits.nb_visits
        acc["b"] += sign * visits.bounce_count
        acc["c"] += sign * visits.nb_visits_converted
        acc["l"] += sign * visits.sum_visit_length

    for referrer_type, visits in mday.by_referrer_type.items():
        add(MATOMO_CHANNEL_OF[referrer_type], visits)
    # the campaign type's visits, split by medium through the mapping; the rest stays campaign_tagged
    assert mday.campaign_mediums
    for medium, visits in mday.campaign_mediums.items():
        add(MEDIUM_CHANNEL_OF[medium], visits)
        add("campaign_tagged", visits, -1)
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT channel, sessions, bounce_rate, conversion_rate, avg_session_duration, "
                            "engagement_rate FROM kpi.web_daily WHERE source = 'matomo' AND date = ?", [day]).fetchall()
    assert {r[0] for r in rows} == {c for c, e in expected.items() if e["v"]}
    for channel, sessions, bounce, conversion, duration, engagement in rows:
        e = expected[channel]
        assert sessions == e["v"]
        assert bounce == pytest.approx(e["b"] / e["v"])  # visits with one action, not GA4's non-engaged
        assert conversion == pytest.approx(e["c"] / e["v"])
        assert duration == pytest.approx(e["l"] / e["v"])
        assert engagement is None  # Matomo has no engaged sessions: never borrowed from GA4


def test_ecommerce_daily_per_source(e2e):
    world, db = e2e.world, e2e.db
    assert e2e.result.success
    day = date(2026, 3, 9)
    facts = world.ga4_facts(PROPERTY, day)
    orders = sum(f.metrics["ecommercePurchases"] for f in facts)
    revenue = sum(f.metrics["purchaseRevenue"] for f in facts)
    cart_users = sum(f.metrics["cartUsers"] for f in facts)  # the closed funnel add_to_cart -> purchase
    purchasers = sum(f.metrics["cartPurchasers"] for f in facts)
    sessions = sum(f.metrics["sessions"] for f in facts)
    mday = world.matomo_day("1", day)
    _, goals = goal_figures(world, mday)
    with duckdb.connect(str(db), read_only=True) as conn:
        got = {r[0]: r[1:] for r in conn.execute(
            "SELECT source, currency_code, orders, revenue, average_basket, cart_abandonment_rate, "
            "ecommerce_conversion_rate FROM kpi.ecommerce_daily WHERE date = ? AND account_id IN (?, '1')",
            [day, PROPERTY]).fetchall()}
    assert got["ga4"] == pytest.approx(("EUR", orders, revenue, revenue / orders,
                                        (cart_users - purchasers) / cart_users, orders / sessions))
    eco = mday.ecommerce
    assert got["matomo"] == pytest.approx((
        "EUR", eco.orders, eco.revenue, eco.revenue / eco.orders,
        eco.abandoned_carts / (eco.abandoned_carts + goals.order_visits),  # carts / (carts + visits with an order)
        eco.orders / mday.summary.nb_visits,
    ))


def test_paid_search_daily_per_campaign_in_its_own_currency(e2e):
    world, db = e2e.world, e2e.db
    assert e2e.result.success
    customers = world.ads_customers()
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "SELECT date, account_id, campaign_id, currency_code, ad_cost, ad_clicks, ad_impressions, ad_conversions, "
            "ad_ctr, ad_cpc, ad_cpa, ad_roas, ad_conversion_rate FROM kpi.paid_search_daily").fetchall()
        currencies = conn.execute("SELECT DISTINCT customer_id, currency_code FROM kpi.paid_search_daily").fetchall()
    assert dict(currencies) == {cid: c.currency_code for cid, c in customers.items()}
    assert len({r[3] for r in rows}) == 2  # EUR and USD rows side by side, never summed together
    truth = {(day, cid, int(c.campaign_id)): c for cid in customers for day in (date.fromordinal(START.toordinal() + i)
             for i in range(14)) for c in world.ads_campaign_day(cid, day) if c.impressions}
    assert {(r[0], r[1], r[2]) for r in rows} == set(truth)
    for day, cid, campaign, _, cost, clicks, impressions, conversions, ctr, cpc, cpa, roas, conv_rate in rows:
        c = truth[(day, cid, campaign)]
        expected_cost = c.cost_micros / 1e6
        assert cost == pytest.approx(expected_cost) and clicks == c.clicks and impressions == c.impressions
        assert conversions == pytest.approx(c.conversions)
        assert ctr == pytest.approx(c.clicks / c.impressions)
        assert cpc == (pytest.approx(expected_cost / c.clicks) if c.clicks else None)
        assert cpa == (pytest.approx(expected_cost / c.conversions) if c.conversions else None)
        assert roas == (pytest.approx(c.conversions_value / expected_cost) if c.cost_micros else None)
        # Google's definition: conversions per interaction (more than the clicks for Display and Performance Max)
        assert conv_rate == (pytest.approx(c.conversions / c.interactions) if c.interactions else None)


def test_materialisation_metadata_names_table_window_rows_and_schema(e2e):
    world, result = e2e.world, e2e.result
    materialisations = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    meta = materialisations["ga4/traffic_by_channel"].materialization.metadata
    assert meta["dagster/table_name"].value == "ga4.traffic_by_channel"
    assert meta["window_start"].value == START.isoformat() and meta["window_end"].value == END.isoformat()
    assert meta["dagster/row_count"].value > 0
    assert "sessions" in [c.name for c in meta["dagster/column_schema"].schema.columns]
    assert meta["requests"].value == len(world.ga4_properties)  # one request per property for the whole window


def test_running_the_same_range_again_changes_nothing(e2e, monkeypatch, tmp_path):
    assert e2e.result.success
    db = tmp_path / "again.duckdb"  # a copy of the module's file: the other tests read the first run's
    for suffix in ("", ".wal"):
        if Path(f"{e2e.db}{suffix}").exists():
            shutil.copyfile(f"{e2e.db}{suffix}", f"{db}{suffix}")
    use_sandbox(e2e, monkeypatch, db)

    def snapshot():
        with duckdb.connect(str(db), read_only=True) as conn:
            raw = conn.execute("SELECT * EXCLUDE (_loaded_at, _window_start, _window_end) "
                               "FROM ga4.traffic_by_channel ORDER BY ALL").fetchall()
            kpi = conn.execute("SELECT * FROM kpi.web_daily ORDER BY ALL").fetchall()
        return raw, kpi

    first = snapshot()
    # GA4's refresh (its raw tables, web_daily and the rest downstream), the tables compared: the other sources'
    # runs would read again what this test does not look at, nor does it read the published files
    assert run_range(START, END, "ga4", publish=False).success
    assert run_range(date(2026, 3, 12), END, "ga4", publish=False).success  # an overlapping re-read window
    assert snapshot() == first


def test_unknown_property_fails_the_run_naming_it_and_writes_nothing_for_it(e2e, monkeypatch, tmp_path):
    # issue #10: one bad property fails the step, named, but does not stop the good one from loading
    world, db = e2e.world, tmp_path / "bad-property.duckdb"
    use_sandbox(e2e, monkeypatch, db)
    monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", f"{PROPERTY},999")
    # GA4's refresh: the other sources have nothing to do with it, nor the published files (the working file's rows
    # are what is checked; a failing source's published rows are test_source_isolation's)
    result = run_range(START, END, "ga4", publish=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error.to_string()
    assert "ga4 account 999" in error and "Property properties/999 was not found" in error
    days = [date.fromordinal(START.toordinal() + i) for i in range((END - START).days + 1)]
    cells = {(d, f.dims["sessionDefaultChannelGroup"]) for d in days for f in world.ga4_facts(PROPERTY, d)}
    with duckdb.connect(str(db)) as conn:
        rows = dict(conn.execute("SELECT property_id, count(*) FROM ga4.traffic_by_channel GROUP BY ALL").fetchall())
    assert rows == {PROPERTY: len(cells)}  # the good property loaded, nothing for 999


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_schedule_def("daily_refresh")


def test_schedule_rereads_each_sources_trailing_window_ending_yesterday(monkeypatch):
    monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", PROPERTY)
    monkeypatch.setenv("MKPI_SEARCH_CONSOLE_SITES", DEFAULT_GSC_SITE)
    monkeypatch.setenv("MKPI_MATOMO_URL", "https://matomo.example/")
    monkeypatch.setenv("MKPI_MATOMO_SITE_IDS", "1")
    monkeypatch.setenv("MKPI_GOOGLE_ADS_CUSTOMER_IDS", "123-456-7890")
    paris = ZoneInfo("Europe/Paris")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 10, 6, 0, tzinfo=paris))
    requests = {r.tags[SOURCE_TAG]: r for r in daily_refresh(context)}
    windows = {source: (r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for source, r in requests.items()}
    assert windows == {"ga4": ("2026-03-07", "2026-03-09"), "search_console": ("2026-03-06", "2026-03-09"),
                       "matomo": ("2026-03-07", "2026-03-09"), "google_ads": ("2026-02-08", "2026-03-09")}
    selected = {source: {k.to_user_string() for k in r.asset_selection} for source, r in requests.items()}
    downstream = {"kpi/kpi_daily", "kpi/reconciliation", "kpi/kpi_vs_objective", "publish/analyst_copy",
                  "publish/dashboard"}
    assert selected["search_console"] == {"search_console/site_totals", "search_console/pages",
                                          "search_console/queries", "search_console/devices",
                                          "search_console/countries", "kpi/seo_daily", *downstream}
    assert {"ga4/traffic_by_channel", "kpi/web_daily", "kpi/ecommerce_daily"} <= selected["ga4"]
    assert "kpi/seo_daily" not in selected["ga4"]
    assert {"matomo/referrer_types", "kpi/web_daily", "kpi/ecommerce_daily"} <= selected["matomo"]
    assert selected["google_ads"] == {"google_ads/campaign_daily", "kpi/paid_search_daily", *downstream}


def test_schedule_skips_unconfigured_sources(monkeypatch):
    monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", PROPERTY)
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 10, 6, 0, tzinfo=ZoneInfo("UTC")))
    assert [r.tags[SOURCE_TAG] for r in daily_refresh(context)] == ["ga4"]
    monkeypatch.delenv("MKPI_GA4_PROPERTY_IDS")
    assert isinstance(daily_refresh(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 10, 6, 0, tzinfo=ZoneInfo("UTC")))), dg.SkipReason)


def test_refresh_window_edges():
    assert refresh_window(date(2026, 3, 10), 1, date(2024, 1, 1)) == (date(2026, 3, 9), date(2026, 3, 9))
    assert refresh_window(date(2024, 1, 2), 3, date(2024, 1, 1)) == (date(2024, 1, 1), date(2024, 1, 1))


SECOND_PROPERTY = "234567890"  # a small second brand: some days have sessions and no e-commerce event at all


def test_a_day_without_ecommerce_keeps_its_sessions_in_the_conversion_rate(e2e):
    """GA4 leaves out the all-zero e-commerce row (rule 10): the day still counts its sessions, with 0 orders."""
    world, db = e2e.world, e2e.db
    assert e2e.result.success
    days = [date.fromordinal(START.toordinal() + i) for i in range(14)]
    truth = {d: (sum(f.metrics["sessions"] for f in world.ga4_facts(SECOND_PROPERTY, d)),
                 sum(f.metrics["ecommercePurchases"] for f in world.ga4_facts(SECOND_PROPERTY, d)),
                 sum(f.metrics["addToCarts"] + f.metrics["checkouts"] + f.metrics["ecommercePurchases"]
                     + f.metrics["purchaseRevenue"] for f in world.ga4_facts(SECOND_PROPERTY, d))) for d in days}
    quiet = [d for d, (_, _, activity) in truth.items() if activity == 0]
    assert quiet, "the sandbox world must have a day with sessions and no e-commerce event"
    with duckdb.connect(str(db), read_only=True) as conn:
        raw = {r[0] for r in conn.execute("SELECT date FROM ga4.ecommerce_by_date WHERE property_id = ?",
                                          [SECOND_PROPERTY]).fetchall()}
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT date, sessions, orders FROM kpi.ecommerce_daily WHERE account_id = ?", [SECOND_PROPERTY]
        ).fetchall()}
        month = conn.execute("SELECT sum(numerator), sum(denominator) FROM kpi.kpi_daily WHERE kpi = "
                             "'ecommerce_conversion_rate' AND account_id = ?", [SECOND_PROPERTY]).fetchone()
    assert not raw & set(quiet)  # GA4 sent no row for those days ...
    assert {d: rows[d] for d in quiet} == {d: (truth[d][0], 0) for d in quiet}  # ... yet their sessions count
    # the two weeks' rate: every order over every session, quiet days included
    assert month == (pytest.approx(sum(t[1] for t in truth.values())), pytest.approx(sum(t[0] for t in truth.values())))


def test_usd_spend_is_converted_at_each_days_ecb_rate(e2e):
    """The US test account spends in USD: every day of the range at that day's ECB reference rate (rates move
    every business day; weekends take Friday's), read here from the ECB's own CSV."""
    world, db = e2e.world, e2e.db
    assert e2e.result.success
    customer = US_ADS_CUSTOMER_ID
    assert world.ads_customers()[customer].currency_code == "USD"
    days = [date.fromordinal(START.toordinal() + i) for i in range(14)]
    expected = {d: sum(c.cost_micros for c in world.ads_campaign_day(customer, d)) / 1e6 * eur_per("USD", d)
                for d in days}
    with duckdb.connect(str(db), read_only=True) as conn:
        got = dict(conn.execute("SELECT date, numerator FROM kpi.kpi_daily WHERE kpi = 'ad_cost' AND account_id = ?",
                                [customer]).fetchall())
        rates = conn.execute("SELECT count(DISTINCT rate) FROM kpi.fx_rate WHERE currency = 'USD' AND date BETWEEN ? "
                             "AND ?", [START, END]).fetchone()[0]
    assert got == {d: pytest.approx(v) for d, v in expected.items() if v}
    assert rates > 5  # the rate changed within the range: one rate for all days would be wrong
