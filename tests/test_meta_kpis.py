"""Facebook Page and Instagram KPIs in kpi.kpi_daily and kpi.kpi_weekly, checked against the sandbox world (issue #22).

One ISO week (Monday 2026-03-02 to Sunday 2026-03-08) of both networks is read from the sandbox's Graph API server
(sandbox/meta_server.py) through the official connectors, loaded by the one loader into a temporary DuckDB and rebuilt
into kpi.social_daily and kpi.kpi_daily. Every expected value is computed here from the world's own Meta functions
(sandbox/world.py: meta_day, meta_followers, meta_posts), never read back from the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from connectors import facebook, instagram
from connectors.batches import Window
from connectors.http import RetryPolicy
from connectors.settings import load_settings
from connectors.warehouse import connect as connect_warehouse
from connectors.warehouse import load_batches
from kpi_models.context import KpiContext
from kpi_models.layer import create_rollup_views, rebuild_kpi_daily
from kpi_models.runner import MODELS, rebuild
from sandbox.meta_server import MetaServer
from sandbox.world import FACEBOOK_PAGE_ID, INSTAGRAM_ACCOUNT_ID, MetaDay, World, meta_day, meta_followers, meta_posts

TODAY = date(2026, 3, 10)
WEEK = Window(date(2026, 3, 2), date(2026, 3, 8))  # ISO week 2026-W10, Monday to Sunday, all days before TODAY
DAYS = (date(2026, 3, 3), date(2026, 3, 6))
TOKEN = "EAABsandboxtoken0123456789abcdef"
FAST = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)
ACCOUNTS = {"facebook": FACEBOOK_PAGE_ID, "instagram": INSTAGRAM_ACCOUNT_ID}


@dataclass(frozen=True)
class Kpi:
    """One kpi.kpi_daily row's figures."""

    numerator: float | None
    denominator: float | None
    value: float | None
    channel: str


@pytest.fixture(scope="module")
def world() -> World:
    return World(today=TODAY)


