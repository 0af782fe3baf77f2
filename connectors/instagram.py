"""Instagram connector: a professional account's insights by day and every post's, reel's and story's lifetime
insights, through Meta's Graph API (connectors/meta_graph.py: the official SDK, the pinned version).

Business purpose: Instagram's views, reach, interactions, new followers and posts are the Instagram side of the
social KPIs (kpi.social_daily, source `instagram`).

What it reads per account (metric names as Graph API v26.0 has them: `impressions` was retired for all versions on
April 21 2025 and replaced by `views`; `profile_views` and `website_clicks` went in v21:
developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights):
- `GET /{ig-user}/insights?period=day&metric_type=time_series` in ranges of at most 30 days: `reach` -> reach,
  `follower_count` (the follows of the day, given for the last 30 days only) -> follower_gains. Instagram gives no
  day level of followers and no unfollows: followers and follower_losses are NULL.
- `metric_type=total_value`, one request per day (a total_value answer is one total over since..until): `views` ->
  impressions, `total_interactions` -> engagements, `shares` -> shares, `profile_links_taps` -> link_clicks.
  page_views is NULL (no current metric).
- `GET /{ig-user}/media` (cursor paging to the end; posts and reels) and `GET /{ig-user}/stories` (only the stories
  of the last 24 hours: a story is counted when a run reads it that day), then `GET /{media}/insights` per item:
  feed posts and reels `views, reach, likes, comments, shares, saved`; stories `views, reach, replies, shares`
  (developers.facebook.com/docs/instagram-platform/reference/instagram-media/insights).
posts_published counts the posts, reels and stories created that day (Pacific time, as the insights days).
The Instagram API gives no weekly or 28-day reach per day in the current version: instagram.account_period_reach
stays empty (reach over longer periods is not additive; the KPI layer says so).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar

from connectors.batches import Batch, Stream, Window
from connectors.meta_graph import (
    MetaConnector,
    count,
    lifetime_values,
    meta_day,
    pacific_midnight,
    parse_graph_time,
    total_values,
)
from connectors.raw_tables import INSTAGRAM_STREAMS

SOURCE = "instagram"
STREAMS = INSTAGRAM_STREAMS
# IG user insights refuse since..until spans over 30 days
INSIGHT_DAYS = 30
TIME_SERIES = {"reach": "reach", "follower_count": "follower_gains"}
TOTAL_VALUE = {"views": "impressions", "total_interactions": "engagements", "shares": "shares",
               "profile_links_taps": "link_clicks"}
MEDIA_FIELDS = "id,timestamp,permalink,media_type,media_product_type"
MEDIA_METRICS = {"FEED": ("views", "reach", "likes", "comments", "shares", "saved"),
                 "REELS": ("views", "reach", "likes", "comments", "shares", "saved"),
                 "STORY": ("views", "reach", "replies", "shares")}
# media insight -> posts column
MEDIA_COLUMNS = {"views": "impressions", "reach": "reach", "likes": "likes", "comments": "comments",
                 "shares": "shares", "saved": "saved", "replies": "replies"}


@dataclass
class InstagramConnector(MetaConnector):
    """Reads every configured Instagram professional account's insights and media into the social tables."""

    SOURCE: ClassVar[str] = SOURCE
    IDS_VARIABLE: ClassVar[str] = "MKPI_INSTAGRAM_ACCOUNT_IDS"
    IDS_FIELD: ClassVar[str] = "account_ids"
    STREAMS: ClassVar[tuple[Stream, ...]] = STREAMS
    LABEL: ClassVar[str] = "Instagram account"
    PROBE_FIELDS: ClassVar[str] = "id,username,followers_count"

    def read_account(self, account: str, window: Window) -> list[Batch]:
        """One account's tables over the window (every request answered before any batch is handed on); the period
        reach table gets no rows (module docstring)."""
        totals = {day: self.day_totals(account, day) for day in window.dates()}
        media = self.media(account, window)
        rows = account_rows(account, window, self.time_series(account, window), totals, media)
        return self.batches(account, window, rows, [], media)

    def time_series(self, account: str, window: Window) -> dict[str, dict[date, int]]:
        """metric -> day -> value of the time-series metrics (reach, new followers)."""
        return self.series(account, window, list(TIME_SERIES), {"period": "day", "metric_type": "time_series"},
                           INSIGHT_DAYS)

    def check_metrics(self, account: str, day: date) -> None:
        self.time_series(account, Window(day, day))
        self.day_totals(account, day)

    def day_totals(self, account: str, day: date) -> dict[str, int]:
        """One day's total_value metrics (since = the day's start, until = the next day's)."""
        what = f"insights total_value {day}"
        answer = self.client().insights(account, list(TOTAL_VALUE), {
            "period": "day", "metric_type": "total_value", "since": pacific_midnight(day),
            "until": pacific_midnight(day + timedelta(1))}, account=account, what=what)
        return total_values(answer, SOURCE, account, what)

    def media(self, account: str, window: Window) -> list[dict[str, Any]]:
        """Posts, reels and (live) stories created in the window, each with its lifetime insights."""
        params = {"fields": MEDIA_FIELDS, "since": pacific_midnight(window.start),
                  "until": pacific_midnight(window.end + timedelta(1))}
        items = list(self.client().edge(account, "media", params, account=account, what=f"media {window}"))
        items += list(self.client().edge(account, "stories", {"fields": MEDIA_FIELDS}, account=account,
                                         what="stories"))
        rows, seen = [], set()
        for item in items:
            created = parse_graph_time(str(item["timestamp"]))
            media_id = str(item["id"])
            if media_id in seen or not window.start <= meta_day(created) <= window.end:
                continue
            seen.add(media_id)
            product = str(item.get("media_product_type") or "FEED")
            metrics = MEDIA_METRICS.get(product, MEDIA_METRICS["FEED"])
            what = f"media {media_id} insights"
            values = lifetime_values(self.client().insights(media_id, metrics, {}, account=account, what=what),
                                     SOURCE, account, what)
            row: dict[str, Any] = {"account_id": account, "post_id": media_id, "created_time": created,
                                   "created_date": meta_day(created), "media_type": product,
                                   "permalink": item.get("permalink"), "link_clicks": None}
            for metric, column in MEDIA_COLUMNS.items():
                value = values.get(metric) if metric in metrics else None
                row[column] = None if value is None else count(value, SOURCE, account, f"{what} {metric}")
            rows.append(row)
        return rows


def account_rows(account: str, window: Window, series: Mapping[str, Mapping[date, int]],
                 totals: Mapping[date, Mapping[str, int]], media: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per day Meta reported anything for; what Instagram does not give is NULL."""
    published = Counter(row["created_date"] for row in media)
    days = sorted({d for values in series.values() for d in values} | {d for d, t in totals.items() if t})
    rows = []
    for day in days:
        if not window.start <= day <= window.end:
            continue
        row: dict[str, Any] = {"date": day, "account_id": account, "followers": None, "follower_losses": None,
                               "page_views": None, "posts_published": published.get(day, 0)}
        for metric, column in TIME_SERIES.items():
            row[column] = series.get(metric, {}).get(day)
        for metric, column in TOTAL_VALUE.items():
            row[column] = totals.get(day, {}).get(metric)
        rows.append(row)
    return rows


def connect(settings: Any) -> InstagramConnector:
    """The Instagram connector of these settings (the source protocol, connectors/source.py); nothing is sent."""
    return InstagramConnector(settings.meta, settings.instagram)


def kpi_accounts(settings: Any) -> tuple[str, ...]:
    """The configured Instagram account ids, as KPI rows name them."""
    return tuple(settings.instagram.account_ids)
