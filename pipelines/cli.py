"""`mkpi`: the pipeline's command line (demo, sandbox, backfill, kpis, doctor).

Why one entry point: the people who run this pipeline are marketers and analysts as often as engineers. They need
to check access to each platform before the first run, backfill a window without opening Dagster's UI, and read
this month's KPIs against their objectives in a terminal. Every command reuses the pipeline's own pieces (settings,
connectors, Dagster jobs, DuckDB tables) so the CLI can never disagree with the scheduled runs; it only adds
progress, a summary and errors that say what to fix. Errors are one sentence plus the fix (tracebacks only with
`--debug`), and no secret is ever printed: every line that may echo a platform's answer is redacted.

Heavy imports (Dagster, the Google clients) happen inside the commands that need them, so `mkpi --help` is fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from connectors.errors import ConfigError, SourceError
from connectors.http import RetryPolicy, redact
from connectors.settings import Secret, Settings
from kpi_models import dashboard_serve
from kpi_models.catalogue import FAMILIES
from kpi_models.formatting import format_value  # the one formatter (dashboard, CLI): "2.54%", "4.56×", "9,930 EUR"
from pipelines import alerts_command, fx_command
from pipelines.lib.preflight import check_run_inputs, read_settings

if TYPE_CHECKING:
    import dagster as dg
    import duckdb

log = logging.getLogger("mkpi.cli")

# The Dagster job runs one source at a time: the report sources are REFRESHES in pipelines/defs/schedules.py
# (kept literal here so `--help` does not import Dagster; a test checks the two agree), HubSpot is its own job.
REPORT_SOURCES = ("ga4", "search_console", "matomo", "google_ads")
SOURCES = ("hubspot", *REPORT_SOURCES)  # HubSpot first, as the schedules do
PLATFORM_NAMES = {"ga4": "GA4", "search_console": "Search Console", "google_ads": "Google Ads",
                  "hubspot": "HubSpot", "matomo": "Matomo"}
# What to set when a platform is not configured at all (the connectors' own errors cover partial configuration).
NEEDS = {
    "ga4": "set MKPI_GA4_PROPERTY_IDS (numeric property ids) and GOOGLE_APPLICATION_CREDENTIALS (a service-account "
           "JSON key with Viewer access to the properties), or MKPI_GA4_ENDPOINT to a local sandbox",
    "search_console": "set MKPI_SEARCH_CONSOLE_SITES (e.g. sc-domain:example.com) and GOOGLE_APPLICATION_CREDENTIALS "
                      "(a service account added as a user of each property), or MKPI_SEARCH_CONSOLE_ENDPOINT",
    "google_ads": "set MKPI_GOOGLE_ADS_CUSTOMER_IDS, MKPI_GOOGLE_ADS_DEVELOPER_TOKEN and either "
                  "MKPI_GOOGLE_ADS_CLIENT_ID, MKPI_GOOGLE_ADS_CLIENT_SECRET and MKPI_GOOGLE_ADS_REFRESH_TOKEN "
                  "(OAuth) or MKPI_GOOGLE_ADS_JSON_KEY_FILE (service account); MKPI_GOOGLE_ADS_LOGIN_CUSTOMER_ID "
                  "for a manager account",
    "hubspot": "set MKPI_HUBSPOT_TOKEN to a private-app access token (HubSpot > Settings > Integrations > "
               "Private apps) with the crm.objects.*.read, crm.schemas.*.read and content scopes",
    "matomo": "set MKPI_MATOMO_URL, MKPI_MATOMO_SITE_IDS and MKPI_MATOMO_TOKEN (Matomo > Personal > Security > "
              "Auth tokens, a user with view access to the sites)",
}
STATUS_STYLES = {"on_track": "green", "at_risk": "yellow", "off_track": "red", "insufficient_data": "dim"}
# doctor: a platform that hangs should not hold the diagnosis for a minute
DOCTOR_TIMEOUT = 20.0
DOCTOR_POLICY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0, max_retry_after=5.0)
OK, FAIL, SKIP = "✓", "✗", "-"
# google-api-core puts the request URL before the platform's message: noise in a one-line error
_URL_PREFIX = re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE) https?://\S+: ")


class CliError(Exception):
    """A failure the user can fix: one sentence, the fix, and the exit code (2 = bad usage)."""

    def __init__(self, message: str, fix: str | None = None, code: int = 1) -> None:
        super().__init__(message)
        self.fix = fix
        self.code = code


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while a run executed: the run was marked canceled and its pool slots freed.

    `worker_alive`: the run's thread was still inside a step; the process must end without waiting for it
    (main() then exits at once, as a kill would, which every write survives; the crash battery proves it)."""

    def __init__(self, message: str, code: int, worker_alive: bool) -> None:
        super().__init__(message)
        self.code = code
        self.worker_alive = worker_alive


CONFIG_FIX = ("correct that key: docs/configuration.md lists every key, its default and its allowed values "
              "(`mkpi doctor` checks both files)")
OBJECTIVES_FIX = ("correct that entry: docs/configuration.md#the-objectives-file lists the fields; KPI names are "
                  "those of kpi_models/catalogue.yaml (`mkpi doctor` checks both files)")


# --- output helpers ------------------------------------------------------------------------------------------------


def make_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr); 140 columns when not a terminal, so captured tables are not squeezed."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 140
    return console


def known_secrets(settings: Settings | None) -> list[str]:
    """Every credential the settings hold: anything printed passes through `redact` with these."""
    found: list[str] = []
    if settings is None:
        return found

    def walk(obj: Any) -> None:
        if isinstance(obj, Secret):
            found.append(obj.reveal())
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                walk(getattr(obj, f.name))

    walk(settings)
    return [s for s in found if s]


def first_line(text: str) -> str:
    """The first non-empty line of an error message (Dagster and gRPC errors span many lines)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return str(text).strip()


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
    if name not in SOURCES:
        raise argparse.ArgumentTypeError(f"unknown source {value!r}: choose from {', '.join(SOURCES)}")
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
                          help=f"repeatable; one of {', '.join(SOURCES)} (default: every configured source). "
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
    fx_command.add_parser(sub, common, _iso_date)
    dashboard_serve.add_parser(sub, common)
    alerts_command.add_parser(sub, common)
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


def _configure_logging() -> None:
    """Connector warnings (retries, quota) to stderr, one line each; a no-op when the host configured logging."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@contextmanager
def log_levels(levels: dict[str, int]) -> Iterator[None]:
    """Set some loggers' levels for one command, then restore them (main() also runs in-process, e.g. in tests)."""
    saved = {name: logging.getLogger(name).level for name in levels}
    try:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# --- demo and sandbox ----------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, debug: bool) -> int:
    """`make demo`, unchanged: pipelines.demo owns the sandbox start, the range run and the KPI printout."""
    from pipelines import demo

    return demo.main(["--days", str(args.days)])


