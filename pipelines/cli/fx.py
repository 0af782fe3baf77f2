"""`mkpi fx refresh`: apply the rates the configured source now gives, and rebuild the KPI days they change.

Why a command: a run never changes a stored published rate (kpi_models/fx.py), so editing `fx_rates`, changing the
reporting currency or installing a newer ECB history changes nothing by itself; the kpi_daily materialisation warns
with this command instead. The rates and the list of days to rebuild are written in one transaction; the days stay
listed (kpi.fx_refresh_pending) until kpi_daily is rebuilt for them, so a failed rebuild is simply run again.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date

from rich.text import Text

from connectors.settings import load_settings
from connectors.warehouse import open_warehouse, transaction
from kpi_models.context import KpiContext
from kpi_models.fx import mark_refresh_pending, pending_refresh_days, refresh_fx_rates

# kpi_daily (money KPIs of the report sources), then what reads it.
REBUILT = (("kpi", "kpi_daily"), ("kpi", "kpi_vs_objective"), ("publish", "analyst_copy"), ("publish", "dashboard"))


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
               iso_date: Callable[[str], date]) -> None:
    fx = sub.add_parser("fx", parents=[common], help="exchange rates: apply changed rates and rebuild what they change",
                        description="`mkpi fx refresh` gives every stored day the rate the configured source "
                                    "(fx_source, fx_rates) gives now, then rebuilds kpi.kpi_daily, the objectives "
                                    "and the analysts' copy for the days whose rate changed.")
    actions = fx.add_subparsers(dest="fx_action", metavar="ACTION", required=True)
    refresh = actions.add_parser("refresh", parents=[common], help="apply the current rates and rebuild")
    refresh.add_argument("--start", type=iso_date, default=None, help="first day to refresh (default: all)")
    refresh.add_argument("--end", type=iso_date, default=None, help="last day to refresh (default: all)")


def cmd_fx(args: argparse.Namespace, debug: bool) -> int:
    import dagster as dg
    from rich.progress import Progress

    from pipelines.cli.backfill import SourceRun, _print_backfill_summary, _run_source, dagster_instance
    from pipelines.cli.common import make_console
    from pipelines.definitions import defs

    settings = load_settings()
    policy = KpiContext.from_settings(settings).fx
    out = make_console()
    with open_warehouse(settings.warehouse) as conn, transaction(conn):
        changed = refresh_fx_rates(conn, policy, args.start, args.end)
        mark_refresh_pending(conn, changed)
    with open_warehouse(settings.warehouse, read_only=True) as conn:
        pending = pending_refresh_days(conn)
    out.print(Text(f"{len(changed)} day(s) with a changed rate ({policy.source}, reporting currency "
                   f"{policy.reporting_currency}); {len(pending)} day(s) to rebuild."))
    if not pending:
        return 0
    start, end = pending[0], pending[-1]
    runs: list[SourceRun] = []
    with dagster_instance() as instance, Progress(console=out) as progress:
        task = progress.add_task("fx refresh", total=None, start=False)
        keys = [dg.AssetKey(list(k)) for k in REBUILT]
        runs.append(_run_source("fx refresh", defs.resolve_job_def("daily_refresh_job"), keys, instance, progress,
                                task, start, end, "DEBUG" if debug else "CRITICAL"))
        ephemeral = instance.is_ephemeral
    _print_backfill_summary(out, runs, ephemeral)
    if not runs[0].success:
        make_console(stderr=True).print(Text(f"mkpi: the rebuild of {start} .. {end} failed; the days stay pending: "
                                             "run `mkpi fx refresh` again", style="bold red"))
        return 1
    return 0
