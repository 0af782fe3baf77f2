"""Anomaly detection against a straightforward reference: the same judgements, day by day.

kpi_models/alerts.py judges each series from one read of the window the bands need, grouping past days by weekday
once per day judged. The reference below is the plain per-day computation it replaced (every judged day rebuilds its
window from the series' dict of days, its weekday medians from scratch), kept here word for word as the oracle: on a
hand-made kpi_daily with a weekday pattern, a ratio KPI, missing and provisional days, a low-volume series, a short
history and two attributions, both must give exactly the same findings, anomalous points (bands included) and counts.
Two verdicts are also worked out by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import duckdb
import pytest

from connectors.settings import DEFAULT_MIN_DENOMINATORS, AnomalySettings
from kpi_models.alerts import (
    MAD_SCALE,
    RATIO_FLOOR,
    SUM_FLOOR,
    Band,
    Finding,
    _anomaly_finding,
    _never_negative,
    _point_row,
    detect_anomalies,
    judged_days,
    mad,
    median,
)
from kpi_models.catalogue import KPI_SCHEMA, Catalogue, KpiDefinition, load_catalogue
from tests.rows import insert

MONDAY = date(2026, 6, 29)
FIRST = MONDAY - timedelta(weeks=12)

# --- the reference: the per-day computation, as it was -------------------------------------------------------------


def _ref_weekday_centers(window: Mapping[date, float]) -> dict[int, float]:
    groups: dict[int, list[float]] = {}
    for day, value in window.items():
        groups.setdefault(day.weekday(), []).append(value)
    return {weekday: median(values) for weekday, values in groups.items()}


def _ref_sum_band(window: Mapping[date, float], day: date, threshold: float, counts: bool) -> Band:
    centers = _ref_weekday_centers(window)
    center = centers[day.weekday()]
    residuals = [(v - centers[d.weekday()]) / centers[d.weekday()] for d, v in window.items() if centers[d.weekday()]]
    relative = MAD_SCALE * median([abs(r) for r in residuals]) if residuals else 0.0
    spread = max(relative * abs(center), SUM_FLOOR * abs(center), math.sqrt(max(center, 0.0)) if counts else 0.0)
    return Band(center, spread, threshold)


def _ref_ratio_band(window: Mapping[date, tuple[float, float]], day: date, denominator: float, threshold: float,
                    bounded: bool) -> Band:
    ratios = {d: n / den for d, (n, den) in window.items() if den}
    centers = _ref_weekday_centers(ratios)
    center = centers[day.weekday()]
    scaled = [abs(r - centers[d.weekday()]) * math.sqrt(window[d][1]) for d, r in ratios.items()]
    spread = MAD_SCALE * median(scaled) / math.sqrt(denominator) if scaled else 0.0
    weekday = [r for d, r in ratios.items() if d.weekday() == day.weekday()]
    usual = median([window[d][1] for d in ratios if d.weekday() == day.weekday()])
    spread = max(spread, MAD_SCALE * mad(weekday, center) * math.sqrt(usual / denominator))
    floor = RATIO_FLOOR * abs(center)
    if bounded:
        p = min(max(center, 1.0 / denominator), 1.0)
        floor = max(floor, math.sqrt(p * (1 - p) / denominator), 1.0 / denominator)
    return Band(center, max(spread, floor), threshold)


@dataclass(frozen=True)
class _RefPoint:
    numerator: float | None
    denominator: float | None
    value: float | None
    is_final: bool
    currency: str | None = None


@dataclass(frozen=True)
class _RefJudgement:
    day: date
    value: float
    band: Band
    deviations: float
    is_final: bool


def _ref_read_points(conn: duckdb.DuckDBPyConnection, start: date, end: date) -> tuple[dict, dict]:
    rows = conn.execute(
        f"SELECT kpi, source, channel, account_id, date, numerator, denominator, value, coalesce(is_final, false), "
        f"currency, coalesce(attribution, '') FROM {KPI_SCHEMA}.kpi_daily WHERE date BETWEEN ? AND ?",
        [start, end]).fetchall()
    series: dict[tuple, dict[date, _RefPoint]] = {}
    reported: dict[tuple[str, str, date], bool] = {}
    for kpi, source, channel, account, day, num, den, value, final, currency, model in rows:
        series.setdefault((kpi, source, channel, account, model), {})[day] = _RefPoint(num, den, value, bool(final),
                                                                                      currency)
        key = (source, account, day)
        reported[key] = reported.get(key, True) and bool(final)
    return series, reported


def _ref_judge_day(kpi: KpiDefinition, points: Mapping[date, _RefPoint], day: date, final: bool,
                   settings: AnomalySettings, min_denominators: Mapping[str, float]) -> _RefJudgement | None:
    if not final and settings.provisional == "final_only":
        return None
    threshold = settings.threshold if final else settings.provisional_threshold
    point = points.get(day)
    first = day - timedelta(weeks=settings.weeks)
    past = {d: p for d, p in points.items() if first <= d < day}
    same_weekday = [d for d in past if d.weekday() == day.weekday()]
    if len(same_weekday) < settings.min_weeks:
        return None
    if kpi.additive:
        value = point.numerator if point is not None and point.numerator is not None else 0.0
        band = _ref_sum_band({d: p.numerator or 0.0 for d, p in past.items()}, day, threshold,
                             counts=kpi.unit == "count")
        minimum = settings.min_count if kpi.unit == "count" else settings.min_amount
        if band.center < minimum:
            return None
        return _RefJudgement(day, value, band, band.deviations(value), final)
    if point is None or point.numerator is None or not point.denominator:
        return None
    window = {d: (p.numerator, p.denominator) for d, p in past.items() if p.numerator is not None and p.denominator}
    usual = [window[d][1] for d in same_weekday if d in window]
    minimum = float(min_denominators.get(kpi.unit, DEFAULT_MIN_DENOMINATORS.get(kpi.unit, 0.0)))
    if len(usual) < settings.min_weeks or point.denominator < minimum or median(usual) < minimum:
        return None
    value = point.numerator / point.denominator
    band = _ref_ratio_band(window, day, point.denominator, threshold, kpi.bounded)
    return _RefJudgement(day, value, band, band.deviations(value), final)


def reference_anomalies(conn: duckdb.DuckDBPyConnection, settings: AnomalySettings, as_of: date,
                        catalogue: Catalogue) -> tuple[list[Finding], list[dict[str, Any]], int]:
    """detect_anomalies as it was: every judged day of every series rebuilt from scratch."""
    minimums = dict(DEFAULT_MIN_DENOMINATORS)
    days: Sequence[date] = judged_days(as_of, settings)
    series, reported = _ref_read_points(conn, min(days) - timedelta(weeks=settings.weeks), max(days))
    findings: dict[tuple[Any, ...], Finding] = {}
    points: list[dict[str, Any]] = []
    judged = 0
    for (name, source, channel, account, model), by_day in sorted(series.items()):
        kpi = catalogue.kpis.get(name)
        if kpi is None or kpi.native:
            continue
        anomalous = []
        for day in days:
            final = by_day[day].is_final if day in by_day else reported.get((source, account, day))
            if final is None:
                continue
            verdict = _ref_judge_day(kpi, by_day, day, final, settings, minimums)
            if verdict is None:
                continue
            judged += 1
            if abs(verdict.deviations) > verdict.band.threshold:
                anomalous.append(verdict)
                points.append(_point_row(verdict, name, source, channel, account, _never_negative(kpi)))
        if anomalous:
            currency = next((p.currency for p in by_day.values() if p.currency), None)
            found = _anomaly_finding(kpi, source, channel, account, anomalous, currency)
            if model:
                found = replace(found, message=f"{found.message} (attribution {model})")
            if found.key in findings:
                found = replace(found, message=f"{findings[found.key].message}; {found.message}")
            findings[found.key] = found
    return list(findings.values()), points, judged


# --- a hand-made kpi_daily -------------------------------------------------------------------------------------------


def _wobble(k: int, size: int) -> int:
    """A fixed, irregular deviation in -size..size (no randomness: the rows are the same on every run)."""
    return (k * 7919) % (2 * size + 1) - size


KPI_DAILY_COLUMNS = ("date", "source", "channel", "account_id", "kpi", "numerator", "denominator", "value", "currency",
                     "is_final", "attribution")


def insert_kpi_daily(connection: duckdb.DuckDBPyConnection, rows: Sequence[tuple]) -> None:
    """The rows (in KPI_DAILY_COLUMNS order) into kpi.kpi_daily in one Arrow insert (tests/rows.py): the same values
    as a row-by-row executemany, which took ~0.7 s of CPU for the ~930 rows of `_rows()`."""
    insert(connection, "kpi.kpi_daily", [dict(zip(KPI_DAILY_COLUMNS, row, strict=True)) for row in rows])


def _rows() -> list[tuple]:
    """Twelve weeks and a day before Monday June 29, then a week after it, with a weekday pattern and incidents."""
    rows: list[tuple] = []
    end = MONDAY + timedelta(days=6)
    for k in range((end - FIRST).days + 1):
        day = FIRST + timedelta(days=k)
        final = day <= MONDAY + timedelta(days=2)  # the last four days are provisional
        weekend = day.weekday() >= 5
        # GA4 direct sessions: Mondays 2,000, weekends 600, other days 1,200 (+/- a few percent); July 1 halves
        sessions = (2000.0 if day.weekday() == 0 else 600.0 if weekend else 1200.0) + _wobble(k, 40)
        if day == MONDAY + timedelta(days=2):
            sessions /= 2
        # conversions: 3% on weekdays, 1.5% on weekends; Monday June 29 collapses to 0.5%
        conversions = round(sessions * (0.015 if weekend else 0.03)) + _wobble(k, 3)
        if day == MONDAY:
            conversions = round(sessions * 0.005)
        rows.append((day, "ga4", "direct", "p1", "sessions", sessions, None, sessions, None, final, None))
        rows.append((day, "ga4", "direct", "p1", "conversion_rate", conversions, sessions, conversions / sessions,
                     None, final, None))
        # GA4 email: missing on some days the property reported (reads as zero), an empty Saturday June 20
        if k % 9 and day != date(2026, 6, 20):
            email = 300.0 + _wobble(k, 30)
            rows.append((day, "ga4", "email", "p1", "sessions", email, None, email, None, final, None))
        # referral: about 100 a day, where the Poisson floor sqrt(100) = 10 beats 5% of the level; 40 on June 30
        referral = 40.0 if day == MONDAY + timedelta(days=1) else 100.0 + _wobble(k, 3)
        rows.append((day, "ga4", "referral", "p1", "sessions", referral, None, referral, None, final, None))
        # a small channel: under 50 sessions a usual day, never judged
        rows.append((day, "ga4", "other", "p1", "sessions", 20.0 + _wobble(k, 5), None, 20.0, None, final, None))
        # Ads cost in EUR with a CPC (a currency ratio) that doubles from June 27
        clicks = 80.0 + _wobble(k, 10)
        cpc = 0.9 * (2.0 if day >= date(2026, 6, 27) else 1.0) + _wobble(k, 5) / 100
        rows.append((day, "google_ads", "paid_search", "c1", "ad_cost", clicks * cpc, None, clicks * cpc, "EUR",
                     final, None))
        rows.append((day, "google_ads", "paid_search", "c1", "ad_cpc", clicks * cpc, clicks, cpc, "EUR", final,
                     None))
        # a return KPI under two attributions; the second only from May 25 (a short history: under min_weeks)
        spend = 150.0 + _wobble(k, 20)
        value = spend * (4.0 if day != MONDAY else 1.0)
        rows.append((day, "ga4", "paid_search", "all", "blended_roas", value, spend, value / spend, "EUR", final,
                     "ga4_session"))
        if day >= date(2026, 5, 25):
            rows.append((day, "ga4", "paid_search", "all", "blended_roas", value, spend, value / spend, "EUR", final,
                         "hubspot_source"))
        # a KPI the catalogue does not know, and a native one: never judged
        rows.append((day, "ga4", "direct", "p1", "not_a_kpi", 1.0, None, 1.0, None, final, None))
        rows.append((day, "hubspot", "all", "all", "nps", 40.0, 100.0, 0.4, None, final, None))
    # GA4 property p1 reported nothing on July 3: a staleness question, never an anomaly (nor a zero)
    return [r for r in rows if not (r[0] == date(2026, 7, 3) and r[3] == "p1")]


@pytest.fixture(scope="module")
def conn():
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA kpi")
    connection.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                       "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                       "is_final BOOLEAN, attribution VARCHAR)")
    insert_kpi_daily(connection, _rows())
    yield connection
    connection.close()


SETTINGS = [
    AnomalySettings(),
    AnomalySettings(provisional="final_only"),
    AnomalySettings(threshold=3.0, provisional_threshold=4.0, days=10),
    AnomalySettings(weeks=4, min_weeks=3, threshold=2.0, provisional_threshold=3.0),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "final_only", "threshold_3", "four_weeks"])
def test_the_same_judgements_as_the_reference(conn, settings):
    catalogue = load_catalogue()
    anomalous = judged = 0
    for offset in range(-3, 7):
        as_of = MONDAY + timedelta(days=offset)
        got = detect_anomalies(conn, settings, as_of, catalogue=catalogue)
        expected = reference_anomalies(conn, settings, as_of, catalogue)
        assert got[2] == expected[2], as_of
        assert got[1] == expected[1], as_of  # every anomalous point, its band and deviations, bit for bit
        assert got[0] == expected[0], as_of  # the findings: severity, value, band, message
        anomalous += len(got[1])
        judged += got[2]
    # the comparison is not vacuous: days were judged and some were unusual
    assert judged > 100 and anomalous > 3


def test_a_weekday_pattern_and_a_ratio_by_hand():
    """Mondays at 2,000 sessions, other days at 1,000, all final: a Monday at 1,400 is judged against 2,000, not
    against the pooled level. Every day lies on its weekday's median: the relative spread is 0, the floors decide:
    max(5% x 2,000 = 100, sqrt(2,000) = 44.7) = 100; band 2,000 +/- 5 x 100 = 1,500 .. 2,500; (1,400 - 2,000) / 100 =
    -6 spreads: a warning (not beyond 10). Conversion rate: 60 / 2,000 every Monday (3%), 20 / 1,000 other days (2%);
    June 29 at 30 / 1,400 = 2.1429%. Distances 0: the binomial floor of today's volume decides:
    sqrt(0.03 x 0.97 / 1,400) = 0.0045592 (above 2% x 0.03 = 0.0006 and 1 / 1,400 = 0.000714); (0.021429 - 0.03) /
    0.0045592 = -1.88 spreads: judged, not unusual."""
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA kpi")
    connection.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                       "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                       "is_final BOOLEAN, attribution VARCHAR)")
    rows = []
    for k in range(63):
        day = MONDAY - timedelta(days=62 - k)
        sessions = 1400.0 if day == MONDAY else 2000.0 if day.weekday() == 0 else 1000.0
        conversions = 30.0 if day == MONDAY else 60.0 if day.weekday() == 0 else 20.0
        rows.append((day, "ga4", "all", "p1", "sessions", sessions, None, sessions, None, True, None))
        rows.append((day, "ga4", "all", "p1", "conversion_rate", conversions, sessions, conversions / sessions,
                     None, True, None))
    insert_kpi_daily(connection, rows)
    findings, points, judged = detect_anomalies(connection, AnomalySettings(), MONDAY, days=[MONDAY])
    assert judged == 2  # sessions and conversion rate, on Monday
    assert [(f.kpi, f.severity, f.value, f.expected_low, f.expected_high) for f in findings] == [
        ("sessions", "warning", 1400.0, 1500.0, 2500.0)]
    [point] = points
    assert (point["expected"], point["deviations"]) == (2000.0, -6.0)
    spread = (0.03 * 0.97 / 1400) ** 0.5
    assert spread == pytest.approx(0.0045592, abs=1e-7)
    assert reference_anomalies(connection, AnomalySettings(), MONDAY, load_catalogue())[1] == points
    # the conversion rate was judged: with a threshold of 1.5 spreads it is unusual, 1.88 below its Monday median
    _, strict, _ = detect_anomalies(connection, AnomalySettings(threshold=1.5), MONDAY, days=[MONDAY])
    rate = next(p for p in strict if p["kpi"] == "conversion_rate")
    assert rate["expected"] == pytest.approx(0.03)
    assert rate["deviations"] == pytest.approx((30 / 1400 - 0.03) / spread)
    assert rate["deviations"] == pytest.approx(-1.88, abs=0.005)
