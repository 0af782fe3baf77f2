"""Delivery of the alerts digest: one message per run and channel (Slack incoming webhook, SMTP e-mail, a file).

Business purpose: the people who act on KPIs read Slack and e-mail, not the warehouse. One digest per run (never one
message per KPI), most severe first, each alert with its id (`mkpi alerts ack ID`) and a link to its dashboard section
(`#family-<family>` in data/dashboard.html).

Why no notification library: the two channels are small, documented wire formats: a JSON POST to the webhook URL
(https://api.slack.com/messaging/webhooks: `text` as the fallback, Block Kit `blocks`, at most 50 blocks, a section's
text at most 3,000 characters, HTTP 200 with body `ok`; 4xx with a reason such as `invalid_payload` or `no_service`;
429 with Retry-After when over one message per second) and SMTP (the standard library's smtplib, RFC 5321). apprise
would add a dependency tree whose configuration puts credentials inside URLs (`slack://TokenA/TokenB/TokenC`,
`mailtos://user:password@host`), which this project never writes anywhere. Retries go through connectors/http.py's
`call_with_retry`, like every request the project sends.

Secrets: the webhook URL (its path is the credential) and the SMTP password come from the environment only
(connectors/settings.py) and never appear in a message, an error or a log: errors are rebuilt from our own words.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import duckdb

from connectors.errors import SourceError
from connectors.http import (
    Fatal,
    HttpStatusError,
    Retry,
    RetryPolicy,
    Verdict,
    call_with_retry,
    classify_http,
    is_loopback,
    parse_retry_after,
    redact,
)
from connectors.settings import AlertsSettings, EmailSettings, SlackSettings
from kpi_models.alerts import SEVERITIES, Alert, mark_sent, undelivered

# How far back a channel that failed (or was just configured) is caught up with alerts it has not received.
CATCH_UP = timedelta(days=7)
# Slack limits (https://api.slack.com/reference/block-kit/blocks): 50 blocks a message, 3,000 characters a section.
SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 3000
_CONDITION_LABEL = {"status_change": "objective status", "anomaly": "unusual value", "stale_source": "stale source",
                    "run_failure": "run failed"}
_POLICY = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=10.0, max_retry_after=60.0)


class DeliveryError(RuntimeError):
    """A channel could not take the digest; the message names the channel and why, never a credential."""


@dataclass(frozen=True)
class Digest:
    """One run's digest, rendered for each channel."""

    subject: str
    text: str
    markdown: str
    slack: dict[str, Any]
    alert_ids: tuple[str, ...]


