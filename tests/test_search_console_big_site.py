"""The sandbox's big Search Console site (issue #21 target 3) at a small size, read through the connector.

Expected values are computed here by hand from the formula BigSite's docstring states (rank r of a property's
day: floor(400 f / (r + 1) ** 0.75) clicks, f = 0.8 + 0.4 x the seeded draw of the day and property), never
from the server's or the connector's code. Also: Google's 50,000 rows per day per search type per property, and
the connector's column-wise page check giving exactly the rows of its row-by-row check.
"""

import json
import math
from datetime import date, timedelta

import pyarrow as pa
import pytest

from connectors import search_console as sc
from connectors.batches import Window
from connectors.errors import InvalidResponse
from connectors.search_console import QUERIES, SITE_TOTALS, ReadKeys, SearchConsoleConnector, rows_to_table
from connectors.settings import SearchConsoleSettings
from connectors.validation import Contract
from sandbox.gsc_server import BIG_SITE_ENV, BigSite, GscServer, big_site_from_env
from sandbox.world import World, seeded_rng

TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 20), date(2026, 3, 21))


def clicks_by_hand(site: str, day: date, ranks: int) -> list[int]:
    f = 0.8 + 0.4 * seeded_rng(7, day, f"gsc-big:{site}").random()
    return [math.floor(400.0 * f / (r + 1) ** 0.75) for r in range(ranks)]


def read(url: str, sites: list[str], report=QUERIES, window: Window = WINDOW) -> tuple[pa.Table, int]:
    settings = SearchConsoleSettings(sites=tuple(sites), endpoint=url, timeout_seconds=30)
    conn = SearchConsoleConnector(settings)
    table = pa.concat_tables([b.data for b in conn.fetch(report, window)])
    return table, conn.stats.requests


def test_knob_names_properties_of_one_site():
    assert BigSite(1_000_000).sites()[:2] == ["https://www.big.example/s00/", "https://www.big.example/s01/"]
    assert len(BigSite(1_000_000).sites()) == 20  # 50,000 rows a day each: every row readable
    assert big_site_from_env({BIG_SITE_ENV: "120000:2"}) == BigSite(120_000, 2)
    assert big_site_from_env({}) is None
    with pytest.raises(ValueError, match=BIG_SITE_ENV):
        big_site_from_env({BIG_SITE_ENV: "many"})


def test_big_site_queries_read_whole_through_the_connector():
    big = BigSite(queries_per_day=120_000)  # 3 properties of 40,000 query rows a day
    with GscServer(World(seed=7, today=TODAY), big_site=big) as server:
        assert server.sites == big.sites()
        table, requests = read(server.url, server.sites[:2])
        quoted = "https%3A%2F%2Fwww.big.example%2Fs01%2F"
        start_rows = [r.json["startRow"] for r in server.requests if quoted in r.path]
    # the next page is asked while one is parsed, yet the requests are the read's, in order, and no more
    assert start_rows == [0, 25_000, 50_000, 75_000]
    assert table.num_rows == 2 * 2 * 40_000
    assert requests == 2 * 4  # 80,000 rows per property: pages of 25,000, 25,000, 25,000, 5,000
    assert table.schema.equals(QUERIES.stream.schema)
    site = server.sites[1]
    for day in WINDOW.dates():
        mine = table.filter(pa.compute.and_(pa.compute.equal(table["site_url"], site),
                                            pa.compute.equal(table["date"], pa.scalar(day, pa.date32()))))
        expected = clicks_by_hand(site, day, 40_000)
        assert mine.num_rows == 40_000
        assert pa.compute.sum(mine["clicks"]).as_py() == sum(expected)
        top = mine.sort_by([("clicks", "descending"), ("query", "ascending")]).slice(0, 2).to_pylist()
        assert [(r["query"], r["clicks"]) for r in top] == [("q0000000 fonte fonte", expected[0]),
                                                             ("q0000001 cocotte prix", expected[1])]
        assert top[0]["position"] == 1.0 and top[0]["data_state"] == "final"


