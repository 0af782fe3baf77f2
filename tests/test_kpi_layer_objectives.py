"""Objectives: loading errors, and the maths of kpi.kpi_vs_objective on hand-made kpi_daily rows.

March 2026 has 31 days; data covers Mar 1..10, so at as-of Mar 10 the elapsed fraction is 10/31 and 21 days are
left. Two GA4 properties: 111 has the organic_search rows, 222 the direct ones, so an objective over all
accounts sees the same totals as one over all channels. Every expected value is computed by hand in the comments.

The tables are created here in the layout the KPI layer promises (kpi_daily with account_id, is_final, quality;
kpi_monthly's native rows), independently of the code that builds them.
"""

from datetime import date, timedelta

import pytest
import yaml

from connectors.warehouse import connect
from kpi_models.catalogue import load_catalogue
from kpi_models.objectives import (
    BUDGET_KPIS,
    FLOW_RATIOS,
    WORDING,
    KpiLayoutError,
    ObjectiveError,
    attainment,
    budget_status,
    build_kpi_vs_objective,
    evaluate_window,
    gap_text,
    load_objectives,
    parse_objectives,
    period_bounds,
    read_objectives,
    target_due,
)

AS_OF = date(2026, 3, 10)
DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(10)]
ADS = "1234567890"
SITE = "sc-domain:example.com"

KPI_DAILY = ("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
             "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, is_final BOOLEAN, "
             "quality VARCHAR[])")
# A view over kpi_daily and kpi.crm_monthly in the pipeline; the objectives read only its native rows.
KPI_MONTHLY = ("CREATE TABLE kpi.kpi_monthly (month_start DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
               "kpi VARCHAR, currency VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, "
               "days_with_data BIGINT, aggregation VARCHAR, is_final BOOLEAN)")


def daily(day, source, channel, account, kpi, numerator, denominator=None, currency=None, is_final=True,
          quality=()):
    value = numerator if denominator is None else numerator / denominator
    return (day, source, channel, account, kpi, numerator, denominator, value, currency, is_final, list(quality))


def insert_daily(c, rows):
    c.executemany("INSERT INTO kpi.kpi_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def monthly(c, month, kpi, numerator, denominator, account="p1", is_final=True):
    c.execute("INSERT INTO kpi.kpi_monthly VALUES (?, 'hubspot', 'all', ?, ?, NULL, ?, ?, ?, NULL, 'native', ?)",
              [month, account, kpi, numerator, denominator, numerator / denominator, is_final])


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "obj.duckdb") as c:
        c.execute("CREATE SCHEMA kpi")
        c.execute(KPI_DAILY)
        c.execute(KPI_MONTHLY)
        rows = []
        for day in DAYS:
            rows += [
                daily(day, "ga4", "organic_search", "111", "sessions", 60),  # 60 + 40 = 100 a day, 1000 in all
                daily(day, "ga4", "direct", "222", "sessions", 40),
                # 10 / 600 and 10 / 400: together 20 / 1000 = 0.02 (the mean of the two ratios is 0.0208)
                daily(day, "ga4", "organic_search", "111", "conversion_rate", 1, 60),
                daily(day, "ga4", "direct", "222", "conversion_rate", 1, 40),
                daily(day, "ga4", "organic_search", "111", "bounce_rate", 24, 60),  # 400 / 1000 = 0.4
                daily(day, "ga4", "direct", "222", "bounce_rate", 16, 40),
                daily(day, "google_ads", "paid_search", ADS, "ad_cpa", 30, 1, "EUR"),  # 300 EUR / 10 conv. = 30
                daily(day, "google_ads", "paid_search", ADS, "ad_cost", 120, None, "EUR"),  # 1200 EUR
            ]
        insert_daily(c, rows)
        # March CRM: churn 6 / 200 = 0.03; NPS (20 - 6) x 100 / 40 = 35. February churn 5 / 200 = 0.025.
        monthly(c, "2026-03-01", "churn_rate", 6, 200)
        monthly(c, "2026-03-01", "nps", 1400, 40)
        monthly(c, "2026-02-01", "churn_rate", 5, 200)
        yield c


