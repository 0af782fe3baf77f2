"""Each source's health, from Dagster's own records: last success, last failure, its error, stale since when.

Business purpose: the analysts' copy and the dashboard are published with what is good even when a source fails
(issue #18); a manager must then see which source is behind and why, next to the numbers. Dagster already records
every materialisation, every failed step (STEP_FAILURE, with the connector's sentence) and every check evaluation,
so nothing new is written during the load: the publish step reads those records per source (a source's raw assets
are its asset group; their steps are its steps) and writes `meta.source_status`. (Dagster OSS does not record
per-asset failure events, so failed steps are read from the failed runs.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pyarrow as pa

from connectors import registry
from connectors.warehouse import replace_table

STATUS_TABLE = "meta.source_status"
_SCHEMA = pa.schema([
    ("source", pa.string()), ("status", pa.string()), ("last_success", pa.timestamp("us", "UTC")),
    ("last_failure", pa.timestamp("us", "UTC")), ("error", pa.string()), ("stale_since", pa.timestamp("us", "UTC")),
    ("assets", pa.int64()),
])


def status_sources() -> tuple[str, ...]:
    """The registry's sources, report sources first (the order meta.source_status and the dashboard list them)."""
    return (*registry.codes("report"), *registry.codes("incremental"))


def __getattr__(name: str) -> object:
    """`SOURCES`: the registry's sources as `status_sources()` orders them, read when asked."""
    if name == "SOURCES":
        return status_sources()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class SourceStatus:
    """One source: `ok` (its last attempt succeeded), `failing` (it failed since its last success: its KPI rows
    are the last good ones, stale since the first failure), `degraded` (loaded, but a check says some of it was
    left out, e.g. one account of fifty), or `never_loaded`."""

    source: str
    status: str
    last_success: datetime | None
    last_failure: datetime | None
    error: str | None
    stale_since: datetime | None
    assets: int


def _when(record: object) -> datetime:
    return datetime.fromtimestamp(record.timestamp, UTC)  # type: ignore[attr-defined]


# How many recent failed runs are read for step failures (a source failing for longer than that is still failing:
# its last success is older than any of them).
_FAILED_RUNS = 200


def step_failures(instance: dg.DagsterInstance, step_sources: Mapping[str, str]
                  ) -> dict[str, list[tuple[datetime, str, str]]]:
    """Per source, (when, run id, the failure's first line) of its failed steps in recent failed runs."""
    found: dict[str, list[tuple[datetime, str, str]]] = {}
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]),
                                       limit=_FAILED_RUNS)
    for record in records:
        run_id = record.dagster_run.run_id
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            source = step_sources.get(entry.step_key or "")
            if source is None:
                continue
            data = entry.dagster_event.step_failure_data if entry.dagster_event else None
            error = data.error if data is not None else None
            cause = (error.cause or error) if error is not None else None
            text = ((cause.message if cause else "") or "a step failed").strip().splitlines()[0]
            # "dagster._core.definitions.events.Failure: ga4: 1 of 1 accounts failed ..." -> the sentence itself
            text = re.sub(r"^[\w.]+(?:Error|Exception|Failure|Exhausted): ", "", text)[:500]
            found.setdefault(source, []).append((datetime.fromtimestamp(entry.timestamp, UTC), run_id, text))
    return found


