"""The one retry, backoff and rate-limit helper every connector calls through, and the bounds on every answer.

Why it exists: marketing APIs rate-limit (429 with or without Retry-After), fail (5xx, resets,
stalls) and occasionally send truncated bodies. Each connector knows how to *classify* its
platform's failures (a `Classifier`); this module owns *what to do* about them, once:
exponential backoff with jitter, never waiting less than the server's Retry-After, a bounded number
of attempts and a bounded total time, a client-side rate limit, and counters that end up in run metadata.

Bounded answers (issue #19): a hostile or broken server can send a 200 MB body, an endless chunked stream, or a
body at one byte per second, which a per-read socket timeout never stops. Every request of a connector runs inside
an `answer_guard` (one answer: a total deadline for connect and read, a maximum size, one origin), enforced where
the bytes arrive: the official clients all read through `http.client`, so their connections use
`GuardedHTTPResponse`, whose socket reader counts the bytes and gives each read only the time left. requests
sessions (Matomo, GA4's REST transport) get it through `GuardedAdapter`, HubSpot's urllib3 pools through
`guard_pool_manager`, Search Console's httplib2 through `GuardedHttp`. The same guard refuses a redirect to another
origin before a byte (a token in a POST body, an Authorization header) is sent there.
"""

from __future__ import annotations

import collections
import functools
import http.client
import io
import ipaddress
import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from connectors import registry
from connectors.errors import ConfigError, RetriesExhausted, SourceError

log = logging.getLogger("mkpi.http")
T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """A classifier's verdict: this failure is transient; wait at least `wait_at_least` seconds."""

    reason: str
    wait_at_least: float = 0.0


@dataclass(frozen=True)
class Fatal:
    """A classifier's verdict: retrying cannot help (bad id, no permission, bad request)."""

    reason: str


Verdict = Retry | Fatal
Classifier = Callable[[BaseException], Verdict]


@dataclass(frozen=True)
class RetryPolicy:
    """How patient a connector is. Defaults follow dlt/Airbyte: 5 retries, capped exponential backoff; and at most
    `max_elapsed` seconds for a request and all its retries, waits included (six attempts that each run to their
    deadline, or a server asking for long waits again and again, would otherwise hold a worker for an hour)."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    # A server asking for a longer wait than this fails the run now instead of blocking a worker.
    max_retry_after: float = 900.0
    max_elapsed: float = 900.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Equal-jitter exponential backoff: half fixed, half random, so retries spread out."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class RequestStats:
    """Counters a connector reports in run metadata: requests sent, retries, time spent waiting."""

    requests: int = 0
    retries: int = 0
    waited_seconds: float = 0.0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    # every retry's (reason, seconds waited), so a test or a run log can prove no wait undercut Retry-After
    waits: list[tuple[str, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def count_retry(self, reason: str, waited: float) -> None:
        with self._lock:
            self.retries += 1
            self.waited_seconds += waited
            self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
            self.waits.append((reason, waited))

    def as_metadata(self) -> dict[str, float | int]:
        return {"requests": self.requests, "retries": self.retries, "waited_seconds": round(self.waited_seconds, 3)}


class RateLimiter:
    """At most `rate` calls in any `per` seconds, shared by the threads of one connector.

    A rolling window, as the platforms count: HubSpot's "ten_secondly_rolling" limit, Search Console's queries
    per minute. (A token bucket of the same rate lets twice the rate through in one window, a full bucket then
    its refill, and HubSpot answered that with 429s.) The window keeps the times of the last `rate` calls; a call
    waits until the oldest of them is `per` seconds old.
    """

    def __init__(self, rate: float, per: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self.capacity = max(1, int(rate))
        self.per = float(per)
        self._calls: collections.deque[float] = collections.deque()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a place in the window, sleeping until one is free; return the seconds slept."""
        slept = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and self._calls[0] <= now - self.per:
                    self._calls.popleft()
                if len(self._calls) < self.capacity:
                    self._calls.append(now)
                    return slept
                wait = self._calls[0] + self.per - now
            self._sleep(wait)
            slept += wait