def run(conn, entries, as_of=AS_OF):
    objectives = parse_objectives({"objectives": entries}, "test.yaml")
    return build_kpi_vs_objective(conn, objectives, as_of=as_of)


def one(conn, entry, as_of=AS_OF, month=date(2026, 3, 1)):
    rows = [r for r in run(conn, [entry], as_of) if r["period_start"] == month]
    assert len(rows) == 1
    return rows[0]


SESSIONS = {"kpi": "sessions", "source": "ga4", "period": "month", "tolerance": 0.05}
CONVERSION = {"kpi": "conversion_rate", "source": "ga4", "period": "month"}


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
    assert (row["account_id"], row["provisional"]) == ("all", False)  # every day is final


def test_additive_at_risk_and_gap_text(conn):
    # target 3200 -> 3200 x 10/31 = 1032.26 to date; 1000 / 1032.26 = 0.96875 >= 0.95 -> at_risk;
    # 32.26 sessions behind pace, rounded up: 33
    row = one(conn, {**SESSIONS, "target": 3200})
    assert row["attainment"] == pytest.approx(0.96875)
    assert row["status"] == "at_risk"
    assert row["gap"] == pytest.approx(32.258, abs=1e-3)
    assert row["gap_text"] == "33 more sessions needed to be on pace"


def test_additive_off_track(conn):
    # target 4000 -> 1290.32 to date; 1000 / 1290.32 = 0.775 < 0.95
    row = one(conn, {**SESSIONS, "target": 4000})
    assert row["attainment"] == pytest.approx(0.775)
    assert row["status"] == "off_track"


def test_a_week_is_judged_by_the_same_rule_over_its_elapsed_days(conn):
    # Week Mon 9 .. Sun 15 March, as-of the 10th (the last day with data): 2 days elapsed. 100 sessions a day:
    # 200 against 3100 x 2/31 = 200 -> 1.0; the forecast to the week's end is 200 / (2/7) = 700.
    objectives = parse_objectives({"objectives": [{**SESSIONS, "target": 3100}]}, "test.yaml")
    [row] = evaluate_window(conn, objectives, (date(2026, 3, 9), date(2026, 3, 15)))
    assert (row["period_start"], row["period_end"], row["as_of"]) == (date(2026, 3, 9), date(2026, 3, 15), AS_OF)
    assert row["actual"] == 200 and row["days_with_data"] == 2
    assert row["target_to_date"] == pytest.approx(200)
    assert row["elapsed_fraction"] == pytest.approx(2 / 7) and row["forecast"] == pytest.approx(700)
    assert (row["attainment"], row["status"]) == (pytest.approx(1.0), "on_track")


def test_a_week_before_the_data_and_a_native_kpi_are_not_judged(conn):
    objectives = parse_objectives({"objectives": [{**SESSIONS, "target": 3100},
                                                  {"kpi": "nps", "period": "month", "target": 40}]}, "test.yaml")
    # Mon 23 February .. Sun 1 March: the data starts on 1 March, so a week total would read as a shortfall
    [sessions] = evaluate_window(conn, objectives, (date(2026, 2, 23), date(2026, 3, 1)))
    assert sessions["status"] == "insufficient_data"
    assert sessions["gap_text"] == ("not judged: the data starts on 2026-03-01, after the period began on "
                                    "2026-02-23 (a partial total would read as a shortfall)")
    # NPS is the CRM's monthly figure: judged over a whole month only (35 against 40, as in kpi_vs_objective)
    assert [r["kpi"] for r in evaluate_window(conn, objectives, (date(2026, 3, 9), date(2026, 3, 15)))] == [
        "sessions"]
    whole = {r["kpi"]: r for r in evaluate_window(conn, objectives, (date(2026, 3, 1), date(2026, 3, 31)))}
    assert whole["nps"]["actual"] == pytest.approx(35) and whole["nps"]["status"] == "off_track"


