"""Social KPIs (issue #22) on hand-made raw rows: kpi.social_daily, kpi.kpi_daily and the weekly / monthly roll-ups.

Raw rows of the social contract go into <source>.account_daily and <source>.account_period_reach through the one
loader; every expected value below is worked out by hand in the comments, never read back from the code. No Dagster.
"""

from datetime import date

import pyarrow as pa
import pytest

from connectors import raw_tables as raw
from connectors.batches import Batch, Stream, Window
from connectors.warehouse import connect, load_batches
from kpi_models.context import KpiContext
from kpi_models.layer import create_rollup_views, rebuild_kpi_daily
from kpi_models.runner import MODELS, rebuild

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 8)  # Monday, Tuesday, Sunday of ISO week 2026-W10
FEB = date(2026, 2, 27)  # February 2026 has 28 days: its 28-day reach ending on the 28th is the month's own
WINDOW = Window(date(2026, 2, 1), date(2026, 3, 31))
CTX = KpiContext(tz="UTC", as_of=date(2026, 3, 31))
MEASURES = ("followers", "follower_gains", "follower_losses", "impressions", "reach", "engagements", "shares",
            "link_clicks", "posts_published", "page_views")


def day_row(day: date, account: str, **measures: int | None) -> dict:
    return {"date": day, "account_id": account, **{m: measures.get(m) for m in MEASURES}}


# LinkedIn gives net gains only (losses NULL) and no posts; Facebook gives gains and losses, and no level on D2.
LINKEDIN = [
    day_row(D1, "100", followers=1000, follower_gains=5, impressions=400, reach=250, engagements=20, shares=2,
            link_clicks=8, page_views=30),
    day_row(D2, "100", followers=1003, follower_gains=3, impressions=600, reach=300, engagements=40, shares=4,
            link_clicks=10, page_views=20),
    day_row(D3, "100", followers=1010, follower_gains=7, impressions=200, reach=100, engagements=10, shares=0,
            link_clicks=1, page_views=5),
]
FACEBOOK = [
    day_row(FEB, "P1", followers=480, follower_gains=2, follower_losses=1, impressions=100, reach=90, engagements=9,
            shares=1, link_clicks=0, posts_published=1, page_views=3),
    day_row(D1, "P1", followers=500, follower_gains=6, follower_losses=2, impressions=1000, reach=700, engagements=50,
            shares=5, link_clicks=3, posts_published=1, page_views=9),
    day_row(D2, "P1", followers=None, follower_gains=4, follower_losses=1, impressions=1000, reach=800,
            engagements=30, shares=1, link_clicks=2, posts_published=0, page_views=4),
]
FACEBOOK_PERIOD_REACH = [
    {"date": D3, "account_id": "P1", "period": "week", "reach": 1200},
    {"date": date(2026, 2, 28), "account_id": "P1", "period": "days_28", "reach": 3000},
    # a 28-day reach ending on March 31 covers March 4..31, not the month: never the month's value
    {"date": date(2026, 3, 31), "account_id": "P1", "period": "days_28", "reach": 9999},
]


def load(conn, stream: Stream, rows: list[dict], scope: str) -> None:
    table = pa.Table.from_pylist(rows, schema=stream.schema)
    load_batches(conn, [Batch(stream, table, WINDOW, {"account_id": scope})])


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    path = tmp_path_factory.mktemp("social") / "w.duckdb"
    with connect(path) as c:
        load(c, raw.LINKEDIN_ACCOUNT_DAILY, LINKEDIN, "100")
        load(c, raw.FACEBOOK_ACCOUNT_DAILY, FACEBOOK, "P1")
        load(c, raw.FACEBOOK_PERIOD_REACH, FACEBOOK_PERIOD_REACH, "P1")
        rebuild(c, MODELS["social_daily"], WINDOW, CTX)
        rebuild_kpi_daily(c, WINDOW, CTX, sources=["facebook", "instagram", "linkedin"])
        create_rollup_views(c)
        yield c


def one(conn, sql: str, *params):
    rows = conn.execute(sql, list(params)).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


def daily(conn, source: str, day: date, kpi: str):
    return one(conn, "SELECT value, quality, channel, is_final FROM kpi.kpi_daily WHERE source = ? AND date = ? "
                     "AND kpi = ?", source, day, kpi)


