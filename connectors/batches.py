"""Typed batches: what every connector yields and the loader accepts.

A `Stream` declares a raw table once (name, Arrow schema, primary key, the date column it is
partitioned by and the account column that scopes it). A `Batch` is one Arrow table of that stream
for one account and one inclusive date window: the loader replaces exactly that window.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow as pa


@dataclass(frozen=True, order=True)
class Window:
    """An inclusive range of calendar dates (a partition range)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window end {self.end} is before start {self.start}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> Iterator[date]:
        for offset in range(self.days):
            yield self.start + timedelta(days=offset)

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass(frozen=True)
class Stream:
    """The declared contract of one raw table."""

    table: str  # "schema.table"
    schema: pa.Schema
    key: tuple[str, ...]
    partition_column: str = "date"
    scope_column: str | None = None  # the account column (property_id, site_url, ...)
    # "window": a batch replaces its date window (report APIs); "upsert": a batch replaces the rows with
    # the same key (CRM objects read incrementally by last-modified time).
    write_mode: str = "window"
    # For "upsert": the columns whose values a batch replaces wholesale (default: the key). A deal's
    # associations are replaced by deal_id, while the key stays (deal_id, to_type, to_id).
    replace_by: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        names = set(self.schema.names)
        missing = [c for c in (*self.key, self.partition_column) if c not in names]
        if self.scope_column and self.scope_column not in names:
            missing.append(self.scope_column)
        if missing:
            raise ValueError(f"stream {self.table}: columns {missing} are not in its schema")
        if self.write_mode not in ("window", "upsert"):
            raise ValueError(f"stream {self.table}: write_mode must be 'window' or 'upsert'")

    @property
    def schema_name(self) -> str:
        return self.table.split(".", 1)[0]


@dataclass(frozen=True)
class Cursor:
    """Where an incremental stream stopped: one value per (source, stream, account)."""

    source: str
    stream: str
    account: str
    value: str


@dataclass(frozen=True)
class Batch:
    """Rows of one stream for one account and one window; conformed to the declared schema."""

    stream: Stream
    data: pa.Table
    window: Window
    scope: Mapping[str, str] = field(default_factory=dict)
    # For incremental streams: the cursor reached once this batch is loaded. The loader commits it in the
    # same transaction as the rows, so a crash can never leave a cursor ahead of its data.
    cursor: Cursor | None = None
    # For "upsert" streams: values of the stream's replace_by columns whose rows this batch replaces even when it
    # brings no row for them (a deal that lost all its contacts: its old associations go). None: only the keys of
    # the batch's own rows are replaced.
    replaces: pa.Table | None = None

    def __post_init__(self) -> None:
        data = self.data
        expected = self.stream.schema
        if data.schema.names != expected.names:
            missing = sorted(set(expected.names) - set(data.schema.names))
            extra = sorted(set(data.schema.names) - set(expected.names))
            if missing:
                raise ValueError(f"batch for {self.stream.table} lacks declared columns {missing}")
            data = data.select(expected.names) if not extra else data.select(expected.names + extra)
        if not data.schema.equals(expected) and data.schema.names == expected.names:
            data = data.cast(expected)  # raises on a lossy cast: a type change is an error, not a surprise
        object.__setattr__(self, "data", data)
        if self.replaces is not None:
            columns = list(self.stream.replace_by or self.stream.key)
            if self.stream.write_mode != "upsert" or self.replaces.schema.names != columns:
                raise ValueError(f"batch for {self.stream.table}: `replaces` needs an upsert stream and exactly the "
                                 f"columns {columns}")

    @property
    def num_rows(self) -> int:
        return self.data.num_rows
