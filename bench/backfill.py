"""A backfill of every report stream of the five sources through the project's connectors, with the
minimum number of requests each platform's API allows for the rows it returned.

Shared by the request benchmark (target 1), the latency benchmark (target 2) and the memory benchmark
(target 5). Connectors are driven directly (no Dagster) so only requests and rows are measured here; the
Dagster path is what `make demo` (target 7) measures. Sources run one after the other unless `parallel`
(one process each).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

from connectors.batches import Batch, Window

# Rows per request each API allows at most (issue #9): GA4 runReport, Search Console searchanalytics.query,
# HubSpot list and search pages; Google Ads streams a whole report and Matomo bulks every method per site.
GA4_PAGE = 250_000
GSC_PAGE = 25_000
HUBSPOT_LIST_PAGE = 100
HUBSPOT_SEARCH_PAGE = 200
# HubSpot's v4 association batch read takes 1,000 ids per request (developers.hubspot.com/changelog/bug-fix-batch-read-
# limit-for-hubspot-associations-api, effective 10 February 2025).
HUBSPOT_BATCH = 1_000
SOURCES = ("ga4", "search_console", "google_ads", "matomo", "hubspot")


def pages(rows: int, page_size: int) -> int:
    """Requests needed to read `rows` at `page_size` per request: at least one, even for no rows."""
    return max(1, math.ceil(rows / page_size))


@dataclass
class SourceRun:
    """What one source's backfill did: requests sent, rows received, the minimum and per-day baselines."""

    source: str
    requests: int = 0
    rows: int = 0
    minimum: int = 0
    per_day: int = 0  # the one-request-per-day-per-stream-per-account pattern most peers use
    accounts: int = 0
    units: dict[str, int] = field(default_factory=dict)  # "stream account" -> rows, for the docs
    by_account: dict[str, int] = field(default_factory=dict)  # account -> minimum requests


def minimum_requests(units: Mapping[tuple[str, str], tuple[int, int]]) -> int:
    """Sum over (stream, account) of the pages its rows need: {(stream, account): (rows, page_size)}."""
    return sum(pages(rows, size) for rows, size in units.values())


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Point load_settings() at the sandbox for the duration (connectors read MKPI_* variables)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def window_ending_yesterday(days: int, today: date) -> Window:
    end = today - timedelta(days=1)
    return Window(end - timedelta(days=days - 1), end)


def _drain(batches: Iterable[Batch], sink: Callable[[Batch], None] | None) -> Iterator[Batch]:
    for batch in batches:
        if sink is not None:
            sink(batch)
        yield batch


def run_ga4(window: Window, sink: Callable[[Batch], None] | None = None) -> SourceRun:
    from connectors.ga4 import CART_FUNNEL, REPORTS, Ga4Connector
    from connectors.settings import load_settings

    connector = Ga4Connector(load_settings().ga4)
    run = SourceRun("ga4", accounts=len(connector.property_ids()))
    units: dict[tuple[str, str], tuple[int, int]] = {}
    for report in REPORTS.values():
        for pid in connector.property_ids():
            units[(report.name, pid)] = (0, GA4_PAGE)
        for batch in _drain(connector.fetch(report, window), sink):
            key = (report.name, str(batch.scope.get("property_id", "")))
            units[key] = (units.get(key, (0, GA4_PAGE))[0] + batch.num_rows, GA4_PAGE)
    run.requests = connector.stats.requests
    run = _finish(run, units, window)
    # The cart funnel is read with one runFunnelReport per property and day (connectors/ga4_funnel.py: a day's closed
    # funnel must not depend on the window it is read in), so its minimum is one request per day, not its rows' pages.
    # A property whose funnel gave no rows has no unit (counted 0 pages above), yet still costs its days' requests.
    for pid in connector.property_ids():
        funnel = units.get((CART_FUNNEL.name, pid))
        extra = max(window.days - (pages(funnel[0], GA4_PAGE) if funnel else 0), 0)
        run.minimum += extra
        run.by_account[pid] = run.by_account.get(pid, 0) + extra
    return run


