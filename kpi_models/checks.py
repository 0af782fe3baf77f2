"""Data checks on the unified KPI layer: plain functions over a DuckDB connection.

Why plain functions returning the failing rows: Dagster asset checks (wired elsewhere) only need `passed` and
something to show; tests and a CLI can call the same functions. Each result names the offending rows (date,
source, channel, kpi, currency ...), so a failure says what to look at, not just that something is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import duckdb

from connectors.batches import Stream, Window
from kpi_models.catalogue import KPI_SCHEMA, Catalogue, load_catalogue

MAX_ROWS = 50


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: `passed`, the failing rows (at most MAX_ROWS, `failures` counts them all)."""

    name: str
    passed: bool
    severity: str  # "error" (blocking) or "warn"
    description: str
    failures: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """JSON-friendly summary for run metadata (dates as ISO strings)."""
        shown = [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()} for r in self.rows]
        return {"failures": self.failures, "rows": shown, "description": self.description}


def _existing(conn: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()}


def _fetch(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> tuple[int, list[dict]]:
    cursor = conn.execute(f"SELECT * FROM ({sql}) ORDER BY ALL", list(params))
    columns = [d[0] for d in cursor.description]
    rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    return len(rows), rows[:MAX_ROWS]


def _result(name: str, description: str, found: tuple[int, list[dict]], severity: str = "error") -> CheckResult:
    count, rows = found
    return CheckResult(name, count == 0, severity, description, count, rows)


def _window_filter(window: Window | None, column: str = "date", sources: Sequence[str] | None = None,
                   source_column: str = "source") -> tuple[str, list[object]]:
    """The rows judged: a window (None: every day) and, with `sources`, only those sources' rows (a run judges the
    rows it rebuilt, never another source's)."""
    where, params = "TRUE", []
    if window is not None:
        where, params = f"{column} BETWEEN ? AND ?", [window.start, window.end]
    if sources is not None:
        where += f" AND {source_column} IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(sources))
    return where, params


def _in_list(names: Sequence[str]) -> str:
    return "(" + (", ".join(f"'{n}'" for n in names) or "''") + ")"


def _bounded(catalogue: Catalogue) -> list[str]:
    return [k.kpi for k in catalogue.kpis.values() if k.unit == "ratio" and k.bounded]


def check_numerator_within_denominator(conn: duckdb.DuckDBPyConnection, window: Window | None = None,
                                       catalogue: Catalogue | None = None, sources: Sequence[str] | None = None
                                       ) -> CheckResult:
    """Rates (unit ratio, bounded) whose numerator exceeds the denominator: a part counted twice or a
    wrong column (ad_roas and ad_conversion_rate may exceed 1 and are not bounded). A warning: such a row is
    flagged out_of_range and published, never a stop for the other rows."""
    catalogue = catalogue or load_catalogue()
    where, params = _window_filter(window, sources=sources)
    sql = (f"SELECT date, source, channel, account_id, kpi, numerator, denominator FROM {KPI_SCHEMA}.kpi_daily "
           f"WHERE kpi IN {_in_list(_bounded(catalogue))} AND numerator > denominator AND {where}")
    return _result("numerator_within_denominator", "rate numerators must not exceed their denominators",
                   _fetch(conn, sql, params), "warn")


def check_rates_in_range(conn: duckdb.DuckDBPyConnection, window: Window | None = None,
                         catalogue: Catalogue | None = None, sources: Sequence[str] | None = None) -> CheckResult:
    """Bounded rates outside [0, 1] (a part counted twice at the source). A warning: the row carries the
    out_of_range flag in its quality and is published; it stops nothing else."""
    catalogue = catalogue or load_catalogue()
    where, params = _window_filter(window, sources=sources)
    sql = (f"SELECT date, source, channel, account_id, kpi, value FROM {KPI_SCHEMA}.kpi_daily "
           f"WHERE kpi IN {_in_list(_bounded(catalogue))} AND (value < 0 OR value > 1) AND {where}")
    return _result("rates_in_range", "rates must lie in [0, 1]", _fetch(conn, sql, params), "warn")


def check_unique_keys(conn: duckdb.DuckDBPyConnection, window: Window | None = None,
                      sources: Sequence[str] | None = None) -> CheckResult:
    """Two rows for one (date, source, channel, account_id, kpi) would be summed twice by every roll-up.

    In two steps (issue #21: grouping millions of rows by five text keys was the slowest check of a full rebuild):
    the keys' 64-bit hashes are grouped first, and only rows whose hash repeats are grouped by the keys themselves.
    Two rows with the same key have the same hash, so every duplicate is found; a hash collision of different keys
    is dropped by the second step."""
    where, params = _window_filter(window, sources=sources)
    key = "date, source, channel, account_id, kpi"
    sql = (f"WITH scope AS (SELECT {key} FROM {KPI_SCHEMA}.kpi_daily WHERE {where}), "
           f"repeated AS (SELECT hash({key}) AS h FROM scope GROUP BY h HAVING count(*) > 1) "
           f"SELECT {key}, count(*) AS row_count FROM scope WHERE hash({key}) IN (SELECT h FROM repeated) "
           "GROUP BY ALL HAVING count(*) > 1")
    return _result("unique_keys", "one kpi_daily row per (date, source, channel, account_id, kpi)",
                   _fetch(conn, sql, params))


def check_kpi_completeness(conn: duckdb.DuckDBPyConnection, window: Window, tz: str = "Europe/Paris",
                           catalogue: Catalogue | None = None, built_at: datetime | None = None,
                           sources: Sequence[str] | None = None) -> CheckResult:
    """Every KPI of a source, on every day that source has raw rows (the catalogue's `raw` per relation), has
    at least one kpi_daily row. Sources whose raw table does not exist (not configured) expect nothing.
    Misses: a per-channel table not rebuilt for the window, or amounts in a currency without an FX rate.

    With `built_at` (when kpi_daily was last rebuilt), only raw rows loaded by then are expected: the
    schedule's per-source runs load while another run's kpi_daily is checked, and a row loaded after the
    rebuild is the next rebuild's to show, not a miss of this one."""
    catalogue = catalogue or load_catalogue()
    existing = _existing(conn)
    tz_literal = "'" + tz.replace("'", "''") + "'"
    # the KPIs expected per raw presence (table, day, filter, source): each raw table is read once for its days,
    # not once per KPI (issue #21: GA4's traffic table was scanned for each of its KPIs)
    expected_kpis: dict[tuple[str, str, str, str], list[str]] = {}
    for kpi in catalogue.daily():
        for s in kpi.sources:
            raw = (catalogue.relations[s.relation].raw or {}).get(s.source)
            if raw is None or raw.table not in existing or (sources is not None and s.source not in sources):
                continue
            presence = (raw.table, raw.date.replace("$tz", tz_literal), raw.where or "", s.source)
            expected_kpis.setdefault(presence, []).append(kpi.kpi)
    expected = []
    for (table, day, where, source), kpis in expected_kpis.items():
        extra = f" AND ({where})" if where else ""
        if built_at is not None:
            extra += " AND _loaded_at <= $built_at"
        kpi_list = ", ".join(f"'{k}'" for k in kpis)
        expected.append(f"SELECT d.date, '{source}' AS source, k.kpi FROM (SELECT DISTINCT {day} AS date "
                        f"FROM {table} WHERE {day} BETWEEN $start AND $end{extra}) AS d, "
                        f"(SELECT unnest([{kpi_list}]) AS kpi) AS k")
    if not expected:
        return CheckResult("kpi_completeness", True, "error", "no source is loaded: nothing expected")
    sql = (f"SELECT e.date, e.source, e.kpi FROM ({' UNION '.join(expected)}) AS e "
           f"WHERE NOT EXISTS (SELECT 1 FROM {KPI_SCHEMA}.kpi_daily AS d "
           f"WHERE d.date = e.date AND d.source = e.source AND d.kpi = e.kpi)")
    params: dict[str, object] = {"start": window.start, "end": window.end}
    if built_at is not None:
        params["built_at"] = built_at
    cursor = conn.execute(f"SELECT * FROM ({sql}) ORDER BY ALL", params)
    rows = [dict(zip(("date", "source", "kpi"), r, strict=True)) for r in cursor.fetchall()]
    return _result("kpi_completeness", "every KPI of a source on every day the source has raw rows",
                   (len(rows), rows[:MAX_ROWS]))


def check_ga4_channel_sessions(conn: duckdb.DuckDBPyConnection, window: Window) -> CheckResult:
    """GA4 sessions per day agree at every step: raw per-channel rows summed, kpi.web_daily summed over
    channels, kpi.kpi_daily `sessions` summed over channels. GA4 has no separate total report here, so the
    raw per-channel sum is the property total; a mismatch means channel rows were lost or doubled."""
    if "ga4.traffic_by_channel" not in _existing(conn):
        return CheckResult("ga4_channel_sessions", True, "error", "GA4 not loaded: nothing to compare")
    sql = f"""
        WITH raw AS (SELECT date, sum(sessions) AS raw_sessions FROM ga4.traffic_by_channel
                     WHERE date BETWEEN $start AND $end GROUP BY date),
             web AS (SELECT date, sum(sessions) AS web_daily_sessions FROM {KPI_SCHEMA}.web_daily
                     WHERE source = 'ga4' AND date BETWEEN $start AND $end GROUP BY date),
             kpi AS (SELECT date, sum(numerator) AS kpi_daily_sessions FROM {KPI_SCHEMA}.kpi_daily
                     WHERE source = 'ga4' AND kpi = 'sessions' AND date BETWEEN $start AND $end GROUP BY date)
        SELECT date, raw_sessions, web_daily_sessions, kpi_daily_sessions
        FROM raw FULL JOIN web USING (date) FULL JOIN kpi USING (date)
        WHERE raw_sessions IS DISTINCT FROM web_daily_sessions OR raw_sessions IS DISTINCT FROM kpi_daily_sessions
    """
    cursor = conn.execute(f"SELECT * FROM ({sql}) ORDER BY ALL", {"start": window.start, "end": window.end})
    columns = [d[0] for d in cursor.description]
    rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    return _result("ga4_channel_sessions", "GA4 channel sessions sum to the same daily total in raw, web_daily "
                   "and kpi_daily", (len(rows), rows[:MAX_ROWS]))


def check_single_currency(conn: duckdb.DuckDBPyConnection, window: Window | None = None,
                          catalogue: Catalogue | None = None, sources: Sequence[str] | None = None) -> CheckResult:
    """One currency inside every money sum: a Google Ads customer reports in one currency (two would mean
    its rows cannot be added), money rows of kpi_daily are all in the reporting currency, and non-money rows
    carry no currency."""
    catalogue = catalogue or load_catalogue()
    where, params = _window_filter(window, sources=sources)
    money = _in_list([k.kpi for k in catalogue.kpis.values() if k.is_money])
    parts = [
        f"SELECT 'kpi.kpi_daily' AS table_name, kpi AS subject, list(DISTINCT coalesce(currency, 'NULL') "
        f"ORDER BY coalesce(currency, 'NULL')) AS currencies, count(*) AS row_count FROM {KPI_SCHEMA}.kpi_daily "
        f"WHERE {where} AND ((kpi IN {money} AND currency IS DISTINCT FROM "
        f"(SELECT any_value(reporting_currency) FROM {KPI_SCHEMA}.fx_rate)) "
        f"OR (kpi NOT IN {money} AND currency IS NOT NULL)) GROUP BY kpi",
    ]
    all_params: list[object] = list(params)
    if f"{KPI_SCHEMA}.paid_search_daily" in _existing(conn):
        parts.append(
            f"SELECT 'kpi.paid_search_daily' AS table_name, 'customer ' || customer_id AS subject, "
            f"list(DISTINCT currency_code ORDER BY currency_code) AS currencies, count(*) AS row_count "
            f"FROM {KPI_SCHEMA}.paid_search_daily WHERE {where} GROUP BY customer_id "
            f"HAVING count(DISTINCT currency_code) > 1")
        all_params += params
    if f"{KPI_SCHEMA}.fx_rate" not in _existing(conn):
        return CheckResult("single_currency", False, "error", "kpi.fx_rate is missing: run rebuild_kpi_daily",
                           1, [{"table_name": "kpi.fx_rate", "subject": "missing"}])
    return _result("single_currency", "one currency per money sum; kpi_daily money in the reporting currency",
                   _fetch(conn, " UNION ALL ".join(parts), all_params))


def check_fx_rates_available(conn: duckdb.DuckDBPyConnection, window: Window | None = None,
                             catalogue: Catalogue | None = None) -> CheckResult:
    """Days and currencies in money relations (paid_search_daily, ecommerce_daily) with no FX rate that day (a
    currency the ECB does not fix, a day before its history, `fx_source: config` without a rate): their rows are
    left out of kpi_daily, so the totals there are short by these rows until a rate is added."""
    catalogue = catalogue or load_catalogue()
    existing = _existing(conn)
    where, params = _window_filter(window, "r.date")
    parts, all_params = [], []
    for relation in catalogue.relations.values():
        if not relation.currency_column or relation.table not in existing:
            continue
        parts.append(
            f"SELECT '{relation.table}' AS table_name, r.source, r.{relation.currency_column} AS currency, "
            f"min(r.date) AS first_date, max(r.date) AS last_date, count(*) AS rows_left_out "
            f"FROM {relation.table} AS r LEFT JOIN {KPI_SCHEMA}.fx_rate AS fx "
            f"ON fx.currency = r.{relation.currency_column} AND fx.date = r.date "
            f"WHERE fx.currency IS NULL AND r.{relation.currency_column} IS NOT NULL AND {where} GROUP BY ALL")
        all_params += params
    if not parts:
        return CheckResult("fx_rates_available", True, "error", "no money relation is built")
    if f"{KPI_SCHEMA}.fx_rate" not in existing:
        return CheckResult("fx_rates_available", False, "error", "kpi.fx_rate is missing: run rebuild_kpi_daily",
                           1, [{"table_name": "kpi.fx_rate", "currency": None}])
    return _result("fx_rates_available", "every currency in money tables has an FX rate to the reporting currency",
                   _fetch(conn, " UNION ALL ".join(parts), all_params))


# HubSpot values the KPI SQL casts (TRY_CAST) because the portal types them: (table, column, type used).
HUBSPOT_CASTS = (
    ("hubspot.contacts", "createdate", "TIMESTAMPTZ"),
    ("hubspot.contacts", "hs_lifecyclestage_lead_date", "TIMESTAMPTZ"),
    ("hubspot.contacts", "hs_lifecyclestage_customer_date", "TIMESTAMPTZ"),
    ("hubspot.contacts", "churn_date", "DATE"),
    ("hubspot.deals", "closedate", "TIMESTAMPTZ"),
    ("hubspot.feedback_submissions", "hs_submission_timestamp", "TIMESTAMPTZ"),
    ("hubspot.feedback_submissions", "hs_value", "DOUBLE"),
)


def check_hubspot_values_cast(conn: duckdb.DuckDBPyConnection) -> CheckResult:
    """A warning: HubSpot values the KPIs read that do not cast to the type they are used as (a property re-typed
    as text in the portal, a date in another format). Each is counted as missing by the KPIs (TRY_CAST gives NULL),
    never a SQL error; this names the table, the column, how many and an example."""
    existing = _existing(conn)
    parts = [f"SELECT '{table}' AS table_name, '{column}' AS column_name, count(*) AS values_not_cast, "
             f"CAST(any_value(CAST({column} AS VARCHAR)) AS VARCHAR) AS example FROM {table} "
             f"WHERE {column} IS NOT NULL AND TRY_CAST({column} AS {kind}) IS NULL HAVING count(*) > 0"
             for table, column, kind in HUBSPOT_CASTS
             if table in existing and column in _columns_of(conn, table)]
    if not parts:
        return CheckResult("hubspot_values_cast", True, "warn", "no HubSpot table loaded")
    return _result("hubspot_values_cast", "HubSpot values the KPIs read cast to the type they are used as",
                   _fetch(conn, " UNION ALL ".join(parts)), "warn")


def _columns_of(conn: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    schema, name = table.split(".", 1)
    return {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                                       "AND table_name = ?", [schema, name]).fetchall()}


def check_kpis_without_objective(conn: duckdb.DuckDBPyConnection, objectives: Sequence[Any] | None = None,
                                 catalogue: Catalogue | None = None) -> CheckResult:
    """Warning: catalogue KPIs no objective covers (a KPI means little without one). Reads `objectives`
    (Objective objects) or else kpi.objective; lists each uncovered KPI with whether it has data."""
    catalogue = catalogue or load_catalogue()
    if objectives is not None:
        covered = {o.kpi for o in objectives}
    elif f"{KPI_SCHEMA}.objective" in _existing(conn):
        covered = {r[0] for r in conn.execute(f"SELECT DISTINCT kpi FROM {KPI_SCHEMA}.objective").fetchall()}
    else:
        covered = set()
    with_data: set[str] = set()
    if f"{KPI_SCHEMA}.kpi_daily" in _existing(conn):
        with_data = {r[0] for r in conn.execute(f"SELECT DISTINCT kpi FROM {KPI_SCHEMA}.kpi_daily").fetchall()}
    rows = [{"kpi": k.kpi, "family": k.family, "has_daily_data": k.kpi in with_data}
            for k in catalogue.kpis.values() if k.kpi not in covered]
    return _result("kpis_without_objective", "KPIs with no objective", (len(rows), rows[:MAX_ROWS]), "warn")


def declared_column_types(conn: duckdb.DuckDBPyConnection, stream: Stream) -> dict[str, str]:
    """The DuckDB types the loader gives a stream's declared columns (as `_ensure_table` creates them)."""
    view = "__mkpi_declared_" + stream.table.replace(".", "_")
    conn.register(view, stream.schema.empty_table())
    try:
        return {str(r[0]): str(r[1]) for r in conn.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()}
    finally:
        conn.unregister(view)


def check_raw_contract(conn: duckdb.DuckDBPyConnection, streams: Sequence[Stream]) -> CheckResult:
    """Schema drift: the raw columns the KPI SQL reads still exist with the type it was written for.

    Why: the raw layer may evolve (a source's new column is added by the loader and ignored by the KPI SQL,
    whose column lists are frozen), but a column that disappeared or changed type (a DOUBLE turned VARCHAR)
    would make the KPI SQL fail or, worse, compare text. Every declared column must exist; a declared
    number, date, timestamp or boolean must keep its exact type; a declared text column (a label or an id)
    may be typed otherwise by the platform (HubSpot types ids from the portal's definitions). Tables not
    loaded yet are skipped: the KPI SQL reads them as empty. Columns the declaration does not know are listed
    in the description, never a failure."""
    rows: list[dict[str, Any]] = []
    new_columns: list[str] = []
    for stream in streams:
        schema, name = stream.table.split(".", 1)
        found = {str(r[0]): str(r[1]) for r in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = ?", [schema, name]).fetchall()}
        if not found:
            continue
        declared = declared_column_types(conn, stream)
        for column, expected in declared.items():
            actual = found.get(column)
            if actual is None or (actual != expected and expected != "VARCHAR"):
                rows.append({"table": stream.table, "column": column, "declared": expected,
                             "found": actual or "missing"})
        new_columns += [f"{stream.table}.{c}" for c in found if c not in declared and not c.startswith("_")]
    description = "Raw columns read by the KPI SQL exist with their declared types"
    if new_columns:
        description += f" (new raw columns, not read by any KPI: {', '.join(sorted(new_columns))})"
    return _result("raw_contract", description, (len(rows), rows[:MAX_ROWS]))


def run_all_checks(conn: duckdb.DuckDBPyConnection, window: Window, tz: str = "Europe/Paris",
                   objectives: Sequence[Any] | None = None) -> list[CheckResult]:
    """Every check above over one window, in a stable order."""
    return [
        check_unique_keys(conn, window),
        check_numerator_within_denominator(conn, window),
        check_rates_in_range(conn, window),
        check_kpi_completeness(conn, window, tz),
        check_ga4_channel_sessions(conn, window),
        check_single_currency(conn, window),
        check_fx_rates_available(conn, window),
        check_kpis_without_objective(conn, objectives),
    ]