def call_with_retry(
    fn: Callable[[], T],
    *,
    classify: Classifier,
    source: str,
    account: str,
    what: str,
    policy: RetryPolicy | None = None,
    stats: RequestStats | None = None,
    limiter: RateLimiter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
    secrets: Iterable[str] = (),
) -> T:
    """Call `fn` until it succeeds, a failure is classified Fatal, the attempts run out, or the next wait would
    end past `policy.max_elapsed` seconds since the first attempt (`clock` measures it; waits count).

    `fn` must do the whole request *including reading and parsing the body*, so that a truncated
    body is retried like any other transient failure. An answer stopped by its `answer_guard` is judged here,
    the same for every connector: too large or redirected elsewhere is fatal (the same request gets the same
    answer), too slow is transient. Errors carry source, account and `what` (endpoint and window), never
    credentials: `secrets` are starred out of every reason logged or raised.
    """
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    secrets = tuple(secrets)
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        if limiter is not None:
            limiter.acquire()
        if stats is not None:
            stats.count_request()
        try:
            return fn()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - the classifier decides what is transient
            verdict = _judge(exc, classify, secrets)
            if isinstance(verdict, Fatal):
                raise SourceError(source, account, f"{what}: {verdict.reason}") from exc
            if verdict.wait_at_least > policy.max_retry_after:
                raise RetriesExhausted(
                    source, account,
                    f"{what}: server asks to wait {verdict.wait_at_least:.0f}s ({verdict.reason}), "
                    f"more than the {policy.max_retry_after:.0f}s allowed; re-run later",
                ) from exc
            if attempt >= policy.max_attempts:
                raise RetriesExhausted(
                    source, account, f"{what}: gave up after {attempt} attempts; last error: {verdict.reason}"
                ) from exc
            wait = max(verdict.wait_at_least, policy.backoff(attempt, rng))
            elapsed = clock() - started
            if elapsed + wait > policy.max_elapsed:
                raise RetriesExhausted(
                    source, account,
                    f"{what}: gave up after {attempt} attempts in {elapsed:.0f}s: another wait of {wait:.0f}s would "
                    f"pass the {policy.max_elapsed:g}s allowed for a request and its retries; last error: "
                    f"{verdict.reason}",
                ) from exc
            log.warning("%s %s: %s; retry %d/%d in %.2fs (%s)", source, account, what, attempt,
                        policy.max_attempts - 1, wait, verdict.reason)
            if stats is not None:
                stats.count_retry(verdict.reason, wait)
            sleep(wait)


def _judge(exc: BaseException, classify: Classifier, secrets: tuple[str, ...]) -> Verdict:
    """The verdict on a failed attempt, its reason redacted: a guard's refusal is judged by the guard, the rest by
    the connector's classifier."""
    if isinstance(exc, AnswerRefused):
        verdict: Verdict = Retry(str(exc)) if exc.transient else Fatal(str(exc))
    else:
        verdict = classify(exc)
    if not secrets:
        return verdict
    if isinstance(verdict, Retry):
        return Retry(redact(verdict.reason, secrets), verdict.wait_at_least)
    return Fatal(redact(verdict.reason, secrets))


def is_loopback(host: str | None) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1: the only hosts plain HTTP may carry credentials to."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds form); 0 when absent or unparseable."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return 0.0


class HttpStatusError(Exception):
    """A non-2xx answer; carries the status, the server's Retry-After and a short, redacted excerpt."""

    def __init__(self, status: int, excerpt: str, retry_after: float = 0.0) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}: {excerpt}")


class MalformedResponse(Exception):
    """A 2xx answer that is not what the API sends: truncated or invalid JSON, an HTML page, an empty body.

    Never "0 rows, success": it is retried, then fails the run."""


def json_body(body: bytes | str, status: int = 200) -> Any:
    """A 2xx body parsed as JSON. An empty body, an HTML page (a proxy's, a login redirect's) or broken JSON raise
    MalformedResponse, which is retried and then fails the run: never "0 rows, success"."""
    import json

    raw = body.encode() if isinstance(body, str) else body
    text = raw.decode("utf-8", "replace").lstrip()
    if not text:
        raise MalformedResponse(f"empty body with status {status}")
    if text.startswith("<"):
        raise MalformedResponse(f"HTML page with status {status} instead of JSON")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MalformedResponse(f"invalid or truncated JSON ({len(raw)} bytes)") from exc


