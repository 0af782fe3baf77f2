"""Shared fixtures. Every test is offline: servers, if any, are the project's own on 127.0.0.1."""

import os

import pytest

from tests import battery
from tests.isolation import isolate


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)
    yield


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "battery(line): a test of the reliability battery (issue #8), by report line")
    config.addinivalue_line("markers", "full: run by the full battery only (make chaos, or MKPI_FULL=1); skipped "
                                       "in make test, which runs the short version of the same line")


# The slowest files (seconds in make test on 2 cores), started first: with a file per worker (--dist loadfile) the
# suite ends when its last file does, so a long file left to the end would run alone while the other workers idle.
SLOWEST_FIRST = ("test_concurrency", "test_service_mode", "test_secrets", "test_hubspot_e2e", "test_pipeline_e2e",
                 "test_chaos", "test_analyst_copy", "test_source_isolation", "test_outage", "test_dagster_ui",
                 "test_ducklake", "test_idempotence", "test_cli", "test_many_accounts", "test_crash")


def _slowness(item: pytest.Item) -> int:
    name = item.path.stem
    return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_slowness)  # stable: each file's tests keep their order
    if battery.FULL:
        return
    skip = pytest.mark.skip(reason="full battery only: make chaos (or MKPI_FULL=1)")
    for item in items:
        if item.get_closest_marker("full") is not None:
            item.add_marker(skip)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    marker = item.get_closest_marker("battery")
    if marker is None or call.when != "call":
        return
    battery.outcome(marker.args[0], call.excinfo is None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("MKPI_RELIABILITY_REPORT")
    if path:
        battery.write_report(path, os.environ.get("MKPI_RELIABILITY_COMMAND", "make chaos"))
