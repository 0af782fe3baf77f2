"""`mkpi backfill`: the run driver. One Dagster run per source, with progress, a summary and failures that say
what to fix; Ctrl-C or SIGTERM cancels the run and frees its writer slot.

Dagster is imported inside the functions that run something, so `mkpi --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from connectors import registry
from connectors.http import redact
from connectors.settings import Settings
from pipelines.cli.common import (
    FAIL,
    OBJECTIVES_FIX,
    OK,
    CliError,
    RunInterrupted,
    first_line,
    known_secrets,
    make_console,
)
from pipelines.lib.preflight import check_run_inputs

if TYPE_CHECKING:
    import dagster as dg

log = logging.getLogger("mkpi.cli")

# google-api-core puts the request URL before the platform's message: noise in a one-line error
_URL_PREFIX = re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE) https?://\S+: ")


@dataclass
class SourceRun:
    """One source's run as the summary reports it (rows and requests read from materialisation metadata)."""

    source: str
    job: str
    run_id: str
    success: bool = False
    rows: int = 0
    kpi_rows: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    failures: list[StepFailure] = field(default_factory=list)


def configured_sources(settings: Settings) -> list[str]:
    """The sources the user configured (the registry's rule), in run order: a partial set-up is run, and its connector
    says what is missing."""
    return list(registry.configured(settings))


def _validate_window(start: date, end: date, settings: Settings) -> None:
    """Refuse what Dagster's daily partitions would refuse, in words: the range must lie within the partitions."""
    if start > end:
        raise CliError(f"--start {start} is after --end {end}: the range is inclusive, start first", code=2)
    if start < settings.start_date:
        raise CliError(f"--start {start} is before the first partition ({settings.start_date}): pick a later day "
                       "or lower start_date (MKPI_START_DATE)", code=2)
    yesterday = datetime.now(settings.tz).date() - timedelta(days=1)
    if end > yesterday:
        raise CliError(f"--end {end} is after yesterday ({yesterday} in {settings.reporting_timezone}), the last "
                       "complete day: pick an earlier end", code=2)


def summarise_run(run: SourceRun, events: Iterable[Any]) -> SourceRun:
    """Rows and request counters from a run's materialisations.

    A range run records one materialisation per partition with the same metadata, and a multi-asset step reports
    its connector's counters on every asset: rows are counted once per asset, requests once per step."""
    rows: dict[str, int] = {}
    kpi_rows: dict[str, int] = {}
    requests: dict[str, int] = {}
    retries: dict[str, int] = {}
    for event in events:
        mat = event.event_specific_data.materialization
        key = mat.asset_key.path
        metadata = mat.metadata

        def number(name: str, metadata: Any = metadata) -> int | None:
            value = metadata.get(name)
            raw = getattr(value, "value", value)
            return int(raw) if isinstance(raw, int | float) else None

        count = number("dagster/row_count")
        if key[0] == run.source and count is not None:
            rows[mat.asset_key.to_user_string()] = count
        elif key[0] == "kpi" and key[-1] != "kpi_vs_objective" and count is not None:
            kpi_rows[mat.asset_key.to_user_string()] = count
        step = event.step_key or mat.asset_key.to_user_string()
        if key[0] == run.source:
            requests[step] = max(requests.get(step, 0), number("requests") or 0)
            retries[step] = max(retries.get(step, 0), number("retries") or 0)
    run.rows = sum(rows.values())
    run.kpi_rows = sum(kpi_rows.values())
    run.requests = sum(requests.values())
    run.retries = sum(retries.values())
    return run


@dataclass(frozen=True)
class StepFailure:
    """One failed step (or the run itself): the error's class and first line, and what kind of problem it is."""

    where: str
    cls: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.cls + ': ' if self.cls else ''}{self.message}"

    @property
    def kind(self) -> str:
        return failure_kind(self.cls, self.message)


