"""A static KPI dashboard: one self-contained HTML file built from the KPI tables (MKPI_DASHBOARD_PATH).

Why a static file: the people who read KPIs every morning should not need a BI tool, a server or network
access. The file inlines plotly.js once (no CDN, no web fonts), so it opens offline from a share or an e-mail
attachment, and it is replaced atomically so a reader never opens a half-written page.

What it reads, and why from there:
  - kpi.kpi_vs_objective: the current period's actual / objective / attainment / status per objective, as the
    objectives module judged them (pro-rating, inverted directions and minimum denominators are not redone).
  - kpi.kpi_daily (last 90 days) and kpi.kpi_monthly (CRM): the trends, one line per channel and per source
    (GA4 and Matomo are never blended; rule 8); totals are ratios of sums, never averages of daily ratios.
  - the catalogue (kpi_models/catalogue.yaml): labels, units, formulas and sources, so the page cannot disagree
    with the tables.
  - meta.source_freshness when present (the analysts' copy), else the raw tables' max(date) / max(_loaded_at),
    so a reader can tell how current each number is.
Every table is optional: a family without data says "no data yet"; an empty database renders a valid page.
"""

from __future__ import annotations

import html
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from connectors.publish import RAW_SCHEMAS
from kpi_models.catalogue import FAMILIES, KPI_SCHEMA, Catalogue, KpiDefinition, load_catalogue
from kpi_models.objectives import STATUSES

DASHBOARD_PATH_ENV = "MKPI_DASHBOARD_PATH"
DEFAULT_DASHBOARD_PATH = "data/dashboard.html"
TREND_DAYS = 90
CRM_MONTHS = 12
NO_DATA = "no data yet"

FAMILY_TITLES = {"web": "Web analytics & acquisition", "seo": "SEO", "paid_search": "Paid search",
                 "email": "E-mail", "ecommerce": "E-commerce", "crm": "CRM & retention"}
# The KPI a family's trend chart opens on (the others are one click away in its menu).
HEADLINE = {"web": "sessions", "seo": "search_clicks", "paid_search": "ad_cost", "email": "email_click_rate",
            "ecommerce": "revenue", "crm": "new_customers"}
STATUS_COLOURS = {"on_track": "#1a7f37", "at_risk": "#b7791f", "off_track": "#c62828",
                  "insufficient_data": "#8c959f"}
STATUS_LABELS = {"on_track": "on track", "at_risk": "at risk", "off_track": "off track",
                 "insufficient_data": "insufficient data"}
# One colour per channel everywhere (same channel, same colour in every chart); unknown channels cycle on.
CHANNEL_COLOURS = {"organic_search": "#2a9d8f", "paid_search": "#e76f51", "direct": "#577590",
                   "referral": "#8e7dbe", "social": "#d6549a", "email": "#1982c4", "paid_other": "#d4a72c",
                   "other": "#9aa0a6", "all": "#1f2328"}
TOTAL_COLOUR = "#1f2328"
OBJECTIVE_COLOURS = {"month": "#c62828", "quarter": "#7b1fa2", "year": "#6d4c41"}
_EXTRA_COLOURS = ("#6a4c93", "#1982c4", "#8ac926", "#ff595e", "#ffca3a", "#52b788")
SOURCE_DASHES = {"ga4": "solid", "matomo": "dot"}
_ACRONYMS = {"ctr": "CTR", "cpc": "CPC", "cpa": "CPA", "roas": "ROAS", "nps": "NPS", "seo": "SEO"}
STALE_AFTER_DAYS = 3


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


# --- reading ---------------------------------------------------------------------------------------------------


def _relations(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """schema.name of every table and view of the current database (to read only what exists)."""
    rows = conn.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                        "WHERE table_catalog = current_database()").fetchall()
    return {str(r[0]) for r in rows}


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                        "AND table_name = ? AND table_catalog = current_database()", [schema, table]).fetchall()
    return {str(r[0]) for r in rows}


