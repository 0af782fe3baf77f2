"""Google Analytics 4 connector: Data API `runReport` through the official client.

Business purpose: GA4 is the reference for web traffic, engagement and e-commerce. This module
turns report requests into typed Arrow batches, one per page, for the loader.

How it reads (see shared/research/peers.md, GA4):
- One request covers the whole date range asked for (a 90-day backfill is one request per report per
  property, plus pages), `limit` up to 250,000 with `offset` paging until `rowCount`.
- Values arrive as strings: metrics are cast by `metricHeaders[].type`, `date` parsed from YYYYMMDD.
  Cardinality overflow puts `(other)` into dimensions (even `date`): such rows are kept and flagged
  with `is_other`, never a crash.
- Property quota is requested on every call and logged; 429 and 5xx go through the shared retry
  helper, with GA4's quota-specific waits, and server errors stop early enough not to spend the
  property's hourly server-error quota (10). The cart funnel's one-day requests go several at once per property
  (FUNNEL_IN_FLIGHT, within GA4's 10 concurrent requests), gated by that budget (FlightGate).
- GA4 leaves out rows whose requested metrics are all zero (RunReportRequest.keepEmptyRows, not set here): a
  day with sessions but no e-commerce event has no `ecommerce_by_date` row, and KPIs start from the sessions
  side (KPI rule 10).
- What each answer says about its own quality (thresholding, sampling, the `(other)` row, data truncation) is
  kept per property, report and day (`ga4.report_quality`, see `quality_batches`), so a KPI built on a sampled
  or thresholded answer can say so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.batches import Batch, Stream, Window
from connectors.errors import ConfigError, InvalidResponse, RetriesExhausted, SourceError
from connectors.google_auth import checked_endpoint, resolve_credentials
from connectors.http import (
    Fatal,
    RequestStats,
    Retry,
    RetryPolicy,
    Verdict,
    answer_guard,
    call_with_retry,
    guard_session,
    max_answer_bytes,
    parse_retry_after,
)
from connectors.parallel import AccountLog, fetch_accounts
from connectors.probe import Finding, api_error, google_account, probing, refused
from connectors.raw_tables import GA4_CART_FUNNEL, GA4_ECOMMERCE, GA4_REPORT_QUALITY, GA4_STREAMS, GA4_TRAFFIC
from connectors.settings import GA4Settings, Settings
from connectors.source import parsed_accounts, stream_named
from connectors.validation import Contract

log = logging.getLogger("mkpi.ga4")

SOURCE = "ga4"
SCOPES = ("https://www.googleapis.com/auth/analytics.readonly",)
OTHER = "(other)"
# GA4 allows 10 server errors per property and project per hour; stop retrying well before.
SERVER_ERROR_BUDGET = 5
SERVER_ERROR_WINDOW = 3600.0


class ServerErrorBudget:
    """Server errors per property over a rolling hour, shared by every GA4 connector of the process: the
    reports of one run (one connector each) must not together spend the property's hourly quota."""

    def __init__(self, limit: int = SERVER_ERROR_BUDGET, window: float = SERVER_ERROR_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._errors: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def spend(self, property_id: str) -> int:
        """Record one server error; return how many the property has had within the window."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._errors.get(property_id, []) if now - t < self.window]
            recent.append(now)
            self._errors[property_id] = recent
            return len(recent)

    def used(self, property_id: str) -> int:
        """How many server errors the property has had within the window (nothing recorded)."""
        now = time.monotonic()
        with self._lock:
            return sum(now - t < self.window for t in self._errors.get(property_id, []))

    def reset(self) -> None:
        with self._lock:
            self._errors.clear()


SERVER_ERRORS = ServerErrorBudget()
# Set on a server error the FlightGate has already counted in the budget, so that the classifier does not count
# it twice (its value: the property's server errors within the window, this one included).
SPENT_ATTRIBUTE = "mkpi_ga4_server_errors_used"
# GA4 answers at most 10 concurrent requests per property ("Core Concurrent Requests Per Property: 10",
# https://developers.google.com/analytics/devguides/reporting/data/v1/quotas); more earn a 429 "Exhausted
# concurrent requests quota." The cart funnel's days take at most 8 of them, leaving one each to the property's
# two other reports, which other steps may read at the same time (one request in flight each).
FUNNEL_IN_FLIGHT = 8


class FunnelAborted(SourceError):
    """A day's request not sent because another day of the same property has already failed: the property fails
    with that day's error, and nothing more is spent on it."""


class FlightGate:
    """How many of one property's requests may be in flight at once, so that reading days concurrently never
    spends more of GA4's server-error quota than reading them one after the other would.

    At most `most` in flight, and never more than the server-error budget has left (should they all fail at once,
    each spends one error, and the budget ends where a serial read would have left it); after a server error or a
    429 (GA4's concurrent-requests quota: other runs may be reading the same property), one at a time until an
    answer succeeds; none once the budget is spent by this gate's own request (that request is
    judged fatal) or `abort` is called (another day failed). The gate counts each server error of its requests in
    the budget itself, before admitting the next request (marked with SPENT_ATTRIBUTE for the classifier)."""

    def __init__(self, property_id: str, budget: ServerErrorBudget, most: int,
                 shared: threading.Semaphore | None = None) -> None:
        self.property_id = property_id
        self.budget = budget
        self.most = most
        self.shared = shared  # in-flight slots shared with the other properties of the same read, taken after ours
        self._cond = threading.Condition()
        self._in_flight = 0
        self._careful = False  # a server error since the last success: one request at a time
        self._aborted = False

    def _allowed(self) -> int:
        if self._careful:
            return 1
        return max(1, min(self.most, self.budget.limit - self.budget.used(self.property_id)))

    def abort(self) -> None:
        """Send nothing more: requests waiting for a slot raise FunnelAborted."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    @contextmanager
    def slot(self, what: str) -> Iterator[None]:
        """Hold one in-flight slot for one attempt (wait for it); on a server error, spend it and narrow the gate."""
        from google.api_core import exceptions as gexc

        with self._cond:
            while not self._aborted and self._in_flight >= self._allowed():
                self._cond.wait()
            if self._aborted:
                raise FunnelAborted(SOURCE, self.property_id, f"{what}: not sent, another request of this "
                                    "property failed")
            self._in_flight += 1
        outcome: BaseException | None = None
        try:
            with self.shared or nullcontext():
                yield
        except BaseException as exc:
            outcome = exc
            raise
        finally:
            with self._cond:
                self._in_flight -= 1
                if outcome is None:
                    self._careful = False
                elif isinstance(outcome, gexc.ServerError):
                    used = self.budget.spend(self.property_id)
                    setattr(outcome, SPENT_ATTRIBUTE, used)
                    self._careful = True
                    self._aborted = self._aborted or used > self.budget.limit
                elif isinstance(outcome, gexc.TooManyRequests):
                    self._careful = True  # e.g. "Exhausted concurrent requests quota.": other runs read the property
                self._cond.notify_all()


# Waits for GA4 quota messages (seconds), after Airbyte's api_quota.py; daily quota cannot recover in a run.
QUOTA_WAITS: tuple[tuple[str, float], ...] = (
    ("concurrent requests", 30.0),
    ("property tokens per day", 86_400.0),
    ("tokens for a project per hour", 1_800.0),
    ("property tokens per hour", 1_800.0),
    ("potentially thresholded requests", 1_800.0),
    ("server errors", 3_600.0),
)


@dataclass(frozen=True)
class Ga4Report:
    """One report we ask GA4 for: dimensions and metrics (API name -> column) and its raw table."""

    name: str
    dimensions: tuple[tuple[str, str], ...]
    metrics: tuple[tuple[str, str], ...]
    stream: Stream
    derive: Callable[[pa.Table], pa.Table] | None = None


def _derive_traffic(table: pa.Table) -> pa.Table:
    """The additive parts GA4 gives only as per-row ratios, so KPIs can re-aggregate them (KPI rule 1).

    Converting sessions = sessions x sessionKeyEventRate, an integer; session duration (seconds) = sessions x
    averageSessionDuration, kept unrounded (GA4 prints the average at full precision)."""
    sessions = pc.cast(table["sessions"], pa.float64())
    converting = pc.round(pc.multiply(sessions, table["session_key_event_rate"]))
    table = table.append_column("converting_sessions", pc.cast(converting, pa.int64()))
    return table.append_column("session_duration_seconds", pc.multiply(sessions, table["average_session_duration"]))


TRAFFIC = Ga4Report(
    name="traffic_by_channel",
    dimensions=(("date", "date"), ("sessionDefaultChannelGroup", "session_default_channel_group")),
    metrics=(
        ("sessions", "sessions"),
        ("engagedSessions", "engaged_sessions"),
        ("userEngagementDuration", "user_engagement_duration"),
        ("averageSessionDuration", "average_session_duration"),
        ("sessionKeyEventRate", "session_key_event_rate"),
        ("keyEvents", "key_events"),
        ("newUsers", "new_users"),
        # revenue and purchases by session channel: marketing ROI attributes GA4 revenue to the channel (#24)
        ("ecommercePurchases", "ecommerce_purchases"),
        ("purchaseRevenue", "purchase_revenue"),
    ),
    stream=GA4_TRAFFIC,
    derive=_derive_traffic,
)

ECOMMERCE = Ga4Report(
    name="ecommerce_by_date",
    dimensions=(("date", "date"),),
    metrics=(
        ("ecommercePurchases", "ecommerce_purchases"),
        ("purchaseRevenue", "purchase_revenue"),
        ("addToCarts", "add_to_carts"),
        ("checkouts", "checkouts"),
    ),
    stream=GA4_ECOMMERCE,
)


@dataclass(frozen=True)
class Ga4FunnelReport:
    """A closed funnel read with runFunnelReport, one request per day (connectors/ga4_funnel.py): its steps (name
    sent, event matched; GA4 answers "1. <name>", "2. <name>", ...), its raw table, and the table's columns for
    the users at the first step and at the last."""

    name: str
    steps: tuple[tuple[str, str], ...]
    stream: Stream
    columns: tuple[str, str]

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(f"{number}. {name}" for number, (name, _event) in enumerate(self.steps, start=1))


CART_FUNNEL = Ga4FunnelReport(
    name="cart_funnel_daily",
    steps=(("add_to_cart", "add_to_cart"), ("purchase", "purchase")),
    stream=GA4_CART_FUNNEL,
    columns=("cart_users", "purchased_after_cart_users"),
)

# Every report a GA4 load reads (the daily refresh and `mkpi backfill` take their tables from here); `fetch` reads
# either kind.
REPORTS: dict[str, Ga4Report | Ga4FunnelReport] = {r.name: r for r in (TRAFFIC, ECOMMERCE, CART_FUNNEL)}

# What GA4 said about each answer, one row per property, report and day (declared in connectors/raw_tables.py).
REPORT_QUALITY = GA4_REPORT_QUALITY
# The raw tables a GA4 load writes (the source protocol, connectors/source.py).
STREAMS = GA4_STREAMS


def report_for(report: Ga4Report | Ga4FunnelReport | Stream | str) -> Ga4Report | Ga4FunnelReport:
    """The report behind a name ("traffic_by_channel") or a raw table's Stream; the quality table is written from
    every report's answers, so it is never read on its own."""
    if isinstance(report, Ga4Report | Ga4FunnelReport):
        return report
    if isinstance(report, Stream):
        if report.table == REPORT_QUALITY.table:
            raise ValueError(f"{REPORT_QUALITY.table} is written from each report's answers: fetch a report, then "
                             "take Ga4Connector.quality_batches(report, window)")
        stream_named(STREAMS, report)  # an unknown table names the known ones
        return next(r for r in REPORTS.values() if r.stream.table == report.table)
    if report not in REPORTS:
        raise ValueError(f"unknown GA4 report {report!r}: choose from {', '.join(REPORTS)}")
    return REPORTS[report]


@dataclass(frozen=True)
class Truncation:
    """One ResponseMetaData.dataTruncationReasons entry: which days of the answer it covers."""

    kind: str
    before: date | None = None  # dataTruncationDate: data before this day is truncated
    ranges: tuple[tuple[date, date], ...] = ()  # dataTruncationDateRanges, inclusive

    def covers(self, day: date) -> bool:
        if self.before is None and not self.ranges:
            return True  # no dates given: the whole answer
        return (self.before is not None and day < self.before) or any(a <= day <= b for a, b in self.ranges)


@dataclass(frozen=True)
class ReportQuality:
    """What one answer (all its pages) says about itself. None: the endpoint does not report it (a funnel
    answer has no thresholding or `(other)` flag)."""

    subject_to_thresholding: bool | None = False
    samples_read_count: int | None = None
    sampling_space_size: int | None = None
    data_loss_from_other_row: bool | None = False
    truncations: tuple[Truncation, ...] = ()

    @property
    def sampled(self) -> bool:
        return self.sampling_space_size is not None

    def merge(self, page: ReportQuality) -> ReportQuality:
        """Pages of one answer: a flag raised on any page holds for the answer."""
        def either(a: bool | None, b: bool | None) -> bool | None:
            return None if a is None and b is None else bool(a) or bool(b)

        def larger(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else max(a, b)

        return ReportQuality(
            either(self.subject_to_thresholding, page.subject_to_thresholding),
            larger(self.samples_read_count, page.samples_read_count),
            larger(self.sampling_space_size, page.sampling_space_size),
            either(self.data_loss_from_other_row, page.data_loss_from_other_row),
            tuple(dict.fromkeys(self.truncations + page.truncations)))

    def row(self, property_id: str, report: str, day: date) -> dict[str, Any]:
        reasons = sorted({t.kind for t in self.truncations if t.covers(day)})
        return {"property_id": property_id, "report": report, "date": day,
                "subject_to_thresholding": self.subject_to_thresholding, "sampled": self.sampled,
                "samples_read_count": self.samples_read_count, "sampling_space_size": self.sampling_space_size,
                "data_loss_from_other_row": self.data_loss_from_other_row,
                "data_truncation_reasons": ",".join(reasons) or None}


def read_quality(contract: Contract, metadata: Any, *, full: bool = True) -> ReportQuality:
    """ReportQuality from a ResponseMetaData (``full``) or a FunnelResponseMetadata (sampling only) protobuf.

    Field names as in the v1beta discovery document (analyticsdata.v1beta.json, ResponseMetaData): one
    samplingMetadatas entry per requested date range; every request here has one."""
    samplings = list(metadata.sampling_metadatas)
    if len(samplings) > 1:
        raise contract.fail("metadata.samplingMetadatas", f"{len(samplings)} entries for one requested date range")
    read = space = None
    if samplings:
        read = contract.count(samplings[0].samples_read_count, "metadata.samplingMetadatas.samplesReadCount")
        space = contract.count(samplings[0].sampling_space_size, "metadata.samplingMetadatas.samplingSpaceSize")
    if not full:
        return ReportQuality(None, read, space, None)
    truncations = []
    for number, reason in enumerate(metadata.data_truncation_reasons):
        field_name = f"metadata.dataTruncationReasons[{number}]"
        kind = _truncation_name(reason.data_truncation_type)
        before = (contract.day(reason.data_truncation_date, field_name + ".dataTruncationDate")
                  if reason.data_truncation_date else None)
        ranges = tuple((contract.day(r.start_date, field_name + ".startDate"),
                        contract.day(r.end_date, field_name + ".endDate")) for r in reason.data_truncation_date_ranges)
        truncations.append(Truncation(kind, before, ranges))
    return ReportQuality(bool(metadata.subject_to_thresholding), read, space,
                         bool(metadata.data_loss_from_other_row), tuple(truncations))


def _truncation_name(value: int) -> str:
    from google.analytics.data_v1beta.types import ResponseMetaData

    try:
        return ResponseMetaData.DataTruncationReason.DataTruncationType(value).name
    except ValueError:  # a type newer than this client: keep its number rather than lose the flag
        return f"DATA_TRUNCATION_TYPE_{value}"


def normalise_property_id(raw: str) -> str:
    """Accept `123456789` or `properties/123456789`; refuse anything else before any request."""
    value = raw.strip().removeprefix("properties/")
    if not value.isdigit():
        raise ConfigError(
            f"GA4 property id {raw!r} is not numeric: set MKPI_GA4_PROPERTY_IDS to numeric ids "
            "such as 123456789 (Admin > Property details in GA4)", key="ga4.property_ids"
        )
    return value


def build_client(settings: GA4Settings, *, alpha: bool = False) -> Any:
    """The official BetaAnalyticsDataClient (or, with `alpha`, AlphaAnalyticsDataClient for runFunnelReport,
    which only the v1alpha API has), on its REST transport everywhere: the production endpoint and an overridden one
    (the sandbox) are read by the same code, and every answer passes through the guarded requests session
    (connectors/http.py: total deadline, size limit, no redirect to another origin)."""
    from google.analytics.data_v1alpha import AlphaAnalyticsDataClient
    from google.analytics.data_v1beta import BetaAnalyticsDataClient
    from google.api_core.client_options import ClientOptions

    client_class = AlphaAnalyticsDataClient if alpha else BetaAnalyticsDataClient
    credentials = resolve_credentials(settings.credentials_file, settings.endpoint, SCOPES, "GA4",
                                      "MKPI_GA4_ENDPOINT")
    options = None
    if settings.endpoint:
        options = ClientOptions(api_endpoint=checked_endpoint(settings.endpoint, credentials, "MKPI_GA4_ENDPOINT"))
    client = client_class(credentials=credentials, transport="rest", client_options=options)
    guard_session(client.transport._session)  # the transport's AuthorizedSession; google-auth has no public hook
    return client


# Metrics that can legitimately be negative (refunds lower revenue); every other metric read is a count,
# a duration or a rate, and a negative value is a broken answer.
SIGNED_METRICS = frozenset({"purchaseRevenue"})


def _cast_metric(values: list[str], metric_type: int, contract: Contract | None = None, field: str = "") -> pa.Array:
    from google.analytics.data_v1beta.types import MetricType

    contract = contract or Contract(SOURCE, "?", "runReport")
    strings = pa.array(values, pa.string())
    if metric_type == MetricType.TYPE_INTEGER:
        return contract.cast(strings, pa.int64(), field)
    return contract.cast(strings, pa.float64(), field)


def _check_headers(contract: Contract, kind: str, got: list[str], wanted: list[str]) -> None:
    """The headers must be exactly the requested names, in order: row values are positional, so a missing,
    extra (a new column nobody asked for) or reordered header would shift every value into the wrong column."""
    if got == wanted:
        return
    missing = [n for n in wanted if n not in got]
    extra = [n for n in got if n not in wanted]
    if missing:
        raise contract.fail(f"{kind}Headers", f"requested {kind}s missing from the answer: {missing}")
    if extra:
        raise contract.fail(f"{kind}Headers", f"{kind}s nobody asked for in the answer (a new column): {extra}")
    raise contract.fail(f"{kind}Headers", f"{kind}s in another order than requested", got)


def parse_report(response: Any, report: Ga4Report, property_id: str, endpoint: str = "runReport"
                 ) -> tuple[pa.Table, int, dict[str, Any]]:
    """Turn a RunReportResponse into a typed Arrow table; return (table, rowCount, metadata).

    Refuses (InvalidResponse, naming the field) anything that breaks the report's contract: headers other
    than the requested ones, a row with too few or too many values, a metric that is not a number of its
    declared type, NaN/Infinity, a negative count, an impossible date, an over-long dimension value."""
    from google.analytics.data_v1beta.types import MetricType, RunReportResponse

    contract = Contract(SOURCE, property_id, endpoint)
    pb = RunReportResponse.pb(response) if isinstance(response, RunReportResponse) else response
    dim_names = [h.name for h in pb.dimension_headers]
    _check_headers(contract, "dimension", dim_names, [d for d, _ in report.dimensions])
    _check_headers(contract, "metric", [h.name for h in pb.metric_headers], [m for m, _ in report.metrics])
    met_headers = {h.name: (i, h.type_) for i, h in enumerate(pb.metric_headers)}
    rows = pb.rows
    dim_values: list[list[str]] = [[] for _ in dim_names]
    met_values: list[list[str]] = [[] for _ in pb.metric_headers]
    for number, row in enumerate(rows):
        if len(row.dimension_values) != len(dim_names):
            raise contract.fail(f"rows[{number}].dimensionValues",
                                f"{len(row.dimension_values)} values for {len(dim_names)} dimensions")
        if len(row.metric_values) != len(met_values):
            raise contract.fail(f"rows[{number}].metricValues",
                                f"{len(row.metric_values)} values for {len(met_values)} metrics")
        for i, value in enumerate(row.dimension_values):
            dim_values[i].append(value.value)
        for i, value in enumerate(row.metric_values):
            met_values[i].append(value.value)

    n = len(rows)
    columns: dict[str, pa.Array] = {"property_id": pa.array([property_id] * n, pa.string())}
    is_other = pa.array([False] * n, pa.bool_())
    for api_name, column in report.dimensions:
        values = pa.array(dim_values[dim_names.index(api_name)], pa.string())
        contract.column(values, api_name)
        other_mask = pc.equal(values, OTHER)
        is_other = pc.or_(is_other, other_mask)
        if api_name == "date":
            usable = pc.if_else(other_mask, pa.scalar(None, pa.string()), values)
            try:
                values = pc.cast(pc.strptime(usable, format="%Y%m%d", unit="s"), pa.date32())
            except pa.ArrowInvalid:
                for text in usable.to_pylist():
                    if text is not None:
                        contract.day(text, api_name, "%Y%m%d")
                raise
        columns[column] = values
    for api_name, column in report.metrics:
        index, metric_type = met_headers[api_name]
        declared = report.stream.schema.field(column).type
        if metric_type == MetricType.METRIC_TYPE_UNSPECIFIED or (
                pa.types.is_integer(declared) and metric_type != MetricType.TYPE_INTEGER):
            raise contract.fail(f"metricHeaders.{api_name}.type", f"type changed: {column} is declared "
                                f"{declared}, the answer says {MetricType(metric_type).name}")
        columns[column] = _cast_metric(met_values[index], metric_type, contract, api_name)
        contract.column(columns[column], api_name, non_negative=api_name not in SIGNED_METRICS)
    metadata = {
        "time_zone": pb.metadata.time_zone or None,
        "currency_code": pb.metadata.currency_code or None,
        "data_loss_from_other_row": bool(pb.metadata.data_loss_from_other_row),
        "quality": read_quality(contract, pb.metadata),
    }
    columns["is_other"] = is_other
    columns["time_zone"] = pa.array([metadata["time_zone"]] * n, pa.string())
    columns["currency_code"] = pa.array([metadata["currency_code"]] * n, pa.string())
    table = pa.table(columns)
    if report.derive is not None:
        table = report.derive(table)
    return table, int(pb.row_count), metadata


def invalid_json_field(exc: Exception, property_id: str, endpoint: str) -> InvalidResponse | None:
    """A JSON body protobuf could read but not map ("Failed to parse rowCount field: ...") is a wrong type in
    a field, not a transport failure: name the field and do not retry. Unreadable JSON returns None."""
    import re

    found = re.search(r"Failed to parse (\w+) field", str(exc))
    if found is None:
        return None
    detail = str(exc).split(": ", 1)[-1][:120]
    return InvalidResponse(SOURCE, property_id, endpoint, found.group(1), f"wrong type ({detail})")


def _quota_summary(response: Any) -> dict[str, int]:
    """The remaining tokens of a runReport or runFunnelReport answer (proto-plus message or raw protobuf)."""
    import proto

    pb = type(response).pb(response) if isinstance(response, proto.Message) else response
    if not pb.HasField("property_quota"):
        return {}
    quota = pb.property_quota
    return {
        "tokens_per_day_remaining": quota.tokens_per_day.remaining,
        "tokens_per_hour_remaining": quota.tokens_per_hour.remaining,
        "server_errors_per_hour_remaining": quota.server_errors_per_project_per_hour.remaining,
    }


@dataclass
class Ga4Connector:
    """Reads GA4 reports for every configured property into typed batches."""

    settings: GA4Settings
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    quota: dict[str, dict[str, int]] = field(default_factory=dict)
    _client: Any = field(default=None, repr=False)
    server_errors: ServerErrorBudget = field(default_factory=lambda: SERVER_ERRORS, repr=False)
    _quota_at: dict[str, float] = field(default_factory=dict, repr=False)  # when `quota` was last read, monotonic
    # (property, report) -> day -> what the answer covering that day said about itself; filled by properties
    # read whole (a property that failed has none), read by `quality_batches`.
    quality: dict[tuple[str, str], dict[date, ReportQuality]] = field(default_factory=dict, repr=False)
    _quality_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _alpha: Any = field(default=None, repr=False)  # AlphaAnalyticsDataClient, for runFunnelReport

    def property_ids(self) -> list[str]:
        """Configured properties, validated; raises ConfigError before any request."""
        if not self.settings.property_ids:
            raise ConfigError(
                "No GA4 property configured: set MKPI_GA4_PROPERTY_IDS (comma-separated numeric ids) "
                "or ga4.property_ids in config/mkpi.yaml"
            )
        return [normalise_property_id(p) for p in self.settings.property_ids]

    def client(self) -> Any:
        if self._client is None:
            self._client = build_client(self.settings)
        return self._client

    def alpha_client(self) -> Any:
        """The v1alpha client: runFunnelReport exists only there."""
        if self._alpha is None:
            self._alpha = build_client(self.settings, alpha=True)
        return self._alpha

    def check(self) -> list[str]:
        """Validate configuration and credentials without sending a request."""
        ids = self.property_ids()
        max_answer_bytes(SOURCE)
        self.client()
        return ids

    def probe(self) -> list[Finding]:
        """What `mkpi doctor` checks: one cheap runReport per property (`probe_properties`)."""
        return probe_properties(self)

    def remember_quota(self, property_id: str, response: Any) -> None:
        """Keep the property quota an answer reported, for `_check_quota` and run metadata (logged at debug: every
        answer carries one, and the step's metadata shows the last)."""
        quota = _quota_summary(response)
        if quota:
            self.quota[property_id] = quota
            self._quota_at[property_id] = time.monotonic()
            log.debug("GA4 property %s quota: %s", property_id, quota)

    def _check_quota(self, property_id: str, endpoint: str) -> None:
        """Stop before a request GA4 would refuse: the last propertyQuota showed the property's hourly or daily
        tokens at 0. Sending it anyway would only earn a 429 and, repeated, spend the project's error budget."""
        seen = self._quota_at.get(property_id)
        quota = self.quota.get(property_id) or {}
        for field_name, span, seconds in (("tokens_per_hour_remaining", "hourly", 3_600.0),
                                          ("tokens_per_day_remaining", "daily", 86_400.0)):
            if seen is not None and time.monotonic() - seen < seconds and quota.get(field_name) == 0:
                raise RetriesExhausted(
                    SOURCE, property_id,
                    f"{endpoint}: the property's {span} token quota is spent (propertyQuota {field_name} = 0); "
                    "GA4 would refuse the request: re-run once the quota refills")

    def _classify(self, property_id: str) -> Callable[[BaseException], Verdict]:
        import requests
        from google.api_core import exceptions as gexc
        from google.protobuf.json_format import ParseError

        def classify(exc: BaseException) -> Verdict:
            if isinstance(exc, gexc.TooManyRequests):
                message = str(getattr(exc, "message", exc))
                wait = 0.0
                for pattern, seconds in QUOTA_WAITS:
                    if pattern in message.lower():
                        wait = seconds
                        break
                response = getattr(exc, "response", None)
                if response is not None:
                    wait = max(wait, parse_retry_after(response.headers.get("Retry-After")))
                if wait >= 1_800:  # an hourly or daily quota: longer than a run should block a worker
                    return Retry(f"429 {message} (GA4 quota of property {property_id} is spent: re-run once it "
                                 "refills, or lower the number of requests per run)", wait)
                return Retry(f"429 {message}", wait)
            if isinstance(exc, gexc.ServerError):
                used = getattr(exc, SPENT_ATTRIBUTE, None) or self.server_errors.spend(property_id)
                if used > self.server_errors.limit:
                    return Fatal(
                        f"{used} server errors within the hour ({exc.code} {exc.message}); stopping before "
                        "GA4's hourly server-error quota (10 per property) is spent"
                    )
                return Retry(f"{exc.code} {exc.message}")
            if isinstance(exc, gexc.GoogleAPICallError):
                return Fatal(f"{exc.code} {exc.message}")
            if isinstance(exc, requests.exceptions.RequestException):
                return Retry(f"{type(exc).__name__}")
            if isinstance(exc, ParseError | ValueError):  # an HTML page, an empty or a truncated body
                return Retry(f"malformed response, not the JSON GA4 sends ({type(exc).__name__}: {str(exc)[:120]})")
            return Fatal(f"{type(exc).__name__}: {exc}")

        return classify

    def record_quality(self, property_id: str, report: str, by_day: dict[date, ReportQuality]) -> None:
        """Keep what the answers said about themselves for each day they cover; warn when one is not exact."""
        with self._quality_lock:
            self.quality.setdefault((property_id, report), {}).update(by_day)
        flagged = {
            "subject to thresholding (rows under GA4's thresholds are withheld)":
                [d for d, q in by_day.items() if q.subject_to_thresholding],
            "sampled": [d for d, q in by_day.items() if q.sampled],
            "data truncated": [d for d, q in by_day.items() if q.truncations],
        }
        for what, days in flagged.items():
            if days:
                log.warning("GA4 property %s %s: %s on %d day(s), %s..%s", property_id, report, what, len(days),
                            min(days), max(days))

    def quality_batches(self, report: str, window: Window, property_ids: Sequence[str] | None = None
                        ) -> Iterator[Batch]:
        """One `ga4.report_quality` batch per property whose `report` was read whole for the window, in
        configured order; call it after that fetch is consumed (e.g. chained after it into one load)."""
        ids = [normalise_property_id(p) for p in property_ids] if property_ids else self.property_ids()
        for property_id in ids:
            with self._quality_lock:
                days = dict(self.quality.get((property_id, report), {}))
            rows = [days[d].row(property_id, report, d) for d in window.dates() if d in days]
            if rows:
                yield Batch(REPORT_QUALITY, pa.Table.from_pylist(rows, REPORT_QUALITY.schema), window,
                            {"property_id": property_id, "report": report})

    def quality_counts(self, report: str) -> dict[str, int]:
        """Days per flag over every property read for `report`, for run metadata."""
        with self._quality_lock:
            days = [q for (_p, name), by_day in self.quality.items() if name == report for q in by_day.values()]
        return {
            "quality_days": len(days),
            "quality_days_thresholded": sum(bool(q.subject_to_thresholding) for q in days),
            "quality_days_sampled": sum(q.sampled for q in days),
            "quality_days_other_row": sum(bool(q.data_loss_from_other_row) for q in days),
            "quality_days_truncated": sum(bool(q.truncations) for q in days),
        }

    def _retry(self, call: Callable[[], Any], property_id: str, what: str) -> Any:
        """`call` (one request and its parsing) retried; each attempt within one answer guard: timeout_seconds in
        all, at most MKPI_GA4_MAX_ANSWER_MB, no redirect elsewhere."""
        kwargs: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
        seconds, max_bytes = self.settings.timeout_seconds, max_answer_bytes(SOURCE)

        def guarded() -> Any:
            with answer_guard(SOURCE, seconds=seconds, max_bytes=max_bytes):
                return call()

        return call_with_retry(guarded, classify=self._classify(property_id), source=SOURCE, account=property_id,
                               what=what, policy=self.policy, stats=self.stats, **kwargs)

    def fetch(self, report: Ga4Report | Ga4FunnelReport | Stream | str, window: Window,
              property_ids: Sequence[str] | None = None, accounts: AccountLog | None = None,
              cursor: str | None = None) -> Iterator[Batch]:
        """Yield one batch per page per property for the report over the window (inclusive dates); a funnel
        report (CART_FUNNEL), one batch per property (`fetch_funnel`). The report is given as itself, its name or
        its raw table's Stream (the source protocol, connectors/source.py; `cursor` is unused: GA4 is read by date).

        Every property yields at least one batch, even empty, so the loader clears its window. Properties are
        read `parallel_accounts` at a time, handed on in configured order; with `accounts`, a failing
        property is recorded there and skipped instead of raised (connectors/parallel.py)."""
        report = report_for(report)
        if isinstance(report, Ga4FunnelReport):
            yield from self.fetch_funnel(report, window, property_ids, accounts)
        else:
            yield from self._fetch_report(report, window, property_ids, accounts)

    def _fetch_report(self, report: Ga4Report, window: Window, property_ids: Sequence[str] | None,
                      accounts: AccountLog | None) -> Iterator[Batch]:
        from google.analytics.data_v1beta.types import DateRange, Dimension, Metric, OrderBy, RunReportRequest
        from google.protobuf.json_format import ParseError

        ids = [normalise_property_id(p) for p in property_ids] if property_ids else self.property_ids()
        client = self.client()
        page_size = self.settings.page_size

        def fetch_property(property_id: str) -> Iterator[Batch]:
            offset = 0
            seen: set[tuple[Any, ...]] = set()  # report keys read so far: a page served twice is refused
            quality = ReportQuality()
            while True:
                request = RunReportRequest(
                    property=f"properties/{property_id}",
                    dimensions=[Dimension(name=d) for d, _ in report.dimensions],
                    metrics=[Metric(name=m) for m, _ in report.metrics],
                    date_ranges=[DateRange(start_date=window.start.isoformat(), end_date=window.end.isoformat())],
                    limit=page_size,
                    offset=offset,
                    order_bys=[OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name=d))
                               for d, _ in report.dimensions],
                    return_property_quota=True,
                )

                def call(
                    request: RunReportRequest = request, property_id: str = property_id
                ) -> tuple[pa.Table, int, dict[str, Any], Any]:
                    endpoint = f"runReport {report.name} {window} offset {request.offset}"
                    self._check_quota(property_id, endpoint)
                    try:
                        response = client.run_report(request=request, retry=None,
                                                     timeout=self.settings.timeout_seconds)
                    except ParseError as exc:
                        invalid = invalid_json_field(exc, property_id, endpoint)
                        if invalid is None:
                            raise  # unreadable or truncated JSON: retried
                        raise invalid from None
                    table, row_count, meta = parse_report(response, report, property_id, endpoint)
                    return table, row_count, meta, response

                table, row_count, meta, response = self._retry(
                    call, property_id, f"runReport {report.name} {window} offset {offset}")
                self.remember_quota(property_id, response)
                if meta["data_loss_from_other_row"]:
                    log.warning("GA4 property %s %s %s: rows aggregated into (other)", property_id,
                                report.name, window)
                contract = Contract(SOURCE, property_id, f"runReport {report.name} {window} offset {offset}")
                key_columns = [c for c in report.stream.key if c != "property_id"]
                contract.unique(zip(*(table[c].to_pylist() for c in key_columns), strict=True),
                                "rows." + "+".join(d for d, _ in report.dimensions), seen)
                if table.num_rows == 0 and offset < row_count:
                    raise contract.fail("rowCount", f"the answer promises {row_count} rows but the page at offset "
                                        f"{offset} is empty", row_count)
                quality = quality.merge(meta["quality"])
                yield Batch(report.stream, table, window, {"property_id": property_id})
                offset += table.num_rows
                if table.num_rows == 0 or offset >= row_count:
                    break
            self.record_quality(property_id, report.name, dict.fromkeys(window.dates(), quality))

        yield from fetch_accounts(ids, fetch_property, max_workers=self.settings.parallel_accounts, source=SOURCE,
                                  log=accounts)

    # ---- the cart funnel (runFunnelReport, v1alpha): see connectors/ga4_funnel.py ---------------------------

    def time_zone(self, property_id: str, window: Window, shared: AbstractContextManager[Any] | None = None
                  ) -> str | None:
        """The property's time zone, from a 1-row runReport's metadata (funnel answers do not carry it); the request
        holds one of `shared`'s slots when given (the funnel read's in-flight slots)."""
        from google.analytics.data_v1beta.types import DateRange, Metric, RunReportRequest, RunReportResponse

        request = RunReportRequest(property=f"properties/{property_id}", metrics=[Metric(name="sessions")],
                                   date_ranges=[DateRange(start_date=window.start.isoformat(),
                                                          end_date=window.end.isoformat())], limit=1)
        endpoint = f"runReport time zone {window}"

        def call() -> Any:
            self._check_quota(property_id, endpoint)
            with shared or nullcontext():
                return self.client().run_report(request=request, retry=None, timeout=self.settings.timeout_seconds)

        response = self._retry(call, property_id, endpoint)
        pb = RunReportResponse.pb(response) if isinstance(response, RunReportResponse) else response
        return pb.metadata.time_zone or None

    def _funnel_day(self, report: Ga4FunnelReport, property_id: str, day: date, gate: FlightGate
                    ) -> tuple[tuple[int, int] | None, ReportQuality]:
        """(users at the first step, users at the last) of one day's funnel, or None; and its sampling. Each attempt
        holds one of the property's in-flight slots (`gate`)."""
        from google.protobuf.json_format import ParseError

        from connectors.ga4_funnel import funnel_request, parse_funnel

        endpoint = f"runFunnelReport {report.name} {day}"

        def call() -> tuple[tuple[int, int] | None, ReportQuality, Any]:
            self._check_quota(property_id, endpoint)
            try:
                with gate.slot(endpoint):
                    response = self.alpha_client().run_funnel_report(
                        request=funnel_request(report, property_id, day), retry=None,
                        timeout=self.settings.timeout_seconds)
            except ParseError as exc:
                invalid = invalid_json_field(exc, property_id, endpoint)
                if invalid is None:
                    raise  # unreadable or truncated JSON: retried
                raise invalid from None
            users, quality = parse_funnel(response, report, property_id, endpoint)
            return users, quality, response

        users, quality, response = self._retry(call, property_id, endpoint)
        self.remember_quota(property_id, response)
        return users, quality

    def _funnel_days(self, report: Ga4FunnelReport, property_id: str, days: list[date], shared: threading.Semaphore
                     ) -> dict[date, tuple[tuple[int, int] | None, ReportQuality]]:
        """Every day's funnel of one property, several days in flight at once within GA4's concurrency, the
        server-error budget (FlightGate) and the read's `shared` slots. A failed day fails the property: nothing
        more is sent, the requests in flight end, and the error of the earliest day that failed on its own (not
        aborted) is raised."""
        gate = FlightGate(property_id, self.server_errors, FUNNEL_IN_FLIGHT, shared)
        results: dict[date, tuple[tuple[int, int] | None, ReportQuality]] = {}
        errors: dict[date, BaseException] = {}
        workers = min(FUNNEL_IN_FLIGHT, self.settings.parallel_accounts, len(days)) or 1  # no idle threads
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix=f"ga4-funnel-{property_id}") as pool:
            futures: dict[Future[Any], date] = {pool.submit(self._funnel_day, report, property_id, day, gate): day
                                                for day in days}
            for future in as_completed(futures):
                day = futures[future]
                if future.cancelled():
                    continue
                try:
                    results[day] = future.result()
                except BaseException as exc:  # noqa: BLE001 - raised below, once the other days are stopped
                    errors[day] = exc
                    gate.abort()
                    for pending in futures:
                        pending.cancel()
        if errors:
            own = [d for d, e in errors.items() if not isinstance(e, FunnelAborted)]
            raise errors[min(own or errors)]
        return results

    def fetch_funnel(self, report: Ga4FunnelReport, window: Window, property_ids: Sequence[str] | None = None,
                     accounts: AccountLog | None = None) -> Iterator[Batch]:
        """One funnel request per property and day; one batch per property for the whole window (even empty, so
        the loader clears the window), its rows in date order. A day nobody reached the first step has no row.
        Properties are read `parallel_accounts` at a time; each property's days up to FUNNEL_IN_FLIGHT at once, as
        its server-error budget allows (`_funnel_days`); and the read as a whole never has more than
        `parallel_accounts` requests in flight (the setting's bound on what GA4 is sent at once), its properties
        sharing them."""
        ids = [normalise_property_id(p) for p in property_ids] if property_ids else self.property_ids()
        self.client()
        self.alpha_client()
        shared = threading.BoundedSemaphore(self.settings.parallel_accounts)

        def fetch_property(property_id: str) -> Iterator[Batch]:
            rows: list[dict[str, Any]] = []
            qualities: dict[date, ReportQuality] = {}
            days = list(window.dates())
            answers = self._funnel_days(report, property_id, days, shared)
            for day in days:
                users, qualities[day] = answers[day]
                if users is not None:
                    first, last = report.columns
                    rows.append({"property_id": property_id, "date": day, first: users[0], last: users[1]})
            zone = self.time_zone(property_id, window, shared) if rows else None
            for row in rows:
                row["time_zone"] = zone
            self.record_quality(property_id, report.name, qualities)
            yield Batch(report.stream, pa.Table.from_pylist(rows, report.stream.schema), window,
                        {"property_id": property_id})

        yield from fetch_accounts(ids, fetch_property, max_workers=self.settings.parallel_accounts, source=SOURCE,
                                  log=accounts)