# --- backfill ------------------------------------------------------------------------------------------------------


@dataclass
class SourceRun:
    """One source's run as the summary reports it (rows and requests read from materialisation metadata)."""

    source: str
    job: str
    run_id: str
    success: bool = False
    rows: int = 0
    kpi_rows: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    failures: list[StepFailure] = field(default_factory=list)


def configured_sources(settings: Settings) -> list[str]:
    """Sources with enough configuration to run (the same test the schedules use), in run order."""
    from pipelines.defs.schedules import reread_days

    found = ["hubspot"] if settings.hubspot.token is not None else []
    return found + [s for s in REPORT_SOURCES if reread_days(settings, s) is not None]


def _validate_window(start: date, end: date, settings: Settings) -> None:
    """Refuse what Dagster's daily partitions would refuse, in words: the range must lie within the partitions."""
    if start > end:
        raise CliError(f"--start {start} is after --end {end}: the range is inclusive, start first", code=2)
    if start < settings.start_date:
        raise CliError(f"--start {start} is before the first partition ({settings.start_date}): pick a later day "
                       "or lower start_date (MKPI_START_DATE)", code=2)
    yesterday = datetime.now(settings.tz).date() - timedelta(days=1)
    if end > yesterday:
        raise CliError(f"--end {end} is after yesterday ({yesterday} in {settings.reporting_timezone}), the last "
                       "complete day: pick an earlier end", code=2)


def summarise_run(run: SourceRun, events: Iterable[Any]) -> SourceRun:
    """Rows and request counters from a run's materialisations.

    A range run records one materialisation per partition with the same metadata, and a multi-asset step reports
    its connector's counters on every asset: rows are counted once per asset, requests once per step."""
    rows: dict[str, int] = {}
    kpi_rows: dict[str, int] = {}
    requests: dict[str, int] = {}
    retries: dict[str, int] = {}
    for event in events:
        mat = event.event_specific_data.materialization
        key = mat.asset_key.path
        metadata = mat.metadata

        def number(name: str, metadata: Any = metadata) -> int | None:
            value = metadata.get(name)
            raw = getattr(value, "value", value)
            return int(raw) if isinstance(raw, int | float) else None

        count = number("dagster/row_count")
        if key[0] == run.source and count is not None:
            rows[mat.asset_key.to_user_string()] = count
        elif key[0] == "kpi" and key[-1] != "kpi_vs_objective" and count is not None:
            kpi_rows[mat.asset_key.to_user_string()] = count
        step = event.step_key or mat.asset_key.to_user_string()
        if key[0] == run.source:
            requests[step] = max(requests.get(step, 0), number("requests") or 0)
            retries[step] = max(retries.get(step, 0), number("retries") or 0)
    run.rows = sum(rows.values())
    run.kpi_rows = sum(kpi_rows.values())
    run.requests = sum(requests.values())
    run.retries = sum(retries.values())
    return run


@dataclass(frozen=True)
class StepFailure:
    """One failed step (or the run itself): the error's class and first line, and what kind of problem it is."""

    where: str
    cls: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.cls + ': ' if self.cls else ''}{self.message}"

    @property
    def kind(self) -> str:
        return failure_kind(self.cls, self.message)


# What to do about a failed run, by kind of failure (issue #19 item 4: the fix matches the error, it does not
# always blame an account). `{analyst}` is the analysts' copy.
FAILURE_FIXES = {
    "configuration": "correct the file and key named above (docs/configuration.md lists them; `mkpi doctor` checks "
                     "both files); nothing was requested",
    "lock": "close the program named above, which has the working DuckDB file open (a notebook, BI tool or DuckDB "
            "CLI): analysts read the analysts' copy {analyst}, never the working file",
    "disk": "free space on the disk named above, or point MKPI_DUCKDB_PATH / MKPI_ANALYST_DB to a disk with room; "
            "nothing half-written was kept",
    "platform": "the error above names the account and what to change (`mkpi doctor` checks access)",
    "other": "`mkpi --debug backfill ...` shows the step logs and the traceback",
}
_CONFIG_ERRORS = frozenset({"ConfigError", "ObjectiveError", "CatalogueError"})
_PLATFORM_ERRORS = frozenset({"SourceError", "InvalidResponse", "RetriesExhausted"})


def failure_kind(cls: str, message: str) -> str:
    """configuration, lock, disk, platform or other, from the error's class and message."""
    from connectors.publish import is_disk_full

    if cls in _CONFIG_ERRORS:
        return "configuration"
    if cls == "WorkingFileLocked" or "Could not set lock on file" in message:
        return "lock"
    if cls == "DiskFull" or is_disk_full(Exception(message)):
        return "disk"
    if cls in _PLATFORM_ERRORS or (cls == "Failure" and "accounts failed" in message):
        return "platform"
    return "other"


def failures_of(result: Any) -> list[StepFailure]:
    """Each failed step and the first line of its error (the connector's message, not Dagster's wrapper)."""
    found: list[StepFailure] = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error, where = event.step_failure_data.error, f"step {event.step_key}"
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":  # a resource's setup refused the run (preflight)
            error, where = getattr(event.event_specific_data, "error", None), "run setup"
        else:
            continue
        found.append(_step_failure(where, error) if error is not None else StepFailure(where, "", "failed"))
    if not found and not result.success:
        for event in result.all_events:
            if event.event_type_value == "RUN_FAILURE":
                found.append(StepFailure("run", "", first_line(event.message or "failed")))
    if not found and not result.success:
        found.append(StepFailure("run", "", "failed without a step error (see `mkpi --debug backfill`)"))
    return found


def _step_failure(where: str, error: Any) -> StepFailure:
    """The innermost error of Dagster's wrappers (a resource error wraps the ObjectiveError that caused it)."""
    inner = error
    while inner.cause is not None and (inner.cls_name or "").startswith("Dagster"):
        inner = inner.cause
    cls = (inner.cls_name or "").rsplit(".", 1)[-1]
    message = _URL_PREFIX.sub("", first_line(inner.message))
    if ": " in message and message.split(": ", 1)[0].rsplit(".", 1)[-1] == cls:
        message = message.split(": ", 1)[1]
    return StepFailure(where, cls, message)


def _step_count(job: dg.JobDefinition, keys: Sequence[dg.AssetKey] | None) -> int | None:
    """How many steps the run will execute (ops plus separate check ops), for the progress bar's total."""
    try:
        subset = job.get_subset(asset_selection=set(keys)) if keys else job
        return len(subset.graph.nodes)
    except Exception:  # noqa: BLE001 - only the bar's total depends on it
        log.debug("step count unavailable", exc_info=True)
        return None


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """The DAGSTER_HOME instance when set (runs show in `make dev`), else an ephemeral one, as `make demo` does."""
    import dagster as dg

    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    with instance:
        yield instance


