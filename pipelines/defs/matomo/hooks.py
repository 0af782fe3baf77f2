"""What Matomo does its own way in the shared source step (pipelines/components/source_assets.py).

Business purpose: one `API.getBulkRequest` per site carries every method for the whole range, so Matomo's tables are
one step written together, atomically. The campaign mediums need the MarketingCampaignsReporting plugin; each
materialisation says whether it was there (`campaign_plugin: present | absent`), never failing the run without it.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from connectors.batches import Batch, Stream, Window
from connectors.matomo import MatomoConnector
from connectors.parallel import AccountLog
from pipelines.components.source_assets import SourceHooks


class MatomoHooks(SourceHooks):
    """Every Matomo table from one bulk request per site."""

    accounts_key = "sites"

    def batches(self, connector: MatomoConnector, streams: Sequence[Stream], window: Window, accounts: AccountLog
                ) -> Iterable[Batch]:
        return connector.fetch(window, accounts=accounts)

    def run_metadata(self, connector: MatomoConnector, stream: Stream) -> dict[str, Any]:
        return {"campaign_plugin": connector.campaign_plugin_status()}
