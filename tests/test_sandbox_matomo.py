"""The Matomo emulator over a real socket with ``requests``, the way the hand-written connector will call it.

The point is the wire: merged query/body parameters, HTTP 200 error envelopes, ``[]`` for empty days,
percent and number strings, bulk requests, and a request log that proves the token never leaks.
"""

import re
from datetime import date, timedelta

import pytest
import requests

from sandbox.launcher import start_sandbox
from sandbox.matomo_server import MatomoServer, goal_figures
from sandbox.world import World

TODAY = date(2026, 1, 31)
TOKEN = "sandbox-test-token"
DAYS = [date(2026, 1, 18) + timedelta(days=i) for i in range(14)]  # odd and even days, up to TODAY
RANGE = f"{DAYS[0]},{DAYS[-1]}"


@pytest.fixture(scope="module")
def world():
    return World(seed=7, today=TODAY)


@pytest.fixture(scope="module")
def server(world):
    with MatomoServer(world, token=TOKEN, site_ids=("1", "2")) as srv:
        yield srv


def api(server, method, *, token=TOKEN, status=200, **params):
    data = {"module": "API", "method": method, "format": "JSON", **params}
    if token is not None:
        data["token_auth"] = token
    response = requests.post(f"{server.url}/index.php", data=data, timeout=10)
    assert response.status_code == status, response.text
    return response.json()


def report(server, method, dates=RANGE, **params):
    return api(server, method, idSite="1", period="day", date=dates, **params)


def cents(value):
    return round(float(value) * 100)


def test_range_is_keyed_by_date_with_empty_lists_after_today(server):
    result = report(server, "VisitsSummary.get", dates="2026-01-29,2026-02-02")
    assert list(result) == ["2026-01-29", "2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"]
    assert result["2026-02-01"] == [] and result["2026-02-02"] == []
    assert all(isinstance(result[d], dict) and result[d]["nb_visits"] > 0 for d in list(result)[:3])
    flat = report(server, "VisitsSummary.get", dates="2026-01-30")
    assert flat == result["2026-01-30"]  # a single date is the flat value, not keyed
    assert report(server, "VisitsSummary.get", dates="yesterday") == flat
    assert list(report(server, "VisitsSummary.get", dates="last3")) == ["2026-01-29", "2026-01-30", "2026-01-31"]
    assert report(server, "Referrers.getReferrerType", dates="2026-02-01") == []


def test_visits_summary_equals_world(world, server):
    result = report(server, "VisitsSummary.get")
    assert list(result) == [d.isoformat() for d in DAYS]
    for day in DAYS:
        row, s = result[day.isoformat()], world.matomo_day("1", day).summary
        assert {k: int(row[k]) for k in s.as_dict()} == s.as_dict()
        assert row["nb_users"] == 0
        assert row["bounce_rate"] == f"{round(100 * s.bounce_count / s.nb_visits)}%"
        assert row["avg_time_on_site"] == round(s.sum_visit_length / s.nb_visits)
        assert row["nb_actions_per_visit"] == pytest.approx(s.nb_actions / s.nb_visits, abs=0.05)


def test_referrer_rows_sum_to_the_summary(world, server):
    result = report(server, "Referrers.getReferrerType", filter_limit="-1")
    labels = {"direct": "Direct Entry", "search": "Search Engines", "website": "Websites",
              "campaign": "Campaigns", "social": "Social Networks"}
    for day in DAYS:
        rows, m = result[day.isoformat()], world.matomo_day("1", day)
        assert isinstance(rows, list)
        assert sum(r["nb_visits"] for r in rows) == m.summary.nb_visits
        assert sum(int(r["sum_visit_length"]) for r in rows) == m.summary.sum_visit_length
        assert [r["nb_visits"] for r in rows] == sorted((r["nb_visits"] for r in rows), reverse=True)
        for row in rows:
            rtype = row["segment"].removeprefix("referrerType==")
            assert row["label"] == labels[rtype]
            assert row["nb_visits"] == m.by_referrer_type[rtype].nb_visits
            assert ("idsubdatatable" in row) == (rtype != "direct")


