"""Service mode (issue #10), end to end: PostgreSQL storage, a code server, the daemon, a schedule tick.

What runs is what docs/deployment.md tells an operator to run: a real PostgreSQL server (Debian's package, a
temporary data directory and port; `tests/postgres.py`), a DAGSTER_HOME holding `deploy/dagster.yaml` unchanged
(its connection from DAGSTER_PG_* variables), `dagster api grpc` serving the code location and
`dagster-daemon run` reading a workspace that points at it, the platforms served by the local sandbox.

The `daily_refresh` schedule's documented knob (MKPI_DAILY_REFRESH_CRON) sets it to tick daily at the minute
that has just passed, and it is started (as `dagster schedule start` does) with its start moved five minutes back:
as after any daemon downtime, the daemon fires the tick it missed on its first pass, so the test waits for no
minute boundary and later ticks are a day away. Only Google Ads is configured (the source with the fewest steps),
so the tick asks for one run. The daemon's queued run coordinator launches it; the run worker loads the sandbox's
Google Ads data and rebuilds the KPI tables. Success is read back from PostgreSQL, with Dagster's instance API and
with psql on the `runs` and `job_ticks` tables, and the KPI rows from the DuckDB file. Without PostgreSQL the test
is skipped with the reason.

One setting differs from deploy/dagster.yaml: the queued run coordinator's `dequeue_interval_seconds` (Dagster's
documented config, default 5 s; `dagster/_core/run_coordinator/queued_run_coordinator.py`) is 1 s in the test's copy:
the test checks that the queued run is launched and finishes, not how often the queue is read. The service's
processes are stopped together at the end (each is signalled, then each is waited for), not one after the other.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pytest

from pipelines.lib.instance_env import DAGSTER_ENV
from sandbox.world import World
from tests.ports import free_port
from tests.postgres import Postgres, file_server
from tests.sandboxes import start_servers

if TYPE_CHECKING:
    from dagster import DagsterInstance, DagsterRun

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CODE_SERVER_TIMEOUT = 120.0
RUN_TIMEOUT = 300.0  # from the daemon's start to the run's end; generous: a loaded machine is many times slower
LOCATION = "marketing_kpi"
# The one configured source: its variables from the sandbox, the others left unset (one run per tick).
SOURCE, SOURCE_PREFIX = "google_ads", "MKPI_GOOGLE_ADS_"
REREAD_DAYS = 2
# How often the test's daemon reads the run queue (deploy/dagster.yaml leaves Dagster's 5 s default): not checked here.
DEQUEUE_INTERVAL_SECONDS = 1
RUN_POLL_SECONDS = 0.25  # how often the test asks the instance whether the run has finished


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def _instance_yaml(dagster_home: Path) -> None:
    """deploy/dagster.yaml as the service's DAGSTER_HOME holds it, the run queue read every DEQUEUE_INTERVAL_SECONDS."""
    import yaml

    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    coordinator = config["run_coordinator"]
    assert "config" not in coordinator, coordinator  # the production file sets no coordinator config to override
    coordinator["config"] = {"dequeue_interval_seconds": DEQUEUE_INTERVAL_SECONDS}
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _stop_together(*procs: subprocess.Popen[bytes]) -> None:
    """Ask every process group to stop, then wait for each: their shutdowns overlap instead of adding up. What is
    still running after 15 s is left to `_process`, which kills it."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own process group, so stopping it also stops what it started (run workers, steps)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        try:  # children the leader left behind (a step process of a run)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for_code_server(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + CODE_SERVER_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the code server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            client.ping("")
            return
        except Exception:  # not listening yet
            time.sleep(0.2)
    pytest.fail(f"the code server did not answer within {CODE_SERVER_TIMEOUT:.0f} s:\n{_tail(log)}")


def _service_env(pg: Postgres, dagster_home: Path, sandbox_env: dict[str, str], tick: datetime) -> dict[str, str]:
    """What the service's processes get: the instance, its PostgreSQL, and one source only (one run per tick)."""
    source = {k: v for k, v in sandbox_env.items() if k.startswith(SOURCE_PREFIX)}
    return {
        **os.environ,
        **source,
        f"{SOURCE_PREFIX}REREAD_DAYS": str(REREAD_DAYS),
        "MKPI_DAILY_REFRESH_CRON": f"{tick.minute} {tick.hour} * * *",  # daily, at `tick`
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_HOST": pg.host,
        "DAGSTER_PG_PORT": str(pg.port),
        "DAGSTER_PG_USERNAME": pg.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": pg.database,
        "PYTHONUNBUFFERED": "1",
        **DAGSTER_ENV,  # what docs/deployment.md sets for the webserver, the daemon and run workers
    }


def _start_schedule_while_daemon_down(workspace: Path, name: str, since: datetime) -> None:
    """Start the schedule as `dagster schedule start` does, with its start moved back to `since`: as if it had been
    started then while the daemon was stopped, so the daemon catches the tick it missed up at once."""
    from dagster import DagsterInstance
    from dagster._core.scheduler.instigation import ScheduleInstigatorData
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with DagsterInstance.get() as instance, WorkspaceProcessContext(
            instance, WorkspaceFileTarget([str(workspace)])) as workspace_context:
        location = workspace_context.create_request_context().get_code_location(LOCATION)
        (repository,) = location.get_repositories().values()
        schedule = repository.get_schedule(name)
        state = instance.start_schedule(schedule)
        instance.update_instigator_state(state.with_data(ScheduleInstigatorData(
            schedule.cron_schedule, start_timestamp=since.timestamp())))


