"""PostgreSQL event log: an asset event's index writes (its tags, the asset's latest-event record) sent as one
statement (pipelines/lib/event_storage.py `_store_asset_index`), checked against Dagster's own transaction on the
same runs: a one-day run (single events) and a three-day range run (one batch of materialisations).

What must not change: every day's indexed data version (what Dagster's data-version checks and the UI's staleness read,
`get_latest_tags_by_partition`), the asset's latest materialisation (the last day's event, its storage id) and the
event count, as Dagster's own writes leave them. What changes: no BEGIN / COMMIT around those writes.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pipelines.lib import event_storage
from tests.postgres import Postgres, file_server

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-04")
KEY = dg.AssetKey(["raw", "indexed"])


@dg.asset(key=KEY, partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def indexed(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[Postgres]:
    with file_server(request.config, "pg_index_write") as pg:
        yield pg


def _runs(server: Postgres, name: str, tmp_path, ours: bool, monkeypatch) -> dict[str, Any]:
    """One day, then a three-day range run, on a fresh database with the project's storage methods or Dagster's."""
    for cls, method, mine, dagsters in event_storage.PG_PATCHES:
        monkeypatch.setattr(cls, method, mine if ours else dagsters)
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")  # a range step's materialisations as one batch
    database = server.create_database(name)
    url = database.url.replace("postgresql://", "postgresql+psycopg2://")
    begins: list[int] = []
    combined: list[str] = []

    def on_begin(_conn: Any) -> None:
        begins.append(1)

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("WITH mkpi_index_"):
            combined.append(statement)

    (tmp_path / name).mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / name),
                              overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        job = dg.Definitions(assets=[indexed]).resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(instance=instance, partition_key="2026-01-01").success
        event.listen(Engine, "begin", on_begin)
        event.listen(Engine, "before_cursor_execute", on_execute)
        try:
            assert job.execute_in_process(instance=instance, tags={
                "dagster/asset_partition_range_start": "2026-01-01",
                "dagster/asset_partition_range_end": "2026-01-03"}).success
        finally:
            event.remove(Engine, "begin", on_begin)
            event.remove(Engine, "before_cursor_execute", on_execute)
        storage = instance.event_log_storage
        tags = storage.get_latest_tags_by_partition(KEY, dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                    [DATA_VERSION_TAG])
        latest = instance.get_latest_materialization_event(KEY)
        record = instance.get_asset_records([KEY])[0].asset_entry.last_materialization_record
        events = instance.fetch_materializations(KEY, limit=10).records
    return {"tags": tags, "latest": latest, "record_id": record.storage_id, "events": events,
            "begins": len(begins), "combined": combined}


def test_index_writes_as_dagster_in_one_statement(server, tmp_path, monkeypatch) -> None:
    ours = _runs(server, "index_ours", tmp_path, True, monkeypatch)
    dagsters = _runs(server, "index_dagsters", tmp_path, False, monkeypatch)
    for got in (ours, dagsters):
        assert sorted(got["tags"]) == ["2026-01-01", "2026-01-02", "2026-01-03"]  # every day indexed
        assert all(DATA_VERSION_TAG in tags for tags in got["tags"].values())
        assert len(got["events"]) == 4  # one day, then three
        assert got["latest"].asset_materialization.partition == "2026-01-03"  # the range's last day
        assert got["record_id"] == got["events"][0].storage_id  # the asset's record: its newest event
        assert got["latest"].asset_materialization.metadata["days"].value == 3
        # each day's indexed data version is the one its newest materialisation carries (a run without a code
        # version gets data versions of its own, so the two databases' values differ from each other)
        newest = {r.partition_key: r.asset_materialization.tags[DATA_VERSION_TAG] for r in reversed(got["events"])}
        assert {day: tags[DATA_VERSION_TAG] for day, tags in got["tags"].items()} == newest
    # the range run's planned event and its batch: each one statement, and two fewer transactions than Dagster's
    assert len(ours["combined"]) >= 1 and dagsters["combined"] == []
    assert ours["begins"] <= dagsters["begins"] - 2


def test_index_writes_not_combined_go_through_dagsters_transaction() -> None:
    from dagster._core.storage.event_log.schema import AssetEventTagsTable, AssetKeyTable

    tag = {"event_id": 1, "asset_key": "k", "key": DATA_VERSION_TAG, "value": "v", "event_timestamp": None}
    upsert = AssetKeyTable.insert().values(asset_key="k")
    assert event_storage._one_statement([(upsert, None)]) is upsert  # a single statement is sent as it is
    assert event_storage._one_statement([(AssetEventTagsTable.insert(), [tag]), (upsert, None)]) is not None
    too_many = [tag] * (event_storage.COMBINED_MAX_ROWS + 1)  # a long range's tags: Dagster's transaction
    assert event_storage._one_statement([(AssetEventTagsTable.insert(), too_many), (upsert, None)]) is None
    assert event_storage._one_statement([(AssetKeyTable.update(), None)]) is None  # not an INSERT
    assert event_storage._one_statement([(upsert, {"asset_key": "k"})]) is None  # parameters apart
    assert event_storage._one_statement([]) is None


def test_recording_failure_falls_back_to_dagsters_transaction() -> None:
    """Dagster's index writes asking the connection for more than `execute`: sent through its index_transaction."""
    sent: list[str] = []

    class Storage:
        def _store_asset_event_tags(self, conn: Any, _events: Any, _ids: Any) -> None:
            conn.in_transaction()  # not recorded: the recorder has no such method
            sent.append("tags")

        def _store_asset_event(self, _conn: Any, _event: Any, _event_id: int) -> None:
            sent.append("record")

        def index_transaction(self) -> Any:
            sent.append("transaction")

            class Conn:
                def __enter__(self) -> Any:
                    return self

                def __exit__(self, *_: Any) -> None:
                    return None

                def in_transaction(self) -> bool:
                    return True

            return Conn()

    event_storage._store_asset_index(Storage(), [object()], [1])  # type: ignore[list-item]
    assert sent == ["transaction", "tags", "record"]
