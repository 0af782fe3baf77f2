"""The executor of every job of the code location: Dagster's default one, its step processes forked from a server
that has imported the pipeline once.

Business purpose: a launched run (a schedule tick, a sensor, a launch from the UI, the service's daemon) runs each
step in its own process. Dagster 1.13's multiprocess executor starts them with `spawn` by default
(`dagster/_core/executor/multiprocess.py`, `MultiprocessExecutor.__init__`: `start_method = "spawn"`), so every step
paid a fresh interpreter importing dagster and `pipelines.definitions` (about 2 CPU-s here, more than most steps'
own work). With `forkserver` and `preload_modules` (the executor's documented config,
`_core/definitions/executor_definition.py` `MULTI_PROC_CONFIG`; https://docs.dagster.io/api/dagster/execution
`multiprocess_executor`), each run worker starts ONE server process that imports the code location, and every step
is a fork of it.

Nothing else changes: the executor is Dagster's `multi_or_in_process_executor` with its own config schema, so a run
may still choose `in_process` or set `max_concurrent`, `retries`, `tag_concurrency_limits` or its own `start_method`
(tests/test_concurrency.py does); when a multiprocess run names no start method, this one is filled in. The pool
`duckdb_write` (dagster.yaml) is the instance's and holds the same way.

What makes the fork safe (tests/test_executor.py checks it): importing `pipelines.definitions` opens no DuckDB
file, socket or gRPC channel and starts no Python thread (clients and connections are made inside steps); the
definitions it builds read the settings of the run worker's environment, which is what a spawned step read too (the
server is a child of the run worker, started at its first step, and lives as long as it).
"""

import time
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.storage.event_log import sql_event_log
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._utils.concurrency import ConcurrencyClaimStatus, ConcurrencySlotStatus

from pipelines.lib import event_storage

# The code location's module (what `dagster api grpc -m` and workspace.yaml load). Dagster adds its own
# `dagster._core.executor.multiprocess` in front.
PRELOAD_MODULES: tuple[str, ...] = ("pipelines.definitions",)
FORKSERVER: dict[str, Any] = {"forkserver": {"preload_modules": list(PRELOAD_MODULES)}}


def with_forkserver(config: dict[str, Any]) -> dict[str, Any]:
    """The run's executor config, with the forkserver start method when the run is multiprocess and names none."""
    multiprocess = config.get("multiprocess")
    if multiprocess is None or multiprocess.get("start_method"):
        return config
    return {**config, "multiprocess": {**multiprocess, "start_method": FORKSERVER}}


# Dagster's default executor (same name, same config schema and defaults), its multiprocess mode forking steps.
PIPELINE_EXECUTOR: dg.ExecutorDefinition = dg.multi_or_in_process_executor.configured(
    with_forkserver, config_schema=dg.multi_or_in_process_executor.config_schema.as_field())


def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    """Seconds until the first pending pool claim may be tried again (0 when one is due or none is pending)."""
    if not self._pending_claims or not self._pending_timeouts:
        return 0.0
    return max(0.0, min(self._pending_timeouts.values()) - time.time())


# The longest a run's loop sleeps at once while its steps wait for a pool slot: it still notices a termination
# request (Dagster checks for it between passes) within a second.
MAX_IDLE_SLEEP_SECONDS = 1.0
_DAGSTER_GET_STEPS_TO_EXECUTE = ActiveExecution.get_steps_to_execute


def _get_steps_to_execute(self: ActiveExecution, limit: int | None = None) -> Any:
    """Dagster's, then, when nothing can start, nothing is running and a step waits for a pool slot, a sleep until
    its next claim (at most MAX_IDLE_SLEEP_SECONDS): the multiprocess executor's loop has no sleep of its own."""
    steps = _DAGSTER_GET_STEPS_TO_EXECUTE(self, limit)
    concurrency = self._instance_concurrency_context
    if (not steps and not self._in_flight and not self.is_complete and concurrency is not None
            and concurrency.has_pending_claims()):
        time.sleep(min(MAX_IDLE_SLEEP_SECONDS, self.sleep_interval()))
    return steps


