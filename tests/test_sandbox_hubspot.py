"""The HubSpot emulator through the official ``hubspot-api-client``, typed and raw (``_preload_content=False``).

The point is what real syncs trip over: string-only property values, id-cursor paging with ``archived``,
the search 10,000-result cap with more than 10,000 contacts in one millisecond, one sort only, pipeline
metadata (not labels) for won stages, 401/414/429 envelopes, and counters that still move on recent e-mails.
"""

import json
import re
from datetime import date

import pytest
import requests
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, PublicObjectSearchRequest

from sandbox.hubspot_server import ASSOCIATION_PAGE, SANDBOX_PORTAL_ID, HubSpotServer, encode_cursor
from sandbox.hubspot_store import ARCHIVED_CONTACTS, BULK_IMPORT_SIZE, WON_STAGES, CrmStore, iso_ms
from sandbox.launcher import start_sandbox
from sandbox.world import World

TODAY = date(2026, 3, 31)
TOKEN = "pat-sandbox-test"
DAY_MS = 86_400_000
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# Every generated module of the client has its own ApiException class, with no common base but Exception;
# the tests check ``.status`` and ``.body``.
ApiException = Exception


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture(scope="module")
def server(world):
    # Limits high enough for the drains below; throttling has its own servers.
    with HubSpotServer(world, token=TOKEN, requests_per_10s=100_000, search_per_second=100_000) as srv:
        yield srv


@pytest.fixture
def fresh(world):
    """A server of its own, for tests that mutate the CRM or count requests."""
    with HubSpotServer(world, token=TOKEN, requests_per_10s=100_000, search_per_second=100_000) as srv:
        yield srv


def client(srv: HubSpotServer) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=srv.url)


def raw_search(search_api, **body) -> dict:
    response = search_api.do_search(public_object_search_request=PublicObjectSearchRequest(**body),
                                    _preload_content=False)
    return json.loads(response.data)


def window_filter(prop: str, start: int, end: int) -> list[dict]:
    return [{"filters": [{"propertyName": prop, "operator": "GTE", "value": str(start)},
                         {"propertyName": prop, "operator": "LTE", "value": str(end)}]}]


# ---- lists ---------------------------------------------------------------------------------------------


def test_list_pages_by_id_to_the_end(server):
    basic = client(server).crm.companies.basic_api
    ids, after, pages = [], None, 0
    while True:
        page = basic.get_page(limit=100, after=after, properties=["name", "domain"], archived=False)
        ids += [r.id for r in page.results]
        pages += 1
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    counts = server.store.counts()["companies"]
    assert len(ids) == counts["live"] == len(set(ids)) and pages == 3
    assert ids == sorted(ids, key=int)


def test_contacts_raw_drain_and_archived_only(server):
    basic = client(server).crm.contacts.basic_api
    seen, after = 0, None
    while True:
        data = json.loads(basic.get_page(limit=100, after=after, archived=False, _preload_content=False).data)
        assert all(r["archived"] is False for r in data["results"])
        seen += len(data["results"])
        if "paging" not in data:
            break
        after = data["paging"]["next"]["after"]
    assert seen == server.store.counts()["contacts"]["live"]
    archived = json.loads(basic.get_page(limit=100, archived=True, _preload_content=False).data)
    assert all(r["archived"] is True and "archivedAt" in r for r in archived["results"])
    rest = json.loads(basic.get_page(limit=100, after=archived["paging"]["next"]["after"], archived=True,
                                     _preload_content=False).data)
    assert "paging" not in rest and len(archived["results"]) + len(rest["results"]) == ARCHIVED_CONTACTS


def test_limit_over_100_is_refused(server):
    with pytest.raises(ApiException) as err:
        client(server).crm.contacts.basic_api.get_page(limit=101)
    assert err.value.status == 400 and json.loads(err.value.body)["category"] == "VALIDATION_ERROR"


