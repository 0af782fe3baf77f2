"""Issue #21 target 6 (issue #9 target 2): wall time of a backfill of all five sources under latency, against
the lower bound each platform's documented constraints allow.

Every sandbox response is delayed by `--latency` seconds (HTTP servers' `latency_seconds`; the Google Ads gRPC
server is wrapped the same way), and the sandbox runs in its own processes (bench/sandbox_process.py) so its
Python work does not compete with the connectors for the GIL. Several accounts per platform come from the
sandbox's "many" profile. The five sources run at once (one process each, as Dagster's multiprocess executor
runs steps); within a source, the connector fetches its accounts as it does in the pipeline. HubSpot is read as its
Dagster step reads it: the one `hubspot_portal` step (pipelines/defs/hubspot/assets.py) loads what
`HubSpotConnector.fetch_portal` hands on, the call bench/backfill.py's run_hubspot times.

Lower bound, per platform (`platform_bound`), the largest of three, each from the platform's documented limits
(cited at the constants below), never from our own settings (parallel_accounts, client-side pacing):
- the longest cursor chain: requests that must follow each other (a page needs the previous page's cursor or,
  for Search Console, to know the previous page was full), x latency; GA4 knows `rowCount` after the first page,
  so its later pages may go at once within the property's concurrency; HubSpot's deal associations need the
  deals list's ids first;
- the quota: n requests under a rolling limit of q per window w need (n - 1) // q windows, plus one latency;
- the allowed concurrency: n requests of one account at most c at a time need ceil(n / c) latencies.
Accounts run in parallel (nothing documented forbids it beyond the quotas). The backfill's bound is the largest
platform's, since platforms are independent services.

HubSpot's chain and quota meet: at 100 ms per answer its longest chain (the contacts list, one page after the
other) sends 10 requests a second, all that 100 requests per 10 s allow, so no other request can go beside it
without slowing it, and the two bounds apart (each ~20 s) are far below what any client can do (~28 s for 280
requests). Its bound is therefore also the `schedule` (`rolling_schedule`): every request placed on a timeline
under the rolling quota, the longest chain first at full speed, then each shorter chain's requests at the earliest
moment the quota and its own previous answer (or, for the deal associations, the deals pages holding their ids)
allow. That is a schedule a perfect client could follow, so the bound is never below what the constraints permit;
it can exceed the best possible schedule a little when chains could share windows more cleverly (a few percent in
the cases tested), never the other way.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from bisect import bisect_right, insort
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from bench.backfill import (
    GA4_PAGE,
    GSC_PAGE,
    HUBSPOT_BATCH,
    HUBSPOT_LIST_PAGE,
    SOURCES,
    SourceRun,
    backfill,
    environment,
    pages,
    window_ending_yesterday,
)
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


# GA4 Data API: "Core Concurrent Requests Per Property: 10" for a standard property (50 for Analytics 360),
# developers.google.com/analytics/devguides/reporting/data/v1/quotas. Tokens are not requests: not modelled.
GA4_CONCURRENT_PER_PROPERTY = 10
# Search Console Search Analytics: per-site 1,200 QPM, per-user 1,200 QPM ("User A can make up to 1,200 QPM
# combined to her 3 websites"), per-project 40,000 QPM, developers.google.com/webmaster-tools/limits. One
# service account reads every site: the per-user quota binds.
GSC_QPM_PER_USER = 1_200
# HubSpot private apps: a burst limit of 100 requests per 10 seconds (Free, Starter), 190 (Professional,
# Enterprise), developers.hubspot.com/docs/api/usage-details (and the changelog "Increasing our API limits");
# the portal's tier is the configured `hubspot.requests_per_10s`.
HUBSPOT_WINDOW_SECONDS = 10.0
# Google Ads: searchStream is one operation per report ("A single query or report is counted as one operation
# regardless of the result being paged or streamed", Google Ads API support, and the 15,000 daily operations of
# basic access, developers.google.com/google-ads/api/docs/best-practices/quotas): one request per customer, no
# documented concurrency limit. Matomo (self-hosted): no documented API rate limit; one bulk request per site.
PAGE_SIZES = {"ga4": GA4_PAGE, "search_console": GSC_PAGE, "hubspot": HUBSPOT_LIST_PAGE}


@dataclass(frozen=True)
class Bound:
    """A platform's lower bound in seconds, by constraint; the bound is the largest."""

    chain: float
    quota: float = 0.0
    concurrency: float = 0.0
    schedule: float = 0.0  # HubSpot: the chains and the rolling quota together (`rolling_schedule`)

    @property
    def seconds(self) -> float:
        return max(self.chain, self.quota, self.concurrency, self.schedule)

    @property
    def binding(self) -> str:
        parts = {"longest chain": self.chain, "quota": self.quota, "concurrency": self.concurrency,
                 "schedule": self.schedule}
        return max(parts, key=lambda k: parts[k])


@dataclass(frozen=True)
class Chain:
    """Requests that must follow each other (each needs the previous answer); with `after`, the first waits for
    the answer to request number `after_requests` of that chain (the deals page holding the ids it asks about)."""

    requests: int
    after: str | None = None
    after_requests: int = 0


