"""The Dagster settings every process of the pipeline runs with, in ONE place: what keeps a range run's bookkeeping
constant in the number of days.

Business purpose: a 90-day backfill (`make demo`) or a 365-day one (`mkpi backfill`) is one run per source; Dagster's
own bookkeeping for it must not grow with the days (issue #21 target 1). Two of Dagster's own switches do that
(dagster 1.13, read by `os.getenv` at each use, so setting them before the first run is enough):

- `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`: creating a range run writes ONE "materialisation planned"
  event per asset naming the range (`_core/storage/event_log/base.py`
  `supports_partition_subset_in_asset_materialization_planned_events`, `_core/instance/runs/run_domain.py`
  `get_materialization_planned_events_for_asset`) instead of one per asset and day (1,710 events, 17 s, for the
  90-day demo). Dagster then no longer knows which days of a failed run failed; the pipeline writes those per-day
  events itself, only when a run fails (pipelines/lib/partition_status.py), so the UI's partition status stays
  truthful: a failed range shows failed, never materialised.
- `DAGSTER_EVENT_BATCH_SIZE`: a range step's per-day materialisation events are sent as one batch
  (`_core/execution/plan/execute_step.py` batch metadata, `_core/instance/methods/event_methods.py`
  `handle_new_event`); PostgreSQL storage writes a batch in one INSERT (`dagster_postgres/event_log/event_log.py`
  `store_event_batch`), and so do SQLite storage and the in-memory storage of an ephemeral instance in the processes
  that load the code location (pipelines/lib/event_storage.py; Dagster's own write a batch event by event).

Who needs them: the process that CREATES a run writes its planned events (the webserver for a launch from the UI,
the daemon for the schedules and sensors, `mkpi`/`make demo` for their in-process runs); the process that EXECUTES it
writes its materialisations (the run worker, or the same in-process). `pipelines/definitions.py` applies them when
the code location is imported (code server, run workers, `mkpi`, the demo); `make dev` starts `dagster dev` (its
webserver and daemon) through `python -m pipelines.lib.instance_env`; a service sets them in the environment of
its webserver, daemon and run workers (docs/deployment.md). A value already in the environment wins.
"""

import os
import sys
from collections.abc import MutableMapping

DAGSTER_ENV: dict[str, str] = {
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
}


def apply(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set every variable of DAGSTER_ENV that is not set yet; returns the values now in force."""
    target = os.environ if environ is None else environ
    for name, value in DAGSTER_ENV.items():
        target.setdefault(name, value)
    return {name: target[name] for name in DAGSTER_ENV}


def main(argv: list[str]) -> int:
    """`python -m pipelines.lib.instance_env COMMAND ...`: run COMMAND with these settings (make dev starts
    `dagster dev` so); without a command, print them as shell assignments."""
    settings = apply()
    if not argv:
        print("\n".join(f"export {name}={value}" for name, value in settings.items()))
        return 0
    os.execvp(argv[0], argv)
    return 127  # not reached: execvp replaces this process


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