@dataclass
class DeliveryReport:
    """Per channel: how many alerts it received, or why it failed."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


# --- the digest ------------------------------------------------------------------------------------------------


def dashboard_link(base: str | None, family: str | None) -> str:
    """The dashboard section of an alert: `<dashboard>#family-<family>` (the dashboard's own ids), or its top."""
    if base is None:
        from kpi_models.dashboard import dashboard_path

        base = Path(dashboard_path()).resolve().as_uri()
    return f"{base}#family-{family}" if family else base


def _ordered(alerts: Sequence[Alert]) -> list[Alert]:
    return sorted(alerts, key=lambda a: (-SEVERITIES.index(a.finding.severity), a.finding.condition,
                                         a.finding.kpi or "", a.finding.source or "", a.alert_id))


def _headline(alerts: Sequence[Alert], as_of: Any) -> str:
    counts = [f"{sum(a.finding.severity == s for a in alerts)} {s}" for s in reversed(SEVERITIES)
              if any(a.finding.severity == s for a in alerts)]
    plural = "alert" if len(alerts) == 1 else "alerts"
    return f"{len(alerts)} KPI {plural} ({', '.join(counts)}), data up to {as_of}"


def build_digest(alerts: Sequence[Alert], as_of: Any, dashboard_url: str | None) -> Digest:
    """The digest of `alerts`: most severe first, each with its condition, what happened, its id and its link."""
    ordered = _ordered(alerts)
    headline = _headline(ordered, as_of)
    text_lines = [f"Marketing KPI alerts: {headline}.", ""]
    md_lines = ["# Marketing KPI alerts", "", f"{headline}.", ""]
    title = {"type": "plain_text", "text": f"Marketing KPI alerts: {len(ordered)}"}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": title},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(headline)}]}]
    room = SLACK_MAX_BLOCKS - len(blocks) - 1
    for index, alert in enumerate(ordered):
        f = alert.finding
        link = dashboard_link(dashboard_url, f.family)
        label = f"{f.severity.upper()} · {_CONDITION_LABEL.get(f.condition, f.condition)}"
        text_lines += [f"* {label}: {f.message}", f"  id {alert.alert_id} · dashboard {link}", ""]
        md_lines += [f"- **{label}**: {f.message}  ", f"  id `{alert.alert_id}` · [dashboard]({link})"]
        if index < room:
            body = f"*{_slack_escape(label)}*: {_slack_escape(f.message)}\nid `{alert.alert_id}` · <{link}|dashboard>"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:SLACK_MAX_TEXT]}})
    if len(ordered) > room:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f"... and {len(ordered) - room} more: run `mkpi alerts`"}]})
    footer = "Acknowledge one: mkpi alerts ack ID; list the open ones: mkpi alerts."
    text_lines.append(footer)
    md_lines += ["", footer, ""]
    slack = {"text": f"Marketing KPI alerts: {headline}", "blocks": blocks}
    return Digest(f"[mkpi] {headline}", "\n".join(text_lines) + "\n", "\n".join(md_lines), slack,
                  tuple(a.alert_id for a in ordered))


