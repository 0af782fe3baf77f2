"""What Google Ads does its own way in the shared source step (pipelines/components/source_assets.py).

Business purpose: one `search_stream` per customer covers the whole range of the campaign table; the developer token
comes from the `google_ads` resource (an EnvVar), never from run config.
"""

from collections.abc import Iterable, Sequence

from connectors.batches import Batch, Stream, Window
from connectors.google_ads import CAMPAIGN_DAILY, GoogleAdsConnector
from connectors.parallel import AccountLog
from pipelines.components.source_assets import SourceHooks


class GoogleAdsHooks(SourceHooks):
    """The campaign table, one search_stream per customer."""

    resource_key = "google_ads"
    accounts_key = "customers"

    def streams(self) -> tuple[Stream, ...]:
        return (CAMPAIGN_DAILY,)

    def batches(self, connector: GoogleAdsConnector, streams: Sequence[Stream], window: Window,
                accounts: AccountLog) -> Iterable[Batch]:
        return connector.fetch(window, accounts=accounts)
