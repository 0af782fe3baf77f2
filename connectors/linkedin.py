"""LinkedIn Pages: an organization's followers, impressions, engagement and page views per day, through LinkedIn's
Community Management API with the official client (`linkedin-api-client`, RestliClient).

Business purpose: the social KPIs of a company page (followers, growth, impressions, engagement, shares, clicks) in
`linkedin.account_daily` (the social raw-table contract, connectors/raw_tables.py), beside Facebook and Instagram.

What is read, per configured organization (MKPI_LINKEDIN_ORGANIZATION_IDS, digits) and window, one request each:
- `organizationalEntityShareStatistics` (q=organizationalEntity) with `timeIntervals` of DAY granularity:
  `totalShareStatistics` impressionCount -> impressions, uniqueImpressionsCount -> reach (that day's distinct
  members), shareCount -> shares, clickCount -> link_clicks (LinkedIn counts clicks on the content, the page name
  and logo: its only click figure), engagements = clickCount + likeCount + commentCount + shareCount (the numerator
  of LinkedIn's own `engagement` rate, learn.microsoft.com/linkedin/marketing/community-management/organizations/
  share-statistics);
- `organizationPageStatistics` (q=organization), DAY: `totalPageStatistics.views.allPageViews.pageViews` -> page_views;
- `organizationalEntityFollowerStatistics` (q=organizationalEntity), DAY: `followerGains.organicFollowerGain +
  paidFollowerGain` -> follower_gains. LinkedIn gives one NET figure per day (unfollows already subtracted; it can
  be negative): follower_losses is NULL, and follower_gains is the net growth (docs/platforms/linkedin.md);
- `networkSizes/urn:li:organization:{id}?edgeType=COMPANY_FOLLOWED_BY_MEMBER` -> `firstDegreeSize`, the follower
  level NOW (the follower statistics no longer return totals: .../organizations/follower-statistics). The level at
  the end of a past day is that level minus the net gains LinkedIn reports after that day, up to now (the follower
  statistics are read from the window's start to now for this); a day with a gap in the later days' statistics has
  followers NULL; days LinkedIn has not reported yet (its latency) count as no change (`_level_at`), up to the
  re-read window: a longer silence gives NULL.
- `posts` (q=author, sortBy=CREATED, newest first, 100 a page, read back to the window's start): posts_published =
  the posts created that UTC day (0 on a reported day without one); `linkedin.posts` one row per post created in the
  window with its lifetime statistics (`organizationalEntityShareStatistics` with `shares=List(...)`, 20 posts a
  request): impressions, reach (uniqueImpressionsCount), likes, comments, shares, link_clicks (clickCount); saved and
  replies NULL (LinkedIn has none), media_type NULL (post content is not read), permalink the post's feed URL.
account_period_reach gets an empty batch per organization (LinkedIn gives no reach over a week or 28 days for a page).

Day rule: LinkedIn's time ranges are epoch milliseconds starting at UTC midnight with DAY granularity: `date` is the
UTC day of `timeRange.start` (the docs' examples, e.g. start 1551398400000 = 2019-03-01T00:00Z). Re-read window: the
registry's (3 days). LinkedIn documents no restatement window for these statistics; a day's figures keep growing
while its engagement arrives (tools built on this API refresh them hourly, e.g. support.iconosquare.com/
linkedin-analytics-glossary-by-section), so the last three days are read again and a day older is final.

Wire rules: `LinkedIn-Version` is pinned in one place (LINKEDIN_VERSION); the token travels in the Authorization
header only (the client's `get_restli_request_headers`), never in a URL or a log; `MKPI_LINKEDIN_ENDPOINT` (the
sandbox) replaces the client's fixed https://api.linkedin.com origin through the session, the only seam the client
has. Retries, Retry-After on 429, answer bounds and redaction are connectors/http.py's; errors keep LinkedIn's own
`message`, `code` and `serviceErrorCode`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from connectors.batches import Batch, Stream, Window
from connectors.errors import ConfigError, SourceError
from connectors.http import (
    Fatal,
    HttpStatusError,
    RequestStats,
    Retry,
    RetryPolicy,
    Verdict,
    answer_guard,
    call_with_retry,
    classify_http,
    guard_session,
    is_loopback,
    json_body,
    max_answer_bytes,
    parse_retry_after,
    redact,
    remember_secrets,
    scrub_calls,
)
from connectors.parallel import AccountLog, fetch_accounts
from connectors.probe import PROBE_POLICY, Finding, first_line, probing, refused
from connectors.raw_tables import LINKEDIN_ACCOUNT_DAILY, LINKEDIN_PERIOD_REACH, LINKEDIN_POSTS, LINKEDIN_STREAMS
from connectors.settings import LinkedInSettings, Settings
from connectors.source import parsed_accounts, stream_named
from connectors.validation import Contract

SOURCE = "linkedin"
# The Marketing/Community Management API version every request names (LinkedIn-Version: YYYYMM). LinkedIn supports a
# version for about a year (learn.microsoft.com/linkedin/marketing/versioning): move it forward at least yearly.
LINKEDIN_VERSION = "202611"
LINKEDIN_ORIGIN = "https://api.linkedin.com"
ORG_URN = "urn:li:organization:"
FOLLOWED_BY = "COMPANY_FOLLOWED_BY_MEMBER"
ACCOUNT_DAILY = LINKEDIN_ACCOUNT_DAILY
PERIOD_REACH = LINKEDIN_PERIOD_REACH
POSTS = LINKEDIN_POSTS
POSTS_PAGE = 100  # the Posts API's largest count
STATISTICS_BATCH = 20  # posts per share-statistics request (a URL of 20 URNs stays short)
FEED_URL = "https://www.linkedin.com/feed/update/"
STREAMS = LINKEDIN_STREAMS
TOKEN_FIX = ("set MKPI_LINKEDIN_ACCESS_TOKEN to a fresh member token (60-day tokens: refresh it) of a page "
             "administrator, with r_organization_social, rw_organization_admin and r_organization_followers")


def organization_id(raw: str) -> str:
    """An organization id as LinkedIn spells it in urn:li:organization:{id}: digits (a URN is accepted)."""
    value = raw.strip().removeprefix(ORG_URN)
    if not value.isdigit():
        raise ConfigError(f"LinkedIn organization id {raw!r} is not a number: MKPI_LINKEDIN_ORGANIZATION_IDS takes the "
                          "digits of urn:li:organization:{id} (the page admin URL's number)",
                          key="MKPI_LINKEDIN_ORGANIZATION_IDS")
    return value


def _session_for(endpoint: str | None) -> Any:
    """A guarded requests session that sends the client's https://api.linkedin.com requests to `endpoint` instead
    (the sandbox), or unchanged; a 2xx body that is not JSON (an HTML page, an empty body) raises the project's
    MalformedResponse here, before the client's formatter turns it into an opaque error."""
    import requests

    class _EndpointSession(requests.Session):
        def send(self, request: Any, **kwargs: Any) -> Any:
            if endpoint and request.url.startswith(LINKEDIN_ORIGIN):
                request.url = endpoint.rstrip("/") + request.url[len(LINKEDIN_ORIGIN):]
            response = super().send(request, **kwargs)
            if 200 <= response.status_code < 300:
                json_body(response.content, response.status_code)
            return response

    return guard_session(_EndpointSession())


