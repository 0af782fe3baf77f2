"""The dashboard's social section (issue #22): followers, growth, reach and engagement rate per network, with an
objective. Hand-made kpi_daily rows (a LinkedIn page and a Facebook Page, March 1-20 2026); every expected value is
worked out by hand in the comments, never read back from the code."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from kpi_models.catalogue import rollup_view_sql
from kpi_models.dashboard import dashboard_model, render_dashboard
from kpi_models.objectives import build_kpi_vs_objective, parse_objectives

GENERATED_AT = datetime(2026, 3, 21, 6, 0, tzinfo=UTC)
FIRST, AS_OF = date(2026, 3, 1), date(2026, 3, 20)
OBJECTIVES = [{"kpi": "follower_growth", "source": "linkedin", "period": "month", "target": 155}]


def build(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA kpi")
    conn.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                 "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                 "is_final BOOLEAN, quality VARCHAR[], attribution VARCHAR)")
    day = FIRST
    while day <= AS_OF:
        n = day.day  # LinkedIn page 100: 1000 + 5 a day (1005 on the 1st, 1100 on the 20th)
        rows = [("linkedin", "100", "followers", 1000 + 5 * n, None), ("linkedin", "100", "follower_growth", 5, None),
                ("linkedin", "100", "social_reach", 250, None), ("linkedin", "100", "social_impressions", 400, None),
                ("linkedin", "100", "social_engagement_rate", 20, 400),
                ("facebook", "P1", "followers", 500, None), ("facebook", "P1", "social_engagement_rate", 30, 1000)]
        for source, account, kpi, num, den in rows:
            value = num if den is None else num / den
            conn.execute("INSERT INTO kpi.kpi_daily VALUES (?, ?, 'social', ?, ?, ?, ?, ?, NULL, true, [], NULL)",
                         [day, source, account, kpi, num, den, value])
        day += timedelta(days=1)
    conn.execute("CREATE TABLE kpi.crm_monthly (month DATE, source VARCHAR, account_id VARCHAR, channel VARCHAR, "
                 "customers_lost BIGINT, customers_at_start BIGINT, repeat_customers BIGINT, "
                 "customers_with_won_deal BIGINT, promoters BIGINT, detractors BIGINT, nps_responses BIGINT, "
                 "is_final BOOLEAN)")  # the monthly roll-up reads it: empty here
    for statement in rollup_view_sql().values():
        conn.execute(statement)
    build_kpi_vs_objective(conn, parse_objectives(OBJECTIVES), as_of=AS_OF)
    # Facebook's own reach of the 7 days ending March 20 (1,500) and of the 7 before (1,400); LinkedIn has none
    conn.execute("CREATE OR REPLACE VIEW kpi.social_period_reach AS SELECT * FROM (VALUES "
                 "('facebook', DATE '2026-03-20', 'P1', 'week', 1500), "
                 "('facebook', DATE '2026-03-13', 'P1', 'week', 1400), "
                 "('facebook', DATE '2026-03-19', 'P1', 'week', 9999)) AS t(source, date, account_id, period, reach)")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("social_dashboard") / "w.duckdb"
    with duckdb.connect(str(path)) as conn:
        build(conn)
        yield dashboard_model(conn, generated_at=GENERATED_AT), render_dashboard(conn, generated_at=GENERATED_AT)


def current_of(model, period, key):
    slot = model["results"][period].get(key) or [None]
    return None if slot[0] is None else slot[0][2]


def current(model, key):
    return current_of(model, "this_month", key)


def test_social_cards_per_network(model):
    data, _ = model
    cards = {c["id"] for c in data["cards"] if c["family"] == "social"}
    assert {"followers|linkedin", "follower_growth|linkedin", "social_reach|linkedin",
            "social_engagement_rate|linkedin", "followers|facebook", "social_engagement_rate|facebook"} <= cards
    headline = [c["id"] for c in data["cards"] if c["family"] == "social"][0]
    assert headline.startswith("followers|")


def test_social_values_this_month(model):
    data, _ = model
    assert current(data, "followers|linkedin|*") == 1100  # March 20's level, not a sum of 20 levels
    assert current(data, "follower_growth|linkedin|*") == 100  # 5 x 20 days
    assert current(data, "social_engagement_rate|linkedin|*") == pytest.approx(400 / 8000)  # ratio of sums
    assert current(data, "social_engagement_rate|facebook|*") == pytest.approx(0.03)
    assert current(data, "social_reach|linkedin|*") is None  # 20 days of reach never add up


def test_social_objective_and_section_on_the_page(model):
    data, page = model
    objective = [o for o in data["objectives"]["this_month"] if o["kpi"] == "follower_growth"]
    # 100 gained against 155 x 20 / 31 = 100 due by March 20: on track
    assert len(objective) == 1 and objective[0]["status"] == "on_track"
    assert 'id="family-social"' in page and 'id="trend-social"' in page


def test_reach_over_seven_days_is_the_platforms_own(model):
    data, _ = model
    cur, prev, _ = (None if r is None else r[2] for r in data["results"]["last_7"]["social_reach|facebook|*"])
    assert (cur, prev) == (1500, 1400)  # never the sum of seven daily reaches, nor the week ending on the 19th
    assert current_of(data, "last_7", "social_reach|linkedin|*") is None  # LinkedIn has no weekly reach


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not at /usr/bin/chromium")
def test_the_page_computes_followers_of_a_custom_range_as_its_last_day(tmp_path):
    """In Chromium: the followers card of a custom range the page sums itself is the range's last day's level (1,050 on
    March 10), never a sum of days; the engagement rate stays a ratio of sums."""
    from playwright.sync_api import sync_playwright

    from tests.test_dashboard_browser import DESKTOP, Opened

    path = tmp_path / "dashboard.html"
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        build(conn)
        path.write_text(render_dashboard(conn, generated_at=GENERATED_AT), encoding="utf-8")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            page = Opened(chromium, path, viewport=DESKTOP)
            assert page.card("followers|linkedin").locator(".v").inner_text() == "1,100"  # this month: March 20's
            page.page.locator('button.period[data-period="custom"]').click()
            page.page.fill("#custom-start", "2026-03-01")
            page.page.fill("#custom-end", "2026-03-10")
            page.page.locator("#custom-apply").click()
            assert page.card("followers|linkedin").locator(".v").inner_text() == "1,050"  # 1000 + 5 x 10
            assert page.card("follower_growth|linkedin").locator(".v").inner_text() == "50"
            assert page.errors == [] and page.remote == []
            page.close()
        finally:
            chromium.close()
