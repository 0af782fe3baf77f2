"""The static KPI dashboard's numbers (issue #25): periods and their comparison windows, cards as ratios of sums
over accounts and channels, comparisons with the previous period and the same period last year, partial coverage
flagged, monthly CRM KPIs never re-aggregated, drill-downs (campaigns, Search Console, e-mails, channels), the one
formatter, a light self-contained page, and the asset. Every expected value below is computed by hand from the
rows build_database() writes (the comments show the arithmetic), never read back from the code under test.
The browser half is tests/test_dashboard_browser.py."""

import re
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from kpi_models.catalogue import FAMILIES, rollup_view_sql
from kpi_models.dashboard import (
    MAX_BYTES,
    NO_DATA,
    dashboard_model,
    dashboard_path,
    decode_model,
    render_dashboard,
    write_dashboard,
)
from kpi_models.dashboard_data import channel_rows
from kpi_models.dashboard_periods import Window, add_months, data_range, last_year, presets
from kpi_models.formatting import change_tone, format_change, format_value, kpi_label
from kpi_models.objectives import build_kpi_vs_objective, parse_objectives

GENERATED_AT = datetime(2026, 3, 21, 6, 0, tzinfo=UTC)
WITH_DATA = ("web", "seo", "paid_search", "email", "ecommerce", "crm", "roi")  # the families build_database fills
FIRST, AS_OF = date(2026, 1, 1), date(2026, 3, 20)

# (kpi, source, channel, numerator, denominator, currency) for every day FIRST..AS_OF, account acc1: one KPI or more
# per family.
DAILY = [
    ("sessions", "ga4", "organic_search", 100, None, None),
    ("sessions", "ga4", "paid_search", 50, None, None),
    ("sessions", "matomo", "organic_search", 90, None, None),
    ("conversion_rate", "ga4", "organic_search", 3, 100, None),
    ("ad_cost", "google_ads", "paid_search", 20.0, None, "EUR"),
    ("email_click_rate", "hubspot", "email", 2, 100, None),
    ("revenue", "ga4", "all", 500.0, None, "EUR"),
    ("revenue", "matomo", "all", 480.0, None, "EUR"),
    ("new_customers", "hubspot", "organic_search", 1, None, None),
    ("new_customers", "hubspot", "direct", 2, None, None),
    # marketing return: (50 - 20) / 20 = 150% a day by GA4 session channel; 20 EUR over 4 leads = 5 EUR a lead
    ("marketing_roi", "ga4", "paid_search", 30.0, 20.0, None),
    ("cost_per_lead", "hubspot", "paid_search", 20.0, 4, "EUR"),
]
# (kpi, source, channel, account, numerator, denominator, currency, first, last, is_final, quality): rows that make
# the comparisons say something.
EXTRA = [
    ("sessions", "ga4", "referral", "acc1", 10, None, None, date(2026, 3, 1), AS_OF, True, []),  # March only
    ("sessions", "ga4", "organic_search", "acc1", 120, None, None, date(2025, 3, 1), date(2025, 3, 20), True, []),
    ("conversion_rate", "ga4", "organic_search", "acc2", 1, 50, None, date(2026, 3, 1), AS_OF, True, []),
    ("ad_cpa", "google_ads", "paid_search", "c1", 20.0, 2, "EUR", FIRST, date(2026, 2, 28), True, []),
    ("ad_cpa", "google_ads", "paid_search", "c1", 20.0, 4, "EUR", date(2026, 3, 1), AS_OF, True, []),
    ("search_clicks", "search_console", "organic_search", "site", 40, None, None, date(2026, 2, 10),
     date(2026, 3, 17), True, []),
    ("search_clicks", "search_console", "organic_search", "site", 40, None, None, date(2026, 3, 18), AS_OF, False,
     ["partial_day", "provisional"]),
]
# CRM months: (month, customers_lost, customers_at_start, is_final)
CRM = [(date(2026, 1, 1), 2, 100, True), (date(2026, 2, 1), 5, 100, True), (date(2026, 3, 1), 1, 50, False)]

OBJECTIVES = [
    {"kpi": "sessions", "source": "ga4", "period": "month", "target": 4650},  # 150 a day; March runs at 160
    {"kpi": "conversion_rate", "source": "ga4", "period": "month", "target": 0.031},
    {"kpi": "conversion_rate", "source": "ga4", "channel": "social", "period": "month", "target": 0.02},  # no rows
    {"kpi": "email_click_rate", "period": "month", "target": 0.05},  # 0.02: off track
    {"kpi": "ad_cost", "period": "month", "target": 700},
    {"kpi": "churn_rate", "period": "month", "target": 0.01},  # March is not over: judged later
]


