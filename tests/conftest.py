"""Shared fixtures. Every test is offline: servers, if any, are the project's own on 127.0.0.1."""

import os

import pytest

from tests import battery

# Keep developer credentials and settings out of tests: a test sets exactly what it needs.
_ISOLATED = [k for k in os.environ if k.startswith("MKPI_")] + ["GOOGLE_APPLICATION_CREDENTIALS", "DAGSTER_HOME"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for key in _ISOLATED:
        monkeypatch.delenv(key, raising=False)
    # the CLI's console is 140 columns wide when not a terminal, unless COLUMNS says otherwise (xdist workers
    # inherit a COLUMNS of their own): tests read its lines whole
    monkeypatch.delenv("COLUMNS", raising=False)
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "battery(line): a test of the reliability battery (issue #8), by report line")


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    marker = item.get_closest_marker("battery")
    if marker is None or call.when != "call":
        return
    battery.outcome(marker.args[0], call.excinfo is None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("MKPI_RELIABILITY_REPORT")
    if path:
        battery.write_report(path, os.environ.get("MKPI_RELIABILITY_COMMAND", "make chaos"))
