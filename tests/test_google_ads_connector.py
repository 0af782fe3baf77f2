"""Google Ads connector against the sandbox gRPC server over a real socket, through the official client."""

import logging
from datetime import date

import pyarrow as pa
import pytest

from connectors.batches import Window
from connectors.errors import ConfigError, SourceError
from connectors.google_ads import CAMPAIGN_DAILY, GoogleAdsConnector, normalise_customer_id
from connectors.google_ads_transport import API_VERSION
from connectors.http import RetryPolicy
from connectors.settings import GoogleAdsSettings, Secret
from sandbox.ads_server import AdsServer
from sandbox.world import World

TODAY = date(2026, 3, 31)
DEV_TOKEN = "sandbox-dev-token-0123"
MANAGER = "1112223333"
EUR, USD = "1234567890", "9876543210"
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 10))


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture(scope="module")
def server(world):
    with AdsServer(world, developer_token=DEV_TOKEN, login_customer_id=MANAGER) as srv:
        yield srv


def connector(server, *, token: str = DEV_TOKEN, customers=(EUR, USD), login: str | None = MANAGER
              ) -> tuple[GoogleAdsConnector, list[float]]:
    sleeps: list[float] = []
    settings = GoogleAdsSettings(customer_ids=tuple(customers), endpoint=server.env()["MKPI_GOOGLE_ADS_ENDPOINT"],
                                 developer_token=Secret(token), login_customer_id=login, timeout_seconds=10)
    policy = RetryPolicy(base_delay=0.01, max_delay=0.05)
    return GoogleAdsConnector(settings, sleep=sleeps.append, policy=policy), sleeps


def fetch(conn: GoogleAdsConnector, window: Window = WINDOW) -> pa.Table:
    return pa.concat_tables([b.data for b in conn.fetch(window)])


def truth(world: World, customer: str, window: Window, version: int = 0) -> dict[tuple[date, int], object]:
    rows = {}
    for day in window.dates():
        for c in world.ads_campaign_day(customer, day, version):
            if c.impressions:
                rows[(day, int(c.campaign_id))] = c
    return rows


def test_both_customers_in_their_own_currency_match_the_world(server, world):
    conn, _ = connector(server)
    before = server.request_count
    table = fetch(conn)
    assert server.request_count - before == 2  # one search_stream per customer for the whole window
    assert table.schema.equals(CAMPAIGN_DAILY.schema)
    customers = world.ads_customers()
    for customer in (EUR, USD):
        rows = {(r["date"], r["campaign_id"]): r for r in table.to_pylist() if r["customer_id"] == customer}
        expected = truth(world, customer, WINDOW)
        assert set(rows) == set(expected)
        for key, row in rows.items():
            c = expected[key]
            assert (row["impressions"], row["clicks"], row["cost_micros"]) == (c.impressions, c.clicks, c.cost_micros)
            assert row["cost"] == pytest.approx(c.cost_micros / 1e6)
            assert row["conversions"] == pytest.approx(c.conversions)
            assert row["advertising_channel_type"] == c.advertising_channel_type
            assert row["currency_code"] == customers[customer].currency_code
            assert row["time_zone"] == customers[customer].time_zone
    assert {r["currency_code"] for r in table.to_pylist()} == {"EUR", "USD"}
    assert {"SEARCH", "SHOPPING", "DISPLAY", "PERFORMANCE_MAX"} <= set(table["advertising_channel_type"].to_pylist())


def test_interactions_column_is_googles_conversion_rate_denominator(server, world):
    """campaign_daily.interactions = the World's metrics.interactions: the clicks for Search and Shopping, more
    (engagements, video views) for Display and Performance Max, so conversions / interactions is Google's rate."""
    conn, _ = connector(server, customers=(EUR,))
    rows = fetch(conn).to_pylist()
    expected = truth(world, EUR, WINDOW)
    assert {(r["date"], r["campaign_id"]): r["interactions"] for r in rows} == {
        k: c.interactions for k, c in expected.items()}
    display_pmax = [r for r in rows if r["advertising_channel_type"] in ("DISPLAY", "PERFORMANCE_MAX")]
    search_shopping = [r for r in rows if r["advertising_channel_type"] in ("SEARCH", "SHOPPING")]
    assert display_pmax and search_shopping
    assert all(r["interactions"] == r["clicks"] for r in search_shopping)
    assert all(r["interactions"] > r["clicks"] for r in display_pmax)
    # e.g. the Display campaign 141 over the window: its rate is conversions over its interactions, not clicks
    display = [c for k, c in expected.items() if k[1] == 141]
    assert sum(r["interactions"] for r in rows if r["campaign_id"] == 141) == sum(c.interactions for c in display)


def test_restated_conversions_are_picked_up_by_the_re_read():
    world = World(seed=7, today=TODAY, restatement_days=5)
    recent = Window(date(2026, 3, 24), date(2026, 3, 30))
    with AdsServer(world, developer_token=DEV_TOKEN, login_customer_id=MANAGER) as srv:
        conn, _ = connector(srv, customers=(EUR,))
        first = {(r["date"], r["campaign_id"]): r["conversions"] for r in fetch(conn, recent).to_pylist()}
        second = {(r["date"], r["campaign_id"]): r["conversions"] for r in fetch(conn, recent).to_pylist()}
    settled = [k for k in first if k[0] <= date(2026, 3, 26)]
    moving = [k for k in first if k[0] > date(2026, 3, 26)]
    assert settled and moving
    assert all(second[k] == first[k] for k in settled)
    assert sum(second[k] for k in moving) > sum(first[k] for k in moving)


