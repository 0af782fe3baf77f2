"""Search Console connector against the sandbox server over a real socket, through the official client."""

from datetime import date, timedelta

import pyarrow as pa
import pytest

from connectors.batches import Window
from connectors.errors import ConfigError, InvalidResponse, SourceError
from connectors.http import RetryPolicy
from connectors.search_console import (
    DEVICES,
    PAGES,
    QUERIES,
    SITE_TOTALS,
    SearchConsoleConnector,
    first_incomplete_date,
    skipped_search_types,
)
from connectors.settings import SearchConsoleSettings
from sandbox.gsc_server import GscServer
from sandbox.world import DEFAULT_GSC_SITE, World

TODAY = date(2026, 3, 31)
SITE = DEFAULT_GSC_SITE
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 10))


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture
def server(world):
    with GscServer(world) as srv:
        yield srv


def connector(url: str, **overrides) -> tuple[SearchConsoleConnector, list[float]]:
    sleeps: list[float] = []
    settings = SearchConsoleSettings(sites=(SITE,), endpoint=url, timeout_seconds=5, **overrides)
    conn = SearchConsoleConnector(settings, sleep=sleeps.append,
                                  policy=RetryPolicy(base_delay=0.01, max_delay=0.05))
    return conn, sleeps


def fetch(conn, report, window=WINDOW) -> pa.Table:
    return pa.concat_tables([b.data for b in conn.fetch(report, window)])


def test_site_totals_are_the_by_property_figures(server, world):
    conn, _ = connector(server.url)
    table = fetch(conn, SITE_TOTALS)
    assert table.schema.equals(SITE_TOTALS.stream.schema)
    rows = {r["date"]: r for r in table.to_pylist()}
    assert sorted(rows) == list(WINDOW.dates())
    for day, row in rows.items():
        truth = world.gsc_day(SITE, day)
        assert (row["clicks"], row["impressions"]) == (truth.clicks, truth.impressions)
        assert row["position"] == pytest.approx(truth.position)
        assert row["site_url"] == SITE and row["search_type"] == "web" and row["data_state"] == "final"
    assert conn.stats.requests == 1


def test_page_rows_overcount_and_query_rows_undercount(server):
    conn, _ = connector(server.url)
    totals = fetch(conn, SITE_TOTALS)
    pages = fetch(conn, PAGES)
    queries = fetch(conn, QUERIES)
    assert pa.compute.sum(pages["impressions"]).as_py() > pa.compute.sum(totals["impressions"]).as_py()
    assert pa.compute.sum(queries["clicks"]).as_py() < pa.compute.sum(totals["clicks"]).as_py()


def test_positional_keys_follow_the_requested_dimensions(server, world):
    conn, _ = connector(server.url)
    table = fetch(conn, DEVICES, Window(date(2026, 3, 2), date(2026, 3, 2)))
    got = {r["device"]: (r["date"], r["clicks"]) for r in table.to_pylist()}
    truth = world.gsc_day(SITE, date(2026, 3, 2))
    assert got == {d.key: (date(2026, 3, 2), d.clicks) for d in truth.devices}


def test_paging_until_a_short_page(server):
    conn, _ = connector(server.url)
    full = fetch(conn, PAGES)
    small, _ = connector(server.url, row_limit=7)
    paged = fetch(small, PAGES)
    order = [("date", "ascending"), ("page", "ascending")]
    assert paged.sort_by(order).equals(full.sort_by(order))
    assert small.stats.requests == full.num_rows // 7 + 1  # the last page is short (or empty)


def test_one_request_reads_final_and_fresh_days_labelled_by_first_incomplete_date(server, world):
    """The sandbox holds the last 3 days back from dataState=final (days up to TODAY - 3 are final), so the
    answer's metadata.firstIncompleteDate is TODAY - 2: the days before it are labelled final, the others all."""
    conn, _ = connector(server.url)
    window = Window(TODAY - timedelta(days=6), TODAY - timedelta(days=1))
    table = fetch(conn, SITE_TOTALS, window)
    states = {r["date"]: r["data_state"] for r in table.to_pylist()}
    assert states == {TODAY - timedelta(days=n): ("final" if n >= 3 else "all") for n in range(1, 7)}
    # the fresh days are there, in one request for the whole window (the request minimum)
    assert conn.stats.requests == 1
    sent = [r.json for r in server.requests if r.method == "POST"]
    assert [(b["dataState"], b["startDate"], b["endDate"]) for b in sent] == [
        ("all", window.start.isoformat(), window.end.isoformat())]


