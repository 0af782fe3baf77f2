"""The environment every test runs in: no developer setting or credential, every file in the test's own folder."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
