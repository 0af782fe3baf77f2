"""Contract tests for Matomo (issue #17): every request the Matomo connector (and `mkpi doctor` through it) sends and
every answer the sandbox gives, held to facts read from Matomo's source and its system tests' expected outputs
(tests/contracts_matomo.py, which names the commit and the file of each fact).

Checked per exchange: the API method exists with those parameters (the PHP signature, plus the generic ones every
request takes), required parameters are there, period/date/format/integers are values Matomo parses, the token travels
in the POST body only; every answer field is one Matomo's own outputs have, of the same kind (counts, amounts,
"66.67%" percentages, text), days keyed YYYY-MM-DD with [] for an empty day; an error is Matomo's envelope with the
HTTP status Matomo 5 gives it (401 no access, 400 no such method, else 200; always 200 inside a bulk answer).
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import date
from typing import Any

import pytest

from connectors.batches import Window
from connectors.http import RetryPolicy
from connectors.settings import MatomoSettings, Secret
from sandbox.matomo_server import MatomoServer
from sandbox.world import World
from tests.contracts import Exchange, fail_on, record_answers
from tests.contracts_matomo import (
    DATE,
    DATED,
    FIELDS,
    FORMATS,
    GENERIC_PARAMETERS,
    GOAL_BLOCK_FIELDS,
    INTEGER_PARAMETERS,
    MATOMO_COMMIT,
    METHODS,
    PERIODS,
    ROW_LISTS,
    error_status,
)

TODAY = date(2026, 3, 31)
TOKEN = "c0ffee00c0ffee00c0ffee00c0ffee00"
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 3))
_NUMBER_TEXT = re.compile(r"-?\d+(\.\d+)?")
_PERCENT = re.compile(r"-?\d+(\.\d+)?%")


def _params(text: str) -> dict[str, str]:
    return {k: v[-1] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}


def call_violations(method: str, params: dict[str, str], where: str) -> list[str]:
    """One API call's parameters against the method's PHP signature and the values Matomo parses."""
    if method not in METHODS:
        return [f"{where}: {method!r} is not one of the API methods the connector may call"]
    source, signature = METHODS[method]
    out = [f"{where}: parameter {name} is neither a parameter of {method} ({source}) nor a generic one"
           for name in params if name not in signature and name not in GENERIC_PARAMETERS
           and not re.fullmatch(r"urls\[\d*\]", name)]
    out += [f"{where}: {method} requires {name}" for name, required in signature.items()
            if required and name != "urls" and name not in params]
    if "period" in params and params["period"] not in PERIODS:
        out.append(f"{where}: period {params['period']!r} is not one of {PERIODS}")
    if "date" in params and not DATE.fullmatch(params["date"]):
        out.append(f"{where}: date {params['date']!r} is not a date Matomo parses")
    if "format" in params and params["format"].lower() not in FORMATS:
        out.append(f"{where}: format {params['format']!r} is not one of {FORMATS}")
    out += [f"{where}: {name}={params[name]!r} is not an integer" for name in INTEGER_PARAMETERS
            if name in params and not re.fullmatch(r"-?\d+", params[name])]
    return out


def request_violations(exchange: Exchange) -> list[str]:
    request = exchange.request
    query, form = _params(request.raw_query), _params(request.body.decode() if request.form else "")
    merged = {**form, **query}  # PHP's $_GET + $_POST (core/Common.php getRequestVar), the query string wins
    out = []
    if "token_auth" in query:
        out.append("token_auth travels in the URL (Matomo 5 wants it in the POST body for secure-only tokens)")
    if merged.get("module") != "API":
        out.append(f"module={merged.get('module')!r}: the Reporting API is module=API")
    method = merged.get("method", "")
    out += call_violations(method, {k: v for k, v in merged.items() if k != "method"}, "request")
    if method == "API.getBulkRequest":
        urls = [v for k, v in sorted(merged.items()) if re.fullmatch(r"urls\[\d*\]", k)]
        if not urls:
            out.append("API.getBulkRequest without urls")
        for i, url in enumerate(urls):
            sub = _params(url)
            if "token_auth" in sub:
                out.append(f"urls[{i}] carries token_auth (getBulkRequest passes the root request's own)")
            out += call_violations(sub.get("method", ""), {k: v for k, v in sub.items() if k != "method"},
                                   f"urls[{i}]")
    return out


def _value_violations(kind: str, value: Any, where: str) -> list[str]:
    if kind in ("count", "amount"):
        ok = (isinstance(value, int | float) and not isinstance(value, bool)) or (
            isinstance(value, str) and _NUMBER_TEXT.fullmatch(value) is not None)
        if ok and kind == "count" and isinstance(value, float) and value != int(value):
            ok = False
        return [] if ok else [f"{where}: {value!r} is not a {kind}"]
    if kind == "percent":
        return [] if isinstance(value, str) and _PERCENT.fullmatch(value) else [f"{where}: {value!r} is not a "
                                                                                "percentage string like '50%'"]
    if kind == "ratio":
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else [f"{where}: {value!r}"]
    if kind == "code":
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: {value!r} not an int"]
    if kind == "goals":
        if not isinstance(value, dict):
            return [f"{where}: the per-goal block must be an object"]
        out = [f"{where}: goal key {key!r} is not idgoal=<id>" for key in value if not key.startswith("idgoal=")]
        for key, goal in value.items():
            out += _row_violations(goal, GOAL_BLOCK_FIELDS, f"{where}.{key}", "goal block")
        return out
    return [] if isinstance(value, str) else [f"{where}: {value!r} is not text"]


def _row_violations(row: Any, fields: dict[str, str], where: str, what: str) -> list[str]:
    if not isinstance(row, dict):
        return [f"{where}: expected an object, got {type(row).__name__}"]
    out = []
    for key, value in row.items():
        if key not in fields:
            out.append(f"{where}.{key}: not a field of {what} in Matomo's outputs")
        else:
            out += _value_violations(fields[key], value, f"{where}.{key}")
    return out


def answer_violations(method: str, answer: Any, where: str) -> list[str]:
    """One method's successful answer: the dated/row shape and every field."""
    fields = FIELDS[method]
    if method in DATED:
        if not isinstance(answer, dict) or not all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in answer):
            return [f"{where}: a report over several days is an object keyed by YYYY-MM-DD"]
        out = []
        for day, value in answer.items():
            if value == []:
                continue  # an empty day
            rows = value if method in ROW_LISTS else [value]
            if method in ROW_LISTS and not isinstance(value, list):
                out.append(f"{where}.{day}: {method} answers a list of rows")
                continue
            for i, row in enumerate(rows):
                out += _row_violations(row, fields, f"{where}.{day}[{i}]", method)
        return out
    return _row_violations(answer, fields, where, method)


