"""The KPI catalogue as data (`kpi_models/catalogue.yaml`): loaded, validated, and turned into SQL.

Why one file: the KPI names, units, directions and the exact numerator / denominator of every KPI per
source are needed by the unified table (`kpi.kpi_daily`), its roll-ups, the objectives, the checks, the
docs and a dashboard. Written once as data, they cannot disagree; `kpi.kpi_daily`'s SQL and the roll-up
views are generated from it, not written five times by hand.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import import_module, resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from connectors import registry
from connectors.warehouse import replace_table
from connectors.yaml_text import safe_load

KPI_SCHEMA = "kpi"
FAMILIES = ("web", "seo", "paid_search", "email", "ecommerce", "crm", "roi", "social")
# How a cross-source KPI attributes outcomes to the channel that paid for them (named in every row it has).
ATTRIBUTIONS = ("ga4_session_channel", "hubspot_original_source")
UNITS = ("count", "ratio", "seconds", "currency", "position", "score")
# sum: additive; ratio: sum(numerator) / sum(denominator); native: only at its monthly grain; last: a level (followers)
# rolled up by the period's last day's value; distinct: a count of distinct people (reach), never summed across days:
# a longer period takes the platform's own value for it (kpi.social_period_reach) or is NULL, flagged not_additive.
AGGREGATIONS = ("sum", "ratio", "native", "last", "distinct")
# The roll-ups' quality flag of a level (followers) an account has no row for on its period's last day (the latest
# day with data of that period, source and channel): its level for the period is unknown, NULL (never an older day's).
NO_LAST_DAY_FLAG = "no_last_day_level"
# The aggregations whose KPIs have no denominator: their daily value is the numerator.
NO_DENOMINATOR = ("sum", "last", "distinct")
# The platforms' own distinct reach over a week / 28 days ending on `date` (kpi_models.layer creates it).
PERIOD_REACH_VIEW = "social_period_reach"
DIRECTIONS = ("higher", "lower")
SOURCES = registry.codes()  # the source vocabulary of the catalogue: the registered sources' codes
GRAINS = ("day", "month")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class CatalogueError(ValueError):
    """The catalogue file is inconsistent; the message names the entry."""


@dataclass(frozen=True)
class RawPresence:
    """The raw rows whose presence on a day means a source reported that day (for completeness checks)."""

    table: str
    date: str
    where: str | None = None


@dataclass(frozen=True)
class Relation:
    """Where KPI parts are read from: a per-channel KPI table or a small SELECT over raw rows."""

    name: str
    grain: str
    table: str | None = None
    sql: str | None = None
    where: str | None = None
    currency_column: str | None = None
    money_columns: tuple[str, ...] = ()
    raw: Mapping[str, RawPresence] | None = None
    # Amounts already in the reporting currency (converted at each day's rate by the relation's own SQL, which also
    # gives `currency`, `is_final` and `quality`): money KPIs read them as they are, without `* fx_rate`.
    converted: bool = False
    # Sources whose runs change this relation's rows beside the KPI's own (a cross-source relation).
    reads: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        """The name to read it by in generated SQL (the table, or the CTE named after the relation)."""
        return self.table or self.name


@dataclass(frozen=True)
class KpiSource:
    """One source of a KPI: the relation and the numerator / denominator expressions summed at the grain."""

    source: str
    relation: str
    numerator: str
    denominator: str | None
    numerator_name: str
    # Cross-source KPIs: how outcomes are attributed to channels (ATTRIBUTIONS), written in each row.
    attribution: str | None = None


@dataclass(frozen=True)
class KpiDefinition:
    """One KPI of KPI_CATALOGUE.md."""

    kpi: str
    family: str
    unit: str
    aggregation: str
    direction: str
    formula: str
    sources: tuple[KpiSource, ...]
    bounded: bool

    @property
    def additive(self) -> bool:
        return self.aggregation == "sum"

    @property
    def native(self) -> bool:
        return self.aggregation == "native"

    @property
    def has_denominator(self) -> bool:
        """A ratio (or native ratio) KPI; the others' value is their numerator on a day."""
        return self.aggregation not in NO_DENOMINATOR

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"

    @property
    def is_money(self) -> bool:
        return self.unit == "currency"

    @property
    def source_codes(self) -> tuple[str, ...]:
        return tuple(s.source for s in self.sources)

    def source(self, code: str) -> KpiSource:
        for s in self.sources:
            if s.source == code:
                return s
        raise KeyError(f"KPI {self.kpi} has no source {code!r} (it has {', '.join(self.source_codes)})")


@dataclass(frozen=True)
class Catalogue:
    """All KPIs (in file order) and the relations they read."""

    kpis: Mapping[str, KpiDefinition]
    relations: Mapping[str, Relation]

    def __getitem__(self, kpi: str) -> KpiDefinition:
        return self.kpis[kpi]

    def daily(self) -> list[KpiDefinition]:
        """The KPIs stored in kpi.kpi_daily (all but the native-grain ones)."""
        return [k for k in self.kpis.values() if not k.native]

    def native(self) -> list[KpiDefinition]:
        return [k for k in self.kpis.values() if k.native]


DEFAULT_PATH = "catalogue.yaml"


