"""LinkedIn's Community Management API (versioned Rest.li at ``/rest``), as the official ``linkedin-api-client``
(github.com/linkedin-developers/linkedin-api-python-client, ``RestliClient``) sends it.

What is emulated, and where each behaviour comes from:

* Rest.li 2.0 finders and gets, the client's wire format (``linkedin_api/clients/restli/utils/api.py``:
  ``X-RestLi-Protocol-Version: 2.0.0``, ``X-RestLi-Method``, ``Authorization: Bearer``, ``LinkedIn-Version``;
  ``utils/encoder.py``: complex query values such as ``timeIntervals=(timeRange:(start:..,end:..),
  timeGranularityType:DAY)`` and URNs percent-encoded). Query values are decoded here with the client's own
  Rest.li decoder (``utils/decoder.py``), which is the inverse of what it sends.
* Collection answers ``{"elements": [...], "paging": {"start", "count", "links"[, "total"]}}``
  (learn.microsoft.com/linkedin/shared/api-guide/concepts/pagination). Time-bound statistics come in one page by
  default; ``page_size`` makes the server page them (``start``/``count``, with ``total``), to test paging.
* ``GET /rest/organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED``: the organizations the token's
  member administers (learn.microsoft.com/linkedin/marketing/community-management/organizations/
  organization-access-control-by-role).
* ``GET /rest/organizationalEntityFollowerStatistics?q=organizationalEntity&organizationalEntity=
  urn:li:organization:{id}&timeIntervals=(...)``: per time range ``followerGains.organicFollowerGain`` /
  ``paidFollowerGain``
  (learn.microsoft.com/linkedin/marketing/community-management/organizations/follower-statistics, "time-bound").
* ``GET /rest/organizationPageStatistics?q=organization&organization=...&timeIntervals=(...)``:
  ``totalPageStatistics.views.allPageViews.pageViews`` (.../organizations/page-statistics).
* ``GET /rest/organizationalEntityShareStatistics?q=organizationalEntity&organizationalEntity=...&timeIntervals=(...)``:
  ``totalShareStatistics`` with ``impressionCount``, ``uniqueImpressionsCount``, ``clickCount``, ``likeCount``,
  ``commentCount``, ``shareCount``, ``engagement`` (.../organizations/share-statistics).
* ``GET /rest/networkSizes/urn:li:organization:{id}?edgeType=COMPANY_FOLLOWED_BY_MEMBER``: ``{"firstDegreeSize": n}``,
  the follower level now (.../organizations/organization-lookup-api, "Retrieve Organization Follower Count"; the
  follower statistics no longer return totalFollowerCounts).
* ``GET /rest/posts?q=author&author=urn:li:organization:{id}&sortBy=CREATED&count=..&start=..``: the page's posts,
  newest first, ``id`` (urn:li:share:..), ``author``, ``createdAt``, ``publishedAt``, ``lastModifiedAt``,
  ``lifecycleState``, ``visibility``; ``count`` at most 100, ``paging.total``
  (learn.microsoft.com/linkedin/marketing/community-management/shares/posts-api, "Find Posts by Authors").
* ``organizationalEntityShareStatistics`` with ``shares=List(urn:li:share:..,...)`` and no timeIntervals: each post's
  lifetime ``totalShareStatistics``, the element naming its ``share`` (.../organizations/share-statistics,
  "Retrieve Statistics for Specific Shares").
* Time ranges in epoch milliseconds, DAY granularity: one element per UTC day ``[start, end)``, days with data only.
* Restatement: LinkedIn documents no restatement window, but a day's share and page statistics grow while its
  engagement arrives (tools reading this API refresh them hourly: support.iconosquare.com/
  linkedin-analytics-glossary-by-section); with ``World(restatement_days=...)`` the latest days answer
  ``World.restatement_factor`` of their final figures, nearer to them on each later read (the server counts its
  statistics reads), as the other servers do.
* Errors as LinkedIn sends them: ``{"status", "serviceErrorCode", "code", "message"}``
  (learn.microsoft.com/linkedin/shared/api-guide/concepts/error-handling):
  - 401 INVALID_ACCESS_TOKEN, serviceErrorCode 65600, "Invalid access token" (the body public issue threads quote);
  - 426 NONEXISTENT_VERSION, "Requested version YYYYMM01 is not active", for a version older than a year
    (learn.microsoft.com/linkedin/marketing/versioning; the body as github.com/PipedreamHQ/pipedream issue #18398
    and github.com/n8n-io/n8n issue #28660 quote it);
  - 403 ACCESS_DENIED, serviceErrorCode 100, "Not enough permissions to access: <resource>.GET.<version>" for an
    organization the member does not administer (linkedin-developers/linkedin-api-js-client issue #35);
  - 400 for a request without LinkedIn-Version, and 429 for the daily application / member throttles
    (learn.microsoft.com/linkedin/shared/api-guide/concepts/rate-limits), with Retry-After when a fault gives one:
    their codes (VERSION_MISSING, TOO_MANY_REQUESTS / 101) and messages are this sandbox's wording, no public copy
    of those bodies was found.

Not emulated: post content (text, media), ugcPosts, lifetime (facet) statistics, WEEK/MONTH granularity.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from linkedin_api.clients.restli.utils.decoder import decode

from sandbox.httpserver import Request, Response, SandboxServer, json_response
from sandbox.world import (
    _EPOCH,
    LINKEDIN_ORGANIZATION_IDS,
    LinkedInPost,
    World,
    linkedin_day,
    linkedin_follower_level,
    linkedin_posts,
)

ORG_URN = "urn:li:organization:"
FOLLOWED_BY = "COMPANY_FOLLOWED_BY_MEMBER"
DAY_MS = 86_400_000
MAX_POSTS_COUNT = 100  # the Posts API's largest page
VERSION_KEY = " version"  # the request's LinkedIn-Version among the decoded parameters (no query key has a space)


def error_body(status: int, code: str, message: str, service_code: int | None = None) -> dict[str, Any]:
    """LinkedIn's error body (error-handling guide): status, serviceErrorCode, code, message."""
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    return body


