"""Matomo's Reporting API, the part the connector uses: facts for tests/test_contracts_matomo.py.

Matomo publishes no machine-readable schema; the facts below are read from its source and from the outputs its own
system tests expect (the answers Matomo's CI compares byte for byte), at:

- matomo-org/matomo, commit f09912cb702a76d06ab1a129a8e0a4e2a61818a8 (5.2.0-b5 + 19 commits, 24 October 2024);
- matomo-org/plugin-MarketingCampaignsReporting, commit d4db44c7940255dd7420e5a5dea5c03f7da95bac.

Each fact names the file it comes from.
"""

import re

MATOMO_COMMIT = "f09912cb702a76d06ab1a129a8e0a4e2a61818a8"
PLUGIN_COMMIT = "d4db44c7940255dd7420e5a5dea5c03f7da95bac"

# The API methods the connector calls: the parameters of the PHP method (True = no default, so required), from the
# method's signature in the file named. Matomo's Proxy maps request parameters to them by name.
METHODS: dict[str, tuple[str, dict[str, bool]]] = {
    "VisitsSummary.get": ("plugins/VisitsSummary/API.php", {
        "idSite": True, "period": True, "date": True, "segment": False, "columns": False}),
    "Referrers.getReferrerType": ("plugins/Referrers/API.php", {
        "idSite": True, "period": True, "date": True, "segment": False, "typeReferrer": False, "idSubtable": False,
        "expanded": False}),
    "Goals.get": ("plugins/Goals/API.php", {
        "idSite": True, "period": True, "date": True, "segment": False, "idGoal": False, "columns": False,
        "showAllGoalSpecificMetrics": False, "compare": False}),
    "SitesManager.getSiteFromId": ("plugins/SitesManager/API.php", {"idSite": True}),
    "API.getMatomoVersion": ("plugins/API/API.php", {}),
    "API.getBulkRequest": ("plugins/API/API.php", {"urls": True}),
    "MarketingCampaignsReporting.getMedium": ("API.php of the plugin", {
        "idSite": True, "period": True, "date": True, "segment": False}),
}
# Parameters every API request takes besides its method's: core/API/Request.php reads module, method, format and
# token_auth; core/API/DataTableGenericFilter.php the generic filters (those below are the ones it lists).
GENERIC_PARAMETERS = frozenset({
    "module", "method", "format", "token_auth", "filter_limit", "filter_offset", "filter_sort_column",
    "filter_sort_order", "filter_pattern", "filter_column", "filter_truncate", "filter_excludelowpop",
    "filter_excludelowpop_value", "keep_summary_row", "flat", "label", "showColumns", "hideColumns",
    "disable_generic_filters", "disable_queued_filters", "format_metrics"})
# core/Period/Factory.php: the periods build() knows.
PERIODS = ("day", "week", "month", "year", "range")
# The renderers of plugins/API/Renderer/ (format=, case-insensitive).
FORMATS = ("console", "csv", "html", "json", "original", "rss", "tsv", "xml")
# core/Date.php factory and core/Period/Range.php: a date, today/yesterday/now, lastN/previousN, or "A,B".
_ONE_DATE = r"(\d{4}-\d{2}-\d{2}|today|yesterday|now)"
DATE = re.compile(rf"{_ONE_DATE}|(last|previous)\d+|{_ONE_DATE},{_ONE_DATE}")
# Integers the generic filters cast (filter_limit -1 means all rows: DataTableGenericFilter, Limit filter).
INTEGER_PARAMETERS = frozenset({"filter_limit", "filter_offset", "idSite", "idSubtable"})

# Answers. core/DataTable/Renderer (JSON): a report over several days is an object keyed by YYYY-MM-DD whose empty
# days are [] (tests/PHPUnit/System/expected/test_OneVisitorTwoVisits_bulk_json__API.getBulkRequest.json); an error
# is {"result": "error", "message": ...} (plugins/API/Renderer/Json.php renderException); a scalar is
# {"value": ...} (the same bulk output, API.getMatomoVersion-like answers).
#
# Field kinds: "count" a whole number (JSON number, or a numeric string: archive values read back from blobs, as the
# bulk output's "nb_visits": "1"); "amount" a number or numeric string; "percent" a string like "66.67%"; "ratio"
# a number; "text" a string; "code" an integer; "goals" the per-goal block keyed "idgoal=<id>" (the key
# core/DataTable/Filter/ReplaceColumnNames.php writes; the XML renderer shows it as <row idgoal='...'>).
VISIT_FIELDS = {
    "nb_uniq_visitors": "count", "nb_users": "count", "nb_visits": "count", "nb_actions": "count",
    "nb_visits_converted": "count", "bounce_count": "count", "sum_visit_length": "count", "max_actions": "count",
}
# The keys of a row of the per-goal block (plugins/Goals/tests/System/expected/
# test_goals_ecommerceshowSalesByReferrers__Referrers.getReferrerType_day.xml; the plugin's getMedium outputs).
GOAL_BLOCK_FIELDS = {
    "nb_conversions": "count", "nb_visits_converted": "count", "revenue": "amount", "revenue_subtotal": "amount",
    "revenue_tax": "amount", "revenue_shipping": "amount", "revenue_discount": "amount", "items": "count",
}
_GOAL_METRICS = {"nb_conversions": "count", "nb_visits_converted": "count", "revenue": "amount",
                 "conversion_rate": "percent", "nb_visits": "count"}
