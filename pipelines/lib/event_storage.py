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
"""

from collections.abc import Callable, Sequence

from dagster._core.event_api import EventLogEntry
from dagster._core.events import DagsterEventType
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

_BATCHABLE = ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION})
# Dagster's own method, kept for every batch this module does not write itself
DAGSTER_STORE_EVENT_BATCH: Callable[[SqliteEventLogStorage, Sequence[EventLogEntry]], None] = (
    SqliteEventLogStorage.store_event_batch)


def _batchable(events: Sequence[EventLogEntry]) -> bool:
    """Two or more materialisations (or observations) of assets, all of one run."""
    if len(events) < 2 or len({event.run_id for event in events}) != 1:
        return False
    if not all(event.is_dagster_event and event.get_dagster_event().asset_key is not None for event in events):
        return False
    return {event.get_dagster_event().event_type for event in events} in _BATCHABLE


def store_event_batch(storage: SqliteEventLogStorage, events: Sequence[EventLogEntry]) -> None:
    """A run's batch of materialisations (or observations): one insert into the run's database, one transaction in
    the index database (events, their tags, each asset's latest record); other batches event by event."""
    if not _batchable(events):
        DAGSTER_STORE_EVENT_BATCH(storage, events)
        return
    with storage.run_connection(events[0].run_id) as conn:
        conn.execute(storage.prepare_insert_event_batch(events))
    with storage.index_transaction() as conn:
        result = conn.execute(storage.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id))
        event_ids = sorted(int(row[0]) for row in result.fetchall())  # ids ascend in insertion order
        if len(event_ids) != len(events):
            raise RuntimeError(f"stored {len(event_ids)} of {len(events)} events in the index database")
        storage._store_asset_event_tags(conn, events, event_ids)  # noqa: SLF001 - Dagster's own steps, as Postgres's
        last: dict[str, int] = {}
        for index, event in enumerate(events):
            last[event.get_dagster_event().asset_key.to_string()] = index  # type: ignore[union-attr]
        for index in last.values():
            storage._store_asset_event(conn, events[index], event_ids[index])  # noqa: SLF001


def install() -> None:
    """Make every SQLite event log of this process write batches of materialisations in one transaction."""
    SqliteEventLogStorage.store_event_batch = store_event_batch  # type: ignore[method-assign]


def uninstall() -> None:
    """Dagster's own behaviour again (tests compare both)."""
    SqliteEventLogStorage.store_event_batch = DAGSTER_STORE_EVENT_BATCH  # type: ignore[method-assign]