def test_a_window_covering_the_month_gives_the_kpi_vs_objective_row(conn):
    entries = [{**SESSIONS, "target": 3200}, {**CONVERSION, "target": 0.025}]
    month = {r["kpi"]: r for r in run(conn, entries, as_of=None) if r["period_start"] == date(2026, 3, 1)}
    window = evaluate_window(conn, read_objectives(conn), (date(2026, 3, 1), date(2026, 3, 31)))
    assert {r["kpi"]: r for r in window} == month


def test_target_due_takes_each_months_share_of_a_week_across_two_months():
    # Mon 30 March .. Sun 5 April: 2 March days of 31, 5 April days of 30: 3100 x 2/31 + 3100 x 5/30 = 716.67
    [objective] = parse_objectives({"objectives": [{**SESSIONS, "target": 3100}]}, "test.yaml")
    assert target_due(objective, date(2026, 3, 30), date(2026, 4, 5)) == pytest.approx(200 + 3100 * 5 / 30)
    assert target_due(objective, date(2026, 3, 1), date(2026, 3, 31)) == pytest.approx(3100)
    assert target_due(objective, date(2026, 3, 5), date(2026, 3, 4)) == 0  # nothing elapsed yet


def test_channel_filter(conn):
    # direct only: 40 x 10 = 400 against 1240 x 10/31 = 400
    row = one(conn, {**SESSIONS, "channel": "direct", "target": 1240})
    assert (row["actual"], row["channel"], row["status"]) == (400, "direct", "on_track")


def test_ratio_is_not_pro_rated_and_gap_is_numerator_change(conn):
    # 20 / 1000 = 0.02 against 0.025: attainment 0.8 -> off_track; 0.025 x 1000 - 20 = +5 converting sessions;
    # the rate must rise by 0.5 percentage points
    row = one(conn, {**CONVERSION, "target": 0.025})
    assert row["actual"] == pytest.approx(0.02)
    assert row["target_to_date"] == pytest.approx(0.025)  # not 0.025 x 10/31
    assert row["forecast"] is None
    assert (row["numerator"], row["denominator"]) == (20, 1000)
    assert row["attainment"] == pytest.approx(0.8)
    assert row["status"] == "off_track"
    assert row["gap"] == pytest.approx(5)
    assert row["gap_text"] == "conversion rate must rise by 0.5 points (5 more converting sessions at this traffic)"


def test_insufficient_data_below_min_denominator(conn):
    # 1000 sessions < 2000 required: no judgement, even though the ratio meets the target
    row = one(conn, {**CONVERSION, "target": 0.02, "min_denominator": 2000})
    assert row["status"] == "insufficient_data"
    assert row["min_denominator"] == 2000
    assert row["gap_text"] == "not judged yet: 1,000 sessions so far, 2,000 needed to judge the conversion rate"


def test_default_min_denominator_per_unit(conn):
    # default for unit ratio is 100: 1000 sessions is enough -> judged (0.02 / 0.02 = 1 -> on_track)
    row = one(conn, {**CONVERSION, "target": 0.02})
    assert (row["min_denominator"], row["status"], row["gap_text"]) == (100, "on_track", "on target")


def test_lower_is_better_ratio_inverts_attainment(conn):
    # bounce 0.4 against 0.38: attainment 0.38 / 0.4 = 0.95 >= 1 - 0.06 -> at_risk;
    # 0.38 x 1000 - 400 = -20: 20 fewer bounced sessions, the rate 2.0 points lower
    row = one(conn, {"kpi": "bounce_rate", "source": "ga4", "period": "month", "target": 0.38, "tolerance": 0.06})
    assert row["attainment"] == pytest.approx(0.95)
    assert row["status"] == "at_risk"
    assert row["gap_text"] == "bounce rate must fall by 2.0 points (20 fewer bounced sessions at this traffic)"
    assert row["direction"] == "lower"


