"""Bad input (issue #8): malformed answers and configurations fail loudly, precisely, and change nothing.

Every case mutates a real-shaped answer (captured from the sandbox servers, whose shapes follow
`shared/api-samples/`) or a real configuration, serves it through the sandbox's scripted fault queue (Google
Ads: at the gRPC response level, as the connector's own tests do), and loads through
`connectors.warehouse.load_batches` into a DuckDB file that already holds data. Each case asserts:

- the typed error: `InvalidResponse` naming source, account, endpoint and field (`SourceError` naming the id
  for an unknown property/site/customer; `ConfigError` naming the key for configuration),
- no retry was spent on it (the same request would get the same answer), and no secret is in the message,
- the DuckDB file is byte-identical afterwards (sha256 before == after).

Decisions the cases pin down: a positional column nobody asked for (a GA4 header, a Search Console key) is
refused; a named field an API adds to a keyed object (a Matomo row, a HubSpot record) is ignored, and the raw
layer only grows when a declared stream does (see test_schema_drift.py).
"""

import contextlib
import copy
import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connectors.batches import Window
from connectors.errors import ConfigError, InvalidResponse, RetriesExhausted, SourceError
from connectors.ga4 import Ga4Connector
from connectors.google_ads import GoogleAdsConnector
from connectors.http import RetryPolicy
from connectors.hubspot import HubSpotConnector
from connectors.matomo import MatomoConnector
from connectors.search_console import SearchConsoleConnector
from connectors.settings import load_settings
from connectors.warehouse import connect, load_batches
from sandbox.ads_server import AdsServer
from sandbox.ga4_server import Ga4Server
from sandbox.gsc_server import GscServer
from sandbox.httpserver import Request, Response, SandboxServer, json_response
from sandbox.matomo_server import MatomoServer
from sandbox.world import World
from tests import battery

LINE = "Bad input"
WINDOW = Window(date(2026, 3, 20), date(2026, 3, 22))
GA4_PROPERTY = "123456789"
GSC_SITE = "sc-domain:shop.example"
MATOMO_SITE = "1"
ADS_CUSTOMER = "1234567890"
TEN_MB = "x" * (10 * 1024 * 1024)
FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)
NAN, INF = math.nan, math.inf
SAMPLES = Path(__file__).resolve().parent / "samples"  # trimmed copies of shared/api-samples


@dataclass(frozen=True)
class Case:
    """One malformed input: which reader, how to break its answer, and the field the error must name."""

    source: str  # ga4, gsc, matomo, google_ads, hubspot_contacts, hubspot_deals, hubspot_emails, hubspot_owners
    name: str
    mutate: Callable[[Any], list[Any]]  # base answer -> the answers to serve, in order
    field: str | None  # the field InvalidResponse must name; None for an unknown id (SourceError)
    unknown_id: str | None = None

    @property
    def id(self) -> str:
        return f"{self.source}-{self.name}"


def clone(body: Any) -> Any:
    """A deep copy of a JSON answer (a JSON round trip is several times faster than copy.deepcopy)."""
    return json.loads(json.dumps(body))


def one(change: Callable[[Any], None]) -> Callable[[Any], list[Any]]:
    """A mutation of one copy of the base answer, served once."""

    def mutate(base: Any) -> list[Any]:
        body = clone(base)
        change(body)
        return [body]

    return mutate


def twice(change: Callable[[Any], None]) -> Callable[[Any], list[Any]]:
    """The same mutated page served for two consecutive requests (a cursor or offset the server ignores)."""

    def mutate(base: Any) -> list[Any]:
        body = clone(base)
        change(body)
        return [body, body]

    return mutate


# ---- GA4 runReport (traffic_by_channel) -----------------------------------------------------------------------

GA4_METRICS = ["sessions", "engagedSessions", "userEngagementDuration", "sessionKeyEventRate", "keyEvents",
               "newUsers"]
GA4_INTEGER_METRICS = ["sessions", "engagedSessions", "keyEvents", "newUsers"]


def _ga4_metric(metric: str, value: Any) -> Callable[[Any], None]:
    def change(body: dict) -> None:
        index = [h["name"] for h in body["metricHeaders"]].index(metric)
        body["rows"][0]["metricValues"][index]["value"] = value
    return change


def _ga4_dimension(index: int, value: Any) -> Callable[[Any], None]:
    def change(body: dict) -> None:
        body["rows"][0]["dimensionValues"][index]["value"] = value
    return change


def _ga4_drop_header(metric: str) -> Callable[[Any], None]:
    def change(body: dict) -> None:
        index = [h["name"] for h in body["metricHeaders"]].index(metric)
        del body["metricHeaders"][index]
        for row in body["rows"]:
            del row["metricValues"][index]
    return change


def _ga4_header_type(metric: str, kind: str) -> Callable[[Any], None]:
    def change(body: dict) -> None:
        next(h for h in body["metricHeaders"] if h["name"] == metric)["type"] = kind
    return change


def _ga4_new_metric(body: dict) -> None:
    body["metricHeaders"].append({"name": "totalRevenue", "type": "TYPE_CURRENCY"})
    for row in body["rows"]:
        row["metricValues"].append({"value": "1.0"})


def _ga4_new_dimension(body: dict) -> None:
    body["dimensionHeaders"].append({"name": "country"})
    for row in body["rows"]:
        row["dimensionValues"].append({"value": "France"})