def test_property_values_are_strings(server):
    api = client(server)
    props = ["email", "lifecyclestage", "hs_lifecyclestage_customer_date", "churn_date", "newsletter_optin",
             "hs_analytics_source"]
    data = raw_search(api.crm.contacts.search_api, properties=props, limit=200, filter_groups=[
        {"filters": [{"propertyName": "churn_date", "operator": "HAS_PROPERTY"}]}])
    assert data["total"] > 0
    for r in data["results"]:
        p = r["properties"]
        assert all(v is None or isinstance(v, str) for v in p.values())
        assert ISO_DATETIME.match(p["lastmodifieddate"]) and ISO_DATETIME.match(p["createdate"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p["churn_date"])
        assert p["lifecyclestage"] == "customer" and p["newsletter_optin"] in ("true", "false")
        assert p["hs_object_id"] == r["id"]
    deals = json.loads(api.crm.deals.basic_api.get_page(limit=50, _preload_content=False).data)["results"]
    assert all(isinstance(d["properties"]["amount"], str) for d in deals)
    types = {d.name: d.type for d in api.crm.properties.core_api.get_all("contacts").results}
    assert types["churn_date"] == "date" and types["lastmodifieddate"] == "datetime"
    assert types["newsletter_optin"] == "bool" and types["hs_object_id"] == "number"


# ---- search --------------------------------------------------------------------------------------------


def test_search_window_pages_until_the_10000_cap(server):
    search = client(server).crm.contacts.search_api
    end = server.now_ms
    groups = window_filter("lastmodifieddate", end - 365 * DAY_MS, end)
    served, after, last = 0, "0", None
    while True:
        data = raw_search(search, filter_groups=groups, sorts=["lastmodifieddate"], properties=["email"],
                          limit=200, after=after)
        assert data["total"] > 15_000
        for r in data["results"]:
            key = (r["properties"]["lastmodifieddate"], int(r["id"]))
            assert last is None or key > last  # ascending, ties by id
            last = key
        served += len(data["results"])
        if "paging" not in data:
            break
        after = data["paging"]["next"]["after"]
    assert served == 10_000
    with pytest.raises(ApiException) as err:
        search.do_search(public_object_search_request=PublicObjectSearchRequest(
            filter_groups=groups, sorts=["lastmodifieddate"], limit=200, after="9900"))
    body = json.loads(err.value.body)
    assert err.value.status == 400
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]


def test_search_typed_descending_and_one_sort_only(server):
    search = client(server).crm.deals.search_api
    res = search.do_search(public_object_search_request=PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "dealstage", "operator": "IN",
                                     "values": ["closedwon", "7788993"]}]}],
        sorts=[{"propertyName": "amount", "direction": "DESCENDING"}], properties=["amount", "dealstage"],
        limit=20))
    amounts = [float(r.properties["amount"]) for r in res.results]
    assert amounts == sorted(amounts, reverse=True) and res.total > 100
    raw = raw_search(search, limit=20, filter_groups=[{"filters": [
        {"propertyName": "pipeline", "operator": "EQ", "value": "default"}]}])
    assert all("associations" not in r for r in raw["results"])  # search never returns associations
    with pytest.raises(ApiException) as err:
        search.do_search(public_object_search_request=PublicObjectSearchRequest(sorts=["amount", "createdate"]))
    assert err.value.status == 400


def test_bulk_import_shares_one_millisecond_and_drains_by_id(server):
    search = client(server).crm.contacts.search_api
    ms = server.store.bulk_import_ms
    same = [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(ms)}]
    first = raw_search(search, filter_groups=[{"filters": same}], limit=1)
    assert first["total"] == BULK_IMPORT_SIZE > 10_000
    # ISO values are accepted in filters too.
    assert raw_search(search, filter_groups=[{"filters": [{**same[0], "value": iso_ms(ms)}]}], limit=1)["total"] \
        == BULK_IMPORT_SIZE
    ids: list[int] = []
    last_id = 0
    while True:
        data = raw_search(search, filter_groups=[{"filters": same + [
            {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)}]}],
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}], properties=["email"], limit=200)
        if not data["results"]:
            break
        ids += [int(r["id"]) for r in data["results"]]
        assert all(r["properties"]["lastmodifieddate"] == iso_ms(ms) for r in data["results"])
        last_id = ids[-1]
    assert len(ids) == len(set(ids)) == BULK_IMPORT_SIZE and ids == sorted(ids)


# ---- batch read, associations, pipelines ------------------------------------------------------------------


