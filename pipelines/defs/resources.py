"""The only place resource keys are bound (Definitions.merge refuses two bindings of one key)."""


import dagster as dg

from pipelines.lib.resources import GA4Resource, SettingsResource, WarehouseResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "settings": SettingsResource(),
            "warehouse": WarehouseResource(),
            "ga4": GA4Resource(),
        }
    )
