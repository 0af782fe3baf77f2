"""Search Console connector: `searchanalytics.query` through the official discovery client.

Business purpose: Search Console is the only source of what happens *before* the click on Google
(impressions, average position, CTR). Site-level SEO KPIs come from `byProperty` totals only: page
rows over-count impressions (several URLs on one result page) and query rows miss anonymised queries,
so page and query tables are kept for drill-down, never summed into KPIs (KPI_CATALOGUE rule 4).

How it reads (see shared/research/peers.md, GSC): one query per stream per site per window, `rowLimit`
25,000 with `startRow` paging until a short page (the request minimum, issue #9); positional `keys[]`
mapped by the requested dimension order; `position` absent when impressions are 0. The window is read
with `dataState=all` (fresh days included) in that one query, and each row is labelled from the
answer's `metadata.firstIncompleteDate`: days before it are `final`, the others `all` (still settling,
re-read by the next runs); a client-side queries-per-minute limit, and the 429 "Search Analytics QPS
quota exceeded" backed off and retried through the shared helper.

Discover and Google News are other reports than Search: no `position` at all (NULL in every row), no `query`
dimension (and Discover no `device`: Google answers 400), and aggregated by page only. So for those types a
stream whose dimensions the type lacks is skipped (`skipped_search_types` says which and why, for run metadata),
and `site_totals` asks `auto` (by page: Google has no byProperty total for them).
"""

import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.batches import Batch, Stream, Window
from connectors.errors import ConfigError, InvalidResponse
from connectors.google_auth import checked_endpoint, resolve_credentials
from connectors.http import (
    Fatal,
    MalformedResponse,
    RateLimiter,
    RequestStats,
    Retry,
    RetryPolicy,
    Verdict,
    answer_guard,
    call_with_retry,
    guarded_http,
    json_body,
    max_answer_bytes,
    parse_retry_after,
)
from connectors.parallel import AccountLog, fetch_accounts
from connectors.probe import Finding, api_error, first_line, google_account, probing, refused
from connectors.raw_tables import (
    GSC_COUNTRIES,
    GSC_DEVICES,
    GSC_PAGES,
    GSC_QUERIES,
    GSC_SITE_TOTALS,
    GSC_STREAMS,
)
from connectors.settings import SearchConsoleSettings, Settings
from connectors.source import stream_named
from connectors.validation import Contract

SOURCE = "search_console"
SCOPES = ("https://www.googleapis.com/auth/webmasters.readonly",)
QPS_QUOTA_MESSAGE = "Search Analytics QPS quota exceeded"
QPS_QUOTA_WAIT = 10.0  # the quota is per minute; wait a good part of it before asking again


@dataclass(frozen=True)
class GscReport:
    """One Search Analytics query: dimensions (API name -> column) and aggregation type."""

    name: str
    dimensions: tuple[tuple[str, str], ...]
    aggregation_type: str
    stream: Stream


SITE_TOTALS = GscReport("site_totals", (("date", "date"),), "byProperty", GSC_SITE_TOTALS)
PAGES = GscReport("pages", (("date", "date"), ("page", "page")), "byPage", GSC_PAGES)
QUERIES = GscReport("queries", (("date", "date"), ("query", "query")), "auto", GSC_QUERIES)
DEVICES = GscReport("devices", (("date", "date"), ("device", "device")), "auto", GSC_DEVICES)
COUNTRIES = GscReport("countries", (("date", "date"), ("country", "country")), "auto", GSC_COUNTRIES)
REPORTS: dict[str, GscReport] = {r.name: r for r in (SITE_TOTALS, PAGES, QUERIES, DEVICES, COUNTRIES)}
# The raw tables a Search Console load writes (declared in connectors/raw_tables.py; the source protocol).
STREAMS = GSC_STREAMS

