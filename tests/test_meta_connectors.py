"""Facebook Pages and Instagram through Meta's Graph API (connectors/facebook.py, connectors/instagram.py) against
the sandbox's Graph API server (sandbox/meta_server.py).

Expected values come from the sandbox world's Meta section (sandbox/world.py: meta_day, meta_followers,
meta_period_reach, meta_posts), never from the connector; the follower level is also checked against a hand-made
invariant (today's level = yesterday's + follows - unfollows). Also: the token travels only in the Authorization
header (never a query string, a log line or an exception), throttling errors and usage headers are honoured through
the project's retry rule, a retired metric fails naming the metric and the version, and edges and long windows are
read to the end.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from connectors import facebook, instagram
from connectors.batches import Window
from connectors.errors import InvalidResponse, SourceError
from connectors.http import RetryPolicy
from connectors.meta_graph import GRAPH_API_VERSION, RetiredMetric, daily_values
from connectors.parallel import AccountLog
from connectors.settings import load_settings
from connectors.warehouse import load_batches
from sandbox.meta_server import MetaServer
from sandbox.world import (
    FACEBOOK_PAGE_ID,
    INSTAGRAM_ACCOUNT_ID,
    World,
    meta_day,
    meta_followers,
    meta_period_reach,
    meta_posts,
)

TODAY = date(2026, 3, 10)
WINDOW = Window(date(2026, 2, 24), date(2026, 3, 9))
IG_WINDOW = Window(date(2026, 2, 24), TODAY)
# /stories lists the stories of the last 24 hours; the sandbox's "now" is the end of its today (Pacific midnight)
STORIES_SINCE = datetime(2026, 3, 11, 0, 0, tzinfo=ZoneInfo("America/Los_Angeles")) - timedelta(hours=24)
TOKEN = "EAABsandboxtoken0123456789abcdef"
FAST = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)


@pytest.fixture(scope="module")
def world() -> World:
    return World(today=TODAY)


@pytest.fixture
def server(world):
    with MetaServer(world, token=TOKEN) as running:
        yield running


@pytest.fixture
def settings(server, tmp_path):
    path = tmp_path / "mkpi.yaml"
    path.write_text("{}\n", encoding="utf-8")
    return load_settings(path, environ=server.env())


def connector(module, settings, waits: list[float] | None = None):
    made = module.connect(settings)
    made.policy = FAST
    made.sleep = (waits.append if waits is not None else (lambda _s: None))
    return made


def tables(made, window: Window = WINDOW) -> dict[str, list[dict]]:
    return {b.stream.table: b.data.to_pylist() for b in made.fetch_all(window)}


# ---- values -----------------------------------------------------------------------------------------------------

def test_facebook_account_daily_is_the_worlds_page_insights(world, settings, server):
    rows = tables(connector(facebook, settings))["facebook.account_daily"]
    expected = []
    for day in WINDOW.dates():
        facts = meta_day(world, FACEBOOK_PAGE_ID, day)
        expected.append({
            "date": day, "account_id": FACEBOOK_PAGE_ID, "followers": meta_followers(world, FACEBOOK_PAGE_ID, day),
            "follower_gains": facts.follows, "follower_losses": facts.unfollows, "impressions": facts.views,
            "reach": facts.reach, "engagements": facts.engagements, "shares": None, "link_clicks": None,
            "posts_published": len(meta_posts(world, FACEBOOK_PAGE_ID, day)), "page_views": facts.page_views})
    assert rows == expected
    # the level moves by the day's follows minus unfollows (stated by hand, independent of the world's own sum)
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["followers"] == before["followers"] + after["follower_gains"] - after["follower_losses"]


def test_facebook_one_day_by_hand(settings):
    """One day written out: 2026-03-01, the world's figures for the Page (sandbox/world.py meta_day, seed 7)."""
    rows = tables(connector(facebook, settings), Window(date(2026, 3, 1), date(2026, 3, 1)))["facebook.account_daily"]
    assert [(r["impressions"], r["reach"], r["engagements"], r["follower_gains"], r["follower_losses"],
             r["page_views"]) for r in rows] == [(7051, 3641, 251, 31, 12, 453)]