def _days(conn, first, last, kpi, source, channel, account, num, den, currency, final=True, quality=()):
    conn.execute("""
        INSERT INTO kpi.kpi_daily
        SELECT CAST(day AS DATE), ?, ?, ?, ?, ?::DOUBLE, ?::DOUBLE, coalesce(?::DOUBLE / ?::DOUBLE, ?::DOUBLE), ?, ?,
               ?::VARCHAR[], NULL
        FROM range(?::DATE, ?::DATE + 1, INTERVAL 1 DAY) AS t(day)""",
                 [source, channel, account, kpi, num, den, num, den, num, currency, final, list(quality), first, last])


def build_database(conn: duckdb.DuckDBPyConnection) -> None:
    """Hand-made KPI rows, drill-down tables and raw freshness; the real roll-up views and objectives on top."""
    conn.execute("CREATE SCHEMA kpi")
    conn.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                 "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                 "is_final BOOLEAN, quality VARCHAR[], attribution VARCHAR)")
    for kpi, source, channel, num, den, currency in DAILY:
        _days(conn, FIRST, AS_OF, kpi, source, channel, "acc1", num, den, currency)
    for kpi, source, channel, account, num, den, currency, first, last, final, quality in EXTRA:
        _days(conn, first, last, kpi, source, channel, account, num, den, currency, final, quality)
    conn.execute("CREATE TABLE kpi.crm_monthly (month DATE, source VARCHAR, account_id VARCHAR, channel VARCHAR, "
                 "customers_lost BIGINT, customers_at_start BIGINT, repeat_customers BIGINT, "
                 "customers_with_won_deal BIGINT, promoters BIGINT, detractors BIGINT, nps_responses BIGINT, "
                 "is_final BOOLEAN)")
    for month, lost, start, final in CRM:
        conn.execute("INSERT INTO kpi.crm_monthly VALUES (?, 'hubspot', 'portal', 'all', ?, ?, 20, 80, 50, 10, 100, "
                     "?)", [month, lost, start, final])
    for statement in rollup_view_sql().values():
        conn.execute(statement)
    build_kpi_vs_objective(conn, parse_objectives(OBJECTIVES), as_of=AS_OF)
    # Campaigns: Brand (EUR) every day of March and February; US Search (USD) on 1-10 March only.
    conn.execute("CREATE TABLE kpi.paid_search_daily (date DATE, source VARCHAR, account_id VARCHAR, "
                 "campaign_id BIGINT, campaign_name VARCHAR, currency_code VARCHAR, ad_cost DOUBLE, ad_clicks BIGINT, "
                 "ad_impressions BIGINT, ad_conversions DOUBLE, conversions_value DOUBLE, is_final BOOLEAN)")
    for first, last, row in ((date(2026, 2, 1), date(2026, 2, 28), "'111', 1, 'Brand', 'EUR', 99.0, 1, 1, 1, 1"),
                             (date(2026, 3, 1), AS_OF, "'111', 1, 'Brand', 'EUR', 10.0, 20, 200, 2, 50.0"),
                             (date(2026, 3, 1), date(2026, 3, 10), "'222', 2, 'US Search', 'USD', 30.0, 10, 1000, 0, "
                                                                   "0.0")):
        conn.execute(f"INSERT INTO kpi.paid_search_daily SELECT CAST(day AS DATE), 'google_ads', {row}, true "
                     "FROM range(?::DATE, ?::DATE + 1, INTERVAL 1 DAY) AS t(day)", [first, last])
    conn.execute("CREATE SCHEMA search_console")
    for table, column in (("queries", "query"), ("pages", "page")):
        conn.execute(f"CREATE TABLE search_console.{table} (site_url VARCHAR, search_type VARCHAR, date DATE, "
                     f"{column} VARCHAR, clicks BIGINT, impressions BIGINT, ctr DOUBLE, position DOUBLE, "
                     "data_state VARCHAR, _loaded_at TIMESTAMPTZ)")
    for first, last, item, clicks, impressions, position in (
            (date(2026, 3, 1), date(2026, 3, 10), "shoes", 5, 100, 2.0),
            (date(2026, 3, 11), AS_OF, "shoes", 5, 300, 4.0),
            (date(2026, 3, 1), AS_OF, "boots", 1, 50, 8.0)):
        for table in ("queries", "pages"):
            name = item if table == "queries" else f"https://example.com/{item}"
            conn.execute(f"INSERT INTO search_console.{table} SELECT 'sc-domain:example.com', 'web', "
                         "CAST(day AS DATE), ?, ?, ?, NULL, ?, 'final', TIMESTAMPTZ '2026-03-21 04:00:00+00' "
                         "FROM range(?::DATE, ?::DATE + 1, INTERVAL 1 DAY) AS t(day)",
                         [name, clicks, impressions, position, first, last])
    conn.execute("INSERT INTO search_console.queries VALUES ('sc-domain:example.com', 'image', DATE '2026-03-05', "
                 "'shoes', 999, 9999, NULL, 1.0, 'final', NULL)")  # another search type: not in the web table
    conn.execute("CREATE TABLE kpi.email_daily (date DATE, source VARCHAR, account_id VARCHAR, email_id VARCHAR, "
                 "email_name VARCHAR, sent BIGINT, delivered BIGINT, opened BIGINT, clicked BIGINT, bounced BIGINT, "
                 "unsubscribed BIGINT, is_final BOOLEAN)")
    conn.execute("INSERT INTO kpi.email_daily VALUES (DATE '2026-03-03', 'hubspot', 'portal', 'e1', "
                 "'March newsletter', 1000, 950, 380, 95, 50, 5, true), (DATE '2026-03-03', 'hubspot', 'portal', "
                 "'all', NULL, 1000, 950, 380, 95, 50, 5, true)")
    conn.execute("INSERT INTO kpi.email_daily SELECT CAST(day AS DATE), 'hubspot', 'portal', 'e2', 'Welcome', 10, 10, "
                 "5, 1, 0, 0, true FROM range(DATE '2026-03-05', DATE '2026-03-21', INTERVAL 1 DAY) AS t(day)")
    conn.execute("CREATE SCHEMA ga4")
    conn.execute("CREATE TABLE ga4.traffic_by_channel AS SELECT DATE '2026-03-20' AS date, "
                 "TIMESTAMPTZ '2026-03-21 04:00:00+00' AS _loaded_at")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(page html, path, model, result): written once, shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("dashboard")
    with duckdb.connect(str(folder / "work.duckdb")) as conn:
        build_database(conn)
        result = write_dashboard(conn, folder / "out" / "dashboard.html", generated_at=GENERATED_AT)
        model = dashboard_model(conn, generated_at=GENERATED_AT)
    return Path(result.path).read_text(encoding="utf-8"), Path(result.path), model, result