# Search types that are not Search reports: no position, fewer dimensions, page aggregation only ("queries and
# positions are not supported by the Google Discover report ... if an unsupported dimension is requested, the API
# will return an error message": developers.google.com/search/blog/2021/10/search-analytics-discover-gnews; Google
# News: clicks, impressions and CTR by page, country and device, "all data is aggregated by page":
# support.google.com/webmasters/answer/10083653; Discover: "Requests for Discover cannot be grouped by device").
NO_POSITION_TYPES = frozenset({"discover", "googleNews"})
UNSUPPORTED_DIMENSIONS: dict[str, frozenset[str]] = {"discover": frozenset({"query", "device"}),
                                                     "googleNews": frozenset({"query"})}
PAGE_AGGREGATED_TYPES = frozenset({"discover", "googleNews"})


def skipped_search_types(report: GscReport, search_types: Sequence[str]) -> dict[str, str]:
    """The configured search types a report cannot be read for, each with the reason (for run metadata)."""
    skipped = {}
    for kind in search_types:
        missing = sorted(UNSUPPORTED_DIMENSIONS.get(kind, frozenset()) & {d for d, _ in report.dimensions})
        if missing:
            skipped[kind] = f"Search Console has no {', '.join(missing)} dimension for {kind}"
    return skipped


def aggregation_for(report: GscReport, search_type: str) -> str:
    """The report's aggregation type, except `auto` where Google has no byProperty figures (Discover, Google News:
    aggregated by page)."""
    if search_type in PAGE_AGGREGATED_TYPES and report.aggregation_type == "byProperty":
        return "auto"
    return report.aggregation_type


def first_incomplete_date(answer: dict[str, Any], site_url: str, endpoint: str) -> date | None:
    """`metadata.firstIncompleteDate` of a `dataState=all` answer grouped by date: the first day still being
    collected. Absent when every day of the range is complete."""
    contract = Contract(SOURCE, site_url, endpoint)
    metadata = answer.get("metadata")
    if metadata is None:
        return None
    contract.mapping(metadata, "metadata")
    value = metadata.get("firstIncompleteDate")
    return None if value is None else contract.day(value, "metadata.firstIncompleteDate")


def label_data_state(table: pa.Table, requested: str, first_incomplete: date | None) -> pa.Table:
    """The `data_state` of each row: with `dataState=final` every row is final; with `all`, the days from
    `first_incomplete` on are `all` (not final yet), the days before it `final`."""
    if requested == "final" or first_incomplete is None or table.num_rows == 0:
        states = pa.array(["final"] * table.num_rows, pa.string())
    else:
        fresh = pc.greater_equal(table["date"], pa.scalar(first_incomplete, pa.date32()))
        states = pc.if_else(fresh, "all", "final")
    return table.set_column(table.schema.get_field_index("data_state"), "data_state", states)


def rows_to_table(rows: list[dict[str, Any]], report: GscReport, site_url: str, search_type: str,
                  data_state: str, endpoint: str = "searchAnalytics.query",
                  seen: "ReadKeys | None" = None) -> pa.Table:
    """Positional `keys[]` follow the requested dimension order; `position` may be absent (0 impressions), and is
    NULL in every row of a search type that has none (Discover, Google News).

    Anything else off-contract raises InvalidResponse naming the field: a key more or less than the requested
    dimensions (a new column), a count that is not a whole non-negative number, NaN or Infinity, an impossible
    date, an over-long key, the same key twice in the read (`seen` is shared by the pages of one read, so a
    `startRow` the server ignores is refused instead of loaded twice). Other named fields in a row are ignored.

    A page of 25,000 rows of the usual shape is checked column by column (`_page_columns`); a page that is not
    is read row by row (`_checked_columns`), which names the first bad field. Both give the same columns."""
    contract = Contract(SOURCE, site_url, endpoint)
    contract.sequence(rows, "rows")
    columns = _page_columns(rows, report, search_type, contract)
    if columns is None:
        columns = _checked_columns(rows, report, search_type, contract)
    n = len(rows)
    constant = {"site_url": site_url, "search_type": search_type, "data_state": data_state}
    arrays = [columns[f.name] if f.name in columns else pa.array([constant[f.name]] * n, f.type)
              for f in report.stream.schema]
    table = pa.Table.from_arrays(arrays, schema=report.stream.schema)
    (seen if seen is not None else ReadKeys()).add(table, [c for _, c in report.dimensions], contract)
    return table