def test_lower_is_better_money_ratio(conn):
    # CPA 300 / 10 = 30 EUR against 25: attainment 25 / 30 = 0.833 -> off_track; 25 x 10 - 300 = -50 EUR of cost
    row = one(conn, {"kpi": "ad_cpa", "period": "month", "target": 25})
    assert row["source"] == "google_ads"  # the only source: implied
    assert row["attainment"] == pytest.approx(25 / 30)
    assert row["status"] == "off_track"
    assert row["gap"] == pytest.approx(-50)
    assert row["gap_text"] == "CPA must fall by 5.00 EUR"
    assert row["currency"] == "EUR"


def test_native_kpis_from_monthly(conn):
    # NPS 35 against 40: 0.875 -> off_track; 40 x 40 - 1400 = +200 (promoters - detractors) x 100, that is
    # 2 more net promoters out of the 40 answers. NPS is not a flow ratio: judged month to date.
    nps = one(conn, {"kpi": "nps", "period": "month", "target": 40})
    assert nps["actual"] == pytest.approx(35)
    assert nps["status"] == "off_track"
    assert nps["gap"] == pytest.approx(200)
    assert nps["gap_text"] == "2.0 more net promoters out of 40 answers"
    # churn 0.03 against 0.05, lower is better, judged once March is complete: 0.05 / 0.03 = 1.67 -> on_track
    churn = one(conn, {"kpi": "churn_rate", "period": "month", "target": 0.05}, as_of=date(2026, 4, 5))
    assert churn["attainment"] == pytest.approx(0.05 / 0.03)
    assert churn["status"] == "on_track"


def test_periods_before_data_or_outside_validity(conn):
    # Q1 began Jan 1 but data starts Mar 1: the sum would read as a shortfall -> insufficient_data
    rows = run(conn, [{**SESSIONS, "period": "quarter", "target": 9000}])
    assert [(r["period_start"], r["status"]) for r in rows] == [(date(2026, 1, 1), "insufficient_data")]
    assert rows[0]["gap_text"] == ("not judged: the data starts on 2026-03-01, after the quarter began on 2026-01-01 "
                                   "(a partial total would read as a shortfall)")
    # valid from April: no March row
    assert run(conn, [{**SESSIONS, "target": 3100, "from": "2026-04-01"}]) == []


def test_default_as_of_is_the_last_day_with_data_and_table_is_written(conn):
    rows = run(conn, [{**SESSIONS, "target": 3100}], as_of=None)
    assert rows[0]["as_of"] == AS_OF
    stored = conn.execute("SELECT kpi, account_id, status, gap_text, provisional FROM kpi.kpi_vs_objective").fetchall()
    assert stored == [("sessions", "all", "on_track", "on pace", False)]
    assert conn.execute("SELECT kpi, source, account_id, period, target FROM kpi.objective").fetchall() == [
        ("sessions", "ga4", None, "month", 3100.0)]


def test_standing_objective_recurs_each_month(conn):
    # as-of in April: March is complete (elapsed 1, no April data yet -> April insufficient)
    rows = run(conn, [{**SESSIONS, "target": 1000}], as_of=date(2026, 4, 5))
    assert [(r["period_start"], r["elapsed_fraction"], r["status"], r["gap_text"]) for r in rows] == [
        (date(2026, 3, 1), 1.0, "on_track", "target met"),
        (date(2026, 4, 1), pytest.approx(5 / 30), "insufficient_data", "no data for this period yet"),
    ]


# --- 1. accounts --------------------------------------------------------------------------------------------------


def test_account_objective_judges_that_account_only(conn):
    # property 111: 10 converting sessions / 600 sessions = 0.01667 against 0.02: attainment 0.8333 -> off_track;
    # 0.02 x 600 - 10 = 2 more converting sessions; 0.02 - 0.01667 = 0.33 points. A YAML number is the id's digits.
    row = one(conn, {**CONVERSION, "account": 111, "target": 0.02})
    assert (row["account_id"], row["numerator"], row["denominator"]) == ("111", 10, 600)
    assert row["actual"] == pytest.approx(1 / 60)
    assert row["attainment"] == pytest.approx((1 / 60) / 0.02)  # 0.8333
    assert row["status"] == "off_track"
    assert row["gap_text"] == "conversion rate must rise by 0.3 points (2 more converting sessions at this traffic)"
    assert row["objective_id"] == "conversion_rate/ga4/all/month@111"


