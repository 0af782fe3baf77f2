"""Google Ads API ``GoogleAdsService`` (``Search``, ``SearchStream``) over real gRPC, for every API version.

Why gRPC and not REST: the official ``google-ads`` client ships only gRPC transports, so a REST fake would
test our own HTTP code instead of the library. The server registers generic method handlers built from the
proto-plus message classes shipped in the package (no protoc, no ``*_pb2_grpc``), for v23-v26, because the
client's default version moves with every package upgrade and the service name on the wire moves with it.

Why it is this faithful: the connector's error handling is only tested if failures look like Google's. A
``GoogleAdsFailure`` goes into the trailing metadata key ``google.ads.googleads.<vNN>.errors.googleadsfailure-bin``
with a ``request-id``, with the gRPC status Google uses for that error family, so the library's exception
interceptor raises a real ``GoogleAdsException``. The same goes for the request metadata it checks
(``developer-token``, ``authorization``, ``login-customer-id``), fixed 10,000-row stream batches, the fixed
Search page size (``page_size`` is rejected with ``PAGE_SIZE_NOT_SUPPORTED`` as in v17+), and rows only for
campaigns with impressions.

Numbers come from ``World.ads_campaign_day``; each successful read bumps a counter that becomes the world's
``version``, so conversions of recent days grow between reads (restatement) while clicks stay put.

Cheap to import: ``grpc`` and ``google.ads`` are imported in ``start()`` and, per API version, on the first
call of that version (about 0.9 s each), so the launcher can import this module eagerly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import json
import math
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Self

from sandbox.httpserver import REDACTED, FaultProfile, fault_retry_after
from sandbox.world import ADS_MANAGER_CUSTOMER_ID, World

if TYPE_CHECKING:
    import grpc

API_VERSIONS = ("v23", "v24", "v25", "v26")
STREAM_BATCH_ROWS = 10_000  # rows per SearchStream response, as Google batches them
SEARCH_PAGE_SIZE = 10_000  # fixed Search page size since v17
_METHOD = re.compile(r"^/google\.ads\.googleads\.(v\d+)\.services\.GoogleAdsService/(Search|SearchStream)$")
_SECRET_METADATA = frozenset({"developer-token", "authorization"})
_CUSTOMER_ID = re.compile(r"^\d{10}$")

# A scripted fault, consumed one per RPC (each Search page is an RPC) before normal handling:
#   ("quota",)                          RESOURCE_EXHAUSTED + QuotaError.RESOURCE_EXHAUSTED (daily operations)
#   ("quota_temporary", seconds=1)      RESOURCE_EXHAUSTED + QuotaError.RESOURCE_TEMPORARILY_EXHAUSTED, retry_delay
#   ("internal",)                       INTERNAL + InternalError.INTERNAL_ERROR
#   ("unavailable",)                    plain UNAVAILABLE status, no GoogleAdsFailure (a GFE/LB hiccup)
#   ("status", "DEADLINE_EXCEEDED")     any plain gRPC status by name, no GoogleAdsFailure
#   ("stall", seconds)                  sleep, then answer normally
# A ``FaultProfile`` (``fault_profile``, or MKPI_SANDBOX_FAULTS) draws the HTTP servers' kinds; here they become:
#   rate_limit with Retry-After N -> quota_temporary with retry_delay N (what Google Ads sends for its rate limits)
#   rate_limit without            -> throttled: plain RESOURCE_EXHAUSTED, no GoogleAdsFailure (a front-end throttle)
#   server_error 500 / 502, 503   -> internal (InternalError.INTERNAL_ERROR) / unavailable
#   reset                         -> reset: UNAVAILABLE "Connection reset by peer" (what gRPC reports for a TCP RST)
#   truncate                      -> truncate: INTERNAL "Received RST_STREAM" (a stream cut short)
#   stall                         -> stall; html, empty and envelope have no gRPC equivalent and are not drawn
Fault = tuple[Any, ...]


def ads_fault(drawn: Fault | None) -> Fault | None:
    """A fault drawn by a ``FaultProfile`` in its gRPC form (see above)."""
    if drawn is None:
        return None
    kind = drawn[0]
    if kind == "rate_limit":
        return ("throttled",) if drawn[1] is None else ("quota_temporary", float(drawn[1]))
    if kind == "server_error":
        return ("internal",) if drawn[1] == 500 else ("unavailable",)
    if kind in ("reset", "truncate", "stall"):
        return drawn
    return None


# Faults that are one plain gRPC status (no GoogleAdsFailure): (status, message)
_PLAIN_FAULTS = {
    "unavailable": ("UNAVAILABLE", "The service is currently unavailable."),
    "throttled": ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "reset": ("UNAVAILABLE", "recvmsg:Connection reset by peer"),
    "truncate": ("INTERNAL", "Received RST_STREAM with error code 2"),
}

# gRPC status and status message Google uses for each GoogleAdsFailure error family.
_FAMILY_STATUS: dict[str, tuple[str, str]] = {
    "authentication_error": ("UNAUTHENTICATED", "Request is missing required authentication credential. "
                                                "Expected OAuth 2 access token, login cookie or other valid "
                                                "authentication credential."),
    "authorization_error": ("PERMISSION_DENIED", "The caller does not have permission"),
    "request_error": ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    "query_error": ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    "quota_error": ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "internal_error": ("INTERNAL", "Internal error encountered."),
}

# ---- GAQL catalogue ----------------------------------------------------------------------------------

_ATTRIBUTE = "attribute"
_SEGMENT = "segment"
_METRIC = "metric"
FIELDS: dict[str, str] = {
    "campaign.resource_name": _ATTRIBUTE,
    "campaign.id": _ATTRIBUTE,
    "campaign.name": _ATTRIBUTE,
    "campaign.status": _ATTRIBUTE,
    "campaign.advertising_channel_type": _ATTRIBUTE,
    "customer.resource_name": _ATTRIBUTE,
    "customer.id": _ATTRIBUTE,
    "customer.descriptive_name": _ATTRIBUTE,
    "customer.currency_code": _ATTRIBUTE,
    "customer.time_zone": _ATTRIBUTE,
    "customer.manager": _ATTRIBUTE,
    "segments.date": _SEGMENT,
    "metrics.impressions": _METRIC,
    "metrics.clicks": _METRIC,
    "metrics.cost_micros": _METRIC,
    "metrics.conversions": _METRIC,
    "metrics.conversions_value": _METRIC,
    # "The number of interactions. An interaction is the main user action associated with an ad format-clicks for
    # text and shopping ads, views for video ads, and so on." (googleapis/googleapis
    # google/ads/googleads/v26/common/metrics.proto, field 223): clicks for Search and Shopping, more for Display
    # and Performance Max (World.ads_campaign_day).
    "metrics.interactions": _METRIC,
    "metrics.ctr": _METRIC,
    "metrics.average_cpc": _METRIC,
}
# Resources usable in FROM, and the field prefixes each one may select.
RESOURCES: dict[str, tuple[str, ...]] = {
    "campaign": ("campaign", "customer", "segments", "metrics"),
    "customer": ("customer", "segments", "metrics"),
}
_ADDITIVE = ("metrics.impressions", "metrics.clicks", "metrics.cost_micros", "metrics.conversions",
             "metrics.conversions_value", "metrics.interactions")
_KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "ORDER", "BY", "ASC", "DESC", "LIMIT", "BETWEEN", "IN",
                       "NOT", "LIKE", "DURING", "PARAMETERS"})
_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<unterminated>['"])
  | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op>!=|>=|<=|=|>|<)
  | (?P<punct>[(),])
)""", re.X)


