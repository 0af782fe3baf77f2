"""The environment every test runs in: no developer setting or credential, every file in the test's own folder."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported when used: conftest imports this module in every worker
    import dagster as dg

    from sandbox.launcher import Sandbox
    from sandbox.world import World

# Keep developer credentials and settings out of tests: a test sets exactly what it needs.
_ISOLATED = [k for k in os.environ if k.startswith("MKPI_")] + ["GOOGLE_APPLICATION_CREDENTIALS", "DAGSTER_HOME"]


def isolate(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    """The environment every test starts from: no developer setting or credential, every file under `tmp`."""
    for key in _ISOLATED:
        mp.delenv(key, raising=False)
    # the CLI's console is 140 columns wide when not a terminal, unless COLUMNS says otherwise (xdist workers
    # inherit a COLUMNS of their own): tests read its lines whole
    mp.delenv("COLUMNS", raising=False)
    # No application-default credentials from the developer's machine.
    mp.setenv("CLOUDSDK_CONFIG", str(tmp / "no-gcloud"))
    mp.setenv("MKPI_DUCKDB_PATH", str(tmp / "test.duckdb"))
    # nothing a test runs may write into the repository's data/ folder
    mp.setenv("MKPI_ANALYST_DB", str(tmp / "kpis.duckdb"))
    mp.setenv("MKPI_DASHBOARD_PATH", str(tmp / "dashboard.html"))
    # each test starts with GA4's process-wide server-error budget unspent
    from connectors.ga4 import SERVER_ERRORS

    SERVER_ERRORS.reset()


@contextlib.contextmanager
def isolated_env(tmp: Path) -> Iterator[pytest.MonkeyPatch]:
    """The same isolated environment for a module-scoped fixture's expensive run (a sandbox, a Dagster run) built
    once and read by every test of the module. Module fixtures are set up before each test's own isolation, so
    they must not rely on it; the environment is restored when the block ends (best before the tests run: a test
    that runs again sets what it needs itself)."""
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, tmp)
        yield mp


def without_publish(job: dg.JobDefinition) -> list[dg.AssetKey]:
    """The job's assets but the two files the publish writes (the analysts' copy and the dashboard), for a run whose
    test reads only the working file: they cost ~20% of a refresh's CPU. The publish is run by test_pipeline_e2e,
    test_analyst_copy and test_secrets."""
    from pipelines.defs.schedules import PUBLISH

    graph = job.asset_layer.asset_graph
    return [key for key in graph.get_all_asset_keys() if graph.get(key).is_executable and key not in PUBLISH]


def refresh_of(*sources: str) -> list[dg.AssetKey]:
    """The assets of these sources' morning refreshes (`REFRESHES`: their raw tables, the KPI tables built from them
    and those downstream) without the publish, for a run whose test reads only those sources' tables in the working
    file: every other source's steps (each costs Dagster's per-step events and checks) are left out."""
    from pipelines.defs.schedules import PUBLISH, REFRESHES

    keys = {key for refresh in REFRESHES if refresh.source in sources for key in refresh.asset_keys()}
    missing = set(sources) - {refresh.source for refresh in REFRESHES}
    if missing:
        raise ValueError(f"not report sources of the daily refresh: {sorted(missing)}")
    return sorted(keys - set(PUBLISH), key=lambda key: key.to_user_string())


@contextlib.contextmanager
def sandbox_with_a_month_of_hubspot(world: World) -> Iterator[Sandbox]:
    """The launcher's sandbox (sandbox/launcher.py), HubSpot's server with the launcher's limits (190 requests / 10 s,
    10 searches / s) over a portal a month deep without its bulk import: building the launcher's 400 days costs
    ~1.4 s of CPU, for tests that read no HubSpot record (a probe, a refused first request, a short run)."""
    from sandbox.hubspot_server import HubSpotServer
    from sandbox.launcher import Sandbox
    from tests.sandboxes import start_servers

    with start_servers(world) as running, HubSpotServer(
            world, token="pat-sandbox-" + secrets.token_hex(16), requests_per_10s=190, search_per_second=10,
            history_days=30, bulk_import_size=0) as hubspot:
        yield Sandbox(world, [*running.servers, hubspot])
