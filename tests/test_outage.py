"""Persistent outage (issue #8): the run fails within a bounded time, names source, endpoint and window,
spends fewer than GA4's 10 hourly server errors, and leaves the DuckDB file exactly as it was."""

import hashlib
import time
from collections import Counter
from datetime import date

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG, REFRESHES
from sandbox.httpserver import FaultProfile
from sandbox.world import World
from tests.sandboxes import start_servers


@pytest.mark.battery("Persistent outage")
def test_a_persistent_ga4_outage_fails_fast_and_changes_nothing(tmp_path, monkeypatch):
    db = tmp_path / "work.duckdb"
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(db))
    job = defs.resolve_job_def("daily_refresh_job")
    ga4_keys = next(r for r in REFRESHES if r.source == "ga4").asset_keys()
    tags = {RANGE_START_TAG: "2026-03-20", RANGE_END_TAG: "2026-03-22"}
    world = World(seed=4, today=date(2026, 3, 31))
    with start_servers(world, without=("hubspot",)) as running:  # GA4 runs only
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=tags,
                                      asset_selection=ga4_keys).success
        before = hashlib.sha256(db.read_bytes()).hexdigest()
        ga4 = running.server("ga4")
        ga4.fault_profile = FaultProfile(seed=1, status_500=1.0)  # every request fails from now on
        ga4.clear_log()
        started = time.monotonic()
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=tags,
                                        asset_selection=ga4_keys, raise_on_error=False)
        elapsed = time.monotonic() - started
    assert not result.success
    assert elapsed < 120  # bounded: capped backoff, then a fatal verdict (no step re-run for it)
    errors = [e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert any("ga4 account 123456789: runReport traffic_by_channel 2026-03-20..2026-03-22" in e for e in errors)
    assert any("server-error quota" in e for e in errors)
    # per property, its three reports together stop at its budget (5 retried errors, then one fatal call per
    # report), below GA4's 10 server errors per property and hour
    per_property = Counter(r.path.split("/")[3].split(":")[0] for r in ga4.requests)
    assert set(per_property) == set(world.ga4_properties)
    assert max(per_property.values()) <= 5 + 3 < 10
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # not a byte changed
