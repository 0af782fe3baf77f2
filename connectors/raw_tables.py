"""Every source's raw tables, declared once: name, Arrow schema, key, partition and account columns (Streams).

Business purpose: the connectors write these tables and the KPI models read them; both import the declarations from
here, so a column a KPI's SQL relies on cannot drift from the column a connector writes, and the KPI layer, the
publish step and the tests can know every raw table without importing a platform's client (the connector modules
pull in requests, grpc and the Google client libraries; this module imports pyarrow only).

Why one module rather than one per platform: the raw tables are the contract between two layers; read together
they show the whole warehouse at a glance. Each connector module re-exports its own (`connectors.ga4.REPORT_QUALITY`,
`connectors.hubspot.default_stream`, ...) and lists them as its `STREAMS`. A new platform adds its section here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from connectors.batches import Stream


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype) for name, dtype in fields])


# --- GA4 (connectors/ga4.py: runReport / runFunnelReport answers) ------------------------------------------------

_GA4_HEAD = (("property_id", pa.string()), ("date", pa.date32()))
_GA4_TAIL = (("is_other", pa.bool_()), ("time_zone", pa.string()), ("currency_code", pa.string()))

GA4_TRAFFIC = Stream(
    table="ga4.traffic_by_channel",
    schema=_schema(
        *_GA4_HEAD,
        ("session_default_channel_group", pa.string()),
        ("sessions", pa.int64()),
        ("engaged_sessions", pa.int64()),
        ("user_engagement_duration", pa.float64()),
        ("average_session_duration", pa.float64()),
        ("session_key_event_rate", pa.float64()),
        ("key_events", pa.float64()),
        ("new_users", pa.int64()),
        ("ecommerce_purchases", pa.int64()),
        ("purchase_revenue", pa.float64()),
        *_GA4_TAIL,
        ("converting_sessions", pa.int64()),
        ("session_duration_seconds", pa.float64()),
    ),
    key=("property_id", "date", "session_default_channel_group"),
    scope_column="property_id",
)
GA4_ECOMMERCE = Stream(
    table="ga4.ecommerce_by_date",
    schema=_schema(
        *_GA4_HEAD,
        ("ecommerce_purchases", pa.int64()),
        ("purchase_revenue", pa.float64()),
        ("add_to_carts", pa.int64()),
        ("checkouts", pa.int64()),
        *_GA4_TAIL,
    ),
    key=("property_id", "date"),
    scope_column="property_id",
)
GA4_CART_FUNNEL = Stream(
    table="ga4.cart_funnel_daily",
    schema=_schema(
        ("property_id", pa.string()),
        ("date", pa.date32()),
        ("cart_users", pa.int64()),  # active users at the add_to_cart step
        ("purchased_after_cart_users", pa.int64()),  # of them, those who then purchased (closed funnel)
        ("time_zone", pa.string()),
    ),
    key=("property_id", "date"),
    scope_column="property_id",
)
# What GA4 said about each answer, one row per property, report and day of the answer's window. A report's
# asset replaces its own rows only (the batch scope is property and report).
GA4_REPORT_QUALITY = Stream(
    table="ga4.report_quality",
    schema=_schema(
        ("property_id", pa.string()),
        ("report", pa.string()),
        ("date", pa.date32()),
        ("subject_to_thresholding", pa.bool_()),
        ("sampled", pa.bool_()),
        ("samples_read_count", pa.int64()),
        ("sampling_space_size", pa.int64()),
        ("data_loss_from_other_row", pa.bool_()),
        ("data_truncation_reasons", pa.string()),
    ),
    key=("property_id", "report", "date"),
    scope_column="property_id",
)
GA4_STREAMS = (GA4_TRAFFIC, GA4_ECOMMERCE, GA4_CART_FUNNEL, GA4_REPORT_QUALITY)


# --- Search Console (connectors/search_console.py: searchanalytics.query rows) -----------------------------------


def _gsc_stream(name: str, extra: tuple[tuple[str, pa.DataType], ...]) -> Stream:
    schema = pa.schema([
        ("site_url", pa.string()), ("search_type", pa.string()), ("date", pa.date32()), *extra,
        ("clicks", pa.int64()), ("impressions", pa.int64()), ("ctr", pa.float64()), ("position", pa.float64()),
        ("data_state", pa.string()),
    ])
    return Stream(table=f"search_console.{name}", schema=schema,
                  key=("site_url", "search_type", "date", *(c for c, _ in extra)), scope_column="site_url")


GSC_SITE_TOTALS = _gsc_stream("site_totals", ())
GSC_PAGES = _gsc_stream("pages", (("page", pa.string()),))
GSC_QUERIES = _gsc_stream("queries", (("query", pa.string()),))
GSC_DEVICES = _gsc_stream("devices", (("device", pa.string()),))
GSC_COUNTRIES = _gsc_stream("countries", (("country", pa.string()),))
GSC_STREAMS = (GSC_SITE_TOTALS, GSC_PAGES, GSC_QUERIES, GSC_DEVICES, GSC_COUNTRIES)


# --- Matomo (connectors/matomo.py: API.getBulkRequest answers) ---------------------------------------------------

_MATOMO_TAIL = (("time_zone", pa.string()), ("currency_code", pa.string()))

MATOMO_VISITS = Stream(
    table="matomo.visits_summary",
    schema=pa.schema([
        ("site_id", pa.string()), ("date", pa.date32()),
        ("nb_visits", pa.int64()), ("nb_uniq_visitors", pa.int64()), ("nb_actions", pa.int64()),
        ("nb_visits_converted", pa.int64()), ("bounce_count", pa.int64()), ("sum_visit_length", pa.int64()),
        ("max_actions", pa.int64()), *_MATOMO_TAIL,
    ]),
    key=("site_id", "date"),
    scope_column="site_id",
)
MATOMO_REFERRERS = Stream(
    table="matomo.referrer_types",
    schema=pa.schema([
        ("site_id", pa.string()), ("date", pa.date32()), ("referrer_type", pa.string()), ("label", pa.string()),
        ("nb_visits", pa.int64()), ("nb_uniq_visitors", pa.int64()), ("nb_actions", pa.int64()),
        ("nb_visits_converted", pa.int64()), ("bounce_count", pa.int64()), ("sum_visit_length", pa.int64()),
        ("orders", pa.int64()), ("revenue", pa.float64()), *_MATOMO_TAIL,
    ]),
    key=("site_id", "date", "referrer_type"),
    scope_column="site_id",
)
MATOMO_GOALS = Stream(
    table="matomo.goals",
    schema=pa.schema([
        ("site_id", pa.string()), ("date", pa.date32()), ("goal", pa.string()),
        ("nb_conversions", pa.int64()), ("nb_visits_converted", pa.int64()), ("revenue", pa.float64()),
        ("items", pa.int64()), *_MATOMO_TAIL,
    ]),
    key=("site_id", "date", "goal"),
    scope_column="site_id",
)
# MarketingCampaignsReporting.getMedium (github.com/matomo-org/plugin-MarketingCampaignsReporting, API.php): the
# "campaign" referrer type's visits by campaign medium, lower-cased as the plugin stores it. Visits tagged without
# a medium are in no row (the plugin skips an empty label), so the mediums add up to at most the campaign visits.
MATOMO_CAMPAIGN_MEDIUMS = Stream(
    table="matomo.campaign_mediums",
    schema=pa.schema([
        ("site_id", pa.string()), ("date", pa.date32()), ("campaign_medium", pa.string()),
        ("nb_visits", pa.int64()), ("nb_visits_converted", pa.int64()), ("bounce_count", pa.int64()),
        ("sum_visit_length", pa.int64()), ("nb_actions", pa.int64()), *_MATOMO_TAIL,
    ]),
    key=("site_id", "date", "campaign_medium"),
    scope_column="site_id",
)
MATOMO_STREAMS = (MATOMO_VISITS, MATOMO_REFERRERS, MATOMO_GOALS, MATOMO_CAMPAIGN_MEDIUMS)


# --- Google Ads (connectors/google_ads.py: GoogleAdsService.SearchStream rows) -----------------------------------

ADS_CAMPAIGN_DAILY = Stream(
    table="google_ads.campaign_daily",
    schema=pa.schema([
        ("customer_id", pa.string()), ("date", pa.date32()), ("campaign_id", pa.int64()),
        ("campaign_name", pa.string()), ("campaign_status", pa.string()), ("advertising_channel_type", pa.string()),
        ("impressions", pa.int64()), ("clicks", pa.int64()), ("cost_micros", pa.int64()), ("cost", pa.float64()),
        ("conversions", pa.float64()), ("conversions_value", pa.float64()),
        ("currency_code", pa.string()), ("time_zone", pa.string()),
        # Google's denominator of the conversion rate: clicks for Search and Shopping, clicks plus engagements and
        # video views for Display, Video and Performance Max (metrics.interactions).
        ("interactions", pa.int64()),
    ]),
    key=("customer_id", "date", "campaign_id"),
    scope_column="customer_id",
)
ADS_STREAMS = (ADS_CAMPAIGN_DAILY,)


# --- HubSpot (connectors/hubspot.py: CRM objects upserted by id, e-mail statistics) ------------------------------

# What the KPIs need, per object type; settings add more.
HUBSPOT_OBJECT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contacts": ("createdate", "lastmodifieddate", "lifecyclestage", "hs_lifecyclestage_lead_date",
                 "hs_lifecyclestage_customer_date", "hs_analytics_source", "hubspot_owner_id"),
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate"),
    "deals": ("dealname", "amount", "pipeline", "dealstage", "closedate", "createdate", "hs_lastmodifieddate",
              "hubspot_owner_id"),
    "feedback_submissions": ("hs_survey_type", "hs_value", "hs_submission_timestamp", "hs_contact_id",
                             "hs_createdate", "hs_lastmodifieddate"),
}
# HubSpot's types for the properties above, used when a table must exist before the portal was read.
HUBSPOT_DEFAULT_TYPES: dict[str, str] = {
    "createdate": "datetime", "lastmodifieddate": "datetime", "hs_lastmodifieddate": "datetime",
    "hs_lifecyclestage_lead_date": "datetime", "hs_lifecyclestage_customer_date": "datetime", "churn_date": "date",
    "amount": "number", "closedate": "datetime", "hs_value": "number", "hs_submission_timestamp": "datetime",
    "hs_createdate": "datetime",
}


def hubspot_arrow_type(definition: Mapping[str, Any] | None) -> pa.DataType:
    """The column type of a HubSpot property from its definition's `type` (number, datetime, date, bool, text)."""
    kind = (definition or {}).get("type")
    if kind == "number":
        return pa.float64()
    if kind == "datetime":
        return pa.timestamp("ms", "UTC")
    if kind == "date":
        return pa.date32()
    if kind == "bool":
        return pa.bool_()
    return pa.string()