def _slack_escape(text: str) -> str:
    """Slack's three control characters (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- channels --------------------------------------------------------------------------------------------------


def _channel_error(channel: str, exc: BaseException, secrets: Sequence[str]) -> DeliveryError:
    """Our own sentence for a failed delivery (the cause chain is dropped: a library's message may quote the URL)."""
    return DeliveryError(redact(f"{channel}: {exc}", secrets))


def send_slack(settings: SlackSettings, payload: Mapping[str, Any], *,
               sleep: Callable[[float], None] | None = None) -> None:
    """POST the digest to the incoming webhook; 429 and 5xx are retried (Retry-After honoured), 4xx fail."""
    import requests

    if settings.webhook_url is None:
        raise DeliveryError("slack: alerts.slack is enabled but MKPI_ALERTS_SLACK_WEBHOOK_URL is not set")
    url = settings.webhook_url.reveal()
    session = requests.Session()

    def once() -> None:
        response = session.post(url, json=payload, timeout=settings.timeout_seconds)
        body = response.content[:200].decode("utf-8", "replace")
        if response.status_code >= 300:
            raise HttpStatusError(response.status_code, redact(body, [url]),
                                  parse_retry_after(response.headers.get("Retry-After")))

    try:
        call_with_retry(once, classify=classify_http, source="alerts", account="slack",
                        what="Slack incoming webhook", policy=_POLICY, **({"sleep": sleep} if sleep else {}))
    except SourceError as exc:
        raise _channel_error("slack", exc, [url]) from None
    finally:
        session.close()


def _classify_smtp(exc: BaseException) -> Verdict:
    """Temporary SMTP failures (4xx replies, a dropped connection, a timeout) are retried; 5xx and refused
    recipients are not (RFC 5321 section 4.2.1: 4yz transient, 5yz permanent)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return Fatal(f"every recipient was refused ({', '.join(sorted(exc.recipients))})")
    if isinstance(exc, smtplib.SMTPResponseException):
        reason = f"SMTP {exc.smtp_code}"
        return Retry(reason) if 400 <= exc.smtp_code < 500 else Fatal(reason)
    if isinstance(exc, smtplib.SMTPServerDisconnected | socket.timeout | ConnectionError):
        return Retry(type(exc).__name__)
    if isinstance(exc, OSError):
        return Retry(f"{type(exc).__name__}: {exc.strerror or exc}")
    return Fatal(f"{type(exc).__name__}")


def email_message(settings: EmailSettings, digest: Digest) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = digest.subject
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(digest.text)
    return message


def send_email(settings: EmailSettings, digest: Digest, *, sleep: Callable[[float], None] | None = None) -> None:
    """Send the digest by SMTP (STARTTLS, SSL, or plain only to this machine when a password is sent)."""
    if not settings.host or not settings.recipients:
        raise DeliveryError("email: alerts.email is enabled but has no host or no recipients (alerts.email.host, "
                            "alerts.email.recipients or MKPI_ALERTS_SMTP_HOST, MKPI_ALERTS_EMAIL_TO)")
    if settings.username and settings.password is None:
        raise DeliveryError("email: alerts.email.username is set but MKPI_ALERTS_SMTP_PASSWORD is not")
    if settings.security == "none" and settings.password is not None and not is_loopback(settings.host):
        raise DeliveryError(f"email: refusing to send the SMTP password unencrypted to {settings.host}: set "
                            "alerts.email.security to starttls or ssl")
    secrets = [settings.password.reveal()] if settings.password else []
    message = email_message(settings, digest)

    def once() -> None:
        context = ssl.create_default_context()
        if settings.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout_seconds,
                                                  context=context)
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
        with smtp:
            if settings.security == "starttls":
                smtp.starttls(context=context)
            if settings.username and settings.password is not None:
                smtp.login(settings.username, settings.password.reveal())
            smtp.send_message(message)

    try:
        call_with_retry(once, classify=_classify_smtp, source="alerts", account="email",
                        what=f"SMTP {settings.host}:{settings.port}", policy=_POLICY,
                        **({"sleep": sleep} if sleep else {}))
    except SourceError as exc:
        raise _channel_error("email", exc, secrets) from None


def write_digest_file(path: str, digest: Digest) -> Path:
    """Write the digest (Markdown) to a local file, replaced atomically: the last digest sent."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(digest.markdown, encoding="utf-8")
    os.replace(temporary, target)
    return target


# --- one digest per run and channel ------------------------------------------------------------------------------


def _write(path: str, digest: Digest) -> None:
    write_digest_file(path, digest)


def slack_enabled(settings: AlertsSettings) -> bool:
    return settings.slack.enabled is True or (settings.slack.enabled is None and settings.slack.webhook_url is not None)


def email_enabled(settings: AlertsSettings) -> bool:
    email = settings.email
    return email.enabled is True or (email.enabled is None and bool(email.host) and bool(email.recipients))


def channels(settings: AlertsSettings) -> dict[str, Callable[[Digest], None]]:
    """The configured channels, by the name kept in kpi.alerts.sent_to."""
    found: dict[str, Callable[[Digest], None]] = {}
    if settings.digest_file:
        found["file"] = lambda digest: _write(str(settings.digest_file), digest)
    if slack_enabled(settings):
        found["slack"] = lambda digest: send_slack(settings.slack, digest.slack)
    if email_enabled(settings):
        found["email"] = lambda digest: send_email(settings.email, digest)
    return found


def deliver(conn: duckdb.DuckDBPyConnection, settings: AlertsSettings, now: datetime, as_of: Any) -> DeliveryReport:
    """Send each configured channel one digest of the alerts it has not received yet (this run's new ones, and any
    of the last week a failed attempt missed), at or above `min_severity`; record where each went (sent_to). A channel
    that fails does not stop the others; the report says which failed and why."""
    report = DeliveryReport()
    floor = SEVERITIES.index(settings.min_severity)
    for name, send in channels(settings).items():
        pending = [a for a in undelivered(conn, name, now - CATCH_UP) if SEVERITIES.index(a.finding.severity) >= floor]
        if not pending:
            continue
        digest = build_digest(pending, as_of, settings.dashboard_url)
        try:
            send(digest)
        except (DeliveryError, OSError) as exc:
            report.failed[name] = str(exc) if isinstance(exc, DeliveryError) else f"{name}: {type(exc).__name__}"
            continue
        mark_sent(conn, digest.alert_ids, name)
        report.sent[name] = len(pending)
    return report