def _error_violations(body: Any, status: int | None, where: str) -> list[str]:
    if not isinstance(body, dict) or set(body) != {"result", "message"} or body["result"] != "error":
        return [f"{where}: not Matomo's error envelope {{'result': 'error', 'message': ...}}: {body!r}"[:300]]
    if status is not None and status != error_status(str(body["message"])):
        return [f"{where}: HTTP {status}, but Matomo 5 answers {error_status(str(body['message']))} for "
                f"{body['message']!r}"]
    return []


def exchange_violations(exchange: Exchange) -> list[str]:
    out = request_violations(exchange)
    request, status, body = exchange.request, exchange.response.status, exchange.json
    merged = {**_params(request.body.decode() if request.form else ""), **_params(request.raw_query)}
    method = merged.get("method", "")
    if isinstance(body, dict) and body.get("result") == "error":
        return out + _error_violations(body, status, "answer")
    if status != 200:
        return out + [f"answer: HTTP {status} without Matomo's JSON error envelope"]
    if method == "API.getBulkRequest":
        urls = [v for k, v in sorted(merged.items()) if re.fullmatch(r"urls\[\d*\]", k)]
        if not isinstance(body, list) or len(body) != len(urls):
            return out + ["answer: API.getBulkRequest answers one element per url"]
        for i, (url, element) in enumerate(zip(urls, body, strict=True)):
            if isinstance(element, dict) and element.get("result") == "error":
                out += _error_violations(element, None, f"answer[{i}]")  # nested: no status of its own
            else:
                out += answer_violations(_params(url).get("method", ""), element, f"answer[{i}]")
        return out
    return out + answer_violations(method, body, "answer")


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, today=TODAY)


def _connector(server: MatomoServer, token: str = TOKEN, sites: tuple[str, ...] = ("1", "2")) -> Any:
    from connectors.matomo import MatomoConnector

    settings = MatomoSettings(url=f"{server.url}/", site_ids=sites, token=Secret(token), timeout_seconds=10)
    return MatomoConnector(settings, policy=RetryPolicy(max_attempts=1), sleep=lambda _s: None)