def run_search_console(window: Window, sink: Callable[[Batch], None] | None = None) -> SourceRun:
    from connectors.search_console import REPORTS, SearchConsoleConnector
    from connectors.settings import load_settings

    settings = load_settings().search_console
    connector = SearchConsoleConnector(settings)
    run = SourceRun("search_console", accounts=len(connector.sites()))
    units: dict[tuple[str, str], tuple[int, int]] = {}
    for report in REPORTS.values():
        for site in connector.sites():
            for search_type in settings.search_types:
                units[(report.name, f"{site} {search_type}")] = (0, GSC_PAGE)
        for batch in _drain(connector.fetch(report, window), sink):
            key = (report.name, f"{batch.scope['site_url']} {batch.scope['search_type']}")
            units[key] = (units[key][0] + batch.num_rows, GSC_PAGE)
    run.requests = connector.stats.requests
    return _finish(run, units, window)


def run_google_ads(window: Window, sink: Callable[[Batch], None] | None = None) -> SourceRun:
    from connectors.google_ads import GoogleAdsConnector
    from connectors.settings import load_settings

    connector = GoogleAdsConnector(load_settings().google_ads)
    run = SourceRun("google_ads", accounts=len(connector.customer_ids()))
    units: dict[tuple[str, str], tuple[int, int]] = {("campaign_daily", c): (0, 1 << 62)
                                                     for c in connector.customer_ids()}
    for batch in _drain(connector.fetch(window), sink):
        key = ("campaign_daily", str(batch.scope.get("customer_id", "")))
        units[key] = (units.get(key, (0, 1 << 62))[0] + batch.num_rows, 1 << 62)  # one stream per customer
    run.requests = connector.stats.requests
    return _finish(run, units, window)


def run_matomo(window: Window, sink: Callable[[Batch], None] | None = None) -> SourceRun:
    from connectors.matomo import MatomoConnector
    from connectors.settings import load_settings

    connector = MatomoConnector(load_settings().matomo)
    run = SourceRun("matomo", accounts=len(connector.site_ids()))
    units: dict[tuple[str, str], tuple[int, int]] = {("bulk", s): (0, 1 << 62) for s in connector.site_ids()}
    streams: set[str] = set()
    for batch in _drain(connector.fetch(window), sink):
        key = ("bulk", str(batch.scope.get("site_id", "")))
        units[key] = (units.get(key, (0, 1 << 62))[0] + batch.num_rows, 1 << 62)  # one bulk request per site
        streams.add(batch.stream.table)
    run.requests = connector.stats.requests
    finished = _finish(run, units, window)
    # per day, peers send one request per method per site per day
    finished.per_day = window.days * max(1, len(streams)) * max(1, run.accounts)
    return finished


