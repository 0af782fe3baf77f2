"""What Search Console does its own way in the shared source step (pipelines/components/source_assets.py).

Business purpose: each stream's aggregation type (byProperty totals vs byPage) is on the asset, since only the
byProperty totals are a correct base for site-level SEO KPIs; Discover and Google News lack some dimensions, so those
reads are skipped and the materialisation says which and why.
"""

from typing import Any

from connectors.batches import Stream
from connectors.search_console import REPORTS, GscReport, SearchConsoleConnector, skipped_search_types
from pipelines.components.source_assets import SourceHooks

_BY_TABLE: dict[str, GscReport] = {r.stream.table: r for r in REPORTS.values()}


class SearchConsoleHooks(SourceHooks):
    """One asset per Search Analytics stream (site totals, pages, queries, devices, countries)."""

    accounts_key = "sites"

    def account_ids(self, connector: SearchConsoleConnector) -> list[str]:
        return connector.sites()

    def definition_metadata(self, stream: Stream) -> dict[str, Any]:
        return {"aggregation_type": _BY_TABLE[stream.table].aggregation_type}

    def run_metadata(self, connector: SearchConsoleConnector, stream: Stream) -> dict[str, Any]:
        skipped = skipped_search_types(_BY_TABLE[stream.table], connector.settings.search_types)
        return {"skipped_search_types": "; ".join(f"{k}: {v}" for k, v in skipped.items())} if skipped else {}
