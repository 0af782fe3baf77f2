"""A static KPI dashboard: one self-contained HTML file built from the KPI tables (MKPI_DASHBOARD_PATH).

Why a static file: the people who read KPIs every morning should not need a BI tool, a server or network access.
The file carries everything: the page (kpi_models/templates/dashboard.html.j2, Jinja2), its script and styles
(kpi_models/static/), the chart library (uPlot, 51 KB, kpi_models/static/vendor/uplot/) and the data, a
gzip-compressed JSON model (kpi_models/dashboard_data.py) the script unpacks with the browser's own
DecompressionStream. So it opens offline from a share or an e-mail attachment, stays well under 1.5 MB, and is
replaced atomically so a reader never opens a half-written page.

What a manager gets (docs/dashboard.md): periods (this month, last month, this quarter, last 7/28/90 days, a
custom range), each card against the previous period and the same period last year, coloured by whether the change
is good for that KPI; a click on a card opens its breakdown by source and channel; drill-downs (channels,
campaigns, Search Console queries and pages, e-mails); one trend chart per family with a daily, 7-day or weekly
grain, provisional days and partial weeks marked; objectives and their statuses; source freshness and status; and
the open alerts of the optional kpi.alerts table (issue #23's hook).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from connectors.settings import DEFAULT_STALE_AFTER_DAYS, Settings
from kpi_models.alerts import configured_accounts
from kpi_models.catalogue import FAMILIES, Catalogue, load_catalogue
from kpi_models.dashboard_data import FAMILY_TITLES, Configured, build_model, families_with_data
from kpi_models.dashboard_periods import PRESET_KEYS
from kpi_models.formatting import format_value, kpi_label, source_label

DASHBOARD_PATH_ENV = "MKPI_DASHBOARD_PATH"
DEFAULT_DASHBOARD_PATH = "data/dashboard.html"
NO_DATA = "no data yet"
MAX_BYTES = 1_500_000  # the page must stay light (issue #25): the tests hold it under this

# The drill-down tables of each family: (key, title, note, columns as (key, label, numeric)).
DRILLS: dict[str, list[dict[str, Any]]] = {
    "web": [{"key": "channels", "title": "Channels",
             "note": "Per source and channel over the period (ratios of sums); GA4 and Matomo never added.",
             "columns": [("source", "source", False), ("channel", "channel", False), ("sessions", "sessions", True),
                         ("share", "share of sessions", True), ("engagement_rate", "engagement rate", True),
                         ("bounce_rate", "bounce rate", True), ("conversion_rate", "conversion rate", True),
                         ("avg_session_duration", "avg session", True)]}],
    "seo": [{"key": "queries", "title": "Top Search Console queries",
             "note": "Top 50 by clicks, web search. Drill-down only: query rows miss anonymised queries, so they "
                     "are never added up into the totals above.",
             "columns": [("item", "query", False), ("site", "site", False), ("clicks", "clicks", True),
                         ("impressions", "impressions", True), ("ctr", "CTR", True), ("position", "position", True)]},
            {"key": "pages", "title": "Top landing pages",
             "note": "Top 50 by clicks, web search. Drill-down only: page rows over-count impressions, so they are "
                     "never added up into the totals above.",
             "columns": [("item", "page", False), ("site", "site", False), ("clicks", "clicks", True),
                         ("impressions", "impressions", True), ("ctr", "CTR", True), ("position", "position", True)]}],
    "paid_search": [{"key": "campaigns", "title": "Campaigns",
                     "note": "Per campaign in its account's own currency (amounts in different currencies are never "
                             "added); CPC, CPA and ROAS are ratios of the period's sums. Click a column to sort.",
                     "columns": [("campaign", "campaign", False), ("account_id", "account", False),
                                 ("cost", "cost", True), ("clicks", "clicks", True),
                                 ("impressions", "impressions", True), ("ctr", "CTR", True), ("cpc", "CPC", True),
                                 ("conversions", "conversions", True), ("cpa", "CPA", True),
                                 ("conversions_value", "conv. value", True), ("roas", "ROAS", True)]}],
    "email": [{"key": "emails", "title": "E-mails",
               "note": "Per marketing e-mail over its days in the period (batch e-mails by publish day, automated "
                       "ones by event day); rates over delivered, bounce rate over sent.",
               "columns": [("email", "e-mail", False), ("first_day", "first day", False), ("sent", "sent", True),
                           ("delivered", "delivered", True), ("open_rate", "open rate", True),
                           ("click_rate", "click rate", True), ("click_to_open_rate", "click-to-open", True),
                           ("bounce_rate", "bounce rate", True), ("unsubscribe_rate", "unsubscribe", True)]}],
}


@dataclass(frozen=True)
class DashboardResult:
    """What `write_dashboard` wrote, for run metadata and logs."""

    path: str
    bytes: int
    families: tuple[str, ...]  # the families that had data (the others say "no data yet")
    generated_at: datetime


def dashboard_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the dashboard is written: MKPI_DASHBOARD_PATH, else data/dashboard.html (beside the databases)."""
    env = os.environ if environ is None else environ
    return Path(env.get(DASHBOARD_PATH_ENV) or DEFAULT_DASHBOARD_PATH)


