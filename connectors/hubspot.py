"""HubSpot connector: CRM objects read incrementally past the search API's 10,000-result cap, deal
associations, marketing e-mail statistics and automated e-mails' daily activity, owners, deal pipelines,
the portal's details and NPS feedback submissions.

Business purpose: HubSpot is where leads become customers (lifecycle dates, won deals, churn) and
where e-mail campaigns are measured; crm_monthly and email_daily are built from these tables.

How it reads (see shared/research/peers.md, HubSpot):
- The official `hubspot-api-client`, private-app token in the Authorization header only. Page bodies are
  read raw (`_preload_content=False`) and turned into Arrow columns directly: the stock models parse every
  timestamp with dateutil, which is most of their time on 100-record pages.
- Property values are strings; they are cast by the portal's own definitions (`/crm/v3/properties`).
- First run: list everything (`after` paging, 100 per page), then an `archived=true` pass. Later runs:
  search by last-modified time, ascending, 200 per page. The search API refuses to page past 10,000
  results, so a window ends at the last timestamp reached and the next one starts there; an instant
  shared by more than 10,000 records is drained by `hs_object_id`. A seen-set at each boundary means no
  record is skipped or read twice.
- Rows are upserted by id, and the cursor is committed in the same transaction as the rows it covers.
- Paging cursors are opaque strings (never numbers), sent back as HubSpot gave them; HTTP 207 batch answers
  are data plus per-record errors, the errors other than "no association" named in `partial_errors`.
- E-mails are dated by `publishDate`, else `publishedAt`; automated e-mails (lifetime counters) also by day
  from the statistics histogram, whose day buckets are the portal's days.
- Limits: a client-side 100 requests / 10 s (configurable up to 250) and 5 searches / s, one window per
  portal in the process; 429 honours Retry-After, else exponential backoff, through the shared helper.
- `fetch_portal` reads the independent cursor chains (each object's list or search, owners, pipelines, e-mails) a
  few at once within those windows, handing on each table whole in a fixed order; deal associations go 1,000 deals
  per batch read, HubSpot's maximum. The Dagster step `hubspot_portal` loads what it hands on in one transaction.
- The statistics histogram answers every day of the span asked (or one result when nothing was sent in it): an
  answer lacking days is refused, naming them, never read as days without events.
"""

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from connectors.batches import Batch, Cursor, Stream, Window
from connectors.errors import ConfigError, SourceError
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
    guard_pool_manager,
    is_loopback,
    json_body,
    max_answer_bytes,
    parse_retry_after,
    read_body,
    redact,
    remember_secrets,
    scrub_calls,
    scrub_iter,
)
from connectors.parallel import AccountLog, fetch_accounts
from connectors.probe import PROBE_POLICY, Finding, api_error, first_line, probing, refused
from connectors.raw_tables import (
    HUBSPOT_ACCOUNT_DETAILS,
    HUBSPOT_ASSOCIATIONS,
    HUBSPOT_DEAL_STAGES,
    HUBSPOT_DEFAULT_TYPES,
    HUBSPOT_EMAIL_COUNTERS,
    HUBSPOT_EMAIL_EVENTS_DAILY,
    HUBSPOT_EMAIL_STATISTICS,
    HUBSPOT_EVENT_COUNTERS,
    HUBSPOT_OBJECT_PROPERTIES,
    HUBSPOT_OWNERS,
    HUBSPOT_STREAMS,
    hubspot_default_stream,
    hubspot_object_stream,
)
from connectors.settings import HubSpotSettings, Settings
from connectors.source import stream_named
from connectors.validation import Contract

log = logging.getLogger("mkpi.hubspot")

SOURCE = "hubspot"
DEFAULT_HOST = "https://api.hubapi.com"
SEARCH_CAP = 10_000
SEARCH_PAGE = 200
LIST_PAGE = 100
MAX_URL_BYTES = 3_000  # longer property lists go through batch read (POST body): HubSpot answers 414

# What the KPIs need per object type, and HubSpot's types for them (declared in connectors/raw_tables.py).
OBJECT_PROPERTIES = HUBSPOT_OBJECT_PROPERTIES
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate"}  # the others use hs_lastmodifieddate
DEFAULT_TYPES = HUBSPOT_DEFAULT_TYPES

# The raw tables (declared in connectors/raw_tables.py), under the names this module always gave them.
ASSOCIATIONS = HUBSPOT_ASSOCIATIONS
OWNERS = HUBSPOT_OWNERS
DEAL_STAGES = HUBSPOT_DEAL_STAGES
ACCOUNT_DETAILS = HUBSPOT_ACCOUNT_DETAILS
EMAIL_STATISTICS = HUBSPOT_EMAIL_STATISTICS
EMAIL_EVENTS_DAILY = HUBSPOT_EMAIL_EVENTS_DAILY
STREAMS = HUBSPOT_STREAMS
object_stream = hubspot_object_stream
default_stream = hubspot_default_stream
_COUNTERS = HUBSPOT_EMAIL_COUNTERS
_EVENT_COUNTERS = HUBSPOT_EVENT_COUNTERS

# E-mail types HubSpot sends continuously, one message per contact as they enrol or act, rather than once to a
# list: their statistics are lifetime counters (the `type` enum of PublicEmail in HubSpot's spec,
# HubSpot/HubSpot-public-api-spec-collection, PublicApiSpecs/Marketing/Marketing Emails/Rollouts/145892/v3/
# marketingEmails.json). BATCH_EMAIL, AB_EMAIL, LOCALTIME_EMAIL and the RSS/blog child sends go out once.
AUTOMATED_TYPES = frozenset({
    "AUTOMATED_EMAIL", "AUTOMATED_AB_EMAIL", "FOLLOWUP_EMAIL", "LEADFLOW_EMAIL", "OPTIN_EMAIL", "OPTIN_FOLLOWUP_EMAIL",
    "RESUBSCRIBE_EMAIL", "MANAGE_PREFERENCES_EMAIL", "FEEDBACK_CES_EMAIL", "FEEDBACK_CUSTOM_EMAIL",
    "FEEDBACK_CUSTOM_SURVEY_EMAIL", "FEEDBACK_NPS_EMAIL", "SINGLE_SEND_API", "MARKETING_SINGLE_SEND_API",
    "SMTP_TOKEN", "TICKET_EMAIL", "MEMBERSHIP_EMAIL_VERIFICATION_EMAIL", "MEMBERSHIP_FOLLOW_UP_EMAIL",
    "MEMBERSHIP_OTP_LOGIN_EMAIL", "MEMBERSHIP_PASSWORD_RESET_EMAIL", "MEMBERSHIP_PASSWORD_SAVED_EMAIL",
    "MEMBERSHIP_PASSWORDLESS_AUTH_EMAIL", "MEMBERSHIP_REGISTRATION_EMAIL", "MEMBERSHIP_REGISTRATION_FOLLOW_UP_EMAIL",
    "MEMBERSHIP_VERIFICATION_EMAIL",
})
# States of the same enum that mean "has been sent or is sending": such an e-mail must have a publish instant.
_PUBLISHED_STATES = frozenset({
    "PUBLISHED", "PUBLISHED_AB", "PUBLISHED_AB_VARIANT", "PUBLISHED_OR_SCHEDULED", "SCHEDULED_OR_PUBLISHED",
    "RSS_TO_EMAIL_PUBLISHED", "BLOG_EMAIL_PUBLISHED", "AUTOMATED", "AUTOMATED_AB", "AUTOMATED_AB_VARIANT",
    "AUTOMATED_SENDING", "AUTOMATED_FOR_FORM", "AUTOMATED_FOR_FORM_BUFFER", "AUTOMATED_FOR_FORM_LEGACY",
})
# Day buckets asked in one histogram request. The endpoint takes no paging parameter and its answer has no paging
# (CollectionResponseWithTotalEmailStatisticIntervalNoPaging in HubSpot's spec, HubSpot/HubSpot-public-api-spec-
# collection, PublicApiSpecs/Marketing/Marketing Emails/Rollouts/145892/v3/marketingEmails.json), and no span limit is
# documented: a year of day buckets (~1 KB each) per request, a whole first year in one request. HubSpot answers a
# bucket for every day of the span (`histogram_days_missing`), so a portal that cut a long span short would be refused
# with the missing days named (`_histogram_table`), never read as days without events.
HISTOGRAM_CHUNK_DAYS = 366
# Deals per v4 association batch read: HubSpot's documented maximum, 1,000 ids per request body since 10 February 2025
# (developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api); 100 per request sent ten
# times the requests for the same associations.
ASSOCIATION_BATCH = 1_000
# Cursor chains `fetch_portal` reads at once. HubSpot documents no limit on requests in flight for a private app, only
# the burst (100, 190 or 250 per 10 s) and daily allowances (developers.hubspot.com/docs/api/usage-details), which the
# portal-wide limiter holds across threads; a few chains keep the short lists off the longest one's path.
PORTAL_CHAINS = 4
_NO_ASSOCIATIONS = "crm.associations.NO_ASSOCIATIONS_FOUND"
# Tables read by another table's chain: a deal's associations are asked for the deals just read, an automated
# e-mail's days for the e-mails just listed.
CHAIN_OF = {HUBSPOT_ASSOCIATIONS.table: "hubspot.deals",
            HUBSPOT_EMAIL_EVENTS_DAILY.table: HUBSPOT_EMAIL_STATISTICS.table}


