"""Target 2: wall time of a 365-day backfill of all five sources under 100 ms of latency, against its lower bound.

Every sandbox response is delayed by `--latency` seconds (HTTP servers' `latency_seconds`; the Google Ads gRPC
server is wrapped the same way), and the sandbox runs in its own process (bench/sandbox_process.py) so its
Python work does not compete with the connectors for the GIL. Several accounts per platform come from the
sandbox's "many" profile when it exists (the counts are parameters; with the default profile the world's
own accounts are used).
The five sources run at once (one process each, as Dagster's multiprocess executor runs steps); within a
source, the connector fetches its accounts as it does in the pipeline.

Lower bound: each account's requests are sequential (a page cursor needs the previous page) and accounts
run in parallel within quota, so a platform needs at least latency x (the most requests any one account
needs, at the minimum request count of target 1); HubSpot is one portal, also bounded by the configured
rolling quota (`hubspot.requests_per_10s`, 100 by default: n requests need at least (n - 1) // 100 full
windows of 10 s, plus one latency). The backfill's bound is the largest platform's, since platforms are
independent.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from bench.backfill import SOURCES, SourceRun, backfill, environment, window_ending_yesterday
from bench.common import Row, Sample, table
from bench.sandbox_process import sandbox_process
from connectors.settings import load_settings

GOAL = 1.3
ACCOUNT_VARIABLES = {
    "ga4": "MKPI_GA4_PROPERTY_IDS",
    "search_console": "MKPI_SEARCH_CONSOLE_SITES",
    "google_ads": "MKPI_GOOGLE_ADS_CUSTOMER_IDS",
    "matomo": "MKPI_MATOMO_SITE_IDS",
}


@contextmanager
def latent_sandbox(latency: float, accounts: dict[str, int]) -> Iterator[tuple[date, dict[str, str]]]:
    """The sandbox (own process) with `latency` on every response and the first `accounts[source]` accounts."""
    with sandbox_process(latency) as started:
        env = dict(started["env"])
        for source, variable in ACCOUNT_VARIABLES.items():
            ids = [i for i in env.get(variable, "").split(",") if i]
            if ids and accounts.get(source):
                env[variable] = ",".join(ids[: accounts[source]])
        yield date.fromisoformat(started["today"]), env


def lower_bound(run: SourceRun, latency: float, hubspot_per_10s: int = 100) -> float:
    """Seconds a platform needs at least: the busiest account's minimum requests, one latency each; for HubSpot
    also its rolling quota (at most `hubspot_per_10s` requests in any 10 s)."""
    chain = max(run.by_account.values(), default=0) * latency
    if run.source == "hubspot" and run.minimum:
        chain = max(chain, (run.minimum - 1) // hubspot_per_10s * 10.0 + latency)
    return chain


def measure(days: int, runs: int, latency: float, accounts: dict[str, int]) -> list[Row]:
    walls: list[float] = []
    bounds: list[float] = []
    per_source: dict[str, list[float]] = {s: [] for s in SOURCES}
    last: dict[str, SourceRun] = {}
    for _ in range(runs):
        with latent_sandbox(latency, accounts) as (today, env), environment(env):
            window = window_ending_yesterday(days, today)
            timings: dict[str, float] = {}
            start = time.perf_counter()
            last = backfill(window, SOURCES, parallel=True, sink=None, timings=timings)
            walls.append(time.perf_counter() - start)
            quota = load_settings().hubspot.requests_per_10s
        bounds.append(max(lower_bound(r, latency, quota) for r in last.values()))
        for name in SOURCES:
            per_source[name].append(timings[name])
    wall, bound = Sample(tuple(walls)), Sample(tuple(bounds))
    ratio = Sample(tuple(w / b for w, b in zip(walls, bounds, strict=True)))
    shown = ", ".join(f"{n} {r.accounts}" for n, r in last.items())
    rows = [Row("2 latency", f"{days}-day backfill, all sources at once, {latency * 1000:.0f} ms/response "
                f"(accounts: {shown})", wall.show(" s"), f"bound {bound.median:.1f} s", ratio.show("x", 3),
                f"<= {GOAL}x", ok=ratio.median <= GOAL)]
    for name, run in last.items():
        own = Sample(tuple(per_source[name]))
        bound_s = lower_bound(run, latency, quota)
        rows.append(Row("2 latency", f"  {name}: {run.requests} requests, {run.accounts} account(s)",
                        own.show(" s"), f"bound {bound_s:.1f} s", f"{own.median / bound_s:.2f}x" if bound_s else "",
                        "", None))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.1)
    for source in ACCOUNT_VARIABLES:
        parser.add_argument(f"--{source.replace('_', '-')}", type=int, default=5, help=f"{source} accounts")
    args = parser.parse_args(argv)
    accounts = {s: getattr(args, s) for s in ACCOUNT_VARIABLES}
    result = measure(args.days, args.runs, args.latency, accounts)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