def test_ecommerce_goals_equal_world_and_referrer_split_adds_up(world, server):
    orders = report(server, "Goals.get", idGoal="ecommerceOrder")
    carts = report(server, "Goals.get", idGoal="ecommerceAbandonedCart")
    overall = report(server, "Goals.get")
    referrers = report(server, "Referrers.getReferrerType")
    for day in DAYS:
        key, m = day.isoformat(), world.matomo_day("1", day)
        o = orders[key]
        assert o["nb_conversions"] == m.ecommerce.orders
        assert cents(o["revenue"]) == round(m.ecommerce.revenue * 100)
        assert o["items"] == m.ecommerce.items
        assert 0 < o["nb_visits_converted"] <= o["nb_conversions"]
        assert cents(o["revenue_subtotal"]) - cents(o["revenue_discount"]) + cents(o["revenue_shipping"]) == (
            cents(o["revenue"]))
        assert carts[key]["nb_conversions"] == m.ecommerce.abandoned_carts
        # Overall conversions exclude abandoned carts; converted visits match VisitsSummary.
        assert overall[key]["nb_visits_converted"] == m.summary.nb_visits_converted
        assert "goals" not in overall[key]  # Goals.get without idGoal has no per-goal block in Matomo's outputs
        assert overall[key]["nb_conversions"] >= m.ecommerce.orders
        rows = referrers[key]
        order_goals = [r["goals"]["idgoal=ecommerceOrder"] for r in rows if "idgoal=ecommerceOrder" in
                       r.get("goals", {})]
        assert sum(g["nb_conversions"] for g in order_goals) == m.ecommerce.orders
        assert sum(cents(g["revenue"]) for g in order_goals) == round(m.ecommerce.revenue * 100)
        assert sum(cents(r.get("revenue", 0)) for r in rows) == round(m.ecommerce.revenue * 100)
        per_type, _total = goal_figures(world, m)
        for row in rows:
            g = per_type[row["segment"].removeprefix("referrerType==")]
            assert row.get("nb_conversions", 0) == g.orders + g.signups
            assert row["nb_visits_converted"] == g.order_visits + g.signups


def test_percentages_and_odd_day_numbers_are_strings(server):
    summary = report(server, "VisitsSummary.get")
    goals = report(server, "Goals.get", idGoal="ecommerceOrder")
    referrers = report(server, "Referrers.getReferrerType")
    for day in DAYS:
        key, odd = day.isoformat(), day.day % 2 == 1
        assert re.fullmatch(r"\d+%", summary[key]["bounce_rate"])
        assert re.fullmatch(r"\d+(\.\d+)?%", goals[key]["conversion_rate"])
        assert isinstance(summary[key]["sum_visit_length"], str) is odd
        assert isinstance(goals[key]["revenue"], str) is odd
        assert isinstance(goals[key]["nb_conversions"], int)  # only revenue and sum_visit_length vary
        for row in referrers[key]:
            assert isinstance(row["sum_visit_length"], str) is odd
            if "revenue" in row:
                assert isinstance(row["revenue"], str) is odd


def test_bulk_request_mixes_success_and_error(world, server):
    data = {
        "module": "API", "method": "API.getBulkRequest", "format": "JSON", "token_auth": TOKEN,
        "urls[0]": "method=VisitsSummary.get&idSite=1&period=day&date=2026-01-30,2026-02-01",
        "urls[1]": "method=VisitsSummary.getNope&idSite=1&period=day&date=2026-01-30",
        "urls[2]": "method=Goals.get&idSite=1&period=day&date=2026-01-30&idGoal=ecommerceOrder",
    }
    result = requests.post(f"{server.url}/index.php", data=data, timeout=10).json()
    assert isinstance(result, list) and len(result) == 3
    assert result[0]["2026-01-30"]["nb_visits"] == world.matomo_day("1", date(2026, 1, 30)).summary.nb_visits
    assert result[0]["2026-02-01"] == []
    assert result[1]["result"] == "error" and "does not exist" in result[1]["message"]
    assert result[2]["nb_conversions"] == world.matomo_day("1", date(2026, 1, 30)).ecommerce.orders


@pytest.mark.parametrize("token", ["", None])
def test_missing_token_is_an_error_envelope(server, token):
    """Matomo 5: NoAccessException is HTTP 401 for a root API request (core/API/ResponseBuilder.php)."""
    result = api(server, "VisitsSummary.get", token=token, status=401, idSite="1", period="day", date="2026-01-30")
    assert result == {"result": "error",
                      "message": "You can't access this resource as it requires 'view' access for the website id = 1."}


UNAUTHENTICATED = "Unable to authenticate with the provided token. It is either invalid or expired."


def test_wrong_token_is_http_401_like_matomo_5(server):
    """Matomo 5: 401 with the API's JSON error when module=API and the method are in the query string (how the
    connector sends them), an HTML error page when they are only in the POST body, the longer message when the
    token came in the URL."""
    url = f"{server.url}/index.php"
    data = {"idSite": "1", "period": "day", "date": "2026-01-30", "token_auth": "wrong-token"}
    query = {"module": "API", "method": "VisitsSummary.get", "format": "JSON"}
    as_json = requests.post(url, params=query, data=data, timeout=10)
    assert as_json.status_code == 401 and as_json.headers["content-type"].startswith("application/json")
    assert as_json.json() == {"result": "error", "message": UNAUTHENTICATED}
    bulk = requests.post(url, params={"module": "API", "method": "API.getBulkRequest", "format": "JSON"},
                         data={"token_auth": "wrong-token", "urls[0]": "method=API.getMatomoVersion"}, timeout=10)
    assert bulk.status_code == 401 and bulk.json() == {"result": "error", "message": UNAUTHENTICATED}
    as_page = requests.post(url, data={**query, **data}, timeout=10)
    assert as_page.status_code == 401 and as_page.headers["content-type"].startswith("text/html")
    assert UNAUTHENTICATED in as_page.text
    in_url = requests.get(url, params={**query, **data}, timeout=10)
    assert in_url.status_code == 401 and in_url.json()["message"] == (
        "Unable to authenticate with the provided token. It is either invalid, expired or is required to be sent "
        "as a POST parameter.")
    assert api(server, "API.getMatomoVersion") == {"value": "5.2.0"}  # the right token still works


