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
(FunnelBreakdown.limit: "cannot exceed 15"), so a window would have to be cut into 15-day pieces anyway; and, more
to the point, a funnel evaluated over a window follows users across days (add to cart on Monday, purchase on
Wednesday), so a day's figures would depend on the window it was read in (a 3-day re-read and a 90-day backfill
would disagree), and how a date breakdown places such a user is not documented. Over one day the closed funnel
guarantees purchasers <= cart users, and re-reading a day gives the same figures whatever the window: the daily
user counts the catalogue asks for. The price is one request per day (90 for a 90-day backfill, 3 for the daily
re-read), well within GA4's token quota.

Nor several one-day `dateRanges` in one request: "Requests are allowed up to 4 date ranges" (DateRange in
google/analytics/data_v1alpha/types/data.py), and RunFunnelReportRequest.date_ranges says only that "each
response row will contain a zero based date range index", not how a funnel table carries it (no dimension is
documented for it, unlike runReport's `dateRange`): reading an undocumented shape risks a silent wrong number for
at most 4 times fewer requests. So the days are read concurrently instead: up to 8 of a property's days in flight
(GA4 answers 10 concurrent requests per property; two are left to its other reports), never more than the GA4
server-error budget has left, one at a time after a server error until a success (`FlightGate` in
connectors/ga4.py): an outage spends no more of GA4's hourly server errors than a serial read. Rows and quality
records are the same, in the same order, as one day after the other.

A day nobody added to cart has no row (GA4 answers a funnel without rows, as it leaves out all-zero rows;
a zero row would only divide by zero). The property's time zone is not in a funnel answer: one 1-row runReport
per property and window reads it (`metadata.timeZone`), only when the window has a row to write.

`Ga4Connector.fetch(CART_FUNNEL, window)` (connectors/ga4.py) sends these requests, with the GA4 connector's
retries, quota guard, server-error budget and in-flight gate; this module builds the request and reads the answer.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.ga4 import CART_FUNNEL, SOURCE, Ga4FunnelReport, ReportQuality, read_quality
from connectors.validation import Contract

REPORT = CART_FUNNEL.name


def funnel_request(report: Ga4FunnelReport, property_id: str, day: date) -> Any:
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
        funnel_event_filter=FunnelEventFilter(event_name=event))) for name, event in report.steps]
    return RunFunnelReportRequest(
        property=f"properties/{property_id}",
        date_ranges=[DateRange(start_date=day.isoformat(), end_date=day.isoformat())],
        funnel=Funnel(is_open_funnel=False, steps=steps),
        funnel_visualization_type=RunFunnelReportRequest.FunnelVisualizationType.STANDARD_FUNNEL,
        return_property_quota=True,
    )


def parse_funnel(response: Any, report: Ga4FunnelReport, property_id: str, endpoint: str
                 ) -> tuple[tuple[int, int] | None, ReportQuality]:
    """(users at the first step, users at the last) of one day's answer, or None when nobody reached the first
    step; and the answer's sampling.

    Refuses (InvalidResponse, naming the field) a dimension other than funnelStepName, a step nobody asked
    for or seen twice, a non-count activeUsers, a later step without the first, and more users at the last
    step than at the first (impossible in a closed funnel). A missing later step is 0 users: GA4 leaves out
    all-zero rows."""
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
    names = report.step_names
    users: dict[str, int] = {}
    for number, row in enumerate(table.rows):
        where = f"funnelTable.rows[{number}]"
        if len(row.dimension_values) != 1 or len(row.metric_values) <= index:
            raise contract.fail(where, f"{len(row.dimension_values)} dimension and {len(row.metric_values)} "
                                f"metric values for funnelStepName and {len(metrics)} metrics")
        step = row.dimension_values[0].value
        if step not in names:
            raise contract.fail(where + ".funnelStepName", f"a step nobody asked for (expected {names})", step)
        if step in users:
            raise contract.fail(where + ".funnelStepName", "the same step twice", step)
        users[step] = contract.count(row.metric_values[index].value, where + ".activeUsers") or 0
    first = users.get(names[0])
    if first is None:
        raise contract.fail("funnelTable.rows", f"{', '.join(users)} without {names[0]}: impossible in a closed "
                            "funnel")
    previous = first
    for name in names[1:]:
        at_step = users.get(name, 0)
        if at_step > previous:
            raise contract.fail("funnelTable.rows", f"{at_step} users at {name} but only {previous} at the step "
                                "before: impossible in a closed funnel")
        previous = at_step
    return ((first, previous) if first else None), quality
