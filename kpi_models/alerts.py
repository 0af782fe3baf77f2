"""Alerts: a KPI that goes off track, breaks its usual pattern, or stops arriving reaches people the same morning.

Business purpose (issue #23): a manager should not have to open the dashboard to learn that conversion rate went off
track, that sessions halved because a tag was removed, that CPC doubled, or that a source silently stopped. After
every KPI rebuild this module finds four conditions and keeps them in `kpi.alerts`:

- `status_change`: an objective's status moved (on_track, at_risk, off_track; back to on_track too), with the gap
  text of kpi.kpi_vs_objective (kpi_models/objectives.gap_text) in a manager's units;
- `anomaly`: a day of a KPI (per source, channel and account) outside its usual band: the same weekday over the past
  `weeks` weeks, median and MAD (robust to the odd bad week), computed from the additive parts so a rate is judged
  on its volume (the band widens as the denominator shrinks), never below a minimum volume; a day not final yet is
  judged with a wider band (or only once final);
- `stale_source`: a source failing or degraded (meta.source_status), or whose newest KPI day lags today by more
  than its usual delay;
- `run_failure`: a pipeline run that failed (handed in by the Dagster run-failure sensor).

Never twice: an alert is kept open while its condition lasts (same KPI, source, channel, account, condition) and
sent once; it clears when the condition is gone (an anomaly no longer in the judged days, a source fresh again, a
later successful run, a new status), and can be acknowledged (`mkpi alerts ack ID`). Delivery is
kpi_models/alert_delivery.py; the Dagster wiring is pipelines/defs/alerts/.

Tables: `kpi.alerts` (exactly the issue's columns), `kpi.alert_detail` (the alert's id, grain, day, message and
dashboard link, joined on created_at and the key), `kpi.alert_objective_status` (each objective's last judged status)
and `kpi.kpi_anomaly` (every anomalous point judged, for the dashboard's trend charts).
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from connectors.settings import DEFAULT_MIN_DENOMINATORS, AlertsSettings, AnomalySettings, Settings
from connectors.warehouse import table_exists
from kpi_models.catalogue import KPI_SCHEMA, Catalogue, KpiDefinition, load_catalogue
from kpi_models.formatting import format_value
from kpi_models.objectives import BUDGET_KPIS, source_name, wording

CONDITIONS = ("status_change", "anomaly", "stale_source", "run_failure")
SEVERITIES = ("info", "warning", "critical")
STATES = ("open", "acknowledged", "cleared")
# A run failure's "source" when no one source failed (the KPI or publish steps): cleared by any successful run.
PIPELINE = "pipeline"
ALERTS = f"{KPI_SCHEMA}.alerts"
DETAIL = f"{KPI_SCHEMA}.alert_detail"
OBJECTIVE_STATUS = f"{KPI_SCHEMA}.alert_objective_status"
ANOMALIES = f"{KPI_SCHEMA}.kpi_anomaly"
FEED = f"{KPI_SCHEMA}.alert_feed"
# Judged statuses (insufficient_data says nothing to act on: the last judged status stands).
JUDGED = ("on_track", "at_risk", "off_track")
_STATUS_SEVERITY = {"on_track": "info", "at_risk": "warning", "off_track": "critical"}
# MAD -> standard deviation for normal data (1 / Phi^-1(3/4)).
MAD_SCALE = 1.4826
# Floors of a band's spread, so eight nearly equal weeks do not make a hair-trigger band: a sum's spread is at least
# 5% of its level (and, for counts, the Poisson noise sqrt(level)); a ratio's at least 2% of its level (and, for
# rates in [0, 1], the binomial noise of today's denominator).
SUM_FLOOR, RATIO_FLOOR = 0.05, 0.02

_ALERTS_DDL = f"""CREATE TABLE IF NOT EXISTS {ALERTS} (
    created_at TIMESTAMPTZ, kpi VARCHAR, source VARCHAR, channel VARCHAR, account_id VARCHAR, condition VARCHAR,
    value DOUBLE, expected_low DOUBLE, expected_high DOUBLE, severity VARCHAR, sent_to VARCHAR, state VARCHAR)"""
_DETAIL_DDL = f"""CREATE TABLE IF NOT EXISTS {DETAIL} (
    alert_id VARCHAR, created_at TIMESTAMPTZ, kpi VARCHAR, source VARCHAR, channel VARCHAR, account_id VARCHAR,
    condition VARCHAR, grain VARCHAR, day DATE, family VARCHAR, message VARCHAR, acknowledged_at TIMESTAMPTZ,
    cleared_at TIMESTAMPTZ)"""
_STATUS_DDL = f"""CREATE TABLE IF NOT EXISTS {OBJECTIVE_STATUS} (
    objective_id VARCHAR, period_start DATE, status VARCHAR, updated_at TIMESTAMPTZ)"""
_ANOMALY_DDL = f"""CREATE TABLE IF NOT EXISTS {ANOMALIES} (
    date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, kpi VARCHAR, value DOUBLE, expected DOUBLE,
    expected_low DOUBLE, expected_high DOUBLE, deviations DOUBLE, is_final BOOLEAN, judged_at TIMESTAMPTZ)"""
_ANOMALY_SCHEMA = pa.schema([
    ("date", pa.date32()), ("source", pa.string()), ("channel", pa.string()), ("account_id", pa.string()),
    ("kpi", pa.string()), ("value", pa.float64()), ("expected", pa.float64()), ("expected_low", pa.float64()),
    ("expected_high", pa.float64()), ("deviations", pa.float64()), ("is_final", pa.bool_()),
    ("judged_at", pa.timestamp("us", "UTC")),
])


@dataclass(frozen=True)
class Finding:
    """One condition found by an evaluation (before it is compared with the open alerts)."""

    condition: str
    severity: str
    kpi: str | None
    source: str | None
    channel: str | None
    account_id: str | None
    message: str
    value: float | None = None
    expected_low: float | None = None
    expected_high: float | None = None
    grain: str = "day"
    day: date | None = None
    family: str | None = None
    resolved: bool = False  # a status back on track: sent, nothing left to act on (kept as cleared)

    @property
    def key(self) -> tuple[str | None, str | None, str | None, str | None, str]:
        """What "the same alert" means: the KPI, its source, channel and account, and the condition."""
        return (self.kpi, self.source, self.channel, self.account_id, self.condition)


@dataclass(frozen=True)
class Alert:
    """A row of kpi.alerts with its detail: what `mkpi alerts` lists and the digest sends."""

    alert_id: str
    created_at: datetime
    finding: Finding
    sent_to: tuple[str, ...] = ()
    state: str = "open"


@dataclass(frozen=True)
class RunFailure:
    """A failed pipeline run, as the run-failure sensor hands it in: the source it concerned (None: the pipeline as
    a whole, e.g. the KPI or publish steps), the failed steps and the first line of the error."""

    run_id: str
    job: str
    source: str | None
    steps: tuple[str, ...]
    error: str


@dataclass
class Evaluation:
    """What one evaluation found and recorded: new alerts to send, alerts cleared, the anomalous points."""

    created_at: datetime
    new: list[Alert] = field(default_factory=list)
    cleared: int = 0
    still_open: int = 0
    findings: list[Finding] = field(default_factory=list)
    anomalous_points: int = 0
    judged_points: int = 0


# --- the robust band --------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def mad(values: Sequence[float], center: float) -> float:
    """Median absolute deviation around `center`."""
    return median([abs(v - center) for v in values])


@dataclass(frozen=True)
class Band:
    """A KPI's usual value for a day and how far it may go: center +/- threshold x spread."""

    center: float
    spread: float
    threshold: float

    @property
    def low(self) -> float:
        return self.center - self.threshold * self.spread

    @property
    def high(self) -> float:
        return self.center + self.threshold * self.spread

    def deviations(self, value: float) -> float:
        """How many spreads `value` lies from the center (signed)."""
        return (value - self.center) / self.spread if self.spread > 0 else (0.0 if value == self.center else math.inf)