class AdsApiError(Exception):
    """One GoogleAdsError: ``family`` is the ErrorCode oneof field, ``code`` its enum value name."""

    def __init__(
        self,
        family: str,
        code: str,
        message: str,
        *,
        location: Sequence[str] = (),
        trigger: str | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.family = family
        self.code = code
        self.message = message
        self.location = tuple(location)
        self.trigger = trigger
        self.retry_seconds = retry_seconds


def _query_error(code: str, message: str, trigger: str | None = None) -> AdsApiError:
    return AdsApiError("query_error", code, message, location=("query",), trigger=trigger)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # =, !=, >, >=, <, <=, IN, NOT IN, LIKE, NOT LIKE, BETWEEN, DURING
    values: tuple[Any, ...]


@dataclass(frozen=True)
class GaqlQuery:
    fields: tuple[str, ...]
    resource: str
    conditions: tuple[Condition, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()  # (field, descending)
    limit: int | None = None


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, name, op, punct
    text: str
    pos: int


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        m = _TOKEN.match(query, pos)
        if m is None or m.lastgroup is None:
            bad = query[pos:].lstrip()[:1]
            raise _query_error("BAD_SYMBOL", f"Error in query: unexpected symbol {bad!r} at {pos}.", bad)
        if m.lastgroup == "unterminated":
            raise _query_error("STRING_NOT_TERMINATED", f"Error in query: string starting at {m.start(1)} "
                                                        "is not terminated.")
        tokens.append(_Token(m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent over the GAQL subset: SELECT .. FROM .. [WHERE ..] [ORDER BY ..] [LIMIT n]."""

    def __init__(self, query: str) -> None:
        self.tokens = _tokenize(query)
        self.i = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _next(self, what: str) -> _Token:
        tok = self._peek()
        if tok is None:
            raise _query_error("UNEXPECTED_END_OF_QUERY", f"Error in query: unexpected end of query, expected "
                                                          f"{what}.")
        self.i += 1
        return tok

    def _is_kw(self, word: str) -> bool:
        tok = self._peek()
        return tok is not None and tok.kind == "name" and tok.text.upper() == word

    def _expect_kw(self, word: str, code: str) -> None:
        if not self._is_kw(word):
            tok = self._peek()
            where = f"found {tok.text!r} at {tok.pos}" if tok else "found end of query"
            raise _query_error(code, f"Error in query: expected {word}, {where}.", tok.text if tok else None)
        self.i += 1

    def _field(self) -> str:
        tok = self._next("a field name")
        if tok.kind != "name" or tok.text.upper() in _KEYWORDS:
            raise _query_error("UNEXPECTED_INPUT", f"Error in query: expected a field name, found {tok.text!r} "
                                                   f"at {tok.pos}.", tok.text)
        return tok.text

    def _value(self) -> Any:
        tok = self._next("a value")
        if tok.kind == "string":
            return re.sub(r"\\(.)", r"\1", tok.text[1:-1])
        if tok.kind == "number":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "name" and tok.text.upper() not in _KEYWORDS:
            return tok.text  # an enum constant (ENABLED) or a DURING constant (LAST_7_DAYS)
        raise _query_error("BAD_VALUE", f"Error in query: expected a value, found {tok.text!r} at {tok.pos}.",
                           tok.text)

    def _list(self) -> tuple[Any, ...]:
        tok = self._next("(")
        if tok.text != "(":
            raise _query_error("EXPECTED_LIST", f"Error in query: expected a list '(...)' at {tok.pos}.", tok.text)
        values = [self._value()]
        while True:
            tok = self._next(") or ,")
            if tok.text == ")":
                return tuple(values)
            if tok.text != ",":
                raise _query_error("UNEXPECTED_INPUT", f"Error in query: unexpected {tok.text!r} in list at "
                                                       f"{tok.pos}.", tok.text)
            values.append(self._value())

    def _condition(self) -> Condition:
        name = self._field()
        tok = self._next("an operator")
        upper = tok.text.upper()
        if tok.kind == "op":
            return Condition(name, tok.text, (self._value(),))
        if tok.kind == "name" and upper == "BETWEEN":
            low = self._value()
            self._expect_kw("AND", "EXPECTED_AND")
            return Condition(name, "BETWEEN", (low, self._value()))
        if tok.kind == "name" and upper == "IN":
            return Condition(name, "IN", self._list())
        if tok.kind == "name" and upper == "LIKE":
            return Condition(name, "LIKE", (self._value(),))
        if tok.kind == "name" and upper == "DURING":
            return Condition(name, "DURING", (self._value(),))
        if tok.kind == "name" and upper == "NOT":
            nxt = self._next("IN or LIKE")
            if nxt.text.upper() == "IN":
                return Condition(name, "NOT IN", self._list())
            if nxt.text.upper() == "LIKE":
                return Condition(name, "NOT LIKE", (self._value(),))
            tok = nxt
        raise _query_error("BAD_OPERATOR", f"Error in query: invalid operator {tok.text!r} at {tok.pos}.", tok.text)

    def parse(self) -> GaqlQuery:
        self._expect_kw("SELECT", "EXPECTED_SELECT")
        fields = [self._field()]
        while (tok := self._peek()) is not None and tok.text == ",":
            self.i += 1
            fields.append(self._field())
        self._expect_kw("FROM", "EXPECTED_FROM")
        resource = self._field()
        conditions: list[Condition] = []
        if self._is_kw("WHERE"):
            self.i += 1
            conditions.append(self._condition())
            while self._is_kw("AND"):
                self.i += 1
                conditions.append(self._condition())
        order_by: list[tuple[str, bool]] = []
        if self._is_kw("ORDER"):
            self.i += 1
            self._expect_kw("BY", "EXPECTED_BY")
            while True:
                name = self._field()
                desc = False
                if self._is_kw("ASC") or self._is_kw("DESC"):
                    desc = self._next("ASC or DESC").text.upper() == "DESC"
                order_by.append((name, desc))
                if (tok := self._peek()) is None or tok.text != ",":
                    break
                self.i += 1
        limit = None
        if self._is_kw("LIMIT"):
            self.i += 1
            tok = self._next("a number")
            if tok.kind != "number" or "." in tok.text:
                raise _query_error("BAD_LIMIT_VALUE", f"Error in query: invalid LIMIT {tok.text!r}.", tok.text)
            limit = int(tok.text)
            if limit <= 0:
                raise _query_error("LIMIT_VALUE_TOO_LOW", "Error in query: LIMIT must be at least 1.", tok.text)
        if (tok := self._peek()) is not None:
            raise _query_error("UNEXPECTED_INPUT", f"Error in query: unexpected input {tok.text!r} at {tok.pos}.",
                               tok.text)
        return GaqlQuery(tuple(fields), resource, tuple(conditions), tuple(order_by), limit)


def parse_gaql(query: str) -> GaqlQuery:
    """Parse the supported GAQL subset; raises AdsApiError (query_error) like Google for malformed input."""
    return _Parser(query).parse()


def _parse_date(value: Any) -> date:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _query_error("INVALID_DATE_FORMAT", f"Error in query: invalid date {value!r}; use 'YYYY-MM-DD'.",
                       str(value))


def during_range(constant: str, today: date) -> tuple[date, date]:
    """Google's DURING constants relative to ``today``; LAST_N_DAYS ends yesterday, as in Google Ads."""
    monday = today - timedelta(days=today.weekday())
    first_of_month = today.replace(day=1)
    last_month_end = first_of_month - timedelta(days=1)
    ranges = {
        "TODAY": (today, today),
        "YESTERDAY": (today - timedelta(days=1), today - timedelta(days=1)),
        "LAST_7_DAYS": (today - timedelta(days=7), today - timedelta(days=1)),
        "LAST_14_DAYS": (today - timedelta(days=14), today - timedelta(days=1)),
        "LAST_30_DAYS": (today - timedelta(days=30), today - timedelta(days=1)),
        "THIS_WEEK_MON_TODAY": (monday, today),
        "THIS_WEEK_SUN_TODAY": (today - timedelta(days=(today.weekday() + 1) % 7), today),
        "LAST_WEEK_MON_SUN": (monday - timedelta(days=7), monday - timedelta(days=1)),
        "LAST_WEEK_SUN_SAT": (monday - timedelta(days=8), monday - timedelta(days=2)),
        "THIS_MONTH": (first_of_month, today),
        "LAST_MONTH": (last_month_end.replace(day=1), last_month_end),
    }
    if constant not in ranges:
        raise _query_error("INVALID_VALUE_WITH_DURING_OPERATOR",
                           f"Error in query: invalid DURING value {constant!r}.", str(constant))
    return ranges[constant]


def _like(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern),
                      re.S)


def _matches(value: Any, cond: Condition) -> bool:
    """One WHERE condition against one row value (numbers compare numerically, the rest as strings)."""
    def coerce(v: Any) -> Any:
        if isinstance(value, bool):
            return str(v).lower() == "true" if not isinstance(v, bool) else v
        if isinstance(value, int | float):
            return float(v)
        return str(v)

    op, values = cond.op, cond.values
    try:
        vals = [coerce(v) for v in values]
    except ValueError:
        raise _query_error("BAD_NUMBER", f"Error in query: {values!r} is not a number for {cond.field}.") from None
    if op in ("LIKE", "NOT LIKE"):
        hit = _like(str(vals[0])).fullmatch(str(value)) is not None
        return hit if op == "LIKE" else not hit
    if op == "IN":
        return value in vals
    if op == "NOT IN":
        return value not in vals
    if op == "BETWEEN":
        return bool(vals[0] <= value <= vals[1])
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    }
    return compare[op](value, vals[0])


# ---- request log ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdsRequest:
    """One RPC as the server saw it, with developer-token and authorization values redacted."""

    method: str  # "SearchStream" or "Search"
    version: str  # "v26"
    customer_id: str
    query: str
    page_token: str
    metadata: dict[str, str]
    request_id: str
    fault: str | None
    retry_after: float | None = None  # the retry_delay a quota fault carried


@dataclass
class _Prepared:
    """A validated request: rows already computed, plus what the response needs."""

    version: str
    request_id: str
    query: GaqlQuery
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0  # rows before LIMIT


# ---- the server ------------------------------------------------------------------------------------------


class _GenericHandler:
    """``grpc.GenericRpcHandler`` by duck typing (grpc only checks for ``service``), so grpc loads lazily."""

    def __init__(self, owner: AdsServer) -> None:
        self.owner = owner

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        m = _METHOD.match(details.method)
        if m is None or m.group(1) not in API_VERSIONS:
            return None  # the client sees UNIMPLEMENTED, as for a version Google has sunset
        return self.owner._method_handler(m.group(1), m.group(2))


class AdsServer:
    """Google Ads ``GoogleAdsService`` emulator; see the module docstring. Thread-safe."""

    name = "google_ads"

    def __init__(
        self,
        world: World,
        *,
        developer_token: str,
        login_customer_id: str | None = None,
        customers: Sequence[str] | None = None,
        search_page_size: int = SEARCH_PAGE_SIZE,
    ) -> None:
        known = world.ads_customers()
        served = list(customers) if customers is not None else list(known)
        unknown = [c for c in served if c not in known]
        if unknown:
            raise ValueError(f"customers not in the world: {unknown}; known: {list(known)}")
        if not developer_token:
            raise ValueError("developer_token must be non-empty")
        self.world = world
        self.developer_token = developer_token
        self.login_customer_id = login_customer_id
        self.customers = tuple(served)
        self.search_page_size = search_page_size
        self.faults: queue.Queue[Fault] = queue.Queue()
        self.fault_profile: FaultProfile | None = FaultProfile.from_env()
        self._lock = threading.Lock()
        self._log_entries: list[AdsRequest] = []
        self._reads = 0
        self._server: grpc.Server | None = None
        self._port: int | None = None
        self._versions: dict[str, ModuleType] = {}
        self._handlers: dict[tuple[str, str], grpc.RpcMethodHandler] = {}
        self._load_lock = threading.Lock()

    @classmethod
    def for_sandbox(cls, world: World) -> AdsServer:
        """A fresh random developer token per start, reached through the world's manager account."""
        return cls(world, developer_token=secrets.token_hex(11), login_customer_id=ADS_MANAGER_CUSTOMER_ID)

    # ---- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        from concurrent import futures

        import grpc

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{self.name}-server"),
            handlers=[_GenericHandler(self)],
            options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
        )
        # Local credentials: the connector uses grpc.local_channel_credentials on loopback, never plaintext.
        creds = grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        self._port = server.add_secure_port("127.0.0.1:0", creds)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=0.5).wait(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None or self._port is None:
            raise RuntimeError(f"{self.name} server is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """``host:port``, the form ``MKPI_GOOGLE_ADS_ENDPOINT`` and ``GoogleAdsClient(endpoint=...)`` take."""
        return f"127.0.0.1:{self.port}"

    url = endpoint  # the HTTP servers' name for "where to connect"; gRPC has no scheme

    def env(self) -> dict[str, str]:
        """Environment variables that point the Google Ads connector at this server."""
        env = {
            "MKPI_GOOGLE_ADS_ENDPOINT": self.endpoint,
            "MKPI_GOOGLE_ADS_CUSTOMER_IDS": ",".join(self.customers),
            "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN": self.developer_token,
        }
        if self.login_customer_id:
            env["MKPI_GOOGLE_ADS_LOGIN_CUSTOMER_ID"] = self.login_customer_id
        return env

    # ---- faults, log, reads --------------------------------------------------------------------------

    def add_fault(self, *fault: Any) -> None:
        """Script one fault, e.g. ``add_fault("quota")``; same as ``faults.put(("quota",))``."""
        self.faults.put(tuple(fault))

    def _next_fault(self, key: str = "") -> Fault | None:
        """The next scripted fault, else one drawn by the fault profile for this RPC (``key``), else None."""
        try:
            return self.faults.get_nowait()
        except queue.Empty:
            pass
        profile = self.fault_profile
        return ads_fault(profile.draw(key)) if profile is not None else None

    @property
    def requests(self) -> list[AdsRequest]:
        with self._lock:
            return list(self._log_entries)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._log_entries)

    def clear_log(self) -> None:
        with self._lock:
            self._log_entries.clear()

    @property
    def reads(self) -> int:
        """Successful queries so far (Search pages after the first excluded); the next one reads this version."""
        with self._lock:
            return self._reads

    # ---- gRPC plumbing -------------------------------------------------------------------------------

    def _types(self, version: str) -> ModuleType:
        """The version's ``google_ads_service`` types module, imported on first use (~0.9 s each)."""
        module = self._versions.get(version)
        if module is None:
            with self._load_lock:
                module = self._versions.get(version)
                if module is None:
                    module = importlib.import_module(f"google.ads.googleads.{version}.services.types."
                                                     "google_ads_service")
                    importlib.import_module(f"google.ads.googleads.{version}.errors.types.errors")
                    self._versions[version] = module
        return module

    def _method_handler(self, version: str, method: str) -> grpc.RpcMethodHandler:
        key = (version, method)
        handler = self._handlers.get(key)
        if handler is not None:
            return handler
        import grpc

        types = self._types(version)

        def serialize(message: Any) -> bytes:
            return bytes(message.SerializeToString())

        if method == "SearchStream":
            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                return self._search_stream(version, request, context)

            handler = grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=types.SearchGoogleAdsStreamRequest.deserialize,
                response_serializer=serialize)
        else:
            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                return self._search(version, request, context)

            handler = grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=types.SearchGoogleAdsRequest.deserialize,
                response_serializer=serialize)
        self._handlers[key] = handler
        return handler

    def _abort(self, context: grpc.ServicerContext, version: str, request_id: str, err: AdsApiError) -> None:
        """Trailing GoogleAdsFailure + request-id, then abort: what the client turns into GoogleAdsException."""
        import grpc

        errors = importlib.import_module(f"google.ads.googleads.{version}.errors.types.errors")
        error = errors.GoogleAdsError(error_code=errors.ErrorCode(**{err.family: err.code}), message=err.message)
        if err.location:
            error.location = errors.ErrorLocation(field_path_elements=[
                errors.ErrorLocation.FieldPathElement(field_name=name) for name in err.location])
        if err.trigger is not None:
            error.trigger.string_value = err.trigger
        if err.retry_seconds is not None:
            seconds = int(err.retry_seconds)
            error.details = errors.ErrorDetails(quota_error_details=errors.QuotaErrorDetails(
                rate_scope="DEVELOPER", rate_name="Requests per developer token",
                retry_delay={"seconds": seconds, "nanos": int((err.retry_seconds - seconds) * 1e9)}))
        failure = errors.GoogleAdsFailure(errors=[error], request_id=request_id)
        context.set_trailing_metadata((
            (f"google.ads.googleads.{version}.errors.googleadsfailure-bin", errors.GoogleAdsFailure.serialize(failure)),
            ("request-id", request_id),
        ))
        status, message = _FAMILY_STATUS[err.family]
        context.abort(getattr(grpc.StatusCode, status), message)

    def _begin(
        self, version: str, method: str, request: Any, context: grpc.ServicerContext, request_id: str,
        page_token: str = "",
    ) -> None:
        """Log the call, apply a scripted fault (raising or aborting), then check the request metadata."""
        import grpc

        metadata: dict[str, str] = {}
        for key, value in context.invocation_metadata():
            metadata[key] = value if isinstance(value, str) else value.decode("latin-1")
        fault = self._next_fault(f"{method} {request.customer_id} {request.query} {page_token}")
        logged = {k: (REDACTED if k in _SECRET_METADATA else v) for k, v in metadata.items()}
        entry = AdsRequest(method, version, request.customer_id, request.query, page_token, logged, request_id,
                           str(fault[0]) if fault else None, fault_retry_after(fault))
        with self._lock:
            self._log_entries.append(entry)
        if fault is not None:
            kind = fault[0]
            if kind == "stall":
                time.sleep(float(fault[1]))
            elif kind == "quota":
                raise AdsApiError("quota_error", "RESOURCE_EXHAUSTED",
                                  "Number of operations for basic access has been exceeded.")
            elif kind == "quota_temporary":
                retry = float(fault[1]) if len(fault) > 1 else 1.0
                raise AdsApiError("quota_error", "RESOURCE_TEMPORARILY_EXHAUSTED",
                                  "Too many requests. Retry in " f"{retry:g} seconds.", retry_seconds=retry)
            elif kind == "internal":
                raise AdsApiError("internal_error", "INTERNAL_ERROR",
                                  "An internal error has occurred. Please retry your request.")
            elif kind in _PLAIN_FAULTS:
                status, message = _PLAIN_FAULTS[kind]
                context.abort(getattr(grpc.StatusCode, status), message)
            elif kind == "status":
                context.abort(getattr(grpc.StatusCode, str(fault[1])), str(fault[2]) if len(fault) > 2 else "")
            else:
                context.abort(grpc.StatusCode.INTERNAL, f"unknown scripted fault {fault!r}")
        self._check_access(request.customer_id, metadata)

    def _check_access(self, customer_id: str, metadata: dict[str, str]) -> None:
        auth = metadata.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if not auth or scheme.lower() != "bearer":
            raise AdsApiError("authentication_error", "OAUTH_TOKEN_HEADER_INVALID",
                              "Oauth token HTTP header is malformed.")
        if not token.strip():
            raise AdsApiError("authentication_error", "OAUTH_TOKEN_INVALID", "Oauth token is invalid.")
        dev_token = metadata.get("developer-token")
        if not dev_token:
            raise AdsApiError("request_error", "DEVELOPER_TOKEN_PARAMETER_MISSING",
                              "Developer token parameter is missing from the request.")
        if not secrets.compare_digest(dev_token.encode(), self.developer_token.encode()):
            raise AdsApiError("authentication_error", "DEVELOPER_TOKEN_INVALID", "The developer token is not valid.")
        if not _CUSTOMER_ID.fullmatch(customer_id or ""):
            raise AdsApiError("request_error", "INVALID_CUSTOMER_ID",
                              "Invalid customer ID: use ten digits without dashes.", location=("customer_id",),
                              trigger=customer_id)
        login = metadata.get("login-customer-id")
        expected_login = self.login_customer_id or customer_id  # without a manager: direct access only
        if (login or expected_login) != expected_login or (self.login_customer_id and not login):
            hint = (" Note: If you're accessing a client customer, the manager's customer id must be set in "
                    "the 'login-customer-id' header.")
            raise AdsApiError("authorization_error", "USER_PERMISSION_DENIED",
                              f"User doesn't have permission to access customer.{hint}")
        if customer_id not in self.customers:
            raise AdsApiError("authorization_error", "USER_PERMISSION_DENIED",
                              "User doesn't have permission to access customer.")

    # ---- RPCs ----------------------------------------------------------------------------------------

    def _search_stream(self, version: str, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        request_id = secrets.token_urlsafe(16)  # 22 characters, like Google's
        try:
            self._begin(version, "SearchStream", request, context, request_id)
            with self._lock:
                read_version = self._reads
            prepared = self._prepare(version, request_id, request.customer_id, request.query, read_version)
        except AdsApiError as err:
            self._abort(context, version, request_id, err)
            return
        with self._lock:
            self._reads += 1
        types = self._types(version)
        setting = request.summary_row_setting.name
        rows = [] if setting == "SUMMARY_ROW_ONLY" else prepared.rows
        context.send_initial_metadata((("request-id", request_id),))
        batches = [rows[i:i + STREAM_BATCH_ROWS] for i in range(0, len(rows), STREAM_BATCH_ROWS)] or [[]]
        for n, batch in enumerate(batches):
            response = types.SearchGoogleAdsStreamResponse.pb()()
            response.results.extend(self._to_row(types, prepared.query, row) for row in batch)
            response.field_mask.paths.extend(prepared.query.fields)
            response.request_id = request_id
            if n == len(batches) - 1 and setting in ("SUMMARY_ROW_WITH_RESULTS", "SUMMARY_ROW_ONLY"):
                response.summary_row.CopyFrom(self._summary_row(types, prepared))
            yield response

    def _search(self, version: str, request: Any, context: grpc.ServicerContext) -> Any:
        request_id = secrets.token_urlsafe(16)
        try:
            self._begin(version, "Search", request, context, request_id, request.page_token)
            if request.page_size:
                raise AdsApiError("request_error", "PAGE_SIZE_NOT_SUPPORTED",
                                  "Setting the page size is not supported. Search Responses will have fixed "
                                  "page size of '10000' rows.", location=("page_size",))
            offset, read_version = 0, None
            if request.page_token:
                offset, read_version = self._decode_page_token(request.page_token, request.customer_id,
                                                               request.query)
            if read_version is None:
                with self._lock:
                    read_version = self._reads
            prepared = self._prepare(version, request_id, request.customer_id, request.query, read_version)
        except AdsApiError as err:
            self._abort(context, version, request_id, err)
            return None
        types = self._types(version)
        response = types.SearchGoogleAdsResponse.pb()()
        context.send_initial_metadata((("request-id", request_id),))
        if request.validate_only:
            return response
        if not request.page_token:
            with self._lock:
                self._reads += 1
        settings = request.search_settings
        page = prepared.rows[offset:offset + self.search_page_size]
        last = offset + len(page) >= len(prepared.rows)
        if not settings.omit_results:
            response.results.extend(self._to_row(types, prepared.query, row) for row in page)
        if not last:
            response.next_page_token = self._encode_page_token(offset + len(page), read_version,
                                                               request.customer_id, request.query)
        response.field_mask.paths.extend(prepared.query.fields)
        if settings.return_total_results_count:
            response.total_results_count = prepared.total
        if settings.return_summary_row and last:
            response.summary_row.CopyFrom(self._summary_row(types, prepared))
        return response

    @staticmethod
    def _encode_page_token(offset: int, read_version: int, customer_id: str, query: str) -> str:
        digest = hashlib.sha256(f"{customer_id}|{query}".encode()).hexdigest()[:16]
        raw = json.dumps({"o": offset, "v": read_version, "q": digest}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode_page_token(token: str, customer_id: str, query: str) -> tuple[int, int]:
        """Offset and world version of a token; the same query and customer are required, as in Google."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            digest = hashlib.sha256(f"{customer_id}|{query}".encode()).hexdigest()[:16]
            if raw["q"] != digest:
                raise ValueError("token of another query")
            return int(raw["o"]), int(raw["v"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise AdsApiError("request_error", "INVALID_PAGE_TOKEN", "Page token is invalid.",
                              location=("page_token",), trigger=token) from None

    # ---- query evaluation ----------------------------------------------------------------------------

    def _prepare(self, version: str, request_id: str, customer_id: str, query_text: str, read_version: int
                 ) -> _Prepared:
        query = parse_gaql(query_text)
        self._validate(version, query)
        rows = self._rows(customer_id, query, read_version)
        rows = self._order(rows, query)
        total = len(rows)
        if query.limit is not None:
            rows = rows[:query.limit]
        return _Prepared(version, request_id, query, rows, total)

    def _validate(self, version: str, query: GaqlQuery) -> None:
        """Field names against the sandbox catalogue and the real proto, the way Google words its errors."""
        types = self._types(version)
        row_descriptor = types.GoogleAdsRow.pb().DESCRIPTOR
        if query.resource not in RESOURCES:
            real = query.resource in row_descriptor.fields_by_name
            detail = " (a real resource the sandbox does not emulate)" if real else ""
            raise _query_error("BAD_RESOURCE_TYPE_IN_FROM_CLAUSE",
                               f"Error in FROM clause: invalid resource name '{query.resource}'{detail}.",
                               query.resource)
        allowed = RESOURCES[query.resource]
        clauses = (("SELECT", "PROHIBITED_RESOURCE_TYPE_IN_SELECT_CLAUSE", query.fields),
                   ("WHERE", "PROHIBITED_RESOURCE_TYPE_IN_WHERE_CLAUSE", [c.field for c in query.conditions]),
                   ("ORDER BY", "PROHIBITED_FIELD_IN_ORDER_BY_CLAUSE", [f for f, _ in query.order_by]))
        for clause, prohibited, names in clauses:
            for name in names:
                prefix, _, leaf = name.partition(".")
                if name not in FIELDS:
                    message_fd = row_descriptor.fields_by_name.get(prefix)
                    real = message_fd is not None and leaf in message_fd.message_type.fields_by_name
                    detail = " (a real field the sandbox does not emulate)" if real else ""
                    raise _query_error("UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{name}'{detail}.",
                                       name)
                if prefix not in allowed:
                    raise _query_error(prohibited, f"Error in {clause} clause: '{name}' cannot be used with "
                                                   f"resource '{query.resource}'.", name)
        if len(set(query.fields)) != len(query.fields):
            raise _query_error("UNEXPECTED_INPUT", "Error in SELECT clause: duplicate field.")
        for cond in query.conditions:
            fd = self._field_descriptor(row_descriptor, cond.field)
            if cond.field == "segments.date":
                if cond.op in ("LIKE", "NOT LIKE"):
                    raise _query_error("OPERATOR_FIELD_MISMATCH", "Error in WHERE clause: LIKE on segments.date.")
                if cond.op != "DURING":
                    for v in cond.values:
                        _parse_date(v)
            elif cond.op == "DURING":
                raise _query_error("OPERATOR_FIELD_MISMATCH", f"Error in WHERE clause: DURING on {cond.field}.")
            elif fd.enum_type is not None:
                for v in cond.values:
                    if str(v) not in fd.enum_type.values_by_name:
                        raise _query_error("BAD_ENUM_CONSTANT", f"Error in WHERE clause: invalid enum constant "
                                                                f"'{v}' for {cond.field}.", str(v))

    @staticmethod
    def _field_descriptor(row_descriptor: Any, name: str) -> Any:
        prefix, _, leaf = name.partition(".")
        return row_descriptor.fields_by_name[prefix].message_type.fields_by_name[leaf]

    def _date_bounds(self, customer_id: str, query: GaqlQuery) -> tuple[date, date] | None:
        """Days to read, or None for an attribute-only query (no metrics, segments or date filter)."""
        date_conds = [c for c in query.conditions if c.field == "segments.date"]
        needs_facts = bool(date_conds) or any(
            FIELDS[f] != _ATTRIBUTE for f in (*query.fields, *(c.field for c in query.conditions),
                                              *(f for f, _ in query.order_by)))
        if not needs_facts:
            return None
        today = self.world.today
        low: date | None = None
        high: date | None = None
        for cond in date_conds:
            if cond.op == "DURING":
                lo, hi = during_range(str(cond.values[0]), today)
            elif cond.op in ("=", "IN", "BETWEEN"):
                days = [_parse_date(v) for v in cond.values]
                lo, hi = min(days), max(days)
            elif cond.op in (">", ">="):
                lo, hi = _parse_date(cond.values[0]) + timedelta(days=cond.op == ">"), None
            elif cond.op in ("<", "<="):
                lo, hi = None, _parse_date(cond.values[0]) - timedelta(days=cond.op == "<")
            else:  # != and NOT IN narrow nothing; the row filter applies them
                lo = hi = None
            low = lo if low is None or (lo is not None and lo > low) else low
            high = hi if high is None or (hi is not None and hi < high) else high
        if "segments.date" in query.fields and (low is None or high is None):
            raise _query_error("EXPECTED_FILTERS_ON_DATE_RANGE", "Error in query: segments.date in the SELECT "
                                                                 "clause requires a finite date range filter.")
        campaigns = self.world.ads_campaigns(customer_id)
        first = min((c.start for c in campaigns), default=today)
        # Without a date filter, metrics are lifetime totals, as in Google Ads.
        low = max(low or first, first)
        high = min(high or today, today)
        return low, high

    def _rows(self, customer_id: str, query: GaqlQuery, read_version: int) -> list[dict[str, Any]]:
        """Flat rows (GAQL field name -> value), grouped per resource and selected segments, filtered."""
        account = self.world.ads_customers()[customer_id]
        base = {
            "customer.resource_name": f"customers/{customer_id}",
            "customer.id": int(customer_id),
            "customer.descriptive_name": account.descriptive_name,
            "customer.currency_code": account.currency_code,
            "customer.time_zone": account.time_zone,
            "customer.manager": False,
        }
        metric_conds = [c for c in query.conditions if FIELDS[c.field] == _METRIC]
        fact_conds = [c for c in query.conditions if FIELDS[c.field] != _METRIC]
        bounds = self._date_bounds(customer_id, query)
        if bounds is None:
            if query.resource == "customer":
                flat = [dict(base)]
            else:
                flat = [{**base, **self._campaign_fields(customer_id, c.campaign_id, c.name, c.status,
                                                         c.advertising_channel_type)}
                        for c in self.world.ads_campaigns(customer_id)]
            return [r for r in flat if all(_matches(r[c.field], c) for c in fact_conds)]
        low, high = bounds
        today = self.world.today
        for cond in fact_conds:  # resolve DURING once, so the row filter compares plain dates
            if cond.op == "DURING":
                lo, hi = during_range(str(cond.values[0]), today)
                fact_conds[fact_conds.index(cond)] = Condition(cond.field, "BETWEEN", (lo.isoformat(), hi.isoformat()))
        by_date = "segments.date" in query.fields
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        day = low
        while day <= high:
            for fact in self.world.ads_campaign_day(customer_id, day, read_version):
                if fact.impressions <= 0:
                    continue  # Google Ads has no row for a campaign without impressions
                row = {**base, **self._campaign_fields(customer_id, fact.campaign_id, fact.campaign_name,
                                                       fact.status, fact.advertising_channel_type),
                       "segments.date": day.isoformat(),
                       "metrics.impressions": fact.impressions, "metrics.clicks": fact.clicks,
                       "metrics.cost_micros": fact.cost_micros, "metrics.conversions": fact.conversions,
                       "metrics.conversions_value": fact.conversions_value,
                       "metrics.interactions": fact.interactions}
                if not all(_matches(row[c.field], c) for c in fact_conds):
                    continue
                key = (fact.campaign_id if query.resource == "campaign" else 0, day if by_date else None)
                group = groups.get(key)
                if group is None:
                    groups[key] = row
                else:
                    for name in _ADDITIVE:
                        group[name] += row[name]
            day += timedelta(days=1)
        out = []
        for row in groups.values():
            if not by_date:
                row.pop("segments.date")
            _derive(row)
            if all(_matches(row[c.field], c) for c in metric_conds):
                out.append(row)
        return out

    @staticmethod
    def _campaign_fields(customer_id: str, campaign_id: int, name: str, status: str, channel: str
                         ) -> dict[str, Any]:
        return {
            "campaign.resource_name": f"customers/{customer_id}/campaigns/{campaign_id}",
            "campaign.id": campaign_id,
            "campaign.name": name,
            "campaign.status": status,
            "campaign.advertising_channel_type": channel,
        }

    @staticmethod
    def _order(rows: list[dict[str, Any]], query: GaqlQuery) -> list[dict[str, Any]]:
        """A stable default (date, customer, campaign), then ORDER BY as stable sorts, last key first."""
        rows.sort(key=lambda r: (r.get("segments.date", ""), r["customer.id"], r.get("campaign.id", 0)))
        for name, desc in reversed(query.order_by):
            rows.sort(key=lambda r, name=name: (r.get(name) is None, r.get(name) or 0), reverse=desc)
        return rows

    @staticmethod
    def _to_row(types: ModuleType, query: GaqlQuery, row: dict[str, Any]) -> Any:
        """A raw protobuf GoogleAdsRow with only the selected fields, plus each resource's resource_name."""
        pb_row = types.GoogleAdsRow.pb()()
        names = list(query.fields)
        for resource in ("campaign", "customer"):
            if any(f.startswith(resource + ".") for f in query.fields) and f"{resource}.resource_name" in row:
                names.append(f"{resource}.resource_name")
        for name in names:
            if name not in row:
                continue
            _set_field(pb_row, name, row[name])
        return pb_row

    def _summary_row(self, types: ModuleType, prepared: _Prepared) -> Any:
        """Metrics summed over every returned row; no attributes or segments, as Google's summary row."""
        totals: dict[str, Any] = {name: 0 for name in _ADDITIVE}
        for row in prepared.rows:
            for name in _ADDITIVE:
                totals[name] += row.get(name, 0)
        _derive(totals)
        summary = types.GoogleAdsRow.pb()()
        for name in prepared.query.fields:
            if FIELDS[name] == _METRIC:
                _set_field(summary, name, totals[name])
        return summary


def _derive(row: dict[str, Any]) -> None:
    """Ratios from the (summed) additive metrics: ctr, and average_cpc in micros like Google."""
    impressions, clicks = row["metrics.impressions"], row["metrics.clicks"]
    row["metrics.ctr"] = clicks / impressions if impressions else 0.0
    row["metrics.average_cpc"] = row["metrics.cost_micros"] / clicks if clicks else 0.0
    for name in ("metrics.conversions", "metrics.conversions_value"):
        row[name] = round(row[name], 6) if math.isfinite(row[name]) else row[name]


def _set_field(message: Any, name: str, value: Any) -> None:
    prefix, _, leaf = name.partition(".")
    target = getattr(message, prefix)
    fd = target.DESCRIPTOR.fields_by_name[leaf]
    if fd.enum_type is not None:
        value = fd.enum_type.values_by_name[value].number
    setattr(target, leaf, value)
