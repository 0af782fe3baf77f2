"""Dagster's SQLite event log writing a range step's per-day materialisations in one go.

Business purpose: a 365-day backfill materialises every partitioned asset once per day. Dagster sends a range
step's materialisations as one batch (`DAGSTER_EVENT_BATCH_SIZE`, pipelines/lib/instance_env.py), but its SQLite
storage writes a batch one event at a time (`EventLogStorage.store_event_batch`), each event opening the run's
database and the index database anew: ~10-20 ms an event on a busy laptop, 1,440 events for the 90-day demo.
PostgreSQL storage writes such a batch with one INSERT (dagster-postgres for dagster 1.13,
`dagster_postgres/event_log/event_log.py` `PostgresEventLogStorage.store_event_batch`); `install()` gives
`SqliteEventLogStorage` the same, with the same rules: only batches of materialisations (or of observations) of
one run, each event in the run's database and mirrored in the index database with its tags, each asset's
latest-event record updated from its last event of the batch. Anything else goes through Dagster's own path.

Why a patch and not a storage class named in dagster.yaml: Dagster builds the default SQLite storage from the
instance's own directory, which a class named in dagster.yaml is not told (an instance opened with
`DagsterInstance.from_config(dir)` has no DAGSTER_HOME). `pipelines/definitions.py` installs it in every process
that loads the code location, which are the processes that execute steps (run workers, `mkpi`, `make demo`).

Every other event (a step's start, output, success, logs, check results, the planned events of a new run) is written
one at a time, and Dagster's SQLite storage opens a new SQLAlchemy engine and connection for each write
(`SqliteEventLogStorage._connect`, NullPool), commits with SQLite's default `synchronous=FULL` (an fsync of the
write-ahead log per commit) and closes it: the last connection to close checkpoints the WAL into the database file
(more fsyncs). `install()` also gives that storage (same file, same tables, same WAL mode):
- one engine per database file, kept (not one per write), and `PRAGMA synchronous=NORMAL` on its connections:
  SQLite's documented setting for WAL mode (https://www.sqlite.org/pragma.html#pragma_synchronous: "a good choice
  for most applications running in WAL mode"; a commit is durable across a crash of the process, only a power loss
  can take the last commits back); a dev instance's bookkeeping, the service runs on PostgreSQL;
- one connection kept open between writes (index.db, where every asset and check event is mirrored, and the last
  few runs' databases) instead of closing, hence checkpointing, after each: a new connection's first write restarts
  the write-ahead log with a sync, a kept one's commit costs ~0.02 ms instead of ~8 ms on this machine. The UI follows
  a running run by watching its file (`SqliteEventLogStorageWatchdog` on `<run_id>.db`), which only a checkpoint
  rewrites: after a write to a run's database the file is touched, so the UI still shows the events live.

A range step's per-day materialisations of one asset are serialised from one packed template (`_DayTemplates`):
Dagster's serialiser walked each whole event again, about 0.3 ms a day and asset, which grew a 365-day backfill by
seconds.

PostgreSQL storages (the service, deploy/dagster.yaml): dagster-postgres's run, event log and schedule storages open a
new connection, hence a new server process (fork, authentication, a cold catalog cache), for every call (NullPool);
the pipeline's processes keep one open per storage (`_postgres_connect`). They also remember a table or column once
found (`PG_SCHEMA_PROBES`): Dagster asked the catalog again for every asset event (on a second connection while its
first was open), every run record read and every instigator listing. The 90-day demo's process (bench/bench_demo.py's
child on PostgreSQL): 295 server sessions before, 19 after (12 of them the table checks of the four instances it
opens, Dagster's own engine in `__init__`); ~1,200 catalog queries before, 16 after. A kept connection is pinged
only after an idle second (`_ping_after_idle`), and one event's INSERT carries its NOTIFY (`store_event_postgres`):
the 30-day demo's process sent 9,591 statements counted by pg_stat_statements, 6,103 without the pings, besides
~1,300 NOTIFYs (one per event's INSERT) that now ride on their INSERT. An asset event's index writes (its tags and
the asset's latest record) are one statement instead of a READ COMMITTED transaction (`_store_asset_index`: four
round trips fewer, ~170 events a run).

And, on every SQL event log (SQLite and PostgreSQL): a planned check of a range run writes Dagster's one row per day
into the check executions table with the event serialised once (`store_asset_check_evaluation_planned`), not once
per day: creating a range run otherwise grew with its days (an unpartitioned check of a range run is planned once,
pipelines/lib/planned_events.py); and an asset's latest materialisation is read from its
row without Dagster's lookup of no asset (`latest_materialization_records`, ~245 round trips a run on PostgreSQL).

Every patch here and the pool claim (pipelines/lib/executor.py `_claim_queued`) is installed only over the Dagster
version it was written against (`WRITTEN_AGAINST`, a digest of each method's source and of those it reuses, checked by
`written_against`); after an upgrade that changed one, Dagster's own is used and a warning names it.

Dagster's in-memory event log (`DagsterInstance.ephemeral()`: the end-to-end tests, `make demo` without DAGSTER_HOME;
dagster 1.13 `_core/storage/event_log/in_memory.py` `InMemoryEventLogStorage`, a SqlEventLogStorage over one in-memory
SQLite database that is both its run and its index database) also writes a batch event by event (`EventLogStorage.
store_event_batch`). `install()` gives it the same batched write: the same rows, inserted once (its one database),
the tags and each asset's latest record as above, then what its `store_event` does after each event (its storage-id
counter and the run's watchers, told event by event in order).
"""

import contextlib
import hashlib
import inspect
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple

import sqlalchemy as db
from dagster._core.assets import AssetDetails
from dagster._core.definitions.asset_key import AssetKey
from dagster._core.definitions.metadata import MetadataFieldSerializer
from dagster._core.event_api import EventLogEntry
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import sql_event_log
from dagster._core.storage.event_log.base import EventLogCursor, EventLogRecord
from dagster._core.storage.event_log.in_memory import InMemoryEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import deserialize_value
from dagster_shared.serdes import pack_value, serialize_value
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

_BATCHABLE = ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION})
# Dagster's own method, kept for every batch this module does not write itself
DAGSTER_STORE_EVENT_BATCH: Callable[[SqliteEventLogStorage, Sequence[EventLogEntry]], None] = (
    SqliteEventLogStorage.store_event_batch)
