"""kpi.web_daily on hand-made raw rows: ratios of sums, channel mapping, idempotent window rebuilds.

Expected values are worked out by hand in the comments, not read back from the SQL.
"""

from datetime import date

import pyarrow as pa
import pytest

from connectors.batches import Batch, Window
from connectors.ga4 import TRAFFIC
from connectors.warehouse import connect, load_batches
from kpi_models.context import KpiContext
from kpi_models.runner import rebuild, unmapped_channel_values

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
CHANNELS = {"ga4": {"Organic Search": "organic_search", "Organic Shopping": "organic_search", "Direct": "direct"}}
CTX = KpiContext(tz="Europe/Paris", as_of=D2, channels=CHANNELS)


def traffic(property_id: str, rows: list[tuple]) -> Batch:
    """rows: (date, group, sessions, engaged, engagement duration, rate, new_users); GA4's averageSessionDuration
    is twice the engagement time per session here."""
    n = len(rows)
    sessions = [r[2] for r in rows]
    rates = [r[5] for r in rows]
    data = pa.table({
        "property_id": [property_id] * n,
        "date": pa.array([r[0] for r in rows], pa.date32()),
        "session_default_channel_group": [r[1] for r in rows],
        "sessions": pa.array(sessions, pa.int64()),
        "engaged_sessions": pa.array([r[3] for r in rows], pa.int64()),
        "user_engagement_duration": pa.array([float(r[4]) for r in rows]),
        "session_key_event_rate": pa.array(rates, pa.float64()),
        "key_events": pa.array([0.0] * n),
        "new_users": pa.array([r[6] for r in rows], pa.int64()),
        "is_other": [False] * n,
        "time_zone": ["Europe/Paris"] * n,
        "currency_code": ["EUR"] * n,
        "converting_sessions": pa.array([round(s * r) for s, r in zip(sessions, rates, strict=True)], pa.int64()),
        "average_session_duration": pa.array([2.0 * r[4] / r[2] if r[2] else 0.0 for r in rows]),
        "session_duration_seconds": pa.array([2.0 * r[4] for r in rows]),
        "ecommerce_purchases": pa.array([0] * n, pa.int64()),
        "purchase_revenue": pa.array([0.0] * n),
    })
    return Batch(TRAFFIC.stream, data, Window(D1, D2), {"property_id": property_id})


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "k.duckdb") as c:
        load_batches(c, [
            traffic("1", [
                (D1, "Organic Search", 100, 60, 6000, 0.05, 40),
                (D1, "Organic Shopping", 300, 90, 3000, 0.10, 100),
                (D1, "Direct", 50, 50, 1000, 0.0, 10),
                (D1, "Carrier Pigeon", 10, 1, 10, 0.0, 1),
                (D2, "Direct", 0, 0, 0, 0.0, 0),
            ]),
            traffic("2", [(D1, "Direct", 150, 30, 2000, 0.2, 5)]),
        ])
        yield c


def kpis(conn, day, channel, account="1"):
    return conn.execute(
        "SELECT sessions, engagement_rate, bounce_rate, conversion_rate, avg_engagement_time "
        "FROM kpi.web_daily WHERE date = ? AND channel = ? AND source = 'ga4' AND account_id = ?",
        [day, channel, account]).fetchone()


def test_rates_are_ratios_of_sums(conn):
    rebuild(conn, "web_daily", Window(D1, D2), CTX)
    # organic_search = Organic Search + Organic Shopping: 400 sessions, 150 engaged,
    # 5 + 30 = 35 converting, 9000 s. engagement 150/400 = 0.375 (the average of 0.6 and 0.3 would be 0.45)
    sessions, engagement, bounce, conversion, duration = kpis(conn, D1, "organic_search")
    assert sessions == 400
    assert engagement == pytest.approx(0.375)
    assert bounce == pytest.approx(250 / 400)
    assert conversion == pytest.approx(35 / 400)
    assert duration == pytest.approx(22.5)
    # session duration is GA4's own (sessions x averageSessionDuration): 2 x 9000 s over 400 sessions
    assert conn.execute("SELECT avg_session_duration FROM kpi.web_daily WHERE date = ? AND channel = "
                        "'organic_search'", [D1]).fetchone() == (pytest.approx(45.0),)


