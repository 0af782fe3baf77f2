"""The PostgreSQL event log writes on one kept connection per process (pipelines/lib/event_storage.py), not one new
server connection per event: a range run's events all stored, read back, and the server's connection count flat."""

import dagster as dg
import pytest
from dagster_postgres.event_log.event_log import PostgresEventLogStorage

from pipelines.lib import event_storage
from tests.postgres import file_server

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-02-01")


@dg.asset(key=["raw", "daily"], partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def daily(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


@pytest.fixture(scope="module")
def server(request):
    with file_server(request.config, "event_storage_postgres") as pg:
        yield pg


def test_events_go_through_one_kept_connection(server, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(PostgresEventLogStorage, "_connect", event_storage._postgres_connect)
    monkeypatch.setattr(PostgresEventLogStorage, "dispose", event_storage._postgres_dispose)
    database = server.create_database("events_kept")
    storage = PostgresEventLogStorage(database.url.replace("postgresql://", "postgresql+psycopg2://"))
    overrides = {"event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                                       "config": {"postgres_url": storage.postgres_url}}}
    storage.dispose()
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        job = dg.Definitions(assets=[daily]).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance, tags={
            "dagster/asset_partition_range_start": "2026-01-03", "dagster/asset_partition_range_end": "2026-01-07"})
        assert result.success
        events = instance.event_log_storage
        records = instance.fetch_materializations(dg.AssetKey(["raw", "daily"]), limit=10).records
        assert sorted(r.partition_key for r in records) == [f"2026-01-0{d}" for d in range(3, 8)]
        pid, engine = events.__dict__[event_storage._PG_ENGINE]  # noqa: SLF001
        assert engine.pool.checkedin() == 1  # every write of the run went through it
        count = int(database.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database.database}' "
                                   "AND pid <> pg_backend_pid()"))
        assert count == 1  # one server connection held, not one per event
    assert event_storage._PG_ENGINE not in events.__dict__  # noqa: SLF001 - closed with the instance