def _by_weekday(window: Mapping[date, float]) -> dict[int, list[float]]:
    """A window's values grouped by weekday (0 = Monday)."""
    groups: dict[int, list[float]] = {}
    for day, value in window.items():
        groups.setdefault(day.weekday(), []).append(value)
    return groups


def sum_band(window: Mapping[date, float], day: date, threshold: float, counts: bool) -> Band:
    """The band of an additive KPI (sessions, cost) on `day` from the past weeks' values (`window`: day -> value):
    centred on the median of the same weekday; its spread is 1.4826 x the MAD of every past day's relative distance to
    its own weekday's median (all weekdays pooled: eight points alone make a jumpy spread), never below 5% of the
    level nor (for counts) the Poisson noise sqrt(level)."""
    return _sum_band(_by_weekday(window), day.weekday(), threshold, counts)


def _sum_band(groups: Mapping[int, Sequence[float]], weekday: int, threshold: float, counts: bool) -> Band:
    """sum_band on the past values already grouped by weekday (`weekday`: the judged day's group key)."""
    centers = {key: median(values) for key, values in groups.items()}
    center = centers[weekday]
    distances = [abs((v - c) / c) for key, values in groups.items() if (c := centers[key]) for v in values]
    relative = MAD_SCALE * median(distances) if distances else 0.0
    spread = max(relative * abs(center), SUM_FLOOR * abs(center), math.sqrt(max(center, 0.0)) if counts else 0.0)
    return Band(center, spread, threshold)


def ratio_band(window: Mapping[date, tuple[float, float]], day: date, denominator: float, threshold: float,
               bounded: bool) -> Band:
    """The band of a ratio KPI on `day` with `denominator`, from the past weeks' (numerator, denominator): centred on
    the median ratio of the same weekday; its spread comes from every past day's distance to its weekday's median
    times sqrt(its denominator) (a ratio's noise shrinks as 1/sqrt(volume)), pooled, 1.4826 x MAD, divided by
    sqrt(today's denominator): half the usual traffic widens the band by 1.41; the same weekday's own spread wins when
    larger. Never below 2% of the level nor, for rates in [0, 1], the binomial noise of today's denominator (at
    least one event's worth)."""
    groups: dict[int, tuple[list[float], list[float]]] = {}
    for d, (numerator, den) in window.items():
        if den:
            ratios, volumes = groups.setdefault(d.weekday(), ([], []))
            ratios.append(numerator / den)
            volumes.append(den)
    return _ratio_band(groups, day.weekday(), denominator, threshold, bounded)


def _ratio_band(groups: Mapping[int, tuple[Sequence[float], Sequence[float]]], weekday: int, denominator: float,
                threshold: float, bounded: bool) -> Band:
    """ratio_band on the past days grouped by weekday: key -> (their ratios, their denominators), in one order."""
    centers = {key: median(ratios) for key, (ratios, _) in groups.items()}
    center = centers[weekday]
    scaled = [abs(r - centers[key]) * math.sqrt(den) for key, (ratios, volumes) in groups.items()
              for r, den in zip(ratios, volumes, strict=True)]
    spread = MAD_SCALE * median(scaled) / math.sqrt(denominator) if scaled else 0.0
    # Days whose ratio varies more than their volume explains (one newsletter's open rate is one draw, whatever its
    # size): the same weekday's own spread, at today's volume, wins when larger.
    same_ratios, same_volumes = groups[weekday]
    usual = median(same_volumes)
    spread = max(spread, MAD_SCALE * mad(same_ratios, center) * math.sqrt(usual / denominator))
    floor = RATIO_FLOOR * abs(center)
    if bounded:
        p = min(max(center, 1.0 / denominator), 1.0)
        floor = max(floor, math.sqrt(p * (1 - p) / denominator), 1.0 / denominator)
    return Band(center, max(spread, floor), threshold)


# --- anomalies ---------------------------------------------------------------------------------------------------


