"""The unified KPI layer on hand-made rows: every catalogue KPI, FX conversion, roll-ups, partitions.

Per-channel KPI tables (kpi.web_daily, ...) are filled directly with small hand-chosen rows; HubSpot contacts go
in raw. Every expected value is worked out by hand in the comments, never read back from the code.
"""

from datetime import UTC, date, datetime

import pytest

from connectors.batches import Window
from connectors.warehouse import connect
from kpi_models.catalogue import CatalogueError, load_catalogue, parse_catalogue
from kpi_models.context import KpiContext
from kpi_models.fx import FxPolicy, refresh_fx_rates
from kpi_models.layer import create_rollup_views, rebuild_kpi_daily
from kpi_models.runner import MODELS, ensure_model_table, rebuild
from tests.rows import insert as insert_rows

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 9)  # Monday, Tuesday, next Monday
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 31))
TZ = "Europe/Paris"
# 1 USD = 0.92 EUR until March 2, 1.00 from March 3 (a rate change inside the month); JPY has no rate
FX = FxPolicy("EUR", "config", {"USD": ((date(2026, 1, 1), 0.92), (D2, 1.0))})
CHANNELS = {"hubspot": {"ORGANIC_SEARCH": "organic_search", "PAID_SEARCH": "paid_search"}}
CTX = KpiContext(tz=TZ, as_of=date(2026, 3, 31), channels=CHANNELS, fx=FX)


def insert(conn, table: str, rows: list[dict]) -> None:
    if table.startswith("kpi."):  # per-channel KPI rows: one account unless the row names its own; final, clean
        columns = {r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()}
        defaults = {"account_id": "acc1", "is_final": True, "quality": []}
        rows = [{k: v for k, v in {**defaults, **r}.items() if k in columns} for r in rows]
    insert_rows(conn, table, rows)