def hubspot_chains(run: SourceRun) -> dict[str, Chain]:
    """HubSpot's requests as chains, from the rows of each unit (bench/backfill.py run_hubspot): every list pages
    100 at a time with `after` (live and archived lists are independent), each property list, the deal pipelines,
    the portal's details and each histogram is one request, and each association batch read of 1,000 deals waits
    for the deals page holding its last id."""
    chains: dict[str, Chain] = {}
    deals = run.units.get("deals list portal", 0)
    for unit, rows in run.units.items():
        if unit.startswith("deal associations"):
            for batch in range(pages(rows, HUBSPOT_BATCH)):
                last_deal = min((batch + 1) * HUBSPOT_BATCH, max(deals, 1))
                chains[f"{unit} {batch}"] = Chain(1, "deals list portal", pages(last_deal, HUBSPOT_LIST_PAGE))
        elif " list" in unit or unit.startswith(("owners", "marketing emails")):
            chains[unit] = Chain(pages(rows, HUBSPOT_LIST_PAGE))
        else:  # properties, deal pipelines, account details, an e-mail's histogram: one request each
            chains[unit] = Chain(1)
    return chains


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _earliest_slot(sends: list[int], ready: int, rate: int, per: int) -> int:
    """The first instant >= `ready` at which one more request keeps every rolling window (t - per, t] at `rate`
    requests or fewer, given the requests already placed (`sends`, sorted, microseconds)."""
    candidates = sorted({ready, *(y + per for y in sends if y + per > ready)})
    for at in candidates:
        later = sends[bisect_right(sends, at - 1):bisect_right(sends, at + per - 1)]
        if all(bisect_right(sends, end) - bisect_right(sends, end - per) < rate for end in (at, *later)):
            return at
    raise AssertionError("unreachable: the last candidate is past every window")


def rolling_schedule(chains: Mapping[str, Chain], latency: float, rate: int, per: float) -> float:
    """Seconds from the first request to the last answer when `chains` are placed under a rolling limit of `rate`
    requests per `per` seconds with `latency` per answer: the longest chain first, each request at the earliest
    instant its chain (previous answer, or the answer it waits for) and the quota allow, shorter chains then
    filling what the quota leaves. A feasible schedule: a client could do exactly this."""
    sends: list[int] = []
    answered: dict[str, list[int]] = {}
    lat, window = _us(latency), _us(per)

    def place(name: str) -> None:
        chain = chains[name]
        if chain.after is not None and chain.after not in answered:
            place(chain.after)
        ready = answered[chain.after][chain.after_requests - 1] if chain.after is not None else 0
        answered[name] = []
        for _ in range(chain.requests):
            at = _earliest_slot(sends, ready, rate, window)
            insort(sends, at)
            ready = at + lat
            answered[name].append(ready)

    for name in sorted(chains, key=lambda n: (-chains[n].requests, n)):
        if name not in answered:
            place(name)
    return max((t for times in answered.values() for t in times), default=0) / 1_000_000


def unit_chains(run: SourceRun) -> dict[str, int]:
    """Per stream and account (`run.units`: rows), the requests that must follow each other."""
    size = PAGE_SIZES.get(run.source)
    needed = {unit: pages(rows, size) if size else 1 for unit, rows in run.units.items()}
    if run.source == "ga4":  # rowCount comes with the first page: the rest at once, within the concurrency
        return {u: 1 + math.ceil((n - 1) / GA4_CONCURRENT_PER_PROPERTY) for u, n in needed.items()}
    if run.source == "hubspot":  # a batch read of associations needs the ids of the deals pages before it
        chains = hubspot_chains(run)
        return {u: c.requests + (c.after_requests if c.after else 0) for u, c in chains.items()}
    return needed  # Search Console: startRow until a short page; Ads and Matomo: one request each


def platform_bound(run: SourceRun, latency: float, hubspot_per_10s: int = 100) -> Bound:
    """Seconds a platform needs at least, from its documented constraints (see the module docstring)."""
    chain = max(unit_chains(run).values(), default=1) * latency
    requests = run.minimum
    if run.source == "search_console" and requests:
        return Bound(chain, quota=(requests - 1) // GSC_QPM_PER_USER * 60.0 + latency)
    if run.source == "hubspot" and requests:
        return Bound(chain, quota=(requests - 1) // hubspot_per_10s * HUBSPOT_WINDOW_SECONDS + latency,
                     schedule=rolling_schedule(hubspot_chains(run), latency, hubspot_per_10s, HUBSPOT_WINDOW_SECONDS))
    if run.source == "ga4":
        busiest = max(run.by_account.values(), default=0)
        return Bound(chain, concurrency=math.ceil(busiest / GA4_CONCURRENT_PER_PROPERTY) * latency)
    return Bound(chain)


def lower_bound(run: SourceRun, latency: float, hubspot_per_10s: int = 100) -> float:
    """Seconds a platform needs at least (`platform_bound`'s largest constraint)."""
    return platform_bound(run, latency, hubspot_per_10s).seconds


def hubspot_step_seconds() -> float:
    """Seconds of HubSpot's Dagster step (`hubspot_portal`: the portal read through `fetch_portal`, loaded with its
    cursors into a fresh DuckDB file) from its STEP_START to its STEP_SUCCESS, in a run of the HubSpot tables on an
    ephemeral instance against the sandbox the environment points at: the pipeline's own path."""
    import tempfile

    import dagster as dg

    with tempfile.TemporaryDirectory() as folder, environment({"MKPI_DUCKDB_PATH": f"{folder}/work.duckdb"}):
        from pipelines.definitions import defs

        keys = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "hubspot"]
        instance = dg.DagsterInstance.ephemeral()
        result = defs.resolve_job_def("hubspot_refresh_job").execute_in_process(
            instance=instance, asset_selection=keys, raise_on_error=True)
        stamps = {e.dagster_event.event_type_value: e.timestamp for e in instance.all_logs(result.run_id)
                  if e.step_key == "hubspot_portal" and e.dagster_event is not None}
        return stamps["STEP_SUCCESS"] - stamps["STEP_START"]


