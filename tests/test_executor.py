"""The code location's executor (pipelines/lib/executor.py): a launched run's steps are forks of one server that has
imported the pipeline, and that server is safe to fork.

Why: each step of a launched run used to be a fresh interpreter importing dagster and the pipeline (about 2 CPU-s a
step). The steps must still run in their own processes (a crash stays a step failure), a run may still ask for the
in-process executor or its own start method, and the server they fork from must hold no thread, socket, gRPC channel
or DuckDB file a fork would copy half-way.

Each run here is executed in its own process, as the run launcher starts a run worker: the forkserver a run starts
lives as long as that process and keeps that process's environment, so it is never shared between runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from pipelines.lib.executor import PIPELINE_EXECUTOR, PRELOAD_MODULES, with_forkserver
from tests.tmpfs import NO_COMPUTE_LOGS, instance_in_memory, memory_folder

REPO = Path(__file__).resolve().parents[1]
OUT_VARIABLE = "MKPI_TEST_EXECUTOR_OUT"


def _where(name: str) -> None:
    """What a step sees of its process: its pid, its parent's, and whether the pipeline was imported before it."""
    out = Path(os.environ[OUT_VARIABLE])
    (out / f"{name}.json").write_text(json.dumps({
        "pid": os.getpid(), "ppid": os.getppid(), "preloaded": "pipelines.definitions" in sys.modules}))


@dg.asset
def first() -> None:
    _where("first")


@dg.asset(deps=[first])
def second() -> None:
    _where("second")


TINY = dg.Definitions(assets=[first, second], jobs=[dg.define_asset_job("tiny")], executor=PIPELINE_EXECUTOR)


def tiny_job() -> dg.JobDefinition:
    return TINY.resolve_job_def("tiny")


def _what_the_preload_holds() -> dict[str, Any]:
    """After importing what the server preloads (the same imports it makes, in this fresh process): the Python
    threads running, the sockets and DuckDB files open, whether a gRPC channel module was loaded."""
    for name in PRELOAD_MODULES:
        __import__(name)
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return {"threads": [t.name for t in threading.enumerate()], "grpc_channels": "grpc._channel" in sys.modules,
            "sockets_or_duckdb": [fd for fd in fds if fd.startswith("socket:") or ".duckdb" in fd]}


def run_worker(home: str, out_root: str) -> None:
    """Two runs of the two-step job in this process (a run worker): Dagster's default run config, then one asking
    for the in-process executor; each run's steps write what they saw under its own directory."""
    out = Path(out_root)
    preloaded = _what_the_preload_holds()
    ran = {}
    with dg.DagsterInstance.local_temp(home, overrides=NO_COMPUTE_LOGS) as instance:  # no step output is read
        for mode, run_config in (("default", {}), ("in_process", {"execution": {"config": {"in_process": {}}}})):
            os.environ[OUT_VARIABLE] = str(out / mode)  # read by the in-process steps (forked ones were told below)
            result = dg.execute_job(dg.reconstructable(tiny_job), instance=instance, run_config=run_config,
                                    raise_on_error=False)
            ran[mode] = result.success
    print(json.dumps({"pid": os.getpid(), "success": ran, "preload": preloaded}))


def test_launched_steps_are_forks_of_one_preloaded_server(tmp_path: Path) -> None:
    """Dagster's default run config: each step its own process, forked from one server (not the run worker) that had
    imported the pipeline. A run asking for the in-process executor still runs its steps in the worker."""
    out = tmp_path / "out"
    for mode in ("default", "in_process"):
        (out / mode).mkdir(parents=True)
    # the instance on tmpfs where there is one (tests/tmpfs.py): SQLite's fsync per event is a wait on the disk
    with memory_folder("mkpi-executor-") as home:
        code = f"from tests.test_executor import run_worker; run_worker({home!r}, {str(out)!r})"
        # the forkserver keeps the environment of its start (the first run): the default run's directory
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, OUT_VARIABLE: str(out / "default")})
    assert done.returncode == 0, done.stderr[-3000:]
    worker = json.loads(done.stdout.strip().splitlines()[-1])
    assert worker["success"] == {"default": True, "in_process": True}, done.stderr[-3000:]
    # what the server imports starts no thread and opens no socket, gRPC channel or DuckDB file (steps open them)
    assert worker["preload"] == {"threads": ["MainThread"], "grpc_channels": False, "sockets_or_duckdb": []}, worker
    steps = {p.stem: json.loads(p.read_text()) for p in (out / "default").glob("*.json")}
    assert set(steps) == {"first", "second"}
    servers = {s["ppid"] for s in steps.values()}
    assert len(servers) == 1 and worker["pid"] not in servers  # one server, not the worker itself
    assert all(s["pid"] not in (worker["pid"], s["ppid"]) for s in steps.values())  # each step its own process
    assert all(s["preloaded"] for s in steps.values())  # the pipeline was imported once, by the server

    in_process = {p.stem: json.loads(p.read_text()) for p in (out / "in_process").glob("*.json")}
    assert set(in_process) == {"first", "second"} and {s["pid"] for s in in_process.values()} == {worker["pid"]}