def test_other_api_errors(server):
    no_access = api(server, "VisitsSummary.get", status=401, idSite="99", period="day", date="2026-01-30")
    assert no_access["result"] == "error" and no_access["message"].endswith("website id = 99.")
    assert api(server, "VisitsSummary.get", idSite="2", period="day", date="2026-01-30") == []  # known, empty
    nope = report(server, "VisitsSummary.nope", status=400)  # BadRequestException (core/API/Proxy.php)
    assert nope["result"] == "error" and nope["message"].startswith("The method 'nope' does not exist")
    bad_date = report(server, "VisitsSummary.get", dates="2026-02-30")
    assert bad_date["result"] == "error" and "2026-02-30" in bad_date["message"]
    assert api(server, "API.getMatomoVersion") == {"value": "5.2.0"}
    site = api(server, "SitesManager.getSiteFromId", idSite="1")
    assert (site["idsite"], site["timezone"], site["currency"]) == ("1", "Europe/Paris", "EUR")


def test_query_string_and_body_are_merged(world, server):
    url = f"{server.url}/index.php?module=API&method=VisitsSummary.get&format=JSON&period=day"
    response = requests.post(url, data={"idSite": "1", "date": "2026-01-30", "token_auth": TOKEN}, timeout=10)
    assert response.status_code == 200
    assert response.json()["nb_visits"] == world.matomo_day("1", date(2026, 1, 30)).summary.nb_visits
    # On a clash the query string wins, as PHP's $_GET + $_POST does.
    clash = requests.post(url + "&date=2026-01-29", data={"idSite": "1", "date": "2026-01-30", "token_auth": TOKEN},
                          timeout=10).json()
    assert clash["nb_visits"] == world.matomo_day("1", date(2026, 1, 29)).summary.nb_visits


def test_token_is_never_logged_but_its_location_is(server):
    server.clear_log()
    params = {"module": "API", "method": "VisitsSummary.get", "format": "JSON", "idSite": "1", "period": "day",
              "date": "2026-01-30"}
    requests.get(f"{server.url}/index.php", params={**params, "token_auth": TOKEN}, timeout=10)
    requests.post(f"{server.url}/index.php", data={**params, "token_auth": TOKEN}, timeout=10)
    requests.post(f"{server.url}/index.php", data={
        "module": "API", "method": "API.getBulkRequest", "format": "JSON",
        "urls[0]": f"method=API.getMatomoVersion&token_auth={TOKEN}"}, timeout=10)
    logged, matomo = server.requests, server.matomo_requests
    assert len(logged) == len(matomo) == 3
    assert TOKEN not in repr(logged) and TOKEN not in repr(matomo)
    assert [(m.token_in_query, m.token_in_body) for m in matomo] == [(True, False), (False, True), (False, False)]
    assert logged[0].query["token_auth"] == ["REDACTED"] and logged[1].form["token_auth"] == ["REDACTED"]
    assert "token_auth=REDACTED" in logged[2].form["urls[0]"][0]
    assert matomo[2].bulk_requests[0]["token_auth"] == "REDACTED"
    assert matomo[0].api_method == "VisitsSummary.get"


def test_scripted_faults_then_normal_answers(server):
    server.add_fault("status", 503, {"result": "error", "message": "busy"})
    server.add_fault("html")
    data = {"module": "API", "method": "API.getMatomoVersion", "format": "JSON", "token_auth": TOKEN}
    first = requests.post(f"{server.url}/index.php", data=data, timeout=10)
    assert first.status_code == 503
    second = requests.post(f"{server.url}/index.php", data=data, timeout=10)
    assert second.status_code == 200 and second.headers["content-type"].startswith("text/html")
    assert "<html" in second.text
    third = requests.post(f"{server.url}/index.php", data=data, timeout=10)
    assert third.json() == {"value": "5.2.0"}
    assert [r.fault for r in server.matomo_requests[-3:]] == ["status", "html", None]


