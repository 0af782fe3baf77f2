"""The one shape every platform's connector has: what the registry, the Dagster component and `mkpi doctor` call.

Business purpose: adding a platform is a connector module, a sandbox server, a registry entry and its SQL (issue #20).
That only holds if every connector module answers the same questions the same way, stated here as Protocols (a test
checks every registry entry's module against them):

- `STREAMS`: its raw tables (connectors/raw_tables.py), in load order.
- `connect(settings)`: the connector for the whole `Settings` (each module picks its own section), with no request
  sent.
- `connector.fetch(stream, window, *, accounts=None, cursor=None)`: the batches of one raw table over a window.
  `accounts` is the run's AccountLog (a failing account is recorded there and skipped instead of raised, the others
  load). `cursor` is for incremental sources: the value committed by the previous run for that stream (None: a full
  read); the last batch carries the new cursor, which the loader commits with the rows. Report sources ignore it.
  Where one request answers several tables (Matomo's bulk request, GA4's quality rows beside each report, HubSpot's
  deal associations with the deals), the dependent tables come with their parent's read; asking for a dependent
  table alone says which stream to fetch instead.
- `kpi_accounts(settings)`: the configured accounts as KPI rows name them (None: whatever account the credential
  reaches), so a source or an account no longer configured is not reported stale.
- `connector.probe()`: what `mkpi doctor` checks, the cheapest real request per account, as findings (ok / text /
  fix); never raises for a platform's refusal, only reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from connectors.errors import ConfigError

if TYPE_CHECKING:
    from connectors.batches import Batch, Stream, Window
    from connectors.parallel import AccountLog
    from connectors.probe import Finding
    from connectors.settings import Settings


@runtime_checkable
class SourceConnector(Protocol):
    """A platform's connector, built by its module's `connect(settings)`."""

    def fetch(self, stream: Stream, window: Window, *, accounts: AccountLog | None = None,
              cursor: str | None = None) -> Iterator[Batch]:
        """The batches of `stream` over `window` (see the module docstring for `accounts` and `cursor`)."""
        ...

    def probe(self) -> list[Finding]:
        """What doctor checks: one cheap real request per account, each answer a finding with its fix."""
        ...


@runtime_checkable
class SourceModule(Protocol):
    """A connector module as the registry names it (`SourceSpec.module`)."""

    SOURCE: str
    STREAMS: tuple[Stream, ...]

    def connect(self, settings: Settings) -> Any:  # a SourceConnector
        """The connector for these settings; nothing is sent yet."""
        ...

    def kpi_accounts(self, settings: Settings) -> tuple[str, ...] | None:
        """The configured accounts as KPI rows name them (None: any account, a source with one account per
        credential): what alerts judge for staleness."""
        ...


def stream_named(streams: tuple[Stream, ...], stream: Stream | str) -> Stream:
    """A stream of a source by its table ("ga4.traffic_by_channel") or by the Stream itself; an unknown one names the
    known ones."""
    table = stream if isinstance(stream, str) else stream.table
    for known in streams:
        if known.table == table:
            return known
    raise ValueError(f"unknown stream {table!r}: this source writes {', '.join(s.table for s in streams)}")


def parsed_accounts(ids: Iterable[str], normalise: Callable[[str], str]) -> tuple[str, ...]:
    """Configured account ids as KPI rows name them; an id that does not parse is left out (runs refuse it, naming
    it), so it is never judged as an account of its own."""
    out = []
    for raw in ids:
        try:
            out.append(normalise(raw))
        except ConfigError:
            continue
    return tuple(out)