def test_a_day_exposes_at_most_50000_rows_the_ones_with_most_clicks():
    big = BigSite(queries_per_day=120_000, properties=1)  # 120,000 query rows a day in one property
    with GscServer(World(seed=7, today=TODAY), big_site=big) as server:
        site = server.sites[0]
        day = Window(date(2026, 3, 20), date(2026, 3, 20))
        table, requests = read(server.url, [site], window=day)
        totals, _ = read(server.url, [site], SITE_TOTALS, window=day)
    assert table.num_rows == 50_000 and requests == 3  # 25,000, 25,000, then an empty page
    assert pa.compute.sum(table["clicks"]).as_py() == sum(clicks_by_hand(site, day.start, 50_000))
    assert table.sort_by([("query", "descending")])["query"][0].as_py().startswith("q0049999 ")
    # the date-only total counts every query of the day, those past the limit and anonymised ones too
    every = sum(clicks_by_hand(site, day.start, 120_000))
    assert totals["clicks"].to_pylist() == [round(every * 1.25)]


def test_the_columnwise_page_check_gives_the_rows_of_the_row_by_row_check():
    rows = [{"keys": ["2026-03-20", "a"], "clicks": 3, "impressions": 10, "ctr": 0.3, "position": 2.5},
            {"keys": ["2026-03-21", "b"], "clicks": 0.0, "impressions": 0, "ctr": 0},  # no position without views
            {"keys": ["2026-03-20", "c"], "clicks": 1, "impressions": 4.0, "ctr": 0.25, "position": 7}]
    rows = json.loads(json.dumps(rows))
    contract = Contract("search_console", "s", "e")
    fast = sc._page_columns(rows, QUERIES, "web", contract)
    assert fast is not None
    slow = sc._checked_columns(rows, QUERIES, "web", contract)
    assert {k: v.to_pylist() for k, v in fast.items()} == {k: v.to_pylist() for k, v in slow.items()}
    assert fast["position"].to_pylist() == [2.5, None, 7.0] and fast["clicks"].type == pa.int64()
    # anything unusual goes the row-by-row way, which names the field
    for bad, field in ((dict(rows[0], clicks="3"), None), (dict(rows[0], clicks=2.5), "clicks"),
                       (dict(rows[0], position=None), "position"), (dict(rows[0], ctr=float("nan")), "ctr")):
        assert sc._page_columns([bad], QUERIES, "web", contract) is None
        if field:
            with pytest.raises(InvalidResponse, match=field):
                rows_to_table([bad], QUERIES, "s", "web", "final")


def test_read_keys_refuse_a_key_twice_across_pages_and_settle_hash_collisions(monkeypatch):
    contract = Contract("search_console", "s", "e")
    page = [{"keys": [f"2026-03-2{i % 2}", f"q{i}"], "clicks": 1, "impressions": 2, "ctr": 0.5, "position": 3}
            for i in range(6)]
    seen = ReadKeys()
    rows_to_table(page[:3], QUERIES, "s", "web", "final", seen=seen)
    rows_to_table(page[3:], QUERIES, "s", "web", "final", seen=seen)
    with pytest.raises(InvalidResponse, match="keys"):
        rows_to_table(page[2:3], QUERIES, "s", "web", "final", seen=seen)
    # every hash equal: distinct keys are settled exactly, a true duplicate still refused
    monkeypatch.setattr(sc, "_key_hashes", lambda keys: __import__("numpy").zeros(keys.num_rows, "int64"))
    colliding = ReadKeys()
    rows_to_table(page[:3], QUERIES, "s", "web", "final", seen=colliding)
    rows_to_table(page[3:], QUERIES, "s", "web", "final", seen=colliding)
    with pytest.raises(InvalidResponse, match="duplicate"):
        rows_to_table(page[:1], QUERIES, "s", "web", "final", seen=colliding)
    assert contract.source == "search_console"


def test_other_days_than_the_window_are_not_served():
    big = BigSite(queries_per_day=1_000, properties=1)
    with GscServer(World(seed=7, today=TODAY), big_site=big) as server:
        future = Window(TODAY + timedelta(days=1), TODAY + timedelta(days=2))
        table, requests = read(server.url, server.sites, window=future)
    assert table.num_rows == 0 and requests == 1


def test_the_big_sites_rendered_pages_are_the_json_of_its_rows():
    big = BigSite(queries_per_day=30_000, properties=1)
    server = GscServer(World(seed=7, today=TODAY), big_site=big)
    body = {"startDate": "2026-03-27", "endDate": "2026-03-30", "dimensions": ["query", "date"], "rowLimit": 500,
            "startRow": 1_000, "dataState": "all"}
    rendered = json.loads(server.answer_body(big.sites()[0], body))
    assert rendered == server._query(big.sites()[0], body)  # the dict path: row_json per row
    assert len(rendered["rows"]) == 500 and rendered["metadata"] == {"firstIncompleteDate": "2026-03-29"}
    assert rendered["rows"][0]["keys"][1] in ("2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30")