def _check_failures(instance: dg.DagsterInstance, checks: Sequence[tuple[dg.AssetCheckKey, bool]]
                    ) -> list[tuple[datetime, str, bool, str | None]]:
    """(when, run, blocking, description) of each check whose latest execution failed with severity ERROR."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    found = []
    for key, blocking in checks:
        latest = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        for record in latest:
            evaluation = record.evaluation
            if record.status != AssetCheckExecutionRecordStatus.FAILED or evaluation is None:
                continue
            if evaluation.severity != dg.AssetCheckSeverity.ERROR:
                continue
            when = datetime.fromtimestamp(record.event.timestamp if record.event else record.create_timestamp, UTC)
            found.append((when, record.run_id, blocking, evaluation.description or f"check {key.name} failed"))
    return found


def source_status(instance: dg.DagsterInstance, source: str, asset_keys: Sequence[dg.AssetKey],
                  failures: Sequence[tuple[datetime, str, str]] = (),
                  checks: Sequence[tuple[dg.AssetCheckKey, bool]] = ()) -> SourceStatus:
    """A source's status from its raw assets' latest materialisations, its failed steps (`failures`: when, run,
    error) and its checks' latest failed evaluations (`checks`: key, blocking). A failed step or a failed blocking
    check since the last success: `failing` (the KPIs kept the last good rows: stale since the first such
    failure). A failed non-blocking check (some accounts left out): `degraded` (the rest is current)."""
    successes = []
    for key in asset_keys:
        latest = instance.get_latest_materialization_event(key)
        successes.append(_when(latest) if latest is not None else None)
    # the source is as fresh as its least fresh asset
    last_success = None if not successes or any(s is None for s in successes) else min(successes)  # type: ignore[type-var]
    check_failures = _check_failures(instance, checks)
    blocking = [(w, run, text) for w, run, is_blocking, text in check_failures if is_blocking]
    failed = [*failures, *blocking]
    later = [f for f in failed if last_success is None or f[0] > last_success]
    degraded = [f for f in check_failures if not f[2] and (last_success is None or f[0] >= last_success)]
    last_failure = max((f[0] for f in failed), default=None)
    error, stale_since = None, None
    if later:
        error, stale_since, status = max(later)[2], min(f[0] for f in later), "failing"
    elif degraded:
        error, status = max(degraded)[3], "degraded"
    else:
        status = "ok" if last_success is not None else "never_loaded"
    return SourceStatus(source, status, last_success, last_failure, error, stale_since, len(asset_keys))


def source_statuses(instance: dg.DagsterInstance, asset_graph: object, sources: Iterable[str] | None = None
                    ) -> list[SourceStatus]:
    """Every source's status (default: every registered source); a source's raw assets are those of its Dagster
    group (one group per source), its steps those assets' ops."""
    assets = source_assets(asset_graph, sources)
    step_sources = {asset_graph.get(key).assets_def.node_def.name: source  # type: ignore[attr-defined]
                    for source, keys in assets.items() for key in keys}
    failures = step_failures(instance, step_sources)
    out = []
    for source, keys in assets.items():
        checks = [(k, asset_graph.get_check_spec(k).blocking)  # type: ignore[attr-defined]
                  for k in asset_graph.get_check_keys_for_assets(set(keys))]  # type: ignore[attr-defined]
        out.append(source_status(instance, source, keys, failures.get(source, ()), checks))
    return out


def source_assets(asset_graph: object, sources: Iterable[str] | None = None) -> dict[str, list[dg.AssetKey]]:
    """Each source's raw assets: the assets of its Dagster group (one group per source)."""
    sources = tuple(sources) if sources is not None else status_sources()
    wanted = set(sources)
    found: dict[str, list[dg.AssetKey]] = {s: [] for s in sources}
    for node in asset_graph.asset_nodes:  # type: ignore[attr-defined]
        if node.group_name in wanted:
            found[node.group_name].append(node.key)
    return found


def write_source_status(conn: duckdb.DuckDBPyConnection, statuses: Sequence[SourceStatus]) -> None:
    """Replace `meta.source_status` in the working database (the analysts' copy and the dashboard read it)."""
    replace_table(conn, STATUS_TABLE, pa.Table.from_pylist([asdict(s) for s in statuses], schema=_SCHEMA))


def stale_sources(statuses: Iterable[SourceStatus]) -> list[str]:
    return [s.source for s in statuses if s.status == "failing"]


def statuses_metadata(statuses: Iterable[SourceStatus]) -> Mapping[str, object]:
    return {s.source: {"status": s.status, "error": s.error} for s in statuses}
