"""The shared retry helper: bounded attempts, Retry-After respected, fatal errors not retried."""

import random

import pytest

from connectors.errors import RetriesExhausted, SourceError
from connectors.http import Fatal, RateLimiter, RequestStats, Retry, RetryPolicy, call_with_retry


class Flaky:
    def __init__(self, failures: list[Exception]):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def classify(exc: BaseException):
    if isinstance(exc, TimeoutError):
        return Retry("timeout", 0)
    if isinstance(exc, ConnectionError):
        return Retry("429", float(str(exc) or 0))
    return Fatal(str(exc))


def run(fn, sleeps, policy=None, stats=None):
    return call_with_retry(fn, classify=classify, source="demo", account="acc-1", what="GET /x",
                           policy=policy or RetryPolicy(), sleep=sleeps.append, rng=random.Random(1), stats=stats)


def test_transient_failures_are_retried_then_succeed():
    sleeps: list[float] = []
    stats = RequestStats()
    fn = Flaky([TimeoutError(), TimeoutError()])
    assert run(fn, sleeps, stats=stats) == "ok"
    assert fn.calls == 3 and len(sleeps) == 2
    assert stats.requests == 3 and stats.retries == 2


def test_never_waits_less_than_retry_after():
    sleeps: list[float] = []
    run(Flaky([ConnectionError("7"), ConnectionError("0.5")]), sleeps)
    assert sleeps[0] >= 7
    assert all(s >= 0.5 for s in sleeps)


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(base_delay=1, max_delay=8)
    rng = random.Random(0)
    waits = [policy.backoff(n, rng) for n in range(1, 8)]
    assert waits[0] <= 1 and waits[2] >= 2 and max(waits) <= 8


def test_gives_up_after_max_attempts_with_context():
    sleeps: list[float] = []
    fn = Flaky([TimeoutError()] * 10)
    with pytest.raises(RetriesExhausted, match=r"demo account acc-1: GET /x: gave up after 6 attempts"):
        run(fn, sleeps)
    assert fn.calls == 6 and len(sleeps) == 5


def test_fatal_is_not_retried():
    sleeps: list[float] = []
    fn = Flaky([ValueError("403 permission denied")])
    with pytest.raises(SourceError, match="403 permission denied"):
        run(fn, sleeps)
    assert fn.calls == 1 and sleeps == []


def test_a_retry_after_longer_than_allowed_fails_now():
    sleeps: list[float] = []
    with pytest.raises(RetriesExhausted, match="asks to wait 3600s"):
        run(Flaky([ConnectionError("3600")]), sleeps, policy=RetryPolicy(max_retry_after=600))
    assert sleeps == []


def test_rate_limiter_spaces_calls():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(2, per=1.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        limiter.acquire()
    # 2 at once, then 2 more each time the window moves on
    assert now[0] == pytest.approx(2.0)


def test_rate_limiter_never_exceeds_the_rolling_window():
    """HubSpot counts 100 requests in any rolling 10 s: a full bucket then its refill must not get through."""
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    limiter = RateLimiter(100, per=10.0, clock=lambda: now[0], sleep=sleep)
    times = []
    for i in range(336):
        limiter.acquire()
        times.append(now[0])
        now[0] += 0.013 if i % 3 else 0.002  # the calls themselves take a little time
    assert max(sum(1 for t in times if start <= t < start + 10.0) for start in times) == 100
    # and it does not wait longer than it must: the 336th call goes at 30 s and a bit (100, 100, 100, 36)
    assert 30.0 <= times[-1] < 31.0