Series = tuple[str, str, str, str, str]  # kpi, source, channel, account_id, attribution ('' when none)
# Days are handled as day numbers (date.toordinal()) while judging: a day number modulo 7 is its weekday's group.
_Row = tuple[float | None, float | None, bool]  # numerator, denominator, is_final
_EPOCH = date(1970, 1, 1).toordinal()


@dataclass
class _SeriesDays:
    """One series' days in the read window (day number -> numerator, denominator, is_final), in the order read, and
    the currency of each day that names one (day number -> currency)."""

    rows: dict[int, _Row] = field(default_factory=dict)
    currencies: dict[int, str] = field(default_factory=dict)

    def currency(self, first: int, last: int) -> str | None:
        """The series' currency between two day numbers: the first one its rows read there name."""
        return next((c for day, c in self.currencies.items() if first <= day <= last), None)


@dataclass
class _Points:
    """kpi.kpi_daily read once for judging the days from `first` to `last` (day numbers, the `weeks` weeks before
    `first` included): each series' days, which accounts reported, and each series' judge once built (its bands
    only ever look at the weeks before the day judged, so one read serves consecutive evaluations)."""

    first: int
    last: int
    series: dict[Series, _SeriesDays]
    reported: dict[tuple[str, str, int], bool]
    judges: dict[Series, _Judge | None] = field(default_factory=dict)
    # the other reads no evaluation changes (kpi_daily's newest days, meta.source_status, kpi_vs_objective), kept
    reads: dict[str, Any] = field(default_factory=dict)

    def once(self, name: str, read: Callable[[], Any]) -> Any:
        """`read()` the first time `name` is asked for, its answer kept for the next mornings."""
        if name not in self.reads:
            self.reads[name] = read()
        return self.reads[name]


def _read_points(conn: duckdb.DuckDBPyConnection, start: date, end: date
                 ) -> tuple[dict[Series, _SeriesDays], dict[tuple[str, str, int], bool]]:
    """kpi.kpi_daily between start and end by series, and which (source, account, day number) reported at all (with
    whether that day is final), so a series missing on a reported day reads as zero (GA4 leaves out empty rows).
    One query for the window the bands need; days come as day numbers (converting DATE values costs 5x the read)."""
    columns = {d[0] for d in conn.execute(f"SELECT * FROM {KPI_SCHEMA}.kpi_daily LIMIT 0").description}
    # the cross-channel return KPIs come in one row per attribution: each attribution is its own series
    attribution = "coalesce(attribution, '')" if "attribution" in columns else "''"
    rows = conn.execute(
        f"SELECT kpi, source, channel, account_id, {attribution}, date - DATE '1970-01-01', numerator, denominator, "
        f"coalesce(is_final, false), currency FROM {KPI_SCHEMA}.kpi_daily WHERE date BETWEEN ? AND ?",
        [start, end]).fetchall()
    series: dict[Series, _SeriesDays] = {}
    reported: dict[tuple[str, str, int], bool] = {}
    for kpi, source, channel, account, model, epoch_day, num, den, final, currency in rows:
        day = epoch_day + _EPOCH
        found = series.get((kpi, source, channel, account, model))
        if found is None:
            found = series[(kpi, source, channel, account, model)] = _SeriesDays()
        found.rows[day] = (num, den, bool(final))
        if currency:
            found.currencies[day] = currency
        key = (source, account, day)
        reported[key] = reported.get(key, True) and bool(final)
    return series, reported


@dataclass(frozen=True)
class _Judgement:
    day: date
    value: float
    band: Band
    deviations: float
    is_final: bool


class _Judge:
    """Judges the days of one series: its rows read once, each judged day's band from the `weeks` weeks before it
    (the same window, medians and floors as sum_band / ratio_band, grouped by weekday once per day judged)."""

    def __init__(self, kpi: KpiDefinition, rows: Mapping[int, _Row], settings: AnomalySettings,
                 min_denominators: Mapping[str, float]) -> None:
        self.kpi, self.rows, self.settings = kpi, rows, settings
        if kpi.additive:  # a sum: every past day counts, a missing numerator as zero
            self.parts: dict[int, tuple[float, float] | None] = {d: (r[0] or 0.0, 0.0) for d, r in rows.items()}
            self.minimum = settings.min_count if kpi.unit == "count" else settings.min_amount
        else:  # a ratio: the past days with a numerator and a denominator
            self.parts = {d: (r[0] / r[1], r[1]) if r[0] is not None and r[1] else None for d, r in rows.items()}
            self.minimum = float(min_denominators.get(kpi.unit, DEFAULT_MIN_DENOMINATORS.get(kpi.unit, 0.0)))
        self.verdicts: dict[tuple[int, bool], _Judgement | None] = {}
        # by weekday, in day order: the days, their values (or ratios) and denominators, so that a window is a slice
        self.weekdays: dict[int, tuple[list[int], list[float], list[float]]] = {}
        for day in sorted(self.parts):
            part = self.parts[day]
            if part is not None:
                days, values, volumes = self.weekdays.setdefault(day % 7, ([], [], []))
                days.append(day)
                values.append(part[0])
                volumes.append(part[1])

    def _groups(self, day: int) -> dict[int, tuple[list[float], list[float]]]:
        """The past `weeks` weeks before `day` by weekday: (values or ratios, denominators)."""
        first = day - 7 * self.settings.weeks
        groups: dict[int, tuple[list[float], list[float]]] = {}
        for weekday, (days, values, volumes) in self.weekdays.items():
            low = bisect_left(days, first)
            high = bisect_left(days, day, low)
            if high > low:
                groups[weekday] = (values[low:high], volumes[low:high])
        return groups

    def judged(self, day: date, number: int, final: bool) -> _Judgement | None:
        """`judge`, remembered: consecutive evaluations from one read judge each day on several mornings (a verdict
        depends only on the series' rows, the day and whether it is final)."""
        key = (number, final)
        if key not in self.verdicts:
            self.verdicts[key] = self.judge(day, final)
        return self.verdicts[key]

    def judge(self, day: date, final: bool) -> _Judgement | None:
        """The verdict on one day, or None when it is not judged (too few weeks of history, too little volume, or
        provisional under `final_only`)."""
        settings = self.settings
        if not final and settings.provisional == "final_only":
            return None
        threshold = settings.threshold if final else settings.provisional_threshold
        number = day.toordinal()
        same_weekday = [number - 7 * k for k in range(1, settings.weeks + 1) if number - 7 * k in self.rows]
        if len(same_weekday) < settings.min_weeks:
            return None
        row = self.rows.get(number)
        if self.kpi.additive:
            value = row[0] if row is not None and row[0] is not None else 0.0
            if median([self.parts[d][0] for d in same_weekday]) < self.minimum:  # the band's center
                return None
            groups = self._groups(number)
            band = _sum_band({k: v for k, (v, _) in groups.items()}, number % 7, threshold,
                             counts=self.kpi.unit == "count")
            return _Judgement(day, value, band, band.deviations(value), final)
        if row is None or row[0] is None or not row[1]:
            return None
        usual = [part[1] for d in same_weekday if (part := self.parts[d]) is not None]
        if len(usual) < settings.min_weeks or row[1] < self.minimum or median(usual) < self.minimum:
            return None
        value = row[0] / row[1]
        band = _ratio_band(self._groups(number), number % 7, row[1], threshold, self.kpi.bounded)
        return _Judgement(day, value, band, band.deviations(value), final)


