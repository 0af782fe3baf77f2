"""A level (followers) in kpi.kpi_weekly and kpi.kpi_monthly is the value of the period's last day with data of its
source and channel (all accounts), the dashboard's rule (kpi_models/dashboard_data.py): an account with no row on
that day (it stopped being read mid-period) has no level for the period, flagged no_last_day_level, never its older
level labelled final; an account that started mid-period has its last day's level; a NULL level that day stays NULL.
Hand-made kpi_daily rows (February 2026, ended: final); every expected value worked out by hand in the comments."""

from datetime import date, timedelta

import duckdb
import pytest

from kpi_models.catalogue import NO_LAST_DAY_FLAG, rollup_view_sql

FEB = [date(2026, 2, 1) + timedelta(days=i) for i in range(28)]  # Sunday Feb 1 .. Saturday Feb 28


def followers(source: str, account: str, day: date) -> float | None | bool:
    """The level of an account on a day: False when it has no row that day.
    Instagram I1: 300 + day, every day; I2: 700, Feb 1-10 only (stopped); I3: 50 + day, from Feb 10 (new).
    Facebook P1: 500, NULL on Feb 28; P2: 900 every day. LinkedIn 100: 1000 + 5 x day, Feb 1-20 only (the whole
    source stops: its reference day is Feb 20, not the month's end)."""
    levels = {
        ("instagram", "I1"): 300.0 + day.day,
        ("instagram", "I2"): 700.0 if day.day <= 10 else False,
        ("instagram", "I3"): 50.0 + day.day if day.day >= 10 else False,
        ("facebook", "P1"): None if day.day == 28 else 500.0,
        ("facebook", "P2"): 900.0,
        ("linkedin", "100"): 1000.0 + 5 * day.day if day.day <= 20 else False,
    }
    return levels[(source, account)]


ACCOUNTS = (("instagram", "I1"), ("instagram", "I2"), ("instagram", "I3"), ("facebook", "P1"), ("facebook", "P2"),
            ("linkedin", "100"))


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    path = tmp_path_factory.mktemp("rollup_levels") / "w.duckdb"
    with duckdb.connect(str(path)) as c:
        c.execute("CREATE SCHEMA kpi")
        c.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                  "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                  "is_final BOOLEAN, quality VARCHAR[], attribution VARCHAR)")
        for day in FEB:
            for source, account in ACCOUNTS:
                level = followers(source, account, day)
                if level is not False:
                    c.execute("INSERT INTO kpi.kpi_daily VALUES (?, ?, 'social', ?, 'followers', ?, NULL, ?, NULL, "
                              "true, [], NULL)", [day, source, account, level, level])
            if day.day <= 10:  # I2's follower growth: +1 a day while it is read (a sum: 10 in February)
                c.execute("INSERT INTO kpi.kpi_daily VALUES (?, 'instagram', 'social', 'I2', 'follower_growth', 1, "
                          "NULL, 1, NULL, true, [], NULL)", [day])
        c.execute("CREATE TABLE kpi.crm_monthly (month DATE, source VARCHAR, account_id VARCHAR, "
                  "channel VARCHAR, customers_lost BIGINT, customers_at_start BIGINT, repeat_customers BIGINT, "
                  "customers_with_won_deal BIGINT, promoters BIGINT, detractors BIGINT, nps_responses BIGINT, "
                  "is_final BOOLEAN)")
        for statement in rollup_view_sql().values():
            c.execute(statement)
        yield c


def monthly(conn, source: str, account: str, kpi: str = "followers") -> tuple:
    return conn.execute("SELECT numerator, value, quality, days_with_data, aggregation, is_final FROM kpi.kpi_monthly "
                        "WHERE month_start = '2026-02-01' AND source = ? AND account_id = ? AND kpi = ?",
                        [source, account, kpi]).fetchone()


def weekly(conn, week_start: str, source: str, account: str) -> tuple:
    return conn.execute("SELECT numerator, value, quality, days_with_data FROM kpi.kpi_weekly "
                        "WHERE week_start = ? AND source = ? AND account_id = ? AND kpi = 'followers'",
                        [week_start, source, account]).fetchone()


def test_an_account_stopped_mid_month_has_no_february_level(conn) -> None:
    # I2's last row is Feb 10 (700); Instagram's last day with data is Feb 28: its level then is unknown
    assert monthly(conn, "instagram", "I2") == (None, None, [NO_LAST_DAY_FLAG], 10, "last", True)
    assert NO_LAST_DAY_FLAG == "no_last_day_level"


def test_the_accounts_read_on_the_last_day_keep_their_level(conn) -> None:
    assert monthly(conn, "instagram", "I1") == (328.0, 328.0, [], 28, "last", True)  # 300 + 28
    assert monthly(conn, "instagram", "I3") == (78.0, 78.0, [], 19, "last", True)  # started Feb 10: 50 + 28
    assert monthly(conn, "facebook", "P2") == (900.0, 900.0, [], 28, "last", True)


def test_a_null_level_on_the_last_day_stays_null_without_the_flag(conn) -> None:
    # P1 has a row on Feb 28 (Facebook's last day) with no level: NULL, never Feb 27's 500
    assert monthly(conn, "facebook", "P1") == (None, None, [], 28, "last", True)


def test_the_reference_day_is_the_sources_last_day_with_data(conn) -> None:
    # LinkedIn has no row after Feb 20: its one account's Feb 20 level, 1000 + 5 x 20, and not final: the month's
    # level is its Feb 28 one, which was never read (the month has ended, its days read are final)
    assert monthly(conn, "linkedin", "100") == (1100.0, 1100.0, [], 20, "last", False)


def test_additive_kpis_of_a_stopped_account_still_add_up(conn) -> None:
    assert monthly(conn, "instagram", "I2", "follower_growth") == (10.0, 10.0, [], 10, "sum", True)


def test_weekly_levels_follow_the_same_rule(conn) -> None:
    # ISO week Mon Feb 9 - Sun Feb 15: Instagram's last day with data is Feb 15
    assert weekly(conn, "2026-02-09", "instagram", "I1") == (315.0, 315.0, [], 7)  # 300 + 15
    assert weekly(conn, "2026-02-09", "instagram", "I2") == (None, None, [NO_LAST_DAY_FLAG], 2)  # Feb 9 and 10 only
    assert weekly(conn, "2026-02-09", "instagram", "I3") == (65.0, 65.0, [], 6)  # Feb 10-15: 50 + 15
    # the week before (Feb 2-8), I2 was read every day: its Sunday level
    assert weekly(conn, "2026-02-02", "instagram", "I2") == (700.0, 700.0, [], 7)
    # Mon Feb 16 - Sun Feb 22: LinkedIn's last day with data is Friday Feb 20, 1000 + 5 x 20
    assert weekly(conn, "2026-02-16", "linkedin", "100") == (1100.0, 1100.0, [], 5)
