"""Matomo connector: the HTTP Reporting API, one `API.getBulkRequest` per site per date range.

Business purpose: Matomo is the privacy-first second opinion on traffic (visits, bounces, conversions
by referrer type) and e-commerce (orders, revenue, abandoned carts); its numbers sit beside GA4's
with `source = 'matomo'` and are never blended with them.

How it reads (see shared/research/peers.md and emulators.md, Matomo):
- No official Python client exists: plain HTTP through the shared `HttpClient` (retries, rate limit).
- The token travels only in the POST body (`token_auth`), never in a URL or a log line; Matomo tokens
  marked "secure only" refuse GET anyway. `module`, `method` and `format` go in the query string: Matomo
  renders an error raised before dispatch (a token it cannot authenticate) as JSON only when it finds the API
  method there (ExceptionHandler, `Request::isApiRequest($_GET)`), else as an HTML page.
- A token Matomo 5 cannot authenticate is HTTP 401 with `{"result": "error", "message": "Unable to authenticate
  ..."}`: refused at once, with the same advice (MKPI_MATOMO_TOKEN) as an HTTP 200 error envelope.
- One bulk request carries every method for the whole window; a multi-day answer is keyed by date, an
  empty day is `[]`, numbers are sometimes strings and percentages are strings like "50%".
- Errors come back as HTTP 200 with `{"result": "error"}`, also as one element of a bulk answer: the
  whole answer is refused with the method and site named, so a partial bulk answer is never loaded. The one
  exception: where the MarketingCampaignsReporting plugin is not installed, its `getMedium` element is Matomo's
  "The plugin MarketingCampaignsReporting is not enabled..." error; then `matomo.campaign_mediums` gets no rows
  (what it holds stays), the connector records `campaign_plugin: absent`, and the run goes on.
- Matomo's `campaign` referrer type is every tagged URL (paid search, e-mail, paid social); where the plugin is
  there, `matomo.campaign_mediums` splits it by campaign medium (the lower-cased `mtm_medium`/`utm_medium`),
  which `channels.matomo_campaign_medium` maps to channels.
"""

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlparse

import pyarrow as pa

from connectors.batches import Batch, Stream, Window
from connectors.errors import ConfigError, SourceError
from connectors.http import (
    Fatal,
    HttpClient,
    HttpStatusError,
    RateLimiter,
    RequestStats,
    RetryPolicy,
    Verdict,
    classify_http,
    is_loopback,
    max_answer_bytes,
    scrub_calls,
)
from connectors.parallel import AccountLog, fetch_accounts
from connectors.probe import PROBE_POLICY, Finding, first_line, probing, refused
from connectors.raw_tables import (
    MATOMO_CAMPAIGN_MEDIUMS,
    MATOMO_GOALS,
    MATOMO_REFERRERS,
    MATOMO_STREAMS,
    MATOMO_VISITS,
)
from connectors.settings import MatomoSettings, Settings
from connectors.source import stream_named
from connectors.validation import Contract

SOURCE = "matomo"
# Query-string part of every API call (never secret); the token and the bulk sub-requests go in the POST body.
API_QUERY = {"module": "API", "format": "JSON"}
TOKEN_ADVICE = "check that MKPI_MATOMO_TOKEN is valid and has view access to this site id"
GOALS = ("all", "ecommerceOrder", "ecommerceAbandonedCart")
# Referrers.getReferrerType: the segment is language-independent; labels are translated.
_REFERRER_CODES = {1: "direct", 2: "search", 3: "website", 6: "campaign", 7: "social"}
_REFERRER_LABELS = {"Direct Entry": "direct", "Search Engines": "search", "Websites": "website",
                    "Campaigns": "campaign", "Social Networks": "social"}