def test_a_window_of_complete_days_is_all_final(server):
    conn, _ = connector(server.url)
    table = fetch(conn, SITE_TOTALS, Window(date(2026, 3, 1), date(2026, 3, 5)))
    assert table.num_rows == 5 and set(table.column("data_state").to_pylist()) == {"final"}


def test_reread_data_state_final_reads_final_days_only(server):
    conn, _ = connector(server.url, reread_data_state="final")
    table = fetch(conn, SITE_TOTALS, Window(TODAY - timedelta(days=6), TODAY - timedelta(days=1)))
    assert max(table.column("date").to_pylist()) == TODAY - timedelta(days=3)
    assert set(table.column("data_state").to_pylist()) == {"final"}
    assert [r.json["dataState"] for r in server.requests if r.method == "POST"] == ["final"]


def test_first_incomplete_date_off_contract_is_an_invalid_response():
    with pytest.raises(InvalidResponse, match="metadata.firstIncompleteDate"):
        first_incomplete_date({"metadata": {"firstIncompleteDate": "2026-02-30"}}, SITE, "searchAnalytics.query")
    assert first_incomplete_date({}, SITE, "searchAnalytics.query") is None


def test_qps_quota_429_backs_off_and_retries(server):
    body = {"error": {"code": 429, "message": "Search Analytics QPS quota exceeded",
                      "errors": [{"message": "Search Analytics QPS quota exceeded", "domain": "usageLimits",
                                  "reason": "rateLimitExceeded"}], "status": "RESOURCE_EXHAUSTED"}}
    server.faults.put(("status", 429, body, {}))
    conn, sleeps = connector(server.url)
    assert fetch(conn, SITE_TOTALS).num_rows == WINDOW.days
    assert len(sleeps) == 1 and sleeps[0] >= 10


def test_5xx_reset_and_truncated_body_are_retried(server):
    server.faults.put(("status", 503, {"error": {"code": 503, "message": "Backend Error"}}, {}))
    server.faults.put(("reset",))
    server.faults.put(("truncate",))
    conn, sleeps = connector(server.url)
    assert fetch(conn, SITE_TOTALS).num_rows == WINDOW.days
    assert conn.stats.retries == 3


def test_unknown_site_is_a_clear_error_not_retried(server):
    conn, sleeps = connector(server.url)
    with pytest.raises(SourceError, match=r"search_console account sc-domain:nope.example: .*403"):
        list(conn.fetch(SITE_TOTALS, WINDOW, sites=["sc-domain:nope.example"]))
    assert sleeps == []


def test_missing_or_malformed_site_fails_before_any_request(server):
    conn = SearchConsoleConnector(SearchConsoleSettings(sites=(), endpoint=server.url))
    with pytest.raises(ConfigError, match="MKPI_SEARCH_CONSOLE_SITES"):
        list(conn.fetch(SITE_TOTALS, WINDOW))
    conn = SearchConsoleConnector(SearchConsoleSettings(sites=("example.com",), endpoint=server.url))
    with pytest.raises(ConfigError, match="sc-domain:example.com"):
        list(conn.fetch(SITE_TOTALS, WINDOW))
    assert server.request_count == 0


def test_client_side_rate_limit_is_applied(server):
    conn, _ = connector(server.url, queries_per_minute=2)
    slept: list[float] = []
    now = [0.0]

    def fake_sleep(seconds: float) -> None:  # count the waits instead of sleeping
        slept.append(seconds)
        now[0] += seconds

    conn.limiter()._sleep = fake_sleep
    conn.limiter()._clock = lambda: now[0]
    for report in (SITE_TOTALS, PAGES, QUERIES):
        fetch(conn, report)
    assert slept and slept[0] == pytest.approx(60.0)  # 2 in any minute: the third query waits for the first's


