"""`mkpi kpis`: the current period's KPIs beside their objectives, read-only from the analysts' copy."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from connectors.settings import Settings
from kpi_models.catalogue import FAMILIES
from kpi_models.formatting import format_attainment, format_value  # the one formatter of CLI, demo and dashboard
from pipelines.cli.common import CliError, first_line, make_console
from pipelines.lib.preflight import read_settings

if TYPE_CHECKING:
    import duckdb

# How the week view's targets are set (kpi_models.objectives.evaluate, the month view's rule).
WEEK_TARGETS = ("target (week): a sum's target pro-rated to the week's elapsed days (up to its source's last day "
                "with data), a rate's target as it stands")
STATUS_STYLES = {"on_track": "green", "at_risk": "yellow", "off_track": "red", "insufficient_data": "dim"}


def _kpi_db(explicit: str | None, settings: Settings) -> tuple[Path, str]:
    """The file to read and what it is: --db, else the analysts' copy, else the working file."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise CliError(f"--db {path} does not exist", "give the path of a DuckDB file built by the pipeline")
        return path, "given file"
    analyst, working = Path(settings.analyst_db), Path(settings.duckdb_path)
    if analyst.is_file():
        return analyst, "analysts' copy"
    if settings.warehouse.backend == "duckdb" and working.is_file():  # a DuckLake is read through its analysts' copy
        return working, "working db"
    hint = "run `mkpi backfill --start ... --end ...` (or `mkpi demo`), or pass --db PATH"
    if settings.warehouse.backend != "duckdb":  # a DuckLake has no working file to fall back on: never name one
        raise CliError(f"no KPI database yet: the analysts' copy {analyst} does not exist (a DuckLake warehouse is "
                       "read through it)", hint)
    raise CliError(f"no KPI database yet: neither the analysts' copy {analyst} nor the working file {working} exists",
                   hint)