def measure(days: int, runs: int, latency: float, accounts: dict[str, int], hubspot_step: bool = False
            ) -> list[Row]:
    """The backfill of every source under latency against its bound; with `hubspot_step`, also HubSpot's Dagster
    step against HubSpot's bound (one more run of the portal per run, after the backfill)."""
    walls: list[float] = []
    bounds: list[float] = []
    per_source: dict[str, list[float]] = {s: [] for s in SOURCES}
    steps: list[float] = []
    last: dict[str, SourceRun] = {}
    for _ in range(runs):
        with latent_sandbox(latency, accounts) as (today, env), environment(env):
            window = window_ending_yesterday(days, today)
            timings: dict[str, float] = {}
            start = time.perf_counter()
            last = backfill(window, SOURCES, parallel=True, sink=None, timings=timings)
            walls.append(time.perf_counter() - start)
            quota = load_settings().hubspot.requests_per_10s
            if hubspot_step:
                steps.append(hubspot_step_seconds())
        bounds.append(max(lower_bound(r, latency, quota) for r in last.values()))
        for name in SOURCES:
            per_source[name].append(timings[name])
    wall, bound = Sample(tuple(walls)), Sample(tuple(bounds))
    ratio = Sample(tuple(w / b for w, b in zip(walls, bounds, strict=True)))
    shown = ", ".join(f"{n} {r.accounts}" for n, r in last.items())
    binding = max(last, key=lambda n: lower_bound(last[n], latency, quota))
    size = f"{days} days; accounts: {shown}; {latency * 1000:.0f} ms per response"
    rows = [Row("6 latency", f"{days}-day backfill, all sources at once, {latency * 1000:.0f} ms/response "
                f"(accounts: {shown})", wall.show(" s"), f"bound {bound.median:.1f} s ({binding})",
                ratio.show("x", 3), f"<= {GOAL}x", ok=ratio.median <= GOAL, size=size,
                includes="every source's process from its start (imports included) to its last batch; no loading",
                sample=wall, base=bound.median, ratios=ratio, limit=GOAL)]
    for name, run in last.items():
        own = Sample(tuple(per_source[name]))
        limit = platform_bound(run, latency, quota)
        per_run = Sample(tuple(t / limit.seconds for t in per_source[name])) if limit.seconds else None
        rows.append(Row("6 latency", f"  {name}: {run.requests} requests, {run.accounts} account(s)",
                        own.show(" s"), f"bound {limit.seconds:.1f} s ({limit.binding}: chain {limit.chain:.1f}, "
                        f"quota {limit.quota:.1f}, concurrency {limit.concurrency:.1f}"
                        + (f", schedule {limit.schedule:.1f})" if limit.schedule else ")"),
                        per_run.show("x", 3) if per_run else "", "", None, size=size,
                        includes="this source's process alone, imports included", sample=own, base=limit.seconds,
                        ratios=per_run))
    if steps:
        own, limit = Sample(tuple(steps)), platform_bound(last["hubspot"], latency, quota).seconds
        rows.append(Row("6 latency", "  hubspot through its Dagster step (hubspot_portal)", own.show(" s"),
                        f"bound {limit:.1f} s", Sample(tuple(t / limit for t in steps)).show("x", 3), "", None,
                        size=size, includes="the step from its start to its success: the portal read, the load and "
                        "its cursors, in a run of the HubSpot tables alone", sample=own, base=limit,
                        ratios=Sample(tuple(t / limit for t in steps))))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.1)
    for source in ACCOUNT_VARIABLES:
        parser.add_argument(f"--{source.replace('_', '-')}", type=int, default=5, help=f"{source} accounts")
    parser.add_argument("--hubspot-step", action="store_true",
                        help="also time HubSpot's Dagster step (the pipeline's own path) against HubSpot's bound")
    args = parser.parse_args(argv)
    accounts = {s: getattr(args, s) for s in ACCOUNT_VARIABLES}
    result = measure(args.days, args.runs, args.latency, accounts, hubspot_step=args.hubspot_step)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