def test_two_properties_are_two_accounts_never_summed(conn):
    rebuild(conn, "web_daily", Window(D1, D2), CTX)
    # direct: property 1 has 50 sessions (50 engaged, 0 converting, 1000 s), property 2 150 (30, 30, 2000 s)
    assert kpis(conn, D1, "direct", "1") == pytest.approx((50, 1.0, 0.0, 0.0, 20.0))
    assert kpis(conn, D1, "direct", "2") == pytest.approx((150, 0.2, 0.8, 0.2, 2000 / 150))


def test_unmapped_channel_counts_as_other_and_is_reported(conn):
    rebuild(conn, "web_daily", Window(D1, D2), CTX)
    assert kpis(conn, D1, "other")[0] == 10
    assert unmapped_channel_values(conn, Window(D1, D2)) == {"ga4": {"Carrier Pigeon": 10}}


def test_zero_sessions_gives_null_rates_not_zero_or_inf(conn):
    rebuild(conn, "web_daily", Window(D1, D2), CTX)
    assert kpis(conn, D2, "direct") == (0, None, None, None, None)


def test_rebuilding_a_window_is_idempotent_and_local(conn):
    rebuild(conn, "web_daily", Window(D1, D2), CTX)
    before = conn.execute("SELECT * FROM kpi.web_daily ORDER BY ALL").fetchall()
    result = rebuild(conn, "web_daily", Window(D2, D2), CTX)
    assert result.rows == 1
    rebuild(conn, "web_daily", Window(D1, D2), CTX)
    assert conn.execute("SELECT * FROM kpi.web_daily ORDER BY ALL").fetchall() == before
    assert conn.execute("SELECT count(*) FROM kpi.web_daily").fetchone() == (5,)  # 4 channels of property 1, 1 of 2


def test_a_table_built_by_an_earlier_version_gains_the_new_columns(conn, caplog):
    """An upgrade: kpi.web_daily was built before its SQL had `orders` and `revenue` (issue #24 added them). The
    rebuild adds the columns instead of failing with a binder error; the rebuilt window has the values, a day
    outside it keeps NULL (unknown, never a made-up 0) and the warning says how to rebuild it."""
    rebuild(conn, "web_daily", Window(D1, D2), CTX)
    conn.execute("ALTER TABLE kpi.web_daily DROP COLUMN orders")
    conn.execute("ALTER TABLE kpi.web_daily DROP COLUMN revenue")
    with caplog.at_level("WARNING", logger="mkpi.kpi"):
        rebuild(conn, "web_daily", Window(D2, D2), CTX)
    assert "added column(s) orders, revenue" in caplog.text and "mkpi backfill --start" in caplog.text
    # D2: property 1's Direct row was rebuilt (no purchases: 0 orders, 0 revenue); D1 was not: NULL, not 0
    assert conn.execute("SELECT orders, revenue FROM kpi.web_daily WHERE date = ? AND channel = 'direct' "
                        "AND account_id = '1'", [D2]).fetchone() == (0, 0)
    assert conn.execute("SELECT orders, revenue FROM kpi.web_daily WHERE date = ? AND channel = 'direct' "
                        "AND account_id = '1'", [D1]).fetchone() == (None, None)
    # and kpi_daily, which reads the new columns, rebuilds over the old table (ensure_model_table adds them too)
    conn.execute("ALTER TABLE kpi.web_daily DROP COLUMN orders")
    from kpi_models.layer import rebuild_kpi_daily

    rebuild_kpi_daily(conn, Window(D1, D2), CTX, sources=["ga4"], isolate_sources=True)
    sessions = conn.execute("SELECT sum(value) FROM kpi.kpi_daily WHERE source = 'ga4' AND kpi = 'sessions' "
                            "AND account_id = '1' AND date = ?", [D1]).fetchone()[0]
    assert sessions == 100 + 300 + 50 + 10  # property 1's D1 rows over its channels