def connect(settings: Settings) -> Ga4Connector:
    """The GA4 connector of these settings (the source protocol, connectors/source.py); nothing is sent yet."""
    return Ga4Connector(settings.ga4)


def probe_properties(connector: Ga4Connector) -> list[Finding]:
    """GA4: a 1-row runReport (yesterday, sessions) per property, the cheapest call that proves read access."""
    from connectors.google_auth import insufficient_scopes, scope_advice

    connector = probing(connector)
    ga4 = connector.settings
    try:
        properties = connector.check()
    except ConfigError as exc:
        return refused(exc)
    from google.analytics.data_v1beta.types import DateRange, Metric, RunReportRequest

    findings: list[Finding] = []
    account = google_account(ga4.credentials_file, ga4.endpoint, SCOPES, "GA4", "MKPI_GA4_ENDPOINT")
    where = f" via {ga4.endpoint}" if ga4.endpoint else ""
    for pid in properties:
        request = RunReportRequest(property=f"properties/{pid}", metrics=[Metric(name="sessions")],
                                   date_ranges=[DateRange(start_date="yesterday", end_date="yesterday")], limit=1)
        try:
            response = connector.client().run_report(request=request, retry=None, timeout=ga4.timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - every failure becomes advice
            status, message = api_error(exc)
            accepted = insufficient_scopes(exc)  # a 403 too, but the token's scopes, not the property's access
            if accepted is not None:
                fix = scope_advice("GA4", SCOPES, accepted)
            elif status == 403:
                fix = (f"grant {account} the Viewer role on property {pid} (GA4 Admin > Property access management)")
            elif status == 404:
                fix = (f"property {pid} does not exist: check MKPI_GA4_PROPERTY_IDS (GA4 Admin > Property details "
                       "shows the numeric id)")
            elif status == 401:
                fix = ("the credentials were refused: point GOOGLE_APPLICATION_CREDENTIALS to a valid "
                       "service-account key")
            elif status == 429:
                fix = "the property's quota is spent for now: retry in an hour"
            else:
                fix = (f"could not reach GA4{where}: check the network and MKPI_GA4_ENDPOINT (unset for Google)"
                       if status is None else "see GA4's message above")
            findings.append(Finding(False, f"property {pid}: runReport refused: {message}", fix))
            continue
        sessions = response.rows[0].metric_values[0].value if response.rows else "0"
        findings.append(Finding(True, f"property {pid}: runReport answered{where} ({sessions} sessions yesterday)"))
    return findings


def kpi_accounts(settings: Settings) -> tuple[str, ...]:
    """The configured properties as KPI rows name them (an id that does not parse is left out: runs refuse it)."""
    return parsed_accounts(settings.ga4.property_ids, normalise_property_id)
