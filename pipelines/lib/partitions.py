"""The daily partitions every source and KPI asset shares, in the reporting time zone from config.

One definition, so a range run (a backfill or the daily re-read) covers raw and KPI assets alike.
"""


from datetime import timedelta

import dagster as dg

from connectors.batches import Window
from connectors.settings import load_settings

_settings = load_settings()

DAILY = dg.DailyPartitionsDefinition(
    start_date=_settings.start_date.isoformat(), timezone=_settings.reporting_timezone
)
# Every asset that writes the DuckDB file is in this pool; dagster.yaml limits pools to 1 slot.
DUCKDB_POOL = "duckdb_write"


def window_from_context(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> Window:
    """The inclusive date window of a (possibly single-run, multi-partition) materialisation."""
    time_window = context.partition_time_window
    return Window(time_window.start.date(), (time_window.end - timedelta(days=1)).date())