def test_the_default_config_only_gains_the_start_method() -> None:
    defaults = {"multiprocess": {"max_concurrent": None, "retries": {"enabled": {}}}}
    assert with_forkserver(defaults) == {"multiprocess": {
        "max_concurrent": None, "retries": {"enabled": {}},
        "start_method": {"forkserver": {"preload_modules": ["pipelines.definitions"]}}}}
    assert with_forkserver({"in_process": {"retries": {"enabled": {}}}}) == {"in_process": {"retries": {"enabled": {}}}}
    spawn = {"multiprocess": {"max_concurrent": 1, "start_method": {"spawn": {}}}}
    assert with_forkserver(spawn) == spawn  # a run naming its start method keeps it (tests/test_concurrency.py)
    assert PIPELINE_EXECUTOR.name == dg.multi_or_in_process_executor.name


@dg.asset(pool="test_pool")
def writer() -> None:
    """A step in a one-slot pool, as the pipeline's DuckDB writers are in `duckdb_write`."""


WRITER = dg.Definitions(assets=[writer], jobs=[dg.define_asset_job("w")])


def writer_job() -> dg.JobDefinition:
    return WRITER.resolve_job_def("w")


@pytest.mark.parametrize("executor_config", ["in_process", "multiprocess"])
def test_a_run_waiting_for_the_pool_slot_sleeps_between_claims(monkeypatch: pytest.MonkeyPatch,
                                                                executor_config: str) -> None:
    """A run whose step waits for a slot another run holds re-checks its claim a few times, not in a loop spinning a
    core, and gets the slot once it is freed: with the in-process executor (`mkpi backfill`, the demo) and the
    multiprocess one (launched runs; its step spawned here, so that no forkserver outlives the test)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

    from pipelines.lib import executor

    executor.install()
    checks = []
    original = InstanceConcurrencyContext.claim

    def counted(self: InstanceConcurrencyContext, *args: object, **kwargs: object) -> bool:
        checks.append(time.monotonic())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(InstanceConcurrencyContext, "claim", counted)
    overrides = {"concurrency": {"pools": {"granularity": "op", "default_limit": 1}}}
    with instance_in_memory(overrides) as instance:  # no compute-log processes: the run's loop is what is watched
        storage = instance.event_log_storage
        storage.set_concurrency_slots("test_pool", 1)
        assert storage.claim_concurrency_slot("test_pool", "another-run", "its-step").is_claimed
        with ThreadPoolExecutor(1) as pool:
            if executor_config == "in_process":
                run = pool.submit(writer_job().execute_in_process, instance=instance, raise_on_error=False)
            else:
                spawn = {"execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}}
                run = pool.submit(dg.execute_job, dg.reconstructable(writer_job), instance=instance,
                                  run_config=spawn, raise_on_error=False)
            def queued() -> bool:  # the run's step waits for the slot (pending_steps also lists the holder's)
                return any(s.run_id != "another-run" for s in storage.get_concurrency_info("test_pool").pending_steps)

            try:
                deadline = time.monotonic() + 60
                while not queued() and time.monotonic() < deadline:
                    time.sleep(0.05)
                asked = len(checks)
                time.sleep(1.5)  # the behaviour under test: the queued run's loop during 1.5 s of waiting
                waiting = len(checks)
            finally:  # the run gets the slot even when a check fails: the pool's thread must end
                storage.free_concurrency_slots_for_run("another-run")
            result = run.result(timeout=60)
    assert asked >= 1, "the run had not asked for the slot within 60 s"
    assert result.success
    # the executor's loop asked for the slot at 0 and ~1 s (Dagster's back-off) and slept between; spinning, it
    # asked about 100,000 times a second (claim() returns early until the back-off has passed)
    assert 1 <= waiting <= 10, waiting
