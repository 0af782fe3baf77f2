"""Errors a connector raises, each carrying enough context for an on-call engineer to act.

`ConfigError` is raised before any request is sent (a missing account id, missing credentials);
`SourceError` wraps what a platform answered (unknown property, permission denied, retries exhausted)
and names the source, the account and the platform's own message. Messages never contain secrets.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class of every error raised by `connectors`."""


class ConfigError(ConnectorError):
    """The configuration is incomplete or wrong; nothing was requested yet."""


class SourceError(ConnectorError):
    """A platform refused or failed a request in a way retrying will not fix."""

    def __init__(self, source: str, account: str, message: str, *, retryable: bool = False) -> None:
        self.source = source
        self.account = account
        self.retryable = retryable
        super().__init__(f"{source} account {account}: {message}")


class RetriesExhausted(SourceError):
    """Transient failures (429, 5xx, resets, timeouts) outlasted the retry policy."""

    def __init__(self, source: str, account: str, message: str) -> None:
        super().__init__(source, account, message, retryable=True)