@contextmanager
def _read_only(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    import duckdb

    from connectors.warehouse import connect

    try:
        with connect(path, read_only=True, lock_timeout=5.0) as conn:
            yield conn
    except duckdb.IOException as exc:
        raise CliError(f"cannot open {path} read-only ({first_line(str(exc))})",
                       "a run is probably writing it: wait for it to finish, or read the analysts' copy") from exc


def _has_table(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    from connectors.warehouse import table_exists  # the loader's module, imported only by commands that read

    return table_exists(conn, f"{schema}.{name}")


def _status_text(status: str | None, provisional: bool = False) -> Text:
    if not status:
        return Text("no objective", style="dim")
    return Text(status + (" *" if provisional else ""), style=STATUS_STYLES.get(status, ""))


def _month_rows(conn: duckdb.DuckDBPyConnection) -> tuple[str, list[dict[str, Any]]]:
    if not _has_table(conn, "kpi", "kpi_vs_objective"):
        raise CliError("this database has no kpi.kpi_vs_objective table yet",
                       "run `mkpi backfill` (it rebuilds the objectives), with objectives in config/objectives.yaml "
                       "or MKPI_OBJECTIVES")
    cursor = conn.execute(
        """
        SELECT kpi, source, channel, account_id, actual, coalesce(target_to_date, target) AS target_now, target,
               attainment, status, gap_text, unit, currency, period_start, period_end, as_of, provisional
        FROM kpi.kpi_vs_objective
        WHERE period = 'month' AND period_start = (SELECT max(period_start) FROM kpi.kpi_vs_objective
                                                   WHERE period = 'month')
        """
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    if not rows:
        return "no monthly objective evaluated yet", rows
    first = rows[0]
    title = f"month {first['period_start']} .. {first['period_end']}, as of {max(r['as_of'] for r in rows)}"
    return title, rows


def _week_rows(conn: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[str, list[dict[str, Any]]]:
    """The latest week of kpi.kpi_weekly, every KPI summed over its channels and accounts, beside the objectives in
    force that week, judged by kpi_models.objectives.evaluate over the week's days: the rule of the month view and
    of kpi.kpi_vs_objective (a sum against its target pro-rated to the elapsed days, a ratio as it stands)."""
    from kpi_models.catalogue import load_catalogue
    from kpi_models.objectives import evaluate_window, read_objectives

    if not _has_table(conn, "kpi", "kpi_weekly"):
        raise CliError("this database has no kpi.kpi_weekly view yet", "run `mkpi backfill` to build the KPI layer")
    latest = conn.execute("SELECT max(week_start) FROM kpi.kpi_weekly").fetchone()
    if not latest or latest[0] is None:
        return "no weekly KPI yet", []
    week_start = latest[0]
    catalogue = load_catalogue()
    # Over every channel and account, as an objective without channel or account sums them: a ratio of the sums. A
    # level (followers: the week's last day's, per account) adds up over accounts, and has no value when one
    # account's is unknown (NULL: no row on the week's last day with data), as on the dashboard: a sum without it
    # would be silently low; a distinct count (reach: the platform's own week figure, per account) does not add
    # up, so it has a value for one account only, never a sum.
    summed = [k.kpi for k in catalogue.daily() if k.additive]
    levels = [k.kpi for k in catalogue.daily() if k.aggregation == "last"]
    distinct = [k.kpi for k in catalogue.daily() if k.aggregation == "distinct"]
    cursor = conn.execute(
        "SELECT kpi, source, CASE WHEN kpi IN (SELECT unnest(?)) THEN sum(numerator) "
        "WHEN kpi IN (SELECT unnest(?)) THEN CASE WHEN count(*) = count(numerator) THEN sum(numerator) END "
        "WHEN kpi IN (SELECT unnest(?)) THEN CASE WHEN count(DISTINCT account_id) = 1 THEN any_value(numerator) END "
        "ELSE sum(numerator) / nullif(sum(denominator), 0) END AS value, any_value(currency) AS currency, "
        "max(days_with_data) AS days_with_data, any_value(week_end) AS week_end, any_value(iso_week) AS iso_week "
        "FROM kpi.kpi_weekly WHERE week_start = ? GROUP BY kpi, source", [summed, levels, distinct, week_start])
    names = [d[0] for d in cursor.description]
    weekly = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    week_end = weekly[0]["week_end"] if weekly else week_start
    judged = _judged_once(evaluate_window(conn, read_objectives(conn), (week_start, week_end),
                                          settings.reporting_timezone, settings.min_denominators, catalogue))
    rows = [judged.pop((w["kpi"], w["source"], "all", "all"), None) or _unjudged(w, catalogue) for w in weekly]
    rows += judged.values()  # channels and accounts only where an objective targets them
    days = max((w["days_with_data"] or 0) for w in weekly) if weekly else 0
    title = f"week {weekly[0]['iso_week']} ({week_start} .. {week_end}, {days} day(s) with data)" if weekly else ""
    return title, rows


def _judged_once(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """One judged row per KPI, source, channel and account: the month's objective before the quarter's and year's."""
    rank = {"month": 0, "quarter": 1, "year": 2}
    chosen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: rank.get(r["period"], 9)):
        row["target_now"] = row["target_to_date"]
        chosen.setdefault((row["kpi"], row["source"], row["channel"], row["account_id"]), row)
    return chosen


def _unjudged(week: dict[str, Any], catalogue: Any) -> dict[str, Any]:
    """A KPI's week total where no objective is in force."""
    definition = catalogue.kpis.get(week["kpi"])
    unit = definition.unit if definition else None
    return {"kpi": week["kpi"], "source": week["source"], "channel": "all", "account_id": "all",
            "actual": week["value"], "unit": unit, "currency": week["currency"] if unit == "currency" else None,
            "target_now": None, "attainment": None, "status": None, "gap_text": ""}


def _source_cell(row: dict[str, Any]) -> str:
    """The source, with the account when an objective targets one account ("google_ads 1234567890")."""
    account = row.get("account_id")
    return f"{row['source'] or ''} {account}" if account and account != "all" else row["source"] or ""


def cmd_kpis(args: argparse.Namespace, debug: bool) -> int:
    """The current period's KPIs beside their objectives, status coloured, from a read-only connection."""
    from kpi_models.catalogue import load_catalogue

    settings = read_settings()
    path, what = _kpi_db(args.db, settings)
    with _read_only(path) as conn:
        title, rows = _month_rows(conn) if args.period == "month" else _week_rows(conn, settings)
        built = None
        if _has_table(conn, "meta", "build"):
            found = conn.execute("SELECT max(built_at) FROM meta.build").fetchone()
            built = found[0] if found else None
    families = {k.kpi: k.family for k in load_catalogue().kpis.values()}
    if args.family:
        rows = [r for r in rows if families.get(r["kpi"]) == args.family]
    order = {f: i for i, f in enumerate(FAMILIES)}
    rows.sort(key=lambda r: (order.get(families.get(r["kpi"], ""), 99), r["kpi"], r["source"] or "",
                             r["channel"] != "all", r["channel"] or ""))
    out = make_console()
    source_line = f"{what} {path}" + (f", built {built:%Y-%m-%d %H:%M} UTC" if isinstance(built, datetime) else "")
    if not rows:
        scope = f" in family {args.family}" if args.family else ""
        out.print(Text(f"No KPI{scope} for the current {args.period} ({title}) in {source_line}."))
        return 0
    target_name = "target now" if args.period == "month" else "target (week)"
    table = Table(title=f"KPIs vs objectives, {title}", title_justify="left", caption=source_line,
                  caption_justify="left")
    for name, justify in (("family", "left"), ("KPI", "left"), ("source", "left"), ("channel", "left"),
                          ("actual", "right"), (target_name, "right"), ("attain.", "right"), ("status", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("gap", ratio=1)  # the only column that wraps on a narrow terminal
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"] or "no objective"] = counts.get(r["status"] or "no objective", 0) + 1
        table.add_row(families.get(r["kpi"], ""), r["kpi"], _source_cell(r), r["channel"] or "all",
                      format_value(r["actual"], r["unit"], r["currency"], kpi=r["kpi"]),
                      format_value(r["target_now"], r["unit"], r["currency"], kpi=r["kpi"]),
                      format_attainment(r["attainment"]),
                      _status_text(r["status"], bool(r.get("provisional"))), r["gap_text"] or "")
    out.print(table)
    out.print(Text(", ".join(f"{n} {s}" for s, n in sorted(counts.items())), style="dim"))
    if args.period == "week":
        out.print(Text(WEEK_TARGETS, style="dim"))
    if any(r.get("provisional") for r in rows):
        out.print(Text("* provisional: rests on days still inside a source's restatement window (or not yet "
                       "complete); the value will still move", style="dim"))
    return 0