def _ga4_cases() -> Iterator[Case]:
    for metric in GA4_METRICS:
        yield Case("ga4", f"{metric}-not-a-number", one(_ga4_metric(metric, "abc")), metric)
        yield Case("ga4", f"{metric}-nan", one(_ga4_metric(metric, "NaN")), metric)
        yield Case("ga4", f"{metric}-infinity", one(_ga4_metric(metric, "Infinity")), metric)
        yield Case("ga4", f"{metric}-negative", one(_ga4_metric(metric, "-5")), metric)
        yield Case("ga4", f"{metric}-header-missing", one(_ga4_drop_header(metric)), "metricHeaders")
    for metric in GA4_INTEGER_METRICS:  # the header says TYPE_INTEGER: "12.5" is not one
        yield Case("ga4", f"{metric}-fraction-for-integer", one(_ga4_metric(metric, "12.5")), metric)
    for metric in ("sessions", "engagedSessions", "newUsers"):  # declared int64 in the raw table
        yield Case("ga4", f"{metric}-type-change", one(_ga4_header_type(metric, "TYPE_FLOAT")),
                   f"metricHeaders.{metric}.type")
    yield Case("ga4", "new-metric-column", one(_ga4_new_metric), "metricHeaders")
    yield Case("ga4", "new-dimension-column", one(_ga4_new_dimension), "dimensionHeaders")
    yield Case("ga4", "row-missing-metric-value", one(lambda b: b["rows"][0]["metricValues"].pop()),
               "rows[0].metricValues")
    yield Case("ga4", "row-missing-dimension-value", one(lambda b: b["rows"][0]["dimensionValues"].pop()),
               "rows[0].dimensionValues")
    for label, value in (("month-13", "20261345"), ("iso-format", "2026-03-20"), ("empty", ""), ("text", "soon")):
        yield Case("ga4", f"date-{label}", one(_ga4_dimension(0, value)), "date")
    yield Case("ga4", "channel-10mb", one(_ga4_dimension(1, TEN_MB)), "sessionDefaultChannelGroup")
    yield Case("ga4", "duplicate-row", one(lambda b: b["rows"].append(copy.deepcopy(b["rows"][0]))),
               "rows.date+sessionDefaultChannelGroup")
    yield Case("ga4", "offset-not-advancing", twice(lambda b: b.update(rowCount=2 * len(b["rows"]))),
               "rows.date+sessionDefaultChannelGroup")
    yield Case("ga4", "row-count-promises-more", lambda base: [
        {**copy.deepcopy(base), "rowCount": len(base["rows"]) + 5}, {**copy.deepcopy(base), "rows": [],
                                                                     "rowCount": len(base["rows"]) + 5}],
        "rowCount")
    yield Case("ga4", "row-count-not-a-number", one(lambda b: b.update(rowCount="many")), "rowCount")
    yield Case("ga4", "rows-not-a-list", one(lambda b: b.update(rows="none")), "rows")
    yield Case("ga4", "metric-value-object", one(_ga4_metric("sessions", {"n": 1})), "rows")
    yield Case("ga4", "unknown-property", lambda base: [], None, unknown_id="987654321")


# ---- Search Console searchAnalytics.query (pages) ----------------------------------------------------------------

def _gsc_set(key: str, value: Any) -> Callable[[Any], None]:
    def change(body: dict) -> None:
        body["rows"][0][key] = value
    return change


def _gsc_drop(key: str) -> Callable[[Any], None]:
    def change(body: dict) -> None:
        del body["rows"][0][key]
    return change


def _gsc_key(index: int, value: Any) -> Callable[[Any], None]:
    def change(body: dict) -> None:
        body["rows"][0]["keys"][index] = value
    return change


def _gsc_cases() -> Iterator[Case]:
    for counter in ("clicks", "impressions"):
        for label, value in (("text", "abc"), ("nan", NAN), ("infinity", INF), ("negative", -3),
                             ("fraction", 2.5), ("list", [1]), ("null", None), ("bool", True), ("huge", 10 ** 400)):
            yield Case("gsc", f"{counter}-{label}", one(_gsc_set(counter, value)), counter)
        yield Case("gsc", f"{counter}-missing", one(_gsc_drop(counter)), counter)
    for label, value in (("text", "abc"), ("nan", NAN), ("infinity", INF), ("negative", -0.1), ("object", {})):
        yield Case("gsc", f"ctr-{label}", one(_gsc_set("ctr", value)), "ctr")
    yield Case("gsc", "ctr-missing", one(_gsc_drop("ctr")), "ctr")
    for label, value in (("text", "top"), ("nan", NAN), ("negative", -1)):
        yield Case("gsc", f"position-{label}", one(_gsc_set("position", value)), "position")
    yield Case("gsc", "position-missing-with-impressions", one(_gsc_drop("position")), "position")
    yield Case("gsc", "new-key-column", one(lambda b: b["rows"][0]["keys"].append("MOBILE")), "rows[0].keys")
    yield Case("gsc", "key-missing", one(lambda b: b["rows"][0]["keys"].pop()), "rows[0].keys")
    yield Case("gsc", "keys-absent", one(_gsc_drop("keys")), "rows[0].keys")
    yield Case("gsc", "keys-not-a-list", one(_gsc_set("keys", "2026-03-20")), "rows[0].keys")
    yield Case("gsc", "page-key-number", one(_gsc_key(1, 5)), "keys.page")
    yield Case("gsc", "page-10mb", one(_gsc_key(1, TEN_MB)), "keys.page")
    for label, value in (("feb-30", "2026-02-30"), ("compact", "20260320"), ("empty", ""), ("number", 20260320)):
        yield Case("gsc", f"date-{label}", one(_gsc_key(0, value)), "keys.date")
    yield Case("gsc", "duplicate-row", one(lambda b: b["rows"].append(copy.deepcopy(b["rows"][0]))), "keys")
    yield Case("gsc", "start-row-not-advancing", twice(lambda b: None), "keys")
    yield Case("gsc", "rows-not-a-list", one(lambda b: b.update(rows="abc")), "rows")
    yield Case("gsc", "row-not-an-object", one(lambda b: b["rows"].__setitem__(0, 5)), "rows[0]")
    yield Case("gsc", "unknown-site", lambda base: [], None, unknown_id="sc-domain:unknown.example")


