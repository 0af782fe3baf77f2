"""The only place resource keys are bound (Definitions.merge refuses two bindings of one key)."""


import dagster as dg

from pipelines.lib.resources import (
    GA4Resource,
    GoogleAdsResource,
    HubSpotResource,
    MatomoResource,
    SearchConsoleResource,
    SettingsResource,
    WarehouseResource,
)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "settings": SettingsResource(),
            "warehouse": WarehouseResource(),
            "ga4": GA4Resource(),
            "search_console": SearchConsoleResource(),
            "matomo": MatomoResource(token=dg.EnvVar("MKPI_MATOMO_TOKEN")),
            "google_ads": GoogleAdsResource(developer_token=dg.EnvVar("MKPI_GOOGLE_ADS_DEVELOPER_TOKEN")),
            "hubspot": HubSpotResource(token=dg.EnvVar("MKPI_HUBSPOT_TOKEN")),
        }
    )
