"""What Instagram does its own way in the shared source step: the Meta sources' hooks (pipelines/defs/facebook/
hooks.py), one read per professional account for the day table and the posts, reels and stories."""

from pipelines.defs.facebook.hooks import MetaHooks


class InstagramHooks(MetaHooks):
    """Instagram professional accounts: the metadata lists the accounts read."""

    accounts_key = "instagram_accounts"