# ---- Matomo API.getBulkRequest ---------------------------------------------------------------------------------

MATOMO_VISITS, MATOMO_REFERRERS, MATOMO_GOALS = 1, 2, 3  # positions in the bulk answer


def _first_day(result: dict) -> str:
    return next(day for day, row in result.items() if row)


def _matomo_visits(key: str, value: Any, drop: bool = False) -> Callable[[Any], None]:
    def change(body: list) -> None:
        row = body[MATOMO_VISITS][_first_day(body[MATOMO_VISITS])]
        if drop:
            del row[key]
        else:
            row[key] = value
    return change


def _matomo_referrer(change_row: Callable[[list], None]) -> Callable[[Any], None]:
    def change(body: list) -> None:
        change_row(body[MATOMO_REFERRERS]["2026-03-20"])
    return change


def _matomo_goal(key: str, value: Any) -> Callable[[Any], None]:
    def change(body: list) -> None:
        body[MATOMO_GOALS][_first_day(body[MATOMO_GOALS])][key] = value
    return change


def _matomo_rename_day(new: str) -> Callable[[Any], None]:
    def change(body: list) -> None:
        result = body[MATOMO_VISITS]
        result[new] = result.pop(_first_day(result))
    return change


def _matomo_cases() -> Iterator[Case]:
    for key in ("nb_visits", "nb_actions", "nb_visits_converted", "bounce_count", "sum_visit_length"):
        for label, value in (("text", "many"), ("nan", NAN), ("negative", -1), ("fraction", 2.5),
                             ("object", {"v": 1})):
            yield Case("matomo", f"visits-{key}-{label}", one(_matomo_visits(key, value)), key)
        yield Case("matomo", f"visits-{key}-missing", one(_matomo_visits(key, None, drop=True)), key)
    yield Case("matomo", "visits-nb_uniq_visitors-text", one(_matomo_visits("nb_uniq_visitors", "x")),
               "nb_uniq_visitors")
    yield Case("matomo", "visits-infinity", one(_matomo_visits("nb_visits", INF)), "nb_visits")
    yield Case("matomo", "visits-day-not-an-object", one(_matomo_day_as_text), "2026-03-20")
    yield Case("matomo", "referrer-nb_visits-text", one(_matomo_referrer(lambda rows: rows[0].update(nb_visits="x"))),
               "nb_visits")
    yield Case("matomo", "referrer-nb_visits-negative",
               one(_matomo_referrer(lambda rows: rows[0].update(nb_visits=-4))), "nb_visits")
    yield Case("matomo", "referrer-label-10mb", one(_matomo_referrer(lambda rows: rows[0].update(label=TEN_MB))),
               "label")
    yield Case("matomo", "referrer-label-number", one(_matomo_referrer(lambda rows: rows[0].update(label=7))),
               "label")
    yield Case("matomo", "referrer-duplicate-row",
               one(_matomo_referrer(lambda rows: rows.append(copy.deepcopy(rows[0])))), "referrer_type")
    yield Case("matomo", "referrer-row-not-an-object", one(_matomo_referrer(lambda rows: rows.append("x"))),
               "2026-03-20[]")
    yield Case("matomo", "referrer-order-revenue-nan", one(_matomo_referrer(lambda rows: rows[0].update(
        goals={"idgoal=ecommerceOrder": {"nb_conversions": 1, "revenue": NAN}}))), "revenue")
    for label, value in (("text", "lots"), ("nan", NAN), ("negative", -5), ("infinity", INF), ("list", [1])):
        yield Case("matomo", f"goals-revenue-{label}", one(_matomo_goal("revenue", value)), "revenue")
    yield Case("matomo", "goals-nb_conversions-negative", one(_matomo_goal("nb_conversions", -1)), "nb_conversions")
    yield Case("matomo", "goals-items-fraction", one(_matomo_goal("items", 1.5)), "items")
    yield Case("matomo", "date-feb-30", one(_matomo_rename_day("2026-02-30")), "date")
    yield Case("matomo", "date-outside-window", one(_matomo_rename_day("2026-03-25")), "date")
    yield Case("matomo", "date-missing", one(lambda b: b[MATOMO_VISITS].pop(_first_day(b[MATOMO_VISITS]))), "date")
    yield Case("matomo", "result-not-keyed-by-date", one(lambda b: b.__setitem__(MATOMO_VISITS, [1, 2])), "date")
    yield Case("matomo", "unknown-site", lambda base: [], None, unknown_id="999")


def _matomo_day_as_text(body: list) -> None:
    body[MATOMO_VISITS]["2026-03-20"] = "a string where the day's object belongs"


# ---- Google Ads search_stream (proto level) -----------------------------------------------------------------------

def _ads(change: Callable[[Any], None]) -> Callable[[Any], list[Any]]:
    """Mutate a copy of the first streamed response's first row (proto-plus GoogleAdsRow)."""

    def mutate(base: list[Any]) -> list[Any]:
        responses = [type(r).deserialize(type(r).serialize(r)) for r in base]
        change(responses[0].results)
        return [responses]

    return mutate


