"""`mkpi`: the pipeline's command line (demo, sandbox, backfill, kpis, doctor, fx, serve, alerts).

Why one entry point: the people who run this pipeline are marketers and analysts as often as engineers. They need
to check access to each platform before the first run, backfill a window without opening Dagster's UI, and read
this month's KPIs against their objectives in a terminal. Every command reuses the pipeline's own pieces (settings,
connectors, Dagster jobs, DuckDB tables) so the CLI can never disagree with the scheduled runs; it only adds
progress, a summary and errors that say what to fix. Errors are one sentence plus the fix (tracebacks only with
`--debug`), and no secret is ever printed: every line that may echo a platform's answer is redacted.

Heavy imports (Dagster, the Google clients) happen inside the commands that need them, so `mkpi --help` is fast.

This module holds the parser and main(); each command is a module of this package (backfill: the run driver;
kpis; doctor; fx; serve; alerts), common.py what they share (errors, console, redaction, log levels). The sources
come from connectors/registry.py, values are written by kpi_models/formatting.py, objectives judged by
kpi_models/objectives.evaluate.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import date
from typing import NoReturn

from rich.console import Console
from rich.text import Text

from connectors import registry
from connectors.errors import ConfigError, SourceError
from connectors.http import redact
from connectors.settings import Settings
from kpi_models.catalogue import FAMILIES
from pipelines.cli import alerts, fx, serve
from pipelines.cli.backfill import cmd_backfill
from pipelines.cli.common import (
    CONFIG_FIX,
    CliError,
    RunInterrupted,
    first_line,
    known_secrets,
    log_levels,
    make_console,
)
from pipelines.cli.doctor import cmd_doctor
from pipelines.cli.kpis import cmd_kpis
from pipelines.lib.preflight import read_settings


def _safe_settings() -> Settings | None:
    """The settings for redaction, or None: called while reporting an error, so it never raises (a config file
    that cannot be read must not turn one error into two tracebacks)."""
    try:
        return read_settings()
    except Exception:  # noqa: BLE001 - the error being reported is the one to show
        return None


def _config_problem() -> ConfigError | None:
    """The configuration's own error, when it cannot be read: the real cause of a surprise elsewhere."""
    try:
        read_settings()
    except ConfigError as exc:
        return exc
    except Exception:  # noqa: BLE001 - read_settings turns every unreadable value into a ConfigError
        return None
    return None



# --- argument parsing ----------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message names the fix), exit code 2, never a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: use YYYY-MM-DD, e.g. 2026-03-01") from None