@pytest.fixture(scope="module")
def warehouse(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """The week of both networks loaded and rebuilt into the KPI tables, as the pipeline does."""
    folder: Path = tmp_path_factory.mktemp("meta_kpis")
    config = folder / "mkpi.yaml"
    config.write_text("{}\n", encoding="utf-8")
    with MetaServer(world, token=TOKEN) as server, connect_warehouse(folder / "w.duckdb") as conn:
        settings = load_settings(config, environ=server.env())
        for module in (facebook, instagram):
            made = module.connect(settings)
            made.policy = FAST
            made.sleep = lambda _s: None
            load_batches(conn, made.fetch_all(WEEK))
        context = KpiContext(tz="UTC", as_of=TODAY - timedelta(days=1))
        rebuild(conn, MODELS["social_daily"], WEEK, context)
        rebuild_kpi_daily(conn, WEEK, context, sources=["facebook", "instagram"])
        create_rollup_views(conn)
        yield conn


def daily(conn: duckdb.DuckDBPyConnection, source: str) -> dict[tuple[str, date], Kpi]:
    """kpi.kpi_daily of one network's account, by (kpi, date)."""
    rows = conn.execute(
        "SELECT kpi, date, numerator, denominator, value, channel FROM kpi.kpi_daily "
        "WHERE source = ? AND account_id = ?", [source, ACCOUNTS[source]]).fetchall()
    return {(kpi, day): Kpi(num, den, val, channel) for kpi, day, num, den, val, channel in rows}


def count(value: int) -> Kpi:
    """An additive count or level: numerator = value, no denominator, channel social."""
    return Kpi(float(value), None, float(value), "social")


def assert_activity(got: dict[tuple[str, date], Kpi], day: date, facts: MetaDay) -> None:
    """Impressions (Meta's views), engagements and their rate (engagements / impressions) equal the world's day."""
    assert got[("social_impressions", day)] == count(facts.views)
    assert got[("social_engagements", day)] == count(facts.engagements)
    rate = got[("social_engagement_rate", day)]
    assert (rate.numerator, rate.denominator) == (facts.engagements, facts.views)
    assert rate.value == pytest.approx(facts.engagements / facts.views)


def test_facebook_page_kpis_are_the_worlds(warehouse, world):
    got = daily(warehouse, "facebook")
    assert {kpi.channel for kpi in got.values()} == {"social"}
    assert {day for _, day in got} == set(WEEK.dates())
    for day in DAYS:
        facts = meta_day(world, FACEBOOK_PAGE_ID, day)
        assert got[("followers", day)] == count(meta_followers(world, FACEBOOK_PAGE_ID, day))
        assert got[("follower_growth", day)] == count(facts.follows - facts.unfollows)
        assert_activity(got, day, facts)
        assert got[("posts_published", day)] == count(len(meta_posts(world, FACEBOOK_PAGE_ID, day)))


def test_facebook_growth_is_the_change_of_the_level(warehouse, world):
    """Stated by hand: a day's net growth is its level minus the previous day's level (the world's own sum)."""
    got = daily(warehouse, "facebook")
    for day in DAYS:
        change = meta_followers(world, FACEBOOK_PAGE_ID, day) - meta_followers(world, FACEBOOK_PAGE_ID,
                                                                               day - timedelta(days=1))
        assert got[("follower_growth", day)].value == change


def test_instagram_account_kpis_are_the_worlds(warehouse, world):
    got = daily(warehouse, "instagram")
    assert {kpi.channel for kpi in got.values()} == {"social"}
    assert {day for _, day in got} == set(WEEK.dates())
    for day in DAYS:
        facts = meta_day(world, INSTAGRAM_ACCOUNT_ID, day)
        assert_activity(got, day, facts)
        # /stories lists only the last 24 hours' stories: a past day's posts_published counts its posts and reels
        lasting = [p for p in meta_posts(world, INSTAGRAM_ACCOUNT_ID, day) if p.media_type != "STORY"]
        assert got[("posts_published", day)] == count(len(lasting))


def test_instagram_followers_level_stays_null(warehouse):
    """Instagram gives no follower level per day: kpi_daily keeps NULL (never 0), every day of the week."""
    got = daily(warehouse, "instagram")
    for day in WEEK.dates():
        assert got[("followers", day)] == Kpi(None, None, None, "social")


def test_instagram_follower_growth_is_net(warehouse, world):
    """follower_growth is net gains (KPI_CATALOGUE): Instagram gives new follows but no unfollows, so the net figure
    is unknown (NULL) every day, never the gross follows the world has."""
    got = daily(warehouse, "instagram")
    for day in WEEK.dates():
        assert got[("follower_growth", day)] == Kpi(None, None, None, "social")
    for day in DAYS:
        facts = meta_day(world, INSTAGRAM_ACCOUNT_ID, day)
        assert facts.follows != facts.follows - facts.unfollows  # the gross figure would be told apart


def test_week_followers_is_the_last_days_level(warehouse, world):
    """kpi.kpi_weekly: followers roll up to Sunday's level (never a sum); Instagram's stays NULL."""
    rows = {source: (week_start, week_end, value) for source, week_start, week_end, value in warehouse.execute(
        "SELECT source, week_start, week_end, value FROM kpi.kpi_weekly WHERE kpi = 'followers' AND channel = 'social'"
        " AND account_id IN (?, ?)", [FACEBOOK_PAGE_ID, INSTAGRAM_ACCOUNT_ID]).fetchall()}
    sunday = meta_followers(world, FACEBOOK_PAGE_ID, WEEK.end)
    assert rows == {"facebook": (WEEK.start, WEEK.end, sunday), "instagram": (WEEK.start, WEEK.end, None)}
    assert sunday < sum(meta_followers(world, FACEBOOK_PAGE_ID, day) for day in WEEK.dates())


def test_week_impressions_are_the_sum_of_the_days(warehouse, world):
    """An additive KPI of the same week does add up: the Page's views of the seven days."""
    value = warehouse.execute(
        "SELECT value FROM kpi.kpi_weekly WHERE kpi = 'social_impressions' AND source = 'facebook' "
        "AND account_id = ? AND week_start = ?", [FACEBOOK_PAGE_ID, WEEK.start]).fetchone()[0]
    assert value == sum(meta_day(world, FACEBOOK_PAGE_ID, day).views for day in WEEK.dates())