def _ads_set(path: str, value: Any) -> Callable[[Any], None]:
    def change(results: Any) -> None:
        target = results[0]
        *parents, leaf = path.split(".")
        for part in parents:
            target = getattr(target, part)
        setattr(target, leaf, value)
    return change


def _ads_cases() -> Iterator[Case]:
    for metric in ("impressions", "clicks", "cost_micros"):
        yield Case("google_ads", f"{metric}-negative", _ads(_ads_set(f"metrics.{metric}", -1)), f"metrics.{metric}")
    for metric in ("conversions", "conversions_value"):
        for label, value in (("nan", NAN), ("infinity", INF), ("negative", -2.0)):
            yield Case("google_ads", f"{metric}-{label}", _ads(_ads_set(f"metrics.{metric}", value)),
                       f"metrics.{metric}")
    for label, value in (("empty", ""), ("feb-30", "2026-02-30"), ("compact", "20260320")):
        yield Case("google_ads", f"date-{label}", _ads(_ads_set("segments.date", value)), "segments.date")
    yield Case("google_ads", "campaign-id-missing", _ads(_ads_set("campaign.id", 0)), "campaign.id")
    yield Case("google_ads", "other-customer", _ads(_ads_set("customer.id", 5555555555)), "customer.id")
    yield Case("google_ads", "currency-missing", _ads(_ads_set("customer.currency_code", "")),
               "customer.currency_code")
    yield Case("google_ads", "time-zone-missing", _ads(_ads_set("customer.time_zone", "")), "customer.time_zone")
    yield Case("google_ads", "campaign-name-10mb", _ads(_ads_set("campaign.name", TEN_MB)), "campaign.name")
    yield Case("google_ads", "duplicate-row", _ads(lambda results: results.append(results[0])),
               "segments.date+campaign.id")
    yield Case("google_ads", "unknown-customer", lambda base: [], None, unknown_id="5555555555")


# ---- HubSpot -------------------------------------------------------------------------------------------------------

def _hs_record(change_record: Callable[[dict], None], index: int = 0) -> Callable[[Any], None]:
    def change(body: dict) -> None:
        change_record(body["results"][index])
    return change


def _hs_prop(name: str, value: Any) -> Callable[[Any], None]:
    return _hs_record(lambda r: r.setdefault("properties", {}).__setitem__(name, value))


def _hs_cases() -> Iterator[Case]:
    contacts = "hubspot_contacts"
    for label, value in (("text", "yesterday"), ("month-13", "2026-13-45T00:00:00Z"), ("number", 1700000000000)):
        yield Case(contacts, f"createdate-{label}", one(_hs_prop("createdate", value)), "properties.createdate")
    yield Case(contacts, "churn_date-invalid", one(_hs_prop("churn_date", "2026-02-30")), "properties.churn_date")
    yield Case(contacts, "createdAt-text", one(_hs_record(lambda r: r.update(createdAt="abc"))), "createdAt")
    yield Case(contacts, "updatedAt-number", one(_hs_record(lambda r: r.update(updatedAt=12345.5))), "updatedAt")
    yield Case(contacts, "id-missing", one(_hs_record(lambda r: r.pop("id"))), "id")
    yield Case(contacts, "id-text", one(_hs_record(lambda r: r.update(id="abc"))), "id")
    yield Case(contacts, "id-object", one(_hs_record(lambda r: r.update(id={"v": 1}))), "id")
    yield Case(contacts, "duplicate-id", one(lambda b: b["results"].append(copy.deepcopy(b["results"][0]))), "id")
    yield Case(contacts, "properties-not-an-object", one(_hs_record(lambda r: r.update(properties=[1]))),
               "properties")
    yield Case(contacts, "lifecyclestage-number", one(_hs_prop("lifecyclestage", 5)), "properties.lifecyclestage")
    yield Case(contacts, "lifecyclestage-10mb", one(_hs_prop("lifecyclestage", TEN_MB)), "properties.lifecyclestage")
    yield Case(contacts, "archived-text", one(_hs_record(lambda r: r.update(archived="yes"))), "archived")
    yield Case(contacts, "results-not-a-list", one(lambda b: b.update(results="none")), "results")
    yield Case(contacts, "after-not-advancing", twice(lambda b: b.update(paging={"next": {"after": "42"}})),
               "paging.next.after")
    yield Case(contacts, "search-after-not-advancing", one(lambda b: b.update(
        total=10 ** 6, paging={"next": {"after": "0"}})), "paging.next.after")
    yield Case(contacts, "search-total-not-a-number", one(lambda b: b.update(total="lots")), "total")
    deals = "hubspot_deals"
    for label, value in (("text", "a lot"), ("nan", "NaN"), ("infinity", "Infinity"), ("overflow", "1e999")):
        yield Case(deals, f"amount-{label}", one(_hs_prop("amount", value)), "properties.amount")
    yield Case(deals, "closedate-invalid", one(_hs_prop("closedate", "2026-02-30T10:00:00Z")), "properties.closedate")
    emails = "hubspot_emails"

    def counter(name: str, value: Any) -> Callable[[Any], None]:
        return _hs_record(lambda r: r.setdefault("stats", {}).setdefault("counters", {}).__setitem__(name, value))

    for name, value, label in (("sent", -1, "negative"), ("sent", "abc", "text"), ("open", NAN, "nan"),
                               ("click", 2.5, "fraction"), ("delivered", {"n": 1}, "object"),
                               ("bounce", INF, "infinity")):
        yield Case(emails, f"{name}-{label}", one(counter(name, value)), f"stats.counters.{name}")
    yield Case(emails, "publishDate-invalid", one(_hs_record(lambda r: r.update(publishDate="someday"))),
               "publishDate")
    yield Case(emails, "id-missing", one(_hs_record(lambda r: r.pop("id"))), "id")
    yield Case(emails, "duplicate-id", one(lambda b: b["results"].append(copy.deepcopy(b["results"][0]))), "id")
    yield Case(emails, "name-10mb", one(_hs_record(lambda r: r.update(name=TEN_MB))), "name")
    owners = "hubspot_owners"
    yield Case(owners, "id-missing", one(_hs_record(lambda r: r.pop("id"))), "id")
    yield Case(owners, "email-10mb", one(_hs_record(lambda r: r.update(email=TEN_MB))), "email")
    yield Case(owners, "updatedAt-invalid", one(_hs_record(lambda r: r.update(updatedAt="2026-02-30T00:00:00Z"))),
               "updatedAt")
    yield Case(owners, "duplicate-id", one(lambda b: b["results"].append(copy.deepcopy(b["results"][0]))), "id")