# ---- Discover and Google News: no position, fewer dimensions, aggregated by page --------------------------


def _discover_day(world: World, day: date) -> tuple[int, int]:
    """The sandbox's Discover figures of a day from the World: page rows (Discover is aggregated by page) scaled by
    its factors, clicks x 0.08 and impressions x 0.60 per page (sandbox/gsc_server.py _SEARCH_TYPES)."""
    pages = world.gsc_day(SITE, day).pages
    clicks = [round(p.clicks * 0.08) for p in pages]
    return sum(clicks), sum(max(c, round(p.impressions * 0.60)) for c, p in zip(clicks, pages, strict=True))


def test_discover_and_google_news_site_totals_load_with_null_position(server, world):
    conn, _ = connector(server.url, search_types=("web", "discover", "googleNews"))
    table = fetch(conn, SITE_TOTALS)
    rows = {(r["search_type"], r["date"]): r for r in table.to_pylist()}
    assert {k for k, _ in rows} == {"web", "discover", "googleNews"}
    for day in WINDOW.dates():
        assert rows[("discover", day)]["position"] is None and rows[("googleNews", day)]["position"] is None
        assert (rows[("discover", day)]["clicks"], rows[("discover", day)]["impressions"]) == _discover_day(world, day)
        assert rows[("web", day)]["position"] == pytest.approx(world.gsc_day(SITE, day).position)
    sent = {r.json["type"]: r.json["aggregationType"] for r in server.requests if r.method == "POST"}
    assert sent == {"web": "byProperty", "discover": "auto", "googleNews": "auto"}  # Google has no byProperty there


def test_streams_a_type_cannot_have_are_skipped_and_named(server):
    conn, _ = connector(server.url, search_types=("web", "discover", "googleNews"))
    queries = fetch(conn, QUERIES)
    assert set(queries.column("search_type").to_pylist()) == {"web"}
    devices = fetch(conn, DEVICES)
    assert set(devices.column("search_type").to_pylist()) == {"web", "googleNews"}
    assert all(r["position"] is None for r in devices.to_pylist() if r["search_type"] == "googleNews")
    sent = [(r.json["type"], tuple(r.json["dimensions"])) for r in server.requests if r.method == "POST"]
    assert sent == [("web", ("date", "query")), ("web", ("date", "device")), ("googleNews", ("date", "device"))]
    assert skipped_search_types(QUERIES, ("web", "discover", "googleNews")) == {
        "discover": "Search Console has no query dimension for discover",
        "googleNews": "Search Console has no query dimension for googleNews"}
    assert skipped_search_types(DEVICES, ("discover", "googleNews")) == {
        "discover": "Search Console has no device dimension for discover"}
    assert skipped_search_types(SITE_TOTALS, ("discover", "googleNews")) == {}


def test_asset_metadata_names_the_skipped_search_types(server, world, tmp_path):
    import dagster as dg

    from pipelines.components.source_assets import source_asset
    from pipelines.lib.resources import SearchConsoleResource, WarehouseResource

    queries, site_totals = (source_asset("search_console", f"search_console.{t}") for t in ("queries", "site_totals"))

    config = tmp_path / "mkpi.yaml"
    config.write_text(f"search_console:\n  sites: ['{SITE}']\n  endpoint: {server.url}\n"
                      "  search_types: [web, discover]\n", encoding="utf-8")
    result = dg.materialize([queries, site_totals], partition_key="2026-03-04", resources={
        "search_console": SearchConsoleResource(config_path=str(config)),
        "warehouse": WarehouseResource(database=str(tmp_path / "w.duckdb"))})
    assert result.success
    metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert metadata["queries"]["skipped_search_types"].value == (
        "discover: Search Console has no query dimension for discover")
    assert "skipped_search_types" not in metadata["site_totals"]
    expected_queries = sum(1 for q in world.gsc_day(SITE, date(2026, 3, 4)).queries if q.clicks or q.impressions)
    assert metadata["queries"]["dagster/row_count"].value == expected_queries  # web only
    assert metadata["site_totals"]["dagster/row_count"].value == 2  # web and discover, one day each
