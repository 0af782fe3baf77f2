"""Meta's Graph API for Facebook Page and Instagram insights, as the `facebook-business` SDK sends it, on 127.0.0.1.

What it reproduces, each from a public source:

* Paths `/{version}/{object-id}[/{edge}]` (developers.facebook.com/docs/graph-api/overview); the token in an
  `Authorization: Bearer` header or an `access_token` query parameter (both accepted by Graph API, docs/graph-api/
  overview "Access tokens"); every request that carried the token in its query string is counted in
  `tokens_in_query` so a test can prove the connector never does.
* Page insights, `GET /{page-id}/insights?metric=a,b&period=day|week|days_28&since=&until=`: `data[]` of
  `{name, period, values[{value, end_time}], title, description, id}` and `paging.previous/next`; a day's value
  carries `end_time` = the next midnight in Pacific time, the first one `since` plus one day; at most 90 days between
  `since` and `until` (developers.facebook.com/documentation/pages-api/platforminsights/page, Limitations). Current
  metric names: `page_media_view` and `page_total_media_view_unique` replaced `page_impressions*`, `page_follows`
  replaced `page_fans` (Pages API changelog, Nov 15 2025; .../platforminsights/page/deprecated-metrics).
* Instagram account insights, `GET /{ig-user-id}/insights?metric=&period=day&metric_type=time_series|total_value`:
  `reach` and `follower_count` (new follows per day, last 30 days only) as time series, `views`,
  `total_interactions`, `shares`, `profile_links_taps` as `total_value.value` over `since`..`until`; `impressions`
  and `profile_views` are retired (developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/
  insights: impressions deprecated for all versions on April 21 2025; v21 deprecations).
* A retired or unknown metric answers HTTP 400 with Graph's error body `{"error": {"message": "(#100) The value
  must be a valid insights metric", "type": "OAuthException", "code": 100, "fbtrace_id": ...}}`
  (docs/graph-api/guides/error-handling: message, type, code, error_subcode, fbtrace_id).
* Edges `/{page-id}/published_posts` and `/{ig-user-id}/media` page with `paging.cursors.before/after` and a
  `paging.next` only when more follows (docs/graph-api/results, cursor-based pagination); `/{ig-user-id}/stories`
  lists only the stories of the last 24 hours (docs/instagram-platform/api-reference/instagram-user/stories).
* Rate limiting: every answer carries `X-App-Usage` (`call_count`, `total_cputime`, `total_time` in percent) and,
  for a Page or Instagram account, `X-Business-Use-Case-Usage` (`{id: [{type, call_count, total_cputime,
  total_time, estimated_time_to_regain_access}]}`); a throttled call is error code 4 (app), 17 (user), 32 (Page) or
  613, or 80001 (Pages business use case) / 80002 (Instagram) (docs/graph-api/overview/rate-limiting).

Field names of answers are those of the official SDK's objects (facebook/facebook-python-business-sdk,
facebook_business/adobjects/insightsresult.py, instagraminsightsresult.py, pagepost.py, igmedia.py), which
tests/test_meta_contracts.py checks. Numbers come from the world (sandbox/world.py, Meta section), so tests recompute
them independently.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import urllib.parse
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.httpserver import Request, Response, SandboxServer, json_response
from sandbox.world import (
    FACEBOOK_PAGE_ID,
    INSTAGRAM_ACCOUNT_ID,
    META_TIMEZONE,
    MetaPost,
    World,
    meta_day,
    meta_followers,
    meta_period_reach,
    meta_posts,
)

_TZ = ZoneInfo(META_TIMEZONE)
PAGE_METRICS = frozenset({"page_media_view", "page_total_media_view_unique", "page_post_engagements",
                          "page_follows", "page_daily_follows_unique", "page_daily_unfollows_unique",
                          "page_views_total"})
# metrics with a week / days_28 period besides day (the reach family)
PERIOD_METRICS = frozenset({"page_total_media_view_unique"})
POST_METRICS = frozenset({"post_media_view", "post_total_media_view_unique", "post_reactions_like_total",
                          "post_clicks_by_type"})
IG_TIME_SERIES = frozenset({"reach", "follower_count"})
IG_TOTAL_VALUE = frozenset({"views", "reach", "total_interactions", "accounts_engaged", "shares",
                            "profile_links_taps", "likes", "comments", "saves", "replies"})
IG_MEDIA_METRICS = {"FEED": frozenset({"views", "reach", "likes", "comments", "shares", "saved", "total_interactions"}),
                    "REELS": frozenset({"views", "reach", "likes", "comments", "shares", "saved",
                                        "total_interactions"}),
                    "STORY": frozenset({"views", "reach", "replies", "shares", "total_interactions"})}
# retired names a stale client may still ask for (the deprecation lists cited above)
RETIRED = frozenset({"page_impressions", "page_impressions_unique", "page_fans", "page_fan_adds",
                     "page_fan_removes", "page_fan_adds_unique", "page_fan_removes_unique", "post_impressions",
                     "post_impressions_unique", "impressions", "profile_views", "website_clicks", "plays"})
MAX_INSIGHT_DAYS = {"facebook": 90, "instagram": 30}
IG_FOLLOWER_COUNT_DAYS = 30
INVALID_METRIC = "(#100) The value must be a valid insights metric"
THROTTLE_MESSAGES = {4: "(#4) Application request limit reached", 17: "(#17) User request limit reached",
                     32: "(#32) Page request limit reached",
                     613: "(#613) Calls to this api have exceeded the rate limit.",
                     80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
                     80002: "(#80002) There have been too many calls to this Instagram account. Wait a bit and try "
                            "again."}
DEFAULT_LIMIT, MAX_LIMIT = 25, 100


class GraphError(Exception):
    """A Graph API error answer: status and the `error` object."""

    def __init__(self, status: int, message: str, code: int, subcode: int | None = None,
                 kind: str = "OAuthException", transient: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.subcode, self.kind = status, message, code, subcode, kind
        self.transient = transient


def graph_error_body(message: str, code: int, subcode: int | None = None, kind: str = "OAuthException",
                     transient: bool = False) -> dict[str, Any]:
    """Graph API's error body (docs/graph-api/guides/error-handling)."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code,
                             "fbtrace_id": "A" + secrets.token_hex(10)}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return {"error": error}