def test_authentication_failure_is_clear_fast_and_leaks_no_secret(server, caplog):
    conn, sleeps = connector(server, token="wrong-token-9999", customers=(EUR,))
    before = server.request_count
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as info:
        list(conn.fetch(WINDOW))
    message = str(info.value)
    assert f"google_ads account {EUR}" in message and "authentication_error" in message and "request id" in message
    assert server.request_count - before == 1 and sleeps == []
    assert "wrong-token-9999" not in message
    assert all("wrong-token-9999" not in record.getMessage() for record in caplog.records)


def test_quota_error_is_retried_with_backoff(server):
    conn, sleeps = connector(server, customers=(USD,))
    server.faults.put(("quota",))
    table = fetch(conn)
    assert table.num_rows > 0 and conn.stats.retries == 1 and len(sleeps) == 1


def test_internal_and_unavailable_errors_are_retried(server):
    conn, _ = connector(server, customers=(EUR,))
    server.faults.put(("internal",))
    server.faults.put(("unavailable",))
    assert fetch(conn).num_rows > 0 and conn.stats.retries == 2


def test_unknown_customer_fails_with_its_id(server):
    conn, sleeps = connector(server, customers=("5555555555",))
    with pytest.raises(SourceError, match="google_ads account 5555555555: .*authorization_error"):
        list(conn.fetch(WINDOW))
    assert sleeps == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (GoogleAdsSettings(customer_ids=(), developer_token=Secret("t"), endpoint="127.0.0.1:1"),
         "MKPI_GOOGLE_ADS_CUSTOMER_IDS"),
        (GoogleAdsSettings(customer_ids=("12345",), developer_token=Secret("t"), endpoint="127.0.0.1:1"),
         "10-digit"),
        (GoogleAdsSettings(customer_ids=(EUR,), developer_token=None, endpoint="127.0.0.1:1"),
         "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN"),
        (GoogleAdsSettings(customer_ids=(EUR,), developer_token=Secret("t")), "No Google Ads credentials"),
        (GoogleAdsSettings(customer_ids=(EUR,), developer_token=Secret("t"), client_id="x"),
         "MKPI_GOOGLE_ADS_CLIENT_SECRET, MKPI_GOOGLE_ADS_REFRESH_TOKEN"),
    ],
)
def test_configuration_errors_before_any_request(settings, message):
    with pytest.raises(ConfigError, match=message):
        GoogleAdsConnector(settings).check()


def test_customer_ids_accept_dashes():
    assert normalise_customer_id("123-456-7890") == "1234567890"


def test_api_version_is_pinned_to_the_newest_the_package_ships():
    from google.ads.googleads import client

    assert API_VERSION == client._VALID_API_VERSIONS[0]


# The first google-ads release shipping each API version the connector may pin: 34.0.0 ships v23-v26, 33.0.0 only
# v23-v25 (its google/ads/googleads/client.py _VALID_API_VERSIONS; PyPI's release history goes 31.4.0, 33.0.0,
# 34.0.0). Add the next version's first release here when API_VERSION moves.
FIRST_RELEASE_SHIPPING = {"v26": "34"}


def test_dependency_floor_is_the_first_release_that_ships_the_pinned_api_version():
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    (requirement,) = [Requirement(r) for r in pyproject["project"]["dependencies"]
                      if Requirement(r).name == "google-ads"]
    floors = [s.version for s in requirement.specifier if s.operator == ">="]
    assert floors == [FIRST_RELEASE_SHIPPING[API_VERSION]], (
        f"pyproject.toml allows {requirement}, but {API_VERSION} first ships in google-ads "
        f"{FIRST_RELEASE_SHIPPING[API_VERSION]}")
    assert Version(version("google-ads")) >= Version(FIRST_RELEASE_SHIPPING[API_VERSION])


def test_loading_the_pipeline_does_not_import_google_ads():
    import subprocess
    import sys

    code = ("import sys, pipelines.definitions, sandbox.launcher; "
            "print(any(m.startswith('google.ads') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_streamed_answer_past_the_size_limit_is_refused_and_not_retried(server, monkeypatch):
    """The HTTP connectors' answer-size bound holds for the gRPC stream too: past MKPI_GOOGLE_ADS_MAX_ANSWER_MB of
    streamed responses the call stops, fatal (the same query gets the same answer), naming the variable."""
    monkeypatch.setenv("MKPI_GOOGLE_ADS_MAX_ANSWER_MB", "0.001")  # 1,048 bytes: ten days of campaigns are more
    conn, sleeps = connector(server, customers=(EUR,))
    before = server.request_count
    with pytest.raises(SourceError, match=r"account 1234567890: .*the answer is larger than the [0-9.]+ MB allowed "
                                          r"\(MKPI_GOOGLE_ADS_MAX_ANSWER_MB\); stopped reading after"):
        fetch(conn)
    assert server.request_count - before == 1 and sleeps == []  # one search_stream, no retry
    monkeypatch.setenv("MKPI_GOOGLE_ADS_MAX_ANSWER_MB", "64")
    assert fetch(connector(server, customers=(EUR,))[0]).num_rows > 0  # the same read within the default limit


def test_a_bad_size_limit_is_refused_before_any_request(server, monkeypatch):
    monkeypatch.setenv("MKPI_GOOGLE_ADS_MAX_ANSWER_MB", "lots")
    conn, _ = connector(server, customers=(EUR,))
    before = server.request_count
    with pytest.raises(ConfigError, match="MKPI_GOOGLE_ADS_MAX_ANSWER_MB"):
        conn.check()  # what `mkpi doctor` and every asset run first
    with pytest.raises(ConfigError, match="MKPI_GOOGLE_ADS_MAX_ANSWER_MB"):
        fetch(conn)
    assert server.request_count == before
