"""Concurrency (issue #8): many runs at once against one DuckDB file, and a cancelled run's pool slot.

Why: DuckDB lets one process write a file at a time. Every asset that opens the working file is in pool
``duckdb_write`` and ``dagster.yaml`` gives pools one slot, so a backfill, the schedule's per-source runs
and the HubSpot run started together must queue for the file instead of failing on its lock, and each
must still write everything it read. A run that dies holding the slot must not keep it forever:
``run_monitoring.free_slots_after_run_end_seconds`` has the daemon give it back.

These tests drive a real Dagster instance (a temporary DAGSTER_HOME whose ``dagster.yaml`` is the repository's
pools and run monitoring, with its storage in a throw-away PostgreSQL server as ``deploy/dagster.yaml`` keeps it)
from separate OS processes, the way the daemon's run launcher does: one process per run, the multiprocess
executor inside it, steps as their own processes. The run processes are forks of one launcher process that has
imported the pipeline once (``RunLauncher``), as the project's executor forks steps from a preloaded server
(pipelines/lib/executor.py): each is still its own OS process with its own instance, PostgreSQL connections and
DuckDB connection (the preload opens none: tests/test_executor.py), so they contend for the pool slot and the
file's lock as launched runs do, without paying ~4 CPU-s of imports each. One launcher serves both tests (each run
gets its test's environment in the request; the launcher itself never runs one), and it also imports what every run
imports on its first run (``RUN_IMPORTS``). Where PostgreSQL is not installed they are skipped with the reason
(``tests/postgres.py``; ``.ci/run`` installs it).

Why PostgreSQL and not the SQLite storage of ``make dev``: on SQLite, Dagster's pool slot claim is not atomic.
``_claim_concurrency_slot`` selects a free slot ``FOR UPDATE SKIP LOCKED`` (which SQLite ignores), then updates
it by id; two steps that read the same free slot both get it. ``make chaos`` saw it on SQLite (dagster 1.13.27):
2 pairs of the 93 pool steps held the one slot together. Nothing was lost or locked, because a writer that finds
the DuckDB file locked waits in ``connect()``, but the pool's promise (one writer at a time) only holds on
PostgreSQL, the service's storage.

Two sizes. The short one (``make test``) launches the eight runs with one raw asset each and the in-process
executor inside each run (pools are claimed by the run's step loop either way), to stay near a minute on two
cores. The full one (the full battery: ``make chaos``, or ``MKPI_FULL=1``; tests/battery.py)
runs every job's whole selection (raw tables, KPI tables, checks, the analysts' copy) with the multiprocess
executor, ``MKPI_CONCURRENCY_ROUNDS`` times (default 1).

A fresh instance must be created once before runs start together, or their simultaneous schema migrations
collide (``_insert_version``, seen on SQLite), which a long-lived instance never sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from tests import battery
from tests.checksums import table_checksums
from tests.postgres import Postgres, file_server

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 3, 31)
FULL = battery.FULL  # the full battery (make chaos, or MKPI_FULL=1) runs the full size
ROUNDS = int(os.environ.get("MKPI_CONCURRENCY_ROUNDS", "1"))
POOL = "duckdb_write"
LOCK_ERRORS = ("Could not set lock", "Conflicting lock", "IO Error")
# Full: the production executor, steps forked from a server that imported the pipeline once. Short: steps
# in the run's own process (a step process costs seconds of start-up on a loaded 2-core machine, and the
# slot is held while it starts).
MULTIPROCESS = {"execution": {"config": {"multiprocess": {
    "max_concurrent": 2, "start_method": {"forkserver": {"preload_modules": ["pipelines.definitions"]}}}}}}
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
RUN_CONFIG = MULTIPROCESS if FULL else IN_PROCESS


# ---- the run worker (a child process per run) ----------------------------------------------------------

def job_named(name: str) -> dg.JobDefinition:
    """Rebuilds a job of the code location in a run or step process (see build_reconstructable_job)."""
    from pipelines.definitions import defs

    return defs.resolve_job_def(name)


def run_worker(spec_json: str) -> int:
    """One run in this process against DAGSTER_HOME's instance, as the daemon's run launcher would start it."""
    spec = json.loads(spec_json)
    job = dg.build_reconstructable_job("tests.test_concurrency", "job_named", reconstructable_args=(spec["job"],),
                                       reconstructor_working_directory=str(REPO))
    selection = [dg.AssetKey.from_user_string(k) for k in spec["assets"]] if spec.get("assets") else None
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(job, instance=instance, run_config=RUN_CONFIG, tags=spec["tags"],
                                asset_selection=selection, raise_on_error=False)
        print(json.dumps({"run_id": result.run_id, "success": result.success}), flush=True)
    return 0 if result.success else 1


# ---- the parent's side ---------------------------------------------------------------------------------

@dataclass
class RunSpec:
    """One run to launch: a job, its tags (range, source) and, for the schedule's runs, an asset selection."""

    label: str
    job: str
    tags: dict[str, str] = field(default_factory=dict)
    assets: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps({"job": self.job, "tags": self.tags, "assets": self.assets})


