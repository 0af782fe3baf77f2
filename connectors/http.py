"""The one retry, backoff and rate-limit helper every connector calls through.

Why it exists: marketing APIs rate-limit (429 with or without Retry-After), fail (5xx, resets,
stalls) and occasionally send truncated bodies. Each connector knows how to *classify* its
platform's failures (a `Classifier`); this module owns *what to do* about them, once:
exponential backoff with jitter, never waiting less than the server's Retry-After, a bounded number
of attempts, a client-side rate limit, and counters that end up in run metadata.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connectors.errors import RetriesExhausted, SourceError

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
    """How patient a connector is. Defaults follow dlt/Airbyte: 5 retries, capped exponential backoff."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    # A server asking for a longer wait than this fails the run now instead of blocking a worker.
    max_retry_after: float = 900.0

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
) -> T:
    """Call `fn` until it succeeds, a failure is classified Fatal, or the attempts run out.

    `fn` must do the whole request *including reading and parsing the body*, so that a truncated
    body is retried like any other transient failure. Errors carry source, account and `what`
    (endpoint and window), never credentials.
    """
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
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
            verdict = classify(exc)
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
            log.warning("%s %s: %s; retry %d/%d in %.2fs (%s)", source, account, what, attempt,
                        policy.max_attempts - 1, wait, verdict.reason)
            if stats is not None:
                stats.count_retry(verdict.reason, wait)
            sleep(wait)


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
    body or an HTML error page is a retried failure, never an empty success."""

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
    ) -> None:
        import requests

        self.source = source
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.limiter = limiter
        self.stats = stats or RequestStats()
        self.sleep = sleep or time.sleep
        self.secrets = tuple(s for s in secrets if s)
        self.classify = classify
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "marketing-kpi-pipeline/0.1", **(headers or {})})

    def close(self) -> None:
        self.session.close()

    def _once(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        body = response.content  # reads the whole body: a short read raises here, inside the retry
        if response.status_code >= 300:
            excerpt = redact(body[:300].decode("utf-8", "replace"), self.secrets)
            raise HttpStatusError(response.status_code, excerpt, parse_retry_after(response.headers.get("Retry-After")))
        return json_body(body, response.status_code)

    def request_json(self, method: str, url: str, *, account: str, what: str, **kwargs: Any) -> Any:
        try:
            return call_with_retry(
                lambda: self._once(method, url, **kwargs),
                classify=self.classify,
                source=self.source,
                account=account,
                what=what,
                policy=self.policy,
                stats=self.stats,
                limiter=self.limiter,
                sleep=self.sleep,
            )
        except SourceError as exc:
            # make sure no secret survives into the message (e.g. an echoed request)
            exc.args = (redact(str(exc), self.secrets),)
            raise
