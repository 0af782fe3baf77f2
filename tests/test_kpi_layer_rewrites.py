"""What a recompute no longer rewrites (issue #21 target 5): the roll-up views and kpi.kpi_definition only when they
changed, and the ROI rows of a one-day window read only that window's part of the Google Ads span."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from connectors.batches import Window
from connectors.warehouse import connect
from kpi_models.layer import create_rollup_views, rebuild_kpi_daily
from tests.test_kpi_layer import CTX, D1, D2, D3, WINDOW, fill

ROI = ("marketing_roi", "blended_roas", "cost_per_lead", "customer_acquisition_cost")  # the roi_daily relation's


@pytest.fixture
def conn(tmp_path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "rewrites.duckdb") as c:
        fill(c)
        rebuild_kpi_daily(c, WINDOW, CTX)
        create_rollup_views(c)
        yield c


def replace_weekly_by_hand(conn: duckdb.DuckDBPyConnection) -> None:
    """kpi_weekly replaced by hand: a later create_rollup_views that leaves it so did not rewrite it."""
    conn.execute("CREATE OR REPLACE VIEW kpi.kpi_weekly AS SELECT 1 AS sentinel")


def test_unchanged_views_are_not_recreated(conn: duckdb.DuckDBPyConnection) -> None:
    replace_weekly_by_hand(conn)
    assert create_rollup_views(conn) == ["kpi.kpi_weekly", "kpi.kpi_monthly"]
    assert conn.execute("SELECT * FROM kpi.kpi_weekly").fetchall() == [(1,)]


def test_a_changed_table_shape_or_a_dropped_view_recreates_them(conn: duckdb.DuckDBPyConnection) -> None:
    replace_weekly_by_hand(conn)
    conn.execute("ALTER TABLE kpi.kpi_daily ADD COLUMN note VARCHAR")
    create_rollup_views(conn)
    assert "sentinel" not in [c[0] for c in conn.execute("DESCRIBE kpi.kpi_weekly").fetchall()]
    conn.execute("DROP VIEW kpi.kpi_monthly")
    create_rollup_views(conn)
    assert conn.execute("SELECT count(*) FROM kpi.kpi_monthly").fetchone()[0] > 0


def test_kpi_definition_edited_by_hand_is_written_again(conn: duckdb.DuckDBPyConnection) -> None:
    formula = conn.execute("SELECT formula FROM kpi.kpi_definition WHERE kpi = 'sessions'").fetchone()
    conn.execute("UPDATE kpi.kpi_definition SET formula = 'edited' WHERE kpi = 'sessions'")
    rebuild_kpi_daily(conn, Window(D1, D1), CTX)
    assert conn.execute("SELECT formula FROM kpi.kpi_definition WHERE kpi = 'sessions'").fetchone() == formula


def _roi(conn: duckdb.DuckDBPyConnection, day) -> list[tuple]:
    return conn.execute("SELECT source, channel, kpi, numerator, denominator, is_final FROM kpi.kpi_daily "
                        "WHERE date = ? AND kpi IN (SELECT unnest(?::VARCHAR[])) ORDER BY ALL",
                        [day, list(ROI)]).fetchall()


def test_one_day_windows_give_the_roi_rows_of_the_whole_window(conn: duckdb.DuckDBPyConnection) -> None:
    """Ads covers D1..D2 (test_kpi_layer's rows): D1 is its first day (nothing before the window), D2 its last
    (nothing after), D3 after its span (no ROI row). Each day rebuilt alone gives the rows of the month's build,
    whose values test_kpi_layer states by hand."""
    whole = {day: _roi(conn, day) for day in (D1, D2, D3)}
    assert whole[D1] and whole[D2] and whole[D3] == []
    for day in (D1, D2, D3):
        rebuild_kpi_daily(conn, Window(day, day), CTX)
        assert _roi(conn, day) == whole[day]