def _day_of(value: str) -> date:
    """A `since`/`until` value: a unix timestamp (its Pacific day) or an ISO date."""
    if value.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(value), tz=_TZ).date()
    return date.fromisoformat(value[:10])


def end_time(day: date) -> str:
    """The end_time of a day's value: the next Pacific midnight, in UTC, as Graph writes it."""
    midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=_TZ).astimezone(ZoneInfo("UTC"))
    return midnight.strftime("%Y-%m-%dT%H:%M:%S+0000")


def graph_time(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S+0000")


class MetaServer(SandboxServer):
    """The shop's Facebook Page and Instagram account behind one Graph API host."""

    name = "meta"

    def __init__(self, world: World, token: str = "sandbox-meta-token") -> None:
        super().__init__()
        self.world = world
        self.token = token
        self.retired: set[str] = set(RETIRED)  # a test retires a metric the connector asks for
        self.app_usage = 0  # percent, reported in X-App-Usage (a test raises it)
        self.regain_minutes = 0  # estimated_time_to_regain_access in X-Business-Use-Case-Usage
        self.tokens_in_query = 0
        self._count_lock = threading.Lock()

    @classmethod
    def for_sandbox(cls, world: World) -> MetaServer:
        """The launcher's factory: a fresh random token per start."""
        return cls(world, token="EAAB" + secrets.token_hex(20))

    def env(self) -> dict[str, str]:
        return {"MKPI_META_ENDPOINT": self.url, "MKPI_META_ACCESS_TOKEN": self.token,
                "MKPI_FACEBOOK_PAGE_IDS": FACEBOOK_PAGE_ID, "MKPI_INSTAGRAM_ACCOUNT_IDS": INSTAGRAM_ACCOUNT_ID}

    # ---- errors and faults as Graph API renders them -------------------------------------------------

    def error_response(self, status: int, message: str) -> Response:
        code = {400: 100, 401: 190, 403: 10, 404: 803}.get(status, 1 if status >= 500 else 100)
        return json_response(status, graph_error_body(message, code, transient=status >= 500))

    def rate_limit_response(self, retry_after: int | None) -> Response:
        """An HTTP 429 from Meta's edge (the chaos battery's rate-limit fault): Graph's throttling body (code 4,
        usage at 100 %) with the Retry-After when one is given; Graph itself throttles with HTTP 400 (add_throttle)."""
        response = self.throttle_response(4)
        headers = {**response.headers, **({"Retry-After": str(retry_after)} if retry_after is not None else {})}
        return Response(429, response.body, headers)

    def throttle_response(self, code: int, account: str | None = None) -> Response:
        usage = {"call_count": 100, "total_cputime": 40, "total_time": 60}
        headers = {"X-App-Usage": json.dumps(usage)}
        if account:
            headers["X-Business-Use-Case-Usage"] = self._buc(account, 100)
        return json_response(400, graph_error_body(THROTTLE_MESSAGES.get(code, THROTTLE_MESSAGES[4]), code,
                                                   transient=True), headers)

    def server_error_response(self, status: int) -> Response:
        if status == 503:
            return json_response(503, graph_error_body("(#2) Service temporarily unavailable", 2, transient=True))
        return json_response(status, graph_error_body("An unknown error has occurred.", 1, transient=True))

    def error_envelope_response(self) -> Response:
        return json_response(500, graph_error_body("An unexpected error has occurred. Please retry your request "
                                                   "later.", 2, transient=True))

    def add_throttle(self, code: int = 4, account: str | None = None) -> None:
        """Script one of Graph's rate-limit answers (error `code`, usage headers at 100 %) for the next request."""
        response = self.throttle_response(code, account)
        self.add_fault("status", response.status, json.loads(response.body), response.headers)

    def _buc(self, account: str, percent: int) -> str:
        kind = "instagram" if account == INSTAGRAM_ACCOUNT_ID else "pages"
        return json.dumps({account: [{"type": kind, "call_count": percent, "total_cputime": percent // 2,
                                      "total_time": percent // 2,
                                      "estimated_time_to_regain_access": self.regain_minutes}]})

    # ---- routing -------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        parts = [urllib.parse.unquote(p) for p in request.path.strip("/").split("/")]
        account = parts[1] if len(parts) > 1 else None
        try:
            if request.method != "GET" or len(parts) < 2 or not parts[0].startswith("v"):
                raise GraphError(400, f"Unsupported {request.method} request.", 100)
            self._authenticate(request)
            answer = self._route(parts[1], parts[2] if len(parts) > 2 else None, request)
        except GraphError as exc:
            return json_response(exc.status, graph_error_body(exc.message, exc.code, exc.subcode, exc.kind,
                                                              exc.transient),
                                 {"X-App-Usage": self._app_usage()})
        headers = {"X-App-Usage": self._app_usage()}
        if account in (FACEBOOK_PAGE_ID, INSTAGRAM_ACCOUNT_ID):
            headers["X-Business-Use-Case-Usage"] = self._buc(account, self.app_usage)
        return json_response(200, answer, headers)

    def _app_usage(self) -> str:
        return json.dumps({"call_count": self.app_usage, "total_cputime": self.app_usage // 2,
                           "total_time": self.app_usage // 2})

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        in_query = request.query.get("access_token", [""])[0]
        if in_query:
            with self._count_lock:
                self.tokens_in_query += 1
        token = header[7:].strip() if header.lower().startswith("bearer ") else in_query
        if not token:
            raise GraphError(400, "An active access token must be used to query information about the current "
                                  "user.", 2500)
        if token != self.token:
            raise GraphError(400, "Invalid OAuth access token - Cannot parse access token", 190)

    def _route(self, node: str, edge: str | None, request: Request) -> Any:
        q = {k: v[0] for k, v in request.query.items()}
        if node == "me" and edge is None:
            return {"id": "10000000000001", "name": "Sandbox System User"}
        if node in (FACEBOOK_PAGE_ID, INSTAGRAM_ACCOUNT_ID) and edge is None:
            if node == FACEBOOK_PAGE_ID:
                return {"id": node, "name": "Shop Example"}
            return {"id": node, "username": "shop.example",
                    "followers_count": meta_followers(self.world, node, self.world.today)}
        if node == FACEBOOK_PAGE_ID and edge == "insights":
            return self._page_insights(q)
        if node == INSTAGRAM_ACCOUNT_ID and edge == "insights":
            return self._ig_insights(q)
        if node == FACEBOOK_PAGE_ID and edge == "published_posts":
            return self._edge(request, q, self._posts(node, q), self._fb_post)
        if node == INSTAGRAM_ACCOUNT_ID and edge == "media":
            return self._edge(request, q, [p for p in self._posts(node, q) if p.media_type != "STORY"],
                              self._ig_media)
        if node == INSTAGRAM_ACCOUNT_ID and edge == "stories":
            now = datetime.combine(self.world.today + timedelta(days=1), time(0), tzinfo=_TZ)
            live = [p for d in (self.world.today - timedelta(days=1), self.world.today)
                    for p in meta_posts(self.world, node, d) if p.media_type == "STORY"
                    and now - p.created_time <= timedelta(hours=24)]
            return self._edge(request, q, live, self._ig_media)
        post = self._find_post(node)
        if post is not None and edge == "insights":
            return self._post_insights(post, q)
        raise GraphError(400, f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded "
                              "due to missing permissions, or does not support this operation. Please read the Graph "
                              "API documentation at https://developers.facebook.com/docs/graph-api", 100, 33,
                         kind="GraphMethodException")

    # ---- insights ------------------------------------------------------------------------------------

    def _metrics(self, q: dict[str, str], valid: frozenset[str]) -> list[str]:
        names = [m.strip() for m in q.get("metric", "").split(",") if m.strip()]
        if not names:
            raise GraphError(400, "(#100) No metric was specified to be fetched. Please specify one or more metrics "
                                  "to be fetched and try again.", 3001, 1504028)
        for name in names:
            if name in self.retired or name not in valid:
                raise GraphError(400, INVALID_METRIC, 100)
        return names

    def _range(self, q: dict[str, str], network: str) -> tuple[date, date]:
        """The days since..until-1 (the first end_time is since plus one day)."""
        since = _day_of(q["since"]) if "since" in q else self.world.today - timedelta(days=2)
        until = _day_of(q["until"]) if "until" in q else self.world.today
        limit = MAX_INSIGHT_DAYS[network]
        if (until - since).days > limit:
            raise GraphError(400, f"(#100) There cannot be more than {limit} days ({limit * 86400} s) between since "
                                  "and until", 100)
        return since, until - timedelta(days=1)

    def _page_insights(self, q: dict[str, str]) -> dict[str, Any]:
        period = q.get("period", "day")
        metrics = self._metrics(q, PAGE_METRICS)
        if period != "day" and any(m not in PERIOD_METRICS for m in metrics):
            raise GraphError(400, INVALID_METRIC, 100)
        first, last = self._range(q, "facebook")
        days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        page = FACEBOOK_PAGE_ID
        data = []
        for name in metrics:
            values = []
            for day in days:
                facts = meta_day(self.world, page, day)
                if facts is None:
                    continue
                value = {"page_media_view": facts.views, "page_total_media_view_unique": facts.reach,
                         "page_post_engagements": facts.engagements, "page_daily_follows_unique": facts.follows,
                         "page_daily_unfollows_unique": facts.unfollows, "page_views_total": facts.page_views,
                         "page_follows": meta_followers(self.world, page, day)}[name]
                if period != "day":
                    value = meta_period_reach(self.world, page, day, period)
                values.append({"value": value, "end_time": end_time(day)})
            data.append({"name": name, "period": period, "values": values, "title": name, "description": name,
                         "id": f"{page}/insights/{name}/{period}"})
        return {"data": data, "paging": self._time_paging(page, q, first, last)}

    def _time_paging(self, node: str, q: dict[str, str], first: date, last: date) -> dict[str, str]:
        span = (last - first).days + 1

        def url(start: date) -> str:
            params = {**q, "since": start.isoformat(), "until": (start + timedelta(days=span)).isoformat()}
            return f"{self.url}/v26.0/{node}/insights?{urllib.parse.urlencode(params)}"

        return {"previous": url(first - timedelta(days=span)), "next": url(first + timedelta(days=span))}

    def _ig_insights(self, q: dict[str, str]) -> dict[str, Any]:
        account = INSTAGRAM_ACCOUNT_ID
        metric_type = q.get("metric_type", "time_series")
        valid = IG_TOTAL_VALUE if metric_type == "total_value" else IG_TIME_SERIES
        metrics = self._metrics(q, valid)
        first, last = self._range(q, "instagram")
        days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        data = []
        for name in metrics:
            item: dict[str, Any] = {"name": name, "period": "day", "title": name, "description": name,
                                    "id": f"{account}/insights/{name}/day"}
            if metric_type == "total_value":
                if all(meta_day(self.world, account, day) is None for day in days):
                    # "the API will return an empty data set instead of 0" (instagram-user/insights, Limitations)
                    return {"data": []}
                total = 0
                for day in days:
                    facts = meta_day(self.world, account, day)
                    if facts is not None:
                        total += {"views": facts.views, "reach": facts.reach, "total_interactions": facts.engagements,
                                  "accounts_engaged": round(facts.reach * 0.05), "shares": facts.shares,
                                  "profile_links_taps": facts.link_clicks}.get(name, 0)
                item["total_value"] = {"value": total}
            else:
                values = []
                for day in days:
                    facts = meta_day(self.world, account, day)
                    if facts is None:
                        continue
                    if name == "follower_count":
                        # only the last 30 days, the current one excluded (instagram-user/insights, follower_count)
                        if not (self.world.today - timedelta(days=IG_FOLLOWER_COUNT_DAYS) <= day < self.world.today):
                            continue
                        values.append({"value": facts.follows, "end_time": end_time(day)})
                    else:
                        values.append({"value": facts.reach, "end_time": end_time(day)})
                item["values"] = values
            data.append(item)
        return {"data": data, "paging": self._time_paging(account, q, first, last)}

    def _post_insights(self, post: MetaPost, q: dict[str, str]) -> dict[str, Any]:
        if post.account_id == FACEBOOK_PAGE_ID:
            metrics = self._metrics(q, POST_METRICS)
            values = {"post_media_view": post.views, "post_total_media_view_unique": post.reach,
                      "post_reactions_like_total": post.likes,
                      "post_clicks_by_type": {"link clicks": post.link_clicks, "other clicks": post.link_clicks * 3}}
            data = [{"name": m, "period": "lifetime", "values": [{"value": values[m]}], "title": m,
                     "description": m, "id": f"{post.post_id}/insights/{m}/lifetime"} for m in metrics]
        else:
            metrics = self._metrics(q, IG_MEDIA_METRICS[post.media_type])
            values = {"views": post.views, "reach": post.reach, "likes": post.likes, "comments": post.comments,
                      "shares": post.shares, "saved": post.saved, "replies": post.replies,
                      "total_interactions": post.likes + post.comments + post.shares + post.saved}
            data = [{"name": m, "period": "lifetime", "values": [{"value": values[m]}], "title": m,
                     "description": m, "id": f"{post.post_id}/insights/{m}/lifetime"} for m in metrics]
        return {"data": data}

    # ---- edges ---------------------------------------------------------------------------------------

    def _posts(self, account: str, q: dict[str, str]) -> list[MetaPost]:
        """Newest first, created in since..until (unix timestamps or dates, both inclusive of since)."""
        since = _day_of(q["since"]) if "since" in q else self.world.today - timedelta(days=30)
        until = _day_of(q["until"]) if "until" in q else self.world.today
        posts = [p for k in range((until - since).days + 1)
                 for p in meta_posts(self.world, account, since + timedelta(days=k))]
        low = datetime.combine(since, time(0), tzinfo=_TZ)
        high = datetime.combine(until, time(0), tzinfo=_TZ) if "until" in q else datetime.max.replace(tzinfo=_TZ)
        return sorted((p for p in posts if low <= p.created_time < high), key=lambda p: p.created_time, reverse=True)

    def _find_post(self, node: str) -> MetaPost | None:
        serial = node.split("_", 1)[1] if "_" in node else node.removeprefix("1790")
        account = node.split("_", 1)[0] if "_" in node else INSTAGRAM_ACCOUNT_ID
        if len(serial) != 10 or not serial.isdigit():
            return None
        try:
            day = date(int(serial[:4]), int(serial[4:6]), int(serial[6:8]))
        except ValueError:
            return None
        return next((p for p in meta_posts(self.world, account, day) if p.post_id == node), None)

    def _edge(self, request: Request, q: dict[str, str], items: list[MetaPost], render: Any) -> dict[str, Any]:
        limit = min(int(q.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        start = int(_decode_cursor(q["after"])) if "after" in q else 0
        chunk = items[start:start + limit]
        answer: dict[str, Any] = {"data": [_only_fields(render(p), q.get("fields")) for p in chunk]}
        if chunk:
            paging: dict[str, Any] = {"cursors": {"before": _cursor(start), "after": _cursor(start + len(chunk))}}
            if start + limit < len(items):
                params = {**q, "after": paging["cursors"]["after"], "limit": str(limit)}
                paging["next"] = f"{self.url}{request.path}?{urllib.parse.urlencode(params)}"
            answer["paging"] = paging
        return answer

    @staticmethod
    def _fb_post(post: MetaPost) -> dict[str, Any]:
        item: dict[str, Any] = {"id": post.post_id, "created_time": graph_time(post.created_time),
                                "permalink_url": post.permalink, "status_type": post.media_type}
        if post.shares:
            item["shares"] = {"count": post.shares}
        return item

    @staticmethod
    def _ig_media(post: MetaPost) -> dict[str, Any]:
        return {"id": post.post_id, "timestamp": graph_time(post.created_time), "permalink": post.permalink,
                "media_product_type": post.media_type,
                "media_type": "VIDEO" if post.media_type == "REELS" else "IMAGE",
                "like_count": post.likes, "comments_count": post.comments}


def _only_fields(item: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Graph returns the fields a request names in `fields` (and the id), no others; absent fields are left out
    rather than null (developers.facebook.com/docs/graph-api/overview, "Fields": "specify which fields you want
    returned")."""
    if not fields:
        return item
    wanted = {name.strip() for name in fields.split(",")} | {"id"}
    return {key: value for key, value in item.items() if key in wanted}


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"i:{index}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error):
        raise GraphError(400, "(#100) Invalid cursor", 100) from None
    if not text.startswith("i:") or not text[2:].isdigit():
        raise GraphError(400, "(#100) Invalid cursor", 100)
    return text[2:]