def _planned_partitions(instance: DagsterInstance, run_id: str) -> list[int | None]:
    """Per planned event of the run, how many days it names: a range event the range's, a per-day one 1, an
    unpartitioned asset's None."""
    from dagster import DagsterEventType

    counts: list[int | None] = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        subset = getattr(data, "partitions_subset", None)
        counts.append(len(subset.get_partition_keys()) if subset is not None
                      else 1 if getattr(data, "partition", None) is not None else None)
    return counts


def _run_events(instance: DagsterInstance, run_id: str) -> str:
    """The run's Dagster events, one line each (for a failure message: where a slow or failed run spent its time)."""
    lines = []
    for entry in instance.all_logs(run_id):
        if entry.dagster_event is not None:
            what = f"{entry.dagster_event.event_type_value} {entry.step_key or ''}"
            lines.append(f"{time.strftime('%H:%M:%S', time.gmtime(entry.timestamp))} {what}")
    return "\n".join(lines[-40:])


def _wait_for_run(daemon: subprocess.Popen[bytes], daemon_log: Path, code_log: Path) -> DagsterRun:
    """The schedule's run, once it has finished."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + RUN_TIMEOUT
    runs: list[DagsterRun] = []
    with DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                pytest.fail(f"dagster-daemon exited with {daemon.returncode}:\n{_tail(daemon_log)}")
            runs = list(instance.get_runs(RunsFilter(tags={"dagster/schedule_name": "daily_refresh"})))
            if runs and all(run.status in finished for run in runs):
                assert len(runs) == 1, [(r.run_id, r.status, r.tags) for r in runs]
                return runs[0]
            time.sleep(RUN_POLL_SECONDS)
        events = "\n\n".join(_run_events(instance, run.run_id) for run in runs)
    pytest.fail(f"no finished daily_refresh run within {RUN_TIMEOUT:.0f} s: {[(r.run_id, r.status) for r in runs]}\n"
                f"daemon:\n{_tail(daemon_log)}\ncode server:\n{_tail(code_log)}\nrun events:\n{events}")


def _last_minute() -> datetime:
    """The start of the minute before this one, in the reporting time zone the schedule runs in."""
    from connectors.settings import load_settings

    return (datetime.now(load_settings().tz) - timedelta(minutes=1)).replace(second=0, microsecond=0)


def test_daemon_runs_the_daily_refresh_from_postgres_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    timeline: list[str] = []

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - started:5.1f} s {what}")

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    _instance_yaml(dagster_home)
    grpc_port = free_port()
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {grpc_port}\n"
        f"      location_name: {LOCATION}\n")
    logs = {name: tmp_path / f"{name}.log" for name in ("code_server", "daemon")}

    with ExitStack() as stack:
        pg = stack.enter_context(file_server(request.config, "service_mode")).create_database("dagster")
        sandbox = stack.enter_context(start_servers(World(seed=7)))  # HubSpot's portal not built: not configured
        tick = _last_minute()
        env = _service_env(pg, dagster_home, sandbox.env, tick)
        for key in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME",
                    "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
            monkeypatch.setenv(key, env[key])  # this process reads the same instance
        mark("PostgreSQL and the sandbox up")

        code_server = stack.enter_context(_process(
            [_tool("dagster"), "api", "grpc", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", str(grpc_port),
             "--location-name", LOCATION, "--use-python-environment-entry-point"],
            env, logs["code_server"], REPO))
        _wait_for_code_server(grpc_port, code_server, logs["code_server"])
        mark("code server answers")

        _start_schedule_while_daemon_down(tmp_path / "workspace.yaml", "daily_refresh", tick - timedelta(minutes=1))
        mark("schedule started")

        daemon = stack.enter_context(_process([_tool("dagster-daemon"), "run", "-w", "workspace.yaml"],
                                              env, logs["daemon"], tmp_path))
        run = _wait_for_run(daemon, logs["daemon"], logs["code_server"])
        mark(f"run {run.status.value}")
        from dagster import DagsterInstance

        with DagsterInstance.get() as instance:
            events = _run_events(instance, run.run_id)
            planned = _planned_partitions(instance, run.run_id)
        # The same, read straight from PostgreSQL: the runs table is where deploy/dagster.yaml put it.
        stored = pg.psql(f"SELECT status || ' ' || pipeline_name FROM runs WHERE run_id = '{run.run_id}'")
        ticks = pg.psql("SELECT count(*) FROM job_ticks WHERE status = 'SUCCESS'")
        _stop_together(daemon, code_server)
    mark("everything stopped")
    print("\n".join(timeline), events, sep="\n")

    from dagster import DagsterRunStatus
    from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

    assert run.status == DagsterRunStatus.SUCCESS, (
        f"run {run.run_id} ended {run.status}:\n{events}\n{_tail(logs['daemon'])}\n{_tail(logs['code_server'])}")
    assert stored == "SUCCESS daily_refresh_job", stored
    assert int(ticks) >= 1, ticks
    # the tick the daemon caught up; one run per configured source, tagged for the per-source run limit
    assert datetime.fromisoformat(run.tags[SCHEDULED_EXECUTION_TIME_TAG]) == tick, run.tags
    assert run.tags["mkpi/source"] == SOURCE

    with duckdb.connect(os.environ["MKPI_DUCKDB_PATH"], read_only=True) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT date) FROM kpi.kpi_daily WHERE source = ?",
                            [SOURCE]).fetchone()
    assert rows is not None and rows[0] > 0 and rows[1] == REREAD_DAYS, rows
    # the daemon created the run with one planned event per partitioned asset naming both days, none per day
    assert REREAD_DAYS in planned and set(planned) <= {REREAD_DAYS, None}, planned