def test_all_accounts_is_a_ratio_of_sums(conn):
    # (10 + 10) / (600 + 400) = 0.02 against 0.0205: 0.9756 -> at_risk. Averaging the accounts' ratios would give
    # (0.01667 + 0.025) / 2 = 0.02083 and a wrong on_track.
    row = one(conn, {**CONVERSION, "target": 0.0205})
    assert row["account_id"] == "all"
    assert row["actual"] == pytest.approx(0.02)
    assert row["attainment"] == pytest.approx(0.02 / 0.0205)
    assert row["status"] == "at_risk"


def test_unknown_account_is_insufficient_data_naming_the_accounts(conn):
    # not an error at load: accounts come from the data; every period reports it
    row = one(conn, {**SESSIONS, "account": "999", "target": 3100})
    assert (row["status"], row["actual"], row["attainment"], row["account_id"]) == (
        "insufficient_data", None, None, "999")
    assert row["gap_text"] == ("no data for GA4 account 999: check `account` in the objectives file "
                               "(accounts with data: 111, 222)")


def test_account_ids_written_as_the_platforms_show_them(conn):
    # 123-456-7890 is customer 1234567890 as the connector stores it: CPA 30 EUR against 30 -> on_track
    row = one(conn, {"kpi": "ad_cpa", "account": "123-456-7890", "period": "month", "target": 30})
    assert (row["account_id"], row["actual"], row["status"]) == (ADS, 30, "on_track")
    # a GA4 property written as the Admin screen shows it is the same property
    assert parse_objectives([{**SESSIONS, "account": "properties/111", "target": 1}])[0].account == "111"


def test_account_as_of_is_its_own_last_day(conn):
    # property 333 reported Mar 1..5 only, 10 sessions a day: as of Mar 5, 5/31 elapsed, 310 x 5/31 = 50 to date,
    # 50 done -> on pace. The all-accounts objective keeps as-of Mar 10 (1000 + 50 sessions).
    insert_daily(conn, [daily(d, "ga4", "referral", "333", "sessions", 10) for d in DAYS[:5]])
    rows = run(conn, [{**SESSIONS, "account": "333", "target": 310}, {**SESSIONS, "target": 3255}], as_of=None)
    mine, everyone = rows
    assert (mine["as_of"], mine["elapsed_fraction"], mine["actual"]) == (date(2026, 3, 5), pytest.approx(5 / 31), 50)
    assert (mine["target_to_date"], mine["status"]) == (pytest.approx(50), "on_track")
    # 3255 x 10/31 = 1050 to date, 1050 done
    assert (everyone["as_of"], everyone["actual"], everyone["status"]) == (AS_OF, 1050, "on_track")


# --- 2. flow ratios --------------------------------------------------------------------------------------------


def test_flow_ratio_is_judged_on_complete_months_only(conn):
    assert FLOW_RATIOS == {"churn_rate"}
    rows = run(conn, [{"kpi": "churn_rate", "period": "month", "target": 0.02}])
    february, march = rows
    # February is complete: 5 / 200 = 0.025 against 0.02, lower is better: 0.02 / 0.025 = 0.8 -> off_track;
    # 0.02 x 200 - 5 = -1 customer lost, 0.5 points
    assert (february["period_start"], february["status"]) == (date(2026, 2, 1), "off_track")
    assert february["attainment"] == pytest.approx(0.8)
    assert february["gap_text"] == ("churn rate must fall by 0.5 points "
                                    "(1 fewer customers lost out of 200 customers at the start of the month)")
    # March runs until the 31st: 6 lost so far is not a month's churn -> not judged, nothing compared
    assert (march["status"], march["attainment"], march["gap"]) == ("insufficient_data", None, None)
    assert march["actual"] == pytest.approx(0.03)  # what there is so far, shown as such
    assert march["gap_text"] == ("churn rate is judged when the month is complete (after 2026-03-31); "
                                 "so far 6 customers lost out of 200 customers at the start of the month")
    # on April 1 March is complete: 6 / 200 = 0.03 against 0.02 -> 0.667 -> off_track
    complete = one(conn, {"kpi": "churn_rate", "period": "month", "target": 0.02}, as_of=date(2026, 4, 1))
    assert (complete["status"], complete["attainment"]) == ("off_track", pytest.approx(2 / 3))


