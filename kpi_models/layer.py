"""The unified KPI layer's build steps, as plain functions over a DuckDB connection (Dagster calls them).

Why a module of its own: kpi.kpi_daily needs more than the generic runner does for a SQL file (the catalogue
table, the dated FX rates it converts money with, and its upstream per-channel tables existing even when a source
is not configured yet). Keeping those steps here lets the runner stay generic and an orchestrator call a few
functions in order: `rebuild_kpi_daily` (or `rebuild_hubspot_kpi_daily`), `create_rollup_views`, then objectives
and checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import duckdb

from connectors import registry
from connectors.batches import Window
from connectors.ducklake import conflict_retried, is_ducklake
from connectors.raw_tables import social_account_period_reach
from connectors.warehouse import backend_known, ensure_tables, is_lake, table_exists
from kpi_models.catalogue import (
    KPI_DEFINITION,
    KPI_SCHEMA,
    PERIOD_REACH_VIEW,
    Catalogue,
    dependent_kpis,
    kpi_definition_table,
    load_catalogue,
    rollup_view_sql,
)
from kpi_models.context import KpiContext
from kpi_models.fx import FxSync, clear_refresh_pending, ensure_fx_table, needed_pairs, sync_fx_rates
from kpi_models.runner import (
    BUILDS_TABLE,
    HUBSPOT_SOURCES,
    MODELS,
    READS_TABLE,
    KpiRebuildError,
    RebuildResult,
    batched,
    ensure_builds_table,
    ensure_model_table,
    rebuild,
    relation_columns,
    replace_if_changed,
    step_transaction,
)

KPI_DAILY = "kpi_daily"
# Sources with amounts converted at a day's rate (their rows are rebuilt when rates change): the registry's `money`.
MONEY_SOURCES = registry.money_codes()


@dataclass(frozen=True)
class KpiDailyResult:
    """What a kpi_daily rebuild wrote (the runner's result) and what the FX sync did."""

    rebuild: RebuildResult
    fx: FxSync = field(default_factory=FxSync)

    @property
    def rows(self) -> int:
        return self.rebuild.rows


def _money_relations() -> list[tuple[str, str]]:
    """(table, currency column) of every catalogue relation whose amounts are converted."""
    catalogue = load_catalogue()
    return [(r.table, r.currency_column) for r in catalogue.relations.values() if r.table and r.currency_column]


@conflict_retried  # on a DuckLake, the whole step runs again if it lost a commit race to another writer
def rebuild_kpi_daily(
    conn: duckdb.DuckDBPyConnection,
    window: Window,
    context: KpiContext | None = None,
    *,
    sources: Sequence[str] | None = None,
    isolate_sources: bool = False,
) -> KpiDailyResult:
    """Rebuild `window` of kpi.kpi_daily for `sources` from the per-channel KPI tables (build those first).

    Writes kpi.kpi_definition, stores the dated FX rates the window's amounts need (kpi_models/fx.py: missing
    ones added, estimates replaced, a changed published rate only reported), creates any upstream table never built
    (empty), then replaces the window's rows of each of those sources atomically (`sources=None`: every source;
    `isolate_sources`: a source whose part fails is reported in the result, the others are rebuilt)."""
    with backend_known(conn):  # the backend asked once for the whole step (issue #21 target 5)
        return _rebuild_kpi_daily(conn, window, context or KpiContext(), sources, isolate_sources)


def _rebuild_kpi_daily(conn: duckdb.DuckDBPyConnection, window: Window, context: KpiContext,
                       sources: Sequence[str] | None, isolate_sources: bool) -> KpiDailyResult:
    """rebuild_kpi_daily's work: definitions, upstream tables, FX rates, the rows, the cross-source rows."""
    refresh_kpi_definition(conn)
    _ensure_upstream(conn, context)
    with step_transaction(conn):
        pairs = needed_pairs(conn, _money_relations(), window.start, window.end, context.fx)
        fx = sync_fx_rates(conn, context.fx, pairs)
    result = rebuild(conn, MODELS[KPI_DAILY], window, context, sources=sources, isolate_sources=isolate_sources)
    # other sources' cross-source rows that read these sources' tables (an Ads run changes ROI's spend)
    for other, kpis in (dependent_kpis(sources) if sources is not None else {}).items():
        extra = rebuild(conn, MODELS[KPI_DAILY], window, context, sources=[other], kpis=kpis, isolate_sources=True)
        if extra.failed:
            result = dataclasses.replace(result, failed={**result.failed, **extra.failed})
            if not isolate_sources:
                raise KpiRebuildError(result.table, extra.failed)
    rebuilt = set(result.sources) - set(result.failed)
    if set(MONEY_SOURCES) <= rebuilt:
        with step_transaction(conn):
            clear_refresh_pending(conn, window.start, window.end)
    return KpiDailyResult(result, fx)


def hubspot_window(conn: duckdb.DuckDBPyConnection, context: KpiContext) -> Window | None:
    """Every day HubSpot has KPI rows for: from its first contact or e-mail day to the as-of day."""
    firsts: list[date] = []
    for table, column in (("hubspot.contacts", "CAST(timezone($tz, createdate) AS DATE)"),
                          (f"{KPI_SCHEMA}.email_daily", "date")):
        if table_exists(conn, table):
            params = {"tz": context.tz} if "$tz" in column else {}
            row = conn.execute(f"SELECT min({column}) FROM {table}", params).fetchone()
            if row and row[0] is not None:
                firsts.append(row[0])
    if not firsts or min(firsts) > context.last_day:
        return None
    return Window(min(firsts), context.last_day)


@conflict_retried
def rebuild_hubspot_kpi_daily(conn: duckdb.DuckDBPyConnection, context: KpiContext | None = None
                              ) -> KpiDailyResult | None:
    """After every HubSpot run: rebuild all of HubSpot's rows of kpi.kpi_daily (leads, contacts created, new
    customers, e-mail KPIs) up to the as-of day. Whole, not a trailing window: a contact's lifecycle date can move
    to another day and an automated e-mail's old days change, and only a full rebuild takes the old day's count
    back. Cheap (HubSpot rows are few); the report sources' runs never touch these rows."""
    context = context or KpiContext()
    window = hubspot_window(conn, context)
    if window is None:
        ensure_model_table(conn, KPI_DAILY, context)
        return None
    return rebuild_kpi_daily(conn, window, context, sources=HUBSPOT_SOURCES, isolate_sources=True)


def refresh_kpi_definition(conn: duckdb.DuckDBPyConnection) -> None:
    """`kpi.kpi_definition` from the catalogue, rewritten only when its rows changed (issue #21: every recompute
    wrote it again, and each rewrite cost a commit's CHECKPOINT)."""
    replace_if_changed(conn, KPI_DEFINITION, kpi_definition_table(load_catalogue()))


def _ensure_upstream(conn: duckdb.DuckDBPyConnection, context: KpiContext) -> None:
    for upstream in MODELS[KPI_DAILY].depends_on:
        ensure_model_table(conn, upstream, context)


@conflict_retried
def create_rollup_views(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """(Re)create kpi.kpi_weekly and kpi.kpi_monthly from the catalogue; return their names.

    DuckDB binds a view when it is created, so kpi_daily and crm_monthly are created empty first if they were
    never built (the views then fill as the tables do; recreate them only when the catalogue changes)."""
    with backend_known(conn):  # the backend asked once for the whole step (issue #21 target 5)
        return _create_rollup_views(conn)


def _create_rollup_views(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """create_rollup_views' work."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {KPI_SCHEMA}")
    ensure_fx_table(conn)
    context = KpiContext()
    _ensure_upstream(conn, context)
    ensure_model_table(conn, KPI_DAILY, context)
    ensure_model_table(conn, "crm_monthly", context)
    refresh_kpi_definition(conn)
    catalogue = load_catalogue()
    statements = {f"{KPI_SCHEMA}.{name}": statement for name, statement in rollup_view_sql(catalogue).items()}
    period_reach = period_reach_view_sql(conn, catalogue)
    _create_views_if_changed(conn, {**period_reach, **statements})
    return list(statements)


def period_reach_view_sql(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> dict[str, str]:
    """The statement (re)creating kpi.social_period_reach (source, date, account_id, period, reach): every network's
    own distinct reach over a week or 28 days ending on `date` (<source>.account_period_reach, created empty here for
    a network not loaded yet), which the roll-ups take for a week or a 28-day month instead of ever summing daily
    reach. None without a distinct KPI: the roll-ups' own empty stand-in (kpi_models.catalogue.rollup_view_sql)."""
    codes = tuple(dict.fromkeys(s.source for k in catalogue.daily() if k.aggregation == "distinct"
                                for s in k.sources))
    streams = [social_account_period_reach(code) for code in codes]
    # catalog lookups first: ensure_tables asks information_schema once per table, even when all exist (issue #21)
    ensure_tables(conn, [stream for stream in streams if relation_columns(conn, stream.table) is None])
    selects = [f"SELECT '{code}' AS source, date, account_id, period, reach FROM {stream.table}"
               for code, stream in zip(codes, streams, strict=True)]
    if not selects:
        return {}
    view = f"{KPI_SCHEMA}.{PERIOD_REACH_VIEW}"
    return {view: f"CREATE OR REPLACE VIEW {view} AS\n" + "\nUNION ALL\n".join(selects)}


def create_period_reach_view(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> None:
    """(Re)create kpi.social_period_reach when its statement or the tables it reads changed."""
    _create_views_if_changed(conn, period_reach_view_sql(conn, catalogue))


def _table_shapes(conn: duckdb.DuckDBPyConnection, statements: Mapping[str, str]) -> str:
    """The columns (names, types, in order) of every table or view the view statements read (FROM / JOIN
    schema.name, as runner.READS_TABLE finds them): DuckDB refuses a view whose tables' types changed since it was
    created, so a changed shape recreates them. Read from the catalog's relations (a lookup each), not by listing every
    table of the KPI and source schemas with its CREATE statement (duckdb_tables().sql, ~3-7 ms at every recompute,
    for tables no view reads; issue #21 target 5)."""
    names = sorted({m.lower() for statement in statements.values() for m in READS_TABLE.findall(statement)})
    shapes = []
    for name in names:
        try:
            relation = conn.table(name)
            shapes.append((name, list(zip(relation.columns, map(str, relation.types), strict=True))))
        except duckdb.Error as exc:  # missing, or a view that no longer binds: recreate
            shapes.append((name, type(exc).__name__))
    return repr(shapes)


def _create_views_if_changed(conn: duckdb.DuckDBPyConnection, statements: Mapping[str, str]) -> None:
    """Run each view's statement (name -> CREATE OR REPLACE VIEW) only when the view is missing or its statement or
    the tables it reads changed since it was created (_mkpi.kpi_builds): every recompute recreated them, a
    catalog write and commit each time (issue #21)."""
    if not statements:
        return
    with step_transaction(conn):
        ensure_builds_table(conn)
        shapes = _table_shapes(conn, statements)
        names = list(statements)
        # each view's recorded fingerprint, if the view still exists (one query for all of them)
        built = dict(conn.execute(
            f"SELECT b.table_name, b.inputs FROM {BUILDS_TABLE} AS b JOIN duckdb_views() AS v "
            "ON v.database_name = current_database() AND v.schema_name || '.' || v.view_name = b.table_name "
            "WHERE b.table_name IN (SELECT unnest($names::VARCHAR[]))", {"names": names}).fetchall())
        for name, statement in statements.items():
            inputs = hashlib.sha256(f"{statement}\n{shapes}".encode()).hexdigest()
            if built.get(name) == inputs:
                continue
            conn.execute(statement)
            conn.execute(f"DELETE FROM {BUILDS_TABLE} WHERE table_name = ?", [name])
            conn.execute(f"INSERT INTO {BUILDS_TABLE} VALUES (?, ?, '')", [name, inputs])


# The longest window rebuild_all rebuilds in one transaction (Google Ads re-reads 30 days).
BATCH_DAYS = 31


def rebuild_all(conn: duckdb.DuckDBPyConnection, window: Window, context: KpiContext | None = None) -> None:
    """Every KPI table for `window`, in the assets' order (per-channel tables, kpi_daily for every source, the
    roll-up views): what a whole run builds, for tools and tests that build without Dagster.

    On a DuckDB file a window of up to BATCH_DAYS days (every source's re-read window) is ONE transaction (one COMMIT
    and CHECKPOINT instead of one per table: issue #21, they were half of a one-day recompute); a longer one (a
    backfill) commits table by table, since reading a big uncommitted table back (kpi_daily reads the per-channel
    tables) and committing it all at once took longer than the commits saved. If any part of the batch fails, it is
    rolled back whole and the steps run again one transaction each, which keeps a failing source's old rows,
    rebuilds the others and raises KpiRebuildError naming it: the same rows and the same error as without it."""
    context = context or KpiContext()
    with backend_known(conn):  # the backend asked once for every step
        if window.days <= BATCH_DAYS and not is_lake(conn, is_ducklake):
            try:
                with batched(conn):
                    _rebuild_steps(conn, window, context)
                return
            except Exception:  # rolled back, nothing of it written: the steps below, one transaction each, rebuild
                pass  # what they can and raise the error at the same step, with the same tables committed before it
        _rebuild_steps(conn, window, context)


def _rebuild_steps(conn: duckdb.DuckDBPyConnection, window: Window, context: KpiContext) -> None:
    """rebuild_all's steps, in order."""
    for model in MODELS.values():
        if model.name != KPI_DAILY:
            rebuild(conn, model, window if model.partition_column else None, context)
    rebuild_kpi_daily(conn, window, context)
    create_rollup_views(conn)
