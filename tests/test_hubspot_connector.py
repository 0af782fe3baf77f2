"""HubSpot connector against the sandbox HubSpot server over a real socket, through the official client.

The sandbox store holds ~19,000 live contacts, 10,250 of which share one modification millisecond (a
bulk import), so a one-year search window crosses the 10,000-result cap and one instant exceeds it.
"""

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connectors.batches import Window
from connectors.errors import ConfigError, InvalidResponse, SourceError
from connectors.http import RetryPolicy
from connectors.hubspot import EMAIL_STATISTICS, HubSpotConnector, _cursor, _histogram_table
from connectors.settings import HubSpotSettings, Secret
from connectors.validation import Contract
from connectors.warehouse import connect, load_batches, read_cursor
from sandbox.hubspot_server import SANDBOX_PORTAL_ID, HubSpotServer
from sandbox.hubspot_store import WON_STAGES
from sandbox.world import CURRENCY, TIMEZONE, World

EVENT_COUNTERS = ("sent", "delivered", "open", "click", "bounce", "unsubscribed", "spamreport")

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
    rows = [r for b in conn.fetch_email_statistics(WINDOW) if b.stream is EMAIL_STATISTICS for r in b.data.to_pylist()]
    sends = [s for d in range(400) for s in world.email_sends(date.fromordinal(TODAY.toordinal() - d))]
    assert len(rows) == len(server.emails) + len(world.hubspot_automated_emails())
    old = next(r for r in rows if r["send_date"] < date(2026, 1, 1) and not r["is_automated"])  # final counters
    truth = next(s for s in sends if str(s.id) == old["email_id"])
    assert {c: old[c] for c in truth.counters} == truth.counters
    assert EMAIL_STATISTICS.schema.names == list(rows[0].keys())


# ---- issue #16 item 1: deal associations -------------------------------------------------------------------------


def portal_associations(server, deal_ids) -> set[tuple[str, str, str]]:
    """(deal, to_type, to_id) as the sandbox portal holds them (its store), not through the connector."""
    return {(d, t, i) for d in deal_ids for t in ("contacts", "companies")
            for i in server.store.associated("deals", t, d)}


def test_deal_associations_hold_every_contact_and_company_of_every_deal(server, tmp_path):
    conn, _ = connector(server)
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_objects("deals", None, WINDOW))
        deals = [r[0] for r in db.execute("SELECT id FROM hubspot.deals WHERE NOT archived").fetchall()]
        loaded = set(db.execute("SELECT deal_id, to_type, to_id FROM hubspot.deal_associations").fetchall())
    truth = portal_associations(server, deals)
    several = {d for d in deals if len(server.store.associated("deals", "contacts", d)) >= 3}
    with_company = {d for d in deals if server.store.associated("deals", "companies", d)}
    assert several & with_company  # the portal has deals with a company and several contacts ...
    assert max(len(server.store.associated("deals", "contacts", d)) for d in several) > server.association_page
    assert loaded == truth  # ... and every one of them is loaded, contacts and companies, past the first page
    assert conn.partial_errors == []  # deals without a company are answered 207 "no association": not an error


def test_reading_one_type_of_association_leaves_the_other_alone(server, tmp_path):
    conn, _ = connector(server)
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_objects("deals", None, WINDOW))
        deal = next(d for d, in db.execute("SELECT id FROM hubspot.deals ORDER BY id").fetchall()
                    if server.store.associated("deals", "companies", d)
                    and len(server.store.associated("deals", "contacts", d)) >= 2)
        load_batches(db, conn.fetch_deal_associations([deal], WINDOW))  # contacts batch, then companies batch
        loaded = set(db.execute("SELECT deal_id, to_type, to_id FROM hubspot.deal_associations WHERE deal_id = ?",
                                [deal]).fetchall())
    assert loaded == portal_associations(server, [deal])
    assert {t for _, t, _ in loaded} == {"contacts", "companies"}