# --- 3. budgets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "state", "pace", "text"),
    [
        # 3100 x 10/31 = 1000 to date, 1200 spent: 20% over > 5% -> overspend; (3100 - 1200) / 21 days = 90.48
        (3100, "off_track", 1.2, "overspend: 200.00 EUR above the budget to date; "
                                 "90.48 EUR a day for the 21 days left ends the month on budget"),
        # 3600 x 10/31 = 1161.29 to date: 1200 is 3.3% over, within 5% -> on_track
        (3600, "on_track", 1200 / (3600 * 10 / 31), "on budget: 38.71 EUR above the budget to date (within 5%)"),
        # 4000 x 10/31 = 1290.32 to date: 1200 is 7% under (between 5% and 10%) -> at_risk;
        # (4000 - 1200) / 21 = 133.33 a day
        (4000, "at_risk", 1200 / (4000 * 10 / 31), "underspend: 90.32 EUR below the budget to date; "
                                                   "133.33 EUR a day for the 21 days left ends the month on budget"),
        # 6200 x 10/31 = 2000 to date: 40% under, beyond twice the tolerance -> off_track; 5000 / 21 = 238.10
        (6200, "off_track", 0.6, "underspend: 800.00 EUR below the budget to date; "
                                 "238.10 EUR a day for the 21 days left ends the month on budget"),
        # 1000 x 10/31 = 322.58 to date: 1200 spent is beyond the month's whole budget
        (1000, "off_track", 1200 / (1000 * 10 / 31), "overspend: 877.42 EUR above the budget to date; "
                                                     "the month's budget of 1,000 EUR is already spent"),
    ],
)
def test_budget_flags_over_and_under_spend(conn, target, state, pace, text):
    assert "ad_cost" in BUDGET_KPIS
    row = one(conn, {"kpi": "ad_cost", "period": "month", "target": target})
    assert row["status"] == state
    assert row["attainment"] == pytest.approx(pace)  # spend pace: actual / budget to date
    assert row["forecast"] == pytest.approx(3720)  # 1200 / (10/31)
    assert row["gap_text"] == text


def test_budget_of_a_complete_month(conn):
    # as of Apr 5 March is complete: 1200 spent against 1150, 4.3% over, within 5% -> on_track
    row = one(conn, {"kpi": "ad_cost", "period": "month", "target": 1150}, as_of=date(2026, 4, 5))
    assert (row["status"], row["gap_text"]) == ("on_track", "on budget: 50.00 EUR above the month's budget (within 5%)")
    assert budget_status(0, 100, 0.05) == "off_track"  # nothing spent at all: campaigns stopped
    assert budget_status(91, 100, 0.05) == "at_risk"
    assert budget_status(105, 100, 0.05) == "on_track" and budget_status(105.5, 100, 0.05) == "off_track"


# --- 4. gap texts in a manager's units ----------------------------------------------------------------------------


def test_gap_texts_of_the_examples(conn):
    # sessions: 4377.2 x 10/31 = 1412 to date, 1000 done -> 412 behind
    assert one(conn, {**SESSIONS, "target": 4377.2})["gap_text"] == "412 more sessions needed to be on pace"
    # conversion 0.02 against 0.0237: 0.37 points, 0.0237 x 1000 - 20 = 3.7 -> 4 more (needed counts round up)
    assert one(conn, {**CONVERSION, "target": 0.0237})["gap_text"] == (
        "conversion rate must rise by 0.4 points (4 more converting sessions at this traffic)")
    # CPA 30.00 against 27.90
    assert one(conn, {"kpi": "ad_cpa", "period": "month", "target": 27.9})["gap_text"] == "CPA must fall by 2.10 EUR"
    # average position 1480 / 100 = 14.8 a day (impression-weighted) against 14.0
    insert_daily(conn, [daily(d, "search_console", "organic_search", SITE, "search_avg_position", 1480, 100)
                        for d in DAYS])
    position = one(conn, {"kpi": "search_avg_position", "period": "month", "target": 14})
    assert position["gap_text"] == "average position must improve by 0.8"
    assert position["attainment"] == pytest.approx(14 / 14.8)


