"""Issue #19 item 7: every official client is bounded against hostile answers, in memory and in time.

A sandbox server answers (scripted faults of sandbox/httpserver.py) with a body far larger than the limit, an
endless chunked stream, or the real answer dripped at one byte a second. Through each connector's own request path
(Matomo over requests, GA4's REST transport over google-api-core's AuthorizedSession, Search Console's discovery
client over httplib2, HubSpot's client over urllib3) the request must stop at the platform's size limit
(MKPI_<PLATFORM>_MAX_ANSWER_MB; fatal, not retried: the same request gets the same answer) or at its total deadline
(timeout_seconds, connect and read; retried within the policy), with an error naming the limit, while the
process's resident memory grows by far less than the body and the wall time stays near the deadline.

`make test` runs a short version (a 1 MB limit, a 0.5 s deadline against 5 bytes a second, one attempt); `make chaos`
(MKPI_CHAOS_SEEDS=50)
the issue's figures: a 1 GB body against the default 64 MB limit, a drip against a 5 s deadline over three
attempts, and seeded hostile faults (FaultProfile oversized/endless/drip) over ten seeds.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from connectors.batches import Window
from connectors.errors import RetriesExhausted, SourceError
from connectors.ga4 import Ga4Connector
from connectors.http import DEFAULT_MAX_ANSWER_MB, MEGABYTE, RetryPolicy
from connectors.hubspot import HubSpotConnector
from connectors.matomo import MatomoConnector
from connectors.search_console import SearchConsoleConnector
from connectors.settings import GA4Settings, HubSpotSettings, MatomoSettings, SearchConsoleSettings, Secret
from sandbox.ga4_server import Ga4Server
from sandbox.gsc_server import GscServer
from sandbox.httpserver import FaultProfile, SandboxServer
from sandbox.hubspot_server import HubSpotServer
from sandbox.matomo_server import MatomoServer
from sandbox.world import DEFAULT_GSC_SITE, World
from tests import battery

FULL = battery.FULL  # make chaos: the real limits and sizes; make test: small ones
TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 7))
MATOMO_TOKEN = "0123456789abcdef0123456789abcdef"
HUBSPOT_TOKEN = "pat-sandbox-hostile-0123456789abcdef"
PROPERTY = "123456789"
LIMIT_MB = DEFAULT_MAX_ANSWER_MB if FULL else 1.0
OVERSIZED = 1024 * MEGABYTE if FULL else 200 * MEGABYTE
DEADLINE = 5.0 if FULL else 0.5
# A drip's pace, bytes per second: one byte every 1 s (make chaos) or every 0.2 s, both well inside each client's
# per-read timeout at that deadline, so only the total deadline can stop it
DRIP = 1.0 if FULL else 5.0
ATTEMPTS = 3 if FULL else 1
LINE = "Hostile answers"


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, today=TODAY)


@dataclass
class Platform:
    """One platform's sandbox server and one cheap request through its connector."""

    name: str
    server: Callable[[World], SandboxServer]
    connector: Callable[[str, float, RetryPolicy], Any]
    request: Callable[[Any], Any]


def _policy(attempts: int = ATTEMPTS, **overrides: float) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.02, **overrides)


def _matomo(url: str, timeout: float, policy: RetryPolicy) -> MatomoConnector:
    return MatomoConnector(MatomoSettings(url=url + "/", site_ids=("1",), token=Secret(MATOMO_TOKEN),
                                          timeout_seconds=timeout), policy=policy, sleep=time.sleep)


def _ga4(url: str, timeout: float, policy: RetryPolicy) -> Ga4Connector:
    return Ga4Connector(GA4Settings(property_ids=(PROPERTY,), endpoint=url, timeout_seconds=timeout), policy=policy,
                        sleep=time.sleep)


def _gsc(url: str, timeout: float, policy: RetryPolicy) -> SearchConsoleConnector:
    return SearchConsoleConnector(SearchConsoleSettings(sites=(DEFAULT_GSC_SITE,), endpoint=url,
                                                        timeout_seconds=timeout), policy=policy, sleep=time.sleep)