def _records(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    """Rows as dicts; DECIMAL values as floats (a hand-made or older table may store numerators as DECIMAL)."""
    cursor = conn.execute(sql, list(params))
    names = [d[0] for d in cursor.description or ()]
    return [{n: float(v) if isinstance(v, Decimal) else v for n, v in zip(names, row, strict=True)}
            for row in cursor.fetchall()]


@dataclass
class _Data:
    """Everything the page shows, read once so rendering is plain Python over lists."""

    current_month: date | None = None
    last_day: date | None = None
    objectives: list[dict[str, Any]] = field(default_factory=list)  # every kpi_vs_objective row
    month_values: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (kpi, source) -> value
    daily: list[dict[str, Any]] = field(default_factory=list)  # kpi_daily rows in the trend window
    monthly: list[dict[str, Any]] = field(default_factory=list)  # kpi_monthly rows of CRM KPIs
    freshness: list[dict[str, Any]] = field(default_factory=list)
    freshness_origin: str = ""
    source_status: list[dict[str, Any]] = field(default_factory=list)  # meta.source_status: failing sources


_LONG_COLUMNS = ("source", "channel", "account_id", "kpi", "numerator", "denominator", "value", "currency", "is_final")
_OBJECTIVE_COLUMNS = ("objective_id", "kpi", "period", "period_start", "period_end", "channel", "source", "actual",
                      "target", "status")


def _readable(conn: duckdb.DuckDBPyConnection, existing: set[str], name: str, columns: Sequence[str]) -> bool:
    """The relation exists and can be read with these columns. A roll-up view whose table was dropped, or a table
    from an older layout, counts as missing (that family says "no data yet") instead of failing the page."""
    if name not in existing:
        return False
    try:
        conn.execute(f"SELECT {', '.join(columns)} FROM {name} LIMIT 0")
    except duckdb.Error:
        return False
    return True


def _read(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> _Data:
    data = _Data()
    existing = _relations(conn)
    has_daily = _readable(conn, existing, f"{KPI_SCHEMA}.kpi_daily", ("date", *_LONG_COLUMNS))
    has_monthly = _readable(conn, existing, f"{KPI_SCHEMA}.kpi_monthly", ("month_start", *_LONG_COLUMNS))
    if has_daily:
        row = conn.execute(f"SELECT max(date) FROM {KPI_SCHEMA}.kpi_daily").fetchone()
        data.last_day = row[0] if row else None
    if _readable(conn, existing, f"{KPI_SCHEMA}.kpi_vs_objective", _OBJECTIVE_COLUMNS):
        data.objectives = _records(conn, f"SELECT * FROM {KPI_SCHEMA}.kpi_vs_objective "
                                         "ORDER BY kpi, source, channel, period, period_start")
    # The current period: the latest month judged against objectives, else the latest month with data.
    months = [o["period_start"] for o in data.objectives if o["period"] == "month"]
    if months:
        data.current_month = max(months)
    elif data.last_day is not None:
        data.current_month = data.last_day.replace(day=1)
    if has_daily and data.last_day is not None:
        start = data.last_day - timedelta(days=TREND_DAYS - 1)
        # Several accounts of a source (two GA4 properties) are one line: their parts summed, the ratio recomputed.
        additive = [k.kpi for k in catalogue.daily() if k.additive]
        data.daily = _records(conn, f"SELECT date, source, channel, kpi, sum(numerator) AS numerator, "
                                    "sum(denominator) AS denominator, CASE WHEN kpi IN (SELECT unnest(?)) "
                                    "THEN sum(numerator) ELSE sum(numerator) / nullif(sum(denominator), 0) END AS "
                                    "value, any_value(currency) AS currency, bool_and(is_final) AS is_final "
                                    f"FROM {KPI_SCHEMA}.kpi_daily WHERE date BETWEEN ? AND ? "
                                    "GROUP BY date, source, channel, kpi ORDER BY kpi, source, channel, date",
                              [additive, start, data.last_day])
    if has_monthly:
        crm = [k.kpi for k in catalogue.kpis.values() if k.family == "crm"]
        data.monthly = _records(
            conn, f"SELECT month_start, source, channel, kpi, numerator, denominator, value, currency "
                  f"FROM {KPI_SCHEMA}.kpi_monthly WHERE kpi IN (SELECT unnest(?)) AND month_start >= "
                  f"(SELECT CAST(max(month_start) - INTERVAL {CRM_MONTHS - 1} MONTH AS DATE) "
                  f"FROM {KPI_SCHEMA}.kpi_monthly) ORDER BY kpi, source, channel, month_start", [crm])
    if data.current_month is not None:
        data.month_values = _month_values(conn, catalogue, data.current_month, has_daily, has_monthly)
    data.freshness, data.freshness_origin = _freshness(conn, existing)
    if _readable(conn, existing, "meta.source_status", ("source", "status", "last_success", "last_failure",
                                                         "error", "stale_since")):
        data.source_status = _records(conn, "SELECT * FROM meta.source_status ORDER BY source")
    return data


def _month_values(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue, month: date, has_daily: bool,
                  has_monthly: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """Month-to-date value of every (KPI, source), all channels: sum for additive KPIs, ratio of sums else."""
    values: dict[tuple[str, str], dict[str, Any]] = {}
    end = (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    if has_daily:
        for r in _records(conn, f"SELECT kpi, source, sum(numerator) AS numerator, sum(denominator) AS denominator, "
                                "any_value(currency) AS currency, max(date) AS as_of "
                                f"FROM {KPI_SCHEMA}.kpi_daily WHERE date BETWEEN ? AND ? GROUP BY kpi, source",
                          [month, end]):
            kpi = catalogue.kpis.get(r["kpi"])
            if kpi is None:
                continue
            value = r["numerator"] if kpi.additive else _ratio(r["numerator"], r["denominator"])
            values[(r["kpi"], r["source"])] = {"value": value, "currency": r["currency"], "as_of": r["as_of"],
                                               "month": month}
    if has_monthly:
        native = [k.kpi for k in catalogue.native()]
        # Native monthly KPIs: the latest month up to the current one (the CRM month may lag the web data).
        for r in _records(conn, f"SELECT kpi, source, value, currency, month_start FROM {KPI_SCHEMA}.kpi_monthly "
                                "WHERE kpi IN (SELECT unnest(?)) AND channel = 'all' AND month_start <= ? "
                                "QUALIFY row_number() OVER (PARTITION BY kpi, source ORDER BY month_start DESC) = 1",
                          [native, month]):
            values[(r["kpi"], r["source"])] = {"value": r["value"], "currency": r["currency"], "as_of": None,
                                               "month": r["month_start"]}
    return values


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _freshness(conn: duckdb.DuckDBPyConnection, existing: set[str]) -> tuple[list[dict[str, Any]], str]:
    """Per raw table: last data date, last load time, rows. Read from the raw tables when there are any (they also
    date HubSpot e-mails by send_date), else from meta.source_freshness (a copy recording them at publish time)."""
    raw = [name for name in sorted(existing) if name.partition(".")[0] in RAW_SCHEMAS]
    if not raw and "meta.source_freshness" in existing:
        rows = _records(conn, "SELECT source, table_name, last_date, last_loaded_at, row_count "
                              "FROM meta.source_freshness ORDER BY source, table_name")
        return rows, "meta.source_freshness"
    rows = []
    for name in raw:
        schema, _, table = name.partition(".")
        columns = _columns(conn, schema, table)
        day = next((c for c in ("date", "send_date") if c in columns), None)
        last_date = f'CAST(max("{day}") AS DATE)' if day else "CAST(NULL AS DATE)"
        loaded = 'CAST(max("_loaded_at") AS TIMESTAMPTZ)' if "_loaded_at" in columns else "CAST(NULL AS TIMESTAMPTZ)"
        try:
            rows += _records(conn, f"SELECT ? AS source, ? AS table_name, {last_date} AS last_date, "
                                   f'{loaded} AS last_loaded_at, count(*) AS row_count FROM "{schema}"."{table}"',
                             [schema, table])
        except duckdb.Error:  # e.g. a view over a dropped table: the freshness table must not fail the page
            continue
    return rows, "the raw tables (max(date), max(_loaded_at))"


# --- formatting ------------------------------------------------------------------------------------------------


def kpi_label(kpi: str) -> str:
    """"ad_cpc" -> "Ad CPC": readable names for cards, menus and legends."""
    words = [_ACRONYMS.get(w, w) for w in kpi.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def format_value(value: float | None, unit: str, currency: str | None = None) -> str:
    """A KPI value as a reader expects it: rates in %, money with its currency, durations as "2m 05s"."""
    if value is None:
        return "–"
    if unit == "ratio":
        return f"{value:.2%}" if abs(value) < 0.1 else f"{value:.1%}"
    if unit == "currency":
        return f"{value:,.2f} {currency or ''}".strip()
    if unit == "seconds":
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"
    if unit in ("position", "score"):
        return f"{value:,.1f}"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"


def _hover_format(unit: str) -> str:
    return {"ratio": ".2%", "currency": ",.2f", "seconds": ",.0f", "position": ".1f", "score": ".1f"}.get(unit, ",.0f")


def _axis_format(unit: str) -> str:
    return {"ratio": ".1%", "position": ".1f", "score": ".0f"}.get(unit, "~s")


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _period_label(row: Mapping[str, Any]) -> str:
    start: date = row["period_start"]
    if row["period"] == "month":
        label = start.strftime("%B %Y")
    elif row["period"] == "quarter":
        label = f"Q{(start.month - 1) // 3 + 1} {start.year}"
    else:
        label = str(start.year)
    as_of = row.get("as_of")
    return f"{label}, to {as_of:%d %b}" if as_of and as_of < row["period_end"] else label


def _sources_text(kpi: KpiDefinition, catalogue: Catalogue) -> str:
    parts = []
    for s in kpi.sources:
        relation = catalogue.relations[s.relation]
        parts.append(f"{s.source} ({relation.table or relation.name})")
    return ", ".join(parts)


def _kpi_title(kpi: KpiDefinition, catalogue: Catalogue, source: str | None = None) -> str:
    """The hover text of a card: what the number is, and where it comes from."""
    where = source or ", ".join(kpi.source_codes)
    return (f"{kpi.kpi}: {kpi.formula}\nsource: {where} — {_sources_text(kpi, catalogue)}\n"
            f"unit {kpi.unit}, {kpi.aggregation}, {kpi.direction} is better")


# --- cards -----------------------------------------------------------------------------------------------------


def _current_objectives(data: _Data) -> list[dict[str, Any]]:
    """Per objective, the period containing the current month (else its latest period before it)."""
    if data.current_month is None:
        return []
    latest: dict[str, dict[str, Any]] = {}
    for o in data.objectives:
        if o["period_start"] > data.current_month:
            continue
        seen = latest.get(o["objective_id"])
        if seen is None or o["period_start"] > seen["period_start"]:
            latest[o["objective_id"]] = o
    return list(latest.values())


def _card(kpi: KpiDefinition, catalogue: Catalogue, source: str, value: str, period: str,
          objective: Mapping[str, Any] | None, channel: str = "all") -> str:
    status = objective["status"] if objective else None
    classes = f"card status-{status}" if status else "card no-objective"
    where = source if channel == "all" else f"{source} · {channel}"
    account = (objective or {}).get("account_id")
    if account and account != "all":
        where += f" · account {account}"
    lines = [f'<div class="{classes}" title="{_esc(_kpi_title(kpi, catalogue, source))}" data-kpi="{kpi.kpi}">',
             f'<div class="card-head"><span class="kpi-name">{_esc(kpi_label(kpi.kpi))}</span>'
             f'<span class="source">{_esc(where)}</span></div>',
             f'<div class="value">{_esc(value)}</div>',
             f'<div class="period">{_esc(period)}</div>']
    if objective:
        target = format_value(objective["target"], kpi.unit, objective.get("currency"))
        goal = f"objective {target} / {objective['period']}"
        if kpi.additive and objective.get("target_to_date") is not None:
            goal += f" · to date {format_value(objective['target_to_date'], kpi.unit, objective.get('currency'))}"
        attained = objective.get("attainment")
        width = 0 if attained is None else max(0.0, min(attained, 1.5)) / 1.5 * 100
        lines += [f'<div class="objective">{_esc(goal)}</div>',
                  f'<div class="attainment"><span class="badge">{_esc(STATUS_LABELS.get(status, status))}</span>'
                  f'<span>attainment {"–" if attained is None else f"{attained:.0%}"}</span></div>',
                  f'<div class="bar"><span style="width:{width:.0f}%"></span><i></i></div>']
        if objective.get("gap_text"):
            lines.append(f'<div class="gap">{_esc(objective["gap_text"])}</div>')
        if objective.get("provisional"):
            lines.append('<div class="gap muted">provisional: rests on days still being restated</div>')
    else:
        lines.append('<div class="objective muted">no objective set</div>')
    lines.append("</div>")
    return "".join(lines)


def _family_cards(family: str, catalogue: Catalogue, data: _Data, current: list[dict[str, Any]]) -> list[str]:
    """One card per objective of the family, then one per (KPI, source) with data this month and no objective."""
    cards = []
    for kpi in (k for k in catalogue.kpis.values() if k.family == family):
        for s in kpi.sources:
            objectives = sorted((o for o in current if o["kpi"] == kpi.kpi and o["source"] == s.source),
                                key=lambda o: (o["channel"] != "all", o["channel"], o["period"]))
            for o in objectives:
                value = format_value(o["actual"], kpi.unit, o.get("currency"))
                cards.append(_card(kpi, catalogue, s.source, value, _period_label(o), o, o["channel"]))
            month = data.month_values.get((kpi.kpi, s.source))
            totals = [o for o in objectives if o["channel"] == "all" and o.get("account_id", "all") == "all"]
            if month and not totals and month["value"] is not None:
                period = f"{month['month']:%B %Y}" + (f", to {month['as_of']:%d %b}" if month["as_of"] else "")
                cards.append(_card(kpi, catalogue, s.source, format_value(month["value"], kpi.unit,
                                                                          month["currency"]), period, None))
    return cards


# --- charts ----------------------------------------------------------------------------------------------------


def _colour(channel: str, others: dict[str, str]) -> str:
    if channel in CHANNEL_COLOURS:
        return CHANNEL_COLOURS[channel]
    return others.setdefault(channel, _EXTRA_COLOURS[len(others) % len(_EXTRA_COLOURS)])


def _buckets(rows: Iterable[Mapping[str, Any]], key: str) -> list[date]:
    return sorted({r[key] for r in rows})


def _objective_series(objectives: Sequence[Mapping[str, Any]], kpi: KpiDefinition, xs: Sequence[date],
                      monthly: bool) -> list[float | None]:
    """The objective on the chart's grain: a rate as is; an additive target spread over the period's days
    (its daily pace, or the month's share of a quarter / year) so it compares with the plotted totals."""
    ys: list[float | None] = []
    for x in xs:
        bucket_end = (x.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1) if monthly else x
        found = next((o for o in objectives if o["period_start"] <= x <= o["period_end"]), None)
        if found is None:
            ys.append(None)
        elif not kpi.additive:
            ys.append(found["target"])
        else:
            period_days = (found["period_end"] - found["period_start"]).days + 1
            overlap = (min(bucket_end, found["period_end"]) - max(x, found["period_start"])).days + 1
            ys.append(found["target"] * overlap / period_days)
    return ys


def _kpi_traces(kpi: KpiDefinition, rows: list[Mapping[str, Any]], objectives: Sequence[Mapping[str, Any]],
                x_key: str, monthly: bool, others: dict[str, str]) -> list[go.Scatter]:
    """One line per (source, channel); an "all channels" line per source (sum, or ratio of sums) when there
    are several channels; a dashed objective line per objective. Sources are never added together."""
    traces: list[go.Scatter] = []
    several_sources = len({r["source"] for r in rows}) > 1
    fmt = _hover_format(kpi.unit)
    label = kpi_label(kpi.kpi)
    # Monthly points get markers (few points; the latest month is month-to-date) and their days of data.
    mode = "lines+markers" if monthly else "lines"
    x_hover = "%{x|%B %Y}" if monthly else "%{x|%d %b %Y}"
    days = " (%{customdata} days of data)" if monthly and kpi.additive else ""
    by_series: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_series[(r["source"], r["channel"])].append(r)
    for source in sorted({s for s, _ in by_series}):
        channels = sorted(c for s, c in by_series if s == source)
        suffix = f" ({source})" if several_sources else ""
        for channel in channels:
            series = by_series[(source, channel)]
            traces.append(go.Scatter(
                x=[r[x_key] for r in series], y=[r["value"] for r in series], mode=mode,
                name=f"{_channel_name(channel)}{suffix}", legendgroup=channel,
                line={"color": _colour(channel, others), "width": 1.6, "dash": SOURCE_DASHES.get(source, "solid")},
                customdata=[r.get("days_with_data") for r in series],
                hovertemplate=f"{label} · {source} · {_channel_name(channel)}<br>{x_hover}: %{{y:{fmt}}}{days}"
                              "<extra></extra>"))
        if len(channels) > 1 and "all" not in channels:
            totals: dict[date, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for channel in channels:
                for r in by_series[(source, channel)]:
                    totals[r[x_key]][0] += r["numerator"] or 0.0
                    totals[r[x_key]][1] += r["denominator"] or 0.0
            xs = sorted(totals)
            ys = [totals[x][0] if kpi.additive else _ratio(totals[x][0], totals[x][1]) for x in xs]
            traces.append(go.Scatter(
                x=xs, y=ys, mode=mode, name=f"all channels{suffix}", legendgroup="all", legendrank=1,
                line={"color": TOTAL_COLOUR, "width": 2.8, "dash": SOURCE_DASHES.get(source, "solid")},
                hovertemplate=f"{label} · {source} · all channels<br>{x_hover}: %{{y:{fmt}}}<extra></extra>"))
        xs_all = _buckets((r for r in rows if r["source"] == source), x_key)
        by_objective: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for o in objectives:  # the chart sums every account: only objectives over all accounts belong on it
            if o["source"] == source and o.get("account_id", "all") == "all":
                by_objective[f"{o['channel']}/{o['period']}"].append(o)
        for name, periods in sorted(by_objective.items()):
            ys_obj = _objective_series(periods, kpi, xs_all, monthly)
            if all(y is None for y in ys_obj):
                continue
            channel, period = name.rsplit("/", 1)  # a channel may hold "/", a period never does
            what = "target" if not kpi.additive else ("monthly share of target" if monthly else "daily pace of target")
            traces.append(go.Scatter(
                x=xs_all, y=ys_obj, mode="lines", line_shape="hv", connectgaps=False, legendrank=2,
                name=f"objective ({period}, {_channel_name(channel)}){suffix}", legendgroup="objective",
                line={"color": OBJECTIVE_COLOURS.get(period, "#c62828"), "width": 2, "dash": "dash"},
                hovertemplate=f"objective ({period}, {source}, {_channel_name(channel)}): {what}<br>"
                              f"{x_hover}: %{{y:{fmt}}}<extra></extra>"))
    return traces


def _channel_name(channel: str) -> str:
    return "all channels" if channel == "all" else channel


def _axis_title(kpi: KpiDefinition, rows: Sequence[Mapping[str, Any]]) -> str:
    currency = next((r["currency"] for r in rows if r.get("currency")), None)
    unit = {"currency": currency or "", "seconds": "seconds"}.get(kpi.unit)
    return f"{kpi_label(kpi.kpi)} ({unit})" if unit else kpi_label(kpi.kpi)


def _figure_html(fig: go.Figure, div_id: str, height: int) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, default_height=f"{height}px",
                           default_width="100%", config={"displaylogo": False, "responsive": True}))


_BASE_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "font": {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12, "color": "#24292f"},
    "hovermode": "closest",
    "legend": {"orientation": "v", "x": 1.02, "y": 1, "font": {"size": 11}, "tracegroupgap": 3},
}


def _trend_chart(family: str, catalogue: Catalogue, data: _Data, others: dict[str, str]) -> str | None:
    """The family's trend chart: a menu picks the KPI (the headline KPI first); None when there is no data."""
    monthly = family == "crm"
    rows = data.monthly if monthly else data.daily
    x_key = "month_start" if monthly else "date"
    by_kpi: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_kpi[r["kpi"]].append(r)
    kpis = [k for k in catalogue.kpis.values() if k.family == family and by_kpi.get(k.kpi)]
    if not kpis:
        return None
    kpis.sort(key=lambda k: k.kpi != HEADLINE.get(family))
    fig = go.Figure()
    spans: list[tuple[KpiDefinition, int, int]] = []
    for kpi in kpis:
        objectives = [o for o in data.objectives if o["kpi"] == kpi.kpi]
        traces = _kpi_traces(kpi, by_kpi[kpi.kpi], objectives, x_key, monthly, others)
        start = len(fig.data)
        fig.add_traces(traces)
        spans.append((kpi, start, len(fig.data)))
    total = len(fig.data)
    buttons = []
    for kpi, start, end in spans:
        visible = [start <= i < end for i in range(total)]
        title = _axis_title(kpi, by_kpi[kpi.kpi])
        buttons.append({"label": kpi_label(kpi.kpi), "method": "update",
                        "args": [{"visible": visible}, {"yaxis.title.text": title,
                                                        "yaxis.tickformat": _axis_format(kpi.unit)}]})
    first, first_start, first_end = spans[0]
    for i, trace in enumerate(fig.data):
        trace.visible = first_start <= i < first_end
    grain = (f"last {CRM_MONTHS} months, monthly; the latest month is to date" if monthly
             else f"last {TREND_DAYS} days, daily")
    fig.update_layout(
        **_BASE_LAYOUT,
        title={"text": f"Trend by channel ({grain}) — pick a KPI:", "font": {"size": 14}, "x": 0.01, "y": 0.97},
        margin={"l": 60, "r": 20, "t": 80, "b": 40},
        yaxis={"title": {"text": _axis_title(first, by_kpi[first.kpi])}, "tickformat": _axis_format(first.unit),
               "rangemode": "tozero"},
        xaxis={"tickformat": "%b %Y", "dtick": "M1"} if monthly else {"tickformat": "%d %b"},
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 0.01, "xanchor": "left", "y": 1.0,
                      "yanchor": "bottom", "showactive": True, "bgcolor": "#f6f8fa", "bordercolor": "#d0d7de",
                      "pad": {"t": 4, "b": 4}}] if len(buttons) > 1 else [],
    )
    if len(buttons) <= 1:
        fig.update_layout(title={"text": f"{kpi_label(first.kpi)} by channel ({grain})"})
    # Tall enough for the longest legend (web: ~20 lines) so it never needs its own scroll bar.
    entries = max(end - start for _, start, end in spans)
    return _figure_html(fig, f"trend-{family}", max(440, 150 + 21 * entries))


def _mix_chart(data: _Data, others: dict[str, str]) -> str | None:
    """Sessions share by channel, per source (GA4 and Matomo side by side, never added): each channel's
    summed sessions over the source's summed sessions, for the last 90 days and the current month."""
    rows = [r for r in data.daily if r["kpi"] == "sessions"]
    if not rows:
        return None
    windows: list[tuple[str, date]] = [(f"last {TREND_DAYS} days", date.min)]
    if data.current_month is not None:
        windows.append((f"{data.current_month:%b %Y}", data.current_month))
    bars: list[str] = []
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for source in sorted({r["source"] for r in rows}):
        for label, start in windows:
            bar = f"{source} · {label}"
            bars.append(bar)
            for r in rows:
                if r["source"] == source and r["date"] >= start:
                    sums[(bar, r["channel"])] += r["numerator"] or 0.0
    totals = {bar: sum(v for (b, _), v in sums.items() if b == bar) for bar in bars}
    fig = go.Figure()
    for channel in sorted({c for _, c in sums}, key=lambda c: -sum(v for (_, ch), v in sums.items() if ch == c)):
        shares = [sums.get((bar, channel), 0.0) / totals[bar] if totals[bar] else 0.0 for bar in bars]
        sessions = [sums.get((bar, channel), 0.0) for bar in bars]
        fig.add_trace(go.Bar(
            y=bars, x=shares, name=channel, orientation="h", marker_color=_colour(channel, others),
            text=[f"{s:.0%}" if s >= 0.05 else "" for s in shares], textposition="inside",
            insidetextanchor="middle", customdata=sessions,
            hovertemplate=f"{channel} · %{{y}}<br>%{{x:.1%}} of sessions (%{{customdata:,.0f}})<extra></extra>"))
    fig.update_layout(
        **_BASE_LAYOUT, barmode="stack",
        title={"text": "Channel mix: share of sessions (sum by channel / sum, per source)", "font": {"size": 14},
               "x": 0.01},
        margin={"l": 150, "r": 20, "t": 50, "b": 40},
        xaxis={"tickformat": ".0%", "range": [0, 1]}, yaxis={"autorange": "reversed"},
    )
    fig.update_layout(legend={"traceorder": "normal"})  # same order as the segments, largest first
    return _figure_html(fig, "mix-web", 80 + 46 * len(bars) + 60)


# --- page ------------------------------------------------------------------------------------------------------


def _status_html(data: _Data, generated_at: datetime) -> str:
    """Each source's last success and, when it is failing, since when its numbers are stale and why."""
    if not data.source_status:
        return ""

    def when(value: Any) -> str:
        return value.astimezone(generated_at.tzinfo).strftime("%Y-%m-%d %H:%M %Z") if value else "–"

    rows = []
    for r in data.source_status:
        failing = r["status"] == "failing"
        rows.append(f'<tr{" class=stale" if failing else ""}><td>{_esc(r["source"])}</td>'
                    f'<td>{_esc(r["status"])}</td><td>{_esc(when(r["last_success"]))}</td>'
                    f'<td>{_esc(when(r["last_failure"]))}</td><td>{_esc(when(r["stale_since"]))}</td>'
                    f'<td>{_esc(r["error"] or "")}</td></tr>')
    return ('<table class="freshness source-status"><thead><tr><th>source</th><th>status</th><th>last success</th>'
            "<th>last failure</th><th>stale since</th><th>error</th></tr></thead><tbody>" + "".join(rows)
            + '</tbody></table><p class="muted small">From meta.source_status (Dagster\'s records). A failing '
            "source's numbers are its last good ones, flagged stale_source in the analysts' copy; the other sources "
            "are current.</p>")


def _freshness_html(data: _Data, generated_at: datetime) -> str:
    if not data.freshness:
        return f'<p class="muted">Source freshness: {NO_DATA} (no raw tables loaded).</p>'
    by_source: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in data.freshness:
        by_source[str(r["source"])].append(r)
    rows = []
    today = generated_at.date()
    for source in sorted(by_source):
        tables = by_source[source]
        dates = [r["last_date"] for r in tables if r["last_date"] is not None]
        loads = [r["last_loaded_at"] for r in tables if r["last_loaded_at"] is not None]
        last_date = max(dates) if dates else None
        last_load = max(loads) if loads else None
        lag = (today - last_date).days if last_date else None
        stale = lag is not None and lag > STALE_AFTER_DAYS
        detail = "\n".join(f"{source}.{r['table_name']}: last date {r['last_date'] or '–'}, "
                           f"{r['row_count'] or 0:,} rows" for r in tables)
        load_text = last_load.astimezone(generated_at.tzinfo).strftime("%Y-%m-%d %H:%M %Z") if last_load else "–"
        rows.append(
            f'<tr title="{_esc(detail)}"{" class=stale" if stale else ""}><td>{_esc(source)}</td>'
            f"<td>{_esc(last_date or '–')}</td><td>{'–' if lag is None else f'{lag} d'}</td>"
            f"<td>{_esc(load_text)}</td><td>{sum(int(r['row_count'] or 0) for r in tables):,}</td>"
            f"<td>{len(tables)}</td></tr>")
    return ('<table class="freshness"><thead><tr><th>source</th><th>last data date</th><th>age</th>'
            "<th>last loaded</th><th>rows</th><th>tables</th></tr></thead><tbody>" + "".join(rows)
            + f'</tbody></table><p class="muted small">From {_esc(data.freshness_origin)}; hover a row for its '
            f"tables. Age is counted from the generation date; older than {STALE_AFTER_DAYS} days is flagged.</p>")


def _definitions_html(family: str, catalogue: Catalogue) -> str:
    items = []
    for kpi in (k for k in catalogue.kpis.values() if k.family == family):
        items.append(f'<tr title="{_esc(_kpi_title(kpi, catalogue))}"><td>{_esc(kpi_label(kpi.kpi))}</td>'
                     f"<td>{_esc(kpi.formula)}</td><td>{_esc(_sources_text(kpi, catalogue))}</td>"
                     f"<td>{_esc(kpi.direction)} is better</td></tr>")
    return ("<details class=\"definitions\"><summary>Formulas and sources</summary><table><thead><tr><th>KPI</th>"
            "<th>formula</th><th>source (table)</th><th>direction</th></tr></thead><tbody>" + "".join(items)
            + "</tbody></table></details>")


def _status_summary(current: Sequence[Mapping[str, Any]]) -> str:
    counts = {s: sum(1 for o in current if o["status"] == s) for s in STATUSES}
    chips = "".join(f'<span class="chip status-{s}"><b>{counts[s]}</b> {_esc(STATUS_LABELS[s])}</span>'
                    for s in STATUSES)
    return f'<div class="summary">{chips}</div>'


_CSS = """
:root { --fg:#24292f; --muted:#57606a; --line:#d0d7de; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg);
       background:var(--bg); font-size:14px; line-height:1.4; }
header { background:#1d3557; color:#fff; padding:18px 28px; }
header h1 { margin:0 0 4px; font-size:22px; }
header .meta { opacity:.85; font-size:13px; }
main { padding:16px 28px 40px; max-width:1500px; margin:0 auto; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:16px 0; }
section h2 { margin:0 0 12px; font-size:18px; }
.summary { display:flex; gap:8px; flex-wrap:wrap; margin:4px 0 0; }
.chip { border-radius:14px; padding:3px 10px; color:#fff; font-size:13px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(220px, 1fr)); gap:12px; margin-bottom:14px; }
.card { border:1px solid var(--line); border-left:6px solid #8c959f; border-radius:6px; padding:10px 12px;
        background:#fff; min-width:0; cursor:help; }
.card.no-objective { border-left-color:#d0d7de; background:#fcfcfd; }
.card-head { display:flex; justify-content:space-between; gap:8px; align-items:baseline; }
.kpi-name { font-weight:600; overflow-wrap:anywhere; }
.source { color:var(--muted); font-size:12px; white-space:nowrap; }
.value { font-size:24px; font-weight:650; margin:4px 0 0; font-variant-numeric:tabular-nums; }
.period, .objective, .gap { color:var(--muted); font-size:12px; }
.gap { margin-top:2px; }
.attainment { display:flex; flex-wrap:wrap; justify-content:space-between; align-items:center; gap:2px 6px;
              margin-top:6px; font-size:12px; white-space:nowrap; }
.badge { color:#fff; border-radius:10px; padding:1px 8px; font-size:11px; font-weight:600; white-space:nowrap; }
.bar { position:relative; height:6px; background:#eaeef2; border-radius:3px; margin-top:5px; overflow:hidden; }
.bar span { position:absolute; left:0; top:0; bottom:0; border-radius:3px; }
.bar i { position:absolute; left:66.7%; top:0; bottom:0; width:2px; background:#24292f; opacity:.5; }
.charts { display:grid; grid-template-columns:minmax(0, 1fr); gap:12px; }
.chart { border:1px solid #eaeef2; border-radius:6px; min-width:0; }
.nodata { color:var(--muted); font-style:italic; padding:18px; text-align:center; border:1px dashed var(--line);
          border-radius:6px; }
.muted { color:var(--muted); } .small { font-size:12px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid #eaeef2; vertical-align:top; }
th { color:var(--muted); font-weight:600; }
tr.stale td { color:#c62828; font-weight:600; }
details.definitions { margin-top:12px; }
details.definitions summary { cursor:pointer; color:var(--muted); }
.legend { display:flex; gap:14px; flex-wrap:wrap; font-size:12px; color:var(--muted); margin-top:8px; }
.legend span::before { content:""; display:inline-block; width:10px; height:10px; border-radius:2px;
                       margin-right:5px; vertical-align:-1px; background:var(--c); }
"""


def _status_css() -> str:
    rules = []
    for s, colour in STATUS_COLOURS.items():
        rules.append(f".status-{s} {{ border-left-color:{colour}; }} .chip.status-{s}, .status-{s} .badge, "
                     f".status-{s} .bar span {{ background:{colour}; }}")
    return "\n".join(rules)


def render_dashboard(conn: duckdb.DuckDBPyConnection, *, generated_at: datetime | None = None,
                     catalogue: Catalogue | None = None, timezone: str = "UTC") -> str:
    """The whole dashboard as one self-contained HTML page (plotly.js inlined once; no network needed).

    `timezone` (the reporting time zone) is the one times are shown in and source ages are counted in."""
    html_page, _ = _render(conn, generated_at, catalogue, timezone)
    return html_page


def _render(conn: duckdb.DuckDBPyConnection, generated_at: datetime | None, catalogue: Catalogue | None,
            timezone: str) -> tuple[str, tuple[str, ...]]:
    catalogue = catalogue or load_catalogue()
    generated_at = generated_at or datetime.now(UTC)
    if generated_at.tzinfo is None:
        generated_at = generated_at.replace(tzinfo=UTC)
    generated_at = generated_at.astimezone(ZoneInfo(timezone))
    data = _read(conn, catalogue)
    current = _current_objectives(data)
    others: dict[str, str] = {}
    sections, with_data, charts = [], [], 0
    for family in FAMILIES:
        cards = _family_cards(family, catalogue, data, current)
        trend = _trend_chart(family, catalogue, data, others)
        mix = _mix_chart(data, others) if family == "web" else None
        parts = [f'<section id="family-{family}" class="family" data-family="{family}">',
                 f"<h2>{_esc(FAMILY_TITLES.get(family, family))}</h2>"]
        if not cards and trend is None:
            parts.append(f'<div class="nodata">{NO_DATA}</div>')
        else:
            with_data.append(family)
            parts.append(f'<div class="cards">{"".join(cards)}</div>' if cards else
                         f'<div class="nodata">Current period: {NO_DATA}</div>')
            blocks = [f'<div class="chart">{c}</div>' for c in (trend, mix) if c is not None]
            charts += len(blocks)
            parts.append(f'<div class="charts">{"".join(blocks)}</div>' if blocks else
                         f'<div class="nodata">Trend: {NO_DATA}</div>')
        parts.append(_definitions_html(family, catalogue))
        parts.append("</section>")
        sections.append("".join(parts))
    period = f"{data.current_month:%B %Y}" if data.current_month else NO_DATA
    last_day = f"{data.last_day:%d %b %Y}" if data.last_day else NO_DATA
    legend = "".join(f'<span style="--c:{c}">{_esc(STATUS_LABELS[s])}</span>' for s, c in STATUS_COLOURS.items())
    script = f'<script type="text/javascript">{get_plotlyjs()}</script>' if charts else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Marketing KPIs — {_esc(period)}</title>
<style>{_CSS}{_status_css()}</style>
{script}
</head><body>
<header><h1>Marketing KPIs</h1>
<div class="meta">Current period: <b>{_esc(period)}</b> · data up to {_esc(last_day)} ·
generated {_esc(generated_at.strftime("%Y-%m-%d %H:%M %Z"))}</div></header>
<main>
<section id="overview"><h2>Objectives this period</h2>{_status_summary(current)}
<div class="legend">{legend}<span style="--c:#d0d7de">no objective</span></div>
<p class="muted small">Cards show the current period so far (additive KPIs against the objective pro-rated to
date; rates as ratios of sums). Hover a card for its formula and source. GA4 and Matomo are shown side by side,
never added. Charts: one line per channel (dotted: Matomo), the all-channels total, and the objective dashed.</p>
<h3>Data freshness</h3>{_freshness_html(data, generated_at)}{_status_html(data, generated_at)}</section>
{"".join(sections)}
</main></body></html>
"""
    return page, tuple(with_data)


def write_dashboard(conn: duckdb.DuckDBPyConnection, path: str | os.PathLike[str] | None = None, *,
                    generated_at: datetime | None = None, timezone: str = "UTC") -> DashboardResult:
    """Render and write the dashboard atomically (temp file + rename: a reader never sees half a page).

    `path` defaults to MKPI_DASHBOARD_PATH (else data/dashboard.html)."""
    target = Path(path) if path is not None else dashboard_path()
    generated_at = generated_at or datetime.now(UTC)
    page, families = _render(conn, generated_at, None, timezone)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return DashboardResult(str(target), target.stat().st_size, families, generated_at)
