"""The warehouse backend is chosen explicitly (issue #20 item 3): `open_warehouse(settings.warehouse)` opens the DuckDB
file or the DuckLake by `backend`; `connect(path)` always opens a DuckDB file, whatever the settings say. Nothing
chooses the lake by comparing a path with the working database's (it once did, silently).

No PostgreSQL here: the lake itself is tested in tests/test_ducklake.py; these tests check which one is opened.
"""

import ast
from pathlib import Path

import duckdb
import pytest

import connectors.warehouse as warehouse
from connectors.ducklake import is_ducklake
from connectors.errors import ConfigError
from connectors.settings import PROJECT_ROOT, Secret, WarehouseSettings, load_settings

LAKE_ENV = {"MKPI_WAREHOUSE_BACKEND": "ducklake", "MKPI_DUCKLAKE_CATALOG": "host=127.0.0.1 port=1 dbname=none"}


def _clicks(path: Path) -> list[tuple[int]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute("SELECT n FROM t ORDER BY n").fetchall()


def test_the_working_database_with_backend_duckdb_is_the_file(tmp_path: Path) -> None:
    path = tmp_path / "marketing.duckdb"
    settings = load_settings(environ={"MKPI_DUCKDB_PATH": str(path)})
    assert settings.warehouse == WarehouseSettings(backend="duckdb", duckdb_path=str(path))
    with warehouse.open_warehouse(settings.warehouse) as conn:
        assert not is_ducklake(conn)
        conn.execute("CREATE TABLE t AS SELECT 7 AS n")
    assert _clicks(path) == [(7,)]  # written in the file, read back by plain DuckDB
    with warehouse.open_warehouse(settings.warehouse, read_only=True) as conn:
        with pytest.raises(duckdb.Error, match="read-only"):
            conn.execute("INSERT INTO t VALUES (8)")


def test_connect_opens_the_file_even_when_the_path_is_the_lakes_working_database(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    """With backend ducklake configured, `connect(<the working database's path>)` is still that DuckDB file: no
    settings are read and no lake is attached (the catalog here points nowhere, so an attach would fail)."""
    path = tmp_path / "marketing.duckdb"
    for key, value in {**LAKE_ENV, "MKPI_DUCKDB_PATH": str(path)}.items():
        monkeypatch.setenv(key, value)
    assert load_settings().warehouse.backend == "ducklake"
    assert load_settings().warehouse.duckdb_path == str(path)
    with warehouse.connect(str(path)) as conn:
        assert not is_ducklake(conn)
        conn.execute("CREATE TABLE t AS SELECT 1 AS n")
    assert _clicks(path) == [(1,)]


def test_backend_ducklake_without_a_catalog_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="backend is ducklake but MKPI_DUCKLAKE_CATALOG is not set") as caught:
        WarehouseSettings(backend="ducklake")
    assert caught.value.key == "MKPI_DUCKLAKE_CATALOG"
    with pytest.raises(ConfigError, match="MKPI_DUCKLAKE_CATALOG is not set") as caught:
        load_settings(environ={"MKPI_WAREHOUSE_BACKEND": "ducklake"})
    assert caught.value.key == "MKPI_DUCKLAKE_CATALOG"


def test_an_unknown_backend_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="warehouse.backend must be one of duckdb, ducklake, got 'sqlite'") as caught:
        WarehouseSettings(backend="sqlite")
    assert caught.value.key == "warehouse.backend"


def test_the_catalog_never_shows_in_the_settings_or_their_location() -> None:
    lake = WarehouseSettings(backend="ducklake", ducklake_catalog=Secret("dbname=lake password=hunter2"),
                             ducklake_data_path="s3://bucket/lake")
    assert "hunter2" not in repr(lake) and "hunter2" not in lake.location
    assert lake.location == "the DuckLake with data in s3://bucket/lake"
    assert WarehouseSettings(duckdb_path="data/x.duckdb").location == "data/x.duckdb"


def _calls(tree: ast.AST, name: str) -> int:
    return sum(1 for node in ast.walk(tree) if isinstance(node, ast.Call)
               and getattr(node.func, "id", getattr(node.func, "attr", None)) == name)


def test_only_open_warehouse_opens_the_lake() -> None:
    """The code base opens a lake in one place: open_warehouse (tests may open one directly)."""
    callers = []
    for folder in ("connectors", "pipelines", "kpi_models", "bench", "sandbox"):
        for file in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if _calls(ast.parse(file.read_text(encoding="utf-8")), "open_lake"):
                callers.append(file.relative_to(PROJECT_ROOT).as_posix())
    assert callers == ["connectors/warehouse.py"]
    source = Path(warehouse.__file__).read_text(encoding="utf-8")
    function = next(node for node in ast.parse(source).body
                    if isinstance(node, ast.FunctionDef) and node.name == "open_warehouse")
    assert _calls(function, "open_lake") == 1
    connect = next(node for node in ast.parse(source).body
                   if isinstance(node, ast.FunctionDef) and node.name == "connect")
    assert _calls(connect, "open_lake") == 0 and "settings" not in ast.unparse(connect).lower()


def test_mkpi_alerts_reads_the_working_warehouse_and_names_a_missing_file(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capfd: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    working = tmp_path / "data" / "marketing.duckdb"
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(working))
    for argv in (["alerts"], ["alerts", "ack", "abc"]):
        assert main(argv) == 1
        assert f"the working database {working} does not exist" in " ".join(capfd.readouterr().err.split())
    assert not working.parent.exists()  # nothing created by asking
    with warehouse.open_warehouse(load_settings().warehouse) as conn:
        conn.execute("SELECT 1")
    assert main(["alerts"]) == 0 and "No open alerts." in capfd.readouterr().out


def test_a_plain_connection_using_an_attached_ducklake_is_a_lake_connection(tmp_path: Path) -> None:
    """is_ducklake asks DuckDB which database is current, so a plain connection (not from open_lake) with a DuckLake
    attached and in use (`USE lake`) gets the lake's branches: kpi_daily's name columns stay VARCHAR (they failed
    with "only widening type promotions are allowed" when only open_lake's connections were recognised). The lake
    here has a DuckDB-file catalog (no PostgreSQL needed) and the extension from its package."""
    from datetime import date

    from connectors.batches import Window
    from connectors.ducklake import load_extensions
    from kpi_models.layer import rebuild_kpi_daily

    conn = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        load_extensions(conn)
        conn.execute(f"ATTACH 'ducklake:{tmp_path / 'lake.ducklake'}' AS lake (DATA_PATH '{tmp_path / 'data'}/')")
        assert not is_ducklake(conn)  # attached, but the current database is still the in-memory one
        conn.execute("USE lake")
        assert is_ducklake(conn)
        assert not is_ducklake(conn.cursor())  # a cursor starts on the default database, not the lake
        rebuild_kpi_daily(conn, Window(date(2026, 3, 2), date(2026, 3, 2)))
        types = dict(conn.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'lake' "
                                  "AND schema_name = 'kpi' AND table_name = 'kpi_daily'").fetchall())
        assert {c: types[c] for c in ("source", "channel", "kpi")} == {
            "source": "VARCHAR", "channel": "VARCHAR", "kpi": "VARCHAR"}
        conn.execute("USE memory")
        assert not is_ducklake(conn)
    finally:
        conn.close()
