"""Runs whose process is gone, and the `duckdb_write` slot they hold (issue #19 item 3).

Why: every DuckDB writer is in pool `duckdb_write`, which has ONE slot. A run keeps its slot until Dagster is told
it ended; a `mkpi backfill` killed with `kill -9` (or by the OOM killer, or a closed laptop lid) is never told, so
its run stays STARTED and holds the slot forever, and every later run waits for it without a word. Dagster's
run monitoring does not help here: the runs `mkpi` executes in its own process have no run launcher to ask about
their worker, and the default launcher has no worker health check (dagster 1.13.27,
`dagster/_core/launcher/default_run_launcher.py`: no `check_run_worker_health`).

So the process that executes a run records itself on the run (host, PID and the PID's start time, tags below),
and a sweep marks a run whose recorded process no longer exists as failed and frees its slots
(`free_concurrency_slots_for_run`, which also hands a freed slot to the next waiting step). `mkpi backfill` sweeps
before it starts and again while one of its steps waits for the slot. Only runs recorded on THIS host are judged:
a PID means nothing on another machine (a service's run workers are left to its daemon's run monitoring,
`deploy/dagster.yaml`). The start time guards against a reused PID: a new process with the dead run's PID does
not keep the dead run alive. The tags also name the run they were written for: Dagster copies a run's tags to
its re-executions (the UI's re-execute, the daemon's run retries: `use_parent_run_tags`), and a live re-execution
must not be judged by its dead parent's process.

Also here: who holds the pool's slot, in words, so a waiting run can say what it waits for.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipelines.lib.partition_status import mark_runs

HOST_TAG = "mkpi/host"
PID_TAG = "mkpi/pid"
PID_START_TAG = "mkpi/pid_start"  # the process's start time in clock ticks since boot (/proc/<pid>/stat field 22)
RUN_TAG = "mkpi/pid_run"  # the run the three tags above were written for (not a re-execution that copied them)
# Runs that may still hold a slot or be waiting for one: not yet ended.
UNFINISHED = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
              dg.DagsterRunStatus.CANCELING)


def owner_tags(run_id: str) -> dict[str, str]:
    """Tags naming this process as the one executing run `run_id`: a sweep on this host can tell when it is gone."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), RUN_TAG: run_id}
    started = _start_ticks(os.getpid())
    if started is not None:
        tags[PID_START_TAG] = started
    return tags


def _start_ticks(pid: int) -> str | None:
    """When the process started, from /proc/<pid>/stat (Linux; None elsewhere). Field 22, counted after the
    command name, which may itself hold spaces and parentheses (proc(5): `starttime`)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None  # fields[0] is field 3 (state)


def process_alive(pid: int, start_ticks: str | None = None) -> bool:
    """Whether process `pid` of this host exists and is the one that started the run (same start time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start_ticks is None:
        return True
    current = _start_ticks(pid)
    return current is None or current == start_ticks


@dataclass(frozen=True)
class Owner:
    """The process a run was recorded by (tags), if any."""

    host: str
    pid: int
    start_ticks: str | None

    @classmethod
    def of(cls, run: dg.DagsterRun) -> Owner | None:
        """The process recorded for this very run; None when none was, or the tags were copied from another run."""
        host, pid = run.tags.get(HOST_TAG), run.tags.get(PID_TAG)
        if not host or not pid or not pid.isdigit() or run.tags.get(RUN_TAG) != run.run_id:
            return None
        return cls(host, int(pid), run.tags.get(PID_START_TAG))

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    def gone(self) -> bool:
        """True only when the process was on this host and no longer exists (a remote one is never judged)."""
        return self.local and not process_alive(self.pid, self.start_ticks)

    def describe(self) -> str:
        return f"process {self.pid}" + ("" if self.local else f" on host {self.host}")


@dataclass(frozen=True)
class SweptRun:
    """A run found with its process gone: what it was, and what the sweep did."""

    run_id: str
    source: str | None
    status: str
    owner: Owner
    slots_freed: int

    def describe(self) -> str:
        what = f"{self.source} " if self.source else ""
        return (f"{what}run {self.run_id[:8]} was left {self.status} by {self.owner.describe()}, which is gone "
                f"(killed?): marked failed, {self.slots_freed} duckdb_write slot(s) freed")


def sweep_stale_runs(instance: dg.DagsterInstance, source_tag: str = "mkpi/source") -> list[SweptRun]:
    """Mark every unfinished run whose recorded process (on this host) is gone as failed (canceled when it was
    being canceled), and free its pool slots. Returns what was swept; a no-op on an ephemeral instance."""
    if instance.is_ephemeral:
        return []
    swept: list[SweptRun] = []
    here = dg.RunsFilter(statuses=list(UNFINISHED), tags={HOST_TAG: socket.gethostname()})
    for run in instance.get_runs(filters=here):
        owner = Owner.of(run)
        if owner is None or not owner.gone():
            continue
        held = _slots_held(instance, run.run_id)
        message = (f"{owner.describe()}, which executed this run, is gone (killed, or its machine restarted): marked "
                   f"by a stale-run sweep of process {os.getpid()} at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message)
        else:
            instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        mark_runs(instance, [run.run_id])  # its planned days not materialised show failed (partition_status.py)
        swept.append(SweptRun(run.run_id, run.tags.get(source_tag), run.status.value, owner, held))
    return swept


def _slots_held(instance: dg.DagsterInstance, run_id: str) -> int:
    """How many pool slots (any pool) a run holds now."""
    storage = instance.event_log_storage
    try:
        return sum(1 for key in storage.get_concurrency_keys()
                   for slot in storage.get_concurrency_info(key).claimed_slots if slot.run_id == run_id)
    except NotImplementedError:  # storage without pools
        return 0


@dataclass(frozen=True)
class SlotHolder:
    """A run holding a slot of a pool, described for someone waiting behind it."""

    run_id: str
    step_key: str
    source: str | None
    status: str | None
    started: datetime | None
    owner: Owner | None

    def describe(self) -> str:
        parts = [f"run {self.run_id[:8]}"]
        if self.source:
            parts.append(f"source {self.source}")
        parts.append(f"step {self.step_key}")
        if self.status:
            parts.append(self.status)
        if self.started:
            parts.append(f"since {self.started.astimezone():%H:%M:%S}")
        if self.owner is not None:
            parts.append(f"mkpi {self.owner.describe()}")
        return ", ".join(parts)


def slot_holders(instance: dg.DagsterInstance, pool: str, source_tag: str = "mkpi/source") -> list[SlotHolder]:
    """Who holds `pool`'s slots now: run, source, step, status, since when and which process."""
    holders = []
    for slot in instance.event_log_storage.get_concurrency_info(pool).claimed_slots:
        record = instance.get_run_record_by_id(slot.run_id)
        run = record.dagster_run if record else None
        started = record.start_time if record else None
        holders.append(SlotHolder(
            run_id=slot.run_id, step_key=slot.step_key, source=run.tags.get(source_tag) if run else None,
            status=run.status.value if run else None,
            started=datetime.fromtimestamp(started, UTC) if started else None,
            owner=Owner.of(run) if run else None))
    return holders
