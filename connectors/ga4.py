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
  property's hourly server-error quota (10).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.batches import Batch, Stream, Window
from connectors.errors import ConfigError, InvalidResponse, RetriesExhausted
from connectors.google_auth import checked_endpoint, resolve_credentials
from connectors.http import Fatal, RequestStats, Retry, RetryPolicy, Verdict, call_with_retry, parse_retry_after
from connectors.parallel import AccountLog, fetch_accounts
from connectors.settings import GA4Settings
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

    def reset(self) -> None:
        with self._lock:
            self._errors.clear()


SERVER_ERRORS = ServerErrorBudget()
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


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype in fields])


def _derive_traffic(table: pa.Table) -> pa.Table:
    """Converting sessions = sessions x sessionKeyEventRate (GA4 gives only the rate): an integer."""
    converting = pc.round(pc.multiply(pc.cast(table["sessions"], pa.float64()), table["session_key_event_rate"]))
    return table.append_column("converting_sessions", pc.cast(converting, pa.int64()))


_COMMON_HEAD = (("property_id", pa.string()), ("date", pa.date32()))
_COMMON_TAIL = (("is_other", pa.bool_()), ("time_zone", pa.string()), ("currency_code", pa.string()))

TRAFFIC = Ga4Report(
    name="traffic_by_channel",
    dimensions=(("date", "date"), ("sessionDefaultChannelGroup", "session_default_channel_group")),
    metrics=(
        ("sessions", "sessions"),
        ("engagedSessions", "engaged_sessions"),
        ("userEngagementDuration", "user_engagement_duration"),
        ("sessionKeyEventRate", "session_key_event_rate"),
        ("keyEvents", "key_events"),
        ("newUsers", "new_users"),
    ),
    stream=Stream(
        table="ga4.traffic_by_channel",
        schema=_schema(
            *_COMMON_HEAD,
            ("session_default_channel_group", pa.string()),
            ("sessions", pa.int64()),
            ("engaged_sessions", pa.int64()),
            ("user_engagement_duration", pa.float64()),
            ("session_key_event_rate", pa.float64()),
            ("key_events", pa.float64()),
            ("new_users", pa.int64()),
            *_COMMON_TAIL,
            ("converting_sessions", pa.int64()),
        ),
        key=("property_id", "date", "session_default_channel_group"),
        scope_column="property_id",
    ),
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
    stream=Stream(
        table="ga4.ecommerce_by_date",
        schema=_schema(
            *_COMMON_HEAD,
            ("ecommerce_purchases", pa.int64()),
            ("purchase_revenue", pa.float64()),
            ("add_to_carts", pa.int64()),
            ("checkouts", pa.int64()),
            *_COMMON_TAIL,
        ),
        key=("property_id", "date"),
        scope_column="property_id",
    ),
)

REPORTS: dict[str, Ga4Report] = {r.name: r for r in (TRAFFIC, ECOMMERCE)}


def normalise_property_id(raw: str) -> str:
    """Accept `123456789` or `properties/123456789`; refuse anything else before any request."""
    value = raw.strip().removeprefix("properties/")
    if not value.isdigit():
        raise ConfigError(
            f"GA4 property id {raw!r} is not numeric: set MKPI_GA4_PROPERTY_IDS to numeric ids "
            "such as 123456789 (Admin > Property details in GA4)", key="ga4.property_ids"
        )
    return value


def build_client(settings: GA4Settings) -> Any:
    """The official BetaAnalyticsDataClient; REST transport against an overridden endpoint."""
    from google.analytics.data_v1beta import BetaAnalyticsDataClient
    from google.api_core.client_options import ClientOptions

    credentials = resolve_credentials(settings.credentials_file, settings.endpoint, SCOPES, "GA4",
                                      "MKPI_GA4_ENDPOINT")
    if not settings.endpoint:
        return BetaAnalyticsDataClient(credentials=credentials)
    endpoint = checked_endpoint(settings.endpoint, credentials, "MKPI_GA4_ENDPOINT")
    return BetaAnalyticsDataClient(
        credentials=credentials, transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
    )


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
    }
    columns["is_other"] = is_other
    columns["time_zone"] = pa.array([metadata["time_zone"]] * n, pa.string())
    columns["currency_code"] = pa.array([metadata["currency_code"]] * n, pa.string())
    table = pa.table(columns)
    if report.derive is not None:
        table = report.derive(table)
    return table, int(pb.row_count), metadata


def _invalid_json_field(exc: Exception, property_id: str, endpoint: str) -> InvalidResponse | None:
    """A JSON body protobuf could read but not map ("Failed to parse rowCount field: ...") is a wrong type in
    a field, not a transport failure: name the field and do not retry. Unreadable JSON returns None."""
    import re

    found = re.search(r"Failed to parse (\w+) field", str(exc))
    if found is None:
        return None
    detail = str(exc).split(": ", 1)[-1][:120]
    return InvalidResponse(SOURCE, property_id, endpoint, found.group(1), f"wrong type ({detail})")


def _quota_summary(response: Any) -> dict[str, int]:
    from google.analytics.data_v1beta.types import RunReportResponse

    pb = RunReportResponse.pb(response) if isinstance(response, RunReportResponse) else response
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

    def check(self) -> list[str]:
        """Validate configuration and credentials without sending a request."""
        ids = self.property_ids()
        self.client()
        return ids

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
                used = self.server_errors.spend(property_id)
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

    def fetch(self, report: Ga4Report | str, window: Window, property_ids: Sequence[str] | None = None,
              accounts: AccountLog | None = None) -> Iterator[Batch]:
        """Yield one batch per page per property for the report over the window (inclusive dates).

        Every property yields at least one batch, even empty, so the loader clears its window. Properties are
        read `parallel_accounts` at a time, handed on in configured order; with `accounts`, a failing
        property is recorded there and skipped instead of raised (connectors/parallel.py)."""
        from google.analytics.data_v1beta.types import DateRange, Dimension, Metric, OrderBy, RunReportRequest
        from google.protobuf.json_format import ParseError

        if isinstance(report, str):
            report = REPORTS[report]
        ids = [normalise_property_id(p) for p in property_ids] if property_ids else self.property_ids()
        client = self.client()
        page_size = self.settings.page_size

        def fetch_property(property_id: str) -> Iterator[Batch]:
            offset = 0
            seen: set[tuple[Any, ...]] = set()  # report keys read so far: a page served twice is refused
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
                        invalid = _invalid_json_field(exc, property_id, endpoint)
                        if invalid is None:
                            raise  # unreadable or truncated JSON: retried
                        raise invalid from None
                    table, row_count, meta = parse_report(response, report, property_id, endpoint)
                    return table, row_count, meta, response

                kwargs: dict[str, Any] = {}
                if self.sleep is not None:
                    kwargs["sleep"] = self.sleep
                table, row_count, meta, response = call_with_retry(
                    call,
                    classify=self._classify(property_id),
                    source=SOURCE,
                    account=property_id,
                    what=f"runReport {report.name} {window} offset {offset}",
                    policy=self.policy,
                    stats=self.stats,
                    **kwargs,
                )
                quota = _quota_summary(response)
                if quota:
                    self.quota[property_id] = quota
                    self._quota_at[property_id] = time.monotonic()
                    log.info("GA4 property %s quota: %s", property_id, quota)
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
                yield Batch(report.stream, table, window, {"property_id": property_id})
                offset += table.num_rows
                if table.num_rows == 0 or offset >= row_count:
                    break

        yield from fetch_accounts(ids, fetch_property, max_workers=self.settings.parallel_accounts, source=SOURCE,
                                  log=accounts)
