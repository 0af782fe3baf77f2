"""Facebook Pages connector: Page insights by day, the Page's own weekly and 28-day reach, and every post's
lifetime insights, through Meta's Graph API (connectors/meta_graph.py: the official SDK, the pinned version).

Business purpose: a Page's followers, views, reach and engagement are the Facebook side of the social KPIs
(kpi.social_daily, source `facebook`).

What it reads per Page (metric names as Graph API v26.0 has them; Meta retired `page_impressions*` and `page_fans*`
on November 15 2025: developers.facebook.com/documentation/pages-api/changelog and
.../platforminsights/page/deprecated-metrics):
- `GET /{page}/insights?period=day` in ranges of at most 90 days ("Only 90 days of insights can be viewed at one
  time": developers.facebook.com/docs/graph-api/reference/insights, Limitations):
  `page_media_view` (views, Meta's replacement of impressions) -> impressions, `page_total_media_view_unique`
  (viewers, the replacement of page_impressions_unique) -> reach, `page_post_engagements` -> engagements,
  `page_follows` (the follower level) -> followers, `page_daily_follows_unique` / `page_daily_unfollows_unique` ->
  follower_gains / follower_losses, `page_views_total` -> page_views. A Page gives no day metric for shares or
  link clicks: those columns are NULL (the posts table has them per post).
- `page_total_media_view_unique` with `period=week` and `days_28` -> facebook.account_period_reach.
- `GET /{page}/published_posts` (cursor paging to the end) for the posts created in the window, then
  `GET /{post}/insights` per post: `post_media_view` -> impressions, `post_total_media_view_unique` -> reach,
  `post_reactions_like_total` -> likes, `post_clicks_by_type["link clicks"]` -> link_clicks; `shares.count` of the
  post -> shares (absent: 0 shares). Comments, saves and replies are not read for Pages (NULL).
posts_published counts the posts the Page published that day (Pacific time, as the insights days).
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
)
from connectors.raw_tables import FACEBOOK_STREAMS

SOURCE = "facebook"
STREAMS = FACEBOOK_STREAMS
INSIGHT_DAYS = 90
# Page metric -> account_daily column
DAILY_METRICS = {
    "page_media_view": "impressions",
    "page_total_media_view_unique": "reach",
    "page_post_engagements": "engagements",
    "page_follows": "followers",
    "page_daily_follows_unique": "follower_gains",
    "page_daily_unfollows_unique": "follower_losses",
    "page_views_total": "page_views",
}
REACH_METRIC = "page_total_media_view_unique"
PERIODS = ("week", "days_28")
POST_METRICS = ("post_media_view", "post_total_media_view_unique", "post_reactions_like_total", "post_clicks_by_type")
POST_FIELDS = "id,created_time,permalink_url,status_type,shares"


@dataclass
class FacebookConnector(MetaConnector):
    """Reads every configured Page's insights and posts into the three social tables."""

    SOURCE: ClassVar[str] = SOURCE
    IDS_VARIABLE: ClassVar[str] = "MKPI_FACEBOOK_PAGE_IDS"
    IDS_FIELD: ClassVar[str] = "page_ids"
    STREAMS: ClassVar[tuple[Stream, ...]] = STREAMS
    LABEL: ClassVar[str] = "Page"
    PROBE_FIELDS: ClassVar[str] = "id,name"

    def read_account(self, page: str, window: Window) -> list[Batch]:
        """One Page's three tables over the window (every request answered before any batch is handed on)."""
        posts = self.posts(page, window)
        rows = account_rows(page, window, self.daily(page, window), posts)
        return self.batches(page, window, rows, self.period_reach(page, window), posts)

    def daily(self, page: str, window: Window) -> dict[str, dict[date, int]]:
        """metric -> day -> value for the day metrics."""
        return self.series(page, window, list(DAILY_METRICS), {"period": "day"}, INSIGHT_DAYS)

    def check_metrics(self, page: str, day: date) -> None:
        self.daily(page, Window(day, day))

    def period_reach(self, page: str, window: Window) -> list[dict[str, Any]]:
        """The Page's own distinct reach over the week and the 28 days ending on each day."""
        rows = []
        for period in PERIODS:
            values = self.series(page, window, [REACH_METRIC], {"period": period}, INSIGHT_DAYS).get(REACH_METRIC, {})
            for day, value in sorted(values.items()):
                rows.append({"date": day, "account_id": page, "period": period, "reach": value})
        return rows

    def posts(self, page: str, window: Window) -> list[dict[str, Any]]:
        """The Page's posts created in the window (Pacific days), each with its lifetime insights."""
        params = {"fields": POST_FIELDS, "since": pacific_midnight(window.start),
                  "until": pacific_midnight(window.end + timedelta(1))}
        rows = []
        for post in self.client().edge(page, "published_posts", params, account=page, what=f"published_posts {window}"):
            created = parse_graph_time(str(post["created_time"]))
            if not window.start <= meta_day(created) <= window.end:
                continue
            post_id = str(post["id"])
            what = f"post {post_id} insights"
            metrics = lifetime_values(self.client().insights(post_id, POST_METRICS, {}, account=page, what=what),
                                      SOURCE, page, what)
            clicks = metrics.get("post_clicks_by_type")
            shares = post.get("shares")
            rows.append({
                "account_id": page, "post_id": post_id, "created_time": created, "created_date": meta_day(created),
                "media_type": post.get("status_type"), "permalink": post.get("permalink_url"),
                "impressions": _metric(metrics, "post_media_view", page, what),
                "reach": _metric(metrics, "post_total_media_view_unique", page, what),
                "likes": _metric(metrics, "post_reactions_like_total", page, what),
                "comments": None, "saved": None, "replies": None,
                "shares": count(shares.get("count"), SOURCE, page, f"{what} shares") if isinstance(shares, dict)
                else 0,
                "link_clicks": count(clicks.get("link clicks", 0), SOURCE, page, f"{what} link clicks")
                if isinstance(clicks, dict) else None,
            })
        return rows


def account_rows(page: str, window: Window, daily: Mapping[str, Mapping[date, int]],
                 posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per day Meta reported anything for; a metric Meta gave no value for that day is NULL."""
    published = Counter(row["created_date"] for row in posts)
    days = sorted({d for series in daily.values() for d in series if window.start <= d <= window.end})
    rows = []
    for day in days:
        row: dict[str, Any] = {"date": day, "account_id": page, "shares": None, "link_clicks": None,
                               "posts_published": published.get(day, 0)}
        for metric, column in DAILY_METRICS.items():
            row[column] = daily.get(metric, {}).get(day)
        rows.append(row)
    return rows


def _metric(metrics: Mapping[str, Any], name: str, page: str, what: str) -> int | None:
    value = metrics.get(name)
    return None if value is None else count(value, SOURCE, page, f"{what} {name}")


def connect(settings: Any) -> FacebookConnector:
    """The Facebook connector of these settings (the source protocol, connectors/source.py); nothing is sent."""
    return FacebookConnector(settings.meta, settings.facebook)


def kpi_accounts(settings: Any) -> tuple[str, ...]:
    """The configured Page ids, as KPI rows name them."""
    return tuple(settings.facebook.page_ids)
