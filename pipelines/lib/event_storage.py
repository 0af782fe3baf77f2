"""Dagster's SQLite event log, writing a range step's per-day materialisations in one go (dagster.yaml uses it).

Business purpose: a 365-day backfill materialises every partitioned asset once per day. Dagster sends a range
step's materialisations as one batch (`DAGSTER_EVENT_BATCH_SIZE`, pipelines/lib/instance_env.py), but its SQLite
storage writes a batch one event at a time (`EventLogStorage.store_event_batch`), each event opening the run's
database and the index database anew: ~10-20 ms an event on a busy laptop, 1,440 events for the 90-day demo.
PostgreSQL storage writes such a batch with one INSERT (dagster-postgres 0.29,
`dagster_postgres/event_log/event_log.py` `PostgresEventLogStorage.store_event_batch`); this class does the same
for SQLite, with the same rules: only batches of materialisations (or of observations) of one run, each event in
the run's database and mirrored in the index database with its tags, the asset's latest-event record updated from
the batch's last event. Anything else goes through Dagster's own path unchanged.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Field, StringSource
from dagster._config import UserConfigSchema
from dagster._core.event_api import EventLogEntry
from dagster._core.events import DagsterEventType
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData

_BATCHABLE = ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION})


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose batches of materialisations take one transaction per database."""

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        """`base_dir` may be left out: Dagster's own place, $DAGSTER_HOME/history/runs (an instance that already has
        runs keeps them)."""
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
                          ) -> "BatchedSqliteEventLogStorage":
        base_dir = config_value.get("base_dir") or os.path.join(os.environ["DAGSTER_HOME"], "history", "runs", "")
        return cls(base_dir=base_dir, inst_data=inst_data)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """A run's batch of materialisations (or observations): one insert into the run's database, one transaction
        in the index database (events, their tags, the asset's latest record); other batches event by event."""
        kinds = {event.get_dagster_event().event_type for event in events if event.is_dagster_event}
        run_ids = {event.run_id for event in events}
        if len(events) < 2 or kinds not in _BATCHABLE or len(run_ids) != 1 or any(
                not event.is_dagster_event or event.get_dagster_event().asset_key is None for event in events):
            super().store_event_batch(events)
            return
        (run_id,) = run_ids
        with self.run_connection(run_id) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        with self.index_transaction() as conn:
            result = conn.execute(self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id))
            event_ids = [int(row[0]) for row in result.fetchall()]
            if len(event_ids) != len(events):
                raise RuntimeError(f"stored {len(event_ids)} of {len(events)} events in the index database")
            # RETURNING gives no order guarantee: ids ascend in insertion order in one statement
            event_ids.sort()
            self._store_asset_event_tags(conn, events, event_ids)
            by_asset: dict[str, int] = {}
            for index, event in enumerate(events):
                by_asset[event.get_dagster_event().asset_key.to_string()] = index  # type: ignore[union-attr]
            for index in by_asset.values():  # each asset's latest event of the batch
                self._store_asset_event(conn, events[index], event_ids[index])
