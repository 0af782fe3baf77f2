"""The unified KPI layer's build steps, as plain functions over a DuckDB connection (Dagster calls them).

Why a module of its own: kpi.kpi_daily needs more than the generic runner does for a SQL file (the catalogue
table, the FX rates it converts money with, and its upstream per-channel tables existing even when a source is
not configured yet). Keeping those steps here lets the runner stay generic and an orchestrator call three
functions in order: `rebuild_kpi_daily`, `create_rollup_views`, then objectives and checks.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from connectors.batches import Window
from connectors.ducklake import conflict_retried
from kpi_models.catalogue import KPI_SCHEMA, load_catalogue, rollup_view_sql, write_fx_rates, write_kpi_definition
from kpi_models.runner import MODELS, RebuildResult, ensure_model_table, rebuild

KPI_DAILY = "kpi_daily"


@conflict_retried  # on a DuckLake, the whole step runs again if it lost a commit race to another writer
def rebuild_kpi_daily(
    conn: duckdb.DuckDBPyConnection,
    window: Window,
    *,
    tz: str,
    reporting_currency: str = "EUR",
    fx_rates: Mapping[str, float] | None = None,
    channels: Mapping[str, Mapping[str, str]] | None = None,
) -> RebuildResult:
    """Rebuild `window` of kpi.kpi_daily from the per-channel KPI tables (build those first for the window).

    Writes kpi.kpi_definition and kpi.fx_rate (so the rates used are the configured ones, not last run's),
    creates any upstream table never built (empty), then replaces the window atomically. `tz` is the
    reporting time zone HubSpot contact timestamps are dated in."""
    write_kpi_definition(conn)
    write_fx_rates(conn, reporting_currency, fx_rates or {})
    _ensure_upstream(conn, tz)
    return rebuild(conn, MODELS[KPI_DAILY], window, channels=channels, params={"tz": tz})


def _ensure_upstream(conn: duckdb.DuckDBPyConnection, tz: str) -> None:
    for upstream in MODELS[KPI_DAILY].depends_on:
        ensure_model_table(conn, upstream, {"tz": tz})


@conflict_retried
def create_rollup_views(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """(Re)create kpi.kpi_weekly and kpi.kpi_monthly from the catalogue; return their names.

    DuckDB binds a view when it is created, so kpi_daily and crm_monthly are created empty first if they were
    never built (the views then fill as the tables do; recreate them only when the catalogue changes)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {KPI_SCHEMA}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {KPI_SCHEMA}.fx_rate "
                 "(currency VARCHAR, reporting_currency VARCHAR, rate DOUBLE)")
    _ensure_upstream(conn, "UTC")
    ensure_model_table(conn, KPI_DAILY)
    ensure_model_table(conn, "crm_monthly")
    write_kpi_definition(conn)
    created = []
    for name, statement in rollup_view_sql(load_catalogue()).items():
        conn.execute(statement)
        created.append(f"{KPI_SCHEMA}.{name}")
    return created