CASES = [*_ga4_cases(), *_gsc_cases(), *_matomo_cases(), *_ads_cases(), *_hs_cases()]
# The full battery (`make chaos`) runs every case; `make test` every third answer case (each source, each kind
# of defect across the stride, every unknown id) to stay within its time budget, and every configuration case.
SHORT = {i for i, c in enumerate(CASES) if i % 3 == 0 or c.unknown_id}
RUN = CASES if battery.FULL else [c for i, c in enumerate(CASES) if i in SHORT]
CASE_PARAMS = [c if i in SHORT else pytest.param(c, marks=pytest.mark.full) for i, c in enumerate(CASES)]


# ---- fixtures: one sandbox, one database, real answers captured once ------------------------------------------------

@dataclass
class Sources:
    servers: dict[str, Any]
    db: Path
    conn: Any  # one connection for every case (opening DuckDB costs ~0.1 s); closed by the last test
    initial: str  # the file's sha256 once loaded with real data
    bases: dict[str, Any]
    ga4: Ga4Connector
    gsc: SearchConsoleConnector
    matomo: MatomoConnector
    ads: GoogleAdsConnector
    hubspot: HubSpotConnector
    secrets: list[str]


class ScriptOnlyServer(SandboxServer):
    """A loopback server that answers only from its scripted queue (HubSpot cases: real-shaped pages from
    shared/api-samples), so the module does not build the whole sandbox CRM."""

    name = "hubspot"

    def handle(self, request: Request) -> Response:
        return json_response(404, {"status": "error", "message": f"nothing scripted for {request.path}"})


def _capture(server: Any) -> tuple[list[tuple[str, Any]], Callable[[], None]]:
    """Record (path, decoded JSON answer) of every request the server handles normally."""
    seen: list[tuple[str, Any]] = []
    original = server.handle

    def handle(request: Any) -> Any:
        response = original(request)
        if response.status == 200:
            seen.append((request.path, json.loads(response.body)))
        return response

    server.handle = handle
    return seen, lambda: delattr(server, "handle")


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / "hubspot" / name).read_text(encoding="utf-8"))