def hubspot_object_stream(object_type: str, properties: Sequence[str],
                          definitions: Mapping[str, Mapping[str, Any]]) -> Stream:
    """The declared table of one object type, typed from the portal's property definitions."""
    fields = [("id", pa.string()), ("archived", pa.bool_()), ("created_at", pa.timestamp("ms", "UTC")),
              ("updated_at", pa.timestamp("ms", "UTC"))]
    fields += [(p, hubspot_arrow_type(definitions.get(p))) for p in properties if p not in ("hs_object_id",)]
    return Stream(table=f"hubspot.{object_type}", schema=pa.schema(fields), key=("id",), partition_column="id",
                  write_mode="upsert")


def hubspot_default_stream(object_type: str, churn_date_property: str = "churn_date") -> Stream:
    """The table of an object type with HubSpot's standard types, before any portal was read."""
    properties = list(HUBSPOT_OBJECT_PROPERTIES[object_type])
    if object_type == "contacts":
        properties.append(churn_date_property)
    return hubspot_object_stream(object_type, properties,
                                 {p: {"type": t} for p, t in HUBSPOT_DEFAULT_TYPES.items()})


HUBSPOT_ASSOCIATIONS = Stream(
    table="hubspot.deal_associations",
    schema=pa.schema([("deal_id", pa.string()), ("to_type", pa.string()), ("to_id", pa.string())]),
    key=("deal_id", "to_type", "to_id"),
    partition_column="deal_id",
    write_mode="upsert",
    # A batch holds every association of its deals to one object type: it replaces those (deal_id, to_type) and
    # leaves the deals' associations to the other type alone.
    replace_by=("deal_id", "to_type"),
)
HUBSPOT_OWNERS = Stream(
    table="hubspot.owners",
    schema=pa.schema([("id", pa.string()), ("email", pa.string()), ("first_name", pa.string()),
                      ("last_name", pa.string()), ("archived", pa.bool_()), ("updated_at", pa.timestamp("ms", "UTC"))]),
    key=("id",), partition_column="id", write_mode="upsert",
)
HUBSPOT_DEAL_STAGES = Stream(
    table="hubspot.deal_stages",
    schema=pa.schema([("pipeline_id", pa.string()), ("pipeline_label", pa.string()), ("stage_id", pa.string()),
                      ("stage_label", pa.string()), ("display_order", pa.int64()), ("is_closed", pa.bool_()),
                      ("probability", pa.float64()), ("is_won", pa.bool_())]),
    key=("pipeline_id", "stage_id"), partition_column="stage_id", write_mode="upsert",
)
HUBSPOT_ACCOUNT_DETAILS = Stream(
    table="hubspot.account_details",
    schema=pa.schema([("portal_id", pa.string()), ("time_zone", pa.string()), ("company_currency", pa.string()),
                      ("ui_domain", pa.string())]),
    key=("portal_id",), partition_column="portal_id", write_mode="upsert",
)
# The marketing e-mails' lifetime counters (GET /marketing/v3/emails/statistics/list) and, for automated e-mails,
# their activity per day (the statistics histogram).
HUBSPOT_EMAIL_COUNTERS = ("sent", "delivered", "open", "click", "bounce", "hardbounced", "softbounced",
                          "unsubscribed", "spamreport")