def test_facebook_period_reach_is_the_platforms_own(world, settings):
    rows = tables(connector(facebook, settings))["facebook.account_period_reach"]
    expected = {(day, period): meta_period_reach(world, FACEBOOK_PAGE_ID, day, period)
                for period in ("week", "days_28") for day in WINDOW.dates()}
    assert {(r["date"], r["period"]): r["reach"] for r in rows} == expected
    # never the sum of the daily reach
    day = WINDOW.end
    assert expected[(day, "week")] < sum(meta_day(world, FACEBOOK_PAGE_ID, day - timedelta(k)).reach for k in range(7))


def test_facebook_posts_with_lifetime_insights(world, settings):
    rows = tables(connector(facebook, settings))["facebook.posts"]
    expected = {p.post_id: p for day in WINDOW.dates() for p in meta_posts(world, FACEBOOK_PAGE_ID, day)}
    assert {r["post_id"] for r in rows} == set(expected)
    for row in rows:
        post = expected[row["post_id"]]
        assert (row["impressions"], row["reach"], row["likes"], row["shares"], row["link_clicks"]) == (
            post.views, post.reach, post.likes, post.shares, post.link_clicks)
        assert row["created_date"] == post.local_date and row["comments"] is None
        assert row["created_time"] == post.created_time.replace(tzinfo=None)


def test_instagram_account_daily(world, settings):
    rows = tables(connector(instagram, settings), IG_WINDOW)["instagram.account_daily"]
    assert [r["date"] for r in rows] == list(IG_WINDOW.dates())
    for row in rows:
        day = row["date"]
        facts = meta_day(world, INSTAGRAM_ACCOUNT_ID, day)
        # stories are listed for 24 hours only: a past day counts its posts and reels, today its stories too
        visible = [p for p in meta_posts(world, INSTAGRAM_ACCOUNT_ID, day)
                   if p.media_type != "STORY" or p.created_time >= STORIES_SINCE]
        assert row == {
            "date": day, "account_id": INSTAGRAM_ACCOUNT_ID, "followers": None,
            # follower_count: the last 30 days, the current day excluded
            "follower_gains": facts.follows if day < TODAY else None, "follower_losses": None,
            "impressions": facts.views, "reach": facts.reach, "engagements": facts.engagements, "shares": facts.shares,
            "link_clicks": facts.link_clicks, "posts_published": len(visible), "page_views": None}


def test_instagram_new_followers_only_for_the_last_30_days(settings):
    window = Window(TODAY - timedelta(days=35), TODAY - timedelta(days=25))
    rows = tables(connector(instagram, settings), window)["instagram.account_daily"]
    gains = {r["date"]: r["follower_gains"] for r in rows}
    assert all(v is None for d, v in gains.items() if d < TODAY - timedelta(days=30))
    assert all(v is not None for d, v in gains.items() if d >= TODAY - timedelta(days=30))


def test_instagram_media_posts_reels_and_stories(world, settings):
    got = tables(connector(instagram, settings), IG_WINDOW)
    rows = got["instagram.posts"]
    assert got["instagram.account_period_reach"] == []
    expected = {p.post_id: p for day in IG_WINDOW.dates() for p in meta_posts(world, INSTAGRAM_ACCOUNT_ID, day)
                if p.media_type != "STORY" or p.created_time >= STORIES_SINCE}
    assert any(p.media_type == "STORY" for p in expected.values())
    assert {r["post_id"] for r in rows} == set(expected)
    for row in rows:
        post = expected[row["post_id"]]
        assert row["media_type"] == post.media_type
        if post.media_type == "STORY":
            assert (row["reach"], row["replies"], row["shares"], row["likes"]) == (post.reach, post.replies,
                                                                                   post.shares, None)
        else:
            assert (row["impressions"], row["reach"], row["likes"], row["comments"], row["saved"]) == (
                post.views, post.reach, post.likes, post.comments, post.saved)


