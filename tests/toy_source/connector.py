"""The toy platform's connector: plain Python, no Dagster, the source protocol of connectors/source.py.

Configured by the environment only (it has no section in config/mkpi.yaml): MKPI_TOY_URL (the server) and
MKPI_TOY_SITES (comma-separated site ids). One request per site for the whole window, through the one HTTP helper
(connectors/http.py: retries, answer guard, redaction); sites are read in parallel and a failing one is recorded in
the run's AccountLog (connectors/parallel.py).
"""

import os
from collections.abc import Iterator
from datetime import date
from typing import Any

import pyarrow as pa

from connectors.batches import Batch, Stream, Window
from connectors.http import HttpClient
from connectors.parallel import AccountLog, fetch_accounts
from connectors.probe import Finding
from connectors.source import stream_named

SOURCE = "toy"
VISITS = Stream(
    table="toy.visits_daily",
    schema=pa.schema([("site_id", pa.string()), ("date", pa.date32()), ("visits", pa.int64())]),
    key=("site_id", "date"),
    scope_column="site_id",
)
STREAMS = (VISITS,)


def configured_sites() -> tuple[str, ...]:
    return tuple(s.strip() for s in os.environ.get("MKPI_TOY_SITES", "").split(",") if s.strip())


def is_configured(settings: Any) -> bool:
    """The registry's rule: configured when a site is named."""
    return bool(configured_sites())


def connect(settings: Any) -> "ToyConnector":
    return ToyConnector(os.environ.get("MKPI_TOY_URL", ""), configured_sites())


def kpi_accounts(settings: Any) -> tuple[str, ...]:
    return configured_sites()


class ToyConnector:
    """Daily visits per site."""

    def __init__(self, url: str, sites: tuple[str, ...]) -> None:
        self.url, self.sites = url.rstrip("/"), sites
        self.client = HttpClient(SOURCE, timeout=10.0)
        self.stats = self.client.stats

    def check(self) -> list[str]:
        if not self.url or not self.sites:
            raise ValueError("toy: set MKPI_TOY_URL and MKPI_TOY_SITES")
        return list(self.sites)

    def fetch(self, stream: Stream | str, window: Window, *, accounts: AccountLog | None = None,
              cursor: str | None = None) -> Iterator[Batch]:
        stream = stream_named(STREAMS, stream)

        def fetch_site(site: str) -> Iterator[Batch]:
            answer = self.client.request_json(
                "GET", f"{self.url}/v1/sites/{site}/visits", account=site, what="visits",
                params={"start": window.start.isoformat(), "end": window.end.isoformat()})
            rows = answer["rows"]
            table = pa.table({"site_id": [site] * len(rows), "date": [date.fromisoformat(r["date"]) for r in rows],
                              "visits": [int(r["visits"]) for r in rows]}, schema=stream.schema)
            yield Batch(stream, table, window, {"site_id": site})

        yield from fetch_accounts(self.check(), fetch_site, max_workers=2, source=SOURCE, log=accounts)

    def probe(self) -> list[Finding]:
        return [Finding(True, f"toy site {site} configured") for site in self.sites]