def _claim_concurrency_slot(self: SqlEventLogStorage, concurrency_key: str, run_id: str, step_key: str) -> Any:
    """Dagster's claim of a free slot row, made atomic: the UPDATE takes the row only if it is still free.

    Dagster 1.13 (`_core/storage/event_log/sql_event_log.py`, `SqlEventLogStorage._claim_concurrency_slot`) selects a
    free slot `FOR UPDATE SKIP LOCKED`, then updates that row by id alone. Its storages run in AUTOCOMMIT (PostgreSQL,
    `dagster_postgres/event_log/event_log.py`; SQLite ignores FOR UPDATE), so the row lock ends with the SELECT: two
    runs claiming at the same instant both found the one `duckdb_write` slot free, and the second UPDATE overwrote
    the first's claim, both CLAIMED. tests/test_concurrency.py saw two writer steps of two runs start 50 ms apart
    (runs forked at once). With `step_key IS NULL` in the UPDATE, PostgreSQL re-checks the row after the first
    claim commits (READ COMMITTED) and updates nothing: the second claim is BLOCKED, as Dagster's own code already
    answers when no row is updated, and is tried again at its next claim."""
    table, db = sql_event_log.ConcurrencySlotsTable, sql_event_log.db
    free = db.and_(table.c.concurrency_key == concurrency_key, table.c.step_key == None,  # noqa: E711
                   table.c.deleted == False)  # noqa: E712
    with self.index_connection() as conn:
        row = conn.execute(sql_event_log.db_select([table.c.id]).select_from(table).where(free)
                           .with_for_update(skip_locked=True).limit(1)).fetchone()
        if not row or not row[0]:
            return sql_event_log.ConcurrencySlotStatus.BLOCKED
        taken = conn.execute(table.update().values(run_id=run_id, step_key=step_key)
                             .where(db.and_(table.c.id == row[0], table.c.step_key == None))  # noqa: E711
                             ).rowcount
        return sql_event_log.ConcurrencySlotStatus.CLAIMED if taken else sql_event_log.ConcurrencySlotStatus.BLOCKED


_DAGSTER_CLAIM = SqlEventLogStorage.claim_concurrency_slot


def _claim_queued(self: SqlEventLogStorage, concurrency_key: str, run_id: str, step_key: str,
                  priority: int | None = None) -> ConcurrencyClaimStatus:
    """Dagster's `SqlEventLogStorage.claim_concurrency_slot` (dagster 1.13) with its queue reads folded together: the
    same answers, three fewer round trips on a step's first claim (5 statements instead of 8), one fewer on each retry.

    Dagster asks whether the step is queued (`has_pending_step`), counts the free slots in two statements
    (`has_unassigned_slots`), queues the step (`add_pending_step`, assigned at once when a slot is unassigned), then
    reads the queue row again (`check_concurrency_claim`). Here the queue row is read once; a step not queued yet is
    queued by one INSERT that counts the slots itself (the same rule: assigned when the pool has more slots than
    assigned steps) and returns the row it wrote. Then, as Dagster: an unassigned step is BLOCKED with its place in the
    queue; an assigned one is CLAIMED if it already holds a slot, else it takes one (`_claim_concurrency_slot`, the
    atomic claim above)."""
    status = _queue_status(self, concurrency_key, run_id, step_key, priority)
    if status.is_claimed or not status.is_assigned:
        return status
    return status.with_slot_status(self._claim_concurrency_slot(concurrency_key, run_id, step_key))  # noqa: SLF001