MIN_SECRET_LENGTH = 6  # shorter values are not credentials; starring them would garble every message


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in `text` (exception messages, URLs) with ***."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text


# ---- no secret leaves a connector: exceptions and log records (issue #19) ----------------------------------------
# A server may echo a token back (Matomo's error message, a 401 body, a proxy's page). It then sits in an exception's
# message, in the exception it was raised from (HubSpot's ApiException keeps the whole body, and its str shows it),
# and in retry log lines; Dagster stores all of them: the step's error with its __cause__/__context__ chain, the
# captured `mkpi` log records, the step log files, and `mkpi --debug` prints the chain.


class RedactedError(Exception):
    """Stands in an exception chain for an exception whose text still showed a secret after its arguments and
    attributes were redacted (its own __str__ builds text from elsewhere): its type name and redacted text."""


def _clean(value: Any, secrets: tuple[str, ...]) -> Any:
    """`value` with every secret starred: strings, bytes, and the mappings, lists and tuples holding them."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, bytes | bytearray):
        out = bytes(value)
        for secret in secrets:
            out = out.replace(secret.encode(), b"***")
        return out
    if isinstance(value, Mapping):
        cleaned = {_clean(k, secrets): _clean(v, secrets) for k, v in value.items()}
        return cleaned if cleaned != dict(value) else value
    if type(value) in (list, tuple):
        items = [_clean(v, secrets) for v in value]
        return type(value)(items) if items != list(value) else value
    return value


def _shows(exc: BaseException, secrets: tuple[str, ...]) -> bool:
    try:
        text = f"{exc}\n{exc!r}"
    except Exception:  # noqa: BLE001 - an exception whose str fails shows nothing
        return False
    return any(secret in text for secret in secrets)


def _scrub_one(exc: BaseException, secrets: tuple[str, ...], done: dict[int, BaseException]) -> BaseException:
    if id(exc) in done:
        return done[id(exc)]
    done[id(exc)] = exc
    exc.args = tuple(_clean(arg, secrets) for arg in exc.args)
    for name, value in list(getattr(exc, "__dict__", {}).items()):
        cleaned = _clean(value, secrets)
        if cleaned is not value:
            try:
                setattr(exc, name, cleaned)
            except (AttributeError, TypeError):
                pass
    if exc.__cause__ is not None:
        exc.__cause__ = _scrub_one(exc.__cause__, secrets, done)
    if exc.__context__ is not None:
        exc.__context__ = _scrub_one(exc.__context__, secrets, done)
    if not _shows(exc, secrets):
        return exc
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001
        text = ""
    stand_in = RedactedError(f"{type(exc).__module__}.{type(exc).__qualname__}: {redact(text, secrets)}")
    stand_in.__cause__, stand_in.__context__ = exc.__cause__, exc.__context__
    stand_in.__suppress_context__ = exc.__suppress_context__
    stand_in.__traceback__ = exc.__traceback__
    done[id(exc)] = stand_in
    return stand_in


def scrub(exc: BaseException, secrets: Iterable[str]) -> BaseException:
    """`exc` fit to leave a connector: every secret starred in its arguments and attributes (an ApiException's body
    and headers, an InvalidResponse's value), and the same along its __cause__/__context__ chain; an exception that
    would still show one (its str reads something else) is replaced by a RedactedError in the chain. The exception
    itself keeps its type (callers catch SourceError, RetriesExhausted, ...) unless it too had to be replaced."""
    wanted = tuple(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
    return _scrub_one(exc, wanted, {}) if wanted else exc


def scrub_calls(fn: Callable[[], T], secrets: Iterable[str]) -> T:
    """`fn()`, its exception scrubbed before it goes on; raised outside the handler, so that Python does not chain
    the unscrubbed original to a stand-in as its __context__."""
    error: BaseException | None = None
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - re-raised below, scrubbed
        error = scrub(exc, secrets)
    raise error


def scrub_iter(items: Iterable[T], secrets: Iterable[str]) -> Iterator[T]:
    """The items of a connector's generator; an exception it raises is scrubbed before it goes on (see scrub_calls)."""
    iterator = iter(items)
    while True:
        error: BaseException | None = None
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - re-raised below, scrubbed
            error = scrub(exc, secrets)
        if error is not None:
            raise error
        yield item


_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


class _RedactingFilter(logging.Filter):
    """Stars every secret a connector registered (`remember_secrets`) out of the records of the connectors' loggers
    before any handler (Dagster's capture of `mkpi`, a console, a file) sees them; an attached exception is scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _SECRETS_LOCK:
            secrets = tuple(_SECRETS)
        if not secrets:
            return True
        message = record.getMessage()
        if any(secret in message for secret in secrets):
            record.msg, record.args = redact(message, secrets), None
        if record.exc_info and record.exc_info[1] is not None:
            scrub(record.exc_info[1], secrets)
            record.exc_text = None
        return True


_REDACTING_FILTER = _RedactingFilter()
# The loggers connectors write to (a filter on a logger sees the records made on that logger, not its children's).
# Every source's logger (mkpi.<code>, from the registry) and the shared clients' (mkpi.http, Meta's Graph client).
CONNECTOR_LOGGERS = ("mkpi.http", "mkpi.meta", *(f"mkpi.{code}" for code in registry.codes()))
for _name in CONNECTOR_LOGGERS:
    logging.getLogger(_name).addFilter(_REDACTING_FILTER)


def remember_secrets(*secrets: str | None) -> None:
    """Register credential values for the log filter (a process holds them anyway; they are never written)."""
    with _SECRETS_LOCK:
        _SECRETS.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)


def classify_http(exc: BaseException) -> Verdict:
    """The default verdicts for plain HTTP APIs: 429/408/5xx, network errors and bad bodies are transient."""
    import requests

    if isinstance(exc, HttpStatusError):
        if exc.status == 429:
            return Retry(str(exc), exc.retry_after)
        if exc.status == 408 or exc.status >= 500:
            return Retry(str(exc), exc.retry_after)
        return Fatal(str(exc))
    if isinstance(exc, MalformedResponse):
        return Retry(f"malformed response: {exc}")
    if isinstance(exc, requests.RequestException):
        return Retry(type(exc).__name__)
    return Fatal(f"{type(exc).__name__}: {exc}")


class HttpClient:
    """A requests.Session with timeouts, retries through `call_with_retry`, a rate limit and redaction.

    `request_json` returns parsed JSON only after the whole body was read and decoded, so a truncated
    body or an HTML error page is a retried failure, never an empty success. Each attempt is one `answer_guard`:
    `timeout` seconds in all (connect and read), at most `max_bytes` (default: MKPI_<SOURCE>_MAX_ANSWER_MB), and
    no redirect to another origin (the session would re-POST a form, token included, wherever a 307 points)."""

    def __init__(
        self,
        source: str,
        *,
        timeout: float = 60.0,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        stats: RequestStats | None = None,
        sleep: Callable[[float], None] | None = None,
        headers: dict[str, str] | None = None,
        secrets: Iterable[str] = (),
        classify: Classifier = classify_http,
        max_bytes: int | None = None,
    ) -> None:
        import requests

        self.source = source
        self.timeout = timeout
        self.max_bytes = max_answer_bytes(source) if max_bytes is None else max_bytes
        self.policy = policy or RetryPolicy()
        self.limiter = limiter
        self.stats = stats or RequestStats()
        self.sleep = sleep or time.sleep
        self.secrets = tuple(s for s in secrets if s)
        remember_secrets(*self.secrets)
        self.classify = classify
        self.session = guard_session(requests.Session())
        self.session.headers.update({"User-Agent": "marketing-kpi-pipeline/0.1", **(headers or {})})

    def close(self) -> None:
        self.session.close()

    def _once(self, method: str, url: str, **kwargs: Any) -> Any:
        with answer_guard(self.source, seconds=self.timeout, max_bytes=self.max_bytes):
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            body = response.content  # reads the whole body: a short read raises here, inside the retry
        if response.status_code >= 300:
            excerpt = redact(body[:300].decode("utf-8", "replace"), self.secrets)
            raise HttpStatusError(response.status_code, excerpt, parse_retry_after(response.headers.get("Retry-After")))
        return json_body(body, response.status_code)

    def request_json(self, method: str, url: str, *, account: str, what: str, **kwargs: Any) -> Any:
        """The parsed JSON answer, retried; an error leaves scrubbed of every secret along its chain (a server may
        echo the request, token included)."""
        return scrub_calls(lambda: call_with_retry(
            lambda: self._once(method, url, **kwargs),
            classify=self.classify,
            source=self.source,
            account=account,
            what=what,
            policy=self.policy,
            stats=self.stats,
            limiter=self.limiter,
            sleep=self.sleep,
            secrets=self.secrets,
        ), self.secrets)


# ---- bounded answers: one deadline, one size limit and one origin per request (issue #19) -----------------------

MEGABYTE = 1024 * 1024
DEFAULT_MAX_ANSWER_MB = 64.0
# A GA4 year of days x channels is ~2 MB of JSON, a 25,000-row Search Console page ~5 MB, a Matomo bulk answer for a
# year of one site ~3 MB, a HubSpot page of 200 records with their properties ~1 MB: 64 MB leaves room for long
# backfills and wide portals while a hostile answer costs at most that much memory (and one JSON parse of it).
MAX_ANSWER_VARIABLE = "MKPI_{platform}_MAX_ANSWER_MB"
_READ_CHUNK = 64 * 1024


def max_answer_bytes(source: str, environ: Mapping[str, str] | None = None) -> int:
    """The largest answer `source` may send, in bytes: MKPI_<SOURCE>_MAX_ANSWER_MB (megabytes of 1,048,576 bytes,
    default DEFAULT_MAX_ANSWER_MB). A value that is not a number above 0 is a ConfigError naming the variable,
    raised by each connector's `check()` before any request."""
    variable = MAX_ANSWER_VARIABLE.format(platform=source.upper())
    raw = (os.environ if environ is None else environ).get(variable, "").strip()
    if not raw:
        return int(DEFAULT_MAX_ANSWER_MB * MEGABYTE)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"environment variable {variable} must be a number of megabytes above 0 (the largest answer "
                          f"{source} may send; default {DEFAULT_MAX_ANSWER_MB:g}), got {raw[:40]!r}", key=variable)
    return max(1, int(value * MEGABYTE))