def classify(exc: BaseException) -> Verdict:
    """The shared HTTP verdicts, with LinkedIn's own words: 401/403/426 name what to fix; a body the client could not
    format (HTML, truncated JSON) is transient."""
    from linkedin_api.common.errors import ResponseFormattingError

    if isinstance(exc, ResponseFormattingError):
        return Retry(f"malformed response: {exc.__cause__ or exc}")
    if isinstance(exc, HttpStatusError) and exc.status in (401, 403, 426):
        return Fatal(str(exc))
    return classify_http(exc)


def explain(status: int, body: bytes) -> str:
    """LinkedIn's error body (status, serviceErrorCode, code, message) in one line."""
    try:
        answer = json.loads(body)
    except ValueError:
        return f"HTTP {status} (not a JSON answer)"
    if not isinstance(answer, dict):
        return f"HTTP {status}"
    parts = [str(answer[k]) for k in ("code", "serviceErrorCode") if answer.get(k) is not None]
    return f"{answer.get('message') or 'no message'} ({', '.join(parts) or status})"


class LinkedInConnector:
    """Reads the configured organizations' daily statistics; see the module docstring."""

    def __init__(self, settings: LinkedInSettings, *, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] | None = None, now: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.now = now or (lambda: datetime.now(UTC))
        self.stats = RequestStats()
        self._client: Any = None
        # (organization, window) -> its posts: account_daily's count and the posts table share one listing
        self._posts: dict[tuple[str, Window], list[dict[str, Any]]] = {}

    # ---- configuration ---------------------------------------------------------------------------------

    def token(self) -> str:
        token = self.settings.access_token
        if token is None or not token.reveal():
            raise ConfigError(f"No LinkedIn token: {TOKEN_FIX}", key="MKPI_LINKEDIN_ACCESS_TOKEN")
        return token.reveal()

    def check(self) -> list[str]:
        """Validate the configuration without a request; the organization ids."""
        if not self.settings.organization_ids:
            raise ConfigError("No LinkedIn organization: set MKPI_LINKEDIN_ORGANIZATION_IDS (comma-separated digits "
                              "of urn:li:organization:{id})", key="MKPI_LINKEDIN_ORGANIZATION_IDS")
        ids = [organization_id(i) for i in self.settings.organization_ids]
        endpoint = self.settings.endpoint
        if endpoint and urlsplit(endpoint).scheme != "https" and not is_loopback(urlsplit(endpoint).hostname):
            raise ConfigError(f"MKPI_LINKEDIN_ENDPOINT {endpoint!r} is not https: the token would travel unencrypted "
                              "(plain http only to a loopback address, the sandbox)", key="MKPI_LINKEDIN_ENDPOINT")
        self.token()
        max_answer_bytes(SOURCE)
        return ids

    def client(self) -> Any:
        if self._client is None:
            from linkedin_api.clients.restli.client import RestliClient

            remember_secrets(self.token())
            client = RestliClient()
            client.session = _session_for(self.settings.endpoint)
            self._client = client
        return self._client

    # ---- one request -----------------------------------------------------------------------------------

    def call(self, account: str, what: str, send: Callable[[Any, str], Any]) -> Any:
        """One Rest.li call through the one retry helper; a non-2xx answer raises with LinkedIn's message, the
        token starred out of everything that leaves."""
        token = self.token()
        limit = max_answer_bytes(SOURCE)

        def once() -> Any:
            with answer_guard(SOURCE, seconds=self.settings.timeout_seconds, max_bytes=limit):
                response = send(self.client(), token)
            raw = response.response
            if response.status_code >= 300:
                raise HttpStatusError(response.status_code, redact(explain(response.status_code, raw.content), [token]),
                                      parse_retry_after(raw.headers.get("Retry-After")))
            return response

        kwargs: dict[str, Any] = {"sleep": self.sleep} if self.sleep else {}
        return scrub_calls(lambda: call_with_retry(
            once, classify=classify, source=SOURCE, account=account, what=what, policy=self.policy,
            stats=self.stats, secrets=[token], **kwargs), [token])

    def statistics(self, org: str, resource: str, finder: str, start: datetime, end: datetime) -> list[dict]:
        """Every element of a time-bound statistics finder (DAY granularity) over [start, end), following
        `paging` (start, count, total) to the end."""
        intervals = {"timeRange": {"start": int(start.timestamp() * 1000), "end": int(end.timestamp() * 1000)},
                     "timeGranularityType": "DAY"}
        contract = Contract(SOURCE, org, resource)
        elements: list[dict] = []
        offset = 0
        while True:
            query: dict[str, Any] = {finder: f"{ORG_URN}{org}", "timeIntervals": intervals}
            if offset:
                query["start"] = offset
            answer = self.call(org, f"{resource} {start:%Y-%m-%d}..{end:%Y-%m-%d}", lambda c, t, q=query: c.finder(
                resource_path=f"/{resource}", finder_name=finder, query_params=q, access_token=t,
                version_string=LINKEDIN_VERSION))
            page = contract.sequence(answer.elements, "elements")
            elements.extend(contract.mapping(e, "elements[]") for e in page)
            total = answer.paging.total if answer.paging else None
            if not page or total is None or offset + len(page) >= int(total):
                return elements
            offset += len(page)

    def network_size(self, org: str) -> int:
        """The organization's follower count now (networkSizes, COMPANY_FOLLOWED_BY_MEMBER)."""
        answer = self.call(org, "networkSizes", lambda c, t: c.get(
            resource_path="/networkSizes/{id}", path_keys={"id": f"{ORG_URN}{org}"},
            query_params={"edgeType": FOLLOWED_BY}, access_token=t, version_string=LINKEDIN_VERSION))
        contract = Contract(SOURCE, org, "networkSizes")
        size = contract.count(contract.mapping(answer.entity, "entity").get("firstDegreeSize"), "firstDegreeSize")
        assert size is not None
        return size

    # ---- the source protocol ---------------------------------------------------------------------------

    def fetch(self, stream: Stream | str, window: Window, *, accounts: AccountLog | None = None,
              cursor: str | None = None) -> Iterator[Batch]:
        """The batches of one table over the window, one per organization (`cursor` unused: read by date)."""
        wanted = stream_named(STREAMS, stream)
        orgs = self.check()

        def fetch_org(org: str) -> list[Batch]:
            if wanted.table == PERIOD_REACH.table:
                return [Batch(PERIOD_REACH, PERIOD_REACH.schema.empty_table(), window, {"account_id": org})]
            if wanted.table == POSTS.table:
                return [Batch(POSTS, self.posts_table(org, window), window, {"account_id": org})]
            return [Batch(ACCOUNT_DAILY, self.account_daily(org, window), window, {"account_id": org})]

        yield from fetch_accounts(orgs, fetch_org, max_workers=self.settings.parallel_accounts, source=SOURCE,
                                  log=accounts)

    def account_daily(self, org: str, window: Window) -> pa.Table:
        """One row per UTC day of the window that LinkedIn reported, the contract's columns."""
        start = datetime.combine(window.start, datetime.min.time(), UTC)
        end = datetime.combine(window.end + timedelta(days=1), datetime.min.time(), UTC)
        now = self.now()
        shares = self._by_day(org, "organizationalEntityShareStatistics", "organizationalEntity", start, end)
        pages = self._by_day(org, "organizationPageStatistics", "organization", start, end)
        followers_to = max(end, now)
        gains = self._by_day(org, "organizationalEntityFollowerStatistics", "organizationalEntity", start, followers_to)
        level = self.network_size(org)
        contract = Contract(SOURCE, org, "statistics")
        net = {day: self._net_gain(contract, e) for day, e in gains.items()}
        published: dict[date, int] = {}
        for post in self.posts(org, window):
            published[post["created_date"]] = published.get(post["created_date"], 0) + 1
        rows = []
        for day in sorted(d for d in set(shares) | set(pages) | set(gains) if window.start <= d <= window.end):
            followers = self._level_at(day, level, net, now.date(), self.settings.reread_days)
            rows.append({"date": day, "account_id": org, "followers": followers,
                         "follower_gains": net.get(day), "follower_losses": None,
                         **self._share_row(contract, shares.get(day)), "posts_published": published.get(day, 0),
                         "page_views": self._page_views(contract, pages.get(day))})
        return pa.Table.from_pylist(rows, schema=ACCOUNT_DAILY.schema)

    def posts(self, org: str, window: Window) -> list[dict[str, Any]]:
        """The organization's posts created in the window (UTC days): the Posts API newest first, paged until a post
        older than the window (or the end); read once per connector, organization and window."""
        if (org, window) not in self._posts:
            self._posts[(org, window)] = self._read_posts(org, window)
        return self._posts[(org, window)]

    def _read_posts(self, org: str, window: Window) -> list[dict[str, Any]]:
        contract = Contract(SOURCE, org, "posts")
        start_ms = int(datetime.combine(window.start, datetime.min.time(), UTC).timestamp() * 1000)
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = 0
        while True:
            query = {"author": f"{ORG_URN}{org}", "sortBy": "CREATED", "count": POSTS_PAGE, "start": offset}
            answer = self.call(org, f"posts start={offset}", lambda c, t, q=query: c.finder(
                resource_path="/posts", finder_name="author", query_params=q, access_token=t,
                version_string=LINKEDIN_VERSION))
            page = contract.sequence(answer.elements, "elements")
            oldest = None
            for element in page:
                post = contract.mapping(element, "elements[]")
                urn = contract.text(post.get("id"), "id", optional=False)
                created = contract.count(post.get("createdAt"), "createdAt")
                assert urn is not None and created is not None
                contract.unique([urn], "id", seen)
                oldest = created if oldest is None else min(oldest, created)
                moment = datetime.fromtimestamp(created / 1000, UTC)
                if window.start <= moment.date() <= window.end:
                    found.append({"post_id": urn, "created_time": moment.replace(tzinfo=None),
                                  "created_date": moment.date()})
            total = answer.paging.total if answer.paging else None
            offset += len(page)
            if not page or (oldest is not None and oldest < start_ms) or (total is not None and offset >= total):
                return found

    def posts_table(self, org: str, window: Window) -> pa.Table:
        """`linkedin.posts`: the window's posts with their lifetime statistics as read now."""
        posts = self.posts(org, window)
        stats: dict[str, Mapping[str, Any]] = {}
        contract = Contract(SOURCE, org, "organizationalEntityShareStatistics")
        urns = [p["post_id"] for p in posts]
        for i in range(0, len(urns), STATISTICS_BATCH):
            chunk = urns[i:i + STATISTICS_BATCH]
            query = {"organizationalEntity": f"{ORG_URN}{org}", "shares": chunk}
            answer = self.call(org, f"post statistics ({len(chunk)} posts)", lambda c, t, q=query: c.finder(
                resource_path="/organizationalEntityShareStatistics", finder_name="organizationalEntity",
                query_params=q, access_token=t, version_string=LINKEDIN_VERSION))
            for element in contract.sequence(answer.elements, "elements"):
                element = contract.mapping(element, "elements[]")
                urn = contract.text(element.get("share"), "share", optional=False)
                stats[str(urn)] = contract.mapping(contract.required(element, "totalShareStatistics"),
                                                   "totalShareStatistics")
        rows = []
        for post in posts:
            totals = stats.get(post["post_id"], {})

            def count(key: str, totals: Mapping[str, Any] = totals) -> int | None:
                return contract.count(totals.get(key), f"totalShareStatistics.{key}", optional=True)

            rows.append({"account_id": org, **post, "media_type": None, "permalink": FEED_URL + post["post_id"],
                         "impressions": count("impressionCount"), "reach": count("uniqueImpressionsCount"),
                         "likes": count("likeCount"), "comments": count("commentCount"), "shares": count("shareCount"),
                         "saved": None, "replies": None, "link_clicks": count("clickCount")})
        return pa.Table.from_pylist(rows, schema=POSTS.schema)

    def _by_day(self, org: str, resource: str, finder: str, start: datetime, end: datetime) -> dict[date, dict]:
        """The finder's elements keyed by the UTC day of timeRange.start (a day twice is refused)."""
        contract = Contract(SOURCE, org, resource)
        out: dict[date, dict] = {}
        for element in self.statistics(org, resource, finder, start, end):
            time_range = contract.mapping(contract.required(element, "timeRange"), "timeRange")
            start_ms = contract.count(time_range.get("start"), "timeRange.start")
            assert start_ms is not None
            day = datetime.fromtimestamp(start_ms / 1000, UTC).date()
            contract.unique([day], "timeRange.start", set(out))
            out[day] = element
        return out

    @staticmethod
    def _net_gain(contract: Contract, element: Mapping[str, Any]) -> int:
        gains = contract.mapping(contract.required(element, "followerGains"), "followerGains")
        organic = contract.number(gains.get("organicFollowerGain"), "followerGains.organicFollowerGain")
        paid = contract.count(gains.get("paidFollowerGain"), "followerGains.paidFollowerGain", optional=True)
        if organic is None or not organic.is_integer():
            raise contract.fail("followerGains.organicFollowerGain", "not a whole number", organic)
        return int(organic) + (paid or 0)

    @staticmethod
    def _level_at(day: date, level_now: int, net: Mapping[date, int], today: date, reread_days: int) -> int | None:
        """Followers at the end of `day`: the level now minus the net gains LinkedIn reported for every later day.
        NULL when a later day is missing between reported ones (its gains unknown). The days after the last reported
        one (the latest day or two, not reported yet) count as no change: their follows are already in the level
        now, so every level read before they are reported is off by them; the re-read window reads them again. So
        only up to `reread_days` unreported days are allowed: a longer silence (no statistics for a week, or none
        at all) gives NULL, never today's level carried back as if it were that day's."""
        last = max(net, default=day)
        if (today - max(last, day)).days > reread_days:
            return None
        later, total = day + timedelta(days=1), 0
        while later <= last:
            if later not in net:
                return None
            total += net[later]
            later += timedelta(days=1)
        return level_now - total

    @staticmethod
    def _share_row(contract: Contract, element: Mapping[str, Any] | None) -> dict[str, int | None]:
        empty = {"impressions": None, "reach": None, "engagements": None, "shares": None, "link_clicks": None}
        if element is None:
            return empty
        stats = contract.mapping(contract.required(element, "totalShareStatistics"), "totalShareStatistics")

        def count(key: str, optional: bool = False) -> int | None:
            return contract.count(stats.get(key), f"totalShareStatistics.{key}", optional=optional)

        clicks, likes, comments, shares = count("clickCount"), count("likeCount"), count("commentCount"), \
            count("shareCount")
        assert clicks is not None and likes is not None and comments is not None and shares is not None
        return {"impressions": count("impressionCount"), "reach": count("uniqueImpressionsCount", True),
                "engagements": clicks + likes + comments + shares, "shares": shares, "link_clicks": clicks}

    @staticmethod
    def _page_views(contract: Contract, element: Mapping[str, Any] | None) -> int | None:
        if element is None:
            return None
        stats = contract.mapping(contract.required(element, "totalPageStatistics"), "totalPageStatistics")
        views = contract.mapping(stats.get("views") or {}, "totalPageStatistics.views")
        all_views = views.get("allPageViews")
        if all_views is None:
            return None
        return contract.count(contract.mapping(all_views, "allPageViews").get("pageViews"),
                              "totalPageStatistics.views.allPageViews.pageViews", optional=True)

    # ---- mkpi doctor -----------------------------------------------------------------------------------

    def probe(self) -> list[Finding]:
        """The token (organizationAcls: the member's administered pages), the pinned version (any answer but 426),
        then each organization: administered, and its follower count readable."""
        prober = probing(self, policy=PROBE_POLICY)
        try:
            orgs = prober.check()
        except ConfigError as exc:
            return refused(exc)
        try:
            answer = prober.call("token", "organizationAcls", lambda c, t: c.finder(
                resource_path="/organizationAcls", finder_name="roleAssignee",
                query_params={"role": "ADMINISTRATOR", "state": "APPROVED"}, access_token=t,
                version_string=LINKEDIN_VERSION))
        except SourceError as exc:
            return [self._refusal_finding(exc)]
        administered = {str(e.get("organization", "")).removeprefix(ORG_URN) for e in answer.elements or ()
                        if isinstance(e, dict)}
        findings = [Finding(True, f"token accepted, LinkedIn-Version {LINKEDIN_VERSION} active; the member "
                                  f"administers {len(administered)} page(s)")]
        return findings + [self._organization_finding(prober, org, administered) for org in orgs]

    @staticmethod
    def _refusal_finding(exc: SourceError) -> Finding:
        text = first_line(str(exc))
        if "HTTP 426" in text:
            return Finding(False, f"LinkedIn-Version {LINKEDIN_VERSION} refused: {text}",
                           "upgrade the pipeline: connectors/linkedin.py LINKEDIN_VERSION names a sunset version")
        if "HTTP 401" in text:
            return Finding(False, f"token refused: {text}", TOKEN_FIX)
        return Finding(False, f"LinkedIn did not answer: {text}", "check MKPI_LINKEDIN_ENDPOINT (unset for "
                                                                  "api.linkedin.com) and the network")

    @staticmethod
    def _organization_finding(prober: LinkedInConnector, org: str, administered: set[str]) -> Finding:
        if org not in administered:
            return Finding(False, f"organization {org}: the token's member is not an approved ADMINISTRATOR",
                           f"give the member the Super admin or Analyst role on page {org}, or fix "
                           "MKPI_LINKEDIN_ORGANIZATION_IDS")
        try:
            size = prober.network_size(org)
        except SourceError as exc:
            return Finding(False, f"organization {org}: {first_line(str(exc))}", TOKEN_FIX)
        return Finding(True, f"organization {org}: administered, {size:,} followers")


def connect(settings: Settings) -> LinkedInConnector:
    """The LinkedIn connector of these settings (the source protocol); nothing is sent."""
    return LinkedInConnector(settings.linkedin)


def kpi_accounts(settings: Settings) -> tuple[str, ...]:
    """The configured organization ids, as KPI rows name them (digits)."""
    return parsed_accounts(settings.linkedin.organization_ids, organization_id)

