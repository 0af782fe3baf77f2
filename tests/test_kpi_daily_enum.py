"""kpi.kpi_daily's name columns (source, channel, kpi) are ENUM types built from the one list of each (issue #21 target
5: writing them as VARCHAR was most of a full rebuild), and analysts query them as they queried text.

- The types: sources from the registry, KPIs from the catalogue, the channel vocabulary plus `all`, values sorted as
  text sorts them; account_id, currency, quality and attribution keep their types.
- Analysts' queries: comparisons with a value the type lacks (no error, no row), IN lists, joins with VARCHAR tables
  (kpi_definition), LIKE, string functions, GROUP BY, ORDER BY as text, pandas / Arrow values as strings, CSV.
- No manual migration: a table whose type lacks a wanted value (a KPI added to the catalogue), or a VARCHAR table an
  earlier version built, is widened by the next rebuild, every row kept as it was.
- A DuckLake keeps VARCHAR (its specification has no ENUM type).
Expected values are worked out by hand in the comments.
"""

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from duckdb.sqltypes import DuckDBPyType

from connectors import registry
from connectors.batches import Window
from connectors.settings import CHANNELS
from connectors.warehouse import connect
from kpi_models import runner
from kpi_models.catalogue import load_catalogue
from kpi_models.context import KpiContext
from kpi_models.layer import rebuild_all
from kpi_models.runner import ensure_model_table
from tests.rows import insert

D1 = date(2026, 3, 2)
WINDOW = Window(D1, D1 + timedelta(days=1))
CTX = KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 17), channels={"ga4": {"Direct": "direct"}})
LOADED = datetime(2026, 3, 16, 4, tzinfo=UTC)


def load_rows(c: duckdb.DuckDBPyConnection) -> None:
    """Two days of GA4 for two properties: sessions 10 and 12 on day 1, 11 and 13 on day 2, all Direct."""
    ensure_model_table(c, "web_daily", CTX)
    insert(c, "ga4.traffic_by_channel", [
        {"property_id": prop, "date": D1 + timedelta(days=i), "session_default_channel_group": "Direct",
         "sessions": sessions + i, "engaged_sessions": 5, "converting_sessions": 1,
         "session_duration_seconds": 60.0 * sessions, "user_engagement_duration": 30.0, "is_other": False,
         "_loaded_at": LOADED} for i in range(2) for prop, sessions in (("1", 10), ("2", 12))])


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "enum.duckdb") as c:
        load_rows(c)
        rebuild_all(c, WINDOW, CTX)
        yield c


def types(c: duckdb.DuckDBPyConnection) -> dict[str, DuckDBPyType]:
    relation = c.table("kpi.kpi_daily")
    return dict(zip(relation.columns, relation.types, strict=True))


def enum_values(column_type: DuckDBPyType) -> list[str]:
    assert column_type.id == "enum", column_type
    return list(dict(column_type.children)["values"])


def all_rows(c: duckdb.DuckDBPyConnection) -> list[tuple]:
    return c.execute("SELECT * FROM kpi.kpi_daily ORDER BY ALL").fetchall()


def test_name_columns_are_enums_of_the_one_lists(conn) -> None:
    found = types(conn)
    assert [r[0] for r in conn.execute("DESCRIBE kpi.kpi_daily").fetchall()] == [
        "date", "source", "channel", "account_id", "kpi", "numerator", "denominator", "value", "currency", "is_final",
        "quality", "attribution"]
    assert enum_values(found["source"]) == sorted(registry.codes())
    assert enum_values(found["channel"]) == sorted([*CHANNELS, "all"])
    assert enum_values(found["kpi"]) == sorted(k.kpi for k in load_catalogue().daily())
    assert {"sessions", "ad_cost", "leads", "marketing_roi"} <= set(enum_values(found["kpi"]))
    assert {c: str(found[c]) for c in ("account_id", "currency", "quality", "attribution")} == {
        "account_id": "VARCHAR", "currency": "VARCHAR", "quality": "VARCHAR[]", "attribution": "VARCHAR"}


