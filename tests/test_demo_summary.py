"""The demo's social summary: followers is the latest level, never a sum of days; the rate a ratio of sums."""

from datetime import date

import duckdb

from connectors.settings import WarehouseSettings
from pipelines.demo import print_social


def test_social_summary_takes_the_latest_level_and_a_ratio_of_sums(tmp_path, capsys):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA kpi")
        conn.execute("CREATE TABLE kpi.social_daily (date DATE, source VARCHAR, account_id VARCHAR, followers BIGINT, "
                     "follower_growth BIGINT, social_impressions BIGINT, social_engagements BIGINT, "
                     "posts_published BIGINT)")
        conn.executemany("INSERT INTO kpi.social_daily VALUES (?, 'linkedin', '7', ?, ?, ?, ?, ?)", [
            (date(2026, 3, 1), 1000, 10, 2000, 100, 1),
            (date(2026, 3, 2), 1012, 12, 3000, 50, 0),
            (date(2026, 3, 3), None, 5, 1000, 50, 2),  # no level reported that day: the 2nd's stands
        ])
    print_social(WarehouseSettings(duckdb_path=str(path)), date(2026, 3, 1), date(2026, 3, 3))
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("linkedin"))
    # followers 1,012 (not 2,012 summed), growth 27, impressions 6,000, engagements 200, rate 200 / 6,000, posts 3
    assert line.split() == ["linkedin", "7", "1,012", "27", "6,000", "200", "3.33%", "3"]