# What to do about a failed run, by kind of failure (issue #19 item 4: the fix matches the error, it does not
# always blame an account). `{analyst}` is the analysts' copy.
FAILURE_FIXES = {
    "configuration": "correct the file and key named above (docs/configuration.md lists them; `mkpi doctor` checks "
                     "both files); nothing was requested",
    "lock": "close the program named above, which has the working DuckDB file open (a notebook, BI tool or DuckDB "
            "CLI): analysts read the analysts' copy {analyst}, never the working file",
    "disk": "free space on the disk named above, or point MKPI_DUCKDB_PATH / MKPI_ANALYST_DB to a disk with room; "
            "nothing half-written was kept",
    "platform": "the error above names the account and what to change (`mkpi doctor` checks access)",
    "other": "`mkpi --debug backfill ...` shows the step logs and the traceback",
}
_CONFIG_ERRORS = frozenset({"ConfigError", "ObjectiveError", "CatalogueError"})
_PLATFORM_ERRORS = frozenset({"SourceError", "InvalidResponse", "RetriesExhausted"})


def failure_kind(cls: str, message: str) -> str:
    """configuration, lock, disk, platform or other, from the error's class and message."""
    from connectors.publish import is_disk_full

    if cls in _CONFIG_ERRORS:
        return "configuration"
    if cls == "WorkingFileLocked" or "Could not set lock on file" in message:
        return "lock"
    if cls == "DiskFull" or is_disk_full(Exception(message)):
        return "disk"
    if cls in _PLATFORM_ERRORS or (cls == "Failure" and "accounts failed" in message):
        return "platform"
    return "other"


def failures_of(result: Any) -> list[StepFailure]:
    """Each failed step and the first line of its error (the connector's message, not Dagster's wrapper)."""
    found: list[StepFailure] = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error, where = event.step_failure_data.error, f"step {event.step_key}"
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":  # a resource's setup refused the run (preflight)
            error, where = getattr(event.event_specific_data, "error", None), "run setup"
        else:
            continue
        found.append(_step_failure(where, error) if error is not None else StepFailure(where, "", "failed"))
    if not found and not result.success:
        for event in result.all_events:
            if event.event_type_value == "RUN_FAILURE":
                found.append(StepFailure("run", "", first_line(event.message or "failed")))
    if not found and not result.success:
        found.append(StepFailure("run", "", "failed without a step error (see `mkpi --debug backfill`)"))
    return found


def _step_failure(where: str, error: Any) -> StepFailure:
    """The innermost error of Dagster's wrappers (a resource error wraps the ObjectiveError that caused it)."""
    inner = error
    while inner.cause is not None and (inner.cls_name or "").startswith("Dagster"):
        inner = inner.cause
    cls = (inner.cls_name or "").rsplit(".", 1)[-1]
    message = _URL_PREFIX.sub("", first_line(inner.message))
    if ": " in message and message.split(": ", 1)[0].rsplit(".", 1)[-1] == cls:
        message = message.split(": ", 1)[1]
    return StepFailure(where, cls, message)


def _step_count(job: dg.JobDefinition, keys: Sequence[dg.AssetKey] | None) -> int | None:
    """How many steps the run will execute (ops plus separate check ops), for the progress bar's total."""
    try:
        subset = job.get_subset(asset_selection=set(keys)) if keys else job
        return len(subset.graph.nodes)
    except Exception:  # noqa: BLE001 - only the bar's total depends on it
        log.debug("step count unavailable", exc_info=True)
        return None


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """The DAGSTER_HOME instance when set (runs show in `make dev`), else an ephemeral one, as `make demo` does."""
    import dagster as dg

    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    with instance:
        yield instance


