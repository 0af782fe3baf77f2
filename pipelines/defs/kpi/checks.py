"""Blocking checks on KPI tables: a duplicated key or a rate outside [0, 1] never reaches an analyst."""


import dagster as dg

from connectors.warehouse import quote_ident
from kpi_models.runner import MODELS, KpiModel
from pipelines.lib.resources import WarehouseResource


def kpi_table_problems(conn: object, model: KpiModel) -> dict[str, int]:
    """Count duplicate keys and out-of-range rates in a KPI table (0 and 0 when healthy)."""
    table = quote_ident(model.table)
    keys = ", ".join(quote_ident(k) for k in model.key)
    dup = conn.execute(  # type: ignore[attr-defined]
        f"SELECT count(*) FROM (SELECT {keys} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()
    out_of_range = 0
    if model.rate_columns:
        predicate = " OR ".join(f"{quote_ident(c)} < 0 OR {quote_ident(c)} > 1" for c in model.rate_columns)
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {predicate}").fetchone()  # type: ignore[attr-defined]
        out_of_range = int(row[0]) if row else 0
    return {"duplicate_keys": int(dup[0]) if dup else 0, "rates_out_of_range": out_of_range}


@dg.asset_check(asset=dg.AssetKey(["kpi", "web_daily"]), blocking=True, description=(
    "No two rows share (date, source, channel) and engagement, bounce and conversion rates lie in [0, 1]."))
def web_daily_keys_unique_and_rates_valid(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connection() as conn:
        problems = kpi_table_problems(conn, MODELS["web_daily"])
    return dg.AssetCheckResult(passed=not any(problems.values()), metadata=problems)
