"""The raw-table rule checks fail on a bad row and name it."""

import dagster as dg
import duckdb

from pipelines.components.source_assets import source_check
from pipelines.lib.resources import WarehouseResource

ga4_traffic_counts_consistent = source_check("ga4", "ga4_traffic_counts_consistent")


def test_a_rule_check_fails_and_names_the_offending_row(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA ga4")
        conn.execute("CREATE TABLE ga4.traffic_by_channel AS SELECT * FROM (VALUES "
                     "('1', DATE '2026-03-01', 'Direct', 10, 4, 1, 2, 600.0, now()), "
                     "('1', DATE '2026-03-02', 'Email', 10, 12, 1, 2, 600.0, now())) "
                     "t(property_id, date, session_default_channel_group, sessions, engaged_sessions, "
                     "converting_sessions, new_users, session_duration_seconds, _loaded_at)")
    result = ga4_traffic_counts_consistent(warehouse=WarehouseResource(database=str(path)))
    assert isinstance(result, dg.AssetCheckResult)
    assert not result.passed
    assert result.metadata["inconsistent_rows"].value == 1
    assert "Email" in result.metadata["examples"].value and "Direct" not in result.metadata["examples"].value