def test_analysts_query_the_names_as_text(conn, tmp_path) -> None:
    # GA4 sessions: property 1 has 10 + 11 = 21 over the two days, property 2 12 + 13 = 25
    by_account = conn.execute("SELECT account_id, sum(numerator) FROM kpi.kpi_daily WHERE source = 'ga4' "
                              "AND kpi = 'sessions' AND channel = 'direct' GROUP BY ALL ORDER BY 1").fetchall()
    assert by_account == [("1", 21.0), ("2", 25.0)]
    # a name the types lack is no error, only no row (a typo, a KPI of a newer catalogue)
    assert conn.execute("SELECT count(*) FROM kpi.kpi_daily WHERE kpi = 'no_such_kpi' OR source = 'nowhere' "
                        "OR channel = 'tv'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM kpi.kpi_daily WHERE kpi IN ('sessions', 'no_such_kpi') "
                        "AND source = ?", ["ga4"]).fetchone() == (4,)  # 2 properties x 2 days
    assert conn.execute("SELECT count(*) FROM kpi.kpi_daily WHERE kpi = ?", ["no_such_kpi"]).fetchone() == (0,)
    # a join with a VARCHAR table, LIKE, string functions, concatenation
    joined = conn.execute("SELECT DISTINCT d.kpi, upper(k.kpi), k.kpi || '@' || k.source, length(k.channel) "
                          "FROM kpi.kpi_daily AS k JOIN kpi.kpi_definition AS d ON d.kpi = k.kpi "
                          "WHERE k.kpi LIKE 'sess%' AND starts_with(k.source, 'ga')").fetchall()
    assert joined == [("sessions", "SESSIONS", "sessions@ga4", 6)]
    # ORDER BY sorts as text did (the values are sorted in the type)
    assert (conn.execute("SELECT kpi FROM kpi.kpi_daily ORDER BY kpi, account_id, date").fetchall()
            == conn.execute("SELECT kpi FROM kpi.kpi_daily ORDER BY CAST(kpi AS VARCHAR), account_id, date").fetchall())
    # pandas and Arrow give strings
    frame = conn.execute("SELECT * FROM kpi.kpi_daily WHERE kpi = 'sessions' ORDER BY account_id, date").df()
    assert list(frame["kpi"]) == ["sessions"] * 4 and all(type(v) is str for v in frame["source"])
    assert list(frame.loc[frame["account_id"] == "1", "numerator"]) == [10.0, 11.0]
    arrow = conn.execute("SELECT source, channel, kpi FROM kpi.kpi_daily WHERE kpi = 'sessions'").fetch_arrow_table()
    assert set(zip(*(arrow.column(n).to_pylist() for n in ("source", "channel", "kpi")), strict=True)) == {
        ("ga4", "direct", "sessions")}
    # COPY to CSV writes the names
    path = tmp_path / "kpi.csv"
    conn.execute(f"COPY (SELECT source, kpi, account_id FROM kpi.kpi_daily WHERE kpi = 'sessions' "
                 f"ORDER BY account_id, date) TO '{path}' (HEADER)")
    assert path.read_text().splitlines() == ["source,kpi,account_id"] + ["ga4,sessions,1"] * 2 + ["ga4,sessions,2"] * 2


def test_a_type_lacking_a_wanted_value_is_widened_by_the_next_rebuild(conn) -> None:
    before = all_rows(conn)
    # as if built before the catalogue had its other KPIs (a KPI added since): the type holds the KPIs with rows only
    present = sorted(r[0] for r in conn.execute("SELECT DISTINCT CAST(kpi AS VARCHAR) FROM kpi.kpi_daily").fetchall())
    assert "ad_cost" not in present  # no Google Ads rows here
    conn.execute(f"ALTER TABLE kpi.kpi_daily ALTER COLUMN kpi TYPE {runner.enum_type(present)}")
    rebuild_all(conn, Window(D1, D1), CTX)  # one day: the other day's rows are kept, not rebuilt
    assert enum_values(types(conn)["kpi"]) == sorted(k.kpi for k in load_catalogue().daily())
    assert all_rows(conn) == before


