"""Objectives: per-KPI targets as data, and how each KPI stands against them (`kpi.kpi_vs_objective`).

Why: a KPI means little without its objective (KPI_CATALOGUE "Objectives"). The comparison has traps this
module owns once: additive KPIs are compared with the target pro-rated to the elapsed part of the period (and
forecast to its end); ratios are a ratio of sums over the period so far, never pro-rated; lower-is-better KPIs
invert attainment; a ratio over a tiny denominator is `insufficient_data`, not a red light.

File format (YAML, path from settings `objectives_path` / env MKPI_OBJECTIVES):

    objectives:
      - kpi: conversion_rate      # a catalogue KPI (unknown -> error)
        source: ga4               # required when the KPI has several sources (never blend GA4 and Matomo)
        channel: paid_search      # optional: omitted = all channels summed
        period: month             # month | quarter | year (native monthly KPIs: month only)
        target: 0.03
        tolerance: 0.05           # at_risk down to attainment 1 - tolerance (default 0.05)
        owner: growth team        # optional
        from: 2026-01-01          # optional validity; a standing objective recurs every period it overlaps
        until: 2026-12-31
        min_denominator: 500      # optional; default per KPI unit from settings.min_denominators
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import yaml

from connectors.ducklake import conflict_retried
from connectors.settings import DEFAULT_MIN_DENOMINATORS, PROJECT_ROOT
from connectors.warehouse import replace_table, table_exists
from kpi_models.catalogue import KPI_SCHEMA, Catalogue, KpiDefinition, load_catalogue

PERIODS = ("month", "quarter", "year")
STATUSES = ("on_track", "at_risk", "off_track", "insufficient_data")
DEFAULT_TOLERANCE = 0.05


class ObjectiveError(ValueError):
    """The objectives file is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class Objective:
    """One target for one KPI (of one source, optionally one channel) per period."""

    objective_id: str
    kpi: str
    source: str
    period: str
    target: float
    tolerance: float = DEFAULT_TOLERANCE
    channel: str | None = None
    owner: str | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    min_denominator: float | None = None


# --- loading ---------------------------------------------------------------------------------------------------


