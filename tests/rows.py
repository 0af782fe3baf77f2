"""Hand-made rows into a table, for tests that build raw or KPI tables themselves."""

import duckdb
import pyarrow as pa


def insert(conn: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    """INSERT the rows BY NAME (columns a row leaves out stay NULL)."""
    conn.register("__rows", pa.Table.from_pylist(rows))
    try:
        conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM __rows")
    finally:
        conn.unregister("__rows")