def cur_prev_ly(model, period, key):
    """The values of a result key in a period: (current, previous, last year), None where there is no data."""
    slot = model["results"][period].get(key) or [None, None, None]
    return tuple(None if r is None else r[2] for r in slot)


# --- periods --------------------------------------------------------------------------------------------------------


def test_preset_periods_and_their_comparison_windows():
    got = {p.key: (p.current, p.previous, p.last_year, p.running) for p in presets(AS_OF)}
    d = date
    assert got == {
        # month to date: the same 20 days of February, and of March a year ago
        "this_month": (Window(d(2026, 3, 1), AS_OF), Window(d(2026, 2, 1), d(2026, 2, 20)),
                       Window(d(2025, 3, 1), d(2025, 3, 20)), True),
        "last_month": (Window(d(2026, 2, 1), d(2026, 2, 28)), Window(d(2026, 1, 1), d(2026, 1, 31)),
                       Window(d(2025, 2, 1), d(2025, 2, 28)), False),
        # 79 days of Q1; the first 79 days of Q4 end on 18 December
        "this_quarter": (Window(d(2026, 1, 1), AS_OF), Window(d(2025, 10, 1), d(2025, 12, 18)),
                         Window(d(2025, 1, 1), d(2025, 3, 20)), True),
        "last_7": (Window(d(2026, 3, 14), AS_OF), Window(d(2026, 3, 7), d(2026, 3, 13)),
                   Window(d(2025, 3, 14), d(2025, 3, 20)), False),
        "last_28": (Window(d(2026, 2, 21), AS_OF), Window(d(2026, 1, 24), d(2026, 2, 20)),
                    Window(d(2025, 2, 21), d(2025, 3, 20)), False),
        "last_90": (Window(d(2025, 12, 21), AS_OF), Window(d(2025, 9, 22), d(2025, 12, 20)),
                    Window(d(2024, 12, 21), d(2025, 3, 20)), False),
    }
    assert data_range(AS_OF) == Window(d(2024, 12, 21), AS_OF)  # last year of the last 90 days is the earliest


