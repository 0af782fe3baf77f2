"""Errors a connector raises, each carrying enough context for an on-call engineer to act.

`ConfigError` is raised before any request is sent (a missing account id, missing credentials);
`SourceError` wraps what a platform answered (unknown property, permission denied, retries exhausted)
and names the source, the account and the platform's own message. Messages never contain secrets.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class of every error raised by `connectors`."""


class ConfigError(ConnectorError):
    """The configuration is incomplete or wrong; nothing was requested yet. `key` names the setting
    (`ga4.page_size`, `MKPI_GA4_PROPERTY_IDS`) when one is to blame, so the fix is one edit away."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.key = key
        super().__init__(message)


class SourceError(ConnectorError):
    """A platform refused or failed a request in a way retrying will not fix."""

    def __init__(self, source: str, account: str, message: str, *, retryable: bool = False) -> None:
        self.source = source
        self.account = account
        self.retryable = retryable
        super().__init__(f"{source} account {account}: {message}")


class InvalidResponse(SourceError):
    """A platform answered 2xx with well-formed JSON (or protobuf) whose *content* breaks the API's contract: a
    wrong type, a missing key, NaN or Infinity, a negative count, a duplicate row, a cursor that does not
    advance, a column nobody asked for, a 10 MB string, an impossible date.

    Why its own type: such an answer is never loaded (no silent coercion, no "0 rows, success") and never
    retried (the same request gets the same answer); the on-call engineer needs the source, the account, the
    endpoint and the field to open a ticket with the platform or fix the mapping. `value` is a short excerpt
    of the offending value (never a credential: responses carry data, tokens travel in requests)."""

    def __init__(self, source: str, account: str, endpoint: str, field: str, problem: str,
                 value: object = None) -> None:
        self.endpoint = endpoint
        self.field = field
        self.problem = problem
        shown = "" if value is None else f" (got {excerpt(value)})"
        self.value = value
        super().__init__(source, account, f"{endpoint}: field {field!r}: {problem}{shown}")

    def __reduce__(self) -> tuple[object, ...]:  # picklable across processes (Dagster's multiprocess executor)
        return (type(self), (self.source, self.account, self.endpoint, self.field, self.problem, self.value))


EXCERPT_CHARS = 60


def excerpt(value: object) -> str:
    """A short, single-line rendering of a value for an error message (a 10 MB string stays 60 characters)."""
    if isinstance(value, str) and len(value) > EXCERPT_CHARS:
        return f"{value[:EXCERPT_CHARS]!r}... ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


class RetriesExhausted(SourceError):
    """Transient failures (429, 5xx, resets, timeouts) outlasted the retry policy."""

    def __init__(self, source: str, account: str, message: str) -> None:
        super().__init__(source, account, message, retryable=True)
