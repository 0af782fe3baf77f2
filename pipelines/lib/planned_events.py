"""An unpartitioned check or asset of a range run is planned once, as in a run of one day, not once per day.

Business purpose: creating a 365-day backfill must not cost more for every day the assets that are not daily do not
have (issue #21 target 1), and a check that passed must not show "planned" for ever. Dagster 1.13 plans a new run's
assets and checks (`_core/instance/runs/run_domain.py` `RunDomain._log_asset_planned_events` and
`get_materialization_planned_events_for_asset`): each gets the partitions the run covers from
`DagsterRun.get_resolved_partitions_subset_for_events(partitions_def)`, given its own partitions definition, None
when it has none. Read from the run's tags, that is None for None; but a run that carries its partitions subset (a
range run of `execute_in_process`, `make demo`'s and `mkpi backfill`'s runs, a backfill) gets its subset back
whatever the definition. So every unpartitioned check of a 363-day range run was planned as 363 rows of Dagster's
check executions table (one per day, `_store_asset_check_evaluation_planned`), each carrying the planned event:
23,300 rows, 36 MB, written when the 365-day demo's backfill run was created. The check's result, which has no
day, matches none of them: Dagster inserts a row of its own and the 363 rows stay "planned". The unpartitioned
assets of the daily refresh (the objectives, the analysts' copy, the dashboard) were planned with the days too.

`install()` makes that method answer None when there is no partitions definition, as its tag path does, and
Dagster's answer otherwise: an unpartitioned check of a range run is planned as one row, which its result then
updates (planned, then succeeded or failed: one row per run); an unpartitioned asset is planned without days; a
daily asset or check keeps the run's days. The method's only callers are those two (their sources are in
`event_storage.WRITTEN_AGAINST` with it): after a Dagster upgrade that changed any of them, Dagster's own method is
used and a warning names it. Installed where the code location is imported (pipelines/definitions.py): `make demo`,
`mkpi`, the run workers, the code server; a run created elsewhere (a launch from the UI, which the webserver
creates) is planned Dagster's way, as before.
"""

from collections.abc import Callable
from typing import Any

from dagster._core.instance.runs.run_domain import RunDomain
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.lib.event_storage import written_against

# Dagster's own method (what `uninstall()` puts back, and the answer for a partitioned asset or check)
DAGSTER_RESOLVED_SUBSET: Callable[..., Any] = DagsterRun.get_resolved_partitions_subset_for_events
# the callers whose use of the answer this module relies on (a None: one planned event or row, no days)
CALLERS = ("get_materialization_planned_events_for_asset", "_log_asset_planned_events", "_get_partitions_def")


def resolved_partitions_subset_for_events(run: DagsterRun, partitions_def: Any) -> Any:
    """The days a run plans for an asset or check: none without a partitions definition, else Dagster's answer."""
    if partitions_def is None:
        return None
    return DAGSTER_RESOLVED_SUBSET(run, partitions_def)


def _guarded() -> bool:
    """Whether Dagster's method and its callers are the versions this module was written against."""
    return (written_against(DagsterRun, "get_resolved_partitions_subset_for_events", DAGSTER_RESOLVED_SUBSET)
            and all(written_against(RunDomain, name) for name in CALLERS))


WRITTEN_AGAINST_DAGSTER = _guarded()


def install() -> None:
    """Runs created in this process plan an unpartitioned asset or check once (see the module)."""
    if WRITTEN_AGAINST_DAGSTER:
        DagsterRun.get_resolved_partitions_subset_for_events = (  # type: ignore[method-assign]
            resolved_partitions_subset_for_events)


def uninstall() -> None:
    """Dagster's own planning again (tests compare both)."""
    DagsterRun.get_resolved_partitions_subset_for_events = DAGSTER_RESOLVED_SUBSET  # type: ignore[method-assign]
