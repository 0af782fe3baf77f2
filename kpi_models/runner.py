"""The one SQL runner: rebuilds a window of a KPI table from its SQL file, in one transaction.

Why windows: a scheduled run re-reads a few trailing days of raw data; only those days of the KPI
tables need recomputing. A model's SQL is a plain SELECT taking `$start` and `$end`; the runner
deletes that window from the KPI table and inserts the SELECT's rows, so rebuilding is idempotent and
an analyst never sees a half-rebuilt table (the delete and insert commit together).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from importlib import import_module, resources

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DuckDBPyType

from connectors import raw_tables as raw
from connectors import registry
from connectors.batches import Stream, Window
from connectors.ducklake import conflict_retried, is_conflict, is_ducklake
from connectors.settings import CHANNELS
from connectors.warehouse import backend_known, ensure_tables, is_lake, quote_ident, replace_table, transaction
from kpi_models.context import KpiContext

KPI_SCHEMA = "kpi"
log = logging.getLogger("mkpi.kpi")


# The connection whose KPI steps run inside one caller's transaction (`batched`): each step's own BEGIN / COMMIT /
# CHECKPOINT is left out, so a whole rebuild commits and checkpoints once instead of once per table (issue #21).
_BATCH: ContextVar[object | None] = ContextVar("mkpi_kpi_batch", default=None)
# The small tables (channel map, restatement windows) a batch has already written or found as wanted, with those rows:
# every model's preparation writes them again, ten times a recompute, each a comparison of the table's rows.
_BATCH_WRITTEN: ContextVar[dict[str, pa.Table] | None] = ContextVar("mkpi_kpi_batch_written", default=None)
# The content hashes of raw tables (never written by a KPI step) a batch has taken: the whole-table models share
# most of HubSpot's tables, and each hashed them again (14 scans a one-day recompute, 8 tables).
_BATCH_HASHES: ContextVar[dict[str, str] | None] = ContextVar("mkpi_kpi_batch_hashes", default=None)


@contextmanager
def batched(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the KPI steps inside it in ONE transaction (one COMMIT and CHECKPOINT): every table is rebuilt, or, on
    any error, none is (the error propagates: a source's part failing is not isolated here, the caller decides what
    to do, e.g. run the steps again one transaction each). Not on a DuckLake, whose steps retry their own commits."""
    if is_lake(conn, is_ducklake):
        raise ValueError("batched KPI rebuilds are for a DuckDB file; a DuckLake's steps commit (and retry) each")
    token, written, hashes = _BATCH.set(conn), _BATCH_WRITTEN.set({}), _BATCH_HASHES.set({})
    restore: dict[str, str] = {}
    try:
        with transaction(conn):
            restore = _checkpoint_settings(conn)
            yield conn
    finally:
        restore_settings(conn, restore)
        _BATCH_HASHES.reset(hashes)
        _BATCH_WRITTEN.reset(written)
        _BATCH.reset(token)


# A batch's CHECKPOINT vacuums (merges row groups its DELETEs left holes in with the small ones its INSERTs appended)
# once every VACUUM_EVERY batches; the others checkpoint without vacuum tasks. Each recompute's checkpoint merged the
# same tail row groups again: 42 trailing one-day recomputes at 10M raw rows (rebuild_all, each on its own connection,
# its close included) took 31.2 CPU-s with a vacuum each, 24.6 with one every 7th, ending with the same row groups
# (kpi_daily 164, web_daily 21) and a file 0.5 % larger; issue #21 target 5. The CHECKPOINT itself still runs every
# batch: the WAL is emptied and a crash loses nothing committed.
# A table's rebuild in its own transaction (a Dagster KPI step: one asset, one table) follows the same rule, counted
# per table (`_mkpi.kpi_table_rebuilds`): each table vacuums once in VACUUM_EVERY of its own rebuilds, whatever the
# other tables' steps do in between.
VACUUM_EVERY = 7
BATCHES_TABLE = "_mkpi.kpi_batches"
TABLE_REBUILDS_TABLE = "_mkpi.kpi_table_rebuilds"


def _count(conn: duckdb.DuckDBPyConnection, table: str | None) -> int:
    """This batch's number (`table` None: `_mkpi.kpi_batches`) or this rebuild's of `table` (its own count in
    `_mkpi.kpi_table_rebuilds`), counted in the caller's transaction (rolled back with it)."""
    counts, columns, where = BATCHES_TABLE, "batches BIGINT", ""
    if table is not None:
        counts, columns, where = TABLE_REBUILDS_TABLE, "table_name VARCHAR, batches BIGINT", " WHERE table_name = $t"
    if relation_columns(conn, counts) is None:
        conn.execute("CREATE SCHEMA IF NOT EXISTS _mkpi")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {counts} ({columns})")
    named = {"t": table} if table is not None else {}
    row = conn.execute(f"UPDATE {counts} SET batches = batches + 1{where} RETURNING batches", named).fetchone()
    if row is not None:
        return int(row[0])
    conn.execute(f"INSERT INTO {counts} VALUES ({'$t, ' if table is not None else ''}1)", named)
    return 1


# A KPI transaction's COMMIT checkpoints itself (DuckDB's checkpoint_threshold at 0 for it): a commit whose WAL would
# exceed auto_checkpoint_skip_wal_threshold (100 kB) then skips the WAL, its rows written once, into the file, instead
# of into the WAL and again by the CHECKPOINT after it, which finds nothing left to do. Same durability: the COMMIT
# returns once its checkpoint is written. A one-day recompute at 10M raw rows wrote ~4.7 MB of WAL; COMMIT and
# CHECKPOINT of 7 batched recomputes took 1.50 / 1.34 CPU-s against 1.81 / 2.08 before, the per-table path's 2.16
# against 2.69 (alternated, loaded machine); issue #21 target 5. Set here, not in connect(): the loader benchmark's
# rows at 1M looked worse with it on every commit, and the loader checkpoints big loads its own way.
CHECKPOINT_AT_COMMIT = "0 bytes"
# The compression methods a KPI transaction's checkpoint does not try: DuckDB analyses every method for every column
# segment it writes, and FSST's analysis of the text columns (account_id, currency, attribution, quality) was a
# quarter of a one-day recompute's COMMIT at 10M raw rows (kpi_daily's day re-written, 8 alternated pairs: 72-76 ->
# 54-56 CPU-ms median); those columns hold few distinct values, which dictionary compression stores as well. Storage
# only: every value reads back the same (issue #21 target 5).
NOT_AT_COMMIT = "fsst"


