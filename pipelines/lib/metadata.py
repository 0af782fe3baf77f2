"""Materialisation metadata, the same shape for every source: rows, window, table, column schema."""


from collections.abc import Mapping
from typing import Any

import dagster as dg
import pyarrow as pa

from connectors.batches import Window


def column_schema_from_arrow(schema: pa.Schema, descriptions: Mapping[str, str] | None = None) -> dg.TableSchema:
    """A raw table's columns as the UI shows them, each with its description where one is known."""
    described = descriptions or {}
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type), description=described.get(f.name))
                                   for f in schema])


def column_schema_from_pairs(columns: tuple[tuple[str, str], ...]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, dtype) for name, dtype in columns])


def table_metadata(table: str, rows: int, window: Window, schema: dg.TableSchema, **extra: Any
                   ) -> dict[str, Any]:
    """Standard keys Dagster's UI understands, plus the window written and connector counters."""
    metadata: dict[str, Any] = {
        "dagster/row_count": rows,
        "dagster/table_name": table,
        "dagster/column_schema": schema,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "window_days": window.days,
    }
    metadata.update(extra)
    return metadata
