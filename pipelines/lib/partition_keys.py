"""The daily partitions' keys listed once per process and last day, not once per asset check.

Business purpose: every run evaluates the pipeline's asset checks, and each check's result asks Dagster for its
target asset's latest materialisation (dagster 1.13 `_core/definitions/asset_checks/asset_check_result.py`
`AssetCheckResult._get_unpartitioned_target_materialization_data` -> `_core/execution/context/data_version_cache.py`
`DataVersionCache._fetch_input_asset_version_info`). A check is not partitioned while its asset is daily-partitioned
from the configured start date, so Dagster lists every partition key of the asset (`AllPartitionsSubset.
get_partition_keys`, all days since start_date: ~1,000 keys, ~7 ms) only to find the list longer than its
`SKIP_PARTITION_DATA_VERSION_DEPENDENCY_THRESHOLD` (100) and ignore it. That listing was ~8% of a short run's CPU.

`install()` makes `TimeWindowPartitionsDefinition.get_partition_keys` answer from a per-process cache keyed by the
definition and its last partition window at the call's effective time: the keys run from the definition's first
window to its last one, so two calls whose last window is the same get the same keys (Dagster's own loop, run once
per definition and last window, in the caller's partition-loading context). A new day (or a definition with
another start date, time zone or exclusions) is a new entry. Each caller gets its own list.
"""

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.definitions.partitions.definition.time_window import TimeWindowPartitionsDefinition

# Dagster's own method, which computes each new entry (and which `uninstall()` puts back)
DAGSTER_GET_PARTITION_KEYS: Callable[..., Sequence[str]] = TimeWindowPartitionsDefinition.get_partition_keys
# entries kept: one per definition and last day; a long-lived process (the daemon) crosses days
_KEPT = 32
_cache: dict[tuple[TimeWindowPartitionsDefinition, float | None], tuple[str, ...]] = {}
_lock = threading.Lock()


def get_partition_keys(definition: TimeWindowPartitionsDefinition, current_time: datetime | None = None,
                       dynamic_partitions_store: Any = None) -> Sequence[str]:
    """Every partition key of `definition` up to its last window at the effective time: Dagster's answer, listed
    once per definition and last window in this process."""
    with partition_loading_context(current_time, dynamic_partitions_store):
        last = definition._get_last_partition_window(definition._get_current_timestamp())  # noqa: SLF001
        key = (definition, last.start.timestamp() if last is not None else None)
        keys = _cache.get(key)
        if keys is None:
            keys = tuple(DAGSTER_GET_PARTITION_KEYS(definition))  # the same context: the same last window
            with _lock:
                if len(_cache) >= _KEPT:
                    _cache.clear()
                _cache[key] = keys
    return list(keys)


def install() -> None:
    """Time-window partitions definitions of this process list their keys from the cache (see the module)."""
    TimeWindowPartitionsDefinition.get_partition_keys = get_partition_keys  # type: ignore[method-assign]


def uninstall() -> None:
    """Dagster's own listing again, and the cache emptied (tests compare both)."""
    TimeWindowPartitionsDefinition.get_partition_keys = DAGSTER_GET_PARTITION_KEYS  # type: ignore[method-assign]
    with _lock:
        _cache.clear()