HUBSPOT_EMAIL_STATISTICS = Stream(
    table="hubspot.email_statistics",
    schema=pa.schema([
        ("email_id", pa.string()), ("name", pa.string()), ("subject", pa.string()), ("state", pa.string()),
        ("email_type", pa.string()), ("is_automated", pa.bool_()), ("send_date", pa.date32()),
        ("published_at", pa.timestamp("ms", "UTC")), *[(c, pa.int64()) for c in HUBSPOT_EMAIL_COUNTERS],
    ]),
    key=("email_id",), partition_column="send_date", write_mode="upsert",
)
HUBSPOT_EVENT_COUNTERS = ("sent", "delivered", "open", "click", "bounce", "unsubscribed", "spamreport")
HUBSPOT_EMAIL_EVENTS_DAILY = Stream(
    table="hubspot.email_events_daily",
    schema=pa.schema([("email_id", pa.string()), ("date", pa.date32()),
                      *[(c, pa.int64()) for c in HUBSPOT_EVENT_COUNTERS]]),
    key=("email_id", "date"), partition_column="date", scope_column="email_id", write_mode="window",
)
# The CRM object tables as declared before a portal was read (a connected run types them from the portal's
# property definitions and the configured extra properties).
HUBSPOT_STREAMS = (
    *(hubspot_default_stream(t) for t in HUBSPOT_OBJECT_PROPERTIES),
    HUBSPOT_ASSOCIATIONS, HUBSPOT_OWNERS, HUBSPOT_DEAL_STAGES, HUBSPOT_ACCOUNT_DETAILS, HUBSPOT_EMAIL_STATISTICS,
    HUBSPOT_EMAIL_EVENTS_DAILY,
)


