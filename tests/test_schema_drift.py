"""Schema drift (issue #8): the raw layer may evolve, the KPI layer stays frozen, and a raw column the KPI SQL
needs that changes type or disappears stops the KPI rebuild (a blocking check), through Dagster.

One GA4 sandbox server, the real Dagster definitions (`daily_refresh_job`, GA4 traffic + kpi.web_daily only):
1. a first run builds raw and KPI tables;
2. a connector release asks GA4 for one more metric (totalUsers): the loader adds `total_users` to the raw
   table, kpi.web_daily keeps exactly its columns, the contract check passes and names the new column;
3. a raw column the KPI SQL reads changes type (engaged_sessions BIGINT -> VARCHAR): the blocking check fails
   naming the column, kpi.web_daily is not materialised and keeps its rows;
A column that disappears from the raw table is named by the same check (the last test, on the plain
function); a metric the source stops sending fails the raw step itself with InvalidResponse before anything is
written (tests/test_bad_input.py, the GA4 `*-header-missing` cases), so no KPI is rebuilt either.
"""

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from connectors import ga4
from connectors.batches import Stream
from kpi_models.checks import check_raw_contract
from pipelines.definitions import defs
from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG
from sandbox.ga4_server import Ga4Server
from sandbox.world import World
from tests import battery

LINE = "Schema drift"
RAW = dg.AssetKey(["ga4", "traffic_by_channel"])
KPI = dg.AssetKey(["kpi", "web_daily"])
CHECK = "raw_columns_match_kpi_contract"
TAGS = {RANGE_START_TAG: "2026-03-20", RANGE_END_TAG: "2026-03-22"}


@pytest.fixture
def ga4_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Ga4Server, Path]]:
    db = tmp_path / "drift.duckdb"
    with Ga4Server(World(seed=4, today=date(2026, 3, 31))) as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MKPI_DUCKDB_PATH", str(db))
        yield server, db


def run() -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("daily_refresh_job")
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=TAGS, asset_selection=[RAW, KPI],
                                  raise_on_error=False)


def columns(db: Path, table: str) -> dict[str, str]:
    schema, name = table.split(".")
    with duckdb.connect(str(db), read_only=True) as conn:
        return dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                                 "table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                                 [schema, name]).fetchall())


def rows(db: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def contract_evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK and e.asset_key == RAW]
    assert len(found) == 1
    return found[0]


def materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


class NewMetric:
    """A connector release that asks GA4 for one more metric (totalUsers -> total_users) for the traffic report:
    the report's declaration changes, the KPI models keep reading the declaration they were written for."""

    def __enter__(self) -> None:
        report = ga4.TRAFFIC
        self.saved = (report.metrics, report.stream)
        old = report.stream
        schema = old.schema.insert(old.schema.get_field_index("new_users") + 1, pa.field("total_users", pa.int64()))
        stream = Stream(table=old.table, schema=schema, key=old.key, scope_column=old.scope_column)
        object.__setattr__(report, "metrics", (*report.metrics, ("totalUsers", "total_users")))
        object.__setattr__(report, "stream", stream)

    def __exit__(self, *exc: object) -> None:
        object.__setattr__(ga4.TRAFFIC, "metrics", self.saved[0])
        object.__setattr__(ga4.TRAFFIC, "stream", self.saved[1])


@pytest.mark.battery(LINE)
def test_raw_layer_evolves_kpi_layer_stays_frozen_and_a_type_change_blocks_the_kpis(ga4_sandbox) -> None:
    server, db = ga4_sandbox
    first = run()
    assert first.success and {RAW, KPI} <= materialized(first)
    kpi_columns = columns(db, "kpi.web_daily")
    raw_columns = columns(db, "ga4.traffic_by_channel")
    assert "total_users" not in raw_columns and contract_evaluation(first).passed

    # 2. a new column: the raw table grows, the KPI table's columns do not move
    with NewMetric():
        grown = run()
    assert grown.success and {RAW, KPI} <= materialized(grown), grown.all_events
    after = columns(db, "ga4.traffic_by_channel")
    assert after == {**raw_columns, "total_users": "BIGINT"}  # added at the end by the loader, nothing else moved
    with duckdb.connect(str(db), read_only=True) as conn:
        total_users = conn.execute("SELECT count(*), count(total_users) FROM ga4.traffic_by_channel").fetchone()
    assert total_users[0] == total_users[1] > 0  # the re-read window carries the new metric on every row
    assert columns(db, "kpi.web_daily") == kpi_columns
    evaluation = contract_evaluation(grown)
    assert evaluation.passed
    assert "ga4.traffic_by_channel.total_users" in evaluation.metadata["description"].value
    battery.note(LINE, "GA4 starts sending totalUsers: ga4.traffic_by_channel gains total_users (BIGINT), "
                       f"kpi.web_daily keeps its {len(kpi_columns)} columns, the contract check passes.")

    # 3. a column the KPI SQL reads changes type: the blocking check stops kpi.web_daily
    kpi_rows = rows(db, "kpi.web_daily")
    with duckdb.connect(str(db)) as conn:
        conn.execute("ALTER TABLE ga4.traffic_by_channel ALTER COLUMN engaged_sessions TYPE VARCHAR")
    blocked = run()
    assert not blocked.success
    assert KPI not in materialized(blocked)
    evaluation = contract_evaluation(blocked)
    assert not evaluation.passed
    failures = evaluation.metadata["rows"].value
    assert failures == [{"table": "ga4.traffic_by_channel", "column": "engaged_sessions", "declared": "BIGINT",
                         "found": "VARCHAR"}]
    assert rows(db, "kpi.web_daily") == kpi_rows  # the KPI table keeps its last good rows
    battery.note(LINE, "ga4.traffic_by_channel.engaged_sessions turned VARCHAR: the blocking check "
                       f"{CHECK} fails naming it and kpi.web_daily is not rebuilt.")
    battery.count(LINE, "drift scenarios", 2)


@pytest.mark.battery(LINE)
def test_the_contract_names_a_missing_or_retyped_column_and_tolerates_new_ones() -> None:
    stream = ga4.TRAFFIC.stream
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA ga4")
        conn.register("empty", stream.schema.empty_table())
        conn.execute("CREATE TABLE ga4.traffic_by_channel AS SELECT * FROM empty")
        assert check_raw_contract(conn, [stream]).passed
        conn.execute("ALTER TABLE ga4.traffic_by_channel ADD COLUMN total_users BIGINT")
        grown = check_raw_contract(conn, [stream])
        assert grown.passed and "ga4.traffic_by_channel.total_users" in grown.description
        conn.execute("ALTER TABLE ga4.traffic_by_channel DROP COLUMN new_users")
        conn.execute("ALTER TABLE ga4.traffic_by_channel ALTER COLUMN sessions TYPE DOUBLE")
        conn.execute("ALTER TABLE ga4.traffic_by_channel ALTER COLUMN session_default_channel_group TYPE INTEGER")
        drifted = check_raw_contract(conn, [stream])
    assert not drifted.passed
    # a text column (a label or an id) may be typed otherwise by the platform; numbers and dates may not
    assert drifted.rows == [
        {"table": "ga4.traffic_by_channel", "column": "sessions", "declared": "BIGINT", "found": "DOUBLE"},
        {"table": "ga4.traffic_by_channel", "column": "new_users", "declared": "BIGINT", "found": "missing"},
    ]