def write_instance_yaml(home: Path, pg: Postgres, **run_monitoring: int) -> None:
    """A DAGSTER_HOME whose dagster.yaml is the repository's (pools, run monitoring), storage in PostgreSQL as
    deploy/dagster.yaml configures it (trust authentication on loopback: no password)."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config["run_monitoring"] = {**config.get("run_monitoring", {}), **run_monitoring}
    config["storage"] = {"postgres": {"postgres_db": {
        "hostname": pg.host, "port": pg.port, "username": pg.user, "password": "", "db_name": pg.database,
        "scheme": "postgresql+psycopg2"}}}
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    # Create the storage schemas and the pool's slot once, as a long-lived instance already has them: eight
    # processes creating the schemas at the same moment collide on the migration, and eight first claims on a
    # pool not yet initialised can both be granted (seen once here: two writers started together; the
    # DuckDB lock wait in connect() kept them apart). `dagster instance concurrency set duckdb_write 1` does
    # the same for a new deployment.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
        assert instance.event_log_storage.get_concurrency_info(POOL).slot_count == 1


def child_env(sandbox_env: dict[str, str], home: Path, db: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MKPI_")}
    env.update(sandbox_env)
    env.update({"DAGSTER_HOME": str(home), "MKPI_DUCKDB_PATH": str(db), "MKPI_ANALYST_DB": str(tmp / "kpis.duckdb"),
                "MKPI_DASHBOARD_PATH": str(tmp / "dashboard.html"), "PYTHONPATH": str(REPO)})
    return env


def _forked_run(request: dict[str, Any]) -> int:
    """In a fresh fork of the launcher: its own process group (so it can be killed as a crash is), the test's
    environment (its instance, sandbox and files), its output to the run's log files, then the run."""
    os.setpgid(0, 0)
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, mode in ((0, os.devnull, os.O_RDONLY), (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                           (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        os.dup2(os.open(path, mode, 0o644), fd)
    try:
        return run_worker(request["spec"])
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


# What every run process imports on its first run besides the pipeline (measured: ~0.5 CPU-s a run process);
# none starts a thread, opens a socket or loads gRPC (the clients that do, GA4's and Google Ads', stay lazy).
RUN_IMPORTS = ("pandas", "aiohttp", "requests", "googleapiclient.discovery")


def serve_runs() -> int:
    """The launcher process: imports the pipeline once, then answers request lines on stdin. A run request is forked
    into a run process of its own, in the environment the request carries, and answered with its pid; a wait request
    waits for every run forked since the last one and answers their exit codes (label: code). At the end of stdin
    it waits for what is left."""
    import importlib

    import pipelines.definitions  # noqa: F401  (the preload: what each run process would import)

    for name in RUN_IMPORTS:
        importlib.import_module(name)
    children: dict[int, str] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "wait":
            codes = {label: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid, label in children.items()}
            children.clear()
            print(json.dumps(codes), flush=True)
            continue
        if threading.active_count() != 1:  # a fork copies no thread: the preload must have started none
            raise RuntimeError(f"the launcher runs threads {threading.enumerate()}: forking it is unsafe")
        pid = os.fork()
        if pid == 0:
            os._exit(_forked_run(request))
        with contextlib.suppress(OSError):  # as the child does: its group exists before its pid is answered
            os.setpgid(pid, pid)
        children[pid] = request["label"]
        print(json.dumps({"label": request["label"], "pid": pid}), flush=True)
    for pid in children:
        os.waitpid(pid, 0)
    return 0


class RunLauncher:
    """The parent's handle on the launcher, one for the module (the pipeline imported once for every test's runs):
    a test begins with `start` (its runs' environment and log folder), then starts runs (each a process of its own),
    kills one, waits for all of its runs, and ends with `abandon` (whatever of its runs is left is killed)."""

    def __init__(self, log_dir: Path) -> None:
        self.launcher_log = log_dir / "launcher.err"
        self.env: dict[str, str] = {}
        self.log_dir = log_dir
        self.pids: dict[str, int] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("MKPI_")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from tests.test_concurrency import serve_runs; sys.exit(serve_runs())"],
            cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.launcher_log.open("w"), text=True, start_new_session=True)

    def start(self, env: dict[str, str], log_dir: Path) -> RunLauncher:
        """A test's runs from now on: their environment and where their output goes."""
        self.env, self.log_dir, self.pids = env, log_dir, {}
        return self

    def _request(self, request: dict[str, Any], timeout: float) -> Any:
        """Send one request line; its answer line, or an error naming why none came (the launcher's own log)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)  # answers are whole lines, one a request
        answer = self.process.stdout.readline() if ready else ""
        if not answer:
            why = "exited" if self.process.poll() is not None else f"did not answer within {timeout:.0f} s"
            raise AssertionError(f"the run launcher {why}: {self.launcher_log.read_text()[-2000:]}")
        return json.loads(answer)

    def launch(self, spec: RunSpec) -> int:
        """Start one run; returns its process id once it has been forked."""
        request = {"op": "run", "label": spec.label, "spec": spec.as_json(), "env": self.env,
                   "out": str(self.log_dir / f"{spec.label}.out"), "err": str(self.log_dir / f"{spec.label}.err")}
        self.pids[spec.label] = self._request(request, 120)["pid"]
        return self.pids[spec.label]

    def running(self, label: str) -> bool:
        """Whether the run's process is still running (an exited one stays a zombie until the launcher waits)."""
        try:
            stat = Path(f"/proc/{self.pids[label]}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat[stat.rfind(")") + 2] != "Z"

    def kill(self, label: str, sig: int = signal.SIGKILL) -> None:
        """Signal the run's process group (the run and any step processes it started)."""
        try:
            os.killpg(self.pids[label], sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> dict[str, int]:
        """Every run's exit code (negative: killed by that signal), once all of this test's runs have ended."""
        codes = self._request({"op": "wait"}, timeout)
        self.pids = {}
        return codes

    def abandon(self) -> None:
        """The end of a test: its runs not waited for yet (a failed test's) are killed and reaped."""
        if self.pids and self.process.poll() is None:
            for label in self.pids:
                self.kill(label)
            with contextlib.suppress(AssertionError):
                self.wait(60)
        self.pids = {}

    def close(self) -> None:
        """The end of the module: the launcher ends with its stdin; killed (its group) if it does not."""
        self.abandon()
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def schedule_requests() -> list[dg.RunRequest]:
    """The morning's per-source report runs on the sandbox's today (what the sensors after HubSpot's run request,
    or the `daily_refresh` schedule without HubSpot): the first four report sources of the registry, the web and
    ads ones, so that eight runs start at once as before the social networks were registered."""
    from connectors.settings import load_settings
    from pipelines.defs.schedules import refresh_requests

    requests = refresh_requests(TODAY, load_settings())
    assert len(requests) >= 4
    return requests[:4]


def run_specs() -> list[RunSpec]:
    """Eight runs: three overlapping backfill ranges, the schedule's four per-source runs, the HubSpot run.

    The short version narrows every run to one raw asset (eight writers, one step each, seconds per run);
    the full version runs each job's whole selection (raw tables, KPI tables, the analysts' copy)."""
    from pipelines.definitions import defs
    from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG

    ranges = [(date(2026, 3, 1), date(2026, 3, 7)), (date(2026, 3, 5), date(2026, 3, 12)),
              (date(2026, 3, 10), date(2026, 3, 16))]
    specs = [RunSpec(f"backfill-{i}", "daily_refresh_job",
                     {RANGE_START_TAG: s.isoformat(), RANGE_END_TAG: e.isoformat()},
                     [] if FULL else ["ga4/ecommerce_by_date"])
             for i, (s, e) in enumerate(ranges)]
    for request in schedule_requests():
        keys = list(request.asset_selection or [])
        # short: the request's first raw asset, with the other outputs of its step (Matomo's is one multi-asset)
        first_step = defs.resolve_assets_def(keys[0]).keys
        specs.append(RunSpec(f"schedule-{request.tags['mkpi/source']}", "daily_refresh_job", dict(request.tags),
                             [k.to_user_string() for k in keys if FULL or k in first_step]))
    specs.append(RunSpec("hubspot", "hubspot_refresh_job", {}, [] if FULL else ["hubspot/contacts"]))
    return specs


def run_reference(specs: list[RunSpec]) -> None:
    """The same runs one after another, in this process: what the file must hold however they interleave."""
    from pipelines.definitions import defs

    for spec in specs:
        job = defs.resolve_job_def(spec.job)
        selection = [dg.AssetKey.from_user_string(k) for k in spec.assets] or None
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=spec.tags,
                                        asset_selection=selection, raise_on_error=False)
        assert result.success, f"reference run {spec.label} failed"


def pool_steps(job_name: str) -> set[str]:
    """Step keys of the job's ops in pool duckdb_write (asset checks read through their own connection)."""
    from pipelines.definitions import defs

    job = defs.resolve_job_def(job_name)
    return {n.name for n in job.nodes_in_topological_order if n.definition.pool == POOL}


@dataclass
class StepSpan:
    run_id: str
    step_key: str
    start: float
    end: float


def step_spans(instance: dg.DagsterInstance, run_id: str, steps: set[str]) -> list[StepSpan]:
    """When each pool step of a run held the slot, from the event log: from its STEP_WORKER_STARTING (the
    slot is claimed before the step's process starts) or STEP_START, to its STEP_SUCCESS/STEP_FAILURE."""
    starts: dict[str, float] = {}
    spans = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key not in steps:
            continue
        if event.event_type in (dg.DagsterEventType.STEP_WORKER_STARTING, dg.DagsterEventType.STEP_START):
            starts.setdefault(entry.step_key, entry.timestamp)
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            spans.append(StepSpan(run_id, entry.step_key, starts.pop(entry.step_key), entry.timestamp))
    return spans


def overlapping_pairs(spans: list[StepSpan]) -> list[tuple[StepSpan, StepSpan]]:
    ordered = sorted(spans, key=lambda s: s.start)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:] if b.start < a.end]


