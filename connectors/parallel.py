"""Fetch the accounts of one platform in parallel, within the platform's quota, in a fixed order.

Business purpose: an agency or a group reads dozens of GA4 properties, Search Console sites, Google Ads
customers and Matomo sites every morning. One account after the other, the run lasts as long as the sum of
every account's latency; a few at a time, it lasts about the slowest few. Two things must not change:

* **What is loaded.** Results are handed on in the configured account order, whatever order the requests
  finish in, so the loader sees the same batches in the same order as a sequential loop: loads, row
  order and metadata stay identical from run to run.
* **The platform's limits.** At most ``max_workers`` accounts are fetched at once (``parallel_accounts``
  in each platform's settings, defaults tied to its published limits, see docs/configuration.md); each
  account's own pages stay sequential, so one account never has more than one request in flight (GA4's cart
  funnel reads a property's days several at once, gated by its own FlightGate in connectors/ga4.py). The
  connector's rate limiter and retry helper are shared by the threads, so rates hold across accounts.

Failure isolation: with an ``AccountLog``, an account that fails (a revoked permission, a deleted property,
retries exhausted) is recorded with its error and skipped, and every other account is still handed on; the
caller loads those, then fails naming each failed account (``AccountLog.error``). Without one, the first
failure in account order is raised, exactly as a sequential loop would.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from connectors.batches import Batch
from connectors.errors import ConfigError, ConnectorError, RetriesExhausted

# How many accounts may be fetched or waiting to be handed on, per worker: enough to keep every worker busy
# while the head of the line is slow, few enough to keep memory bounded to a handful of accounts' batches.
LOOKAHEAD_PER_WORKER = 2


class AccountsFailed(ConnectorError):
    """Some accounts of a source failed; the others were loaded. Names each failed account and its error."""

    def __init__(self, source: str, failures: dict[str, str], total: int, *, retryable: bool) -> None:
        self.source = source
        self.failures = dict(failures)
        self.retryable = retryable
        loaded = total - len(failures)
        listed = "; ".join(f"{account}: {message}" for account, message in failures.items())
        outcome = f"the other {loaded} were loaded" if loaded else "nothing was loaded"
        super().__init__(f"{source}: {len(failures)} of {total} accounts failed ({', '.join(failures)}); "
                         f"{outcome}. {listed}")


@dataclass
class AccountLog:
    """What happened to each account in one fetch: rows fetched, failures, and the peak parallelism.

    Filled by ``fetch_accounts`` (from several threads, hence the lock); read after the fetch for run metadata
    and for the error that names the failed accounts.
    """

    source: str
    rows: dict[str, int] = field(default_factory=dict)
    failures: dict[str, BaseException] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def expect(self, accounts: Iterable[str]) -> None:
        with self._lock:
            self.accounts.extend(a for a in accounts if a not in self.accounts)

    def add_rows(self, account: str, rows: int) -> None:
        with self._lock:
            self.rows[account] = self.rows.get(account, 0) + rows

    def fail(self, account: str, error: BaseException) -> None:
        with self._lock:
            self.failures[account] = error

    def peak(self, in_flight: int) -> None:
        with self._lock:
            self.max_in_flight = max(self.max_in_flight, in_flight)

    def failed(self) -> dict[str, str]:
        """Failed account -> its error message (connector errors never carry secrets)."""
        return {account: str(error) for account, error in self.failures.items()}

    def error(self) -> AccountsFailed | None:
        """The error that names every failed account, or None when all succeeded.

        Retryable only when every failure was transient (retries exhausted on 429/5xx): re-running the
        step then has a chance; a permission or a wrong id needs a person first."""
        if not self.failures:
            return None
        retryable = all(isinstance(e, RetriesExhausted) for e in self.failures.values())
        return AccountsFailed(self.source, self.failed(), len(self.accounts) or len(self.failures),
                              retryable=retryable)

    def as_metadata(self) -> dict[str, object]:
        """Per-account row counts and failures, in account order, for materialisation metadata."""
        return {
            "accounts": len(self.accounts),
            "accounts_failed": len(self.failures),
            "rows_by_account": {a: self.rows.get(a, 0) for a in self.accounts if a not in self.failures},
            "failed_accounts": self.failed(),
            "max_parallel_accounts": self.max_in_flight,
        }


class _InFlight:
    """Counts tasks running right now and remembers the peak (the proof the fetch ran in parallel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def fetch_accounts(
    accounts: Sequence[str],
    fetch_one: Callable[[str], Iterable[Batch]],
    *,
    max_workers: int,
    source: str,
    log: AccountLog | None = None,
) -> Iterator[Batch]:
    """Run ``fetch_one(account)`` for every account, ``max_workers`` at a time; yield batches in account order.

    Each account is fetched whole (every page) before any of its batches is handed on, so a failure on a
    later page never leaves part of an account behind. See the module docstring for ``log``.
    """
    if max_workers < 1:
        raise ValueError("max_workers must be >= 1")
    accounts = list(accounts)
    if log is not None:
        log.expect(accounts)
    if not accounts:
        return
    workers = min(max_workers, len(accounts))
    gauge = _InFlight()

    def task(account: str) -> list[Batch]:
        with gauge:
            return list(fetch_one(account))

    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"mkpi-{source}")
    waiting = iter(accounts)
    pending: deque[tuple[str, Future[list[Batch]]]] = deque()

    def submit_next() -> None:
        account = next(waiting, None)
        if account is not None:
            pending.append((account, executor.submit(task, account)))

    try:
        for _ in range(workers * LOOKAHEAD_PER_WORKER):
            submit_next()
        while pending:
            account, future = pending.popleft()
            submit_next()  # keep the workers busy while this account's batches are loaded
            try:
                batches = future.result()
            except Exception as exc:  # noqa: BLE001 - isolated per account, or re-raised below
                if log is None or isinstance(exc, ConfigError):  # a configuration error is no account's own
                    raise
                log.fail(account, exc)
                continue
            if log is not None:
                log.add_rows(account, sum(b.num_rows for b in batches))
            # hand the pages on in order, each dropped from the account's list (which the future holds too) as it
            # goes: a page the loader has written is freed instead of living until the account's last page is loaded
            batches.reverse()
            while batches:
                yield batches.pop()
    finally:
        # a consumer that stops early (the loader rolled back) must not wait for requests still in flight
        executor.shutdown(wait=False, cancel_futures=True)
        if log is not None:
            log.peak(gauge.peak)
