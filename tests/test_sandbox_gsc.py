"""The Search Console emulator, driven through the official google-api-python-client over a real socket.

The real discovery client is the point: it percent-encodes ``siteUrl``, hands back plain dicts and raises
``HttpError``, so these tests prove what a connector will see. The aggregation tests are the reason the
server exists: site totals, page rows and query rows must disagree the way Search Console does.
"""

import json
import urllib.request
from datetime import date, timedelta

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from sandbox.gsc_server import GscServer, row_json
from sandbox.launcher import start_sandbox
from sandbox.world import World

TODAY = date(2026, 1, 31)
SITE = "sc-domain:shop.example"
START, END = "2026-01-02", "2026-01-28"  # final data: up to today - 3
DAYS = [date(2026, 1, 2) + timedelta(days=i) for i in range(27)]


def _service(url: str):
    return build("searchconsole", "v1", credentials=AnonymousCredentials(), static_discovery=True,
                 cache_discovery=False, client_options={"api_endpoint": url})


def _query(svc, site=SITE, start=START, end=END, **body):
    return svc.searchanalytics().query(siteUrl=site, body={"startDate": start, "endDate": end, **body}).execute()


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture(scope="module")
def server(world):
    with GscServer(world, sites=[SITE, "https://old.shop.example/"],
                   forbidden_sites=["https://old.shop.example/"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def svc(server):
    return _service(server.url)


def test_sites_list_and_get(svc, server):
    assert svc.sites().list().execute() == {"siteEntry": [
        {"siteUrl": SITE, "permissionLevel": "siteOwner"},
        {"siteUrl": "https://old.shop.example/", "permissionLevel": "siteUnverifiedUser"},
    ]}
    assert svc.sites().get(siteUrl=SITE).execute()["permissionLevel"] == "siteOwner"
    assert server.requests[-1].path == "/webmasters/v3/sites/sc-domain%3Ashop.example"


def test_default_site_list_is_the_world_site(world):
    with GscServer(world) as srv:
        assert _service(srv.url).sites().list().execute() == {
            "siteEntry": [{"siteUrl": SITE, "permissionLevel": "siteOwner"}]}


def test_by_property_date_rows_equal_world_totals(svc, world):
    for aggregation in ("auto", "byProperty"):
        resp = _query(svc, dimensions=["date"], aggregationType=aggregation)
        assert resp["responseAggregationType"] == "byProperty"
        rows = {r["keys"][0]: r for r in resp["rows"]}
        assert sorted(rows) == [d.isoformat() for d in DAYS]
        for day in DAYS:
            gsc = world.gsc_day(SITE, day)
            row = rows[day.isoformat()]
            assert (row["clicks"], row["impressions"]) == (gsc.clicks, gsc.impressions)
            assert row["position"] == pytest.approx(gsc.position)
            assert row["ctr"] == pytest.approx(gsc.clicks / gsc.impressions)


def test_no_dimension_total_uses_impression_weighted_position(svc, world):
    (row,) = _query(svc)["rows"]
    days = [world.gsc_day(SITE, d) for d in DAYS]
    impressions = sum(g.impressions for g in days)
    assert "keys" not in row
    assert row["clicks"] == sum(g.clicks for g in days)
    assert row["impressions"] == impressions
    assert row["position"] == pytest.approx(sum(g.position * g.impressions for g in days) / impressions)


@pytest.mark.parametrize("dimension", ["device", "country"])
def test_device_and_country_rows_add_up_to_site_totals(svc, world, dimension):
    days = [world.gsc_day(SITE, d) for d in DAYS]
    resp = _query(svc, dimensions=[dimension])
    assert resp["responseAggregationType"] == "byProperty"
    rows = resp["rows"]
    keys = {r["keys"][0] for r in rows}
    assert keys == ({"DESKTOP", "MOBILE", "TABLET"} if dimension == "device"
                    else {"fra", "bel", "che", "can", "usa", "lux", "mar", "deu", "gbr", "esp", "ita"})
    assert sum(r["clicks"] for r in rows) == sum(g.clicks for g in days)
    assert sum(r["impressions"] for r in rows) == sum(g.impressions for g in days)
    weighted = sum(r["position"] * r["impressions"] for r in rows)
    assert weighted == pytest.approx(sum(g.position * g.impressions for g in days), rel=1e-9)


def test_world_breakdowns_close_exactly(world):
    for day in DAYS:
        gsc = world.gsc_day(SITE, day)
        for rows in (gsc.devices, gsc.countries):
            assert sum(r.clicks for r in rows) == gsc.clicks
            assert sum(r.impressions for r in rows) == gsc.impressions
            assert all(0 <= r.clicks <= r.impressions for r in rows)
            assert sum(r.position * r.impressions for r in rows) == pytest.approx(
                gsc.position * gsc.impressions, rel=1e-9)


def test_page_rows_overcount_and_query_rows_undercount(svc, world):
    site = _query(svc)["rows"][0]
    pages = _query(svc, dimensions=["page"])
    queries = _query(svc, dimensions=["query"])
    assert pages["responseAggregationType"] == "byPage"
    assert queries["responseAggregationType"] == "byProperty"
    assert all(r["keys"][0].startswith("https://shop.example/") for r in pages["rows"])
    assert sum(r["impressions"] for r in pages["rows"]) > site["impressions"]
    assert sum(r["clicks"] for r in queries["rows"]) < site["clicks"]
    assert sum(r["impressions"] for r in queries["rows"]) < site["impressions"]
    # date-only byPage: per-day sums of the page rows, above the byProperty figure of the same day.
    by_page = {r["keys"][0]: r for r in _query(svc, dimensions=["date"], aggregationType="byPage")["rows"]}
    for day in DAYS:
        gsc = world.gsc_day(SITE, day)
        assert by_page[day.isoformat()]["impressions"] == sum(p.impressions for p in gsc.pages) > gsc.impressions


def test_keys_follow_requested_dimension_order(svc):
    date_first = _query(svc, dimensions=["date", "device"])["rows"]
    device_first = _query(svc, dimensions=["device", "date"])["rows"]
    assert {r["keys"][0] for r in device_first} == {"DESKTOP", "MOBILE", "TABLET"}
    assert {r["keys"][1] for r in date_first} == {"DESKTOP", "MOBILE", "TABLET"}
    assert {tuple(r["keys"]) for r in date_first} == {tuple(reversed(r["keys"])) for r in device_first}
    clicks = {tuple(r["keys"]): r["clicks"] for r in date_first}
    assert all(clicks[(d, dev)] == r["clicks"] for r in device_first for dev, d in [r["keys"]])


def test_position_absent_without_impressions_and_for_discover(svc):
    rows = _query(svc, dimensions=["date"], type="discover")["rows"]
    assert rows and all("position" not in r and "ctr" in r for r in rows)
    assert all(0 < r["clicks"] < r["impressions"] for r in rows)
    assert "position" in _query(svc, dimensions=["date"], type="image")["rows"][0]
    assert row_json(["x"], 0, 0, 3.0) == {"keys": ["x"], "clicks": 0, "impressions": 0}
    assert row_json(["x"], 1, 4, 3.0) == {"keys": ["x"], "clicks": 1, "impressions": 4, "ctr": 0.25, "position": 3.0}


@pytest.mark.parametrize(("kind", "dimensions", "aggregation", "message"), [
    ("discover", ["date", "query"], None, "Requests for Discover cannot be grouped by query"),
    ("googleNews", ["date", "query"], None, "Requests for Google News cannot be grouped by query"),
    ("discover", ["date", "device"], None, "Requests for Discover cannot be grouped by device"),
    ("discover", ["date"], "byProperty", "Requests for Discover cannot be aggregated by property"),
    ("googleNews", ["date"], "byProperty", "Requests for Google News cannot be aggregated by property"),
])
def test_discover_and_google_news_refuse_what_their_reports_lack(svc, kind, dimensions, aggregation, message):
    body = {"dimensions": dimensions, "type": kind, **({"aggregationType": aggregation} if aggregation else {})}
    with pytest.raises(HttpError) as info:
        _query(svc, **body)
    assert info.value.status_code == 400 and message in str(info.value)


def test_discover_and_google_news_are_aggregated_by_page_without_position(svc, world):
    """auto resolves to byPage for both (Google aggregates them by page): the day's figures are the page rows',
    scaled by the sandbox's Discover factors (clicks x 0.08, impressions x 0.60, per page, as _SEARCH_TYPES)."""
    answer = _query(svc, dimensions=["date"], type="discover", aggregationType="auto")
    assert answer["responseAggregationType"] == "byPage"
    got = {r["keys"][0]: (r["clicks"], r["impressions"]) for r in answer["rows"]}
    for day in DAYS:
        pages = world.gsc_day(SITE, day).pages
        clicks = [round(p.clicks * 0.08) for p in pages]
        impressions = sum(max(c, round(p.impressions * 0.60)) for c, p in zip(clicks, pages, strict=True))
        assert got[day.isoformat()] == (sum(clicks), impressions)
    news = _query(svc, dimensions=["date", "device"], type="googleNews")
    assert news["responseAggregationType"] == "byPage" and news["rows"]
    assert all("position" not in r for r in news["rows"] + answer["rows"])


def test_paging_returns_every_row_once_and_ends_with_a_short_page(svc):
    everything = _query(svc, dimensions=["date", "device"], rowLimit=25000)["rows"]
    assert len(everything) == 81 and len(everything) % 5  # the last page of 5 must be short
    assert [r["clicks"] for r in everything] == sorted((r["clicks"] for r in everything), reverse=True)
    paged, start, sizes = [], 0, []
    while True:
        page = _query(svc, dimensions=["date", "device"], rowLimit=5, startRow=start).get("rows", [])
        paged += page
        sizes.append(len(page))
        if len(page) < 5:
            break
        start += 5
    assert paged == everything
    assert len({tuple(r["keys"]) for r in paged}) == 81
    assert sizes[-1] == 1 and set(sizes[:-1]) == {5}
    assert "rows" not in _query(svc, dimensions=["date", "device"], startRow=81)


def test_data_state_final_hides_recent_days_and_all_restates_them():
    world = World(seed=7, today=TODAY, restatement_days=3)
    with GscServer(world) as srv:
        svc = _service(srv.url)
        recent = {"start": "2026-01-29", "end": "2026-01-31", "dimensions": ["date"]}
        assert "rows" not in _query(svc, **recent)  # final is the default
        assert "rows" not in _query(svc, **recent, dataState="final")
        first = _query(svc, **recent, dataState="all")
        second = _query(svc, **recent, dataState="all")
        assert first["metadata"] == {"firstIncompleteDate": "2026-01-29"}
        assert [r["keys"][0] for r in sorted(first["rows"], key=lambda r: r["keys"])] == [
            "2026-01-29", "2026-01-30", "2026-01-31"]
        assert sum(r["clicks"] for r in second["rows"]) > sum(r["clicks"] for r in first["rows"])
        assert "metadata" not in _query(svc, dimensions=["date"], dataState="all")  # range ends 01-28
        assert len(_query(svc, end="2026-01-31", dimensions=["date"])["rows"]) == 27


@pytest.mark.parametrize("site", ["sc-domain:nope.example", "https://old.shop.example/"])
def test_unknown_or_forbidden_site_is_403(svc, server, site):
    with pytest.raises(HttpError) as info:
        _query(svc, site=site)
    assert info.value.status_code == 403
    assert info.value.reason == (f"User does not have sufficient permission for site '{site}'. "
                                 "See also: https://support.google.com/webmasters/answer/2451999.")
    error = json.loads(info.value.content)["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert error["errors"][0]["reason"] == "forbidden"


@pytest.mark.parametrize("body", [
    {"dimensions": ["page"], "aggregationType": "byProperty"},
    {"dimensions": ["date", "page"], "aggregationType": "BY_PROPERTY"},
    {"dimensions": ["keyword"]},
    {"rowLimit": 25001},
    {"startRow": -1},
    {"dimensions": ["date"], "dataState": "soon"},
    {"dimensions": ["date"], "bogusField": 1},
    {"start": "2026-01-10", "end": "2026-01-09"},
])
def test_invalid_requests_are_400(svc, body):
    with pytest.raises(HttpError) as info:
        _query(svc, **body)
    assert info.value.status_code == 400
    assert json.loads(info.value.content)["error"]["status"] == "INVALID_ARGUMENT"


def test_qps_quota_is_429_without_retry_after_and_slides(world):
    with GscServer(world, queries_per_minute=2) as srv:
        now = [1000.0]
        srv.clock = lambda: now[0]
        svc = _service(srv.url)
        _query(svc)
        _query(svc)
        with pytest.raises(HttpError) as info:
            _query(svc)
        assert info.value.status_code == 429
        assert info.value.reason == "Search Analytics QPS quota exceeded"
        error = json.loads(info.value.content)["error"]
        assert error["status"] == "RESOURCE_EXHAUSTED"
        assert error["errors"][0] == {"message": "Search Analytics QPS quota exceeded",
                                      "domain": "usageLimits", "reason": "rateLimitExceeded"}
        assert "retry-after" not in info.value.resp
        assert svc.sites().list().execute()["siteEntry"]  # the quota is Search Analytics only
        now[0] += 60.5
        assert _query(svc)["rows"]


def test_scripted_fault_then_normal_answer(world):
    with GscServer(world) as srv:
        srv.add_fault("status", 503, {"error": {"code": 503, "message": "Backend Error", "status": "UNAVAILABLE"}})
        svc = _service(srv.url)
        with pytest.raises(HttpError) as info:
            _query(svc)
        assert info.value.status_code == 503
        assert _query(svc)["rows"]


def test_launcher_env_points_at_a_working_search_console():
    with start_sandbox(World(seed=7, today=TODAY)) as sandbox:
        assert sandbox.env["MKPI_SEARCH_CONSOLE_SITES"] == SITE
        url = sandbox.env["MKPI_SEARCH_CONSOLE_ENDPOINT"]
        assert url.startswith("http://127.0.0.1:")
        assert len(_query(_service(url), dimensions=["date"])["rows"]) == 27
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)
