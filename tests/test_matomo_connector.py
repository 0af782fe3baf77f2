"""Matomo connector against the sandbox Matomo server over a real socket."""

from datetime import date

import pyarrow as pa
import pytest

from connectors.batches import Window
from connectors.errors import ConfigError, SourceError
from connectors.http import Fatal, HttpStatusError, RetryPolicy
from connectors.matomo import GOAL_STREAM, REFERRERS, VISITS, MatomoConnector, _explain, classify, number
from connectors.settings import MatomoSettings, Secret
from sandbox.matomo_server import MatomoServer, goal_figures
from sandbox.world import World

TODAY = date(2026, 3, 31)
TOKEN = "0123456789abcdef0123456789abcdef"
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 10))


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture
def server(world):
    with MatomoServer(world, token=TOKEN) as srv:
        yield srv


def connector(url: str, token: str = TOKEN, **overrides) -> tuple[MatomoConnector, list[float]]:
    sleeps: list[float] = []
    settings = MatomoSettings(url=url + "/", site_ids=("1",), token=Secret(token), timeout_seconds=5, **overrides)
    return MatomoConnector(settings, sleep=sleeps.append, policy=RetryPolicy(base_delay=0.01, max_delay=0.05)), sleeps


def fetch(conn: MatomoConnector, window: Window = WINDOW) -> dict[str, pa.Table]:
    tables: dict[str, list[pa.Table]] = {}
    for batch in conn.fetch(window):
        tables.setdefault(batch.stream.table, []).append(batch.data)
    return {name: pa.concat_tables(parts) for name, parts in tables.items()}


def test_one_bulk_request_gives_three_typed_tables_matching_the_world(server, world):
    conn, _ = connector(server.url)
    tables = fetch(conn)
    assert conn.stats.requests == 1 and server.request_count == 1
    assert tables[VISITS.table].schema.equals(VISITS.schema)
    visits = {r["date"]: r for r in tables[VISITS.table].to_pylist()}
    for day in WINDOW.dates():
        truth = world.matomo_day("1", day).summary
        row = visits[day]
        assert (row["nb_visits"], row["bounce_count"], row["nb_visits_converted"], row["sum_visit_length"]) == (
            truth.nb_visits, truth.bounce_count, truth.nb_visits_converted, truth.sum_visit_length)
        assert row["time_zone"] == "Europe/Paris" and row["currency_code"] == "EUR"
    referrers = tables[REFERRERS.table].to_pylist()
    day = date(2026, 3, 4)
    by_type = {r["referrer_type"]: r for r in referrers if r["date"] == day}
    truth = world.matomo_day("1", day)
    assert {t: r["nb_visits"] for t, r in by_type.items()} == {
        t: v.nb_visits for t, v in truth.by_referrer_type.items() if v.nb_visits}
    per_type, _ = goal_figures(world, truth)
    assert {t: r["orders"] for t, r in by_type.items()} == {t: per_type[t].orders for t in by_type}


def test_goals_cover_orders_and_abandoned_carts(server, world):
    conn, _ = connector(server.url)
    goals = {(r["date"], r["goal"]): r for r in fetch(conn)[GOAL_STREAM.table].to_pylist()}
    day = date(2026, 3, 7)
    eco = world.matomo_day("1", day).ecommerce
    _, total = goal_figures(world, world.matomo_day("1", day))
    order = goals[(day, "ecommerceOrder")]
    assert order["nb_conversions"] == eco.orders
    assert order["revenue"] == pytest.approx(eco.revenue, abs=0.01)
    assert order["nb_visits_converted"] == total.order_visits
    assert goals[(day, "ecommerceAbandonedCart")]["nb_conversions"] == eco.abandoned_carts
    assert {g for _, g in goals} == {"all", "ecommerceOrder", "ecommerceAbandonedCart"}


def test_days_after_today_are_empty_not_errors(server):
    conn, _ = connector(server.url)
    tables = fetch(conn, Window(date(2026, 3, 29), date(2026, 4, 3)))
    assert sorted({r["date"] for r in tables[VISITS.table].to_pylist()}) == [
        date(2026, 3, 29), date(2026, 3, 30), date(2026, 3, 31)]


