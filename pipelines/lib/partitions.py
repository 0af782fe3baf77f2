"""The daily partitions every source and KPI asset shares, in the reporting time zone from config.

One definition, so a range run (a backfill or the daily re-read) covers raw and KPI assets alike. It starts at the
configured `start_date` and is built when the definitions are built (`daily_partitions()`), never when this module
is imported: importing the pipeline (the CLI, a test) reads no configuration, and a code location reloaded after
the start date changed shows the new range.
"""


from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import dagster as dg

from connectors.batches import Window
from connectors.errors import RetriesExhausted
from connectors.settings import Settings, load_settings

if TYPE_CHECKING:
    DAILY: dg.DailyPartitionsDefinition


def daily_partitions(settings: Settings | None = None) -> dg.DailyPartitionsDefinition:
    """One partition per reporting day from the configured start date (settings read now, when definitions are
    built). Two calls with the same settings give equal definitions, which is what a job over several assets needs."""
    settings = settings or load_settings()
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(),
                                        timezone=settings.reporting_timezone)


def __getattr__(name: str) -> object:
    """`DAILY`, for code that declares its own partitioned assets (tests): built on first use, never when this
    module is imported. The pipeline's own modules call `daily_partitions()` when their definitions are built."""
    if name == "DAILY":
        return daily_partitions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Every asset that writes the DuckDB file is in this pool; dagster.yaml limits pools to 1 slot.
DUCKDB_POOL = "duckdb_write"
# How many times Dagster re-runs a step whose requests exhausted their retries on transient errors.
STEP_RERUNS = 2
# The run tag naming the one source a run refreshes (the daily schedule and `mkpi backfill` run one source per
# run): its KPI steps rebuild that source's rows only, and judge only them.
SOURCE_TAG = "mkpi/source"


def run_sources(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, sources: tuple[str, ...]
                ) -> tuple[str, ...]:
    """The sources a KPI step rebuilds (or a check judges): the run's own source when it names one of them,
    else all of them (a run over every source: the demo, a manual materialisation)."""
    tagged = context.run.tags.get(SOURCE_TAG)
    return (tagged,) if tagged in sources else sources


def window_from_context(context: dg.AssetExecutionContext | dg.OpExecutionContext | dg.AssetCheckExecutionContext
                        ) -> Window:
    """The inclusive date window of a (possibly single-run, multi-partition) materialisation."""
    time_window = context.partition_time_window
    return Window(time_window.start.date(), (time_window.end - timedelta(days=1)).date())


@contextmanager
def retry_transient_failures(max_retries: int = STEP_RERUNS, seconds_to_wait: float = 60.0) -> Iterator[None]:
    """A request that exhausted its own retries on transient errors (429, 5xx, resets, timeouts) asks
    Dagster to re-run the step later; the load is idempotent, so the re-run is safe. Fatal errors (a wrong
    id, a missing permission, a bad configuration) are not retried: they fail the step at once."""
    try:
        yield
    except RetriesExhausted as exc:
        raise dg.RetryRequested(max_retries=max_retries, seconds_to_wait=seconds_to_wait) from exc