def test_month_arithmetic_clamps_to_shorter_months():
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert last_year(Window(date(2024, 2, 1), date(2024, 2, 29))) == Window(date(2023, 2, 1), date(2023, 2, 28))
    this_month = presets(date(2026, 3, 31))[0]
    assert this_month.previous == Window(date(2026, 2, 1), date(2026, 2, 28)) and not this_month.running


# --- the one formatter ------------------------------------------------------------------------------------------------


def test_one_formatter_for_every_unit():
    assert format_value(0.02543, "ratio") == "2.54%"
    assert format_value(0.4527, "ratio") == "45.3%"
    assert format_value(4.5612, "ratio", kpi="ad_roas") == "4.56×"  # ROAS is a multiple, not 456%
    assert format_value(9930.4, "currency", "EUR") == "9,930 EUR"
    assert format_value(69.872, "currency", "EUR") == "69.87 EUR"
    assert format_value(1234567.0, "count") == "1,234,567"
    assert format_value(12.35, "count") == "12.3"  # a fractional count (conversions)
    assert format_value(125, "seconds") == "2m 05s" and format_value(45.2, "seconds") == "45s"
    assert format_value(8.26, "position") == "8.3" and format_value(-12.0, "score") == "-12.0"
    assert format_value(-0.00001, "ratio") == "0.00%"  # never "-0.00%"
    assert format_value(None, "count") == "-" and format_value(float("nan"), "ratio") == "-"


def test_changes_and_their_tone():
    assert format_change(3200, 3000, "count") == ("+200", "+6.7%")
    assert format_change(80 / 3000, 0.03, "ratio") == ("-0.33 pp", "-11.1%")
    assert format_change(5.0, 10.0, "currency", "EUR") == ("-5.00 EUR", "-50.0%")
    assert format_change(1120, 1120, "count") == ("0", "0.0%")
    assert format_change(5, 0, "count") == ("+5", "-")  # from zero: no relative change
    assert format_change(None, 3, "count") == ("-", "-")
    assert change_tone(5.0, 10.0, "lower") == "good" and change_tone(0.026, 0.03, "higher") == "bad"
    assert change_tone(3, 3, "higher") == "neutral"


def test_cli_uses_the_same_formatter():
    import pipelines.cli.kpis
    from kpi_models import formatting

    assert pipelines.cli.kpis.format_value is formatting.format_value
    assert kpi_label("ad_cpc") == "Ad CPC" and kpi_label("email_click_to_open_rate") == "E-mail click-to-open rate"


# --- numbers ----------------------------------------------------------------------------------------------------------


def test_cards_sum_accounts_and_channels_as_ratios_of_sums(built):
    _, _, model, _ = built
    # GA4 sessions, March 1-20: (100 organic + 50 paid + 10 referral) x 20 days; February 1-20: 150 x 20;
    # March 1-20 2025: 120 x 20
    assert cur_prev_ly(model, "this_month", "sessions|ga4|*") == (3200, 3000, 2400)
    assert cur_prev_ly(model, "this_month", "sessions|ga4|referral") == (200, None, None)
    assert cur_prev_ly(model, "this_month", "sessions|matomo|*") == (1800, 1800, None)  # never added to GA4
    # conversion rate over two accounts: (3 x 20 + 1 x 20) / (100 x 20 + 50 x 20) = 80 / 3000, not the mean of
    # 0.03 and 0.02 (0.025); February 1-20: 60 / 2000
    cur, prev, _ = cur_prev_ly(model, "this_month", "conversion_rate|ga4|*")
    assert cur == pytest.approx(80 / 3000) and prev == pytest.approx(0.03)
    # CPA, lower is better: 400 EUR / 80 conversions in March, 400 / 40 in February
    assert cur_prev_ly(model, "this_month", "ad_cpa|google_ads|*")[:2] == (pytest.approx(5.0), pytest.approx(10.0))
    assert model["currencies"]["ad_cpa|google_ads"] == "EUR"
    # other presets: February vs January; the last 7 days vs the 7 before; Q1 so far (79 days, 20 with referral)
    assert cur_prev_ly(model, "last_month", "sessions|ga4|*") == (4200, 4650, None)
    assert cur_prev_ly(model, "last_7", "sessions|ga4|*") == (1120, 1120, 840)  # 14-20 March 2025: 7 x 120
    assert cur_prev_ly(model, "this_quarter", "sessions|ga4|*") == (150 * 79 + 200, None, 2400)
    # ... but a year ago GA4 has 20 of those 79 days: the page greys that comparison out (not like for like)
    assert model["coverage"]["this_quarter"]["ga4"] == [79, 0, 20]
    assert cur_prev_ly(model, "this_month", "revenue|ga4|*")[0] == 10_000  # 500 EUR x 20 days


