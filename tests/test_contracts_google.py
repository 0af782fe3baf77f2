"""Contract tests for the Google reporting APIs (issue #17): what the GA4 and Search Console connectors send and
what the sandbox answers, held to the documents Google publishes, and Google's refusal for missing OAuth scopes.

References (all shipped in the installed clients, so the tests run offline and follow the pinned versions):
- google-api-python-client's discovery documents, googleapiclient/discovery_cache/documents/:
  analyticsdata.v1beta.json (runReport: RunReportRequest/RunReportResponse, limits in the field descriptions,
  scopes) and searchconsole.v1.json (searchanalytics.query, sites.list: schemas, "[Required]" fields, rowLimit
  1..25,000, scopes). Their `revision` is printed in a failure message.
- google-analytics-data's protobuf types google/analytics/data_v1alpha/types for runFunnelReport: the shipped
  analyticsdata.v1alpha.json (revision 20210206) predates that method, so the proto3 JSON mapping of the client's
  own RunFunnelReportRequest/RunFunnelReportResponse is the contract there; data_v1beta/types gives the enum
  numbers of answers and requests sent with enum-encoding=int.
- Google's REST error model (https://cloud.google.com/apis/design/errors#http_mapping) for every error answer.
"""

from __future__ import annotations

import urllib.parse
from datetime import date
from typing import Any

import pytest

from connectors.batches import Window
from connectors.http import RetryPolicy
from connectors.settings import GA4Settings, SearchConsoleSettings
from sandbox.ga4_server import ANALYTICS_SCOPES, AnswerQuality, Ga4Server
from sandbox.gsc_server import WEBMASTERS_SCOPES, GscServer
from sandbox.world import DEFAULT_GSC_SITE, World
from tests.contracts import (
    Exchange,
    SchemaChecker,
    descriptors_of,
    discovery_document,
    discovery_methods,
    fail_on,
    google_enum_key,
    google_error_violations,
    path_pattern,
    proto_enum_numbers,
    proto_schemas,
    record_answers,
)

TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 3))
GA4_DOC = discovery_document("analyticsdata.v1beta")
GSC_DOC = discovery_document("searchconsole.v1")
# gcloud auth application-default login without --scopes ("By default openid, userinfo.email, cloud-platform and
# sqlservice.login": https://cloud.google.com/sdk/gcloud/reference/auth/application-default/login)
GCLOUD_DEFAULT_SCOPES = ("openid", "https://www.googleapis.com/auth/userinfo.email",
                         "https://www.googleapis.com/auth/cloud-platform",
                         "https://www.googleapis.com/auth/sqlservice.login")


# ---- the facts, from the documents ----------------------------------------------------------------------------------


def _method(document: dict[str, Any], method_id: str) -> dict[str, Any]:
    return next(m for m in discovery_methods(document) if m["id"] == method_id)


def _ga4_checker() -> SchemaChecker:
    from google.analytics.data_v1beta import types

    return SchemaChecker(
        GA4_DOC["schemas"],
        # RunReportRequest.limit: "The API returns a maximum of 250,000 rows per request ... `limit` must be
        # positive"; offset is a row index (the test below reads both sentences from the document).
        limits={("RunReportRequest", "limit"): (1, 250_000), ("RunReportRequest", "offset"): (0, 2**63 - 1)},
        required_from_description=True,
        enum_numbers=proto_enum_numbers(descriptors_of(types)),
    )


def _funnel_checker() -> SchemaChecker:
    from google.analytics.data_v1alpha import types

    schemas = proto_schemas(types.RunFunnelReportRequest, types.RunFunnelReportResponse)
    return SchemaChecker(schemas, enum_numbers=proto_enum_numbers(descriptors_of(types)))


def _gsc_checker() -> SchemaChecker:
    # SearchAnalyticsQueryRequest.rowLimit: "Must be a number from 1 to 25,000 (inclusive)"; startRow: "Must be a
    # non-negative number".
    return SchemaChecker(GSC_DOC["schemas"], required_from_description=True, enum_key=google_enum_key,
                         limits={("SearchAnalyticsQueryRequest", "rowLimit"): (1, 25_000),
                                 ("SearchAnalyticsQueryRequest", "startRow"): (0, 2**31 - 1)})


