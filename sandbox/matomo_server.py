"""Matomo's HTTP Reporting API (``/index.php?module=API``), as a plain ``requests``/``httpx`` client sends it.

Why emulate the wire: Matomo has no official Python client, so the connector is hand-written HTTP and is
only as good as its handling of Matomo's oddities, which this server reproduces on purpose:

* query string and ``application/x-www-form-urlencoded`` body are merged (Matomo 4/5 want ``token_auth``
  in the POST body; on a clash the query string wins, as PHP's ``$_GET + $_POST`` does);
* errors are HTTP **200** with ``{"result": "error", "message": ...}``, except a ``token_auth`` Matomo cannot
  authenticate: Matomo 5 answers **401** (``unauthenticated``, below), as JSON only when ``module=API`` and
  ``method`` are in the query string, else as an HTML error page; and, for a request that is not a bulk
  sub-request, no access to the site (or no token) is **401** and a method that does not exist **400**, both with
  the JSON envelope (``MatomoApiError``);
* ``period=day`` over a date range is a dict keyed by date, a day without data is ``[]`` (not ``{}``), a
  single date is the flat value;
* percentages are strings (``"50%"``), and some numbers are strings on some days (see ``STRINGY_KEYS``);
* goal metrics are nested per ``"idgoal=..."`` key;
* ``API.getBulkRequest`` answers an array where a failing sub-request is an error element;
* JSON escapes ``/`` as ``\\/`` like PHP's ``json_encode``.

Numbers come from ``World.matomo_day``; the e-commerce details Matomo has and the world does not (split by
referrer type, order visits, tax/shipping/discount, abandoned-cart value, a newsletter goal) are derived
here by deterministic rules in ``goal_figures`` so tests can recompute them.
"""

from __future__ import annotations

import hmac
import html
import json
import math
import os
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from typing import Any

from sandbox.httpserver import REDACTED, Fault, Request, Response, SandboxServer
from sandbox.world import (
    CURRENCY,
    MATOMO_REFERRER_TYPES,
    SHOP_DOMAIN,
    TIMEZONE,
    MatomoDay,
    MatomoVisits,
    World,
    _split,
    seeded_rng,
)

MATOMO_VERSION = "5.2.0"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
# On odd days of the month these keys are JSON strings ("1234.5", "295294") instead of numbers, the way
# Matomo returns archive values read back from blobs. Even days keep numbers. Tests rely on this rule.
STRINGY_KEYS = frozenset({"revenue", "sum_visit_length"})
DEFAULT_FILTER_LIMIT = 100  # Matomo's API_datatable_default_limit
NEWSLETTER_GOAL_ID = "1"

# referrer type -> (label, Matomo's Common::REFERRER_TYPE_* code); direct entry has no subtable.
REFERRER_TYPES: dict[str, tuple[str, int]] = {
    "direct": ("Direct Entry", 1),
    "search": ("Search Engines", 2),
    "website": ("Websites", 3),
    "campaign": ("Campaigns", 6),
    "social": ("Social Networks", 7),
}
_MODULES = frozenset({"API", "VisitsSummary", "Referrers", "Goals", "SitesManager"})
# The MarketingCampaignsReporting plugin (github.com/matomo-org/plugin-MarketingCampaignsReporting, API.php): its
# getMedium reports the "campaign" referrer type by campaign medium. Present by default (the demo shows the split);
# MKPI_SANDBOX_MATOMO_CAMPAIGN_PLUGIN=absent (or 0) serves a Matomo without it, where every call of the plugin
# answers Matomo's PluginDeactivatedException (matomo-org/matomo core/Exception/PluginDeactivatedException.php,
# thrown by core/API/Request.php process() via Plugin\Manager::checkIsPluginActivated).
CAMPAIGN_PLUGIN = "MarketingCampaignsReporting"
CAMPAIGN_PLUGIN_ENV = "MKPI_SANDBOX_MATOMO_CAMPAIGN_PLUGIN"
_PERIODS = ("day", "week", "month", "year", "range")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RELATIVE = re.compile(r"(last|previous)(\d+)")
_LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html id=\"ng-app\" ng-app=\"piwikApp\">\n<head>\n<meta charset=\"utf-8\">\n"
    b"<title>Sign in - Matomo</title>\n<meta name=\"generator\" content=\"Matomo - free/libre analytics "
    b"platform\"/>\n</head>\n<body class=\"login\">\n<form id=\"login_form\" method=\"post\">"
    b"<input type=\"text\" name=\"form_login\"/><input type=\"password\" name=\"form_password\"/></form>\n"
    b"</body>\n</html>\n"
)