def utc(y, m, d, hh, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def web(day, source, channel, sessions, engaged, bounced, converting, duration, revenue=None):
    # GA4's engagement time is half its session duration here; Matomo has none; GA4 revenue in EUR
    return {"date": day, "source": source, "channel": channel, "sessions": sessions, "engaged_sessions": engaged,
            "bounced_sessions": bounced, "converting_sessions": converting, "session_duration_seconds": duration,
            "engagement_duration_seconds": duration / 2 if source == "ga4" else None, "revenue": revenue,
            "currency_code": "EUR" if revenue is not None else None}


def fill(conn) -> None:
    """The hand-made dataset (see the expectations in EXPECTED)."""
    for name in ("web_daily", "seo_daily", "paid_search_daily", "ecommerce_daily", "email_daily", "crm_monthly"):
        ensure_model_table(conn, name, CTX)
    insert(conn, "kpi.web_daily", [
        web(D1, "ga4", "organic_search", 100, 60, 40, 5, 6000.0, 500.0),
        web(D1, "ga4", "direct", 300, 90, 210, 30, 3000.0, 300.0),
        web(D1, "ga4", "paid_search", 50, 30, 20, 2, 2000.0, 365.0),
        web(D2, "ga4", "organic_search", 50, 40, 10, 4, 2500.0),
        web(D3, "ga4", "organic_search", 10, 5, 5, 1, 100.0),
        web(D1, "matomo", "organic_search", 80, None, 20, 2, 8000.0),
    ])
    insert(conn, "kpi.seo_daily", [
        {"date": D1, "source": "search_console", "channel": "organic_search", "site_url": "a", "account_id": "a",
         "search_type": "web", "search_clicks": 30, "search_impressions": 1000, "position_x_impressions": 5000.0,
         "positioned_impressions": 1000},
        {"date": D1, "source": "search_console", "channel": "organic_search", "site_url": "b", "account_id": "b",
         "search_type": "web", "search_clicks": 10, "search_impressions": 1000, "position_x_impressions": 15000.0,
         "positioned_impressions": 1000},
        # image search totals are another search type: never added to web
        {"date": D1, "source": "search_console", "channel": "organic_search", "site_url": "a", "account_id": "a",
         "search_type": "image", "search_clicks": 99, "search_impressions": 9900, "position_x_impressions": 1.0,
         "positioned_impressions": 9900},
    ])

    def ads(customer, campaign, currency, cost, clicks, impressions, conversions, value, interactions, day=D1):
        return {"date": day, "source": "google_ads", "channel": "paid_search", "customer_id": customer,
                "account_id": customer, "campaign_id": campaign, "currency_code": currency, "ad_cost": cost,
                "ad_clicks": clicks, "ad_impressions": impressions, "ad_conversions": conversions,
                "conversions_value": value, "ad_interactions": interactions}

    insert(conn, "kpi.paid_search_daily", [
        ads("111", 1, "EUR", 100.0, 200, 4000, 4.0, 500.0, 250),  # 50 interactions more than clicks (not Search)
        ads("222", 2, "USD", 50.0, 100, 1000, 1.0, 100.0, 100),  # 46 EUR cost, 92 EUR value (0.92 on D1)
        ads("333", 3, "JPY", 10000.0, 10, 10, 0.0, 0.0, 10),  # no JPY rate: left out entirely
        ads("222", 2, "USD", 20.0, 40, 400, 1.0, 30.0, 40, day=D2),  # 20 EUR cost (1.00 from D2)
    ])

    def shop(source, account, currency, orders, revenue, abandoned, carts, sessions):
        return {"date": D1, "source": source, "account_id": account, "channel": "all", "currency_code": currency,
                "orders": orders, "revenue": revenue, "abandoned_carts": abandoned, "carts": carts,
                "sessions": sessions}

    insert(conn, "kpi.ecommerce_daily", [
        shop("ga4", "p-eu", "EUR", 10, 700.0, 30, 40, 400),
        shop("ga4", "p-us", "USD", 5, 500.0, 5, 10, 100),  # 460 EUR
        shop("matomo", "1", "EUR", 8, 560.0, 12, 20, 80),
    ])
    counters = {"sent": 1000, "delivered": 950, "opened": 380, "clicked": 57, "bounced": 50, "unsubscribed": 19}
    ensure_model_table(conn, "social_daily", CTX)  # a LinkedIn page's day (issue #22): net gains, no losses
    insert(conn, "kpi.social_daily", [
        {"date": D1, "source": "linkedin", "channel": "social", "account_id": "100", "followers": 1000,
         "follower_gains": 5, "follower_growth": 5, "social_impressions": 400, "social_reach": 250,
         "social_engagements": 20, "social_shares": 2, "social_link_clicks": 8, "posts_published": 1},
    ])
    insert(conn, "kpi.email_daily", [
        {"date": D1, "source": "hubspot", "channel": "email", "email_id": "all", "account_id": "portal", **counters},
        # the per-e-mail row of the same send: must not be added to the day's total
        {"date": D1, "source": "hubspot", "channel": "email", "email_id": "e1", "account_id": "portal", **counters},
    ])
    ensure_model_table(conn, "crm_monthly", CTX)  # creates the raw hubspot.contacts table too
    insert(conn, "hubspot.contacts", [
        # 23:30 UTC on Mar 1 is 00:30 on Mar 2 in Paris: created D1 (reporting time zone), lead D1, customer D2
        {"id": "c1", "archived": False, "createdate": utc(2026, 3, 1, 23, 30), "hs_analytics_source": "ORGANIC_SEARCH",
         "hs_lifecyclestage_lead_date": utc(2026, 3, 2, 10), "hs_lifecyclestage_customer_date": utc(2026, 3, 3, 9)},
        # unknown source -> other
        {"id": "c2", "archived": False, "createdate": utc(2026, 3, 2, 12), "hs_analytics_source": "CARRIER_PIGEON"},
        # archived: left out
        {"id": "c3", "archived": True, "createdate": utc(2026, 3, 2, 12), "hs_analytics_source": "ORGANIC_SEARCH",
         "hs_lifecyclestage_lead_date": utc(2026, 3, 2, 12)},
        # 23:30 UTC on Mar 2 is Mar 3 in Paris: created and lead on D2
        {"id": "c4", "archived": False, "createdate": utc(2026, 3, 2, 23, 30), "hs_analytics_source": "PAID_SEARCH",
         "hs_lifecyclestage_lead_date": utc(2026, 3, 2, 23, 45)},
    ])
    rebuild(conn, "crm_daily", None, CTX)  # HubSpot's daily outcomes from the raw contacts
    insert(conn, "kpi.crm_monthly", [
        {"month": date(2026, 3, 1), "source": "hubspot", "channel": "all", "customers_at_start": 200,
         "customers_lost": 6, "customers_with_won_deal": 50, "repeat_customers": 10, "nps_responses": 40,
         "promoters": 20, "detractors": 6, "account_id": "portal"},
        {"month": date(2026, 3, 1), "source": "hubspot", "channel": "organic_search", "leads": 1,
         "account_id": "portal"},
    ])


@pytest.fixture
def conn(tmp_path):
    """A fresh build, for tests that change it."""
    with connect(tmp_path / "layer.duckdb") as c:
        fill(c)
        rebuild_kpi_daily(c, WINDOW, CTX)
        create_rollup_views(c)
        yield c


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One shared build for the read-only tests (keeps the suite fast)."""
    with connect(tmp_path_factory.mktemp("layer") / "layer.duckdb") as c:
        fill(c)
        rebuild_kpi_daily(c, WINDOW, CTX)
        create_rollup_views(c)
        yield c


# (kpi, source, channel, date) -> (numerator, denominator, value), by hand from the rows in fill().
EXPECTED = {
    # web_daily: GA4 D1 organic 100 sessions, 60 engaged, 40 bounced, 5 converting, 6000 s; direct 300/90/210/30
    ("sessions", "ga4", "organic_search", D1): (100, None, 100),
    ("sessions", "matomo", "organic_search", D1): (80, None, 80),
    ("engagement_rate", "ga4", "direct", D1): (90, 300, 0.3),
    ("bounce_rate", "ga4", "organic_search", D1): (40, 100, 0.4),
    ("bounce_rate", "matomo", "organic_search", D1): (20, 80, 0.25),  # Matomo's own definition, kept apart
    ("conversion_rate", "ga4", "direct", D1): (30, 300, 0.1),
    ("conversion_rate", "matomo", "organic_search", D1): (2, 80, 0.025),
    ("avg_session_duration", "ga4", "organic_search", D1): (6000, 100, 60.0),
    ("avg_session_duration", "matomo", "organic_search", D1): (8000, 80, 100.0),
    ("avg_engagement_time", "ga4", "organic_search", D1): (3000, 100, 30.0),
    # HubSpot contacts, dated in Paris time: D1 c1 (organic) created + lead, c2 (other) created; D2 c4 (paid)
    # created + lead, c1 customer; c3 archived
    ("contacts_created", "hubspot", "organic_search", D1): (1, None, 1),
    ("contacts_created", "hubspot", "other", D1): (1, None, 1),
    ("contacts_created", "hubspot", "paid_search", D2): (1, None, 1),
    ("leads", "hubspot", "organic_search", D1): (1, None, 1),  # c3 (archived) not counted
    ("leads", "hubspot", "paid_search", D2): (1, None, 1),
    ("new_customers", "hubspot", "organic_search", D2): (1, None, 1),
    # SEO web only: clicks 30 + 10, impressions 1000 + 1000, position (5000 + 15000) / 2000 = 10
    ("search_clicks", "search_console", "organic_search", D1): (40, None, 40),
    ("search_impressions", "search_console", "organic_search", D1): (2000, None, 2000),
    ("search_ctr", "search_console", "organic_search", D1): (40, 2000, 0.02),
    ("search_avg_position", "search_console", "organic_search", D1): (20000, 2000, 10.0),
    # Google Ads (customers summed): EUR 100 + USD 50 x 0.92 = 146 EUR; the JPY customer has no rate, so it is left
    # out of the money KPIs only (its clicks are clicks): clicks 200 + 100 + 10, impressions 4000 + 1000 + 10,
    # conv 5, interactions 250 + 100 + 10, value 500 + 100 x 0.92 = 592 EUR; CPC and CPA over the converted rows
    ("ad_cost", "google_ads", "paid_search", D1): (146, None, 146),
    ("ad_clicks", "google_ads", "paid_search", D1): (310, None, 310),
    ("ad_impressions", "google_ads", "paid_search", D1): (5010, None, 5010),
    ("ad_conversions", "google_ads", "paid_search", D1): (5, None, 5),
    ("ad_ctr", "google_ads", "paid_search", D1): (310, 5010, 310 / 5010),
    ("ad_cpc", "google_ads", "paid_search", D1): (146, 300, 146 / 300),  # 0.4867 EUR
    ("ad_cpa", "google_ads", "paid_search", D1): (146, 5, 29.2),
    ("ad_roas", "google_ads", "paid_search", D1): (592, 146, 592 / 146),  # 4.05
    ("ad_conversion_rate", "google_ads", "paid_search", D1): (5, 360, 5 / 360),  # per interaction, not click
    # E-mail, day total only: sent 1000, delivered 950, open 380, click 57, bounce 50, unsubscribed 19
    ("email_deliverability_rate", "hubspot", "email", D1): (950, 1000, 0.95),
    ("email_open_rate", "hubspot", "email", D1): (380, 950, 0.4),
    ("email_click_rate", "hubspot", "email", D1): (57, 950, 0.06),
    ("email_click_to_open_rate", "hubspot", "email", D1): (57, 380, 0.15),
    ("email_bounce_rate", "hubspot", "email", D1): (50, 1000, 0.05),
    ("email_unsubscribe_rate", "hubspot", "email", D1): (19, 950, 0.02),
    # E-commerce GA4: EUR (10 orders, 700) + USD (5 orders, 500 x 0.92 = 460): 15 orders, 1160 EUR, basket
    # 77.33; carts 35 abandoned of 50; 15 orders / 500 sessions. Matomo: 8 orders, 560 EUR, 12/20, 8/80.
    ("orders", "ga4", "all", D1): (15, None, 15),
    ("orders", "matomo", "all", D1): (8, None, 8),
    ("revenue", "ga4", "all", D1): (1160, None, 1160),
    ("revenue", "matomo", "all", D1): (560, None, 560),
    ("average_basket", "ga4", "all", D1): (1160, 15, 1160 / 15),
    ("average_basket", "matomo", "all", D1): (560, 8, 70.0),
    ("cart_abandonment_rate", "ga4", "all", D1): (35, 50, 0.7),  # both properties summed
    ("cart_abandonment_rate", "matomo", "all", D1): (12, 20, 0.6),
    ("ecommerce_conversion_rate", "ga4", "all", D1): (15, 500, 0.03),
    ("ecommerce_conversion_rate", "matomo", "all", D1): (8, 80, 0.1),
    # Marketing return (spend joined to outcomes, account 'all'). Spend on D1, paid_search: 100 EUR + 50 USD x 0.92
    # = 146 EUR (JPY has no rate); on D2: 20 USD x 1.00 = 20 EUR. GA4 revenue by session channel on D1: paid_search
    # 365 EUR -> ROI (365 - 146) / 146 = 1.5, ROAS 365 / 146 = 2.5. HubSpot (by original source): D2 paid_search has
    # c4's lead and no won deal -> cost per lead 20 / 1, ROI (0 - 20) / 20 = -1; D2 organic: c1 became a customer,
    # no spend -> CAC 0 / 1 = 0. Paid share of sessions on D1: direct has none of its 300 sessions paid.
    ("marketing_roi", "ga4", "paid_search", D1): (219, 146, 1.5),
    ("blended_roas", "ga4", "paid_search", D1): (365, 146, 2.5),
    ("cost_per_lead", "hubspot", "paid_search", D2): (20, 1, 20.0),
    ("customer_acquisition_cost", "hubspot", "organic_search", D2): (0, 1, 0.0),
    ("marketing_roi", "hubspot", "paid_search", D2): (-20, 20, -1.0),
    ("paid_share_of_sessions", "ga4", "direct", D1): (0, 300, 0.0),
    # Social (LinkedIn page 100 on D1): a level, net growth, sums, distinct reach, engagements 20 / impressions 400
    ("followers", "linkedin", "social", D1): (1000, None, 1000),
    ("follower_growth", "linkedin", "social", D1): (5, None, 5),
    ("social_impressions", "linkedin", "social", D1): (400, None, 400),
    ("social_engagements", "linkedin", "social", D1): (20, None, 20),
    ("social_shares", "linkedin", "social", D1): (2, None, 2),
    ("social_link_clicks", "linkedin", "social", D1): (8, None, 8),
    ("posts_published", "linkedin", "social", D1): (1, None, 1),
    ("social_reach", "linkedin", "social", D1): (250, None, 250),
    ("social_engagement_rate", "linkedin", "social", D1): (20, 400, 0.05),
}
# Native monthly KPIs (kpi_monthly only): churn 6 / 200, loyalty 10 / 50, NPS (20 - 6) x 100 / 40 = 35.
EXPECTED_NATIVE = {
    "churn_rate": (6, 200, 0.03),
    "loyalty_rate": (10, 50, 0.2),
    "nps": (1400, 40, 35.0),
}
MONEY = {"ad_cost", "ad_cpc", "ad_cpa", "revenue", "average_basket", "cost_per_lead", "customer_acquisition_cost"}


def test_the_dataset_covers_every_catalogue_kpi():
    covered = {k[0] for k in EXPECTED} | set(EXPECTED_NATIVE)
    assert covered == set(load_catalogue().kpis)


@pytest.mark.parametrize("key", list(EXPECTED), ids=lambda k: f"{k[0]}-{k[1]}-{k[2]}")
def test_every_daily_kpi_by_hand(built, key):
    conn = built
    kpi, source, channel, day = key
    # one row per account; the source's total is the ratio of the summed parts
    row = conn.execute("SELECT sum(numerator), sum(denominator), any_value(currency), count(DISTINCT currency), "
                       "bool_and(is_final) FROM kpi.kpi_daily WHERE kpi = ? AND source = ? AND channel = ? "
                       "AND date = ?",
                       [kpi, source, channel, day]).fetchall()
    numerator, denominator, currency, currencies, final = row[0]
    assert currencies <= 1 and final is True
    value = numerator if denominator is None else numerator / denominator
    expected = EXPECTED[key]
    assert numerator == pytest.approx(expected[0])
    assert denominator == (None if expected[1] is None else pytest.approx(expected[1]))
    assert value == pytest.approx(expected[2])
    assert currency == ("EUR" if kpi in MONEY else None)


@pytest.mark.parametrize("kpi", list(EXPECTED_NATIVE))
def test_native_kpis_only_in_monthly(built, kpi):
    conn = built
    assert conn.execute("SELECT count(*) FROM kpi.kpi_daily WHERE kpi = ?", [kpi]).fetchone() == (0,)
    row = conn.execute("SELECT numerator, denominator, value, channel FROM kpi.kpi_monthly "
                       "WHERE kpi = ? AND month_start = ?", [kpi, date(2026, 3, 1)]).fetchall()
    assert len(row) == 1  # the portal-wide row only, not the channel rows of crm_monthly
    assert row[0][:3] == pytest.approx(EXPECTED_NATIVE[kpi])
    assert row[0][3] == "all"


def test_no_rows_without_data_and_no_blending(built):
    conn = built
    # Matomo has no engagement rate; per-e-mail rows and image search are not added; JPY is left out.
    assert conn.execute("SELECT count(*) FROM kpi.kpi_daily WHERE kpi = 'engagement_rate' AND source = 'matomo'"
                        ).fetchone() == (0,)
    # c3 (archived) would have made 2 leads on D1
    assert conn.execute("SELECT sum(numerator) FROM kpi.kpi_daily WHERE kpi = 'leads' AND date = ?", [D1]
                        ).fetchone() == (1,)


def test_each_account_has_its_own_row(built):
    # ad_cost per customer on D1: 111 100 EUR, 222 50 USD x 0.92 = 46 EUR; JPY customer 333 has no rate: no row
    rows = dict(built.execute("SELECT account_id, value FROM kpi.kpi_daily WHERE kpi = 'ad_cost' AND date = ?",
                              [D1]).fetchall())
    assert rows == {"111": pytest.approx(100), "222": pytest.approx(46)}
    # ad_conversion_rate per customer: 4 / 250 interactions, 1 / 100
    rows = dict(built.execute("SELECT account_id, value FROM kpi.kpi_daily WHERE kpi = 'ad_conversion_rate' "
                              "AND date = ?", [D1]).fetchall())
    assert rows["111"] == pytest.approx(4 / 250) and rows["222"] == pytest.approx(0.01) and rows["333"] == 0
    # two Search Console properties: positions 5 and 15, never averaged into one row
    rows = dict(built.execute("SELECT account_id, value FROM kpi.kpi_daily WHERE kpi = 'search_avg_position'"
                              ).fetchall())
    assert rows == {"a": pytest.approx(5.0), "b": pytest.approx(15.0)}


def test_money_is_converted_at_the_rate_of_its_day(built):
    # USD was 0.92 EUR until March 2 and 1.00 from March 3: customer 222 spent 50 USD on D1 and 20 USD on D2
    rates = built.execute("SELECT date, rate, rate_source, is_final FROM kpi.fx_rate WHERE currency = 'USD' "
                          "ORDER BY date").fetchall()
    assert rates == [(D1, pytest.approx(0.92), "config", True), (D2, pytest.approx(1.0), "config", True)]
    daily = dict(built.execute("SELECT date, numerator FROM kpi.kpi_daily WHERE kpi = 'ad_cost' AND account_id = '222'"
                               ).fetchall())
    assert daily == {D1: pytest.approx(46.0), D2: pytest.approx(20.0)}
    # the month adds each day at its own rate: 100 + 46 + 20 = 166 EUR (one rate for all, 0.92: 164.4; 1.00: 170)
    month = built.execute("SELECT sum(numerator) FROM kpi.kpi_monthly WHERE kpi = 'ad_cost'").fetchone()
    assert month == (pytest.approx(166.0),)


def test_rows_in_a_currency_without_rate_are_left_out(tmp_path):
    # With no USD rate, only the EUR customer remains: cost 100, clicks 200, CPC 0.5.
    with connect(tmp_path / "norate.duckdb") as conn:
        fill(conn)
        rebuild_kpi_daily(conn, WINDOW, KpiContext(tz=TZ, as_of=CTX.as_of, channels=CHANNELS,
                                                   fx=FxPolicy("EUR", "config", {})))
        rows = dict(conn.execute("SELECT kpi, value FROM kpi.kpi_daily WHERE source = 'google_ads' AND date = ?",
                                 [D1]).fetchall())
        assert rows["ad_cost"] == pytest.approx(100)
        assert rows["ad_cpc"] == pytest.approx(0.5)
        # GA4 revenue: EUR only, 700 over 10 orders
        assert conn.execute("SELECT value FROM kpi.kpi_daily WHERE kpi = 'average_basket' AND source = 'ga4'"
                            ).fetchone() == (pytest.approx(70.0),)


def test_a_changed_rate_is_never_applied_silently(conn):
    # Reporting in USD with EUR at 1.25 USD: stored EUR-based rates are kept by a run (reported as pending) ...
    usd = KpiContext(tz=TZ, as_of=CTX.as_of, channels=CHANNELS,
                     fx=FxPolicy("USD", "config", {"EUR": ((date(2026, 1, 1), 1.25),)}))
    result = rebuild_kpi_daily(conn, WINDOW, usd)
    assert {(d, c) for d, c, *_ in result.fx.pending} >= {(D1, "EUR"), (D1, "USD")}
    assert conn.execute("SELECT sum(value), any_value(currency) FROM kpi.kpi_daily WHERE kpi = 'ad_cost' "
                        "AND date = ?", [D1]).fetchone() == (pytest.approx(146), "EUR")
    # ... until the rates are refreshed explicitly: 100 EUR -> 125 USD, plus the 50 USD as is = 175 USD on D1
    assert refresh_fx_rates(conn, usd.fx) == [D1, D2]
    rebuild_kpi_daily(conn, WINDOW, usd)
    assert conn.execute("SELECT sum(value), any_value(currency) FROM kpi.kpi_daily WHERE kpi = 'ad_cost' "
                        "AND date = ?", [D1]).fetchone() == (pytest.approx(175), "USD")


def test_weekly_and_monthly_are_ratios_of_sums(built):
    conn = built
    # GA4 organic conversion: D1 5/100 = 0.05, D2 4/50 = 0.08 (week of Mar 2), D3 1/10 = 0.1 (week of Mar 9).
    weekly = conn.execute(
        "SELECT week_start, iso_week, numerator, denominator, value FROM kpi.kpi_weekly "
        "WHERE kpi = 'conversion_rate' AND source = 'ga4' AND channel = 'organic_search' ORDER BY week_start"
    ).fetchall()
    # week 10: 9 / 150 = 0.06, not the average of daily rates (0.05 + 0.08) / 2 = 0.065
    assert weekly[0] == (D1, "2026-W10", 9, 150, pytest.approx(0.06))
    assert weekly[1] == (D3, "2026-W11", 1, 10, pytest.approx(0.1))
    month = conn.execute(
        "SELECT numerator, denominator, value, days_with_data FROM kpi.kpi_monthly "
        "WHERE kpi = 'conversion_rate' AND source = 'ga4' AND channel = 'organic_search'").fetchone()
    # March: 10 / 160 = 0.0625; the average of the three daily rates would be 0.0767
    assert month == (10, 160, pytest.approx(0.0625), 3)
    assert month[2] != pytest.approx((0.05 + 0.08 + 0.1) / 3)
    # additive KPIs add up: sessions 100 + 50 = 150 in week 10
    assert conn.execute("SELECT value FROM kpi.kpi_weekly WHERE kpi = 'sessions' AND source = 'ga4' "
                        "AND channel = 'organic_search' AND week_start = ?", [D1]).fetchone() == (150,)


def test_window_rebuild_recomputes_exactly_those_days(conn):
    # Change D1 and D2 upstream, rebuild only D2: D2 follows, D1 keeps its old value.
    conn.execute("UPDATE kpi.web_daily SET sessions = sessions + 1000 WHERE source = 'ga4' AND channel = "
                 "'organic_search' AND date IN (?, ?)", [D1, D2])
    result = rebuild_kpi_daily(conn, Window(D2, D2), CTX)
    assert result.rebuild.window == Window(D2, D2)
    values = dict(conn.execute("SELECT date, value FROM kpi.kpi_daily WHERE kpi = 'sessions' AND source = 'ga4' "
                               "AND channel = 'organic_search'").fetchall())
    assert values[D1] == 100  # untouched
    assert values[D2] == 1050
    before = conn.execute("SELECT count(*) FROM kpi.kpi_daily").fetchone()
    rebuild_kpi_daily(conn, Window(D2, D2), CTX)
    assert conn.execute("SELECT count(*) FROM kpi.kpi_daily").fetchone() == before  # idempotent


def test_kpi_definition_table(built):
    conn = built
    rows = conn.execute("SELECT kpi, unit, aggregation, direction, sources FROM kpi.kpi_definition").fetchall()
    by_kpi = {r[0]: r[1:] for r in rows}
    assert len(rows) == 50  # 41 + the 9 social KPIs of issue #22
    assert by_kpi["followers"] == ("count", "last", "higher", ["facebook", "instagram", "linkedin"])
    assert by_kpi["social_reach"] == ("count", "distinct", "higher", ["facebook", "instagram", "linkedin"])
    assert by_kpi["ad_cpa"] == ("currency", "ratio", "lower", ["google_ads"])
    assert by_kpi["nps"] == ("score", "native", "higher", ["hubspot"])
    assert by_kpi["sessions"] == ("count", "sum", "higher", ["ga4", "matomo"])


def test_kpi_daily_is_a_partitioned_model_depending_on_the_channel_tables():
    model = MODELS["kpi_daily"]
    assert model.partition_column == "date"
    assert model.key == ("date", "source", "channel", "account_id", "kpi")
    assert set(model.depends_on) == {"web_daily", "seo_daily", "paid_search_daily", "ecommerce_daily", "email_daily",
                                     "crm_daily", "social_daily"}


def test_catalogue_refuses_unconverted_money():
    raw = {
        "relations": {"paid": {"table": "kpi.paid_search_daily", "grain": "day", "currency_column": "currency_code",
                               "money_columns": ["ad_cost"]}},
        "kpis": [{"kpi": "ad_cost", "family": "paid_search", "unit": "currency", "aggregation": "sum",
                  "direction": "lower", "formula": "cost", "sources": [
                      {"source": "google_ads", "relation": "paid", "numerator": "ad_cost"}]}],
    }
    with pytest.raises(CatalogueError, match="money column ad_cost must be converted"):
        parse_catalogue(raw, "test.yaml")
    raw["kpis"][0]["sources"][0]["numerator"] = "ad_cost * fx_rate"
    assert parse_catalogue(raw, "test.yaml")["ad_cost"].is_money


def test_catalogue_refuses_a_ratio_without_denominator():
    raw = {"relations": {"w": {"table": "kpi.web_daily", "grain": "day"}},
           "kpis": [{"kpi": "x_rate", "family": "web", "unit": "ratio", "aggregation": "ratio", "direction": "higher",
                     "formula": "x", "sources": [{"source": "ga4", "relation": "w", "numerator": "a"}]}]}
    with pytest.raises(CatalogueError, match="kpi x_rate sources\\[0\\]: a ratio KPI needs a denominator"):
        parse_catalogue(raw, "test.yaml")


def test_marketing_return_over_all_channels_is_the_blended_figure(built):
    """Read over every channel, the ROI KPIs are the blended ones, and every row names its attribution."""
    row = built.execute("SELECT sum(numerator), sum(denominator), any_value(attribution), count(DISTINCT account_id) "
                        "FROM kpi.kpi_daily WHERE kpi = 'blended_roas' AND source = 'ga4' AND date = ?",
                        [D1]).fetchone()
    # D1: GA4 revenue over every channel 500 + 300 + 365 = 1165 EUR, against all spend 146 EUR
    assert row == (pytest.approx(1165), pytest.approx(146), "ga4_session_channel", 1)
    share = built.execute("SELECT sum(numerator) / sum(denominator) FROM kpi.kpi_daily "
                          "WHERE kpi = 'paid_share_of_sessions' AND date = ?", [D1]).fetchone()
    assert share == (pytest.approx(50 / 450),)  # 50 paid sessions out of 100 + 300 + 50
    attributions = dict(built.execute("SELECT source, any_value(attribution) FROM kpi.kpi_daily "
                                      "WHERE kpi = 'marketing_roi' GROUP BY source").fetchall())
    assert attributions == {"ga4": "ga4_session_channel", "hubspot": "hubspot_original_source"}


def test_an_ads_run_rebuilds_the_roi_rows_of_both_attributions_and_nothing_else_of_theirs(conn):
    # Ads restates D1's spend (paid_search 100 EUR -> 165.20, so 211.20 EUR in all with the USD customer) while
    # GA4's sessions changed too; an Ads run rebuilds Ads' rows and the ROI rows that read its spend, not GA4's own
    conn.execute("UPDATE kpi.paid_search_daily SET ad_cost = 165.2 WHERE account_id = '111' AND date = ?", [D1])
    conn.execute("UPDATE kpi.web_daily SET sessions = sessions + 1000 WHERE source = 'ga4' AND date = ?", [D1])
    result = rebuild_kpi_daily(conn, WINDOW, CTX, sources=["google_ads"])
    assert result.rebuild.failed == {}
    roi = conn.execute("SELECT numerator, denominator FROM kpi.kpi_daily WHERE kpi = 'marketing_roi' AND source = "
                       "'ga4' AND channel = 'paid_search' AND date = ?", [D1]).fetchone()
    assert roi == (pytest.approx(365 - 211.2), pytest.approx(211.2))
    sessions = conn.execute("SELECT sum(numerator) FROM kpi.kpi_daily WHERE kpi = 'sessions' AND source = 'ga4' "
                            "AND date = ?", [D1]).fetchone()
    assert sessions == (450,)  # GA4's own rows wait for GA4's run


def test_no_roi_row_on_a_day_google_ads_has_not_covered(built):
    """Ads data covers D1..D2 only: on D3 GA4 has sessions but the spend is unknown (an Ads load that failed or lags,
    or HubSpot contacts older than the first Ads day), so no ROI row claims it was zero."""
    rows = built.execute("SELECT kpi, source, channel FROM kpi.kpi_daily WHERE date = ? AND kpi IN ('marketing_roi', "
                         "'blended_roas', 'cost_per_lead', 'customer_acquisition_cost')", [D3]).fetchall()
    assert rows == []
    web = built.execute("SELECT count(*) FROM kpi.kpi_daily WHERE date = ? AND kpi = 'sessions'", [D3]).fetchone()
    assert web[0] > 0
