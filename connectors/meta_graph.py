"""Meta's Graph API, shared by the Facebook Pages and Instagram connectors: the official `facebook-business` SDK with
the version pinned here, the token in a header, Meta's throttling honoured, and insights answers parsed once.

Business purpose: a Page's and an Instagram account's reach, views, engagement and followers are social KPIs the
marketing team reports beside web and paid traffic. Both come from one Graph API host with one token, so the client,
the pacing, the error handling and the day rule live here once (connectors/facebook.py, connectors/instagram.py say
which metrics they read).

How it talks to Graph API:
- `FacebookAdsApi.call` of the official SDK (facebook/facebook-python-business-sdk, facebook_business/api.py) on a
  `FacebookSession` whose `GRAPH` host is the configured endpoint (default https://graph.facebook.com). The SDK puts
  `access_token` in every query string (session.py: `requests.params`); it is taken out and sent as an
  `Authorization: Bearer` header instead, which Graph API accepts, so the token never sits in a URL, a proxy log or
  an error's request context.
- One retry rule for every call, the project's (connectors/http.py `call_with_retry`): Graph's throttling errors
  (codes 4, 17, 32, 613, 80001, 80002: developers.facebook.com/docs/graph-api/overview/rate-limiting), its transient
  errors (codes 1 and 2, `is_transient`), 5xx, resets and truncated bodies are retried, waiting at least the
  `estimated_time_to_regain_access` Meta announces; every answer's `X-App-Usage` and `X-Business-Use-Case-Usage`
  percentages are read and, from `slow_down_at_percent` on, the next call waits (longer the nearer 100 %).
- A metric the pinned version no longer knows answers `(#100) The value must be a valid insights metric`: the run
  fails naming the metrics asked for and the version, never loading zeros.
- Days: Meta reports insights days in the Page's reporting time zone, Pacific time (a day's value has `end_time` =
  the next local midnight, e.g. "2018-01-02T08:00:00+0000" for January 1: developers.facebook.com/documentation/
  pages-api/platforminsights/page, Limitations): a value's date is end_time's day minus one. Posts get the
  Pacific-time day of their creation, the same rule.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from connectors.errors import ConfigError, SourceError
from connectors.http import (
    Fatal,
    MalformedResponse,
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
from connectors.probe import Finding
from connectors.validation import Contract

if TYPE_CHECKING:
    from connectors.batches import Batch, Stream, Window
    from connectors.parallel import AccountLog
    from connectors.settings import FacebookSettings, InstagramSettings, MetaSettings

log = logging.getLogger("mkpi.meta")

# The one place the Graph API version is pinned (the installed facebook-business SDK's own default, apiconfig.py,
# follows the SDK release; this does not). Meta supports a version for about two years (docs/graph-api/changelog).
GRAPH_API_VERSION = "v26.0"
DEFAULT_GRAPH_HOST = "https://graph.facebook.com"
TOKEN_VARIABLE = "MKPI_META_ACCESS_TOKEN"
# Meta's insights day: Pacific time (module docstring).
META_TZ = ZoneInfo("America/Los_Angeles")
# Graph's rate-limit error codes (docs/graph-api/overview/rate-limiting): app, user, Page, API-specific, and the
# business use case limits of Pages and Instagram.
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002})
TRANSIENT_CODES = frozenset({1, 2})
INVALID_METRIC = "valid insights metric"
# the longest pause the usage headers alone cause before one call (throttling errors wait what Meta announces)
MAX_USAGE_PAUSE = 60.0
EDGE_LIMIT = 100


class RetiredMetric(SourceError):
    """Graph API refused a metric the connector asks for: Meta renamed or retired it in the pinned version."""


def day_of_end_time(end_time: str) -> date:
    """The day a daily insights value counts: end_time's day minus one (end_time is the next local midnight)."""
    return date.fromisoformat(end_time[:10]) - timedelta(days=1)


def pacific_midnight(day: date) -> int:
    """The unix timestamp of a day's start in Meta's insights time zone (what `since` / `until` take)."""
    return int(datetime.combine(day, clock_time(0), tzinfo=META_TZ).timestamp())