def lock_errors_in(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Every event-log text of the run (log lines, engine events, step failures) naming a DuckDB lock error."""
    found = []
    for entry in instance.all_logs(run_id):
        texts = [entry.user_message or ""]
        event = entry.dagster_event
        if event is not None:
            texts.append(event.message or "")
            if event.is_step_failure and event.step_failure_data.error:
                texts.append(event.step_failure_data.error.to_string())
        found += [t for t in texts if any(p in t for p in LOCK_ERRORS)]
    return found


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> Iterator[RunLauncher]:
    """The run launcher both tests fork their runs from: it imports the pipeline while the first test prepares its
    instance, sandbox and runs."""
    runs = RunLauncher(tmp_path_factory.mktemp("launcher"))
    try:
        yield runs
    finally:
        runs.close()


@pytest.fixture
def runs(launcher: RunLauncher) -> Iterator[RunLauncher]:
    """The launcher for one test: whatever of the test's runs is still running at its end is killed."""
    try:
        yield launcher
    finally:
        launcher.abandon()


@pytest.fixture(scope="module")
def pg_server(request) -> Iterator[Postgres]:
    """This file's share of the process's PostgreSQL server (tests/postgres.py): its databases, dropped at its end."""
    with file_server(request.config, "concurrency") as server:
        yield server


@pytest.fixture
def pg(pg_server: Postgres, request) -> Postgres:
    """A database of its own for each test's instance."""
    return pg_server.create_database(request.node.name.replace("[", "_").replace("]", "")[:60])


@pytest.fixture
def sandbox(monkeypatch):
    """Every platform; HubSpot's portal a month deep (~900 contacts): the HubSpot run is one writer among eight, and
    the launcher's 400-day portal (~20,000 contacts, paced at 100 requests / 10 s) only made it, and its reference
    run, half a minute longer."""
    import secrets

    from sandbox.hubspot_server import HubSpotServer
    from sandbox.launcher import Sandbox
    from sandbox.world import World
    from tests.sandboxes import start_servers

    world = World(seed=11, today=TODAY)
    with start_servers(world) as running, HubSpotServer(
            world, token="pat-sandbox-" + secrets.token_hex(16), requests_per_10s=190, search_per_second=10,
            history_days=30, bulk_import_size=0) as hubspot:
        everything = Sandbox(world, [*running.servers, hubspot])
        for name, value in everything.env.items():
            monkeypatch.setenv(name, value)
        yield everything


def reference_checksums(specs: list[RunSpec], reference: Path, seed: Path, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What the concurrent runs' file must hold: the same runs one after another in this process (from the HubSpot
    seed in the full version), in a file of their own; its tables' checksums."""
    if FULL:
        shutil.copyfile(seed, reference)
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(reference))
    monkeypatch.setenv("MKPI_ANALYST_DB", str(tmp_path / "reference-kpis.duckdb"))
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(tmp_path / "reference-dashboard.html"))
    run_reference(specs)
    expected = table_checksums(reference)
    assert any(t.startswith("kpi.") for t in expected) or not FULL
    return expected