class MatomoApiError(Exception):
    """An API error, rendered in Matomo's error envelope with ``status``: 200 for most errors, but Matomo 5 sends the
    code of an exception implementing Piwik\\Http\\HttpCodeException when the request is the root API request
    (core/API/ResponseBuilder.php getResponseException; a nested request, such as a sub-request of
    API.getBulkRequest, sends no header, so its error stays an element of a 200 answer): 401 for NoAccessException
    (core/NoAccessException.php; core/Access.php throws it for "You can't access this resource ..."), 400 for
    BadRequestException (core/Http/BadRequestException.php; core/API/Proxy.php checkMethodExists)."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class MatomoLoggedRequest:
    """What the Matomo layer saw of one request, token redacted; index-aligned with ``server.requests``.

    Why separate from the base log: tests must tell *where* ``token_auth`` travelled (Matomo 5 wants it in
    the body) without the log ever holding its value.
    """

    api_method: str
    params: dict[str, str]  # query string + form body merged, token_auth redacted
    token_in_query: bool
    token_in_body: bool
    bulk_requests: tuple[dict[str, str], ...]  # API.getBulkRequest sub-requests, token_auth redacted
    fault: str | None


@dataclass(frozen=True)
class GoalFigures:
    """Goal metrics of one referrer type (or the whole day); money in cents so splits add up exactly."""

    orders: int
    order_visits: int  # visits with at least one order: <= orders
    revenue: int
    revenue_subtotal: int
    revenue_tax: int
    revenue_shipping: int
    revenue_discount: int
    items: int
    abandoned_carts: int  # one cart per visit, so also the visits with an abandoned cart
    cart_value: int
    cart_items: int
    signups: int  # newsletter goal (idGoal=1) conversions, one per visit, no revenue

    @property
    def nb_conversions(self) -> int:
        """Matomo's overall conversions count orders and goals but never abandoned carts."""
        return self.orders + self.signups

    @property
    def nb_visits_converted(self) -> int:
        return self.order_visits + self.signups

    def __add__(self, other: GoalFigures) -> GoalFigures:
        return GoalFigures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