def test_the_limits_checked_are_the_documents_own_words():
    limit = GA4_DOC["schemas"]["RunReportRequest"]["properties"]["limit"]
    assert "maximum of 250,000 rows per request" in limit["description"] and limit["format"] == "int64"
    assert "must be positive" in limit["description"]
    assert GA4_DOC["schemas"]["RunReportRequest"]["properties"]["offset"]["format"] == "int64"
    row_limit = GSC_DOC["schemas"]["SearchAnalyticsQueryRequest"]["properties"]["rowLimit"]
    assert "from 1 to 25,000 (inclusive)" in row_limit["description"] and row_limit["format"] == "int32"
    start = GSC_DOC["schemas"]["SearchAnalyticsQueryRequest"]["properties"]["startDate"]
    assert start["description"].lstrip().startswith("[Required]")


def test_the_checker_catches_what_google_would_refuse():
    """The checker is not vacuous: each broken request below is reported, the valid one is not."""
    ga4 = _ga4_checker()
    good = {"dimensions": [{"name": "date"}], "metrics": [{"name": "sessions"}],
            "dateRanges": [{"startDate": "2026-03-01", "endDate": "2026-03-03"}], "limit": "250000",
            "orderBys": [{"dimension": {"dimensionName": "date", "orderType": 1}}], "returnPropertyQuota": True}
    assert ga4.check("RunReportRequest", good) == []
    assert ga4.check("RunReportRequest", {**good, "limit": 250000})  # int64 travels as a JSON string
    assert ga4.check("RunReportRequest", {**good, "limit": "250001"})  # over the documented maximum
    assert ga4.check("RunReportRequest", {**good, "limits": "10"})  # no such field
    assert ga4.check("RunReportRequest", {**good, "orderBys": [{"dimension": {"orderType": 7}}]})  # no enum 7
    answer = {"metricHeaders": [{"name": "sessions", "type": "TYPE_INTEGER"}], "rowCount": "3"}
    assert ga4.check("RunReportResponse", answer) == ["$.rowCount: expected an integer (int32), got str '3'"]
    gsc = _gsc_checker()
    query = {"startDate": "2026-03-01", "endDate": "2026-03-03", "dimensions": ["date"], "type": "googleNews",
             "aggregationType": "byProperty", "rowLimit": 25000, "startRow": 0, "dataState": "all"}
    assert gsc.check("SearchAnalyticsQueryRequest", query) == []
    assert gsc.check("SearchAnalyticsQueryRequest", {**query, "rowLimit": 25001})
    assert gsc.check("SearchAnalyticsQueryRequest", {**query, "type": "shopping"})
    assert gsc.check("SearchAnalyticsQueryRequest", {k: v for k, v in query.items() if k != "startDate"})
    assert google_error_violations(403, {"error": {"code": 403, "message": "x", "status": "NOT_FOUND"}})


# ---- running the connectors against the sandbox and checking every exchange ------------------------------------------