DAGSTER_CONNECT: Callable[[SqliteEventLogStorage, str], AbstractContextManager[Connection]] = (
    SqliteEventLogStorage._connect)  # noqa: SLF001
DAGSTER_DISPOSE: Callable[[SqliteEventLogStorage], None] = SqliteEventLogStorage.dispose
DAGSTER_HAS_TABLE: Callable[[SqliteEventLogStorage, str], bool] = SqliteEventLogStorage.has_table
DAGSTER_PREPARE_INSERT_BATCH: Callable[[SqlEventLogStorage, Sequence[EventLogEntry]], Any] = (
    SqlEventLogStorage.prepare_insert_event_batch)
# Dagster's serialiser as its SQL event log calls it (`_event_to_row`)
DAGSTER_SERIALIZE: Callable[..., str] = sql_event_log.serialize_value
DAGSTER_STORE_CHECK_PLANNED: Callable[[SqlEventLogStorage, EventLogEntry, int | None], None] = (
    SqlEventLogStorage._store_asset_check_evaluation_planned)  # noqa: SLF001
DAGSTER_IN_MEMORY_STORE_EVENT_BATCH: Callable[[InMemoryEventLogStorage, Sequence[EventLogEntry]], None] = (
    InMemoryEventLogStorage.store_event_batch)
# engines kept per storage: the index database's, and those of the last few runs' databases written by this process
_ENGINES = "_mkpi_engines"
_RUN_ENGINES_KEPT = 8


def _batchable(events: Sequence[EventLogEntry]) -> bool:
    """Two or more materialisations (or observations) of assets, all of one run."""
    if len(events) < 2 or len({event.run_id for event in events}) != 1:
        return False
    if not all(event.is_dagster_event and event.get_dagster_event().asset_key is not None for event in events):
        return False
    return {event.get_dagster_event().event_type for event in events} in _BATCHABLE


def _rows(storage: SqlEventLogStorage, events: Sequence[EventLogEntry]) -> list[dict[str, Any]]:
    """The rows Dagster's own insert writes for these events (`SqlEventLogStorage._event_to_row`), with each distinct
    metadata packed once: a range step's per-day materialisations carry the same metadata values (the same objects:
    column schema, accounts, counters), which Dagster's serialiser would otherwise pack again for every day. Only this
    thread's packing is shared, and only during this call; the JSON written is the same."""
    original = MetadataFieldSerializer.pack
    owner = threading.get_ident()
    packed: dict[tuple[tuple[str, int], ...], tuple[list[Any], Any]] = {}

    def pack(self: MetadataFieldSerializer, metadata: Any, whitelist_map: Any, descent_path: str) -> Any:
        if threading.get_ident() != owner:
            return original(self, metadata, whitelist_map, descent_path)
        key = tuple((name, id(value)) for name, value in metadata.items())
        if key not in packed:  # the values are kept with the result, so their ids stay theirs during the call
            packed[key] = (list(metadata.values()), original(self, metadata, whitelist_map, descent_path))
        return packed[key][1]

    days = _DayTemplates(owner)
    MetadataFieldSerializer.pack = pack  # type: ignore[method-assign]
    sql_event_log.serialize_value = days.serialize  # type: ignore[assignment]
    try:
        return [storage._event_to_row(event) for event in events]  # noqa: SLF001
    finally:
        MetadataFieldSerializer.pack = original  # type: ignore[method-assign]
        sql_event_log.serialize_value = DAGSTER_SERIALIZE  # type: ignore[assignment]


class _DayTemplates:
    """A range step's per-day materialisations of one asset differ only in their day (the materialisation's
    partition), their time and their two messages (dagster 1.13 `_core/execution/plan/execute_step.py`
    `_get_output_asset_events`: one event per partition with the same metadata and tags). Dagster's serialiser walks
    each whole event again (~0.3 ms an event, most of a 365-day backfill's bookkeeping that grows with its days);
    here the first event of each kind is packed once and written once as JSON with a marker in each of those four
    places (`_Template`), checked to render byte for byte as Dagster serialises it, and every later event that equals
    it but for those four fields is that text with its own four values put in the markers' places: no walk of the
    event, no encoding of its metadata again (~0.08 ms an event of 8 KB, a 365-day demo's 10,600 events). Any other
    event, or one that differs elsewhere, goes through Dagster's serialiser. Only the owning thread's calls."""

    def __init__(self, owner: int) -> None:
        self.owner = owner
        self.templates: dict[tuple[AssetKey, str | None], tuple[EventLogEntry, _Template] | None] = {}

    def serialize(self, value: Any, *args: Any, **kwargs: Any) -> str:
        """Dagster's `serialize_value(value)`, the same string."""
        if args or kwargs or threading.get_ident() != self.owner or not _is_materialization(value):
            return serialize_value(value, *args, **kwargs)
        key = (value.dagster_event.event_specific_data.materialization.asset_key, value.step_key)
        if key not in self.templates:
            self.templates[key] = _template(value)
        found = self.templates[key]
        if found is None or not _same_but_day(value, found[0]):
            return serialize_value(value)
        return _render(found[1], value)


def _is_materialization(value: Any) -> bool:
    return (type(value) is EventLogEntry and type(value.dagster_event) is DagsterEvent
            and type(value.dagster_event.event_specific_data) is StepMaterializationData
            and value.dagster_event.event_specific_data.materialization.asset_key is not None)


def _template(event: EventLogEntry) -> tuple[EventLogEntry, "_Template"] | None:
    """The event packed once and written as a template, if rendering it back gives Dagster's own string (else None:
    every event of its kind goes through Dagster's serialiser)."""
    packed = pack_value(event)
    if not isinstance(packed, dict):
        return None
    try:
        template = _Template.of(packed)
        same = _render(template, event) == serialize_value(event)
    except (KeyError, TypeError, ValueError):
        return None
    return (event, template) if same else None