def test_token_travels_only_in_the_post_body(server):
    conn, _ = connector(server.url)
    fetch(conn)
    (entry,) = server.matomo_requests
    assert entry.token_in_body and not entry.token_in_query
    assert all(TOKEN not in str(r) for r in server.requests)


def test_bad_token_is_a_clear_error_without_the_token(server):
    """Matomo 5 answers a token it cannot authenticate with HTTP 401 and its JSON error: refused at once (no
    retry), with Matomo's words and the same advice as an HTTP 200 error envelope."""
    conn, sleeps = connector(server.url, token="f" * 32)
    with pytest.raises(SourceError) as info:
        list(conn.fetch(WINDOW))
    message = str(info.value)
    assert "matomo account 1" in message and "HTTP 401" in message
    assert "Unable to authenticate with the provided token. It is either invalid or expired." in message
    assert "check that MKPI_MATOMO_TOKEN is valid and has view access to this site id" in message
    assert "f" * 32 not in message
    assert sleeps == [] and server.request_count == 1
    # the API method travels in the query string (so Matomo answers in JSON), the token only in the body
    (logged,) = server.requests
    assert logged.query["module"] == ["API"] and logged.query["method"] == ["API.getBulkRequest"]
    assert "token_auth" not in logged.query and "token_auth" in logged.form


def test_a_200_envelope_and_a_401_give_the_same_advice():
    envelope = {"result": "error", "message": "You can't access this resource as it requires 'view' access for the "
                                              "website id = 1."}
    advice = "(check that MKPI_MATOMO_TOKEN is valid and has view access to this site id)"
    assert _explain(envelope).endswith(advice)
    verdict = classify(HttpStatusError(401, '{"result":"error","message":"Unable to authenticate with the provided '
                                            'token. It is either invalid or expired."}'))
    assert isinstance(verdict, Fatal) and verdict.reason.endswith(advice) and "HTTP 401" in verdict.reason
    page = classify(HttpStatusError(401, "<!DOCTYPE html><html><body><p>Unable to authenticate</p></body></html>"))
    assert isinstance(page, Fatal) and "HTTP 401" in page.reason and "MKPI_MATOMO_TOKEN" in page.reason
    assert not isinstance(classify(HttpStatusError(503, "<html>busy</html>")), Fatal)  # still retried


def test_an_error_element_in_the_bulk_answer_names_the_method_and_loads_nothing(world):
    with MatomoServer(world, token=TOKEN, site_ids=("1",)) as srv:
        conn, _ = connector(srv.url)
        with pytest.raises(SourceError, match=r"matomo account 7: .*access"):
            list(conn.fetch(WINDOW, site_ids=["7"]))


def test_html_page_with_status_200_and_truncated_body_are_retried(server):
    server.faults.put(("html",))
    server.faults.put(("truncate",))
    server.faults.put(("status", 502, None, {}))
    conn, sleeps = connector(server.url)
    assert fetch(conn)[VISITS.table].num_rows == WINDOW.days
    assert conn.stats.retries == 3


def test_html_200_forever_is_an_error_never_zero_rows(server):
    for _ in range(10):
        server.faults.put(("html",))
    conn, _ = connector(server.url)
    with pytest.raises(SourceError, match="HTML page"):
        list(conn.fetch(WINDOW))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (MatomoSettings(url=None, site_ids=("1",), token=Secret(TOKEN)), "MKPI_MATOMO_URL"),
        (MatomoSettings(url="https://m.example/", site_ids=(), token=Secret(TOKEN)), "MKPI_MATOMO_SITE_IDS"),
        (MatomoSettings(url="https://m.example/", site_ids=("1",), token=None), "MKPI_MATOMO_TOKEN"),
        (MatomoSettings(url="https://m.example/", site_ids=("one",), token=Secret(TOKEN)), "not numeric"),
        (MatomoSettings(url="http://m.example/", site_ids=("1",), token=Secret(TOKEN)), "plain HTTP"),
    ],
)
def test_configuration_errors_before_any_request(settings, message):
    with pytest.raises(ConfigError, match=message):
        list(MatomoConnector(settings).fetch(WINDOW))


@pytest.mark.parametrize(("raw", "parsed"), [(12, 12.0), ("1234.5", 1234.5), ("50%", 0.5), ([], None), (None, None)])
def test_matomo_numbers(raw, parsed):
    assert number(raw) == parsed