def _hubspot_bases() -> dict[str, Any]:
    """HubSpot pages from shared/api-samples (dlt's and Airbyte's recorded answers); definitions completed with
    HubSpot's standard types for the properties the KPIs read; one marketing e-mail in the v3 shape."""
    from connectors.hubspot import DEFAULT_TYPES

    contact_definitions = _sample("contacts_properties_definitions.json")["results"]
    known = {d["name"] for d in contact_definitions}
    contacts = {"definitions": {"results": contact_definitions + [
        {"name": name, "type": kind} for name, kind in DEFAULT_TYPES.items() if name not in known]},
        "page": {"results": _sample("contacts_page.json")["results"]}}
    deals = {"definitions": {"results": [{"name": name, "type": kind} for name, kind in DEFAULT_TYPES.items()]},
             "page": {"results": _sample("deals_page.json")["results"]}}
    emails = {"results": [{"id": "101", "name": "March newsletter", "subject": "Spring sale", "state": "PUBLISHED",
                           "type": "BATCH_EMAIL", "publishDate": "2026-03-20T09:00:00Z",
                           "stats": {"counters": {"sent": 1000, "delivered": 980, "open": 400, "click": 80,
                                                  "bounce": 20, "hardbounced": 5, "softbounced": 15,
                                                  "unsubscribed": 3, "spamreport": 0}}},
                          {"id": "102", "name": "Cart reminder", "subject": "You forgot", "state": "PUBLISHED",
                           "type": "AUTOMATED_EMAIL", "publishDate": "2026-03-21T09:00:00Z",
                           "stats": {"counters": {"sent": 50, "delivered": 50, "open": 30, "click": 9}}}]}
    owners = _sample("owners_page.json")
    return {"hubspot_contacts": contacts, "hubspot_deals": deals, "hubspot_emails": emails, "hubspot_owners": owners}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    world = World(seed=4, today=date(2026, 3, 31))
    servers: dict[str, Any] = {"ga4": Ga4Server(world), "gsc": GscServer(world),
                               "matomo": MatomoServer.for_sandbox(world), "google_ads": AdsServer.for_sandbox(world),
                               "hubspot": ScriptOnlyServer()}
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        for server in servers.values():
            stack.enter_context(server)
            if not isinstance(server, ScriptOnlyServer):
                env.update(server.env())
        env.update(MKPI_HUBSPOT_ENDPOINT=servers["hubspot"].url, MKPI_HUBSPOT_TOKEN="pat-test-" + "5" * 32)
        settings = load_settings(environ=env)
        no_sleep: Callable[[float], None] = lambda seconds: None  # noqa: E731
        ga4 = Ga4Connector(settings.ga4, policy=FAST, sleep=no_sleep)
        gsc = SearchConsoleConnector(settings.search_console, policy=FAST, sleep=no_sleep)
        matomo = MatomoConnector(settings.matomo, policy=FAST, sleep=no_sleep)
        ads = GoogleAdsConnector(settings.google_ads, policy=FAST, sleep=no_sleep)
        hubspot = HubSpotConnector(settings.hubspot, policy=FAST, sleep=no_sleep)
        db = tmp_path_factory.mktemp("bad-input") / "warehouse.duckdb"
        bases: dict[str, Any] = _hubspot_bases()
        captures = {name: _capture(servers[name]) for name in ("ga4", "gsc", "matomo")}
        conn = stack.enter_context(connect(db))
        try:  # the file already holds real data from every source
            load_batches(conn, ga4.fetch("traffic_by_channel", WINDOW))
            load_batches(conn, gsc.fetch("pages", WINDOW))
            load_batches(conn, matomo.fetch(WINDOW))
            load_batches(conn, ads.fetch(WINDOW, [ADS_CUSTOMER]))
            servers["hubspot"].add_fault("status", 200, bases["hubspot_owners"])
            servers["hubspot"].add_fault("status", 200, {"results": []})  # no archived owner
            load_batches(conn, hubspot.fetch_owners(WINDOW))
        finally:
            for _, restore in captures.values():
                restore()
        bases["ga4"] = captures["ga4"][0][0][1]
        bases["gsc"] = captures["gsc"][0][0][1]
        bases["matomo"] = captures["matomo"][0][0][1]
        bases["google_ads"] = list(ads.service().search_stream(customer_id=ADS_CUSTOMER, query=ads_query(),
                                                               timeout=10))
        assert bases["ga4"]["rows"] and bases["gsc"]["rows"] and bases["google_ads"][0].results
        secrets = [v for k, v in env.items() if "TOKEN" in k]
        yield Sources(servers, db, conn, _digest(db), bases, ga4, gsc, matomo, ads, hubspot, secrets)


def ads_query() -> str:
    from connectors.google_ads import QUERY

    return QUERY.format(start=WINDOW.start.isoformat(), end=WINDOW.end.isoformat())


class FakeAdsService:
    """Streams the given (mutated) responses as `search_stream` would."""

    def __init__(self, responses: list[Any]) -> None:
        self.responses = responses

    def search_stream(self, **_: Any) -> Iterator[Any]:
        yield from self.responses


def _serve(server: Any, bodies: list[Any]) -> None:
    for body in bodies:
        server.add_fault("status", 200, body)


def _drain(server: Any) -> None:
    while not server.faults.empty():
        server.faults.get_nowait()


def _batches(s: Sources, case: Case) -> Any:
    """Queue the case's answers and return the batches the connector yields for them (lazily)."""
    base = s.bases[case.source]
    if case.source == "ga4":
        _serve(s.servers["ga4"], case.mutate(base))
        return s.ga4.fetch("traffic_by_channel", WINDOW, [case.unknown_id or GA4_PROPERTY])
    if case.source == "gsc":
        bodies = case.mutate(base)
        _serve(s.servers["gsc"], bodies)
        connector = s.gsc
        if len(bodies) > 1:  # a full page, so the connector asks for the next one
            connector = replace(s.gsc, settings=replace(s.gsc.settings, row_limit=len(bodies[0]["rows"])))
        return connector.fetch("pages", WINDOW, [case.unknown_id or GSC_SITE])
    if case.source == "matomo":
        _serve(s.servers["matomo"], case.mutate(base))
        return s.matomo.fetch(WINDOW, [case.unknown_id or MATOMO_SITE])
    if case.source == "google_ads":
        if case.unknown_id:
            return s.ads.fetch(WINDOW, [case.unknown_id])
        fake = replace(s.ads, _service=FakeAdsService(case.mutate(base)[0]))
        return fake.fetch(WINDOW, [ADS_CUSTOMER])
    server = s.servers["hubspot"]
    if case.source in ("hubspot_contacts", "hubspot_deals"):
        object_type = case.source.removeprefix("hubspot_")
        pages = case.mutate(base["page"])
        _serve(server, [base["definitions"], *pages])
        cursor = "1700000000000" if case.name.startswith("search-") else None
        return s.hubspot.fetch_objects(object_type, cursor, WINDOW)
    _serve(server, case.mutate(base))
    if case.source == "hubspot_emails":
        return s.hubspot.fetch_email_statistics(WINDOW)
    return s.hubspot.fetch_owners(WINDOW)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.battery(LINE)