def _same_but_day(event: EventLogEntry, template: EventLogEntry) -> bool:
    """Every field equal to the template's but the day, the time and the two messages (tuple fields, compared in C;
    the metadata's values are the same objects, so their comparison is by identity)."""
    dagster_event, other = event.dagster_event, template.dagster_event
    assert dagster_event is not None and other is not None
    data, other_data = dagster_event.event_specific_data, other.event_specific_data
    materialization, other_materialization = data.materialization, other_data.materialization  # type: ignore[union-attr]
    # EventLogEntry: error_info, level, user_message*, run_id, timestamp*, step_key, job_name, dagster_event;
    # DagsterEvent: event_type_value .. logging_tags, event_specific_data, message*, pid, step_key;
    # AssetMaterialization: asset_key, description, metadata, partition*, tags
    return (event[:2] == template[:2] and event[3] == template[3] and event[5:7] == template[5:7]
            and dagster_event[:6] == other[:6] and dagster_event[8:] == other[8:]
            and data[1:] == other_data[1:]  # type: ignore[index]
            and materialization[:3] == other_materialization[:3] and materialization[4:] == other_materialization[4:])


class _Template(NamedTuple):
    """A packed event as Dagster's serialiser writes it (its JSON with sorted keys), cut where the four per-day
    values go: `pieces[0]`, the value of slot `slots[0]`, `pieces[1]`, ... (slots in the text's order)."""

    pieces: tuple[str, ...]
    slots: tuple[int, ...]

    @classmethod
    def of(cls, packed: dict[str, Any]) -> "_Template":
        """Each of the four places given a marker no event contains (a fresh random one, found exactly once in the
        text, else ValueError), the whole dumped once, then cut at the markers."""
        top, inner = dict(packed), dict(packed["dagster_event"])
        data = dict(inner["event_specific_data"])
        materialization = dict(data["materialization"])
        markers = [json.dumps(f"mkpi-day-slot-{slot}-{uuid.uuid4().hex}") for slot in range(len(_DAY_FIELDS))]
        for marker, (where, name) in zip(markers, ((top, "timestamp"), (top, "user_message"), (inner, "message"),
                                                   (materialization, "partition")), strict=True):
            if name not in where:
                raise KeyError(name)
            where[name] = json.loads(marker)
        data["materialization"] = materialization
        inner["event_specific_data"] = data
        top["dagster_event"] = inner
        text = json.dumps(top, sort_keys=True)
        if any(text.count(marker) != 1 for marker in markers):
            raise ValueError("a marker is not found exactly once")
        slots = tuple(sorted(range(len(markers)), key=lambda slot: text.index(markers[slot])))
        pieces, rest = [], text
        for slot in slots:
            before, rest = rest.split(markers[slot], 1)
            pieces.append(before)
        return cls((*pieces, rest), slots)


# the per-day values of a range step's materialisation, in the template's slot numbers
_DAY_FIELDS = ("timestamp", "user_message", "message", "partition")


def _render(template: _Template, event: EventLogEntry) -> str:
    """The template with this event's day, time and messages, as Dagster's serialiser writes it."""
    dagster_event = event.get_dagster_event()
    values = (event.timestamp, event.user_message, dagster_event.message,
              dagster_event.event_specific_data.materialization.partition)  # type: ignore[union-attr]
    out = [template.pieces[0]]
    for slot, piece in zip(template.slots, template.pieces[1:], strict=True):
        out += (json.dumps(values[slot]), piece)
    return "".join(out)


def store_event_batch(storage: SqliteEventLogStorage, events: Sequence[EventLogEntry]) -> None:
    """A run's batch of materialisations (or observations): one insert into the run's database, one transaction in
    the index database (events, their tags, each asset's latest record), each event serialised once; other batches
    event by event."""
    if not _batchable(events):
        DAGSTER_STORE_EVENT_BATCH(storage, events)
        return
    # each event serialised once for both databases (the serialisation is most of a batch's cost: a range step's
    # per-day materialisations carry the same metadata), inserted as one executemany (one compiled statement)
    rows = _rows(storage, events)
    with storage.run_connection(events[0].run_id) as conn:
        conn.execute(SqlEventLogStorageTable.insert(), rows)
    with storage.index_transaction() as conn:
        _store_indexed(storage, conn, events, rows)


def _store_indexed(storage: SqlEventLogStorage, conn: Connection, events: Sequence[EventLogEntry],
                   rows: list[dict[str, Any]]) -> None:
    """The batch's rows inserted with one executemany into the index database's event table, their tags, and each
    asset's latest-event record from its last event of the batch (Dagster's own steps, as dagster-postgres's)."""
    result = conn.execute(SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id,
                                                                     sort_by_parameter_order=True), rows)
    event_ids = [int(row[0]) for row in result.fetchall()]  # in the events' order
    if len(event_ids) != len(events):
        raise RuntimeError(f"stored {len(event_ids)} of {len(events)} events in the index database")
    storage._store_asset_event_tags(conn, events, event_ids)  # noqa: SLF001
    last: dict[str, int] = {}
    for index, event in enumerate(events):
        last[event.get_dagster_event().asset_key.to_string()] = index  # type: ignore[union-attr]
    for index in last.values():
        storage._store_asset_event(conn, events[index], event_ids[index])  # noqa: SLF001


def prepare_insert_event_batch(storage: SqlEventLogStorage, events: Sequence[EventLogEntry]) -> Any:
    """Dagster's one INSERT of a batch of materialisations (dagster 1.13 `SqlEventLogStorage.
    prepare_insert_event_batch`, what PostgreSQL storage's `store_event_batch` executes), its rows made as the SQLite
    batch makes them: each distinct metadata packed once, a range step's per-day events from one template."""
    return SqlEventLogStorageTable.insert().values(_rows(storage, events))


def store_event_batch_in_memory(storage: InMemoryEventLogStorage, events: Sequence[EventLogEntry]) -> None:
    """An ephemeral instance's batch of materialisations (or observations): one transaction in its one database, each
    event serialised once; then, event by event in order, what `InMemoryEventLogStorage.store_event` does after its
    insert (dagster 1.13 `_core/storage/event_log/in_memory.py`): its storage-id counter moved on and the run's
    watchers called with that cursor. Other batches event by event, Dagster's way."""
    if not _batchable(events):
        DAGSTER_IN_MEMORY_STORE_EVENT_BATCH(storage, events)
        return
    rows = _rows(storage, events)
    with storage.index_transaction() as conn:
        _store_indexed(storage, conn, events, rows)
    for event in events:
        storage._storage_id += 1  # noqa: SLF001
        cursor = str(EventLogCursor.from_storage_id(storage._storage_id))  # noqa: SLF001
        for handler in list(storage._handlers[event.run_id]):  # noqa: SLF001
            try:
                handler(event, cursor)
            except Exception:  # a watcher's failure never loses the events, as in Dagster's store_event
                logging.exception("Exception in callback for event watch on run %s.", event.run_id)


