"""The crash battery's pipeline run, and the child process that SIGKILLs itself at a named point (issue #8).

Why a child process: a crash is not an exception. `kill -9` runs no `finally`, no ROLLBACK, no atexit, so
only a real process killed for real shows what the DuckDB file, the committed cursors and the analysts'
copy look like afterwards. Crash points are injected here, in the child, by wrapping what the pipeline
calls (the shared retry helper every request goes through, the DuckDB connection every statement goes
through, `os.replace` of the publish step); production code carries no test hook.

`run_pipeline` is what the Dagster assets do, in the same order, without Dagster (whose start-up would
cost seconds per child): every report source for one window, each in its own load transaction, HubSpot
incrementally from its committed cursors, the KPI rebuild from `kpi_models/`, then the analysts' copy.
The parent calls it in-process for the uninterrupted run and for every re-run after a kill.

Run as ``python -m tests.crash_child POINT [--with-hubspot]`` with the sandbox's MKPI_* variables (and MKPI_DUCKDB_PATH,
MKPI_ANALYST_DB) in the environment; exit status 3 means the crash point was never reached.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from connectors import facebook, ga4, google_ads, http, hubspot, instagram, linkedin, matomo, publish, search_console
from connectors.batches import Window
from connectors.settings import Settings, load_settings
from connectors.warehouse import connect, load_batches, read_cursor
from kpi_models.context import KpiContext
from kpi_models.layer import rebuild_all
from kpi_models.objectives import build_kpi_vs_objective

WINDOW = Window(date(2026, 3, 20), date(2026, 3, 27))
TODAY = date(2026, 3, 31)
NOT_REACHED = 3  # exit status of a child whose crash point never came
HUBSPOT_OBJECTS = ("contacts", "companies", "feedback_submissions")


def pipeline_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The environment's settings, with small pages (so report sources paginate: mid-page crash points
    exist) and no client-side throttling: the parent lifts the sandbox portal's rate limits, because rate
    limiting is the chaos battery's subject and a throttled full HubSpot list takes ~25 s per run."""
    settings = load_settings(environ=environ)
    return dataclasses.replace(
        settings,
        ga4=dataclasses.replace(settings.ga4, page_size=40),
        search_console=dataclasses.replace(settings.search_console, row_limit=60, queries_per_minute=100_000),
        matomo=dataclasses.replace(settings.matomo, requests_per_second=1_000),
        hubspot=dataclasses.replace(settings.hubspot, requests_per_10s=1_000_000, search_per_second=100_000),
    )


def run_pipeline(conn: Any, settings: Settings, window: Window = WINDOW, *, with_hubspot: bool = True) -> None:
    """Every source for `window`, then KPIs, then the analysts' copy: one transaction per asset, as in Dagster.
    Without HubSpot (the short battery) its tables stay empty: a cold full list costs ~15 s."""
    ga4_connector = ga4.Ga4Connector(settings.ga4)
    for report in (ga4.TRAFFIC, ga4.ECOMMERCE):
        load_batches(conn, ga4_connector.fetch(report, window))
    gsc = search_console.SearchConsoleConnector(settings.search_console)
    for report in search_console.REPORTS.values():
        load_batches(conn, gsc.fetch(report, window))
    load_batches(conn, matomo.MatomoConnector(settings.matomo).fetch(window))
    load_batches(conn, google_ads.GoogleAdsConnector(settings.google_ads).fetch(window))
    for social in (facebook, instagram):  # Meta's Graph API: an account's tables from one read
        load_batches(conn, social.connect(settings).fetch_all(window))
    linkedin_connector = linkedin.connect(settings)
    for stream in linkedin.STREAMS:  # one asset per table, as the LinkedIn component runs them
        load_batches(conn, linkedin_connector.fetch(stream, window))
    if with_hubspot:
        run_hubspot(conn, settings)
    run_kpis(conn, settings, window)
    publish.publish_analyst_copy(conn, settings.analyst_db, run_id="crash-battery")


