"""HubSpot connector against the sandbox HubSpot server over a real socket, through the official client.

The sandbox store holds ~19,000 live contacts, 10,250 of which share one modification millisecond (a
bulk import), so a one-year search window crosses the 10,000-result cap and one instant exceeds it.
"""

from datetime import date

import pytest

from connectors.batches import Window
from connectors.errors import ConfigError, SourceError
from connectors.http import RetryPolicy
from connectors.hubspot import EMAIL_STATISTICS, HubSpotConnector
from connectors.settings import HubSpotSettings, Secret
from connectors.warehouse import connect, load_batches, read_cursor
from sandbox.hubspot_server import HubSpotServer
from sandbox.hubspot_store import WON_STAGES
from sandbox.world import World

TODAY = date(2026, 3, 31)
TOKEN = "pat-sandbox-test-0123456789abcdef"
WINDOW = Window(TODAY, TODAY)
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture
def server(world):
    with HubSpotServer(world, token=TOKEN, requests_per_10s=100_000, search_per_second=100_000) as srv:
        yield srv


def connector(server, token: str = TOKEN, **overrides) -> tuple[HubSpotConnector, list[float]]:
    sleeps: list[float] = []
    settings = HubSpotSettings(endpoint=server.url, token=Secret(token), requests_per_10s=100_000,
                               search_per_second=100_000, timeout_seconds=20, **overrides)
    conn = HubSpotConnector(settings, sleep=sleeps.append, now_ms=lambda: server.now_ms,
                            policy=RetryPolicy(base_delay=0.01, max_delay=0.05))
    return conn, sleeps


def live_ids(server, object_type: str, since_ms: int = 0, until_ms: int | None = None) -> set[str]:
    """The truth, from the sandbox store (not through the connector)."""
    until = server.now_ms if until_ms is None else until_ms
    table = server.store.tables[object_type]
    return {str(i) for ts, i in table.by_modified if since_ms <= ts <= until}


def test_search_past_the_cap_and_through_a_shared_millisecond_reads_every_record_once(server):
    conn, _ = connector(server)
    since = server.now_ms - 365 * DAY_MS
    ids: list[str] = []
    for page in conn.search_modified("contacts", since, server.now_ms, ["lastmodifieddate"]):
        ids.extend(r["id"] for r in page)
    truth = live_ids(server, "contacts", since)
    assert len(truth) > 10_000  # the window crosses the cap ...
    bulk = server.store.bulk_import_ms
    shared = sum(1 for ts, _ in server.store.tables["contacts"].by_modified if ts == bulk)
    assert shared > 10_000  # ... and so does one millisecond
    assert len(ids) == len(set(ids))  # nothing read twice
    assert set(ids) == truth  # nothing skipped


def test_full_load_then_incremental_picks_up_updates_creations_and_archivals(server, tmp_path):
    conn, _ = connector(server)
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_objects("contacts", None, WINDOW))
        cursor = read_cursor(db, "hubspot", "contacts", "portal")
        assert cursor == str(server.now_ms)
        live = db.execute("SELECT count(*) FROM hubspot.contacts WHERE NOT archived").fetchone()[0]
        archived = db.execute("SELECT count(*) FROM hubspot.contacts WHERE archived").fetchone()[0]
        counts = server.store.counts()["contacts"]
        assert (live, archived) == (counts["live"], counts["archived"])

        # an hour later: one contact becomes a customer, one is archived, two are created
        server.now_ms += 3_600_000
        changed, gone = sorted(live_ids(server, "contacts"))[:2]
        server.touch("contacts", [changed], properties={"lifecyclestage": "customer"})
        server.archive("contacts", [gone])
        new_ids = server.create_contacts(2)
        requests_before = server.request_count
        load_batches(db, conn.fetch_objects("contacts", cursor, WINDOW))
        assert server.request_count - requests_before < 10  # a search, the archived pass, definitions: not a full list
        assert db.execute("SELECT lifecyclestage FROM hubspot.contacts WHERE id = ?", [changed]).fetchone() == (
            "customer",)
        assert db.execute("SELECT archived FROM hubspot.contacts WHERE id = ?", [gone]).fetchone() == (True,)
        assert db.execute(f"SELECT count(*) FROM hubspot.contacts WHERE id IN ({','.join('?' * 2)})", new_ids
                          ).fetchone() == (2,)
        assert db.execute("SELECT count(*), count(DISTINCT id) FROM hubspot.contacts").fetchone() == (
            live + archived + 2, live + archived + 2)
        assert read_cursor(db, "hubspot", "contacts", "portal") == str(server.now_ms)