def store_asset_check_evaluation_planned(storage: SqlEventLogStorage, event: EventLogEntry, event_id: int | None
                                         ) -> None:
    """Dagster's rows for a planned check of a range run, one per day (`SqlEventLogStorage.
    _store_asset_check_evaluation_planned`, dagster 1.13), with the event serialised once instead of once per day and
    the rows inserted with one executemany: creating a 365-day run planned ~50 checks, 18,000 rows each carrying the
    same serialised event (run creation grew with the days). Those checks were unpartitioned ones, which Dagster
    planned per day of the run; pipelines/lib/planned_events.py now plans them once: the rows per day are a daily
    check's."""
    planned = event.get_dagster_event().asset_check_planned_data
    partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
    row = {"asset_key": planned.asset_key.to_string(), "check_name": planned.check_name, "run_id": event.run_id,
           "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
           "evaluation_event": serialize_value(event),
           "evaluation_event_timestamp": storage._event_insert_timestamp(event),  # noqa: SLF001
           "evaluation_event_storage_id": event_id}
    with storage.index_connection() as conn:
        conn.execute(AssetCheckExecutionsTable.insert(), [{**row, "partition": key} for key in partition_keys])


def _synchronous_normal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _engine(storage: SqliteEventLogStorage, shard: str) -> Engine:
    """The kept engine of one database file (created on first use, made anew after a wipe): one connection kept open
    between writes, for the index database and for the last few runs' databases. A forked child never uses its
    parent's connection (SQLite forbids it): it makes its own engines."""
    pid, engines = storage.__dict__.get(_ENGINES, (None, OrderedDict()))
    if pid != os.getpid():
        for inherited in engines.values():
            inherited.dispose(close=False)  # the parent's connections stay the parent's
        engines = OrderedDict()
        storage.__dict__[_ENGINES] = (os.getpid(), engines)
    engine = engines.get(shard)
    if engine is not None and shard not in storage._initialized_dbs:  # noqa: SLF001 - wiped since: a new file
        engines.pop(shard).dispose()
        engine = None
    if engine is None:
        engine = db.create_engine(storage.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1,
                                  max_overflow=2, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        db.event.listen(engine, "connect", _synchronous_normal)
        engines[shard] = engine
        runs = [name for name in engines if name != INDEX_SHARD_NAME]
        for old in runs[:-_RUN_ENGINES_KEPT]:
            engines.pop(old).dispose()
    else:
        engines.move_to_end(shard)
    return engine


@contextmanager
def _connect(storage: SqliteEventLogStorage, shard: str) -> Iterator[Connection]:
    """Dagster's `SqliteEventLogStorage._connect` (the same lock, the same first-use set-up of a database, one
    transaction per use) on the kept engine of that database."""
    with storage._db_lock:  # noqa: SLF001 - Dagster's own lock: the storage's threads take turns
        engine = _engine(storage, shard)
        if shard not in storage._initialized_dbs:  # noqa: SLF001
            storage._initdb(engine)  # noqa: SLF001
            storage._initialized_dbs.add(shard)  # noqa: SLF001
        with engine.connect() as conn:
            changes = _changes(conn)
            with conn.begin():
                yield conn
            if shard != INDEX_SHARD_NAME and _changes(conn) != changes:
                _signal_watchers(storage.path_for_shard(shard))


def _changes(conn: Connection) -> int:
    """How many rows this SQLite connection has written so far (sqlite3's `total_changes`)."""
    return int(conn.connection.dbapi_connection.total_changes)  # type: ignore[union-attr]


def _signal_watchers(path: str) -> None:
    """Tell whoever follows this run (the UI, through `SqliteEventLogStorageWatchdog`, which watches `<run_id>.db`)
    that events were written: they went to the write-ahead log beside it, which readers see, but the file watched is
    only rewritten at a checkpoint. Touching it is what a checkpoint at close did, without its fsyncs."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


def _dispose(storage: SqliteEventLogStorage) -> None:
    """Dagster's dispose, then the kept engines' connections closed."""
    DAGSTER_DISPOSE(storage)
    pid, engines = storage.__dict__.pop(_ENGINES, (None, OrderedDict()))
    for engine in engines.values():
        engine.dispose(close=pid == os.getpid())


_TABLES = "_mkpi_tables_found"


def _has_table(storage: SqliteEventLogStorage, table_name: str) -> bool:
    """Dagster's `SqliteEventLogStorage.has_table`, a table once found remembered: Dagster asks before every asset
    check event (`supports_asset_checks`) and every batch's tags, each time on a new engine and connection to the
    index database (~300 times in the demo). A table not found is asked again (a migration may add it); a wiped
    storage forgets them."""
    if INDEX_SHARD_NAME not in storage._initialized_dbs:  # noqa: SLF001 - wiped since: asked again
        storage.__dict__.pop(_TABLES, None)
    return _remembered(storage, table_name, lambda: DAGSTER_HAS_TABLE(storage, table_name))


_PG_ENGINE = "_mkpi_pooled_engine"
# a kept PostgreSQL connection idle for longer than this is checked (a `SELECT 1`) before its next use
PG_PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "mkpi_idle_since"


def _postgres_connect(storage: Any, run_id: str | None = None) -> AbstractContextManager[Connection]:
    """A PostgreSQL storage's connection (the event log's `_connect`, the run storage's `connect`, the schedule
    storage's `connect(run_id)`) from one kept engine per storage and process: a pool of 1, up to 4 more when
    threads use it at once, checked before reuse after an idle second (`_ping_after_idle`). dagster-postgres's
    storages (each `__init__`: NullPool) open a new connection, hence a new PostgreSQL backend process, for every
    call: ~300 in the 90-day demo, mostly run lookups (`get_run_record_by_id`). Connections in AUTOCOMMIT, as
    Dagster's; a forked child makes its own. A storage whose engine already keeps its connections (the webserver's
    `optimize_for_webserver`, with its statement timeout) uses Dagster's engine."""
    from dagster_postgres.utils import create_pg_connection, create_pg_engine

    if not isinstance(storage._engine.pool, NullPool):  # noqa: SLF001
        _close_kept(storage)  # kept before the webserver's optimisation: Dagster's engine from now on
        return create_pg_connection(storage._engine)  # noqa: SLF001
    pid, engine = storage.__dict__.get(_PG_ENGINE, (None, None))
    if pid != os.getpid():
        if engine is not None:
            engine.dispose(close=False)  # the parent's connections stay the parent's
        engine = create_pg_engine(storage.postgres_url, storage._token_provider,  # noqa: SLF001
                                  isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=4)
        _ping_after_idle(engine)
        storage.__dict__[_PG_ENGINE] = (os.getpid(), engine)
    return create_pg_connection(engine)