def _hubspot(url: str, timeout: float, policy: RetryPolicy) -> HubSpotConnector:
    return HubSpotConnector(HubSpotSettings(endpoint=url, token=Secret(HUBSPOT_TOKEN), timeout_seconds=timeout,
                                            requests_per_10s=190, search_per_second=100), policy=policy,
                            sleep=time.sleep)


GSC_BODY = {"startDate": "2026-03-01", "endDate": "2026-03-07", "dimensions": ["date"], "type": "web",
            "aggregationType": "byProperty", "rowLimit": 10, "startRow": 0, "dataState": "all"}
PLATFORMS = [
    Platform("matomo", lambda w: MatomoServer(w, token=MATOMO_TOKEN), _matomo,
             lambda c: c.call("SitesManager.getSiteFromId", "1", idSite="1")),
    Platform("ga4", Ga4Server, _ga4, lambda c: c.time_zone(PROPERTY, WINDOW)),
    Platform("search_console", GscServer, _gsc, lambda c: c.query(DEFAULT_GSC_SITE, GSC_BODY, "searchAnalytics.query")),
    # a month-deep portal without its bulk import: the one request read here is the portal's account details
    Platform("hubspot", lambda w: HubSpotServer(w, token=HUBSPOT_TOKEN, requests_per_10s=100_000,
                                                search_per_second=100_000, history_days=30, bulk_import_size=0),
             _hubspot, lambda c: c.account_details()),
]
IDS = [p.name for p in PLATFORMS]


@pytest.fixture(params=PLATFORMS, ids=IDS)
def platform(request: pytest.FixtureRequest, world: World, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[tuple[Platform, SandboxServer]]:
    spec: Platform = request.param
    monkeypatch.setenv(f"MKPI_{spec.name.upper()}_MAX_ANSWER_MB", str(LIMIT_MB))
    with spec.server(world) as server:
        yield spec, server


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measured(fn: Callable[[], Any]) -> tuple[BaseException | None, float, int]:
    """Run `fn`: (the exception it raised or None, seconds, peak growth of this process's resident memory, sampled
    every 2 ms from another thread)."""
    before, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss() - before)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started, error = time.monotonic(), None
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - returned to the test
        error = exc
    finally:
        done.set()
        sampler.join()
    return error, time.monotonic() - started, peak[0]


def _bytes_read(error: BaseException) -> int:
    match = re.search(r"stopped reading after ([\d,]+) bytes", str(error))
    assert match, f"the error does not say how much was read: {error}"
    return int(match.group(1).replace(",", ""))


@pytest.mark.battery(LINE)
@pytest.mark.parametrize("fault", [("oversized", OVERSIZED), ("endless",)], ids=["oversized", "endless"])
def test_an_answer_past_the_size_limit_stops_there_and_is_not_retried(platform, fault):
    spec, server = platform
    connector = spec.connector(server.url, 30.0, _policy(attempts=3))
    server.add_fault(*fault)
    error, seconds, growth = measured(lambda: spec.request(connector))
    variable = f"MKPI_{spec.name.upper()}_MAX_ANSWER_MB"
    assert isinstance(error, SourceError) and not isinstance(error, RetriesExhausted), error
    assert f"larger than the {LIMIT_MB:g} MB allowed ({variable})" in str(error)
    assert spec.name in str(error)
    limit = int(LIMIT_MB * MEGABYTE)
    assert limit < _bytes_read(error) <= limit + 64 * 1024  # stopped within one 64 KB read of the limit
    assert server.request_count == 1  # fatal: the same request would get the same answer
    assert growth < limit + 96 * MEGABYTE, f"resident memory grew by {growth / MEGABYTE:.0f} MB"
    assert seconds < 30
    battery.count(LINE, "oversized/endless answers stopped", 1)
    battery.note(LINE, f"{spec.name} {fault[0]}: stopped after {_bytes_read(error):,} bytes (limit {LIMIT_MB:g} MB) in "
                       f"{seconds:.2f}s, resident memory +{growth / MEGABYTE:.0f} MB")


