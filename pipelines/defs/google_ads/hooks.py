"""What Google Ads does its own way in the shared source step (pipelines/components/source_assets.py).

Business purpose: one `search_stream` per customer covers the whole range of the campaign table; the developer token
comes from the `google_ads` resource (an EnvVar), never from run config. The rest is the source protocol's default.
"""

from pipelines.components.source_assets import SourceHooks


class GoogleAdsHooks(SourceHooks):
    """The campaign table, read through the `google_ads` resource; its metadata lists the customers read."""

    accounts_key = "customers"