def _checkpoint_settings(conn: duckdb.DuckDBPyConnection, table: str | None = None) -> dict[str, str]:
    """Count this batch (in its transaction, `_mkpi.kpi_batches`), or this rebuild of `table` in its own transaction,
    and set its COMMIT's settings (`set_commit_settings`), vacuuming every VACUUM_EVERY-th. Returns the settings to
    restore after it, with their values before."""
    return set_commit_settings(conn, vacuum=_count(conn, table) % VACUUM_EVERY == 0)


def set_commit_settings(conn: duckdb.DuckDBPyConnection, vacuum: bool) -> dict[str, str]:
    """The settings a KPI transaction's COMMIT runs with: the checkpoint at COMMIT (CHECKPOINT_AT_COMMIT) without
    trying NOT_AT_COMMIT's compression and, unless `vacuum`, DuckDB's max_vacuum_tasks at 0 for that checkpoint.
    Returns what `restore_settings` sets back (the values before)."""
    threshold, tasks, disabled = conn.execute(
        "SELECT current_setting('checkpoint_threshold'), current_setting('max_vacuum_tasks'), "
        "current_setting('disabled_compression_methods')").fetchall()[0]
    previous = {"checkpoint_threshold": str(threshold), "disabled_compression_methods": str(disabled)}
    if not vacuum:
        previous["max_vacuum_tasks"] = str(tasks)
        conn.execute("SET max_vacuum_tasks = 0")
    conn.execute(f"SET checkpoint_threshold = '{CHECKPOINT_AT_COMMIT}'")
    methods = ",".join(dict.fromkeys(m for m in (*str(disabled).lower().split(","), NOT_AT_COMMIT) if m.strip()))
    conn.execute(f"SET disabled_compression_methods = '{methods}'")
    return previous


def restore_settings(conn: duckdb.DuckDBPyConnection, settings: dict[str, str]) -> None:
    """Set back what `set_commit_settings` changed (after the transaction's COMMIT and CHECKPOINT)."""
    if "max_vacuum_tasks" in settings:
        conn.execute(f"SET max_vacuum_tasks = {int(settings['max_vacuum_tasks'])}")
    if "checkpoint_threshold" in settings:
        conn.execute("SET checkpoint_threshold = '{}'".format(settings["checkpoint_threshold"].replace("'", "''")))
    if "disabled_compression_methods" in settings:
        conn.execute("SET disabled_compression_methods = '{}'".format(
            settings["disabled_compression_methods"].replace("'", "''")))