def parse_graph_time(text: str) -> datetime:
    """A Graph timestamp ("2026-03-01T16:09:00+0000") as a naive UTC datetime (the raw tables' TIMESTAMP)."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    return moment.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def meta_day(created_utc: datetime) -> date:
    """The insights day (Pacific time) of a naive-UTC creation time."""
    return created_utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(META_TZ).date()


def windows(start: date, end: date, max_days: int) -> Iterator[tuple[date, date]]:
    """[start, end] cut into ranges of at most `max_days` days (Graph refuses longer since..until spans)."""
    first = start
    while first <= end:
        last = min(end, first + timedelta(days=max_days - 1))
        yield first, last
        first = last + timedelta(days=1)


def usage_percent(headers: Mapping[str, str]) -> tuple[float, float]:
    """(the highest usage percentage, the longest estimated_time_to_regain_access in seconds) the answer's
    X-App-Usage and X-Business-Use-Case-Usage headers announce; (0, 0) without them."""
    highest, regain = 0.0, 0.0
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        app = json.loads(lowered.get("x-app-usage") or "{}")
        buc = json.loads(lowered.get("x-business-use-case-usage") or "{}")
    except ValueError:
        return highest, regain
    entries = [app] if isinstance(app, dict) else []
    if isinstance(buc, dict):
        entries += [e for value in buc.values() if isinstance(value, list) for e in value if isinstance(e, dict)]
    for entry in entries:
        for key in ("call_count", "total_cputime", "total_time"):
            value = entry.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                highest = max(highest, float(value))
        minutes = entry.get("estimated_time_to_regain_access")
        if isinstance(minutes, int | float) and not isinstance(minutes, bool):
            regain = max(regain, float(minutes) * 60)
    return highest, regain


def classify(exc: BaseException) -> Verdict:
    """Graph's error answers: throttling and transient codes are retried (waiting what Meta announces), a retired
    metric, a bad token or a missing permission are fatal with Meta's own words; the rest as plain HTTP."""
    from facebook_business.exceptions import FacebookRequestError

    if not isinstance(exc, FacebookRequestError):
        return classify_http(exc)
    code, status = exc.api_error_code(), exc.http_status()
    text = describe(exc)
    headers = exc.http_headers() or {}
    if code in THROTTLE_CODES or status == 429:
        _, regain = usage_percent(headers)
        retry_after = parse_retry_after({k.lower(): v for k, v in headers.items()}.get("retry-after"))
        return Retry(f"throttled: {text}", max(regain, retry_after))
    if code in TRANSIENT_CODES or exc.api_transient_error() or (isinstance(status, int) and status >= 500):
        return Retry(text)
    return Fatal(text)


def describe(exc: Any) -> str:
    """Meta's message, code, subcode and fbtrace_id (what Meta support asks for), without the request context."""
    parts = [str(exc.api_error_message() or "no error message")]
    details = [f"code {exc.api_error_code()}"] if exc.api_error_code() is not None else []
    if exc.api_error_subcode() is not None:
        details.append(f"subcode {exc.api_error_subcode()}")
    body = exc.body()
    trace = body.get("error", {}).get("fbtrace_id") if isinstance(body, dict) and isinstance(body.get("error"),
                                                                                            dict) else None
    if trace:
        details.append(f"fbtrace_id {trace}")
    return f"{parts[0]} (HTTP {exc.http_status()}, {', '.join(details)})" if details else parts[0]