def resolve_objectives_path(path: str | Path) -> Path:
    """A relative path is taken from the working directory, else from the project root (like `make` runs)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return PROJECT_ROOT / candidate


def _date(value: Any, where: str, key: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ObjectiveError(f"{where}: `{key}` {value!r} is not an ISO date (YYYY-MM-DD)") from exc


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ObjectiveError(f"{where}: `{key}` must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ObjectiveError(f"{where}: `{key}` must be a number, got {value!r}") from exc
    if math.isnan(number) or math.isinf(number):
        raise ObjectiveError(f"{where}: `{key}` must be a finite number")
    return number


_KEYS = {"id", "kpi", "source", "channel", "period", "target", "tolerance", "owner", "from", "until",
         "min_denominator"}


def parse_objectives(raw: Any, origin: str = "objectives", catalogue: Catalogue | None = None) -> list[Objective]:
    """Validate parsed YAML (a list, or a mapping with `objectives:`) against the catalogue."""
    catalogue = catalogue or load_catalogue()
    entries = raw.get("objectives") if isinstance(raw, Mapping) else raw
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ObjectiveError(f"{origin}: expected a list of objectives under `objectives:`")
    objectives: list[Objective] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{origin}: objectives[{index}]"
        if not isinstance(entry, Mapping):
            raise ObjectiveError(f"{where} must be a mapping with kpi, period, target")
        name = entry.get("kpi")
        where = f"{where} (kpi {name})"
        unknown_keys = sorted(set(map(str, entry)) - _KEYS)
        if unknown_keys:
            raise ObjectiveError(f"{where}: unknown field(s) {unknown_keys}; allowed: {sorted(_KEYS)}")
        if name not in catalogue.kpis:
            raise ObjectiveError(f"{where}: unknown kpi {name!r}; see kpi_models/catalogue.yaml")
        kpi = catalogue[str(name)]
        objectives.append(_parse_one(entry, kpi, where, index))
        if objectives[-1].objective_id in seen:
            raise ObjectiveError(f"{where}: duplicate objective {objectives[-1].objective_id!r}; give it an `id`")
        seen.add(objectives[-1].objective_id)
    return objectives


def _parse_one(entry: Mapping[str, Any], kpi: KpiDefinition, where: str, index: int) -> Objective:
    period = str(entry.get("period") or "")
    if period not in PERIODS:
        raise ObjectiveError(f"{where}: `period` is {entry.get('period')!r}, expected one of {', '.join(PERIODS)}")
    if kpi.native and period != "month":
        raise ObjectiveError(f"{where}: {kpi.kpi} exists only per month (native grain): use period: month")
    source = entry.get("source")
    if source is None:
        if len(kpi.sources) > 1:
            raise ObjectiveError(f"{where}: {kpi.kpi} comes from {', '.join(kpi.source_codes)}, which are never "
                                 "blended: set `source`")
        source = kpi.sources[0].source
    if str(source) not in kpi.source_codes:
        raise ObjectiveError(f"{where}: {kpi.kpi} has no source {source!r} (it has {', '.join(kpi.source_codes)})")
    channel = entry.get("channel")
    channel = None if channel in (None, "", "all") else str(channel)
    if kpi.native and channel is not None:
        raise ObjectiveError(f"{where}: {kpi.kpi} has no channel breakdown")
    target = _number(entry.get("target"), where, "target")
    if kpi.bounded and not 0 <= target <= 1:
        raise ObjectiveError(f"{where}: {kpi.kpi} is a rate in [0, 1]: target {target} (write 3% as 0.03)")
    tolerance = _number(entry.get("tolerance", DEFAULT_TOLERANCE), where, "tolerance")
    if not 0 <= tolerance < 1:
        raise ObjectiveError(f"{where}: `tolerance` must be in [0, 1) (0.05 = 5% below target is at_risk)")
    valid_from = _date(entry.get("from"), where, "from")
    valid_until = _date(entry.get("until"), where, "until")
    if valid_from and valid_until and valid_until < valid_from:
        raise ObjectiveError(f"{where}: `until` {valid_until} is before `from` {valid_from}")
    min_den = entry.get("min_denominator")
    if min_den is not None:
        if kpi.additive:
            raise ObjectiveError(f"{where}: min_denominator applies to ratio KPIs; {kpi.kpi} is additive")
        min_den = _number(min_den, where, "min_denominator")
        if min_den < 0:
            raise ObjectiveError(f"{where}: min_denominator must be >= 0")
    default_id = "/".join([kpi.kpi, str(source), channel or "all", period]
                          + ([valid_from.isoformat()] if valid_from else []))
    owner = entry.get("owner")
    return Objective(
        objective_id=str(entry.get("id") or default_id), kpi=kpi.kpi, source=str(source), period=period,
        target=target, tolerance=tolerance, channel=channel, owner=str(owner) if owner else None,
        valid_from=valid_from, valid_until=valid_until, min_denominator=min_den)


def load_objectives(path: str | Path, catalogue: Catalogue | None = None) -> list[Objective]:
    """Read and validate an objectives file; a missing or invalid file is an error naming it."""
    resolved = resolve_objectives_path(path)
    if not resolved.exists():
        raise ObjectiveError(f"objectives file {resolved} does not exist (set MKPI_OBJECTIVES or objectives_path)")
    try:
        raw = yaml.safe_load(resolved.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ObjectiveError(f"objectives file {resolved} is not valid YAML: {exc}") from exc
    return parse_objectives(raw, str(resolved), catalogue)


# --- kpi.objective ---------------------------------------------------------------------------------------------

_OBJECTIVE_SCHEMA = pa.schema([
    ("objective_id", pa.string()), ("kpi", pa.string()), ("source", pa.string()), ("channel", pa.string()),
    ("period", pa.string()), ("target", pa.float64()), ("tolerance", pa.float64()), ("owner", pa.string()),
    ("valid_from", pa.date32()), ("valid_until", pa.date32()), ("min_denominator", pa.float64()),
])


def _replace_table(conn: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    replace_table(conn, f"{KPI_SCHEMA}.{name}", table)


def write_objectives(conn: duckdb.DuckDBPyConnection, objectives: Sequence[Objective]) -> int:
    """Replace `kpi.objective` with the validated objectives (channel NULL = all channels)."""
    rows = [{f: getattr(o, f) for f in _OBJECTIVE_SCHEMA.names} for o in objectives]
    _replace_table(conn, "objective", pa.Table.from_pylist(rows, schema=_OBJECTIVE_SCHEMA))
    return len(rows)


# --- periods ---------------------------------------------------------------------------------------------------


def period_bounds(period: str, day: date) -> tuple[date, date]:
    """The month, quarter or year containing `day`, as inclusive (start, end)."""
    if period == "month":
        start = day.replace(day=1)
    elif period == "quarter":
        start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    elif period == "year":
        start = date(day.year, 1, 1)
    else:
        raise ValueError(f"unknown period {period!r}")
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    year, month = divmod(start.month - 1 + months, 12)
    return start, date(start.year + year, month + 1, 1) - timedelta(days=1)


def _periods(period: str, first: date, last: date) -> list[tuple[date, date]]:
    out = []
    start, end = period_bounds(period, first)
    while start <= last:
        out.append((start, end))
        start, end = period_bounds(period, end + timedelta(days=1))
    return out


# --- comparison maths ------------------------------------------------------------------------------------------


def attainment(actual: float | None, target: float, lower_is_better: bool) -> float | None:
    """actual / target (target / actual when lower is better); 1 means exactly on target.

    For targets or actuals at or below zero (an NPS can be negative) the ratio would flip meaning, so the
    relative distance is used instead: 1 + (actual - target) / |target| (sign reversed when lower is better)."""
    if actual is None or target == 0:
        return None
    if target > 0 and actual > 0:
        return target / actual if lower_is_better else actual / target
    if lower_is_better and target > 0 and actual == 0:
        return None  # nothing spent / nothing bounced: better than any target, reported as on_track
    distance = (target - actual) if lower_is_better else (actual - target)
    return 1 + distance / abs(target)


def status(attained: float | None, tolerance: float, actual: float | None, target: float,
           lower_is_better: bool) -> str:
    """on_track (>= 1), at_risk (>= 1 - tolerance), off_track; a zero target or actual is judged directly."""
    if actual is None:
        return "insufficient_data"
    if attained is None:  # target 0, or actual 0 against a lower-is-better target
        meets = actual <= target if lower_is_better else actual >= target
        return "on_track" if meets else "off_track"
    if attained >= 1:
        return "on_track"
    return "at_risk" if attained >= 1 - tolerance else "off_track"


def _format_amount(amount: float, money: str | None, round_up: bool) -> str:
    if money:
        return f"{amount:,.2f} {money}"
    whole = math.ceil(amount - 1e-9) if round_up else math.floor(amount + 1e-9)
    return f"{whole:,}"


def gap_text(gap: float | None, name: str, lower_is_better: bool, money: str | None = None,
             suffix: str = "needed") -> str | None:
    """Readable gap: "+37 converting_sessions needed", "-12 bounced_sessions needed" (the numerator must drop),
    or "on target (5 converting_sessions to spare)". Counts round up what is needed, down what is spare."""
    if gap is None:
        return None
    behind = gap < 0 if lower_is_better else gap > 0
    if behind:
        sign = "-" if lower_is_better else "+"
        return f"{sign}{_format_amount(abs(gap), money, True)} {name} {suffix}"
    return f"on target ({_format_amount(abs(gap), money, False)} {name} to spare)"


# --- kpi.kpi_vs_objective -----------------------------------------------------------------------------------------

_RESULT_SCHEMA = pa.schema([
    ("objective_id", pa.string()), ("kpi", pa.string()), ("period", pa.string()), ("period_start", pa.date32()),
    ("period_end", pa.date32()), ("as_of", pa.date32()), ("elapsed_fraction", pa.float64()),
    ("channel", pa.string()), ("source", pa.string()), ("owner", pa.string()), ("actual", pa.float64()),
    ("target", pa.float64()), ("target_to_date", pa.float64()), ("forecast", pa.float64()),
    ("attainment", pa.float64()), ("status", pa.string()), ("tolerance", pa.float64()),
    ("numerator", pa.float64()), ("denominator", pa.float64()), ("min_denominator", pa.float64()),
    ("gap", pa.float64()), ("gap_text", pa.string()), ("direction", pa.string()), ("aggregation", pa.string()),
    ("unit", pa.string()), ("currency", pa.string()), ("days_with_data", pa.int64()),
])


def _table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    return table_exists(conn, f"{KPI_SCHEMA}.{name}")


def _data_range(conn: duckdb.DuckDBPyConnection, o: Objective, kpi: KpiDefinition) -> tuple[date, date] | None:
    """First and last day with data for the KPI's source (any channel: one quiet channel does not move as-of)."""
    if kpi.native:
        if not (_table_exists(conn, "crm_monthly") and _table_exists(conn, "kpi_monthly")):
            return None
        row = conn.execute(f"SELECT min(month), max(month) FROM {KPI_SCHEMA}.crm_monthly WHERE source = ?",
                           [o.source]).fetchone()
        if not row or row[0] is None:
            return None
        last_day = None
        if _table_exists(conn, "kpi_daily"):  # the CRM's own last day of activity dates the current month
            found = conn.execute(f"SELECT max(date) FROM {KPI_SCHEMA}.kpi_daily WHERE source = ?",
                                 [o.source]).fetchone()
            last_day = found[0] if found else None
        return row[0], last_day or period_bounds("month", row[1])[1]
    if not _table_exists(conn, "kpi_daily"):
        return None
    row = conn.execute(f"SELECT min(date), max(date) FROM {KPI_SCHEMA}.kpi_daily WHERE kpi = ? AND source = ?",
                       [o.kpi, o.source]).fetchone()
    if not row or row[0] is None:
        return None
    return row[0], row[1]


