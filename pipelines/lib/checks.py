"""One way to write a raw-table rule check: count the rows that break it, name a few of them.

Why: every platform has counts that cannot be true (engaged sessions above sessions, clicks above
impressions, ...). Each such rule is a blocking check on its raw asset, so a wrong number stops before
the KPI tables; this helper keeps each platform's checks.py a list of rules rather than five copies.
"""

import dagster as dg

from connectors.warehouse import quote_ident
from pipelines.lib.resources import WarehouseResource

SAMPLE_ROWS = 5


def build_row_rule_check(asset: dg.AssetsDefinition | dg.AssetKey, *, name: str, table: str, violation: str,
                         description: str, blocking: bool = True) -> dg.AssetChecksDefinition:
    """A check that fails when any row of `table` matches the SQL predicate `violation`."""

    @dg.asset_check(asset=asset, name=name, blocking=blocking, description=description)
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connection() as conn:
            found = conn.execute(f"SELECT count(*) FROM {quote_ident(table)} WHERE {violation}").fetchone()
            bad = int(found[0]) if found else 0
            metadata: dict[str, object] = {"inconsistent_rows": bad, "rule": f"no row with {violation}"}
            if bad:
                cursor = conn.execute(f"SELECT * EXCLUDE (_loaded_at) FROM {quote_ident(table)} WHERE {violation} "
                                      f"LIMIT {SAMPLE_ROWS}")
                metadata["examples"] = dg.MetadataValue.md(_markdown([d[0] for d in cursor.description],
                                                                     cursor.fetchall()))
        return dg.AssetCheckResult(passed=bad == 0, metadata=metadata)

    return _check


def _markdown(columns: list[str], rows: list[tuple]) -> str:
    """The failing rows as a markdown table, so the UI names them."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
