"""Google Ads connector: one `search_stream` per customer per date range, through the official client.

Business purpose: Google Ads is where paid-search money goes (cost, clicks, conversions, value); CPA and
ROAS are only as good as these rows. Conversions are restated for weeks after the click, so the
scheduled run re-reads a 30-day conversion window (configurable) and replaces it.

How it reads (see shared/research/peers.md and emulators.md, Google Ads):
- The official `google-ads` client over gRPC, API version pinned in `google_ads_transport.API_VERSION`;
  the client is built from credentials directly (the `load_from_*` helpers fetch a token at
  construction) and imported lazily (it costs seconds).
- Typed columns: `cost_micros` kept as an integer plus `cost` in currency units, conversions as DOUBLE,
  enums as names, currency and time zone on every row (amounts in different currencies never meet);
  `interactions` beside `clicks`, since Google's conversion rate is conversions / interactions (the two
  differ for Display, Video and Performance Max, where engagements and video views count too).
- `GoogleAdsException`: authentication and authorization errors fail fast with the customer id, Google's
  message and the request id; quota, internal and transient gRPC errors retry with backoff. The
  developer token and OAuth secrets never reach a log line or an error message.
- A customer's streamed answer is bounded like every HTTP answer (MKPI_GOOGLE_ADS_MAX_ANSWER_MB, default 64 MB, of
  serialised responses; fatal past it, named) and in time by the call's `timeout`.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from connectors.batches import Batch, Stream, Window
from connectors.errors import ConfigError
from connectors.google_ads_transport import API_VERSION, google_ads_service, split_host_port
from connectors.google_auth import adc_file
from connectors.http import (
    AnswerGuard,
    Fatal,
    RequestStats,
    Retry,
    RetryPolicy,
    Verdict,
    call_with_retry,
    is_loopback,
    max_answer_bytes,
    redact,
)
from connectors.parallel import AccountLog, fetch_accounts
from connectors.probe import PROBE_TIMEOUT, Finding, first_line, refused
from connectors.raw_tables import ADS_CAMPAIGN_DAILY, ADS_STREAMS
from connectors.settings import GoogleAdsSettings, Settings
from connectors.source import parsed_accounts, stream_named
from connectors.validation import Contract

log = logging.getLogger("mkpi.google_ads")

SOURCE = "google_ads"
SCOPES = ("https://www.googleapis.com/auth/adwords",)
TOKEN_URI = "https://oauth2.googleapis.com/token"
QUERY = (
    "SELECT segments.date, customer.id, customer.currency_code, customer.time_zone, campaign.id, "
    "campaign.name, campaign.status, campaign.advertising_channel_type, metrics.impressions, metrics.clicks, "
    "metrics.interactions, metrics.cost_micros, metrics.conversions, metrics.conversions_value FROM campaign "
    "WHERE segments.date BETWEEN '{start}' AND '{end}'"
)
_RETRYABLE_ERRORS = ("quota_error", "internal_error")
_RETRYABLE_STATUS = ("RESOURCE_EXHAUSTED", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "UNKNOWN")

# The raw table (declared in connectors/raw_tables.py) and the source protocol's list of them.
CAMPAIGN_DAILY = ADS_CAMPAIGN_DAILY
STREAMS = ADS_STREAMS


def normalise_customer_id(raw: str) -> str:
    """`123-456-7890` or `1234567890` -> `1234567890`; anything else is refused before any request."""
    value = raw.strip().replace("-", "")
    if not (value.isdigit() and len(value) == 10):
        raise ConfigError(f"Google Ads customer id {raw!r} is not a 10-digit id: set MKPI_GOOGLE_ADS_CUSTOMER_IDS "
                          "to ids such as 123-456-7890", key="google_ads.customer_ids")
    return value


def resolve_credentials(settings: GoogleAdsSettings) -> Any:
    """OAuth refresh-token credentials, or a service account (optionally impersonating a user), built
    without a network call; a static token against a loopback sandbox when nothing is configured."""
    from google.oauth2 import credentials as oauth2
    from google.oauth2 import service_account

    if settings.refresh_token is not None or settings.client_id or settings.client_secret is not None:
        missing = [name for name, value in (
            ("MKPI_GOOGLE_ADS_CLIENT_ID", settings.client_id),
            ("MKPI_GOOGLE_ADS_CLIENT_SECRET", settings.client_secret),
            ("MKPI_GOOGLE_ADS_REFRESH_TOKEN", settings.refresh_token)) if not value]
        if missing:
            raise ConfigError(f"Google Ads OAuth is incomplete: set {', '.join(missing)}")
        return oauth2.Credentials(
            token=None, refresh_token=settings.refresh_token.reveal(),  # type: ignore[union-attr]
            client_id=settings.client_id, client_secret=settings.client_secret.reveal(),  # type: ignore[union-attr]
            token_uri=TOKEN_URI, scopes=list(SCOPES),
        )
    if settings.credentials_file:
        try:
            credentials = service_account.Credentials.from_service_account_file(
                settings.credentials_file, scopes=list(SCOPES))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Google Ads key file {settings.credentials_file} is not a usable service-account "
                              f"key ({type(exc).__name__}): set MKPI_GOOGLE_ADS_JSON_KEY_FILE") from exc
        return credentials.with_subject(settings.impersonated_email) if settings.impersonated_email else credentials
    host = split_host_port(settings.endpoint)[0] if settings.endpoint else None
    if host and is_loopback(host):
        return oauth2.Credentials(token="sandbox-access-token")
    raise ConfigError(
        "No Google Ads credentials: set MKPI_GOOGLE_ADS_CLIENT_ID, MKPI_GOOGLE_ADS_CLIENT_SECRET and "
        "MKPI_GOOGLE_ADS_REFRESH_TOKEN (OAuth), or MKPI_GOOGLE_ADS_JSON_KEY_FILE (service account), "
        "or MKPI_GOOGLE_ADS_ENDPOINT to a local sandbox"
        + (f" (application default credentials at {adc_file()} are not used for Google Ads)"
           if adc_file().is_file() else "")
    )


def _failure_summary(exc: Any) -> tuple[list[str], str]:
    """(error kinds such as 'quota_error', one readable message) from a GoogleAdsException."""
    kinds: list[str] = []
    messages: list[str] = []
    for error in exc.failure.errors:
        code = type(error.error_code).pb(error.error_code)
        kind = code.WhichOneof("error_code") or "unknown"
        value = getattr(error.error_code, kind, None)
        kinds.append(kind)
        messages.append(f"{kind}.{getattr(value, 'name', value)}: {error.message}")
    return kinds, "; ".join(messages) or str(exc.error)


def _stream_failure(exc: Any) -> Any:
    """The GoogleAdsFailure in the trailing metadata of an error raised while iterating a stream (the library's
    exception interceptor wraps only the call, so a SearchStream error arrives as a plain api_core error)."""
    import importlib

    call = getattr(exc, "response", None)
    metadata = call.trailing_metadata() if call is not None and hasattr(call, "trailing_metadata") else None
    for key, value in metadata or ():
        if key.endswith("errors.googleadsfailure-bin") and key.startswith("google.ads.googleads."):
            errors = importlib.import_module(f"google.ads.googleads.{key.split('.')[3]}.errors.types.errors")
            return errors.GoogleAdsFailure.deserialize(value)
    return None


def _retry_delay(exc: Any) -> float:
    """The longest `QuotaErrorDetails.retry_delay` in a GoogleAdsFailure (seconds); 0 when there is none."""
    delay = 0.0
    for error in exc.failure.errors:
        if "quota_error_details" in error.details:
            delay = max(delay, error.details.quota_error_details.retry_delay.total_seconds())
    return delay


def classify(exc: BaseException) -> Verdict:
    """Quota errors (never sooner than Google's retry_delay), internal and transient gRPC errors retry; the rest
    (authentication, authorization, bad query) is fatal."""
    import grpc
    from google.ads.googleads.errors import GoogleAdsException
    from google.api_core import exceptions as core

    if isinstance(exc, GoogleAdsException):
        kinds, message = _failure_summary(exc)
        status = exc.error.code().name if exc.error is not None else "UNKNOWN"
        text = f"{status} {message} (request id {exc.request_id})"
        log.warning("Google Ads error: %s", text)
        if any(k in _RETRYABLE_ERRORS for k in kinds) or (not kinds and status in _RETRYABLE_STATUS):
            return Retry(text, _retry_delay(exc))
        return Fatal(text)
    if isinstance(exc, core.GoogleAPICallError):  # errors raised while iterating a stream
        status = exc.grpc_status_code.name if exc.grpc_status_code is not None else str(exc.code)
        failure = _stream_failure(exc)
        if failure is not None:
            wrapped = SimpleNamespace(failure=failure, error=None, request_id=failure.request_id)
            kinds, message = _failure_summary(wrapped)
            text = f"{status} {message} (request id {failure.request_id})"
            if any(k in _RETRYABLE_ERRORS for k in kinds):
                return Retry(text, _retry_delay(wrapped))
            return Fatal(text)
        if status in _RETRYABLE_STATUS or isinstance(exc, core.ServerError | core.TooManyRequests):
            return Retry(f"{status} {exc.message}")
        return Fatal(f"{status} {exc.message}")
    if isinstance(exc, grpc.RpcError):
        status = exc.code().name if hasattr(exc, "code") and exc.code() else "UNKNOWN"
        details = exc.details() if hasattr(exc, "details") else ""
        if status in _RETRYABLE_STATUS:
            return Retry(f"{status} {details}")
        return Fatal(f"{status} {details}")
    return Fatal(f"{type(exc).__name__}: {exc}")


def rows_to_table(rows: Sequence[Any], customer_id: str, endpoint: str = "search_stream campaign") -> pa.Table:
    """GoogleAdsRow messages (proto-plus) into the declared Arrow schema.

    gRPC types the fields, so what can still be wrong is content: a row of another customer, a missing or
    impossible `segments.date`, campaign id 0, a negative count or cost, NaN/Infinity conversions, no
    currency or time zone (amounts in different currencies must never meet), an over-long name, or the same
    (date, campaign) twice: each raises InvalidResponse naming the field."""
    contract = Contract(SOURCE, customer_id, endpoint)
    columns: dict[str, list[Any]] = {name: [] for name in CAMPAIGN_DAILY.schema.names}
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        if row.customer.id and str(row.customer.id) != customer_id:
            raise contract.fail("customer.id", "a row of another customer than the one asked for", row.customer.id)
        day = contract.day(row.segments.date, "segments.date")
        if not row.campaign.id or row.campaign.id < 0:
            raise contract.fail("campaign.id", "missing or not a positive id", row.campaign.id)
        contract.unique([(day, row.campaign.id)], "segments.date+campaign.id", seen)
        columns["customer_id"].append(customer_id)
        columns["date"].append(day)
        columns["campaign_id"].append(row.campaign.id)
        columns["campaign_name"].append(contract.text(row.campaign.name, "campaign.name"))
        columns["campaign_status"].append(row.campaign.status.name)
        columns["advertising_channel_type"].append(row.campaign.advertising_channel_type.name)
        for metric in ("impressions", "clicks", "cost_micros", "interactions"):
            columns[metric].append(contract.count(getattr(row.metrics, metric), f"metrics.{metric}"))
        columns["cost"].append(row.metrics.cost_micros / 1_000_000)
        for metric in ("conversions", "conversions_value"):
            columns[metric].append(contract.number(getattr(row.metrics, metric), f"metrics.{metric}",
                                                   non_negative=True))
        columns["currency_code"].append(contract.text(row.customer.currency_code or None, "customer.currency_code",
                                                      optional=False, max_chars=3))
        columns["time_zone"].append(contract.text(row.customer.time_zone or None, "customer.time_zone",
                                                  optional=False, max_chars=64))
    return pa.Table.from_pydict(columns, schema=CAMPAIGN_DAILY.schema)


@dataclass
class GoogleAdsConnector:
    """Reads campaign performance per day for every configured customer into typed batches."""

    settings: GoogleAdsSettings
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    _service: Any = field(default=None, repr=False)

    def customer_ids(self) -> list[str]:
        if not self.settings.customer_ids:
            raise ConfigError("No Google Ads customer configured: set MKPI_GOOGLE_ADS_CUSTOMER_IDS (comma-separated, "
                              "dashes allowed) or google_ads.customer_ids in config/mkpi.yaml")
        return [normalise_customer_id(c) for c in self.settings.customer_ids]

    def _developer_token(self) -> str:
        if self.settings.developer_token is None or not self.settings.developer_token.reveal():
            raise ConfigError("No Google Ads developer token: set MKPI_GOOGLE_ADS_DEVELOPER_TOKEN "
                              "(Google Ads > Tools > API Center)")
        return self.settings.developer_token.reveal()

    def secrets(self) -> list[str]:
        """The credentials this connector holds, to star out of anything it reports."""
        return [s.reveal() for s in (self.settings.developer_token, self.settings.client_secret,
                                     self.settings.refresh_token) if s is not None]

    def check(self) -> list[str]:
        """Validate configuration and build credentials without sending a request."""
        ids = self.customer_ids()
        self._developer_token()
        if self.settings.login_customer_id:
            normalise_customer_id(self.settings.login_customer_id)
        resolve_credentials(self.settings)
        max_answer_bytes(SOURCE)  # MKPI_GOOGLE_ADS_MAX_ANSWER_MB, as the HTTP connectors' checks do
        return ids

    def probe(self) -> list[Finding]:
        """What `mkpi doctor` checks: one one-row query per customer (`probe_customers`)."""
        return probe_customers(self)

    def service(self) -> Any:
        if self._service is None:
            login = normalise_customer_id(self.settings.login_customer_id) if self.settings.login_customer_id else None
            self._service = google_ads_service(
                credentials=resolve_credentials(self.settings), developer_token=self._developer_token(),
                login_customer_id=login, endpoint=self.settings.endpoint, version=API_VERSION,
            )
        return self._service

    def fetch(self, stream: Stream | Window, window: Window | Sequence[str] | None = None,
              customer_ids: Sequence[str] | None = None, accounts: AccountLog | None = None,
              cursor: str | None = None) -> Iterator[Batch]:
        """Two forms: `fetch(window, customer_ids=None, accounts=None)` (`read`, what the Ads step loads) and the
        source protocol's `fetch(stream, window, accounts=...)` (connectors/source.py; Ads writes one table, and
        `cursor` is unused: Ads is read by date)."""
        if isinstance(stream, Window):
            ids = window if window is not None else customer_ids
            return self.read(stream, ids if not isinstance(ids, Window) else None, accounts)
        if not isinstance(window, Window):
            raise TypeError(f"fetch({stream.table}, window): the window is a connectors.batches.Window")
        stream_named(STREAMS, stream)  # an unknown table names the known one
        return self.read(window, customer_ids, accounts)

    def read(self, window: Window, customer_ids: Sequence[str] | None = None,
             accounts: AccountLog | None = None) -> Iterator[Batch]:
        """One search_stream per customer for the whole window; one batch per customer.

        Customers are read `parallel_accounts` at a time over the one (thread-safe) gRPC channel, handed on
        in configured order; with `accounts`, a failing customer is recorded there and skipped instead of
        raised (connectors/parallel.py)."""
        ids = [normalise_customer_id(c) for c in customer_ids] if customer_ids else self.check()
        limit = max_answer_bytes(SOURCE)  # MKPI_GOOGLE_ADS_MAX_ANSWER_MB (checked by `check` too)
        service = self.service()
        query = QUERY.format(start=window.start.isoformat(), end=window.end.isoformat())

        def fetch_customer(customer_id: str) -> Iterator[Batch]:

            def call(customer_id: str = customer_id) -> pa.Table:
                rows: list[Any] = []
                # the HTTP connectors' size bound (connectors/http.py) for this gRPC stream: every streamed
                # response's serialised size counted, the call refused (fatal) past the limit, so a customer's
                # answer cannot grow the process's memory without bound; the gRPC `timeout` bounds its time
                guard = AnswerGuard(SOURCE, self.settings.timeout_seconds, limit)
                for batch in service.search_stream(customer_id=customer_id, query=query,
                                                   timeout=self.settings.timeout_seconds):
                    guard.count(type(batch).pb(batch).ByteSize())
                    rows.extend(batch.results)
                return rows_to_table(rows, customer_id, f"search_stream campaign {window}")

            kwargs: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
            try:
                table = call_with_retry(call, classify=classify, source=SOURCE, account=customer_id,
                                        what=f"search_stream campaign {window}", policy=self.policy,
                                        stats=self.stats, **kwargs)
            except Exception as exc:
                exc.args = tuple(redact(str(a), self.secrets()) for a in exc.args)
                raise
            yield Batch(CAMPAIGN_DAILY, table, window, {"customer_id": customer_id})

        yield from fetch_accounts(ids, fetch_customer, max_workers=self.settings.parallel_accounts, source=SOURCE,
                                  log=accounts)


def connect(settings: Settings) -> GoogleAdsConnector:
    """The Google Ads connector of these settings (the source protocol, connectors/source.py)."""
    return GoogleAdsConnector(settings.google_ads)


def probe_customers(connector: GoogleAdsConnector) -> list[Finding]:
    """Google Ads: `SELECT customer.id FROM customer LIMIT 1` per customer (one row, no metrics)."""
    connector = GoogleAdsConnector(connector.settings)
    try:
        customers = connector.check()
        service = connector.service()
    except ConfigError as exc:
        return refused(exc)
    findings: list[Finding] = []
    for cid in customers:
        try:
            rows = list(service.search(customer_id=cid, query="SELECT customer.id FROM customer LIMIT 1",
                                       timeout=PROBE_TIMEOUT))
        except Exception as exc:  # noqa: BLE001 - every failure becomes advice
            reason = redact(first_line(getattr(classify(exc), "reason", str(exc))), connector.secrets())
            findings.append(Finding(False, f"customer {cid}: query refused: {reason}", ads_fix(reason, cid)))
            continue
        findings.append(Finding(True, f"customer {cid}: query answered ({len(rows)} row)"))
    return findings


def ads_fix(reason: str, cid: str) -> str:
    """What to change for a refused query, from Google Ads' error codes in the reason."""
    upper = reason.upper()
    if "DEVELOPER_TOKEN" in upper:
        return ("MKPI_GOOGLE_ADS_DEVELOPER_TOKEN is not accepted for this account: copy it from Google Ads > Tools > "
                "API Center (a test token only reaches test accounts; production needs Basic access)")
    if "USER_PERMISSION_DENIED" in upper or "PERMISSION_DENIED" in upper:
        return (f"the OAuth user or service account has no access to customer {cid}: grant it in Google Ads > Admin "
                "> Access and security, or set MKPI_GOOGLE_ADS_LOGIN_CUSTOMER_ID to the manager account above it")
    if "UNAUTHENTICATED" in upper or "AUTHENTICATION_ERROR" in upper:
        return ("the credentials were refused: check MKPI_GOOGLE_ADS_CLIENT_ID, MKPI_GOOGLE_ADS_CLIENT_SECRET and "
                "MKPI_GOOGLE_ADS_REFRESH_TOKEN, or MKPI_GOOGLE_ADS_JSON_KEY_FILE")
    if "CUSTOMER_NOT_FOUND" in upper or "NOT_ENABLED" in upper or "INVALID_CUSTOMER_ID" in upper:
        return f"customer {cid} does not exist or is disabled: check MKPI_GOOGLE_ADS_CUSTOMER_IDS"
    if "UNAVAILABLE" in upper or "DEADLINE" in upper:
        return "could not reach Google Ads: check the network, or MKPI_GOOGLE_ADS_ENDPOINT (unset for Google)"
    return "see Google Ads' message above"


def kpi_accounts(settings: Settings) -> tuple[str, ...]:
    """The configured customers as KPI rows name them (an id that does not parse is left out: runs refuse it)."""
    return parsed_accounts(settings.google_ads.customer_ids, normalise_customer_id)