def run_hubspot(conn: Any, settings: Settings) -> None:
    """HubSpot as its asset (`hubspot_portal`) reads it: every table through `fetch_portal` (each object type from its
    committed cursor, a full list without one; the e-mails already loaded), in one load with the cursors."""
    connector = hubspot.HubSpotConnector(settings.hubspot)
    today = Window(TODAY, TODAY)
    cursors = {object_type: read_cursor(conn, hubspot.SOURCE, object_type, "portal")
               for object_type in hubspot.OBJECT_PROPERTIES}
    exists = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'hubspot' "
                          "AND table_name = 'email_statistics'").fetchone()
    known = {r[0] for r in conn.execute("SELECT email_id FROM hubspot.email_statistics").fetchall()} if (
        exists and exists[0]) else set()
    load_batches(conn, connector.fetch_portal(today, cursors, known_email_ids=known))


def run_kpis(conn: Any, settings: Settings, window: Window) -> None:
    """The KPI assets: per-channel tables, kpi_daily and its roll-up views, objectives."""
    rebuild_all(conn, window, KpiContext.from_settings(settings))
    build_kpi_vs_objective(conn, settings.objectives_path, tz=settings.reporting_timezone,
                           min_denominators=settings.min_denominators)


# ---- crash points ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrashPoint:
    """Where to die: the `nth` request of a source whose description matches `match` (kind "http": killed
    with the response in hand, before the connector reads it), or the `nth` SQL statement matching `match`
    (kind "sql-before" / "sql-after": just before or just after DuckDB runs it), the `nth` batch handed to
    DuckDB (kind "page": the loader hands each batch, or each group of small pages, to `from_arrow`), or
    `os.replace` of the analysts' copy (kind "replace-before" / "replace-after")."""

    name: str
    kind: str
    match: str = ""
    nth: int = 1
    source: str = ""
    warm: bool = True  # start from the database a full run left (HubSpot then reads incrementally), else empty
    after: str = ""  # for SQL points: count matches only once a statement matching this has run
    covers: str = ""  # the category, for the report
    hubspot: bool = False  # the point needs HubSpot in the pipeline (the short battery leaves it out)


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class SqlTap:
    """A DuckDB connection that kills the process around the nth statement matching a pattern."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, point: CrashPoint) -> None:
        self._conn = conn
        self._point = point
        self._pattern = re.compile(point.match, re.IGNORECASE | re.DOTALL)
        self._after = re.compile(point.after, re.IGNORECASE | re.DOTALL) if point.after else None
        self._seen = 0

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        hit = self._point.kind.startswith("sql") and self._after is None and bool(self._pattern.search(query))
        if self._after is not None and self._after.search(query):
            self._after = None  # armed from the next statement on
        if hit:
            self._seen += 1
        if hit and self._seen == self._point.nth and self._point.kind == "sql-before":
            die()
        result = self._conn.execute(query, *args, **kwargs)
        if hit and self._seen == self._point.nth and self._point.kind == "sql-after":
            die()
        return result

    def from_arrow(self, data: Any) -> Any:
        if self._point.kind == "page":
            self._seen += 1
            if self._seen == self._point.nth:
                die()  # the batches before this one are written in the open transaction, uncommitted
        return self._conn.from_arrow(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def arm_http(point: CrashPoint) -> None:
    """Wrap the shared retry helper (every request of every connector goes through it) in each module."""
    original = http.call_with_retry
    pattern = re.compile(point.match, re.IGNORECASE)
    seen = [0]

    def wrapped(fn: Callable[[], Any], **kwargs: Any) -> Any:
        if kwargs.get("source") != point.source or not pattern.search(str(kwargs.get("what", ""))):
            return original(fn, **kwargs)
        seen[0] += 1
        if seen[0] != point.nth:
            return original(fn, **kwargs)

        def then_die() -> Any:
            fn()  # the request went out and its response came back; nothing of it was used
            die()

        return original(then_die, **kwargs)

    for module in (http, ga4, search_console, hubspot, google_ads, linkedin):
        if hasattr(module, "call_with_retry"):
            module.call_with_retry = wrapped  # type: ignore[attr-defined]


def arm_replace(point: CrashPoint) -> None:
    """Die around the atomic rename of the analysts' copy (os is this child's own module object)."""
    original = os.replace

    def wrapped(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if point.kind == "replace-before":
            die()
        original(src, dst, *args, **kwargs)
        die()

    publish.os.replace = wrapped  # type: ignore[assignment]


MID_REQUEST, MID_PAGE, IN_LOAD, COMMIT_CHECKPOINT, CURSOR, KPI, PUBLISH = (
    "mid-request", "mid-page", "inside the load transaction", "between commit and checkpoint",
    "HubSpot cursor write", "KPI rebuild", "analysts' copy publish")
_CURSOR = r"^INSERT OR REPLACE INTO _mkpi\.cursors"

POINTS: dict[str, CrashPoint] = {p.name: p for p in (
    CrashPoint("ga4-request", "http", "runReport ecommerce_by_date", 1, "ga4", covers=MID_REQUEST),
    CrashPoint("google-ads-stream", "http", "search_stream", 2, "google_ads", covers=MID_REQUEST),
    CrashPoint("hubspot-search", "http", "/search", 1, "hubspot", covers=MID_REQUEST, hubspot=True),
    CrashPoint("linkedin-follower-statistics", "http", "organizationalEntityFollowerStatistics", 2, "linkedin",
               covers=MID_REQUEST),
    CrashPoint("ga4-page-2", "http", "runReport traffic_by_channel", 2, "ga4", covers=MID_PAGE),
    CrashPoint("gsc-page-2", "http", "searchAnalytics.query pages", 2, "search_console", covers=MID_PAGE),
    CrashPoint("hubspot-list-page-60", "http", "objects/contacts archived=False", 60, "hubspot", warm=False,
               covers=MID_PAGE, hubspot=True),
    CrashPoint("second-page-written", "page", "", 2, warm=False, covers=IN_LOAD),
    CrashPoint("gsc-window-deleted", "sql-after", r'^DELETE FROM "search_console"\.', 1, covers=IN_LOAD),
    CrashPoint("matomo-before-commit", "sql-before", r"^COMMIT", 1, after=r'^DELETE FROM "matomo"\.', covers=IN_LOAD),
    CrashPoint("hubspot-upsert", "sql-after", r'^DELETE FROM "hubspot"\."contacts" AS t', 1, covers=IN_LOAD,
               hubspot=True),
    CrashPoint("ga4-commit-checkpoint", "sql-before", r"^CHECKPOINT", 1, warm=False, covers=COMMIT_CHECKPOINT),
    CrashPoint("cursor-commit-checkpoint", "sql-before", r"^CHECKPOINT", 1, warm=False, after=_CURSOR,
               covers=COMMIT_CHECKPOINT, hubspot=True),
    CrashPoint("kpi-commit-checkpoint", "sql-before", r"^CHECKPOINT", 1, after=r'^INSERT INTO "kpi"\."kpi_daily"',
               covers=COMMIT_CHECKPOINT),
    CrashPoint("cursor-before-write", "sql-before", _CURSOR, 1, warm=False, covers=CURSOR, hubspot=True),
    CrashPoint("cursor-written", "sql-after", _CURSOR, 2, covers=CURSOR, hubspot=True),
    CrashPoint("kpi-web-daily", "sql-after", r'^INSERT INTO "kpi"\."web_daily"', 1, covers=KPI),
    CrashPoint("kpi-crm-monthly", "sql-before", r'^CREATE OR REPLACE TABLE "kpi"\."crm_monthly"', 1, covers=KPI),
    CrashPoint("publish-mid-copy", "sql-after", r"^CREATE TABLE __mkpi_publish\.", 5, covers=PUBLISH),
    CrashPoint("publish-before-rename", "replace-before", covers=PUBLISH),
    CrashPoint("publish-after-rename", "replace-after", covers=PUBLISH),
)}


def run_until_killed(point: CrashPoint, with_hubspot: bool) -> int:
    settings = pipeline_settings()
    if point.kind == "http":
        arm_http(point)
    if point.kind.startswith("replace"):
        arm_replace(point)
    with connect(settings.duckdb_path) as real:
        conn: Any = SqlTap(real, point) if point.kind.startswith("sql") or point.kind == "page" else real
        run_pipeline(conn, settings, with_hubspot=with_hubspot)
    return NOT_REACHED


def main(argv: list[str]) -> int:
    return run_until_killed(POINTS[argv[0]], with_hubspot=argv[1:] == ["--with-hubspot"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
