"""Shared fixtures. Every test is offline: servers, if any, are the project's own on 127.0.0.1."""

import os

import pytest

# Keep developer credentials and settings out of tests: a test sets exactly what it needs.
_ISOLATED = [k for k in os.environ if k.startswith("MKPI_")] + ["GOOGLE_APPLICATION_CREDENTIALS", "DAGSTER_HOME"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for key in _ISOLATED:
        monkeypatch.delenv(key, raising=False)
    # No application-default credentials from the developer's machine.
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(tmp_path / "test.duckdb"))
    # nothing a test runs may write into the repository's data/ folder
    monkeypatch.setenv("MKPI_ANALYST_DB", str(tmp_path / "kpis.duckdb"))
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(tmp_path / "dashboard.html"))
    # each test starts with GA4's process-wide server-error budget unspent
    from connectors.ga4 import SERVER_ERRORS

    SERVER_ERRORS.reset()
    yield
