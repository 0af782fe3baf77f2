"""Every number the dashboard shows, computed in SQL from the KPI tables (ratios of sums), as one JSON-able model.

Why here and not in the browser: a manager's number must be the one an analyst gets from `kpi.kpi_daily` with the
documented query. So for every preset period (kpi_models.dashboard_periods) and its two comparison windows, the
cards, their breakdowns by source and channel, and the drill-down tables (campaigns, Search Console queries and
pages, e-mails) are summed here: several accounts of a source add their numerators and denominators, a ratio is
sum(numerator) / sum(denominator), never an average. The page only picks the period. For a custom range and the
charts' smoothing, the page sums the same daily parts (`series`) the same way; the browser test checks that a
custom range equal to a preset gives the preset's numbers.

Every table is optional: a missing or unreadable one leaves its part empty and the page says "no data yet".
Monthly CRM KPIs (churn, loyalty, NPS: `native` in the catalogue) are never re-aggregated over months: a window
shows the month that contains its last day.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from connectors.publish import RAW_SCHEMAS
from kpi_models.catalogue import FAMILIES, KPI_SCHEMA, PERIOD_REACH_VIEW, Catalogue
from kpi_models.dashboard_periods import DEFAULT_PERIOD, Period, Window, data_range, presets
from kpi_models.formatting import channel_label, display_unit, format_spec, kpi_label, source_label
from kpi_models.objectives import BUDGET_KPIS

FAMILY_TITLES = {"web": "Web analytics & acquisition", "seo": "SEO", "paid_search": "Paid search",
                 "email": "E-mail", "ecommerce": "E-commerce", "crm": "CRM & retention",
                 "roi": "Marketing return", "social": "Social networks"}
# The KPI a family's card row and trend chart open on.
HEADLINE = {"web": "sessions", "seo": "search_clicks", "paid_search": "ad_cost", "email": "email_click_rate",
            "ecommerce": "revenue", "crm": "new_customers", "social": "followers"}
TOTAL = "*"  # the channel key of a (KPI, source) total over every channel
TOP_ROWS = 50  # Search Console queries and pages per period (drill-down: the top ones by clicks)
EMAIL_ROWS = 100
# Why a value is not final, in a manager's words (kpi.kpi_daily.quality flags, docs/querying.md).
FLAG_TEXT = {
    "provisional": "provisional: inside the source's restatement window, the value will still move",
    "partial_day": "partial day: Search Console is still collecting it",
    "platform_period_reach": "the platform's own reach over these days (reach never adds up day by day)",
    "fx_rate_estimated": "converted at an estimated exchange rate (the last published one)",
    "thresholded": "GA4 withheld small numbers (thresholding)",
    "sampled": "GA4 sampled the data",
    "other_row": "GA4 folded rows into (other)",
    "out_of_range": "a rate outside 0-100%: check the source",
    "stale_source": "the source is failing: these are its last good numbers",
}
# The alerts hook (issue #23, kpi_models/alerts.py): open alerts at the top, anomalous points on the charts.
ALERT_FEED = f"{KPI_SCHEMA}.alert_feed"
ALERT_COLUMNS = ("kpi", "source", "status", "message")  # the least the feed must have to be shown
ANOMALY_POINTS = f"{KPI_SCHEMA}.kpi_anomaly"


def _relations(conn: duckdb.DuckDBPyConnection) -> set[str]:
    rows = conn.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                        "WHERE table_catalog = current_database()").fetchall()
    return {str(r[0]) for r in rows}


def _readable(conn: duckdb.DuckDBPyConnection, existing: set[str], name: str, columns: Sequence[str]) -> bool:
    """The relation exists and reads with these columns: a view over a dropped table, or an older layout, counts
    as missing (its part of the page says "no data yet") instead of failing the page."""
    if name not in existing:
        return False
    try:
        conn.execute(f"SELECT {', '.join(columns)} FROM {name} LIMIT 0")
    except duckdb.Error:
        return False
    return True


def _plain(value: Any) -> Any:
    """A JSON-able value: DECIMAL as float, dates as ISO text, NaN and infinities as null (no number)."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _records(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    """Rows as dicts of JSON-able values (dates as ISO text, DECIMAL as float)."""
    cursor = conn.execute(sql, list(params))
    names = [d[0] for d in cursor.description or ()]
    return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def _windows_sql(periods: Sequence[Period]) -> tuple[str, list[object]]:
    """A VALUES list of (period, window, start, end) for every preset window."""
    rows, params = [], []
    for p in periods:
        for name, w in p.windows().items():
            rows.append("(?, ?, CAST(? AS DATE), CAST(? AS DATE))")
            params += [p.key, name, w.start, w.end]
    return "(VALUES " + ", ".join(rows) + ") AS w(period, win, start_day, end_day)", params


class _Flags:
    """Quality-flag combinations numbered once ([] is 0), so a day or a value carries one small number."""

    def __init__(self) -> None:
        self.combos: list[list[str]] = [[]]

    def index(self, flags: Sequence[str] | None) -> int:
        combo = sorted(set(flags or ()))
        if combo not in self.combos:
            self.combos.append(combo)
        return self.combos.index(combo)


# The accounts the pipeline reads: source -> its configured accounts as kpi_daily names them (None: any account);
# kpi_models.alerts.configured_accounts makes it from the settings. A level (followers) is missing for a day when
# an account still read has no row that day; an account no longer configured (removed from the settings: its rows
# are history) is not missing after its last row, or the level would stay blank for as long as the page's range.
Configured = Mapping[str, Iterable[str] | None]


def _read_sql(configured: Configured | None, alias: str = "") -> tuple[str, list[object]]:
    """A SQL condition on a kpi_daily row (`alias`: its table's alias and a dot, or ''): its account is one the
    pipeline reads, and its parameters. `configured` None: not known, every account counts (as before)."""
    if configured is None:
        return "true", []
    any_account = sorted(source for source, accounts in configured.items() if accounts is None)
    accounts = sorted({f"{source}\x1f{account}" for source, chosen in configured.items() if chosen is not None
                       for account in chosen})
    source = f"CAST({alias}source AS VARCHAR)"
    return (f"(list_contains(?::VARCHAR[], {source}) OR "
            f"list_contains(?::VARCHAR[], {source} || chr(31) || {alias}account_id))"), [any_account, accounts]


def _result(row: Mapping[str, Any], flags: _Flags) -> list[Any]:
    """[numerator, denominator, value, final (1/0), flag combination, days with data]."""
    final = bool(row["is_final"])
    quality = list(row["quality"] or []) + ([] if final else ["provisional"])  # hand-made rows may lack the flag
    return [row["numerator"], row["denominator"], row["value"], 1 if final else 0, flags.index(quality), row["days"]]


def _period_results(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue, periods: Sequence[Period],
                    flags: _Flags, configured: Configured | None = None) -> dict[str, dict[str, list[Any]]]:
    """Per preset period, per "kpi|source|channel" (channel * = all channels): [cur, prev, ly] results, each
    summed over accounts (and channels for *) in SQL, the ratio recomputed from the summed parts. `configured`: the
    accounts read (`Configured`): only those are missing on a window's last day without a row."""
    windows, params = _windows_sql(periods)
    read, read_params = _read_sql(configured, "d.")
    additive = [k.kpi for k in catalogue.daily() if k.additive]
    # a level (followers) is the window's last day's, summed over accounts, and no value when one account's level
    # that day is unknown: NULL, or no row that day from an account with a row earlier in the window (a total
    # without it would be silently low; the catalogue rolls a level up by the last day's value, and an older day's
    # level is not that; an account no longer read is not missing: `configured`); a distinct count (reach) adds up
    # over nothing: one account's one day only, else no value (never a sum of days)
    last = [k.kpi for k in catalogue.daily() if k.aggregation == "last"]
    distinct = [k.kpi for k in catalogue.daily() if k.aggregation == "distinct"]
    rows = _records(conn, f"""
        SELECT w.period, w.win, d.kpi, d.source, coalesce(d.channel, '{TOTAL}') AS channel,
               sum(d.numerator) AS numerator, sum(d.denominator) AS denominator,
               CASE WHEN d.kpi IN (SELECT unnest(?)) THEN sum(d.numerator)
                    WHEN d.kpi IN (SELECT unnest(?)) THEN
                         CASE WHEN count(d.numerator) FILTER (WHERE d.date = w.end_day)
                                   = count(*) FILTER (WHERE d.date = w.end_day)
                               AND count(DISTINCT (d.account_id, d.channel))
                                       FILTER (WHERE d.date = w.end_day AND list_contains(?, d.kpi) AND {read})
                                   = count(DISTINCT (d.account_id, d.channel))
                                       FILTER (WHERE list_contains(?, d.kpi) AND {read})
                              THEN sum(d.numerator) FILTER (WHERE d.date = w.end_day) END
                    WHEN d.kpi IN (SELECT unnest(?)) THEN CASE WHEN count(DISTINCT d.date) = 1
                         AND count(DISTINCT d.account_id) = 1 THEN sum(d.numerator) END
                    ELSE sum(d.numerator) / nullif(sum(d.denominator), 0) END AS value,
               bool_and(d.is_final) AS is_final, list_distinct(flatten(list(d.quality))) AS quality,
               count(DISTINCT d.date) AS days
        FROM {KPI_SCHEMA}.kpi_daily AS d JOIN {windows} ON d.date BETWEEN w.start_day AND w.end_day
        GROUP BY GROUPING SETS ((w.period, w.win, d.kpi, d.source, d.channel), (w.period, w.win, d.kpi, d.source))
        """, [additive, last, last, *read_params, last, *read_params, distinct, *params])
    out: dict[str, dict[str, list[Any]]] = {p.key: {} for p in periods}
    order = {"cur": 0, "prev": 1, "ly": 2}
    for r in rows:
        if r["kpi"] not in catalogue.kpis:
            continue
        key = f"{r['kpi']}|{r['source']}|{r['channel']}"
        slot = out[r["period"]].setdefault(key, [None, None, None])
        slot[order[r["win"]]] = _result(r, flags)
    return out


def _platform_reach(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue, periods: Sequence[Period], flags: _Flags,
                    out: dict[str, dict[str, list[Any]]]) -> None:
    """A distinct KPI (reach) over a window of exactly 7 or 28 days: the platform's own reach for those days
    (kpi.social_period_reach 'week' / 'days_28' ending on the window's last day), one account's only (distinct
    people of two accounts do not add up either). Never a sum of days."""
    distinct = [k.kpi for k in catalogue.daily() if k.aggregation == "distinct"]
    if not distinct:
        return
    windows, params = _windows_sql(periods)
    rows = _records(conn, f"""
        SELECT w.period, w.win, r.source, any_value(r.reach) AS reach
        FROM {KPI_SCHEMA}.{PERIOD_REACH_VIEW} AS r JOIN {windows} ON r.date = w.end_day
             AND ((r.period = 'week' AND date_diff('day', w.start_day, w.end_day) = 6)
                  OR (r.period = 'days_28' AND date_diff('day', w.start_day, w.end_day) = 27))
        GROUP BY ALL HAVING count(DISTINCT r.account_id) = 1""", params)
    order = {"cur": 0, "prev": 1, "ly": 2}
    for r in rows:
        for kpi in distinct:
            slot = out[r["period"]].setdefault(f"{kpi}|{r['source']}|{TOTAL}", [None, None, None])
            daily = slot[order[r["win"]]]  # the days' own result: their finality and flags stay
            final, quality = (daily[3], flags.combos[daily[4]]) if daily else (0, ["provisional"])
            slot[order[r["win"]]] = [r["reach"], None, r["reach"], final,
                                     flags.index([*quality, "platform_period_reach"]), daily[5] if daily else None]


def _coverage(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue, periods: Sequence[Period]
              ) -> dict[str, dict[str, list[int]]]:
    """Per period and source, the days of each window with any KPI row: a comparison with a window the source only
    partly covers is flagged on the page, never shown as a plain rise or fall."""
    windows, params = _windows_sql(periods)
    daily = [k.kpi for k in catalogue.daily()]
    rows = _records(conn, f"SELECT w.period, w.win, d.source, count(DISTINCT d.date) AS days "
                          f"FROM {KPI_SCHEMA}.kpi_daily AS d JOIN {windows} ON d.date BETWEEN w.start_day "
                          "AND w.end_day WHERE d.kpi IN (SELECT unnest(?)) GROUP BY ALL", [*params, daily])
    out: dict[str, dict[str, list[int]]] = {p.key: {} for p in periods}
    order = {"cur": 0, "prev": 1, "ly": 2}
    for r in rows:
        out[r["period"]].setdefault(r["source"], [0, 0, 0])[order[r["win"]]] = int(r["days"])
    return out


def _monthly_native(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> list[dict[str, Any]]:
    """Native monthly KPIs per (KPI, source, month), summed over accounts: a ratio of sums, one month at a time."""
    native = [k.kpi for k in catalogue.native()]
    return _records(conn, f"""
        SELECT kpi, source, month_start, sum(numerator) AS numerator, sum(denominator) AS denominator,
               sum(numerator) / nullif(sum(denominator), 0) AS value, bool_and(is_final) AS is_final
        FROM {KPI_SCHEMA}.kpi_monthly WHERE kpi IN (SELECT unnest(?)) AND channel = 'all'
        GROUP BY ALL ORDER BY kpi, source, month_start""", [native])


def _native_results(monthly: Sequence[Mapping[str, Any]], periods: Sequence[Period], flags: _Flags,
                    out: dict[str, dict[str, list[Any]]]) -> None:
    """A native monthly KPI's value for a window: the month containing the window's last day (never a sum over
    months: loyalty is a trailing-12-month share, churn a flow over the month's opening base)."""
    by_key = {(m["kpi"], m["source"], m["month_start"]): m for m in monthly}
    for p in periods:
        for (kpi, source) in {(m["kpi"], m["source"]) for m in monthly}:
            slot: list[Any] = [None, None, None]
            for i, w in enumerate((p.current, p.previous, p.last_year)):
                m = by_key.get((kpi, source, w.end.replace(day=1).isoformat()))
                if m is not None:
                    slot[i] = [m["numerator"], m["denominator"], m["value"], 1 if m["is_final"] else 0,
                               flags.index([] if m["is_final"] else ["provisional"]), None]
            if any(slot):
                out[p.key][f"{kpi}|{source}|{TOTAL}"] = slot


def _series(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue, days: Window, flags: _Flags,
            configured: Configured | None = None) -> list[dict[str, Any]]:
    """Daily parts per (KPI, source, channel) over the page's range, summed over accounts, as arrays aligned on
    the range's days (null: no row that day): the charts and custom ranges are built from these. A level
    (followers) is null on a day one account's level is unknown: NULL, or no row that day from an account with a row
    on an earlier day of the range (a sum without it would be silently low), unless that account is no longer read
    (`configured`)."""
    last = [k.kpi for k in catalogue.daily() if k.aggregation == "last"]
    read, read_params = _read_sql(configured)
    rows = conn.execute(f"""
        WITH g AS (
            SELECT kpi, source, channel, date, sum(numerator) AS n, sum(denominator) AS d, bool_and(is_final) AS f,
                   list_distinct(flatten(list(quality))) AS q, count(numerator) < count(*) AS unknown
            FROM {KPI_SCHEMA}.kpi_daily WHERE date BETWEEN ? AND ? GROUP BY kpi, source, channel, date),
        levels AS (  -- per level series and day: accounts read with a row that day, and seen on or before it
            SELECT kpi, source, channel, date, count(DISTINCT account_id) AS reported,
                   sum(count(DISTINCT account_id) FILTER (WHERE first_row))
                       OVER (PARTITION BY kpi, source, channel ORDER BY date) AS seen
            FROM (SELECT kpi, source, channel, date, account_id, date = min(date) OVER (
                             PARTITION BY kpi, source, channel, account_id) AS first_row
                  FROM {KPI_SCHEMA}.kpi_daily WHERE date BETWEEN ? AND ? AND kpi IN (SELECT unnest(?))
                       AND {read})
            GROUP BY kpi, source, channel, date)
        SELECT g.kpi, g.source, g.channel, date_diff('day', CAST(? AS DATE), g.date) AS day,
               CASE WHEN (g.unknown AND g.kpi IN (SELECT unnest(?))) OR l.reported < l.seen THEN NULL
                    ELSE g.n END AS n, g.d, g.f, g.q
        FROM g LEFT JOIN levels AS l ON l.kpi = g.kpi AND l.source = g.source
             AND l.channel IS NOT DISTINCT FROM g.channel AND l.date = g.date
        ORDER BY g.kpi, g.source, g.channel, g.date""",
                        [days.start, days.end, days.start, days.end, last, *read_params, days.start,
                         last]).fetchall()
    series: dict[tuple[str, str, str], dict[str, Any]] = {}
    for kpi, source, channel, day, n, d, final, quality in rows:
        if kpi not in catalogue.kpis or catalogue.kpis[kpi].native:
            continue
        s = series.get((kpi, source, channel))
        if s is None:
            s = series[(kpi, source, channel)] = {"k": kpi, "s": source, "c": channel, "o": int(day),
                                                  "n": [], "d": [], "q": []}
        gap = int(day) - s["o"] - len(s["n"])
        s["n"] += [None] * gap + [_plain(n)]
        s["d"] += [None] * gap + [_plain(d)]
        # a non-final day without the flag (hand-made rows) still reads as provisional
        s["q"] += [None] * gap + [flags.index(list(quality or []) + ([] if final else ["provisional"]))]
    for s in series.values():
        if all(v is None for v in s["d"]):
            s["d"] = None
    return list(series.values())


def _drill(conn: duckdb.DuckDBPyConnection, existing: set[str], periods: Sequence[Period]
           ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per preset period, the drill-down tables over its current window (each computed as a ratio of sums)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {p.key: {} for p in periods}
    campaign_cols = ("date", "account_id", "campaign_id", "campaign_name", "currency_code", "ad_cost", "ad_clicks",
                     "ad_impressions", "ad_conversions", "conversions_value", "is_final")
    has_campaigns = _readable(conn, existing, f"{KPI_SCHEMA}.paid_search_daily", campaign_cols)
    sc_cols = ("date", "site_url", "search_type", "clicks", "impressions", "position", "data_state")
    has_queries = _readable(conn, existing, "search_console.queries", (*sc_cols, "query"))
    has_pages = _readable(conn, existing, "search_console.pages", (*sc_cols, "page"))
    email_cols = ("date", "account_id", "email_id", "email_name", "sent", "delivered", "opened", "clicked",
                  "bounced", "unsubscribed", "is_final")
    has_emails = _readable(conn, existing, f"{KPI_SCHEMA}.email_daily", email_cols)
    for p in periods:
        window = [p.current.start, p.current.end]
        if has_campaigns:
            out[p.key]["campaigns"] = _campaigns(conn, window)
        if has_queries:
            out[p.key]["queries"] = _search_rows(conn, "queries", "query", window)
        if has_pages:
            out[p.key]["pages"] = _search_rows(conn, "pages", "page", window)
        if has_emails:
            out[p.key]["emails"] = _emails(conn, window)
    return out


def _campaigns(conn: duckdb.DuckDBPyConnection, window: Sequence[date]) -> list[dict[str, Any]]:
    """Per campaign, in its account's own currency (amounts in different currencies are never added)."""
    return _records(conn, f"""
        SELECT account_id, campaign_id, any_value(campaign_name ORDER BY date DESC) AS campaign, currency_code AS
               currency, sum(ad_cost) AS cost, sum(ad_clicks) AS clicks, sum(ad_impressions) AS impressions,
               sum(ad_conversions) AS conversions, sum(conversions_value) AS conversions_value,
               sum(ad_clicks) / nullif(sum(ad_impressions), 0) AS ctr,
               sum(ad_cost) / nullif(sum(ad_clicks), 0) AS cpc,
               sum(ad_cost) / nullif(sum(ad_conversions), 0) AS cpa,
               sum(conversions_value) / nullif(sum(ad_cost), 0) AS roas,
               bool_and(is_final) AS is_final
        FROM {KPI_SCHEMA}.paid_search_daily WHERE date BETWEEN ? AND ?
        GROUP BY account_id, campaign_id, currency_code ORDER BY cost DESC NULLS LAST, campaign""", window)


def _search_rows(conn: duckdb.DuckDBPyConnection, table: str, column: str, window: Sequence[date]
                 ) -> list[dict[str, Any]]:
    """Top queries or pages by clicks (web search): CTR = clicks / impressions, position impression-weighted.
    Drill-down only: never summed into totals (pages over-count impressions, queries miss anonymised ones)."""
    return _records(conn, f"""
        SELECT site_url AS site, {column} AS item, sum(clicks) AS clicks, sum(impressions) AS impressions,
               sum(clicks) / nullif(sum(impressions), 0) AS ctr,
               sum(position * impressions) / nullif(sum(impressions) FILTER (WHERE position IS NOT NULL), 0)
                   AS position,
               bool_and(coalesce(data_state, 'final') = 'final') AS is_final
        FROM search_console.{table} WHERE search_type = 'web' AND date BETWEEN ? AND ?
        GROUP BY site_url, {column} ORDER BY clicks DESC, impressions DESC, item LIMIT {TOP_ROWS}""", window)


def _emails(conn: duckdb.DuckDBPyConnection, window: Sequence[date]) -> list[dict[str, Any]]:
    """Per marketing e-mail (not the day's 'all' total): counts and rates over its days in the window."""
    return _records(conn, f"""
        SELECT account_id, email_id, any_value(email_name) AS email, min(date) AS first_day, sum(sent) AS sent,
               sum(delivered) AS delivered, sum(opened) AS opened, sum(clicked) AS clicked,
               sum(opened) / nullif(sum(delivered), 0) AS open_rate,
               sum(clicked) / nullif(sum(delivered), 0) AS click_rate,
               sum(clicked) / nullif(sum(opened), 0) AS click_to_open_rate,
               sum(bounced) / nullif(sum(sent), 0) AS bounce_rate,
               sum(unsubscribed) / nullif(sum(delivered), 0) AS unsubscribe_rate,
               bool_and(is_final) AS is_final
        FROM {KPI_SCHEMA}.email_daily WHERE email_id <> 'all' AND date BETWEEN ? AND ?
        GROUP BY account_id, email_id ORDER BY sent DESC NULLS LAST, email LIMIT {EMAIL_ROWS}""", window)


def _objectives(conn: duckdb.DuckDBPyConnection, existing: set[str], periods: Sequence[Period], as_of: date
                ) -> dict[str, list[dict[str, Any]]]:
    """Per preset period, the objective rows judged for it (kpi.kpi_vs_objective, as the objectives module
    judged them: pro-rating, budgets and minimum denominators are not redone): this month shows the month,
    quarter and year running now; last month its month; this quarter the quarter and year; rolling windows none."""
    needed = ("objective_id", "kpi", "period", "period_start", "period_end", "channel", "source", "actual",
              "target", "status")
    out: dict[str, list[dict[str, Any]]] = {p.key: [] for p in periods}
    if not _readable(conn, existing, f"{KPI_SCHEMA}.kpi_vs_objective", needed):
        return out
    rows = _records(conn, f"SELECT * FROM {KPI_SCHEMA}.kpi_vs_objective ORDER BY kpi, source, channel, period")
    keep = ("objective_id", "kpi", "period", "period_start", "period_end", "as_of", "channel", "source",
            "account_id", "actual", "target", "target_to_date", "attainment", "status", "gap_text", "currency",
            "provisional", "owner")
    today = as_of.isoformat()
    by_key = {p.key: p for p in periods}
    for r in rows:
        row = {k: r.get(k) for k in keep}
        row["account_id"] = row["account_id"] or "all"
        running = r["period_start"] <= today <= r["period_end"]
        if running:
            out["this_month"].append(row)
            if r["period"] in ("quarter", "year"):
                out["this_quarter"].append(row)
        last = by_key.get("last_month")
        if last and r["period"] == "month" and r["period_start"] == last.current.start.isoformat():
            out["last_month"].append(row)
    return out


def _freshness(conn: duckdb.DuckDBPyConnection, existing: set[str]) -> tuple[list[dict[str, Any]], str]:
    """Per raw table: last data date, last load time, rows. From the raw tables when there are any, else from
    meta.source_freshness (the analysts' copy records them at publish time)."""
    raw = [name for name in sorted(existing) if name.partition(".")[0] in RAW_SCHEMAS]
    if not raw and _readable(conn, existing, "meta.source_freshness",
                             ("source", "table_name", "last_date", "last_loaded_at", "row_count")):
        return (_records(conn, "SELECT source, table_name, last_date, last_loaded_at, row_count "
                               "FROM meta.source_freshness ORDER BY source, table_name"), "meta.source_freshness")
    rows: list[dict[str, Any]] = []
    for name in raw:
        schema, _, table = name.partition(".")
        columns = {str(c[0]) for c in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "AND table_catalog = current_database()", [schema, table]).fetchall()}
        day = next((c for c in ("date", "send_date") if c in columns), None)
        last_date = f'CAST(max("{day}") AS DATE)' if day else "CAST(NULL AS DATE)"
        loaded = 'CAST(max("_loaded_at") AS TIMESTAMPTZ)' if "_loaded_at" in columns else "CAST(NULL AS TIMESTAMPTZ)"
        try:
            rows += _records(conn, f"SELECT ? AS source, ? AS table_name, {last_date} AS last_date, "
                                   f'{loaded} AS last_loaded_at, count(*) AS row_count FROM "{schema}"."{table}"',
                             [schema, table])
        except duckdb.Error:  # a view over a dropped table must not fail the page
            continue
    return rows, "the raw tables (max(date), max(_loaded_at))"


def _alerts(conn: duckdb.DuckDBPyConnection, existing: set[str]) -> list[dict[str, Any]] | None:
    """The open alerts of issue #23, shown at the top of the page: kpi.alert_feed (kpi_models/alerts.py), or any
    relation of that name with at least ALERT_COLUMNS. None when there is none: the section stays a placeholder."""
    if not _readable(conn, existing, ALERT_FEED, ALERT_COLUMNS):
        return None
    columns = _columns(conn, ALERT_FEED)
    optional = [c for c in ("alert_id", "severity", "channel", "account_id", "date", "detected_at", "condition")
                if c in columns]
    order = "detected_at DESC, kpi, source" if "detected_at" in columns else "kpi, source"
    return _records(conn, f"SELECT {', '.join((*ALERT_COLUMNS, *optional))} FROM {ALERT_FEED} "
                          f"WHERE lower(status) = 'open' ORDER BY {order}")


def _anomalies(conn: duckdb.DuckDBPyConnection, existing: set[str], days: Window,
               alerts: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Points to mark on the trend charts: every anomalous day judged (kpi.kpi_anomaly, with its expected band) and
    the open alerts that name a day."""
    points: list[dict[str, Any]] = []
    if _readable(conn, existing, ANOMALY_POINTS, ("date", "source", "channel", "kpi", "value", "expected_low",
                                                  "expected_high")):
        for r in _records(conn, f"SELECT date, source, channel, kpi, value, expected_low, expected_high "
                                f"FROM {ANOMALY_POINTS} WHERE date BETWEEN ? AND ? ORDER BY date",
                          [days.start, days.end]):
            points.append({"kpi": r["kpi"], "source": r["source"], "channel": r["channel"], "date": r["date"],
                           "message": f"unusual: {channel_label(r['channel'] or 'all')} outside its usual band"})
    for a in alerts or ():
        if a.get("date") and a.get("kpi"):
            points.append({"kpi": a["kpi"], "source": a["source"], "channel": a.get("channel"), "date": a["date"],
                           "message": a["message"]})
    return points


def _columns(conn: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    schema, _, table = name.partition(".")
    return {str(c[0]) for c in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "AND table_catalog = current_database()", [schema, table]).fetchall()}


def _kpis(catalogue: Catalogue) -> dict[str, dict[str, Any]]:
    """What the page needs to know of each KPI, from the catalogue (labels, units, directions, formulas)."""
    out = {}
    for k in catalogue.kpis.values():
        tables = ", ".join(f"{s.source} ({catalogue.relations[s.relation].table or s.relation})" for s in k.sources)
        out[k.kpi] = {"label": kpi_label(k.kpi), "family": k.family, "unit": display_unit(k.unit, k.kpi),
                      "direction": k.direction, "additive": k.additive, "native": k.native, "formula": k.formula,
                      "aggregation": k.aggregation,
                      "sources": list(k.source_codes), "tables": tables, "budget": k.kpi in BUDGET_KPIS}
    return out


def build_model(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue, generated_at: datetime,
                configured: Configured | None = None) -> dict[str, Any]:
    """The whole page's data. `as_of` is the last day of kpi.kpi_daily (yesterday in the reporting time zone).
    `configured`: the accounts the pipeline reads (`Configured`; None: not known, every account counts)."""
    existing = _relations(conn)
    flags = _Flags()
    model: dict[str, Any] = {
        "generated_at": generated_at.isoformat(), "as_of": None, "range": None, "periods": [],
        "default_period": DEFAULT_PERIOD, "kpis": _kpis(catalogue),
        "families": [{"key": f, "title": FAMILY_TITLES.get(f, f), "headline": HEADLINE.get(f)} for f in FAMILIES],
        "cards": [], "results": {}, "coverage": {}, "currencies": {}, "format": json.loads(format_spec()),
        "series": [], "monthly": [], "objectives": {}, "drill": {},
        "anomalies": [], "flags": flags.combos, "flag_text": FLAG_TEXT, "status": [], "freshness": [],
        "freshness_origin": "",
        "alerts": _alerts(conn, existing),
        "labels": {"channels": {}, "sources": {}},
    }
    long_columns = ("date", "source", "channel", "account_id", "kpi", "numerator", "denominator", "value",
                    "is_final", "quality")
    has_daily = _readable(conn, existing, f"{KPI_SCHEMA}.kpi_daily", long_columns)
    as_of = conn.execute(f"SELECT max(date) FROM {KPI_SCHEMA}.kpi_daily").fetchone()[0] if has_daily else None
    if as_of is not None:
        periods = presets(as_of)
        days = data_range(as_of)
        model.update(as_of=as_of.isoformat(), range=days.as_dict(),
                     periods=[{"key": p.key, "label": p.label, "running": p.running,
                               **{name: w.as_dict() for name, w in p.windows().items()}} for p in periods])
        model["results"] = _period_results(conn, catalogue, periods, flags, configured)
        model["coverage"] = _coverage(conn, catalogue, periods)
        model["currencies"] = {f"{r['kpi']}|{r['source']}": r["currency"] for r in _records(
            conn, f"SELECT kpi, source, min(currency) AS currency FROM {KPI_SCHEMA}.kpi_daily "
                  "WHERE currency IS NOT NULL GROUP BY ALL")}
        model["series"] = _series(conn, catalogue, days, flags, configured)
        if _readable(conn, existing, f"{KPI_SCHEMA}.{PERIOD_REACH_VIEW}", ("source", "date", "account_id", "period",
                                                                            "reach")):
            _platform_reach(conn, catalogue, periods, flags, model["results"])
        if _readable(conn, existing, f"{KPI_SCHEMA}.kpi_monthly", ("month_start", *long_columns[1:])):
            model["monthly"] = _monthly_native(conn, catalogue)
            _native_results(model["monthly"], periods, flags, model["results"])
        model["objectives"] = _objectives(conn, existing, periods, as_of)
        model["drill"] = _drill(conn, existing, periods)
        model["anomalies"] = _anomalies(conn, existing, days, model["alerts"])
    model["cards"] = _cards(catalogue, model)
    model["freshness"], model["freshness_origin"] = _freshness(conn, existing)
    if _readable(conn, existing, "meta.source_status", ("source", "status", "last_success", "last_failure",
                                                         "error", "stale_since")):
        model["status"] = _records(conn, "SELECT source, status, last_success, last_failure, error, stale_since "
                                         "FROM meta.source_status ORDER BY source")
    channels = {s["c"] for s in model["series"]} | {"all"}
    model["labels"] = {"channels": {c: channel_label(c) for c in sorted(channels)},
                       "sources": {s: source_label(s) for s in sorted({*catalogue_sources(catalogue)})}}
    return model


def catalogue_sources(catalogue: Catalogue) -> list[str]:
    return list(dict.fromkeys(s for k in catalogue.kpis.values() for s in k.source_codes))


def _cards(catalogue: Catalogue, model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One card per (KPI, source) that has a value in some period or an objective, in family and catalogue order,
    the family's headline KPI first."""
    present: set[tuple[str, str]] = set()
    for results in model["results"].values():
        for key in results:
            kpi, source, _ = key.split("|")
            present.add((kpi, source))
    for rows in model["objectives"].values():
        present |= {(o["kpi"], o["source"]) for o in rows}
    cards = []
    for family in FAMILIES:
        kpis = [k for k in catalogue.kpis.values() if k.family == family]
        kpis.sort(key=lambda k: k.kpi != HEADLINE.get(family))
        for k in kpis:
            for source in k.source_codes:
                if (k.kpi, source) in present:
                    cards.append({"id": f"{k.kpi}|{source}", "kpi": k.kpi, "source": source, "family": family})
    return cards


def families_with_data(model: Mapping[str, Any]) -> tuple[str, ...]:
    """The families with at least one card (the others say "no data yet")."""
    seen = {c["family"] for c in model["cards"]}
    return tuple(f for f in FAMILIES if f in seen)


def channel_rows(model: Mapping[str, Any], period: str, source: str) -> list[dict[str, Any]]:
    """The channels drill-down of one source for a preset period (web KPIs per channel, ratios of sums), the same
    table the page shows: used by tests and handy in a notebook."""
    results = model["results"].get(period, {})
    by_channel: dict[str, dict[str, Any]] = defaultdict(dict)
    for key, (cur, _, _) in results.items():
        kpi, src, channel = key.split("|")
        if src == source and channel != TOTAL and cur is not None and model["kpis"][kpi]["family"] == "web":
            by_channel[channel][kpi] = cur[2]
    return [{"channel": c, **v} for c, v in sorted(by_channel.items(), key=lambda kv: -(kv[1].get("sessions") or 0))]