def test_a_207_answer_is_data_plus_named_errors(server, tmp_path):
    conn, _ = connector(server)
    deal = next(d for d in sorted(server.store.associations[("deals", "contacts")]) if server.store.get("deals", d))
    buyer = server.store.associated("deals", "contacts", deal)[0]
    server.add_fault("status", 207, {
        "status": "COMPLETE", "numErrors": 2, "startedAt": "2026-03-31T08:00:00.000Z",
        "completedAt": "2026-03-31T08:00:00.100Z",
        "results": [{"from": {"id": deal}, "to": [{"toObjectId": int(buyer), "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]}]}],
        "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND", "message": "No contact is associated "
                    "with deal 11.", "context": {"fromObjectId": ["11"]}},
                   {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object 12 was deleted.",
                    "context": {"fromObjectId": ["12"]}}]})
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_deal_associations([deal, "11", "12"], WINDOW))
        rows = db.execute("SELECT deal_id, to_type, to_id FROM hubspot.deal_associations").fetchall()
    assert (deal, "contacts", buyer) in rows  # the data of the 207 answer is loaded
    assert len(conn.partial_errors) == 1 and "deal 12" in conn.partial_errors[0]  # the error is named
    assert "Object 12 was deleted." in conn.partial_errors[0]  # "no association" (deal 11) is not an error


def test_a_deal_that_lost_its_contacts_loses_its_old_rows_but_a_failed_answer_keeps_them(server, tmp_path):
    conn, _ = connector(server)
    deals = sorted(d for d in server.store.associations[("deals", "contacts")] if server.store.get("deals", d))
    gone, failing = deals[0], deals[1]
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_deal_associations([gone, failing], WINDOW))
        kept = set(db.execute("SELECT deal_id, to_type, to_id FROM hubspot.deal_associations WHERE deal_id = ?",
                              [failing]).fetchall())
        assert kept and db.execute("SELECT count(*) FROM hubspot.deal_associations WHERE deal_id = ? AND "
                                   "to_type = 'contacts'", [gone]).fetchone()[0] > 0
        # HubSpot now answers: `gone` has no contact any more (207 "no association"); `failing`'s answer failed
        server.add_fault("status", 207, {
            "status": "COMPLETE", "numErrors": 2, "startedAt": "2026-03-31T08:00:00.000Z",
            "completedAt": "2026-03-31T08:00:00.100Z", "results": [],
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND", "message": "No contact is "
                        f"associated with deal {gone}.", "context": {"fromObjectId": [gone]}},
                       {"status": "error", "category": "RATE_LIMITS", "message": "Try again.",
                        "context": {"fromObjectId": [failing]}}]})
        load_batches(db, conn.fetch_deal_associations([gone, failing], WINDOW))  # contacts (207), then companies
        after = set(db.execute("SELECT deal_id, to_type, to_id FROM hubspot.deal_associations").fetchall())
    assert not any(d == gone and t == "contacts" for d, t, _ in after)  # its last contacts are gone
    assert kept <= after  # an answer that failed is not "no contacts": the deal keeps what it had


# ---- issue #16 item 4 / #17 item 3: marketing e-mail dates and automated e-mails ----------------------------------


def email_rows(conn, **kwargs) -> tuple[dict[str, dict], list[tuple]]:
    stats, events = {}, []
    for batch in conn.fetch_email_statistics(WINDOW, **kwargs):
        if batch.stream is EMAIL_STATISTICS:
            stats.update({r["email_id"]: r for r in batch.data.to_pylist()})
        else:
            events += [tuple(r.values()) for r in batch.data.to_pylist()]
    return stats, events


def test_emails_are_dated_by_publish_date_else_published_at(server, world):
    conn, _ = connector(server)
    stats, _ = email_rows(conn)
    late = world.hubspot_extra_emails(date(2026, 3, 15))[0]  # scheduled for 23:30 UTC, the 16th in Paris
    now = world.hubspot_extra_emails(date(2026, 3, 5))[0]  # "send now": no publishDate, only publishedAt
    newsletter = world.email_sends(date(2026, 3, 17))[0]  # scheduled: published the afternoon before
    for send in (late, now, newsletter):
        row = stats[str(send.id)]
        assert row["published_at"] == datetime.fromtimestamp(send.send_ts_ms / 1000, UTC)
        assert row["send_date"] == datetime.fromtimestamp(send.send_ts_ms / 1000, UTC).date()
        assert row["is_automated"] is False and row["sent"] == send.sent
    assert stats[str(late.id)]["send_date"] == date(2026, 3, 15)  # UTC; it is 16 March in Paris
    assert all(r["published_at"] is not None for r in stats.values())  # every e-mail here is published


