"""`mkpi alerts`: the open alerts (kpi.alerts), and `mkpi alerts ack ID` to acknowledge one.

Why a command: a digest says what happened; the person who takes it in hand acknowledges it so the team knows, and
the alert stays listed (never sent again) until its condition clears. Reads and writes the working DuckDB file
(kpi.alerts lives there; the analysts' copy gets it at the next publish).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table
from rich.text import Text

from connectors.settings import load_settings
from connectors.warehouse import open_warehouse, table_exists, transaction
from kpi_models.alerts import ALERTS, STATES, acknowledge, list_alerts

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    alerts = sub.add_parser("alerts", parents=[common], help="open alerts; `mkpi alerts ack ID` acknowledges one",
                            description="List the open and acknowledged alerts (status changes, anomalies, stale "
                                        "sources, failed runs), newest first; `mkpi alerts ack ID` acknowledges one "
                                        "(it stays listed, never sent again, until its condition clears).")
    alerts.add_argument("--all", action="store_true", help="also the cleared alerts")
    alerts.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    actions = alerts.add_subparsers(dest="alerts_action", metavar="ACTION")
    ack = actions.add_parser("ack", parents=[common], help="acknowledge an alert by its id")
    ack.add_argument("alert_id", metavar="ID", help="the alert's id (or its first characters), as listed")


def cmd_alerts(args: argparse.Namespace, debug: bool) -> int:
    from pipelines.cli.common import make_console

    settings = load_settings()
    out, err = make_console(), make_console(stderr=True)
    if settings.warehouse.backend == "duckdb" and not Path(settings.duckdb_path).is_file():
        err.print(Text(f"mkpi: no alerts yet: the working database {settings.duckdb_path} does not exist (run `mkpi "
                       "backfill` or `mkpi demo` first)", style="red"))
        return 1
    if getattr(args, "alerts_action", None) == "ack":
        with open_warehouse(settings.warehouse) as conn:
            if not table_exists(conn, ALERTS):
                err.print(Text("mkpi: no alerts yet (kpi.alerts is created by the first alerts run)", style="red"))
                return 1
            try:
                with transaction(conn):
                    alert = acknowledge(conn, args.alert_id)
            except ValueError as exc:
                err.print(Text(f"mkpi: {exc}", style="red"))
                return 1
        out.print(Text(f"acknowledged {alert.alert_id}: {alert.finding.message}"))
        return 0
    with open_warehouse(settings.warehouse, read_only=True) as conn:
        states = STATES if args.all else ("open", "acknowledged")
        alerts = list_alerts(conn, states, limit=max(1, args.limit))
    if not alerts:
        out.print("No open alerts." if not args.all else "No alerts.")
        return 0
    table = Table(show_lines=False)
    for column in ("id", "when (UTC)", "severity", "condition", "state", "what", "sent to"):
        table.add_column(column, overflow="fold")
    for alert in alerts:
        f = alert.finding
        table.add_row(alert.alert_id, f"{alert.created_at:%Y-%m-%d %H:%M}", Text(f.severity, style=_STYLE[f.severity]),
                      f.condition, alert.state, f.message, ", ".join(alert.sent_to) or "-")
    out.print(table)
    out.print("Acknowledge one: mkpi alerts ack ID")
    return 0