@dataclass
class GraphClient:
    """Graph API calls through the official SDK: pinned version, Bearer token, retries, pacing, bounded answers."""

    source: str
    endpoint: str | None
    token: str
    timeout_seconds: float = 60.0
    slow_down_at_percent: float = 75.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    stats: RequestStats = field(default_factory=RequestStats)
    usage: float = 0.0  # the highest usage percentage the last answer announced
    paced_seconds: float = 0.0  # waited because the usage headers neared 100 % (not retries: nothing failed)
    _api: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        remember_secrets(self.token)

    def host(self) -> str:
        """The Graph host; plain HTTP only on loopback (the sandbox): elsewhere the token would travel in clear."""
        url = (self.endpoint or DEFAULT_GRAPH_HOST).strip().rstrip("/")
        parsed = urlparse(url if "://" in url else "https://" + url)
        if parsed.scheme == "http" and not is_loopback(parsed.hostname):
            raise ConfigError(f"MKPI_META_ENDPOINT {parsed.scheme}://{parsed.hostname} is plain HTTP on a non-loopback "
                              "host: the token would travel unencrypted; use https://")
        return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"

    def api(self) -> Any:
        """The SDK's API object: the session's `access_token` query parameter removed, the token in a header."""
        if self._api is None:
            from facebook_business.api import FacebookAdsApi
            from facebook_business.session import FacebookSession

            session = FacebookSession(timeout=self.timeout_seconds)
            session.GRAPH = self.host()
            session.requests.params.clear()  # the SDK's {'access_token': ...}: never in a URL
            session.requests.headers["Authorization"] = f"Bearer {self.token}"
            guard_session(session.requests)
            self._api = FacebookAdsApi(session, api_version=GRAPH_API_VERSION)
        return self._api

    def get(self, path: Sequence[str], params: Mapping[str, Any], *, account: str, what: str) -> dict[str, Any]:
        """One GET `/{version}/{path...}`, retried by the project's rules; the token starred out of any error."""
        max_bytes = max_answer_bytes(self.source)

        def once() -> dict[str, Any]:
            with answer_guard(self.source, seconds=self.timeout_seconds, max_bytes=max_bytes):
                response = self.api().call("GET", tuple(path), params=dict(params))
            body = json_body(response.body() or b"", response.status())
            if not isinstance(body, dict):
                raise MalformedResponse(f"not a JSON object (HTTP {response.status()})")
            self._pace(response.headers() or {})
            return body

        return scrub_calls(lambda: call_with_retry(
            once, classify=classify, source=self.source, account=account, what=what, policy=self.policy,
            stats=self.stats, sleep=self.sleep, secrets=[self.token]), [self.token])

    def _pace(self, headers: Mapping[str, str]) -> None:
        """Slow down as Meta's usage headers near 100 %: no wait below `slow_down_at_percent`, MAX_USAGE_PAUSE at
        100 %, or the announced time to regain access when Meta gives one."""
        self.usage, regain = usage_percent(headers)
        if self.usage < self.slow_down_at_percent:
            return
        share = (self.usage - self.slow_down_at_percent) / max(100.0 - self.slow_down_at_percent, 1.0)
        pause = max(regain, min(1.0, share) * MAX_USAGE_PAUSE)
        if pause > 0:
            log.warning("%s: Graph API usage at %.0f%%: waiting %.1fs before the next call", self.source, self.usage,
                        pause)
            self.paced_seconds += pause
            self.sleep(pause)

    def insights(self, node: str, metrics: Sequence[str], params: Mapping[str, Any], *, account: str,
                 what: str) -> dict[str, Any]:
        """`GET /{node}/insights?metric=...`; a metric the pinned version refuses is a RetiredMetric naming them."""
        try:
            return self.get((node, "insights"), {"metric": ",".join(metrics), **params}, account=account, what=what)
        except SourceError as exc:
            if INVALID_METRIC in str(exc):
                raise RetiredMetric(
                    self.source, account,
                    f"{what}: Graph API {GRAPH_API_VERSION} refused one of the metrics {', '.join(metrics)} "
                    f"(Meta renames and retires insights metrics; see docs/platforms/meta.md): {exc}") from exc
            raise

    def edge(self, node: str, edge: str, params: Mapping[str, Any], *, account: str,
             what: str) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paged edge: `paging.cursors.after` again while the answer has `paging.next`."""
        after: str | None = None
        while True:
            page = self.get((node, edge), {**params, "limit": EDGE_LIMIT, **({"after": after} if after else {})},
                            account=account, what=what)
            items = page.get("data")
            if not isinstance(items, list):
                raise SourceError(self.source, account, f"{what}: the answer has no data list")
            yield from (item for item in items if isinstance(item, dict))
            paging = page.get("paging") if isinstance(page.get("paging"), dict) else {}
            cursor = (paging.get("cursors") or {}).get("after") if isinstance(paging.get("cursors"), dict) else None
            if not paging.get("next") or not cursor or not items:
                return
            if str(cursor) == after:  # the same page again: following it would never end
                raise SourceError(self.source, account, f"{what}: paging.cursors.after did not move ({cursor})")
            after = str(cursor)


def daily_values(answer: Mapping[str, Any], source: str, account: str, what: str) -> dict[str, dict[date, int]]:
    """metric -> {day: value} from a `period=day` insights answer (`data[].name/values[].value/end_time`)."""
    out: dict[str, dict[date, int]] = {}
    for item in _data(answer, source, account, what):
        values = item.get("values")
        if not isinstance(values, list):
            continue
        series = out.setdefault(str(item.get("name")), {})
        for entry in values:
            if not isinstance(entry, dict) or "end_time" not in entry:
                raise SourceError(source, account, f"{what}: a value of {item.get('name')} has no end_time")
            series[day_of_end_time(str(entry["end_time"]))] = count(entry.get("value"), source, account,
                                                                    f"{what} {item.get('name')}")
    return out


def total_values(answer: Mapping[str, Any], source: str, account: str, what: str) -> dict[str, int]:
    """metric -> total from a `metric_type=total_value` answer (`data[].total_value.value`)."""
    out = {}
    for item in _data(answer, source, account, what):
        total = item.get("total_value")
        if isinstance(total, dict):
            out[str(item.get("name"))] = count(total.get("value"), source, account, f"{what} {item.get('name')}")
    return out


def lifetime_values(answer: Mapping[str, Any], source: str, account: str, what: str) -> dict[str, Any]:
    """metric -> value of a per-post insights answer (`data[].values[0].value`, a number or a breakdown object)."""
    out = {}
    for item in _data(answer, source, account, what):
        values = item.get("values")
        if isinstance(values, list) and values and isinstance(values[0], dict):
            out[str(item.get("name"))] = values[0].get("value")
    return out


def _data(answer: Mapping[str, Any], source: str, account: str, what: str) -> list[dict[str, Any]]:
    data = answer.get("data")
    if not isinstance(data, list):
        raise SourceError(source, account, f"{what}: the insights answer has no data list")
    return [item for item in data if isinstance(item, dict)]


def count(value: Any, source: str, account: str, what: str) -> int:
    """A whole non-negative count; anything else (a fraction, a negative, NaN, Infinity, a missing value) is refused
    by the project's answer contract (connectors/validation.py): a silent wrong number is worse than a failed run."""
    return cast(int, Contract(source, account, what).count(value, "value"))