@cache
def _asset(name: str) -> str:
    """A packaged static file (script, styles, the vendored chart library)."""
    return resources.files("kpi_models").joinpath("static", name).read_text(encoding="utf-8")


@cache
def _environment() -> Environment:
    """Jinja2 over the packaged templates (kpi_models/templates), every value escaped unless marked safe."""
    return Environment(loader=PackageLoader("kpi_models", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def encode_model(model: Mapping[str, Any]) -> str:
    """The model as base64 of gzip of JSON (deterministic: no timestamp in the gzip header)."""
    raw = json.dumps(model, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def decode_model(blob: str) -> dict[str, Any]:
    """The inverse of encode_model (tests read a written page's numbers back with it)."""
    return json.loads(gzip.decompress(base64.b64decode(blob)))


def _script(text: str) -> Markup:
    """Inline script or style text; refuses a closing tag that would end the element early."""
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError("an inlined asset contains a closing </script> or </style> tag")
    return Markup(text)


def _when(value: Any, tz: ZoneInfo) -> str:
    if not value:
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _freshness_rows(model: Mapping[str, Any], generated_at: datetime,
                    stale_after: Mapping[str, int]) -> list[dict[str, Any]]:
    """Per source: last data date, its age in days, last load, rows and tables (hover: each table); flagged stale
    when older than the source's own limit (a source without one is never flagged)."""
    by_source: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in model["freshness"]:
        by_source[str(r["source"])].append(r)
    rows = []
    tz = generated_at.tzinfo if isinstance(generated_at.tzinfo, ZoneInfo) else ZoneInfo("UTC")
    for source in sorted(by_source):
        tables = by_source[source]
        dates = [str(r["last_date"]) for r in tables if r["last_date"]]
        loads = [str(r["last_loaded_at"]) for r in tables if r["last_loaded_at"]]
        last_date = max(dates) if dates else None
        lag = (generated_at.date() - date.fromisoformat(last_date)).days if last_date else None
        limit = stale_after.get(source)
        rows.append({
            "source": source, "last_date": last_date or "–", "age": "–" if lag is None else f"{lag} d",
            "last_load": _when(max(loads, key=lambda v: datetime.fromisoformat(v)) if loads else None, tz),
            "rows": format_value(sum(int(r["row_count"] or 0) for r in tables), "count"), "tables": len(tables),
            "stale": lag is not None and limit is not None and lag > limit,
            "detail": "\n".join(f"{source}.{r['table_name']}: last date {r['last_date'] or '–'}, "
                                f"{format_value(r['row_count'] or 0, 'count')} rows" for r in tables)})
    return rows


def _status_rows(model: Mapping[str, Any], tz: ZoneInfo) -> list[dict[str, Any]]:
    return [{"source": r["source"], "status": r["status"], "failing": r["status"] == "failing",
             "last_success": _when(r["last_success"], tz), "last_failure": _when(r["last_failure"], tz),
             "stale_since": _when(r["stale_since"], tz), "error": r["error"] or ""} for r in model["status"]]


def _families(catalogue: Catalogue, with_data: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for family in FAMILIES:
        definitions = [{"label": kpi_label(k.kpi), "formula": k.formula, "direction": k.direction,
                        "tables": ", ".join(f"{s.source} ({catalogue.relations[s.relation].table or s.relation})"
                                            for s in k.sources)}
                       for k in catalogue.kpis.values() if k.family == family]
        drills = [{"key": d["key"], "title": d["title"], "note": d["note"],
                   "columns": [{"key": c, "label": label, "num": num} for c, label, num in d["columns"]]}
                  for d in DRILLS.get(family, [])]
        out.append({"key": family, "title": FAMILY_TITLES.get(family, family), "has_data": family in with_data,
                    "definitions": definitions, "drills": drills})
    return out


def render_page(model: Mapping[str, Any], catalogue: Catalogue, generated_at: datetime,
                stale_after: Mapping[str, int] | None = None) -> str:
    """The HTML page of a model (the model travels inside it, compressed). `stale_after`: days after which a
    source's data is flagged old (alerts.stale_after_days), over each source's registry default."""
    tz = generated_at.tzinfo if isinstance(generated_at.tzinfo, ZoneInfo) else ZoneInfo("UTC")
    limits = {**DEFAULT_STALE_AFTER_DAYS, **(stale_after or {})}
    with_data = families_with_data(model)
    as_of = model["as_of"]
    context = {
        "as_of": as_of, "as_of_text": date.fromisoformat(as_of).strftime("%d %b %Y") if as_of else "",
        "generated_text": generated_at.strftime("%Y-%m-%d %H:%M %Z"), "no_data": NO_DATA,
        "periods": [p for p in model["periods"] if p["key"] in PRESET_KEYS],
        "default_period": model["default_period"], "range": model["range"] or {},
        "alerts": model["alerts"], "families": _families(catalogue, with_data),
        "freshness": _freshness_rows(model, generated_at, limits), "freshness_origin": model["freshness_origin"],
        "status": _status_rows(model, tz),
        "stale_after": ", ".join(f"{source_label(s)} {days} d" for s, days in limits.items()),
        "model_blob": encode_model(model),
        "uplot_css": _script(_asset("vendor/uplot/uPlot.min.css")), "app_css": _script(_asset("dashboard.css")),
        "uplot_js": _script(_asset("vendor/uplot/uPlot.iife.min.js")), "app_js": _script(_asset("dashboard.js")),
    }
    return _environment().get_template("dashboard.html.j2").render(**context)


def dashboard_model(conn: duckdb.DuckDBPyConnection, *, generated_at: datetime | None = None,
                    catalogue: Catalogue | None = None, configured: Configured | None = None) -> dict[str, Any]:
    """Every number of the page (kpi_models.dashboard_data.build_model), for tests and notebooks."""
    return build_model(conn, catalogue or load_catalogue(), _aware(generated_at), configured)


def _aware(generated_at: datetime | None, timezone: str = "UTC") -> datetime:
    moment = generated_at or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(timezone))


def _render(conn: duckdb.DuckDBPyConnection, generated_at: datetime | None, catalogue: Catalogue | None,
            timezone: str, stale_after: Mapping[str, int] | None, configured: Configured | None
            ) -> tuple[str, tuple[str, ...]]:
    catalogue = catalogue or load_catalogue()
    moment = _aware(generated_at, timezone)
    model = build_model(conn, catalogue, moment, configured)
    return render_page(model, catalogue, moment, stale_after), families_with_data(model)


def render_dashboard(conn: duckdb.DuckDBPyConnection, *, generated_at: datetime | None = None,
                     catalogue: Catalogue | None = None, timezone: str = "UTC",
                     stale_after: Mapping[str, int] | None = None, configured: Configured | None = None) -> str:
    """The whole dashboard as one self-contained HTML page (no network needed to open it).

    `timezone` (the reporting time zone) is the one times are shown in and source ages are counted in;
    `stale_after` the configured days after which a source is flagged old (alerts.stale_after_days); `configured`
    the accounts the pipeline reads (kpi_models.alerts.configured_accounts; None: every account with rows counts)."""
    page, _ = _render(conn, generated_at, catalogue, timezone, stale_after, configured)
    return page


def write_settings_dashboard(conn: duckdb.DuckDBPyConnection, settings: Settings) -> DashboardResult:
    """The page written from the working file as the settings say: the one way the pipeline writes it (the dashboard
    asset, and the alerts digest after it records the day's alerts, so the page's alert list is the digest's). At
    MKPI_DASHBOARD_PATH, else data/dashboard.html; times and source ages in the reporting time zone; a source stale
    after the days the alerts use (alerts.stale_after_days, registry defaults); a level (followers) not missing for
    an account no longer configured (kpi_models.alerts.configured_accounts, the accounts the alerts judge too)."""
    return write_dashboard(conn, dashboard_path(), timezone=settings.reporting_timezone,
                           stale_after=settings.alerts.stale_after_days, configured=configured_accounts(settings))


def write_dashboard(conn: duckdb.DuckDBPyConnection, path: str | os.PathLike[str] | None = None, *,
                    generated_at: datetime | None = None, timezone: str = "UTC",
                    stale_after: Mapping[str, int] | None = None, configured: Configured | None = None
                    ) -> DashboardResult:
    """Render and write the dashboard atomically (temp file + rename: a reader never sees half a page).

    `path` defaults to MKPI_DASHBOARD_PATH (else data/dashboard.html); `configured` as for `render_dashboard`."""
    target = Path(path) if path is not None else dashboard_path()
    moment = _aware(generated_at, timezone)
    page, families = _render(conn, moment, None, timezone, stale_after, configured)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return DashboardResult(str(target), target.stat().st_size, families, moment)