def test_provisional_days_and_partial_coverage_are_flagged(built):
    _, _, model, _ = built
    r = model["results"]["this_month"]["search_clicks|search_console|*"]
    assert r[0][2] == 800 and r[0][3] == 0  # 40 x 20 days, not final: 18-20 March are partial days
    assert set(model["flags"][r[0][4]]) == {"partial_day", "provisional"}
    assert r[1][2] == 440  # 10-20 February: 11 days of 40
    # Search Console covers 20 of 20 days this month, 11 of the 20 of February: the page flags the comparison
    assert model["coverage"]["this_month"]["search_console"] == [20, 11, 0]
    assert model["coverage"]["this_month"]["ga4"] == [20, 20, 20]


def test_monthly_crm_kpis_are_one_month_never_summed(built):
    _, _, model, _ = built
    # churn: the month containing the window's last day. This quarter: March 1 / 50, not (2 + 5 + 1) / 250
    assert cur_prev_ly(model, "this_quarter", "churn_rate|hubspot|*")[0] == pytest.approx(0.02)
    assert cur_prev_ly(model, "this_month", "churn_rate|hubspot|*")[:2] == (pytest.approx(0.02), pytest.approx(0.05))
    assert cur_prev_ly(model, "last_month", "churn_rate|hubspot|*")[:2] == (pytest.approx(0.05), pytest.approx(0.02))
    assert model["results"]["this_month"]["churn_rate|hubspot|*"][0][3] == 0  # March is running: provisional


def test_objectives_by_period(built):
    _, _, model, _ = built
    this_month = {(o["kpi"], o["channel"]): o["status"] for o in model["objectives"]["this_month"]}
    assert this_month[("sessions", "all")] == "on_track"  # 3200 against 4650 x 20 / 31 = 3000 to date
    assert this_month[("conversion_rate", "social")] == "insufficient_data"
    assert this_month[("email_click_rate", "all")] == "off_track"
    assert this_month[("churn_rate", "all")] == "insufficient_data"  # judged once March is over
    assert {o["period_start"] for o in model["objectives"]["last_month"]} <= {"2026-02-01"}
    assert model["objectives"]["last_7"] == []  # objectives are monthly, quarterly, yearly


def test_drill_downs_are_ratios_of_sums_per_row(built):
    _, _, model, _ = built
    campaigns = {c["campaign"]: c for c in model["drill"]["this_month"]["campaigns"]}
    brand, us = campaigns["Brand"], campaigns["US Search"]
    # Brand, 20 days of March (February's rows are another period): 200 EUR, 400 clicks, 4000 impressions,
    # 40 conversions worth 1000 EUR
    assert (brand["cost"], brand["clicks"], brand["currency"]) == (200.0, 400, "EUR")
    assert brand["cpc"] == pytest.approx(0.5) and brand["cpa"] == pytest.approx(5.0)
    assert brand["roas"] == pytest.approx(5.0) and brand["ctr"] == pytest.approx(0.1)
    # US Search, 10 days: 300 USD, 100 clicks, no conversion: CPA has no value (never a division by zero)
    assert (us["cost"], us["currency"], us["cpa"], us["cpc"]) == (300.0, "USD", None, pytest.approx(3.0))
    queries = {q["item"]: q for q in model["drill"]["this_month"]["queries"]}
    # shoes: 100 clicks over 1000 + 3000 impressions; position weighted by impressions (2 x 1000 + 4 x 3000) / 4000
    assert queries["shoes"]["clicks"] == 100 and queries["shoes"]["impressions"] == 4000  # the image row is left out
    assert queries["shoes"]["ctr"] == pytest.approx(0.025) and queries["shoes"]["position"] == pytest.approx(3.5)
    assert [q["item"] for q in model["drill"]["this_month"]["queries"]] == ["shoes", "boots"]  # by clicks
    assert model["drill"]["this_month"]["pages"][0]["item"] == "https://example.com/shoes"
    emails = {e["email_id"]: e for e in model["drill"]["this_month"]["emails"]}
    assert set(emails) == {"e1", "e2"}  # the day's 'all' total is not an e-mail
    assert emails["e1"]["open_rate"] == pytest.approx(380 / 950) and emails["e1"]["bounce_rate"] == pytest.approx(0.05)
    # Welcome: 10 a day on 5-20 March (16 days): 80 opened / 160 delivered, 16 clicked / 160
    assert emails["e2"]["sent"] == 160 and emails["e2"]["click_rate"] == pytest.approx(0.1)
    assert model["drill"]["last_7"]["campaigns"][0]["campaign"] == "Brand"  # 14-20 March: US Search has no row