@dataclass
class MetaConnector:
    """What the Facebook and Instagram connectors share: settings, the checks before any request, one Graph client
    for every thread, and the source protocol's `fetch` over `read_account` (one account's batches of every table:
    the tables of an account come from one read, as Matomo's do)."""

    meta: MetaSettings
    section: FacebookSettings | InstagramSettings
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    stats: RequestStats = field(default_factory=RequestStats)
    _client: GraphClient | None = field(default=None, repr=False)

    SOURCE: ClassVar[str] = "meta"
    IDS_VARIABLE: ClassVar[str] = "MKPI_META_IDS"
    IDS_FIELD: ClassVar[str] = "ids"  # the settings section's field holding the account ids
    STREAMS: ClassVar[tuple[Stream, ...]] = ()  # account_daily, account_period_reach, posts (connectors/raw_tables.py)
    LABEL: ClassVar[str] = "account"  # how doctor names one account
    PROBE_FIELDS: ClassVar[str] = "id"

    def account_ids(self) -> tuple[str, ...]:
        return tuple(getattr(self.section, self.IDS_FIELD))

    def read_account(self, account: str, window: Window) -> list[Batch]:
        """One account's batches of every table over the window."""
        raise NotImplementedError

    def check_metrics(self, account: str, day: date) -> None:
        """doctor: ask for one day of every metric the connector reads (a retired one raises RetiredMetric)."""
        raise NotImplementedError

    def batches(self, account: str, window: Window, *tables: list[dict[str, Any]]) -> list[Batch]:
        """One account's rows of each table (in STREAMS order) as typed batches replacing the window."""
        import pyarrow as pa

        from connectors.batches import Batch

        return [Batch(stream, pa.Table.from_pylist(rows, schema=stream.schema), window, {"account_id": account})
                for stream, rows in zip(self.STREAMS, tables, strict=True)]

    def series(self, account: str, window: Window, metrics: Sequence[str], params: Mapping[str, Any],
               max_days: int) -> dict[str, dict[date, int]]:
        """metric -> day -> value of a daily insights series over the window, asked for in spans of `max_days`."""
        out: dict[str, dict[date, int]] = {}
        for first, last in windows(window.start, window.end, max_days):
            what = f"insights {params.get('period', 'day')} {first}..{last}"
            answer = self.client().insights(account, list(metrics), {
                **params, "since": pacific_midnight(first), "until": pacific_midnight(last + timedelta(1))},
                account=account, what=what)
            for metric, values in daily_values(answer, self.SOURCE, account, what).items():
                out.setdefault(metric, {}).update({d: v for d, v in values.items() if first <= d <= last})
        return out

    def probe(self) -> list[Finding]:
        """doctor: the token, then each account readable and its metrics answering in the pinned version."""
        from connectors.probe import PROBE_POLICY, refused

        connector = type(self)(self.meta, self.section, policy=PROBE_POLICY)
        try:
            ids = connector.check()
        except ConfigError as exc:
            return refused(exc)
        yesterday = date.today() - timedelta(days=1)
        return probe_graph(connector.client(), ids, self.PROBE_FIELDS, self.LABEL,
                           lambda account: connector.check_metrics(account, yesterday))

    def token(self) -> str:
        secret = self.meta.access_token
        if secret is None or not secret.reveal():
            raise ConfigError(f"No Meta access token: set {TOKEN_VARIABLE} to a long-lived Page or system-user token "
                              "(docs/platforms/meta.md)")
        return str(secret.reveal())

    def check(self) -> list[str]:
        """The configured ids, the token and the host checked before any request."""
        ids = self.account_ids()
        if not ids:
            raise ConfigError(f"No {self.SOURCE} account configured: set {self.IDS_VARIABLE} (comma-separated ids)")
        for account in ids:
            if not account.isdigit():
                raise ConfigError(f"{self.SOURCE} id {account!r} is not numeric: {self.IDS_VARIABLE} takes the "
                                  "numeric ids Meta shows", key=f"{self.SOURCE}.ids")
        self.token()
        self.client().host()
        return list(ids)

    def client(self) -> GraphClient:
        if self._client is None:
            self._client = GraphClient(self.SOURCE, self.meta.endpoint, self.token(),
                                       timeout_seconds=self.meta.timeout_seconds,
                                       slow_down_at_percent=self.meta.slow_down_at_percent, policy=self.policy,
                                       sleep=self.sleep, stats=self.stats)
        return self._client

    def fetch_all(self, window: Window, *, accounts: AccountLog | None = None) -> Iterator[Batch]:
        """Every table's batches per account over the window; with `accounts` (the run's AccountLog) a failing
        account is recorded there and skipped (connectors/parallel.py)."""
        from connectors.parallel import fetch_accounts

        ids = self.check()
        self.client().api()  # one SDK session for every thread, made before they start
        yield from fetch_accounts(ids, lambda account: scrub_calls(lambda: self.read_account(account, window),
                                                                   [self.token()]),
                                  max_workers=self.section.parallel_accounts, source=self.SOURCE, log=accounts)

    def fetch(self, stream: Stream | str, window: Window, *, accounts: AccountLog | None = None,
              cursor: str | None = None) -> Iterator[Batch]:
        """The source protocol: one table's batches (the account's other tables are read with it and dropped)."""
        from connectors.source import stream_named

        wanted = stream_named(self.STREAMS, stream)
        yield from (batch for batch in self.fetch_all(window, accounts=accounts) if batch.stream == wanted)