def test_restated_days_grow_with_reads():
    with MatomoServer(World(seed=7, today=TODAY, restatement_days=3), token=TOKEN) as srv:
        first = report(srv, "VisitsSummary.get", dates="2026-01-31")["nb_visits"]
        for _ in range(3):
            later = report(srv, "VisitsSummary.get", dates="2026-01-31")["nb_visits"]
        assert later > first


def test_launcher_env_points_at_a_working_matomo():
    tokens = []
    for _ in range(2):
        with start_sandbox(World(seed=7, today=TODAY)) as sandbox:
            env = sandbox.env
            assert env["MKPI_MATOMO_URL"].startswith("http://127.0.0.1:") and env["MKPI_MATOMO_URL"].endswith("/")
            assert env["MKPI_MATOMO_SITE_IDS"] == "1"
            assert re.fullmatch(r"[0-9a-f]{32}", env["MKPI_MATOMO_TOKEN"])
            tokens.append(env["MKPI_MATOMO_TOKEN"])
            response = requests.post(env["MKPI_MATOMO_URL"] + "index.php", data={
                "module": "API", "method": "VisitsSummary.get", "idSite": "1", "period": "day",
                "date": "2026-01-30", "format": "JSON", "token_auth": env["MKPI_MATOMO_TOKEN"]}, timeout=10)
            assert response.json()["nb_visits"] > 0
    assert tokens[0] != tokens[1]


# ---- MarketingCampaignsReporting plugin ------------------------------------------------------------------


def test_campaign_mediums_split_the_campaign_referrer_type(world, server):
    mediums = report(server, "MarketingCampaignsReporting.getMedium")
    referrers = report(server, "Referrers.getReferrerType")
    for day in DAYS:
        key, truth = day.isoformat(), world.matomo_day("1", day)
        rows = mediums[key]
        assert [r["label"] for r in rows] == sorted(truth.campaign_mediums, key=lambda m: (
            -truth.campaign_mediums[m].nb_visits, sorted(truth.campaign_mediums).index(m)))
        assert all(r["segment"] == f"campaignMedium=={r['label']}" and r["label"] == r["label"].lower() for r in rows)
        (campaign,) = [r for r in referrers[key] if r["segment"] == "referrerType==campaign"]
        for field in ("nb_visits", "nb_visits_converted", "bounce_count", "sum_visit_length", "nb_actions"):
            assert sum(int(r[field]) for r in rows) == int(campaign[field]) == getattr(
                truth.by_referrer_type["campaign"], field)
        for r in rows:
            v = truth.campaign_mediums[r["label"]]
            assert (r["nb_visits"], r["bounce_count"], r["nb_visits_converted"]) == (
                v.nb_visits, v.bounce_count, v.nb_visits_converted)
            assert r["bounce_count"] <= r["nb_visits"] and r["nb_visits_converted"] <= r["nb_visits"]
    assert report(server, "MarketingCampaignsReporting.getMedium", dates="2026-02-01") == []


PLUGIN_ABSENT = ("The plugin MarketingCampaignsReporting is not enabled. You can activate the plugin on "
                 "Settings > Plugins page in Matomo.")


def test_without_the_plugin_getmedium_is_matomos_plugin_not_enabled_error(world):
    with MatomoServer(world, token=TOKEN, campaign_plugin=False) as srv:
        assert report(srv, "MarketingCampaignsReporting.getMedium") == {"result": "error", "message": PLUGIN_ABSENT}
        data = {"module": "API", "method": "API.getBulkRequest", "format": "JSON", "token_auth": TOKEN,
                "urls[0]": "method=VisitsSummary.get&idSite=1&period=day&date=2026-01-30",
                "urls[1]": "method=MarketingCampaignsReporting.getMedium&idSite=1&period=day&date=2026-01-30"}
        response = requests.post(f"{srv.url}/index.php", data=data, timeout=10)
    assert response.status_code == 200
    visits, medium = response.json()
    assert visits["nb_visits"] == world.matomo_day("1", date(2026, 1, 30)).summary.nb_visits
    assert medium == {"result": "error", "message": PLUGIN_ABSENT}


@pytest.mark.parametrize(("value", "present"), [(None, True), ("present", True), ("1", True), ("absent", False),
                                                ("0", False)])
def test_sandbox_knob_for_the_campaign_plugin(world, value, present):
    environ = {} if value is None else {"MKPI_SANDBOX_MATOMO_CAMPAIGN_PLUGIN": value}
    assert MatomoServer.for_sandbox(world, environ).campaign_plugin is present


def test_sandbox_knob_refuses_a_typo(world):
    with pytest.raises(ValueError, match="MKPI_SANDBOX_MATOMO_CAMPAIGN_PLUGIN"):
        MatomoServer.for_sandbox(world, {"MKPI_SANDBOX_MATOMO_CAMPAIGN_PLUGIN": "maybe"})