Parts = tuple[float | None, float | None, int, str | None]


def _actuals(conn: duckdb.DuckDBPyConnection, o: Objective, kpi: KpiDefinition,
             periods: Sequence[tuple[date, date]]) -> list[Parts]:
    """(numerator, denominator, days with data, currency) summed over each period so far, in one query for
    all of an objective's periods (a query per period made the one-day recompute slow, issue #9)."""
    if not periods:
        return []
    if kpi.native:
        found = {r[0]: (r[1], r[2], 1, r[3]) for r in conn.execute(
            f"SELECT month_start, numerator, denominator, currency FROM {KPI_SCHEMA}.kpi_monthly "
            "WHERE kpi = ? AND source = ? AND channel = 'all' AND month_start IN (SELECT unnest(?::DATE[]))",
            [o.kpi, o.source, [start for start, _ in periods]]).fetchall()}
        return [found.get(start, (None, None, 0, None)) for start, _ in periods]
    sql = (f"SELECT p.i, sum(k.numerator), sum(k.denominator), count(DISTINCT k.date), any_value(k.currency) "
           f"FROM (SELECT unnest(?::INTEGER[]) AS i, unnest(?::DATE[]) AS s, unnest(?::DATE[]) AS e) AS p "
           f"JOIN {KPI_SCHEMA}.kpi_daily AS k ON k.date BETWEEN p.s AND p.e "
           "WHERE k.kpi = ? AND k.source = ?")
    params: list[object] = [list(range(len(periods))), [s for s, _ in periods], [e for _, e in periods],
                            o.kpi, o.source]
    if o.channel is not None:
        sql += " AND k.channel = ?"
        params.append(o.channel)
    found = {r[0]: (r[1], r[2], int(r[3]), r[4]) for r in conn.execute(sql + " GROUP BY p.i", params).fetchall()
             if r[3]}
    return [found.get(i, (None, None, 0, None)) for i in range(len(periods))]


