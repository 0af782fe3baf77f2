"""HubSpot's cursor chains read at once (`HubSpotConnector.fetch_portal`, issue #21 target 6): the same batches, in
the same order, as the per-table methods one after the other; requests really in flight together; a failure raised
in table order with nothing of the failed table handed on. A small sandbox portal (60 days, a bulk import of 50)."""

import threading
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from connectors.batches import Batch, Window
from connectors.errors import SourceError
from connectors.http import RetryPolicy
from connectors.hubspot import OBJECT_PROPERTIES, HubSpotConnector
from connectors.settings import HubSpotSettings, Secret
from sandbox.hubspot_server import HubSpotServer
from sandbox.world import World

TODAY = date(2026, 3, 31)
TOKEN = "pat-sandbox-portal-test-0123456789"
WINDOW = Window(TODAY, TODAY)


@pytest.fixture(scope="module")
def server():
    world = World(seed=11, today=TODAY)
    with HubSpotServer(world, token=TOKEN, requests_per_10s=100_000, search_per_second=100_000, history_days=60,
                       bulk_import_size=50) as srv:
        yield srv


def connector(server: HubSpotServer) -> HubSpotConnector:
    settings = HubSpotSettings(endpoint=server.url, token=Secret(TOKEN), requests_per_10s=100_000,
                               search_per_second=100_000, timeout_seconds=20)
    return HubSpotConnector(settings, now_ms=lambda: server.now_ms, policy=RetryPolicy(base_delay=0.01, max_delay=0.05))


def one_after_the_other(conn: HubSpotConnector) -> Iterator[Batch]:
    """The per-table methods in fetch_portal's documented order: what a loop over them hands on."""
    for object_type in OBJECT_PROPERTIES:
        yield from conn.fetch_objects(object_type, None, WINDOW)
    yield from conn.fetch_owners(WINDOW)
    yield from conn.fetch_deal_stages(WINDOW)
    yield from conn.fetch_account_details(WINDOW)
    yield from conn.fetch_email_statistics(WINDOW)


def described(batches: Iterator[Batch]) -> list[tuple[Any, ...]]:
    """Everything the loader acts on: table, rows, scope, the cursor, what a batch replaces. The sandbox's recent
    e-mail counters grow from one read to the next (as HubSpot's do), so an e-mail row is its id and publish instant."""
    def rows(batch: Batch) -> list[Any]:
        if batch.stream.table == "hubspot.email_statistics":
            return batch.data.select(["email_id", "published_at"]).to_pylist()
        return batch.data.to_pylist()

    return [(b.stream.table, rows(b), sorted(b.scope.items()), b.cursor,
             None if b.replaces is None else b.replaces.to_pylist()) for b in batches]


@pytest.fixture(scope="module")
def serial(server) -> tuple[list[tuple[Any, ...]], int]:
    """The per-table methods one after the other: what they hand on, and the requests they send."""
    conn = connector(server)
    return described(one_after_the_other(conn)), conn.stats.requests


def test_chains_at_once_hand_on_what_the_tables_one_after_the_other_do(server, serial):
    handed = serial[0]
    assert described(connector(server).fetch_portal(WINDOW)) == handed  # whatever order the chains finished in
    tables = [t for t, *_ in handed]
    assert tables.index("hubspot.contacts") == 0 and "hubspot.deal_associations" in tables
    assert sum(len(rows) for _, rows, *_ in handed) > 1_000  # a portal with something in it


def test_chains_are_in_flight_together_and_send_no_more_requests(server, serial):
    conn = connector(server)
    lock, in_flight, peak = threading.Lock(), [0], [0]
    call = conn.call

    def counted(what: str, fn: Any, **kwargs: Any) -> Any:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            return call(what, fn, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    conn.call = counted  # type: ignore[method-assign]
    server.latency_seconds = 0.02  # answers take a moment, as a real portal's do
    try:
        sum(1 for _ in conn.fetch_portal(WINDOW, chains=3))
    finally:
        server.latency_seconds = 0.0
    assert 2 <= peak[0] <= 3  # several chains at once, never more than asked
    assert conn.stats.requests == serial[1]


def test_a_failed_table_raises_in_table_order_and_hands_on_none_of_its_batches(server):
    conn = connector(server)

    def refused(window: Window) -> Iterator[Batch]:
        raise SourceError("hubspot", "portal", "GET /crm/v3/pipelines/deals: 403 missing scope")
        yield  # a generator, as the real method

    conn.fetch_deal_stages = refused  # type: ignore[method-assign]
    handed: list[str] = []
    with pytest.raises(SourceError, match="403 missing scope"):
        for batch in conn.fetch_portal(WINDOW):
            handed.append(batch.stream.table)
    assert "hubspot.deal_stages" not in handed and "hubspot.email_statistics" not in handed
    assert handed[0] == "hubspot.contacts" and "hubspot.owners" in handed  # the tables before it, whole


def test_a_failure_stops_the_other_chains_at_their_next_page(server, serial):
    conn = connector(server)
    fetch_objects = conn.fetch_objects

    def contacts_refused(object_type: str, cursor: str | None, window: Window) -> Iterator[Batch]:
        if object_type == "contacts":
            raise SourceError("hubspot", "portal", "GET /crm/v3/objects/contacts: 403 missing scope")
        return fetch_objects(object_type, cursor, window)

    conn.fetch_objects = contacts_refused  # type: ignore[method-assign]
    server.latency_seconds = 0.05
    try:
        with pytest.raises(SourceError, match="403 missing scope"):
            sum(1 for _ in conn.fetch_portal(WINDOW, chains=3))
        time.sleep(1.0)  # what was in flight has landed; nothing more is sent
    finally:
        server.latency_seconds = 0.0
    assert conn.stats.requests <= serial[1] // 2  # 6 of 47 when written: each other chain's page in flight
