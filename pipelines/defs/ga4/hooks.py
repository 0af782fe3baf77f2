"""What GA4 does its own way in the shared source step (pipelines/components/source_assets.py).

Business purpose: GA4's answers say whether they were thresholded, sampled or folded into `(other)`; those facts are
loaded into `ga4.report_quality` with the report's rows (same transaction) and counted in the materialisation's
metadata, with each property's remaining daily quota tokens, so an analyst sees why a number moved.
"""

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

from connectors.batches import Batch, Stream, Window
from connectors.ga4 import REPORTS, Ga4Connector, Ga4FunnelReport, Ga4Report
from connectors.parallel import AccountLog
from pipelines.components.source_assets import SourceHooks

_BY_TABLE: dict[str, Ga4Report | Ga4FunnelReport] = {r.stream.table: r for r in REPORTS.values()}


class Ga4Hooks(SourceHooks):
    """One asset per report (traffic, e-commerce, the cart funnel); quality rows and quota beside each."""

    accounts_key = "properties"

    def streams(self) -> tuple[Stream, ...]:
        return tuple(r.stream for r in REPORTS.values())

    def account_ids(self, connector: Ga4Connector) -> list[str]:
        return connector.property_ids()

    def batches(self, connector: Ga4Connector, streams: Sequence[Stream], window: Window, accounts: AccountLog
                ) -> Iterable[Batch]:
        # the quality rows follow in the same load, for the properties read whole
        for stream in streams:
            report = _BY_TABLE[stream.table]
            yield from chain(connector.fetch(report, window, accounts=accounts),
                             connector.quality_batches(report.name, window))

    def run_metadata(self, connector: Ga4Connector, stream: Stream) -> dict[str, Any]:
        quota = {f"quota_{pid}_tokens_per_day_remaining": q.get("tokens_per_day_remaining", -1)
                 for pid, q in connector.quota.items()}
        return {**connector.quality_counts(_BY_TABLE[stream.table].name), **quota}