def in_batch(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether `conn` runs inside `batched` (its steps open no transaction of their own)."""
    return _BATCH.get() is conn


def _is_lake(conn: duckdb.DuckDBPyConnection) -> bool:
    """`is_ducklake`, answered without a query inside `batched` (which refuses a DuckLake when it starts) or inside a
    rebuild's `backend_known` block: a one-day recompute asked duckdb_databases() ten times (issue #21)."""
    return not in_batch(conn) and is_lake(conn, is_ducklake)


@contextmanager
def step_transaction(conn: duckdb.DuckDBPyConnection, rebuilds: str | None = None
                     ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A KPI step's own transaction (connectors.warehouse.transaction), or the batch's when inside `batched`.
    `rebuilds`: the table whose rows it replaces (DELETE and INSERT); its checkpoint then vacuums once in VACUUM_EVERY
    rebuilds of that table, as a batch's does (a DuckLake's commits have no checkpoint)."""
    if in_batch(conn):
        yield conn
        return
    if rebuilds is None or _is_lake(conn):
        with transaction(conn):
            yield conn
        return
    restore: dict[str, str] = {}
    try:
        with transaction(conn):
            restore = _checkpoint_settings(conn, rebuilds)
            yield conn
    finally:
        restore_settings(conn, restore)


class KpiRebuildError(RuntimeError):
    """Some sources' parts of a KPI table could not be rebuilt (the others were, and are committed)."""

    def __init__(self, table: str, failed: Mapping[str, str]) -> None:
        self.failed = dict(failed)
        super().__init__(f"{table}: " + "; ".join(f"{s} part failed: {e}" for s, e in failed.items()))


PART_MARKER = "-- @part "
SELECT_MARKER = "-- @select"


def split_parts(text: str, sources: Sequence[str]) -> dict[str, str]:
    """A model's SQL as one complete SELECT per source. A file with `-- @part <source>` sections and a `-- @select`
    section gives each part wrapped as `WITH part AS (<section>) <select>`; a file without markers is the whole
    SELECT of the model's only source."""
    if PART_MARKER not in text:
        if len(sources) != 1:
            raise ValueError(f"a SQL file without `{PART_MARKER}` sections serves one source, not {list(sources)}")
        return {sources[0]: text}
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith(PART_MARKER):
            current = line[len(PART_MARKER):].strip()
            sections[current] = []
        elif line.strip() == SELECT_MARKER:
            current = SELECT_MARKER
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    select = "\n".join(sections.pop(SELECT_MARKER, []))
    if set(sections) != set(sources):
        raise ValueError(f"SQL parts {sorted(sections)} do not match the model's sources {sorted(sources)}")
    return {source: f"WITH part AS (\n{chr(10).join(lines)}\n)\n{select}" for source, lines in sections.items()}


def used_params(query: str, params: Mapping[str, object]) -> dict[str, object]:
    """The named parameters a query uses outside its comments (DuckDB refuses unused ones)."""
    code = re.sub(r"--[^\n]*", "", query)
    return {name: value for name, value in params.items() if re.search(rf"\${name}\b", code)}


@dataclass(frozen=True)
class KpiModel:
    """A KPI table: its SQL file, its grain (key), the date column windows are cut on and the sources it holds."""

    name: str
    key: tuple[str, ...]
    inputs: tuple[Stream, ...]
    sources: tuple[str, ...]
    rate_columns: tuple[str, ...] = ()
    # None: the table is rebuilt whole (small, non-partitioned tables such as monthly CRM KPIs).
    partition_column: str | None = "date"
    # Extra named SQL parameters the model needs (e.g. "tz", the reporting time zone).
    params: tuple[str, ...] = ()
    # Upstream KPI models (names in MODELS) whose tables this model reads: KPI tables are not raw Streams.
    depends_on: tuple[str, ...] = ()
    # Temporary views the SQL reads, created before it runs (functions of the connection and the context).
    views: tuple[Callable[[duckdb.DuckDBPyConnection, KpiContext], None], ...] = ()
    # Text columns stored as ENUM types (column -> every value it may hold, read when asked): a long table's few
    # repeated names cost a fraction of VARCHAR's to write and store (issue #21); see `ensure_enum_columns`.
    enums: Callable[[], Mapping[str, Sequence[str]]] | None = None

    @property
    def table(self) -> str:
        return f"{KPI_SCHEMA}.{self.name}"

    def sql(self) -> str:
        return resources.files("kpi_models").joinpath("sql", f"{self.name}.sql").read_text(encoding="utf-8")

    def parts(self) -> dict[str, str]:
        """One SELECT per source: each source's rows are rebuilt on their own (a source whose raw table broke
        fails its part only)."""
        return split_parts(self.sql(), self.sources)

    def output_columns(self) -> tuple[str, ...]:
        """The SELECT's column names when they are known without binding it (a generated SQL's); () otherwise."""
        return ()


@dataclass(frozen=True)
class GeneratedKpiModel(KpiModel):
    """A model whose SELECT is generated by a function ("module:function", taking `sources=`) instead of read from
    sql/<name>.sql: kpi_daily is generated from kpi_models/catalogue.yaml, so its SQL cannot drift from it."""

    generator: str = ""

    def _generate(self, sources: Sequence[str] | None) -> str:
        module, _, function = self.generator.partition(":")
        return str(getattr(import_module(module), function)(sources=sources))

    def sql(self) -> str:
        return self._generate(None)

    def parts(self) -> dict[str, str]:
        return {source: self._generate([source]) for source in self.sources}

    def combined(self, sources: Sequence[str]) -> str:
        """One SELECT of these sources' rows (the union of their parts' rows)."""
        return self._generate(list(sources))

    def output_columns(self) -> tuple[str, ...]:
        """kpi_daily's generated SELECT always has the same columns (kpi_models.catalogue.KPI_DAILY_COLUMNS)."""
        from kpi_models.catalogue import KPI_DAILY_COLUMNS

        return KPI_DAILY_COLUMNS

    def typed_part(self, source: str, names: Mapping[str, str]) -> str:
        """One source's SELECT with its name columns in the given types (the generator's `names`)."""
        module, _, function = self.generator.partition(":")
        return str(getattr(import_module(module), function)(sources=[source], names=names))


def _registered_sources(model: KpiModel) -> tuple[str, ...]:
    """The registry's sources (read now, not at import) that have rows in the generated table, in run order."""
    from kpi_models.catalogue import daily_sources

    with_rows = set(daily_sources())
    return tuple(code for code in registry.codes() if code in with_rows)


def _registry_decides(model: KpiModel, value: object) -> None:
    """The registry lists the sources: the constructor's `sources` must be empty, never a list silently dropped."""
    if value:
        raise ValueError(f"{model.name}: sources come from the registry (connectors/registry.py); got {value!r}")


def _inputs_with_own_sql(model: KpiModel) -> tuple[Stream, ...]:
    """The given inputs, plus the raw streams of every registered source that brings its own KPI SQL
    (`SourceSpec.kpi_sql`): its refresh then selects this table, and its raw tables exist before the SQL reads them."""
    own = tuple(stream for spec in registry.SOURCES if spec.kpi_sql
                for stream in spec.connector_module().STREAMS)
    return (*model.__dict__.get("_given_inputs", ()), *own)


def _keep_inputs(model: KpiModel, value: tuple[Stream, ...]) -> None:
    object.__setattr__(model, "_given_inputs", tuple(value))


class RegistryKpiModel(GeneratedKpiModel):
    """A generated table over every registered source, read from the registry when asked: a platform added to the
    registry (issue #20: a connector, a sandbox server, an entry and its KPI SQL) is rebuilt, run and selected
    without an edit here. `sources`: the registered sources with rows in it; `inputs`: the given ones plus the raw
    streams of the sources with their own KPI SQL."""

    sources = property(_registered_sources, _registry_decides)  # type: ignore[assignment]
    inputs = property(_inputs_with_own_sql, _keep_inputs)  # type: ignore[assignment]


def kpi_daily_enums() -> dict[str, tuple[str, ...]]:
    """The values kpi.kpi_daily's name columns may hold, from the one list of each: sources from the registry
    (connectors/registry.py), KPIs from the catalogue (kpi_models/catalogue.yaml plus the registered sources' own KPI
    SQL), channels from the one channel vocabulary (connectors/settings.py CHANNELS) plus `all`. Read when asked, so a
    source or KPI added there changes the wanted type and the next rebuild widens the column (no manual migration)."""
    from kpi_models.catalogue import daily_sources, load_catalogue

    catalogue = load_catalogue()
    return {
        "source": tuple(dict.fromkeys((*registry.codes(), *daily_sources(catalogue)))),
        "channel": (*CHANNELS, "all"),
        "kpi": tuple(k.kpi for k in catalogue.daily()),
    }


def enum_type(values: Iterable[str]) -> str:
    """The SQL of an ENUM over `values`, sorted as VARCHAR sorts them (byte order of UTF-8 = code point order), so
    ORDER BY, min/max and range comparisons on the column give what they gave on VARCHAR."""
    return "ENUM(" + ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values))) + ")"