def test_social_daily_rows_per_network_account_and_day(conn):
    row = one(conn, "SELECT channel, followers, follower_growth, social_engagement_rate, "
                    "social_engagement_rate_per_reach, quality FROM kpi.social_daily "
                    "WHERE source = 'linkedin' AND date = ?", D1)
    # growth = net gains 5 (no losses from LinkedIn); 20 / 400 = 0.05; per reach 20 / 250 = 0.08
    assert row == ("social", 1000, 5, pytest.approx(0.05), pytest.approx(0.08), [])
    row = one(conn, "SELECT follower_growth, followers, quality FROM kpi.social_daily "
                    "WHERE source = 'facebook' AND date = ?", D2)
    assert row == (3, None, [])  # 4 - 1; no level that day: NULL, never 0
    assert conn.execute("SELECT count(*) FROM kpi.social_daily").fetchone() == (6,)


def test_kpi_daily_has_the_social_kpis_with_channel_social(conn):
    value, _, channel, _ = daily(conn, "linkedin", D1, "followers")
    assert (value, channel) == (1000, "social")
    assert daily(conn, "linkedin", D1, "follower_growth")[:2] == (5, [])  # LinkedIn's net figure as it is
    assert daily(conn, "facebook", D1, "follower_growth")[0] == 4  # 6 - 2
    assert daily(conn, "facebook", D2, "followers")[0] is None
    assert daily(conn, "linkedin", D2, "social_engagement_rate")[0] == pytest.approx(40 / 600)
    assert daily(conn, "linkedin", D2, "social_reach")[0] == 300
    assert daily(conn, "linkedin", D1, "posts_published")[0] is None  # LinkedIn posts are not read: NULL, not 0
    assert daily(conn, "facebook", D1, "social_link_clicks")[0] == 3
    assert daily(conn, "facebook", D1, "social_shares")[0] == 5
    assert daily(conn, "facebook", D1, "posts_published")[0] == 1
    # loaded now, months after the days: final
    assert daily(conn, "facebook", D1, "social_impressions")[3] is True


def weekly(conn, source: str, kpi: str):
    return one(conn, "SELECT value, aggregation, quality FROM kpi.kpi_weekly WHERE source = ? AND kpi = ? "
                     "AND week_start = ?", source, kpi, D1)


def test_weekly_followers_is_the_last_days_level_and_growth_adds_up(conn):
    assert weekly(conn, "linkedin", "followers")[:2] == (1010, "last")  # Sunday's level, not 3013
    assert weekly(conn, "linkedin", "follower_growth")[0] == 15  # 5 + 3 + 7
    # Facebook's last day of the week with data (D2) has no level: NULL, not Monday's 500
    assert weekly(conn, "facebook", "followers")[0] is None
    # ratio of sums: (20 + 40 + 10) / (400 + 600 + 200)
    assert weekly(conn, "linkedin", "social_engagement_rate")[0] == pytest.approx(70 / 1200)


def test_weekly_reach_is_the_platforms_own_or_null_never_a_sum(conn):
    value, aggregation, quality = weekly(conn, "facebook", "social_reach")
    assert (value, aggregation) == (1200, "distinct") and "platform_period_reach" in quality  # not 700 + 800
    value, _, quality = weekly(conn, "linkedin", "social_reach")
    assert value is None and "not_additive" in quality  # LinkedIn gives no weekly reach; 650 would be wrong


def test_monthly_reach_only_where_the_28_days_are_the_month(conn):
    feb = one(conn, "SELECT value, quality FROM kpi.kpi_monthly WHERE source = 'facebook' AND kpi = 'social_reach' "
                    "AND month_start = ?", date(2026, 2, 1))
    assert feb[0] == 3000 and "platform_period_reach" in feb[1]
    march = one(conn, "SELECT value, quality FROM kpi.kpi_monthly WHERE source = 'facebook' "
                      "AND kpi = 'social_reach' AND month_start = ?", date(2026, 3, 1))
    assert march[0] is None and "not_additive" in march[1]
    followers = one(conn, "SELECT value FROM kpi.kpi_monthly WHERE source = 'linkedin' AND kpi = 'followers' "
                          "AND month_start = ?", date(2026, 3, 1))
    assert followers == (1010,)


def test_objectives_refuse_a_level_or_a_distinct_count():
    """An objective on followers (a level) or reach (distinct people) could be neither pro-rated nor summed: refused
    with a clear error instead of being judged insufficient_data forever."""
    from kpi_models.objectives import ObjectiveError, parse_objectives

    for kpi in ("followers", "social_reach"):
        with pytest.raises(ObjectiveError, match=f"{kpi} is a .* that objectives do not judge"):
            parse_objectives([{"kpi": kpi, "source": "linkedin", "period": "month", "target": 1}])
    assert parse_objectives([{"kpi": "follower_growth", "source": "linkedin", "period": "month", "target": 150}])
