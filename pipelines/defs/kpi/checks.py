"""Blocking checks on KPI tables: a duplicated key or a rate outside [0, 1] never reaches an analyst."""

import inspect
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime

import dagster as dg
import duckdb

from connectors import registry
from connectors.batches import Stream, Window
from connectors.warehouse import quote_ident
from kpi_models import checks as layer_checks
from kpi_models.runner import MODELS, GeneratedKpiModel, KpiModel
from pipelines.lib.kpi_sources import build_every_source_rebuilt_check
from pipelines.lib.partitions import run_sources, window_from_context
from pipelines.lib.resources import SettingsResource, WarehouseResource


def _scope(model: KpiModel, window: Window | None, sources: tuple[str, ...]) -> tuple[str, dict[str, object]]:
    """The rows a run rebuilt: its sources, and its window when the table is partitioned."""
    where = "source IN (SELECT unnest($sources::VARCHAR[]))"
    params: dict[str, object] = {"sources": list(sources)}
    if window is not None and model.partition_column is not None:
        where += f" AND {quote_ident(model.partition_column)} BETWEEN $start AND $end"
        params.update(start=window.start, end=window.end)
    return where, params


def kpi_table_problems(conn: duckdb.DuckDBPyConnection, model: KpiModel, window: Window | None = None,
                       sources: tuple[str, ...] | None = None) -> dict[str, int]:
    """Duplicate keys and rates outside [0, 1] among the rows a run rebuilt (its sources and window; the whole
    table without them): 0 and 0 when healthy."""
    table = quote_ident(model.table)
    keys = ", ".join(quote_ident(k) for k in model.key)
    where, params = _scope(model, window, sources or model.sources)
    dup = conn.execute(f"SELECT count(*) FROM (SELECT {keys} FROM {table} WHERE {where} GROUP BY ALL "
                       "HAVING count(*) > 1)", params).fetchone()
    out_of_range = 0
    if model.rate_columns:
        predicate = " OR ".join(f"{quote_ident(c)} < 0 OR {quote_ident(c)} > 1" for c in model.rate_columns)
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE ({predicate}) AND {where}", params).fetchone()
        out_of_range = int(row[0]) if row else 0
    return {"duplicate_keys": int(dup[0]) if dup else 0, "rates_out_of_range": out_of_range}


def _check_scope(context: dg.AssetCheckExecutionContext, model: KpiModel) -> tuple[Window | None, tuple[str, ...]]:
    window = _run_window(context) if model.partition_column is not None else None
    return window, run_sources(context, model.sources)


