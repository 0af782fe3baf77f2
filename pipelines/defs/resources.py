"""The only place resource keys are bound (Definitions.merge refuses two bindings of one key): the settings, the
working database, and one resource per registered source that has one (pipelines/lib/resources.py, keyed by the
registry's codes; each source's secret an EnvVar)."""


import dagster as dg

from pipelines.lib.resources import SettingsResource, WarehouseResource, source_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"settings": SettingsResource(), "warehouse": WarehouseResource(),
                                     **source_resources()})