def test_matomo_requests_and_answers_follow_matomos_source_and_outputs(world):
    """The bulk request per site (every report, odd days with numbers as strings, an empty site), `mkpi doctor`'s
    questions, and the refusals (a site without access, a wrong token), checked against matomo-org/matomo."""
    from connectors.errors import SourceError

    with MatomoServer(world, token=TOKEN, site_ids=("1", "2")) as server, record_answers(server) as exchanges:
        connector = _connector(server)
        for batch in connector.fetch(WINDOW):
            assert batch.data.num_rows >= 0
        connector.call("API.getMatomoVersion", "instance")
        connector.call("SitesManager.getSiteFromId", "1", idSite="1")
        with pytest.raises(SourceError):
            connector.call("SitesManager.getSiteFromId", "7", idSite="7")
        with pytest.raises(SourceError):
            _connector(server, token="0" * 32).call("API.getMatomoVersion", "instance")
    assert {200, 401} <= {e.response.status for e in exchanges}
    fail_on({f"#{i} {e.request.method} {e.request.path}?{e.request.raw_query} -> {e.response.status} "
             f"(matomo {MATOMO_COMMIT[:10]})": exchange_violations(e) for i, e in enumerate(exchanges)})


def test_access_errors_outside_a_bulk_request_are_http_401_as_in_matomo_5(world):
    """Issue #17: Matomo 5 answers a root API request without access to the site (or without any token) with HTTP
    401 and its JSON envelope (NoAccessException, core/API/ResponseBuilder.php); inside API.getBulkRequest the same
    error is an element of a 200 answer (nested requests send no header); a method that does not exist is 400."""
    import requests

    with MatomoServer(world, token=TOKEN, site_ids=("1",)) as server:
        url, query = f"{server.url}/index.php", {"module": "API", "format": "JSON"}

        def post(method: str, **data: str) -> requests.Response:
            return requests.post(url, params={**query, "method": method}, data=data, timeout=10)

        no_site = post("SitesManager.getSiteFromId", idSite="7", token_auth=TOKEN)
        no_token = post("VisitsSummary.get", idSite="1", period="day", date="2026-03-01")
        no_version = post("API.getMatomoVersion")
        no_method = post("VisitsSummary.getNope", idSite="1", period="day", date="2026-03-01", token_auth=TOKEN)
        bulk = post("API.getBulkRequest", token_auth=TOKEN, **{"urls[0]": "method=SitesManager.getSiteFromId&idSite=7"})
        plugin_error = post("Nope.get", idSite="1", token_auth=TOKEN)
    site_message = "You can't access this resource as it requires 'view' access for the website id = 7."
    assert (no_site.status_code, no_site.json()) == (401, {"result": "error", "message": site_message})
    assert no_site.headers["content-type"].startswith("application/json")
    assert no_token.status_code == 401 and no_token.json()["message"].endswith("website id = 1.")
    assert no_version.status_code == 401 and "at least one website" in no_version.json()["message"]
    assert no_method.status_code == 400 and no_method.json()["message"].startswith("The method 'getNope' does not")
    assert (bulk.status_code, bulk.json()) == (200, [{"result": "error", "message": site_message}])
    assert plugin_error.status_code == 200  # PluginDeactivatedException is a plain exception: no status of its own


def test_the_checker_catches_what_matomo_does_not_do():
    """Not vacuous: an unknown parameter, a bad period, the token in the URL, a field Matomo has not, a number where
    Matomo sends a percentage, and a 200 for an access error are all reported."""
    assert call_violations("VisitsSummary.get", {"idSite": "1", "period": "days", "date": "2026-03-01"}, "r")
    assert call_violations("VisitsSummary.get", {"idSite": "1", "period": "day", "date": "1/3/2026"}, "r")
    assert call_violations("VisitsSummary.get", {"idSite": "1", "period": "day", "date": "today", "nope": "1"}, "r")
    assert call_violations("VisitsSummary.get", {"period": "day", "date": "today"}, "r")  # idSite required
    assert call_violations("Goals.get", {"idSite": "1", "period": "day", "date": "last7", "idGoal": "x"}, "r") == []
    day = {"nb_visits": 3, "bounce_rate": "50%", "nb_actions_per_visit": 4.3}
    assert answer_violations("VisitsSummary.get", {"2026-03-01": day, "2026-03-02": []}, "a") == []
    assert answer_violations("VisitsSummary.get", {"2026-03-01": {**day, "bounce_rate": 0.5}}, "a")
    assert answer_violations("Goals.get", {"2026-03-01": {"nb_conversions": 1, "goals": {}}}, "a")
    assert answer_violations("VisitsSummary.get", {"2026-03-01": {"nb_visits": 2.5}}, "a")
    envelope = {"result": "error", "message": "You can't access this resource as it requires 'view' access for the "
                                              "website id = 7."}
    assert _error_violations(envelope, 200, "a") and _error_violations(envelope, 401, "a") == []
