"""evaluate_days: consecutive mornings evaluated from one read of kpi_daily record exactly what evaluating each
morning on its own does (the alerts, their order, texts, ids, states, the anomalous points), and each day's
anomalies are still the independent reference's (tests/test_alerts_reference.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import duckdb
import pytest

from connectors.settings import AlertsSettings, AnomalySettings
from kpi_models.alerts import _read_window, detect_anomalies, evaluate, evaluate_days
from kpi_models.catalogue import load_catalogue
from tests.test_alerts_reference import MONDAY, _rows, insert_kpi_daily, reference_anomalies

DAYS = [MONDAY + timedelta(days=k) for k in range(-4, 7)]
# the CPC series names USD on its oldest days, EUR after: the currency an alert shows is the first its window names
SWITCH = MONDAY - timedelta(days=60)


def _database() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA kpi")
    connection.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                       "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                       "is_final BOOLEAN, attribution VARCHAR)")
    rows = [(*r[:8], "USD", *r[9:]) if r[4] == "ad_cpc" and r[0] < SWITCH else r for r in _rows()]
    # a second GA4 property whose data stopped on June 27: stale from the morning after June 29
    rows.append((MONDAY - timedelta(days=2), "ga4", "all", "p2", "sessions", 10.0, None, 10.0, None, True, None))
    insert_kpi_daily(connection, rows)
    # HubSpot degraded, and an objective that went from on track to off track: read once by evaluate_days
    connection.execute("CREATE SCHEMA meta")
    connection.execute("CREATE TABLE meta.source_status (source VARCHAR, status VARCHAR, last_success TIMESTAMPTZ, "
                       "error VARCHAR, stale_since TIMESTAMPTZ)")
    connection.execute("INSERT INTO meta.source_status VALUES ('hubspot', 'degraded', NULL, 'one page skipped', NULL)")
    connection.execute("CREATE TABLE kpi.kpi_vs_objective (objective_id VARCHAR, period VARCHAR, period_start DATE, "
                       "kpi VARCHAR, source VARCHAR, channel VARCHAR, account_id VARCHAR, status VARCHAR, "
                       "provisional BOOLEAN, gap_text VARCHAR, actual DOUBLE, target DOUBLE, target_to_date DOUBLE, "
                       "direction VARCHAR, tolerance DOUBLE)")
    connection.executemany("INSERT INTO kpi.kpi_vs_objective VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        ("o1", "month", date(2026, 5, 1), "sessions", "ga4", "all", "all", "on_track", False, "ahead", 900.0, 800.0,
         800.0, "higher", None),
        ("o1", "month", date(2026, 6, 1), "sessions", "ga4", "all", "all", "off_track", False, "behind", 500.0,
         800.0, 700.0, "higher", None)])
    return connection


def _morning(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(6), tzinfo=UTC)


def _tables(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {table: conn.execute(f"SELECT * FROM kpi.{table}").fetchall()
            for table in ("alerts", "alert_detail", "kpi_anomaly", "alert_objective_status")}


@pytest.fixture(params=[AnomalySettings(), AnomalySettings(threshold=3.0, provisional_threshold=4.0, days=10),
                        AnomalySettings(weeks=4, min_weeks=3, threshold=2.0, provisional_threshold=3.0)],
                ids=["defaults", "threshold_3", "four_weeks"])
def settings(request: pytest.FixtureRequest) -> AlertsSettings:
    return replace(AlertsSettings(), anomaly=request.param)


@pytest.fixture
def pair() -> Iterator[tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]]:
    one_by_one, together = _database(), _database()
    yield one_by_one, together
    one_by_one.close()
    together.close()


def test_the_same_evaluations_as_one_morning_at_a_time(settings, pair) -> None:
    one_by_one, together = pair
    catalogue = load_catalogue()
    expected = [evaluate(one_by_one, settings, day, now=_morning(day), catalogue=catalogue) for day in DAYS]
    got = evaluate_days(together, settings, DAYS, now=_morning, catalogue=catalogue)
    assert got == expected  # new alerts (ids, texts, order), cleared and open counts, findings, points judged
    assert _tables(together) == _tables(one_by_one)
    # not vacuous: alerts were sent, some cleared, the CPC found in USD on early mornings, in EUR later
    assert sum(len(e.new) for e in got) >= 3
    conditions = {a.finding.condition for e in got for a in e.new}
    assert conditions == {"anomaly", "stale_source", "status_change"}
    assert [a.finding.account_id for e in got for a in e.new if a.finding.condition == "stale_source"] == [None, "p2"]
    assert sum(e.cleared for e in got) >= (0 if settings.anomaly.days == 10 else 1)  # ten days judged: none leaves
    cpc = [f.message for e in got for f in e.findings if f.kpi == "ad_cpc"]
    assert any("USD" in m for m in cpc) == (settings.anomaly.weeks == 8)  # four weeks back never reach SWITCH
    assert any("EUR" in m for m in cpc)


def test_each_day_still_the_reference(settings) -> None:
    """The anomalies each day judges from the shared read are the reference's, read for that day alone."""
    conn = _database()
    catalogue = load_catalogue()
    anomaly = settings.anomaly
    points = _read_window(conn, min(DAYS) - timedelta(days=anomaly.days - 1), max(DAYS), anomaly)
    for day in DAYS:
        assert detect_anomalies(conn, anomaly, day, catalogue=catalogue, points=points) == \
            reference_anomalies(conn, anomaly, day, catalogue), day


def test_a_read_that_does_not_cover_the_days_is_refused() -> None:
    conn = _database()
    anomaly = AnomalySettings()
    points = _read_window(conn, MONDAY, MONDAY, anomaly)
    with pytest.raises(ValueError, match="needs more"):
        detect_anomalies(conn, anomaly, MONDAY + timedelta(days=1), points=points)
    assert evaluate_days(conn, AlertsSettings(), []) == []