def portal_chains(tables: Collection[str]) -> set[str]:
    """The chains (named by their first table) `fetch_portal` reads to write `tables`; an unknown table is refused."""
    known = {stream.table for stream in HUBSPOT_STREAMS}
    unknown = sorted(set(tables) - known)
    if unknown:
        raise ValueError(f"not HubSpot tables: {', '.join(unknown)}")
    return {CHAIN_OF.get(table, table) for table in tables}


def chain_tables(chains: Collection[str]) -> set[str]:
    """Every table those chains write: each chain's own table and the tables read with it."""
    return set(chains) | {table for table, chain in CHAIN_OF.items() if chain in chains}


def _parse_instant(value: str) -> int | None:
    """HubSpot datetimes arrive as ISO strings or epoch milliseconds; return epoch ms."""
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def cast_column(values: list[str | None], dtype: pa.DataType) -> pa.Array:
    """Strings to the property's type, vectorised where Arrow can, value by value where it cannot."""
    strings = pa.array([v if v not in ("",) else None for v in values], pa.string())
    if pa.types.is_string(dtype):
        return strings
    if pa.types.is_floating(dtype):
        return pc.cast(strings, dtype)
    if pa.types.is_boolean(dtype):
        return pc.equal(pc.utf8_lower(strings), "true")
    if pa.types.is_timestamp(dtype):
        if strings.null_count == len(strings) or pc.all(pc.ends_with(strings, "Z")).as_py():
            # HubSpot's usual form (2025-10-20T18:23:12.338Z): Arrow parses the whole column at once, exactly
            # to the millisecond, several times faster than one datetime.fromisoformat per value
            try:
                return pc.cast(strings, dtype)
            except pa.ArrowInvalid:
                pass  # padded or unusual text: parsed value by value below
        return pa.array([_parse_instant(v) if v else None for v in strings.to_pylist()], pa.int64()).cast(dtype)
    if pa.types.is_date32(dtype):
        parsed: list[date | None] = []
        for v in strings.to_pylist():
            if not v:
                parsed.append(None)
            elif v.isdigit():  # a date property sent as midnight-UTC epoch ms
                parsed.append(datetime.fromtimestamp(int(v) / 1000, UTC).date())
            else:
                parsed.append(date.fromisoformat(v[:10]))
        return pa.array(parsed, pa.date32())
    return pc.cast(strings, dtype)


def checked_column(contract: Contract, values: list[Any], dtype: pa.DataType, field: str) -> pa.Array:
    """`cast_column` for an answer's values, refusing (InvalidResponse naming the field and the value) what is
    not a string of the property's type: an object or a number where HubSpot sends strings, "abc" for a number,
    an impossible date, NaN or Infinity, a string past the length bound."""
    for value in values:
        if value is not None and not isinstance(value, str):
            raise contract.fail(field, f"expected a string, got {type(value).__name__}", value)
        if pa.types.is_boolean(dtype) and value not in (None, "") and value.lower() not in ("true", "false"):
            raise contract.fail(field, "expected \"true\" or \"false\"", value)
    try:
        column = cast_column(values, dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError):
        for value in values:
            try:
                cast_column([value], dtype)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError):
                raise contract.fail(field, f"not a valid {dtype}", value) from None
        raise
    contract.column(column, field)
    return column


def records_to_table(records: Sequence[Mapping[str, Any]], stream: Stream, endpoint: str = "crm/v3/objects"
                     ) -> pa.Table:
    """One page of CRM records as the stream's typed table; properties the stream does not declare are
    ignored, a record without an id, an id twice in the page or a value not of its type are refused."""
    contract = Contract(SOURCE, "portal", endpoint)
    for record in records:
        contract.mapping(record, "results[]")
        record_id = contract.required(record, "id")
        if not isinstance(record_id, str | int) or isinstance(record_id, bool) or not str(record_id).isdigit():
            raise contract.fail("id", "not a numeric record id", record_id)
        contract.mapping(record.get("properties") or {}, "properties")
        if not isinstance(record.get("archived", False), bool):
            raise contract.fail("archived", "expected true or false", record.get("archived"))
    ids = pa.array([str(r["id"]) for r in records], pa.string())
    if len(ids) and pc.count_distinct(ids).as_py() != len(ids):
        contract.unique(ids.to_pylist(), "id")
    columns: dict[str, pa.Array] = {
        "id": ids,
        "archived": pa.array([bool(r.get("archived", False)) for r in records], pa.bool_()),
        "created_at": checked_column(contract, [r.get("createdAt") for r in records], pa.timestamp("ms", "UTC"),
                                     "createdAt"),
        "updated_at": checked_column(contract, [r.get("updatedAt") for r in records], pa.timestamp("ms", "UTC"),
                                     "updatedAt"),
    }
    for f in stream.schema:
        if f.name in columns:
            continue
        columns[f.name] = checked_column(contract, [(r.get("properties") or {}).get(f.name) for r in records],
                                         f.type, f"properties.{f.name}")
    return pa.table(columns, schema=stream.schema)