@pytest.mark.parametrize("case", CASE_PARAMS, ids=[c.id for c in CASES])
def test_a_malformed_answer_is_a_typed_error_and_changes_nothing(sources: Sources, case: Case) -> None:
    before = _digest(sources.db)
    retries_before = sum(c.stats.retries for c in (sources.ga4, sources.gsc, sources.matomo, sources.hubspot))
    try:
        with pytest.raises(SourceError) as info:
            load_batches(sources.conn, _batches(sources, case))
    finally:
        for name in ("ga4", "gsc", "matomo", "hubspot"):
            _drain(sources.servers[name])
    error = info.value
    message = str(error)
    source = case.source.split("_")[0] if case.source.startswith("hubspot") else case.source
    assert error.source == {"gsc": "search_console"}.get(source, source)
    if case.unknown_id:
        assert not isinstance(error, InvalidResponse | RetriesExhausted), message
        assert error.account == case.unknown_id and case.unknown_id in message
    else:
        assert isinstance(error, InvalidResponse), message
        assert error.field == case.field, message
        assert f"field {case.field!r}" in message and error.endpoint in message
        assert error.endpoint.split(" ")[0] in {
            "ga4": "runReport", "gsc": "searchAnalytics.query", "matomo": "VisitsSummary.get Referrers.getReferrerType "
            "Goals.get", "google_ads": "search_stream", "hubspot_contacts": "GET crm/v3/objects/contacts POST",
            "hubspot_deals": "GET crm/v3/objects/deals", "hubspot_emails": "GET", "hubspot_owners": "GET",
        }[case.source].split(), message
        assert len(message) < 2_000  # a 10 MB value is shown as an excerpt
    retries_after = sum(c.stats.retries for c in (sources.ga4, sources.gsc, sources.matomo, sources.hubspot))
    assert retries_after == retries_before  # a broken answer is not retried: the same request gets the same answer
    assert not any(secret in message for secret in sources.secrets)
    assert _digest(sources.db) == before  # not a byte changed
    battery.count(LINE, "cases", 1)


# ---- configuration ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConfigCase:
    name: str
    yaml: str | None  # config file text; None: no file
    env: dict[str, str]
    key: str  # the setting the error must name
    check: str | None = None  # "ga4", "search_console", "matomo", "google_ads": connector.check() raises


SECRET = "s3cr3t-value-never-shown"
CONFIG_CASES = [
    ConfigCase("yaml-unclosed-bracket", "ga4: [1, 2\n", {}, "config"),
    ConfigCase("yaml-bad-indent", "ga4:\n  property_ids: [1]\n bad: 2\n", {}, "config"),
    ConfigCase("yaml-tab", "ga4:\n\tproperty_ids: 1\n", {}, "config"),
    ConfigCase("yaml-top-level-list", "- ga4\n- matomo\n", {}, "config"),
    ConfigCase("yaml-top-level-text", "just words\n", {}, "config"),
    *[ConfigCase(f"{section}-not-a-mapping", f"{section}: [1, 2]\n", {}, section)
      for section in ("ga4", "search_console", "matomo", "google_ads", "hubspot", "channels", "fx_rates")],
    *[ConfigCase(f"{key.replace('.', '-')}-{label}", f"{key.split('.')[0]}:\n  {key.split('.')[1]}: {value}\n", {},
                 key)
      for key in ("ga4.page_size", "ga4.reread_days", "search_console.row_limit", "matomo.reread_days",
                  "hubspot.requests_per_10s")
      for label, value in (("text", "lots"), ("bool", "true"), ("fraction", "2.5"))],
    *[ConfigCase(f"{key.replace('.', '-')}-{label}", f"{key.split('.')[0]}:\n  {key.split('.')[1]}: {value}\n", {},
                 key)
      for key in ("ga4.timeout_seconds", "matomo.requests_per_second", "hubspot.timeout_seconds")
      for label, value in (("text", "soon"), ("negative", "-1"), ("bool", "true"), ("nan", ".nan"))],
    ConfigCase("ga4-page-size-too-big", "ga4:\n  page_size: 300000\n", {}, "ga4.page_size"),
    ConfigCase("ga4-ids-mapping", "ga4:\n  property_ids: {a: 1}\n", {}, "ga4.property_ids"),
    ConfigCase("matomo-ids-nested", "matomo:\n  site_ids: [[1, 2]]\n", {}, "matomo.site_ids"),
    ConfigCase("ads-ids-null-item", "google_ads:\n  customer_ids: [null]\n", {}, "google_ads.customer_ids"),
    ConfigCase("search-types-empty", "search_console:\n  search_types: []\n", {}, "search_console.search_types"),
    ConfigCase("search-types-unknown", "search_console:\n  search_types: [web, podcasts]\n", {},
               "search_console.search_types"),
    ConfigCase("hubspot-extra-property-name", "hubspot:\n  extra_properties:\n    contacts: ['drop table']\n", {},
               "hubspot.extra_properties.contacts"),
    ConfigCase("matomo-url-ftp", None, {"MKPI_MATOMO_URL": "ftp://matomo.example.com/"}, "matomo.url"),
    ConfigCase("matomo-url-space", None, {"MKPI_MATOMO_URL": "https://mat omo.example.com/"}, "matomo.url"),
    ConfigCase("matomo-url-no-host", None, {"MKPI_MATOMO_URL": "https://"}, "matomo.url"),
    ConfigCase("hubspot-url-bad-port", None, {"MKPI_HUBSPOT_ENDPOINT": f"https://user:{SECRET}@api.example:99999"},
               "hubspot.endpoint"),
    ConfigCase("ga4-endpoint-bad-scheme", None, {"MKPI_GA4_ENDPOINT": "gopher://127.0.0.1:1"}, "ga4.endpoint"),
    ConfigCase("gsc-endpoint-with-password", None,
               {"MKPI_SEARCH_CONSOLE_ENDPOINT": f"https://me:{SECRET}@exa mple.com"}, "search_console.endpoint"),
    ConfigCase("start-date-invalid", "start_date: '2024-02-30'\n", {}, "start_date"),
    ConfigCase("timezone-unknown", "reporting_timezone: Mars/Olympus\n", {}, "reporting_timezone"),
    ConfigCase("currency-invalid", "reporting_currency: EURO\n", {}, "reporting_currency"),
    ConfigCase("fx-rate-text", "fx_rates:\n  USD: cheap\n", {}, "fx_rates.USD"),
    ConfigCase("fx-rate-negative", "fx_rates:\n  USD: -1\n", {}, "fx_rates.USD"),
    ConfigCase("channels-source-not-mapping", "channels:\n  ga4: [a, b]\n", {}, "channels.ga4"),
    ConfigCase("ga4-id-not-numeric", None, {"MKPI_GA4_PROPERTY_IDS": "G-ABC123"}, "ga4.property_ids", "ga4"),
    ConfigCase("matomo-id-not-numeric", None, {"MKPI_MATOMO_URL": "https://m.example/", "MKPI_MATOMO_SITE_IDS": "x1",
                                               "MKPI_MATOMO_TOKEN": SECRET}, "matomo.site_ids", "matomo"),
    ConfigCase("ads-id-short", None, {"MKPI_GOOGLE_ADS_CUSTOMER_IDS": "123-456",
                                      "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN": SECRET}, "google_ads.customer_ids",
               "google_ads"),
    ConfigCase("gsc-site-bare-domain", None, {"MKPI_SEARCH_CONSOLE_SITES": "example.com"}, "search_console.sites",
               "search_console"),
    # issue #18: values that `value or default` used to replace silently, misspelt keys, channels off the vocabulary
    *[ConfigCase(f"{key.replace('.', '-')}-zero", f"{key.split('.')[0]}:\n  {key.split('.')[1]}: 0\n", {}, key)
      for key in ("ga4.reread_days", "ga4.timeout_seconds", "ga4.parallel_accounts", "ga4.page_size",
                  "search_console.row_limit", "matomo.parallel_accounts", "google_ads.reread_days",
                  "hubspot.lookback_seconds", "hubspot.email_reread_days")],
    ConfigCase("ga4-reread-days-env-zero", None, {"MKPI_GA4_REREAD_DAYS": "0"}, "ga4.reread_days"),
    ConfigCase("ga4-misspelt-key", "ga4:\n  reread_dayz: 4\n", {}, "ga4.reread_dayz"),
    ConfigCase("top-level-misspelt-key", "reporting_timezon: UTC\n", {}, "reporting_timezon"),
    ConfigCase("ducklake-misspelt-key", "warehouse:\n  ducklake:\n    datapath: x\n", {},
               "warehouse.ducklake.datapath"),
    ConfigCase("matomo-token-in-file", f"matomo:\n  token: {SECRET}\n", {}, "matomo.token"),
    ConfigCase("channels-unknown-channel", "channels:\n  ga4:\n    Direct: directt\n", {}, "channels.ga4"),
    ConfigCase("min-denominators-unknown-unit", "min_denominators:\n  sessions: 5\n", {}, "min_denominators.sessions"),
    ConfigCase("fx-source-unknown", None, {"MKPI_FX_SOURCE": "bank"}, "fx_source"),
]


