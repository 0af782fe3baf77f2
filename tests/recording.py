"""A DuckDB connection wrapper that keeps the text of every statement sent through it (tests of what a KPI batch
sends: tests/test_runner_batch_catalog.py, tests/test_runner_batch_vacuum.py)."""

import duckdb


class Recording:
    """A connection that keeps the text of every statement sent through it."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.sent: list[str] = []

    def execute(self, query: str, *args: object) -> duckdb.DuckDBPyConnection:
        self.sent.append(" ".join(query.split()))
        return self.conn.execute(query, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)
