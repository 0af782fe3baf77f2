"""Dagster resources carry real fields (issue #20 item 3): each platform's secret is a field bound to an EnvVar (the UI
and run config show the variable's name only), the settings are read once when a run sets its resources up (not on
every call), and the warehouse resource opens what the settings' backend says, or the file it is given.
"""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

import connectors.settings as settings_module
import pipelines.lib.preflight as preflight
from connectors.ducklake import is_ducklake
from connectors.errors import ConfigError
from pipelines.lib.resources import SettingsResource, WarehouseResource, source_resources

# The secret each platform resource binds, by hand from docs/configuration.md ("Secrets").
SECRET_FIELDS = {"matomo": ("token", "MKPI_MATOMO_TOKEN"), "hubspot": ("token", "MKPI_HUBSPOT_TOKEN"),
                 "google_ads": ("developer_token", "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN")}


def test_platform_secrets_are_fields_bound_to_their_variables() -> None:
    bound = source_resources()
    for code, (name, variable) in SECRET_FIELDS.items():
        value = getattr(bound[code], name)
        assert isinstance(value, dg.EnvVar) and value.env_var_name == variable, code


def test_settings_are_read_once_per_run_not_per_call(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(tmp_path / "marketing.duckdb"))
    reads: list[int] = []
    real = preflight.load_settings

    def counted(*args: object, **kwargs: object) -> settings_module.Settings:
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(preflight, "load_settings", counted)
    with dg.build_resources({"settings": SettingsResource(), "warehouse": WarehouseResource()}) as resources:
        first = resources.settings.load()
        assert resources.settings.load() is first and resources.settings.load() is first
        with resources.warehouse.connection() as conn:
            conn.execute("SELECT 1").fetchone()
        with resources.warehouse.connection() as conn:
            conn.execute("SELECT 1").fetchone()
    assert len(reads) == 2  # once per resource set up (outside a run there is no run id to share the read)


def test_the_warehouse_resource_opens_the_settings_backend_or_the_given_file(monkeypatch: pytest.MonkeyPatch,
                                                                              tmp_path: Path) -> None:
    working = tmp_path / "marketing.duckdb"
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(working))
    with dg.build_resources({"warehouse": WarehouseResource()}) as resources:
        with resources.warehouse.connection() as conn:
            assert not is_ducklake(conn)
            conn.execute("CREATE TABLE t AS SELECT 3 AS n")
    with duckdb.connect(str(working), read_only=True) as check:
        assert check.execute("SELECT n FROM t").fetchall() == [(3,)]
    # a lake configured without its catalog: refused when the resource is set up, before anything is opened
    monkeypatch.setenv("MKPI_WAREHOUSE_BACKEND", "ducklake")
    with pytest.raises(dg.DagsterResourceFunctionError) as caught:
        with dg.build_resources({"warehouse": WarehouseResource()}):
            pass
    refused = caught.value.user_exception
    assert isinstance(refused, ConfigError) and refused.key == "MKPI_DUCKLAKE_CATALOG"
    # `database` is a DuckDB file whatever the backend says
    given = tmp_path / "given.duckdb"
    monkeypatch.setenv("MKPI_DUCKLAKE_CATALOG", "host=127.0.0.1 port=1 dbname=none")
    resource = WarehouseResource(database=str(given))
    with resource.connection() as conn:
        assert not is_ducklake(conn)
        conn.execute("CREATE TABLE t AS SELECT 4 AS n")
    assert given.is_file() and not working.with_name("lake-data").exists()
