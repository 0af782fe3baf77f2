"""The one list of sources the pipeline reads: what every other module asks instead of spelling out five names.

Business purpose: adding a platform (issue #20, docs/issues/20.md) is a connector module, a sandbox server, an
entry here and its SQL — schedules, `mkpi doctor`, `mkpi backfill`, the Dagster assets, publishing, reserved
database names, the KPI catalogue's source vocabulary and the default windows all read this list.

This module imports nothing of the connectors at import time (settings and the catalogue import it); the connector
module of a source is imported when it is first asked for (`SourceSpec.connector_module`). Every such module answers
the source protocol of connectors/source.py (`STREAMS`, `connect`, `kpi_accounts`; the connector's `fetch` and
`probe`), and its raw tables are declared in connectors/raw_tables.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from connectors.settings import Settings

# report: the platform answers any past day on request (daily partitions, a trailing re-read window);
# incremental: the platform is read by cursor (what changed since the last committed cursor), rebuilt whole.
SourceKind = Literal["report", "incremental"]


@dataclass(frozen=True)
class SourceSpec:
    """One platform the pipeline reads, and the facts about it the rest of the code needs."""

    code: str  # the source code of kpi.kpi_daily and the raw schema's name ("ga4")
    label: str  # how people write it ("GA4")
    module: str  # the connector module, plain Python ("connectors.ga4")
    kind: SourceKind
    # KPI_CATALOGUE rule 7: days after which the platform no longer restates a day (a day read later is final)
    reread_days: int
    # days the newest KPI day may lag today before the source counts as stale (usual delay plus a margin)
    stale_after_days: int
    # what to set when the platform is not configured at all (the connector's own checks cover partial set-ups)
    setup: str
    # configured = the user set something for it; a partial set-up is configured (and `doctor` says what is missing)
    configured: Callable[[Settings], bool]
    # the source reports money (revenue, spend) that the FX table converts
    money: bool = False
    # the field of the source's settings section holding its configured re-read window (days)
    reread_setting: str = "reread_days"
    # the source's KPI SQL, a file beside its connector module (a path relative to the module's package): one row per
    # (date, source, account_id, channel) with measure columns, is_final and quality, its KPIs declared in
    # `-- @kpi <kpi>: <numerator> [/ <denominator>]` lines (kpi_models/catalogue.py adds them to kpi.kpi_daily)
    kpi_sql: str | None = None

    def connector_module(self) -> ModuleType:
        """The connector module, imported on first use."""
        return importlib.import_module(self.module)

    def configured_reread_days(self, settings: Settings) -> int:
        """The re-read window the user configured for this source (its settings section's `reread_setting`); a
        source without a settings section of its own (configured by its environment variables) re-reads its default."""
        section = getattr(settings, self.code, None)
        return self.reread_days if section is None else int(getattr(section, self.reread_setting))


def _section(name: str, *fields: str) -> Callable[[Any], bool]:
    """Configured when any of the section's fields is set."""
    return lambda settings: any(bool(getattr(getattr(settings, name), f)) for f in fields)


def _hubspot_configured(settings: Any) -> bool:
    return settings.hubspot.token is not None


# HubSpot first: the schedules and `mkpi backfill` run it before the report sources (its KPIs feed the ROI family).
SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        "hubspot", "HubSpot", "connectors.hubspot", "incremental", reread_days=30, stale_after_days=3,
        setup="set MKPI_HUBSPOT_TOKEN to a private-app access token (HubSpot > Settings > Integrations > "
              "Private apps) with the crm.objects.*.read, crm.schemas.*.read and content scopes",
        configured=_hubspot_configured, reread_setting="email_reread_days"),
    SourceSpec(
        "ga4", "GA4", "connectors.ga4", "report", reread_days=3, stale_after_days=2, money=True,
        setup="set MKPI_GA4_PROPERTY_IDS (numeric property ids) and GOOGLE_APPLICATION_CREDENTIALS (a service-account "
              "JSON key with Viewer access to the properties), or MKPI_GA4_ENDPOINT to a local sandbox",
        configured=_section("ga4", "property_ids")),
    SourceSpec(
        "search_console", "Search Console", "connectors.search_console", "report", reread_days=4,
        stale_after_days=4,
        setup="set MKPI_SEARCH_CONSOLE_SITES (e.g. sc-domain:example.com) and GOOGLE_APPLICATION_CREDENTIALS "
              "(a service account added as a user of each property), or MKPI_SEARCH_CONSOLE_ENDPOINT",
        configured=_section("search_console", "sites")),
    SourceSpec(
        "matomo", "Matomo", "connectors.matomo", "report", reread_days=3, stale_after_days=2, money=True,
        setup="set MKPI_MATOMO_URL, MKPI_MATOMO_SITE_IDS and MKPI_MATOMO_TOKEN (Matomo > Personal > Security > "
              "Auth tokens, a user with view access to the sites)",
        configured=_section("matomo", "url", "site_ids", "token")),
    SourceSpec(
        "google_ads", "Google Ads", "connectors.google_ads", "report", reread_days=30, stale_after_days=2,
        money=True,
        setup="set MKPI_GOOGLE_ADS_CUSTOMER_IDS, MKPI_GOOGLE_ADS_DEVELOPER_TOKEN and either "
              "MKPI_GOOGLE_ADS_CLIENT_ID, MKPI_GOOGLE_ADS_CLIENT_SECRET and MKPI_GOOGLE_ADS_REFRESH_TOKEN "
              "(OAuth) or MKPI_GOOGLE_ADS_JSON_KEY_FILE (service account); MKPI_GOOGLE_ADS_LOGIN_CUSTOMER_ID "
              "for a manager account",
        configured=_section("google_ads", "customer_ids")),
    # Meta's insights are delayed up to 48 hours and most update once every 24 hours (developers.facebook.com/docs/
    # instagram-platform/api-reference/instagram-user/insights, Limitations; .../graph-api/reference/insights): three
    # days re-read the two still moving plus the one that just settled.
    SourceSpec(
        "facebook", "Facebook", "connectors.facebook", "report", reread_days=3, stale_after_days=3,
        setup="set MKPI_FACEBOOK_PAGE_IDS (numeric Page ids) and MKPI_META_ACCESS_TOKEN (a long-lived Page or "
              "system-user token with pages_read_engagement, pages_show_list and read_insights)",
        configured=_section("facebook", "page_ids")),
    SourceSpec(
        "instagram", "Instagram", "connectors.instagram", "report", reread_days=3, stale_after_days=3,
        setup="set MKPI_INSTAGRAM_ACCOUNT_IDS (Instagram professional account ids) and MKPI_META_ACCESS_TOKEN (a "
              "token with instagram_basic, instagram_manage_insights and pages_read_engagement)",
        configured=_section("instagram", "account_ids")),
    # LinkedIn documents no restatement window: a day's statistics grow while its engagement arrives (connectors/
    # linkedin.py); three days re-read.
    SourceSpec(
        "linkedin", "LinkedIn", "connectors.linkedin", "report", reread_days=3, stale_after_days=3,
        setup="set MKPI_LINKEDIN_ORGANIZATION_IDS (digits of urn:li:organization:{id}) and "
              "MKPI_LINKEDIN_ACCESS_TOKEN (a page administrator's 60-day member token with r_organization_social, "
              "rw_organization_admin and r_organization_followers; docs/platforms/linkedin.md)",
        configured=_section("linkedin", "organization_ids", "access_token")),
)

_BY_CODE = {s.code: s for s in SOURCES}


class UnknownSource(KeyError):
    """A source code that is not in the registry."""


def source(code: str) -> SourceSpec:
    """The registry entry of a source code; an unknown code names the known ones."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise UnknownSource(f"unknown source {code!r}: choose from {', '.join(codes())}") from None


def codes(kind: SourceKind | None = None) -> tuple[str, ...]:
    """Source codes in run order (HubSpot first), optionally only those of one kind."""
    return tuple(s.code for s in SOURCES if kind is None or s.kind == kind)


def labels() -> dict[str, str]:
    """Source code -> how people write it."""
    return {s.code: s.label for s in SOURCES}


def money_codes() -> tuple[str, ...]:
    """The sources that report money (revenue, spend) the FX table converts, in run order."""
    return tuple(s.code for s in SOURCES if s.money)


def configured(settings: Settings) -> tuple[str, ...]:
    """The sources the user configured, in run order."""
    return tuple(s.code for s in SOURCES if s.configured(settings))