def judged_days(as_of: date, settings: AnomalySettings) -> list[date]:
    """The days each evaluation judges: the last `days` days up to as-of (a day missed by one run is judged by the
    next; never twice thanks to the open alert)."""
    return [as_of - timedelta(days=k) for k in range(settings.days - 1, -1, -1)]


def detect_anomalies(conn: duckdb.DuckDBPyConnection, settings: AnomalySettings, as_of: date,
                     min_denominators: Mapping[str, float] | None = None, catalogue: Catalogue | None = None,
                     days: Sequence[date] | None = None, *, points: _Points | None = None
                     ) -> tuple[list[Finding], list[dict[str, Any]], int]:
    """Anomalous days of every kpi_daily series among `days` (default: judged_days): one finding per series (its
    latest anomalous day), every anomalous point (for kpi.kpi_anomaly) and how many points were judged. Reads only
    the judged days and the `weeks` weeks before them, once (or judges from `points`, read for consecutive
    evaluations by evaluate_days, which must cover them)."""
    catalogue = catalogue or load_catalogue()
    minimums = {**DEFAULT_MIN_DENOMINATORS, **(min_denominators or {})}
    days = list(days or judged_days(as_of, settings))
    if not days:
        return [], [], 0
    if points is None:
        points = _read_window(conn, min(days), max(days), settings)
    elif points.first > min(days).toordinal() - 7 * settings.weeks or points.last < max(days).toordinal():
        raise ValueError(f"kpi_daily was read for days {date.fromordinal(points.first)} to "
                         f"{date.fromordinal(points.last)}: judging {min(days)} to {max(days)} needs more")
    return _judge_days(points, days, settings, minimums, catalogue)


def _read_window(conn: duckdb.DuckDBPyConnection, first: date, last: date, settings: AnomalySettings) -> _Points:
    """kpi_daily read for judging the days from `first` to `last` (nothing when the table does not exist yet)."""
    start = first - timedelta(weeks=settings.weeks)
    if not table_exists(conn, f"{KPI_SCHEMA}.kpi_daily"):
        return _Points(start.toordinal(), last.toordinal(), {}, {})
    series, reported = _read_points(conn, start, last)
    return _Points(start.toordinal(), last.toordinal(), series, reported)


def _judge_days(points: _Points, days: Sequence[date], settings: AnomalySettings, minimums: Mapping[str, float],
                catalogue: Catalogue) -> tuple[list[Finding], list[dict[str, Any]], int]:
    """detect_anomalies on kpi_daily already read: each series' judge looks only at the `weeks` weeks before each
    day judged, so the days read beyond them (a longer read shared by consecutive evaluations) change nothing."""
    series, reported = points.series, points.reported
    numbers = [(day, day.toordinal()) for day in days]
    first = min(days).toordinal() - 7 * settings.weeks
    last = max(days).toordinal()
    findings: dict[tuple[Any, ...], Finding] = {}
    anomalous_points: list[dict[str, Any]] = []
    judged = 0
    for key in sorted(series):
        name, source, channel, account, model = key
        judge = points.judges.get(key, False)
        if judge is False:
            kpi = catalogue.kpis.get(name)
            judge = points.judges[key] = (None if kpi is None or kpi.native
                                          else _Judge(kpi, series[key].rows, settings, minimums))
        if judge is None:
            continue
        kpi, rows = judge.kpi, judge.rows
        anomalous: list[_Judgement] = []
        for day, number in numbers:
            final = rows[number][2] if number in rows else reported.get((source, account, number))
            if final is None:  # the account did not report that day: staleness, not an anomaly
                continue
            verdict = judge.judged(day, number, final)
            if verdict is None:
                continue
            judged += 1
            if abs(verdict.deviations) > verdict.band.threshold:
                anomalous.append(verdict)
                anomalous_points.append(_point_row(verdict, name, source, channel, account, _never_negative(kpi)))
        if anomalous:
            found = _anomaly_finding(kpi, source, channel, account, anomalous, series[key].currency(first, last))
            if model:
                found = replace(found, message=f"{found.message} (attribution {model})")
            if found.key in findings:  # two attributions of one KPI: one alert naming both
                found = replace(found, message=f"{findings[found.key].message}; {found.message}")
            findings[found.key] = found
    return list(findings.values()), anomalous_points, judged


def _never_negative(kpi: KpiDefinition) -> bool:
    """Sums and rates cannot go below zero (their band's low end is cut there); a ROI or an NPS can."""
    return kpi.additive or kpi.bounded or kpi.unit in ("currency", "seconds", "position")