# --- Social networks (the social raw-table contract, docs/platforms/README.md): Meta's Facebook Pages and Instagram
# (connectors/facebook.py, connectors/instagram.py over connectors/meta_graph.py). Each source writes the same three
# tables in its own schema; every measure is NULL (never 0) where the platform does not report it.

_SOCIAL_MEASURES = ("followers", "follower_gains", "follower_losses", "impressions", "reach", "engagements", "shares",
                    "link_clicks", "posts_published", "page_views")
_SOCIAL_POST_MEASURES = ("impressions", "reach", "likes", "comments", "shares", "saved", "replies", "link_clicks")


def social_account_daily(source: str) -> Stream:
    """`<source>.account_daily`: one row per account and platform day (followers = the level at the end of the day)."""
    return Stream(
        table=f"{source}.account_daily",
        schema=_schema(("date", pa.date32()), ("account_id", pa.string()),
                       *((m, pa.int64()) for m in _SOCIAL_MEASURES)),
        key=("date", "account_id"), scope_column="account_id",
    )


def social_account_period_reach(source: str) -> Stream:
    """`<source>.account_period_reach`: the platform's own distinct reach over the week / 28 days ending on `date`
    (reach is never additive across days)."""
    return Stream(
        table=f"{source}.account_period_reach",
        schema=_schema(("date", pa.date32()), ("account_id", pa.string()), ("period", pa.string()),
                       ("reach", pa.int64())),
        key=("date", "account_id", "period"), scope_column="account_id",
    )


