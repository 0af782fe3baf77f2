"""GA4 Data API v1beta ``runReport`` over REST, as the official ``google-analytics-data`` client sends it.

Why emulate the wire rather than mock the client: the connector must be tested with the real
``BetaAnalyticsDataClient`` (``transport="rest"``), so the request parsing, int64-as-string fields, enum
encodings, paging, the ``(other)`` row, quota reporting and Google's error envelope all have to be what
the library really sees. Numbers come from ``World.ga4_facts``, so every report is exactly the sum of the
world's cells and tests can recompute any figure independently.

What it answers, and where the behaviour comes from (every rule below is Google's, not ours):

* ``POST /v1beta/properties/{id}:runReport``. A row whose requested metrics are all zero is left out unless the
  request sets ``keepEmptyRows``, and even then only dimension values the property recorded appear ("If false or
  unspecified, each row with all metrics equal to 0 will not be returned": RunReportRequest.keepEmptyRows in the
  v1beta discovery document, googleapiclient/discovery_cache/documents/analyticsdata.v1beta.json, and
  https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport).
  ``averageSessionDuration`` is computed per output row as sum(session duration) / sum(sessions), never summed
  (https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema: "The average duration (in
  seconds) of users' sessions", TYPE_SECONDS).
* ``POST /v1alpha/properties/{id}:runFunnelReport`` for one shape only: a closed funnel of event steps over one
  day, no breakdown, next action, segment or filter (anything else is refused with 400, never half-answered).
  Shape from google/analytics/data_v1alpha/types/{analytics_data_api,data}.py in google-analytics-data
  (googleapis/google-cloud-python, packages/google-analytics-data) and
  https://developers.google.com/analytics/devguides/reporting/data/v1/funnels: a ``funnelTable`` and a
  ``funnelVisualization`` sub report, dimension ``funnelStepName`` valued "1. <step name>", "2. <step name>";
  the table's metrics activeUsers, funnelStepCompletionRate, funnelStepAbandonments, funnelStepAbandonmentRate
  (the rates are fractions; public client fixtures show every header typed TYPE_INTEGER, kept here).
* Answer quality, off by default (``thresholding``, ``sampling``, ``truncated_before``, or the environment variable
  ``MKPI_SANDBOX_GA4_QUALITY="seed=3,thresholding=0.3,sampling=0.2,sampled_share=0.1"``): ResponseMetaData
  ``subjectToThresholding``, ``samplingMetadatas[{samplesReadCount, samplingSpaceSize}]`` (one per date range)
  and ``dataTruncationReasons`` as named in the v1beta discovery document; funnel sub reports carry only
  ``metadata.samplingMetadatas`` (FunnelResponseMetadata). Whether an answer is thresholded or sampled is drawn
  from (seed, property, date range, request shape), so the same request always gets the same answer. Only the
  metadata is emulated: a thresholded or sampled answer still carries the world's exact figures (Google says a
  thresholded report may lose no row at all), while ``truncated_before`` really withholds the days before it.
* Concurrent requests per property: at most 10 of a property's requests are answered at once; one more is refused
  with 429 RESOURCE_EXHAUSTED "Exhausted concurrent requests quota." ("Core Concurrent Requests Per Property: 10"
  for a standard property, https://developers.google.com/analytics/devguides/reporting/data/v1/quotas; "Standard
  Analytics Properties can send up to 10 concurrent requests", PropertyQuota.concurrentRequests in the v1beta and
  v1alpha discovery documents; "If any quota is exhausted, the request fails with a relevant error message"). A
  request is in flight while the server works on it: ``hold_seconds`` (0 by default; tests set it to make requests
  overlap) is spent inside that span, the base server's ``latency_seconds`` (the network) before it; or, when a
  test sets ``hold`` (a threading.Event), each answer waits inside that span until the test sets it (at most 30 s),
  so that overlapping requests never depend on how fast a loaded machine starts them.
  ``max_in_flight`` keeps the most requests of each property seen in flight at once.
* OAuth scopes, off by default (``token_scopes``, or ``MKPI_SANDBOX_TOKEN_SCOPES``, e.g.
  ``"openid,userinfo.email,cloud-platform,sqlservice.login"``, the scopes of ``gcloud auth application-default login``
  without ``--scopes``): the scopes the callers' access tokens carry. A method none of whose scopes is among them
  (runReport and runFunnelReport accept analytics and analytics.readonly: ``scopes`` of those methods in
  analyticsdata.v1beta.json and analyticsdata.v1alpha.json) is refused as Google does, see ``scope_refusal``.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sandbox.httpserver import Request, Response, SandboxServer, google_error_body, json_response
from sandbox.world import CURRENCY, GA4_DIMENSION_KEYS, TIMEZONE, Ga4Fact, World, seeded_rng

SCHEMA_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema"
SUPPORTED_DIMENSIONS = ("date", *GA4_DIMENSION_KEYS)
METRIC_TYPES: dict[str, str] = {
    "sessions": "TYPE_INTEGER",
    "engagedSessions": "TYPE_INTEGER",
    "userEngagementDuration": "TYPE_SECONDS",
    "keyEvents": "TYPE_INTEGER",
    "sessionKeyEventRate": "TYPE_FLOAT",
    "ecommercePurchases": "TYPE_INTEGER",
    "purchaseRevenue": "TYPE_CURRENCY",
    "addToCarts": "TYPE_INTEGER",
    "checkouts": "TYPE_INTEGER",
    "totalUsers": "TYPE_INTEGER",
    "newUsers": "TYPE_INTEGER",
    "averageSessionDuration": "TYPE_SECONDS",
}
# Metrics GA4 computes per output row from additive parts (never a sum of the cells' values).
_RATIO_METRICS = {"sessionKeyEventRate": ("convertingSessions", "sessions"),
                  "averageSessionDuration": ("sessionDuration", "sessions")}
# google.analytics.data_v1beta.types.MetricType values, for requests made with enum-encoding=int.
_METRIC_TYPE_INT = {"TYPE_INTEGER": 1, "TYPE_FLOAT": 2, "TYPE_SECONDS": 4, "TYPE_CURRENCY": 9}
# OrderBy.DimensionOrderBy.OrderType, which may arrive as a name or (enum-encoding=int) a number.
_ORDER_TYPES = {0: "ALPHANUMERIC", 1: "ALPHANUMERIC", 2: "CASE_INSENSITIVE_ALPHANUMERIC", 3: "NUMERIC"}
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 250_000
OTHER = "(other)"
# Request fields the sandbox does not implement: rejecting them beats silently returning unfiltered data.
_UNSUPPORTED_FIELDS = ("dimensionFilter", "metricFilter", "metricAggregations", "comparisons", "cohortSpec",
                       "pivots")
_PATH = re.compile(r"^/v1beta/properties/([^/:]+):runReport$")
_FUNNEL_PATH = re.compile(r"^/v1alpha/properties/([^/:]+):runFunnelReport$")
# runFunnelReport fields the sandbox does not implement.
_UNSUPPORTED_FUNNEL_FIELDS = ("funnelBreakdown", "funnelNextAction", "segments", "dimensionFilter")
# The funnel events the world knows, and the cell metric giving the users at each step of a closed
# add_to_cart -> purchase funnel.
_FUNNEL_STEPS = (("add_to_cart", "cartUsers"), ("purchase", "cartPurchasers"))
_FUNNEL_TABLE_METRICS = ("activeUsers", "funnelStepCompletionRate", "funnelStepAbandonments",
                         "funnelStepAbandonmentRate")
# RunFunnelReportRequest.FunnelVisualizationType names by number (enum-encoding=int).
_VISUALIZATION_TYPES = {0: "FUNNEL_VISUALIZATION_TYPE_UNSPECIFIED", 1: "STANDARD_FUNNEL", 2: "TRENDED_FUNNEL"}
# ResponseMetaData.DataTruncationReason.DataTruncationType.DATA_TRUNCATION_TYPE_PROPERTY: "Data truncated because
# the query attempts to read event data prior to its retention date."
_TRUNCATION_PROPERTY = ("DATA_TRUNCATION_TYPE_PROPERTY", 8)
QUALITY_ENV = "MKPI_SANDBOX_GA4_QUALITY"
TOKEN_SCOPES_ENV = "MKPI_SANDBOX_TOKEN_SCOPES"
SCOPE_PREFIX = "https://www.googleapis.com/auth/"
# The scopes the Data API's methods accept ("scopes" of properties.runReport in analyticsdata.v1beta.json and of
# properties.runFunnelReport in analyticsdata.v1alpha.json).
ANALYTICS_SCOPES = (f"{SCOPE_PREFIX}analytics", f"{SCOPE_PREFIX}analytics.readonly")
# Events per session, to size samplingSpaceSize ("the total number of events present in this property's data").
EVENTS_PER_SESSION = 12
# Real GA4 quota limits for a standard property, used for the parts of propertyQuota we do not enforce.
_TOKENS_PER_HOUR = 40_000
_TOKENS_PER_PROJECT_PER_HOUR = 14_000
_CONCURRENT_REQUESTS = 10
_SERVER_ERRORS_PER_HOUR = 10
_THRESHOLDED_PER_HOUR = 120


class Ga4ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Group:
    """One output row being aggregated: additive sums plus the cells, kept for distinct users."""

    sums: dict[str, float] = field(default_factory=dict)
    facts: list[Ga4Fact] = field(default_factory=list)
    days: set[date] = field(default_factory=set)

    def add(self, fact: Ga4Fact) -> None:
        for name, value in fact.metrics.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.facts.append(fact)
        self.days.add(fact.day)

    def merge(self, other: _Group) -> None:
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.facts.extend(other.facts)
        self.days |= other.days


@dataclass(frozen=True)
class AnswerQuality:
    """The seeded knob for answers GA4 marks as thresholded or sampled (see the module docstring).

    ``thresholding`` and ``sampling`` are the shares of answers drawn as such; a sampled answer says it read
    ``sampled_share`` of the events. ``seed`` None uses the world's seed."""

    seed: int | None = None
    thresholding: float = 0.0
    sampling: float = 0.0
    sampled_share: float = 0.25

    def __post_init__(self) -> None:
        for name in ("thresholding", "sampling", "sampled_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{QUALITY_ENV}: {name} must be between 0 and 1")

    @classmethod
    def parse(cls, text: str) -> AnswerQuality:
        """``"seed=3,thresholding=0.3,sampling=0.2,sampled_share=0.1"`` (the MKPI_SANDBOX_GA4_QUALITY form)."""
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, raw = (p.strip() for p in item.partition("="))
            if not sep or name not in ("seed", "thresholding", "sampling", "sampled_share"):
                raise ValueError(f"{QUALITY_ENV}: {item!r} is not name=value with a name among seed, "
                                 "thresholding, sampling, sampled_share")
            try:
                values[name] = int(raw) if name == "seed" else float(raw)
            except ValueError:
                raise ValueError(f"{QUALITY_ENV}: {name}={raw!r} is not a number") from None
        return cls(**values)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AnswerQuality | None:
        text = (os.environ if environ is None else environ).get(QUALITY_ENV, "").strip()
        return cls.parse(text) if text else None

    def draw(self, world_seed: int, property_id: str, start: date, end: date, shape: str) -> tuple[bool, bool]:
        """(subject to thresholding, sampled) for one answer: the same request always draws the same."""
        rng = seeded_rng(world_seed if self.seed is None else self.seed, f"{start}..{end}",
                         f"ga4:quality:{property_id}:{shape}")
        return rng.random() < self.thresholding, rng.random() < self.sampling