def _point_row(v: _Judgement, kpi: str, source: str, channel: str, account: str, floor: bool) -> dict[str, Any]:
    return {"date": v.day, "source": source, "channel": channel, "account_id": account, "kpi": kpi,
            "value": v.value, "expected": v.band.center, "expected_low": max(v.band.low, 0.0) if floor
            else v.band.low, "expected_high": v.band.high, "deviations": v.deviations, "is_final": v.is_final,
            "judged_at": None}


def _anomaly_finding(kpi: KpiDefinition, source: str, channel: str, account: str,
                     anomalous: Sequence[_Judgement], currency: str | None) -> Finding:
    """One finding for a series: its latest anomalous day, with how many of the judged days were anomalous."""
    last = anomalous[-1]
    low = max(last.band.low, 0.0) if _never_negative(kpi) else last.band.low
    worst = max(abs(v.deviations) for v in anomalous)
    severity = "critical" if worst > 2 * last.band.threshold else "warning"
    way = "above" if last.deviations > 0 else "below"
    label = wording(kpi).label
    where = _where_text(source, channel, account)

    def shown(value: float) -> str:
        return format_value(value, kpi.unit, currency, kpi=kpi.kpi)

    text = (f"{label} {where}: {shown(last.value)} on {last.day:%a %d %b %Y}, {way} its usual {shown(low)} to "
            f"{shown(last.band.high)} (same weekday, past weeks)")
    if not last.is_final:
        text += "; provisional day, judged with a wider band"
    if len(anomalous) > 1:
        text += f"; {len(anomalous)} unusual days in the last days judged"
    return Finding("anomaly", severity, kpi.kpi, source, channel, account, text, last.value, low, last.band.high,
                   "day", last.day, kpi.family)


def _where_text(source: str | None, channel: str | None, account: str | None) -> str:
    """"(GA4 123456789, channel paid_search)": where a KPI alert is, in a person's words."""
    parts = [source_name(source) if source else ""]
    if account and account != "all":
        parts[0] = f"{parts[0]} {account}".strip()
    if channel and channel != "all":
        parts.append(f"channel {channel}")
    return "(" + ", ".join(p for p in parts if p) + ")"


# --- objective status changes ------------------------------------------------------------------------------------


def _latest_statuses(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Each objective's latest period from kpi.kpi_vs_objective, with its previous period's status."""
    if not table_exists(conn, f"{KPI_SCHEMA}.kpi_vs_objective"):
        return []
    cursor = conn.execute(f"""
        SELECT * EXCLUDE (rn) FROM (
            SELECT v.*, lag(status) OVER (PARTITION BY objective_id ORDER BY period_start) AS previous_status,
                   row_number() OVER (PARTITION BY objective_id ORDER BY period_start DESC) AS rn
            FROM {KPI_SCHEMA}.kpi_vs_objective AS v) WHERE rn = 1 ORDER BY objective_id""")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def on_track_range(row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The values that would be on track: at least the target (to date, for sums), at most it when lower is better,
    and within the tolerance either way for a budget."""
    target = row.get("target_to_date") if row.get("target_to_date") is not None else row.get("target")
    if target is None:
        return None, None
    if row.get("kpi") in BUDGET_KPIS:
        tolerance = float(row.get("tolerance") or 0.0)
        return target * (1 - tolerance), target * (1 + tolerance)
    return (None, target) if row.get("direction") == "lower" else (target, None)


def detect_status_changes(conn: duckdb.DuckDBPyConnection, catalogue: Catalogue | None = None, *,
                          shared: _Points | None = None) -> tuple[list[Finding], list[tuple[str, date, str]]]:
    """Objectives whose judged status moved since the last evaluation (or, seen for the first time, since their
    previous period): findings (grouped by KPI, source, channel, account: a month and a quarter objective of one KPI
    that both moved are one alert) and the statuses to store. `shared`: kpi_vs_objective read once for several
    mornings (evaluate_days)."""
    catalogue = catalogue or load_catalogue()
    stored = {r[0]: r[1] for r in conn.execute(f"SELECT objective_id, status FROM {OBJECTIVE_STATUS}").fetchall()}
    grouped: dict[tuple[Any, ...], list[Finding]] = {}
    state: list[tuple[str, date, str]] = []
    latest = shared.once("statuses", lambda: _latest_statuses(conn)) if shared else _latest_statuses(conn)
    for row in latest:
        status = row["status"]
        if status not in JUDGED:
            continue  # insufficient data says nothing: the last judged status stands
        state.append((row["objective_id"], row["period_start"], status))
        previous = stored.get(row["objective_id"])
        if previous is None:
            previous = row.get("previous_status") if row.get("previous_status") in JUDGED else None
        if previous is None or previous == status:
            continue
        finding = _status_finding(row, previous, catalogue)
        grouped.setdefault(finding.key, []).append(finding)
    return [_merge(found) for found in grouped.values()], state


def _status_finding(row: Mapping[str, Any], previous: str, catalogue: Catalogue) -> Finding:
    kpi = catalogue.kpis.get(str(row["kpi"]))
    label = wording(kpi).label if kpi else str(row["kpi"])
    status = str(row["status"])
    period = f"{row['period']} from {row['period_start']:%d %b %Y}"
    where = _where_text(row.get("source"), row.get("channel"), row.get("account_id"))
    provisional = " (provisional: rests on days not final yet)" if row.get("provisional") else ""
    text = (f"{label} {where} moved from {previous.replace('_', ' ')} to {status.replace('_', ' ')} for the "
            f"{period}{provisional}: {row.get('gap_text') or 'no gap text'}")
    low, high = on_track_range(row)
    return Finding("status_change", _STATUS_SEVERITY[status], str(row["kpi"]), row.get("source"),
                   row.get("channel") or "all", row.get("account_id") or "all", text, row.get("actual"), low, high,
                   str(row["period"]), row["period_start"], kpi.family if kpi else None,
                   resolved=status == "on_track")


def _merge(findings: Sequence[Finding]) -> Finding:
    """Several objectives of one KPI that moved in one evaluation: one alert, the most severe first."""
    ordered = sorted(findings, key=lambda f: -SEVERITIES.index(f.severity))
    if len(ordered) == 1:
        return ordered[0]
    first = ordered[0]
    return replace(first, message="; ".join(f.message for f in ordered),
                   resolved=all(f.resolved for f in ordered))


# --- stale sources and failed runs ---------------------------------------------------------------------------------


def detect_stale_sources(conn: duckdb.DuckDBPyConnection, stale_after_days: Mapping[str, int], today: date,
                         configured: Mapping[str, Iterable[str] | None] | None = None, *,
                         shared: _Points | None = None) -> list[Finding]:
    """Sources failing or degraded in meta.source_status, and accounts whose newest kpi_daily day lags `today` by
    more than their source's usual delay (`configured`: source -> its configured accounts, None = any; a source
    left out is not configured and not judged). `shared`: both read once for several mornings (evaluate_days)."""
    if shared is not None:
        findings = list(shared.once("source_status", lambda: _status_findings(conn)))
        rows = shared.once("newest_days", lambda: _newest_days(conn))
    else:
        findings, rows = _status_findings(conn), _newest_days(conn)
    failing = {f.source for f in findings if f.severity == "critical"}
    if rows is None:
        return findings
    for source, account, last in rows:
        if configured is not None:
            if source not in configured:
                continue
            accounts = configured[source]
            if accounts is not None and account not in set(accounts):
                continue
        allowed = int(stale_after_days.get(source, 2))
        lag = (today - last).days
        if lag <= allowed or source in failing:
            continue
        text = (f"no new {source_name(source)} data for account {account} since {last:%a %d %b %Y} ({lag} days; "
                f"usually at most {allowed}): its KPIs stop at that day")
        findings.append(Finding("stale_source", "critical" if lag > 2 * allowed else "warning", None, source, None,
                                account, text, float(lag), None, float(allowed), "source", last, None))
    return findings


def _newest_days(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str, date]] | None:
    """Each source and account's newest kpi_daily day (None: no kpi_daily yet)."""
    if not table_exists(conn, f"{KPI_SCHEMA}.kpi_daily"):
        return None
    return conn.execute(f"SELECT source, account_id, max(date) FROM {KPI_SCHEMA}.kpi_daily GROUP BY ALL "
                        "ORDER BY ALL").fetchall()