def probe_graph(client: GraphClient, accounts: Sequence[str], fields: str, label: str,
                check_metrics: Callable[[str], None]) -> list[Finding]:
    """What doctor checks for a Meta source: the token (`/me`), then each account readable and the pinned version's
    metrics answering for it (one small insights call)."""
    try:
        me = client.get(("me",), {"fields": "id,name"}, account="token", what="GET /me")
    except SourceError as exc:
        return [Finding(False, f"Graph API {GRAPH_API_VERSION} refused the token: {redact(str(exc), [client.token])}",
                        f"set {TOKEN_VARIABLE} to a valid long-lived token (docs/platforms/meta.md)")]
    findings = [Finding(True, f"token accepted ({me.get('name') or me.get('id')}), Graph API {GRAPH_API_VERSION}")]
    for account in accounts:
        try:
            node = client.get((account,), {"fields": fields}, account=account, what=f"GET /{account}")
            check_metrics(account)
        except RetiredMetric as exc:
            findings.append(Finding(False, f"{label} {account}: {exc}", "update the metric names in the connector "
                                    f"for {GRAPH_API_VERSION} (docs/platforms/meta.md)"))
            continue
        except SourceError as exc:
            findings.append(Finding(False, f"{label} {account}: {redact(str(exc), [client.token])}",
                                    "check the id and that the token's user has the permissions listed in "
                                    "docs/platforms/meta.md"))
            continue
        name = node.get("name") or node.get("username") or account
        findings.append(Finding(True, f"{label} {account} ({name}): readable, insights metrics answer"))
    return findings
