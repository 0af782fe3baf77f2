"""`mkpi doctor`: both configuration files, then per platform: configured? settings valid? one cheap real request.

Says exactly what to set or grant when something is missing; every line that may echo a platform's answer is
redacted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text

from connectors import registry
from connectors.errors import ConfigError, SourceError
from connectors.http import RetryPolicy, redact
from connectors.settings import Settings
from pipelines.cli.common import FAIL, OK, SKIP, first_line, known_secrets, log_levels, make_console
from pipelines.lib.preflight import read_settings

PLATFORM_NAMES = registry.labels()
NEEDS = {spec.code: spec.setup for spec in registry.SOURCES}
# doctor: a platform that hangs should not hold the diagnosis for a minute
DOCTOR_TIMEOUT = 20.0
DOCTOR_POLICY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0, max_retry_after=5.0)


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
