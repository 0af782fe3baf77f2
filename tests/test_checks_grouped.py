"""An asset's checks run in one step (issue #21 target 1), each keeping its name, asset, blocking flag and result.

Fast: the grouping is checked on the definitions (no run) and on a two-asset stand-in materialised in process.
"""

import dagster as dg

from pipelines.defs.kpi.checks import group_checks, kpi_check_steps

KPI_DAILY = dg.AssetKey(["kpi", "kpi_daily"])


def _specs() -> dict[tuple[str, str], bool]:
    return {(spec.asset_key.to_user_string(), spec.name): spec.blocking
            for step in kpi_check_steps for spec in step.check_specs}


def test_every_check_keeps_its_name_asset_and_blocking_flag() -> None:
    specs = _specs()
    # stated from pipelines/defs/kpi/checks.py's declarations, by hand
    assert specs[("kpi/kpi_daily", "kpi_daily_unique_keys")] is True
    assert specs[("kpi/kpi_daily", "kpi_daily_complete")] is True
    assert specs[("kpi/kpi_daily", "kpi_daily_single_currency")] is True
    assert specs[("kpi/kpi_daily", "kpi_daily_ga4_channels_sum_to_total")] is True
    assert specs[("kpi/kpi_daily", "kpi_daily_rates_in_range")] is False
    assert specs[("kpi/kpi_daily", "kpi_daily_fx_rates_available")] is False
    assert specs[("kpi/kpi_daily", "kpi_daily_numerator_within_denominator")] is False
    assert specs[("kpi/kpi_daily", "every_source_rebuilt")] is False
    assert specs[("kpi/crm_monthly", "hubspot_values_cast")] is False
    assert specs[("kpi/kpi_vs_objective", "kpis_without_objective")] is False
    assert specs[("kpi/web_daily", "web_daily_keys_unique")] is True
    assert specs[("ga4/traffic_by_channel", "raw_columns_match_kpi_contract")] is True


def test_an_asset_has_at_most_one_blocking_and_one_warning_step() -> None:
    steps: dict[tuple[dg.AssetKey, bool], int] = {}
    for step in kpi_check_steps:
        kinds = {(spec.asset_key, spec.blocking) for spec in step.check_specs}
        assert len(kinds) == 1, kinds  # one asset, one blocking flag per step
        [kind] = kinds
        steps[kind] = steps.get(kind, 0) + 1
    assert set(steps.values()) == {1}
    kpi_daily = [s for s in kpi_check_steps if any(spec.asset_key == KPI_DAILY for spec in s.check_specs)]
    assert len(kpi_daily) == 2  # 4 blocking + 4 warnings (every_source_rebuilt among them) in two steps, not 8


def test_a_grouped_step_runs_every_check_then_fails_on_the_first_error() -> None:
    @dg.asset
    def table() -> None:
        return None

    @dg.asset(deps=[table])
    def downstream() -> None:
        return None

    @dg.asset_check(asset=table, blocking=True)
    def rows_unique() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, metadata={"duplicate_keys": 2})

    @dg.asset_check(asset=table, blocking=True)
    def query_breaks(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        raise RuntimeError("Binder Error")

    @dg.asset_check(asset=table, blocking=True)
    def totals_match() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    @dg.asset_check(asset=table, blocking=False)
    def a_warning() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)

    grouped = group_checks([rows_unique, query_breaks, totals_match, a_warning])
    assert len(grouped) == 2
    result = dg.materialize([table, downstream, *grouped], raise_on_error=False)
    evaluations = {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}
    assert evaluations == {"rows_unique": (False, dg.AssetCheckSeverity.ERROR),
                           "totals_match": (True, dg.AssetCheckSeverity.ERROR),
                           "a_warning": (False, dg.AssetCheckSeverity.WARN)}
    assert not result.success  # the blocking step failed on the error, after the other checks ran
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [table.key]  # downstream gated
    metadata = {e.check_name: e.metadata for e in result.get_asset_check_evaluations()}
    assert metadata["rows_unique"]["duplicate_keys"].value == 2


def test_a_grouped_step_keeps_the_working_file_open_while_its_checks_run(tmp_path) -> None:
    """Each check opens its own connection inside the step's one open connection (DuckDB then reuses the database
    already open in the process instead of opening the file and checkpointing it at every check)."""
    from contextlib import contextmanager

    from pipelines.lib.resources import WarehouseResource

    opened = {"calls": 0, "now": 0, "most": 0}

    class CountingWarehouse(WarehouseResource):
        @contextmanager
        def connection(self, *, read_only: bool = False):  # type: ignore[override]
            opened["calls"] += 1
            opened["now"] += 1
            opened["most"] = max(opened["most"], opened["now"])
            try:
                with super().connection(read_only=read_only) as conn:
                    yield conn
            finally:
                opened["now"] -= 1

    @dg.asset
    def table() -> None:
        return None

    def counted(name: str) -> dg.AssetChecksDefinition:
        @dg.asset_check(asset=table, name=name, blocking=True)
        def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
            with warehouse.connection() as conn:
                return dg.AssetCheckResult(passed=conn.execute("SELECT 1").fetchone() == (1,))

        return _check

    grouped = group_checks([counted("first"), counted("second")])
    assert len(grouped) == 1
    result = dg.materialize([table, *grouped], resources={
        "warehouse": CountingWarehouse(database=str(tmp_path / "w.duckdb"))})
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {"first": True, "second": True}
    # the step's own connection, then one per check, each opened while the step's is open
    assert (opened["calls"], opened["most"], opened["now"]) == (3, 2, 0)