def test_channels_table(built):
    _, _, model, _ = built
    rows = {r["channel"]: r for r in channel_rows(model, "this_month", "ga4")}
    assert [r["channel"] for r in channel_rows(model, "this_month", "ga4")] == ["organic_search", "paid_search",
                                                                                  "referral"]
    assert rows["organic_search"]["sessions"] == 2000 and rows["referral"]["sessions"] == 200
    assert rows["organic_search"]["conversion_rate"] == pytest.approx(80 / 3000)


# --- the page ---------------------------------------------------------------------------------------------------------


def test_every_family_has_a_section_cards_and_a_chart_slot(built):
    page, _, model, result = built
    assert result.families == WITH_DATA
    for family in FAMILIES:
        assert f'id="family-{family}"' in page, family
    for family in WITH_DATA:
        assert f'id="trend-{family}"' in page, family
        assert NO_DATA not in page.split(f'id="family-{family}"', 1)[1].split("</section>", 1)[0]
    cards = {c["id"] for c in model["cards"]}
    assert {"sessions|ga4", "sessions|matomo", "conversion_rate|ga4", "ad_cpa|google_ads", "churn_rate|hubspot",
            "search_clicks|search_console"} <= cards
    for drill in ("channels", "queries", "pages", "campaigns", "emails"):
        assert f'id="drill-{drill}"' in page


def test_light_self_contained_offline_page(built):
    page, path, model, result = built
    assert result.bytes == path.stat().st_size < MAX_BYTES
    remote = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page, re.I)
    assert remote == [] and "@import" not in page and "fonts.googleapis" not in page
    assert page.count("https://github.com/leeoniya/uPlot") == 1  # the chart library, inlined once
    assert "plotly" not in page.lower()
    blob = re.search(r'<script id="mkpi-model"[^>]*>([^<]+)</script>', page).group(1)
    assert decode_model(blob) == model  # the numbers travel in the page exactly as computed
    assert sorted(p.name for p in path.parent.iterdir()) == ["dashboard.html"]  # no temp file left


def test_formulas_and_sources_are_on_the_page(built):
    page, _, _, _ = built
    from markupsafe import escape

    from kpi_models.catalogue import load_catalogue

    for kpi in load_catalogue().kpis.values():
        assert str(escape(kpi.formula)) in page, kpi.kpi  # the "Formulas and sources" footnote of its family
    assert "kpi.web_daily" in page


def test_freshness_from_raw_tables(built):
    page, _, _, _ = built
    assert "the raw tables (max(date), max(_loaded_at))" in page
    assert re.search(r"<td>ga4</td><td>2026-03-20</td><td>1 d</td>", page)


def test_alerts_section_is_a_placeholder_without_a_feed(built):
    page, _, model, _ = built
    assert model["alerts"] is None and model["anomalies"] == []
    assert re.search(r'<section id="alerts" class="alerts" data-state="placeholder"\s+hidden>', page)