def cmd_backfill(args: argparse.Namespace, debug: bool) -> int:
    """One Dagster run per source (the schedule's own selection: raw assets, KPI tables, objectives, analysts' copy).

    One source at a time keeps the progress honest (a bar per source, advanced as its steps finish) and lets a
    failing source leave the others' KPIs rebuilt, as the daily schedule does. Before the first run: both files
    are checked (nothing is requested on a configuration that would fail later) and runs a killed `mkpi` left
    holding the writer slot are swept (pipelines/lib/stale_runs.py)."""
    settings = _checked_inputs()
    _validate_window(args.start, args.end, settings)
    sources = _sources_to_backfill(args.sources, settings)

    from pipelines.definitions import defs
    from pipelines.defs.schedules import REFRESHES
    from pipelines.lib.stale_runs import sweep_stale_runs

    keys_of = {r.source: r.asset_keys() for r in REFRESHES}
    out = make_console()
    # Dagster's console log repeats every failure with its stack trace: the summary names them in one line instead
    log_level = "DEBUG" if debug else "CRITICAL"
    runs: list[SourceRun] = []
    out.print(Text(f"Backfill {args.start} .. {args.end}: {', '.join(sources)} -> {settings.duckdb_path}"))
    if "hubspot" in sources:
        out.print(Text("HubSpot is incremental: it reads what changed since its cursors, whatever the dates.",
                       style="dim"))
    with dagster_instance() as instance:
        for swept in sweep_stale_runs(instance):
            out.print(Text(f"Freed the writer slot of a dead run: {swept.describe()}.", style="yellow"))
        jobs = {s: defs.resolve_job_def("hubspot_refresh_job" if s == "hubspot" else "daily_refresh_job")
                for s in sources}
        progress = Progress(SpinnerColumn(), TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("steps"), TimeElapsedColumn(), TextColumn("[dim]{task.fields[step]}"),
                            console=out)
        tasks = {s: progress.add_task(s, total=_step_count(jobs[s], keys_of.get(s)), step="waiting", start=False)
                 for s in sources}
        with progress:
            for source in sources:
                runs.append(_run_source(source, jobs[source], keys_of.get(source), instance, progress,
                                        tasks[source], args.start, args.end, log_level))
            kinds = {f.kind for r in runs for f in r.failures}
            if not all(r.success for r in runs) and not kinds & {"lock", "configuration", "disk"}:
                # a failed run skipped its publish steps: publish what is good, with the failed source's status
                # (not when the working file is locked, the configuration wrong or the disk full: it would fail too)
                task = progress.add_task("publish", total=None, step="waiting", start=False)
                runs.append(_run_source("publish", defs.resolve_job_def("publish_job"), None, instance, progress,
                                        task, args.start, args.end, log_level))
        ephemeral = instance.is_ephemeral
    _print_backfill_summary(out, runs, ephemeral)
    failed = [r for r in runs if not r.success]
    if failed:
        _print_failures(failed, settings)
        return 1
    return 0


def _checked_inputs() -> Settings:
    """The configuration and the objectives file, checked before anything runs (issue #19 item 11)."""
    from kpi_models.objectives import ObjectiveError

    try:
        return check_run_inputs()
    except ObjectiveError as exc:
        raise CliError(f"objectives: {exc}", OBJECTIVES_FIX) from exc


def _sources_to_backfill(requested: Sequence[str] | None, settings: Settings) -> list[str]:
    """The --source values (each must be configured), else every configured source, in run order."""
    wanted = list(dict.fromkeys(requested or []))
    if wanted:
        available = set(configured_sources(settings))
        missing = [s for s in wanted if s not in available]
        if missing:
            first = missing[0]
            raise CliError(f"{PLATFORM_NAMES[first]} is not configured, so it cannot be backfilled",
                           f"{NEEDS[first]} (`mkpi doctor` checks every platform)")
        return [s for s in SOURCES if s in wanted]
    sources = configured_sources(settings)
    if not sources:
        raise CliError("no platform is configured, so there is nothing to backfill",
                       "configure at least one platform (`mkpi doctor` says which variables to set), or try "
                       "`mkpi demo` on the local sandbox")
    return sources


def _print_failures(failed: Sequence[SourceRun], settings: Settings) -> None:
    """Each failure in one line, then one `fix:` line per kind of failure (configuration, lock, disk, platform)."""
    err = make_console(stderr=True)
    secrets = known_secrets(settings)
    kinds: list[str] = []
    for run in failed:
        for failure in run.failures:
            err.print(Text(f"mkpi: {run.source} failed at {redact(str(failure), secrets)}", style="bold red"))
            kinds.append(failure.kind)
    for kind in dict.fromkeys(kinds or ["other"]):
        fix = FAILURE_FIXES[kind].format(analyst=settings.analyst_db)
        err.print(Text(f"fix: {redact(fix, secrets)}; re-running is safe, every write replaces its window"))


def _run_source(source: str, job: dg.JobDefinition, keys: Sequence[dg.AssetKey] | None,
                instance: dg.DagsterInstance, progress: Progress, task: Any, start: date, end: date,
                log_level: str) -> SourceRun:
    """Execute one source's run in process, advancing its bar from the run's own step events.

    The run executes in a thread so that this (main) thread stays free to say what a waiting step waits for, and
    to stop on Ctrl-C or SIGTERM: Dagster defers both signals while it executes a run in the main thread, and never
    looks at them while a step waits for a pool slot (dagster 1.13.27: capture_interrupts in
    `_core/execution/api.py`; the in-process executor's loop in `_core/execution/plan/execute_plan.py`), so a
    waiting `mkpi` could not be stopped."""
    from pipelines.defs.schedules import SOURCE_TAG, range_tags
    from pipelines.lib.stale_runs import owner_tags

    run = SourceRun(source=source, job=job.name, run_id=str(uuid.uuid4()))
    wait = PoolWait(source, run.run_id, instance, progress, task)

    def on_event(entry: Any) -> None:
        # Called by the instance for every event of this run, synchronously: never let the bar break the run.
        try:
            event = entry.dagster_event if entry.is_dagster_event else None
            if event is None or event.step_key is None:
                return
            kind = event.event_type_value
            if kind == "ENGINE_EVENT" and "blocked by limit for pool" in (event.message or ""):
                wait.blocked(event.step_key)
            elif kind == "STEP_START":
                wait.started(event.step_key)
                progress.update(task, step=event.step_key)
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                progress.advance(task)
        except Exception:  # noqa: BLE001
            log.debug("progress update failed", exc_info=True)

    try:  # DagsterInstance.add_event_listener: without it the bar only jumps to done at the end
        instance.add_event_listener(run.run_id, on_event)
    except AttributeError:
        log.debug("no event listener on this Dagster instance: the progress bar will not move during the run")
    progress.start_task(task)
    # the owner tags let a later `mkpi` free this run's writer slot if this process is killed (stale_runs.py)
    tags = {SOURCE_TAG: source, "mkpi/trigger": "cli", **owner_tags(run.run_id)}
    if job.partitions_def is not None:  # a report source's window; HubSpot and publish runs have none
        tags.update(range_tags(start, end))
    began = time.monotonic()
    result = execute_interruptibly(
        lambda: job.execute_in_process(
            instance=instance, run_id=run.run_id, tags=tags, raise_on_error=False,
            asset_selection=list(keys) if keys else None,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}}),
        instance, run.run_id, source, on_tick=wait.tick)
    run.seconds = time.monotonic() - began
    run.success = result.success
    run.failures = failures_of(result)
    summarise_run(run, result.get_asset_materialization_events())
    task_total = next(t.total for t in progress.tasks if t.id == task)
    progress.update(task, completed=task_total or 1, total=task_total or 1,
                    description=f"{source} {OK if run.success else FAIL}", step="done" if run.success else "failed")
    progress.stop_task(task)
    return run