def build_kpi_check(model: KpiModel) -> dg.AssetChecksDefinition:
    """Blocking: no two rows of the run's own sources and window share a key (a duplicate would be summed twice
    downstream). Another source's rows, or another window's, never block this run."""

    @dg.asset_check(
        asset=dg.AssetKey(["kpi", model.name]),
        name=f"{model.name}_keys_unique",
        blocking=True,
        description=f"No two rows the run rebuilt (its sources and window) share ({', '.join(model.key)}).",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        window, sources = _check_scope(context, model)
        with warehouse.connection() as conn:
            problems = kpi_table_problems(conn, model, window, sources)
        return dg.AssetCheckResult(passed=problems["duplicate_keys"] == 0, metadata={
            "duplicate_keys": problems["duplicate_keys"], "sources": ", ".join(sources)})

    return _check


def build_rate_range_check(model: KpiModel) -> dg.AssetChecksDefinition:
    """A warning: rates outside [0, 1] among the run's rows. Such a row is flagged (quality 'out_of_range') and
    published; it never stops the other rows or the other sources."""

    @dg.asset_check(
        asset=dg.AssetKey(["kpi", model.name]),
        name=f"{model.name}_rates_in_range",
        blocking=False,
        description=f"{', '.join(model.rate_columns)} lie in [0, 1] on the rows the run rebuilt (a row outside is "
        "flagged out_of_range in its quality and published; this warning names how many).",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        window, sources = _check_scope(context, model)
        with warehouse.connection() as conn:
            problems = kpi_table_problems(conn, model, window, sources)
        return dg.AssetCheckResult(passed=problems["rates_out_of_range"] == 0, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"rates_out_of_range": problems["rates_out_of_range"]})

    return _check


def _kpi_table_checks() -> list[dg.AssetChecksDefinition]:
    """Each KPI table's key and rate checks, and whether every source's rows were rebuilt."""
    checks = [build_kpi_check(model) for model in MODELS.values() if not isinstance(model, GeneratedKpiModel)]
    checks += [build_rate_range_check(model) for model in MODELS.values() if model.rate_columns]
    return checks + [build_every_source_rebuilt_check(dg.AssetKey(["kpi", name]))
                     for name in (*MODELS, "kpi_daily_hubspot")]


KPI_DAILY_KEY = dg.AssetKey(["kpi", "kpi_daily"])


def _full_window(conn: duckdb.DuckDBPyConnection) -> Window | None:
    row = conn.execute("SELECT min(date), max(date) FROM kpi.kpi_daily").fetchone()
    return Window(row[0], row[1]) if row and row[0] is not None else None


def _run_window(context: dg.AssetCheckExecutionContext) -> Window | None:
    """The days this run rebuilt kpi_daily for (its partition or partition range); None outside partitions."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    return window_from_context(context)


def _kpi_daily_built_at(context: dg.AssetCheckExecutionContext) -> datetime | None:
    event = context.instance.get_latest_materialization_event(KPI_DAILY_KEY)
    return datetime.fromtimestamp(event.timestamp, UTC) if event is not None else None


def _completeness(context: dg.AssetCheckExecutionContext, conn: duckdb.DuckDBPyConnection, full: Window,
                  tz: str, sources: tuple[str, ...] | None = None) -> layer_checks.CheckResult:
    """Completeness judges what this run rebuilt: its days, and the raw rows loaded before the rebuild. (Over
    the whole table, a day no run has rebuilt yet, or a row another source's run loaded meanwhile, failed
    the run that did its own part; found by the concurrency battery's sequential reference.)"""
    return layer_checks.check_kpi_completeness(conn, _run_window(context) or full, tz,
                                               built_at=_kpi_daily_built_at(context),
                                               sources=registry.codes("report") if sources is None else sources)


def _as_dagster(result: layer_checks.CheckResult) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.WARN if result.severity == "warn" else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(passed=result.passed, severity=severity,
                               metadata={k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v
                                         for k, v in result.metadata().items()})


def build_layer_check(name: str, description: str, blocking: bool = True) -> dg.AssetChecksDefinition:
    """A Dagster check over kpi.kpi_daily that runs one of kpi_models.checks and names the failing rows."""

    @dg.asset_check(asset=KPI_DAILY_KEY, name=name, blocking=blocking, description=description)
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, settings: SettingsResource
               ) -> dg.AssetCheckResult:
        tz = settings.load().reporting_timezone
        # the rows this run rebuilt: its window (partition range) and its own source(s), never another source's
        sources = run_sources(context, registry.codes("report"))  # the registry now: a source added is judged
        with warehouse.connection() as conn:
            window = _run_window(context) or _full_window(conn) or Window(date.today(), date.today())
            result = {
                "kpi_daily_unique_keys": lambda: layer_checks.check_unique_keys(conn, window, sources),
                "kpi_daily_numerator_within_denominator":
                    lambda: layer_checks.check_numerator_within_denominator(conn, window, sources=sources),
                "kpi_daily_rates_in_range": lambda: layer_checks.check_rates_in_range(conn, window, sources=sources),
                "kpi_daily_complete": lambda: _completeness(context, conn, window, tz, sources),
                "kpi_daily_ga4_channels_sum_to_total": lambda: (
                    layer_checks.check_ga4_channel_sessions(conn, window) if "ga4" in sources
                    else layer_checks.CheckResult("ga4_channel_sessions", True, "error", "GA4 not in this run")),
                "kpi_daily_single_currency": lambda: layer_checks.check_single_currency(conn, window, sources=sources),
                "kpi_daily_fx_rates_available": lambda: layer_checks.check_fx_rates_available(conn, window),
            }[name]()
        return _as_dagster(result)

    return _check


def _layer_checks() -> list[dg.AssetChecksDefinition]:
    """kpi_models.checks over kpi.kpi_daily, one Dagster check each."""
    return [
    build_layer_check("kpi_daily_unique_keys", "No two rows share (date, source, channel, account_id, kpi)."),
    build_layer_check("kpi_daily_numerator_within_denominator", "For rates, numerator <= denominator (a warning: "
                      "such a row is flagged out_of_range and published).", blocking=False),
    build_layer_check("kpi_daily_rates_in_range", "Bounded rates lie in [0, 1] (a warning: such a row is flagged "
                      "out_of_range and published).", blocking=False),
    build_layer_check("kpi_daily_complete", "Every KPI of the catalogue is present for every day a report source "
                      "(GA4, Search Console, Matomo, Google Ads) has data."),
    build_layer_check("kpi_daily_ga4_channels_sum_to_total", "GA4 sessions per channel sum to the property total."),
    build_layer_check("kpi_daily_single_currency", "Every money sum is in a single currency."),
    build_layer_check("kpi_daily_fx_rates_available", "Every day and currency met has an FX rate (else its rows "
                      "are left out of kpi_daily).", blocking=False),
    ]


def _warning_checks() -> list[dg.AssetChecksDefinition]:
    """The HubSpot cast and objectives warnings."""

    @dg.asset_check(asset=dg.AssetKey(["kpi", "crm_monthly"]), blocking=False,
                    description="HubSpot values the CRM KPIs read cast to the type they are used as (a property "
                    "re-typed as text in the portal counts as missing, named here, never a failed query): a warning.")
    def hubspot_values_cast(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connection() as conn:
            return _as_dagster(layer_checks.check_hubspot_values_cast(conn))

    @dg.asset_check(asset=dg.AssetKey(["kpi", "kpi_vs_objective"]), blocking=False,
                    description="KPIs with no objective (a KPI without an objective is meaningless): a warning.")
    def kpis_without_objective(warehouse: WarehouseResource, settings: SettingsResource) -> dg.AssetCheckResult:
        from kpi_models.objectives import load_objectives

        objectives = load_objectives(settings.load().objectives_path)
        with warehouse.connection() as conn:
            return _as_dagster(layer_checks.check_kpis_without_objective(conn, objectives))

    return [hubspot_values_cast, kpis_without_objective]


def _raw_inputs() -> dict[str, tuple[Stream, list[str]]]:
    """Every raw table some KPI model reads, with the models that read it (for the check's description)."""
    inputs: dict[str, tuple[Stream, list[str]]] = {}
    for model in MODELS.values():
        for stream in model.inputs:
            inputs.setdefault(stream.table, (stream, []))[1].append(model.name)
    return inputs


def build_raw_contract_check(stream: Stream, readers: list[str]) -> dg.AssetChecksDefinition:
    """A blocking check on a raw asset: its columns still match what the KPI SQL reads. A failure stops the KPI
    tables downstream in the same run (they keep their last good rows) instead of rebuilding them from a column
    that changed type or disappeared. A new raw column passes: the raw layer may evolve, the KPI layer is frozen."""

    @dg.asset_check(
        asset=dg.AssetKey(stream.table.split(".")),
        name="raw_columns_match_kpi_contract",
        blocking=True,
        description=f"The columns of {stream.table} read by kpi.{', kpi.'.join(readers)} exist with their "
        "declared types (schema drift stops the KPI rebuild; new columns are allowed).",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connection() as conn:
            return _as_dagster(layer_checks.check_raw_contract(conn, [stream]))

    return _check


def _raw_contract_checks() -> list[dg.AssetChecksDefinition]:
    return [build_raw_contract_check(stream, readers) for stream, readers in _raw_inputs().values()]


def _results(check: dg.AssetChecksDefinition, context: dg.AssetCheckExecutionContext
             ) -> Iterator[dg.AssetCheckResult]:
    """One check's results, run inside a grouped step: its own function, its resources, its name and asset."""
    fn = check.op.compute_fn.decorated_fn  # type: ignore[union-attr]
    params = inspect.signature(fn).parameters
    args = (context,) if "context" in params else ()
    out = fn(*args, **{name: getattr(context.resources, name) for name in params if name != "context"})
    [spec] = check.check_specs
    for result in ([out] if isinstance(out, dg.AssetCheckResult) else out):
        yield result._replace(asset_key=spec.asset_key, check_name=spec.name)


def group_checks(checks: Iterable[dg.AssetChecksDefinition]) -> list[dg.AssetChecksDefinition]:
    """Issue #21 target 1: an asset's checks run in one step (each step costs event writes and resource set-up),
    the blocking ones in one, the warnings in another, so that a warning's error never skips what a blocking check
    gates. Every check keeps its name, asset, blocking flag, description and result; in a step, every selected check
    runs and yields its result, and the first error is raised after the others have run (the step fails as the
    check's own step did)."""
    groups: dict[tuple[dg.AssetKey, bool], list[dg.AssetChecksDefinition]] = {}
    for check in checks:
        [spec] = check.check_specs
        groups.setdefault((spec.asset_key, spec.blocking), []).append(check)
    return [_grouped(key, blocking, members) for (key, blocking), members in groups.items()]


def _warehouse_held(context: dg.AssetCheckExecutionContext, uses_warehouse: bool) -> AbstractContextManager[object]:
    """The working file kept open while a grouped step's checks run: each check still opens its own connection, but
    DuckDB then hands it the database already open in this process (about 1 ms) instead of opening the file and
    checkpointing it at close (about 40-100 ms each, issue #21 target 1). No warehouse, nothing held."""
    if not uses_warehouse:
        return nullcontext()
    return context.resources.warehouse.connection()


def _grouped(key: dg.AssetKey, blocking: bool, members: list[dg.AssetChecksDefinition]) -> dg.AssetChecksDefinition:
    """One step for these checks of one asset (a single check stays as it is)."""
    if len(members) == 1:
        return members[0]
    specs = [spec for check in members for spec in check.check_specs]
    resources = set().union(*(check.required_resource_keys for check in members)) - {"io_manager"}

    @dg.multi_asset_check(specs=specs, name=f"{'__'.join(key.path)}__{'blocking' if blocking else 'warning'}_checks",
                          can_subset=True, required_resource_keys=resources)
    def _checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        error: BaseException | None = None
        with _warehouse_held(context, "warehouse" in resources):
            for check in members:
                if not set(check.check_keys) & set(context.selected_asset_check_keys):
                    continue
                try:
                    yield from _results(check, context)
                except Exception as exc:  # the others still run; the step fails after them
                    context.log.error(f"check {', '.join(k.name for k in check.check_keys)}: {type(exc).__name__}")
                    error = error or exc
        if error is not None:
            raise error

    return _checks


kpi_check_steps = group_checks([*_kpi_table_checks(), *_layer_checks(), *_warning_checks(), *_raw_contract_checks()])
