"""One source's surprise stays its own (issue #18), on hand-made raw rows: a raw table of another shape fails that
source's part of a KPI table only, an out-of-range rate is flagged on its row, a HubSpot value that does not cast
is counted, never a SQL error."""

from datetime import UTC, date, datetime

import pytest

from connectors.batches import Window
from connectors.warehouse import connect
from kpi_models import checks
from kpi_models.context import KpiContext
from kpi_models.layer import rebuild_kpi_daily
from kpi_models.runner import KpiRebuildError, ensure_model_table, rebuild
from tests.rows import insert

D1 = date(2026, 3, 2)
WINDOW = Window(D1, D1)
CTX = KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 10),
                 channels={"ga4": {"Direct": "direct"}, "matomo": {"direct": "direct"}})
LOADED = datetime(2026, 3, 9, 4, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "iso.duckdb") as c:
        ensure_model_table(c, "web_daily", CTX)
        insert(c, "ga4.traffic_by_channel", [{
            "property_id": "1", "date": D1, "session_default_channel_group": "Direct", "sessions": 100,
            "engaged_sessions": 60, "converting_sessions": 3, "session_duration_seconds": 9000.0,
            "user_engagement_duration": 5000.0, "is_other": False, "_loaded_at": LOADED}])
        insert(c, "matomo.referrer_types", [{
            "site_id": "1", "date": D1, "referrer_type": "direct", "nb_visits": 90, "bounce_count": 30,
            "nb_visits_converted": 2, "sum_visit_length": 8000, "_loaded_at": LOADED}])
        yield c


def sessions(conn) -> dict[str, int]:
    return dict(conn.execute("SELECT source, sessions FROM kpi.web_daily").fetchall())


def test_a_source_whose_raw_table_broke_keeps_its_rows_and_the_other_is_rebuilt(conn):
    rebuild(conn, "web_daily", WINDOW, CTX)
    assert sessions(conn) == {"ga4": 100, "matomo": 90}
    # GA4's raw table changes shape (sessions arrives as text a KPI cannot sum), Matomo moves on
    conn.execute("ALTER TABLE ga4.traffic_by_channel ALTER sessions TYPE VARCHAR")
    conn.execute("UPDATE ga4.traffic_by_channel SET sessions = 'n/a'")
    conn.execute("UPDATE matomo.referrer_types SET nb_visits = 95")
    with pytest.raises(KpiRebuildError, match="ga4 part failed") as raised:
        rebuild(conn, "web_daily", WINDOW, CTX)
    assert set(raised.value.failed) == {"ga4"}
    assert sessions(conn) == {"ga4": 100, "matomo": 95}  # GA4's last good row kept, Matomo rebuilt
    # as the Dagster asset asks: the failure is reported, not raised
    conn.execute("UPDATE matomo.referrer_types SET nb_visits = 96")
    result = rebuild(conn, "web_daily", WINDOW, CTX, isolate_sources=True)
    assert set(result.failed) == {"ga4"} and result.sources == ("ga4", "matomo")
    assert sessions(conn) == {"ga4": 100, "matomo": 96}


def test_a_sources_own_run_touches_only_its_rows(conn):
    rebuild(conn, "web_daily", WINDOW, CTX)
    conn.execute("UPDATE ga4.traffic_by_channel SET sessions = 150")
    conn.execute("UPDATE matomo.referrer_types SET nb_visits = 91")
    rebuild(conn, "web_daily", WINDOW, CTX, sources=["matomo"])
    assert sessions(conn) == {"ga4": 100, "matomo": 91}


def test_a_rate_out_of_range_is_flagged_on_its_row_and_warned_not_blocking(conn):
    # Matomo says 120 bounces out of 90 visits on D1: that row's bounce rate is 1.33
    conn.execute("UPDATE matomo.referrer_types SET bounce_count = 120")
    rebuild(conn, "web_daily", WINDOW, CTX)
    rebuild_kpi_daily(conn, WINDOW, CTX)
    flagged = {r[0]: r[1] for r in conn.execute(
        "SELECT kpi, quality FROM kpi.kpi_daily WHERE source = 'matomo' AND date = ?", [D1]).fetchall()}
    assert "out_of_range" in flagged["bounce_rate"]
    assert "out_of_range" not in flagged["conversion_rate"] and "out_of_range" not in flagged["sessions"]
    rates = checks.check_rates_in_range(conn, WINDOW)
    assert (rates.passed, rates.severity, rates.failures) == (False, "warn", 1)
    # GA4's rows are judged clean, and a GA4 run judges GA4's rows only
    assert checks.check_rates_in_range(conn, WINDOW, sources=["ga4"]).passed


def test_a_hubspot_value_that_does_not_cast_is_counted_never_a_sql_error(tmp_path):
    with connect(tmp_path / "crm.duckdb") as conn:
        ensure_model_table(conn, "crm_monthly", CTX)
        # the portal re-typed the NPS score as text: one answer reads "nine"
        conn.execute("ALTER TABLE hubspot.feedback_submissions ALTER hs_value TYPE VARCHAR")
        insert(conn, "hubspot.contacts", [{"id": "1", "archived": False,
                                           "createdate": datetime(2026, 3, 2, 9, tzinfo=UTC)}])
        submitted = datetime(2026, 3, 3, 9, tzinfo=UTC)
        insert(conn, "hubspot.feedback_submissions", [
            {"id": str(i), "archived": False, "hs_survey_type": "NPS", "hs_value": value,
             "hs_submission_timestamp": submitted} for i, value in enumerate(["10", "9", "3", "nine"])])
        rebuild(conn, "crm_monthly", None, CTX)
        # three answers read: 2 promoters, 1 detractor -> (2 - 1) x 100 / 3
        assert conn.execute("SELECT nps_responses, nps FROM kpi.crm_monthly WHERE channel = 'all'").fetchone() == (
            3, pytest.approx(100 / 3))
        result = checks.check_hubspot_values_cast(conn)
    assert (result.passed, result.severity) == (False, "warn")
    assert result.rows == [{"table_name": "hubspot.feedback_submissions", "column_name": "hs_value",
                            "values_not_cast": 1, "example": "nine"}]
