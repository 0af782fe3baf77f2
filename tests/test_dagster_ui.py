"""The Dagster UI in a real browser: what an engineer sees after `make dev`.

A short materialisation (three days of GA4's raw tables against the local sandbox: the asset whose row count is
checked and its siblings; no KPI table or publish, which no check here reads: the KPI group is drawn from the
definitions, materialised or not) goes into a temporary DAGSTER_HOME; then `dagster-webserver -w workspace.yaml`
serves that instance and Debian's Chromium, driven by Playwright, checks the asset graph shows every platform group
and the KPI group, a materialised asset shows its row count (`dagster/row_count`), and the automation page lists the
schedules.
Screenshots are saved in tmp_path and copied to /tmp/mkpi-ui-*.png for a human to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pytest

from sandbox.world import World
from tests.ports import free_port
from tests.sandboxes import start_servers
from tests.tmpfs import memory_folder

if TYPE_CHECKING:
    import dagster as dg
    from playwright.sync_api import Browser, Page

    from pipelines.defs.schedules import SourceRefresh

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PLATFORM_GROUPS = ["ga4", "search_console", "google_ads", "hubspot", "matomo"]
SCHEDULES = ["daily_refresh", "hubspot_refresh"]
RANGE = {"dagster/asset_partition_range_start": "2026-03-28", "dagster/asset_partition_range_end": "2026-03-30"}
SERVER_START_TIMEOUT = 60.0
UI_TIMEOUT_MS = 30_000


def _webserver_command(port: int) -> list[str]:
    exe = Path(sys.executable).with_name("dagster-webserver")
    prefix = [str(exe)] if exe.exists() else [sys.executable, "-m", "dagster_webserver"]
    return [*prefix, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]


def _wait_for_server(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not answer /server_info within {SERVER_START_TIMEOUT:.0f} s:\n"
                f"{log.read_text()[-3000:]}")


def _mark_community_dialog_seen(base: str) -> None:
    """The UI opens a "Join the Dagster community" dialog on a fresh instance; it would cover the screenshots."""
    request = urllib.request.Request(f"{base}/graphql", data=b'{"query": "mutation SetNuxSeen { setNuxSeen }"}',
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the webserver and its code server together (their process group: each shuts down at once instead of
    the webserver waiting for its code server's), then kill whatever lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    target = tmp_path / f"mkpi-ui-{name}.png"
    page.screenshot(path=str(target), full_page=True)
    shutil.copy(target, Path("/tmp") / target.name)


def _count(label: str, rows: int) -> re.Pattern[str]:
    """A label followed by a row count as the UI may print it: 1234 or 1,234."""
    return re.compile(rf"{re.escape(label)}\s*({rows}|{rows:,})\s*$")


@pytest.fixture
def dagster_home() -> Iterator[Path]:
    """The instance's folder, on tmpfs where there is one (tests/tmpfs.py): SQLite's fsync per event is a wait on this
    machine's disk, and nothing here checks durability."""
    with memory_folder("mkpi-ui-home-") as folder:
        yield Path(folder)


def test_dagster_ui_shows_groups_row_counts_and_schedules(dagster_home, tmp_path, monkeypatch):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium); "
                    ".ci/run installs it")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra: make install-dev")
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.defs.schedules import REFRESHES

    home = dagster_home
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    working_db = tmp_path / "marketing.duckdb"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(working_db))
    monkeypatch.setenv("MKPI_ANALYST_DB", str(tmp_path / "kpis.duckdb"))
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(tmp_path / "dashboard.html"))  # never the repo's data/

    with start_servers(World(seed=1, today=date(2026, 3, 31))) as sandbox:  # no HubSpot portal: not read
        for name, value in sandbox.env.items():
            monkeypatch.setenv(name, value)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / "webserver.log"
        with dg.DagsterInstance.get() as instance:  # creates the instance's storage before the webserver opens it
            with log.open("wb") as log_file:
                # Started before the run so its code location loads while the run executes; its own session so
                # its code-server child can be killed with it.
                server = subprocess.Popen(_webserver_command(port), cwd=REPO, env=dict(os.environ),
                                          stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                # the browser also starts while the webserver loads (the webserver is the longest wait)
                with playwright_api.sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                    try:
                        traffic_rows = _materialise_ga4(defs.resolve_job_def("daily_refresh_job"), instance,
                                                        working_db, next(r for r in REFRESHES if r.source == "ga4"))
                        _wait_for_server(base, server, log)
                        _mark_community_dialog_seen(base)
                        _check_pages(browser, base, tmp_path, traffic_rows)
                    finally:
                        browser.close()
            finally:
                _stop(server)


def _materialise_ga4(job: dg.JobDefinition, instance: dg.DagsterInstance, working_db: Path,
                     ga4: SourceRefresh) -> int:
    """GA4's raw tables over RANGE, in this process; the row count of the table whose count the UI must show.
    (The groups come from the definitions, materialised or not: only GA4 is read.)"""
    import dagster as dg

    result = job.execute_in_process(instance=instance, tags=RANGE,
                                    asset_selection=[dg.AssetKey(t.split(".")) for t in ga4.raw_tables])
    assert result.success
    with duckdb.connect(str(working_db), read_only=True) as con:
        traffic_rows = con.execute("select count(*) from ga4.traffic_by_channel").fetchone()[0]
    assert traffic_rows > 0
    return traffic_rows


def _check_pages(browser: Browser, base: str, tmp_path: Path, traffic_rows: int) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        _check_graph_asset_and_schedules(page, base, tmp_path, traffic_rows)
    except Exception:
        _shot(page, tmp_path, "failure")  # what the browser showed when a check failed
        raise
    finally:
        page.close()


def _check_graph_asset_and_schedules(page: Page, base: str, tmp_path: Path, traffic_rows: int) -> None:
    from playwright.sync_api import expect

    # The asset graph: one node per group (drawn inside the graph's SVG), each also listed in the side tree.
    page.goto(f"{base}/asset-groups", wait_until="networkidle")
    expect(page.get_by_text("Global asset lineage")).to_be_visible(timeout=UI_TIMEOUT_MS)
    graph = page.locator("svg foreignObject")
    for group in [*PLATFORM_GROUPS, "kpi"]:
        expect(graph.get_by_text(group, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    _shot(page, tmp_path, "asset-graph")

    # A materialised asset: the overview shows dagster/row_count as "Row count", the events tab the raw key.
    page.goto(f"{base}/assets/ga4/traffic_by_channel", wait_until="networkidle")
    expect(page.get_by_text("Latest materialization")).to_be_visible(timeout=UI_TIMEOUT_MS)
    row_count = page.get_by_text("Row count", exact=True)
    expect(row_count).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(row_count.locator("xpath=..")).to_have_text(_count("Row count", traffic_rows), timeout=UI_TIMEOUT_MS)
    _shot(page, tmp_path, "asset-overview")

    page.goto(f"{base}/assets/ga4/traffic_by_channel?view=events", wait_until="networkidle")
    row = page.get_by_role("row").filter(has=page.get_by_text("dagster/row_count", exact=True)).first
    expect(row).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(row).to_have_text(_count("dagster/row_count", traffic_rows), timeout=UI_TIMEOUT_MS)
    _shot(page, tmp_path, "asset-events")

    # Schedules.
    page.goto(f"{base}/automation", wait_until="networkidle")
    for schedule in SCHEDULES:
        expect(page.get_by_text(schedule, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("marketing_kpi").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    _shot(page, tmp_path, "automation")