def test_open_alerts_and_anomalous_points_from_the_alert_tables(tmp_path):
    with duckdb.connect(str(tmp_path / "a.duckdb")) as conn:
        build_database(conn)
        conn.execute("CREATE TABLE kpi.alert_feed (alert_id VARCHAR, detected_at TIMESTAMPTZ, kpi VARCHAR, "
                     "source VARCHAR, channel VARCHAR, status VARCHAR, severity VARCHAR, message VARCHAR, date DATE)")
        conn.execute("INSERT INTO kpi.alert_feed VALUES ('a1', TIMESTAMPTZ '2026-03-21 05:00:00+00', 'sessions', "
                     "'ga4', 'all', 'open', 'critical', 'sessions fell by half', DATE '2026-03-19'), ('a2', "
                     "TIMESTAMPTZ '2026-03-20 05:00:00+00', 'ad_cpc', 'google_ads', 'all', 'cleared', 'info', 'old', "
                     "NULL)")
        conn.execute("CREATE TABLE kpi.kpi_anomaly (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                     "kpi VARCHAR, value DOUBLE, expected DOUBLE, expected_low DOUBLE, expected_high DOUBLE)")
        conn.execute("INSERT INTO kpi.kpi_anomaly VALUES (DATE '2026-03-12', 'ga4', 'paid_search', 'acc1', "
                     "'sessions', 50, 80, 70, 90)")
        model = dashboard_model(conn, generated_at=GENERATED_AT)
        page = render_dashboard(conn, generated_at=GENERATED_AT)
    assert [a["alert_id"] for a in model["alerts"]] == ["a1"]  # open ones only
    assert {(p["kpi"], p["date"]) for p in model["anomalies"]} == {("sessions", "2026-03-12"),
                                                                  ("sessions", "2026-03-19")}
    assert 'data-state="open"' in page


def test_empty_database_renders_no_data_yet(tmp_path):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as conn:
        page = render_dashboard(conn, generated_at=GENERATED_AT)
        result = write_dashboard(conn, tmp_path / "dashboard.html")
    for family in FAMILIES:
        section = page.split(f'id="family-{family}"', 1)[1].split("</section>", 1)[0]
        assert NO_DATA in section, family
    assert "uPlot" not in page  # nothing to draw: no chart library either
    assert result.families == ()
    assert (tmp_path / "dashboard.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_partial_tables_render_what_exists(tmp_path):
    """Only web data loaded, no objectives or monthly views yet: web shows, the others say no data yet."""
    with duckdb.connect(str(tmp_path / "partial.duckdb")) as conn:
        conn.execute("CREATE SCHEMA kpi; CREATE SCHEMA meta")
        conn.execute("CREATE TABLE kpi.kpi_daily AS SELECT DATE '2026-03-01' + CAST(i AS INTEGER) AS date, "
                     "'ga4' AS source, 'direct' AS channel, '1' AS account_id, 'sessions' AS kpi, 10.0 AS numerator, "
                     "CAST(NULL AS DOUBLE) AS denominator, 10.0 AS value, CAST(NULL AS VARCHAR) AS currency, "
                     "true AS is_final, CAST([] AS VARCHAR[]) AS quality FROM range(5) t(i)")
        conn.execute("CREATE TABLE meta.source_freshness AS SELECT 'ga4' AS source, 'traffic_by_channel' AS "
                     "table_name, DATE '2026-03-05' AS last_date, TIMESTAMPTZ '2026-03-06 01:00:00+00' AS "
                     "last_loaded_at, 5 AS row_count")
        page = render_dashboard(conn, generated_at=GENERATED_AT)
        model = dashboard_model(conn, generated_at=GENERATED_AT)
    assert 'id="trend-web"' in page and model["results"]["this_month"]["sessions|ga4|*"][0][2] == 50
    assert "meta.source_freshness" in page and "<td>2026-03-05</td><td>16 d</td>" in page
    for family in FAMILIES[1:]:
        assert NO_DATA in page.split(f'id="family-{family}"', 1)[1].split("</section>", 1)[0]


def test_a_source_is_flagged_stale_after_its_own_limit(tmp_path):
    """Generated 21 March: GA4 and Search Console both last have data on the 18th, 3 days old. GA4 is stale after
    2 days (its registry entry), Search Console after 4 (it publishes later): only GA4 is flagged, unless the
    configured limits (alerts.stale_after_days) say otherwise."""
    with duckdb.connect(str(tmp_path / "fresh.duckdb")) as conn:
        conn.execute("CREATE SCHEMA meta")
        conn.execute("CREATE TABLE meta.source_freshness AS SELECT * FROM (VALUES "
                     "('ga4', 'traffic_by_channel', DATE '2026-03-18', TIMESTAMPTZ '2026-03-19 01:00:00+00', 5), "
                     "('search_console', 'search_daily', DATE '2026-03-18', TIMESTAMPTZ '2026-03-19 01:00:00+00', 5)"
                     ") AS t(source, table_name, last_date, last_loaded_at, row_count)")
        page = render_dashboard(conn, generated_at=GENERATED_AT)
        relaxed = render_dashboard(conn, generated_at=GENERATED_AT, stale_after={"ga4": 3})
    assert re.search(r'<tr title="[^"]*" class="stale"><td>ga4</td><td>2026-03-18</td><td>3 d</td>', page)
    assert re.search(r'<tr title="[^"]*"><td>search_console</td><td>2026-03-18</td><td>3 d</td>', page)
    assert not re.search(r'class="stale"><td>ga4</td>', relaxed)


def test_broken_view_and_odd_tables_do_not_fail_the_page(tmp_path):
    """A roll-up view whose table was dropped, or a kpi_vs_objective of another layout, reads as "no data yet"."""
    with duckdb.connect(str(tmp_path / "broken.duckdb")) as conn:
        conn.execute("CREATE SCHEMA kpi")
        conn.execute("CREATE TABLE kpi.crm_monthly AS SELECT DATE '2026-01-01' AS month_start")
        conn.execute("CREATE VIEW kpi.kpi_monthly AS SELECT * FROM kpi.crm_monthly")
        conn.execute("DROP TABLE kpi.crm_monthly")
        conn.execute("CREATE TABLE kpi.kpi_vs_objective AS SELECT 'sessions' AS kpi")
        page = render_dashboard(conn, generated_at=GENERATED_AT)
    assert page.count(f'<div class="nodata">{NO_DATA}</div>') == len(FAMILIES)


def test_dashboard_path_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MKPI_DASHBOARD_PATH", raising=False)
    assert dashboard_path() == Path("data/dashboard.html")
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(tmp_path / "d.html"))
    assert dashboard_path() == tmp_path / "d.html"


