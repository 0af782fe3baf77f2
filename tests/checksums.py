"""One checksum of what a run leaves in a DuckDB file, for the crash and idempotence batteries (issue #8).

Why: "identical to an uninterrupted run" must mean the same rows in every raw and KPI table, not the same
bytes: load metadata (`_loaded_at`, `_window_start`, `_window_end`), the committed cursors (`_mkpi`, the
time a run started) and the analysts' copy's build record (`meta`) legitimately differ from run to run.
Rows are compared as sorted sets; doubles are compared to 12 significant digits because a parallel SUM
may add the same numbers in another order and differ in the last bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import duckdb

from connectors.warehouse import META_COLUMNS, quote_ident

NOT_DATA = ("main", "_mkpi", "meta", "information_schema", "pg_catalog")


def _normalise(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    return value


def table_checksums(path: str | Path, skip_schemas: Iterable[str] = NOT_DATA) -> dict[str, str]:
    """sha256 of every table's rows (views included), without load metadata, keyed by schema.table."""
    skip = tuple(skip_schemas)
    sums: dict[str, str] = {}
    conn = duckdb.connect(str(path), read_only=True)
    try:
        relations = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database() "
            "ORDER BY 1, 2").fetchall()
        # every relation's columns in one read: information_schema.columns binds every view of the file, so one
        # query per table cost a third of the chaos battery's busy CPU
        columns_of: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in conn.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                "WHERE table_catalog = current_database() ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall():
            columns_of.setdefault((schema, table), []).append(column)
        for schema, table in relations:
            if schema in skip:
                continue
            name = f"{schema}.{table}"
            kept = [c for c in columns_of.get((schema, table), []) if c not in META_COLUMNS]
            select = ", ".join(quote_ident(c) for c in kept)
            rows = conn.execute(f"SELECT {select} FROM {quote_ident(name)}").fetchall()
            normalised = sorted(repr(tuple(_normalise(v) for v in row)) for row in rows)
            digest = hashlib.sha256(repr(kept).encode())
            for row in normalised:
                digest.update(row.encode())
            sums[name] = f"{len(rows)}:{digest.hexdigest()}"
    finally:
        conn.close()
    return sums


def combined(sums: dict[str, str]) -> str:
    """One digest over per-table checksums: equal iff every table holds the same rows."""
    return hashlib.sha256(repr(sorted(sums.items())).encode()).hexdigest()


def checksum(path: str | Path, skip_schemas: Iterable[str] = NOT_DATA) -> str:
    """One digest over `table_checksums`: equal iff every table holds the same rows."""
    return combined(table_checksums(path, skip_schemas))


def differences(expected: dict[str, str], actual: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    """The tables whose rows differ (row count and digest on each side), for a readable failure."""
    return {t: (expected.get(t), actual.get(t)) for t in sorted(set(expected) | set(actual))
            if expected.get(t) != actual.get(t)}
