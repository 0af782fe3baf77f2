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

from typing import Any

import dagster as dg

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