def test_automated_email_activity_by_portal_day(server, world):
    conn, _ = connector(server)
    stats, events = email_rows(conn)
    (welcome,) = world.hubspot_automated_emails()
    days = [date.fromordinal(o) for o in range(welcome.first_day.toordinal(), TODAY.toordinal() + 1)]
    truth = {(str(welcome.id), d, *(world.automated_email_day(welcome, d)[c] for c in EVENT_COUNTERS)) for d in days
             if world.automated_email_day(welcome, d)["sent"]}
    assert len(truth) > 400 and set(events) == truth  # one row per day of sends, over its whole life
    row = stats[str(welcome.id)]
    lifetime = {c: sum(world.automated_email_day(welcome, d)[c] for d in days) for c in EVENT_COUNTERS}
    assert row["is_automated"] is True and row["email_type"] == "AUTOMATED_EMAIL"
    assert {c: row[c] for c in EVENT_COUNTERS} == lifetime
    assert row["published_at"] == datetime.fromtimestamp(welcome.published_ts_ms / 1000, UTC)


def test_automated_emails_are_reread_whatever_their_age_batch_ones_within_the_window(server, world, tmp_path):
    conn, _ = connector(server)
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_email_statistics(WINDOW))
        known = {r[0] for r in db.execute("SELECT email_id FROM hubspot.email_statistics").fetchall()}
        stats, events = email_rows(conn, known_ids=known)
        load_batches(db, conn.fetch_email_statistics(WINDOW, known_ids=known))
        (welcome,) = world.hubspot_automated_emails()
        loaded = db.execute("SELECT date, sent FROM hubspot.email_events_daily ORDER BY date").fetchall()
    horizon = server.now_ms - 30 * DAY_MS
    recent = {str(e.id) for e in server.emails if e.send_ts_ms >= horizon}
    assert set(stats) == recent | {str(welcome.id)}  # the welcome e-mail is 15 months old, and still re-read
    assert {d for _, d, *_ in events} == {d for d in (date.fromordinal(TODAY.toordinal() - k) for k in range(31))
                                          if world.automated_email_day(welcome, d)["sent"]}
    assert loaded[0][0] == welcome.first_day and len(loaded) == len({d for d, _ in loaded})  # history kept


# ---- issue #17 item 5: the portal -------------------------------------------------------------------------------


def test_account_details_name_the_portal(server, tmp_path):
    conn, _ = connector(server)
    with connect(tmp_path / "h.duckdb") as db:
        load_batches(db, conn.fetch_account_details(WINDOW))
        load_batches(db, conn.fetch_account_details(WINDOW))  # every run: upserted, never duplicated
        rows = db.execute("SELECT portal_id, time_zone, company_currency, ui_domain FROM hubspot.account_details"
                          ).fetchall()
    assert rows == [(str(SANDBOX_PORTAL_ID), TIMEZONE, CURRENCY, "app-eu1.hubspot.com")]


# ---- issue #17 item 4: opaque cursors -----------------------------------------------------------------------------


def test_list_cursors_go_back_as_handed_out_never_encoded_twice(server):
    conn, _ = connector(server)
    pages = list(conn.list_all("companies", ["name"], archived=False))
    assert len(pages) == 3
    given = [r for r in server.requests if r.path == "/crm/v3/objects/companies"]
    sent = [r.query["after"][0] for r in given if "after" in r.query]
    assert len(sent) == 2 and all(not a.isdigit() for a in sent)  # opaque cursors ...
    assert all("%" not in a for a in sent)  # ... decoded once by the server: the wire carried them as `link` does


def test_search_cursors_are_opaque_strings_sent_back_verbatim(server):
    conn, _ = connector(server)
    since = server.now_ms - 20 * DAY_MS
    ids = [r["id"] for page in conn.search_modified("contacts", since, server.now_ms, ["lastmodifieddate"])
           for r in page]
    assert set(ids) == live_ids(server, "contacts", since) and len(ids) == len(set(ids))
    afters = [r.json["after"] for r in server.requests if r.path.endswith("/search")]
    assert afters[0] == "0" and len(afters) > 2 and all("%3D" in a for a in afters[1:])  # as given, in the body


def test_a_cursor_that_does_not_move_is_refused():
    contract = Contract("hubspot", "portal", "GET x")
    assert _cursor(contract, "MjAwCg%3D%3D", "paging.next.after", "MTAwCg%3D%3D") == "MjAwCg%3D%3D"
    with pytest.raises(InvalidResponse, match="does not advance"):
        _cursor(contract, "MTAwCg%3D%3D", "paging.next.after", "MTAwCg%3D%3D")
    with pytest.raises(InvalidResponse):
        _cursor(contract, {"after": 1}, "paging.next.after", None)


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