def _page_columns(rows: list[Any], report: GscReport, search_type: str, contract: Contract
                  ) -> dict[str, pa.Array] | None:
    """The page's dimension and metric columns, checked as whole columns, when every row has the usual shape
    (keys a list of the requested length, dates and texts strings, metrics JSON numbers); None otherwise, or when
    any check fails, so that `_checked_columns` names the first bad field exactly as it always did."""
    try:
        return _page_columns_or_raise(rows, report, search_type, contract)
    except (InvalidResponse, KeyError, TypeError, ValueError, AttributeError, OverflowError, pa.ArrowException):
        return None


def _page_columns_or_raise(rows: list[Any], report: GscReport, search_type: str, contract: Contract
                           ) -> dict[str, pa.Array] | None:
    width = len(report.dimensions)
    keys = [row["keys"] for row in rows]
    if any(type(k) is not list or len(k) != width for k in keys):
        return None
    columns: dict[str, pa.Array] = {}
    for index, (api_name, column) in enumerate(report.dimensions):
        values = [k[index] for k in keys]
        if api_name == "date":
            days = {value: contract.day(value, f"keys.{api_name}") for value in set(values)}
            columns[column] = pa.array([days[v] for v in values], pa.date32())
        else:
            if any(type(v) is not str for v in values):
                return None
            columns[column] = pa.array(values, pa.string())
            contract.column(columns[column], f"keys.{api_name}")
    shown = _numbers([row["impressions"] for row in rows], count=True)
    clicks, ctr = _numbers([row["clicks"] for row in rows], count=True), _numbers([row["ctr"] for row in rows])
    if search_type in NO_POSITION_TYPES:
        position: pa.Array | None = pa.nulls(len(rows), pa.float64())
    else:
        position = _numbers([row.get("position") for row in rows], optional=True)
        if position is not None and pc.any(pc.and_(pc.is_null(position), pc.not_equal(shown, 0))).as_py():
            return None  # a position may only be absent where nothing was shown
    if clicks is None or shown is None or ctr is None or position is None:
        return None
    columns.update(clicks=pc.cast(clicks, pa.int64()), impressions=pc.cast(shown, pa.int64()), ctr=ctr,
                   position=position)
    return columns


def _numbers(values: list[Any], *, count: bool = False, optional: bool = False) -> pa.Array | None:
    """JSON numbers as one float64 column, or None when one is not what `Contract.number` (`count`: `Contract.count`)
    accepts at once: a string, a bool, a missing value (unless `optional`), NaN, Infinity, a negative, a fraction."""
    allowed = {int, float, type(None)} if optional else {int, float}
    if not set(map(type, values)) <= allowed:
        return None
    array = pa.array(values, pa.float64())
    present = array.drop_null()
    if len(present) and not pc.all(pc.is_finite(present)).as_py():
        return None
    if len(present) and pc.any(pc.less(present, 0)).as_py():
        return None
    if count and len(present) and not pc.all(pc.equal(pc.floor(present), present)).as_py():
        return None
    return array