def version_active(version: str, today: date) -> bool:
    """Whether a LinkedIn-Version (YYYYMM) is served: LinkedIn sunsets a version about a year after its release, so
    one older than twelve months before ``today`` is refused (a later one is accepted: the sandbox's world may lag the
    clock the pinned version was chosen by)."""
    if len(version) not in (6, 9) or not version[:6].isdigit():
        return False
    year, month = int(version[:4]), int(version[4:6])
    return 1 <= month <= 12 and (year * 12 + month) > (today.year * 12 + today.month - 12)


def _ms_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


class LinkedInServer(SandboxServer):
    """The Community Management API over ``World``'s LinkedIn section, for one access token."""

    name = "linkedin"

    def __init__(self, world: World, *, token: str, organization_ids: tuple[str, ...] | None = None,
                 admin_of: tuple[str, ...] | None = None, page_size: int | None = None) -> None:
        super().__init__()
        if not token:
            raise ValueError("token must be non-empty")
        self.world, self.token, self.page_size = world, token, page_size
        self.organization_ids = organization_ids if organization_ids is not None else LINKEDIN_ORGANIZATION_IDS
        # the organizations the token's member administers (ADMINISTRATOR, APPROVED)
        self.admin_of = admin_of if admin_of is not None else self.organization_ids
        self._reads = 0  # time-bound statistics answered so far: the world's restatement version
        self._reads_lock = threading.Lock()

    @classmethod
    def for_sandbox(cls, world: World, environ: Mapping[str, str] | None = None) -> LinkedInServer:
        """The launcher's factory: a fresh random token per start."""
        return cls(world, token=secrets.token_urlsafe(24))

    def env(self) -> dict[str, str]:
        return {"MKPI_LINKEDIN_ENDPOINT": self.url, "MKPI_LINKEDIN_ACCESS_TOKEN": self.token,
                "MKPI_LINKEDIN_ORGANIZATION_IDS": ",".join(self.organization_ids)}

    # ---- errors as LinkedIn shapes them ----------------------------------------------------------------

    def error_response(self, status: int, message: str) -> Response:
        codes = {400: "BAD_REQUEST", 401: "INVALID_ACCESS_TOKEN", 403: "ACCESS_DENIED", 404: "NOT_FOUND",
                 429: "TOO_MANY_REQUESTS", 500: "INTERNAL_SERVER_ERROR", 503: "SERVICE_UNAVAILABLE"}
        return json_response(status, error_body(status, codes.get(status, "ERROR"), message))

    def rate_limit_response(self, retry_after: int | None) -> Response:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = error_body(429, "TOO_MANY_REQUESTS",
                          "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.", 101)
        return json_response(429, body, headers)

    def server_error_response(self, status: int) -> Response:
        return self.error_response(status, "Internal Server Error" if status == 500 else "Service Unavailable")

    # ---- routing ---------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        params = self._params(request)
        params[VERSION_KEY] = request.headers.get("linkedin-version", "")
        path = urllib.parse.unquote(request.path)
        if request.method != "GET" or not path.startswith("/rest/"):
            return self.error_response(404, f"No resource found for {request.method} {path}")
        resource = path.removeprefix("/rest/")
        if resource == "organizationAcls" and params.get("q") == "roleAssignee":
            return self._acls(params)
        if resource == "posts" and params.get("q") == "author":
            return self._posts(params)
        if resource.startswith("networkSizes/"):
            return self._network_size(resource.removeprefix("networkSizes/"), params)
        finders = {"organizationalEntityFollowerStatistics": ("organizationalEntity", self._follower_element),
                   "organizationPageStatistics": ("organization", self._page_element),
                   "organizationalEntityShareStatistics": ("organizationalEntity", self._share_element)}
        if resource == "organizationalEntityShareStatistics" and "shares" in params:
            return self._post_statistics(params)
        if resource in finders and params.get("q") == finders[resource][0]:
            return self._statistics(resource, params, *finders[resource])
        return self.error_response(404, f"No resource found for GET {path}")

    def _refusal(self, request: Request) -> Response | None:
        """Authentication, then the version header, as LinkedIn checks them."""
        auth = request.headers.get("authorization", "")
        if not auth:
            return json_response(401, error_body(401, "INVALID_ACCESS_TOKEN", "Empty oauth2_access_token", 401))
        if auth != f"Bearer {self.token}":
            return json_response(401, error_body(401, "INVALID_ACCESS_TOKEN", "Invalid access token", 65600))
        version = request.headers.get("linkedin-version")
        if not version:
            return json_response(400, error_body(400, "VERSION_MISSING", "A version must be present. Please specify "
                                                 "a version by adding the LinkedIn-Version header."))
        if not version_active(version, self.world.today):
            # LinkedIn names the version as YYYYMMDD (github.com/PipedreamHQ/pipedream issue #18398: "202409" sent,
            # "Requested version 20240901 is not active")
            return json_response(426, error_body(426, "NONEXISTENT_VERSION",
                                                 f"Requested version {version[:6]}01 is not active"))
        return None

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        """Query parameters Rest.li-decoded (the client's decoder, the inverse of its encoder)."""
        out: dict[str, Any] = {}
        for part in request.raw_query.split("&"):
            if part:
                key, _, value = part.partition("=")
                out[urllib.parse.unquote(key)] = decode(value)
        return out

    # ---- resources -------------------------------------------------------------------------------------

    def _acls(self, params: dict[str, Any]) -> Response:
        elements = [{"organization": f"{ORG_URN}{org}", "role": "ADMINISTRATOR", "state": "APPROVED",
                     "roleAssignee": "urn:li:person:sandboxAdmin"} for org in self.admin_of
                    if params.get("role", "ADMINISTRATOR") == "ADMINISTRATOR"]
        return json_response(200, {"elements": elements, "paging": {"start": 0, "count": 10, "links": [],
                                                                    "total": len(elements)}})

    def _organization(self, urn: Any, resource: str, params: dict[str, Any]) -> tuple[str | None, Response | None]:
        if not isinstance(urn, str) or not urn.startswith(ORG_URN):
            return None, self.error_response(400, f"Invalid organizational entity {urn!r}")
        org = urn.removeprefix(ORG_URN)
        if org not in self.admin_of or org not in self.organization_ids:
            # as LinkedIn words it (github.com/linkedin-developers/linkedin-api-js-client issue #35:
            # "Not enough permissions to access: userinfo.GET.NO_VERSION"): resource, method, version as YYYYMMDD
            message = f"Not enough permissions to access: {resource}.GET.{params[VERSION_KEY][:6]}01"
            return None, json_response(403, error_body(403, "ACCESS_DENIED", message, 100))
        return org, None

    def _network_size(self, key: str, params: dict[str, Any]) -> Response:
        if params.get("edgeType") != FOLLOWED_BY:
            return self.error_response(400, f"Invalid edgeType {params.get('edgeType')!r}")
        org, refused = self._organization(key, "networkSizes", params)
        if refused is not None or org is None:
            return refused or self.error_response(400, "bad key")
        return json_response(200, {"firstDegreeSize": linkedin_follower_level(self.world, org, self.world.today)})

    def _statistics(self, resource: str, params: dict[str, Any], entity_param: str, element: Any) -> Response:
        org, refused = self._organization(params.get(entity_param), resource, params)
        if refused is not None or org is None:
            return refused or self.error_response(400, "bad entity")
        intervals = params.get("timeIntervals")
        if not isinstance(intervals, dict) or intervals.get("timeGranularityType") != "DAY":
            return self.error_response(400, "timeIntervals with timeGranularityType DAY is required by this sandbox")
        time_range = intervals.get("timeRange") or {}
        try:
            start_ms, end_ms = int(time_range["start"]), int(time_range.get("end", _day_ms(self.world.today) + DAY_MS))
        except (KeyError, TypeError, ValueError):
            return self.error_response(400, "timeIntervals.timeRange.start must be epoch milliseconds")
        if end_ms <= start_ms:
            return self.error_response(400, "timeRange.end must be after timeRange.start")
        elements = []
        with self._reads_lock:
            version, self._reads = self._reads, self._reads + 1
        day = _ms_day(start_ms)
        while _day_ms(day) < end_ms and day <= self.world.today:  # each UTC day the range touches
            figures = linkedin_day(self.world, org, day)
            if figures is not None:
                elements.append(element(entity_param, org, day, self._restated(figures, day, version)))
            day += timedelta(days=1)
        return self._page(elements, params)

    def _restated(self, figures: Any, day: date, version: int) -> Any:
        """A day still restating shows a share of its final statistics (follower gains are final at once)."""
        factor = self.world.restatement_factor(day, version)
        if factor == 1.0:
            return figures
        counts = ("impressions", "unique_impressions", "clicks", "likes", "comments", "shares", "page_views")
        return dataclasses.replace(figures, **{k: int(getattr(figures, k) * factor) for k in counts})

    def _posts(self, params: dict[str, Any]) -> Response:
        org, refused = self._organization(params.get("author"), "posts", params)
        if refused is not None or org is None:
            return refused or self.error_response(400, "bad author")
        count = int(params.get("count", 10))
        if not 1 <= count <= MAX_POSTS_COUNT:
            return self.error_response(400, f"count must be between 1 and {MAX_POSTS_COUNT}")
        start = int(params.get("start", 0))
        newest_first: list[LinkedInPost] = []
        day = self.world.today
        while day >= _EPOCH and len(newest_first) < start + count + 1:
            newest_first += sorted(linkedin_posts(self.world, org, day), key=lambda p: -p.created_ms)
            day -= timedelta(days=1)
        total = len(newest_first) + sum(len(linkedin_posts(self.world, org, _EPOCH + timedelta(days=i)))
                                        for i in range((day - _EPOCH).days + 1))
        page = [{"id": p.urn, "author": f"{ORG_URN}{org}", "createdAt": p.created_ms, "publishedAt": p.created_ms,
                 "lastModifiedAt": p.created_ms, "lifecycleState": "PUBLISHED", "visibility": "PUBLIC"}
                for p in newest_first[start:start + count]]
        return json_response(200, {"elements": page, "paging": {"start": start, "count": count, "links": [],
                                                                 "total": total}})

    def _post_statistics(self, params: dict[str, Any]) -> Response:
        org, refused = self._organization(params.get("organizationalEntity"), "organizationalEntityShareStatistics",
                                          params)
        if refused is not None or org is None:
            return refused or self.error_response(400, "bad entity")
        urns = params.get("shares")
        if not isinstance(urns, list):
            return self.error_response(400, "shares must be a List(...) of share URNs")
        elements = []
        for urn in urns:
            post = self._post(org, str(urn))
            if post is not None:
                stats = {"impressionCount": post.impressions, "uniqueImpressionsCount": post.unique_impressions,
                         "clickCount": post.clicks, "likeCount": post.likes, "commentCount": post.comments,
                         "shareCount": post.shares}
                elements.append({"share": post.urn, "organizationalEntity": f"{ORG_URN}{org}",
                                 "totalShareStatistics": stats})
        return json_response(200, {"elements": elements, "paging": {"start": 0, "count": 10, "links": []}})

    def _post(self, org: str, urn: str) -> LinkedInPost | None:
        """The post a share URN names (its number encodes its day and rank: sandbox/world.py linkedin_posts)."""
        digits = urn.removeprefix("urn:li:share:")
        if not digits.isdigit() or len(digits) < 3:
            return None
        number = int(digits[:-2]) - 7_000_000_000
        day, rank = date.fromordinal(number // 10), number % 10
        posts = linkedin_posts(self.world, org, day) if day.year > 1 else []
        return next((p for p in posts if p.urn == urn and rank < len(posts)), None)

    def _page(self, elements: list[dict[str, Any]], params: dict[str, Any]) -> Response:
        if self.page_size is None:
            return json_response(200, {"elements": elements, "paging": {"start": 0, "count": 10, "links": []}})
        start = int(params.get("start", 0))
        count = min(int(params.get("count", self.page_size)), self.page_size)
        page = elements[start:start + count]
        return json_response(200, {"elements": page, "paging": {"start": start, "count": count, "links": [],
                                                                 "total": len(elements)}})

    @staticmethod
    def _range(day: date) -> dict[str, int]:
        return {"start": _day_ms(day), "end": _day_ms(day) + DAY_MS}

    def _follower_element(self, entity: str, org: str, day: date, f: Any) -> dict[str, Any]:
        return {"timeRange": self._range(day), entity: f"{ORG_URN}{org}",
                "followerGains": {"organicFollowerGain": f.organic_gain, "paidFollowerGain": f.paid_gain}}

    def _page_element(self, entity: str, org: str, day: date, f: Any) -> dict[str, Any]:
        views = {"allPageViews": {"pageViews": f.page_views}, "allDesktopPageViews": {"pageViews": 0},
                 "allMobilePageViews": {"pageViews": f.page_views}}
        return {"timeRange": self._range(day), entity: f"{ORG_URN}{org}",
                "totalPageStatistics": {"views": views, "clicks": {}}}

    def _share_element(self, entity: str, org: str, day: date, f: Any) -> dict[str, Any]:
        stats = {"impressionCount": f.impressions, "uniqueImpressionsCount": f.unique_impressions,
                 "clickCount": f.clicks, "likeCount": f.likes, "commentCount": f.comments, "shareCount": f.shares,
                 "engagement": f.engagement, "shareMentionsCount": 0, "commentMentionsCount": 0}
        return {"timeRange": self._range(day), entity: f"{ORG_URN}{org}", "totalShareStatistics": stats}