def cmd_backfill(args: argparse.Namespace, debug: bool) -> int:
    """One Dagster run per source (the schedule's own selection: raw assets, KPI tables, objectives, analysts' copy).

    One source at a time keeps the progress honest (a bar per source, advanced as its steps finish) and lets a
    failing source leave the others' KPIs rebuilt, as the daily schedule does. Before the first run: both files
    are checked (nothing is requested on a configuration that would fail later) and runs a killed `mkpi` left
    holding the writer slot are swept (pipelines/lib/stale_runs.py)."""
    settings = _checked_inputs()
    _validate_window(args.start, args.end, settings)
    sources = _sources_to_backfill(args.sources, settings)

    from pipelines.definitions import defs
    from pipelines.defs.schedules import REFRESHES
    from pipelines.lib.stale_runs import sweep_stale_runs

    keys_of = {r.source: r.asset_keys() for r in REFRESHES}
    out = make_console()
    # Dagster's console log repeats every failure with its stack trace: the summary names them in one line instead
    log_level = "DEBUG" if debug else "CRITICAL"
    runs: list[SourceRun] = []
    out.print(Text(f"Backfill {args.start} .. {args.end}: {', '.join(sources)} -> {settings.warehouse.location}"))
    if "hubspot" in sources:
        out.print(Text("HubSpot is incremental: it reads what changed since its cursors, whatever the dates.",
                       style="dim"))
    with dagster_instance() as instance:
        for swept in sweep_stale_runs(instance):
            out.print(Text(f"Freed the writer slot of a dead run: {swept.describe()}.", style="yellow"))
        jobs = {s: defs.resolve_job_def("hubspot_refresh_job" if s == "hubspot" else "daily_refresh_job")
                for s in sources}
        progress = Progress(SpinnerColumn(), TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("steps"), TimeElapsedColumn(), TextColumn("[dim]{task.fields[step]}"),
                            console=out)
        tasks = {s: progress.add_task(s, total=_step_count(jobs[s], keys_of.get(s)), step="waiting", start=False)
                 for s in sources}
        with progress:
            for source in sources:
                runs.append(_run_source(source, jobs[source], keys_of.get(source), instance, progress,
                                        tasks[source], args.start, args.end, log_level))
            kinds = {f.kind for r in runs for f in r.failures}
            if not all(r.success for r in runs) and not kinds & {"lock", "configuration", "disk"}:
                # a failed run skipped its publish steps: publish what is good, with the failed source's status
                # (not when the working file is locked, the configuration wrong or the disk full: it would fail too)
                task = progress.add_task("publish", total=None, step="waiting", start=False)
                runs.append(_run_source("publish", defs.resolve_job_def("publish_job"), None, instance, progress,
                                        task, args.start, args.end, log_level))
        ephemeral = instance.is_ephemeral
    _print_backfill_summary(out, runs, ephemeral)
    failed = [r for r in runs if not r.success]
    if failed:
        _print_failures(failed, settings)
        return 1
    return 0


def _checked_inputs() -> Settings:
    """The configuration and the objectives file, checked before anything runs (issue #19 item 11)."""
    from kpi_models.objectives import ObjectiveError

    try:
        return check_run_inputs()
    except ObjectiveError as exc:
        raise CliError(f"objectives: {exc}", OBJECTIVES_FIX) from exc


def _sources_to_backfill(requested: Sequence[str] | None, settings: Settings) -> list[str]:
    """The --source values (each must be configured), else every configured source, in run order."""
    wanted = list(dict.fromkeys(requested or []))
    if wanted:
        available = set(configured_sources(settings))
        missing = [s for s in wanted if s not in available]
        if missing:
            first = missing[0]
            raise CliError(f"{registry.source(first).label} is not configured, so it cannot be backfilled",
                           f"{registry.source(first).setup} (`mkpi doctor` checks every platform)")
        return [s for s in registry.codes() if s in wanted]
    sources = configured_sources(settings)
    if not sources:
        raise CliError("no platform is configured, so there is nothing to backfill",
                       "configure at least one platform (`mkpi doctor` says which variables to set), or try "
                       "`mkpi demo` on the local sandbox")
    return sources


def _print_failures(failed: Sequence[SourceRun], settings: Settings) -> None:
    """Each failure in one line, then one `fix:` line per kind of failure (configuration, lock, disk, platform)."""
    err = make_console(stderr=True)
    secrets = known_secrets(settings)
    kinds: list[str] = []
    for run in failed:
        for failure in run.failures:
            err.print(Text(f"mkpi: {run.source} failed at {redact(str(failure), secrets)}", style="bold red"))
            kinds.append(failure.kind)
    for kind in dict.fromkeys(kinds or ["other"]):
        fix = FAILURE_FIXES[kind].format(analyst=settings.analyst_db)
        err.print(Text(f"fix: {redact(fix, secrets)}; re-running is safe, every write replaces its window"))