def run_hubspot(window: Window, sink: Callable[[Batch], None] | None = None) -> SourceRun:
    """A first (full) load, as `HubSpotConnector.fetch_portal` reads it (its cursor chains at once): list every
    object (live and archived) 100 per page, deal associations 1,000 deals per batch read, owners, deal stages,
    marketing e-mails 100 per page, each object type's property definitions, the portal's details (its time zone
    dates the automated e-mails' day buckets) and one statistics histogram per automated e-mail (the endpoint has no
    paging and documents no span limit: connectors/hubspot.py)."""
    from connectors.hubspot import (
        DEAL_STAGES,
        EMAIL_EVENTS_DAILY,
        EMAIL_STATISTICS,
        OBJECT_PROPERTIES,
        OWNERS,
        HubSpotConnector,
    )
    from connectors.settings import load_settings

    connector = HubSpotConnector(load_settings().hubspot)
    run = SourceRun("hubspot", accounts=1)
    archived: dict[str, dict[bool, int]] = {}  # table -> archived flag -> records
    rows: dict[str, int] = {}
    automated: list[str] = []
    event_rows: dict[str, int] = {}
    for batch in _drain(connector.fetch_portal(window), sink):
        table = batch.stream.table
        rows[table] = rows.get(table, 0) + batch.num_rows
        if "archived" in batch.data.column_names:
            flags = archived.setdefault(table, {False: 0, True: 0})
            for flag in batch.data.column("archived").to_pylist():
                flags[bool(flag)] += 1
        if table == EMAIL_STATISTICS.table:
            automated += [e for e, flag in zip(batch.data.column("email_id").to_pylist(),
                                               batch.data.column("is_automated").to_pylist(), strict=True) if flag]
        if table == EMAIL_EVENTS_DAILY.table:
            email_id = str(batch.scope.get("email_id"))
            event_rows[email_id] = event_rows.get(email_id, 0) + batch.num_rows
    units: dict[tuple[str, str], tuple[int, int]] = {}
    for object_type in OBJECT_PROPERTIES:
        flags = archived.get(f"hubspot.{object_type}", {False: 0, True: 0})
        units[(f"{object_type} properties", "portal")] = (0, 1)
        units[(f"{object_type} list", "portal")] = (flags[False], HUBSPOT_LIST_PAGE)
        units[(f"{object_type} list archived", "portal")] = (flags[True], HUBSPOT_LIST_PAGE)
    deals = archived.get("hubspot.deals", {False: 0})[False]
    for to_type in ("contacts", "companies"):
        units[(f"deal associations {to_type}", "portal")] = (deals, HUBSPOT_BATCH)
    owners = archived.get(OWNERS.table, {False: 0, True: 0})
    units[("owners", "portal")] = (owners[False], HUBSPOT_LIST_PAGE)
    units[("owners archived", "portal")] = (owners[True], HUBSPOT_LIST_PAGE)
    units[("deal pipelines", "portal")] = (rows.get(DEAL_STAGES.table, 0), 1 << 62)
    units[("marketing emails", "portal")] = (rows.get(EMAIL_STATISTICS.table, 0), HUBSPOT_LIST_PAGE)
    for email_id in automated:  # one histogram request per automated e-mail, holding all its days
        units[(f"email histogram {email_id}", "portal")] = (event_rows.get(email_id, 0), 1 << 62)
    units[("account details", "portal")] = (1, 1)  # hubspot.account_details, read on every run
    run.requests = connector.stats.requests
    finished = _finish(run, units, window)
    finished.per_day = finished.minimum  # CRM objects are not read per day: no per-day pattern to compare
    return finished


def _finish(run: SourceRun, units: Mapping[tuple[str, str], tuple[int, int]], window: Window) -> SourceRun:
    run.minimum = minimum_requests(units)
    run.rows = sum(rows for rows, _ in units.values())
    run.units = {f"{stream} {account}": rows for (stream, account), (rows, _) in units.items()}
    for (_, account), (rows, size) in units.items():
        run.by_account[account] = run.by_account.get(account, 0) + pages(rows, size)
    run.per_day = window.days * len(units)
    return run


RUNNERS: dict[str, Callable[..., SourceRun]] = {
    "ga4": run_ga4,
    "search_console": run_search_console,
    "google_ads": run_google_ads,
    "matomo": run_matomo,
    "hubspot": run_hubspot,
}


def _timed_run(name: str, window: Window, sink: Callable[[Batch], None] | None) -> tuple[SourceRun, float]:
    start = time.perf_counter()
    run = RUNNERS[name](window, sink)
    return run, time.perf_counter() - start


def backfill(window: Window, sources: Iterable[str] = SOURCES, *, parallel: bool = False,
             sink: Callable[[Batch], None] | None = None, timings: dict[str, float] | None = None
             ) -> dict[str, SourceRun]:
    """Run each source's backfill over `window`, in sequence or, when `parallel`, one process per source (as
    Dagster's multiprocess executor runs steps: one source's parsing does not hold the others' GIL); each
    source's own wall time, imports included, goes into `timings` when given."""
    names = list(sources)
    times = timings if timings is not None else {}
    if not parallel:
        runs = {name: _timed_run(name, window, sink) for name in names}
    else:
        if sink is not None:
            raise ValueError("a sink cannot cross into the per-source processes")
        with ProcessPoolExecutor(max_workers=len(names), mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {name: pool.submit(_timed_run, name, window, None) for name in names}
            runs = {name: future.result() for name, future in futures.items()}
    times.update({name: seconds for name, (_, seconds) in runs.items()})
    return {name: run for name, (run, _) in runs.items()}
