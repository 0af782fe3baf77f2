"""Search Console API (``searchconsole`` v1, ``webmasters/v3`` paths) as ``google-api-python-client`` calls it.

Why emulate the wire: the connector must be tested with the real discovery-based client, so the
percent-encoded ``siteUrl`` path segment, the plain-dict responses, absent fields (no ``rows`` when empty, no
``position`` without impressions), paging by ``startRow`` and Google's error envelope are exactly what the
library hands back. The point of this server, though, is aggregation: Search Console gives different
totals for the same days depending on what you group by. Site (``byProperty``) totals, per-page rows (which
add up to MORE impressions, one per URL shown) and per-query rows (which add up to LESS, anonymised queries
are missing) all come from ``World.gsc_day``, so a test can prove the KPI layer reads the site totals.

Google's data limit is emulated for every site: at most 50,000 rows a day per search type per property, those with
the most clicks (``DAILY_ROW_CAP``). A big site for the benchmark of issue #21 (``BigSite``; ``big_site=`` or
``MKPI_SANDBOX_GSC_BIG_SITE=<query rows a day>[:<properties>]`` for ``python -m sandbox``) is served as URL-prefix
properties of 50,000 query rows a day each, computed with numpy and sorted once per read.

OAuth scopes, off by default (``token_scopes`` or ``MKPI_SANDBOX_TOKEN_SCOPES``, as for the GA4 server): a token
without webmasters or webmasters.readonly (the ``scopes`` of searchanalytics.query, sites.list and sites.get in
searchconsole.v1.json) gets Google's 403 "Request had insufficient authentication scopes." in the v3-style envelope
(``ga4_server.scope_refusal``). Its ErrorInfo ``metadata.method`` is modelled on other Google APIs' answers
("calendar.v3.CalendarList.List" in analogdotnow/Analog issue #296), not observed for Search Console.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sandbox.ga4_server import SCOPE_PREFIX, scope_refusal, token_scopes_from_env
from sandbox.httpserver import Request, Response, SandboxServer, json_response
from sandbox.world import GscDay, GscRow, World, _split, seeded_rng

PERMISSION_HELP = "https://support.google.com/webmasters/answer/2451999"
DIMENSIONS = ("date", "query", "page", "device", "country")
DEFAULT_ROW_LIMIT = 1000
MAX_ROW_LIMIT = 25_000
# Final data lags about three days: with dataState=final only days <= today - 3 have rows.
FINAL_LAG_DAYS = 3
QUOTA_WINDOW_SECONDS = 60.0
# "In addition to API usage quota, the Search Analytics method exposes a maximum of 50K rows of data per day per
# search type (web, image, and so on--sorted by clicks)" (developers.google.com/webmaster-tools/v1/how-tos/
# all-your-data, "Data limits"); "Performance report data is limited to 50K rows of data per day per type (web,
# news, image, and so on) per property" (support.google.com/webmasters/answer/12919192). So each day keeps its
# 50,000 finest rows with the most clicks, whatever the date range asked; bigger sites need more properties.
DAILY_ROW_CAP = 50_000
BIG_SITE_ENV = "MKPI_SANDBOX_GSC_BIG_SITE"
QPS_QUOTA_MESSAGE = "Search Analytics QPS quota exceeded"
# Search types other than web are a small slice of web traffic: (clicks factor, impressions factor, has
# position). Discover and Google News report no position at all, as in the real API.
_SEARCH_TYPES: dict[str, tuple[float, float, bool]] = {
    "web": (1.0, 1.0, True),
    "image": (0.04, 0.30, True),
    "video": (0.01, 0.03, True),
    "news": (0.015, 0.02, True),
    "discover": (0.08, 0.60, False),
    "googlenews": (0.01, 0.015, False),
}
# What Discover and Google News do not have ("queries and positions are not supported by the Google Discover
# report ... if an unsupported dimension is requested, the API will return an error message": Google Search Central
# blog, 2021-10-25, developers.google.com/search/blog/2021/10/search-analytics-discover-gnews). Google News has no
# queries or positions either: its report shows clicks, impressions and CTR by page, country and device
# (support.google.com/webmasters/answer/10083653). Discover also refuses the device dimension with "Requests for
# Discover cannot be grouped by device" (observed by singer-io/tap-google-search-console, streams/abstract.py and
# performance_reports.py, which also drop query for both types). Both reports are "aggregated by page"
# (answer/10083653), so byProperty is refused and auto resolves to byPage (singer-io sends auto for both types). The
# device wording is Google's; the query and byProperty wordings below are the sandbox's, modelled on it.
_UNSUPPORTED_DIMENSIONS: dict[str, tuple[str, ...]] = {"discover": ("query", "device"), "googlenews": ("query",)}
_REPORT_NAMES = {"discover": "Discover", "googlenews": "Google News"}
_PAGE_AGGREGATED_TYPES = frozenset({"discover", "googlenews"})
_KNOWN_FIELDS = frozenset({"startDate", "endDate", "dimensions", "type", "searchType", "aggregationType",
                           "rowLimit", "startRow", "dataState", "dimensionFilterGroups"})
# Reasons in the ``errors`` list of Google's v3-style envelope (see api-samples/gsc/error_*.json).
_ERROR_REASONS = {400: ("global", "badRequest"), 401: ("global", "required"), 403: ("global", "forbidden"),
                  404: ("global", "notFound"), 429: ("usageLimits", "rateLimitExceeded"),
                  500: ("global", "backendError"), 503: ("global", "backendError")}
_API_PREFIX = "/webmasters/v3/sites"
# The scopes searchanalytics.query, sites.list and sites.get accept ("scopes" in searchconsole.v1.json).
WEBMASTERS_SCOPES = (f"{SCOPE_PREFIX}webmasters", f"{SCOPE_PREFIX}webmasters.readonly")
_QUERY_PATH = re.compile(r"^/webmasters/v3/sites/([^/]+)/searchAnalytics/query/?$")
_SITE_PATH = re.compile(r"^/webmasters/v3/sites/([^/]+)/?$")


class GscApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Cell:
    """One day's finest-grain row for a request: its dimension values and additive metrics."""

    keys: dict[str, str]
    clicks: int
    impressions: int
    position: float


