"""The analysts' copy: published atomically, never blocking a run, never a mix of two runs."""

import json
import subprocess
import sys
import textwrap
from datetime import date

import dagster as dg
import duckdb
import pytest

from connectors.publish import publish_analyst_copy
from connectors.warehouse import connect
from pipelines.definitions import defs
from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG, REFRESHES
from sandbox.world import DEFAULT_GA4_PROPERTY_ID, World
from tests.sandboxes import start_servers


def test_publish_copies_kpis_and_raw_tables_with_build_and_freshness(tmp_path):
    target = tmp_path / "kpis.duckdb"
    with connect(tmp_path / "work.duckdb") as conn:
        conn.execute("CREATE SCHEMA kpi; CREATE SCHEMA ga4; CREATE SCHEMA _mkpi")
        conn.execute("CREATE TABLE kpi.web_daily AS SELECT DATE '2026-03-01' AS date, 10 AS sessions")
        conn.execute("CREATE VIEW kpi.web_total AS SELECT sum(sessions) AS sessions FROM kpi.web_daily")
        conn.execute("CREATE TABLE ga4.traffic_by_channel AS SELECT DATE '2026-03-02' AS date, "
                     "TIMESTAMPTZ '2026-03-03 04:00:00+00' AS _loaded_at")
        conn.execute("CREATE TABLE _mkpi.cursors AS SELECT 'x' AS value")  # internal: not published
        first = publish_analyst_copy(conn, target, run_id="run-1")
        second = publish_analyst_copy(conn, target, run_id="run-2")
    assert first.build_id != second.build_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kpis.duckdb", "work.duckdb"]  # no temp file left
    with duckdb.connect(str(target), read_only=True) as copy:
        assert copy.execute("SELECT build_id, run_id FROM meta.build").fetchone() == (second.build_id, "run-2")
        assert copy.execute("SELECT sessions FROM kpi.web_total").fetchone() == (10,)
        freshness = copy.execute("SELECT source, table_name, last_date, row_count FROM meta.source_freshness")
        assert freshness.fetchall() == [("ga4", "traffic_by_channel", date(2026, 3, 2), 1)]
        schemas = {r[0] for r in copy.execute("SELECT DISTINCT table_schema FROM information_schema.tables").fetchall()}
    assert "_mkpi" not in schemas


# A reader as an analyst's notebook is one: a connection held open (~0.4 s here, 20 reads 20 ms apart), then the
# next one opened at once, so that a connection is open at every moment of the runs, each publish included. Its
# reads are paced, not a busy loop: 5 ms apart, the reader alone took 2.4-3.7 s of CPU (1.1-1.8 s now) from the
# two cores the runs under test share, for no more coverage: each connection's life is what is checked.
READER = textwrap.dedent("""
    import duckdb, json, os, sys, time
    path, stop = sys.argv[1], sys.argv[2]
    snapshots, errors = [], []
    while not os.path.exists(stop):
        if not os.path.exists(path):
            time.sleep(0.01)
            continue
        try:
            con = duckdb.connect(path, read_only=True)  # what a notebook or BI tool holds open
            ids = set()
            for _ in range(20):
                ids.add(con.execute("SELECT build_id FROM meta.build").fetchone()[0])
                con.execute("SELECT channel, sum(sessions) FROM kpi.web_daily GROUP BY channel").fetchall()
                time.sleep(0.02)
            con.close()
            snapshots.append(sorted(ids))
        except Exception as exc:  # any error is a failure of the design
            errors.append(repr(exc))
    print(json.dumps({"snapshots": snapshots, "errors": errors}))
""")


def test_a_reader_holding_the_copy_open_never_blocks_runs_nor_sees_a_mix(tmp_path, monkeypatch):
    analyst = tmp_path / "kpis.duckdb"
    stop = tmp_path / "stop"
    monkeypatch.setenv("MKPI_ANALYST_DB", str(analyst))
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(tmp_path / "work.duckdb"))
    job = defs.resolve_job_def("daily_refresh_job")
    # GA4's refresh runs (its raw tables, the KPI tables, then the publish) as the morning schedule runs each source:
    # the publish under test is the same step whichever sources came before it. The dashboard, the other published
    # file, is left out: it reads the working file, never the copy, and is not what this test is about
    dashboard = dg.AssetKey(["publish", "dashboard"])
    ga4 = [key for key in next(r for r in REFRESHES if r.source == "ga4").asset_keys() if key != dashboard]
    with start_servers(World(seed=3, today=date(2026, 3, 31))) as running:
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        # one GA4 property of the world's two: the publish copies whatever the working file holds, and a second
        # property's reports (its cart funnel one request a day) only lengthen each run before the publish
        monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", DEFAULT_GA4_PROPERTY_ID)

        def run(start: str, end: str) -> dg.ExecuteInProcessResult:
            return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                                          tags={RANGE_START_TAG: start, RANGE_END_TAG: end}, asset_selection=ga4)

        assert run("2026-03-28", "2026-03-30").success  # a first copy exists before the reader starts
        reader = subprocess.Popen([sys.executable, "-c", READER, str(analyst), str(stop)], stdout=subprocess.PIPE,
                                  text=True)
        try:
            runs = [run("2026-03-28", "2026-03-30"), run("2026-03-01", "2026-03-30")]  # scheduled run, backfill
        finally:
            stop.touch()
            out, _ = reader.communicate(timeout=60)
    assert all(r.success for r in runs)  # the working database never met a lock held by the reader
    report = json.loads(out)
    assert report["errors"] == []
    assert report["snapshots"] and all(len(ids) == 1 for ids in report["snapshots"])  # one build per snapshot
    with duckdb.connect(str(analyst), read_only=True) as copy:
        final = copy.execute("SELECT build_id, run_id FROM meta.build").fetchone()
    assert final[1] == runs[-1].run_id


@pytest.mark.parametrize("job_name", ["daily_refresh_job", "hubspot_refresh_job"])
def test_both_jobs_end_with_the_publish(job_name):
    keys = {k.to_user_string() for k in defs.resolve_job_def(job_name).asset_layer.executable_asset_keys}
    assert "publish/analyst_copy" in keys
