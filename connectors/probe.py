"""What `mkpi doctor` asks each platform, as plain Python: findings (ok / what was seen / the exact fix).

Business purpose: before a first run, a marketer wants to know, per platform, whether the credentials work and which
account lacks which permission, in words they can act on. Each connector's `probe()` makes the cheapest real request
that proves read access and returns `Finding`s; the CLI only prints them (it never reaches into a connector's
client). The helpers here are shared by every connector's probe: a short timeout and retry policy (a platform that
hangs must not hold the diagnosis for a minute), the platform's own words from a client error, and who needs the
access for Google's advice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from connectors.errors import ConfigError, SourceError
from connectors.http import RetryPolicy

# a platform that hangs should not hold the diagnosis for a minute
PROBE_TIMEOUT = 20.0
PROBE_POLICY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0, max_retry_after=5.0)
# what a probe says when the connector refused its settings before sending anything
CONFIG_REFUSED = "configuration refused before any request"

_C = TypeVar("_C")


@dataclass(frozen=True)
class Finding:
    """One thing a probe verified (ok) or found broken, with the exact fix."""

    ok: bool
    text: str
    fix: str | None = None


def refused(exc: ConfigError) -> list[Finding]:
    """The one finding of a probe whose settings the connector refused before any request."""
    return [Finding(False, CONFIG_REFUSED, str(exc))]


def first_line(text: object) -> str:
    """The first non-empty line of an error message (gRPC and client errors span many lines)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return str(text).strip()


def api_error(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status if known, the platform's message) from a Google or HubSpot client error, or our SourceError."""
    cause = exc.__cause__ if isinstance(exc, SourceError) and exc.__cause__ is not None else exc
    status = None
    for attr in ("status_code", "status", "code"):  # googleapiclient, hubspot, google-api-core
        value = getattr(cause, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            status = value
            break
    message = str(exc) if isinstance(exc, SourceError) else str(getattr(exc, "message", "") or exc)
    if message.startswith(("POST http", "GET http")) and ": " in message:
        message = message.split(": ", 1)[1]  # google-api-core prefixes the URL
    return status, first_line(message)


def google_account(credentials_file: str | None, endpoint: str | None, scopes: tuple[str, ...],
                   platform: str, variable: str) -> str:
    """Who needs the access (a service account's e-mail when there is one), for the 'grant ...' advice."""
    from connectors.google_auth import resolve_credentials

    try:
        credentials = resolve_credentials(credentials_file, endpoint, scopes, platform, variable)
    except ConfigError:
        return "the account of your credentials"
    email = getattr(credentials, "service_account_email", None)
    return email if email and "@" in str(email) else "the account of your credentials"


def probing(connector: _C, **options: Any) -> _C:
    """A fresh connector of the same settings for a probe, its timeout capped at PROBE_TIMEOUT (`options`: other
    constructor arguments, such as `policy=PROBE_POLICY`)."""
    settings = connector.settings  # type: ignore[attr-defined]
    capped = dataclasses.replace(settings, timeout_seconds=min(settings.timeout_seconds, PROBE_TIMEOUT))
    return type(connector)(capped, **options)  # type: ignore[call-arg]