@pytest.mark.battery(LINE)
def test_a_small_gzip_body_inflating_past_the_limit_is_refused(platform):
    """A few hundred KB on the wire, many MB once decompressed: the limit holds for what the client inflates."""
    spec, server = platform
    inflated = (256 if FULL else 32) * MEGABYTE
    server.add_fault("gzip_bomb", inflated)
    error, _, growth = measured(lambda: spec.request(spec.connector(server.url, 30.0, _policy(attempts=3))))
    variable = f"MKPI_{spec.name.upper()}_MAX_ANSWER_MB"
    assert isinstance(error, SourceError) and not isinstance(error, RetriesExhausted), error
    assert f"larger than the {LIMIT_MB:g} MB allowed ({variable})" in str(error), error
    assert growth < LIMIT_MB * MEGABYTE + 96 * MEGABYTE and server.request_count == 1
    battery.count(LINE, "compressed answers inflating past the limit stopped", 1)


@pytest.mark.battery(LINE)
def test_a_dripping_answer_stops_at_the_total_deadline(platform):
    """A byte at a time, each within the per-read timeout, passes every per-read timeout; the total deadline
    (timeout_seconds) stops each attempt."""
    spec, server = platform
    connector = spec.connector(server.url, DEADLINE, _policy())
    for _ in range(ATTEMPTS):
        server.add_fault("drip", DRIP)
    error, seconds, _ = measured(lambda: spec.request(connector))
    assert isinstance(error, RetriesExhausted), error
    assert f"no complete answer within {DEADLINE:g}s" in str(error) and spec.name in str(error)
    assert server.request_count == ATTEMPTS
    assert ATTEMPTS * DEADLINE * 0.9 <= seconds < ATTEMPTS * DEADLINE + 3
    battery.count(LINE, "dripping answers stopped", 1)
    battery.note(LINE, f"{spec.name} drip at {DRIP:g} byte(s)/s: {ATTEMPTS} attempt(s) of {DEADLINE:g}s each, "
                       f"gave up after {seconds:.1f}s")


@pytest.mark.battery(LINE)
def test_a_drip_then_a_good_answer_succeeds(platform):
    spec, server = platform
    truth = spec.request(spec.connector(server.url, 1.0, _policy(attempts=2)))
    server.add_fault("drip", DRIP)
    answers: list[Any] = []
    error, seconds, _ = measured(lambda: answers.append(spec.request(spec.connector(server.url, DEADLINE,
                                                                                    _policy(attempts=2)))))
    assert error is None and answers == [truth]
    # the first, the drip stopped at the deadline, its retry
    assert DEADLINE <= seconds < DEADLINE + 2 and server.request_count == 3


@pytest.mark.battery(LINE)
def test_retries_are_bounded_by_total_time_as_well_as_count():
    """Ten attempts allowed, but 2.5 s in all: three 1 s deadlines, then the next wait would pass the budget."""
    world = World(seed=7, today=TODAY)
    with MatomoServer(world, token=MATOMO_TOKEN) as server:
        for _ in range(10):
            server.add_fault("drip", 1.0)
        connector = _matomo(server.url, 1.0, _policy(attempts=10, max_elapsed=2.5))
        error, seconds, _ = measured(lambda: connector.call("API.getMatomoVersion", "1"))
    assert isinstance(error, RetriesExhausted), error
    assert "gave up after 3 attempts" in str(error) and "2.5s allowed for a request and its retries" in str(error)
    assert server.request_count == 3 and 2.9 <= seconds < 5


@pytest.mark.battery(LINE)
def test_the_size_limit_is_checked_before_any_request(monkeypatch):
    from connectors.errors import ConfigError

    monkeypatch.setenv("MKPI_MATOMO_MAX_ANSWER_MB", "0")
    connector = _matomo("http://127.0.0.1:9", 1.0, _policy())
    with pytest.raises(ConfigError, match="MKPI_MATOMO_MAX_ANSWER_MB must be a number of megabytes above 0"):
        connector.check()


SEEDS = [0, *(pytest.param(seed, marks=pytest.mark.full) for seed in range(1, 10))]