def _query_violations(exchange: Exchange, method: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """Query parameters must be the method's or the API's global ones ($-prefixed system parameters included)."""
    allowed = {**document.get("parameters", {}),
               **{k: v for k, v in method.get("parameters", {}).items() if v.get("location") == "query"}}
    out = []
    for name, values in exchange.request.query.items():
        spec = allowed.get(name.removeprefix("$"))
        if spec is None:
            out.append(f"query parameter {name} is not a parameter of {method['id']}")
        elif "enum" in spec and values[0].split(";")[0] not in spec["enum"]:
            out.append(f"query parameter {name}={values[0]!r} is not one of {spec['enum']}")
    return out


def _ga4_exchange_violations(exchange: Exchange, funnel: SchemaChecker, ga4: SchemaChecker) -> list[str]:
    request, status, body = exchange.request, exchange.response.status, exchange.json
    run_report = _method(GA4_DOC, "analyticsdata.properties.runReport")
    if path_pattern(run_report["flatPath"]).match(request.path):
        out = _query_violations(exchange, run_report, GA4_DOC)
        out += ga4.check(run_report["request"]["$ref"], request.json, "request")
        if "property" in (request.json or {}):
            out.append("request: property travels in the URL path, not the body (RunReportRequest.property)")
        checker, answer_schema = ga4, run_report["response"]["$ref"]
    elif path_pattern("v1alpha/properties/{propertiesId}:runFunnelReport").match(request.path):
        out = funnel.check("google.analytics.data.v1alpha.RunFunnelReportRequest", request.json, "request")
        checker, answer_schema = funnel, "google.analytics.data.v1alpha.RunFunnelReportResponse"
    else:
        return [f"{request.method} {request.path} is not a method the connector should call"]
    if status == 200:
        out += checker.check(answer_schema, body, "answer")
    else:
        out += [f"answer {v}" for v in google_error_violations(status, body)]
    return out


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


def _ga4_connector(url: str) -> Any:
    from connectors.ga4 import Ga4Connector

    settings = GA4Settings(property_ids=("123456789", "234567890"), endpoint=url, timeout_seconds=5)
    return Ga4Connector(settings, sleep=lambda _s: None, policy=RetryPolicy(max_attempts=1))


def test_ga4_requests_and_answers_follow_the_data_api_documents(world):
    """Every report of ga4.REPORTS (runReport pages, the per-day runFunnelReport, the time-zone request), answers
    carrying thresholding, sampling and truncation metadata, and the errors the sandbox gives, checked field by
    field against analyticsdata.v1beta.json (revision in the message) and the v1alpha protobuf types."""
    from connectors.ga4 import REPORTS

    quality = AnswerQuality(seed=3, thresholding=0.5, sampling=0.5, sampled_share=0.1)
    with Ga4Server(world, quality=quality, truncated_before=date(2026, 3, 2)) as server, \
            record_answers(server) as exchanges:
        connector = _ga4_connector(server.url)
        for report in REPORTS.values():
            for batch in connector.fetch(report, WINDOW):
                assert batch.data.num_rows >= 0
        for bad in ("999", "not-a-property"):  # a 404, and a path pattern the client refuses before sending
            with pytest.raises(Exception):  # noqa: B017, PT011 - the client's or the connector's error
                list(_ga4_connector(server.url).fetch(REPORTS["traffic_by_channel"], WINDOW, property_ids=[bad]))
    kinds = {(e.request.path.rsplit(":", 1)[-1], e.response.status) for e in exchanges}
    assert {("runReport", 200), ("runFunnelReport", 200), ("runReport", 404)} <= kinds
    funnel, ga4 = _funnel_checker(), _ga4_checker()
    fail_on({f"#{i} {e.request.method} {e.request.path} -> {e.response.status} (analyticsdata.v1beta revision "
             f"{GA4_DOC['revision']})": _ga4_exchange_violations(e, funnel, ga4) for i, e in enumerate(exchanges)})


def test_ga4_answer_quality_metadata_is_typed_as_documented(world):
    """int64 counts of samplingMetadatas are JSON strings; dataTruncationType is an enum of the document."""
    quality = AnswerQuality(seed=3, thresholding=1.0, sampling=1.0, sampled_share=0.1)
    with Ga4Server(world, quality=quality, truncated_before=date(2026, 3, 2)) as server, \
            record_answers(server) as exchanges:
        list(_ga4_connector(server.url).fetch("traffic_by_channel", WINDOW, property_ids=["123456789"]))
    metadata = exchanges[0].json["metadata"]
    assert metadata["subjectToThresholding"] is True and metadata["dataTruncationReasons"]
    assert isinstance(metadata["samplingMetadatas"][0]["samplesReadCount"], str)
    assert _ga4_checker().check("RunReportResponse", exchanges[0].json) == []


def _gsc_exchange_violations(exchange: Exchange, checker: SchemaChecker) -> list[str]:
    request, status, body = exchange.request, exchange.response.status, exchange.json
    for method in discovery_methods(GSC_DOC):
        if method["httpMethod"] == request.method and path_pattern(method["flatPath"]).match(request.path):
            break
    else:
        return [f"{request.method} {request.path} is not a Search Console method"]
    out = _query_violations(exchange, method, GSC_DOC)
    if "{siteUrl}" in method["flatPath"]:
        site = urllib.parse.unquote(request.path.split("/sites/", 1)[1].split("/", 1)[0])
        if not (site.startswith("sc-domain:") or site.startswith(("http://", "https://"))):
            out.append(f"siteUrl {site!r} is neither sc-domain:... nor a URL-prefix property")
    if "request" in method:
        out += checker.check(method["request"]["$ref"], request.json, "request")
    if status == 200:
        out += checker.check(method["response"]["$ref"], body, "answer") if "response" in method else []
    else:
        out += [f"answer {v}" for v in google_error_violations(status, body)]
    return out


def test_search_console_requests_and_answers_follow_the_discovery_document(world):
    """Every stream for web, Discover and Google News (settled and fresh days, paging), sites.list as `mkpi
    doctor` asks it, and the sandbox's refusals, checked against searchconsole.v1.json."""
    from connectors.search_console import REPORTS, SearchConsoleConnector

    with GscServer(world, forbidden_sites=["https://forbidden.example/"],
                   sites=[DEFAULT_GSC_SITE, "https://forbidden.example/"]) as server, \
            record_answers(server) as exchanges:
        settings = SearchConsoleSettings(sites=(DEFAULT_GSC_SITE,), endpoint=server.url, timeout_seconds=5,
                                         search_types=("web", "discover", "googleNews"), row_limit=500)
        connector = SearchConsoleConnector(settings, sleep=lambda _s: None, policy=RetryPolicy(max_attempts=1))
        fresh = Window(TODAY.replace(day=25), TODAY)  # spans settled and fresh days: dataState all, metadata
        for report in REPORTS.values():
            for window in (WINDOW, fresh):
                list(connector.fetch(report, window))
        connector.service().sites().list().execute(num_retries=0)
        with pytest.raises(Exception):  # noqa: B017, PT011 - googleapiclient's HttpError, a 403
            list(connector.fetch(REPORTS["site_totals"], WINDOW, sites=["https://forbidden.example/"]))
    statuses = {e.response.status for e in exchanges}
    assert {200, 403} <= statuses and len(exchanges) > 20
    checker = _gsc_checker()
    fail_on({f"#{i} {e.request.method} {e.request.path} -> {e.response.status} (searchconsole.v1 revision "
             f"{GSC_DOC['revision']})": _gsc_exchange_violations(e, checker) for i, e in enumerate(exchanges)})


# ---- OAuth scopes (issue #17 item 8) ---------------------------------------------------------------------------------


def test_scopes_are_the_documents_and_the_connectors_ask_a_read_only_one():
    from connectors.ga4 import SCOPES as GA4_SCOPES
    from connectors.search_console import SCOPES as GSC_SCOPES

    assert set(ANALYTICS_SCOPES) == set(_method(GA4_DOC, "analyticsdata.properties.runReport")["scopes"])
    for method_id in ("webmasters.searchanalytics.query", "webmasters.sites.list", "webmasters.sites.get"):
        assert set(WEBMASTERS_SCOPES) == set(_method(GSC_DOC, method_id)["scopes"]), method_id
    assert GA4_SCOPES == ("https://www.googleapis.com/auth/analytics.readonly",)
    assert GSC_SCOPES == ("https://www.googleapis.com/auth/webmasters.readonly",)


def test_a_token_without_the_scope_gets_googles_403_from_both_sandboxes(world):
    """The refusal Google gives (PipedreamHQ/pipedream #15060 for runReport): 403 PERMISSION_DENIED, "Request had
    insufficient authentication scopes.", ErrorInfo ACCESS_TOKEN_SCOPE_INSUFFICIENT, WWW-Authenticate naming the
    scopes that would do; Search Console's envelope also has the v3 "errors" list."""
    import requests

    with Ga4Server(world, token_scopes=GCLOUD_DEFAULT_SCOPES) as ga4, \
            GscServer(world, token_scopes=GCLOUD_DEFAULT_SCOPES) as gsc:
        answers = {
            "ga4": requests.post(f"{ga4.url}/v1beta/properties/123456789:runReport", json={}, timeout=5),
            "gsc": requests.get(f"{gsc.url}/webmasters/v3/sites", timeout=5),
        }
    for name, answer in answers.items():
        body = answer.json()
        assert answer.status_code == 403 and google_error_violations(403, body) == [], name
        error = body["error"]
        assert error["message"] == "Request had insufficient authentication scopes."
        assert error["status"] == "PERMISSION_DENIED"
        info = error["details"][0]
        assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert (info["reason"], info["domain"]) == ("ACCESS_TOKEN_SCOPE_INSUFFICIENT", "googleapis.com")
        assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    assert "errors" not in answers["ga4"].json()["error"]
    assert answers["gsc"].json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
    assert answers["ga4"].json()["error"]["details"][0]["metadata"] == {
        "service": "analyticsdata.googleapis.com", "method": "google.analytics.data.v1beta.BetaAnalyticsData.RunReport"}
    with Ga4Server(world, token_scopes=["https://www.googleapis.com/auth/analytics.readonly"]) as ga4:
        ok = requests.post(f"{ga4.url}/v1beta/properties/123456789:runReport",
                           json={"metrics": [{"name": "sessions"}],
                                 "dateRanges": [{"startDate": "2026-03-01", "endDate": "2026-03-01"}]}, timeout=5)
    assert ok.status_code == 200


def test_the_scope_refusal_is_recognised_through_both_official_clients(world):
    """insufficient_scopes reads the refusal from google-api-core's exception (GA4) and googleapiclient's HttpError
    (Search Console), and says nothing for a 403 that is about the property's access."""
    from connectors.google_auth import insufficient_scopes

    def ga4_error(server: Ga4Server, pid: str) -> BaseException:
        from google.analytics.data_v1beta.types import DateRange, Metric, RunReportRequest

        request = RunReportRequest(property=f"properties/{pid}", metrics=[Metric(name="sessions")],
                                   date_ranges=[DateRange(start_date="yesterday", end_date="yesterday")])
        with pytest.raises(Exception) as caught:  # noqa: PT011 - google.api_core.exceptions.Forbidden
            _ga4_connector(server.url).client().run_report(request=request, retry=None, timeout=5)
        return caught.value

    with Ga4Server(world, token_scopes=GCLOUD_DEFAULT_SCOPES) as server:
        assert set(insufficient_scopes(ga4_error(server, "123456789"))) == set(ANALYTICS_SCOPES)
    with Ga4Server(world, forbidden_properties=["123456789"]) as server:
        assert insufficient_scopes(ga4_error(server, "123456789")) is None  # Viewer missing, not a scope
    from connectors.search_console import SearchConsoleConnector

    for scopes, expected in ((GCLOUD_DEFAULT_SCOPES, set(WEBMASTERS_SCOPES)), (None, None)):
        with GscServer(world, token_scopes=scopes, sites=[]) as server:
            connector = SearchConsoleConnector(SearchConsoleSettings(sites=(DEFAULT_GSC_SITE,), endpoint=server.url,
                                                                     timeout_seconds=5))
            with pytest.raises(Exception) as caught:  # noqa: PT011 - googleapiclient.errors.HttpError
                connector.service().sites().get(siteUrl=DEFAULT_GSC_SITE).execute(num_retries=0)
            found = insufficient_scopes(caught.value)
            assert (set(found) if found is not None else None) == expected


def test_doctor_names_the_missing_scope_and_the_command_that_adds_it(world, monkeypatch):
    """Credentials made by plain `gcloud auth application-default login`: `mkpi doctor` says which scope is missing
    and prints the gcloud command with --scopes (the platform's scope and cloud-platform) and --client-id-file."""
    import contextlib
    import io

    from pipelines.cli import main

    with Ga4Server(world, token_scopes=GCLOUD_DEFAULT_SCOPES) as ga4, \
            GscServer(world, token_scopes=GCLOUD_DEFAULT_SCOPES) as gsc:
        for name, value in {**ga4.env(), **gsc.env()}.items():
            monkeypatch.setenv(name, value)
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
            code = main(["doctor"])
        out = output.getvalue()
    text = " ".join(out.split())  # rich wraps long lines
    assert code == 1
    assert "runReport refused: Request had insufficient authentication scopes." in text
    assert "sites.list refused: Request had insufficient authentication scopes." in text
    assert ("the credentials lack the OAuth scope https://www.googleapis.com/auth/analytics.readonly" in text)
    assert ("the credentials lack the OAuth scope https://www.googleapis.com/auth/webmasters.readonly" in text)
    for scope in ("analytics.readonly", "webmasters.readonly"):
        assert (f"--scopes=https://www.googleapis.com/auth/{scope},https://www.googleapis.com/auth/cloud-platform"
                in text.replace("gcloud auth application-default login --client-id-file=CLIENT_SECRET.json ", ""))
    assert "gcloud auth application-default login --client-id-file=CLIENT_SECRET.json" in text
    assert "Viewer role" not in text  # not mistaken for a missing permission on the property


def test_the_platform_pages_give_the_working_gcloud_command():
    """docs/platforms/ga4.md and search_console.md: the command to run (in a code block) is never the bare one, whose
    credentials lack the scopes, but has --scopes with both read-only scopes and cloud-platform and --client-id-file."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "docs" / "platforms"
    for page in ("ga4.md", "search_console.md"):
        blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", (root / page).read_text(), flags=re.S)
        commands = [" ".join(line.split()) for block in blocks for line in block.replace("\\\n", " ").splitlines()
                    if "gcloud auth application-default login" in line]
        assert commands, f"{page} shows no gcloud command to run"
        for command in commands:
            assert "--scopes=" in command and "--client-id-file=" in command, (page, command)
            for scope in ("analytics.readonly", "webmasters.readonly", "cloud-platform"):
                assert f"https://www.googleapis.com/auth/{scope}" in command, (page, scope)