def _status_findings(conn: duckdb.DuckDBPyConnection) -> list[Finding]:
    """meta.source_status (written at publish): a failing source is critical, a degraded one a warning."""
    if not table_exists(conn, "meta.source_status"):
        return []
    found = []
    rows = conn.execute("SELECT source, status, last_success, error, stale_since FROM meta.source_status "
                        "WHERE status IN ('failing', 'degraded') ORDER BY source").fetchall()
    for source, status, last_success, error, stale_since in rows:
        name = source_name(source)
        if status == "failing":
            since = f" since {stale_since:%d %b %Y %H:%M} UTC" if stale_since else ""
            text = (f"{name} is failing{since}: its KPI rows are the last good ones"
                    + (f" (last success {last_success:%d %b %Y %H:%M} UTC)" if last_success else "")
                    + f". Error: {error or 'unknown'}")
        else:
            text = f"{name} is degraded: loaded, but part of it was left out. {error or ''}".strip()
        found.append(Finding("stale_source", "critical" if status == "failing" else "warning", None, source, None,
                             None, text, None, None, None, "source", None, None))
    return found


def run_failure_findings(failures: Iterable[RunFailure]) -> list[Finding]:
    """One finding per source (None: the pipeline) whose run failed."""
    found: dict[str | None, Finding] = {}
    for failure in failures:
        steps = f" at {', '.join(failure.steps)}" if failure.steps else ""
        where = source_name(failure.source) if failure.source else "the pipeline"
        text = f"run {failure.run_id[:8]} ({failure.job}) failed for {where}{steps}: {failure.error}"
        if failure.source in found:
            text = found[failure.source].message + "; " + text
        found[failure.source] = Finding("run_failure", "critical", None, failure.source, None, None, text,
                                        grain="run")
    return list(found.values())


# --- recording: never twice ----------------------------------------------------------------------------------------


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """The alert tables, and kpi.alert_feed: each alert with its id, message, day and dashboard family, for the
    dashboard and other readers (status = the alert's state: open, acknowledged, cleared)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {KPI_SCHEMA}")
    for ddl in (_ALERTS_DDL, _DETAIL_DDL, _STATUS_DDL, _ANOMALY_DDL):
        conn.execute(ddl)
    conn.execute(f"""CREATE OR REPLACE VIEW {FEED} AS
        SELECT d.alert_id, a.created_at AS detected_at, a.kpi, a.source, a.channel, a.account_id, a.condition,
               a.severity, a.state AS status, d.message, d.day AS date, d.grain, d.family, a.value, a.expected_low,
               a.expected_high, a.sent_to
        FROM {ALERTS} AS a JOIN {DETAIL} AS d ON {_KEY_MATCH}""")


def alert_id(created_at: datetime, key: Sequence[str | None]) -> str:
    """A short, stable id for `mkpi alerts ack ID`: a hash of when and what (kpi.alerts keeps the issue's columns
    only; kpi.alert_detail carries the id)."""
    text = "|".join([created_at.astimezone(UTC).isoformat(), *[k or "" for k in key]])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


_KEY_MATCH = ("a.kpi IS NOT DISTINCT FROM d.kpi AND a.source IS NOT DISTINCT FROM d.source AND "
              "a.channel IS NOT DISTINCT FROM d.channel AND a.account_id IS NOT DISTINCT FROM d.account_id AND "
              "a.condition = d.condition AND a.created_at = d.created_at")


def list_alerts(conn: duckdb.DuckDBPyConnection, states: Sequence[str] = ("open", "acknowledged"),
                limit: int | None = None) -> list[Alert]:
    """Alerts in `states`, newest first, with their detail (the dashboard's "open alerts" and `mkpi alerts`)."""
    if not table_exists(conn, ALERTS):
        return []
    sql = (f"SELECT d.alert_id, a.created_at, a.kpi, a.source, a.channel, a.account_id, a.condition, a.value, "
           f"a.expected_low, a.expected_high, a.severity, a.sent_to, a.state, d.grain, d.day, d.family, d.message "
           f"FROM {ALERTS} AS a JOIN {DETAIL} AS d ON {_KEY_MATCH} WHERE a.state IN (SELECT unnest(?::VARCHAR[])) "
           f"ORDER BY a.created_at DESC, list_position(?::VARCHAR[], a.severity) DESC, d.alert_id")
    rows = conn.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), [list(states), list(SEVERITIES)]).fetchall()
    out = []
    for (ident, created, kpi, source, channel, account, condition, value, low, high, severity, sent_to, state, grain,
         day, family, message) in rows:
        finding = Finding(condition, severity, kpi, source, channel, account, message, value, low, high, grain, day,
                          family)
        sent = tuple(s for s in (sent_to or "").split(",") if s)
        out.append(Alert(ident, created, finding, sent, state))
    return out