def test_gap_text_is_one_function_over_a_row():
    # NPS (14 - 4) x 100 / 30 = 33.3 against 45: 45 x 30 / 100 - 10 = 3.5 net promoters
    nps = {"kpi": "nps", "source": "hubspot", "actual": 1000 / 30, "target": 45, "numerator": 1000, "denominator": 30}
    assert gap_text(nps) == "3.5 more net promoters out of 30 answers"
    # 45 x 30 / 100 - 10 = 3.5 ahead against a target of 21.67 (6.5 x 100 / 30)
    assert gap_text({**nps, "target": 650 / 30}) == "on target: 3.5 net promoters to spare out of 30 answers"
    # revenue 1000 EUR against 1200 to date
    revenue = {"kpi": "revenue", "source": "ga4", "actual": 1000.0, "target": 3720, "target_to_date": 1200,
               "currency": "EUR", "elapsed_fraction": 10 / 31}
    assert gap_text(revenue) == "200.00 EUR more revenue needed to be on pace"
    assert gap_text({**revenue, "actual": 1250.5}) == "on pace: 50.50 EUR revenue ahead"
    assert gap_text({**revenue, "elapsed_fraction": 1.0}) == "200.00 EUR revenue short of the target"
    # marketing ROI reads as a percentage: net return 967 on 2,960 of spend = 32.7% against 100%:
    # (2960 - 967) / 2960 = 67.3 points; 1.0 x 2960 - 967 = 1,993 more net return
    roi = {"kpi": "marketing_roi", "source": "ga4", "actual": 967 / 2960, "target": 1.0, "numerator": 967,
           "denominator": 2960}
    assert gap_text(roi) == "marketing ROI must rise by 67.3 points (1,993 more net return at this spend)"
    # on-target rates and positions say by how much, in the same units
    bounce = {"kpi": "bounce_rate", "source": "ga4", "actual": 0.4, "target": 0.42, "numerator": 400,
              "denominator": 1000}
    assert gap_text(bounce) == "on target: bounce rate 2.0 points below the objective"
    position = {"kpi": "search_avg_position", "source": "search_console", "actual": 13.9, "target": 14}
    assert gap_text(position) == "on target: average position 0.1 better than the objective"
    # ROAS: conversion value is money; 4 x 500 - 1800 = 200 EUR more at this spend
    roas = {"kpi": "ad_roas", "source": "google_ads", "actual": 3.6, "target": 4, "numerator": 1800,
            "denominator": 500, "currency": "EUR"}
    assert gap_text(roas) == "ROAS must rise by 0.40 (200.00 EUR more conversion value at this spend)"
    assert gap_text({**roas, "actual": None}) is None


def test_every_kpi_has_wording_and_no_gap_text_shows_a_column_name():
    catalogue = load_catalogue()
    assert set(catalogue.kpis) <= set(WORDING)  # a new KPI needs its wording in objectives.WORDING
    for kpi in catalogue.kpis.values():
        for actual, target in ((1.0, 2.0), (2.0, 1.0)):  # behind and ahead, either direction
            row = {"kpi": kpi.kpi, "source": kpi.sources[0].source, "actual": actual, "target": target,
                   "target_to_date": target, "numerator": actual * 10, "denominator": 10.0, "currency": "EUR",
                   "elapsed_fraction": 0.5, "tolerance": 0.05, "period": "month"}
            text = gap_text(row, kpi)
            assert text and "_" not in text, (kpi.kpi, text)


# --- 5. provisional data -------------------------------------------------------------------------------------------