@dataclass(frozen=True)
class _Query:
    """A validated searchAnalytics.query body, normalised to lower-case enum values."""

    start: date
    end: date
    dimensions: list[str]
    search_type: str
    aggregation: str  # "byProperty" or "byPage" (auto resolved)
    row_limit: int
    start_row: int
    data_state: str  # "final" or "all"


def _norm(value: Any) -> str:
    """Enums arrive as "byProperty", "BY_PROPERTY" or "byproperty"; Google accepts all of them."""
    return str(value).replace("_", "").lower()


def _as_int(value: Any, name: str, default: int) -> int:
    """int32 fields; 0 means unset as in proto3, and numeric strings are accepted like Google does."""
    if value is None or value == "" or value == 0:
        return default
    if isinstance(value, bool):
        raise GscApiError(400, f"Invalid value for {name}: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise GscApiError(400, f"Invalid value for {name}: {value!r}") from None


def _parse_date(value: Any, name: str) -> date:
    if not value:
        raise GscApiError(400, f"Missing required field {name}.")
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise GscApiError(400, f"Invalid {name} {value!r}: expected YYYY-MM-DD.")


def row_json(keys: Sequence[str] | None, clicks: int, impressions: int, position: float | None) -> dict[str, Any]:
    """One response row: ``ctr`` and ``position`` are absent without impressions (and ``position`` without a
    value, as for Discover), which is what a connector's ``row["position"]`` must survive."""
    row: dict[str, Any] = {}
    if keys:
        row["keys"] = list(keys)
    row["clicks"] = clicks
    row["impressions"] = impressions
    if impressions > 0:
        row["ctr"] = clicks / impressions
        if position is not None:
            row["position"] = position
    return row


def _split_row(row: GscRow, parts: Sequence[GscRow], total: GscDay) -> list[tuple[str, int, int, float]]:
    """Share one row (a page, a query, a device) out over a breakdown in the day's proportions.

    An approximation: the world only knows breakdowns of the site totals, so a page's device split is the
    site's. Positions keep the breakdown's offset from the site position (ratio), clicks never exceed
    impressions.
    """
    clicks = _split(row.clicks, [p.clicks for p in parts])
    imps = _split(row.impressions, [p.impressions for p in parts])
    out = []
    for part, c, i in zip(parts, clicks, imps, strict=True):
        ratio = part.position / total.position if total.position else 1.0
        out.append((part.key, c, max(c, i), row.position * ratio))
    return out


_BIG_WORDS = ("fonte", "cocotte", "poêle", "linge", "nappe", "couteau", "avis", "prix", "pas cher", "24 cm",
              "induction", "bio", "lin", "coton", "promo", "livraison", "recette", "entretien", "acier", "cuivre")


@dataclass(frozen=True)
class BigSite:
    """A big site (issue #21 target 3): `queries_per_day` query rows a day, for the single-run backfill benchmark.

    Search Console exposes at most DAILY_ROW_CAP rows per day per search type per property, so a site with more
    query rows a day is read as several URL-prefix properties, one per section (`https://www.big.example/s00/`,
    ...): by default as many as make every row readable (1M rows a day: 20 properties of 50,000). Each property's
    day holds `per_property` queries ranked by clicks: rank r has floor(400 f / (r + 1) ** 0.75) clicks (the long
    tail has none: Search Console keeps impression-only rows), clicks + 1 + floor(60 f / (r + 1) ** 0.3)
    impressions and a position of 1 + (r * 7919 % 900) / 10, f a seeded factor of the day and property in
    0.8-1.2. The query text starts with the zero-padded rank, so rows of equal clicks sort by rank. Only `date`
    and `query` are served; the `date`-only totals add the property's queries and its anonymised ones (a
    quarter as many clicks and impressions again, at the same weighted position).
    """

    queries_per_day: int = 1_000_000
    properties: int = 0  # 0: as many properties as needed for every row to be readable
    domain: str = "www.big.example"

    def count(self) -> int:
        return self.properties or max(1, math.ceil(self.queries_per_day / DAILY_ROW_CAP))

    def sites(self) -> list[str]:
        return [f"https://{self.domain}/s{i:02d}/" for i in range(self.count())]

    def per_property(self) -> int:
        return math.ceil(self.queries_per_day / self.count())

    def factor(self, seed: int, site: str, day: date) -> float:
        return 0.8 + 0.4 * seeded_rng(seed, day, f"gsc-big:{site}").random()

    @staticmethod
    def query_text(rank: int) -> str:
        return f"q{rank:07d} {_BIG_WORDS[rank % 20]} {_BIG_WORDS[rank * 7 % 19]}"

    def day_arrays(self, seed: int, site: str, day: date, limit: int) -> tuple[Any, Any, Any]:
        """Clicks, impressions and position (numpy arrays) of the property's first `limit` ranks that day."""
        import numpy as np

        f = self.factor(seed, site, day)
        rank = np.arange(limit, dtype=np.float64) + 1.0
        clicks = np.floor(400.0 * f / rank ** 0.75).astype(np.int64)
        impressions = clicks + 1 + np.floor(60.0 * f / rank ** 0.3).astype(np.int64)
        position = 1.0 + ((np.arange(limit, dtype=np.int64) * 7919) % 900) / 10.0
        return clicks, impressions, position


def big_site_from_env(environ: dict[str, str] | None = None) -> BigSite | None:
    """MKPI_SANDBOX_GSC_BIG_SITE=<query rows a day>[:<properties>] makes `python -m sandbox` serve a big site."""
    text = (os.environ if environ is None else environ).get(BIG_SITE_ENV, "").strip()
    if not text:
        return None
    rows, _, properties = text.partition(":")
    try:
        return BigSite(int(rows.replace("_", "")), int(properties or 0))
    except ValueError:
        raise ValueError(f"{BIG_SITE_ENV} must be <query rows a day>[:<properties>], got {text!r}") from None


def _cap_day(cells: list[_Cell]) -> list[_Cell]:
    """A day's rows as the API exposes them: the DAILY_ROW_CAP with the most clicks (see DAILY_ROW_CAP)."""
    if len(cells) <= DAILY_ROW_CAP:
        return cells
    return sorted(cells, key=lambda c: -c.clicks)[:DAILY_ROW_CAP]


def _big_row_json(keys: Sequence[str], clicks: int, impressions: int, position: float | None) -> str:
    """`row_json`'s row as JSON text, for the big site's pages. Its keys (ISO dates, `BigSite.query_text`) never
    need escaping; impressions are never 0 there (rows without any are not served), so `ctr` is always present."""
    text = '{"keys": ["' + '", "'.join(keys) + f'"], "clicks": {clicks}, "impressions": {impressions}, ' \
        f'"ctr": {clicks / impressions!r}'
    return text + (f', "position": {position!r}}}' if position is not None else "}")


def _by_rank(table: tuple[Any, ...]) -> tuple[Any, ...]:
    """The big site's rows of several days summed per query (grouped by query alone)."""
    import numpy as np

    ranks, inverse = np.unique(table[4], return_inverse=True)
    sums = [np.bincount(inverse, weights=table[n]) for n in range(3)]
    return (sums[0].astype(np.int64), sums[1].astype(np.int64), sums[2], np.zeros(len(ranks), np.int64), ranks)


class GscServer(SandboxServer):
    """Search Console emulator; see the module docstring. Thread-safe: quota window and read counter locked.

    ``sites`` are listed as ``siteOwner``; a site also in ``forbidden_sites`` is listed as
    ``siteUnverifiedUser`` and, like any unlisted site, gets 403 on query. ``queries_per_minute`` enables the
    Search Analytics QPS quota (a sliding 60 s window over admitted queries).
    """

    name = "gsc"

    def __init__(
        self,
        world: World,
        *,
        sites: Sequence[str] | None = None,
        forbidden_sites: Iterable[str] = (),
        queries_per_minute: int | None = None,
        token_scopes: Iterable[str] | None = None,
        big_site: BigSite | None = None,
    ) -> None:
        super().__init__()
        if queries_per_minute is not None and queries_per_minute < 1:
            raise ValueError("queries_per_minute must be >= 1 (or None for no quota)")
        self.world = world
        # The big site (issue #21 target 3; MKPI_SANDBOX_GSC_BIG_SITE): its properties replace the world's sites.
        self.big_site = big_site if big_site is not None else big_site_from_env()
        self._big_cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        default_sites = self.big_site.sites() if self.big_site is not None else list(world.gsc_sites)
        self.sites: list[str] = list(sites) if sites is not None else default_sites
        self.forbidden_sites = frozenset(forbidden_sites)
        self.queries_per_minute = queries_per_minute
        # The scopes callers' tokens carry (None: not checked); see the module docstring.
        self.token_scopes = frozenset(token_scopes) if token_scopes is not None else token_scopes_from_env()
        self.clock = time.monotonic  # replaceable in tests that must not sleep through a minute
        self._state_lock = threading.Lock()
        self._reads = 0
        self._window: collections.deque[float] = collections.deque()

    def env(self) -> dict[str, str]:
        return {
            "MKPI_SEARCH_CONSOLE_ENDPOINT": self.url,
            "MKPI_SEARCH_CONSOLE_SITES": ",".join(self.sites),
        }

    @property
    def reads(self) -> int:
        """Successful searchAnalytics queries so far; the next one reads the world at this version."""
        with self._state_lock:
            return self._reads

    def error_response(self, status: int, message: str) -> Response:
        """The v3 envelope with an ``errors`` list, as in api-samples/gsc/error_400.json and error_429."""
        domain, reason = _ERROR_REASONS.get(status, ("global", "unknown"))
        status_name = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                       404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                       503: "UNAVAILABLE"}.get(status, "UNKNOWN")
        return json_response(status, {"error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": status_name,
        }})

    # ---- faults in Search Console's shape -------------------------------------------------------------

    def rate_limit_response(self, retry_after: int | None) -> Response:
        """The QPS quota 429 in the v3 envelope (api-samples/gsc/error_429_quota.json); Retry-After when given."""
        response = self.error_response(429, QPS_QUOTA_MESSAGE)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def server_error_response(self, status: int) -> Response:
        return self.error_response(status, "Backend Error")

    # ---- HTTP ----------------------------------------------------------------------------------------

    def _scope_refusal(self, request: Request) -> Response | None:
        """Google's 403 for a token without a webmasters scope, when ``token_scopes`` is set; else None."""
        if self.token_scopes is None or self.token_scopes & set(WEBMASTERS_SCOPES):
            return None
        if _QUERY_PATH.match(request.path):
            method = "webmasters.v3.Searchanalytics.Query"
        elif request.path.rstrip("/") == _API_PREFIX:
            method = "webmasters.v3.Sites.List"
        else:
            method = "webmasters.v3.Sites.Get"
        return scope_refusal(WEBMASTERS_SCOPES, "searchconsole.googleapis.com", method, v3_errors=True)

    def handle(self, request: Request) -> Response:
        refusal = self._scope_refusal(request)
        if refusal is not None:
            return refusal
        try:
            path = request.path
            if path.rstrip("/") == _API_PREFIX and request.method == "GET":
                return json_response(200, self.list_sites())
            match = _QUERY_PATH.match(path)
            if match is not None and request.method == "POST":
                site = urllib.parse.unquote(match.group(1))
                body = request.json if request.body else {}
                if not isinstance(body, dict):
                    raise GscApiError(400, "Invalid JSON payload received.")
                return Response(200, self.answer_body(site, body))
            match = _SITE_PATH.match(path)
            if match is not None and request.method == "GET":
                return json_response(200, self.get_site(urllib.parse.unquote(match.group(1))))
            return self.error_response(404, f"Method not found: {request.method} {path}")
        except GscApiError as err:
            return self.error_response(err.status, err.message)

    # ---- sites ---------------------------------------------------------------------------------------

    def _entry(self, site: str) -> dict[str, str]:
        level = "siteUnverifiedUser" if site in self.forbidden_sites else "siteOwner"
        return {"siteUrl": site, "permissionLevel": level}

    def list_sites(self) -> dict[str, Any]:
        return {"siteEntry": [self._entry(s) for s in self.sites]} if self.sites else {}

    def get_site(self, site: str) -> dict[str, str]:
        if site not in self.sites:
            raise GscApiError(403, self._permission_message(site))
        return self._entry(site)

    @staticmethod
    def _permission_message(site: str) -> str:
        return f"User does not have sufficient permission for site '{site}'. See also: {PERMISSION_HELP}."

    # ---- searchAnalytics.query -----------------------------------------------------------------------

    def answer_body(self, site: str, body: dict[str, Any]) -> bytes:
        """The searchAnalytics.query response's JSON body; a big site's rows are rendered straight to text (a
        page is 25,000 rows: no dict per row), the same JSON `query` gives."""
        rendered: list[str] = []
        answer = self._query(site, body, rendered)
        if not rendered:
            return json.dumps(answer, ensure_ascii=False).encode()
        rest = json.dumps(answer, ensure_ascii=False)
        return ('{"rows": [' + ", ".join(rendered) + "]" + (", " + rest[1:] if answer else "}")).encode()

    def query(self, site: str, body: dict[str, Any]) -> dict[str, Any]:
        """The searchAnalytics.query response as a JSON-ready dict; raises GscApiError for API errors."""
        return json.loads(self.answer_body(site, body)) if self.big_site is not None else self._query(site, body)

    def _query(self, site: str, body: dict[str, Any], rendered: list[str] | None = None) -> dict[str, Any]:
        """The response; a big site's rows go to `rendered` as JSON texts instead (when given)."""
        if site not in self.sites or site in self.forbidden_sites:
            raise GscApiError(403, self._permission_message(site))
        q = self._parse(body)
        self._admit()
        with self._state_lock:
            version = self._reads

        last_day = self.world.today - timedelta(days=FINAL_LAG_DAYS if q.data_state == "final" else 0)
        clicks_f, imps_f, has_position = _SEARCH_TYPES[q.search_type]
        groups: dict[tuple[str, ...], list[float]] = {}
        if self.big_site is not None:
            return self._big_answer(site, q, last_day, rendered)
        for offset in range((min(q.end, last_day) - q.start).days + 1):
            current = q.start + timedelta(days=offset)
            gsc = self.world.gsc_day(site, current, version)
            if gsc is None:
                continue
            for cell in _cap_day(self._day_cells(gsc, q)):
                clicks = round(cell.clicks * clicks_f)
                imps = max(clicks, round(cell.impressions * imps_f))
                if clicks == 0 and imps == 0:
                    continue  # Search Console has no rows for what nobody saw
                keys = {**cell.keys, "date": current.isoformat()}
                acc = groups.setdefault(tuple(keys[d] for d in q.dimensions), [0, 0, 0.0])
                acc[0] += clicks
                acc[1] += imps
                acc[2] += cell.position * imps

        ordered = sorted(groups.items(), key=lambda kv: (-kv[1][0], kv[0]))
        page = ordered[q.start_row: q.start_row + q.row_limit]
        response: dict[str, Any] = {}
        if page:
            response["rows"] = [
                row_json(key, int(c), int(i), (w / i if has_position and i else None)) for key, (c, i, w) in page
            ]
        return self._answered(response, q)

    def _answered(self, response: dict[str, Any], q: _Query) -> dict[str, Any]:
        """The answer's aggregation type and `metadata.firstIncompleteDate` (dataState all, grouped by date, a
        range reaching the days still collected); counts the read."""
        response["responseAggregationType"] = q.aggregation
        first_incomplete = self.world.today - timedelta(days=FINAL_LAG_DAYS - 1)
        if q.data_state == "all" and "date" in q.dimensions and q.start <= self.world.today \
                and q.end >= first_incomplete:
            response["metadata"] = {"firstIncompleteDate": max(q.start, first_incomplete).isoformat()}
        with self._state_lock:
            self._reads += 1
        return response

    # ---- the big site (issue #21 target 3) -----------------------------------------------------------------

    def _big_answer(self, site: str, q: _Query, last_day: date, rendered: list[str] | None = None) -> dict[str, Any]:
        """One page of the big site's rows, sorted by clicks (descending) then keys, as the generic path sorts;
        with `rendered`, the rows go there as JSON texts (`_big_row_json`) and the answer has none."""
        if not set(q.dimensions) <= {"date", "query"}:
            raise GscApiError(400, "The sandbox's big site serves the date and query dimensions only.")
        table = self._big_table(site, q, last_day)
        clicks, imps, weighted, days, ranks = (column[q.start_row: q.start_row + q.row_limit] for column in table)
        has_position = _SEARCH_TYPES[q.search_type][2]
        dates = [(q.start + timedelta(days=d)).isoformat() for d in range((q.end - q.start).days + 1)]
        rows = []
        for c, i, w, d, r in zip(clicks.tolist(), imps.tolist(), weighted.tolist(), days.tolist(), ranks.tolist(),
                                 strict=True):
            keys = {"date": dates[d], "query": BigSite.query_text(r) if r >= 0 else ""}
            position = w / i if has_position and i else None
            if rendered is not None:
                rendered.append(_big_row_json([keys[k] for k in q.dimensions], c, i, position))
            else:
                rows.append(row_json([keys[k] for k in q.dimensions], c, i, position))
        response: dict[str, Any] = {"rows": rows} if rows else {}
        return self._answered(response, q)

    def _big_table(self, site: str, q: _Query, last_day: date) -> tuple[Any, ...]:
        """Every row of the read (clicks, impressions, position x impressions, day offset, rank; rank -1 for a
        date-only total), sorted; cached per read so its pages slice one sort."""
        import numpy as np

        assert self.big_site is not None
        cache_key = (site, q.start, q.end, tuple(q.dimensions), q.search_type, q.data_state)
        with self._state_lock:
            hit = self._big_cache.get(cache_key)
        if hit is not None:
            return hit
        big, clicks_f, imps_f = self.big_site, *_SEARCH_TYPES[q.search_type][:2]
        limit = min(big.per_property(), DAILY_ROW_CAP)
        parts: list[tuple[Any, ...]] = []
        for offset in range(max(0, (min(q.end, last_day) - q.start).days + 1)):
            day = q.start + timedelta(days=offset)
            if not self.world.has_data(day):
                continue
            every = "query" not in q.dimensions  # date-only totals: every query, anonymised ones too
            c, i, pos = big.day_arrays(self.world.seed, site, day, big.per_property() if every else limit)
            c, i = np.round(c * clicks_f).astype(np.int64), np.round(i * imps_f).astype(np.int64)
            i = np.maximum(c, i)
            if every:
                c, i, pos = (np.array([x]) for x in (round(c.sum() * 1.25), round(i.sum() * 1.25),
                                                      float((pos * i).sum() / max(1, i.sum()))))
                ranks = np.array([-1])
            else:
                ranks = np.arange(len(c))
            seen = (c > 0) | (i > 0)
            parts.append((c[seen], i[seen], (pos * i)[seen], np.full(int(seen.sum()), offset), ranks[seen]))
        if not parts:
            table: tuple[Any, ...] = tuple(np.array([], dtype=t) for t in ("i8", "i8", "f8", "i8", "i8"))
        else:
            table = tuple(np.concatenate([p[n] for p in parts]) for n in range(5))
        if "query" in q.dimensions and "date" not in q.dimensions:
            table = _by_rank(table)
        key_order = {"date": table[3], "query": table[4]}
        order = np.lexsort(tuple(key_order[d] for d in reversed(q.dimensions)) + (-table[0],))
        # compact types: a 30-day read of a 50,000-row property is 1.5M rows, a few readers at once
        table = tuple(column[order].astype(dtype) for column, dtype in zip(table, ("i4", "i4", "f8", "i2", "i4"),
                                                                          strict=True))
        with self._state_lock:
            self._big_cache[cache_key] = table
            while len(self._big_cache) > 8:
                self._big_cache.pop(next(iter(self._big_cache)))
        return table

    def _day_cells(self, gsc: GscDay, q: _Query) -> list[_Cell]:
        """The finest rows one day contributes: site totals, pages or queries, then device and country.

        Device or country alone over the site totals are the world's exact breakdowns; anything crossed
        (page x device, device x country, ...) is shared out proportionally, see ``_split_row``.
        """
        want_device, want_country = "device" in q.dimensions, "country" in q.dimensions
        if "query" in q.dimensions:
            base = [(("query", r.key),) for r in gsc.queries]
            rows = list(gsc.queries)
        elif q.aggregation == "byPage":
            base = [(("page", r.key),) for r in gsc.pages]
            rows = list(gsc.pages)
        else:
            base, rows = [()], [GscRow("", gsc.clicks, gsc.impressions, gsc.position)]
        is_total = q.aggregation == "byProperty" and "query" not in q.dimensions

        cells: list[tuple[tuple[tuple[str, str], ...], GscRow]] = list(zip(base, rows, strict=True))
        if want_device:
            if is_total:
                cells = [((("device", d.key),), d) for d in gsc.devices]
            else:
                cells = [(keys + (("device", k),), GscRow(k, c, i, p))
                         for keys, row in cells for k, c, i, p in _split_row(row, gsc.devices, gsc)]
        if want_country:
            if is_total and not want_device:
                cells = [((("country", c.key),), c) for c in gsc.countries]
            else:
                cells = [(keys + (("country", k),), GscRow(k, c, i, p))
                         for keys, row in cells for k, c, i, p in _split_row(row, gsc.countries, gsc)]
        return [_Cell(dict(keys), row.clicks, row.impressions, row.position) for keys, row in cells]

    def _parse(self, body: dict[str, Any]) -> _Query:
        unknown = sorted(set(body) - _KNOWN_FIELDS)
        if unknown:
            raise GscApiError(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}": '
                                   "Cannot find field.")
        if body.get("dimensionFilterGroups"):
            raise GscApiError(400, "dimensionFilterGroups is not supported by the sandbox Search Console server.")
        start = _parse_date(body.get("startDate"), "startDate")
        end = _parse_date(body.get("endDate"), "endDate")
        if start > end:
            raise GscApiError(400, f"startDate {start} must be on or before endDate {end}.")

        raw_dims = body.get("dimensions") or []
        if not isinstance(raw_dims, list):
            raise GscApiError(400, "Invalid value for dimensions: expected a list.")
        dims: list[str] = []
        for raw in raw_dims:
            name = _norm(raw)
            if name in ("searchappearance", "hour"):
                raise GscApiError(400, f"Dimension {raw!r} is not supported by the sandbox Search Console server.")
            if name not in DIMENSIONS:
                raise GscApiError(400, f"Invalid value at 'dimensions' ({raw!r}): valid dimensions are "
                                       f"{', '.join(DIMENSIONS)}.")
            if name in dims:
                raise GscApiError(400, f"Dimension {raw!r} is requested more than once.")
            dims.append(name)

        types = {_norm(body[k]) for k in ("type", "searchType") if body.get(k)}
        if len(types) > 1:
            raise GscApiError(400, "type and searchType disagree; send only type.")
        search_type = types.pop() if types else "web"
        if search_type not in _SEARCH_TYPES:
            raise GscApiError(400, f"Invalid value for type: {body.get('type') or body.get('searchType')!r}.")

        aggregation = _norm(body.get("aggregationType") or "auto")
        if aggregation == "bynewsshowcasepanel":
            raise GscApiError(400, "aggregationType byNewsShowcasePanel is not supported by the sandbox.")
        if aggregation not in ("auto", "byproperty", "bypage"):
            raise GscApiError(400, f"Invalid value for aggregationType: {body.get('aggregationType')!r}.")
        if aggregation == "byproperty" and "page" in dims:
            raise GscApiError(400, "Cannot aggregate by property when grouping by page; use auto or byPage.")
        if "query" in dims and ("page" in dims or aggregation == "bypage"):
            raise GscApiError(400, "Grouping by query together with page (or byPage) is not supported by the "
                                   "sandbox Search Console server.")
        for dim in _UNSUPPORTED_DIMENSIONS.get(search_type, ()):
            if dim in dims:
                raise GscApiError(400, f"Requests for {_REPORT_NAMES[search_type]} cannot be grouped by {dim}")
        if search_type in _PAGE_AGGREGATED_TYPES:
            if aggregation == "byproperty":
                raise GscApiError(400, f"Requests for {_REPORT_NAMES[search_type]} cannot be aggregated by property; "
                                       "use auto or byPage")
            aggregation = "bypage"
        if aggregation == "auto":
            aggregation = "bypage" if "page" in dims else "byproperty"

        row_limit = _as_int(body.get("rowLimit"), "rowLimit", DEFAULT_ROW_LIMIT)
        if not 1 <= row_limit <= MAX_ROW_LIMIT:
            raise GscApiError(400, f"rowLimit must be between 1 and {MAX_ROW_LIMIT}; got {row_limit}.")
        start_row = _as_int(body.get("startRow"), "startRow", 0)
        if start_row < 0:
            raise GscApiError(400, f"startRow must be a non-negative number; got {start_row}.")

        data_state = _norm(body.get("dataState") or "final")
        if data_state == "datastateunspecified":
            data_state = "final"
        if data_state == "hourlyall":
            raise GscApiError(400, "dataState hourly_all is not supported by the sandbox Search Console server.")
        if data_state not in ("final", "all"):
            raise GscApiError(400, f"Invalid value for dataState: {body.get('dataState')!r}.")
        return _Query(start, end, dims, search_type, "byPage" if aggregation == "bypage" else "byProperty",
                      row_limit, start_row, data_state)

    def _admit(self) -> None:
        """Sliding-window QPS quota; a rejected query is not counted, and no Retry-After is sent (as Google)."""
        if self.queries_per_minute is None:
            return
        now = self.clock()
        with self._state_lock:
            while self._window and self._window[0] <= now - QUOTA_WINDOW_SECONDS:
                self._window.popleft()
            if len(self._window) >= self.queries_per_minute:
                raise GscApiError(429, QPS_QUOTA_MESSAGE)
            self._window.append(now)