def test_tables_load_through_the_one_loader(settings, tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        load_batches(conn, connector(facebook, settings).fetch_all(WINDOW))
        load_batches(conn, connector(facebook, settings).fetch_all(WINDOW))  # twice: the same rows
        assert conn.execute("select count(*), count(distinct date) from facebook.account_daily").fetchone() == (
            WINDOW.days, WINDOW.days)
        types = dict(conn.execute("select column_name, data_type from information_schema.columns "
                                  "where table_schema = 'facebook' and table_name = 'posts'").fetchall())
        assert types["created_time"] == "TIMESTAMP" and types["likes"] == "BIGINT"


# ---- paging and windows -----------------------------------------------------------------------------------------

def test_long_windows_are_cut_and_edges_paged_to_the_end(world, settings, server):
    window = Window(TODAY - timedelta(days=119), TODAY - timedelta(days=1))
    rows = tables(connector(facebook, settings), window)
    expected_posts = sum(len(meta_posts(world, FACEBOOK_PAGE_ID, d)) for d in window.dates())
    assert expected_posts > 100  # more than one page of the edge (limit 100)
    assert len(rows["facebook.posts"]) == expected_posts
    assert len(rows["facebook.account_daily"]) == window.days
    edge_calls = [r for r in server.requests if r.path.endswith("/published_posts")]
    assert len(edge_calls) == 2 and "after" in edge_calls[1].query
    day_insights = [r for r in server.requests if r.path.endswith(f"{FACEBOOK_PAGE_ID}/insights")
                    and r.query.get("period") == ["day"]]
    assert len(day_insights) == 2  # 90 + 29 days: Graph refuses spans over 90 days


def test_the_server_refuses_spans_over_90_days_as_graph_does(settings):
    made = connector(facebook, settings)
    with pytest.raises(SourceError, match="90 days"):
        made.client().insights(FACEBOOK_PAGE_ID, ["page_media_view"], {"period": "day", "since": "2026-01-01",
                                                                       "until": "2026-04-02"}, account="x", what="t")


def test_every_request_names_the_pinned_version(settings, server):
    tables(connector(instagram, settings), Window(TODAY - timedelta(days=2), TODAY - timedelta(days=1)))
    assert server.requests and all(r.path.startswith(f"/{GRAPH_API_VERSION}/") for r in server.requests)


# ---- the token --------------------------------------------------------------------------------------------------

def test_the_token_travels_only_in_the_authorization_header(settings, server, caplog):
    caplog.set_level(logging.DEBUG)
    server.add_throttle(4)
    for module in (facebook, instagram):
        tables(connector(module, settings), Window(TODAY - timedelta(days=3), TODAY - timedelta(days=1)))
    assert server.tokens_in_query == 0
    assert all("access_token" not in r.query for r in server.requests)
    assert all("authorization" in r.headers for r in server.requests)
    assert TOKEN not in caplog.text


def test_a_refused_token_fails_without_showing_it(settings, server, caplog):
    echo = {"error": {"message": f"Invalid OAuth access token {TOKEN}", "type": "OAuthException", "code": 190,
                      "fbtrace_id": "Atrace"}}
    server.add_fault("status", 400, echo)
    with pytest.raises(SourceError) as raised:
        tables(connector(facebook, settings))
    assert "code 190" in str(raised.value) and "Atrace" in str(raised.value)
    chain, seen = [], raised.value
    while seen is not None:
        chain.append(f"{seen!s} {seen!r}")
        seen = seen.__cause__ or seen.__context__
    assert TOKEN not in " ".join(chain) and TOKEN not in caplog.text


# ---- throttling -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
def test_a_throttling_error_is_retried(settings, server, code):
    server.add_throttle(code)
    made = connector(facebook, settings)
    rows = tables(made, Window(TODAY - timedelta(days=2), TODAY - timedelta(days=1)))
    assert len(rows["facebook.account_daily"]) == 2
    assert made.stats.retries >= 1 and any("throttled" in reason for reason in made.stats.retry_reasons)


def test_a_429_and_a_500_are_retried(settings, server):
    server.add_fault("rate_limit", 1)
    server.add_fault("server_error", 500)
    made = connector(instagram, settings)
    rows = tables(made, Window(TODAY - timedelta(days=2), TODAY - timedelta(days=1)))
    assert len(rows["instagram.account_daily"]) == 2 and made.stats.retries == 2


def test_the_announced_time_to_regain_access_is_waited(settings, server):
    server.regain_minutes = 2
    server.add_throttle(80001, FACEBOOK_PAGE_ID)
    waits: list[float] = []
    made = connector(facebook, settings, waits)
    made.policy = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, max_retry_after=900.0)
    tables(made, Window(TODAY - timedelta(days=1), TODAY - timedelta(days=1)))
    # X-Business-Use-Case-Usage said estimated_time_to_regain_access: 2 (minutes): the retry waited 120 s at least
    assert made.stats.retries >= 1 and made.stats.waits[0][1] >= 120


