"""The warehouse backend (DuckLake or DuckDB file) is asked once per KPI step, not at every transaction and branch
(issue #21 target 5: a one-day recompute of the per-table path sent `duckdb_databases()` 19 times).

- `connectors.warehouse.backend_known` asks once and `is_lake` answers from it inside the block, for that connection
  only; after the block the question is asked again, so a `USE` between two calls is seen (a plain connection with a
  DuckLake attached becomes a lake connection with `USE lake`, and stops being one with `USE memory`).
- Each call a Dagster KPI step makes (`rebuild` of one table, `rebuild_kpi_daily`, `create_rollup_views`) and a
  whole `rebuild_all` sends the question once, and the recompute still reads the re-read day: GA4 day 2 of property
  1 set to 40 sessions gives 40 + 13 = 53 (by hand, tests/test_kpi_rebuild_all_batched.py's rows: property 2 has
  12 + 1 = 13 that day).
"""

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

import connectors.warehouse as warehouse
from connectors.batches import Window
from connectors.warehouse import backend_known, connect, is_lake
from kpi_models.layer import create_rollup_views, rebuild_all, rebuild_kpi_daily
from kpi_models.runner import rebuild
from tests.recording import Recording
from tests.test_kpi_rebuild_all_batched import CTX, D1, WINDOW, load_rows, sessions

LAKE_QUERY = "duckdb_databases()"


