"""The Dagster code location: everything under `pipelines/defs/` (one folder per source), plus the report sources
registered with no folder there (connectors/registry.py), each as the source component with its defaults."""


from pathlib import Path

import dagster as dg

from pipelines.components.source_assets import registry_only_defs
from pipelines.lib import event_storage, executor, instance_env, partition_keys, planned_events
from pipelines.lib.executor import PIPELINE_EXECUTOR

# Dagster's range bookkeeping, for every process that loads this code location (pipelines/lib/instance_env.py): one
# planned event per asset and range, batched per-day materialisations, a batch written in one go on SQLite too
instance_env.apply()
event_storage.install()
planned_events.install()  # an unpartitioned check or asset of a range run planned once, not per day
partition_keys.install()  # the daily partitions' keys listed once per day, not once per check result
executor.install()  # a run waiting for the duckdb_write slot sleeps between its claims (pipelines/lib/executor.py)


def build_definitions() -> dg.Definitions:
    """Every definition, built now: the settings (start date, time zone) and the registry are read at this call."""
    return dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
                                registry_only_defs(),
                                dg.Definitions(executor=PIPELINE_EXECUTOR))  # steps forked: pipelines/lib/executor.py


defs = build_definitions()