def test_asset_writes_the_file_with_metadata(monkeypatch, tmp_path):
    from pipelines.defs.publish.dashboard import dashboard as dashboard_asset
    from pipelines.lib.resources import SettingsResource, WarehouseResource

    work = tmp_path / "work.duckdb"
    with duckdb.connect(str(work)) as conn:
        build_database(conn)
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(tmp_path / "site" / "dashboard.html"))
    result = dg.materialize([dashboard_asset], resources={
        "settings": SettingsResource(), "warehouse": WarehouseResource(database=str(work))})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert event.asset_key == dg.AssetKey(["publish", "dashboard"])
    assert metadata["path"].value == str(tmp_path / "site" / "dashboard.html")
    assert metadata["bytes"].value == (tmp_path / "site" / "dashboard.html").stat().st_size
    assert metadata["families"].value == ", ".join(WITH_DATA)
    spec = dashboard_asset.specs_by_key[dg.AssetKey(["publish", "dashboard"])]
    assert spec.group_name == "publish"
    assert {dep.asset_key for dep in spec.deps} == {dg.AssetKey(["kpi", "kpi_vs_objective"]),
                                                   dg.AssetKey(["kpi", "kpi_daily"]),
                                                   dg.AssetKey(["publish", "analyst_copy"])}  # meta.source_status


def test_serve_gives_the_dashboard_and_nothing_else(built):
    from kpi_models.dashboard_serve import serve_in_thread

    _, path, _, _ = built
    (path.parent / "secret.duckdb").write_bytes(b"not for the web")
    server, url = serve_in_thread(path)
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
            assert answer.read() == path.read_bytes()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "secret.duckdb", timeout=5)
        assert refused.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
        (path.parent / "secret.duckdb").unlink()


def test_failing_source_status_is_shown(tmp_path):
    with duckdb.connect(str(tmp_path / "s.duckdb")) as conn:
        build_database(conn)
        conn.execute("CREATE SCHEMA meta")
        conn.execute("CREATE TABLE meta.source_status AS SELECT * FROM (VALUES "
                     "('ga4', 'failing', TIMESTAMPTZ '2026-03-19 05:00:00+00', TIMESTAMPTZ '2026-03-21 05:00:00+00', "
                     "'quota exhausted', TIMESTAMPTZ '2026-03-20 05:00:00+00', 3), "
                     "('matomo', 'ok', TIMESTAMPTZ '2026-03-21 05:00:00+00', NULL, NULL, NULL, 4)) "
                     "AS t(source, status, last_success, last_failure, error, stale_since, assets)")
        page = render_dashboard(conn, generated_at=GENERATED_AT, timezone="Europe/Paris")
    assert '<tr class="stale"><td>ga4</td><td>failing</td><td>2026-03-19 06:00 CET</td>' in page
    assert "<td>2026-03-20 06:00 CET</td><td>quota exhausted</td>" in page and "stale since" in page
    assert "<td>matomo</td><td>ok</td>" in page
