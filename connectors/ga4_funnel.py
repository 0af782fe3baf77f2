"""GA4 cart funnel: the closed funnel add_to_cart -> purchase per day, from `runFunnelReport` (Data API v1alpha).

Business purpose: GA4's cart abandonment rate (KPI catalogue, e-commerce) is (users at add_to_cart - users who
then purchased) / users at add_to_cart. Only the funnel report knows who purchased *after* adding to cart;
`addToCarts` and `ecommercePurchases` from runReport count events, not users, so their difference is not it.

The request, one per property and day (shape: google/analytics/data_v1alpha/types in google-analytics-data,
and https://developers.google.com/analytics/devguides/reporting/data/v1/funnels):

    POST /v1alpha/properties/{id}:runFunnelReport
    {"dateRanges": [{"startDate": "D", "endDate": "D"}],
     "funnel": {"steps": [
       {"name": "add_to_cart", "filterExpression": {"funnelEventFilter": {"eventName": "add_to_cart"}}},
       {"name": "purchase", "filterExpression": {"funnelEventFilter": {"eventName": "purchase"}}}]},
     "funnelVisualizationType": 1, "returnPropertyQuota": true}       (1 = STANDARD_FUNNEL; the client sends
                                                                        enums as numbers: $alt=json;enum-encoding=int)

(`isOpenFunnel` false, the default, makes it closed: users must enter at add_to_cart.) The answer's
`funnelTable` has one row per step, `funnelStepName` "1. add_to_cart" / "2. purchase", and `activeUsers` is read
from each.

Why one request per day rather than a `date` breakdown over a window: a breakdown returns at most 15 values
(FunnelBreakdown.limit), and, more to the point, a funnel evaluated over a window lets a user add to cart on one
day and purchase on another, and dates each step by its own event, so a day's purchasers could exceed its cart
users and a day's figures would depend on which window it was read in (a 3-day re-read and a 90-day backfill
would disagree). Over one day the closed funnel guarantees purchasers <= cart users, and re-reading a day gives
the same definition whatever the window. The price is one request per day (90 for a 90-day backfill, 3 for the
daily re-read), well within GA4's token quota.

A day nobody added to cart has no row (GA4 answers a funnel without rows, as it leaves out all-zero rows;
a zero row would only divide by zero). The property's time zone is not in a funnel answer: one 1-row runReport
per property and window reads it (`metadata.timeZone`), only when the window has a row to write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa

from connectors.batches import Batch, Window
from connectors.ga4 import (
    CART_FUNNEL,
    SOURCE,
    Ga4Connector,
    ReportQuality,
    build_client,
    invalid_json_field,
    normalise_property_id,
    read_quality,
)
from connectors.http import call_with_retry
from connectors.parallel import AccountLog, fetch_accounts
from connectors.validation import Contract

REPORT = CART_FUNNEL.name
STEP_NAMES = CART_FUNNEL.step_names


def funnel_request(property_id: str, day: date) -> Any:
    """The RunFunnelReportRequest of one property and day (see the module docstring)."""
    from google.analytics.data_v1alpha.types import (
        DateRange,
        Funnel,
        FunnelEventFilter,
        FunnelFilterExpression,
        FunnelStep,
        RunFunnelReportRequest,
    )

    steps = [FunnelStep(name=name, filter_expression=FunnelFilterExpression(
        funnel_event_filter=FunnelEventFilter(event_name=event))) for name, event in CART_FUNNEL.steps]
    return RunFunnelReportRequest(
        property=f"properties/{property_id}",
        date_ranges=[DateRange(start_date=day.isoformat(), end_date=day.isoformat())],
        funnel=Funnel(is_open_funnel=False, steps=steps),
        funnel_visualization_type=RunFunnelReportRequest.FunnelVisualizationType.STANDARD_FUNNEL,
        return_property_quota=True,
    )


def parse_funnel(response: Any, property_id: str, endpoint: str) -> tuple[tuple[int, int] | None, ReportQuality]:
    """(cart users, purchased after cart) of one day's answer, or None when nobody reached add_to_cart; and
    the answer's sampling.

    Refuses (InvalidResponse, naming the field) a dimension other than funnelStepName, a step nobody asked
    for or seen twice, a non-count activeUsers, and purchasers above cart users (impossible in a closed
    funnel). A missing purchase row is 0 purchasers: GA4 leaves out all-zero rows."""
    from google.analytics.data_v1alpha.types import MetricType, RunFunnelReportResponse

    contract = Contract(SOURCE, property_id, endpoint)
    pb = RunFunnelReportResponse.pb(response) if isinstance(response, RunFunnelReportResponse) else response
    table = pb.funnel_table
    quality = read_quality(contract, table.metadata, full=False)
    if not table.rows:
        return None, quality
    dims = [h.name for h in table.dimension_headers]
    if dims != ["funnelStepName"]:
        raise contract.fail("funnelTable.dimensionHeaders", "expected funnelStepName alone (no breakdown was "
                            "asked for)", dims)
    metrics = [h.name for h in table.metric_headers]
    if "activeUsers" not in metrics:
        raise contract.fail("funnelTable.metricHeaders", "activeUsers missing", metrics)
    index = metrics.index("activeUsers")
    if table.metric_headers[index].type_ not in (MetricType.TYPE_INTEGER, MetricType.METRIC_TYPE_UNSPECIFIED):
        raise contract.fail("funnelTable.metricHeaders.activeUsers.type", "not an integer count",
                            MetricType(table.metric_headers[index].type_).name)
    users: dict[str, int] = {}
    for number, row in enumerate(table.rows):
        where = f"funnelTable.rows[{number}]"
        if len(row.dimension_values) != 1 or len(row.metric_values) <= index:
            raise contract.fail(where, f"{len(row.dimension_values)} dimension and {len(row.metric_values)} "
                                f"metric values for funnelStepName and {len(metrics)} metrics")
        step = row.dimension_values[0].value
        if step not in STEP_NAMES:
            raise contract.fail(where + ".funnelStepName", f"a step nobody asked for (expected {STEP_NAMES})", step)
        if step in users:
            raise contract.fail(where + ".funnelStepName", "the same step twice", step)
        users[step] = contract.count(row.metric_values[index].value, where + ".activeUsers") or 0
    cart, bought = users.get(STEP_NAMES[0]), users.get(STEP_NAMES[1], 0)
    if cart is None:
        raise contract.fail("funnelTable.rows", f"{STEP_NAMES[1]} without {STEP_NAMES[0]}: impossible in a closed "
                            "funnel")
    if bought > cart:
        raise contract.fail("funnelTable.rows", f"{bought} users purchased after add_to_cart but only {cart} reached "
                            "add_to_cart: impossible in a closed funnel")
    return ((cart, bought) if cart else None), quality


@dataclass
class Ga4FunnelConnector(Ga4Connector):
    """Reads the daily cart funnel of every configured property into typed batches (CART_FUNNEL's table).

    Shares the GA4 connector's settings, retries, quota guard and server-error budget; its answers' sampling
    goes to `quality_batches(REPORT, window)` like the runReport reports'."""

    _alpha: Any = field(default=None, repr=False)

    def alpha_client(self) -> Any:
        if self._alpha is None:
            self._alpha = build_client(self.settings, alpha=True)
        return self._alpha

    def _retry(self, call: Any, property_id: str, what: str) -> Any:
        kwargs: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
        return call_with_retry(call, classify=self._classify(property_id), source=SOURCE, account=property_id,
                               what=what, policy=self.policy, stats=self.stats, **kwargs)

    def time_zone(self, property_id: str, window: Window) -> str | None:
        """The property's time zone, from a 1-row runReport's metadata (funnel answers do not carry it)."""
        from google.analytics.data_v1beta.types import DateRange, Metric, RunReportRequest, RunReportResponse

        request = RunReportRequest(property=f"properties/{property_id}", metrics=[Metric(name="sessions")],
                                   date_ranges=[DateRange(start_date=window.start.isoformat(),
                                                          end_date=window.end.isoformat())], limit=1)
        endpoint = f"runReport time zone {window}"

        def call() -> Any:
            self._check_quota(property_id, endpoint)
            return self.client().run_report(request=request, retry=None, timeout=self.settings.timeout_seconds)

        response = self._retry(call, property_id, endpoint)
        pb = RunReportResponse.pb(response) if isinstance(response, RunReportResponse) else response
        return pb.metadata.time_zone or None

    def _funnel_day(self, property_id: str, day: date) -> tuple[tuple[int, int] | None, ReportQuality]:
        from google.protobuf.json_format import ParseError

        endpoint = f"runFunnelReport {REPORT} {day}"

        def call() -> tuple[tuple[int, int] | None, ReportQuality, Any]:
            self._check_quota(property_id, endpoint)
            try:
                response = self.alpha_client().run_funnel_report(request=funnel_request(property_id, day),
                                                                 retry=None, timeout=self.settings.timeout_seconds)
            except ParseError as exc:
                invalid = invalid_json_field(exc, property_id, endpoint)
                if invalid is None:
                    raise  # unreadable or truncated JSON: retried
                raise invalid from None
            users, quality = parse_funnel(response, property_id, endpoint)
            return users, quality, response

        users, quality, response = self._retry(call, property_id, endpoint)
        self.remember_quota(property_id, response)
        return users, quality

    def fetch_cart_funnel(self, window: Window, property_ids: Sequence[str] | None = None,
                          accounts: AccountLog | None = None) -> Iterator[Batch]:
        """Yield one batch per property (every day of the window, even empty, so the loader clears the window).

        Properties are read `parallel_accounts` at a time, each property's days one after the other; with
        `accounts`, a failing property is recorded there and skipped (connectors/parallel.py)."""
        ids = [normalise_property_id(p) for p in property_ids] if property_ids else self.property_ids()
        self.alpha_client()

        def fetch_property(property_id: str) -> Iterator[Batch]:
            rows: list[dict[str, Any]] = []
            qualities: dict[date, ReportQuality] = {}
            for day in window.dates():
                users, qualities[day] = self._funnel_day(property_id, day)
                if users is not None:
                    rows.append({"property_id": property_id, "date": day, "cart_users": users[0],
                                 "purchased_after_cart_users": users[1]})
            zone = self.time_zone(property_id, window) if rows else None
            for row in rows:
                row["time_zone"] = zone
            self.record_quality(property_id, REPORT, qualities)
            yield Batch(CART_FUNNEL.stream, pa.Table.from_pylist(rows, CART_FUNNEL.stream.schema), window,
                        {"property_id": property_id})

        yield from fetch_accounts(ids, fetch_property, max_workers=self.settings.parallel_accounts, source=SOURCE,
                                  log=accounts)