def _checked_columns(rows: Sequence[Any], report: GscReport, search_type: str, contract: Contract
                     ) -> dict[str, pa.Array]:
    """Row by row: the first field off-contract raises InvalidResponse naming it."""
    columns: dict[str, list[Any]] = {c: [] for _, c in report.dimensions}
    clicks: list[int | None] = []
    impressions: list[int | None] = []
    ctr: list[float | None] = []
    position: list[float | None] = []
    for number, row in enumerate(rows):
        contract.mapping(row, f"rows[{number}]")
        keys = contract.sequence(contract.required(row, "keys", f"rows[{number}].keys"), f"rows[{number}].keys")
        if len(keys) != len(report.dimensions):
            raise contract.fail(f"rows[{number}].keys", f"{len(keys)} keys for the {len(report.dimensions)} "
                                "requested dimensions" + (" (a new column)" if len(keys) > len(report.dimensions)
                                                          else ""), keys)
        for (api_name, column), value in zip(report.dimensions, keys, strict=True):
            if api_name == "date":
                columns[column].append(contract.day(value, f"keys.{api_name}"))
            else:
                columns[column].append(contract.text(value, f"keys.{api_name}", optional=False))
        clicks.append(contract.count(contract.required(row, "clicks"), "clicks"))
        shown = contract.count(contract.required(row, "impressions"), "impressions")
        impressions.append(shown)
        ctr.append(contract.number(contract.required(row, "ctr"), "ctr", non_negative=True))
        if search_type in NO_POSITION_TYPES:
            position.append(None)  # these reports have no position; a value would mean nothing
        else:
            position.append(contract.number(row.get("position"), "position", non_negative=True,
                                            optional=shown == 0))
    schema = report.stream.schema
    return {**{c: pa.array(v, schema.field(c).type) for c, v in columns.items()},
            "clicks": pa.array(clicks, pa.int64()), "impressions": pa.array(impressions, pa.int64()),
            "ctr": pa.array(ctr, pa.float64()), "position": pa.array(position, pa.float64())}


class ReadKeys:
    """The keys of one read (all its pages), to refuse a row seen twice: a `startRow` the server ignores, pages
    that overlap. Held as sorted 64-bit hashes (8 bytes a row, not a Python tuple per row: a big site's read is
    1.5M rows) plus the pages' own key columns, which settle a hash seen twice exactly (a collision is no
    duplicate)."""

    def __init__(self) -> None:
        self._hashes = np.empty(0, np.int64)
        self._pages: list[pa.Table] = []

    def add(self, table: pa.Table, columns: Sequence[str], contract: Contract) -> None:
        """Remember the page's keys; raise InvalidResponse (field `keys`) when one was already in the read."""
        keys = table.select(list(columns))
        hashes = _key_hashes(keys)
        ordered = np.sort(hashes)
        suspects = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
        if len(self._hashes):
            at = np.minimum(np.searchsorted(self._hashes, ordered), len(self._hashes) - 1)
            suspects |= set(ordered[self._hashes[at] == ordered].tolist())
        if suspects:
            self._settle(keys, hashes, suspects, contract)
        # two sorted runs: the stable sort (timsort) merges them in one pass
        self._hashes = np.sort(np.concatenate([self._hashes, ordered]), kind="stable")
        self._pages.append(keys)

    def _settle(self, keys: pa.Table, hashes: Any, suspects: set[int], contract: Contract) -> None:
        """Exact comparison of the keys whose hash was seen twice; a true duplicate raises."""
        wanted = np.array(sorted(suspects), np.int64)
        earlier: set[tuple[Any, ...]] = set()
        for page in self._pages:
            earlier.update(_key_tuples(page, np.isin(_key_hashes(page), wanted)))
        contract.unique(_key_tuples(keys, np.isin(hashes, wanted)), "keys", earlier)


def _key_hashes(keys: pa.Table) -> Any:
    """One 64-bit hash per row of the key columns (strings by Python's hash, dates by their day number)."""
    combined = np.zeros(keys.num_rows, np.int64)
    for column in keys.columns:
        if pa.types.is_string(column.type):
            part = np.fromiter(map(hash, column.to_pylist()), np.int64, count=len(column))
        else:
            part = pc.cast(column, pa.int32()).to_numpy().astype(np.int64)
        combined = combined * 1_000_003 ^ part
    return combined