def _insert(conn: duckdb.DuckDBPyConnection, alerts: Sequence[Alert]) -> None:
    for a in alerts:
        f = a.finding
        conn.execute(f"INSERT INTO {ALERTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [a.created_at, f.kpi, f.source, f.channel, f.account_id, f.condition, f.value, f.expected_low,
                      f.expected_high, f.severity, ",".join(a.sent_to), a.state])
        conn.execute(f"INSERT INTO {DETAIL} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                     [a.alert_id, a.created_at, f.kpi, f.source, f.channel, f.account_id, f.condition, f.grain, f.day,
                      f.family, f.message, a.created_at if a.state == "cleared" else None])


def _set_state(conn: duckdb.DuckDBPyConnection, ids: Sequence[str], state: str, when: datetime) -> None:
    """Move alerts (by id) to `state`, stamping the detail row."""
    if not ids:
        return
    column = "cleared_at" if state == "cleared" else "acknowledged_at"
    conn.execute(f"UPDATE {ALERTS} AS a SET state = ? FROM {DETAIL} AS d WHERE {_KEY_MATCH} "
                 "AND d.alert_id IN (SELECT unnest(?::VARCHAR[]))", [state, list(ids)])
    conn.execute(f"UPDATE {DETAIL} SET {column} = ? WHERE alert_id IN (SELECT unnest(?::VARCHAR[]))",
                 [when, list(ids)])


def reconcile(conn: duckdb.DuckDBPyConnection, findings: Sequence[Finding], now: datetime,
              succeeded_sources: Iterable[str] | None = ()) -> Evaluation:
    """Compare the findings with the open alerts and record the outcome (in the caller's transaction):
    a finding whose alert is open (or acknowledged) is not sent again; a new one is inserted open (a status back on
    track: cleared, nothing to act on); an open anomaly or stale source no longer found clears; a status change is
    superseded by the next one; a run failure clears when a later run of its source succeeded (`succeeded_sources`:
    source codes, and PIPELINE for the KPI and publish steps)."""
    ensure_tables(conn)
    evaluation = Evaluation(now, findings=list(findings))
    open_alerts = list_alerts(conn)
    by_key = {a.finding.key: a for a in open_alerts}
    current = {f.key for f in findings}
    succeeded = set(succeeded_sources or ())
    to_clear = [a.alert_id for a in open_alerts
                if (a.finding.condition in ("anomaly", "stale_source") and a.finding.key not in current)
                or (a.finding.condition == "run_failure" and (a.finding.source or PIPELINE) in succeeded
                    and a.finding.key not in current)]
    new: list[Alert] = []
    for finding in findings:
        existing = by_key.get(finding.key)
        if finding.condition == "status_change" and existing is not None:
            to_clear.append(existing.alert_id)  # superseded by the new status
        elif existing is not None:
            continue  # still the same condition: sent once, never twice
        state = "cleared" if finding.resolved else "open"
        new.append(Alert(alert_id(now, finding.key), now, finding, (), state))
    _set_state(conn, to_clear, "cleared", now)
    _insert(conn, new)
    evaluation.new = new
    evaluation.cleared = len(to_clear)
    evaluation.still_open = len(open_alerts) - len(to_clear)
    return evaluation


def store_statuses(conn: duckdb.DuckDBPyConnection, statuses: Sequence[tuple[str, date, str]], now: datetime) -> None:
    """Remember each objective's judged status (the next evaluation compares with it)."""
    for objective_id, period_start, status in statuses:
        conn.execute(f"DELETE FROM {OBJECTIVE_STATUS} WHERE objective_id = ?", [objective_id])
        conn.execute(f"INSERT INTO {OBJECTIVE_STATUS} VALUES (?, ?, ?, ?)", [objective_id, period_start, status, now])


def store_anomalies(conn: duckdb.DuckDBPyConnection, days: Sequence[date], points: Sequence[dict[str, Any]],
                    now: datetime) -> None:
    """Replace the judged days' anomalous points in kpi.kpi_anomaly (the dashboard marks them on trend charts)."""
    if not days:
        return
    conn.execute(f"DELETE FROM {ANOMALIES} WHERE date BETWEEN ? AND ?", [min(days), max(days)])
    if points:
        rows = [{**p, "judged_at": now} for p in points]
        table = pa.Table.from_pylist(rows, schema=_ANOMALY_SCHEMA)
        conn.register("_mkpi_anomaly_rows", table)
        try:
            conn.execute(f"INSERT INTO {ANOMALIES} SELECT * FROM _mkpi_anomaly_rows")
        finally:
            conn.unregister("_mkpi_anomaly_rows")