@pytest.mark.battery(LINE)
@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.name for c in CONFIG_CASES])
def test_a_malformed_configuration_is_a_config_error_naming_the_key(tmp_path: Path, case: ConfigCase) -> None:
    path = tmp_path / "mkpi.yaml"
    path.write_text(case.yaml if case.yaml is not None else "{}\n", encoding="utf-8")
    env = {"MKPI_HUBSPOT_TOKEN": SECRET, **case.env}
    with pytest.raises(ConfigError) as info:
        settings = load_settings(path, environ=env)
        connector = {"ga4": lambda: Ga4Connector(settings.ga4), "matomo": lambda: MatomoConnector(settings.matomo),
                     "google_ads": lambda: GoogleAdsConnector(settings.google_ads),
                     "search_console": lambda: SearchConsoleConnector(settings.search_console)}[case.check or ""]()
        {"ga4": lambda: connector.property_ids(), "matomo": lambda: connector.site_ids(),
         "google_ads": lambda: connector.customer_ids(), "search_console": lambda: connector.sites()}[case.check]()
    message = str(info.value)
    if case.key == "config":  # the file itself: its path is the key
        assert str(path) in message
    else:
        assert info.value.key == case.key, message
        assert case.key.split(".")[-1] in message or any(variable in message for variable in case.env), message
    assert SECRET not in message
    battery.count(LINE, "cases", 1)


@pytest.mark.battery(LINE)
def test_the_file_is_still_identical_once_closed(sources: Sources) -> None:
    """Every case ran on one open connection: closing it must not write anything either (nothing was pending)."""
    sources.conn.close()
    assert _digest(sources.db) == sources.initial
    by_source = Counter("hubspot" if c.source.startswith("hubspot") else c.source for c in RUN)
    battery.note(LINE, f"{len(RUN)} malformed answers ({', '.join(f'{k} {v}' for k, v in sorted(by_source.items()))}"
                       f") and {len(CONFIG_CASES)} malformed configurations, out of a table of {len(CASES)} + "
                       f"{len(CONFIG_CASES)}: each a typed error naming source, endpoint and field (or the setting "
                       "key), no retry, no secret, the DuckDB file's sha256 unchanged after every case and once "
                       "closed.")


def test_there_are_at_least_200_cases() -> None:
    assert len(CASES) + len(CONFIG_CASES) >= 200
