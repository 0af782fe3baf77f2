"""LinkedIn Pages (issue #22): the connector against the sandbox's Community Management API, values from the world.

Expected values come from sandbox/world.py (`linkedin_day`, `linkedin_follower_level`: the truth the server serves),
never from the connector. Wire rules: the pinned LinkedIn-Version header, the token in the Authorization header only,
Rest.li paging followed to the end, 429 + Retry-After honoured, LinkedIn's error bodies surfaced without the token.
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from connectors import linkedin
from connectors.batches import Window
from connectors.errors import ConfigError, InvalidResponse, SourceError
from connectors.http import RetryPolicy
from connectors.parallel import AccountLog
from connectors.settings import LinkedInSettings, Secret
from connectors.warehouse import connect as connect_warehouse
from connectors.warehouse import load_batches
from kpi_models.context import KpiContext
from kpi_models.layer import rebuild_kpi_daily
from kpi_models.runner import MODELS, rebuild
from sandbox.linkedin_server import LinkedInServer
from sandbox.world import (
    LINKEDIN_ORGANIZATION_IDS,
    Incident,
    World,
    linkedin_day,
    linkedin_follower_level,
    linkedin_posts,
)

TOKEN = "AQV-test-linkedin-token-0123456789"
TODAY = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
WINDOW = Window(date(2026, 11, 10), date(2026, 11, 16))
ORG, SMALL = LINKEDIN_ORGANIZATION_IDS
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)


def connector(server: LinkedInServer, *, orgs: tuple[str, ...] = (ORG, SMALL), token: str = TOKEN,
              sleeps: list[float] | None = None) -> linkedin.LinkedInConnector:
    settings = LinkedInSettings(organization_ids=orgs, endpoint=server.url, access_token=Secret(token),
                                timeout_seconds=5)
    return linkedin.LinkedInConnector(settings, policy=FAST, now=lambda: NOW,
                                      sleep=(sleeps.append if sleeps is not None else None))


@pytest.fixture()
def world() -> World:
    return World(seed=7, today=TODAY)


@pytest.fixture()
def server(world):
    with LinkedInServer(world, token=TOKEN) as s:
        yield s


def rows(conn: linkedin.LinkedInConnector, window: Window = WINDOW) -> dict[tuple[str, date], dict]:
    out = {}
    for batch in conn.fetch(linkedin.ACCOUNT_DAILY, window):
        for row in batch.data.to_pylist():
            out[(row["account_id"], row["date"])] = row
    return out


def test_account_daily_is_the_worlds_figures(server, world):
    got = rows(connector(server))
    assert len(got) == 2 * 7
    for (org, day), row in got.items():
        truth = linkedin_day(world, org, day)
        assert truth is not None
        assert row == {
            "date": day, "account_id": org,
            "followers": linkedin_follower_level(world, org, day),  # the level at the end of the UTC day
            "follower_gains": truth.organic_gain + truth.paid_gain, "follower_losses": None,  # net only
            "impressions": truth.impressions, "reach": truth.unique_impressions,
            "engagements": truth.clicks + truth.likes + truth.comments + truth.shares,
            "shares": truth.shares, "link_clicks": truth.clicks,
            "posts_published": len(linkedin_posts(world, org, day)),  # 0 on a day without a post
            "page_views": truth.page_views,
        }


def test_one_day_by_hand(server, world):
    # 2026-11-16 of the main page, spelled out: the world's draws for that day
    truth = linkedin_day(world, ORG, date(2026, 11, 16))
    row = rows(connector(server, orgs=(ORG,)))[(ORG, date(2026, 11, 16))]
    assert row["engagements"] == truth.clicks + truth.likes + truth.comments + truth.shares
    # the level of the 16th is today's level minus the net gains of the 17th..20th
    later = sum(linkedin_day(world, ORG, date(2026, 11, d)).organic_gain
                + linkedin_day(world, ORG, date(2026, 11, d)).paid_gain for d in range(17, 21))
    assert row["followers"] == linkedin_follower_level(world, ORG, TODAY) - later


def test_follower_levels_while_linkedin_lags(world):
    """LinkedIn has not reported the 19th and 20th yet (a stale_source incident from the 19th); the count now
    includes their follows. Each level is the count minus the reported later gains: the world's level plus the
    unreported gains, by design (docs/platforms/linkedin.md), never NULL for the whole window."""
    lagging = World(seed=7, today=TODAY, incidents=(Incident("stale_source", "linkedin", date(2026, 11, 19)),))
    with LinkedInServer(lagging, token=TOKEN) as s:
        got = rows(connector(s, orgs=(ORG,)))
    unreported = sum(linkedin_day(world, ORG, date(2026, 11, d)).organic_gain
                     + linkedin_day(world, ORG, date(2026, 11, d)).paid_gain for d in (19, 20))
    for day in (date(2026, 11, 10), date(2026, 11, 16)):
        assert got[(ORG, day)]["followers"] == linkedin_follower_level(world, ORG, day) + unreported


def test_follower_levels_are_null_when_linkedin_is_silent_past_the_reread_window():
    """LinkedIn has reported nothing since the 12th (eight days, more than the 3-day re-read window): the count now
    cannot be carried back over the unknown gains of the 12th..20th, so the reported days' followers are NULL, not
    today's count (the gains themselves are still the world's)."""
    silent = World(seed=7, today=TODAY, incidents=(Incident("stale_source", "linkedin", date(2026, 11, 12)),))
    with LinkedInServer(silent, token=TOKEN) as s:
        got = rows(connector(s, orgs=(ORG,)))
    assert set(got) == {(ORG, date(2026, 11, 10)), (ORG, date(2026, 11, 11))}
    for (_, day), row in got.items():
        truth = linkedin_day(silent, ORG, day)
        assert row["followers"] is None
        assert row["follower_gains"] == truth.organic_gain + truth.paid_gain


def test_wire_pinned_version_restli_and_token_in_the_header_only(server):
    rows(connector(server, orgs=(ORG,)))
    requests = server.requests
    paths = {r.path.split("/")[2] for r in requests}
    assert paths == {"organizationalEntityShareStatistics", "organizationPageStatistics",
                     "organizationalEntityFollowerStatistics", "networkSizes", "posts"}
    for r in requests:
        assert r.headers["linkedin-version"] == linkedin.LINKEDIN_VERSION
        assert r.headers["x-restli-protocol-version"] == "2.0.0"
        assert r.headers["authorization"] == "REDACTED"  # present, and redacted in the server's log
        assert TOKEN not in r.path and TOKEN not in str(r.query)
    stats = [r for r in requests if r.path.endswith("organizationalEntityShareStatistics")][0]
    assert stats.query["q"] == ["organizationalEntity"]
    assert stats.query["organizationalEntity"] == [f"urn:li:organization:{ORG}"]
    # UTC midnights: 2026-11-10T00:00Z .. 2026-11-17T00:00Z, DAY granularity
    assert stats.query["timeIntervals"] == ["(timeGranularityType:DAY,timeRange:(end:1794873600000,"
                                            "start:1794268800000))"]


def test_paging_is_followed_to_the_end(world):
    with LinkedInServer(world, token=TOKEN, page_size=3) as paged, LinkedInServer(world, token=TOKEN) as whole:
        assert rows(connector(paged)) == rows(connector(whole))
        starts = [r.query.get("start") for r in paged.requests if r.path.endswith("organizationPageStatistics")]
    assert starts.count(None) == 2 and ["3"] in starts and ["6"] in starts  # 7 days in pages of 3, per org


def test_429_retry_after_is_honoured(server):
    server.add_fault("rate_limit", 2)
    sleeps: list[float] = []
    got = rows(connector(server, orgs=(ORG,), sleeps=sleeps))
    assert len(got) == 7
    assert sleeps and sleeps[0] >= 2.0  # never less than LinkedIn's Retry-After


def test_a_refused_token_names_linkedins_message_never_the_token(server):
    with pytest.raises(SourceError) as caught:
        rows(connector(server, orgs=(ORG,), token="AQV-wrong-token-9876543210"))
    text = str(caught.value)
    assert "Invalid access token" in text and "INVALID_ACCESS_TOKEN" in text
    assert "AQV-wrong-token-9876543210" not in text


def test_an_organization_not_administered_fails_alone(world):
    with LinkedInServer(world, token=TOKEN, admin_of=(ORG,)) as s:
        log = AccountLog(source="linkedin")
        batches = list(connector(s).fetch(linkedin.ACCOUNT_DAILY, WINDOW, accounts=log))
        assert {b.scope["account_id"] for b in batches} == {ORG}
        assert set(log.failures) == {SMALL} and "ACCESS_DENIED" in str(log.failures[SMALL])
        findings = connector(s).probe()
    assert [f.ok for f in findings] == [True, True, False]
    assert "not an approved ADMINISTRATOR" in findings[2].text


def test_probe_checks_token_version_and_each_organization(server, world):
    findings = connector(server).probe()
    assert all(f.ok for f in findings)
    assert f"{linkedin_follower_level(world, ORG, TODAY):,} followers" in findings[1].text
    with LinkedInServer(World(seed=7, today=date(2028, 1, 5)), token=TOKEN) as later:  # 202611 sunset by then
        sunset = connector(later).probe()
    assert not sunset[0].ok and "NONEXISTENT_VERSION" in sunset[0].text
    bad = connector(server, token="AQV-wrong-token-9876543210").probe()
    assert not bad[0].ok and "token refused" in bad[0].text


def test_configuration_is_refused_before_any_request(server):
    with pytest.raises(ConfigError, match="MKPI_LINKEDIN_ORGANIZATION_IDS"):
        list(connector(server, orgs=("acme",)).fetch(linkedin.ACCOUNT_DAILY, WINDOW))
    with pytest.raises(ConfigError, match="MKPI_LINKEDIN_ACCESS_TOKEN"):
        list(connector(server, token="").fetch(linkedin.ACCOUNT_DAILY, WINDOW))
    remote = LinkedInSettings(organization_ids=(ORG,), endpoint="http://api.example.com", access_token=Secret(TOKEN))
    with pytest.raises(ConfigError, match="not https"):
        list(linkedin.LinkedInConnector(remote).fetch(linkedin.ACCOUNT_DAILY, WINDOW))
    assert server.request_count == 0
    assert linkedin.organization_id("urn:li:organization:42") == "42"


def test_a_count_that_is_not_a_count_is_refused(server):
    server.add_fault("status", 200, {"elements": [{"timeRange": {"start": 1794268800000, "end": 1794355200000},
                                                   "organizationalEntity": f"urn:li:organization:{ORG}",
                                                   "totalShareStatistics": {"impressionCount": 12.5,
                                                                            "clickCount": 1, "likeCount": 1,
                                                                            "commentCount": 0, "shareCount": 0}}],
                                     "paging": {"start": 0, "count": 10, "links": []}})
    with pytest.raises(InvalidResponse, match="impressionCount"):
        rows(connector(server, orgs=(ORG,)))


def test_posts_with_their_lifetime_statistics(server, world):
    """One row per post created in the window (UTC days), its lifetime statistics as the world states them; the
    Posts API is read newest first until a post older than the window."""
    got = {r["post_id"]: r for b in connector(server).fetch(linkedin.POSTS, WINDOW) for r in b.data.to_pylist()}
    expected = [(org, p) for org in (ORG, SMALL) for d in range(10, 17)
                for p in linkedin_posts(world, org, date(2026, 11, d))]
    assert len(expected) > 3 and set(got) == {p.urn for _, p in expected}
    for org, post in expected:
        row = got[post.urn]
        created = datetime.fromtimestamp(post.created_ms / 1000, UTC)
        assert row == {"account_id": org, "post_id": post.urn, "created_time": created.replace(tzinfo=None),
                       "created_date": created.date(), "media_type": None,
                       "permalink": f"https://www.linkedin.com/feed/update/{post.urn}",
                       "impressions": post.impressions, "reach": post.unique_impressions, "likes": post.likes,
                       "comments": post.comments, "shares": post.shares, "saved": None, "replies": None,
                       "link_clicks": post.clicks}
    pages = [r for r in server.requests if r.path.endswith("/posts")]
    assert all(r.query["sortBy"] == ["CREATED"] and r.query["count"] == ["100"] for r in pages)


def test_posts_of_an_older_window_are_read_through_several_pages(server, world):
    older = Window(date(2026, 5, 4), date(2026, 5, 10))  # ~200 newer posts come first: three pages of 100
    batches = connector(server, orgs=(ORG,)).fetch(linkedin.POSTS, older)
    got = {r["post_id"] for b in batches for r in b.data.to_pylist()}
    assert got == {p.urn for d in range(4, 11) for p in linkedin_posts(world, ORG, date(2026, 5, d))}
    starts = [r.query.get("start") for r in server.requests if r.path.endswith("/posts")]
    assert len(starts) >= 2 and starts[0] == ["0"] and starts[1] == ["100"]


def test_period_reach_is_empty_for_linkedin(server):
    batches = list(connector(server).fetch(linkedin.PERIOD_REACH, WINDOW))
    assert [b.data.num_rows for b in batches] == [0, 0]  # each organization's window replaced by nothing


def test_social_kpis_from_the_sandbox_world(server, world, tmp_path):
    """Loaded through the one loader, rebuilt into kpi.social_daily and kpi.kpi_daily: followers, growth and the
    engagement rate equal what the world says."""
    with connect_warehouse(tmp_path / "w.duckdb") as conn:
        load_batches(conn, connector(server).fetch(linkedin.ACCOUNT_DAILY, WINDOW))
        context = KpiContext(tz="UTC", as_of=TODAY - timedelta(days=1))
        rebuild(conn, MODELS["social_daily"], WINDOW, context)
        rebuild_kpi_daily(conn, WINDOW, context, sources=["linkedin"])
        got = {(r[0], r[1]): r[2] for r in conn.execute(
            "SELECT kpi, date, value FROM kpi.kpi_daily WHERE source = 'linkedin' AND account_id = ? "
            "AND channel = 'social'", [ORG]).fetchall()}
    day = date(2026, 11, 12)
    truth = linkedin_day(world, ORG, day)
    assert got[("followers", day)] == linkedin_follower_level(world, ORG, day)
    assert got[("follower_growth", day)] == truth.organic_gain + truth.paid_gain
    engagements = truth.clicks + truth.likes + truth.comments + truth.shares
    assert got[("social_engagement_rate", day)] == pytest.approx(engagements / truth.impressions)
    assert got[("social_reach", day)] == truth.unique_impressions
    week = sum(linkedin_day(world, ORG, date(2026, 11, d)).impressions for d in range(10, 17))
    assert sum(v for (k, _), v in got.items() if k == "social_impressions") == week


@pytest.mark.parametrize("fault", [("oversized", 3 * 1024 * 1024), ("endless",)], ids=["oversized", "endless"])
def test_an_answer_past_the_size_limit_stops_there(server, monkeypatch, fault):
    """The client's requests go through the project's guarded session: a body past MKPI_LINKEDIN_MAX_ANSWER_MB
    stops there, fatal (not retried), naming the limit."""
    monkeypatch.setenv("MKPI_LINKEDIN_MAX_ANSWER_MB", "1")
    server.add_fault(*fault)
    with pytest.raises(SourceError) as caught:
        connector(server, orgs=(ORG,)).network_size(ORG)
    assert "larger than the 1 MB allowed (MKPI_LINKEDIN_MAX_ANSWER_MB)" in str(caught.value)
    assert server.request_count == 1


def test_recent_days_restate_and_a_re_read_replaces_them(tmp_path):
    """With the world restating its last two days, the first read of the window shows less for them (the world's
    restatement_factor of version 0), a later read more; loaded twice through the one loader, the table holds the
    later read, and the older days are the same both times."""
    restating = World(seed=7, today=TODAY, restatement_days=2)
    window = Window(date(2026, 11, 16), date(2026, 11, 20))
    with LinkedInServer(restating, token=TOKEN) as s:
        first = rows(connector(s, orgs=(ORG,)), window)
        with connect_warehouse(tmp_path / "w.duckdb") as conn:
            load_batches(conn, connector(s, orgs=(ORG,)).fetch(linkedin.ACCOUNT_DAILY, window))
            loaded = dict(conn.execute("SELECT date, impressions FROM linkedin.account_daily").fetchall())
    final = {d: linkedin_day(restating, ORG, d).impressions for d in (date(2026, 11, 19), date(2026, 11, 20))}
    for day, impressions in final.items():
        assert first[(ORG, day)]["impressions"] == int(impressions * restating.restatement_factor(day, 0))
        assert first[(ORG, day)]["impressions"] < loaded[day] <= impressions
    assert first[(ORG, date(2026, 11, 17))]["impressions"] == loaded[date(2026, 11, 17)]  # settled: unchanged
