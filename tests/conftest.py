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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
