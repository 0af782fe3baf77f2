"""Chaos battery (issue #8, short version in `make test`; `make chaos` runs 50 seeds).

Every HTTP source is loaded through a flaky sandbox: 20% 429 (with Retry-After), 5% 5xx, 2% connection
resets, 2% stalls past the client timeout, 1% truncated bodies. Each seeded run must end with tables
identical (checksum over rows sorted by key, load metadata excluded) to a fault-free run, never wait less
than Retry-After, and never retry a request more than 5 times.
"""

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import date

import pytest

from connectors.batches import Batch, Window
from connectors.errors import RetriesExhausted
from connectors.ga4 import ECOMMERCE, TRAFFIC, Ga4Connector
from connectors.http import RetryPolicy
from connectors.matomo import MatomoConnector
from connectors.search_console import PAGES, SITE_TOTALS, SearchConsoleConnector
from connectors.settings import GA4Settings, MatomoSettings, SearchConsoleSettings, Secret
from connectors.warehouse import connect, load_batches
from sandbox.ga4_server import Ga4Server
from sandbox.gsc_server import GscServer
from sandbox.httpserver import FaultProfile
from sandbox.matomo_server import MatomoServer
from sandbox.world import DEFAULT_GA4_PROPERTY_ID, DEFAULT_GSC_SITE, World
from tests import battery

TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 28))
TOKEN = "chaos-matomo-token-0123456789abcdef"
SEEDS = int(os.environ.get("MKPI_CHAOS_SEEDS", "3"))
RETRY_AFTER = 1
POLICY = RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.002)  # at most 5 retries per request


def profile(seed: int) -> FaultProfile:
    return FaultProfile(seed=seed, status_429=0.20, status_500=0.05, reset=0.02, stall=0.02, truncate=0.01,
                        stall_seconds=1.5, retry_after_seconds=RETRY_AFTER)


class Waits:
    """Records the waits the connectors ask for instead of sleeping (the sandbox needs no real wait)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def batches(world: World, seed: int | None, waits: Waits) -> tuple[Callable[[], Iterator[Batch]], list]:
    faults = seed is not None
    servers = [Ga4Server(world), GscServer(world), MatomoServer(world, token=TOKEN)]
    for offset, server in enumerate(servers):
        if faults:
            server.fault_profile = profile(seed * 10 + offset)
        server.start()
    ga4 = Ga4Connector(GA4Settings(property_ids=(DEFAULT_GA4_PROPERTY_ID,), endpoint=servers[0].url, page_size=60,
                                   timeout_seconds=1.0), policy=POLICY, sleep=waits)
    gsc = SearchConsoleConnector(SearchConsoleSettings(sites=(DEFAULT_GSC_SITE,), endpoint=servers[1].url,
                                                       row_limit=40, timeout_seconds=1.0, queries_per_minute=100_000),
                                 policy=POLICY, sleep=waits, today=lambda: TODAY)
    matomo = MatomoConnector(MatomoSettings(url=servers[2].url + "/", site_ids=("1",), token=Secret(TOKEN),
                                            timeout_seconds=1.0, requests_per_second=100_000),
                             policy=POLICY, sleep=waits)

    def generate() -> Iterator[Batch]:
        yield from ga4.fetch(TRAFFIC, WINDOW)
        yield from ga4.fetch(ECOMMERCE, WINDOW)
        yield from gsc.fetch(SITE_TOTALS, WINDOW)
        yield from gsc.fetch(PAGES, WINDOW)
        yield from matomo.fetch(WINDOW)

    return generate, [servers, [ga4.stats, gsc.stats, matomo.stats]]


def checksum(path: str) -> str:
    digest = hashlib.sha256()
    with connect(path, read_only=True) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_schema NOT IN ('main', '_mkpi') ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            digest.update(f"{schema}.{table}".encode())
            rows = conn.execute(f'SELECT * EXCLUDE (_loaded_at, _window_start, _window_end) FROM "{schema}"."{table}" '
                                "ORDER BY ALL").fetchall()
            digest.update(repr(rows).encode())
    return digest.hexdigest()


RERUNS = 2  # as pipelines.lib.partitions.retry_transient_failures: Dagster re-runs the step


def load(path: str, seed: int | None) -> tuple[str, Waits, list, int]:
    """Load every source once; a run whose request exhausted its 5 retries on transient faults is re-run
    whole (what the Dagster step retry does), which the atomic, idempotent load makes safe."""
    world = World(seed=11, today=TODAY)
    waits = Waits()
    generate, (servers, stats) = batches(world, seed, waits)
    reruns = 0
    try:
        with connect(path) as conn:
            while True:
                try:
                    load_batches(conn, generate())
                    break
                except RetriesExhausted:
                    if reruns == RERUNS:
                        raise
                    reruns += 1
    finally:
        for server in servers:
            server.stop()
    return checksum(path), waits, stats, reruns


@pytest.fixture(scope="module")
def fault_free(tmp_path_factory) -> str:
    return load(str(tmp_path_factory.mktemp("chaos") / "clean.duckdb"), None)[0]


@pytest.mark.battery("Chaos")
@pytest.mark.parametrize("seed", range(SEEDS))
def test_a_flaky_network_changes_nothing_in_the_data(seed, fault_free, tmp_path):
    digest, waits, stats, reruns = load(str(tmp_path / "chaos.duckdb"), seed)
    retries = sum(s.retries for s in stats)
    print(f"seed {seed}: {sum(s.requests for s in stats)} requests {retries} retries {reruns} reruns")
    battery.count("Chaos", "requests", sum(s.requests for s in stats))
    battery.count("Chaos", "retries", retries)
    battery.count("Chaos", "step re-runs", reruns)
    assert digest == fault_free
    assert retries > 0  # the faults really happened
    after_429 = [wait for s in stats for reason, wait in s.waits if "429" in reason]
    assert all(wait >= RETRY_AFTER for wait in after_429)  # never shorter than Retry-After
    assert sorted(waits.seconds) == sorted(wait for s in stats for _, wait in s.waits)  # every wait accounted for
