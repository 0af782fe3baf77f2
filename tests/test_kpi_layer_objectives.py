"""Objectives: loading errors, and the maths of kpi.kpi_vs_objective on hand-made kpi_daily rows.

March 2026 has 31 days; data covers Mar 1..10, so at as-of Mar 10 the elapsed fraction is 10/31. Every
expected value is computed by hand in the comments.
"""

from datetime import date, timedelta

import pytest

from connectors.warehouse import connect
from kpi_models.layer import create_rollup_views
from kpi_models.objectives import (
    ObjectiveError,
    attainment,
    build_kpi_vs_objective,
    gap_text,
    load_objectives,
    parse_objectives,
    period_bounds,
)

AS_OF = date(2026, 3, 10)
DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(10)]


def daily(day, source, channel, kpi, numerator, denominator=None, currency=None):
    value = numerator if denominator is None else numerator / denominator
    return (day, source, channel, kpi, numerator, denominator, value, currency)


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "obj.duckdb") as c:
        create_rollup_views(c)  # creates empty kpi_daily and crm_monthly, and the views over them
        rows = []
        for day in DAYS:
            rows += [
                daily(day, "ga4", "organic_search", "sessions", 60),  # 60 + 40 = 100 sessions a day, 1000 in all
                daily(day, "ga4", "direct", "sessions", 40),
                daily(day, "ga4", "organic_search", "conversion_rate", 2, 100),  # 20 / 1000 = 0.02
                daily(day, "ga4", "organic_search", "bounce_rate", 40, 100),  # 400 / 1000 = 0.4
                daily(day, "google_ads", "paid_search", "ad_cpa", 30, 1, "EUR"),  # 300 EUR / 10 conversions = 30
                daily(day, "google_ads", "paid_search", "ad_cost", 120, None, "EUR"),  # 1200 EUR
            ]
        c.executemany("INSERT INTO kpi.kpi_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        # March CRM: churn 6 / 200 = 0.03; NPS (20 - 6) x 100 / 40 = 35
        c.execute("INSERT INTO kpi.crm_monthly (month, source, channel, customers_at_start, customers_lost, "
                  "customers_with_won_deal, repeat_customers, nps_responses, promoters, detractors) "
                  "VALUES ('2026-03-01', 'hubspot', 'all', 200, 6, 50, 10, 40, 20, 6)")
        yield c


def run(conn, entries, as_of=AS_OF):
    objectives = parse_objectives({"objectives": entries}, "test.yaml")
    return build_kpi_vs_objective(conn, objectives, as_of=as_of)


def one(conn, entry, as_of=AS_OF):
    rows = [r for r in run(conn, [entry], as_of) if r["period_start"] == date(2026, 3, 1)]
    assert len(rows) == 1
    return rows[0]


SESSIONS = {"kpi": "sessions", "source": "ga4", "period": "month", "tolerance": 0.05}


def test_additive_on_track_pro_rated_with_forecast(conn):
    # target 3100 for March: 10 of 31 days elapsed -> 1000 to date; actual 1000 -> attainment 1.0
    row = one(conn, {**SESSIONS, "target": 3100})
    assert row["elapsed_fraction"] == pytest.approx(10 / 31)
    assert row["actual"] == 1000
    assert row["target_to_date"] == pytest.approx(1000)
    assert row["forecast"] == pytest.approx(3100)  # 1000 / (10/31)
    assert row["attainment"] == pytest.approx(1.0)
    assert row["status"] == "on_track"
    assert row["period_end"] == date(2026, 3, 31) and row["as_of"] == AS_OF


def test_additive_at_risk_and_gap_text(conn):
    # target 3200 -> 3200 x 10/31 = 1032.26 to date; 1000 / 1032.26 = 0.96875 >= 0.95 -> at_risk;
    # 32.26 sessions behind pace, rounded up: 33
    row = one(conn, {**SESSIONS, "target": 3200})
    assert row["attainment"] == pytest.approx(0.96875)
    assert row["status"] == "at_risk"
    assert row["gap"] == pytest.approx(32.258, abs=1e-3)
    assert row["gap_text"] == "+33 sessions needed to be on pace"


def test_additive_off_track(conn):
    # target 4000 -> 1290.32 to date; 1000 / 1290.32 = 0.775 < 0.95
    row = one(conn, {**SESSIONS, "target": 4000})
    assert row["attainment"] == pytest.approx(0.775)
    assert row["status"] == "off_track"


def test_channel_filter(conn):
    # direct only: 40 x 10 = 400 against 1240 x 10/31 = 400
    row = one(conn, {**SESSIONS, "channel": "direct", "target": 1240})
    assert (row["actual"], row["channel"], row["status"]) == (400, "direct", "on_track")


def test_ratio_is_not_pro_rated_and_gap_is_numerator_change(conn):
    # 20 / 1000 = 0.02 against 0.025: attainment 0.8 -> off_track; 0.025 x 1000 - 20 = +5 converting sessions
    row = one(conn, {"kpi": "conversion_rate", "source": "ga4", "period": "month", "target": 0.025})
    assert row["actual"] == pytest.approx(0.02)
    assert row["target_to_date"] == pytest.approx(0.025)  # not 0.025 x 10/31
    assert row["forecast"] is None
    assert (row["numerator"], row["denominator"]) == (20, 1000)
    assert row["attainment"] == pytest.approx(0.8)
    assert row["status"] == "off_track"
    assert row["gap"] == pytest.approx(5)
    assert row["gap_text"] == "+5 converting_sessions needed"


def test_insufficient_data_below_min_denominator(conn):
    # 1000 sessions < 2000 required: no judgement, even though the ratio meets the target
    row = one(conn, {"kpi": "conversion_rate", "source": "ga4", "period": "month", "target": 0.02,
                     "min_denominator": 2000})
    assert row["status"] == "insufficient_data"
    assert row["min_denominator"] == 2000


def test_default_min_denominator_per_unit(conn):
    # default for unit ratio is 100: 1000 sessions is enough -> judged (0.02 / 0.02 = 1 -> on_track)
    row = one(conn, {"kpi": "conversion_rate", "source": "ga4", "period": "month", "target": 0.02})
    assert (row["min_denominator"], row["status"]) == (100, "on_track")


def test_lower_is_better_ratio_inverts_attainment(conn):
    # bounce 0.4 against 0.38: attainment 0.38 / 0.4 = 0.95 >= 1 - 0.06 -> at_risk;
    # 0.38 x 1000 - 400 = -20: the numerator must drop by 20
    row = one(conn, {"kpi": "bounce_rate", "source": "ga4", "period": "month", "target": 0.38, "tolerance": 0.06})
    assert row["attainment"] == pytest.approx(0.95)
    assert row["status"] == "at_risk"
    assert row["gap_text"] == "-20 bounced_sessions needed"
    assert row["direction"] == "lower"


def test_lower_is_better_money_ratio(conn):
    # CPA 300 / 10 = 30 EUR against 25: attainment 25 / 30 = 0.833 -> off_track; 25 x 10 - 300 = -50 EUR of cost
    row = one(conn, {"kpi": "ad_cpa", "period": "month", "target": 25})
    assert row["source"] == "google_ads"  # the only source: implied
    assert row["attainment"] == pytest.approx(25 / 30)
    assert row["status"] == "off_track"
    assert row["gap_text"] == "-50.00 EUR ad_cost needed"
    assert row["currency"] == "EUR"


def test_lower_is_better_additive_budget(conn):
    # budget 3100 -> 1000 to date; spent 1200: attainment 1000 / 1200 = 0.833 -> off_track; forecast 3720
    row = one(conn, {"kpi": "ad_cost", "period": "month", "target": 3100})
    assert row["attainment"] == pytest.approx(1000 / 1200)
    assert row["forecast"] == pytest.approx(3720)
    assert row["status"] == "off_track"
    assert row["gap_text"] == "-200.00 EUR ad_cost needed to be on pace"


def test_native_kpis_from_monthly(conn):
    # NPS 35 against 40: 0.875 -> off_track; 40 x 40 - 1400 = +200 (promoters - detractors) x 100
    nps = one(conn, {"kpi": "nps", "period": "month", "target": 40})
    assert nps["actual"] == pytest.approx(35)
    assert nps["status"] == "off_track"
    assert nps["gap"] == pytest.approx(200)
    # churn 0.03 against 0.05, lower is better: 0.05 / 0.03 = 1.67 -> on_track
    churn = one(conn, {"kpi": "churn_rate", "period": "month", "target": 0.05})
    assert churn["attainment"] == pytest.approx(0.05 / 0.03)
    assert churn["status"] == "on_track"


def test_periods_before_data_or_outside_validity(conn):
    # Q1 began Jan 1 but data starts Mar 1: the sum would read as a shortfall -> insufficient_data
    rows = run(conn, [{**SESSIONS, "period": "quarter", "target": 9000}])
    assert [(r["period_start"], r["status"]) for r in rows] == [(date(2026, 1, 1), "insufficient_data")]
    # valid from April: no March row
    assert run(conn, [{**SESSIONS, "target": 3100, "from": "2026-04-01"}]) == []


def test_default_as_of_is_the_last_day_with_data_and_table_is_written(conn):
    rows = run(conn, [{**SESSIONS, "target": 3100}], as_of=None)
    assert rows[0]["as_of"] == AS_OF
    stored = conn.execute("SELECT kpi, status, gap_text FROM kpi.kpi_vs_objective").fetchall()
    assert stored == [("sessions", "on_track", "on target (0 sessions to spare)")]
    assert conn.execute("SELECT kpi, source, period, target FROM kpi.objective").fetchall() == [
        ("sessions", "ga4", "month", 3100.0)]


def test_standing_objective_recurs_each_month(conn):
    # as-of in April: March is complete (elapsed 1, no April data yet -> April insufficient)
    rows = run(conn, [{**SESSIONS, "target": 1000}], as_of=date(2026, 4, 5))
    assert [(r["period_start"], r["elapsed_fraction"], r["status"]) for r in rows] == [
        (date(2026, 3, 1), 1.0, "on_track"),
        (date(2026, 4, 1), pytest.approx(5 / 30), "insufficient_data"),
    ]


def test_attainment_and_gap_text_edge_cases():
    assert attainment(-10, 30, False) == pytest.approx(1 + (-40) / 30)  # NPS below zero: not a positive ratio
    assert attainment(-10, -5, False) == pytest.approx(0.0)  # worse than a negative target: 1 - 5/5
    assert attainment(0, 100, True) is None  # nothing spent against a budget: judged directly (on track)
    assert gap_text(36.2, "converting_sessions", False) == "+37 converting_sessions needed"
    assert gap_text(-4.5, "converting_sessions", False) == "on target (4 converting_sessions to spare)"
    assert period_bounds("quarter", date(2026, 11, 21)) == (date(2026, 10, 1), date(2026, 12, 31))
    assert period_bounds("year", date(2026, 2, 1)) == (date(2026, 1, 1), date(2026, 12, 31))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kpi": "sessionz", "period": "month", "target": 1}, r"objectives\[0\] \(kpi sessionz\): unknown kpi"),
        ({"kpi": "sessions", "period": "month", "target": 1}, "comes from ga4, matomo, which are never blended"),
        ({"kpi": "conversion_rate", "source": "ga4", "period": "month", "target": 2.6}, "write 3% as 0.03"),
        ({"kpi": "nps", "period": "quarter", "target": 40}, "use period: month"),
        ({"kpi": "ad_cpa", "period": "week", "target": 40}, "expected one of month, quarter, year"),
        ({"kpi": "ad_cpa", "period": "month", "target": 40, "tolerance": 1.5}, "tolerance"),
        ({"kpi": "ad_cpa", "period": "month", "target": 40, "from": "soon"}, "not an ISO date"),
        ({"kpi": "ad_cost", "period": "month", "target": 40, "min_denominator": 3}, "additive"),
        ({"kpi": "ad_cpa", "period": "month", "target": 40, "taget": 3}, "unknown field"),
    ],
)
def test_invalid_objectives_name_file_and_entry(tmp_path, entry, message):
    path = tmp_path / "objectives.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"objectives": [entry]}))
    with pytest.raises(ObjectiveError, match=message) as info:
        load_objectives(path)
    assert str(path) in str(info.value)


def test_committed_objective_files_are_valid():
    assert load_objectives("config/objectives.yaml")
    sandbox = load_objectives("sandbox/objectives.yaml")
    assert {o.kpi for o in sandbox} >= {"ad_cpa", "bounce_rate", "search_avg_position"}  # lower-is-better ones