# The raw tables (declared in connectors/raw_tables.py), under the names this module always gave them.
VISITS = MATOMO_VISITS
REFERRERS = MATOMO_REFERRERS
GOAL_STREAM = MATOMO_GOALS
CAMPAIGN_MEDIUMS = MATOMO_CAMPAIGN_MEDIUMS
STREAMS = MATOMO_STREAMS
CAMPAIGN_PLUGIN = "MarketingCampaignsReporting"
CAMPAIGN_METHOD = f"{CAMPAIGN_PLUGIN}.getMedium"
# Matomo's PluginDeactivatedException, for a plugin not installed or not activated (matomo-org/matomo
# core/Exception/PluginDeactivatedException.php; untranslated, so the same on every instance).
PLUGIN_ABSENT_MESSAGE = f"The plugin {CAMPAIGN_PLUGIN} is not enabled"


def number(value: Any) -> float | None:
    """Matomo numbers: ints, floats, numeric strings ("1234.5"), percentages ("50%" -> 0.5), or absent."""
    if value is None or value == "" or isinstance(value, list | dict):
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def integer(value: Any) -> int | None:
    parsed = number(value)
    return None if parsed is None else int(round(parsed))


@dataclass
class MatomoConnector:
    """Reads visits, referrer types and goals for every configured site into typed batches."""

    settings: MatomoSettings
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    # site id -> "present" or "absent": whether the MarketingCampaignsReporting plugin answered (last fetch)
    campaign_plugin: dict[str, str] = field(default_factory=dict)
    _http: HttpClient | None = field(default=None, repr=False)

    def campaign_plugin_status(self) -> str:
        """For run metadata: `present` or `absent` (one Matomo instance serves every site), per site if they differ,
        `unknown` before any site was read."""
        states = set(self.campaign_plugin.values())
        if len(states) <= 1:
            return states.pop() if states else "unknown"
        return ", ".join(f"site {site}: {state}" for site, state in sorted(self.campaign_plugin.items()))

    def endpoint(self) -> str:
        if not self.settings.url:
            raise ConfigError("No Matomo URL: set MKPI_MATOMO_URL to your instance, e.g. https://matomo.example.com/")
        url = self.settings.url.strip()
        if "://" not in url:
            url = "https://" + url
        parsed = urlparse(url)
        if parsed.scheme == "http" and not is_loopback(parsed.hostname):
            raise ConfigError(
                f"MKPI_MATOMO_URL {parsed.scheme}://{parsed.hostname} is plain HTTP on a non-loopback host: "
                "the token would travel unencrypted; use https://"
            )
        return url if url.endswith(".php") else url.rstrip("/") + "/index.php"

    def site_ids(self) -> list[str]:
        if not self.settings.site_ids:
            raise ConfigError("No Matomo site configured: set MKPI_MATOMO_SITE_IDS (comma-separated idSite values) "
                              "or matomo.site_ids in config/mkpi.yaml")
        for site in self.settings.site_ids:
            if not site.isdigit():
                raise ConfigError(f"Matomo site id {site!r} is not numeric: MKPI_MATOMO_SITE_IDS takes idSite numbers",
                                  key="matomo.site_ids")
        return list(self.settings.site_ids)

    def _token(self) -> str:
        if self.settings.token is None or not self.settings.token.reveal():
            raise ConfigError("No Matomo token: set MKPI_MATOMO_TOKEN to an auth token with view access to the sites "
                              "(Matomo > Personal > Security > Auth tokens)")
        return self.settings.token.reveal()

    def check(self) -> list[str]:
        """Validate configuration without sending a request."""
        self.endpoint()
        self._token()
        max_answer_bytes(SOURCE)
        return self.site_ids()

    def probe(self) -> list[Finding]:
        """What `mkpi doctor` checks: the instance and the token, then view access to each site (`probe_instance`)."""
        return probe_instance(self)

    def http(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient(
                SOURCE,
                timeout=self.settings.timeout_seconds,
                policy=self.policy,
                limiter=RateLimiter(self.settings.requests_per_second, 1.0),
                stats=self.stats,
                sleep=self.sleep,
                secrets=[self._token()],
                classify=classify,
            )
        return self._http

    def call(self, method: str, account: str, **params: str) -> Any:
        """One Reporting API method (module, method and format in the query string, the token in the POST body only),
        as `mkpi doctor` asks its cheap questions. An error envelope (HTTP 200) or a 401/403 raises SourceError with
        Matomo's message and, when it is about the token or access, what to fix (TOKEN_ADVICE); the token is starred
        out of it, should Matomo (or a proxy) echo it."""
        def ask() -> Any:
            answer = self.http().request_json("POST", self.endpoint(), params=API_QUERY | {"method": method},
                                              data={"token_auth": self._token(), **params}, account=account,
                                              what=method)
            if isinstance(answer, dict) and answer.get("result") == "error":
                raise SourceError(SOURCE, account, f"{method}: {_explain(answer)}")
            return answer

        return scrub_calls(ask, [self._token()])

    @staticmethod
    def sub_requests(site_id: str, window: Window) -> list[tuple[str, dict[str, str]]]:
        """The methods one bulk request carries: (name, parameters)."""
        base = {"idSite": site_id, "period": "day", "date": f"{window.start.isoformat()},{window.end.isoformat()}",
                "format": "JSON", "filter_limit": "-1"}
        return [
            ("SitesManager.getSiteFromId", {"method": "SitesManager.getSiteFromId", "idSite": site_id}),
            ("VisitsSummary.get", {"method": "VisitsSummary.get", **base}),
            ("Referrers.getReferrerType", {"method": "Referrers.getReferrerType", **base}),
            ("Goals.get", {"method": "Goals.get", **base}),
            ("Goals.get ecommerceOrder", {"method": "Goals.get", "idGoal": "ecommerceOrder", **base}),
            ("Goals.get ecommerceAbandonedCart", {"method": "Goals.get", "idGoal": "ecommerceAbandonedCart", **base}),
            (CAMPAIGN_METHOD, {"method": CAMPAIGN_METHOD, **base}),
        ]

    def bulk(self, site_id: str, window: Window) -> dict[str, Any]:
        """One API.getBulkRequest; returns each method's answer, or raises naming the failing method. The
        campaign-medium answer is None where Matomo says the MarketingCampaignsReporting plugin is not enabled."""
        subs = self.sub_requests(site_id, window)
        form = {"token_auth": self._token()}
        for i, (_, params) in enumerate(subs):
            form[f"urls[{i}]"] = urlencode(params)
        answer = self.http().request_json(
            "POST", self.endpoint(), params=API_QUERY | {"method": "API.getBulkRequest"}, data=form, account=site_id,
            what=f"API.getBulkRequest {window}",
        )
        if isinstance(answer, dict) and answer.get("result") == "error":
            raise SourceError(SOURCE, site_id, f"API.getBulkRequest {window}: {_explain(answer)}")
        if not isinstance(answer, list) or len(answer) != len(subs):
            raise SourceError(SOURCE, site_id, f"API.getBulkRequest {window}: expected a list of {len(subs)} answers, "
                              f"got {type(answer).__name__}")
        results: dict[str, Any] = {}
        for (name, _), result in zip(subs, answer, strict=True):
            if isinstance(result, dict) and result.get("result") == "error":
                if name == CAMPAIGN_METHOD and str(result.get("message") or "").startswith(PLUGIN_ABSENT_MESSAGE):
                    results[name] = None
                    continue
                raise SourceError(SOURCE, site_id, f"{name} {window}: {_explain(result)}")
            results[name] = result
        return results

    @staticmethod
    def _by_date(name: str, site_id: str, window: Window, result: Any) -> dict[str, Any]:
        """A multi-day answer keyed by exactly the requested days (an impossible or extra date is refused)."""
        contract = Contract(SOURCE, site_id, f"{name} {window}")
        contract.mapping(result, "date")
        expected = [d.isoformat() for d in window.dates()]
        for day in result:
            if day not in expected:
                contract.day(day, "date")  # an impossible date is named as such
                raise contract.fail("date", "a day outside the requested window", day)
        if len(result) != len(expected):
            raise contract.fail("date", f"answer does not cover the requested days (got {len(result)} of "
                                f"{len(expected)})")
        return result

    def parse(self, site_id: str, window: Window, results: Mapping[str, Any]) -> dict[str, pa.Table]:
        """Typed tables for the streams from one bulk answer; no campaign-medium table without the plugin."""
        site = results["SitesManager.getSiteFromId"]
        site = site[0] if isinstance(site, list) and site else site
        tz = str(site.get("timezone")) if isinstance(site, dict) and site.get("timezone") else None
        currency = str(site.get("currency")) if isinstance(site, dict) and site.get("currency") else None
        tail = {"time_zone": tz, "currency_code": currency}

        visits = []
        contract = Contract(SOURCE, site_id, f"VisitsSummary.get {window}")
        for day, row in self._by_date("VisitsSummary.get", site_id, window, results["VisitsSummary.get"]).items():
            if isinstance(row, list) and not row:  # an empty day is []
                continue
            contract.mapping(row, f"{day}")
            visits.append({"site_id": site_id, "date": day, **{c: _count(contract, row, c) for c in (
                "nb_visits", "nb_actions", "nb_visits_converted", "bounce_count", "sum_visit_length")},
                **{c: _count(contract, row, c, optional=True) for c in ("nb_uniq_visitors", "max_actions")}, **tail})

        referrers = []
        contract = Contract(SOURCE, site_id, f"Referrers.getReferrerType {window}")
        answer = self._by_date("Referrers.getReferrerType", site_id, window, results["Referrers.getReferrerType"])
        for day, rows in answer.items():
            seen: set[str] = set()
            for row in contract.sequence(rows, f"{day}", optional=True):
                contract.mapping(row, f"{day}[]")
                referrer_type = self._referrer_type(row)
                contract.text(referrer_type, "segment")
                contract.unique([referrer_type], "referrer_type", seen)
                goals_of_row = contract.mapping(row.get("goals") or {}, "goals")
                order_goal = contract.mapping(goals_of_row.get("idgoal=ecommerceOrder") or {},
                                              "goals.idgoal=ecommerceOrder")
                referrers.append({
                    "site_id": site_id, "date": day, "referrer_type": referrer_type,
                    "label": contract.text(row.get("label"), "label"),
                    **{c: _count(contract, row, c) for c in ("nb_visits", "nb_actions", "nb_visits_converted",
                                                              "bounce_count", "sum_visit_length")},
                    "nb_uniq_visitors": _count(contract, row, "nb_uniq_visitors", optional=True),
                    "orders": _count(contract, order_goal, "nb_conversions", optional=True) or 0,
                    "revenue": _amount(contract, order_goal, "revenue", optional=True) or 0.0,
                    **tail,
                })

        goals = []
        for goal, name in zip(GOALS, ("Goals.get", "Goals.get ecommerceOrder", "Goals.get ecommerceAbandonedCart"),
                              strict=True):
            contract = Contract(SOURCE, site_id, f"{name} {window}")
            for day, row in self._by_date(name, site_id, window, results[name]).items():
                if isinstance(row, list) and not row:
                    continue
                contract.mapping(row, f"{day}")
                goals.append({"site_id": site_id, "date": day, "goal": goal,
                              "nb_conversions": _count(contract, row, "nb_conversions"),
                              "nb_visits_converted": _count(contract, row, "nb_visits_converted"),
                              "revenue": _amount(contract, row, "revenue"),
                              "items": _count(contract, row, "items", optional=True), **tail})
        tables = {
            VISITS.table: _table(visits, VISITS),
            REFERRERS.table: _table(referrers, REFERRERS),
            GOAL_STREAM.table: _table(goals, GOAL_STREAM),
        }
        if results.get(CAMPAIGN_METHOD) is not None:
            tables[CAMPAIGN_MEDIUMS.table] = self._campaign_mediums(site_id, window, results[CAMPAIGN_METHOD], tail)
        return tables

    def _campaign_mediums(self, site_id: str, window: Window, answer: Any, tail: Mapping[str, Any]) -> pa.Table:
        """MarketingCampaignsReporting.getMedium rows: one per day and medium (the label), counts as integers."""
        contract = Contract(SOURCE, site_id, f"{CAMPAIGN_METHOD} {window}")
        rows = []
        for day, day_rows in self._by_date(CAMPAIGN_METHOD, site_id, window, answer).items():
            seen: set[str] = set()
            for row in contract.sequence(day_rows, f"{day}", optional=True):
                contract.mapping(row, f"{day}[]")
                medium = contract.text(row.get("label"), "label", optional=False)
                contract.unique([medium], "campaign_medium", seen)
                rows.append({"site_id": site_id, "date": day, "campaign_medium": medium,
                             **{c: _count(contract, row, c) for c in ("nb_visits", "nb_visits_converted",
                                                                      "bounce_count", "sum_visit_length",
                                                                      "nb_actions")}, **tail})
        return _table(rows, CAMPAIGN_MEDIUMS)

    @staticmethod
    def _referrer_type(row: Mapping[str, Any]) -> str:
        segment = str(row.get("segment") or "")
        if segment.startswith("referrerType=="):
            return segment.split("==", 1)[1]
        code = integer(row.get("referrer_type"))
        if code in _REFERRER_CODES:
            return _REFERRER_CODES[code]
        return _REFERRER_LABELS.get(str(row.get("label")), str(row.get("label") or "unknown"))

    def fetch(self, stream: Stream | Window, window: Window | Sequence[str] | None = None,
              site_ids: Sequence[str] | None = None, accounts: AccountLog | None = None,
              cursor: str | None = None) -> Iterator[Batch]:
        """Two forms. `fetch(window, site_ids=None, accounts=None)`: every table from one bulk request per site (what
        the Matomo step loads, `read`). `fetch(stream, window, accounts=...)`: the source protocol
        (connectors/source.py), that table's batches only; the same bulk request is sent, since Matomo answers every
        method at once. `cursor` is unused: Matomo is read by date."""
        if isinstance(stream, Window):
            ids = window if window is not None else site_ids
            return self.read(stream, ids if not isinstance(ids, Window) else None, accounts)
        if not isinstance(window, Window):
            raise TypeError(f"fetch({stream.table}, window): the window is a connectors.batches.Window")
        wanted = stream_named(STREAMS, stream).table
        return (b for b in self.read(window, site_ids, accounts) if b.stream.table == wanted)

    def read(self, window: Window, site_ids: Sequence[str] | None = None,
             accounts: AccountLog | None = None) -> Iterator[Batch]:
        """Yield one batch per stream per site: every site's window is replaced, even when empty (except the
        campaign mediums of a Matomo without the MarketingCampaignsReporting plugin: `campaign_plugin` says so).

        Sites are read `parallel_accounts` at a time through one HTTP client (its rate limit holds across
        them), handed on in configured order; with `accounts`, a failing site is recorded there and skipped
        instead of raised (connectors/parallel.py)."""
        ids = list(site_ids) if site_ids else self.site_ids()
        self.check()
        self.http()  # one client (session, rate limiter) for every thread, created before they start

        def read_site(site_id: str) -> list[Batch]:
            tables = self.parse(site_id, window, self.bulk(site_id, window))
            self.campaign_plugin[site_id] = "present" if CAMPAIGN_MEDIUMS.table in tables else "absent"
            # without the plugin nothing replaces the campaign-medium window: rows loaded earlier stay
            return [Batch(stream, tables[stream.table], window, {"site_id": site_id}) for stream in STREAMS
                    if stream.table in tables]

        def fetch_site(site_id: str) -> list[Batch]:
            # the one place a site's error leaves the connector (raised, or recorded in `accounts` and shown in run
            # metadata): the token is starred out of its message and chain, whatever Matomo echoed
            return scrub_calls(lambda: read_site(site_id), [self._token()])

        yield from fetch_accounts(ids, fetch_site, max_workers=self.settings.parallel_accounts, source=SOURCE,
                                  log=accounts)


def _count(contract: Contract, row: Mapping[str, Any], key: str, *, optional: bool = False) -> int | None:
    """A Matomo count: a whole non-negative number or numeric string; absent only where `optional`."""
    return contract.count(row.get(key), key, optional=optional)


def _amount(contract: Contract, row: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    """A Matomo amount (revenue): a finite non-negative number, numeric string or "12.5%"-style string."""
    value = row.get(key)
    if isinstance(value, str) and value.strip().endswith("%"):
        parsed = contract.number(value.strip()[:-1], key, non_negative=True)
        return None if parsed is None else parsed / 100
    return contract.number(value, key, non_negative=True, optional=optional)


def _explain(envelope: Mapping[str, Any], status: int | None = None) -> str:
    """Matomo's error message, plus what to fix when it is about access (a wrong token or site id)."""
    message = str(envelope.get("message") or "unknown error")
    text = f"Matomo says{f' (HTTP {status})' if status else ''}: {message}"
    if "access" in message.lower() or "token" in message.lower() or "authenticate" in message.lower():
        text += f" ({TOKEN_ADVICE})"
    return text


def classify(exc: BaseException) -> Verdict:
    """The shared HTTP verdicts, except that 401 and 403 are Matomo refusing the token or the access: fatal at once,
    with Matomo's own message (its JSON envelope) and what to fix, as for an HTTP 200 envelope."""
    if isinstance(exc, HttpStatusError) and exc.status in (401, 403):
        excerpt = str(exc).split(": ", 1)[-1]
        try:
            envelope = json.loads(excerpt)
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and envelope.get("result") == "error":
            return Fatal(_explain(envelope, exc.status))
        return Fatal(f"Matomo refused the request (HTTP {exc.status}, not a JSON answer) ({TOKEN_ADVICE})")
    return classify_http(exc)


def _table(rows: list[dict[str, Any]], stream: Stream) -> pa.Table:
    from datetime import date

    for row in rows:
        row["date"] = date.fromisoformat(row["date"])
    return pa.Table.from_pylist(rows, schema=stream.schema)


def connect(settings: Settings) -> MatomoConnector:
    """The Matomo connector of these settings (the source protocol, connectors/source.py)."""
    return MatomoConnector(settings.matomo)


def probe_instance(connector: MatomoConnector) -> list[Finding]:
    """Matomo: API.getMatomoVersion (token and URL), then SitesManager.getSiteFromId per site (view access)."""
    connector = probing(connector, policy=PROBE_POLICY)
    try:
        sites = connector.check()
        endpoint = connector.endpoint()
    except ConfigError as exc:
        return refused(exc)
    try:
        version = connector.call("API.getMatomoVersion", "instance")
    except SourceError as exc:
        if TOKEN_ADVICE in str(exc):  # Matomo answered, and refused the token (HTTP 401 in Matomo 5, or 200)
            return [Finding(False, f"API.getMatomoVersion refused: {first_line(str(exc))}",
                            "MKPI_MATOMO_TOKEN is not accepted: create an auth token in Matomo > "
                            "Personal > Security > Auth tokens for a user with view access")]
        return [Finding(False, f"{endpoint} did not answer: {first_line(str(exc))}",
                        "check MKPI_MATOMO_URL (the instance's base URL, e.g. "
                        "https://matomo.example.com/) and the network")]
    shown = version.get("value") if isinstance(version, dict) else version
    return [Finding(True, f"{endpoint}: Matomo {shown}, token accepted"),
            *(_site_finding(connector, site) for site in sites)]


def _site_finding(connector: MatomoConnector, site: str) -> Finding:
    """Whether the token's user can view one site (its name, currency and time zone when it can)."""
    try:
        answer = connector.call("SitesManager.getSiteFromId", site, idSite=site)
    except SourceError as exc:
        if TOKEN_ADVICE in str(exc):
            return Finding(False, f"site {site}: {first_line(str(exc))}",
                           f"give the token's user view access to site {site} (Matomo > Administration > System > "
                           "Users), or fix MKPI_MATOMO_SITE_IDS")
        return Finding(False, f"site {site}: {first_line(str(exc))}", "retry; check the network")
    answer = answer[0] if isinstance(answer, list) and answer else answer
    name = answer.get("name") if isinstance(answer, dict) else None
    details = ", ".join(str(answer.get(k)) for k in ("currency", "timezone") if isinstance(answer, dict)
                        and answer.get(k))
    return Finding(True, f"site {site}: {name or 'readable'}" + (f" ({details})" if details else ""))


def kpi_accounts(settings: Settings) -> tuple[str, ...]:
    """The configured site ids, as KPI rows name them."""
    return tuple(settings.matomo.site_ids)