class AnswerRefused(Exception):  # noqa: N818 - the family of a guard's refusals, named for what happened
    """An answer stopped by its `answer_guard` where its bytes arrive. Not an OSError or HTTPException on purpose:
    the clients (urllib3, requests, httplib2) let it through untouched instead of re-wrapping it as a connection
    error, and `call_with_retry` judges it the same for every connector (`transient`)."""

    transient = False


class AnswerTooLarge(AnswerRefused):
    """More bytes than the platform's limit: fatal (the same request gets the same answer)."""


class AnswerTooSlow(AnswerRefused):
    """The request's total deadline (connect and read) passed: retried, within the retry policy's total time."""

    transient = True


class RedirectRefused(AnswerRefused):
    """A redirect to another origin (scheme, host, port): credentials are never sent there; fatal."""


Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    """(scheme, lower-case host, port) of an absolute URL, the default port filled in."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "https").lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def show_origin(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


class AnswerGuard:
    """The bounds of one answer: a total deadline from the start of the request (connect, send, headers, body), a
    maximum number of bytes received, and the one origin the request may reach (the first one it connects to).
    Created by `answer_guard`; read by the guarded connections and responses on the same thread."""

    def __init__(self, source: str, seconds: float, max_bytes: int, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.source = source
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.clock = clock
        self.deadline = clock() + seconds
        self.received = 0
        self.origin: Origin | None = None

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def too_slow(self) -> AnswerTooSlow:
        return AnswerTooSlow(f"no complete answer within {self.seconds:g}s (the total time allowed for one request, "
                             f"connect and read: {self.source} timeout_seconds); {self.received:,} bytes had arrived")

    def too_large(self, decoded: bool = False) -> AnswerTooLarge:
        variable = MAX_ANSWER_VARIABLE.format(platform=self.source.upper())
        what = "decompressed answer" if decoded else "answer"
        return AnswerTooLarge(f"the {what} is larger than the {self.max_bytes / MEGABYTE:g} MB allowed ({variable}); "
                              f"stopped reading after {self.received:,} bytes")

    def count(self, received: int) -> None:
        """Bytes arrived from the socket; refuse past the limit (memory stays bounded by it)."""
        self.received += received
        if self.received > self.max_bytes:
            raise self.too_large()

    def enter(self, origin: Origin) -> None:
        """A request leaves for `origin`: the first one is the request's own; another one is a redirect elsewhere."""
        if self.origin is None:
            self.origin = origin
        elif origin != self.origin:
            raise refused_redirect(self.origin, origin)