def _source(value: str) -> str:
    name = value.strip().lower().replace("-", "_")
    if name not in registry.codes():
        raise argparse.ArgumentTypeError(f"unknown source {value!r}: choose from {', '.join(registry.codes())}")
    return name


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number of days")
    return number


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite `mkpi --debug <command>`
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks, Dagster's step logs and connector debug logs")
    parser = _Parser(prog="mkpi", description="Marketing KPI pipeline: run, backfill, check access, read KPIs.",
                     epilog="Configuration: config/mkpi.yaml (MKPI_CONFIG), overridden by MKPI_* variables.")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show tracebacks, Dagster's step logs and connector debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    demo = sub.add_parser("demo", parents=[common], help="the whole pipeline on the local sandbox (= make demo)",
                          description="Start the sandbox, backfill the last N days through Dagster, print KPIs.")
    demo.add_argument("--days", type=_positive_int, default=90, help="days to backfill, ending yesterday (90)")

    sub.add_parser("sandbox", add_help=False,
                   help="serve the fake platforms on 127.0.0.1 and print their environment (python -m sandbox)",
                   description="Options are those of `python -m sandbox` (--seed, --today, --restatement-days, "
                               "--ga4-properties, --exec CMD ...); `mkpi sandbox --help` shows them.")

    backfill = sub.add_parser("backfill", parents=[common], help="load a date range through Dagster, per source",
                              description="Materialise the selected sources over a date range through Dagster "
                                          "(one run per source, recorded in DAGSTER_HOME when set), then rebuild "
                                          "the KPI tables, objectives and the analysts' copy.")
    backfill.add_argument("--start", type=_iso_date, required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument("--end", type=_iso_date, required=True, help="last day (inclusive), YYYY-MM-DD")
    backfill.add_argument("--source", type=_source, action="append", dest="sources", metavar="SOURCE",
                          help=f"repeatable; one of {', '.join(registry.codes())} (default: every configured source). "
                               "hubspot reads what changed since its cursors, whatever the dates")

    kpis = sub.add_parser("kpis", parents=[common], help="this period's KPIs against their objectives",
                          description="A table of the current period's KPIs vs objectives, read-only from the "
                                      "analysts' copy (MKPI_ANALYST_DB), else the working DuckDB file.")
    kpis.add_argument("--period", choices=("month", "week"), default="month",
                      help="month: kpi.kpi_vs_objective; week: the latest week of kpi.kpi_weekly (default month)")
    kpis.add_argument("--family", choices=FAMILIES, default=None, help="only this KPI family")
    kpis.add_argument("--db", default=None, help="DuckDB file to read (default: analysts' copy, else working db)")

    sub.add_parser("doctor", parents=[common], help="check each platform's configuration and access",
                   description="For each platform: is it configured, are the settings valid, and does one cheap "
                               "real request succeed? Says exactly what to set or grant when not.")
    fx.add_parser(sub, common, _iso_date)
    serve.add_parser(sub, common)
    alerts.add_parser(sub, common)
    return parser


# --- entry point ---------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and turn every expected failure into one sentence plus its fix (exit code 1, 2 for usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `sandbox` hands its arguments to `python -m sandbox` untouched (its --exec takes a whole command line)
    position = _command_index(argv)
    if position < len(argv) and argv[position] == "sandbox":
        from sandbox.__main__ import main as sandbox_main

        return sandbox_main(argv[position + 1:])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed in one line
        return exc.code if isinstance(exc.code, int) else 2
    debug = bool(getattr(args, "debug", False))
    if args.command is None:
        parser.print_help()
        return 2
    _configure_logging()
    err = make_console(stderr=True)
    try:
        with log_levels({"mkpi": logging.DEBUG} if debug else {}):
            return COMMANDS[args.command](args, debug)
    except RunInterrupted as exc:
        err.print(Text(f"mkpi: {exc}", style="bold red"))
        if exc.worker_alive:  # a step is still running in its thread: end now, as promised, without waiting for it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code)
        return exc.code
    except KeyboardInterrupt:
        err.print("mkpi: interrupted")
        return 130
    except CliError as exc:
        return _report_error(err, str(exc), exc.fix, debug, exc.code)
    except ConfigError as exc:
        return _report_error(err, f"configuration: {exc}", CONFIG_FIX, debug)
    except SourceError as exc:
        return _report_error(err, f"platform refused: {exc}", "fix the access named above, then re-run", debug)
    except Exception as exc:  # noqa: BLE001 - the top level turns any surprise into one sentence
        problem = _config_problem()
        if problem is not None:  # e.g. a value YAML cannot build, met first by a helper that reads the file
            return _report_error(err, f"configuration: {problem}", CONFIG_FIX, debug)
        name = type(exc).__name__
        what = "Dagster refused the run" if type(exc).__module__.startswith("dagster") else "unexpected error"
        return _report_error(err, f"{what}: {name}: {first_line(str(exc))}",
                             None if debug else "run again with --debug for the traceback", debug)


def _configure_logging() -> None:
    """Connector warnings (retries, quota) to stderr, one line each; a no-op when the host configured logging."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _command_index(argv: Sequence[str]) -> int:
    """Index of the subcommand: the first argument that is not the global --debug."""
    for i, arg in enumerate(argv):
        if arg != "--debug":
            return i
    return len(argv)


def _report_error(err: Console, message: str, fix: str | None, debug: bool, code: int = 1) -> int:
    secrets = known_secrets(_safe_settings())
    if debug:
        err.print(Text(redact(traceback.format_exc(), secrets), style="dim"))
    err.print(Text(f"mkpi: {redact(first_line(message), secrets)}", style="bold red"))
    if fix:
        err.print(Text(f"fix: {redact(fix, secrets)}"))
    return code




# --- demo and sandbox ----------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, debug: bool) -> int:
    """`make demo`, unchanged: pipelines.demo owns the sandbox start, the range run and the KPI printout."""
    from pipelines import demo

    return demo.main(["--days", str(args.days)])


COMMANDS: dict[str, Callable[[argparse.Namespace, bool], int]] = {
    "demo": cmd_demo, "backfill": cmd_backfill, "kpis": cmd_kpis, "doctor": cmd_doctor, "fx": fx.cmd_fx,
    "alerts": alerts.cmd_alerts, "serve": serve.cmd_serve,
}