def _text(entry: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CatalogueError(f"{where}: `{key}` is required")
        return None
    return str(value).strip()


def _choice(entry: Mapping[str, Any], key: str, allowed: Sequence[str], where: str) -> str:
    value = _text(entry, key, where)
    if value not in allowed:
        raise CatalogueError(f"{where}: `{key}` is {value!r}, expected one of {', '.join(allowed)}")
    return str(value)


def _relation(name: str, entry: Any, origin: str) -> Relation:
    where = f"{origin}: relation {name}"
    if not isinstance(entry, Mapping):
        raise CatalogueError(f"{where} must be a mapping")
    table, sql = _text(entry, "table", where, False), _text(entry, "sql", where, False)
    if (table is None) == (sql is None):
        raise CatalogueError(f"{where}: give exactly one of `table` or `sql`")
    raw: dict[str, RawPresence] = {}
    for source, spec in (entry.get("raw") or {}).items():
        if source not in SOURCES or not isinstance(spec, Mapping):
            raise CatalogueError(f"{where}: raw.{source} must be a known source with table/date")
        raw[source] = RawPresence(str(_text(spec, "table", f"{where} raw.{source}")),
                                  str(_text(spec, "date", f"{where} raw.{source}")),
                                  _text(spec, "where", where, False))
    currency = _text(entry, "currency_column", where, False)
    money = tuple(str(c) for c in entry.get("money_columns") or ())
    if money and not currency:
        raise CatalogueError(f"{where}: money_columns need a currency_column")
    converted = entry.get("converted", False)
    if not isinstance(converted, bool) or (converted and currency):
        raise CatalogueError(f"{where}: `converted` is true or false, and a converted relation has no currency_column")
    reads = tuple(str(r) for r in entry.get("reads") or ())
    if any(r not in SOURCES for r in reads):
        raise CatalogueError(f"{where}: `reads` names sources among {', '.join(SOURCES)}, got {list(reads)}")
    return Relation(name=name, grain=_choice(entry, "grain", GRAINS, where), table=table, sql=sql,
                    where=_text(entry, "where", where, False), currency_column=currency, money_columns=money,
                    raw=raw, converted=converted, reads=reads)


def _check_money(expr: str, relation: Relation, where: str) -> None:
    """Rule 5 as a validation: a money column of a multi-currency relation is only ever used converted."""
    uses_fx = "fx_rate" in expr
    if uses_fx and relation.currency_column is None:
        raise CatalogueError(f"{where}: `{expr}` uses fx_rate but relation {relation.name} has no currency_column")
    for column in relation.money_columns:
        for match in re.finditer(rf"\b{re.escape(column)}\b", expr):
            if not re.match(r"\s*\*\s*fx_rate\b", expr[match.end():]):
                raise CatalogueError(f"{where}: money column {column} must be converted (`{column} * fx_rate`)")


def parse_catalogue(raw: Any, origin: str = "catalogue") -> Catalogue:
    """Validate the parsed YAML into typed definitions; every error names the entry."""
    if not isinstance(raw, Mapping):
        raise CatalogueError(f"{origin}: top level must be a mapping with `relations` and `kpis`")
    relations = {str(n): _relation(str(n), e, origin) for n, e in (raw.get("relations") or {}).items()}
    kpis: dict[str, KpiDefinition] = {}
    for index, entry in enumerate(raw.get("kpis") or []):
        where = f"{origin}: kpis[{index}]"
        if not isinstance(entry, Mapping):
            raise CatalogueError(f"{where} must be a mapping")
        name = str(_text(entry, "kpi", where))
        where = f"{origin}: kpi {name}"
        if not _NAME.match(name):
            raise CatalogueError(f"{where}: the name must be lower_snake_case")
        if name in kpis:
            raise CatalogueError(f"{where}: defined twice")
        unit = _choice(entry, "unit", UNITS, where)
        aggregation = _choice(entry, "aggregation", AGGREGATIONS, where)
        sources: list[KpiSource] = []
        for s_index, s in enumerate(entry.get("sources") or []):
            s_where = f"{where} sources[{s_index}]"
            if not isinstance(s, Mapping):
                raise CatalogueError(f"{s_where} must be a mapping")
            code = _choice(s, "source", SOURCES, s_where)
            relation_name = str(_text(s, "relation", s_where))
            relation = relations.get(relation_name)
            if relation is None:
                raise CatalogueError(f"{s_where}: unknown relation {relation_name!r}")
            if (relation.grain == "month") != (aggregation == "native"):
                raise CatalogueError(f"{s_where}: native KPIs (and only they) read monthly relations")
            numerator = str(_text(s, "numerator", s_where))
            denominator = _text(s, "denominator", s_where, False)
            if aggregation in NO_DENOMINATOR and denominator is not None:
                raise CatalogueError(f"{s_where}: a {aggregation} KPI has no denominator")
            if aggregation not in NO_DENOMINATOR and denominator is None:
                raise CatalogueError(f"{s_where}: a {aggregation} KPI needs a denominator")
            for expr in (numerator, denominator):
                if expr is not None:
                    _check_money(expr, relation, s_where)
            if any(x.source == code for x in sources):
                raise CatalogueError(f"{s_where}: source {code} listed twice")
            attribution = _text(s, "attribution", s_where, False)
            if attribution is not None and attribution not in ATTRIBUTIONS:
                raise CatalogueError(f"{s_where}: attribution {attribution!r}, expected one of "
                                     f"{', '.join(ATTRIBUTIONS)}")
            sources.append(KpiSource(code, relation_name, numerator, denominator,
                                     _text(s, "numerator_name", s_where, False) or numerator, attribution))
        if not sources:
            raise CatalogueError(f"{where}: at least one source is required")
        bounded = entry.get("bounded", unit == "ratio")
        if not isinstance(bounded, bool):
            raise CatalogueError(f"{where}: `bounded` must be true or false")
        kpis[name] = KpiDefinition(
            kpi=name, family=_choice(entry, "family", FAMILIES, where), unit=unit, aggregation=aggregation,
            direction=_choice(entry, "direction", DIRECTIONS, where), formula=str(_text(entry, "formula", where)),
            sources=tuple(sources), bounded=bounded)
    if not kpis:
        raise CatalogueError(f"{origin}: no KPIs")
    return Catalogue(kpis=kpis, relations=relations)


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The packaged catalogue with the KPIs of the registered sources' own KPI SQL (cached), or another file
    (tests, a fork)."""
    if path is None:
        return _with_registered(tuple((s.code, s.module, s.kpi_sql) for s in registry.SOURCES if s.kpi_sql))
    path = Path(path)
    return parse_catalogue(safe_load(path.read_text(encoding="utf-8")), str(path))


KPI_LINE = re.compile(r"^--\s*@kpi\s+(?P<kpi>\S+?)\s*:\s*(?P<numerator>.+?)(?:\s+/\s+(?P<denominator>.+?))?\s*$")


RAW_LINE = re.compile(r"^--\s*@raw\s+(?P<table>[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\s+(?P<date>.+?)\s*$")


def declared_raw(text: str, code: str, where: str) -> dict[str, RawPresence]:
    """The raw rows whose presence on a day means the source reported that day, `-- @raw <schema.table> <date
    expression>` (at most one line): kpi_daily's completeness check then expects the source's KPIs on those days."""
    found = [m for m in (RAW_LINE.match(line.strip()) for line in text.splitlines()) if m is not None]
    if len(found) > 1:
        raise CatalogueError(f"{where}: one `-- @raw <schema.table> <date expression>` line at most")
    return {code: RawPresence(found[0]["table"], found[0]["date"])} if found else {}


def declared_kpis(text: str, where: str) -> dict[str, tuple[str, str | None]]:
    """The KPIs a source's KPI SQL declares, `-- @kpi <kpi>: <numerator> [/ <denominator>]` (column expressions of
    its rows, summed at the grain; a ratio's value is computed from the sums, never averaged)."""
    found: dict[str, tuple[str, str | None]] = {}
    for line in text.splitlines():
        match = KPI_LINE.match(line.strip())
        if match is None:
            continue
        if match["kpi"] in found:
            raise CatalogueError(f"{where}: KPI {match['kpi']} declared twice")
        found[match["kpi"]] = (match["numerator"], match["denominator"])
    if not found:
        raise CatalogueError(f"{where}: no `-- @kpi <kpi>: <numerator> [/ <denominator>]` line declares a KPI")
    return found


def add_source_sql(catalogue: Catalogue, code: str, text: str, where: str) -> Catalogue:
    """The catalogue with a registered source's own KPI SQL as a relation (`<code>_kpi_sql`, one row per date,
    source, account_id and channel with is_final and quality; its raw presence from `-- @raw`) and the source added
    to each KPI it declares. The KPI keeps the catalogue's unit, aggregation and direction; only catalogue KPIs,
    daily and without money, may be declared (money needs a currency column and FX conversion, which a declaration
    line does not carry)."""
    name = f"{code}_kpi_sql"
    if name in catalogue.relations:
        raise CatalogueError(f"{where}: relation {name} exists already")
    kpis = dict(catalogue.kpis)
    for kpi_name, (numerator, denominator) in declared_kpis(text, where).items():
        kpi = kpis.get(kpi_name)
        if kpi is None:
            raise CatalogueError(f"{where}: KPI {kpi_name!r} is not in the catalogue (a source emits catalogue KPIs)")
        if kpi.native or kpi.is_money:
            raise CatalogueError(f"{where}: KPI {kpi_name} is {'native' if kpi.native else 'money'}: a source's "
                                 "own SQL declares daily KPIs without money")
        if (denominator is None) == kpi.has_denominator:
            raise CatalogueError(f"{where}: KPI {kpi_name} is a {kpi.aggregation} KPI: "
                                 + ("it needs `<numerator> / <denominator>`" if kpi.has_denominator
                                    else "no denominator"))
        if code in kpi.source_codes:
            raise CatalogueError(f"{where}: KPI {kpi_name} already has source {code}")
        source = KpiSource(code, name, numerator, denominator, numerator)
        kpis[kpi_name] = dataclasses.replace(kpi, sources=(*kpi.sources, source))
    relations = {**catalogue.relations,
                 name: Relation(name=name, grain="day", sql=text, raw=declared_raw(text, code, where))}
    return Catalogue(kpis=kpis, relations=relations)


@cache
def _with_registered(entries: tuple[tuple[str, str, str], ...]) -> Catalogue:
    """The packaged catalogue plus each (code, connector module, kpi_sql path) source's own KPI SQL, read from its
    connector's package."""
    catalogue = _packaged()
    for code, module, sql_path in entries:
        package = import_module(module).__package__ or module
        text = resources.files(package).joinpath(sql_path).read_text(encoding="utf-8")
        catalogue = add_source_sql(catalogue, code, text, f"{package}/{sql_path} (source {code})")
    return catalogue


@cache
def _packaged() -> Catalogue:
    text = resources.files("kpi_models").joinpath(DEFAULT_PATH).read_text(encoding="utf-8")
    return parse_catalogue(safe_load(text), f"kpi_models/{DEFAULT_PATH}")


# --- kpi.kpi_definition --------------------------------------------------------------------------------------


KPI_DEFINITION = f"{KPI_SCHEMA}.kpi_definition"


def write_kpi_definition(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue | None = None) -> int:
    """Replace `kpi.kpi_definition` (one row per KPI) so SQL users and dashboards read the catalogue as a table."""
    table = kpi_definition_table(catalogue)
    replace_table(conn, KPI_DEFINITION, table)
    return table.num_rows


def kpi_definition_table(catalogue: Catalogue | None = None) -> pa.Table:
    """The rows of `kpi.kpi_definition`: one per KPI, with its sources' numerators and denominators as JSON."""
    catalogue = catalogue or load_catalogue()
    rows = list(catalogue.kpis.values())
    details = [json.dumps([{"source": s.source, "relation": s.relation,
                            "table": catalogue.relations[s.relation].table, "numerator": s.numerator,
                            "denominator": s.denominator, "attribution": s.attribution} for s in k.sources])
               for k in rows]
    return pa.table({
        "kpi": pa.array([k.kpi for k in rows], pa.string()),
        "family": pa.array([k.family for k in rows], pa.string()),
        "unit": pa.array([k.unit for k in rows], pa.string()),
        "aggregation": pa.array([k.aggregation for k in rows], pa.string()),
        "direction": pa.array([k.direction for k in rows], pa.string()),
        "formula": pa.array([k.formula for k in rows], pa.string()),
        "sources": pa.array([list(k.source_codes) for k in rows], pa.list_(pa.string())),
        "bounded": pa.array([k.bounded for k in rows], pa.bool_()),
        "source_details": pa.array(details, pa.string()),
    })


# --- generated SQL -------------------------------------------------------------------------------------------


def _exact_sum(expression: str) -> str:
    """A sum that gives the same bits whatever order DuckDB's threads add in: exact in DECIMAL (9 decimals, far
    below any KPI's precision), then back to DOUBLE. A float sum's last bit depends on the order (issue #19)."""
    return f"CAST(sum(CAST({expression} AS DECIMAL(38, 9))) AS DOUBLE)"


def _uses_fx(kpi: KpiDefinition, source: KpiSource) -> bool:
    return any("fx_rate" in (expr or "") for expr in (source.numerator, source.denominator))


def _inner_sql(relation: Relation, code: str, fx: bool) -> str:
    """The rows of `relation` for source `code` in `$start`..`$end`, with each row's finality and quality flags (and,
    for money, the reporting currency): joined to the day's FX rate when `fx`. Inner join on the day's rate: rows in
    a currency without a rate that day are left out (rule 5), not added as is (checks.check_fx_rates_available names
    them). An estimated rate (after the last published one) leaves the value provisional."""
    join = ""
    select = "r.is_final AS row_final, r.quality AS row_quality, "
    if relation.converted:
        select += "r.currency AS fx_currency, "
    elif fx:
        join = (f"\n        JOIN {KPI_SCHEMA}.fx_rate AS fx ON fx.currency = r.{relation.currency_column} "
                "AND fx.date = r.date")
        select = ("fx.rate AS fx_rate, fx.reporting_currency AS fx_currency, r.is_final AND fx.is_final AS row_final, "
                  "CASE WHEN fx.is_final THEN r.quality ELSE list_append(r.quality, 'fx_rate_estimated') END "
                  "AS row_quality, ")
    filters = [f"r.source = '{code}'", "r.date BETWEEN $start AND $end"]
    if relation.where:
        filters.append(f"({relation.where})")
    return f"(SELECT {select}r.* FROM {relation.reference} AS r{join}\n        WHERE {' AND '.join(filters)})"


def _check_part(kpi: KpiDefinition, source: KpiSource, relation: Relation) -> bool:
    """Whether this KPI of this source converts money at the day's rate; a money KPI that does not convert, or
    converts from a relation without a currency (or one already converted), is refused."""
    fx = _uses_fx(kpi, source)
    if relation.converted:
        if fx:
            raise CatalogueError(f"kpi {kpi.kpi}: relation {relation.name} is already converted: no `* fx_rate`")
    elif fx:
        if not relation.currency_column:
            raise CatalogueError(f"kpi {kpi.kpi}: converts money from relation {relation.name}, which has no "
                                 "currency_column")
    elif kpi.is_money:
        raise CatalogueError(f"kpi {kpi.kpi}: a money KPI must convert its amounts (`* fx_rate`)")
    return fx and not relation.converted


# The grain every KPI's parts are summed at in kpi.kpi_daily.
GRAIN = ("date", "source", "channel", "account_id")


def _one_row_per_group(relation: Relation, fx: bool) -> bool:
    """Whether the relation's rows are already one per (date, source, channel, account_id): a per-channel KPI table
    whose key is within that grain (kpi_models.runner.MODELS), read without an FX join. Its "group" is then the row
    itself, and summing it again only cost a hash aggregation of every row (issue #21)."""
    from kpi_models.runner import MODELS  # the runner imports this module's functions when asked, never at import

    if fx or relation.table is None or not relation.table.startswith(f"{KPI_SCHEMA}."):
        return False
    model = MODELS.get(relation.table.split(".", 1)[1])
    return model is not None and set(model.key) <= set(GRAIN)


def _row_sql(relation: Relation, code: str, sums: Mapping[str, str]) -> str:
    """`_group_sql` for a relation with one row per group: each aggregate over its single row, computed on the row
    (the same values, bit for bit: the sum of one DECIMAL is that DECIMAL; bool_and and any_value of one value are
    that value; the quality list loses its NULL and repeated flags and is sorted, as list_distinct and list_sort
    did over the flattened one-element list)."""
    columns = ",\n           ".join(f"CAST(CAST({expr} AS DECIMAL(38, 9)) AS DOUBLE) AS {column}"
                                    for expr, column in sums.items())
    currency = "fx_currency" if relation.converted else "CAST(NULL AS VARCHAR)"
    return (
        f"    SELECT date, source, channel, account_id,\n"
        f"           {columns},\n"
        f"           {currency} AS currency, row_final AS is_final,\n"
        f"           list_sort(list_distinct(coalesce(row_quality, []))) AS quality\n"
        f"    FROM {_inner_sql(relation, code, False)} AS p"
    )


def _group_sql(relation: Relation, code: str, fx: bool, sums: Mapping[str, str]) -> str:
    """One scan of a relation's rows for one source (issue #21): every KPI's summed parts (`sums`: expression ->
    column) at (date, source, channel, account_id), with the group's finality (every row read final, for money at a
    published rate), the union of its rows' quality flags and its reporting currency."""
    if _one_row_per_group(relation, fx):
        return _row_sql(relation, code, sums)
    columns = ",\n           ".join(f"{_exact_sum(expr)} AS {column}" for expr, column in sums.items())
    currency = "any_value(fx_currency)" if relation.converted or fx else "CAST(NULL AS VARCHAR)"
    return (
        f"    SELECT date, source, channel, account_id,\n"
        f"           {columns},\n"
        f"           {currency} AS currency, bool_and(row_final) AS is_final,\n"
        f"           list_sort(list_distinct(flatten(list(row_quality)))) AS quality\n"
        f"    FROM {_inner_sql(relation, code, fx)} AS p\n"
        f"    GROUP BY date, source, channel, account_id"
    )


# The columns of kpi_daily's generated SELECT, in order: every block of `_kpi_block` selects exactly these, so the
# runner knows them without binding the SQL (tests/test_runner_known_columns.py checks them against DuckDB's DESCRIBE).
KPI_DAILY_COLUMNS = ("date", "source", "channel", "account_id", "kpi", "numerator", "denominator", "value", "currency",
                     "is_final", "quality", "attribution")


def _kpi_block(kpi: KpiDefinition, source: KpiSource, group: str, numerator: str, denominator: str | None,
               kpi_type: str | None = None) -> str:
    """One KPI of one source read from its group's sums (columns `numerator`, `denominator`): value computed from
    the sums; the per-channel row's out_of_range flag may be another rate's, so each KPI judges its own value;
    `provisional` repeats is_final = false in the list, so a filter on flags alone sees it too. `kpi_type`: the
    KPI name in that type (kpi_daily's ENUM: cast once, not on every row the INSERT writes)."""
    den = denominator or "CAST(NULL AS DOUBLE)"
    value = f"{numerator} / nullif({den}, 0)" if kpi.has_denominator else numerator
    currency = "currency" if kpi.is_money else "CAST(NULL AS VARCHAR)"
    # the group's flags without out_of_range and with provisional when not final (`_with_flags`: once per group row,
    # not once per KPI row); a bounded rate out of range gets out_of_range before provisional, as the flags are read
    quality = "kept_quality"
    if kpi.bounded:
        quality = (f"CASE WHEN NOT coalesce({value}, 0) BETWEEN 0 AND 1 THEN CASE WHEN is_final "
                   "THEN list_append(kept_flags, 'out_of_range') "
                   "ELSE list_append(list_append(kept_flags, 'out_of_range'), 'provisional') END "
                   f"ELSE {quality} END")
    attribution = f"'{source.attribution}'" if source.attribution else "CAST(NULL AS VARCHAR)"
    name = f"CAST('{kpi.kpi}' AS {kpi_type})" if kpi_type else f"'{kpi.kpi}'"
    return (
        f"SELECT date, source, channel, account_id, {name} AS kpi, {numerator} AS numerator,\n"
        f"       {den} AS denominator, {value} AS value,\n"
        f"       {currency} AS currency, is_final, {quality} AS quality, {attribution} AS attribution\n"
        f"FROM {group}"
    )


def _grouped_parts(catalogue: Catalogue, chosen: Sequence[tuple[KpiDefinition, KpiSource]],
                   column_types: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The CTEs (one per relation, source and FX join: each scanned and grouped ONCE, not once per KPI) and the
    per-KPI SELECTs reading them. An expression shared by several KPIs (sessions) is summed once. `column_types`:
    the types of the name columns (kpi_daily's ENUMs), cast to on each group's rows, not on every KPI row."""
    groups: dict[tuple[str, str, bool], dict[str, str]] = {}
    placed: list[tuple[KpiDefinition, KpiSource, str, str, str | None]] = []
    for kpi, source in chosen:
        relation = catalogue.relations[source.relation]
        key = (relation.name, source.source, _check_part(kpi, source, relation))
        sums = groups.setdefault(key, {})
        names = [sums.setdefault(expr, f"s{len(sums)}") if expr else None
                 for expr in (source.numerator, source.denominator)]
        placed.append((kpi, source, f"_grp{list(groups).index(key)}", str(names[0]), names[1]))
    selects = [_with_flags(_typed(_group_sql(catalogue.relations[name], code, fx, sums), column_types))
               for (name, code, fx), sums in groups.items()]
    ctes = [f"_grp{i} AS MATERIALIZED (\n{select}\n)" for i, select in enumerate(selects)]
    kpi_type = (column_types or {}).get("kpi")
    return ctes, [_kpi_block(kpi, source, group, num, den, kpi_type) for kpi, source, group, num, den in placed]


def _with_flags(group: str) -> str:
    """A group's SELECT with its quality flags as every KPI row of it starts from (issue #21: the lambda and the
    appends ran on each of the ~14 KPI rows a group gives, 19.6M rows at 10M raw rows): `kept_flags` without the
    per-channel row's out_of_range (each KPI judges its own value), `kept_quality` those plus `provisional` when the
    group is not final (so a filter on flags alone sees it too)."""
    return ("    SELECT * EXCLUDE (quality), list_filter(quality, x -> x <> 'out_of_range') AS kept_flags,\n"
            "           CASE WHEN is_final THEN kept_flags ELSE list_append(kept_flags, 'provisional') END\n"
            "               AS kept_quality\n"
            f"    FROM (\n{group}\n    )")


def _typed(group: str, names: Mapping[str, str] | None) -> str:
    """A group's SELECT with its source and channel in the given types (no `names`: as it is)."""
    casts = [f"CAST({column} AS {names[column]}) AS {column}" for column in ("source", "channel")
             if names and column in names]
    if not casts:
        return group
    return f"    SELECT * REPLACE ({', '.join(casts)}) FROM (\n{group}\n    )"


def kpi_daily_sql(catalogue: Catalogue | None = None, sources: Sequence[str] | None = None,
                  names: Mapping[str, str] | None = None) -> str:
    """The SELECT of `kpi.kpi_daily` for `$start`..`$end` (and `$tz`, `$as_of` for the CRM relation), generated
    from the catalogue: each (relation, source) read and grouped once, then one block per (KPI, source) from those
    sums, reading the per-channel KPI tables; with `sources`, only those sources' blocks (the runner
    rebuilds each source on its own, so one source's failure stays its own). `names`: the SQL types of the
    source, channel and kpi columns of the table it is inserted into (kpi_models.runner.name_types: its ENUMs), so
    the names arrive in them (the same values; issue #21: the INSERT cast every row's names)."""
    catalogue = catalogue or load_catalogue()
    kpis = catalogue.daily()
    chosen = [(k, s) for k in kpis for s in k.sources if sources is None or s.source in sources]
    used = {s.relation for _, s in chosen}
    ctes = [f"{name} AS (\n{catalogue.relations[name].sql.rstrip()}\n)" for name in catalogue.relations
            if name in used and catalogue.relations[name].sql]
    groups, parts = _grouped_parts(catalogue, chosen, names)
    ctes += groups
    head = ("-- kpi.kpi_daily: GENERATED from kpi_models/catalogue.yaml (and the registered sources' own KPI SQL) by\n"
            "-- kpi_models.catalogue.kpi_daily_sql;\n"
            "-- do not edit. Grain: date x source x channel x account_id x kpi.\n"
            "-- Parameters: $start, $end, $tz, $as_of.\n")
    with_clause = "WITH " + ",\n".join(ctes) + "\n" if ctes else ""
    return head + with_clause + "\nUNION ALL\n".join(parts)


def dependent_kpis(sources: Sequence[str], catalogue: Catalogue | None = None) -> dict[str, list[str]]:
    """Other sources' KPIs whose rows change when `sources` change: those read from a relation that reads one of
    them (an Ads run changes the spend in the GA4- and HubSpot-attributed ROI rows), per source."""
    catalogue = catalogue or load_catalogue()
    out: dict[str, list[str]] = {}
    for kpi in catalogue.daily():
        for s in kpi.sources:
            if s.source not in sources and set(catalogue.relations[s.relation].reads) & set(sources):
                out.setdefault(s.source, []).append(kpi.kpi)
    return out


def daily_sources(catalogue: Catalogue | None = None) -> tuple[str, ...]:
    """The sources with rows in kpi.kpi_daily, in catalogue order."""
    catalogue = catalogue or load_catalogue()
    return tuple(dict.fromkeys(s.source for k in catalogue.daily() for s in k.sources))


def _native_monthly_sql(catalogue: Catalogue) -> str:
    parts = []
    for kpi in catalogue.native():
        for s in kpi.sources:
            relation = catalogue.relations[s.relation]
            filters = [f"source = '{s.source}'"] + ([f"({relation.where})"] if relation.where else [])
            num, den = f"CAST({s.numerator} AS DOUBLE)", f"CAST({s.denominator} AS DOUBLE)"
            parts.append(
                f"SELECT CAST(month AS DATE) AS month_start, source, channel, account_id, '{kpi.kpi}' AS kpi,\n"
                f"       CAST(NULL AS VARCHAR) AS currency, {num} AS numerator, {den} AS denominator,\n"
                f"       {num} / nullif({den}, 0) AS value, CAST(NULL AS BIGINT) AS days_with_data,\n"
                f"       'native' AS aggregation, is_final, CAST([] AS VARCHAR[]) AS quality,\n"
                f"       CAST(NULL AS VARCHAR) AS attribution\n"
                f"FROM {relation.reference}\nWHERE {' AND '.join(filters)}")
    return "\nUNION ALL\n".join(parts)


def _rollup_select(period_columns: Sequence[tuple[str, str]], period_end: str, catalogue: Catalogue) -> str:
    """Sums of the parts per period and account; a period is final once it has ended and every day in it is. A level
    (aggregation last: followers) takes the value of the period's last day with data of its source and channel (all
    accounts: the dashboard's rule); an account without a row that day has none, flagged NO_LAST_DAY_FLAG. A distinct
    count (reach) is NULL here, flagged not_additive (`_with_period_reach` puts the platform's own value for the
    period in its place)."""
    period = period_columns[0][0]  # the period's start: the other period columns follow from it
    grouped = _rollup_groups(period_columns, period_end, catalogue)
    last = _kpis_of(catalogue, "last")
    # each account's latest day in the period against the period's reference day: a window over the grouped rows
    # (one per period, account and KPI), not over every kpi_daily row
    missing = "_last_day < _reference_day"
    # a level read before the period's last day (its source's data stops earlier) is not the period's level yet
    early = "_reference_day < _period_end"
    return (
        f"SELECT * EXCLUDE (_last_day, _reference_day, _period_end) REPLACE (\n"
        f"       CASE WHEN {missing} THEN NULL ELSE numerator END AS numerator,\n"
        f"       CASE WHEN {missing} THEN NULL ELSE value END AS value,\n"
        f"       CASE WHEN {early} THEN false ELSE is_final END AS is_final,\n"
        f"       CASE WHEN {missing} THEN list_sort(list_append(quality, '{NO_LAST_DAY_FLAG}')) ELSE quality END\n"
        f"           AS quality)\n"
        f"FROM (SELECT *, CASE WHEN kpi IN ({last}) THEN max(_last_day) OVER (PARTITION BY {period}, source, channel)\n"
        f"                END AS _reference_day\n"
        f"      FROM (\n{grouped}\n))"
    )


def _kpis_of(catalogue: Catalogue, *aggregations: str) -> str:
    """The daily KPIs of these aggregations as a SQL list of literals ('' when none, so `IN (...)` stays valid)."""
    return ", ".join(f"'{k.kpi}'" for k in catalogue.daily() if k.aggregation in aggregations) or "''"


def _rollup_groups(period_columns: Sequence[tuple[str, str]], period_end: str, catalogue: Catalogue) -> str:
    """kpi_daily grouped per period, source, channel, account and KPI, with each group's latest day (`_last_day`);
    a level's numerator is that day's level as it is (NULL when that day has none)."""
    additive, last, distinct = (_kpis_of(catalogue, a) for a in ("sum", "last", "distinct"))
    names = ", ".join(name for name, _ in period_columns)
    exprs = ", ".join(f"{expr} AS {name}" for name, expr in period_columns)
    numerator = (f"CASE WHEN kpi IN ({last}) THEN first(numerator ORDER BY date DESC)\n"
                 f"            WHEN kpi IN ({distinct}) THEN NULL ELSE {_exact_sum('numerator')} END")
    return (
        f"SELECT {names}, source, channel, account_id, kpi, any_value(currency) AS currency,\n"
        f"       any_value(attribution) AS attribution,\n"
        f"       {numerator} AS numerator, {_exact_sum('denominator')} AS denominator,\n"
        f"       CASE WHEN kpi IN ({additive}) OR kpi IN ({last}) OR kpi IN ({distinct}) THEN {numerator}\n"
        f"            ELSE {_exact_sum('numerator')} / nullif({_exact_sum('denominator')}, 0) END AS value,\n"
        f"       count(DISTINCT date) AS days_with_data,\n"
        f"       CASE WHEN kpi IN ({additive}) THEN 'sum' WHEN kpi IN ({last}) THEN 'last'\n"
        f"            WHEN kpi IN ({distinct}) THEN 'distinct' ELSE 'ratio' END AS aggregation,\n"
        f"       bool_and(is_final) AND max({period_end}) < current_date AS is_final,\n"
        f"       CASE WHEN kpi IN ({distinct})\n"
        f"            THEN list_sort(list_distinct(list_append(flatten(list(quality)), 'not_additive')))\n"
        f"            ELSE list_sort(list_distinct(flatten(list(quality)))) END AS quality,\n"
        f"       max(date) AS _last_day, max({period_end}) AS _period_end\n"
        f"FROM (SELECT {exprs}, * FROM {KPI_SCHEMA}.kpi_daily)\n"
        f"GROUP BY {names}, source, channel, account_id, kpi"
    )


def _with_period_reach(rollup: str, period: str, match: str, catalogue: Catalogue) -> str:
    """The roll-up with each distinct KPI's value (reach) taken from the platform's own reach over exactly that
    period (kpi.social_period_reach: `period` 'week' ending on the week's Sunday, 'days_28' ending on the last day of
    a 28-day month); where the platform has none the value stays NULL and flagged not_additive. `match`: the SQL
    condition tying a period-reach row `p` to a roll-up row `r`."""
    if not any(k.aggregation == "distinct" for k in catalogue.daily()):
        return rollup
    distinct = ", ".join(f"'{k.kpi}'" for k in catalogue.daily() if k.aggregation == "distinct")
    own = f"r.kpi IN ({distinct}) AND p.reach IS NOT NULL"
    return (
        f"SELECT r.* REPLACE (\n"
        f"    CASE WHEN {own} THEN CAST(p.reach AS DOUBLE) ELSE r.numerator END AS numerator,\n"
        f"    CASE WHEN {own} THEN CAST(p.reach AS DOUBLE) ELSE r.value END AS value,\n"
        f"    CASE WHEN {own} THEN list_sort(list_append(list_filter(r.quality, x -> x <> 'not_additive'),\n"
        f"                                               'platform_period_reach'))\n"
        f"         ELSE r.quality END AS quality)\n"
        f"FROM (\n{rollup}\n) AS r\n"
        f"LEFT JOIN {KPI_SCHEMA}.{PERIOD_REACH_VIEW} AS p ON p.source = r.source AND p.account_id = r.account_id\n"
        f"    AND p.period = '{period}' AND {match}"
    )


def rollup_view_sql(catalogue: Catalogue | None = None) -> dict[str, str]:
    """CREATE VIEW statements of `kpi.kpi_weekly` (ISO weeks, Monday) and `kpi.kpi_monthly` (plus the native
    monthly KPIs): every ratio recomputed from summed numerators and denominators, never avg(value); one row per
    account, as in kpi_daily (a total over accounts is again a ratio of sums)."""
    catalogue = catalogue or load_catalogue()
    weekly = _rollup_select((
        ("week_start", "CAST(date_trunc('week', date) AS DATE)"),
        ("week_end", "CAST(date_trunc('week', date) + INTERVAL 6 DAY AS DATE)"),
        ("iso_week", "strftime(date, '%G-W%V')"),
    ), "week_end", catalogue)
    weekly = _with_period_reach(weekly, "week", "p.date = r.week_end", catalogue)
    monthly_daily = _rollup_select((
        ("month_start", "CAST(date_trunc('month', date) AS DATE)"),
        ("month_end", "CAST(date_trunc('month', date) + INTERVAL 1 MONTH - INTERVAL 1 DAY AS DATE)"),
    ), "month_end", catalogue)
    monthly_daily = _with_period_reach(
        monthly_daily, "days_28", "p.date = r.month_end AND date_diff('day', r.month_start, r.month_end) = 27",
        catalogue)
    native = _native_monthly_sql(catalogue)
    monthly = f"{monthly_daily}\nUNION ALL BY NAME\nSELECT * FROM (\n{native}\n)" if native else monthly_daily
    # kpi_models.layer creates kpi.social_period_reach over the networks' raw tables first; where it did not (a
    # caller creating only these views), an empty one stands in, so the roll-ups bind (and reach stays unsummed)
    period_reach = (f"CREATE VIEW IF NOT EXISTS {KPI_SCHEMA}.{PERIOD_REACH_VIEW} AS SELECT CAST(NULL AS VARCHAR) AS "
                    "source, CAST(NULL AS DATE) AS date, CAST(NULL AS VARCHAR) AS account_id, CAST(NULL AS VARCHAR) "
                    "AS period, CAST(NULL AS BIGINT) AS reach WHERE false;\n")
    return {
        "kpi_weekly": f"{period_reach}CREATE OR REPLACE VIEW {KPI_SCHEMA}.kpi_weekly AS\n{weekly}",
        "kpi_monthly": f"CREATE OR REPLACE VIEW {KPI_SCHEMA}.kpi_monthly AS\nSELECT * EXCLUDE (month_end) FROM (\n"
                       f"{monthly}\n)",
    }


if __name__ == "__main__":  # `python -m kpi_models.catalogue`: print the generated kpi_daily SQL for review
    print(kpi_daily_sql())
