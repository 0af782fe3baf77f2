"""A killed run keeps no writer slot; a waiting run says what it waits for and stops on SIGTERM (issue #19 item 3).

The instance is the one `make dev` and `make demo` use: SQLite storage in a DAGSTER_HOME holding the repository's
`dagster.yaml` (pools of one slot), with the `duckdb_write` slot created up front as the Makefile does. Runs are
`mkpi backfill` runs against the sandbox, in this process or as `mkpi` subprocesses.

Short version (`make test`): a run left STARTED by a dead process (recorded as `mkpi` records it) holding the slot
is swept by the next backfill, which completes; live runs and other hosts' runs are never swept; a backfill
waiting behind a live holder names it and, on SIGTERM, exits at once with its run canceled and the holder's slot
untouched. Full version (`make chaos`, MKPI_CRASH_REPEATS): a real `kill -9` of `mkpi backfill` while it holds
the slot (its GA4 requests stalled) and while it waits for it, MKPI_CRASH_REPEATS times each; after every kill a
new backfill completes within a minute; and Ctrl-C (SIGINT) is handled like SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from pipelines.cli import main
from pipelines.lib.stale_runs import HOST_TAG, PID_START_TAG, PID_TAG, RUN_TAG, owner_tags, sweep_stale_runs
from sandbox.httpserver import FaultProfile
from sandbox.world import World
from tests import battery
from tests.sandboxes import start_servers
from tests.tmpfs import memory_folder

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 3, 31)
START, END = "2026-03-01", "2026-03-03"
POOL = "duckdb_write"
REPEATS = int(os.environ.get("MKPI_CRASH_REPEATS") or "1")
LINE = "Stuck writer slot"
MKPI = str(Path(sys.executable).parent / "mkpi")
BACKFILL = ["backfill", "--source", "ga4", "--start", START, "--end", END]


@pytest.fixture(scope="module")
def sandbox():
    with start_servers(World(seed=1, today=TODAY), without=("hubspot",)) as running:  # GA4 backfills only
        yield running


@pytest.fixture
def home() -> Iterator[Path]:
    """A DAGSTER_HOME as `make dev` creates it: the repository's dagster.yaml, SQLite storage, the pool's slot. Its
    folder is on tmpfs where there is one (tests/tmpfs.py): SQLite's fsync per event is a wait on this machine's
    disk, and nothing here checks durability (a killed process's writes are in the page cache either way)."""
    with memory_folder("mkpi-stale-runs-") as folder:
        path = Path(folder) / "dagster_home"
        path.mkdir()
        shutil.copyfile(REPO / "dagster.yaml", path / "dagster.yaml")
        with dg.DagsterInstance.from_config(str(path)) as instance:
            instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
            assert instance.event_log_storage.get_concurrency_info(POOL).slot_count == 1
        yield path


@contextlib.contextmanager
def instance_at(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def environment(sandbox, home: Path, tmp_path: Path) -> dict[str, str]:
    """A subprocess's environment: no developer MKPI_* setting, the sandbox, this test's files and instance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MKPI_") and k != "DAGSTER_HOME"}
    env.update(sandbox.env)
    env.update(DAGSTER_HOME=str(home), MKPI_DUCKDB_PATH=str(tmp_path / "work.duckdb"),
               MKPI_ANALYST_DB=str(tmp_path / "kpis.duckdb"), MKPI_DASHBOARD_PATH=str(tmp_path / "dashboard.html"),
               PYTHONPATH=str(REPO), COLUMNS="200")
    return env


def dead_pid() -> int:
    """The PID of a process that has ended (what a `kill -9`ed `mkpi` leaves behind)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def recorded_run(instance: dg.DagsterInstance, tags: dict[str, str] | None, holds_slot: bool = True,
                 status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED, copied_from: str | None = None) -> str:
    """A run as `mkpi backfill` records it (owner tags: `tags`, None = this process), STARTED, holding the pool's
    slot if asked. `copied_from`: the owner tags were copied from that run, as a re-execution copies its parent's."""
    run_id = str(uuid.uuid4())
    owner = owner_tags(run_id) if tags is None else {**tags, RUN_TAG: run_id} if tags else {}
    if copied_from is not None:
        owner[RUN_TAG] = copied_from
    instance.add_run(dg.DagsterRun(job_name="daily_refresh_job", run_id=run_id, status=status,
                                   tags={"mkpi/source": "matomo", "mkpi/trigger": "cli", **owner}))
    if holds_slot:
        claim = instance.event_log_storage.claim_concurrency_slot(POOL, run_id, "matomo_reports")
        assert claim.is_claimed
    return run_id


def holders(instance: dg.DagsterInstance) -> set[str]:
    return {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots}


def pending(instance: dg.DagsterInstance) -> set[str]:
    return {step.run_id for step in instance.event_log_storage.get_concurrency_info(POOL).pending_steps}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# --- the sweep's judgement ---------------------------------------------------------------------------------------


def test_only_runs_whose_process_on_this_host_is_gone_are_swept(home):
    with instance_at(home) as instance:
        alive = recorded_run(instance, None)  # this very process
        elsewhere = recorded_run(instance, {HOST_TAG: "another-host", PID_TAG: str(dead_pid())}, holds_slot=False)
        untagged = recorded_run(instance, {}, holds_slot=False)  # launched by the daemon or the UI: its monitoring's
        # a re-execution (UI, run retries) copies its parent's tags: the dead parent's process says nothing of it
        reexecuted = recorded_run(instance, {HOST_TAG: socket.gethostname(), PID_TAG: str(dead_pid())},
                                  holds_slot=False, copied_from=str(uuid.uuid4()))
        assert sweep_stale_runs(instance) == []
        assert holders(instance) == {alive}
        # a new process that got the dead run's PID does not keep it alive: the PID's start time differs
        reused = recorded_run(instance, {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
                                         PID_START_TAG: "1"}, holds_slot=False)
        dead = recorded_run(instance, {HOST_TAG: socket.gethostname(), PID_TAG: str(dead_pid())}, holds_slot=False,
                            status=dg.DagsterRunStatus.CANCELING)
        swept = {s.run_id: s for s in sweep_stale_runs(instance)}
        assert set(swept) == {reused, dead}
        assert instance.get_run_by_id(reused).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.CANCELED  # it was being canceled
        for run_id in (alive, elsewhere, untagged, reexecuted):
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
        assert holders(instance) == {alive}


# --- the next backfill frees a dead run's slot ------------------------------------------------------------------------


@pytest.mark.battery(LINE)
def test_a_dead_runs_slot_is_freed_and_the_next_backfill_completes(sandbox, home, monkeypatch):
    """The state `kill -9` of `mkpi backfill` leaves (its run STARTED, the slot claimed, the process gone), then
    `mkpi backfill` in this process: it names and sweeps the dead run, gets the slot and loads."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    pid = dead_pid()
    with instance_at(home) as instance:
        stale = recorded_run(instance, {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)})
        assert holders(instance) == {stale}
    began = time.monotonic()
    code, out, err = run_cli(*BACKFILL)
    elapsed = time.monotonic() - began
    assert code == 0, out + err
    flat = " ".join(out.split())
    assert (f"Freed the writer slot of a dead run: matomo run {stale[:8]} was left STARTED by process {pid}, which is "
            "gone (killed?): marked failed, 1 duckdb_write slot(s) freed.") in flat
    with instance_at(home) as instance:
        run = instance.get_run_record_by_id(stale).dagster_run
        assert run.status == dg.DagsterRunStatus.FAILURE
        failure = [e for e in instance.all_logs(stale) if e.dagster_event and e.dagster_event.is_run_failure]
        assert f"process {pid}, which executed this run, is gone" in failure[0].dagster_event.message
        assert holders(instance) == set() and pending(instance) == set()
        (done,) = [r for r in instance.get_runs() if r.run_id != stale]
        assert done.status == dg.DagsterRunStatus.SUCCESS
        assert done.tags[PID_TAG] == str(os.getpid())  # the new run records its process, for the next sweep
    battery.count(LINE, "dead runs swept", 1)
    battery.note(LINE, f"a run left STARTED holding the slot by a dead process: the next backfill swept it and "
                       f"completed in {elapsed:.0f} s")
    assert elapsed < 60


# --- a waiting backfill says what it waits for, and stops on a signal -------------------------------------------


class Lines:
    """A subprocess's stdout, read line by line in a thread (the waiting line comes while the process runs)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.lines = process, []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def until(self, text: str, timeout: float) -> list[str]:
        """The lines up to the first containing `text` (fails after `timeout` seconds, or if the process ends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, line in enumerate(list(self.lines)):
                if text in line:
                    return self.lines[:index + 1]
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        ended = self.process.poll() is not None and self.process.stderr is not None
        errors = self.process.stderr.read()[-2000:] if ended else ""
        raise AssertionError(f"no line with {text!r} within {timeout:.0f} s (exit {self.process.poll()}): "
                             f"{self.lines} {errors}")


def _default_sigint() -> None:
    """In the child before it runs mkpi: SIGINT handled by default (Python's KeyboardInterrupt), not ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.battery(LINE)
@pytest.mark.parametrize("stop", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.full)],
                         ids=lambda s: s.name)
def test_a_waiting_backfill_names_the_holder_and_stops_on_a_signal(sandbox, home, tmp_path, stop):
    with instance_at(home) as instance:
        holder = recorded_run(instance, None)  # a live run (this process) holding the slot
    # SIGINT at its default in the child, as for a command in a terminal's foreground: a test runner started in the
    # background from a script (`nohup make chaos &`) passes SIGINT ignored to its children (the shell's rule for
    # background jobs), and Python then installs no Ctrl-C handler, so this case timed out in such runs
    waiter = subprocess.Popen([MKPI, *BACKFILL], cwd=REPO, env=environment(sandbox, home, tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=_default_sigint)
    try:
        lines = Lines(waiter).until("Ctrl-C cancels this run", timeout=120)
        said = " ".join(" ".join(lines).split())
        assert (f"ga4: waiting 0 s for the duckdb_write slot (one writer at a time), held by run {holder[:8]}, source "
                f"matomo, step matomo_reports, STARTED") in said
        assert f"mkpi process {os.getpid()}" in said and "Ctrl-C cancels this run" in said
        # no pause needed: the waiting line is printed by the main thread inside the SIGTERM handler's block
        # (pipelines/cli/backfill.py execute_interruptibly), so the signal is handled from that line on
        signalled = time.monotonic()
        waiter.send_signal(stop)
        code = waiter.wait(timeout=30)
        stopped_in = time.monotonic() - signalled
    finally:
        if waiter.poll() is None:
            os.killpg(waiter.pid, signal.SIGKILL)
            waiter.wait()
    err = waiter.stderr.read()
    assert code == (143 if stop == signal.SIGTERM else 130), err
    name = "SIGTERM" if stop == signal.SIGTERM else "Ctrl-C"
    with instance_at(home) as instance:
        (run,) = [r for r in instance.get_runs() if r.run_id != holder]
        assert f"mkpi: stopped by {name}: ga4 run {run.run_id[:8]} marked canceled" in err
        assert run.status == dg.DagsterRunStatus.CANCELED
        assert holders(instance) == {holder}  # a live run's slot is never taken from it
        assert run.run_id not in pending(instance)  # nor does the canceled run stay in the queue
        assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.STARTED
    battery.count(LINE, f"waiting backfills stopped by {stop.name}", 1)
    battery.note(LINE, f"a backfill waiting behind a live run named it and exited {stopped_in:.1f} s after "
                       f"{stop.name}, its run canceled, the holder's slot untouched")
    assert stopped_in < 10


# --- make chaos: a real kill -9 ------------------------------------------------------------------------------------


KILL_POINTS = ["holding the slot", "waiting for the slot"]


@pytest.mark.battery(LINE)
@pytest.mark.full  # a real kill -9 of mkpi backfill
@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_9_of_a_backfill_then_a_new_backfill_completes_within_a_minute(sandbox, home, tmp_path, point, repeat):
    env = environment(sandbox, home, tmp_path)
    ga4 = sandbox.server("ga4")
    live_holder = None
    with instance_at(home) as instance:
        if point == "waiting for the slot":
            live_holder = recorded_run(instance, None)
        else:
            ga4.fault_profile = FaultProfile(seed=repeat, stall=1.0, stall_seconds=300)  # its requests hang
        requests_before = ga4.request_count
        victim = subprocess.Popen([MKPI, *BACKFILL], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            if point == "waiting for the slot":
                Lines(victim).until("Ctrl-C cancels this run", timeout=120)
            else:
                deadline = time.monotonic() + 120
                while not (holders(instance) and ga4.request_count > requests_before):
                    assert time.monotonic() < deadline, "the backfill never took the slot"
                    time.sleep(0.2)
            (victim_run,) = [r.run_id for r in instance.get_runs() if r.run_id != live_holder]
        finally:
            os.killpg(victim.pid, signal.SIGKILL)  # no finally, no handler: the slot (or its place in line) stays
            victim.wait()
            ga4.fault_profile = None
        assert victim_run in holders(instance) | pending(instance)
        if live_holder is not None:  # the live holder ends normally and gives its slot back
            instance.event_log_storage.free_concurrency_slots_for_run(live_holder)
    killed = time.monotonic()
    battery.count(LINE, "kill -9", 1)
    rerun = subprocess.run([MKPI, *BACKFILL], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - killed
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert f"run {victim_run[:8]} was left STARTED by process {victim.pid}, which is gone" in " ".join(
        rerun.stdout.split())
    with instance_at(home) as instance:
        assert instance.get_run_by_id(victim_run).status == dg.DagsterRunStatus.FAILURE
        assert holders(instance) == set() and pending(instance) - {live_holder} == set()
    battery.count(LINE, "new backfills completed after a kill", 1)
    battery.note(LINE, f"kill -9 {point}: the next backfill swept the dead run and completed {elapsed:.0f} s after "
                       "the kill")
    assert elapsed < 60
