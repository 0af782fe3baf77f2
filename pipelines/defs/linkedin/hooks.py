"""What LinkedIn does its own way in the shared source step (pipelines/components/source_assets.py).

Business purpose: a company page's social KPIs per organization; each materialisation names the pinned
`LinkedIn-Version` its answers came from (LinkedIn changes fields between versions), and the organizations read.
"""

from typing import Any

from connectors.batches import Stream
from connectors.linkedin import LINKEDIN_VERSION, LinkedInConnector
from pipelines.components.source_assets import SourceHooks


class LinkedInHooks(SourceHooks):
    """One asset per LinkedIn table (account_daily, account_period_reach, posts); the source protocol's defaults."""

    accounts_key = "organizations"

    def definition_metadata(self, stream: Stream) -> dict[str, Any]:
        return {"linkedin_version": LINKEDIN_VERSION}

    def run_metadata(self, connector: LinkedInConnector, stream: Stream) -> dict[str, Any]:
        return {"linkedin_version": LINKEDIN_VERSION, "requests": connector.stats.requests}