def _run_source(source: str, job: dg.JobDefinition, keys: Sequence[dg.AssetKey] | None,
                instance: dg.DagsterInstance, progress: Progress, task: Any, start: date, end: date,
                log_level: str) -> SourceRun:
    """Execute one source's run in process, advancing its bar from the run's own step events.

    The run executes in a thread so that this (main) thread stays free to say what a waiting step waits for, and
    to stop on Ctrl-C or SIGTERM: Dagster defers both signals while it executes a run in the main thread, and never
    looks at them while a step waits for a pool slot (dagster 1.13.27: capture_interrupts in
    `_core/execution/api.py`; the in-process executor's loop in `_core/execution/plan/execute_plan.py`), so a
    waiting `mkpi` could not be stopped."""
    from pipelines.defs.schedules import SOURCE_TAG, range_tags
    from pipelines.lib.stale_runs import owner_tags

    run = SourceRun(source=source, job=job.name, run_id=str(uuid.uuid4()))
    wait = PoolWait(source, run.run_id, instance, progress, task)

    def on_event(entry: Any) -> None:
        # Called by the instance for every event of this run, synchronously: never let the bar break the run.
        try:
            event = entry.dagster_event if entry.is_dagster_event else None
            if event is None or event.step_key is None:
                return
            kind = event.event_type_value
            if kind == "ENGINE_EVENT" and "blocked by limit for pool" in (event.message or ""):
                wait.blocked(event.step_key)
            elif kind == "STEP_START":
                wait.started(event.step_key)
                progress.update(task, step=event.step_key)
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                progress.advance(task)
        except Exception:  # noqa: BLE001
            log.debug("progress update failed", exc_info=True)

    try:  # DagsterInstance.add_event_listener: without it the bar only jumps to done at the end
        instance.add_event_listener(run.run_id, on_event)
    except AttributeError:
        log.debug("no event listener on this Dagster instance: the progress bar will not move during the run")
    progress.start_task(task)
    # the owner tags let a later `mkpi` free this run's writer slot if this process is killed (stale_runs.py)
    tags = {SOURCE_TAG: source, "mkpi/trigger": "cli", **owner_tags(run.run_id)}
    if job.partitions_def is not None:  # a report source's window; HubSpot and publish runs have none
        tags.update(range_tags(start, end))
    began = time.monotonic()
    result = execute_interruptibly(
        lambda: job.execute_in_process(
            instance=instance, run_id=run.run_id, tags=tags, raise_on_error=False,
            asset_selection=list(keys) if keys else None,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}}),
        instance, run.run_id, source, on_tick=wait.tick)
    run.seconds = time.monotonic() - began
    run.success = result.success
    run.failures = failures_of(result)
    summarise_run(run, result.get_asset_materialization_events())
    task_total = next(t.total for t in progress.tasks if t.id == task)
    progress.update(task, completed=task_total or 1, total=task_total or 1,
                    description=f"{source} {OK if run.success else FAIL}", step="done" if run.success else "failed")
    progress.stop_task(task)
    return run


# How often the main thread looks at a running run: to stop it on a signal, and to update a waiting step's line.
TICK_SECONDS = 0.5
# While a step waits for the writer slot: how often to look for a dead holder, and to repeat the waiting line.
SWEEP_EVERY_SECONDS = 10.0
SAY_EVERY_SECONDS = 60.0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (a service manager's stop, `kill`, a Kubernetes pod's end)."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Raise _Terminated in the main thread on SIGTERM, for the duration of a run (the previous handler after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute_interruptibly(execute: Callable[[], Any], instance: dg.DagsterInstance, run_id: str, label: str,
                          on_tick: Callable[[], None] = lambda: None) -> Any:
    """`execute()` (one Dagster run) in a worker thread, while this thread calls `on_tick` every TICK_SECONDS.

    On Ctrl-C or SIGTERM the run is marked canceled and its pool slots (held or waited for) are freed, then
    RunInterrupted is raised: the instance is left consistent, and no later run waits for this one."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = execute()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as it is
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"mkpi-run-{run_id[:8]}", daemon=True)
    with _sigterm_as_interrupt():
        worker.start()
        try:
            while worker.is_alive():
                worker.join(TICK_SECONDS)
                on_tick()
        except KeyboardInterrupt as exc:
            why, code = ("SIGTERM", 143) if isinstance(exc, _Terminated) else ("Ctrl-C", 130)
            done = cancel_run(instance, run_id, f"mkpi stopped by {why}")
            raise RunInterrupted(f"stopped by {why}: {label} run {run_id[:8]} {done}", code,
                                 worker.is_alive()) from None
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def cancel_run(instance: dg.DagsterInstance, run_id: str, why: str) -> str:
    """Mark an unfinished run canceled and free the pool slots it holds or waits for; says what was done."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return "had not started"
    if run.is_finished:
        return f"had already ended ({run.status.value})"
    instance.report_run_canceled(run, f"{why}; the run's pool slots were freed by the same process")
    try:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    except NotImplementedError:  # a storage without pools
        pass
    return "marked canceled, its writer slot (held or awaited) given back"


