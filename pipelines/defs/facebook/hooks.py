"""What Facebook Pages do their own way in the shared source step (pipelines/components/source_assets.py).

Business purpose: a Page's day insights, its own weekly and 28-day reach and its posts come from one read per Page
(the posts published that day are counted into the day table), so the three tables are one step, written together.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from connectors.batches import Batch, Stream, Window
from connectors.meta_graph import GRAPH_API_VERSION, MetaConnector
from connectors.parallel import AccountLog
from pipelines.components.source_assets import SourceHooks


class MetaHooks(SourceHooks):
    """Every table of a Meta source from one read per account; metadata names the pinned Graph API version and
    the usage Meta last announced."""

    accounts_key = "meta_accounts"  # never "accounts": the shared step's own account metadata uses it

    def batches(self, connector: MetaConnector, streams: Sequence[Stream], window: Window, accounts: AccountLog
                ) -> Iterable[Batch]:
        wanted = set(streams)
        return (batch for batch in connector.fetch_all(window, accounts=accounts) if batch.stream in wanted)

    def definition_metadata(self, stream: Stream) -> dict[str, Any]:
        return {"graph_api_version": GRAPH_API_VERSION}

    def run_metadata(self, connector: MetaConnector, stream: Stream) -> dict[str, Any]:
        client = connector._client
        return {"graph_api_version": GRAPH_API_VERSION,
                "graph_usage_percent": round(client.usage, 1) if client is not None else 0.0,
                "graph_paced_seconds": round(client.paced_seconds, 1) if client is not None else 0.0}


class FacebookHooks(MetaHooks):
    """Facebook Pages: the metadata lists the Pages read."""

    accounts_key = "pages"