def social_posts(source: str) -> Stream:
    """`<source>.posts`: one row per post / reel / story with its lifetime metrics as last read; a batch replaces the
    posts created in its window (`created_date`)."""
    return Stream(
        table=f"{source}.posts",
        schema=_schema(("account_id", pa.string()), ("post_id", pa.string()),
                       ("created_time", pa.timestamp("us")), ("created_date", pa.date32()),
                       ("media_type", pa.string()), ("permalink", pa.string()),
                       *((m, pa.int64()) for m in _SOCIAL_POST_MEASURES)),
        key=("account_id", "post_id"), partition_column="created_date", scope_column="account_id",
    )


FACEBOOK_ACCOUNT_DAILY = social_account_daily("facebook")
FACEBOOK_PERIOD_REACH = social_account_period_reach("facebook")
FACEBOOK_POSTS = social_posts("facebook")
FACEBOOK_STREAMS = (FACEBOOK_ACCOUNT_DAILY, FACEBOOK_PERIOD_REACH, FACEBOOK_POSTS)
INSTAGRAM_ACCOUNT_DAILY = social_account_daily("instagram")
INSTAGRAM_PERIOD_REACH = social_account_period_reach("instagram")
INSTAGRAM_POSTS = social_posts("instagram")
INSTAGRAM_STREAMS = (INSTAGRAM_ACCOUNT_DAILY, INSTAGRAM_PERIOD_REACH, INSTAGRAM_POSTS)
# LinkedIn Pages (connectors/linkedin.py, the Community Management API): account_daily, account_period_reach (empty:
# LinkedIn gives no reach over a longer period for a page) and posts (the Posts API, lifetime share statistics).
LINKEDIN_ACCOUNT_DAILY = social_account_daily("linkedin")
LINKEDIN_PERIOD_REACH = social_account_period_reach("linkedin")
LINKEDIN_POSTS = social_posts("linkedin")
LINKEDIN_STREAMS = (LINKEDIN_ACCOUNT_DAILY, LINKEDIN_PERIOD_REACH, LINKEDIN_POSTS)
# Every network's account_daily (kpi.social_daily reads them; its sources are their schemas).
SOCIAL_ACCOUNT_DAILY = (FACEBOOK_ACCOUNT_DAILY, INSTAGRAM_ACCOUNT_DAILY, LINKEDIN_ACCOUNT_DAILY)