def test_provisional_when_any_day_used_is_not_final(conn):
    conn.execute("UPDATE kpi.kpi_daily SET is_final = false WHERE date >= '2026-03-09' AND account_id = '222'")
    row = one(conn, {**SESSIONS, "target": 3100})
    assert (row["status"], row["provisional"]) == ("on_track", True)
    assert one(conn, {**SESSIONS, "account": "111", "target": 1860})["provisional"] is False  # 111's days are final


def test_incomplete_search_console_days_are_left_out_of_as_of(conn):
    # 50 clicks a day Mar 1..10; Mar 9 and 10 are at or after firstIncompleteDate. As-of is Mar 8: 400 clicks against
    # 1550 x 8/31 = 400 to date -> on pace, provisional because the incomplete days were left out.
    insert_daily(conn, [daily(d, "search_console", "organic_search", SITE, "search_clicks", 50,
                              is_final=d < date(2026, 3, 9),
                              quality=["partial_day"] if d >= date(2026, 3, 9) else [])
                        for d in DAYS])
    for as_of in (None, AS_OF):
        row = one(conn, {"kpi": "search_clicks", "period": "month", "target": 1550}, as_of=as_of)
        assert (row["as_of"], row["days_with_data"], row["actual"]) == (date(2026, 3, 8), 8, 400)
        assert row["elapsed_fraction"] == pytest.approx(8 / 31)
        assert (row["status"], row["provisional"], row["gap_text"]) == ("on_track", True, "on pace")
    # a site whose only days are incomplete: nothing to judge yet, and it says why
    insert_daily(conn, [daily(d, "search_console", "organic_search", "sc-domain:new.example", "search_clicks", 5,
                              is_final=False, quality=["partial_day"]) for d in DAYS[8:]])
    row = one(conn, {"kpi": "search_clicks", "account": "sc-domain:new.example", "period": "month", "target": 100},
              as_of=None)
    assert (row["status"], row["provisional"], row["as_of"]) == ("insufficient_data", True, date(2026, 3, 8))
    assert row["gap_text"] == ("no complete day yet: Search Console days from 2026-03-09 are still incomplete "
                               "(judged once they are final)")


def test_native_month_not_final_is_provisional(conn):
    conn.execute("UPDATE kpi.kpi_monthly SET is_final = false WHERE kpi = 'nps'")
    assert one(conn, {"kpi": "nps", "period": "month", "target": 40})["provisional"] is True


def test_old_kpi_daily_layout_is_a_clear_error(tmp_path):
    with connect(tmp_path / "old.duckdb") as c:
        c.execute("CREATE SCHEMA kpi")
        c.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, kpi VARCHAR, "
                  "numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR)")
        with pytest.raises(KpiLayoutError, match="no column account_id, is_final, quality.*rebuild the KPI layer"):
            build_kpi_vs_objective(c, parse_objectives([{**SESSIONS, "target": 1}]), as_of=AS_OF)


# --- maths and loading -----------------------------------------------------------------------------------------


def test_attainment_and_period_edge_cases():
    assert attainment(-10, 30, False) == pytest.approx(1 + (-40) / 30)  # NPS below zero: not a positive ratio
    assert attainment(-10, -5, False) == pytest.approx(0.0)  # worse than a negative target: 1 - 5/5
    assert attainment(0, 100, True) is None  # nothing bounced against a lower-is-better target: judged directly
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
        ({"kpi": "ad_cpa", "period": "month", "target": 40, "account": ["1", "2"]}, "`account` must be one account"),
    ],
)
def test_invalid_objectives_name_file_and_entry(tmp_path, entry, message):
    path = tmp_path / "objectives.yaml"
    path.write_text(yaml.safe_dump({"objectives": [entry]}))
    with pytest.raises(ObjectiveError, match=message) as info:
        load_objectives(path)
    assert str(path) in str(info.value)


def test_committed_objective_files_are_valid():
    assert load_objectives("config/objectives.yaml")
    sandbox = load_objectives("sandbox/objectives.yaml")
    assert {o.kpi for o in sandbox} >= {"ad_cpa", "bounce_rate", "search_avg_position"}  # lower-is-better ones