_ECOMMERCE_METRICS = {"revenue_subtotal": "amount", "revenue_tax": "amount", "revenue_shipping": "amount",
                      "revenue_discount": "amount", "items": "count", "avg_order_revenue": "amount"}
# Goals.get adds each metric for new and for returning visits (plugins/Goals/API.php get(): the _new_visit and
# _returning_visit segments), as every Goals.get expected output shows.
_GOALS_GET = {f"{k}{suffix}": v for k, v in {**_GOAL_METRICS, **_ECOMMERCE_METRICS}.items()
              for suffix in ("", "_new_visit", "_returning_visit")}

FIELDS: dict[str, dict[str, str]] = {
    # tests/PHPUnit/System/expected/*__VisitsSummary.get_day.xml (40 files) and the bulk JSON output above
    "VisitsSummary.get": {**VISIT_FIELDS, "bounce_rate": "percent", "nb_actions_per_visit": "ratio",
                          "avg_time_on_site": "count"},
    # */expected/*__Referrers.getReferrerType_day.xml; idsubdatatable: core/DataTable/Renderer.php
    "Referrers.getReferrerType": {
        **VISIT_FIELDS, "label": "text", "goals": "goals", "nb_conversions": "count", "revenue": "amount",
        "conversion_rate": "percent", "nb_actions_per_visit": "ratio", "avg_time_on_site": "count",
        "bounce_rate": "percent", "revenue_per_visit": "amount", "segment": "text", "referrer_type": "code",
        "idsubdatatable": "code"},
    # */expected/*__Goals.get_day.xml: without idGoal, with idGoal=ecommerceOrder (..._GoalOrder__...) and
    # ecommerceAbandonedCart (..._GoalAbandonedCart__...); no per-goal "goals" block in any of them
    "Goals.get": _GOALS_GET,
    # SELECT * FROM site (core/Db/Schema/Mysql.php, table site) plus timezone_name and currency_name added by
    # plugins/SitesManager/API.php enrichSite (creator_login only for a super user)
    "SitesManager.getSiteFromId": {
        "idsite": "count", "name": "text", "main_url": "text", "ts_created": "text", "ecommerce": "count",
        "sitesearch": "count", "sitesearch_keyword_parameters": "text", "sitesearch_category_parameters": "text",
        "timezone": "text", "currency": "text", "exclude_unknown_urls": "count", "excluded_ips": "text",
        "excluded_parameters": "text", "excluded_user_agents": "text", "excluded_referrers": "text",
        "group": "text", "type": "text", "keep_url_fragment": "count", "creator_login": "text",
        "timezone_name": "text", "currency_name": "text"},
    "API.getMatomoVersion": {"value": "text"},
    # plugin-MarketingCampaignsReporting tests/System/expected/*__MarketingCampaignsReporting.getMedium_day.xml
    "MarketingCampaignsReporting.getMedium": {
        **VISIT_FIELDS, "label": "text", "goals": "goals", "nb_conversions": "count", "revenue": "amount",
        "segment": "text", "idsubdatatable": "code"},
}
# Reports answered as a list of rows (a DataTable), the others as one row (a simple table) or a scalar.
ROW_LISTS = frozenset({"Referrers.getReferrerType", "MarketingCampaignsReporting.getMedium"})
DATED = frozenset({"VisitsSummary.get", "Referrers.getReferrerType", "Goals.get",
                   "MarketingCampaignsReporting.getMedium"})

# HTTP status of an error answer (Matomo 5): exceptions implementing Piwik\Http\HttpCodeException set it when the
# request is the root API request (core/API/ResponseBuilder.php getResponseException; nested requests, such as the
# sub-requests of API.getBulkRequest, never send headers): NoAccessException 401 (core/NoAccessException.php, thrown by
# core/Access.php for "You can't access this resource ..."), BadRequestException 400 (core/Http/
# BadRequestException.php, thrown by core/API/Proxy.php for a method that does not exist); any other error is 200.
ERROR_STATUS = (
    (re.compile(r"^You can't access this resource|^Unable to authenticate with the provided token"), 401),
    (re.compile(r"^The method '.*' does not exist or is not available in the module"), 400),
)


def error_status(message: str) -> int:
    """The HTTP status Matomo 5 gives a root API request failing with this message."""
    return next((status for pattern, status in ERROR_STATUS if pattern.search(message)), 200)