@pytest.mark.battery("Concurrency")
def test_eight_runs_at_once_queue_for_the_file_and_lose_nothing(runs, sandbox, pg, tmp_path, monkeypatch):
    home, logs = tmp_path / "dagster_home", tmp_path / "logs"
    logs.mkdir()
    db, reference, seed = tmp_path / "concurrent.duckdb", tmp_path / "reference.duckdb", tmp_path / "seed.duckdb"
    launcher = runs.start(child_env(sandbox.env, home, db, tmp_path / "concurrent"), logs)
    write_instance_yaml(home, pg)
    specs = run_specs()
    assert len(specs) == 8
    if FULL:
        # HubSpot loaded first, as the 05:30 run does before the 06:00 refresh: kpi_daily's HubSpot rows are
        # rebuilt by the report sources' runs, so which of them ran after HubSpot would otherwise decide them.
        monkeypatch.setenv("MKPI_DUCKDB_PATH", str(seed))
        run_reference([RunSpec("seed", "hubspot_refresh_job")])

    for round_no in range(ROUNDS):
        db.unlink(missing_ok=True)
        if FULL:
            shutil.copyfile(seed, db)
        started = time.monotonic()
        for spec in specs:  # all eight before any wait
            launcher.launch(spec)
        if round_no == 0:
            # The sequential reference, in this process and its own file, while the eight runs queue for the
            # slot in theirs (the sandbox's answers do not depend on the order of reads: no restatement here).
            expected = reference_checksums(specs, reference, seed, tmp_path, monkeypatch)
        codes = launcher.wait(timeout=7200 if FULL else 900)  # a loaded 2-core machine: minutes per run
        elapsed = time.monotonic() - started
        assert set(codes) == {spec.label for spec in specs}, codes
        failed = {label: (logs / f"{label}.err").read_text()[-2000:] for label, code in codes.items() if code}
        assert not failed, failed

        run_ids = {label: json.loads((logs / f"{label}.out").read_text().strip().splitlines()[-1])["run_id"]
                   for label in codes}
        with dg.DagsterInstance.from_config(str(home)) as instance:
            records = {label: instance.get_run_by_id(run_id) for label, run_id in run_ids.items()}
            assert all(r is not None and r.status == dg.DagsterRunStatus.SUCCESS for r in records.values())
            lock_errors = [e for run_id in run_ids.values() for e in lock_errors_in(instance, run_id)]
            lock_errors += [line for label in codes for line in (logs / f"{label}.err").read_text().splitlines()
                            if any(p in line for p in LOCK_ERRORS)]
            spans = [span for spec in specs
                     for span in step_spans(instance, run_ids[spec.label], pool_steps(spec.job))]
            queued = sum(1 for run_id in run_ids.values() for entry in instance.all_logs(run_id)
                         if entry.dagster_event is not None
                         and f"blocked by limit for pool {POOL}" in (entry.dagster_event.message or ""))
        overlaps = overlapping_pairs(spans)
        battery.count("Concurrency", "runs launched at once", len(specs))
        battery.count("Concurrency", "pool steps", len(spans))
        battery.count("Concurrency", "lock errors", len(lock_errors))
        battery.count("Concurrency", "overlapping writers", len(overlaps))
        battery.count("Concurrency", "steps that queued for the slot", queued)
        battery.note("Concurrency", f"round {round_no + 1}: {len(specs)} runs ({'full' if FULL else 'short'}), "
                     f"{len(spans)} duckdb_write steps, {elapsed:.0f} s")
        assert lock_errors == []
        assert overlaps == []
        assert queued > 0  # the pool was in play: runs found the slot taken and waited, rather than failing
        # every run wrote: as many pool steps ran as the runs selected
        assert len(spans) >= len(specs)

        got = table_checksums(db)
        lost = sorted(t for t in expected if got.get(t) != expected[t])
        battery.count("Concurrency", "tables differing from the sequential load", len(lost))
        assert got == expected, lost


