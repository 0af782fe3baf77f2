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
from typing import Any

import dagster as dg
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.storage.event_log import sql_event_log
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

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
    ActiveExecution.get_steps_to_execute = _get_steps_to_execute  # type: ignore[method-assign]