def test_a_varchar_table_from_an_earlier_version_becomes_enum_keeping_every_row(conn) -> None:
    before = all_rows(conn)
    for column in ("source", "channel", "kpi"):
        conn.execute(f"ALTER TABLE kpi.kpi_daily ALTER COLUMN {column} TYPE VARCHAR")
    # an old row of a KPI the catalogue no longer has stays readable
    conn.execute("INSERT INTO kpi.kpi_daily (date, source, channel, account_id, kpi, numerator, is_final, quality) "
                 "VALUES ('2026-01-05', 'ga4', 'direct', '1', 'retired_kpi', 7, true, [])")
    rebuild_all(conn, Window(D1, D1), CTX)
    found = types(conn)
    assert "retired_kpi" in enum_values(found["kpi"])
    assert enum_values(found["source"]) == sorted(registry.codes())
    assert conn.execute("SELECT numerator FROM kpi.kpi_daily WHERE kpi = 'retired_kpi'").fetchall() == [(7.0,)]
    assert [r for r in all_rows(conn) if r[4] != "retired_kpi"] == before


def test_a_ducklake_keeps_varchar(tmp_path, monkeypatch) -> None:
    """DuckLake's specification lists no ENUM type (https://ducklake.select/docs/stable/specification/data_types):
    on a lake the columns stay VARCHAR (the lake itself needs its extension: here only the choice is checked)."""
    monkeypatch.setattr(runner, "is_ducklake", lambda c: True)
    with connect(tmp_path / "lake_like.duckdb") as c:
        load_rows(c)
        rebuild_all(c, WINDOW, CTX)
        assert c.execute("SELECT count(*) FROM kpi.kpi_daily WHERE kpi = 'sessions'").fetchone() == (4,)
        assert {c: str(t) for c, t in types(c).items() if c in ("source", "channel", "kpi")} == {
            "source": "VARCHAR", "channel": "VARCHAR", "kpi": "VARCHAR"}



def test_a_real_ducklake_refuses_an_enum_column(tmp_path) -> None:
    """Why a lake keeps VARCHAR: the lake itself (a DuckDB-file catalog here, no PostgreSQL needed) refuses an ENUM
    column, created or altered to."""
    from connectors.ducklake import load_extensions

    lake = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        load_extensions(lake)
        lake.execute(f"ATTACH 'ducklake:{tmp_path / 'lake.ducklake'}' AS lake (DATA_PATH '{tmp_path / 'data'}/')")
        lake.execute("USE lake")
        with pytest.raises(duckdb.Error, match="unsupported type ENUM"):
            lake.execute("CREATE TABLE enum_probe (k ENUM('a', 'b'))")
        lake.execute("CREATE TABLE names AS SELECT 'a' AS k")
        with pytest.raises(duckdb.Error, match="Cannot change type of column k"):
            lake.execute(f"ALTER TABLE names ALTER COLUMN k TYPE {runner.enum_type(['a', 'b'])}")
    finally:
        lake.close()


def test_a_backfill_window_selects_the_names_typed_with_the_same_rows(conn, monkeypatch) -> None:
    """A window longer than TYPED_NAMES_DAYS (a backfill) reads kpi_daily's SELECT with the names cast to the ENUM
    types on each group's rows (runner.typed_part): the same rows as the plain SELECT of a short window."""
    before = all_rows(conn)  # built from the 2-day window: the plain SELECT
    typed_sources: list[str] = []
    plain_typed_part = runner.RegistryKpiModel.typed_part

    def spied(self, source, names):  # type: ignore[no-untyped-def]
        typed_sources.append(source)
        assert names["kpi"] == runner.enum_type(k.kpi for k in load_catalogue().daily())
        return plain_typed_part(self, source, names)

    monkeypatch.setattr(runner.RegistryKpiModel, "typed_part", spied)
    long_window = Window(D1 - timedelta(days=20), D1 + timedelta(days=20))
    assert long_window.days > runner.TYPED_NAMES_DAYS
    rebuild_all(conn, long_window, CTX)
    assert "ga4" in typed_sources
    assert all_rows(conn) == before
    typed_sources.clear()
    rebuild_all(conn, WINDOW, CTX)  # a recompute's window: the plain SELECT
    assert typed_sources == [] and all_rows(conn) == before