@pytest.mark.battery(LINE)
@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_hostile_faults_end_in_the_right_rows_or_a_named_limit(world, monkeypatch, seed):
    """A Matomo sandbox drawing oversized, endless and dripping answers (and ordinary faults) for a week's fetch:
    each run ends within its time budget and bounded memory, and either gives the fault-free rows or fails named."""
    monkeypatch.setenv("MKPI_MATOMO_MAX_ANSWER_MB", "1")
    with MatomoServer(world, token=MATOMO_TOKEN) as clean:
        expected = [b.data for b in _matomo(clean.url, 5.0, _policy(attempts=1)).fetch(WINDOW)]
    with MatomoServer(world, token=MATOMO_TOKEN) as server:
        server.fault_profile = FaultProfile(seed=seed, oversized=0.2, endless=0.2, drip=0.2, status_500=0.1,
                                            oversized_bytes=50 * MEGABYTE, drip_bytes_per_second=50.0)
        connector = _matomo(server.url, 1.0, _policy(attempts=4, max_elapsed=6.0))
        got: list[Any] = []
        error, seconds, growth = measured(lambda: got.extend(b.data for b in connector.fetch(WINDOW)))
    assert seconds < 10 and growth < 100 * MEGABYTE
    if error is None:
        assert [t.to_pylist() for t in got] == [t.to_pylist() for t in expected]
    else:  # a named failure: a limit, or transient errors (drips, 5xx) outlasting the retries
        assert isinstance(error, SourceError) and "matomo account 1" in str(error), error
        assert isinstance(error, RetriesExhausted) or "larger than the 1 MB allowed" in str(error), error
    battery.count(LINE, "seeded hostile runs", 1)


# ---- issue #19 item 8: redirects never carry credentials to another origin --------------------------------------

REDIRECTS = "Cross-host redirects"


class Elsewhere(SandboxServer):
    """Another origin (another port, named localhost): whatever reaches it would have been sent to a stranger."""

    name = "elsewhere"


@pytest.mark.battery(REDIRECTS)
@pytest.mark.parametrize("status", [307, 308, 302])
def test_a_redirect_to_another_origin_is_refused_naming_both(platform, status):
    """Matomo's 307 re-POSTed token_auth to another address (the issue); every client now refuses before sending a
    byte there: the other server sees no request, the error names both origins, and it is not retried."""
    spec, server = platform
    with Elsewhere() as elsewhere:
        other = elsewhere.port
        server.add_fault("redirect", status, f"http://localhost:{other}")
        error, _, _ = measured(lambda: spec.request(spec.connector(server.url, 5.0, _policy(attempts=3))))
        assert elsewhere.request_count == 0
    assert isinstance(error, SourceError) and not isinstance(error, RetriesExhausted), error
    text = str(error)
    assert f"redirected from http://127.0.0.1:{server.port} to http://localhost:{other}" in text, text
    assert server.request_count == 1
    battery.count(REDIRECTS, "cross-origin redirects refused", 1)


@pytest.mark.battery(REDIRECTS)
def test_a_redirect_to_plain_http_elsewhere_is_refused_without_connecting(platform):
    """Plain HTTP goes to loopback only; a redirect cannot take a request (and its credentials) to example.com."""
    spec, server = platform
    server.add_fault("redirect", 308, "http://example.com")
    error, seconds, _ = measured(lambda: spec.request(spec.connector(server.url, 5.0, _policy())))
    assert isinstance(error, SourceError) and "to http://example.com:80" in str(error), error
    assert seconds < 2  # refused before a DNS lookup or a connection


@pytest.mark.battery(REDIRECTS)
def test_a_redirect_within_the_origin_is_followed(platform):
    """The same origin is the configured host: following it sends nothing to anyone new. (httplib2 follows a POST's
    redirect only for 303 and 308, so 308 here: the same request again, body included.)"""
    spec, server = platform
    truth = spec.request(spec.connector(server.url, 5.0, _policy()))
    server.add_fault("redirect", 308, None)
    assert spec.request(spec.connector(server.url, 5.0, _policy())) == truth
    assert server.request_count == 3 and [r.fault for r in server.requests[1:]] == ["redirect", None]