def ensure_enum_columns(conn: duckdb.DuckDBPyConnection, model: KpiModel) -> None:
    """Give the model's table its ENUM columns (`KpiModel.enums`), before the rebuild's DELETE and INSERT (DuckDB
    refuses to commit an ALTER of a table the same transaction already changed). A column already an ENUM holding
    every wanted value is left as it is (a catalog lookup); otherwise it is altered to the ENUM of the wanted values
    plus the ones it has (a KPI dropped from the catalogue keeps its old rows readable), which rewrites the column
    once. A DuckLake keeps VARCHAR: its specification has no ENUM type
    (https://ducklake.select/docs/stable/specification/data_types), and the lake refuses one ("unsupported type
    ENUM", or "only widening type promotions are allowed" for an ALTER; tests/test_kpi_daily_enum.py)."""
    if model.enums is None or _is_lake(conn):
        return
    relation = conn.table(model.table)
    current = dict(zip(relation.columns, relation.types, strict=True))
    for column, wanted in model.enums().items():
        column_type = current.get(column)
        if column_type is None:
            continue
        have = _enum_values(column_type)
        if have is not None and set(wanted) <= set(have):
            continue
        kept: Iterable[str] = have or ()
        if have is None:  # VARCHAR: keep every value the table holds
            kept = [r[0] for r in conn.execute(f"SELECT DISTINCT {quote_ident(column)} FROM {quote_ident(model.table)}"
                                               f" WHERE {quote_ident(column)} IS NOT NULL").fetchall()]
        conn.execute(f"ALTER TABLE {quote_ident(model.table)} ALTER COLUMN {quote_ident(column)} "
                     f"TYPE {enum_type([*wanted, *kept])}")


def name_types(conn: duckdb.DuckDBPyConnection, table: str = f"{KPI_SCHEMA}.kpi_daily",
               columns: Sequence[str] = ("source", "channel", "kpi")) -> dict[str, str]:
    """The SQL type of each name column of `table` (an ENUM's, or VARCHAR: a DuckLake's, a table not built yet): a
    query comparing the column with text values it was given casts those values to it (`TRY_CAST(... AS <type>)`; a
    name the type lacks becomes NULL and matches nothing, as it did), so DuckDB compares small numbers instead of
    casting every row of the table to text (that made kpi_vs_objective's reads 2x slower)."""
    try:
        relation = conn.table(table)
    except duckdb.CatalogException:
        return dict.fromkeys(columns, "VARCHAR")
    found = dict(zip(relation.columns, relation.types, strict=True))
    out = {}
    for column in columns:
        values = _enum_values(found[column]) if column in found else None
        out[column] = "VARCHAR" if values is None else enum_type(values)
    return out


def _enum_values(column_type: DuckDBPyType) -> list[str] | None:
    """An ENUM type's values; None for any other type."""
    if column_type.id != "enum":
        return None
    return [str(v) for v in dict(column_type.children)["values"]]


def churn_view(conn: duckdb.DuckDBPyConnection, context: KpiContext) -> None:
    """`contact_churn (id, churn_value)`: the configured churn-date property of each contact (a temporary view of
    this connection), so crm_monthly reads the property the portal uses, not a fixed column name."""
    prop = context.churn_date_property
    # a catalog lookup, not information_schema (issue #21)
    columns = set(relation_columns(conn, "hubspot.contacts") or ())
    if prop not in columns:
        raise ValueError(f"hubspot.churn_date_property {prop!r} is not a column of hubspot.contacts (columns: "
                         f"{', '.join(sorted(columns))}): the connector reads the configured property, so load HubSpot "
                         "again after changing it, or fix the name")
    conn.execute(f"CREATE OR REPLACE TEMP VIEW contact_churn AS SELECT id, {quote_ident(prop)} AS churn_value "
                 "FROM hubspot.contacts")


MODELS: dict[str, KpiModel] = {
    "web_daily": KpiModel(
        name="web_daily",
        key=("date", "source", "account_id", "channel"),
        sources=("ga4", "matomo"),
        inputs=(raw.GA4_TRAFFIC, raw.GA4_REPORT_QUALITY, raw.MATOMO_REFERRERS, raw.MATOMO_CAMPAIGN_MEDIUMS),
        rate_columns=("engagement_rate", "bounce_rate", "conversion_rate"),
        params=("tz",),
    ),
    "seo_daily": KpiModel(
        name="seo_daily",
        key=("date", "source", "account_id", "search_type"),
        sources=("search_console",),
        inputs=(raw.GSC_SITE_TOTALS,),
        rate_columns=("search_ctr",),
        params=("tz",),
    ),
    "ecommerce_daily": KpiModel(
        name="ecommerce_daily",
        key=("date", "source", "account_id", "channel", "currency_code"),
        sources=("ga4", "matomo"),
        inputs=(raw.GA4_TRAFFIC, raw.GA4_ECOMMERCE, raw.GA4_CART_FUNNEL, raw.GA4_REPORT_QUALITY, raw.MATOMO_GOALS,
                raw.MATOMO_VISITS),
        rate_columns=("cart_abandonment_rate", "ecommerce_conversion_rate"),
        params=("tz",),
    ),
    "paid_search_daily": KpiModel(
        name="paid_search_daily",
        key=("date", "source", "account_id", "campaign_id"),
        sources=("google_ads",),
        inputs=(raw.ADS_CAMPAIGN_DAILY,),
        # ad_conversion_rate may exceed 1 (several conversions per interaction): only the CTR is bounded
        rate_columns=("ad_ctr",),
        params=("tz",),
    ),
    "email_daily": KpiModel(
        name="email_daily",
        key=("date", "source", "account_id", "email_id"),
        sources=("hubspot",),
        inputs=(raw.HUBSPOT_EMAIL_STATISTICS, raw.HUBSPOT_EMAIL_EVENTS_DAILY, raw.HUBSPOT_ACCOUNT_DETAILS),
        rate_columns=("email_deliverability_rate", "email_open_rate", "email_click_rate", "email_click_to_open_rate",
                      "email_bounce_rate", "email_unsubscribe_rate"),
        partition_column=None,
        params=("tz", "as_of"),
    ),
    "crm_daily": KpiModel(
        name="crm_daily",
        key=("date", "source", "account_id", "channel"),
        sources=("hubspot",),
        inputs=(raw.hubspot_default_stream("contacts"), raw.hubspot_default_stream("deals"), raw.HUBSPOT_DEAL_STAGES,
                raw.HUBSPOT_ASSOCIATIONS, raw.HUBSPOT_ACCOUNT_DETAILS),
        partition_column=None,
        params=("tz", "as_of"),
    ),
    "crm_monthly": KpiModel(
        name="crm_monthly",
        key=("month", "source", "account_id", "channel"),
        sources=("hubspot",),
        inputs=(raw.hubspot_default_stream("contacts"), raw.hubspot_default_stream("deals"),
                raw.hubspot_default_stream("feedback_submissions"), raw.HUBSPOT_DEAL_STAGES, raw.HUBSPOT_ASSOCIATIONS,
                raw.HUBSPOT_ACCOUNT_DETAILS),
        rate_columns=("churn_rate", "loyalty_rate"),
        partition_column=None,
        params=("tz", "as_of"),
        views=(churn_view,),
    ),
    # Social networks per network, account and day (issue #22): followers, growth, impressions, reach, engagements.
    "social_daily": KpiModel(
        name="social_daily",
        key=("date", "source", "account_id"),
        sources=tuple(s.table.split(".")[0] for s in raw.SOCIAL_ACCOUNT_DAILY),
        inputs=raw.SOCIAL_ACCOUNT_DAILY,
        params=("tz",),
    ),
    # The unified long table (date, source, channel, account_id, kpi, numerator, denominator, value, currency,
    # is_final, quality), generated from the catalogue over the per-channel tables above (plus HubSpot contacts for
    # leads). Money is converted at each day's rate (kpi.fx_rate): build it with kpi_models.layer.rebuild_kpi_daily,
    # which stores the rates first. Its rates live in the `value` column next to counts, so there are no
    # rate_columns: kpi_models.checks checks them per KPI unit. Rebuilt per source (`sources`): one source's
    # failure or run never touches another source's rows. A registered source's own KPI SQL (SourceSpec.kpi_sql)
    # adds its rows (kpi_models.catalogue.load_catalogue).
    "kpi_daily": RegistryKpiModel(
        name="kpi_daily",
        key=("date", "source", "channel", "account_id", "kpi"),
        sources=(),  # every registered source with KPI rows, read from the registry when asked
        inputs=(),
        params=("tz", "as_of"),
        depends_on=("web_daily", "seo_daily", "paid_search_daily", "ecommerce_daily", "email_daily", "crm_daily",
                    "social_daily"),
        generator="kpi_models.catalogue:kpi_daily_sql",
        enums=kpi_daily_enums,
    ),
}