def _key_tuples(keys: pa.Table, mask: Any) -> list[tuple[Any, ...]]:
    """The key tuples of the rows `mask` selects (as the row-by-row check names a duplicate)."""
    picked = keys.filter(pa.array(mask))
    return list(zip(*(picked.column(c).to_pylist() for c in picked.column_names), strict=True))


def build_service(settings: SearchConsoleSettings) -> Any:
    """The official discovery client (static discovery document, no network), over a guarded httplib2 transport
    (connectors/http.py `guarded_http`: a total deadline per request, the size limit, no redirect elsewhere)."""
    import google_auth_httplib2
    from googleapiclient.discovery import build

    credentials = resolve_credentials(settings.credentials_file, settings.endpoint, SCOPES, "Search Console",
                                      "MKPI_SEARCH_CONSOLE_ENDPOINT")
    transport = guarded_http(settings.timeout_seconds, max_answer_bytes(SOURCE))
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=transport)
    options = {}
    if settings.endpoint:
        options["api_endpoint"] = checked_endpoint(settings.endpoint, credentials, "MKPI_SEARCH_CONSOLE_ENDPOINT")
    return build("searchconsole", "v1", http=http, static_discovery=True, cache_discovery=False,
                 client_options=options or None)


def classify(exc: BaseException) -> Verdict:
    """429 and 5xx are transient, as are resets, timeouts and unreadable bodies; other statuses are not."""
    import httplib2
    from googleapiclient.errors import HttpError

    if isinstance(exc, HttpError):
        status = exc.status_code
        reason = exc._get_reason() if hasattr(exc, "_get_reason") else str(exc)
        if status == 429:
            wait = parse_retry_after(exc.resp.get("retry-after") if exc.resp is not None else None)
            if QPS_QUOTA_MESSAGE.lower() in str(reason).lower():
                wait = max(wait, QPS_QUOTA_WAIT)
            return Retry(f"429 {reason}", wait)
        if status >= 500 or status == 408:
            return Retry(f"{status} {reason}")
        return Fatal(f"{status} {reason}")
    if isinstance(exc, socket.timeout | TimeoutError | ConnectionError | OSError | httplib2.HttpLib2Error
                  | http.client.HTTPException):
        return Retry(type(exc).__name__)
    if isinstance(exc, MalformedResponse):
        return Retry(f"malformed response: {exc}")
    if isinstance(exc, json.JSONDecodeError | ValueError):
        return Retry(f"malformed response ({type(exc).__name__})")
    return Fatal(f"{type(exc).__name__}: {exc}")