def refused_redirect(start: Origin, target: Origin) -> RedirectRefused:
    """The error of a redirect from one origin to another, naming both."""
    return RedirectRefused(f"the answer redirected from {show_origin(start)} to {show_origin(target)}; credentials are "
                           "only sent to the configured host, so the redirect was not followed (if the platform "
                           "moved, configure its new address)")


_CURRENT = threading.local()


def current_guard() -> AnswerGuard | None:
    """The guard of the request this thread is making, if any."""
    return getattr(_CURRENT, "guard", None)


@contextmanager
def answer_guard(source: str, *, seconds: float, max_bytes: int) -> Iterator[AnswerGuard]:
    """Bound the one request made inside (and its redirects, and reading its body) on this thread."""
    previous = current_guard()
    guard = AnswerGuard(source, seconds, max_bytes)
    _CURRENT.guard = guard
    try:
        yield guard
    finally:
        _CURRENT.guard = previous


class _GuardedSocketReader(io.RawIOBase):
    """The raw reader under an `http.client` response: each read gets only the time left before the deadline (a
    body dripping one byte per second stops there, which a per-read timeout never does) and counts the bytes (an
    endless chunked stream stops at the size limit)."""

    def __init__(self, sock: socket.socket, guard: AnswerGuard) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._guard = guard

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        guard = self._guard
        remaining = guard.remaining()
        if remaining <= 0:
            raise guard.too_slow()
        timeout = self._sock.gettimeout()
        self._sock.settimeout(remaining if timeout is None else min(timeout, remaining))
        try:  # at most one chunk per read: the limit is overshot by less than 64 KB
            received = self._raw.readinto(memoryview(buffer)[:_READ_CHUNK])
        except TimeoutError:
            if guard.remaining() <= 0:
                raise guard.too_slow() from None
            raise  # the client's own per-read timeout: its usual error
        finally:
            self._sock.settimeout(timeout)
        if received:
            guard.count(received)
        return received or 0

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class GuardedHTTPResponse(http.client.HTTPResponse):
    """`http.client`'s response (under urllib3, requests and httplib2 alike) reading through the guard of the
    current request, from the status line on. Outside a guard it is the plain response."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None
                 ) -> None:
        super().__init__(sock, debuglevel=debuglevel, method=method, url=url)
        guard = current_guard()
        if guard is not None:
            self.fp.close()  # the plain reader; the socket stays open for ours
            self.fp = io.BufferedReader(_GuardedSocketReader(sock, guard), _READ_CHUNK)


def _connection_origin(connection: Any, scheme: str) -> Origin:
    host = getattr(connection, "_tunnel_host", None) or connection.host
    port = getattr(connection, "_tunnel_port", None) or connection.port
    return scheme, str(host).strip("[]").lower(), int(port or (443 if scheme == "https" else 80))


@functools.cache
def _urllib3_pool_classes() -> dict[str, type]:
    """urllib3 connection pools whose connections check the origin and read through `GuardedHTTPResponse`."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class GuardedHTTPConnection(HTTPConnection):
        response_class = GuardedHTTPResponse

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
            guard = current_guard()
            if guard is not None:
                guard.enter(_connection_origin(self, "http"))
            super().request(method, url, *args, **kwargs)

    class GuardedHTTPSConnection(HTTPSConnection):
        response_class = GuardedHTTPResponse

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
            guard = current_guard()
            if guard is not None:
                guard.enter(_connection_origin(self, "https"))
            super().request(method, url, *args, **kwargs)

    class GuardedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