FREE_AFTER = 2  # free_slots_after_run_end_seconds in this test's dagster.yaml (the repository's is 300)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.battery("Concurrency")
def test_a_cancelled_run_gives_its_pool_slot_back(runs, pg, tmp_path):
    """A run killed while it holds the slot, then terminated from the UI (CANCELING, its worker gone): the
    daemon marks it CANCELED and, FREE_AFTER seconds later, frees its slot, and the run waiting behind it
    writes. Without the daemon the slot stays with the dead run."""
    from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG
    from sandbox.httpserver import FaultProfile
    from sandbox.world import World
    from tests.sandboxes import start_servers

    home, logs = tmp_path / "dagster_home", tmp_path / "logs"
    logs.mkdir()
    write_instance_yaml(home, pg, free_slots_after_run_end_seconds=FREE_AFTER, poll_interval_seconds=1,
                        cancel_timeout_seconds=1)
    tags = {RANGE_START_TAG: "2026-03-01", RANGE_END_TAG: "2026-03-02"}
    with start_servers(World(seed=11, today=TODAY)) as running, \
            dg.DagsterInstance.from_config(str(home)) as instance:
        ga4 = running.server("ga4")
        ga4.fault_profile = FaultProfile(seed=1, stall=1.0, stall_seconds=300)  # the holder's request hangs
        env = child_env(running.env, home, tmp_path / "work.duckdb", tmp_path)
        storage = instance.event_log_storage

        def holders() -> set[str]:
            return {slot.run_id for slot in storage.get_concurrency_info(POOL).claimed_slots}

        launcher = runs.start(env, logs)
        daemon = None
        try:
            launcher.launch(RunSpec("holder", "daily_refresh_job", tags, ["ga4/ecommerce_by_date"]))
            try:
                holder_id = next(iter(wait_for(holders, 300, "the first run to claim the duckdb_write slot")))
                wait_for(lambda: ga4.request_count > 0, 300, "the holder's step to reach the (stalled) GA4 API")
            finally:
                launcher.kill("holder")  # a crash: no finally, no slot release
            wait_for(lambda: not launcher.running("holder"), 60, "the killed holder's process to end")
            instance.report_run_canceling(instance.get_run_by_id(holder_id), "Terminate pressed; the worker is gone")
            canceled_at = time.monotonic()
            ga4.fault_profile = None

            launcher.launch(RunSpec("waiter", "daily_refresh_job", tags, ["ga4/ecommerce_by_date"]))
            waiter_id = wait_for(lambda: [r.run_id for r in instance.get_runs() if r.run_id != holder_id], 300,
                                 "the second run to start")[0]
            wait_for(lambda: any(waiter_id == s.run_id for s in storage.get_concurrency_info(POOL).pending_steps),
                     300, "the second run to queue for the slot")
            # the behaviour under test, not a synchronisation: past free_slots_after_run_end_seconds after the
            # cancellation (the waiter's start counts), a dead run's slot is still held; only the daemon frees it
            time.sleep(max(0.0, canceled_at + FREE_AFTER + 1 - time.monotonic()))
            assert holders() == {holder_id}
            assert launcher.running("waiter")
            daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "--empty-workspace"],
                                      cwd=tmp_path, env=env, stdout=(logs / "daemon.out").open("w"),
                                      stderr=subprocess.STDOUT, start_new_session=True)
            codes = launcher.wait(timeout=300)
            assert codes == {"holder": -signal.SIGKILL, "waiter": 0}, (codes, (logs / "waiter.err").read_text()[-2000:])
        finally:
            launcher.abandon()
            if daemon is not None and daemon.poll() is None:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(timeout=60)

        canceled = instance.get_run_record_by_id(holder_id)
        assert canceled.dagster_run.status == dg.DagsterRunStatus.CANCELED
        (span,) = step_spans(instance, waiter_id, {"ga4__ecommerce_by_date"})
        waited = span.start - canceled.end_time
        battery.count("Concurrency", "cancelled runs whose slot came back", 1)
        battery.note("Concurrency", f"a killed, cancelled run's slot went to the waiting run {waited:.0f} s after the "
                     f"cancellation (free_slots_after_run_end_seconds={FREE_AFTER})")
        # freed by the daemon's timer, not before; then the waiting step claims it (its claim polling backs
        # off to 15 s between tries)
        assert FREE_AFTER <= waited <= FREE_AFTER + 45
        assert holders() == set()