@dataclass
class SearchConsoleConnector:
    """Reads Search Analytics streams for every configured site into typed batches."""

    settings: SearchConsoleSettings
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    _service: Any = field(default=None, repr=False)
    _limiter: RateLimiter | None = field(default=None, repr=False)
    _threads: threading.local = field(default_factory=threading.local, repr=False)

    def sites(self) -> list[str]:
        if not self.settings.sites:
            raise ConfigError("No Search Console site configured: set MKPI_SEARCH_CONSOLE_SITES (comma-separated, "
                              "e.g. sc-domain:example.com or https://www.example.com/) or search_console.sites")
        for site in self.settings.sites:
            if not (site.startswith("sc-domain:") or site.startswith("http://") or site.startswith("https://")):
                raise ConfigError(f"Search Console site {site!r} must look like sc-domain:example.com or "
                                  "https://www.example.com/ (the property as Search Console names it) in "
                                  "MKPI_SEARCH_CONSOLE_SITES", key="search_console.sites")
        return list(self.settings.sites)

    def service(self) -> Any:
        """This thread's discovery client: httplib2 (under googleapiclient) is not thread-safe, so each thread
        reading sites in parallel builds its own, from the static discovery document (no request). A service
        set on `_service` (tests) is used as is."""
        if self._service is not None:
            return self._service
        service = getattr(self._threads, "service", None)
        if service is None:
            service = self._threads.service = build_service(self.settings)
        return service

    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            self._limiter = RateLimiter(self.settings.queries_per_minute, 60.0)
        return self._limiter

    def check(self) -> list[str]:
        sites = self.sites()
        max_answer_bytes(SOURCE)
        self.service()
        return sites

    def probe(self) -> list[Finding]:
        """What `mkpi doctor` checks: sites.list once, each configured site in it with a real permission
        (`probe_sites`)."""
        return probe_sites(self)

    def query(self, site_url: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        """One searchanalytics.query, retried through the shared helper; each attempt within one answer guard
        (timeout_seconds in all, at most MKPI_SEARCH_CONSOLE_MAX_ANSWER_MB)."""
        request = self.service().searchanalytics().query(siteUrl=site_url, body=body)
        kwargs: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
        seconds, max_bytes = self.settings.timeout_seconds, max_answer_bytes(SOURCE)

        def once() -> Any:
            with answer_guard(SOURCE, seconds=seconds, max_bytes=max_bytes):
                result = request.execute(num_retries=0)
            # the client hands back a body it could not read as JSON (an HTML page, an empty body) as text
            return json_body(result) if isinstance(result, str | bytes) else result

        result = call_with_retry(once, classify=classify, source=SOURCE,
                                 account=site_url, what=what, policy=self.policy, stats=self.stats,
                                 limiter=self.limiter(), **kwargs)
        if not isinstance(result, dict):
            raise ValueError(f"unexpected answer type {type(result).__name__}")
        return result

    def answers(self, site_url: str, request: Callable[[int], tuple[dict[str, Any], str]],
                row_limit: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """The answers of one read, page after page (`startRow`), until a short page. After a full page the next
        one is asked at once, from a second thread with its own client, while the caller checks and converts this
        one: the API's time overlaps the parsing (a big site's read is 60 pages). The same requests as one after
        the other; a read that fails drops the page on its way."""
        start_row, pool, pending = 0, None, None
        body, what = request(start_row)
        answer = self.query(site_url, body, what)
        try:
            while True:
                rows = answer.get("rows") or []
                count = len(rows) if isinstance(rows, list) else 0
                if count >= row_limit:
                    pool = pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mkpi-{SOURCE}-page")
                    body, following = request(start_row + count)
                    pending = pool.submit(self.query, site_url, body, following)
                yield what, answer
                if pending is None:
                    return
                start_row += count
                answer, what, pending = pending.result(), following, None
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def fetch(self, report: GscReport | Stream | str, window: Window, sites: Sequence[str] | None = None,
              accounts: AccountLog | None = None, cursor: str | None = None) -> Iterator[Batch]:
        """Yield batches per page, per search type, per site: one read of the whole window each. The report is given
        as itself, its name or its raw table's Stream (the source protocol, connectors/source.py; `cursor` is unused:
        Search Console is read by date).

        Sites are read `parallel_accounts` at a time (the shared queries-per-minute limiter still bounds the
        rate), handed on in configured order; with `accounts`, a failing site is recorded there and skipped
        instead of raised (connectors/parallel.py)."""
        if isinstance(report, Stream):
            report = next(r for r in REPORTS.values() if r.stream.table == stream_named(STREAMS, report).table)
        elif isinstance(report, str):
            report = REPORTS[report]
        site_list = list(sites) if sites else self.sites()
        row_limit = self.settings.row_limit
        data_state = self.settings.reread_data_state
        self.limiter()  # one limiter for every thread, created before they start

        skipped = skipped_search_types(report, self.settings.search_types)

        def fetch_site(site_url: str) -> Iterator[Batch]:
            for search_type in self.settings.search_types:
                if search_type in skipped:
                    continue  # Google would refuse the dimensions; the asset's metadata says so
                scope = {"site_url": site_url, "search_type": search_type}
                seen = ReadKeys()
                first_incomplete: date | None = None

                def request(start_row: int, search_type: str = search_type) -> tuple[dict[str, Any], str]:
                    body = {
                        "startDate": window.start.isoformat(), "endDate": window.end.isoformat(),
                        "dimensions": [d for d, _ in report.dimensions], "type": search_type,
                        "aggregationType": aggregation_for(report, search_type), "rowLimit": row_limit,
                        "startRow": start_row, "dataState": data_state,
                    }
                    return body, f"searchAnalytics.query {report.name} {search_type} {window} startRow {start_row}"

                for what, answer in self.answers(site_url, request, row_limit):
                    rows = answer.get("rows") or []
                    table = rows_to_table(rows, report, site_url, search_type, data_state, what, seen)
                    # every page of one read carries the same metadata; keep the first seen if one lacks it
                    first_incomplete = first_incomplete_date(answer, site_url, what) or first_incomplete
                    # the whole window is the replacement scope, so the pages of a read delete it once
                    yield Batch(report.stream, label_data_state(table, data_state, first_incomplete), window, scope)

        yield from fetch_accounts(site_list, fetch_site, max_workers=self.settings.parallel_accounts, source=SOURCE,
                                  log=accounts)


def connect(settings: Settings) -> SearchConsoleConnector:
    """The Search Console connector of these settings (the source protocol, connectors/source.py)."""
    return SearchConsoleConnector(settings.search_console)


def probe_sites(connector: SearchConsoleConnector) -> list[Finding]:
    """Search Console: sites().list() once, then each configured property must be in it with a real permission."""
    from connectors.google_auth import insufficient_scopes, scope_advice

    connector = probing(connector)
    gsc = connector.settings
    try:
        sites = connector.check()
    except ConfigError as exc:
        return refused(exc)
    account = google_account(gsc.credentials_file, gsc.endpoint, SCOPES, "Search Console",
                             "MKPI_SEARCH_CONSOLE_ENDPOINT")
    try:
        listed = connector.service().sites().list().execute(num_retries=0)
    except Exception as exc:  # noqa: BLE001 - every failure becomes advice
        status, message = api_error(exc)
        if isinstance(getattr(exc, "reason", None), str) and exc.reason:  # googleapiclient's HttpError: Google's words
            message = first_line(exc.reason)
        accepted = insufficient_scopes(exc)
        if accepted is not None:
            fix = scope_advice("Search Console", SCOPES, accepted)
        elif status in (401, 403):
            fix = "the credentials were refused: point GOOGLE_APPLICATION_CREDENTIALS to a valid service-account key"
        else:
            fix = "check the network and MKPI_SEARCH_CONSOLE_ENDPOINT (unset for Google)"
        return [Finding(False, f"sites.list refused: {message}", fix)]
    entries = {e.get("siteUrl"): e.get("permissionLevel") for e in (listed or {}).get("siteEntry", [])}
    return [_site_finding(site, entries, account) for site in sites]


def _site_finding(site: str, entries: dict[Any, Any], account: str) -> Finding:
    """Whether one configured site is listed with a permission that reads data, and what to grant if not."""
    level = entries.get(site)
    if level in ("siteOwner", "siteFullUser", "siteRestrictedUser"):
        return Finding(True, f"{site}: listed, permission {level}")
    grant = (f"in Search Console > Settings > Users and permissions of {site}, add {account} as a user "
             "(Restricted is enough)")
    if level is None:
        visible = ", ".join(sorted(s for s in entries if s)) or "none"
        return Finding(False, f"{site}: not among the properties this account sees ({visible})",
                       f"{grant}, or fix the spelling in MKPI_SEARCH_CONSOLE_SITES (a domain "
                       "property is sc-domain:example.com, a URL property ends with /)")
    return Finding(False, f"{site}: listed with permission {level}, which cannot read data", grant)


def kpi_accounts(settings: Settings) -> tuple[str, ...]:
    """The configured sites, as KPI rows name them (the site URL as written)."""
    return tuple(settings.search_console.sites)