@dataclass
class _Quota:
    day_consumed: int = 0
    hour_bucket: int = -1
    hour_consumed: int = 0


def token_scopes_from_env(environ: dict[str, str] | None = None) -> frozenset[str] | None:
    """The scopes MKPI_SANDBOX_TOKEN_SCOPES gives callers' tokens (short names get Google's prefix), None when unset."""
    text = (os.environ if environ is None else environ).get(TOKEN_SCOPES_ENV, "").strip()
    if not text:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    return frozenset(n if "://" in n or n == "openid" else SCOPE_PREFIX + n for n in names)


def scope_refusal(accepted: Iterable[str], service: str, method: str, *, v3_errors: bool = False) -> Response:
    """Google's answer to an access token without any of the method's scopes: 403 PERMISSION_DENIED, "Request had
    insufficient authentication scopes.", a google.rpc.ErrorInfo with reason ACCESS_TOKEN_SCOPE_INSUFFICIENT, domain
    googleapis.com and metadata {service, method} (GA4 runReport's answer in PipedreamHQ/pipedream issue #15060),
    plus, for APIs with the v3-style envelope, ``errors: [{"message": "Insufficient Permission", "domain": "global",
    "reason": "insufficientPermissions"}]`` (Automattic/newspack-plugin PR #4657), and the RFC 6750 header
    ``WWW-Authenticate: Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="..."`` naming
    the scopes that would do (kwent/react-google-contacts issue #6 shows Google sending it)."""
    message = "Request had insufficient authentication scopes."
    error: dict[str, Any] = {"code": 403, "message": message}
    if v3_errors:
        error["errors"] = [{"message": "Insufficient Permission", "domain": "global",
                            "reason": "insufficientPermissions"}]
    error["status"] = "PERMISSION_DENIED"
    error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                         "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
                         "metadata": {"service": service, "method": method}}]
    header = f'Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="{" ".join(accepted)}"'
    return json_response(403, {"error": error}, {"WWW-Authenticate": header})