# ---- the statistics histogram: every day of the span, or refused --------------------------------------------------
PARIS = ZoneInfo(TIMEZONE)
SPAN = Window(date(2026, 1, 1), date(2026, 1, 5))


def bucket(day: date, **counters: int) -> dict:
    """One DAY bucket of a Paris portal: midnight to midnight (UTC+1 in January)."""
    start = datetime(day.year, day.month, day.day, tzinfo=PARIS)
    return {"interval": {"start": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "end": (start + timedelta(days=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "aggregations": {"counters": counters}}


def histogram(body: dict):
    return _histogram_table(Contract("hubspot", "portal", "GET histogram"), body, "77", SPAN, PARIS)


def test_a_histogram_with_every_day_gives_the_active_days():
    days = [bucket(date(2026, 1, d)) for d in (1, 2, 4, 5)] + [bucket(date(2026, 1, 3), sent=10, delivered=9)]
    table = histogram({"total": 5, "results": days})
    assert table.select(["date", "sent", "delivered", "open"]).to_pylist() == [
        {"date": date(2026, 1, 3), "sent": 10, "delivered": 9, "open": 0}]  # empty days: no row (zero events)


def test_a_histogram_lacking_days_of_the_span_is_refused_naming_them():
    # January 1, 2 and 5 answered: 3 and 4 missing would read as no events
    body = {"results": [bucket(date(2026, 1, 1), sent=4), bucket(date(2026, 1, 2)), bucket(date(2026, 1, 5))]}
    with pytest.raises(InvalidResponse, match=r"no bucket for 2 of the 5 days asked .*2026-01-03\.\.2026-01-04"):
        histogram(body)
    # one bucket with sends over a 5-day span: the other 4 days are missing, not empty
    with pytest.raises(InvalidResponse, match=r"no bucket for 4 of the 5 days asked .*2026-01-02\.\.2026-01-05"):
        histogram({"total": 1, "results": [bucket(date(2026, 1, 1), sent=4)]})
    with pytest.raises(InvalidResponse, match="no bucket for 5 of the 5 days"):
        histogram({"total": 0, "results": []})


def test_a_histogram_whose_total_is_not_its_buckets_is_refused():
    body = {"total": 6, "results": [bucket(date(2026, 1, d)) for d in range(1, 6)]}
    with pytest.raises(InvalidResponse, match="says 6 buckets but holds 5"):
        histogram(body)


def test_the_single_result_of_a_span_without_sends_is_no_events():
    # HubSpot's answer when nothing was sent in the span: one result, nothing counted
    whole = {"interval": {"start": "2025-12-31T23:00:00Z", "end": "2026-01-05T23:00:00Z"},
             "aggregations": {"counters": {"sent": 0, "open": 0}}}
    assert histogram({"total": 1, "results": [whole]}).num_rows == 0


def test_the_sandbox_answers_every_day_or_one_result_as_hubspot_does(server, world):
    """Through the connector: the welcome e-mail's days before its first send are one result without events (no
    rows, no error); a span across its first day is a bucket for every day, rows on its days of sends only."""
    conn, _ = connector(server)
    (welcome,) = world.hubspot_automated_emails()
    before = Window(welcome.first_day - timedelta(days=10), welcome.first_day - timedelta(days=1))
    assert [b.num_rows for b in conn.fetch_email_events(str(welcome.id), before.start, before.end, PARIS)] == [0]
    stats_api = conn.sub("marketing.emails.statistics_api")

    def answer(span: Window) -> dict:
        return json.loads(stats_api.get_histogram(
            interval="DAY", start_timestamp=f"{span.start}T00:00:00Z", end_timestamp=f"{span.end}T00:00:00Z",
            email_ids=[welcome.id], _preload_content=False).data)

    assert answer(before)["total"] == 1 and len(answer(before)["results"]) == 1
    across = Window(welcome.first_day - timedelta(days=2), welcome.first_day + timedelta(days=2))
    (batch,) = conn.fetch_email_events(str(welcome.id), across.start, across.end, PARIS)
    sent = {d: world.automated_email_day(welcome, d)["sent"] for d in across.dates()}
    assert dict(zip(batch.data["date"].to_pylist(), batch.data["sent"].to_pylist(), strict=True)) == {
        d: n for d, n in sent.items() if n}
    # 4 days from midnight UTC (01:00 in Paris) to midnight UTC: 5 Paris days touched, each with its bucket (HubSpot's
    # "number of days + 1" for a span off the portal's midnight)
    assert len(answer(across)["results"]) == 5