def _evaluate(o: Objective, kpi: KpiDefinition, start: date, end: date, as_of: date,
              parts: Parts, min_denominators: Mapping[str, float],
              first_data_day: date | None = None) -> dict[str, Any]:
    numerator, denominator, days, currency = parts
    elapsed_end = min(as_of, end)
    elapsed = ((elapsed_end - start).days + 1) / ((end - start).days + 1)
    lower = kpi.lower_is_better
    min_den = None if kpi.additive else (o.min_denominator if o.min_denominator is not None
                                         else float(min_denominators.get(kpi.unit, 0.0)))
    money = currency if kpi.is_money else None
    name = kpi.source(o.source).numerator_name
    forecast = gap = None
    if kpi.additive:
        actual = numerator if days else None
        target_to_date = o.target * elapsed
        forecast = actual / elapsed if actual is not None and elapsed > 0 else None
        attained = attainment(actual, target_to_date, lower)
        if actual is not None:
            gap = target_to_date - actual
        text = gap_text(gap, name, lower, money, "needed to be on pace")
        # A sum over a period whose first days were never loaded would read as a shortfall: not judged.
        insufficient = actual is None or (first_data_day is not None and first_data_day > start)
    else:
        actual = numerator / denominator if numerator is not None and denominator else None
        target_to_date = o.target  # ratios are compared as they stand, never pro-rated
        attained = attainment(actual, o.target, lower)
        if numerator is not None and denominator:
            # The numerator change that hits the target at the current denominator.
            gap = o.target * denominator - numerator
        numerator_money = money if "fx_rate" in kpi.source(o.source).numerator else None
        text = gap_text(gap, name, lower, numerator_money or None)
        insufficient = actual is None or (denominator or 0) < (min_den or 0)
    state = "insufficient_data" if insufficient else status(attained, o.tolerance, actual, target_to_date, lower)
    return {
        "objective_id": o.objective_id, "kpi": o.kpi, "period": o.period, "period_start": start,
        "period_end": end, "as_of": as_of, "elapsed_fraction": elapsed, "channel": o.channel or "all",
        "source": o.source, "owner": o.owner, "actual": actual, "target": o.target,
        "target_to_date": target_to_date, "forecast": forecast, "attainment": attained, "status": state,
        "tolerance": o.tolerance, "numerator": numerator, "denominator": denominator, "min_denominator": min_den,
        "gap": gap, "gap_text": text, "direction": kpi.direction, "aggregation": kpi.aggregation,
        "unit": kpi.unit, "currency": money, "days_with_data": days,
    }


