"""Blocking checks on KPI tables: a duplicated key or a rate outside [0, 1] never reaches an analyst."""

import dagster as dg
import duckdb

from connectors.warehouse import quote_ident
from kpi_models.runner import MODELS, KpiModel
from pipelines.lib.resources import WarehouseResource


def kpi_table_problems(conn: duckdb.DuckDBPyConnection, model: KpiModel) -> dict[str, int]:
    """Count duplicate keys and out-of-range rates in a KPI table (0 and 0 when healthy)."""
    table = quote_ident(model.table)
    keys = ", ".join(quote_ident(k) for k in model.key)
    dup = conn.execute(f"SELECT count(*) FROM (SELECT {keys} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
                       ).fetchone()
    out_of_range = 0
    if model.rate_columns:
        predicate = " OR ".join(f"{quote_ident(c)} < 0 OR {quote_ident(c)} > 1" for c in model.rate_columns)
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {predicate}").fetchone()
        out_of_range = int(row[0]) if row else 0
    return {"duplicate_keys": int(dup[0]) if dup else 0, "rates_out_of_range": out_of_range}


def build_kpi_check(model: KpiModel) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["kpi", model.name]),
        name=f"{model.name}_keys_unique_and_rates_valid",
        blocking=True,
        description=f"No two rows share ({', '.join(model.key)}) and "
        f"{', '.join(model.rate_columns) or 'no rate'} lie in [0, 1].",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connection() as conn:
            problems = kpi_table_problems(conn, model)
        return dg.AssetCheckResult(passed=not any(problems.values()), metadata=problems)

    return _check


kpi_checks = [build_kpi_check(model) for model in MODELS.values()]
