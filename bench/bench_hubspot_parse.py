"""Target 6: HubSpot pages of 100 contacts parsed by the project, against the stock client's models.

The page is a real one: the sandbox HubSpot server's answer to `GET /crm/v3/objects/contacts?limit=100`
with the properties the pipeline asks for, as raw bytes (what `_preload_content=False` hands back).
- project: `json.loads` + `records_to_table` (typed Arrow columns, as the connector does);
- stock: `ApiClient.deserialize` into `CollectionResponseSimplePublicObjectWithAssociationsForwardPaging`
  (what `basic_api.get_page(...)` returns by default), which parses every timestamp with dateutil.
Each run times `--pages` parses of the page; the ratio is stock time / project time in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from bench.common import Row, Sample, table
from connectors.batches import Stream

if TYPE_CHECKING:
    from sandbox.world import World

PAGE = 100


def fetch_page(world: World | None = None) -> bytes:
    """One page of 100 contacts from the sandbox HubSpot server of `world` (today's default world when None), as raw
    JSON bytes. tests/test_bench_setup.py passes the (seed, today) whose portal the test session shares."""
    from connectors.hubspot import OBJECT_PROPERTIES
    from sandbox.hubspot_server import HubSpotServer
    from sandbox.world import World

    with HubSpotServer.for_sandbox(world or World()) as server:
        properties = [*OBJECT_PROPERTIES["contacts"], "churn_date"]
        query = urllib.parse.urlencode([("limit", PAGE), *[("properties", p) for p in properties]])
        request = urllib.request.Request(f"{server.url}/crm/v3/objects/contacts?{query}",
                                         headers={"Authorization": f"Bearer {server.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback sandbox
            return bytes(response.read())


def contacts_stream() -> Stream:
    from connectors.hubspot import default_stream

    return default_stream("contacts")


def parse_project(raw: bytes, stream: Stream) -> pa.Table:
    """What the connector does with a page body: decode, then typed Arrow columns."""
    from connectors.hubspot import records_to_table

    return records_to_table(json.loads(raw)["results"], stream)


class _Raw:
    """The one attribute of a urllib3 response `ApiClient.deserialize` reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def stock_client() -> Any:
    from hubspot.crm.contacts import ApiClient

    return ApiClient()


def parse_stock(raw: bytes, client: Any) -> Any:
    """The stock client's models for the same body (what `get_page` returns without `_preload_content`)."""
    return client.deserialize(_Raw(raw), "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging")


def measure(runs: int, pages: int) -> list[Row]:
    raw = fetch_page()
    stream = contacts_stream()
    client = stock_client()
    parse_project(raw, stream)  # warm-up: first-call imports are not parsing
    parse_stock(raw, client)
    ours: list[float] = []
    stock: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(pages):
            parse_project(raw, stream)
        ours.append((time.perf_counter() - start) / pages * 1e3)
        start = time.perf_counter()
        for _ in range(pages):
            parse_stock(raw, client)
        stock.append((time.perf_counter() - start) / pages * 1e3)
    ratio = Sample(tuple(s / o for s, o in zip(stock, ours, strict=True)))
    return [Row("6 hubspot", f"parse one page of {PAGE} contacts ({len(raw):,} bytes)",
                Sample(tuple(ours)).show(" ms"), Sample(tuple(stock)).show(" ms") + " stock", ratio.show("x", 3),
                ">= 5x", ok=ratio.median >= 5)]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pages", type=int, default=50, help="parses per run")
    args = parser.parse_args(argv)
    result = measure(args.runs, args.pages)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