def _cursor(contract: Contract, value: Any, field: str, previous: str | None) -> str | None:
    """A paging cursor as HubSpot gives it: an opaque string (HubSpot's spec types every `after` as a string;
    its example is "NTI1Cg%3D%3D"), kept exactly as received; it must differ from the one just sent, or the same
    page would be read forever. A number is accepted as its decimal text (older answers)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise contract.fail(field, "not a paging cursor (expected a non-empty string)", value)
    cursor = str(value)
    contract.text(cursor, field, max_chars=4_096)
    contract.advances(previous, cursor, field)
    return cursor


def _checked_search_page(contract: Contract, body: Any, after: str, sort: str) -> dict[str, Any]:
    """A search page the paging logic can trust: results are records with numeric ids and a readable sort
    value, `total` is a count, and `paging.next.after` is a cursor other than the one sent."""
    contract.mapping(body, "body")
    sort_values: list[Any] = []
    for record in contract.sequence(body.get("results"), "results", optional=True):
        contract.mapping(record, "results[]")
        record_id = contract.required(record, "id")
        if not str(record_id).isdigit() or isinstance(record_id, bool):
            raise contract.fail("id", "not a numeric record id", record_id)
        sort_values.append(contract.mapping(record.get("properties") or {}, "properties").get(sort))
    if sort != "hs_object_id":  # the paging logic reads the sort instant of every record
        checked_column(contract, sort_values, pa.timestamp("ms", "UTC"), f"properties.{sort}")
    contract.count(body.get("total"), "total", optional=True)
    following = (contract.mapping(body.get("paging") or {}, "paging").get("next") or {}).get("after")
    _cursor(contract, following, "paging.next.after", after)
    return body


def _next_step(body: Mapping[str, Any], served_before: int) -> tuple[str | None, bool]:
    """After one search page: (the next cursor, False) to go on, (None, True) when results remain beyond the
    10,000 cap, (None, False) when the window is exhausted. The cap is judged on the results served so far in the
    window (the cursor is opaque, never a number to compute with), and on `total`: at the cap HubSpot may either
    omit the next cursor or give one that it then refuses."""
    served = served_before + len(body.get("results") or [])
    next_after = ((body.get("paging") or {}).get("next") or {}).get("after")
    if next_after is not None and served + SEARCH_PAGE <= SEARCH_CAP:
        return str(next_after), False
    if served < int(body.get("total") or 0) or next_after is not None:
        return None, True
    return None, False


def _scrubbed(method: Callable[..., Iterator[Batch]]) -> Callable[..., Iterator[Batch]]:
    """A `fetch_*` generator whose errors leave scrubbed of the token (message, attributes, __cause__/__context__):
    the places errors leave this connector for the assets, whatever raised them (a request, a parsed value)."""

    @functools.wraps(method)
    def wrapper(self: "HubSpotConnector", *args: Any, **kwargs: Any) -> Iterator[Batch]:
        token = self.settings.token.reveal() if self.settings.token is not None else ""
        yield from scrub_iter(method(self, *args, **kwargs), [token])

    return wrapper


_LIMITERS: dict[tuple[str, str, int, float], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def _portal_limiter(host: str, token: str, rate: int, per: float) -> RateLimiter:
    """One client-side window per portal (host and token) and process: HubSpot counts a private app's requests
    per 10 s whichever asset sends them, so assets run one after the other in a run share it (a fresh window
    per asset let two bursts of 100 meet HubSpot's limit within 10 s). The token is kept only as a digest."""
    key = (host, hashlib.sha256(token.encode()).hexdigest(), rate, per)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = RateLimiter(rate, per)
        return _LIMITERS[key]


@dataclass
class HubSpotConnector:
    """Reads CRM objects, owners, pipelines, e-mail statistics and NPS answers into typed batches."""

    settings: HubSpotSettings
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    _api: Any = field(default=None, repr=False)
    _subs: dict[str, Any] = field(default_factory=dict, repr=False)
    _limiter: RateLimiter | None = field(default=None, repr=False)
    _search_limiter: RateLimiter | None = field(default=None, repr=False)
    # Per-record errors HubSpot answered beside data (HTTP 207), for the run's metadata: "what: record: problem".
    partial_errors: list[str] = field(default_factory=list)
    _account: dict[str, str] | None = field(default=None, repr=False)
    # the client, its API objects and the portal's details are built once, whichever of `fetch_portal`'s threads
    # asks first
    _build_lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _account_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # ---- configuration ---------------------------------------------------------------------------------

    def _token(self) -> str:
        if self.settings.token is None or not self.settings.token.reveal():
            raise ConfigError("No HubSpot token: set MKPI_HUBSPOT_TOKEN to a private-app access token with the "
                              "crm.objects.*.read, crm.schemas.*.read and content scopes")
        return self.settings.token.reveal()

    def host(self) -> str:
        host = (self.settings.endpoint or DEFAULT_HOST).rstrip("/")
        if "://" not in host:
            host = "https://" + host
        from urllib.parse import urlparse

        parsed = urlparse(host)
        if parsed.scheme == "http" and not is_loopback(parsed.hostname):
            raise ConfigError(f"MKPI_HUBSPOT_ENDPOINT {parsed.scheme}://{parsed.hostname} is plain HTTP on a "
                              "non-loopback host: the token would travel unencrypted; use https://")
        return host

    def check(self) -> str:
        """Validate configuration without sending a request; return the portal host."""
        self._token()
        max_answer_bytes(SOURCE)
        return self.host()

    def fetch(self, stream: Stream | str, window: Window, *, accounts: AccountLog | None = None,
              cursor: str | None = None) -> Iterator[Batch]:
        """The source protocol's read (connectors/source.py) over the per-table methods. A CRM object table is read
        incrementally from `cursor` (None: in full; the last batch carries the new cursor) with `fetch_objects`;
        owners, deal stages, the portal's details and the e-mail statistics are read whole (the e-mails as if none was
        loaded yet: a step that knows the loaded ones calls `fetch_email_statistics(window, known_ids)` to re-read only
        the trailing window). The deal associations
        come with the deals they belong to, each e-mail's daily events with the e-mail statistics: asking for them
        alone names the table to fetch. `accounts` is unused: a token reaches one portal."""
        table = stream_named(STREAMS, stream).table
        object_type = table.split(".", 1)[1]
        if object_type in OBJECT_PROPERTIES:
            return self.fetch_objects(object_type, cursor, window)
        readers: dict[str, Callable[[Window], Iterator[Batch]]] = {
            OWNERS.table: self.fetch_owners, DEAL_STAGES.table: self.fetch_deal_stages,
            ACCOUNT_DETAILS.table: self.fetch_account_details, EMAIL_STATISTICS.table: self.fetch_email_statistics}
        if table in CHAIN_OF:
            raise ValueError(f"{table} is read with {CHAIN_OF[table]}: fetch that stream")
        return readers[table](window)

    @_scrubbed
    def fetch_portal(self, window: Window, cursors: Mapping[str, str | None] | None = None, *,
                     known_email_ids: set[str] | None = None, chains: int = PORTAL_CHAINS,
                     tables: Collection[str] | None = None) -> Iterator[Batch]:
        """Every HubSpot table of one refresh, its independent cursor chains read at once: each CRM object type from
        its cursor (`cursors[object_type]`, None or absent: in full; deals with their associations), the owners, the
        deal stages, the portal's details and the marketing e-mails (`known_email_ids` as in
        `fetch_email_statistics`). Each chain still sends one page after the other, and every request of every
        chain goes through the one portal-wide rate limiter, so HubSpot's limits hold however many run at once.
        `tables` (None: all) reads only the chains holding those tables (`portal_chains`): deal associations come
        with the deals, the e-mails' daily events with the e-mail statistics.

        What is handed on does not depend on timing: each table's batches whole and in the order its own method
        yields them, the tables in the order above (the longest chain, contacts, first), exactly the batches a loop
        over the per-table methods yields. A table is held until it is read whole, so a failure on any of its
        pages raises before any of its batches is handed on; the first failure in that order is raised. A consumer
        that stops early (a failed load) stops the other chains at their next page."""
        self.check()
        self.api()  # one client and one limiter, built before the threads share them
        wanted = dict(cursors or {})
        readers: dict[str, Callable[[], Iterator[Batch]]] = {
            f"hubspot.{object_type}": functools.partial(self.fetch_objects, object_type, wanted.get(object_type),
                                                        window)
            for object_type in OBJECT_PROPERTIES}
        readers[OWNERS.table] = functools.partial(self.fetch_owners, window)
        readers[DEAL_STAGES.table] = functools.partial(self.fetch_deal_stages, window)
        readers[ACCOUNT_DETAILS.table] = functools.partial(self.fetch_account_details, window)
        readers[EMAIL_STATISTICS.table] = functools.partial(self.fetch_email_statistics, window, known_email_ids)
        if tables is not None:
            wanted_chains = portal_chains(tables)
            readers = {table: reader for table, reader in readers.items() if table in wanted_chains}
        stopped = threading.Event()

        def read(table: str) -> Iterator[Batch]:
            for batch in readers[table]():
                if stopped.is_set():  # the consumer stopped (the load failed or was abandoned): no more requests
                    return
                yield batch

        try:
            yield from fetch_accounts(list(readers), read, max_workers=chains, source=SOURCE)
        finally:
            stopped.set()

    def probe(self) -> list[Finding]:
        """What `mkpi doctor` checks: GET /crm/v3/owners?limit=1 (`probe_portal`)."""
        return probe_portal(self)

    def api(self) -> Any:
        with self._build_lock:
            return self._built_api()

    def _built_api(self) -> Any:
        """The official client (one per connector) and the portal's shared limiters, built on first use."""
        if self._api is None:
            import urllib3
            from hubspot import HubSpot

            # retries belong to the shared helper: urllib3's own (which re-sends 429s) are switched off. Redirects are
            # followed within the portal's origin only: the guarded pools (`sub`) refuse any other before it connects
            # (urllib3 would otherwise re-send the request there, the body included).
            self._api = HubSpot(access_token=self._token(), host=self.host(),
                                retry=urllib3.util.Retry(total=None, connect=0, read=0, redirect=5, status=0, other=0))
            remember_secrets(self._token())  # starred out of every connector log record from now on
            self._limiter = _portal_limiter(self.host(), self._token(), self.settings.requests_per_10s, 10.0)
            self._search_limiter = _portal_limiter(self.host(), self._token(), self.settings.search_per_second, 1.0)
        return self._api

    # ---- one request, retried ----------------------------------------------------------------------------

    @staticmethod
    def classify(exc: BaseException) -> Verdict:
        import urllib3

        status = getattr(exc, "status", None)
        if status is not None and hasattr(exc, "body"):
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            parsed = parsed if isinstance(parsed, dict) else {}
            message = parsed.get("message", body[:200])
            headers = getattr(exc, "headers", None) or {}
            if status == 429:
                wait = parse_retry_after(headers.get("Retry-After"))
                policy = parsed.get("policyName")
                if policy == "DAILY":  # the portal's daily allowance: nothing to gain before midnight
                    return Retry(f"429 {message} (the portal's daily API limit is spent; it resets at midnight "
                                 "in the portal's time zone)", 86_400.0)
                if policy == "SECONDLY":  # the search limit, sent without Retry-After: its window is one second
                    wait = max(wait, 1.0)
                return Retry(f"429 {message}", wait)
            if status == 0 or status >= 500 or status == 408:
                return Retry(f"{status} {message}")
            hint = " (check MKPI_HUBSPOT_TOKEN and the private app's scopes)" if status in (401, 403) else ""
            return Fatal(f"{status} {message}{hint}")
        if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
            return Retry(type(exc).__name__)
        if isinstance(exc, MalformedResponse):
            return Retry(f"malformed response: {exc}")
        if isinstance(exc, ValueError):
            return Retry(f"malformed response ({type(exc).__name__})")
        return Fatal(f"{type(exc).__name__}: {exc}")

    def call(self, what: str, fn: Callable[[], Any], *, search: bool = False) -> Any:
        """Send one request through the shared retry helper; return the decoded JSON body."""
        self.api()

        seconds, max_bytes = self.settings.timeout_seconds, max_answer_bytes(SOURCE)

        def once() -> Any:
            if search and self._search_limiter is not None:
                self._search_limiter.acquire()
            # one answer guard: timeout_seconds in all, at most MKPI_HUBSPOT_MAX_ANSWER_MB (decompressed too), no
            # redirect elsewhere; inside the retry: a truncated body, an empty one or an HTML page is retried
            with answer_guard(SOURCE, seconds=seconds, max_bytes=max_bytes):
                response = fn()
                return json_body(read_body(response), response.status)

        kwargs: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
        secrets = [self._token()]
        # a 401 body that echoes the token rides along as the ApiException this error is raised from: scrubbed too
        return scrub_calls(lambda: call_with_retry(
            once, classify=self.classify, source=SOURCE, account="portal", what=what, policy=self.policy,
            stats=self.stats, limiter=self._limiter, secrets=secrets, **kwargs), secrets)

    def sub(self, path: str) -> Any:
        """A generated API object such as "crm.objects.search_api", built once: each attribute access on the
        client builds a new ApiClient with its own connection pool."""
        with self._build_lock:
            if path not in self._subs:
                target = self.api()
                for part in path.split("."):
                    target = getattr(target, part)
                guard_pool_manager(target.api_client.rest_client.pool_manager)  # each API object has its own pools
                self._subs[path] = target
            return self._subs[path]

    def _opts(self) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": self.settings.timeout_seconds}

    def _paged(self, what: str, fetch: Callable[..., Any], **params: Any) -> Iterator[dict[str, Any]]:
        """Every page body of a list endpoint, following `paging.next.after` to the last page.

        HubSpot hands the cursor out already percent-encoded ("NTI1Cg%3D%3D", with `link` "?after=NTI1Cg%3D%3D"
        in its spec's NextPage example) and the client percent-encodes every query value, so the cursor is decoded
        once before it is passed on: the URL then carries it exactly as HubSpot's `link` does, never encoded
        twice. A plain cursor ("300") is unchanged by that."""
        after: str | None = None
        while True:
            kwargs = {"limit": LIST_PAGE, **params, **self._opts()}
            if after:
                kwargs["after"] = unquote(after)
            body = self.call(f"{what} after={after}", lambda kwargs=kwargs: fetch(**kwargs))
            contract = Contract(SOURCE, "portal", f"{what} after={after}")
            contract.mapping(body, "body")
            contract.sequence(body.get("results"), "results", optional=True)
            yield body
            following = (contract.mapping(body.get("paging") or {}, "paging").get("next") or {}).get("after")
            after = _cursor(contract, following, "paging.next.after", after)
            if not after:
                return

    # ---- metadata ---------------------------------------------------------------------------------------

    def property_definitions(self, object_type: str) -> dict[str, dict[str, Any]]:
        body = self.call(f"GET /crm/v3/properties/{object_type}",
                         lambda: self.sub("crm.properties.core_api").get_all(object_type, **self._opts()))
        return {p["name"]: p for p in body.get("results", [])}

    def properties_for(self, object_type: str) -> list[str]:
        wanted = list(OBJECT_PROPERTIES[object_type])
        if object_type == "contacts" and self.settings.churn_date_property not in wanted:
            wanted.append(self.settings.churn_date_property)
        for extra in self.settings.extra_properties.get(object_type, ()):
            if extra not in wanted:
                wanted.append(extra)
        return wanted

    def stream_for(self, object_type: str) -> Stream:
        return object_stream(object_type, self.properties_for(object_type), self.property_definitions(object_type))

    # ---- full load: list ---------------------------------------------------------------------------------

    def list_all(self, object_type: str, properties: Sequence[str], archived: bool) -> Iterator[list[dict[str, Any]]]:
        """Every record (or every archived one), 100 per page, `after` paging to the end. Long property
        lists are fetched by batch read (POST body) instead of the URL."""
        basic = self.sub("crm.objects.basic_api")
        in_url = len("&properties=".join(properties)) < MAX_URL_BYTES
        params: dict[str, Any] = {"archived": archived}
        if in_url:
            params["properties"] = list(properties)
        for body in self._paged(f"GET /crm/v3/objects/{object_type} archived={archived}",
                                lambda **kw: basic.get_page(object_type, **kw), **params):
            records = body.get("results", [])
            if records and not in_url:
                records = self.batch_read(object_type, [r["id"] for r in records], properties, archived)
            if records:
                yield records

    def batch_read(self, object_type: str, ids: Sequence[str], properties: Sequence[str], archived: bool = False
                   ) -> list[dict[str, Any]]:
        batch = self.sub("crm.objects.batch_api")
        # propertiesWithHistory is required by HubSpot's spec (BatchReadInputSimplePublicObjectId, PublicApiSpecs/CRM/
        # Objects/Rollouts/424/v3/objects.json); empty: no history is read
        request = {"properties": list(properties), "propertiesWithHistory": [], "inputs": [{"id": i} for i in ids]}
        body = self.call(f"POST /crm/v3/objects/{object_type}/batch/read",
                         lambda: batch.read(object_type, request, archived=archived, **self._opts()))
        return list(body.get("results", []))

    # ---- incremental: search past the cap ----------------------------------------------------------------

    def _search(self, object_type: str, filters: list[dict[str, Any]], sort: str, properties: Sequence[str],
                after: str) -> dict[str, Any]:
        """One search page. `after` goes into the JSON body exactly as HubSpot gave it ("0" for the first page)."""
        request = {"filterGroups": [{"filters": filters}], "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                   "properties": list(properties), "limit": SEARCH_PAGE, "after": after}
        search = self.sub("crm.objects.search_api")
        what = f"POST /crm/v3/objects/{object_type}/search after={after}"
        body = self.call(what, lambda: search.do_search(object_type, request, **self._opts()), search=True)
        return _checked_search_page(Contract(SOURCE, "portal", what), body, after, sort)

    def _search_window(self, object_type: str, filters: list[dict[str, Any]], sort: str, properties: Sequence[str],
                       outcome: dict[str, bool]) -> Iterator[dict[str, Any]]:
        """Every page of one search window, following its cursors; then `outcome["capped"]` says whether results
        remain past the 10,000 cap (the caller starts a new window)."""
        after, served = "0", 0
        while True:
            body = self._search(object_type, filters, sort, properties, after)
            yield body
            following, outcome["capped"] = _next_step(body, served)
            served += len(body.get("results") or [])
            if following is None:
                return
            after = following

    def search_modified(self, object_type: str, since_ms: int, until_ms: int, properties: Sequence[str]
                        ) -> Iterator[list[dict[str, Any]]]:
        """Every record with since_ms <= last-modified <= until_ms, exactly once, past the 10,000 cap."""
        prop = MODIFIED_PROPERTY.get(object_type, "hs_lastmodifieddate")
        props = list(dict.fromkeys([*properties, prop]))
        lower = since_ms
        seen_at_lower: set[str] = set()
        while True:
            last_ts: int | None = None
            ids_at_last: set[str] = set()
            outcome = {"capped": False}
            filters = [{"propertyName": prop, "operator": "GTE", "value": str(lower)},
                       {"propertyName": prop, "operator": "LTE", "value": str(until_ms)}]
            for body in self._search_window(object_type, filters, prop, props, outcome):
                page = []
                for record in body.get("results", []):
                    ts = _parse_instant(str((record.get("properties") or {}).get(prop) or "")) or 0
                    if ts == last_ts:
                        ids_at_last.add(record["id"])
                    else:
                        last_ts, ids_at_last = ts, {record["id"]}
                    if ts == lower and record["id"] in seen_at_lower:
                        continue
                    page.append(record)
                if page:
                    yield page
            if not outcome["capped"] or last_ts is None:
                return
            if last_ts == lower:
                # 10,000 results share one instant: drain it by id, then go on strictly after it
                yield from self._drain_instant(object_type, prop, lower, props, seen_at_lower | ids_at_last)
                lower, seen_at_lower = lower + 1, set()
            else:
                # the next window starts at the last instant reached; what was read of it is not re-emitted
                lower, seen_at_lower = last_ts, ids_at_last

    def _drain_instant(self, object_type: str, prop: str, instant: int, properties: Sequence[str],
                       seen: set[str]) -> Iterator[list[dict[str, Any]]]:
        """All records modified at exactly `instant`, by ascending hs_object_id, skipping `seen`."""
        floor_id = 0  # fixed for one window; moved to the highest id read when the cap restarts it
        highest = 0
        while True:
            outcome = {"capped": False}
            filters = [{"propertyName": prop, "operator": "EQ", "value": str(instant)},
                       {"propertyName": "hs_object_id", "operator": "GT", "value": str(floor_id)}]
            for body in self._search_window(object_type, filters, "hs_object_id", properties, outcome):
                results = body.get("results", [])
                if results:
                    highest = max(highest, max(int(r["id"]) for r in results))
                page = [r for r in results if r["id"] not in seen]
                if page:
                    yield page
            if not outcome["capped"]:
                return
            floor_id = highest

    # ---- streams -------------------------------------------------------------------------------------------

    @_scrubbed
    def fetch_objects(self, object_type: str, cursor: str | None, window: Window) -> Iterator[Batch]:
        """Full load when there is no cursor, else an incremental search; archived records every time.
        The last batch carries the new cursor (the run's start time), committed with the rows."""
        stream = self.stream_for(object_type)
        properties = [f.name for f in stream.schema if f.name not in ("id", "archived", "created_at", "updated_at")]
        until = self.now_ms()
        pages: Iterator[list[dict[str, Any]]]
        if cursor is None:
            pages = self.list_all(object_type, properties, archived=False)
        else:
            since = max(0, int(cursor) - self.settings.lookback_seconds * 1000)
            pages = self.search_modified(object_type, since, until, properties)
        changed_ids: list[str] = []
        endpoint = f"crm/v3/objects/{object_type}"
        for records in pages:
            table = records_to_table(records, stream, endpoint)
            changed_ids.extend(table["id"].to_pylist())
            yield Batch(stream, table, window)
        for records in self.list_all(object_type, properties, archived=True):
            yield Batch(stream, records_to_table(records, stream, f"{endpoint} archived"), window)
        if object_type == "deals" and changed_ids:
            yield from self.fetch_deal_associations(changed_ids, window)
        yield Batch(stream, records_to_table([], stream), window,
                    cursor=Cursor(SOURCE, object_type, "portal", str(until)))

    @_scrubbed
    def fetch_deal_associations(self, deal_ids: Sequence[str], window: Window) -> Iterator[Batch]:
        """The contacts and the companies of each deal (v4 batch read), one batch per object type and group of
        deals, holding every association of those deals to that type: loading it replaces exactly those
        (deal_id, to_type) pairs. A deal with none of that type is not an error; other per-deal errors of a 207
        answer are kept in `partial_errors` (named in run metadata) and the rest of the answer is loaded."""
        unique = list(dict.fromkeys(str(d) for d in deal_ids))
        for to_type in ("contacts", "companies"):
            for start in range(0, len(unique), ASSOCIATION_BATCH):
                chunk = unique[start:start + ASSOCIATION_BATCH]
                pairs, failed = self._associations_of(chunk, to_type)
                table = pa.table({"deal_id": [d for d, _ in pairs], "to_type": [to_type] * len(pairs),
                                  "to_id": [t for _, t in pairs]}, schema=ASSOCIATIONS.schema)
                # every deal HubSpot answered for (with associations, or "none") is replaced whole, so a deal that
                # lost its last contact loses its old row; a deal whose answer failed keeps what it had
                known = [] if failed is None else [d for d in chunk if d not in failed]
                replaces = pa.table({"deal_id": known, "to_type": [to_type] * len(known)},
                                    schema=pa.schema([("deal_id", pa.string()), ("to_type", pa.string())]))
                yield Batch(ASSOCIATIONS, table, window, replaces=replaces)

    def _associations_of(self, deal_ids: Sequence[str], to_type: str
                         ) -> tuple[list[tuple[str, str]], set[str] | None]:
        """Every (deal, associated record) pair of these deals to `to_type`, following each result's own `paging`:
        HubSpot's spec for POST /crm/v4/associations/{from}/{to}/batch/read says the `after` of a result's paging
        goes back alongside its `id` for the next page of that record's associations (JSON body: verbatim).
        Also returns the deals whose answer failed (a 207 error other than "no association"), or None when a failure
        names no deal (then none of these deals is known to be complete)."""
        v4 = self.sub("crm.associations.v4.batch_api")
        what = f"POST /crm/v4/associations/deals/{to_type}/batch/read"
        pending: list[dict[str, str]] = [{"id": d} for d in deal_ids]
        cursors: dict[str, str | None] = {}
        pairs: dict[tuple[str, str], None] = {}
        failed: set[str] | None = set()
        while pending:
            request = {"inputs": pending}
            body = self.call(what, lambda request=request: v4.get_page("deals", to_type, request, **self._opts()))
            contract = Contract(SOURCE, "portal", what)
            pending = []
            results, page_failed = self._checked_association_page(contract, body, to_type)
            failed = None if failed is None or page_failed is None else failed | page_failed
            for result in results:
                deal = str(result["from"]["id"])
                for target in result.get("to") or []:
                    pairs[(deal, str(target["toObjectId"]))] = None
                after = _cursor(contract, ((result.get("paging") or {}).get("next") or {}).get("after"),
                                "results[].paging.next.after", cursors.get(deal))
                if after is not None:
                    cursors[deal] = after
                    pending.append({"id": deal, "after": after})
        return list(pairs), failed

    def _checked_association_page(self, contract: Contract, body: Any, to_type: str
                                  ) -> tuple[Sequence[Mapping[str, Any]], set[str] | None]:
        """The results of one v4 batch read answer (200 or 207), each with a `from` id and numeric `toObjectId`s.
        Errors of a 207 answer: "no association" (crm.associations.NO_ASSOCIATIONS_FOUND) means the deal has none
        of that type; any other is kept, named, in `partial_errors`."""
        contract.mapping(body, "body")
        status = body.get("status")
        if status not in (None, "COMPLETE"):
            raise contract.fail("status", "the batch read did not complete", status)
        results = contract.sequence(body.get("results"), "results", optional=True)
        for result in results:
            contract.mapping(result, "results[]")
            contract.required(contract.mapping(result.get("from"), "results[].from"), "id", "results[].from.id")
            for target in contract.sequence(result.get("to"), "results[].to", optional=True):
                to_id = contract.required(contract.mapping(target, "results[].to[]"), "toObjectId",
                                          "results[].to[].toObjectId")
                if isinstance(to_id, bool) or not str(to_id).isdigit():
                    raise contract.fail("results[].to[].toObjectId", "not a numeric record id", to_id)
            contract.mapping(result.get("paging") or {}, "results[].paging")
        failed: set[str] | None = set()
        for error in contract.sequence(body.get("errors"), "errors", optional=True):
            contract.mapping(error, "errors[]")
            if error.get("subCategory") == _NO_ASSOCIATIONS:
                continue
            named = [str(i) for i in ((error.get("context") or {}).get("fromObjectId") or [])]
            failed = None if failed is None or not named else failed | set(named)
            ids = ",".join(named) or "?"
            kind = " ".join(str(k) for k in (error.get("category"), error.get("subCategory")) if k)
            message = redact(str(error.get("message")), [self._token()])[:200]
            self.partial_errors.append(f"{contract.endpoint}: deal {ids}: {kind}: {message}")
        return results, failed

    @_scrubbed
    def fetch_owners(self, window: Window) -> Iterator[Batch]:
        owners_api = self.sub("crm.owners.owners_api")
        for archived in (False, True):
            for body in self._paged(f"GET /crm/v3/owners archived={archived}", owners_api.get_page, archived=archived):
                results = body.get("results") or []
                contract = Contract(SOURCE, "portal", f"GET /crm/v3/owners archived={archived}")
                for owner in results:
                    contract.mapping(owner, "results[]")
                    contract.required(owner, "id")
                    for key in ("email", "firstName", "lastName"):
                        contract.text(owner.get(key), key)
                contract.unique([str(o["id"]) for o in results], "id")
                table = pa.table({
                    "id": [str(o["id"]) for o in results],
                    "email": [o.get("email") for o in results],
                    "first_name": [o.get("firstName") for o in results],
                    "last_name": [o.get("lastName") for o in results],
                    "archived": [bool(o.get("archived", archived)) for o in results],
                    "updated_at": checked_column(contract, [o.get("updatedAt") for o in results],
                                                 pa.timestamp("ms", "UTC"), "updatedAt"),
                }, schema=OWNERS.schema)
                yield Batch(OWNERS, table, window)

    @_scrubbed
    def fetch_deal_stages(self, window: Window) -> Iterator[Batch]:
        """Stages of every deal pipeline; won = closed with probability 1.0 (metadata, never labels)."""
        body = self.call("GET /crm/v3/pipelines/deals",
                         lambda: self.sub("crm.pipelines.pipelines_api").get_all("deals", **self._opts()))
        rows: dict[str, list[Any]] = {name: [] for name in DEAL_STAGES.schema.names}
        for pipeline in body.get("results", []):
            for stage in pipeline.get("stages", []):
                metadata = stage.get("metadata") or {}
                closed = str(metadata.get("isClosed", "false")).lower() == "true"
                probability = float(metadata["probability"]) if metadata.get("probability") not in (None, "") else None
                rows["pipeline_id"].append(str(pipeline["id"]))
                rows["pipeline_label"].append(pipeline.get("label"))
                rows["stage_id"].append(str(stage["id"]))
                rows["stage_label"].append(stage.get("label"))
                rows["display_order"].append(stage.get("displayOrder"))
                rows["is_closed"].append(closed)
                rows["probability"].append(probability)
                rows["is_won"].append(closed and probability == 1.0)
        yield Batch(DEAL_STAGES, pa.table(rows, schema=DEAL_STAGES.schema), window)

    # ---- the portal ----------------------------------------------------------------------------------------

    def account_details(self) -> dict[str, str]:
        """The portal's id, time zone, company currency and UI domain, read once per connector from
        GET /account-info/v3/details (HubSpot's spec: PortalInformationResponse; `portalId` is a JSON integer).
        The official client has no module for this endpoint, so the request goes through the client's own
        ApiClient (same host, token, connection pool and retries as every other call)."""
        with self._account_lock:
            if self._account is None:
                what = "GET /account-info/v3/details"
                api_client = self.sub("crm.owners.owners_api").api_client
                body = self.call(what, lambda: api_client.call_api(
                    "/account-info/v3/details", "GET", header_params={"Accept": "application/json"},
                    auth_settings=["oauth2"], **self._opts()))
                self._account = _checked_account(Contract(SOURCE, "portal", what), body)
            return self._account

    def portal_zone(self) -> ZoneInfo:
        """The portal's time zone: HubSpot's day buckets (statistics histogram) start at its midnight."""
        return ZoneInfo(self.account_details()["time_zone"])

    @_scrubbed
    def fetch_account_details(self, window: Window) -> Iterator[Batch]:
        """One row for the portal (hubspot.account_details), loaded on every run: KPI tables name the portal."""
        details = self.account_details()
        yield Batch(ACCOUNT_DETAILS, pa.table({k: [details[k]] for k in ACCOUNT_DETAILS.schema.names},
                                              schema=ACCOUNT_DETAILS.schema), window)

    # ---- marketing e-mails --------------------------------------------------------------------------------

    @_scrubbed
    def fetch_email_statistics(self, window: Window, known_ids: set[str] | None = None) -> Iterator[Batch]:
        """Marketing e-mails with their statistics counters (hubspot.email_statistics), then the daily activity of
        the automated ones (hubspot.email_events_daily).

        A batch e-mail is dated by its publish instant (`publishDate`, else `publishedAt`); it is written when not
        loaded yet or sent within the re-read window (`email_reread_days`, 30), older counters being final. An
        automated e-mail keeps lifetime counters, so its row is rewritten on every run while it is running
        (whatever its age), and its activity is read by day from the statistics histogram: its whole history the
        first time, the re-read window afterwards."""
        emails_api = self.sub("marketing.emails.marketing_emails_api")
        horizon = self.now_ms() - self.settings.email_reread_days * 86_400_000
        automated: list[tuple[str, int, bool]] = []  # (e-mail id, publish instant, whole history)
        for body in self._paged("GET /marketing/v3/emails/", emails_api.get_page, include_stats=True):
            contract = Contract(SOURCE, "portal", "GET /marketing/v3/emails/")
            emails = _checked_emails(contract, body)
            rows: dict[str, list[Any]] = {name: [] for name in EMAIL_STATISTICS.schema.names}
            for email in emails:
                email_id, instant = str(email["id"]), _publish_instant(email)
                is_automated = _is_automated(email)
                known = known_ids is not None and email_id in known_ids
                if is_automated:
                    updated = _parse_instant(str(email.get("updatedAt") or "")) or 0
                    if known and not _is_running(email) and updated < horizon:
                        continue  # stopped before the re-read window: its counters and days are final
                    if instant is not None:
                        automated.append((email_id, instant, not known))
                elif known and instant is not None and instant < horizon:
                    continue
                _email_row(rows, contract, email, instant, is_automated)
            rows["published_at"] = pa.array(rows["published_at"], pa.int64()).cast(pa.timestamp("ms", "UTC"))
            yield Batch(EMAIL_STATISTICS, pa.table(rows, schema=EMAIL_STATISTICS.schema), window)
        if automated:
            zone = self.portal_zone()
            today = datetime.fromtimestamp(self.now_ms() / 1000, zone).date()
            for email_id, instant, whole in automated:
                first = datetime.fromtimestamp(instant / 1000, zone).date()
                if not whole:
                    first = max(first, today - timedelta(days=self.settings.email_reread_days))
                yield from self.fetch_email_events(email_id, first, today, zone)

    @_scrubbed
    def fetch_email_events(self, email_id: str, first: date, last: date, zone: ZoneInfo) -> Iterator[Batch]:
        """One e-mail's activity per portal day from `first` to `last` (GET /marketing/v3/emails/statistics/
        histogram, interval DAY, filtered by emailIds), in windows of HISTOGRAM_CHUNK_DAYS. Each window is asked
        from the portal's midnight to the portal's midnight after it, and each batch replaces that window of that
        e-mail in hubspot.email_events_daily; days without activity are left out."""
        stats_api = self.sub("marketing.emails.statistics_api")
        day = first
        while day <= last:
            end = min(last, day + timedelta(days=HISTOGRAM_CHUNK_DAYS - 1))
            start_ts, end_ts = _midnight_utc(day, zone), _midnight_utc(end + timedelta(days=1), zone)
            what = f"GET /marketing/v3/emails/statistics/histogram email {email_id} {day}..{end}"
            ids = [int(email_id)] if email_id.isdigit() else [email_id]
            body = self.call(what, lambda start_ts=start_ts, end_ts=end_ts, ids=ids: stats_api.get_histogram(
                interval="DAY", start_timestamp=start_ts, end_timestamp=end_ts, email_ids=ids, **self._opts()))
            table = _histogram_table(Contract(SOURCE, "portal", what), body, email_id, Window(day, end), zone)
            yield Batch(EMAIL_EVENTS_DAILY, table, Window(day, end), scope={"email_id": email_id})
            day = end + timedelta(days=1)


def _checked_account(contract: Contract, body: Any) -> dict[str, str]:
    """The account-info answer's fields the tables keep; a portal id that is not a number, or a time zone Python
    does not know, is refused (the e-mail days depend on it)."""
    contract.mapping(body, "body")
    portal = contract.required(body, "portalId")
    if isinstance(portal, bool) or not isinstance(portal, int | str) or not str(portal).isdigit():
        raise contract.fail("portalId", "not a numeric portal id", portal)
    zone = contract.text(contract.required(body, "timeZone"), "timeZone", max_chars=64) or ""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise contract.fail("timeZone", "not a time zone name", zone) from None
    return {"portal_id": str(portal), "time_zone": zone,
            "company_currency": contract.text(body.get("companyCurrency"), "companyCurrency", max_chars=16),
            "ui_domain": contract.text(body.get("uiDomain"), "uiDomain", max_chars=255)}


def _checked_emails(contract: Contract, body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """One page of marketing e-mails, every field the row needs checked before anything is written: text fields,
    counters object, the dates (ISO instants) and ids unique in the page."""
    emails = list(body.get("results") or [])
    for email in emails:
        contract.mapping(email, "results[]")
        contract.required(email, "id")
        for key in ("name", "subject", "state", "type"):
            contract.text(email.get(key), key)
        contract.mapping(contract.mapping(email.get("stats") or {}, "stats").get("counters") or {}, "stats.counters")
        for key in ("publishDate", "publishedAt", "updatedAt"):
            if email.get(key):
                checked_column(contract, [email[key]], pa.timestamp("ms", "UTC"), key)
        if _publish_instant(email) is None and (email.get("isPublished") is True
                                                or email.get("state") in _PUBLISHED_STATES):
            raise contract.fail("publishedAt", "a published e-mail without publishDate or publishedAt cannot be "
                                "dated", str(email["id"]))
    contract.unique([str(e["id"]) for e in emails], "id")
    return emails


def _publish_instant(email: Mapping[str, Any]) -> int | None:
    """When the e-mail went out, epoch ms: `publishDate` (the scheduled send time; HubSpot's spec: "only used in
    local time or scheduled emails"), else `publishedAt` (when it was published: the send time of a "send now"
    e-mail, the activation of an automated one)."""
    for key in ("publishDate", "publishedAt"):
        if email.get(key):
            return _parse_instant(str(email[key]))
    return None


def _is_automated(email: Mapping[str, Any]) -> bool:
    return email.get("type") in AUTOMATED_TYPES or str(email.get("state") or "").startswith("AUTOMATED")


def _is_running(email: Mapping[str, Any]) -> bool:
    """An automated e-mail that can still send: not archived, published, and not a draft, error or losing
    A/B variant state."""
    state = str(email.get("state") or "")
    return (email.get("archived") is not True and email.get("isPublished") is not False
            and not any(word in state for word in ("DRAFT", "LOSER", "ERROR")))


def _email_row(rows: dict[str, list[Any]], contract: Contract, email: Mapping[str, Any], instant: int | None,
               is_automated: bool) -> None:
    """Append one e-mail to the statistics columns: `published_at` the exact instant (UTC), `send_date` its UTC
    date; HubSpot leaves out counters that are still zero."""
    counters = (email.get("stats") or {}).get("counters") or {}
    rows["email_id"].append(str(email["id"]))
    rows["name"].append(email.get("name"))
    rows["subject"].append(email.get("subject"))
    rows["state"].append(email.get("state"))
    rows["email_type"].append(email.get("type"))
    rows["is_automated"].append(is_automated)
    rows["published_at"].append(instant)
    rows["send_date"].append(datetime.fromtimestamp(instant / 1000, UTC).date() if instant is not None else None)
    for counter in _COUNTERS:
        rows[counter].append(contract.count(counters.get(counter), f"stats.counters.{counter}", optional=True) or 0)


def _midnight_utc(day: date, zone: ZoneInfo) -> str:
    """The portal's midnight starting `day`, as the ISO 8601 UTC instant the statistics endpoints take."""
    return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day_runs(days: Sequence[date]) -> str:
    """Days as short runs ("2026-01-03..2026-01-05, 2026-02-01"), for an error naming them; at most 10 runs."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1][1] = day
        else:
            runs.append([day, day])
    named = [str(a) if a == b else f"{a}..{b}" for a, b in runs]
    return ", ".join(named[:10]) + (f" and {len(named) - 10} more runs" if len(named) > 10 else "")


def _histogram_table(contract: Contract, body: Any, email_id: str, window: Window, zone: ZoneInfo) -> pa.Table:
    """Day buckets of one e-mail as rows of hubspot.email_events_daily. A bucket's day is the portal day holding
    its middle: HubSpot starts DAY buckets at the portal's midnight (its documented example answer starts them at
    04:00Z for a US/Eastern portal), so that is the bucket's own day, and a bucket cut at another hour still
    gets the day holding most of it. A bucket outside the asked days, or a day twice, is refused.

    HubSpot answers a bucket for every interval of the span, empty ones included, when any e-mail of the filter was
    sent in it, and a single result when none was (`histogram_days_missing`): so an answer lacking days of the span
    is refused, naming them, never read as days without events."""
    contract.mapping(body, "body")
    rows: dict[str, list[Any]] = {name: [] for name in EMAIL_EVENTS_DAILY.schema.names}
    days: list[date] = []
    active = False  # a bucket with any counter: something was sent in the span
    results = contract.sequence(body.get("results"), "results", optional=True)
    for bucket in results:
        contract.mapping(bucket, "results[]")
        interval = contract.mapping(bucket.get("interval"), "results[].interval")
        start, end = (checked_column(contract, [interval.get(k)], pa.timestamp("ms", "UTC"), f"results[].interval.{k}"
                                     )[0].as_py() for k in ("start", "end"))
        if start is None or end is None or end <= start:
            raise contract.fail("results[].interval", "not a time span", interval)
        day = (start + (end - start) / 2).astimezone(zone).date()
        if not window.start <= day <= window.end:
            raise contract.fail("results[].interval.start", f"a bucket outside the days asked ({window})",
                                interval.get("start"))
        days.append(day)
        stats = bucket.get("aggregations", bucket.get("aggregateStatistic"))  # the doc example shows both names
        counters = contract.mapping(contract.mapping(stats or {}, "results[].aggregations").get("counters") or {},
                                    "results[].aggregations.counters")
        values = [contract.count(counters.get(c), f"results[].aggregations.counters.{c}", optional=True) or 0
                  for c in _EVENT_COUNTERS]
        active = active or any(values) or any(contract.count(v, "results[].aggregations.counters", optional=True)
                                              for v in counters.values())
        if any(values):
            rows["email_id"].append(email_id)
            rows["date"].append(day)
            for name, value in zip(_EVENT_COUNTERS, values, strict=True):
                rows[name].append(value)
    contract.unique(days, "results[].interval.start")
    total = contract.count(body.get("total"), "total", optional=True)
    if total is not None and total != len(results):
        raise contract.fail("total", f"the answer says {total} buckets but holds {len(results)}", total)
    missing = histogram_days_missing(window, days, active)
    if missing:
        raise contract.fail("results", f"no bucket for {len(missing)} of the {window.days} days asked ({window}): "
                            f"{_day_runs(missing)}; HubSpot answers every day of a span, so these days cannot be "
                            "read as days without events", len(results))
    return pa.table(rows, schema=EMAIL_EVENTS_DAILY.schema)


def histogram_days_missing(window: Window, days: Sequence[date], active: bool) -> list[date]:
    """The days of `window` a DAY histogram answer lacks. HubSpot answers one bucket per interval of the span,
    empty intervals included, when any e-mail of the filter was sent in the span, and a single result when none was:
    ballerina-platform/module-ballerinax-hubspot.marketing.emails, ballerina/tests/test.bal (testHistogramEp, run
    against api.hubapi.com: "If there are no emails sent within the time span, the response will be of length 1;
    else ... equal to number of days + 1" for a 40-day span ending now). So a single result without any counter
    (`active` False) stands for the whole span without events; any other answer must hold every day."""
    if len(days) == 1 and not active:
        return []
    return sorted(set(window.dates()) - set(days))


def connect(settings: Settings) -> HubSpotConnector:
    """The HubSpot connector of these settings (the source protocol, connectors/source.py)."""
    return HubSpotConnector(settings.hubspot)


def probe_portal(connector: HubSpotConnector) -> list[Finding]:
    """HubSpot: GET /crm/v3/owners?limit=1 through the connector (its rate limit, redaction and error wording)."""
    connector = probing(connector, policy=PROBE_POLICY)
    hubspot = connector.settings
    try:
        host = connector.check()
    except ConfigError as exc:
        return refused(exc)
    owners = connector.sub("crm.owners.owners_api")
    try:
        body = connector.call("GET /crm/v3/owners?limit=1", lambda: owners.get_page(
            limit=1, _preload_content=False, _request_timeout=hubspot.timeout_seconds))
    except SourceError as exc:
        status, _ = api_error(exc)
        if status == 401:
            fix = ("MKPI_HUBSPOT_TOKEN is not accepted by the portal: copy the access token of the private app "
                   "(HubSpot > Settings > Integrations > Private apps > Auth) into MKPI_HUBSPOT_TOKEN")
        elif status == 403:
            fix = ("the private app lacks a scope: add crm.objects.owners.read (and crm.objects.*.read, "
                   "crm.schemas.*.read, content) in HubSpot > Settings > Integrations > Private apps > Scopes")
        elif status == 429:
            fix = "the portal's rate limit is spent for now: retry in a minute"
        else:
            fix = f"could not reach {host}: check the network and MKPI_HUBSPOT_ENDPOINT (unset for HubSpot)"
        # "hubspot account portal: GET ...: 401 Authentication credentials not found. This API supports ..."
        answer = first_line(str(exc)).split("limit=1: ", 1)[-1].split(". ", 1)[0].rstrip(".")
        return [Finding(False, f"GET /crm/v3/owners refused: {answer}", fix)]
    found = len(body.get("results", [])) if isinstance(body, dict) else 0
    where = f" via {host}" if hubspot.endpoint else ""
    return [Finding(True, f"token accepted{where}: GET /crm/v3/owners answered ({found} owner)")]


def kpi_accounts(settings: Settings) -> None:
    """None: a token reaches one portal, whatever its id, so any account of HubSpot's KPI rows is the configured one."""
    return None
