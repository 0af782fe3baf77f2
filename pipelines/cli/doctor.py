"""`mkpi doctor`: both configuration files, then per platform: configured? settings valid? one cheap real request.

Says exactly what to set or grant when something is missing; every line that may echo a platform's answer is
redacted. The platforms are the registry's (connectors/registry.py): a source not configured shows its set-up text
(`SourceSpec.setup`); a configured one is asked by its connector's `probe()` (connectors/source.py), which returns
the findings printed here, so this module never reaches into a connector's client.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import traceback
from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text

from connectors import registry
from connectors.errors import ConfigError
from connectors.http import redact
from connectors.probe import Finding
from connectors.settings import Settings
from pipelines.cli.common import FAIL, OK, SKIP, first_line, known_secrets, log_levels, make_console
from pipelines.lib.preflight import read_settings


@dataclass
class PlatformReport:
    """One block of doctor's output: a platform (or the configuration files) and what was found."""

    platform: str
    configured: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)


def probe_source(spec: registry.SourceSpec, settings: Settings) -> PlatformReport:
    """A configured platform's report: its connector's probe (which never raises for a platform's refusal)."""
    connector = spec.connector_module().connect(settings)
    return PlatformReport(spec.label, True, list(connector.probe()))


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
    for spec in registry.SOURCES:
        name = spec.label
        if not spec.configured(settings):
            out.print(Text.assemble((f"{SKIP} {name}", "bold dim"), ("  not configured: ", "dim"), spec.setup))
            continue
        configured += 1
        try:
            report = probe_source(spec, settings)
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