# Per-source rows of kpi_daily: the report sources are rebuilt by the daily partitioned runs, the incremental ones
# (HubSpot) by every run of theirs (whole, from the first day they have data to the as-of day).
REPORT_SOURCES = registry.codes("report")
HUBSPOT_SOURCES = registry.codes("incremental")


def write_restatement_windows(conn: duckdb.DuckDBPyConnection, reread_days: Mapping[str, int]) -> None:
    """Replace `kpi.restatement_window` (source, days): a day loaded at least `days` after it is final (rule 11)."""
    replace_if_changed(conn, f"{KPI_SCHEMA}.restatement_window", pa.table({
        "source": pa.array(list(reread_days), pa.string()),
        "days": pa.array([int(v) for v in reread_days.values()], pa.int32()),
    }))


def write_channel_map(conn: duckdb.DuckDBPyConnection, channels: Mapping[str, Mapping[str, str]]) -> None:
    """Replace `kpi.channel_map` (source, raw_value, channel) with the editable mapping from config."""
    rows = [(source, raw, channel) for source, mapping in channels.items() for raw, channel in mapping.items()]
    table = pa.table(
        {
            "source": pa.array([r[0] for r in rows], pa.string()),
            "raw_value": pa.array([r[1] for r in rows], pa.string()),
            "channel": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    replace_if_changed(conn, f"{KPI_SCHEMA}.channel_map", table)


def replace_if_changed(conn: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    """`replace_table`, skipped when the table already holds exactly these rows and column types: every rebuild
    writes the run's mapping and windows, and rewriting an unchanged table made each commit's CHECKPOINT write it
    again (issue #21: a one-day recompute paid that once per source part). Inside `batched`, a table this batch
    already wrote (or found) with exactly these rows is not compared again: nothing else writes it in the meantime."""
    written = _BATCH_WRITTEN.get() if in_batch(conn) else None
    if written is not None and table in written and written[table].equals(data, check_metadata=True):
        return
    try:
        existing = conn.table(table)
    except duckdb.CatalogException:
        existing = None
    wanted = conn.from_arrow(data)
    if not (existing is not None and existing.columns == wanted.columns and existing.types == wanted.types
            and sorted(existing.fetchall(), key=repr) == sorted(_python_rows(data), key=repr)):
        replace_table(conn, table, data)
    if written is not None:
        written[table] = data


def _python_rows(data: pa.Table) -> list[tuple[object, ...]]:
    """The rows of an Arrow table as Python tuples, as DuckDB's fetchall gives a table holding them (same Python types
    for the same column types, which the caller compares first): converted by Arrow, not by a DuckDB scan of it,
    which cost 1.5 ms of the 2-3 ms each comparison took, ~20 comparisons a per-table one-day recompute (issue #21).
    A value converted differently (a time zone's repr) only sorts differently: the table is rewritten, never kept."""
    return list(zip(*(column.to_pylist() for column in data.columns), strict=True))


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild wrote, for run metadata; `failed`: the sources whose part could not be rebuilt (their rows
    are kept as they were) with the error, when the caller asked to isolate sources. `skipped`: a whole-table model
    whose inputs (and table) had not changed since its last rebuild, left as it was."""

    table: str
    window: Window | None
    rows: int
    columns: tuple[tuple[str, str], ...]
    failed: Mapping[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    skipped: bool = False


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__


@conflict_retried  # on a DuckLake, a rebuild that lost a commit race to another writer is run again
def rebuild(
    conn: duckdb.DuckDBPyConnection,
    model: KpiModel | str,
    window: Window | None,
    context: KpiContext | None = None,
    *,
    sources: Sequence[str] | None = None,
    isolate_sources: bool = False,
    kpis: Sequence[str] | None = None,
) -> RebuildResult:
    """Recompute `window` of the model's table from raw tables (the whole table when the model is not
    partitioned). Each source's rows come from that source's SQL part: a source whose part fails (its raw table
    changed shape, a value does not cast) keeps its old rows and the other sources are rebuilt all the same.
    `sources` limits the rebuild to those sources (a source's daily run rebuilds its own rows only). A failed part
    raises KpiRebuildError after the others are committed, unless `isolate_sources`, which returns it in
    `RebuildResult.failed` instead."""
    if isinstance(model, str):
        model = MODELS[model]
    context = context or KpiContext()
    chosen = [s for s in model.sources if sources is None or s in sources]
    parts = model.parts()
    with backend_known(conn):  # the backend asked once for the whole rebuild, not at each transaction and branch
        if model.partition_column is None:
            result = _rebuild_whole(conn, model, context, [parts[s] for s in chosen])
        else:
            if window is None:
                raise ValueError(f"model {model.name} is partitioned: a window is required")
            failed, inserted = _rebuild_window(conn, model, window, context, {s: parts[s] for s in chosen}, kpis)
            result = _summary(conn, model, window, chosen, failed, inserted if kpis is None else None)
    if result.failed and not isolate_sources:
        raise KpiRebuildError(model.table, result.failed)
    return result


def _rebuild_window(conn: duckdb.DuckDBPyConnection, model: KpiModel, window: Window, context: KpiContext,
                    parts: Mapping[str, str], kpis: Sequence[str] | None) -> tuple[dict[str, str], int | None]:
    """Replace the window's rows of every chosen source in ONE transaction (one commit and CHECKPOINT per table, not
    one per source: issue #21). A part that fails rolls that attempt back whole; the sources are then replaced one
    transaction each, so the failing source keeps its old rows and the others are rebuilt all the same. Returns
    the failed sources with their error, and the rows inserted when every source's were (None after a failure)."""
    if not parts:
        return {}, 0
    try:
        with step_transaction(conn, rebuilds=model.table):
            _prepare(conn, model, context)
            inserted = sum(_replace_rows(conn, model, window, context, sources, query, kpis)
                           for sources, query in _statements(model, window, parts).items())
        return {}, inserted
    except duckdb.Error as exc:
        # another writer won a DuckLake commit (conflict_retried runs the rebuild again), or the batch's one
        # transaction is aborted (its caller rolls it back and decides)
        if is_conflict(exc) or in_batch(conn):
            raise
        if len(parts) == 1:
            return {source: _first_line(exc) for source in parts}, None
    failed: dict[str, str] = {}
    for source, query in parts.items():
        try:
            with step_transaction(conn, rebuilds=model.table):
                _prepare(conn, model, context)
                _replace_rows(conn, model, window, context, (source,), query, kpis)
        except duckdb.Error as exc:
            failed[source] = _first_line(exc)
    return failed, None


def _statements(model: KpiModel, window: Window, parts: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """The SELECTs that replace the window's rows, by the sources each one writes: one per source, except a generated
    model's short window (a recompute), whose sources are replaced by ONE SELECT generated for all of them (issue #21:
    kpi_daily's eight DELETE and INSERT pairs of a one-day recompute each planned the big generated SQL, with the
    same rows). A failing source still fails alone: the attempt is rolled back and every source retried on its own."""
    if isinstance(model, GeneratedKpiModel) and len(parts) > 1 and window.days <= TYPED_NAMES_DAYS:
        return {tuple(parts): model.combined(tuple(parts))}
    return {(source,): query for source, query in parts.items()}


# A window longer than this many days (a backfill) gets kpi_daily's SELECT with its names already in the table's ENUM
# types: 15 % less CPU for a year's GA4 rows at 2M raw rows. A shorter one (a recompute) keeps the plain SELECT: its
# few rows cost little to cast, and the typed SQL's ENUM literals took 15-100 ms more to plan over all sources.
TYPED_NAMES_DAYS = 31


def _replace_rows(conn: duckdb.DuckDBPyConnection, model: KpiModel, window: Window, context: KpiContext,
                  sources: Sequence[str], query: str, kpis: Sequence[str] | None = None) -> int:
    """Replace these sources' rows of the window (only those `kpis`' rows, in a long table) with the query's, in the
    caller's transaction; returns the rows inserted (every model's SQL gives rows of its window only). Rows are
    inserted in date order, so each day's rows sit together in the table's row groups: the next re-read's DELETE and
    every windowed read of this table (kpi_daily reads the per-channel tables by date) skip the other days' row
    groups instead of scanning the whole table."""
    target = quote_ident(model.table)
    part = quote_ident(model.partition_column or "date")
    params = used_params(query, {"start": window.start, "end": window.end, **context.params()})
    bounds: dict[str, object] = {"start": window.start, "end": window.end}
    if len(sources) == 1:
        only, bounds["source"] = " AND source = $source", sources[0]
    else:
        only, bounds["sources"] = " AND source IN (SELECT unnest($sources::VARCHAR[]))", list(sources)
    if kpis is not None:
        only += " AND kpi IN (SELECT unnest($kpis::VARCHAR[]))"
        bounds["kpis"] = list(kpis)
    if relation_columns(conn, model.table) is None:
        conn.execute(f"CREATE TABLE {target} AS SELECT * FROM ({query}) LIMIT 0", params)
    else:
        _add_new_columns(conn, model.table, query, params, model.output_columns())
    ensure_enum_columns(conn, model)
    if (model.enums is not None and isinstance(model, GeneratedKpiModel) and window.days > TYPED_NAMES_DAYS
            and not _is_lake(conn)):
        # the names in the table's own ENUM types, cast on each group's rows, not on every row inserted
        (source,) = sources  # a long window's parts are one source each (`_statements`)
        query = model.typed_part(source, name_types(conn, model.table, tuple(model.enums())))
    conn.execute(f"DELETE FROM {target} WHERE {part} BETWEEN $start AND $end{only}", bounds)
    names = {k: v for k, v in bounds.items() if k in ("source", "sources", "kpis")}
    row = conn.execute(f"INSERT INTO {target} BY NAME SELECT * FROM ({query}) WHERE true{only} ORDER BY {part}",
                       {**params, **names}).fetchone()
    return int(row[0]) if row else 0


def _add_new_columns(conn: duckdb.DuckDBPyConnection, table: str, query: str, params: Mapping[str, object],
                     known: Sequence[str] = ()) -> None:
    """A KPI table built by an earlier version of its SQL gains the columns the SQL added since (as the loader does
    for raw tables), instead of failing every rebuild with a binder error after an upgrade. Days outside the rebuilt
    window keep NULL there, not a made-up zero, until they are rebuilt: the warning says how. `known`: the SQL's
    column names when known without binding it (`KpiModel.output_columns`)."""
    added = []
    for column_name, column_type in _missing_columns(conn, table, query, params, known):
        conn.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN {quote_ident(column_name)} {column_type}")
        added.append(column_name)
    if added:
        log.warning("%s was built by an earlier version: added column(s) %s; days outside this rebuild's window are "
                    "NULL there until rebuilt (mkpi backfill --start <first day>)", table, ", ".join(added))


# (query, parameter names) -> the query's output columns. Binding kpi_daily's generated SELECT costs tens of
# milliseconds, and was paid once per source part of every rebuild; every model names its output columns in its SQL,
# so they only change with the SQL text (a column the table lacks is always described afresh, with today's types).
_DESCRIBED: dict[tuple[str, tuple[str, ...]], list[tuple[str, str]]] = {}


def relation_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
    """The columns of `schema.name`, or None when there is no such table or view (a catalog lookup, not a query of
    information_schema)."""
    try:
        return list(conn.table(table).columns)
    except duckdb.CatalogException:
        return None


def _missing_columns(conn: duckdb.DuckDBPyConnection, table: str, query: str, params: Mapping[str, object],
                     known: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(name, type) of the columns the model's SQL selects that its existing table lacks; [] when the SQL cannot be
    bound yet (its inputs are created by the rebuild's own preparation, which then checks again). `known`: the SQL's
    column names when known without binding it; a table that has them all lacks none, and the SQL is not described:
    a Dagster step is a process of its own, and describing kpi_daily's generated SQL bound all of it again in every
    kpi_daily step (~10-20 ms, issue #21 target 5; `_DESCRIBED` keeps a process's own descriptions)."""
    existing = set(relation_columns(conn, table) or ())
    if known and set(known) <= existing:
        return []
    key = (query, tuple(sorted(params)))
    described = _DESCRIBED.get(key)
    if described is None or not {name for name, _ in described} <= existing:
        try:
            rows = conn.execute(f"DESCRIBE SELECT * FROM ({query})", dict(params)).fetchall()
        except (duckdb.CatalogException, duckdb.BinderException):
            return []
        described = _DESCRIBED[key] = [(r[0], r[1]) for r in rows]
    return [(name, column_type) for name, column_type in described if name not in existing]


def _summary(conn: duckdb.DuckDBPyConnection, model: KpiModel, window: Window, chosen: Sequence[str],
             failed: Mapping[str, str], inserted: int | None = None) -> RebuildResult:
    """The window's rows of the chosen sources now: the rows just inserted when every source's part replaced its
    whole window (the deletes left none other: counting them again scanned the window, seconds on a full year of
    kpi_daily, issue #21), else counted (a failed source's kept rows, one KPI's rows replaced)."""
    target = quote_ident(model.table)
    if relation_columns(conn, model.table) is None:
        return RebuildResult(model.table, window, 0, (), failed, tuple(chosen))
    rows = inserted
    if rows is None:
        part = quote_ident(model.partition_column or "date")
        row = conn.execute(f"SELECT count(*) FROM {target} WHERE {part} BETWEEN $start AND $end "
                           "AND source IN (SELECT unnest($sources::VARCHAR[]))",
                           {"start": window.start, "end": window.end, "sources": list(chosen)}).fetchone()
        rows = int(row[0]) if row else 0
    return RebuildResult(model.table, window, rows, _described(conn, model.table), failed, tuple(chosen))


def _described(conn: duckdb.DuckDBPyConnection, table: str) -> tuple[tuple[str, str], ...]:
    """(name, type) of each column of an existing table, as DESCRIBE gives them (the run metadata's column schema),
    read from the catalog's relation: the same text for every KPI and raw table (ENUMs, lists, structs), 0.02 ms
    against ~0.9 ms a DESCRIBE, sent once per table of every recompute (issue #21 target 5)."""
    relation = conn.table(table)
    return tuple((name, str(dtype)) for name, dtype in zip(relation.columns, relation.types, strict=True))


# Raw channel columns per source, for counting values the mapping does not know.
_RAW_CHANNELS = (
    ("ga4", "ga4.traffic_by_channel", "t.session_default_channel_group", "t.sessions"),
    ("matomo", "matomo.referrer_types", "t.referrer_type", "t.nb_visits"),
    # unknown campaign mediums stay campaign_tagged (web_daily.sql), listed here so the mapping can be extended
    ("matomo_campaign_medium", "matomo.campaign_mediums", "lower(t.campaign_medium)", "t.nb_visits"),
    ("google_ads", "google_ads.campaign_daily", "t.advertising_channel_type", "t.clicks"),
)


def ensure_model_table(conn: duckdb.DuckDBPyConnection, model: KpiModel | str,
                       context: KpiContext | None = None) -> None:
    """Create the model's table, empty, if it was never built, so models and views reading it can be built
    before it (a source not configured yet leaves an empty table, not a missing-table error)."""
    if isinstance(model, str):
        model = MODELS[model]
    context = context or KpiContext()
    given = {p: context.params()[p] for p in model.params}
    if model.partition_column is not None:
        given = {"start": date(1970, 1, 1), "end": date(1970, 1, 1), **given}
    query = next(iter(model.parts().values()))
    if relation_columns(conn, model.table) is not None:
        # built already: nothing to write (each no-op transaction cost a CHECKPOINT, issue #9), unless an earlier
        # version built it without columns its SQL has now (a model reading it would fail to bind them)
        known = model.output_columns()
        if model.partition_column is not None and _missing_columns(conn, model.table, query, used_params(query, given),
                                                                   known):
            with step_transaction(conn):
                _prepare(conn, model, context, write=False)
                _add_new_columns(conn, model.table, query, used_params(query, given), known)
        return
    with step_transaction(conn):
        _prepare(conn, model, context, write=False)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {quote_ident(model.table)} AS SELECT * FROM ({query}) LIMIT 0",
                     used_params(query, given))
        ensure_enum_columns(conn, model)


def _prepare(conn: duckdb.DuckDBPyConnection, model: KpiModel, context: KpiContext, write: bool = True) -> None:
    """The model's inputs exist (empty when a source is not loaded yet), with the run's channel mapping and
    restatement windows (`write=False`: only created when missing), and the model's own views."""
    missing = [stream for stream in model.inputs if relation_columns(conn, stream.table) is None]
    if missing:  # catalog lookups when every input exists (the usual case), not a query per input
        ensure_tables(conn, missing)
    for view in model.views:
        view(conn, context)
    # catalog lookups first: the schema and the empty mapping were created again by every model (issue #21)
    channel_map = f"{KPI_SCHEMA}.channel_map"
    if relation_columns(conn, channel_map) is None:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {KPI_SCHEMA}")
    if write and context.channels is not None:
        write_channel_map(conn, context.channels)
    if relation_columns(conn, channel_map) is None:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {channel_map} (source VARCHAR, raw_value VARCHAR, channel VARCHAR)")
    if write or relation_columns(conn, f"{KPI_SCHEMA}.restatement_window") is None:
        write_restatement_windows(conn, context.reread_days)


# What each whole-table model was last built from: `inputs` fingerprints its SQL, parameters and every table it
# reads; `output` the table it wrote. Internal (the _mkpi schema is never published).
BUILDS_TABLE = "_mkpi.kpi_builds"
READS_TABLE = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*\.[A-Za-z_]\w*)", re.IGNORECASE)


def ensure_builds_table(conn: duckdb.DuckDBPyConnection) -> None:
    """`_mkpi.kpi_builds` (table_name, inputs, output) exists: a catalog lookup when it does (the usual case), instead
    of a CREATE SCHEMA and a CREATE TABLE per whole-table model and per view refresh (issue #21)."""
    if relation_columns(conn, BUILDS_TABLE) is None:
        conn.execute("CREATE SCHEMA IF NOT EXISTS _mkpi")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {BUILDS_TABLE} (table_name VARCHAR, inputs VARCHAR, output VARCHAR)")


def _content(conn: duckdb.DuckDBPyConnection, table: str) -> tuple[int, object, object]:
    """Every row of `table` summed up, order-free: (row count, xor and sum of the rows' hashes)."""
    row = conn.execute(f"SELECT count(*), bit_xor(hash(t)), sum(hash(t)) FROM {quote_ident(table)} AS t").fetchone()
    return (int(row[0]), row[1], row[2]) if row is not None else (0, None, None)


def _content_hash(conn: duckdb.DuckDBPyConnection, table: str) -> str:
    """A fingerprint of every row of `table` (`_content`'s text)."""
    return repr(_content(conn, table))


def _input_hash(conn: duckdb.DuckDBPyConnection, table: str) -> str:
    """`_content_hash` of an input table; inside `batched`, a raw table's (not kpi.* or _mkpi.*, which the batch's
    own steps write) is taken once per batch: no KPI step writes a raw table."""
    hashes = _BATCH_HASHES.get() if in_batch(conn) else None
    if hashes is None or table.split(".", 1)[0] in (KPI_SCHEMA, "_mkpi"):
        return _content_hash(conn, table)
    if table not in hashes:
        hashes[table] = _content_hash(conn, table)
    return hashes[table]


def _inputs_fingerprint(conn: duckdb.DuckDBPyConnection, model: KpiModel, query: str, params: Mapping[str, object],
                        context: KpiContext) -> str:
    """The SQL, its parameters (and the configured churn property) and the content of every table it reads."""
    tables = sorted({stream.table for stream in model.inputs} | {m.lower() for m in READS_TABLE.findall(query)})
    parts = [query, repr(sorted(params.items())), context.churn_date_property]
    parts += [f"{table}={_input_hash(conn, table)}" for table in tables if relation_columns(conn, table) is not None]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _rebuild_whole(conn: duckdb.DuckDBPyConnection, model: KpiModel, context: KpiContext,
                   queries: Sequence[str]) -> RebuildResult:
    """A small unpartitioned table (one source's monthly CRM KPIs, its e-mails) replaced whole, atomically. Whole
    because its old days change (a contact's lifecycle date moves, an automated e-mail's counters grow), so any
    change of any input rebuilds every day; when neither its inputs nor the table changed since its last rebuild,
    the table is left as it is (issue #21: a one-day recompute rebuilt three such tables every time)."""
    target = quote_ident(model.table)
    query = "\nUNION ALL BY NAME\n".join(f"SELECT * FROM ({q})" for q in queries)
    params = used_params(query, context.params())
    with step_transaction(conn):
        _prepare(conn, model, context)
        ensure_builds_table(conn)
        inputs = _inputs_fingerprint(conn, model, query, params, context)
        last = conn.execute(f"SELECT inputs, output FROM {BUILDS_TABLE} WHERE table_name = ?", [model.table]).fetchone()
        output = None  # the table's content: its row count is the result's (no count(*) of its own, issue #21)
        if last is not None and last[0] == inputs and relation_columns(conn, model.table) is not None:
            output = _content(conn, model.table)
        skipped = output is not None and last is not None and last[1] == repr(output)
        if not skipped:
            conn.execute(f"CREATE OR REPLACE TABLE {target} AS {query}", params)
            output = _content(conn, model.table)
            conn.execute(f"DELETE FROM {BUILDS_TABLE} WHERE table_name = ?", [model.table])
            conn.execute(f"INSERT INTO {BUILDS_TABLE} VALUES (?, ?, ?)", [model.table, inputs, repr(output)])
        columns = _described(conn, model.table)
    return RebuildResult(model.table, None, output[0], columns, {}, model.sources, skipped)


def unmapped_channel_values(conn: duckdb.DuckDBPyConnection, window: Window) -> dict[str, dict[str, int]]:
    """Raw channel values in the window that the mapping does not know (they count as `other`),
    per source, with the sessions they carry. A raw table not loaded yet is skipped (a catalog lookup: listing
    information_schema.tables cost the web and paid search steps ~2.5 ms each, issue #21 target 5)."""
    found: dict[str, dict[str, int]] = {}
    for source, table, column, measure in _RAW_CHANNELS:
        if relation_columns(conn, table) is None:
            continue
        rows = conn.execute(
            f"SELECT {column}, CAST(sum({measure}) AS BIGINT) FROM {table} t "
            f"LEFT JOIN kpi.channel_map m ON m.source = ? AND m.raw_value = {column} "
            f"WHERE t.date BETWEEN ? AND ? AND m.channel IS NULL GROUP BY 1 ORDER BY 1",
            [source, window.start, window.end],
        ).fetchall()
        if rows:
            found[source] = {str(r[0]): int(r[1] or 0) for r in rows}
    return found