def test_batch_read_and_missing_ids(server):
    api = client(server)
    some = [r.id for r in api.crm.contacts.basic_api.get_page(limit=5).results]
    res = api.crm.contacts.batch_api.read(batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
        properties=["email", "lifecyclestage"], inputs=[{"id": i} for i in some]))
    assert res.status == "COMPLETE" and sorted(r.id for r in res.results) == sorted(some)
    assert all("lifecyclestage" in r.properties for r in res.results)
    raw = api.crm.contacts.batch_api.read(batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
        inputs=[{"id": some[0]}, {"id": "999"}]), _preload_content=False)
    body = json.loads(raw.data)
    assert raw.status == 207 and body["numErrors"] == 1 and body["errors"][0]["context"]["ids"] == ["999"]


def test_associations_v3_and_v4_agree(server):
    api = client(server)
    search = raw_search(api.crm.deals.search_api, limit=20, filter_groups=[
        {"filters": [{"propertyName": "pipeline", "operator": "EQ", "value": "default"}]}])
    deal_ids = [r["id"] for r in search["results"]]
    v3 = {}
    for d in deal_ids:
        rec = api.crm.deals.basic_api.get_by_id(d, associations=["contacts"])
        v3[d] = [a.id for a in rec.associations["contacts"].results]
    v4 = api.crm.associations.v4.batch_api.get_page(
        from_object_type="deals", to_object_type="contacts",
        batch_input_public_fetch_associations_batch_request=BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[{"id": d} for d in deal_ids]))
    assert v4.status == "COMPLETE" and len(v4.results) == len(deal_ids)
    for r in v4.results:
        assert [str(t.to_object_id) for t in r.to] == v3[r._from.id]
        assert r.to[0].association_types[0].type_id == 3
        assert r.to[0].association_types[0].category == "HUBSPOT_DEFINED"


def test_pipeline_metadata_marks_won_stages_not_labels(server):
    pipelines = client(server).crm.pipelines.pipelines_api.get_all("deals").results
    won = {(p.id, s.id) for p in pipelines for s in p.stages
           if s.metadata["isClosed"] == "true" and float(s.metadata["probability"]) == 1.0}
    assert won == WON_STAGES
    labels = {s.id: s.label for p in pipelines for s in p.stages}
    assert labels["closedwon"] == "Signed 🎉" and "won" in labels["7788992"].lower()
    assert ("7788990", "7788992") not in won