def _ping_after_idle(engine: Engine) -> None:
    """A kept connection back from the pool is checked with a `SELECT 1` only if it sat idle for more than
    PG_PING_AFTER_IDLE_SECONDS; a dead one is replaced by a new connection before the storage's statement is sent
    (SQLAlchemy's pool: a `DisconnectionError` raised in a checkout handler discards that connection and checks out
    another, https://docs.sqlalchemy.org/en/20/core/events.html#sqlalchemy.events.PoolEvents.checkout, the documented
    custom pessimistic ping). SQLAlchemy's `pool_pre_ping` pinged at every checkout, a round trip before each storage
    call: 3,500 of the 9,600 statements of the 30-day demo on PostgreSQL, while a run's calls follow each other within
    milliseconds. What the ping is for (a server restarted, a connection dropped by a firewall or by
    `idle_session_timeout`) happens to connections left idle: a daemon's between ticks, a run's during a long step."""

    @db.event.listens_for(engine, "checkin")
    def idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @db.event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)  # none for a new connection (its info goes with it)
        if idle_since is None or time.monotonic() - idle_since <= PG_PING_AFTER_IDLE_SECONDS:
            return
        try:
            _ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: a new connection instead of this one
            raise db.exc.DisconnectionError("kept PostgreSQL connection lost while idle") from exc


def _ping(dbapi_connection: Any) -> None:
    """One round trip on a DBAPI connection (what SQLAlchemy's pre-ping sends); raises if the connection is gone."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT 1")
    finally:
        cursor.close()


def _postgres_dispose(storage: Any) -> None:
    """Dagster's dispose of that storage, then its kept connection closed. The instance disposes its run and event
    log storages (`StorageMethods.dispose`), never its schedule storage: that one's connection closes with the process
    or when the storage is collected."""
    for cls, name, _ours, dagsters in PG_PATCHES:
        if name == "dispose" and isinstance(storage, cls):
            dagsters(storage)
    _close_kept(storage)


def _close_kept(storage: Any) -> None:
    """The storage's kept engine dropped, its connections closed if this process opened them."""
    pid, engine = storage.__dict__.pop(_PG_ENGINE, (None, None))
    if engine is not None:
        engine.dispose(close=pid == os.getpid())


# Dagster's schema probes on its PostgreSQL storages (does this table, this column exist?), each of which asks the
# catalog again at every call (dagster 1.13: `SqlEventLogStorage.has_asset_key_col`, `SqlRunStorage.
# has_run_stats_index_cols` and its neighbours, `SqlScheduleStorage.has_instigators_table`, ...): an asset event's
# tags and record, each run record read, run creation, each instigator listing of the daemon
PG_SCHEMA_PROBES: dict[str, tuple[str, ...]] = {
    "PostgresEventLogStorage": ("has_table", "has_asset_key_col"),
    "PostgresRunStorage": ("has_run_stats_index_cols", "has_bulk_actions_selector_cols", "has_backfill_id_column",
                           "has_bulk_action_job_name_column", "has_backfill_tags_table"),
    "PostgresScheduleStorage": ("has_instigators_table", "has_secondary_index_table"),
}


def _remembering(name: str, dagsters: Callable[..., bool]) -> Callable[..., bool]:
    """Dagster's schema probe `name`, a yes remembered on the storage (as the SQLite event log's `_has_table` above):
    ~1,200 catalog queries in the 90-day demo, mostly from asset events, which asked while their index connection was
    open, so on a second connection (an overflow one, opened and closed: a new PostgreSQL backend each time).
    dagster-postgres remembers its secondary indexes the same way (`PostgresEventLogStorage.has_secondary_index`)."""

    def probe(storage: Any, *args: Any) -> bool:
        return _remembered(storage, f"{name}{args}", lambda: dagsters(storage, *args))

    probe.__name__ = probe.__qualname__ = f"remembered_{name}"
    return probe


def _remembered(storage: Any, found_name: str, ask: Callable[[], bool]) -> bool:
    """`ask()`'s answer, a True one remembered on the storage (a table or column once found stays: Dagster's
    migrations add them, never drop them); a False one is asked again."""
    found: set[str] = storage.__dict__.setdefault(_TABLES, set())
    if found_name in found:
        return True
    if ask():
        found.add(found_name)
        return True
    return False


def _postgres_storage() -> Any:
    try:
        from dagster_postgres.event_log.event_log import PostgresEventLogStorage
    except ImportError:  # no PostgreSQL storage installed: nothing to patch
        return None
    return PostgresEventLogStorage


_PG_STORAGE = _postgres_storage()
DAGSTER_PG_STORE_EVENT_BATCH = _PG_STORAGE.store_event_batch if _PG_STORAGE else None
DAGSTER_PG_STORE_EVENT = _PG_STORAGE.store_event if _PG_STORAGE else None


def store_event_batch_postgres(storage: Any, events: Sequence[EventLogEntry]) -> None:
    """PostgreSQL storage's write of a run's batch of materialisations (or observations), as dagster-postgres does it
    (dagster 1.13 `PostgresEventLogStorage.store_event_batch`: the events inserted at once, their tags, the asset's
    record from the batch's last event), the insert made with one statement compiled once and executed over the rows
    (SQLAlchemy's insertmanyvalues, ids returned in the rows' order) instead of one multi-row VALUES statement
    compiled anew for every batch, bind parameter by bind parameter (~2,500 for a 365-day batch). Other batches
    Dagster's way."""
    if not _batchable(events):
        DAGSTER_PG_STORE_EVENT_BATCH(storage, events)
        return
    rows = _rows(storage, events)
    insert = SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id, sort_by_parameter_order=True)
    with storage._connect() as conn:  # noqa: SLF001
        event_ids = [int(row[0]) for row in conn.execute(insert, rows).fetchall()]
    if len(event_ids) != len(events):
        raise RuntimeError(f"stored {len(event_ids)} of {len(events)} events")
    _store_asset_index(storage, events, event_ids)  # the batch's last event for the asset's record, as Dagster