def mark_sent(conn: duckdb.DuckDBPyConnection, ids: Sequence[str], channel: str) -> None:
    """Add `channel` to the sent_to of the alerts `ids` (once delivered there)."""
    if not ids:
        return
    conn.execute(f"UPDATE {ALERTS} AS a SET sent_to = CASE WHEN coalesce(a.sent_to, '') = '' THEN ? "
                 f"ELSE a.sent_to || ',' || ? END FROM {DETAIL} AS d WHERE {_KEY_MATCH} "
                 "AND d.alert_id IN (SELECT unnest(?::VARCHAR[])) "
                 "AND NOT list_contains(string_split(coalesce(a.sent_to, ''), ','), ?)",
                 [channel, channel, list(ids), channel])


def undelivered(conn: duckdb.DuckDBPyConnection, channel: str, since: datetime) -> list[Alert]:
    """Alerts created since `since` (open, acknowledged, or resolved status changes) not yet delivered to `channel`:
    a channel that failed, or was added, gets them with the next digest."""
    return [a for a in list_alerts(conn, STATES) if a.created_at >= since and channel not in a.sent_to
            and (a.state != "cleared" or a.finding.resolved or a.finding.condition == "status_change")]


def acknowledge(conn: duckdb.DuckDBPyConnection, ident: str, now: datetime | None = None) -> Alert:
    """Acknowledge an open alert by its id (or a unique prefix of at least 4 characters): it stays until it clears,
    and is never sent again. An unknown, ambiguous or already cleared id is a ValueError naming it."""
    ident = ident.strip().lower()
    if len(ident) < 4:
        raise ValueError(f"alert id {ident!r} is too short: give at least 4 characters (see `mkpi alerts`)")
    matches = [a for a in list_alerts(conn, STATES) if a.alert_id.startswith(ident)]
    if not matches:
        raise ValueError(f"no alert {ident!r}: `mkpi alerts` lists the open ones")
    if len(matches) > 1:
        raise ValueError(f"alert id {ident!r} is ambiguous ({', '.join(a.alert_id for a in matches)}): give more of it")
    alert = matches[0]
    if alert.state == "cleared":
        raise ValueError(f"alert {alert.alert_id} has already cleared: nothing to acknowledge")
    if alert.state == "open":
        _set_state(conn, [alert.alert_id], "acknowledged", now or datetime.now(UTC))
    return replace(alert, state="acknowledged")


# --- one evaluation ------------------------------------------------------------------------------------------------


def configured_accounts(settings: Settings) -> dict[str, tuple[str, ...] | None]:
    """Each configured source's accounts as kpi_daily writes them (None: any account, HubSpot's one portal): a source
    or account no longer configured is not reported stale. The sources are the registry's; each connector module
    says how its KPI rows name its accounts (`kpi_accounts`, connectors/source.py)."""
    from connectors import registry

    return {spec.code: spec.connector_module().kpi_accounts(settings) for spec in registry.SOURCES
            if spec.configured(settings)}


def evaluate(conn: duckdb.DuckDBPyConnection, settings: AlertsSettings, as_of: date, *,
             min_denominators: Mapping[str, float] | None = None,
             configured: Mapping[str, Iterable[str] | None] | None = None,
             failures: Sequence[RunFailure] = (), succeeded_sources: Iterable[str] = (),
             now: datetime | None = None, catalogue: Catalogue | None = None) -> Evaluation:
    """Find every condition as of `as_of` (the last complete day; today is the day after) and record it in one
    transaction: new alerts (to be delivered), cleared ones, objective statuses, anomalous points."""
    return _evaluate(conn, settings, as_of, min_denominators, configured, failures, succeeded_sources, now,
                     catalogue or load_catalogue(), None)


def evaluate_days(conn: duckdb.DuckDBPyConnection, settings: AlertsSettings, days: Sequence[date], *,
                  min_denominators: Mapping[str, float] | None = None,
                  configured: Mapping[str, Iterable[str] | None] | None = None,
                  now: Callable[[date], datetime] | None = None, catalogue: Catalogue | None = None
                  ) -> list[Evaluation]:
    """The evaluations of several mornings in a row (a replay, a backfill): `evaluate` as of each day of `days` in
    turn, each in its own transaction and seeing the alerts the previous ones left, with exactly its alerts; the
    KPI days the bands need, each account's newest day, meta.source_status and kpi_vs_objective are read once for
    all of them (no evaluation writes them; they must not change meanwhile). `now`: each evaluation's time from its
    day (default: the clock at its turn)."""
    if not days:
        return []
    catalogue = catalogue or load_catalogue()
    first = min(days) - timedelta(days=settings.anomaly.days - 1)
    points = _read_window(conn, first, max(days), settings.anomaly)
    return [_evaluate(conn, settings, day, min_denominators, configured, (), (), now(day) if now else None,
                      catalogue, points) for day in days]


def _evaluate(conn: duckdb.DuckDBPyConnection, settings: AlertsSettings, as_of: date,
              min_denominators: Mapping[str, float] | None, configured: Mapping[str, Iterable[str] | None] | None,
              failures: Sequence[RunFailure], succeeded_sources: Iterable[str], now: datetime | None,
              catalogue: Catalogue, points: _Points | None) -> Evaluation:
    """One evaluation (see `evaluate`), its anomalies judged from `points` when already read."""
    from connectors.warehouse import transaction

    now = now or datetime.now(UTC)
    ensure_tables(conn)
    status_findings, statuses = detect_status_changes(conn, catalogue, shared=points)
    anomalies, points_found, judged = detect_anomalies(conn, settings.anomaly, as_of, min_denominators, catalogue,
                                                       points=points)
    stale = detect_stale_sources(conn, settings.stale_after_days, as_of + timedelta(days=1), configured,
                                 shared=points)
    findings = [*status_findings, *anomalies, *stale, *run_failure_findings(failures)]
    with transaction(conn):
        evaluation = reconcile(conn, findings, now, succeeded_sources)
        store_statuses(conn, statuses, now)
        store_anomalies(conn, judged_days(as_of, settings.anomaly), points_found, now)
    evaluation.anomalous_points = len(points_found)
    evaluation.judged_points = judged
    return evaluation