# How often the main thread looks at a running run: to stop it on a signal, and to update a waiting step's line.
TICK_SECONDS = 0.5
# While a step waits for the writer slot: how often to look for a dead holder, and to repeat the waiting line.
SWEEP_EVERY_SECONDS = 10.0
SAY_EVERY_SECONDS = 60.0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (a service manager's stop, `kill`, a Kubernetes pod's end)."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Raise _Terminated in the main thread on SIGTERM, for the duration of a run (the previous handler after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute_interruptibly(execute: Callable[[], Any], instance: dg.DagsterInstance, run_id: str, label: str,
                          on_tick: Callable[[], None] = lambda: None) -> Any:
    """`execute()` (one Dagster run) in a worker thread, while this thread calls `on_tick` every TICK_SECONDS.

    On Ctrl-C or SIGTERM the run is marked canceled and its pool slots (held or waited for) are freed, then
    RunInterrupted is raised: the instance is left consistent, and no later run waits for this one."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = execute()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as it is
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"mkpi-run-{run_id[:8]}", daemon=True)
    with _sigterm_as_interrupt():
        worker.start()
        try:
            while worker.is_alive():
                worker.join(TICK_SECONDS)
                on_tick()
        except KeyboardInterrupt as exc:
            why, code = ("SIGTERM", 143) if isinstance(exc, _Terminated) else ("Ctrl-C", 130)
            done = cancel_run(instance, run_id, f"mkpi stopped by {why}")
            raise RunInterrupted(f"stopped by {why}: {label} run {run_id[:8]} {done}", code,
                                 worker.is_alive()) from None
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def cancel_run(instance: dg.DagsterInstance, run_id: str, why: str) -> str:
    """Mark an unfinished run canceled and free the pool slots it holds or waits for; says what was done."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return "had not started"
    if run.is_finished:
        return f"had already ended ({run.status.value})"
    instance.report_run_canceled(run, f"{why}; the run's pool slots were freed by the same process")
    try:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    except NotImplementedError:  # a storage without pools
        pass
    return "marked canceled, its writer slot (held or awaited) given back"


class PoolWait:
    """Says what a run's step waits for (the `duckdb_write` slot, held by which run of which process) and for how
    long: a line when the wait starts, again every SAY_EVERY_SECONDS and whenever the holder changes, and the
    progress bar's text every tick. While waiting it also sweeps runs whose process died (stale_runs.py), so a
    slot held by a killed `mkpi` comes back within SWEEP_EVERY_SECONDS instead of never."""

    def __init__(self, source: str, run_id: str, instance: dg.DagsterInstance, progress: Progress,
                 task: Any) -> None:
        self.source, self.run_id, self.instance, self.progress, self.task = source, run_id, instance, progress, task
        self.since: float | None = None  # set by the worker thread's event listener
        self.step: str | None = None
        self._said_at = self._swept_at = 0.0
        self._holders = ""

    def blocked(self, step_key: str) -> None:
        """The run's step found the pool's slot taken (Dagster's 'Step blocked by limit for pool' event)."""
        if self.since is None:
            self.since, self.step = time.monotonic(), step_key

    def started(self, step_key: str) -> None:
        """A step started: if it was the waiting one, say how long it waited."""
        if self.since is not None and step_key == self.step:
            waited = time.monotonic() - self.since
            self.since = None
            self.progress.console.print(Text(f"{self.source}: got the writer slot after {_duration(waited)}",
                                             style="dim"))

    def tick(self) -> None:
        """Main thread, every TICK_SECONDS: while waiting, update the bar; sweep and re-say from time to time."""
        since = self.since
        if since is None:
            return
        from pipelines.lib.partitions import DUCKDB_POOL
        from pipelines.lib.stale_runs import slot_holders, sweep_stale_runs

        now = time.monotonic()
        try:
            if now - self._swept_at >= SWEEP_EVERY_SECONDS:
                self._swept_at = now
                for swept in sweep_stale_runs(self.instance):
                    self.progress.console.print(Text(f"Freed the writer slot of a dead run: {swept.describe()}.",
                                                     style="yellow"))
                found = [h for h in slot_holders(self.instance, DUCKDB_POOL) if h.run_id != self.run_id]
                holders = "; ".join(h.describe() for h in found) or "no run now (the slot is being handed over)"
                if any(h.owner is None or not h.owner.local for h in found):  # not a run this host can judge
                    holders += (" (if its process is gone, terminate the run in the Dagster UI: run monitoring then "
                                "frees its slot)")
                if holders != self._holders:
                    self._holders, self._said_at = holders, 0.0
        except Exception:  # noqa: BLE001 - the wait report must never break the run
            log.debug("could not read the pool's holders", exc_info=True)
        waited = _duration(now - since)
        self.progress.update(self.task, step=f"waiting {waited} for the writer slot ({DUCKDB_POOL})")
        if now - self._said_at >= SAY_EVERY_SECONDS:
            self._said_at = now
            self.progress.console.print(Text(
                f"{self.source}: waiting {waited} for the {DUCKDB_POOL} slot (one writer at a time), held by "
                f"{self._holders or 'another run'}; Ctrl-C cancels this run", style="yellow"))