@conflict_retried  # on a DuckLake, run again whole if it lost a commit race to another writer
def build_kpi_vs_objective(
    conn: duckdb.DuckDBPyConnection,
    objectives: Sequence[Objective] | str | Path,
    as_of: date | None = None,
    tz: str = "Europe/Paris",
    min_denominators: Mapping[str, float] | None = None,
    catalogue: Catalogue | None = None,
) -> list[dict[str, Any]]:
    """Write `kpi.objective` and `kpi.kpi_vs_objective` and return the latter's rows.

    One row per objective and period (within the objective's validity) from the first day with data up to the
    as-of date. As-of is the given date, else the last day with data for the KPI's source, never later than
    yesterday in `tz` (today is incomplete). Reads kpi.kpi_daily, and kpi.kpi_monthly for native KPIs."""
    catalogue = catalogue or load_catalogue()
    if isinstance(objectives, str | Path):
        objectives = load_objectives(objectives, catalogue)
    minimums = {**DEFAULT_MIN_DENOMINATORS, **(min_denominators or {})}
    yesterday = datetime.now(ZoneInfo(tz)).date() - timedelta(days=1)
    write_objectives(conn, objectives)
    rows: list[dict[str, Any]] = []
    for o in objectives:
        kpi = catalogue[o.kpi]
        found = _data_range(conn, o, kpi)
        if found is None:
            continue
        first, last = found
        objective_as_of = as_of or min(last, yesterday)
        start_from = max(first, o.valid_from) if o.valid_from else first
        periods = [(start, end) for start, end in _periods(o.period, start_from, objective_as_of)
                   if not ((o.valid_from and end < o.valid_from) or (o.valid_until and start > o.valid_until))]
        actuals = _actuals(conn, o, kpi, [(start, min(end, objective_as_of)) for start, end in periods])
        for (start, end), parts in zip(periods, actuals, strict=True):
            rows.append(_evaluate(o, kpi, start, end, objective_as_of, parts, minimums, first))
    _replace_table(conn, "kpi_vs_objective", pa.Table.from_pylist(rows, schema=_RESULT_SCHEMA))
    return rows