# the columns of an event's row (dagster 1.13 `SqlEventLogStorage._event_to_row`), inserted by `store_event_postgres`
_EVENT_COLUMNS = ("run_id", "event", "dagster_event_type", "timestamp", "step_key", "asset_key", "partition")
_INSERT_AND_NOTIFY = db.text(
    f"WITH inserted AS (INSERT INTO {SqlEventLogStorageTable.name} ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in _EVENT_COLUMNS)}) RETURNING run_id, id) "
    "SELECT id, pg_notify(:channel, run_id || '_' || id) FROM inserted")


def store_event_postgres(storage: Any, event: EventLogEntry) -> None:
    """PostgreSQL storage's write of one event, as dagster-postgres does it (dagster 1.13 `PostgresEventLogStorage.
    store_event`: the row inserted, `NOTIFY run_events, '<run_id>_<id>'` for listeners of older Dagster versions, then
    an asset event's tags and record and an asset check event's execution row), the insert and the notification sent
    as one statement (`pg_notify`, PostgreSQL's function form of NOTIFY, on the inserted row: delivered at the same
    commit) instead of two round trips. Every event of a run (step starts, outputs, logs, check results) is one:
    ~1,300 in the 30-day demo. The statement is text written once (no SQLAlchemy compilation per event); a row whose
    columns are not the ones above goes through Dagster's method."""
    from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
    from dagster_postgres.event_log.event_log import CHANNEL_NAME

    row = storage._event_to_row(event)  # noqa: SLF001 - what Dagster's prepare_insert_event inserts
    if tuple(row) != _EVENT_COLUMNS:
        DAGSTER_PG_STORE_EVENT(storage, event)
        return
    with storage._connect() as conn:  # noqa: SLF001
        event_id = int(conn.execute(_INSERT_AND_NOTIFY, {**row, "channel": CHANNEL_NAME}).one()[0])
    dagster_event = event.dagster_event
    if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS and dagster_event.asset_key:
        _store_asset_index(storage, [event], [event_id])
    if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
        storage.store_asset_check_event(event, event_id)


