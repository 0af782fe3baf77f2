"""A level (followers) on the dashboard, summed over accounts, is never silently low: when one account's level on
the window's last day is unknown (NULL in kpi.kpi_daily, e.g. LinkedIn's follower statistics missing for longer
than the re-read window), the total has no value, on the cards and in the daily series the charts and custom ranges
use. So is an account with no row at all on that day while it has rows earlier in the window (Instagram below).
Hand-made rows; every expected value worked out by hand in the comments."""

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from kpi_models.catalogue import rollup_view_sql
from kpi_models.dashboard import dashboard_model

GENERATED_AT = datetime(2026, 3, 21, 6, 0, tzinfo=UTC)
FIRST, AS_OF = date(2026, 3, 1), date(2026, 3, 20)


def instagram_rows(day: date) -> list[tuple[str, str, float]]:
    """Instagram I1: 300 + 1 a day, every day; I2: 700, March 1 to 10 only (no row after: gone, or not read);
    I3: 50, from March 10 on (a new account)."""
    rows = [("instagram", "I1", 300.0 + day.day)]
    if day.day <= 10:
        rows.append(("instagram", "I2", 700.0))
    if day.day >= 10:
        rows.append(("instagram", "I3", 50.0))
    return rows


def level_of(org: str, day: date) -> float | None:
    """LinkedIn org 100: 1000 + 5 a day; org 200: 2000 + 1 a day, unknown on March 20."""
    if org == "100":
        return 1000 + 5 * day.day
    return None if day == AS_OF else 2000 + day.day


@pytest.fixture(scope="module")
def levels_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("levels") / "w.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA kpi")
        conn.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                     "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                     "is_final BOOLEAN, quality VARCHAR[], attribution VARCHAR)")
        day = FIRST
        while day <= AS_OF:
            for source, org, level in (("linkedin", "100", level_of("100", day)),
                                       ("linkedin", "200", level_of("200", day)), ("facebook", "P1", 500.0),
                                       *instagram_rows(day)):
                conn.execute("INSERT INTO kpi.kpi_daily VALUES (?, ?, 'social', ?, 'followers', ?, NULL, ?, NULL, "
                             "true, [], NULL)", [day, source, org, level, level])
            day += timedelta(days=1)
        conn.execute("CREATE TABLE kpi.crm_monthly (month DATE, source VARCHAR, account_id VARCHAR, "
                     "channel VARCHAR, customers_lost BIGINT, customers_at_start BIGINT, repeat_customers BIGINT, "
                     "customers_with_won_deal BIGINT, promoters BIGINT, detractors BIGINT, nps_responses BIGINT, "
                     "is_final BOOLEAN)")
        for statement in rollup_view_sql().values():
            conn.execute(statement)
    return path


@pytest.fixture(scope="module")
def model(levels_db):
    with duckdb.connect(str(levels_db), read_only=True) as conn:
        return dashboard_model(conn, generated_at=GENERATED_AT)


# The accounts the pipeline reads now (kpi_models.alerts.configured_accounts): Instagram's I2 was removed from the
# settings after March 10 (its rows are history); LinkedIn and Facebook any account.
WITHOUT_I2 = {"instagram": ("I1", "I3"), "linkedin": None, "facebook": None}


def model_reading(levels_db, configured):
    with duckdb.connect(str(levels_db), read_only=True) as conn:
        return dashboard_model(conn, generated_at=GENERATED_AT, configured=configured)


def current(model, period, key):
    slot = model["results"][period].get(key) or [None]
    return None if slot[0] is None else slot[0][2]


def test_a_total_with_an_unknown_account_level_has_no_value(model):
    # March 20: org 100 at 1,100, org 200 unknown: 1,100 alone would be a silently low total
    assert current(model, "this_month", "followers|linkedin|*") is None
    assert current(model, "this_month", "followers|linkedin|social") is None
    assert current(model, "last_7", "followers|linkedin|*") is None
    assert current(model, "this_month", "followers|facebook|*") == 500  # one account, known: unchanged


def test_the_daily_series_has_no_level_on_that_day(model):
    series = next(s for s in model["series"] if (s["k"], s["s"]) == ("followers", "linkedin"))
    assert len(series["n"]) == (AS_OF - FIRST).days + 1  # one entry a day, March 1 to March 20
    assert series["n"][-2] == 1095 + 2019  # March 19: both known, 1,000 + 5 x 19 and 2,000 + 19
    assert series["n"][-1] is None  # March 20: org 200 unknown


def test_a_total_with_an_account_missing_on_the_last_day_has_no_value(model):
    # this month (March 1-20): I2 has rows March 1-10 and none on the 20th; I1 321 + I3 50 = 371 would be silently low
    assert current(model, "this_month", "followers|instagram|*") is None
    assert current(model, "this_month", "followers|instagram|social") is None
    # the last 7 days (March 14-20): I2 has no row in the window at all; I1 on the 20th 320 + I3 50 = 370
    assert current(model, "last_7", "followers|instagram|*") == 370
    # the 7 days before (March 7-13): I2 has rows March 7-10, none on the 13th: no value
    slot = model["results"]["last_7"]["followers|instagram|*"]
    assert slot[1] is None or slot[1][2] is None


def test_the_daily_series_has_no_level_on_a_day_an_account_seen_before_is_missing(model):
    series = next(s for s in model["series"] if (s["k"], s["s"]) == ("followers", "instagram"))
    assert len(series["n"]) == 20  # one entry a day, March 1 to 20
    assert series["n"][8] == 309 + 700  # March 9: I1 and I2 (I3 not seen yet: not missing)
    assert series["n"][9] == 310 + 700 + 50  # March 10: all three
    assert series["n"][10:] == [None] * 10  # March 11-20: I2, seen before, has no row


def test_an_account_no_longer_configured_is_not_missing_after_its_last_row(levels_db):
    """I2 removed from the settings: its days count while it has rows, and after them the total is the accounts
    still read, not blank for as long as the page's range (the defect: March 11-20 had no value)."""
    model = model_reading(levels_db, WITHOUT_I2)
    series = next(s for s in model["series"] if (s["k"], s["s"]) == ("followers", "instagram"))
    assert series["n"][8] == 309 + 700  # March 9: I1 and I2, as before
    assert series["n"][9] == 310 + 700 + 50  # March 10: I2's last row still counts
    assert series["n"][10:] == [300 + d + 50 for d in range(11, 21)]  # March 11-20: I1 (300 + day) + I3 50
    assert current(model, "this_month", "followers|instagram|*") == 320 + 50  # March 20: I1 320 + I3 50
    slot = model["results"]["last_7"]["followers|instagram|*"]  # the 7 days before, March 7-13: the 13th
    assert slot[1] is not None and slot[1][2] == 313 + 50
    # an account still read and unknown keeps its total blank: LinkedIn's org 200 on March 20
    assert current(model, "this_month", "followers|linkedin|*") is None


def test_an_account_still_configured_without_a_row_keeps_the_total_blank(levels_db):
    """I2 still in the settings: no row after March 10 means its level is unknown (not read, or failing), so the
    total is blank as when the accounts read are not known."""
    model = model_reading(levels_db, {**WITHOUT_I2, "instagram": ("I1", "I2", "I3")})
    series = next(s for s in model["series"] if (s["k"], s["s"]) == ("followers", "instagram"))
    assert series["n"][10:] == [None] * 10
    assert current(model, "this_month", "followers|instagram|*") is None
