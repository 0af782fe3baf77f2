"""The Google Ads sandbox through the real client: rows, field masks, paging, versions, errors and faults.

Every server test goes through ``connectors.google_ads_transport.google_ads_service`` over a real gRPC
socket, so what passes here is what the connector will see. One module-scoped server keeps the cost of
importing google-ads (about 1 s per API version) to once per module.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.ads_server import AdsServer, parse_gaql
from sandbox.httpserver import REDACTED
from sandbox.launcher import SERVER_FACTORIES
from sandbox.world import ADS_MANAGER_CUSTOMER_ID, DEFAULT_ADS_CUSTOMER_ID, US_ADS_CUSTOMER_ID, World

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 3, 15)
RESTATEMENT_DAYS = 3  # days 03-13 .. 03-15 restate; 03-01 .. 03-10 are final
CONNECTOR_QUERY = (
    "SELECT segments.date, customer.id, customer.currency_code, customer.time_zone, campaign.id, campaign.name, "
    "campaign.status, campaign.advertising_channel_type, metrics.impressions, metrics.clicks, "
    "metrics.cost_micros, metrics.conversions, metrics.conversions_value FROM campaign "
    "WHERE segments.date BETWEEN '{start}' AND '{end}'"
)
FINAL_QUERY = CONNECTOR_QUERY.format(start="2026-03-01", end="2026-03-10")


def _query(start: date, end: date) -> str:
    return CONNECTOR_QUERY.format(start=start.isoformat(), end=end.isoformat())


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, today=TODAY, restatement_days=RESTATEMENT_DAYS)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[AdsServer]:
    with AdsServer.for_sandbox(world) as srv:
        yield srv


@pytest.fixture()
def ads(server: AdsServer) -> AdsServer:
    """The shared server with an empty fault queue and log, so each test sees only its own requests."""
    while not server.faults.empty():
        server.faults.get_nowait()
    server.clear_log()
    return server


def _service(server: AdsServer, *, developer_token: str | None = None, login: str | None = ADS_MANAGER_CUSTOMER_ID,
             version: str = "v26") -> Any:
    from google.oauth2.credentials import Credentials

    from connectors.google_ads_transport import google_ads_service

    return google_ads_service(credentials=Credentials(token="sandbox-access-token"),
                              developer_token=developer_token or server.developer_token,
                              login_customer_id=login, endpoint=server.endpoint, version=version)


def _stream(service: Any, customer_id: str, query: str) -> list[Any]:
    return [row for batch in service.search_stream(customer_id=customer_id, query=query) for row in batch.results]


def _as_tuple(row: Any) -> tuple[Any, ...]:
    return (row.customer.id, row.segments.date, row.campaign.id, row.campaign.name, row.campaign.status.name,
            row.campaign.advertising_channel_type.name, row.metrics.impressions, row.metrics.clicks,
            row.metrics.cost_micros, row.metrics.conversions, row.metrics.conversions_value)


def _expected(world: World, customer_id: str, start: date, end: date, version: int = 0) -> list[tuple[Any, ...]]:
    out = []
    day = start
    while day <= end:
        for r in world.ads_campaign_day(customer_id, day, version):
            out.append((int(r.customer_id), r.day.isoformat(), r.campaign_id, r.campaign_name, r.status,
                        r.advertising_channel_type, r.impressions, r.clicks, r.cost_micros, r.conversions,
                        r.conversions_value))
        day += timedelta(days=1)
    return out


def _set_fields(message: Any) -> set[str]:
    """Dotted names of the fields present on a proto-plus GoogleAdsRow (resource.field)."""
    pb = type(message).pb(message)
    return {f"{outer.name}.{inner.name}" for outer, sub in pb.ListFields() for inner, _ in sub.ListFields()}


def _failure_code(exc: Any) -> tuple[str, str]:
    """(error family, enum name) of the first GoogleAdsError in a GoogleAdsException."""
    code = exc.failure.errors[0].error_code
    family = type(code).pb(code).WhichOneof("error_code")
    return family, getattr(code, family).name


# ---- world ------------------------------------------------------------------------------------------------


def test_world_has_two_ads_customers_with_their_own_currency_time_zone_and_campaigns(world: World) -> None:
    customers = world.ads_customers()
    assert set(customers) == {DEFAULT_ADS_CUSTOMER_ID, US_ADS_CUSTOMER_ID}
    fr, us = customers[DEFAULT_ADS_CUSTOMER_ID], customers[US_ADS_CUSTOMER_ID]
    assert (fr.currency_code, fr.time_zone, fr.feeds_ga4) == ("EUR", "Europe/Paris", True)
    assert (us.currency_code, us.time_zone, us.feeds_ga4) == ("USD", "America/New_York", False)
    assert ADS_MANAGER_CUSTOMER_ID not in customers
    fr_types = {c.advertising_channel_type for c in world.ads_campaigns(DEFAULT_ADS_CUSTOMER_ID)}
    us_types = {c.advertising_channel_type for c in world.ads_campaigns(US_ADS_CUSTOMER_ID)}
    assert fr_types == {"SEARCH", "SHOPPING", "DISPLAY", "PERFORMANCE_MAX"}
    assert {"SEARCH", "SHOPPING"} <= us_types
    statuses = {c.status for cid in customers for c in world.ads_campaigns(cid)}
    assert statuses == {"ENABLED", "PAUSED"}
    us_ids = {c.campaign_id for c in world.ads_campaigns(US_ADS_CUSTOMER_ID)}
    fr_ids = {c.campaign_id for c in world.ads_campaigns(DEFAULT_ADS_CUSTOMER_ID)}
    assert not us_ids & fr_ids


def test_us_market_is_smaller_and_skips_days_without_impressions(world: World) -> None:
    days = [TODAY - timedelta(days=i) for i in range(60)]
    fr = [r for d in days for r in world.ads_campaign_day(DEFAULT_ADS_CUSTOMER_ID, d)]
    us = [r for d in days for r in world.ads_campaign_day(US_ADS_CUSTOMER_ID, d)]
    assert 0 < sum(r.clicks for r in us) < sum(r.clicks for r in fr) / 3
    assert all(r.impressions > 0 for r in fr + us)
    # The budget-limited campaign has no row on the days it did not serve, as in Google Ads.
    served_days = {r.day for r in us if r.campaign_id == 212}
    assert 0 < len(served_days) < len(days)


# ---- GAQL -------------------------------------------------------------------------------------------------


def test_parse_connector_query() -> None:
    q = parse_gaql(FINAL_QUERY + " ORDER BY segments.date DESC, campaign.id LIMIT 50")
    assert q.resource == "campaign"
    assert q.fields[0] == "segments.date" and len(q.fields) == 13
    assert [(c.field, c.op, c.values) for c in q.conditions] == [
        ("segments.date", "BETWEEN", ("2026-03-01", "2026-03-10"))]
    assert q.order_by == (("segments.date", True), ("campaign.id", False))
    assert q.limit == 50


# ---- rows -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("customer_id,currency,time_zone", [
    (DEFAULT_ADS_CUSTOMER_ID, "EUR", "Europe/Paris"),
    (US_ADS_CUSTOMER_ID, "USD", "America/New_York"),
])
def test_search_stream_rows_equal_the_world(
    ads: AdsServer, world: World, customer_id: str, currency: str, time_zone: str
) -> None:
    rows = _stream(_service(ads), customer_id, FINAL_QUERY)
    expected = _expected(world, customer_id, date(2026, 3, 1), date(2026, 3, 10))
    assert expected
    assert sorted(_as_tuple(r) for r in rows) == sorted(expected)
    assert {(r.customer.currency_code, r.customer.time_zone) for r in rows} == {(currency, time_zone)}
    assert all(r.campaign.resource_name == f"customers/{customer_id}/campaigns/{r.campaign.id}" for r in rows)


def test_stream_batches_carry_field_mask_and_request_id(ads: AdsServer) -> None:
    batches = list(_service(ads).search_stream(customer_id=DEFAULT_ADS_CUSTOMER_ID, query=FINAL_QUERY))
    assert len(batches) == 1
    assert list(batches[0].field_mask.paths) == list(parse_gaql(FINAL_QUERY).fields)
    assert batches[0].request_id == ads.requests[-1].request_id != ""


def test_only_selected_fields_are_set_and_unsegmented_metrics_are_summed(ads: AdsServer, world: World) -> None:
    query = ("SELECT campaign.id, metrics.clicks FROM campaign "
             "WHERE segments.date BETWEEN '2026-03-01' AND '2026-03-10' AND campaign.advertising_channel_type = SEARCH")
    rows = _stream(_service(ads), DEFAULT_ADS_CUSTOMER_ID, query)
    assert rows
    for row in rows:
        assert _set_fields(row) == {"campaign.resource_name", "campaign.id", "metrics.clicks"}
    expected: dict[int, int] = {}
    for r in _expected(world, DEFAULT_ADS_CUSTOMER_ID, date(2026, 3, 1), date(2026, 3, 10)):
        if r[5] == "SEARCH":
            expected[r[2]] = expected.get(r[2], 0) + r[7]
    assert {r.campaign.id: r.metrics.clicks for r in rows} == expected


def test_interactions_are_clicks_for_search_and_shopping_and_more_for_display_and_pmax(
    ads: AdsServer, world: World
) -> None:
    """metrics.interactions (Google's conversion-rate denominator) per campaign type, from the World."""
    query = ("SELECT segments.date, campaign.id, campaign.advertising_channel_type, metrics.clicks, "
             "metrics.interactions FROM campaign WHERE segments.date BETWEEN '2026-03-01' AND '2026-03-10'")
    rows = _stream(_service(ads), DEFAULT_ADS_CUSTOMER_ID, query)
    got = {(r.segments.date, r.campaign.id): (r.campaign.advertising_channel_type.name, r.metrics.clicks,
                                              r.metrics.interactions) for r in rows}
    day, expected = date(2026, 3, 1), {}
    while day <= date(2026, 3, 10):
        for r in world.ads_campaign_day(DEFAULT_ADS_CUSTOMER_ID, day):
            expected[(day.isoformat(), r.campaign_id)] = (r.advertising_channel_type, r.clicks, r.interactions)
        day += timedelta(days=1)
    assert got == expected
    by_type: dict[str, list[tuple[int, int]]] = {}
    for kind, clicks, interactions in got.values():
        by_type.setdefault(kind, []).append((clicks, interactions))
    assert set(by_type) == {"SEARCH", "SHOPPING", "DISPLAY", "PERFORMANCE_MAX"}
    for kind in ("SEARCH", "SHOPPING"):
        assert all(i == c for c, i in by_type[kind])
    for kind in ("DISPLAY", "PERFORMANCE_MAX"):
        assert all(i > c for c, i in by_type[kind])
    # the summary row adds interactions up like any additive metric
    pager = _service(ads).search(request={"customer_id": DEFAULT_ADS_CUSTOMER_ID, "query": query,
                                          "search_settings": {"return_summary_row": True}})
    summary = list(pager.pages)[-1].summary_row
    assert summary.metrics.interactions == sum(i for _, _, i in expected.values())


def test_days_after_today_return_nothing(ads: AdsServer) -> None:
    rows = _stream(_service(ads), DEFAULT_ADS_CUSTOMER_ID, _query(TODAY - timedelta(days=1), TODAY + timedelta(days=5)))
    assert {r.segments.date for r in rows} == {(TODAY - timedelta(days=1)).isoformat(), TODAY.isoformat()}
    future = _stream(_service(ads), DEFAULT_ADS_CUSTOMER_ID, _query(TODAY + timedelta(days=1), TODAY + timedelta(9)))
    assert future == []


def test_customer_resource_totals_and_attribute_queries(ads: AdsServer, world: World) -> None:
    service = _service(ads)
    day = date(2026, 3, 5)
    rows = _stream(service, US_ADS_CUSTOMER_ID, "SELECT customer.id, customer.descriptive_name, metrics.cost_micros "
                                                f"FROM customer WHERE segments.date = '{day}'")
    assert len(rows) == 1
    assert rows[0].metrics.cost_micros == sum(r.cost_micros for r in world.ads_campaign_day(US_ADS_CUSTOMER_ID, day))
    assert rows[0].customer.resource_name == f"customers/{US_ADS_CUSTOMER_ID}"
    campaigns = _stream(service, US_ADS_CUSTOMER_ID, "SELECT campaign.id, campaign.status FROM campaign "
                                                     "ORDER BY campaign.id")
    assert [(r.campaign.id, r.campaign.status.name) for r in campaigns] == [
        (c.campaign_id, c.status) for c in world.ads_campaigns(US_ADS_CUSTOMER_ID)]


# ---- Search paging and versions ---------------------------------------------------------------------------


def test_search_pages_return_every_row_once(ads: AdsServer, world: World) -> None:
    ads.search_page_size = 7
    try:
        pager = _service(ads).search(request={"customer_id": DEFAULT_ADS_CUSTOMER_ID, "query": FINAL_QUERY})
        rows = [_as_tuple(r) for r in pager]
    finally:
        ads.search_page_size = 10_000
    expected = _expected(world, DEFAULT_ADS_CUSTOMER_ID, date(2026, 3, 1), date(2026, 3, 10))
    assert sorted(rows) == sorted(expected) and len(set(rows)) == len(rows)
    pages = [r for r in ads.requests if r.method == "Search"]
    assert len(pages) == -(-len(expected) // 7)
    assert pages[0].page_token == "" and all(p.page_token for p in pages[1:])


def test_page_size_is_rejected_like_google(ads: AdsServer) -> None:
    from google.ads.googleads.errors import GoogleAdsException

    with pytest.raises(GoogleAdsException) as info:
        list(_service(ads).search(request={"customer_id": DEFAULT_ADS_CUSTOMER_ID, "query": FINAL_QUERY,
                                           "page_size": 5}))
    assert _failure_code(info.value) == ("request_error", "PAGE_SIZE_NOT_SUPPORTED")


@pytest.mark.parametrize("version", ["v23", "v24", "v25", "v26"])
def test_every_api_version_answers(ads: AdsServer, world: World, version: str) -> None:
    service = _service(ads, version=version)
    rows = _stream(service, US_ADS_CUSTOMER_ID, FINAL_QUERY)
    assert sorted(_as_tuple(r) for r in rows) == sorted(
        _expected(world, US_ADS_CUSTOMER_ID, date(2026, 3, 1), date(2026, 3, 10)))
    assert type(rows[0]).__module__.startswith(f"google.ads.googleads.{version}.")
    assert len(list(service.search(request={"customer_id": US_ADS_CUSTOMER_ID, "query": FINAL_QUERY}))) == len(rows)
    assert {r.version for r in ads.requests} == {version}


# ---- errors -----------------------------------------------------------------------------------------------


def test_wrong_developer_token_is_an_authentication_error(ads: AdsServer) -> None:
    import grpc
    from google.ads.googleads.errors import GoogleAdsException

    with pytest.raises(GoogleAdsException) as info:
        _stream(_service(ads, developer_token="not-the-token"), DEFAULT_ADS_CUSTOMER_ID, FINAL_QUERY)
    exc = info.value
    assert _failure_code(exc) == ("authentication_error", "DEVELOPER_TOKEN_INVALID")
    assert exc.error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert exc.request_id and exc.request_id == ads.requests[-1].request_id == exc.failure.request_id


@pytest.mark.parametrize("login", [None, "5556667777"])
def test_missing_or_wrong_login_customer_id_is_permission_denied(ads: AdsServer, login: str | None) -> None:
    import grpc
    from google.ads.googleads.errors import GoogleAdsException

    with pytest.raises(GoogleAdsException) as info:
        _stream(_service(ads, login=login), DEFAULT_ADS_CUSTOMER_ID, FINAL_QUERY)
    assert _failure_code(info.value) == ("authorization_error", "USER_PERMISSION_DENIED")
    assert "login-customer-id" in info.value.failure.errors[0].message
    assert info.value.error.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("customer_id,expected", [
    ("5555555555", ("authorization_error", "USER_PERMISSION_DENIED")),
    ("123-456-7890", ("request_error", "INVALID_CUSTOMER_ID")),
])
def test_unknown_or_malformed_customer(ads: AdsServer, customer_id: str, expected: tuple[str, str]) -> None:
    from google.ads.googleads.errors import GoogleAdsException

    with pytest.raises(GoogleAdsException) as info:
        _stream(_service(ads), customer_id, FINAL_QUERY)
    assert _failure_code(info.value) == expected


@pytest.mark.parametrize("query,code", [
    ("campaign.id FROM campaign", "EXPECTED_SELECT"),
    ("SELECT campaign.id campaign", "EXPECTED_FROM"),
    ("SELECT campaign.idd FROM campaign", "UNRECOGNIZED_FIELD"),
    ("SELECT campaign.id FROM campagne", "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE"),
    ("SELECT campaign.id FROM customer", "PROHIBITED_RESOURCE_TYPE_IN_SELECT_CLAUSE"),
    ("SELECT segments.date FROM campaign", "EXPECTED_FILTERS_ON_DATE_RANGE"),
    ("SELECT campaign.id FROM campaign WHERE segments.date BETWEEN '2026-03-01' '2026-03-02'", "EXPECTED_AND"),
    ("SELECT campaign.id FROM campaign WHERE segments.date = '2026-3-1'", "INVALID_DATE_FORMAT"),
    ("SELECT campaign.id FROM campaign WHERE segments.date = '2026-03-01", "STRING_NOT_TERMINATED"),
    ("SELECT campaign.id FROM campaign WHERE campaign.status = RUNNING", "BAD_ENUM_CONSTANT"),
    ("SELECT campaign.id FROM campaign LIMIT 0", "LIMIT_VALUE_TOO_LOW"),
    ("SELECT campaign.id FROM campaign ORDER campaign.id", "EXPECTED_BY"),
    ("SELECT campaign.id FROM campaign WHERE", "UNEXPECTED_END_OF_QUERY"),
])
def test_malformed_gaql_is_a_query_error(ads: AdsServer, query: str, code: str) -> None:
    import grpc
    from google.ads.googleads.errors import GoogleAdsException

    with pytest.raises(GoogleAdsException) as info:
        _stream(_service(ads), DEFAULT_ADS_CUSTOMER_ID, query)
    assert _failure_code(info.value) == ("query_error", code)
    assert info.value.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [e.field_name for e in info.value.failure.errors[0].location.field_path_elements] == ["query"]


def _trailing_failure(exc: Any, version: str = "v26") -> Any:
    """The GoogleAdsFailure of an error the library does not convert (RESOURCE_EXHAUSTED, INTERNAL)."""
    from google.ads.googleads.v26.errors.types.errors import GoogleAdsFailure

    metadata = dict(exc.response.trailing_metadata())
    return GoogleAdsFailure.deserialize(metadata[f"google.ads.googleads.{version}.errors.googleadsfailure-bin"])


def test_quota_fault_is_resource_exhausted_with_a_quota_failure(ads: AdsServer) -> None:
    import grpc
    from google.api_core import exceptions

    service = _service(ads)
    ads.faults.put(("quota",))
    # google-ads converts neither RESOURCE_EXHAUSTED nor INTERNAL into GoogleAdsException (its
    # _RETRY_STATUS_CODES): the GAPIC layer raises api_core's ResourceExhausted, failure in trailing metadata.
    with pytest.raises(exceptions.ResourceExhausted) as info:
        _stream(service, DEFAULT_ADS_CUSTOMER_ID, FINAL_QUERY)
    assert info.value.grpc_status_code == grpc.StatusCode.RESOURCE_EXHAUSTED
    failure = _trailing_failure(info.value)
    assert failure.errors[0].error_code.quota_error.name == "RESOURCE_EXHAUSTED"
    assert dict(info.value.response.trailing_metadata())["request-id"] == failure.request_id

    ads.faults.put(("quota_temporary", 2.5))
    with pytest.raises(exceptions.ResourceExhausted) as info:
        list(service.search(request={"customer_id": DEFAULT_ADS_CUSTOMER_ID, "query": FINAL_QUERY}))
    error = _trailing_failure(info.value).errors[0]
    assert error.error_code.quota_error.name == "RESOURCE_TEMPORARILY_EXHAUSTED"
    assert error.details.quota_error_details.retry_delay.total_seconds() == 2.5
    assert _stream(service, DEFAULT_ADS_CUSTOMER_ID, FINAL_QUERY)  # faults are one-shot
    assert [r.fault for r in ads.requests] == ["quota", "quota_temporary", None]


def test_internal_and_unavailable_faults(ads: AdsServer) -> None:
    from google.api_core import exceptions

    service = _service(ads)
    ads.faults.put(("internal",))
    with pytest.raises(exceptions.InternalServerError) as info:
        _stream(service, DEFAULT_ADS_CUSTOMER_ID, FINAL_QUERY)
    assert _trailing_failure(info.value).errors[0].error_code.internal_error.name == "INTERNAL_ERROR"
    ads.faults.put(("unavailable",))
    with pytest.raises(exceptions.ServiceUnavailable) as info:
        _stream(service, DEFAULT_ADS_CUSTOMER_ID, FINAL_QUERY)
    assert not any(k.endswith("googleadsfailure-bin") for k, _ in info.value.response.trailing_metadata() or ())
    assert ads.request_count == 2


# ---- restatement and metadata -----------------------------------------------------------------------------


def test_second_read_restates_recent_conversions_only(world: World) -> None:
    # Its own server: the read counter is the world version, and restatement converges as it grows, so the
    # shared server's many earlier reads would leave too little movement to see after rounding.
    with AdsServer.for_sandbox(world) as ads:
        _assert_restates(ads)


def _assert_restates(ads: AdsServer) -> None:
    service = _service(ads)
    query = _query(TODAY - timedelta(days=5), TODAY)

    def conversions_by_day() -> dict[str, float]:
        out: dict[str, float] = {}
        for row in _stream(service, DEFAULT_ADS_CUSTOMER_ID, query):
            out[row.segments.date] = out.get(row.segments.date, 0.0) + row.metrics.conversions
        return out

    reads = ads.reads
    first, second = conversions_by_day(), conversions_by_day()
    assert ads.reads == reads + 2
    restating = {(TODAY - timedelta(days=i)).isoformat() for i in range(RESTATEMENT_DAYS)}
    assert set(first) == set(second) and restating < set(first)
    for day in first:
        if day in restating:
            assert second[day] > first[day]
        else:
            assert second[day] == first[day]


def test_server_saw_credentials_and_logged_them_redacted(ads: AdsServer) -> None:
    _stream(_service(ads), US_ADS_CUSTOMER_ID, FINAL_QUERY)
    (entry,) = ads.requests
    assert (entry.method, entry.version, entry.customer_id, entry.query) == (
        "SearchStream", "v26", US_ADS_CUSTOMER_ID, FINAL_QUERY)
    assert entry.metadata["developer-token"] == REDACTED
    assert entry.metadata["authorization"] == REDACTED
    assert entry.metadata["login-customer-id"] == ADS_MANAGER_CUSTOMER_ID
    assert ads.developer_token not in repr(ads.requests)
    assert "sandbox-access-token" not in repr(ads.requests)


# ---- env and launcher -------------------------------------------------------------------------------------


def test_env_and_launcher_registration(server: AdsServer) -> None:
    env = server.env()
    assert env["MKPI_GOOGLE_ADS_ENDPOINT"] == f"127.0.0.1:{server.port}"
    assert env["MKPI_GOOGLE_ADS_CUSTOMER_IDS"] == f"{DEFAULT_ADS_CUSTOMER_ID},{US_ADS_CUSTOMER_ID}"
    assert env["MKPI_GOOGLE_ADS_LOGIN_CUSTOMER_ID"] == ADS_MANAGER_CUSTOMER_ID
    token = env["MKPI_GOOGLE_ADS_DEVELOPER_TOKEN"]
    assert len(token) == 22 and token == server.developer_token
    assert AdsServer.for_sandbox(World()).developer_token != token
    assert AdsServer.for_sandbox in SERVER_FACTORIES


def test_launcher_import_does_not_load_grpc_or_google_ads() -> None:
    code = ("import sys, sandbox.launcher; "
            "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('google.ads')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