class _Recorder:
    """Stands in for the index connection while Dagster's index writes run: records what they would execute."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def execute(self, statement: Any, parameters: Any = None) -> None:
        self.calls.append((statement, parameters))


# the most tag rows sent inside one combined statement (a range step's batch of 365 days keeps Dagster's transaction:
# a multi-row VALUES is compiled anew bind parameter by bind parameter)
COMBINED_MAX_ROWS = 20


def _one_statement(calls: Sequence[tuple[Any, Any]]) -> Any | None:
    """The recorded INSERTs as one statement: the last one, the others in front of it as data-modifying WITH
    clauses (PostgreSQL runs each exactly once, in the same snapshot, all or nothing:
    https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING). None when they are not all
    INSERTs, when the last one has parameters apart, or when more than COMBINED_MAX_ROWS rows would be inlined."""
    if not calls or not all(isinstance(statement, db.sql.dml.Insert) for statement, _ in calls):
        return None
    *front, (last, last_parameters) = calls
    if last_parameters is not None:
        return None
    withs = []
    for index, (statement, parameters) in enumerate(front):
        rows = [parameters] if isinstance(parameters, dict) else list(parameters or [])
        if len(rows) > COMBINED_MAX_ROWS:
            return None
        withs.append((statement.values(rows) if rows else statement).cte(f"mkpi_index_{index}"))
    return last.add_cte(*withs) if withs else last


def _store_asset_index(storage: Any, events: Sequence[EventLogEntry], event_ids: Sequence[int]) -> None:
    """What dagster-postgres writes in the index after an asset event's row (its tags, the asset's latest-event
    record from the last event: `_store_asset_event_tags`, `_store_asset_event` in an `index_transaction`), sent as ONE
    statement on the kept AUTOCOMMIT connection: one statement is one transaction, so the writes are still all or
    nothing. Dagster's transaction took four more round trips (BEGIN, COMMIT, and psycopg2's `SET
    default_transaction_isolation TO DEFAULT` when SQLAlchemy put the connection back from READ COMMITTED to
    AUTOCOMMIT): ~170 asset events per demo run, the planned events of run creation among them. Dagster's own
    methods make the statements (recorded, not executed); what cannot be sent as one goes through Dagster's
    transaction."""
    recorder = _Recorder()
    try:
        storage._store_asset_event_tags(recorder, events, event_ids)  # noqa: SLF001
        storage._store_asset_event(recorder, events[-1], event_ids[-1])  # noqa: SLF001
        statement = _one_statement(recorder.calls)
    except (AttributeError, TypeError, db.exc.SQLAlchemyError):  # nothing sent yet: Dagster's own way instead
        statement = None
    if statement is None:
        with storage.index_transaction() as conn:
            storage._store_asset_event_tags(conn, events, event_ids)  # noqa: SLF001
            storage._store_asset_event(conn, events[-1], event_ids[-1])  # noqa: SLF001
        return
    with storage.index_connection() as conn:
        conn.execute(statement)


# What each patch was written against (dagster 1.13.27, dagster-postgres 0.29.27): a digest of the source of
# the Dagster method it replaces, and of the Dagster methods whose statements or behaviour it reuses (DEPENDS). If
# any of them differs (a Dagster upgrade), that patch is not installed: Dagster's own method stays, and a warning says
# which one changed. tests/test_pg_patch_guard.py checks that the installed Dagster is the one written against.
WRITTEN_AGAINST: dict[str, str] = {
    "PostgresEventLogStorage._connect": "a1935b91a983062d", "PostgresEventLogStorage.dispose": "ce4ee18aa28915d1",
    "PostgresEventLogStorage.store_event_batch": "ff147ed514ba9786",
    "PostgresEventLogStorage.store_event": "4a2e37e5871bf2c8",
    "PostgresEventLogStorage._event_to_row": "93d47fbe7edc4f70",
    "PostgresEventLogStorage._store_asset_event": "2dc70ccdb0feb5be",
    "PostgresEventLogStorage._store_asset_event_tags": "85d6f17ef04b926f",
    "PostgresEventLogStorage.index_transaction": "d4018b0dade43e19",
    "PostgresEventLogStorage.store_asset_check_event": "6d148295fa69bb45",
    "PostgresRunStorage.connect": "b76438443325ba8b", "PostgresRunStorage.dispose": "cff0c9b09050e236",
    "PostgresScheduleStorage.connect": "a4bc5c28a11b0821", "PostgresScheduleStorage.dispose": "cff0c9b09050e236",
    "PostgresEventLogStorage.has_table": "78217fbd74d0e09d",
    "PostgresEventLogStorage.has_asset_key_col": "042827679888fa6e",
    "PostgresRunStorage.has_run_stats_index_cols": "7fc623624093c307",
    "PostgresRunStorage.has_bulk_actions_selector_cols": "394d48b0f48b4ec4",
    "PostgresRunStorage.has_backfill_id_column": "ec96ba87381656d6",
    "PostgresRunStorage.has_bulk_action_job_name_column": "f6a5c83b2fec318b",
    "PostgresRunStorage.has_backfill_tags_table": "0b1471bca73b07f5",
    "PostgresScheduleStorage.has_instigators_table": "8dd847003abe9778",
    "PostgresScheduleStorage.has_secondary_index_table": "668981f478af9b87",
    "SqlEventLogStorage._get_latest_materialization_records": "1eb21503ca3989ce",
    # pipelines/lib/executor.py's pool claim
    "SqlEventLogStorage.claim_concurrency_slot": "cbfe2436f7e3b1e6",
    "SqlEventLogStorage.has_pending_step": "cce1981e298e6ee3",
    "SqlEventLogStorage.has_unassigned_slots": "3b97c6f524a3c80f",
    "SqlEventLogStorage.add_pending_step": "c6f0a135f608aa48",
    "SqlEventLogStorage.check_concurrency_claim": "5afb528bb4c17b16",
    # the SQLite and in-memory event logs' patches (install)
    "SqliteEventLogStorage.store_event_batch": "d710189545dbace2",
    "SqliteEventLogStorage._connect": "b8435f2665689760", "SqliteEventLogStorage.dispose": "df16dafbfa8427c1",
    "SqliteEventLogStorage.has_table": "577d801c70b2a4a5",
    "SqliteEventLogStorage.run_connection": "54e64bd6f8b77093",
    "SqliteEventLogStorage._event_to_row": "93d47fbe7edc4f70",
    "SqliteEventLogStorage._store_asset_event": "fdb9340b9eef1c9b",
    "SqliteEventLogStorage._store_asset_event_tags": "85d6f17ef04b926f",
    "SqliteEventLogStorage.index_transaction": "00b2488c8cdfd277",
    "InMemoryEventLogStorage.store_event_batch": "d710189545dbace2",
    "InMemoryEventLogStorage.store_event": "2f5abb45025a9bdd",
    "InMemoryEventLogStorage._event_to_row": "93d47fbe7edc4f70",
    "InMemoryEventLogStorage._store_asset_event": "fdb9340b9eef1c9b",
    "InMemoryEventLogStorage._store_asset_event_tags": "85d6f17ef04b926f",
    "InMemoryEventLogStorage.index_transaction": "00b2488c8cdfd277",
    "SqlEventLogStorage._store_asset_check_evaluation_planned": "bbecef7ab5ce9d01",
    "SqlEventLogStorage.prepare_insert_event_batch": "3a4f48097f682f4f",
    # pipelines/lib/planned_events.py: the days a new run plans for an unpartitioned asset or check, and its callers
    "DagsterRun.get_resolved_partitions_subset_for_events": "829df878172afe52",
    "RunDomain.get_materialization_planned_events_for_asset": "45e0ef0c58ab5be3",
    "RunDomain._log_asset_planned_events": "8896f281f5b65b78", "RunDomain._get_partitions_def": "bf7f1b1cbedfea09",
}
_INDEX_WRITES = ("_event_to_row", "_store_asset_event", "_store_asset_event_tags", "index_transaction")
# by "Class.method" patched: the other methods of that class whose statements or behaviour the patch reuses
DEPENDS: dict[str, tuple[str, ...]] = {
    "PostgresEventLogStorage.store_event": (*_INDEX_WRITES, "store_asset_check_event"),
    "PostgresEventLogStorage.store_event_batch": _INDEX_WRITES,
    "SqliteEventLogStorage.store_event_batch": (*_INDEX_WRITES, "run_connection"),
    "InMemoryEventLogStorage.store_event_batch": (*_INDEX_WRITES, "store_event"),
    "SqlEventLogStorage.claim_concurrency_slot": ("has_pending_step", "has_unassigned_slots", "add_pending_step",
                                                  "check_concurrency_claim")}


def source_digest(method: Any) -> str | None:
    """The first 16 hex digits of the SHA-256 of a function's source text; None when it has none."""
    try:
        return hashlib.sha256(inspect.getsource(method).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return None


def written_against(cls: type, name: str, dagsters: Any = None) -> bool:
    """Whether Dagster's `cls.name` (or `dagsters`, that method as Dagster has it, when the class may already hold
    the project's), and what the patch of it reuses, are the versions WRITTEN_AGAINST names."""
    for method in (name, *DEPENDS.get(f"{cls.__name__}.{name}", ())):
        key = f"{cls.__name__}.{method}"
        found = dagsters if method == name and dagsters is not None else getattr(cls, method, None)
        expected = WRITTEN_AGAINST.get(key)
        if expected is None or source_digest(found) != expected:
            logging.getLogger(__name__).warning(
                "Dagster's %s is not the version pipelines/lib/event_storage.py was written against: Dagster's own "
                "%s.%s is used", key, cls.__name__, name)
            return False
    return True


def _postgres_patches() -> list[tuple[type, str, Callable[..., Any], Callable[..., Any]]]:
    """Every PostgreSQL storage method this module replaces: (class, name, the project's, Dagster's); none without
    dagster-postgres. A patch whose Dagster method is not the one it was written against is Dagster's own method."""
    if _PG_STORAGE is None:
        return []
    from dagster_postgres import PostgresRunStorage, PostgresScheduleStorage

    ours: list[tuple[type, str, Callable[..., Any]]] = [
        (_PG_STORAGE, "_connect", _postgres_connect), (_PG_STORAGE, "dispose", _postgres_dispose),
        (_PG_STORAGE, "store_event_batch", store_event_batch_postgres),
        (_PG_STORAGE, "store_event", store_event_postgres),
        (PostgresRunStorage, "connect", _postgres_connect), (PostgresRunStorage, "dispose", _postgres_dispose),
        (PostgresScheduleStorage, "connect", _postgres_connect),
        (PostgresScheduleStorage, "dispose", _postgres_dispose)]
    for cls in (_PG_STORAGE, PostgresRunStorage, PostgresScheduleStorage):
        ours += [(cls, name, _remembering(name, getattr(cls, name))) for name in PG_SCHEMA_PROBES[cls.__name__]]
    return [(cls, name, mine if written_against(cls, name) else getattr(cls, name), getattr(cls, name))
            for cls, name, mine in ours]


PG_PATCHES = _postgres_patches()


DAGSTER_LATEST_MATERIALIZATION_RECORDS: Callable[[SqlEventLogStorage, Sequence[Any]], Any] = (
    SqlEventLogStorage._get_latest_materialization_records)  # noqa: SLF001


def latest_materialization_records(storage: SqlEventLogStorage, raw_asset_rows: Sequence[Any]) -> Any:
    """Dagster's `SqlEventLogStorage._get_latest_materialization_records` (dagster 1.13), without its event-log
    query when no row needs it. Dagster takes each asset's latest materialisation from its `asset_keys` row (the
    stored record, newer than the asset's last wipe) and looks up in the event log only the assets whose row has
    none; it sends that lookup even when there are none (`asset_key IN ()`, which PostgreSQL answers with no rows):
    ~245 round trips in a demo run, from the data-version checks of every step's inputs (`DataVersionCache`,
    `get_asset_records`). Here the rows are read as Dagster reads them; when every row has its current record,
    those records are the answer (what Dagster returns: its query adds nothing); otherwise Dagster's method."""
    results: dict[AssetKey, EventLogRecord] = {}
    for row in raw_asset_rows:
        asset_key = AssetKey.from_db_string(row["asset_key"])
        if not asset_key:
            continue
        details = AssetDetails.from_db_string(row["asset_details"])
        wiped = details.last_wipe_timestamp if details else None
        stored = deserialize_value(row["last_materialization"], NamedTuple) if row["last_materialization"] else None
        if not isinstance(stored, EventLogRecord) or (wiped is not None and stored.event_log_entry.timestamp <= wiped):
            return DAGSTER_LATEST_MATERIALIZATION_RECORDS(storage, raw_asset_rows)
        results[asset_key] = stored
    return results


LATEST_MATERIALIZATION_RECORDS = (
    latest_materialization_records if written_against(SqlEventLogStorage, "_get_latest_materialization_records",
                                                      DAGSTER_LATEST_MATERIALIZATION_RECORDS)
    else DAGSTER_LATEST_MATERIALIZATION_RECORDS)


# whether each SQLite / in-memory patch's Dagster method is the one it was written against (Dagster's as imported here)
SQLITE_WRITTEN_AGAINST: dict[str, bool] = {
    f"{cls.__name__}.{name}": written_against(cls, name, dagsters) for cls, name, dagsters in (
        (SqliteEventLogStorage, "store_event_batch", DAGSTER_STORE_EVENT_BATCH),
        (InMemoryEventLogStorage, "store_event_batch", DAGSTER_IN_MEMORY_STORE_EVENT_BATCH),
        (SqliteEventLogStorage, "_connect", DAGSTER_CONNECT), (SqliteEventLogStorage, "dispose", DAGSTER_DISPOSE),
        (SqliteEventLogStorage, "has_table", DAGSTER_HAS_TABLE),
        (SqlEventLogStorage, "_store_asset_check_evaluation_planned", DAGSTER_STORE_CHECK_PLANNED),
        (SqlEventLogStorage, "prepare_insert_event_batch", DAGSTER_PREPARE_INSERT_BATCH))}


def install() -> None:
    """Make every SQLite event log of this process (and every in-memory one) write batches of materialisations in one
    transaction, the SQLite ones on kept engines with synchronous=NORMAL, and every PostgreSQL storage use a kept
    connection (see the module)."""
    ours: dict[tuple[type, str], Callable[..., Any]] = {
        (SqliteEventLogStorage, "store_event_batch"): store_event_batch,
        (InMemoryEventLogStorage, "store_event_batch"): store_event_batch_in_memory,
        (SqliteEventLogStorage, "_connect"): _connect, (SqliteEventLogStorage, "dispose"): _dispose,
        (SqliteEventLogStorage, "has_table"): _has_table,
        (SqlEventLogStorage, "_store_asset_check_evaluation_planned"): store_asset_check_evaluation_planned,
        (SqlEventLogStorage, "prepare_insert_event_batch"): prepare_insert_event_batch}
    for (cls, name), method in ours.items():
        if SQLITE_WRITTEN_AGAINST[f"{cls.__name__}.{name}"]:
            setattr(cls, name, method)
    SqlEventLogStorage._get_latest_materialization_records = (  # type: ignore[method-assign]  # noqa: SLF001
        LATEST_MATERIALIZATION_RECORDS)
    for cls, name, ours, _dagsters in PG_PATCHES:
        setattr(cls, name, ours)


def uninstall() -> None:
    """Dagster's own behaviour again (tests compare both)."""
    SqliteEventLogStorage.store_event_batch = DAGSTER_STORE_EVENT_BATCH  # type: ignore[method-assign]
    InMemoryEventLogStorage.store_event_batch = DAGSTER_IN_MEMORY_STORE_EVENT_BATCH  # type: ignore[method-assign]
    SqliteEventLogStorage._connect = DAGSTER_CONNECT  # type: ignore[method-assign]  # noqa: SLF001
    SqliteEventLogStorage.dispose = DAGSTER_DISPOSE  # type: ignore[method-assign]
    SqliteEventLogStorage.has_table = DAGSTER_HAS_TABLE  # type: ignore[method-assign]
    SqlEventLogStorage._store_asset_check_evaluation_planned = (  # type: ignore[method-assign]  # noqa: SLF001
        DAGSTER_STORE_CHECK_PLANNED)
    SqlEventLogStorage.prepare_insert_event_batch = DAGSTER_PREPARE_INSERT_BATCH  # type: ignore[method-assign]
    SqlEventLogStorage._get_latest_materialization_records = (  # type: ignore[method-assign]  # noqa: SLF001
        DAGSTER_LATEST_MATERIALIZATION_RECORDS)
    for cls, name, _ours, dagsters in PG_PATCHES:
        setattr(cls, name, dagsters)