class Asked:
    """Stands in for connectors.ducklake.is_ducklake: answers from a list, counting the questions per connection."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.asked: list[object] = []

    def __call__(self, conn: object) -> bool:
        self.asked.append(conn)
        return self.answers[len(self.asked) - 1]


def test_the_answer_is_kept_inside_the_block_for_that_connection_only(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = Asked([True, False, False, False])
    monkeypatch.setattr(warehouse, "is_ducklake", asked)
    one, other = object(), object()
    with backend_known(one):  # type: ignore[arg-type]
        assert is_lake(one) and is_lake(one)  # type: ignore[arg-type]
        with backend_known(one):  # type: ignore[arg-type]
            assert is_lake(one) is True  # type: ignore[arg-type]
        assert is_lake(other) is False  # type: ignore[arg-type]  # another connection is asked
    assert asked.asked == [one, other]
    assert is_lake(one) is False  # type: ignore[arg-type]  # after the block: asked again (a USE may have run)
    assert asked.asked == [one, other, one]


def test_the_block_is_left_on_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = Asked([True, False])
    monkeypatch.setattr(warehouse, "is_ducklake", asked)
    conn = object()
    with pytest.raises(RuntimeError), backend_known(conn):  # type: ignore[arg-type]
        assert is_lake(conn) is True  # type: ignore[arg-type]
        raise RuntimeError("a step failed")
    assert is_lake(conn) is False  # type: ignore[arg-type]
    assert len(asked.asked) == 2


def test_a_use_between_two_calls_changes_the_answer(tmp_path: Path) -> None:
    from connectors.ducklake import load_extensions

    conn = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        load_extensions(conn)
        conn.execute(f"ATTACH 'ducklake:{tmp_path / 'lake.ducklake'}' AS lake (DATA_PATH '{tmp_path / 'data'}/')")
        with backend_known(conn):
            assert is_lake(conn) is False
        conn.execute("USE lake")
        with backend_known(conn):
            assert is_lake(conn) is True
        conn.execute("USE memory")
        assert is_lake(conn) is False
    finally:
        conn.close()


@pytest.fixture
def conn(tmp_path: Path):
    with connect(tmp_path / "scope.duckdb") as c:
        load_rows(c)
        rebuild_all(c, WINDOW, CTX)  # every table exists from here on
        yield c


def _lake_queries(recording: Recording) -> int:
    return sum(LAKE_QUERY in s for s in recording.sent)


def test_each_kpi_step_asks_the_backend_once(conn: duckdb.DuckDBPyConnection) -> None:
    day = D1 + timedelta(days=1)
    conn.execute("UPDATE ga4.traffic_by_channel SET sessions = 40 WHERE date = ? AND property_id = '1'", [day])
    window = Window(day, day)
    for step in (lambda c: rebuild(c, "web_daily", window, CTX, isolate_sources=True),
                 lambda c: rebuild(c, "crm_daily", None, CTX, isolate_sources=True),
                 lambda c: rebuild_kpi_daily(c, window, CTX, sources=["ga4"], isolate_sources=True),
                 lambda c: create_rollup_views(c),
                 lambda c: rebuild_all(c, window, CTX)):
        recording = Recording(conn)
        step(recording)
        assert _lake_queries(recording) == 1
    assert sessions(conn, "ga4") == {D1: 22, day: 53, D1 + timedelta(days=2): 26}


def test_a_small_table_is_rewritten_only_when_its_rows_or_types_change(tmp_path: Path) -> None:
    """kpi_models.runner.replace_if_changed compares the wanted rows converted by Arrow with the stored ones (the same
    rows in another order are the same table; one changed value, a NULL, a changed type rewrite it)."""
    from datetime import date

    import pyarrow as pa

    from kpi_models.runner import replace_if_changed

    def table(days: list[int | None], names: list[list[str]], wide: bool = False) -> pa.Table:
        day_type = pa.int64() if wide else pa.int32()
        return pa.table({"source": pa.array(["ga4", "matomo"], pa.string()), "days": pa.array(days, day_type),
                         "since": pa.array([date(2026, 3, 2), None], pa.date32()),
                         "names": pa.array(names, pa.list_(pa.string()))})

    def rewrites(c: duckdb.DuckDBPyConnection, data: pa.Table) -> bool:
        recording = Recording(c)
        replace_if_changed(recording, "kpi.small", data)  # type: ignore[arg-type]
        return any(s.startswith('CREATE OR REPLACE TABLE "kpi"."small"') for s in recording.sent)

    with connect(tmp_path / "small.duckdb") as c:
        assert rewrites(c, table([3, 30], [["a", "b"], []]))  # missing: created
        assert not rewrites(c, table([3, 30], [["a", "b"], []]))
        assert not rewrites(c, table([3, 30], [["a", "b"], []]).take([1, 0]))  # another order, the same rows
        assert rewrites(c, table([3, 31], [["a", "b"], []]))
        assert rewrites(c, table([3, None], [["a", "b"], []]))
        assert rewrites(c, table([3, None], [["b", "a"], []]))
        assert rewrites(c, table([3, None], [["b", "a"], []], wide=True))
        assert c.execute("SELECT days, typeof(days), names FROM kpi.small ORDER BY source").fetchall() == [
            (3, "BIGINT", ["b", "a"]), (None, "BIGINT", [])]


def test_unmapped_channel_values_skips_raw_tables_not_loaded_yet(tmp_path: Path) -> None:
    """The web and paid search steps' list of unknown raw channels: a source whose raw table does not exist yet is
    skipped (a catalog lookup now), a loaded one is read: GA4's 'Carrier Pigeon' (not in CTX's mapping) carries 7."""
    from kpi_models.runner import unmapped_channel_values, write_channel_map
    from tests.rows import insert

    with connect(tmp_path / "unmapped.duckdb") as c:
        assert unmapped_channel_values(c, WINDOW) == {}
        c.execute("CREATE SCHEMA ga4")
        c.execute("CREATE TABLE ga4.traffic_by_channel (property_id VARCHAR, date DATE, "
                  "session_default_channel_group VARCHAR, sessions BIGINT)")
        insert(c, "ga4.traffic_by_channel", [
            {"property_id": "1", "date": D1, "session_default_channel_group": group, "sessions": n}
            for group, n in (("Direct", 5), ("Carrier Pigeon", 7))])
        write_channel_map(c, CTX.channels or {})
        assert unmapped_channel_values(c, WINDOW) == {"ga4": {"Carrier Pigeon": 7}}