def test_owners_with_and_without_trailing_slash(server):
    api = client(server)
    assert len(api.crm.owners.owners_api.get_page(limit=100).results) == 5
    assert [o.archived for o in api.crm.owners.owners_api.get_page(archived=True).results] == [True]
    assert server.requests[-1].path == "/crm/v3/owners/"
    plain = requests.get(f"{server.url}/crm/v3/owners", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert plain.status_code == 200 and len(plain.json()["results"]) == 5


def test_feedback_submissions_are_nps_answers(server, world):
    api = client(server)
    data = raw_search(api.crm.objects.feedback_submissions.search_api, limit=200,
                      properties=["hs_value", "hs_survey_type", "hs_contact_id", "hs_submission_timestamp"],
                      filter_groups=[{"filters": [{"propertyName": "hs_survey_type", "operator": "EQ",
                                                   "value": "NPS"}]}])
    expected = sum(len(world.nps_responses(TODAY.fromordinal(TODAY.toordinal() - i))) for i in range(400))
    assert data["total"] == expected
    assert all(r["properties"]["hs_value"] in {str(i) for i in range(11)} for r in data["results"])
    page = api.crm.objects.feedback_submissions.basic_api.get_page(limit=3)
    assert len(page.results) == 3 and page.paging.next.after


# ---- errors and limits ---------------------------------------------------------------------------------


def test_401_without_or_with_a_wrong_token(server):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        r = requests.get(f"{server.url}/crm/v3/objects/contacts", headers=headers, timeout=5)
        body = r.json()
        assert r.status_code == 401 and body["category"] == "INVALID_AUTHENTICATION"
        assert body["status"] == "error" and body["message"].startswith("Authentication credentials not found")
    with pytest.raises(ApiException) as err:
        HubSpot(access_token="wrong", host=server.url).crm.contacts.basic_api.get_page()
    assert err.value.status == 401
    assert all(e.headers.get("authorization") in (None, "REDACTED") for e in server.requests)


def test_414_on_a_long_request_line(server):
    many = [f"custom_property_with_a_long_name_{i:04d}" for i in range(150)]
    with pytest.raises(ApiException) as err:
        client(server).crm.contacts.basic_api.get_page(limit=10, properties=many)
    assert err.value.status == 414 and json.loads(err.value.body)["status"] == "error"


def test_429_ten_secondly_with_retry_after(world):
    clock = FakeClock()
    with HubSpotServer(world, token=TOKEN, requests_per_10s=5) as srv:
        srv.clock = clock
        # urllib3's default Retry silently sleeps and retries a GET answered 429 with Retry-After (3 times);
        # turning that off keeps the test fast and shows the raw answer.
        no_wait = urllib3.Retry(total=3, respect_retry_after_header=False)
        basic = HubSpot(access_token=TOKEN, host=srv.url, retry=no_wait).crm.companies.basic_api
        for _ in range(5):
            basic.get_page(limit=1)
        with pytest.raises(ApiException) as err:
            basic.get_page(limit=1)
        assert srv.request_count == 6
        body = json.loads(err.value.body)
        assert err.value.status == 429 and err.value.headers["Retry-After"] == "1"
        assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
        clock.now += 10.01
        assert len(basic.get_page(limit=1).results) == 1


def test_429_secondly_on_search_without_retry_after(world):
    clock = FakeClock()
    with HubSpotServer(world, token=TOKEN, search_per_second=2) as srv:
        srv.clock = clock
        search = client(srv).crm.companies.search_api
        for _ in range(2):
            raw_search(search, limit=1)
        with pytest.raises(ApiException) as err:
            raw_search(search, limit=1)
        assert err.value.status == 429 and "Retry-After" not in err.value.headers
        assert json.loads(err.value.body)["policyName"] == "SECONDLY"
        clock.now += 1.01
        assert raw_search(search, limit=1)["total"] > 0


# ---- mutations -----------------------------------------------------------------------------------------


def test_touch_archive_create_show_up_in_later_reads(fresh):
    api = client(fresh)
    search, basic = api.crm.contacts.search_api, api.crm.contacts.basic_api
    since = fresh.now_ms
    after_ms = since + 60_000
    fresh.now_ms = after_ms
    recent = window_filter("lastmodifieddate", since + 1, after_ms + DAY_MS)
    assert raw_search(search, filter_groups=recent)["total"] == 0

    leads = raw_search(search, limit=3, filter_groups=[{"filters": [
        {"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]}])["results"]
    lead_ids = [r["id"] for r in leads]
    fresh.touch("contacts", lead_ids, after_ms, properties={"lifecyclestage": "customer"})
    new_ids = fresh.create_contacts(2, after_ms)
    got = raw_search(search, filter_groups=recent, properties=["lifecyclestage"], sorts=["hs_object_id"])
    assert [r["id"] for r in got["results"]] == sorted(lead_ids + new_ids, key=int)
    assert {r["properties"]["lifecyclestage"] for r in got["results"] if r["id"] in lead_ids} == {"customer"}
    assert basic.get_by_id(new_ids[0]).properties["createdate"] == iso_ms(after_ms)

    fresh.archive("contacts", [lead_ids[0]], after_ms)
    got = raw_search(search, filter_groups=recent)
    assert lead_ids[0] not in {r["id"] for r in got["results"]} and got["total"] == 4
    archived = json.loads(basic.get_page(limit=1, after=lead_ids[0], archived=True, _preload_content=False).data)
    assert archived["results"][0]["id"] == lead_ids[0] and archived["results"][0]["archived"] is True
    live = json.loads(basic.get_page(limit=1, after=lead_ids[0], _preload_content=False).data)
    assert live["results"][0]["id"] != lead_ids[0]


# ---- marketing e-mails ---------------------------------------------------------------------------------


def test_marketing_emails_stats_trailing_slash_and_moving_counters(fresh):
    api = client(fresh)
    emails_api = api.marketing.emails.marketing_emails_api
    first = emails_api.get_page(limit=100, include_stats=True, sort=["-publishDate"])
    assert fresh.requests[-1].path == "/marketing/v3/emails/"
    assert fresh.requests[-1].query["includeStats"] == ["True"]
    assert first.total == len(fresh.emails) + len(fresh.automated) and first.paging.next.after == encode_cursor(100)
    newest, oldest = first.results[0], first.results[-1]
    assert newest.state == "PUBLISHED" and newest.type == "BATCH_EMAIL"
    c = newest.stats.counters
    assert c["sent"] >= c["delivered"] >= c["open"] >= c["click"]
    assert newest.stats.ratios["openratio"] == round(100 * c["open"] / c["delivered"], 2)
    second = emails_api.get_page(limit=100, include_stats=True, sort=["-publishDate"])
    assert second.results[0].stats.counters["open"] > c["open"]  # recent: still accruing
    assert second.results[-1].stats.counters == oldest.stats.counters  # months old: final
    plain = requests.get(f"{fresh.url}/marketing/v3/emails", params={"limit": 1},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert plain.status_code == 200 and len(plain.json()["results"]) == 1

    stats = api.marketing.emails.statistics_api.get_emails_list(
        start_timestamp="2026-03-01T00:00:00Z", end_timestamp="2026-04-01T00:00:00Z")
    march = [e for e in fresh.emails if iso_ms(e.send_ts_ms).startswith("2026-03")]
    (welcome,) = fresh.automated  # sends every day: its March days count too
    welcome_sent = sum(fresh.world.automated_email_day(welcome, date(2026, 3, d))["sent"] for d in range(1, 32))
    assert sorted(stats.emails) == sorted([e.id for e in march] + [welcome.id])
    assert stats.aggregate.counters["sent"] == sum(e.sent for e in march) + welcome_sent


# ---- wiring --------------------------------------------------------------------------------------------


def test_store_is_deterministic_and_launcher_exports_env(world):
    a, b = CrmStore(world), CrmStore(World(seed=7, today=TODAY))
    assert a.bulk_import_ms == b.bulk_import_ms and a.counts() == b.counts()
    assert a.tables["contacts"].records["2000000001"].properties == b.tables["contacts"].records[
        "2000000001"].properties
    with start_sandbox(world) as sandbox:
        env = sandbox.env
        assert env["MKPI_HUBSPOT_ENDPOINT"].startswith("http://127.0.0.1:")
        assert env["MKPI_HUBSPOT_TOKEN"].startswith("pat-sandbox-")
        r = requests.get(f"{env['MKPI_HUBSPOT_ENDPOINT']}/crm/v3/pipelines/deals",
                         headers={"Authorization": f"Bearer {env['MKPI_HUBSPOT_TOKEN']}"}, timeout=5)
        assert r.status_code == 200


# ---- paging cursors, associations, the portal (issues #16 and #17) ---------------------------------------------


def test_list_cursors_are_opaque_and_the_link_carries_them_as_given(server):
    raw = json.loads(client(server).crm.companies.basic_api.get_page(limit=100, _preload_content=False).data)
    cursor = raw["paging"]["next"]["after"]
    assert not cursor.isdigit() and "%3D" in cursor  # base64, percent-encoded: HubSpot's "NTI1Cg%3D%3D" form
    assert raw["paging"]["next"]["link"].endswith(f"after={cursor}")
    as_link = requests.get(f"{server.url}/crm/v3/objects/companies?limit=100&after={cursor}",
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()
    assert int(as_link["results"][0]["id"]) > int(raw["results"][-1]["id"])
    refused = requests.get(f"{server.url}/crm/v3/objects/companies", params={"after": "not-a-cursor"},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert refused.status_code == 400


def test_association_batch_read_pages_each_record_and_answers_207(server):
    batch = client(server).crm.associations.v4.batch_api
    store = server.store
    many = next(d for d in sorted(store.associations[("deals", "contacts")])
                if len(store.associated("deals", "contacts", d)) > ASSOCIATION_PAGE)
    alone = next(d for d in sorted(store.associations[("deals", "contacts")])
                 if store.get("deals", d) and not store.associated("deals", "companies", d))

    def read(to_type: str, inputs: list[dict]) -> tuple[int, dict]:
        response = batch.get_page("deals", to_type, {"inputs": inputs}, _preload_content=False)
        return response.status, json.loads(response.data)

    status, body = read("contacts", [{"id": many}])
    (result,) = body["results"]
    assert status == 200 and len(result["to"]) == ASSOCIATION_PAGE and "paging" in result
    seen = [t["toObjectId"] for t in result["to"]]
    while "paging" in result:  # the cursor goes back verbatim in the JSON body, beside the id
        status, body = read("contacts", [{"id": many, "after": result["paging"]["next"]["after"]}])
        (result,) = body["results"]
        seen += [t["toObjectId"] for t in result["to"]]
    assert [str(i) for i in seen] == store.associated("deals", "contacts", many)

    status, body = read("companies", [{"id": many}, {"id": alone}])
    assert status == 207 and body["numErrors"] == 1 and [r["from"]["id"] for r in body["results"]] == [many]
    (error,) = body["errors"]
    assert error["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND"
    assert error["context"]["fromObjectId"] == [alone]
    assert error["message"] == f"No company is associated with deal {alone}."


def test_account_info_details_name_a_fixed_portal(server):
    r = requests.get(f"{server.url}/account-info/v3/details", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    body = r.json()
    assert r.status_code == 200 and body["portalId"] == SANDBOX_PORTAL_ID  # a JSON integer, as in HubSpot's spec
    assert (body["timeZone"], body["companyCurrency"], body["uiDomain"]) == ("Europe/Paris", "EUR",
                                                                           "app-eu1.hubspot.com")
    assert body["utcOffset"] in ("+01:00", "+02:00") and body["utcOffsetMilliseconds"] in (3_600_000, 7_200_000)


# ---- marketing e-mails: dates, automated e-mails, histogram ------------------------------------------------------


def test_email_dates_follow_hubspots_spec(server, world):
    emails_api = client(server).marketing.emails.marketing_emails_api
    raw = [e for after in (None, "MTAwCg==") for e in json.loads(emails_api.get_page(
        limit=100, after=after, _preload_content=False).data)["results"]]
    by_id = {e["id"]: e for e in raw}
    late = world.hubspot_extra_emails(date(2026, 3, 15))[0]
    send_now = world.hubspot_extra_emails(date(2026, 3, 5))[0]
    newsletter = world.email_sends(date(2026, 3, 17))[0]
    (welcome,) = world.hubspot_automated_emails()
    assert by_id[str(late.id)]["publishDate"] == "2026-03-15T23:30:00.000Z"  # the 16th in Paris
    assert "publishDate" not in by_id[str(send_now.id)]  # sent at once: only publishedAt
    assert by_id[str(send_now.id)]["publishedAt"] == iso_ms(send_now.send_ts_ms)
    scheduled = by_id[str(newsletter.id)]
    assert scheduled["publishDate"] == iso_ms(newsletter.send_ts_ms)
    assert scheduled["publishedAt"] < scheduled["publishDate"]  # published (scheduled) the day before
    automated = by_id[str(welcome.id)]
    assert (automated["type"], automated["state"]) == ("AUTOMATED_EMAIL", "AUTOMATED")
    assert "publishDate" not in automated


def test_histogram_buckets_start_at_the_portals_midnight(server, world):
    stats = client(server).marketing.emails.statistics_api
    (welcome,) = world.hubspot_automated_emails()
    body = json.loads(stats.get_histogram(interval="DAY", start_timestamp="2026-03-14T23:00:00Z",
                                          end_timestamp="2026-03-30T22:00:00Z", _preload_content=False).data)
    buckets = {b["interval"]["start"]: b for b in body["results"]}
    assert body["total"] == 16 and "2026-03-14T23:00:00.000Z" in buckets  # midnight in Paris (UTC+1)
    dst = buckets["2026-03-28T23:00:00.000Z"]["interval"]  # 29 March: 23 hours long, the next starts at 22:00Z
    assert dst["end"] == "2026-03-29T22:00:00.000Z"
    late = world.hubspot_extra_emails(date(2026, 3, 15))[0]  # 23:30 UTC on the 15th: the 16th's bucket
    sixteenth = buckets["2026-03-15T23:00:00.000Z"]["aggregations"]["counters"]
    assert sixteenth["sent"] == late.sent + world.automated_email_day(welcome, date(2026, 3, 16))["sent"]
    only = json.loads(stats.get_histogram(interval="DAY", start_timestamp="2026-03-14T23:00:00Z",
                                          end_timestamp="2026-03-30T22:00:00Z", email_ids=[welcome.id],
                                          _preload_content=False).data)
    assert [b["aggregations"]["counters"]["sent"] for b in only["results"]] == [
        world.automated_email_day(welcome, date(2026, 3, d))["sent"] for d in range(15, 31)]