def test_usage_near_the_limit_slows_down(settings, server):
    server.app_usage = 95
    waits: list[float] = []
    made = connector(facebook, settings, waits)
    tables(made, Window(TODAY - timedelta(days=1), TODAY - timedelta(days=1)))
    assert waits and all(w > 0 for w in waits)
    assert made.client().usage == 95 and made.client().paced_seconds == sum(waits) and made.stats.retries == 0
    server.app_usage = 40
    calm: list[float] = []
    tables(connector(facebook, settings, calm), Window(TODAY - timedelta(days=1), TODAY - timedelta(days=1)))
    assert calm == []


# ---- retired metrics --------------------------------------------------------------------------------------------

def test_a_retired_metric_is_a_clear_error_never_zeros(settings, server):
    server.retired.add("page_media_view")
    with pytest.raises(RetiredMetric) as raised:
        tables(connector(facebook, settings))
    text = str(raised.value)
    assert "page_media_view" in text and GRAPH_API_VERSION in text and "valid insights metric" in text


def test_a_retired_metric_fails_the_account_in_a_run(settings, server):
    server.retired.add("total_interactions")
    log = AccountLog("instagram")
    batches = list(connector(instagram, settings).fetch_all(WINDOW, accounts=log))
    assert batches == []
    assert INSTAGRAM_ACCOUNT_ID in str(log.failed) and "total_interactions" in str(log.failed)


def test_doctor_names_a_retired_metric(settings, server):
    server.retired.add("page_post_engagements")
    findings = facebook.connect(settings).probe()
    assert findings[0].ok and not findings[1].ok and "page_post_engagements" in findings[1].text


def test_doctor_checks_token_and_each_account(settings, server):
    for module, label in ((facebook, "Page"), (instagram, "Instagram account")):
        findings = module.connect(settings).probe()
        assert [f.ok for f in findings] == [True, True], findings
        assert label in findings[1].text


# ---- configuration, before any request --------------------------------------------------------------------------

def test_configuration_is_refused_before_any_request(tmp_path, server):
    from connectors.errors import ConfigError

    path = tmp_path / "mkpi.yaml"
    path.write_text("{}\n", encoding="utf-8")
    cases = {
        "MKPI_META_ACCESS_TOKEN": ({**server.env(), "MKPI_META_ACCESS_TOKEN": ""}, "set MKPI_META_ACCESS_TOKEN"),
        "ids": ({**server.env(), "MKPI_FACEBOOK_PAGE_IDS": "shop-page"}, "not numeric: MKPI_FACEBOOK_PAGE_IDS"),
        "plain http": ({**server.env(), "MKPI_META_ENDPOINT": "http://graph.example.com"}, "use https://"),
    }
    for name, (environ, words) in cases.items():
        with pytest.raises(ConfigError, match=words):
            facebook.connect(load_settings(path, environ=environ)).check()
        assert server.request_count == 0, name
    path.write_text("meta:\n  access_token: EAABinthefile0123\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="secrets and credentials come from the environment only .*"
                                          "MKPI_META_ACCESS_TOKEN"):
        load_settings(path, environ={})


def test_an_edge_whose_cursor_does_not_move_fails_instead_of_looping(settings, server):
    page = {"data": [{"id": "1", "created_time": "2026-03-09T16:00:00+0000"}],
            "paging": {"cursors": {"before": "QQ", "after": "QQ"}, "next": f"{server.url}/v26.0/x?after=QQ"}}
    for _ in range(2):
        server.add_fault("status", 200, page)
    with pytest.raises(SourceError, match="did not move"):
        list(connector(facebook, settings).client().edge(FACEBOOK_PAGE_ID, "published_posts", {}, account="p",
                                                         what="published_posts"))
    assert server.request_count == 2


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -3, 2.5, None, True, "many"])
def test_an_insights_value_that_is_no_count_is_refused_never_loaded(value):
    """NaN, Infinity, a negative, a fraction, a missing value: the answer contract refuses it, naming the metric."""
    answer = {"data": [{"name": "page_media_view", "period": "day",
                        "values": [{"value": value, "end_time": "2026-03-03T08:00:00+0000"}]}]}
    with pytest.raises(InvalidResponse, match="page_media_view"):
        daily_values(answer, "facebook", FACEBOOK_PAGE_ID, "insights day")