def _duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _print_backfill_summary(out: Console, runs: Sequence[SourceRun], ephemeral: bool) -> None:
    table = Table(title="Backfill summary", title_justify="left")
    for name, justify in (("source", "left"), ("result", "left"), ("rows loaded", "right"), ("KPI rows", "right"),
                          ("requests", "right"), ("retries", "right"), ("time", "right"), ("run id", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        result = Text(f"{OK} ok", style="green") if run.success else Text(f"{FAIL} failed", style="red")
        table.add_row(run.source, result, f"{run.rows:,}", f"{run.kpi_rows:,}", str(run.requests), str(run.retries),
                      f"{run.seconds:.1f}s", run.run_id[:8])
    out.print(table)
    where = ("an ephemeral Dagster instance (set DAGSTER_HOME to keep the run history)" if ephemeral
             else f"DAGSTER_HOME={os.environ.get('DAGSTER_HOME')} (`make dev` shows the runs)")
    out.print(Text(f"Runs recorded in {where}.", style="dim"))


# --- kpis ----------------------------------------------------------------------------------------------------------


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
    if working.is_file():
        return working, "working db"
    raise CliError(f"no KPI database yet: neither the analysts' copy {analyst} nor the working file {working} exists",
                   "run `mkpi backfill --start ... --end ...` (or `mkpi demo`), or pass --db PATH")


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
        SELECT kpi, source, channel, actual, coalesce(target_to_date, target) AS target_now, target, attainment,
               status, gap_text, unit, currency, period_start, period_end, as_of, provisional
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
    """The latest week of kpi.kpi_weekly, all channels together, beside the objective where one exists.

    Objectives are per month (or quarter, year): a rate is compared with its target as it stands; a sum with
    the target pro-rated to the days of the period the week has data for, like kpi_vs_objective does to date."""
    from kpi_models.catalogue import load_catalogue
    from kpi_models.objectives import BUDGET_KPIS, attainment, budget_status, period_bounds, status

    if not _has_table(conn, "kpi", "kpi_weekly"):
        raise CliError("this database has no kpi.kpi_weekly view yet", "run `mkpi backfill` to build the KPI layer")
    latest = conn.execute("SELECT max(week_start) FROM kpi.kpi_weekly").fetchone()
    if not latest or latest[0] is None:
        return "no weekly KPI yet", []
    week_start = latest[0]
    catalogue = load_catalogue()
    # Per channel and over all channels ('all'), summed over accounts: a ratio recomputed from the summed parts.
    additive = [k.kpi for k in catalogue.daily() if k.additive]
    cursor = conn.execute(
        "SELECT kpi, source, coalesce(channel, 'all') AS channel, CASE WHEN kpi IN (SELECT unnest(?)) "
        "THEN sum(numerator) ELSE sum(numerator) / nullif(sum(denominator), 0) END AS value, "
        "sum(numerator) AS numerator, sum(denominator) AS denominator, any_value(currency) AS currency, "
        "max(days_with_data) AS days_with_data, any_value(week_end) AS week_end, any_value(iso_week) AS iso_week "
        "FROM kpi.kpi_weekly WHERE week_start = ? GROUP BY GROUPING SETS ((kpi, source, channel), (kpi, source)) "
        "HAVING grouping(channel) = 1 OR channel <> 'all'", [additive, week_start])
    names = [d[0] for d in cursor.description]
    weekly = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    objectives: list[dict[str, Any]] = []
    if _has_table(conn, "kpi", "objective"):
        cur = conn.execute("SELECT * FROM kpi.objective")
        onames = [d[0] for d in cur.description]
        objectives = [dict(zip(onames, r, strict=True)) for r in cur.fetchall()]
    rank = {"month": 0, "quarter": 1, "year": 2}
    chosen: dict[tuple[str, str, str], dict[str, Any]] = {}
    week_end = weekly[0]["week_end"] if weekly else week_start
    for o in sorted(objectives, key=lambda o: rank.get(o["period"], 9)):
        valid_from, valid_until = _as_date(o.get("valid_from")), _as_date(o.get("valid_until"))
        if (valid_from and valid_from > week_end) or (valid_until and valid_until < week_start):
            continue
        if o.get("account_id"):
            continue  # this view sums every account of a source: an account's own objective is judged per month
        chosen.setdefault((o["kpi"], o["source"], o.get("channel") or "all"), o)
    rows = []
    for w in weekly:
        objective = chosen.get((w["kpi"], w["source"], w["channel"]))
        if w["channel"] != "all" and objective is None:
            continue  # channels only where an objective targets them; the 'all' row is the KPI's total
        definition = catalogue.kpis.get(w["kpi"])
        unit = definition.unit if definition else None
        row = {"kpi": w["kpi"], "source": w["source"], "channel": w["channel"], "actual": w["value"],
               "unit": unit, "currency": w["currency"] if unit == "currency" else None,
               "target_now": None, "attainment": None, "status": None, "gap_text": ""}
        if objective is not None and definition is not None:
            target = float(objective["target"])
            if definition.additive:
                period_start, period_end = period_bounds(objective["period"], week_start)
                target *= (w["days_with_data"] or 0) / ((period_end - period_start).days + 1)
                row["gap_text"] = f"{objective['period']} target pro-rated to {w['days_with_data']} days"
            minimum = objective.get("min_denominator")
            if minimum is None or minimum != minimum:  # NaN from DuckDB
                minimum = float(settings.min_denominators.get(definition.unit, 0.0))
            actual = w["value"]
            attained = attainment(actual, target, definition.lower_is_better)
            row["target_now"], row["attainment"] = target, attained
            too_small = not definition.additive and (w["denominator"] or 0) < (minimum or 0)
            tolerance = float(objective["tolerance"])
            if w["kpi"] in BUDGET_KPIS:  # a budget: over- and under-spend are both off
                row["status"] = budget_status(actual, target, tolerance)
            else:
                row["status"] = "insufficient_data" if too_small else status(
                    attained, tolerance, actual, target, definition.lower_is_better)
        rows.append(row)
    days = max((w["days_with_data"] or 0) for w in weekly) if weekly else 0
    title = f"week {weekly[0]['iso_week']} ({week_start} .. {week_end}, {days} day(s) with data)" if weekly else ""
    return title, rows


def _as_date(value: Any) -> date | None:
    if value is None or value != value:  # None or NaT/NaN
        return None
    return value.date() if isinstance(value, datetime) else value


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
        attained = r["attainment"]
        table.add_row(families.get(r["kpi"], ""), r["kpi"], r["source"] or "", r["channel"] or "all",
                      format_value(r["actual"], r["unit"], r["currency"], kpi=r["kpi"]),
                      format_value(r["target_now"], r["unit"], r["currency"], kpi=r["kpi"]),
                      "-" if attained is None or attained != attained else f"{attained:.2f}",
                      _status_text(r["status"], bool(r.get("provisional"))), r["gap_text"] or "")
    out.print(table)
    out.print(Text(", ".join(f"{n} {s}" for s, n in sorted(counts.items())), style="dim"))
    if any(r.get("provisional") for r in rows):
        out.print(Text("* provisional: rests on days still inside a source's restatement window (or not yet "
                       "complete); the value will still move", style="dim"))
    return 0


# --- doctor --------------------------------------------------------------------------------------------------------


@dataclass
class Finding:
    """One thing doctor verified (ok) or found broken, with the exact fix."""

    ok: bool
    text: str
    fix: str | None = None


@dataclass
class PlatformReport:
    platform: str
    configured: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)


def _is_configured(source: str, settings: Settings) -> bool:
    """Configured = the user set something for it; a partial setup is configured (and check() says what is missing)."""
    if source == "ga4":
        return bool(settings.ga4.property_ids)
    if source == "search_console":
        return bool(settings.search_console.sites)
    if source == "google_ads":
        return bool(settings.google_ads.customer_ids)
    if source == "hubspot":
        return settings.hubspot.token is not None
    return bool(settings.matomo.url or settings.matomo.site_ids or settings.matomo.token)


def _google_account(credentials_file: str | None, endpoint: str | None, scopes: tuple[str, ...],
                    platform: str, variable: str) -> str:
    """Who needs the access (a service account's e-mail when there is one), for the 'grant ...' advice."""
    from connectors.google_auth import resolve_credentials

    try:
        credentials = resolve_credentials(credentials_file, endpoint, scopes, platform, variable)
    except ConfigError:
        return "the account of your credentials"
    email = getattr(credentials, "service_account_email", None)
    return email if email and "@" in str(email) else "the account of your credentials"


def _api_error(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status if known, the platform's message) from a Google or HubSpot client error, or our SourceError."""
    cause = exc.__cause__ if isinstance(exc, SourceError) and exc.__cause__ is not None else exc
    status = None
    for attr in ("status_code", "status", "code"):  # googleapiclient, hubspot, google-api-core
        value = getattr(cause, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            status = value
            break
    message = str(exc) if isinstance(exc, SourceError) else str(getattr(exc, "message", "") or exc)
    if message.startswith(("POST http", "GET http")) and ": " in message:
        message = message.split(": ", 1)[1]  # google-api-core prefixes the URL
    return status, first_line(message)


def doctor_ga4(settings: Settings) -> PlatformReport:
    """GA4: a 1-row runReport (yesterday, sessions) per property, the cheapest call that proves read access."""
    from connectors.ga4 import SCOPES, Ga4Connector
    from connectors.google_auth import insufficient_scopes, scope_advice

    report = PlatformReport("GA4", True)
    ga4 = dataclasses.replace(settings.ga4, timeout_seconds=min(settings.ga4.timeout_seconds, DOCTOR_TIMEOUT))
    connector = Ga4Connector(ga4)
    try:
        properties = connector.check()
    except ConfigError as exc:
        report.findings.append(Finding(False, "configuration refused before any request", str(exc)))
        return report
    from google.analytics.data_v1beta.types import DateRange, Metric, RunReportRequest

    account = _google_account(ga4.credentials_file, ga4.endpoint, SCOPES, "GA4", "MKPI_GA4_ENDPOINT")
    where = f" via {ga4.endpoint}" if ga4.endpoint else ""
    for pid in properties:
        request = RunReportRequest(property=f"properties/{pid}", metrics=[Metric(name="sessions")],
                                   date_ranges=[DateRange(start_date="yesterday", end_date="yesterday")], limit=1)
        try:
            response = connector.client().run_report(request=request, retry=None, timeout=ga4.timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - every failure becomes advice
            status, message = _api_error(exc)
            accepted = insufficient_scopes(exc)  # a 403 too, but the token's scopes, not the property's access
            if accepted is not None:
                fix = scope_advice("GA4", SCOPES, accepted)
            elif status == 403:
                fix = (f"grant {account} the Viewer role on property {pid} (GA4 Admin > Property access management)")
            elif status == 404:
                fix = (f"property {pid} does not exist: check MKPI_GA4_PROPERTY_IDS (GA4 Admin > Property details "
                       "shows the numeric id)")
            elif status == 401:
                fix = ("the credentials were refused: point GOOGLE_APPLICATION_CREDENTIALS to a valid "
                       "service-account key")
            elif status == 429:
                fix = "the property's quota is spent for now: retry in an hour"
            else:
                fix = (f"could not reach GA4{where}: check the network and MKPI_GA4_ENDPOINT (unset for Google)"
                       if status is None else "see GA4's message above")
            report.findings.append(Finding(False, f"property {pid}: runReport refused: {message}", fix))
            continue
        sessions = response.rows[0].metric_values[0].value if response.rows else "0"
        report.findings.append(Finding(True, f"property {pid}: runReport answered{where} ({sessions} sessions "
                                             "yesterday)"))
    return report


def doctor_search_console(settings: Settings) -> PlatformReport:
    """Search Console: sites().list() once, then each configured property must be in it with a real permission."""
    from connectors.google_auth import insufficient_scopes, scope_advice
    from connectors.search_console import SCOPES, SearchConsoleConnector

    report = PlatformReport("Search Console", True)
    gsc = dataclasses.replace(settings.search_console,
                              timeout_seconds=min(settings.search_console.timeout_seconds, DOCTOR_TIMEOUT))
    connector = SearchConsoleConnector(gsc)
    try:
        sites = connector.check()
    except ConfigError as exc:
        report.findings.append(Finding(False, "configuration refused before any request", str(exc)))
        return report
    account = _google_account(gsc.credentials_file, gsc.endpoint, SCOPES, "Search Console",
                              "MKPI_SEARCH_CONSOLE_ENDPOINT")
    try:
        listed = connector.service().sites().list().execute(num_retries=0)
    except Exception as exc:  # noqa: BLE001
        status, message = _api_error(exc)
        if isinstance(getattr(exc, "reason", None), str) and exc.reason:  # googleapiclient's HttpError: Google's words
            message = first_line(exc.reason)
        accepted = insufficient_scopes(exc)
        if accepted is not None:
            fix = scope_advice("Search Console", SCOPES, accepted)
        elif status in (401, 403):
            fix = "the credentials were refused: point GOOGLE_APPLICATION_CREDENTIALS to a valid service-account key"
        else:
            fix = "check the network and MKPI_SEARCH_CONSOLE_ENDPOINT (unset for Google)"
        report.findings.append(Finding(False, f"sites.list refused: {message}", fix))
        return report
    entries = {e.get("siteUrl"): e.get("permissionLevel") for e in (listed or {}).get("siteEntry", [])}
    for site in sites:
        level = entries.get(site)
        if level in ("siteOwner", "siteFullUser", "siteRestrictedUser"):
            report.findings.append(Finding(True, f"{site}: listed, permission {level}"))
            continue
        grant = (f"in Search Console > Settings > Users and permissions of {site}, add {account} as a user "
                 "(Restricted is enough)")
        if level is None:
            visible = ", ".join(sorted(s for s in entries if s)) or "none"
            report.findings.append(Finding(False, f"{site}: not among the properties this account sees ({visible})",
                                           f"{grant}, or fix the spelling in MKPI_SEARCH_CONSOLE_SITES (a domain "
                                           "property is sc-domain:example.com, a URL property ends with /)"))
        else:
            report.findings.append(Finding(False, f"{site}: listed with permission {level}, which cannot read data",
                                           grant))
    return report


def doctor_google_ads(settings: Settings) -> PlatformReport:
    """Google Ads: `SELECT customer.id FROM customer LIMIT 1` per customer (one row, no metrics)."""
    from connectors.google_ads import GoogleAdsConnector, classify

    report = PlatformReport("Google Ads", True)
    connector = GoogleAdsConnector(settings.google_ads)
    try:
        customers = connector.check()
        service = connector.service()
    except ConfigError as exc:
        report.findings.append(Finding(False, "configuration refused before any request", str(exc)))
        return report
    secrets = known_secrets(settings)
    for cid in customers:
        try:
            rows = list(service.search(customer_id=cid, query="SELECT customer.id FROM customer LIMIT 1",
                                       timeout=DOCTOR_TIMEOUT))
        except Exception as exc:  # noqa: BLE001
            reason = redact(first_line(getattr(classify(exc), "reason", str(exc))), secrets)
            report.findings.append(Finding(False, f"customer {cid}: query refused: {reason}", _ads_fix(reason, cid)))
            continue
        report.findings.append(Finding(True, f"customer {cid}: query answered ({len(rows)} row)"))
    return report


def _ads_fix(reason: str, cid: str) -> str:
    upper = reason.upper()
    if "DEVELOPER_TOKEN" in upper:
        return ("MKPI_GOOGLE_ADS_DEVELOPER_TOKEN is not accepted for this account: copy it from Google Ads > Tools > "
                "API Center (a test token only reaches test accounts; production needs Basic access)")
    if "USER_PERMISSION_DENIED" in upper or "PERMISSION_DENIED" in upper:
        return (f"the OAuth user or service account has no access to customer {cid}: grant it in Google Ads > Admin "
                "> Access and security, or set MKPI_GOOGLE_ADS_LOGIN_CUSTOMER_ID to the manager account above it")
    if "UNAUTHENTICATED" in upper or "AUTHENTICATION_ERROR" in upper:
        return ("the credentials were refused: check MKPI_GOOGLE_ADS_CLIENT_ID, MKPI_GOOGLE_ADS_CLIENT_SECRET and "
                "MKPI_GOOGLE_ADS_REFRESH_TOKEN, or MKPI_GOOGLE_ADS_JSON_KEY_FILE")
    if "CUSTOMER_NOT_FOUND" in upper or "NOT_ENABLED" in upper or "INVALID_CUSTOMER_ID" in upper:
        return f"customer {cid} does not exist or is disabled: check MKPI_GOOGLE_ADS_CUSTOMER_IDS"
    if "UNAVAILABLE" in upper or "DEADLINE" in upper:
        return "could not reach Google Ads: check the network, or MKPI_GOOGLE_ADS_ENDPOINT (unset for Google)"
    return "see Google Ads' message above"


def doctor_hubspot(settings: Settings) -> PlatformReport:
    """HubSpot: GET /crm/v3/owners?limit=1 through the connector (its rate limit, redaction and error wording)."""
    from connectors.hubspot import HubSpotConnector

    report = PlatformReport("HubSpot", True)
    hubspot = dataclasses.replace(settings.hubspot,
                                  timeout_seconds=min(settings.hubspot.timeout_seconds, DOCTOR_TIMEOUT))
    connector = HubSpotConnector(hubspot, policy=DOCTOR_POLICY)
    try:
        host = connector.check()
    except ConfigError as exc:
        report.findings.append(Finding(False, "configuration refused before any request", str(exc)))
        return report
    owners = connector.sub("crm.owners.owners_api")
    try:
        body = connector.call("GET /crm/v3/owners?limit=1", lambda: owners.get_page(
            limit=1, _preload_content=False, _request_timeout=hubspot.timeout_seconds))
    except SourceError as exc:
        status, _ = _api_error(exc)
        if status == 401:
            fix = ("MKPI_HUBSPOT_TOKEN is not accepted by the portal: copy the access token of the private app "
                   "(HubSpot > Settings > Integrations > Private apps > Auth) into MKPI_HUBSPOT_TOKEN")
        elif status == 403:
            fix = ("the private app lacks a scope: add crm.objects.owners.read (and crm.objects.*.read, "
                   "crm.schemas.*.read, content) in HubSpot > Settings > Integrations > Private apps > Scopes")
        elif status == 429:
            fix = "the portal's rate limit is spent for now: retry in a minute"
        else:
            fix = f"could not reach {host}: check the network and MKPI_HUBSPOT_ENDPOINT (unset for HubSpot)"
        # "hubspot account portal: GET ...: 401 Authentication credentials not found. This API supports ..."
        answer = first_line(str(exc)).split("limit=1: ", 1)[-1].split(". ", 1)[0].rstrip(".")
        report.findings.append(Finding(False, f"GET /crm/v3/owners refused: {answer}", fix))
        return report
    found = len(body.get("results", [])) if isinstance(body, dict) else 0
    where = f" via {host}" if settings.hubspot.endpoint else ""
    report.findings.append(Finding(True, f"token accepted{where}: GET /crm/v3/owners answered ({found} owner)"))
    return report


def doctor_matomo(settings: Settings) -> PlatformReport:
    """Matomo: API.getMatomoVersion (token and URL), then SitesManager.getSiteFromId per site (view access)."""
    from connectors.matomo import TOKEN_ADVICE, MatomoConnector

    report = PlatformReport("Matomo", True)
    matomo = dataclasses.replace(settings.matomo, timeout_seconds=min(settings.matomo.timeout_seconds, DOCTOR_TIMEOUT))
    connector = MatomoConnector(matomo, policy=DOCTOR_POLICY)
    try:
        sites = connector.check()
        endpoint = connector.endpoint()
    except ConfigError as exc:
        report.findings.append(Finding(False, "configuration refused before any request", str(exc)))
        return report
    try:
        version = connector.call("API.getMatomoVersion", "instance")
    except SourceError as exc:
        if TOKEN_ADVICE in str(exc):  # Matomo answered, and refused the token (HTTP 401 in Matomo 5, or 200)
            report.findings.append(Finding(False, f"API.getMatomoVersion refused: {first_line(str(exc))}",
                                           "MKPI_MATOMO_TOKEN is not accepted: create an auth token in Matomo > "
                                           "Personal > Security > Auth tokens for a user with view access"))
        else:
            report.findings.append(Finding(False, f"{endpoint} did not answer: {first_line(str(exc))}",
                                           "check MKPI_MATOMO_URL (the instance's base URL, e.g. "
                                           "https://matomo.example.com/) and the network"))
        return report
    shown = version.get("value") if isinstance(version, dict) else version
    report.findings.append(Finding(True, f"{endpoint}: Matomo {shown}, token accepted"))
    for site in sites:
        try:
            answer = connector.call("SitesManager.getSiteFromId", site, idSite=site)
        except SourceError as exc:
            if TOKEN_ADVICE in str(exc):
                report.findings.append(Finding(
                    False, f"site {site}: {first_line(str(exc))}",
                    f"give the token's user view access to site {site} (Matomo > Administration > System > Users), "
                    "or fix MKPI_MATOMO_SITE_IDS"))
            else:
                report.findings.append(Finding(False, f"site {site}: {first_line(str(exc))}",
                                               "retry; check the network"))
            continue
        answer = answer[0] if isinstance(answer, list) and answer else answer
        name = answer.get("name") if isinstance(answer, dict) else None
        details = ", ".join(str(answer.get(k)) for k in ("currency", "timezone") if isinstance(answer, dict)
                            and answer.get(k))
        label = f"site {site}: {name or 'readable'}" + (f" ({details})" if details else "")
        report.findings.append(Finding(True, label))
    return report


DOCTORS: dict[str, Callable[[Settings], PlatformReport]] = {
    "ga4": doctor_ga4, "search_console": doctor_search_console, "google_ads": doctor_google_ads,
    "hubspot": doctor_hubspot, "matomo": doctor_matomo,
}


def cmd_doctor(args: argparse.Namespace, debug: bool) -> int:
    """Both files first (config/mkpi.yaml with the environment, then the objectives file): a wrong key, type, range
    or KPI name is one finding and a non-zero exit. Then each platform: not configured (what to set), or check()
    then one cheap real request; non-zero if any fails."""
    settings, files = _doctor_files()
    if settings is None:
        out = make_console()
        _print_report(out, files, [])
        out.print(Text("Fix the configuration first: no platform was checked.", style="bold red"))
        return 1
    # the report says it all; the clients' own warnings (and the retry helper's) would only repeat it
    quiet = {} if debug else {"google.ads.googleads": logging.ERROR, "mkpi": logging.ERROR}
    with log_levels(quiet):
        return _doctor(settings, debug, files)


def _doctor_files() -> tuple[Settings | None, PlatformReport]:
    """The settings (None when invalid) and what doctor found in the two files, checked as every run checks them:
    config/mkpi.yaml by connectors.settings, the objectives file against the KPI catalogue."""
    from kpi_models.objectives import ObjectiveError, load_objectives, resolve_objectives_path

    report = PlatformReport("Configuration", True)
    fix = "correct that key: docs/configuration.md lists every key, its default and its allowed values"
    try:
        settings = read_settings()
    except ConfigError as exc:
        report.findings.append(Finding(False, " ".join(str(exc).split()), fix))
        return None, report
    where = f"config file {settings.config_path}" if settings.config_path else "no config file (defaults)"
    report.findings.append(Finding(True, f"{where}: every key valid (with the MKPI_* variables laid over it)"))
    try:
        objectives = load_objectives(settings.objectives_path)
    except (ObjectiveError, ConfigError) as exc:
        report.findings.append(Finding(False, " ".join(str(exc).split()),
                                       "correct that entry: docs/configuration.md#the-objectives-file lists the "
                                       "fields; KPI names are those of kpi_models/catalogue.yaml"))
    else:
        report.findings.append(Finding(True, f"objectives file {resolve_objectives_path(settings.objectives_path)}: "
                                             f"{len(objectives)} objective(s) valid"))
    return settings, report


def _print_report(out: Console, report: PlatformReport, secrets: list[str]) -> None:
    """One platform's (or the files') block: a mark and name, then each finding with its fix."""
    mark, style = (OK, "bold green") if report.ok else (FAIL, "bold red")
    out.print(Text(f"{mark} {report.platform}", style=style))
    for finding in report.findings:
        out.print(Text.assemble(("    ", ""), (OK if finding.ok else FAIL, "green" if finding.ok else "red"),
                                " ", redact(finding.text, secrets)))
        if finding.fix:
            out.print(Text.assemble(("      fix: ", "bold"), redact(finding.fix, secrets)))


def _doctor(settings: Settings, debug: bool, files: PlatformReport | None = None) -> int:
    out = make_console()
    secrets = known_secrets(settings)
    if files is not None:
        _print_report(out, files, secrets)
    failed = configured = 0
    for source in ("ga4", "search_console", "google_ads", "hubspot", "matomo"):
        name = PLATFORM_NAMES[source]
        if not _is_configured(source, settings):
            out.print(Text.assemble((f"{SKIP} {name}", "bold dim"), ("  not configured: ", "dim"), NEEDS[source]))
            continue
        configured += 1
        try:
            report = DOCTORS[source](settings)
        except Exception as exc:  # noqa: BLE001 - one platform's surprise must not hide the others' diagnosis
            if debug:
                out.print(Text(redact(traceback.format_exc(), secrets), style="dim"))
            report = PlatformReport(name, True, [Finding(False, f"{type(exc).__name__}: {first_line(str(exc))}",
                                                         "run `mkpi --debug doctor` for the traceback")])
        failed += not report.ok
        _print_report(out, dataclasses.replace(report, platform=name), secrets)
    files_ok = files is None or files.ok
    if not files_ok:
        out.print(Text("The configuration files need attention (above).", style="bold red"))
    if configured == 0:
        out.print(Text("No platform is configured yet: set the variables above (or run `mkpi demo` to try the "
                       "pipeline on the local sandbox).", style="yellow"))
    elif failed:
        out.print(Text(f"{failed} of {configured} configured platform(s) need attention.", style="bold red"))
    else:
        out.print(Text(f"All {configured} configured platform(s) answered.", style="bold green"))
    return 1 if failed or not files_ok else 0


COMMANDS: dict[str, Callable[[argparse.Namespace, bool], int]] = {
    "demo": cmd_demo, "backfill": cmd_backfill, "kpis": cmd_kpis, "doctor": cmd_doctor, "fx": fx_command.cmd_fx,
    "alerts": alerts_command.cmd_alerts, "serve": dashboard_serve.cmd_serve,
}


if __name__ == "__main__":
    raise SystemExit(main())
