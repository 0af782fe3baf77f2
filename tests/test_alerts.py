"""Alerts on hand-made rows: the band's arithmetic, never twice, clearing, acknowledgement, objective status changes,
stale sources, a failed run through the alerts job, and delivery failures that lose nothing and leak no secret.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb
import pytest

from connectors.errors import SourceError
from connectors.settings import AlertsSettings, AnomalySettings, SlackSettings, load_settings
from kpi_models.alert_delivery import DeliveryError, build_digest, deliver, send_slack
from kpi_models.alerts import (
    Finding,
    acknowledge,
    detect_anomalies,
    detect_stale_sources,
    detect_status_changes,
    evaluate,
    list_alerts,
    ratio_band,
    reconcile,
    sum_band,
)
from tests.alert_receivers import slack_receiver, smtp_receiver

MONDAY = date(2026, 6, 29)


def test_sum_band_by_hand():
    # eight Mondays 100..107 (median 103.5); the other weekdays pooled give relative distances whose median is
    # small, so the floors decide: 5% of 103.5 = 5.175 beats sqrt(103.5) = 10.17? no: Poisson 10.17 wins
    window = {MONDAY - timedelta(weeks=k): 100.0 + k - 1 for k in range(1, 9)}
    band = sum_band(window, MONDAY, 5.0, counts=True)
    assert band.center == pytest.approx(103.5)
    # relative distances to 103.5: 3.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5, 3.5 (/103.5); median 2.0/103.5; x1.4826 =
    # 2.965 < 5% (5.175) < sqrt(103.5) = 10.173
    assert band.spread == pytest.approx(103.5 ** 0.5)
    assert band.low == pytest.approx(103.5 - 5 * 103.5 ** 0.5)
    # money: no Poisson floor, 5% of the level
    assert sum_band(window, MONDAY, 5.0, counts=False).spread == pytest.approx(0.05 * 103.5)


def test_ratio_band_widens_as_the_denominator_shrinks():
    # eight Mondays at 30/1000 and 34/1000 alternately: ratios 0.030 / 0.034, median 0.032; distances 0.002 each,
    # times sqrt(1000) = 0.0632; x1.4826 = 0.0938 per sqrt(unit); today's denominator 1000: 0.0938 / 31.62 = 0.002965
    window = {MONDAY - timedelta(weeks=k): ((30.0 if k % 2 else 34.0), 1000.0) for k in range(1, 9)}
    band = ratio_band(window, MONDAY, 1000.0, 5.0, bounded=True)
    assert band.center == pytest.approx(0.032)
    # the binomial noise sqrt(0.032 x 0.968 / 1000) = 0.005566 is larger: it wins
    assert band.spread == pytest.approx((0.032 * 0.968 / 1000) ** 0.5)
    # a quarter of the traffic doubles the spread
    assert ratio_band(window, MONDAY, 250.0, 5.0, bounded=True).spread == pytest.approx(
        2 * (0.032 * 0.968 / 1000) ** 0.5)


def _kpi_daily(conn: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS kpi")
    conn.execute("CREATE TABLE IF NOT EXISTS kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, "
                 "account_id VARCHAR, kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, "
                 "currency VARCHAR, is_final BOOLEAN, quality VARCHAR[])")
    conn.executemany("INSERT INTO kpi.kpi_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, [])", rows)


def _sessions(days: int, value: float, last: float, final: bool = True) -> list[tuple]:
    """`days` days of GA4 direct sessions at `value`, the last one at `last`."""
    out = []
    for k in range(days):
        day = MONDAY - timedelta(days=days - 1 - k)
        v = last if day == MONDAY else value
        out.append((day, "ga4", "direct", "p1", "sessions", v, None, v, final if day == MONDAY else True))
    return out


def test_an_anomaly_is_sent_once_stays_open_and_clears(tmp_path):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    # 9 weeks at 1,000 a day; Monday at 400. Band: 1,000 +/- 5 x max(0, 50, 31.6) = 750 .. 1,250
    _kpi_daily(conn, _sessions(63, 1000.0, 400.0))
    settings = AlertsSettings()
    first = evaluate(conn, settings, MONDAY, now=datetime(2026, 6, 30, 6, tzinfo=UTC))
    assert [(a.finding.condition, a.finding.kpi, a.finding.severity) for a in first.new] == [
        ("anomaly", "sessions", "critical")]  # (1,000 - 400) / 50 = 12 spreads > 2 x 5
    finding = first.new[0].finding
    assert (finding.value, finding.expected_low, finding.expected_high) == (400.0, 750.0, 1250.0)
    # the next morning: still among the judged days, still open, never sent again
    second = evaluate(conn, settings, MONDAY + timedelta(days=1), now=datetime(2026, 7, 1, 6, tzinfo=UTC))
    assert second.new == [] and second.still_open == 1
    # acknowledged by a prefix of its id: stays listed as acknowledged, still not sent again
    acknowledged = acknowledge(conn, first.new[0].alert_id[:6])
    assert acknowledged.state == "acknowledged"
    assert [a.state for a in list_alerts(conn)] == ["acknowledged"]
    # eight days later Monday has left the judged days (the last 7): the alert clears (the rows end on Monday: the
    # source would be stale, which this test leaves aside)
    later = AlertsSettings(stale_after_days={"ga4": 30})
    third = evaluate(conn, later, MONDAY + timedelta(days=8), now=datetime(2026, 7, 8, 6, tzinfo=UTC))
    assert third.cleared == 1 and list_alerts(conn) == []
    with pytest.raises(ValueError, match="already cleared"):
        acknowledge(conn, first.new[0].alert_id)


def test_provisional_days_get_the_wider_band_or_wait(tmp_path):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    # Monday at 700, not final: 6 spreads below 1,000 (spread 50): anomalous for a final day (> 5), not for a
    # provisional one (< 7); with `final_only` it is not judged at all
    _kpi_daily(conn, _sessions(63, 1000.0, 700.0, final=False))
    assert detect_anomalies(conn, AnomalySettings(), MONDAY, days=[MONDAY])[0] == []
    assert detect_anomalies(conn, AnomalySettings(provisional_threshold=5.5), MONDAY, days=[MONDAY])[0] != []
    _, _, judged = detect_anomalies(conn, AnomalySettings(provisional="final_only"), MONDAY, days=[MONDAY])
    assert judged == 0


def test_below_the_minimum_volume_nothing_alerts(tmp_path):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    _kpi_daily(conn, _sessions(63, 40.0, 0.0))  # a usual day of 40 sessions (< 50) that drops to nothing
    assert detect_anomalies(conn, AnomalySettings(), MONDAY, days=[MONDAY]) == ([], [], 0)


def _objectives(conn: duckdb.DuckDBPyConnection, status: str, actual: float) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS kpi")
    conn.execute("CREATE OR REPLACE TABLE kpi.kpi_vs_objective AS SELECT 'cr/ga4' AS objective_id, "
                 "'conversion_rate' AS kpi, 'month' AS period, DATE '2026-06-01' AS period_start, 'ga4' AS source, "
                 "'all' AS channel, 'all' AS account_id, ? AS status, ?::DOUBLE AS actual, 0.03::DOUBLE AS target, "
                 "0.03::DOUBLE AS target_to_date, 0.05::DOUBLE AS tolerance, 'higher' AS direction, "
                 "false AS provisional, 'conversion rate must rise by 0.2 points' AS gap_text", [status, actual])


def test_status_changes_are_reported_with_the_gap_text_and_back(tmp_path):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    _objectives(conn, "on_track", 0.031)
    first = evaluate(conn, AlertsSettings(), MONDAY)
    assert first.new == []  # first sight, no previous period: the baseline
    _objectives(conn, "off_track", 0.028)
    second = evaluate(conn, AlertsSettings(), MONDAY)
    [alert] = second.new
    assert alert.finding.severity == "critical" and alert.state == "open"
    assert "moved from on track to off track" in alert.finding.message
    assert alert.finding.message.endswith("conversion rate must rise by 0.2 points")
    assert (alert.finding.value, alert.finding.expected_low, alert.finding.expected_high) == (0.028, 0.03, None)
    assert evaluate(conn, AlertsSettings(), MONDAY).new == []  # unchanged: nothing
    _objectives(conn, "on_track", 0.031)
    third = evaluate(conn, AlertsSettings(), MONDAY)
    [back] = third.new
    assert back.finding.severity == "info" and back.state == "cleared"  # sent, nothing to act on
    assert third.cleared == 1 and list_alerts(conn) == []  # the off-track alert is superseded
    assert detect_status_changes(conn)[0] == []


def test_stale_and_failing_sources(tmp_path):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    _kpi_daily(conn, [(date(2026, 6, 20), "search_console", "organic_search", "sc-domain:x", "search_clicks", 5.0,
                       None, 5.0, True), (date(2026, 6, 29), "ga4", "direct", "p1", "sessions", 5.0, None, 5.0, True)])
    conn.execute("CREATE SCHEMA meta")
    conn.execute("CREATE TABLE meta.source_status AS SELECT 'matomo' AS source, 'failing' AS status, "
                 "TIMESTAMPTZ '2026-06-28 04:00:00+00' AS last_success, 'matomo account 1: HTTP 401' AS error, "
                 "TIMESTAMPTZ '2026-06-29 04:00:00+00' AS stale_since")
    found = detect_stale_sources(conn, {"search_console": 4, "ga4": 2}, date(2026, 6, 30))
    assert {(f.source, f.account_id, f.severity, f.value) for f in found} == {
        ("matomo", None, "critical", None),  # failing since its last success
        ("search_console", "sc-domain:x", "critical", 10.0),  # 10 days behind, more than twice 4
    }
    assert "HTTP 401" in next(f.message for f in found if f.source == "matomo")
    # a source no longer configured is not reported
    assert [f.source for f in detect_stale_sources(conn, {"search_console": 4}, date(2026, 6, 30),
                                                   configured={"ga4": None})] == ["matomo"]


def test_a_run_failure_clears_when_its_source_succeeds_again(tmp_path):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    failure = Finding("run_failure", "critical", None, "ga4", None, None, "run failed")
    now = datetime(2026, 6, 30, 6, tzinfo=UTC)
    assert len(reconcile(conn, [failure], now).new) == 1
    assert reconcile(conn, [failure], now + timedelta(hours=1)).new == []  # the same failure again: not resent
    assert reconcile(conn, [], now + timedelta(hours=2), {"matomo", "pipeline"}).cleared == 0
    assert reconcile(conn, [], now + timedelta(hours=3), {"ga4", "pipeline"}).cleared == 1


def _boom_job() -> dg.JobDefinition:
    @dg.op(name="ga4__traffic_by_channel")
    def failing_step() -> None:
        raise SourceError("ga4", "123456789", "runReport: HTTP 403 permission denied")

    @dg.job(name="daily_refresh_job")
    def failing() -> None:
        failing_step()

    return failing


def test_a_failed_run_goes_through_the_alerts_job_to_the_channels(tmp_path, monkeypatch):
    from pipelines.definitions import defs
    from pipelines.defs.alerts.assets import AS_OF_TAG, FAILED_RUN_TAG

    instance = dg.DagsterInstance.ephemeral()
    failed = _boom_job().execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    with slack_receiver() as slack, smtp_receiver() as smtp:
        monkeypatch.setenv("MKPI_ALERTS_SLACK_WEBHOOK_URL", slack.url)
        monkeypatch.setenv("MKPI_ALERTS_SMTP_HOST", smtp.host)
        monkeypatch.setenv("MKPI_ALERTS_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("MKPI_ALERTS_SMTP_SECURITY", "none")
        monkeypatch.setenv("MKPI_ALERTS_EMAIL_TO", "oncall@shop.example")
        result = defs.resolve_job_def("alerts_job").execute_in_process(
            instance=instance, tags={FAILED_RUN_TAG: failed.run_id, AS_OF_TAG: "2026-06-29"}, raise_on_error=False)
        assert result.success
        [payload] = slack.payloads
        [message] = smtp.messages
    text = payload["blocks"][2]["text"]["text"]
    assert "CRITICAL · run failed" in text
    assert f"run {failed.run_id[:8]} (daily_refresh_job) failed for GA4 at ga4__traffic_by_channel" in text
    assert "HTTP 403 permission denied" in text
    assert message["To"] == "oncall@shop.example" and "1 critical" in message["Subject"]


def test_a_failed_channel_loses_nothing_and_never_shows_the_webhook(tmp_path, monkeypatch):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    finding = Finding("stale_source", "warning", None, "ga4", None, "p1", "no new GA4 data")
    now = datetime(2026, 6, 30, 6, tzinfo=UTC)
    reconcile(conn, [finding], now)
    with slack_receiver() as slack:
        monkeypatch.setenv("MKPI_ALERTS_SLACK_WEBHOOK_URL", slack.url.replace("sandboxWebhook", "revokedWebhook"))
        settings = load_settings().alerts
        report = deliver(conn, settings, now, MONDAY)  # 404 no_service: not retried, reported
        assert list(report.failed) == ["slack"] and "404" in report.failed["slack"]
        assert "revokedWebhook" not in report.failed["slack"] and "T0SANDBOX" not in report.failed["slack"]
        assert list_alerts(conn)[0].sent_to == ()
        # fixed: the next run's digest carries it; then it is never sent again
        monkeypatch.setenv("MKPI_ALERTS_SLACK_WEBHOOK_URL", slack.url)
        settings = load_settings().alerts
        assert deliver(conn, settings, now + timedelta(hours=1), MONDAY).sent == {"slack": 1}
        assert deliver(conn, settings, now + timedelta(hours=2), MONDAY).sent == {}
        assert len(slack.payloads) == 1 and list_alerts(conn)[0].sent_to == ("slack",)


def test_slack_rate_limit_is_retried_after_its_retry_after(tmp_path):
    digest = build_digest([], MONDAY, "https://dash.example/")
    waits: list[float] = []
    with slack_receiver() as slack:
        from connectors.settings import Secret

        slack.fail_next = [(429, "rate_limited", {"Retry-After": "2"}), (500, "oops", {})]
        send_slack(SlackSettings(enabled=True, webhook_url=Secret(slack.url)), digest.slack, sleep=waits.append)
        assert slack.requests == 3 and len(slack.payloads) == 1
    assert waits[0] >= 2.0
    with slack_receiver() as slack:
        slack.fail_next = [(400, "invalid_payload", {})]
        with pytest.raises(DeliveryError, match="slack: .*HTTP 400: invalid_payload") as raised:
            send_slack(SlackSettings(enabled=True, webhook_url=Secret(slack.url)), digest.slack, sleep=waits.append)
        assert "sandboxWebhookSecret42" not in str(raised.value) and raised.value.__cause__ is None
        assert slack.requests == 1  # a 4xx is not retried


def test_the_webhook_url_and_smtp_password_are_refused_in_the_file(tmp_path):
    from connectors.errors import ConfigError

    config = tmp_path / "mkpi.yaml"
    config.write_text("alerts:\n  slack:\n    webhook_url: https://hooks.slack.com/services/T/B/leaked\n")
    with pytest.raises(ConfigError, match="MKPI_ALERTS_SLACK_WEBHOOK_URL") as raised:
        load_settings(config, environ={})
    assert "leaked" not in str(raised.value)
    config.write_text("alerts:\n  email:\n    password: hunter22\n")
    with pytest.raises(ConfigError, match="MKPI_ALERTS_SMTP_PASSWORD") as raised:
        load_settings(config, environ={})
    assert "hunter22" not in str(raised.value)
    config.write_text("alerts:\n  anomaly:\n    treshold: 4\n")
    with pytest.raises(ConfigError, match="did you mean threshold"):
        load_settings(config, environ={})