def _queue_status(self: SqlEventLogStorage, concurrency_key: str, run_id: str, step_key: str,
                  priority: int | None) -> ConcurrencyClaimStatus:
    """The step's place in the pool's queue (queued now if it was not), as Dagster's `check_concurrency_claim`
    answers it."""
    pending, slots, db = sql_event_log.PendingStepsTable, sql_event_log.ConcurrencySlotsTable, sql_event_log.db
    row_columns = [pending.c.assigned_timestamp, pending.c.priority, pending.c.create_timestamp]
    this_step = db.and_(pending.c.run_id == run_id, pending.c.step_key == step_key,
                        pending.c.concurrency_key == concurrency_key)
    with self.index_connection() as conn:
        row = conn.execute(sql_event_log.db_select(row_columns).where(this_step)).fetchone()
        if row is None:
            free = (sql_event_log.db_select([db.func.count()]).select_from(slots)
                    .where(db.and_(slots.c.concurrency_key == concurrency_key, slots.c.deleted == False))  # noqa: E712
                    .scalar_subquery()
                    > sql_event_log.db_select([db.func.count()]).select_from(pending)
                    .where(db.and_(pending.c.concurrency_key == concurrency_key,
                                   pending.c.assigned_timestamp != None))  # noqa: E711
                    .scalar_subquery())
            values = sql_event_log.db_select([
                db.literal(concurrency_key, db.Text), db.literal(run_id, db.Text), db.literal(step_key, db.Text),
                db.literal(priority or 0, db.Integer), db.case((free, db.func.now()), else_=db.null())])
            try:
                row = conn.execute(pending.insert().from_select(
                    ["concurrency_key", "run_id", "step_key", "priority", "assigned_timestamp"], values)
                    .returning(*row_columns)).fetchone()
            except sql_event_log.db_exc.IntegrityError:  # queued meanwhile by another claim of this step
                row = conn.execute(sql_event_log.db_select(row_columns).where(this_step)).fetchone()
        if row is None:
            return ConcurrencyClaimStatus(concurrency_key=concurrency_key, slot_status=ConcurrencySlotStatus.BLOCKED)
        assigned, priority_found, enqueued = row[0] or None, row[1] or None, row[2] or None
        status = ConcurrencyClaimStatus(concurrency_key=concurrency_key, slot_status=ConcurrencySlotStatus.BLOCKED,
                                        priority=priority_found, assigned_timestamp=assigned,
                                        enqueued_timestamp=enqueued)
        if assigned is None:
            return status
        held = conn.execute(sql_event_log.db_select([db.func.count()]).where(db.and_(
            slots.c.concurrency_key == concurrency_key, slots.c.run_id == run_id,
            slots.c.step_key == step_key))).fetchone()
    return status.with_slot_status(ConcurrencySlotStatus.CLAIMED) if held and held[0] else status


def claim_method() -> Callable[..., ConcurrencyClaimStatus]:
    """The project's claim where Dagster's is the one it was written against (pipelines/lib/event_storage.py
    WRITTEN_AGAINST), Dagster's own otherwise."""
    chosen = event_storage.written_against(SqlEventLogStorage, "claim_concurrency_slot", _DAGSTER_CLAIM)
    return _claim_queued if chosen else _DAGSTER_CLAIM


CLAIM_CONCURRENCY_SLOT = claim_method()


def install() -> None:
    """A run waiting for a pool slot (`duckdb_write`) sleeps until its next claim instead of spinning a core.

    Dagster 1.13's `InstanceConcurrencyContext.interval_to_next_pending_claim_check`
    (`_core/execution/plan/instance_concurrency_context.py`) returns `min([0, *remaining])`, never above 0, so the
    in-process executor's `sleep_til_ready` (`_core/execution/plan/active.py`) never sleeps: a run queued behind the
    writer re-checked its pending claim about 100,000 times a second (a `mkpi backfill` waiting for another run's
    load, the 8 runs of tests/test_concurrency.py: 5-16 CPU-s each). Upstream saw it ("it appeared we would always
    end up sleeping `0` for concurrency checks which leads to busy waiting", dagster-io/dagster pull request #20367,
    closed unmerged). The multiprocess executor's loop (`_core/executor/multiprocess.py`,
    `MultiprocessExecutor.execute`) never sleeps when no step is running: a launched run whose steps all wait for
    the slot spun the same way; it now sleeps in `get_steps_to_execute` until the next claim, a second at most. The
    claims are tried at the same moments as before (Dagster's own back-off: 1 s, growing to 15 s); only the loop
    between them sleeps. Called where the code location is loaded (pipelines/definitions.py).
    """
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = (  # type: ignore[method-assign]
        _interval_to_next_pending_claim_check)
    SqlEventLogStorage._claim_concurrency_slot = _claim_concurrency_slot  # type: ignore[method-assign]  # noqa: SLF001
    SqlEventLogStorage.claim_concurrency_slot = CLAIM_CONCURRENCY_SLOT  # type: ignore[method-assign]
    ActiveExecution.get_steps_to_execute = _get_steps_to_execute  # type: ignore[method-assign]
