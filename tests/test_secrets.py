"""Secrets canary (issue #8): the sandbox's tokens are random per start, so they are canaries. Through full
runs at DEBUG level, a failing run with a wrong token, and the published files, no token may appear in
stdout/stderr, log records, Dagster events, run config or tags, or the DuckDB files."""

import logging
from datetime import date

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG
from sandbox.launcher import start_sandbox
from sandbox.world import World

SECRET_VARIABLES = ("MKPI_MATOMO_TOKEN", "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN", "MKPI_HUBSPOT_TOKEN")


@pytest.mark.battery("Secrets")
def test_no_secret_leaks_anywhere(tmp_path, monkeypatch, caplog, capfd):
    work, analyst = tmp_path / "work.duckdb", tmp_path / "kpis.duckdb"
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(work))
    monkeypatch.setenv("MKPI_ANALYST_DB", str(analyst))
    caplog.set_level(logging.DEBUG)
    wrong = "pat-sandbox-canary-wrong-token-7f3a9c"
    texts: list[str] = []
    with start_sandbox(World(seed=2, today=date(2026, 3, 31))) as running:
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        canaries = [running.env[v] for v in SECRET_VARIABLES] + [wrong]
        results = [
            defs.resolve_job_def("hubspot_refresh_job").execute_in_process(
                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False),
            defs.resolve_job_def("daily_refresh_job").execute_in_process(
                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                tags={RANGE_START_TAG: "2026-03-27", RANGE_END_TAG: "2026-03-30"}),
        ]
        monkeypatch.setenv("MKPI_HUBSPOT_TOKEN", wrong)  # a failing run echoes errors: still no token
        results.append(defs.resolve_job_def("hubspot_refresh_job").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False))
    assert results[0].success and results[1].success and not results[2].success
    for result in results:
        texts.append(repr(result.dagster_run.run_config))
        texts.append(repr(result.dagster_run.tags))
        for event in result.all_events:
            texts.append(event.message or "")
            texts.append(repr(event.event_specific_data))
    out, err = capfd.readouterr()
    texts += [out, err]
    texts += [record.getMessage() for record in caplog.records]
    blobs = [work.read_bytes(), analyst.read_bytes()]
    for canary in canaries:
        assert all(canary not in text for text in texts), "a secret reached logs, events or run config"
        assert all(canary.encode() not in blob for blob in blobs), "a secret reached a DuckDB file"
    assert any("401" in t for t in texts)  # the failure itself was reported
