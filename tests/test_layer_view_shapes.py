"""The roll-up views are recreated when a table THEY read changes shape, judged from those tables only (issue #21
target 5: every recompute listed every table of the KPI and source schemas with its CREATE statement): a column added
to a table no view reads leaves them as they are; one added to a table a view reads (kpi.crm_monthly, a network's
account_period_reach behind kpi.social_period_reach) recreates them, and they read the data as before."""

from __future__ import annotations

import duckdb
import pytest

from kpi_models.layer import create_rollup_views
from tests import test_kpi_layer_rewrites as rewrites
from tests.test_kpi_layer_rewrites import replace_weekly_by_hand

conn = rewrites.conn  # the fixture: the same built file (roll-up views created) as the rewrite tests'


def _weekly_is_sentinel(conn: duckdb.DuckDBPyConnection) -> bool:
    return [c[0] for c in conn.execute("DESCRIBE kpi.kpi_weekly").fetchall()] == ["sentinel"]


def test_a_table_no_view_reads_changes_nothing(conn: duckdb.DuckDBPyConnection) -> None:
    monthly = conn.execute("SELECT * FROM kpi.kpi_monthly ORDER BY ALL").fetchall()
    replace_weekly_by_hand(conn)
    conn.execute("ALTER TABLE ga4.traffic_by_channel ADD COLUMN total_users BIGINT")
    conn.execute("ALTER TABLE kpi.web_daily ADD COLUMN note VARCHAR")
    create_rollup_views(conn)
    assert _weekly_is_sentinel(conn)
    assert conn.execute("SELECT * FROM kpi.kpi_monthly ORDER BY ALL").fetchall() == monthly


@pytest.mark.parametrize("table", ["kpi.crm_monthly", "linkedin.account_period_reach"])
def test_a_table_a_view_reads_recreates_them(conn: duckdb.DuckDBPyConnection, table: str) -> None:
    weekly = conn.execute("SELECT * FROM kpi.kpi_weekly ORDER BY ALL").fetchall()
    replace_weekly_by_hand(conn)
    conn.execute(f"ALTER TABLE {table} ADD COLUMN note VARCHAR")
    create_rollup_views(conn)
    assert not _weekly_is_sentinel(conn)
    assert conn.execute("SELECT * FROM kpi.kpi_weekly ORDER BY ALL").fetchall() == weekly