def guard_pool_manager(manager: Any) -> Any:
    """Make a urllib3 PoolManager (HubSpot's client builds one per API object) open guarded connections; pools it
    already opened are dropped, so none escapes. Returns the manager."""
    manager.pool_classes_by_scheme = _urllib3_pool_classes()
    manager.clear()
    return manager


def read_body(response: Any, guard: AnswerGuard | None = None) -> bytes:
    """A urllib3 response's body, decompressed, read in pieces and refused past the guard's limit: a small gzip
    body can inflate to gigabytes, which the byte count on the socket does not see."""
    guard = guard or current_guard()
    if guard is None:
        return bytes(response.data)
    parts: list[bytes] = []
    size = 0
    try:
        for part in response.stream(_READ_CHUNK, decode_content=True):
            size += len(part)
            if size > guard.max_bytes:
                raise guard.too_large(decoded=True)
            parts.append(part)
    finally:
        response.release_conn()
    return b"".join(parts)


@functools.cache
def _guarded_adapter_class() -> type:
    import requests

    class GuardedAdapter(requests.adapters.HTTPAdapter):
        """requests' adapter over guarded urllib3 pools (plain and proxied); inside a guard it reads the body itself,
        decompressed, within the size limit, and hands requests the bytes."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            guard_pool_manager(self.poolmanager)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            fresh = proxy not in self.proxy_manager
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            return guard_pool_manager(manager) if fresh else manager

        def send(self, request: Any, stream: bool = False, **kwargs: Any) -> Any:
            guard = current_guard()
            if guard is None or stream:
                return super().send(request, stream=stream, **kwargs)
            response = super().send(request, stream=True, **kwargs)
            parts: list[bytes] = []
            size = 0
            for part in response.iter_content(_READ_CHUNK):  # decompressed; requests' own errors for broken bodies
                size += len(part)
                if size > guard.max_bytes:
                    response.close()
                    raise guard.too_large(decoded=True)
                parts.append(part)
            response._content = b"".join(parts)
            response._content_consumed = True
            return response

    return GuardedAdapter


def guard_session(session: Any) -> Any:
    """Mount the guarded adapter on a requests session (ours, or the AuthorizedSession of a Google REST transport)."""
    for prefix in ("https://", "http://"):
        session.mount(prefix, _guarded_adapter_class()())
    return session


def guarded_http(timeout: float, max_bytes: int) -> Any:
    """An httplib2.Http (the Search Console discovery client's transport) with guarded connections, no same-origin
    exception for redirects elsewhere, and decompression capped at `max_bytes` (httplib2's own decode limit)."""
    import httplib2
    from httplib2.decode import DecodeLimitError, DecodeRatioError

    class GuardedHTTPConnection(httplib2.HTTPConnectionWithTimeout):
        response_class = GuardedHTTPResponse

    class GuardedHTTPSConnection(httplib2.HTTPSConnectionWithTimeout):
        response_class = GuardedHTTPResponse

    class GuardedHttp(httplib2.Http):
        """httplib2 follows a redirect by calling `request` again from inside the first call: a nested call to
        another origin is a redirect there, refused before it connects. (Top-level calls to other origins, such as
        a token refresh before the API call, are separate requests.)"""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._outer = threading.local()

        def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None,
                    redirections: int = httplib2.DEFAULT_MAX_REDIRECTS, connection_type: Any = None) -> Any:
            origin = origin_of(uri)
            outer: Origin | None = getattr(self._outer, "origin", None)
            if outer is not None and origin != outer:
                raise refused_redirect(outer, origin)
            if connection_type is None:
                connection_type = GuardedHTTPSConnection if origin[0] == "https" else GuardedHTTPConnection
            self._outer.origin = origin if outer is None else outer
            try:
                response, content = super().request(uri, method, body, headers, redirections, connection_type)
                location = response.get("location") if response.status in self.redirect_codes else None
                if location and origin_of(urljoin(uri, location)) != origin:  # one httplib2 did not follow (a POST)
                    raise refused_redirect(origin, origin_of(urljoin(uri, location)))
                return response, content
            except AnswerRefused:
                for connection in list(self.connections.values()):  # left mid-answer: never reused
                    connection.close()
                raise
            except (DecodeLimitError, DecodeRatioError) as exc:  # a small body inflating past the limit
                guard = current_guard()
                raise (guard.too_large(decoded=True) if guard else AnswerTooLarge(str(exc))) from None
            finally:
                self._outer.origin = outer

    return GuardedHttp(timeout=timeout, decode_limit_hard=max_bytes)