class PoolWait:
    """Says what a run's step waits for (the `duckdb_write` slot, held by which run of which process) and for how
    long: a line when the wait starts, again every SAY_EVERY_SECONDS and whenever the holder changes, and the
    progress bar's text every tick. While waiting it also sweeps runs whose process died (stale_runs.py), so a
    slot held by a killed `mkpi` comes back within SWEEP_EVERY_SECONDS instead of never."""

    def __init__(self, source: str, run_id: str, instance: dg.DagsterInstance, progress: Progress,
                 task: Any) -> None:
        self.source, self.run_id, self.instance, self.progress, self.task = source, run_id, instance, progress, task
        self.since: float | None = None  # set by the worker thread's event listener
        self.step: str | None = None
        self._said_at = self._swept_at = 0.0
        self._holders = ""

    def blocked(self, step_key: str) -> None:
        """The run's step found the pool's slot taken (Dagster's 'Step blocked by limit for pool' event)."""
        if self.since is None:
            self.since, self.step = time.monotonic(), step_key

    def started(self, step_key: str) -> None:
        """A step started: if it was the waiting one, say how long it waited."""
        if self.since is not None and step_key == self.step:
            waited = time.monotonic() - self.since
            self.since = None
            self.progress.console.print(Text(f"{self.source}: got the writer slot after {_duration(waited)}",
                                             style="dim"))

    def tick(self) -> None:
        """Main thread, every TICK_SECONDS: while waiting, update the bar; sweep and re-say from time to time."""
        since = self.since
        if since is None:
            return
        from pipelines.lib.partitions import DUCKDB_POOL
        from pipelines.lib.stale_runs import slot_holders, sweep_stale_runs

        now = time.monotonic()
        try:
            if now - self._swept_at >= SWEEP_EVERY_SECONDS:
                self._swept_at = now
                for swept in sweep_stale_runs(self.instance):
                    self.progress.console.print(Text(f"Freed the writer slot of a dead run: {swept.describe()}.",
                                                     style="yellow"))
                found = [h for h in slot_holders(self.instance, DUCKDB_POOL) if h.run_id != self.run_id]
                holders = "; ".join(h.describe() for h in found) or "no run now (the slot is being handed over)"
                if any(h.owner is None or not h.owner.local for h in found):  # not a run this host can judge
                    holders += (" (if its process is gone, terminate the run in the Dagster UI: run monitoring then "
                                "frees its slot)")
                if holders != self._holders:
                    self._holders, self._said_at = holders, 0.0
        except Exception:  # noqa: BLE001 - the wait report must never break the run
            log.debug("could not read the pool's holders", exc_info=True)
        waited = _duration(now - since)
        self.progress.update(self.task, step=f"waiting {waited} for the writer slot ({DUCKDB_POOL})")
        if now - self._said_at >= SAY_EVERY_SECONDS:
            self._said_at = now
            self.progress.console.print(Text(
                f"{self.source}: waiting {waited} for the {DUCKDB_POOL} slot (one writer at a time), held by "
                f"{self._holders or 'another run'}; Ctrl-C cancels this run", style="yellow"))


def _duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _print_backfill_summary(out: Console, runs: Sequence[SourceRun], ephemeral: bool) -> None:
    table = Table(title="Backfill summary", title_justify="left")
    for name, justify in (("source", "left"), ("result", "left"), ("rows loaded", "right"), ("KPI rows", "right"),
                          ("requests", "right"), ("retries", "right"), ("time", "right"), ("run id", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        result = Text(f"{OK} ok", style="green") if run.success else Text(f"{FAIL} failed", style="red")
        table.add_row(run.source, result, f"{run.rows:,}", f"{run.kpi_rows:,}", str(run.requests), str(run.retries),
                      f"{run.seconds:.1f}s", run.run_id[:8])
    out.print(table)
    where = ("an ephemeral Dagster instance (set DAGSTER_HOME to keep the run history)" if ephemeral
             else f"DAGSTER_HOME={os.environ.get('DAGSTER_HOME')} (`make dev` shows the runs)")
    out.print(Text(f"Runs recorded in {where}.", style="dim"))
