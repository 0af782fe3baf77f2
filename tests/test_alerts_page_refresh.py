"""The alerts digest writes the published dashboard page again once it has recorded the day's alerts (the page is
built before alerts_job judges the run): only a page that exists, and a page it cannot write is a warning, never the
digest's failure (the alerts are recorded and sent already). The end-to-end case is in tests/test_alerts_e2e.py."""

from __future__ import annotations

import re
from unittest import mock

import dagster as dg
import duckdb

from connectors.settings import load_settings
from pipelines.defs.alerts.assets import refresh_page


def test_no_published_page_is_left_alone(tmp_path, monkeypatch):
    page = tmp_path / "dashboard.html"
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(page))
    with duckdb.connect() as conn:
        done = refresh_page(dg.build_asset_context(), conn, load_settings())
    assert done == f"not refreshed: no page at {page} yet" and not page.exists()


def test_a_published_page_is_written_again(tmp_path, monkeypatch):
    page = tmp_path / "dashboard.html"
    page.write_text("the page an earlier publish wrote", encoding="utf-8")
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(page))
    with duckdb.connect() as conn:
        done = refresh_page(dg.build_asset_context(), conn, load_settings())
    assert done.startswith(f"refreshed with the alerts: {page} (")
    assert re.search(r'<script id="mkpi-model"[^>]*>[^<]+</script>', page.read_text(encoding="utf-8"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dashboard.html"]  # no temporary file left


def test_a_page_that_cannot_be_written_is_a_warning(tmp_path, monkeypatch):
    page = tmp_path / "dashboard.html"
    page.mkdir()  # a folder where the page should be: the atomic replace fails (whatever the user's rights)
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(page))
    context = dg.build_asset_context()
    with duckdb.connect() as conn, mock.patch.object(context.log, "warning") as warning:
        done = refresh_page(context, conn, load_settings())
    assert done.startswith("not refreshed: IsADirectoryError")
    warning.assert_called_once()
    assert f"the dashboard at {page} was not refreshed with the new alerts" in warning.call_args.args[0]
    assert page.is_dir() and list(page.iterdir()) == []