_ZERO_GOALS = GoalFigures(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _share(total: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split that never loses the total, even when every weight is zero."""
    return _split(total, weights if sum(weights) > 0 else [1.0] * len(weights))


def _visit_row(label: str, v: MatomoVisits) -> dict[str, Any]:
    """The visit metrics of one row of a Matomo report (Referrers.getReferrerType, getMedium), as Matomo names them."""
    return {"label": label, "nb_uniq_visitors": v.nb_uniq_visitors, "nb_visits": v.nb_visits,
            "nb_actions": v.nb_actions, "nb_users": 0, "max_actions": v.max_actions,
            "sum_visit_length": v.sum_visit_length, "bounce_count": v.bounce_count,
            "nb_visits_converted": v.nb_visits_converted}


def goal_figures(world: World, mday: MatomoDay) -> tuple[dict[str, GoalFigures], GoalFigures]:
    """Per referrer type and day-total goal figures; pure function of the world and the day.

    Rules (so tests can recompute them): order visits = orders - orders // 25 (a few customers order twice
    in a visit), capped by converted visits and split by ``nb_visits_converted``; the remaining orders
    follow order visits; revenue and items follow orders; abandoned carts follow ``nb_visits``. Per type,
    shipping is 4.90 for 35 % of orders (rounded up), discount 3 % of revenue, tax the 20 % VAT included
    in revenue (revenue / 6), subtotal = revenue - shipping + discount. Day totals are sums of the types.
    """
    visits = [mday.by_referrer_type[t] for t in MATOMO_REFERRER_TYPES]
    eco = mday.ecommerce
    converted = [v.nb_visits_converted for v in visits]
    order_visits_total = min(eco.orders - eco.orders // 25, sum(converted))
    order_visits = _share(order_visits_total, converted) if order_visits_total else [0] * len(visits)
    extra = _share(eco.orders - order_visits_total, order_visits)
    orders = [a + b for a, b in zip(order_visits, extra, strict=True)]
    revenue = _share(round(eco.revenue * 100), orders)
    items = _share(eco.items, orders)

    r = seeded_rng(world.seed, mday.day, f"matomo:{mday.site_id}:cart")
    u = [r.random() for _ in range(2)]
    avg_order = eco.revenue / eco.orders if eco.orders else 65.0
    cart_value_total = round(eco.abandoned_carts * avg_order * (1.05 + 0.3 * u[0]) * 100)
    cart_items_total = round(eco.abandoned_carts * (1.3 + 0.7 * u[1]))
    carts = _share(eco.abandoned_carts, [v.nb_visits for v in visits])
    cart_value = _share(cart_value_total, carts)
    cart_items = _share(cart_items_total, carts)

    per_type: dict[str, GoalFigures] = {}
    for i, t in enumerate(MATOMO_REFERRER_TYPES):
        shipping = min(revenue[i], 490 * math.ceil(orders[i] * 0.35))
        discount = round(revenue[i] * 0.03)
        per_type[t] = GoalFigures(
            orders=orders[i],
            order_visits=order_visits[i],
            revenue=revenue[i],
            revenue_subtotal=revenue[i] - shipping + discount,
            revenue_tax=round(revenue[i] / 6),
            revenue_shipping=shipping,
            revenue_discount=discount,
            items=items[i],
            abandoned_carts=carts[i],
            cart_value=cart_value[i],
            cart_items=cart_items[i],
            signups=converted[i] - order_visits[i],
        )
    total = _ZERO_GOALS
    for figures in per_type.values():
        total = total + figures
    return per_type, total


# ---- number formatting -----------------------------------------------------------------------------------


def _money(cents: int) -> int | float:
    """PHP prints 1332.0 as 1332 and keeps two decimals otherwise."""
    return cents // 100 if cents % 100 == 0 else cents / 100


def _number(value: float, digits: int) -> int | float:
    rounded = math.floor(value * 10**digits + 0.5) / 10**digits  # PHP rounds half away from zero
    return int(rounded) if rounded == int(rounded) else rounded


def _percent(part: float, whole: float, digits: int) -> str:
    """Matomo's percentage strings: "50%", "66.67%", "0%" when the whole is zero."""
    if not whole:
        return "0%"
    return f"{_number(part * 100 / whole, digits)}%"


def _stringify(payload: Any) -> Any:
    """Turn the values of ``STRINGY_KEYS`` into strings, recursively (the odd-day quirk)."""
    if isinstance(payload, dict):
        return {k: (str(v) if k in STRINGY_KEYS and isinstance(v, int | float) else _stringify(v))
                for k, v in payload.items()}
    if isinstance(payload, list):
        return [_stringify(v) for v in payload]
    return payload


def _php_json(payload: Any) -> bytes:
    """Compact JSON with ``\\/`` escapes and ASCII-only output, like PHP's ``json_encode``."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def _redact_params(params: dict[str, list[str]]) -> dict[str, list[str]]:
    """Redact ``token_auth``, including inside ``urls[n]`` sub-request query strings of a bulk request."""
    out: dict[str, list[str]] = {}
    for key, values in params.items():
        if key.lower() == "token_auth":
            out[key] = [REDACTED] * len(values)
        elif key.startswith("urls["):
            out[key] = [urllib.parse.urlencode(_redact_params(_parse_qs(v)), doseq=True) for v in values]
        else:
            out[key] = list(values)
    return out


def _parse_qs(query: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(query.lstrip("?"), keep_blank_values=True)


def _last(params: dict[str, list[str]]) -> dict[str, str]:
    """PHP keeps the last value of a repeated (non-``[]``) parameter."""
    return {k: v[-1] for k, v in params.items() if v}


def _bulk_urls(params: dict[str, str]) -> list[str]:
    """``urls[0]``, ``urls[1]``, ... in index order (``urls[]`` keeps arrival order)."""
    indexed = []
    for key, value in params.items():
        match = re.fullmatch(r"urls\[(\d*)\]", key)
        if match:
            indexed.append((int(match.group(1)) if match.group(1) else len(indexed), value))
    return [value for _, value in sorted(indexed, key=lambda kv: kv[0])]


def _html(status: int, body: bytes) -> Response:
    return Response(status, body, content_type=HTML_CONTENT_TYPE)


# ---- the server ------------------------------------------------------------------------------------------


class MatomoServer(SandboxServer):
    """Matomo Reporting API emulator; see the module docstring. Thread-safe.

    ``token`` is the only accepted ``token_auth``; it has view access to every site of ``site_ids``
    (sites other than the world's ``"1"`` exist but have no visits).
    """

    name = "matomo"

    def __init__(self, world: World, *, token: str, site_ids: Sequence[str] | None = None,
                 campaign_plugin: bool = True) -> None:
        super().__init__()
        if not token:
            raise ValueError("token must be non-empty")
        self.world = world
        self.token = token
        # by default every site of the world ("1" alone in the default profile)
        self.site_ids: tuple[str, ...] = tuple(site_ids) if site_ids is not None else tuple(world.matomo_sites)
        self.campaign_plugin = campaign_plugin
        self._modules = _MODULES | {CAMPAIGN_PLUGIN} if campaign_plugin else _MODULES
        self._state_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._reads = 0
        self._matomo_log: list[MatomoLoggedRequest] = []
        self._handlers: dict[str, Callable[[dict[str, str], int], Any]] = {
            "VisitsSummary.get": self._visits_summary,
            "Referrers.getReferrerType": self._referrer_type,
            "Goals.get": self._goals,
            "SitesManager.getSiteFromId": self._site_from_id,
            f"{CAMPAIGN_PLUGIN}.getMedium": self._campaign_medium,
            "API.getMatomoVersion": self._version,
            "API.getPiwikVersion": self._version,
        }

    @classmethod
    def for_sandbox(cls, world: World, environ: Mapping[str, str] | None = None) -> MatomoServer:
        """The launcher's factory: a fresh random token per start, so no secret-looking value is committed; the
        MarketingCampaignsReporting plugin unless ``MKPI_SANDBOX_MATOMO_CAMPAIGN_PLUGIN`` says absent."""
        knob = (os.environ if environ is None else environ).get(CAMPAIGN_PLUGIN_ENV, "").strip().lower()
        if knob not in ("", "present", "1", "absent", "0"):
            raise ValueError(f"{CAMPAIGN_PLUGIN_ENV} must be present (1) or absent (0), got {knob!r}")
        return cls(world, token=secrets.token_hex(16), campaign_plugin=knob not in ("absent", "0"))

    def env(self) -> dict[str, str]:
        return {
            "MKPI_MATOMO_URL": f"{self.url}/",
            "MKPI_MATOMO_SITE_IDS": ",".join(self.site_ids),
            "MKPI_MATOMO_TOKEN": self.token,
        }

    @property
    def reads(self) -> int:
        """Successful top-level API calls so far; the next one reads the world at this version."""
        with self._state_lock:
            return self._reads

    # ---- log and faults --------------------------------------------------------------------------------

    def html_page_response(self) -> Response:
        """The ``html`` fault: HTTP 200 with Matomo's sign-in page, what an expired session really serves."""
        return _html(200, _LOGIN_PAGE)

    def error_envelope_response(self) -> Response:
        """The ``envelope`` fault: Matomo reports errors with HTTP 200 and ``{"result": "error"}``."""
        return Response(200, _php_json({"result": "error", "message": "Mysql server has gone away"}),
                        content_type=JSON_CONTENT_TYPE)

    def rate_limit_response(self, retry_after: int | None) -> Response:
        """A reverse proxy's 429 in front of Matomo (Matomo itself has no rate limit)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return Response(429, b"<html><body><h1>429 Too Many Requests</h1></body></html>\n", headers,
                        content_type=HTML_CONTENT_TYPE)

    def server_error_response(self, status: int) -> Response:
        """PHP behind nginx fails with an HTML error page, not with JSON."""
        return _html(status, f"<html><body><h1>{status} Server Error</h1></body></html>\n".encode())

    def _log(self, request: Request, fault: Fault | None) -> None:
        form = request.form
        query_params = _last(request.query)
        merged = {**_last(form), **query_params}
        entry = MatomoLoggedRequest(
            api_method=merged.get("method", ""),
            params=_last(_redact_params({k: [v] for k, v in merged.items()})),
            token_in_query="token_auth" in request.query,
            token_in_body="token_auth" in form,
            bulk_requests=tuple(_last(_redact_params(_parse_qs(u))) for u in _bulk_urls(merged)),
            fault=str(fault[0]) if fault else None,
        )
        # A body Matomo would not parse (not form-encoded) is dropped: it could carry the token as JSON.
        safe_query = _redact_params(request.query)
        safe = replace(
            request,
            query=safe_query,
            raw_query=urllib.parse.urlencode(safe_query, doseq=True),
            body=urllib.parse.urlencode(_redact_params(form), doseq=True).encode() if form else b"",
        )
        with self._log_lock:  # keeps both logs index-aligned
            super()._log(safe, fault)
            self._matomo_log.append(entry)

    @property
    def matomo_requests(self) -> list[MatomoLoggedRequest]:
        with self._log_lock:
            return list(self._matomo_log)

    def clear_log(self) -> None:
        with self._log_lock:
            super().clear_log()
            self._matomo_log.clear()

    def error_response(self, status: int, message: str) -> Response:
        return Response(status, _php_json({"result": "error", "message": message}), content_type=JSON_CONTENT_TYPE)

    # ---- HTTP ------------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path not in ("/", "/index.php"):
            return _html(404, b"<html><body><h1>404 Not Found</h1></body></html>\n")
        params = {**_last(request.form), **_last(request.query)}  # PHP: $_GET + $_POST, GET wins
        if params.get("module") != "API":
            return _html(200, _LOGIN_PAGE)  # the UI, which asks an anonymous caller to sign in
        token = params.get("token_auth", "")
        if token and token != "anonymous" and not self._token_ok(params):
            return self.unauthenticated(request, params)
        fmt = params.get("format", "xml").lower()
        if fmt != "json":
            message = html.escape(f"The sandbox Matomo server only renders format=JSON; got format={fmt!r}.")
            xml = f'<?xml version="1.0" encoding="utf-8" ?>\n<result>\n\t<error message="{message}" />\n</result>'
            return Response(200, xml.encode(), content_type="text/xml; charset=utf-8")
        with self._state_lock:
            version = self._reads
        try:
            result = self.call(params, version)
        except MatomoApiError as err:  # the root request: its status is sent (see MatomoApiError)
            return Response(err.status, _php_json({"result": "error", "message": err.message}),
                            content_type=JSON_CONTENT_TYPE)
        with self._state_lock:
            self._reads += 1
        return Response(200, _php_json(result), content_type=JSON_CONTENT_TYPE)

    @staticmethod
    def unauthenticated(request: Request, params: dict[str, str]) -> Response:
        """A token Matomo cannot authenticate, as Matomo 5 answers it.

        FrontController::init reloads the auth from ``token_auth``; a failure posts API.Request.authenticate.failed,
        on which plugins/Login/Login.php onFailedAPILogin throws NoAccessException("Unable to authenticate with the
        provided token. It is either invalid or expired."; "..., expired or is required to be sent as a POST
        parameter." unless the token came in the POST body only, Request::isTokenAuthProvidedSecurely). The
        exception's code is 401 (core/NoAccessException.php); core/dispatch.php hands it to
        ExceptionHandler::dieWithHtmlErrorPage, which sets that status and renders it in the API format only when
        ``Request::isApiRequest($_GET)`` (module=API and a Module.method in the query string), else as an HTML
        page (matomo-org/matomo 5.x; issues #18055, #21789 and #22572 show the 401 and the JSON body)."""
        secure = "token_auth" not in request.query and "token_auth" in request.form
        message = "Unable to authenticate with the provided token. It is either invalid" + (
            " or expired." if secure else ", expired or is required to be sent as a POST parameter.")
        query = _last(request.query)
        api_in_get = query.get("module") == "API" and query.get("method", "").count(".") == 1
        if not api_in_get:
            page = f"<!DOCTYPE html>\n<html><head><title>Matomo &rsaquo; Error</title></head><body><div " \
                   f"class=\"box\"><p>{html.escape(message)}</p></div></body></html>\n"
            return _html(401, page.encode())
        if params.get("format", "xml").lower() == "json":
            return Response(401, _php_json({"result": "error", "message": message}), content_type=JSON_CONTENT_TYPE)
        xml = f'<?xml version="1.0" encoding="utf-8" ?>\n<result>\n\t<error message="{html.escape(message)}" />\n' \
              '</result>'
        return Response(401, xml.encode(), content_type="text/xml; charset=utf-8")

    # ---- API dispatch ----------------------------------------------------------------------------------

    def call(self, params: dict[str, str], version: int = 0, *, nested: bool = False) -> Any:
        """One API call's JSON-ready result; raises MatomoApiError for what Matomo answers as an error."""
        method = params.get("method", "")
        if not method:
            raise MatomoApiError("Please specify a value for 'method'.")
        module, _, _action = method.partition(".")
        if module not in self._modules:
            raise MatomoApiError(f"The plugin {module} is not enabled. You can activate the plugin on "
                                 "Settings > Plugins page in Matomo.")
        if method == "API.getBulkRequest":
            if nested:
                raise MatomoApiError("API.getBulkRequest cannot be nested in a bulk request.")
            return self._bulk(params, version)
        handler = self._handlers.get(method)
        if handler is None:
            raise MatomoApiError(f"The method '{_action}' does not exist or is not available in the module "
                                 f"'\\Piwik\\Plugins\\{module}\\API'.", 400)
        return handler(params, version)

    def _bulk(self, params: dict[str, str], version: int) -> list[Any]:
        urls = _bulk_urls(params)
        if not urls:
            raise MatomoApiError("Please specify a value for 'urls'.")
        results: list[Any] = []
        for url in urls:
            sub = _last(_parse_qs(url))
            if "token_auth" in params:
                sub.setdefault("token_auth", params["token_auth"])
            try:
                results.append(self.call(sub, version, nested=True))
            except MatomoApiError as err:
                results.append({"result": "error", "message": err.message})
        return results

    # ---- access, sites, dates --------------------------------------------------------------------------

    def _token_ok(self, params: dict[str, str]) -> bool:
        return hmac.compare_digest(params.get("token_auth", "").encode(), self.token.encode())

    def _site(self, params: dict[str, str]) -> str:
        site_id = params.get("idSite", "")
        if not site_id:
            raise MatomoApiError("Please specify a value for 'idSite'.")
        if not self._token_ok(params) or site_id not in self.site_ids:
            raise MatomoApiError(f"You can't access this resource as it requires 'view' access for the "
                                 f"website id = {site_id}.", 401)
        return site_id

    def _days(self, params: dict[str, str]) -> tuple[list[date], bool]:
        """The requested days and whether the answer is keyed by date (ranges, lastN) or flat."""
        period = params.get("period", "")
        value = params.get("date", "")
        if not period:
            raise MatomoApiError("Please specify a value for 'period'.")
        if not value:
            raise MatomoApiError("Please specify a value for 'date'.")
        if period not in _PERIODS:
            raise MatomoApiError(f"The period '{period}' is not supported. Try any of the following instead: "
                                 f"{', '.join(_PERIODS)}")
        if period != "day":
            raise MatomoApiError(f"The sandbox Matomo server supports period=day only; got period={period!r}.")
        relative = _RELATIVE.fullmatch(value)
        if relative:
            n = int(relative.group(2))
            end = self.world.today - timedelta(days=1 if relative.group(1) == "previous" else 0)
            if n < 1:
                raise _invalid_date(value)
            return [end - timedelta(days=n - 1 - i) for i in range(n)], True
        if "," in value:
            first, _, last = value.partition(",")
            start, end = self._date(first, value), self._date(last, value)
            if start > end:
                raise MatomoApiError(f"The date '{value}' is not a correct date range: the start date is after "
                                     "the end date.")
            return [start + timedelta(days=i) for i in range((end - start).days + 1)], True
        return [self._date(value, value)], False

    def _date(self, value: str, whole: str) -> date:
        today = self.world.today
        if value in ("today", "now"):
            return today
        if value == "yesterday":
            return today - timedelta(days=1)
        if _ISO_DATE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise _invalid_date(whole)

    def _per_day(self, params: dict[str, str], version: int, build: Callable[[MatomoDay], Any]) -> Any:
        """Run ``build`` for each requested day: ``[]`` for days without data, odd days stringified."""
        site_id = self._site(params)
        days, keyed = self._days(params)
        out: dict[str, Any] = {}
        for day in days:
            mday = self.world.matomo_day(site_id, day, version)
            value = [] if mday is None else build(mday)
            out[day.isoformat()] = _stringify(value) if day.day % 2 == 1 else value
        return out if keyed else out[days[0].isoformat()]

    # ---- reports ---------------------------------------------------------------------------------------

    def _visits_summary(self, params: dict[str, str], version: int) -> Any:
        return self._per_day(params, version, lambda mday: _visits_row(mday.summary))

    def _referrer_type(self, params: dict[str, str], version: int) -> Any:
        limit, offset = _int_param(params, "filter_limit", DEFAULT_FILTER_LIMIT), _int_param(
            params, "filter_offset", 0)

        def build(mday: MatomoDay) -> list[dict[str, Any]]:
            per_type, _total = goal_figures(self.world, mday)
            rows = []
            for t in MATOMO_REFERRER_TYPES:
                v = mday.by_referrer_type[t]
                if v.nb_visits == 0:
                    continue
                label, code = REFERRER_TYPES[t]
                row = _visit_row(label, v)
                goals = _goals_block(per_type[t])
                if goals:
                    row["goals"] = goals
                    row["nb_conversions"] = per_type[t].nb_conversions
                    row["revenue"] = _money(per_type[t].revenue)
                row["segment"] = f"referrerType=={t}"
                row["referrer_type"] = code
                if t != "direct":
                    row["idsubdatatable"] = code
                rows.append(row)
            rows.sort(key=lambda r: -r["nb_visits"])  # stable: ties keep Matomo's type order
            end = None if limit < 0 else offset + limit
            return rows[offset:end]

        return self._per_day(params, version, build)

    def _campaign_medium(self, params: dict[str, str], version: int) -> Any:
        """MarketingCampaignsReporting.getMedium: campaign visits by medium (the plugin's label is the lower-cased
        ``mtm_medium``/``utm_medium``, Campaign/CampaignDetector.php), sorted by visits, with the plugin's
        ``campaignMedium==`` segment (tests/System/expected/*getMedium_day.xml). The plugin's per-medium goals
        block is not emulated. Visits without a medium are in no row, as the plugin's RecordBuilder skips an empty
        label; here every campaign visit has one, so the mediums add up to the campaign referrer type."""
        limit, offset = _int_param(params, "filter_limit", DEFAULT_FILTER_LIMIT), _int_param(
            params, "filter_offset", 0)

        def build(mday: MatomoDay) -> list[dict[str, Any]]:
            rows = [{**_visit_row(medium, v), "segment": f"campaignMedium=={urllib.parse.quote(medium, safe='')}"}
                    for medium, v in mday.campaign_mediums.items()]
            rows.sort(key=lambda r: -r["nb_visits"])  # the plugin sorts by visits
            end = None if limit < 0 else offset + limit
            return rows[offset:end]

        return self._per_day(params, version, build)

    def _goals(self, params: dict[str, str], version: int) -> Any:
        id_goal = params.get("idGoal", "")
        if id_goal not in ("", "ecommerceOrder", "ecommerceAbandonedCart", NEWSLETTER_GOAL_ID):
            self._site(params)  # access errors first, as Matomo checks access before the goal
            raise MatomoApiError(f"The goal id '{id_goal}' does not exist for website id = {params['idSite']}.")

        def build(mday: MatomoDay) -> dict[str, Any]:
            _per_type, g = goal_figures(self.world, mday)
            visits = mday.summary.nb_visits
            if id_goal == "ecommerceOrder":
                return {
                    "nb_conversions": g.orders,
                    "nb_visits_converted": g.order_visits,
                    "revenue": _money(g.revenue),
                    "conversion_rate": _percent(g.order_visits, visits, 2),
                    "items": g.items,
                    "revenue_subtotal": _money(g.revenue_subtotal),
                    "revenue_tax": _money(g.revenue_tax),
                    "revenue_shipping": _money(g.revenue_shipping),
                    "revenue_discount": _money(g.revenue_discount),
                    "avg_order_revenue": _number(g.revenue / 100 / g.orders, 2) if g.orders else 0,
                }
            if id_goal == "ecommerceAbandonedCart":
                return {
                    "nb_conversions": g.abandoned_carts,
                    "nb_visits_converted": g.abandoned_carts,
                    "revenue": _money(g.cart_value),
                    "items": g.cart_items,
                    "conversion_rate": _percent(g.abandoned_carts, visits, 2),
                }
            if id_goal == NEWSLETTER_GOAL_ID:
                return {
                    "nb_conversions": g.signups,
                    "nb_visits_converted": g.signups,
                    "revenue": 0,
                    "conversion_rate": _percent(g.signups, visits, 2),
                }
            # no per-goal "goals" block without idGoal: Matomo's Goals.get outputs have none (plugins/Ecommerce/
            # tests/System/expected/test_ecommerceOrderWithItems_GoalOverall__Goals.get_day.xml)
            return {
                "nb_conversions": g.nb_conversions,
                "nb_visits_converted": g.nb_visits_converted,
                "revenue": _money(g.revenue),
                "conversion_rate": _percent(g.nb_visits_converted, visits, 2),
            }

        return self._per_day(params, version, build)

    def _site_from_id(self, params: dict[str, str], version: int) -> dict[str, Any]:
        site_id = self._site(params)
        return {
            "idsite": site_id,
            "name": "Shop" if site_id == "1" else f"Shop {site_id}",
            "main_url": f"https://{SHOP_DOMAIN}",
            "ts_created": "2023-01-01 00:00:00",
            "ecommerce": "1",
            "sitesearch": "1",
            "sitesearch_keyword_parameters": "",
            "sitesearch_category_parameters": "",
            "timezone": TIMEZONE,
            "currency": CURRENCY,
            "exclude_unknown_urls": "0",
            "excluded_ips": "",
            "excluded_parameters": "",
            "excluded_user_agents": "",
            "excluded_referrers": "",
            "group": "",
            "type": "website",
            "keep_url_fragment": "0",
            "creator_login": "admin",
            "timezone_name": TIMEZONE,
            "currency_name": "Euro",
        }

    def _version(self, params: dict[str, str], version: int) -> dict[str, str]:
        if not self._token_ok(params):
            raise MatomoApiError("You can't access this resource as it requires 'view' access for at least "
                                 "one website.", 401)
        return {"value": MATOMO_VERSION}


def _invalid_date(value: str) -> MatomoApiError:
    return MatomoApiError("Date format must be: YYYY-MM-DD, or 'today' or 'yesterday' or any keyword supported "
                          "by the strtotime function (see http://php.net/strtotime for more information): "
                          f"'{value}'")


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    """PHP casts: anything that is not an integer falls back to the default."""
    try:
        return int(params.get(name, default))
    except ValueError:
        return default


def _visits_row(v: MatomoVisits) -> dict[str, Any]:
    visits = v.nb_visits
    return {
        "nb_uniq_visitors": v.nb_uniq_visitors,
        "nb_users": 0,
        "nb_visits": visits,
        "nb_actions": v.nb_actions,
        "nb_visits_converted": v.nb_visits_converted,
        "bounce_count": v.bounce_count,
        "sum_visit_length": v.sum_visit_length,
        "max_actions": v.max_actions,
        "bounce_rate": _percent(v.bounce_count, visits, 0),
        "nb_actions_per_visit": _number(v.nb_actions / visits, 1) if visits else 0,
        "avg_time_on_site": round(v.sum_visit_length / visits) if visits else 0,
    }


def _goals_block(g: GoalFigures) -> dict[str, dict[str, Any]]:
    """Matomo's nested ``goals`` of a row: one entry per goal with conversions, keyed ``idgoal=<id>``."""
    goals: dict[str, dict[str, Any]] = {}
    if g.abandoned_carts:
        goals["idgoal=ecommerceAbandonedCart"] = {
            "nb_conversions": g.abandoned_carts,
            "nb_visits_converted": g.abandoned_carts,
            "revenue": _money(g.cart_value),
            "items": g.cart_items,
        }
    if g.orders:
        goals["idgoal=ecommerceOrder"] = {
            "nb_conversions": g.orders,
            "nb_visits_converted": g.order_visits,
            "revenue": _money(g.revenue),
            "revenue_subtotal": _money(g.revenue_subtotal),
            "revenue_tax": _money(g.revenue_tax),
            "revenue_shipping": _money(g.revenue_shipping),
            "revenue_discount": _money(g.revenue_discount),
            "items": g.items,
        }
    if g.signups:
        goals[f"idgoal={NEWSLETTER_GOAL_ID}"] = {
            "nb_conversions": g.signups,
            "nb_visits_converted": g.signups,
            "revenue": 0,
        }
    return goals