def format_float(value: float) -> str:
    """GA4 prints floats at full precision and integral values without a decimal point ("0", "120")."""
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(value)


def _as_int(value: Any, name: str, default: int) -> int:
    """int64 fields arrive as JSON strings ("250000"); accept numbers too."""
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Ga4ApiError(400, f"Invalid value for {name}: {value!r}") from None


class Ga4Server(SandboxServer):
    """GA4 Data API emulator; see the module docstring. Thread-safe: quota and read counter are locked."""

    name = "ga4"

    def __init__(
        self,
        world: World,
        *,
        cardinality_limit: int | None = None,
        forbidden_properties: Iterable[str] = (),
        tokens_per_day: int = 200_000,
        tokens_per_hour: int = _TOKENS_PER_HOUR,
        quality: AnswerQuality | None = None,
        truncated_before: date | None = None,
        token_scopes: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        if cardinality_limit is not None and cardinality_limit < 2:
            raise ValueError("cardinality_limit must be >= 2 (one kept row plus the (other) row)")
        self.world = world
        self.cardinality_limit = cardinality_limit
        self.forbidden_properties = frozenset(forbidden_properties)
        self.tokens_per_day = tokens_per_day
        self.tokens_per_hour = tokens_per_hour  # small in tests of what a connector does when the hour is spent
        self.quality = quality if quality is not None else AnswerQuality.from_env()
        # The property's data retention starts here: earlier days are withheld and the answer says so.
        self.truncated_before = truncated_before
        # The scopes callers' tokens carry (None: not checked); see the module docstring.
        self.token_scopes = frozenset(token_scopes) if token_scopes is not None else token_scopes_from_env()
        self.clock: Callable[[], float] = time.time  # which hour quotas are counted in; tests may pin it
        self._state_lock = threading.Lock()
        self._reads = 0
        self._quota: dict[str, _Quota] = {}
        self._project_hour: tuple[int, int] = (-1, 0)
        self._server_errors_hour: tuple[int, int] = (-1, 0)  # (hour, 5xx answered): propertyQuota runs down
        self.hold_seconds = 0.0  # time spent on each answer while it counts as in flight (module docstring)
        self.hold: threading.Event | None = None  # or: each answer waits for this event while in flight
        self._in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}  # property -> most of its requests answered at once

    def env(self) -> dict[str, str]:
        return {
            "MKPI_GA4_ENDPOINT": self.url,
            "MKPI_GA4_PROPERTY_IDS": ",".join(self.world.ga4_properties),
        }

    @property
    def reads(self) -> int:
        """Successful runReport calls so far; the next one reads the world at this version."""
        with self._state_lock:
            return self._reads

    # ---- faults in GA4's shape ---------------------------------------------------------------------------

    def rate_limit_response(self, retry_after: int | None) -> Response:
        """GA4's transient 429: RESOURCE_EXHAUSTED with the concurrent-requests quota message (Retry-After only
        when the fault profile gives one; GA4 itself sends none)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return json_response(429, google_error_body(429, "Exhausted concurrent requests quota."), headers)

    def server_error_response(self, status: int) -> Response:
        """A 5xx that, as on GA4, spends one of the project's 10 server errors of the hour (see propertyQuota)."""
        hour = int(self.clock() // 3600)
        with self._state_lock:
            bucket, spent = self._server_errors_hour
            self._server_errors_hour = (hour, (spent if bucket == hour else 0) + 1)
        return super().server_error_response(status)

    def _server_errors_spent(self, hour: int) -> int:
        bucket, spent = self._server_errors_hour
        return spent if bucket == hour else 0

    # ---- HTTP ----------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        report, funnel = _PATH.match(request.path), _FUNNEL_PATH.match(request.path)
        match = report or funnel
        if match is None or request.method != "POST":
            return self.error_response(404, f"Method not found: {request.method} {request.path}")
        if self.token_scopes is not None and not self.token_scopes & set(ANALYTICS_SCOPES):
            method = ("google.analytics.data.v1alpha.AlphaAnalyticsData.RunFunnelReport" if funnel is not None
                      else "google.analytics.data.v1beta.BetaAnalyticsData.RunReport")
            return scope_refusal(ANALYTICS_SCOPES, "analyticsdata.googleapis.com", method)
        property_id = urllib.parse.unquote(match.group(1))
        if not self._enter(property_id):
            return self.rate_limit_response(None)  # the concurrent-requests quota: see the module docstring
        try:
            if self.hold is not None:
                self.hold.wait(timeout=30)
            elif self.hold_seconds > 0:
                time.sleep(self.hold_seconds)
            return self._answer(property_id, request, funnel is not None)
        finally:
            with self._state_lock:
                self._in_flight[property_id] -= 1

    def _enter(self, property_id: str) -> bool:
        """Count one more request of the property in flight; False (nothing counted) when 10 already are."""
        with self._state_lock:
            running = self._in_flight.get(property_id, 0)
            if running >= _CONCURRENT_REQUESTS:
                return False
            self._in_flight[property_id] = running + 1
            self.max_in_flight[property_id] = max(self.max_in_flight.get(property_id, 0), running + 1)
            return True

    def _answer(self, property_id: str, request: Request, funnel: bool) -> Response:
        """The answer to one runReport or runFunnelReport request (its property admitted)."""
        body = request.json if request.body else {}
        if not isinstance(body, dict):
            return self.error_response(400, "Invalid JSON payload received.")
        enum_int = "enum-encoding=int" in request.raw_query
        try:
            if funnel:
                return json_response(200, self.run_funnel_report(property_id, body, enum_int=enum_int))
            return json_response(200, self.run_report(property_id, body, enum_int=enum_int))
        except Ga4ApiError as err:
            return self.error_response(err.status, err.message)

    def _check_property(self, property_id: str) -> None:
        if property_id in self.forbidden_properties:
            raise Ga4ApiError(403, "User does not have sufficient permissions for this property. "
                                   f"Property: properties/{property_id}.")
        if property_id not in self.world.ga4_properties:
            raise Ga4ApiError(404, f"Property properties/{property_id} was not found.")

    def _served_days(self, start: date, end: date) -> list[date]:
        """Days of the range the property has data for: up to today, and not before its retention date."""
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        return [d for d in days if self.world.has_data(d)
                and (self.truncated_before is None or d >= self.truncated_before)]

    def _quality_metadata(self, property_id: str, start: date, end: date, shape: str, sessions: float,
                          enum_int: bool) -> dict[str, Any]:
        """The answer-quality part of ResponseMetaData (nothing when the answer is complete and exact)."""
        out: dict[str, Any] = {}
        if self.quality is not None:
            thresholded, sampled = self.quality.draw(self.world.seed, property_id, start, end, shape)
            if thresholded:
                out["subjectToThresholding"] = True
            space = int(sessions) * EVENTS_PER_SESSION
            if sampled and space:  # nothing to sample on a day without data
                out["samplingMetadatas"] = [{"samplesReadCount": str(round(space * self.quality.sampled_share)),
                                             "samplingSpaceSize": str(space)}]  # int64: JSON strings
        if self.truncated_before is not None and start < self.truncated_before:
            name, number = _TRUNCATION_PROPERTY
            out["dataTruncationReasons"] = [{
                "dataTruncationType": number if enum_int else name,
                "dataTruncationMessage": "Data truncated because the query attempts to read event data prior to "
                                         "its retention date.",
                "dataTruncationDate": self.truncated_before.isoformat()}]
        return out

    # ---- runReport -----------------------------------------------------------------------------------

    def run_report(self, property_id: str, body: dict[str, Any], enum_int: bool = False) -> dict[str, Any]:
        """The runReport response as a JSON-ready dict; raises Ga4ApiError for API errors."""
        self._check_property(property_id)
        dims, metrics, start, end, limit, offset, order_bys = self._parse(body)
        keep_empty = body.get("keepEmptyRows", False)
        if not isinstance(keep_empty, bool):
            raise Ga4ApiError(400, f"Invalid value for keepEmptyRows: {keep_empty!r}")
        days = self._served_days(start, end)
        quota = self._charge(property_id, 1 + max(0, len(days) - 1) // 90)

        with self._state_lock:
            version = self._reads
        groups: dict[tuple[str, ...], _Group] = {}
        for day in days:
            day_key = day.strftime("%Y%m%d")
            for fact in self.world.ga4_facts(property_id, day, version):
                key = tuple(day_key if d == "date" else fact.dims[d] for d in dims)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _Group()
                group.add(fact)

        data_loss = False
        items = sorted(groups.items())
        if self.cardinality_limit is not None and len(items) > self.cardinality_limit:
            ranked = sorted(items, key=lambda kv: (-kv[1].sums.get("sessions", 0), kv[0]))
            other = _Group()
            for _key, group in ranked[self.cardinality_limit - 1:]:
                other.merge(group)
            items = sorted(ranked[: self.cardinality_limit - 1]) + [((OTHER,) * len(dims), other)]
            data_loss = True

        rows = [(key, [self._metric_value(group, m) for m in metrics]) for key, group in items]
        if metrics and not keep_empty:  # RunReportRequest.keepEmptyRows: all-zero rows are left out by default
            rows = [(key, values) for key, values in rows if any(v != 0 for v in values)]
        rows = self._order(rows, dims, metrics, order_bys)
        page = rows[offset: offset + limit]

        type_of = (lambda t: _METRIC_TYPE_INT[t]) if enum_int else (lambda t: t)
        response: dict[str, Any] = {}
        if dims:
            response["dimensionHeaders"] = [{"name": d} for d in dims]
        if metrics:
            response["metricHeaders"] = [{"name": m, "type": type_of(METRIC_TYPES[m])} for m in metrics]
        if page:
            response["rows"] = [
                {
                    "dimensionValues": [{"value": v} for v in key],
                    "metricValues": [
                        {"value": self._format(m, v)} for m, v in zip(metrics, values, strict=True)
                    ],
                }
                for key, values in page
            ]
        if rows:
            response["rowCount"] = len(rows)
        metadata: dict[str, Any] = {"currencyCode": CURRENCY, "timeZone": TIMEZONE}
        if data_loss:
            metadata["dataLossFromOtherRow"] = True
        sessions = sum(group.sums.get("sessions", 0) for group in groups.values())
        metadata.update(self._quality_metadata(property_id, start, end, f"runReport:{','.join(dims)}:"
                                               f"{','.join(metrics)}", sessions, enum_int))
        response["metadata"] = metadata
        if body.get("returnPropertyQuota"):
            response["propertyQuota"] = quota
        response["kind"] = "analyticsData#runReport"
        with self._state_lock:
            self._reads += 1
        return response

    def _parse(
        self, body: dict[str, Any]
    ) -> tuple[list[str], list[str], date, date, int, int, list[dict[str, Any]]]:
        for name in _UNSUPPORTED_FIELDS:
            if body.get(name):
                raise Ga4ApiError(400, f"{name} is not supported by the sandbox GA4 server.")
        dims = []
        for d in body.get("dimensions") or []:
            name = d.get("name", "")
            if d.get("dimensionExpression") or name not in SUPPORTED_DIMENSIONS:
                raise Ga4ApiError(400, f"Field {name} is not a valid dimension. For a list of valid "
                                       f"dimensions and metrics, see {SCHEMA_URL}")
            dims.append(name)
        metrics = []
        for m in body.get("metrics") or []:
            name = m.get("name", "")
            if m.get("expression") or name not in METRIC_TYPES:
                raise Ga4ApiError(400, f"Field {name} is not a valid metric. For a list of valid "
                                       f"dimensions and metrics, see {SCHEMA_URL}")
            metrics.append(name)
        if len(set(dims)) != len(dims) or len(set(metrics)) != len(metrics):
            raise Ga4ApiError(400, "Duplicate dimension or metric names in the request.")
        if not dims and not metrics:
            raise Ga4ApiError(400, "At least one dimension or metric must be requested.")
        ranges = body.get("dateRanges") or []
        if len(ranges) != 1:
            raise Ga4ApiError(400, f"The sandbox supports exactly one dateRange; got {len(ranges)}.")
        start = self._parse_date(ranges[0].get("startDate", ""), "startDate")
        end = self._parse_date(ranges[0].get("endDate", ""), "endDate")
        if start > end:
            raise Ga4ApiError(400, f"Invalid date range: startDate {start} is after endDate {end}.")
        limit = _as_int(body.get("limit"), "limit", 0)
        offset = _as_int(body.get("offset"), "offset", 0)
        if limit < 0 or offset < 0:
            raise Ga4ApiError(400, "limit and offset must be non-negative.")
        # GA4 returns at most 250,000 rows per request whatever the limit asked.
        limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
        order_bys = list(body.get("orderBys") or [])
        for ob in order_bys:
            if "dimension" in ob:
                if ob["dimension"].get("dimensionName") not in dims:
                    raise Ga4ApiError(400, f"orderBys dimension {ob['dimension'].get('dimensionName')!r} "
                                           "is not in the request dimensions.")
            elif "metric" in ob:
                if ob["metric"].get("metricName") not in metrics:
                    raise Ga4ApiError(400, f"orderBys metric {ob['metric'].get('metricName')!r} "
                                           "is not in the request metrics.")
            else:
                raise Ga4ApiError(400, "The sandbox supports dimension and metric orderBys only.")
        return dims, metrics, start, end, limit, offset, order_bys

    def _parse_date(self, value: str, name: str) -> date:
        today = self.world.today
        if value == "today":
            return today
        if value == "yesterday":
            return today - timedelta(days=1)
        relative = re.fullmatch(r"(\d+)daysAgo", value)
        if relative:
            return today - timedelta(days=int(relative.group(1)))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise Ga4ApiError(400, f"Invalid {name} {value!r}: use YYYY-MM-DD, NdaysAgo, yesterday or today.")

    def _metric_value(self, group: _Group, name: str) -> float:
        sums = group.sums
        if name == "totalUsers":
            return self.world.ga4_total_users(group.facts, len(group.days))
        if name in _RATIO_METRICS:  # computed for the row from its sums, as GA4 does: never a sum of ratios
            numerator, denominator = _RATIO_METRICS[name]
            below = sums.get(denominator, 0)
            return sums.get(numerator, 0) / below if below else 0.0
        if name == "purchaseRevenue":
            return round(float(sums.get(name, 0.0)), 2)
        return int(sums.get(name, 0))

    @staticmethod
    def _format(metric: str, value: float) -> str:
        if METRIC_TYPES[metric] in ("TYPE_FLOAT", "TYPE_CURRENCY", "TYPE_SECONDS"):
            return format_float(float(value))
        return str(int(value))

    @staticmethod
    def _order(
        rows: list[tuple[tuple[str, ...], list[float]]],
        dims: list[str],
        metrics: list[str],
        order_bys: list[dict[str, Any]],
    ) -> list[tuple[tuple[str, ...], list[float]]]:
        """Rows arrive sorted by dimension values; apply orderBys as stable sorts, last key first."""
        for ob in reversed(order_bys):
            desc = bool(ob.get("desc"))
            if "metric" in ob:
                i = metrics.index(ob["metric"]["metricName"])
                rows.sort(key=lambda r, i=i: r[1][i], reverse=desc)
                continue
            j = dims.index(ob["dimension"]["dimensionName"])
            raw_type = ob["dimension"].get("orderType", 0)
            order_type = _ORDER_TYPES.get(raw_type, raw_type) if isinstance(raw_type, int) else raw_type
            if order_type == "NUMERIC":
                rows.sort(key=lambda r, j=j: _numeric_key(r[0][j]), reverse=desc)
            elif order_type == "CASE_INSENSITIVE_ALPHANUMERIC":
                rows.sort(key=lambda r, j=j: r[0][j].lower(), reverse=desc)
            else:
                rows.sort(key=lambda r, j=j: r[0][j], reverse=desc)
        return rows

    # ---- runFunnelReport (v1alpha) ---------------------------------------------------------------------

    def run_funnel_report(self, property_id: str, body: dict[str, Any], enum_int: bool = False) -> dict[str, Any]:
        """The runFunnelReport response of a closed add_to_cart -> purchase funnel over one day.

        Users at each step are the sums of the day's cells (``cartUsers``, ``cartPurchasers``): the sandbox
        treats the users of different cells as different people. Nobody at the first step gives sub reports
        with headers and no rows (as runReport leaves out all-zero rows); otherwise both steps have a row."""
        self._check_property(property_id)
        day, step_names = self._parse_funnel(body)
        quota = self._charge(property_id, 1)
        with self._state_lock:
            version = self._reads
        facts = self.world.ga4_facts(property_id, day, version) if self._served_days(day, day) else []
        users = [int(sum(f.metrics[metric] for f in facts)) for _event, metric in _FUNNEL_STEPS]
        type_of = _METRIC_TYPE_INT["TYPE_INTEGER"] if enum_int else "TYPE_INTEGER"
        metadata: dict[str, Any] = {}
        sessions = sum(f.metrics["sessions"] for f in facts)
        sampling = self._quality_metadata(property_id, day, day, "runFunnelReport", sessions, enum_int)
        if "samplingMetadatas" in sampling:  # FunnelResponseMetadata carries sampling only
            metadata["samplingMetadatas"] = sampling["samplingMetadatas"]
        table: dict[str, Any] = {"dimensionHeaders": [{"name": "funnelStepName"}],
                                 "metricHeaders": [{"name": m, "type": type_of} for m in _FUNNEL_TABLE_METRICS]}
        visualization: dict[str, Any] = {"dimensionHeaders": [{"name": "funnelStepName"}],
                                         "metricHeaders": [{"name": "activeUsers", "type": type_of}]}
        if users[0] > 0:
            table["rows"], visualization["rows"] = [], []
            for i, (name, at_step) in enumerate(zip(step_names, users, strict=True)):
                following = users[i + 1] if i + 1 < len(users) else at_step  # nobody abandons after the last
                completion = following / at_step if at_step else 0.0
                abandoned = at_step - following
                values = [str(at_step), format_float(completion), str(abandoned),
                          format_float(abandoned / at_step if at_step else 0.0)]
                table["rows"].append({"dimensionValues": [{"value": name}],
                                      "metricValues": [{"value": v} for v in values]})
                visualization["rows"].append({"dimensionValues": [{"value": name}],
                                              "metricValues": [{"value": str(at_step)}]})
        table["metadata"], visualization["metadata"] = metadata, dict(metadata)
        response: dict[str, Any] = {"funnelTable": table, "funnelVisualization": visualization}
        if body.get("returnPropertyQuota"):
            response["propertyQuota"] = quota
        response["kind"] = "analyticsData#runFunnelReport"
        return response

    def _parse_funnel(self, body: dict[str, Any]) -> tuple[date, list[str]]:
        """The one funnel shape the sandbox computes (the day, the response's step names); 400 for the rest."""
        for name in _UNSUPPORTED_FUNNEL_FIELDS:
            if body.get(name):
                raise Ga4ApiError(400, f"{name} is not supported by the sandbox GA4 server.")
        raw_type = body.get("funnelVisualizationType", 0)
        vis_type = _VISUALIZATION_TYPES.get(raw_type, raw_type) if isinstance(raw_type, int) else raw_type
        if vis_type not in ("FUNNEL_VISUALIZATION_TYPE_UNSPECIFIED", "STANDARD_FUNNEL"):
            raise Ga4ApiError(400, f"funnelVisualizationType {raw_type!r} is not supported by the sandbox GA4 server.")
        ranges = body.get("dateRanges") or []
        if len(ranges) != 1:
            raise Ga4ApiError(400, f"The sandbox supports exactly one dateRange; got {len(ranges)}.")
        start = self._parse_date(ranges[0].get("startDate", ""), "startDate")
        end = self._parse_date(ranges[0].get("endDate", ""), "endDate")
        if start != end:
            raise Ga4ApiError(400, "The sandbox computes a funnel over one day only (startDate == endDate); "
                                   f"got {start}..{end}.")
        _as_int(body.get("limit"), "limit", 0)
        funnel = body.get("funnel")
        if not isinstance(funnel, dict) or not funnel.get("steps"):
            raise Ga4ApiError(400, "funnel with at least one step is required.")
        if funnel.get("isOpenFunnel"):
            raise Ga4ApiError(400, "isOpenFunnel is not supported by the sandbox GA4 server (closed funnels only).")
        events = []
        names = []
        for number, step in enumerate(funnel["steps"], start=1):
            expression = step.get("filterExpression") or {}
            event_filter = expression.get("funnelEventFilter") or {}
            if (set(expression) != {"funnelEventFilter"} or set(event_filter) != {"eventName"}
                    or step.get("isDirectlyFollowedBy") or step.get("withinDurationFromPriorStep")):
                raise Ga4ApiError(400, f"funnel step {number}: the sandbox supports a funnelEventFilter on an "
                                       "event name only.")
            events.append(event_filter["eventName"])
            names.append(f"{number}. {step.get('name', '')}")
        if events != [event for event, _metric in _FUNNEL_STEPS]:
            raise Ga4ApiError(400, "The sandbox computes the funnel add_to_cart -> purchase only; got "
                                   f"{' -> '.join(map(str, events))}.")
        return start, names

    # ---- quota ---------------------------------------------------------------------------------------

    def _charge(self, property_id: str, cost: int) -> dict[str, Any]:
        """Count tokens down per property; 429 once the daily budget is spent (nothing is charged then)."""
        hour = int(self.clock() // 3600)
        with self._state_lock:
            quota = self._quota.setdefault(property_id, _Quota())
            if quota.hour_bucket != hour:
                quota.hour_bucket, quota.hour_consumed = hour, 0
            if quota.day_consumed >= self.tokens_per_day:
                raise Ga4ApiError(429, "Exhausted property tokens per day.")
            if quota.hour_consumed >= self.tokens_per_hour:
                raise Ga4ApiError(429, "Exhausted property tokens per hour.")
            if self._server_errors_spent(hour) >= _SERVER_ERRORS_PER_HOUR:
                raise Ga4ApiError(429, "Exhausted server errors quota.")
            quota.day_consumed += cost
            quota.hour_consumed += cost
            bucket, consumed = self._project_hour
            project_consumed = (consumed if bucket == hour else 0) + cost
            self._project_hour = (hour, project_consumed)
            day_left = max(0, self.tokens_per_day - quota.day_consumed)
            hour_left = max(0, self.tokens_per_hour - quota.hour_consumed)
            errors_left = max(0, _SERVER_ERRORS_PER_HOUR - self._server_errors_spent(hour))
            return {
                "tokensPerDay": {"consumed": cost, "remaining": day_left},
                "tokensPerHour": {"consumed": cost, "remaining": hour_left},
                "concurrentRequests": {"consumed": 0, "remaining": _CONCURRENT_REQUESTS},
                "serverErrorsPerProjectPerHour": {"consumed": 0, "remaining": errors_left},
                "potentiallyThresholdedRequestsPerHour": {"consumed": 0, "remaining": _THRESHOLDED_PER_HOUR},
                "tokensPerProjectPerHour": {
                    "consumed": cost, "remaining": max(0, _TOKENS_PER_PROJECT_PER_HOUR - project_consumed)},
            }


def _numeric_key(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)
