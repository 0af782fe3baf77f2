"""Dagster resources: thin wrappers that hand settings to plain-Python connectors and the loader.

Why thin: connectors and the loader must run (and be tested) without Dagster. Settings are read at
run time (environment over config file), so a secret is never part of run config or the UI.
"""


import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from connectors.batches import Batch
from connectors.ga4 import Ga4Connector
from connectors.google_ads import GoogleAdsConnector
from connectors.hubspot import HubSpotConnector
from connectors.matomo import MatomoConnector
from connectors.search_console import SearchConsoleConnector
from connectors.settings import Secret, Settings, load_settings
from connectors.warehouse import LoadResult, connect, load_batches


class SettingsResource(dg.ConfigurableResource):
    """Pipeline settings: `config/mkpi.yaml` (or MKPI_CONFIG), overridden by MKPI_* variables."""

    config_path: str | None = None

    def load(self) -> Settings:
        return load_settings(self.config_path)


class WarehouseResource(dg.ConfigurableResource):
    """The working DuckDB file (MKPI_DUCKDB_PATH, default data/marketing.duckdb); one writer at a time."""

    database: str | None = None
    config_path: str | None = None

    def path(self) -> str:
        return self.database or load_settings(self.config_path).duckdb_path

    @contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.path(), read_only=read_only) as conn:
            yield conn

    def load(self, batches: Iterable[Batch]) -> LoadResult:
        with self.connection() as conn:
            return load_batches(conn, batches)


class GA4Resource(dg.ConfigurableResource):
    """Google Analytics 4 Data API access: properties, endpoint and credentials from settings."""

    config_path: str | None = None

    def connector(self) -> Ga4Connector:
        return Ga4Connector(load_settings(self.config_path).ga4)


class SearchConsoleResource(dg.ConfigurableResource):
    """Search Console access: sites, endpoint and Google credentials from settings."""

    config_path: str | None = None

    def connector(self) -> SearchConsoleConnector:
        settings = load_settings(self.config_path)
        return SearchConsoleConnector(settings.search_console)


class MatomoResource(dg.ConfigurableResource):
    """Matomo Reporting API access. The token is bound as EnvVar("MKPI_MATOMO_TOKEN"): the UI and run
    config only ever show the variable's name, and it is resolved only for runs that read Matomo."""

    token: str
    config_path: str | None = None

    def connector(self) -> MatomoConnector:
        settings = load_settings(self.config_path).matomo
        return MatomoConnector(dataclasses.replace(settings, token=Secret(self.token)))


class GoogleAdsResource(dg.ConfigurableResource):
    """Google Ads API access. The developer token is bound as EnvVar("MKPI_GOOGLE_ADS_DEVELOPER_TOKEN");
    OAuth secrets are read from the environment at run time and never enter run config."""

    developer_token: str
    config_path: str | None = None

    def connector(self) -> GoogleAdsConnector:
        settings = load_settings(self.config_path).google_ads
        return GoogleAdsConnector(dataclasses.replace(settings, developer_token=Secret(self.developer_token)))


class HubSpotResource(dg.ConfigurableResource):
    """HubSpot private-app access. The token is bound as EnvVar("MKPI_HUBSPOT_TOKEN") and only ever sent
    in the Authorization header."""

    token: str
    config_path: str | None = None

    def connector(self) -> HubSpotConnector:
        settings = load_settings(self.config_path).hubspot
        return HubSpotConnector(dataclasses.replace(settings, token=Secret(self.token)))