def test_properties_are_typed_from_the_portals_definitions(server, tmp_path):
    conn, _ = connector(server)
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_objects("deals", None, WINDOW))
        types = dict(db.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'deals'").fetchall())
    assert types["amount"] == "DOUBLE" and types["closedate"] == "TIMESTAMP WITH TIME ZONE"
    assert types["dealstage"] == "VARCHAR" and types["archived"] == "BOOLEAN"


def test_a_crash_between_pages_loses_nothing_and_duplicates_nothing(server, tmp_path):
    conn, _ = connector(server)
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_objects("companies", None, WINDOW))
        cursor = read_cursor(db, "hubspot", "companies", "portal")
        server.now_ms += 60_000
        server.touch("companies", sorted(live_ids(server, "companies"))[:3])
        before = db.execute("SELECT * FROM hubspot.companies ORDER BY id").fetchall()

        def crashing():
            for i, batch in enumerate(conn.fetch_objects("companies", cursor, WINDOW)):
                if i == 1:
                    raise RuntimeError("worker killed between pages")
                yield batch

        with pytest.raises(RuntimeError):
            load_batches(db, crashing())
        assert db.execute("SELECT * FROM hubspot.companies ORDER BY id").fetchall() == before
        assert read_cursor(db, "hubspot", "companies", "portal") == cursor  # never ahead of its rows
        load_batches(db, conn.fetch_objects("companies", cursor, WINDOW))
        rows = db.execute("SELECT count(*), count(DISTINCT id) FROM hubspot.companies").fetchone()
        counts = server.store.counts()["companies"]
        assert rows == (counts["live"] + counts["archived"],) * 2


def test_429_with_retry_after_is_honoured(world):
    with HubSpotServer(world, token=TOKEN, requests_per_10s=3, search_per_second=100) as srv:
        now = [0.0]
        srv.clock = lambda: now[0]
        conn, sleeps = connector(srv)

        def sleep(seconds: float) -> None:  # waiting moves the server's rolling window, without real time
            sleeps.append(seconds)
            now[0] += seconds

        conn.sleep = sleep
        conn.policy = RetryPolicy(base_delay=2.0, max_delay=16.0)  # backoff grows past the 10 s window
        for _ in range(3):  # 9 requests against a limit of 3 per 10 s
            assert list(conn.fetch_deal_stages(WINDOW)) and list(conn.fetch_owners(WINDOW))
        assert sleeps and all(s >= 1 for s in sleeps)  # Retry-After: 1, never less
        assert conn.stats.retries == len(sleeps)


def test_won_stages_come_from_metadata_not_labels(server):
    conn, _ = connector(server)
    (batch,) = list(conn.fetch_deal_stages(WINDOW))
    won = {(r["pipeline_id"], r["stage_id"]) for r in batch.data.to_pylist() if r["is_won"]}
    assert won == set(WON_STAGES)


def test_email_statistics_with_counters(server, world):
    conn, _ = connector(server)
    rows = [r for b in conn.fetch_email_statistics(WINDOW) for r in b.data.to_pylist()]
    sends = [s for d in range(400) for s in world.email_sends(date.fromordinal(TODAY.toordinal() - d))]
    assert len(rows) == len(server.emails)
    old = next(r for r in rows if r["send_date"] < date(2026, 1, 1))  # final counters (sent > 30 days ago)
    truth = next(s for s in sends if str(s.id) == old["email_id"])
    assert {c: old[c] for c in truth.counters} == truth.counters
    assert EMAIL_STATISTICS.schema.names == list(rows[0].keys())


def test_bad_token_is_a_clear_error_without_the_token(server):
    conn, sleeps = connector(server, token="pat-sandbox-wrong-token-value")
    with pytest.raises(SourceError) as info:
        list(conn.fetch_deal_stages(WINDOW))
    assert "401" in str(info.value) and "MKPI_HUBSPOT_TOKEN" in str(info.value)
    assert "pat-sandbox-wrong-token-value" not in str(info.value)
    assert sleeps == []


def test_missing_token_and_plain_http_are_refused_before_any_request():
    with pytest.raises(ConfigError, match="MKPI_HUBSPOT_TOKEN"):
        HubSpotConnector(HubSpotSettings(endpoint="https://api.hubapi.com")).check()
    with pytest.raises(ConfigError, match="plain HTTP"):
        HubSpotConnector(HubSpotSettings(endpoint="http://crm.example", token=Secret("t"))).check()


def test_long_property_lists_go_through_batch_read_not_the_url(server):
    many = tuple(f"custom_property_number_{i:04d}" for i in range(200))
    conn, _ = connector(server, extra_properties={"companies": many})
    pages = list(conn.list_all("companies", conn.properties_for("companies"), archived=False))
    assert sum(len(p) for p in pages) == server.store.counts()["companies"]["live"]
    assert any(r.path.endswith("/batch/read") for r in server.requests)
    assert all(len(r.path) + len(str(r.query)) < 4000 for r in server.requests)
