"""One seeded synthetic online shop, observed by GA4, Search Console, Google Ads, HubSpot and Matomo.

Why a single world rather than one fake per platform: the pipeline's value is in cross-checking sources
(GA4 paid sessions against Ads clicks, Matomo visits against GA4 sessions, ...). Independent fakes would
make every such check meaningless, so every platform here derives its numbers from the same day-level
drivers:

* Search Console clicks drive GA4 ``Organic Search`` / google sessions (about 0.9 sessions per click);
* Google Ads clicks per campaign type drive GA4 ``Paid Search``, ``Paid Shopping``, ``Cross-network``
  (Performance Max) and ``Display`` sessions (about 0.93 sessions per click);
* HubSpot marketing e-mail clicks drive GA4 ``Email`` sessions over the following days;
* Matomo visits and e-commerce figures are GA4's final figures seen through a slightly different tracker;
* HubSpot contacts follow GA4 converting sessions.

Determinism: every random draw comes from ``random.Random`` seeded with blake2b of
``f"{seed}|{date}|{entity}"``. Python's ``hash()`` is salted per process, so it would make two runs of the
same test disagree. Nothing depends on call order or on other dates, so any (date, entity) value can be
recomputed in isolation, by any process, and still match.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_GA4_PROPERTY_ID = "123456789"
DEFAULT_ADS_CUSTOMER_ID = "1234567890"
# A small US test market in its own currency and time zone; its clicks do not reach the GA4 property.
US_ADS_CUSTOMER_ID = "9876543210"
# The manager (MCC) account through which the OAuth user reaches both client accounts.
ADS_MANAGER_CUSTOMER_ID = "1112223333"
DEFAULT_GSC_SITE = "sc-domain:shop.example"
DEFAULT_MATOMO_SITE_ID = "1"
TIMEZONE = "Europe/Paris"
CURRENCY = "EUR"
SHOP_DOMAIN = "shop.example"

_TZ = ZoneInfo(TIMEZONE)
_EPOCH = date(2024, 1, 1)
# Monday .. Sunday. The shop sells home goods: Sunday evening browsing is strong, Saturday is weak.
_WEEKDAY_FACTOR = (1.04, 1.02, 1.00, 0.98, 0.93, 0.86, 1.05)
_DEVICES = ("desktop", "mobile", "tablet")
# GA4 sessions per ad click: the gap models consent refusals, bounces before the tag fires, and so on.
GA4_SESSIONS_PER_AD_CLICK = 0.93
GA4_SESSIONS_PER_GSC_CLICK = 0.90
# Share of an e-mail's clicks that happen on the send day, the day after, ...
_EMAIL_CLICK_DECAY = (0.62, 0.24, 0.09, 0.05)
_GA4_SESSIONS_PER_EMAIL_CLICK = 1.15
_RESTATEMENT_SHORTFALL = 0.15


# --------------------------------------------------------------------------------------------------------
# Deterministic randomness helpers
# --------------------------------------------------------------------------------------------------------


def seeded_rng(seed: int, day: date | str, entity: str) -> random.Random:
    """A Random for one (seed, date, entity); blake2b because hash() differs between processes."""
    digest = hashlib.blake2b(f"{seed}|{day}|{entity}".encode(), digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _sround(x: float, u: float) -> int:
    """Stochastic rounding with a pre-drawn uniform, so small cells keep the right expectation.

    Plain rounding of 5 sessions x 2 % would always give 0 conversions; drawing the uniform up front
    (instead of inside a branch) keeps the number of draws per cell constant, which keeps values of one
    cell stable when another input changes.
    """
    if x <= 0:
        return 0
    base = math.floor(x)
    return base + (1 if u < x - base else 0)


def _split(total: int, weights: Sequence[float]) -> list[int]:
    """Split an integer total by weights with largest remainders: parts always add up to the total."""
    wsum = sum(weights)
    if total <= 0 or wsum <= 0:
        return [0] * len(weights)
    raw = [total * w / wsum for w in weights]
    parts = [math.floor(r) for r in raw]
    rest = total - sum(parts)
    order = sorted(range(len(raw)), key=lambda i: (parts[i] - raw[i], i))
    for i in order[:rest]:
        parts[i] += 1
    return parts


def _split_within(total: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """``_split``, with no part above its cap (a medium's bounces never exceed its visits): units over a cap move to
    the part with the most room, so the parts still add up to the total when it is at most ``sum(caps)``."""
    parts = _split(total, weights if sum(weights) > 0 else caps)
    for k in range(len(parts)):
        while parts[k] > caps[k]:
            donor = max(range(len(parts)), key=lambda m: (caps[m] - parts[m], -m))
            if caps[donor] <= parts[donor]:
                break
            parts[k] -= 1
            parts[donor] += 1
    return parts


def _ms(dt: datetime) -> int:
    return int(round(dt.timestamp() * 1000))


def _paris_ms(day: date, seconds_of_day: float) -> int:
    """Epoch milliseconds (UTC) of a Paris wall-clock time; DST is what makes this worth a helper."""
    midnight = datetime.combine(day, time(0, 0), tzinfo=_TZ)
    return _ms(midnight + timedelta(seconds=seconds_of_day))


# --------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------

GA4_DIMENSION_KEYS = ("sessionDefaultChannelGroup", "sessionSource", "sessionMedium", "deviceCategory")
GA4_ADDITIVE_METRICS = (
    "sessions",
    "engagedSessions",
    "userEngagementDuration",
    "convertingSessions",
    "keyEvents",
    "newUsers",
    "users",
    "ecommercePurchases",
    "purchaseRevenue",
    "addToCarts",
    "checkouts",
    # GA4's session duration (seconds), additive per cell: averageSessionDuration = sum / sessions per report row.
    "sessionDuration",
    # Closed funnel add_to_cart -> purchase within the cell's day: users at add_to_cart, and those of them who
    # then purchased (runFunnelReport's activeUsers at each step; not runReport metrics).
    "cartUsers",
    "cartPurchasers",
)


@dataclass(frozen=True)
class Ga4Fact:
    """GA4 at its finest grain: one (property, day, channel, source, medium, device) cell.

    ``dims`` holds exactly the GA4 dimension names in ``GA4_DIMENSION_KEYS``; ``metrics`` holds only
    additive metrics, so any aggregation is a plain sum (distinct users go through
    ``World.ga4_total_users``).
    """

    property_id: str
    day: date
    dims: dict[str, str]
    metrics: dict[str, int | float]


@dataclass(frozen=True)
class AdsCampaignDay:
    """One row of ``SELECT campaign.*, metrics.* FROM campaign`` segmented by ``segments.date``."""

    customer_id: str
    day: date
    campaign_id: int
    campaign_name: str
    status: str
    advertising_channel_type: str
    impressions: int
    clicks: int
    cost_micros: int
    conversions: float
    conversions_value: float
    # metrics.interactions: "the main user action associated with an ad format - clicks for text and shopping ads,
    # views for video ads, and so on" (googleapis/googleapis google/ads/googleads/v26/common/metrics.proto; Google
    # Ads Help "Interaction", https://support.google.com/google-ads/answer/2375431): equal to clicks for SEARCH and
    # SHOPPING, above them where engagements and video views count (DISPLAY, PERFORMANCE_MAX).
    interactions: int


@dataclass(frozen=True)
class AdsCustomer:
    """A Google Ads client account: its figures are in ``currency_code`` and its days in ``time_zone``."""

    customer_id: str
    descriptive_name: str
    currency_code: str
    time_zone: str
    feeds_ga4: bool  # whether its ad clicks drive the default GA4 property's paid channels


@dataclass(frozen=True)
class AdsCampaign:
    """Campaign attributes as of ``World.today`` (what ``SELECT campaign.* FROM campaign`` returns)."""

    customer_id: str
    campaign_id: int
    name: str
    status: str  # "ENABLED" or "PAUSED"
    advertising_channel_type: str
    start: date
    end: date | None


@dataclass(frozen=True)
class GscRow:
    key: str
    clicks: int
    impressions: int
    position: float

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


@dataclass(frozen=True)
class GscDay:
    """Search Console for one day.

    ``clicks/impressions/position`` are what ``aggregationType=byProperty`` returns. ``queries`` miss the
    anonymised long tail (their sums are lower); ``pages`` count an impression per URL shown, so their
    impression sum is higher. The KPI layer must use the site totals; the rows are for drill-down.
    ``devices`` and ``countries`` split the site totals exactly (clicks and impressions add up, positions
    average back with impression weights), because byProperty device/country reports do.
    """

    site: str
    day: date
    clicks: int
    impressions: int
    position: float
    queries: list[GscRow]
    pages: list[GscRow]
    devices: list[GscRow] = field(default_factory=list)
    countries: list[GscRow] = field(default_factory=list)

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


@dataclass(frozen=True)
class MatomoVisits:
    """Matomo ``VisitsSummary`` fields (for one referrer type or for the whole site)."""

    nb_visits: int
    nb_uniq_visitors: int
    nb_actions: int
    nb_visits_converted: int
    bounce_count: int
    sum_visit_length: int
    max_actions: int

    def as_dict(self) -> dict[str, int]:
        return {
            "nb_visits": self.nb_visits,
            "nb_uniq_visitors": self.nb_uniq_visitors,
            "nb_actions": self.nb_actions,
            "nb_visits_converted": self.nb_visits_converted,
            "bounce_count": self.bounce_count,
            "sum_visit_length": self.sum_visit_length,
            "max_actions": self.max_actions,
        }


@dataclass(frozen=True)
class MatomoEcommerce:
    orders: int
    revenue: float
    abandoned_carts: int
    items: int


MATOMO_REFERRER_TYPES = ("direct", "search", "website", "campaign", "social")


@dataclass(frozen=True)
class MatomoDay:
    site_id: str
    day: date
    by_referrer_type: dict[str, MatomoVisits]
    summary: MatomoVisits
    ecommerce: MatomoEcommerce
    # The "campaign" referrer type split by campaign medium (MarketingCampaignsReporting.getMedium), lower-case as
    # Matomo stores it: the GA4 medium of the campaign channels (cpc, display, email, paid_social). Every additive
    # field adds up to by_referrer_type["campaign"]; mediums without visits are absent.
    campaign_mediums: dict[str, MatomoVisits] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailSend:
    """A HubSpot marketing e-mail batch send and its (final) statistics counters."""

    id: int
    name: str
    subject: str
    send_ts_ms: int
    sent: int
    delivered: int
    open: int
    click: int
    bounce: int
    hardbounced: int
    softbounced: int
    unsubscribed: int
    spamreport: int
    # Scheduled sends carry HubSpot's ``publishDate`` (the send time); a "send now" e-mail only ``publishedAt``.
    scheduled: bool = True

    @property
    def counters(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "open": self.open,
            "click": self.click,
            "bounce": self.bounce,
            "hardbounced": self.hardbounced,
            "softbounced": self.softbounced,
            "unsubscribed": self.unsubscribed,
            "spamreport": self.spamreport,
        }


@dataclass(frozen=True)
class AutomatedEmail:
    """A HubSpot automated marketing e-mail: a workflow sends it to each contact that enrols, day after day, so its
    statistics are lifetime counters and its activity is dated by day (``World.automated_email_day``)."""

    id: int
    name: str
    subject: str
    published_ts_ms: int  # when it was turned on (``publishedAt``; automated e-mails have no ``publishDate``)
    first_day: date  # its first day of sends, in the shop's (and the portal's) time zone


@dataclass(frozen=True)
class HubspotDeal:
    id: str
    contact_id: str
    dealname: str
    amount: float
    pipeline: str
    dealstage: str  # "closedwon", "closedlost" or an open stage
    createdate_ms: int
    closedate_ms: int | None


@dataclass(frozen=True)
class HubspotContact:
    id: str
    email: str
    firstname: str
    lastname: str
    createdate_ms: int
    lastmodifieddate_ms: int
    lifecyclestage: str  # "subscriber", "lead" or "customer"
    lead_date_ms: int | None
    customer_date_ms: int | None
    hs_analytics_source: str
    deals: tuple[HubspotDeal, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class NpsResponse:
    id: str
    submitted_at_ms: int
    score: int


# --------------------------------------------------------------------------------------------------------
# Static shape of the shop
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Channel:
    name: str
    # (source, medium, weight); weights of "driven" channels are shares of the driver's sessions.
    sources: tuple[tuple[str, str, float], ...]
    mobile_share: float
    engagement: float
    conversion: float
    purchase_share: float
    new_user_share: float
    basket: float
    matomo_type: str


_CHANNELS: tuple[_Channel, ...] = (
    _Channel("Organic Search", (("google", "organic", 1.0), ("bing", "organic", 0.065),
             ("qwant", "organic", 0.02), ("duckduckgo", "organic", 0.015), ("ecosia", "organic", 0.01),
             ("yahoo", "organic", 0.005)), 0.55, 0.66, 0.026, 0.62, 0.72, 71.0, "search"),
    _Channel("Paid Search", (("google", "cpc", 1.0),), 0.58, 0.63, 0.034, 0.70, 0.76, 66.0, "campaign"),
    _Channel("Paid Shopping", (("google", "cpc", 1.0),), 0.62, 0.60, 0.031, 0.78, 0.80, 58.0, "campaign"),
    _Channel("Cross-network", (("google", "cpc", 1.0),), 0.64, 0.55, 0.024, 0.74, 0.82, 61.0, "campaign"),
    _Channel("Display", (("google", "display", 1.0),), 0.70, 0.34, 0.006, 0.55, 0.88, 63.0, "campaign"),
    _Channel("Direct", (("(direct)", "(none)", 1.0),), 0.52, 0.58, 0.032, 0.64, 0.45, 74.0, "direct"),
    _Channel("Email", (("newsletter", "email", 1.0),), 0.60, 0.71, 0.041, 0.58, 0.12, 69.0, "campaign"),
    _Channel("Referral", (("trustpilot.com", "referral", 0.35), ("lesnumeriques.com", "referral", 0.25),
             ("marmiton.org", "referral", 0.25), ("paypal.com", "referral", 0.15)),
             0.50, 0.64, 0.028, 0.60, 0.66, 76.0, "website"),
    _Channel("Organic Social", (("facebook", "social", 0.45), ("instagram", "social", 0.35),
             ("pinterest", "social", 0.20)), 0.82, 0.48, 0.010, 0.55, 0.78, 54.0, "social"),
    _Channel("Paid Social", (("facebook", "paid_social", 0.6), ("instagram", "paid_social", 0.4)),
             0.86, 0.44, 0.012, 0.72, 0.84, 52.0, "campaign"),
    _Channel("Unassigned", (("(not set)", "(not set)", 1.0),), 0.50, 0.40, 0.015, 0.60, 0.60, 60.0, "direct"),
)
GA4_CHANNEL_GROUPS = tuple(c.name for c in _CHANNELS)
# Base sessions per day at trend level 1 for channels that no other platform drives.
_BASE_SESSIONS = {"Direct": 430.0, "Referral": 110.0, "Organic Social": 85.0, "Paid Social": 70.0,
                  "Unassigned": 14.0}
_AD_CHANNEL_BY_TYPE = {"SEARCH": "Paid Search", "SHOPPING": "Paid Shopping",
                       "PERFORMANCE_MAX": "Cross-network", "DISPLAY": "Display"}
# Engagements and video views per click that Google counts as interactions besides clicks, by campaign type: Display
# lightbox expansions, Performance Max's video views on YouTube (support.google.com/google-ads/answer/2375431). Search
# and Shopping have none: their interactions are their clicks. (low, spread): low + spread * uniform.
_EXTRA_INTERACTIONS_PER_CLICK = {"DISPLAY": (0.30, 0.25), "PERFORMANCE_MAX": (0.15, 0.15), "VIDEO": (2.0, 1.0)}


@dataclass(frozen=True)
class _Campaign:
    id: int
    name: str
    channel_type: str
    clicks: float  # clicks per day at trend level 1
    ctr: float
    cpc: float
    conv_rate: float
    basket: float
    start: date
    end: date | None  # last day with delivery; the campaign status is PAUSED once it is over
    serve_rate: float = 1.0  # share of days it serves at all (budget-limited tests); other days have no row


_CAMPAIGNS: tuple[_Campaign, ...] = (
    _Campaign(111, "Brand - Search", "SEARCH", 150.0, 0.19, 0.24, 0.060, 72.0, date(2023, 1, 1), None),
    _Campaign(112, "Generic - Cuisine - Search", "SEARCH", 95.0, 0.052, 0.86, 0.024, 64.0,
              date(2023, 1, 1), None),
    _Campaign(113, "Generic - Linge de maison - Search", "SEARCH", 40.0, 0.047, 0.71, 0.020, 58.0,
              date(2023, 1, 1), date(2025, 6, 30)),
    _Campaign(121, "Shopping - Catalogue", "SHOPPING", 160.0, 0.011, 0.43, 0.028, 57.0,
              date(2023, 1, 1), None),
    _Campaign(131, "PMax - Soldes", "PERFORMANCE_MAX", 90.0, 0.009, 0.51, 0.022, 61.0,
              date(2024, 6, 1), None),
    _Campaign(141, "Display - Remarketing", "DISPLAY", 38.0, 0.0042, 0.31, 0.008, 63.0,
              date(2023, 1, 1), None),
)
# The US test market: smaller, in USD, one search campaign that misses days, one shopping test that ended.
_US_CAMPAIGNS: tuple[_Campaign, ...] = (
    _Campaign(211, "US - Brand - Search", "SEARCH", 22.0, 0.16, 0.95, 0.045, 88.0, date(2025, 4, 1), None),
    _Campaign(212, "US - Cast Iron - Search", "SEARCH", 9.0, 0.041, 1.65, 0.018, 79.0, date(2025, 4, 1), None,
              serve_rate=0.8),
    _Campaign(221, "US - Shopping - Cookware", "SHOPPING", 30.0, 0.009, 0.62, 0.021, 74.0,
              date(2025, 4, 1), None),
    _Campaign(222, "US - Shopping - Linens (test)", "SHOPPING", 4.0, 0.008, 0.55, 0.015, 69.0,
              date(2025, 4, 1), date(2025, 12, 31)),
)
_ADS_CUSTOMERS: dict[str, tuple[AdsCustomer, tuple[_Campaign, ...]]] = {
    DEFAULT_ADS_CUSTOMER_ID: (AdsCustomer(DEFAULT_ADS_CUSTOMER_ID, "Maison Exemple - FR", CURRENCY, TIMEZONE, True),
                              _CAMPAIGNS),
    US_ADS_CUSTOMER_ID: (AdsCustomer(US_ADS_CUSTOMER_ID, "Maison Exemple - US test market", "USD",
                                     "America/New_York", False), _US_CAMPAIGNS),
}

_QUERIES: tuple[tuple[str, float, float], ...] = (
    # (query, share of clicks, typical position); brand queries first
    ("maison exemple", 0.16, 1.1), ("maison exemple avis", 0.04, 1.4), ("shop.example", 0.02, 1.0),
    ("poêle en fonte", 0.05, 6.2), ("cocotte en fonte 24 cm", 0.04, 5.1),
    ("linge de lit lin lavé", 0.05, 7.8), ("housse de couette 240x260", 0.04, 8.3),
    ("nappe anti tache", 0.03, 6.9), ("couteau de cuisine", 0.03, 11.2),
    ("planche à découper bois", 0.03, 7.4), ("tablier de cuisine", 0.02, 9.1), ("torchon coton", 0.02, 8.8),
    ("plaid laine", 0.03, 10.4), ("bocal en verre", 0.02, 12.6), ("moule à gâteau", 0.02, 9.7),
    ("set de table", 0.02, 10.9), ("rideau lin", 0.02, 13.5), ("cadeau cuisine", 0.02, 14.2),
)
_QUERY_CLICK_COVERAGE = 0.78  # share of clicks carried by non-anonymised queries
_PAGES: tuple[tuple[str, float, float], ...] = (
    ("/", 0.24, 1.6), ("/cuisine/", 0.12, 6.5), ("/cuisine/poeles/", 0.08, 6.8),
    ("/cuisine/cocottes/", 0.07, 5.9), ("/linge/lit/", 0.09, 8.1), ("/linge/table/", 0.06, 7.6),
    ("/decoration/plaids/", 0.05, 10.1), ("/avis/", 0.05, 2.2), ("/blog/entretenir-fonte/", 0.08, 9.4),
    ("/blog/choisir-linge-de-lit/", 0.06, 11.0), ("/soldes/", 0.05, 7.0), ("/contact/", 0.05, 3.0),
)
_PAGE_IMPRESSION_OVERCOUNT = 1.14  # several URLs of the site on one result page
# (key, share of clicks, impressions per click relative to the site, position relative to the site)
_GSC_DEVICES: tuple[tuple[str, float, float, float], ...] = (
    ("DESKTOP", 0.38, 0.92, 0.90), ("MOBILE", 0.55, 1.04, 1.06), ("TABLET", 0.07, 1.10, 1.02),
)
# ISO 3166-1 alpha-3, lower case, as Search Console reports countries; a French shop with a francophone tail.
_GSC_COUNTRIES: tuple[tuple[str, float, float, float], ...] = (
    ("fra", 0.80, 0.97, 0.95), ("bel", 0.07, 1.05, 1.05), ("che", 0.04, 1.10, 1.10),
    ("can", 0.03, 1.30, 1.40), ("usa", 0.015, 2.20, 2.30), ("lux", 0.01, 1.10, 1.10),
    ("mar", 0.01, 1.50, 1.60), ("deu", 0.006, 2.50, 2.60), ("gbr", 0.005, 2.60, 2.70),
    ("esp", 0.005, 2.40, 2.50), ("ita", 0.004, 2.40, 2.50),
)

_EMAIL_SUBJECTS = (
    "Nouveautés cuisine : la fonte est de retour", "Le linge de lit de saison", "-20 % sur les plaids",
    "Nos conseils pour entretenir vos poêles", "Vente privée : 48 h seulement",
    "Idées cadeaux pour la maison",
    "La sélection de la semaine", "Derniers jours des soldes",
)
_EMAIL_COUNTERS = ("sent", "delivered", "open", "click", "bounce", "hardbounced", "softbounced", "unsubscribed",
                   "spamreport")
# The portal's automated welcome e-mail (World.hubspot_automated_emails).
_WELCOME_EMAIL_ID = 90_000_001
_WELCOME_FIRST_DAY = date(2025, 1, 7)


def _email_outcome(sent: int, u: Sequence[float], open_share: float) -> dict[str, int]:
    """HubSpot's counters for ``sent`` messages from 8 pre-drawn uniforms: bounces, deliveries, unique opens (from
    ``open_share``, inflated by Apple Mail Privacy Protection), unique clicks, unsubscribes and spam reports."""
    hard = _sround(sent * 0.002 * (0.5 + u[0]), u[1])
    soft = _sround(sent * 0.005 * (0.5 + u[2]), u[3])
    delivered = sent - hard - soft
    opened = round(delivered * (open_share + 0.10 * u[4]))
    clicked = min(opened, round(delivered * (0.020 + 0.014 * u[5])))
    return {"sent": sent, "delivered": delivered, "open": opened, "click": clicked, "bounce": hard + soft,
            "hardbounced": hard, "softbounced": soft, "unsubscribed": round(delivered * (0.0008 + 0.0012 * u[6])),
            "spamreport": round(delivered * 0.0001 * (0.5 + u[7]))}


_FIRSTNAMES = ("Camille", "Léa", "Manon", "Chloé", "Lucas", "Hugo", "Louis", "Jules", "Emma", "Inès",
               "Arthur", "Nathan", "Sarah", "Zoé", "Paul", "Alice")
_LASTNAMES = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
              "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Roux")
# HubSpot original-source values, weighted roughly like converting sessions per channel.
_HUBSPOT_SOURCES = (("ORGANIC_SEARCH", 0.34), ("PAID_SEARCH", 0.17), ("DIRECT_TRAFFIC", 0.17),
                    ("EMAIL_MARKETING", 0.09), ("REFERRALS", 0.06), ("SOCIAL_MEDIA", 0.04),
                    ("PAID_SOCIAL", 0.03), ("OTHER_CAMPAIGNS", 0.07), ("OFFLINE", 0.03))


# --------------------------------------------------------------------------------------------------------
# Account profiles
# --------------------------------------------------------------------------------------------------------

# "default": one account per platform (two Google Ads customers), the shop every test computes from.
# "many": a group or an agency: 50 GA4 properties, 20 Search Console sites, 20 Google Ads customers in four
# currencies, 10 Matomo sites (one HubSpot portal either way), for the parallel, isolated fetch of issue #10.
PROFILES = ("default", "many")
MANY_GA4_PROPERTIES = 50
MANY_GSC_SITES = 20
MANY_ADS_CUSTOMERS = 20
MANY_MATOMO_SITES = 10
# Currency, account time zone, cost-per-click factor in that currency; each currency has an FX rate in
# config/mkpi.yaml, so kpi.kpi_daily converts them all into the reporting currency.
_MARKETS: tuple[tuple[str, str, float], ...] = (
    ("EUR", "Europe/Berlin", 1.0), ("GBP", "Europe/London", 0.85), ("USD", "America/New_York", 1.1),
    ("CHF", "Europe/Zurich", 0.95),
)


@dataclass(frozen=True)
class Accounts:
    """Which accounts each platform serves, and how big each one is.

    ``ga4``: property id -> traffic scale; ``gsc``: site -> click scale; ``ads``: customer id -> (account,
    campaigns); ``matomo``: site id -> the GA4 property whose visitors it also tracks.
    """

    ga4: dict[str, float]
    gsc: dict[str, float]
    ads: dict[str, tuple[AdsCustomer, tuple[_Campaign, ...]]]
    matomo: dict[str, str]


# A small second brand on its own GA4 property (about 23 sessions a day): on about one day in five it has sessions
# but no e-commerce event at all, so GA4 leaves that day out of its e-commerce report (KPI rule 10).
SMALL_GA4_PROPERTY_ID = "234567890"
SMALL_GA4_PROPERTY_SCALE = 0.01


def _default_accounts() -> Accounts:
    return Accounts(ga4={DEFAULT_GA4_PROPERTY_ID: 1.0, SMALL_GA4_PROPERTY_ID: SMALL_GA4_PROPERTY_SCALE},
                    gsc={DEFAULT_GSC_SITE: 1.0}, ads=dict(_ADS_CUSTOMERS),
                    matomo={DEFAULT_MATOMO_SITE_ID: DEFAULT_GA4_PROPERTY_ID})


def _many_accounts() -> Accounts:
    """The "many" profile: the default accounts first, then smaller ones with fixed ids and sizes."""
    ga4 = {DEFAULT_GA4_PROPERTY_ID: 1.0}
    for i in range(1, MANY_GA4_PROPERTIES):
        ga4[str(200_000_000 + i)] = round(0.05 + 0.05 * (i * 7 % 19), 2)  # 0.05 .. 0.95
    gsc = {DEFAULT_GSC_SITE: 1.0}
    for i in range(1, MANY_GSC_SITES):
        # domain properties and URL-prefix properties, spelled as Search Console names them
        site = f"sc-domain:shop{i:02d}.example" if i % 2 else f"https://www.shop{i:02d}.example/"
        gsc[site] = round(0.1 + 0.05 * (i * 7 % 17), 2)  # 0.1 .. 0.9
    ads = dict(_ADS_CUSTOMERS)
    for i in range(1, MANY_ADS_CUSTOMERS - len(_ADS_CUSTOMERS) + 1):
        currency, tz, cpc_factor = _MARKETS[i % len(_MARKETS)]
        cid = str(3_000_000_000 + i * 1_111)
        size = 0.1 + 0.05 * (i % 7)
        campaigns = tuple(
            _Campaign(10_000 * i + c.id, f"{currency} {i:02d} - {c.name}", c.channel_type, c.clicks * size, c.ctr,
                      round(c.cpc * cpc_factor, 2), c.conv_rate, round(c.basket * cpc_factor, 2), c.start, c.end,
                      c.serve_rate)
            for c in _CAMPAIGNS)
        ads[cid] = (AdsCustomer(cid, f"Maison Exemple - market {i:02d} ({currency})", currency, tz, False), campaigns)
    matomo = {DEFAULT_MATOMO_SITE_ID: DEFAULT_GA4_PROPERTY_ID}
    for i, property_id in enumerate(list(ga4)[1:MANY_MATOMO_SITES], start=2):
        matomo[str(i)] = property_id
    return Accounts(ga4=ga4, gsc=gsc, ads=ads, matomo=matomo)


def _site_domain(site: str) -> str:
    """``sc-domain:x.example`` -> ``x.example``; ``https://www.x.example/`` -> ``www.x.example``."""
    return site.removeprefix("sc-domain:").removeprefix("https://").removeprefix("http://").rstrip("/")


# --------------------------------------------------------------------------------------------------------
# Incidents (issue #23, alerts): seeded breaks of the usual pattern, for alert tests and the demo
# --------------------------------------------------------------------------------------------------------

INCIDENT_KINDS = ("tracking_break", "cpc_spike", "stale_source")


@dataclass(frozen=True)
class Incident:
    """A break the alerts must notice, from ``start`` to ``end`` (inclusive; None: still going on).

    * ``tracking_break``: GA4 property ``account`` records only ``factor`` of its sessions (a tag removed from
      part of the pages). Every GA4 metric derives from sessions, so rates keep their level; Matomo (its own
      tracker), Search Console, Google Ads and HubSpot are untouched.
    * ``cpc_spike``: Google Ads customer ``account`` pays ``factor`` times its usual cost per click (an auction
      change, a broken bid strategy); clicks, impressions and conversions, hence GA4's paid sessions, are unchanged.
    * ``stale_source``: platform ``account`` (a source code: ``search_console``, ``ga4``, ...) stops delivering
      days from ``start`` on: its servers answer as if those days had no data yet.
    """

    kind: str
    account: str
    start: date
    end: date | None = None
    factor: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"incident kind must be one of {', '.join(INCIDENT_KINDS)}, got {self.kind!r}")
        if self.factor <= 0:
            raise ValueError("an incident's factor must be above 0")

    def active(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


def incident_factor(incidents: Sequence[Incident], kind: str, account: str, day: date) -> float:
    """The product of the factors of the incidents of ``kind`` on ``account`` active on ``day`` (1.0: none)."""
    factor = 1.0
    for incident in incidents:
        if incident.kind == kind and incident.account == account and incident.active(day):
            factor *= incident.factor
    return factor


def delivers(incidents: Sequence[Incident], source: str, day: date) -> bool:
    """False when a ``stale_source`` incident stops ``source`` delivering ``day``."""
    return not any(i.kind == "stale_source" and i.account == source and i.active(day) for i in incidents)


# --------------------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------------------


class World:
    """The shop. All public methods are pure functions of (seed, date, entity[, version]) and ``today``."""

    def __init__(
        self,
        seed: int = 7,
        today: date | None = None,
        restatement_days: int = 0,
        ga4_properties: dict[str, float] | None = None,
        profile: str = "default",
        incidents: Sequence[Incident] = (),
    ) -> None:
        if restatement_days < 0:
            raise ValueError("restatement_days must be >= 0")
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
        self.seed = seed
        self.today = today if today is not None else datetime.now(_TZ).date()
        self.restatement_days = restatement_days
        self.profile = profile
        self.incidents: tuple[Incident, ...] = tuple(incidents)  # issue #23: seeded breaks (Incident)
        accounts = _many_accounts() if profile == "many" else _default_accounts()
        self.ga4_properties: dict[str, float] = (
            dict(ga4_properties) if ga4_properties is not None else accounts.ga4
        )
        # Search Console site -> click scale; Google Ads customers; Matomo site -> the property it observes.
        self.gsc_sites: dict[str, float] = accounts.gsc
        self._ads_accounts = accounts.ads
        self.matomo_sites: dict[str, str] = accounts.matomo
        # Facts are pure, so caching them is only a speed-up; a plain dict is safe under the GIL because
        # concurrent misses compute the same value.
        self._ga4_cache: dict[tuple[str, date, float], list[Ga4Fact]] = {}
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        if self.profile != "default":
            return (f"World(seed={self.seed}, today={self.today.isoformat()}, "
                    f"restatement_days={self.restatement_days}, profile={self.profile!r}: "
                    f"{len(self.ga4_properties)} GA4 properties, {len(self.gsc_sites)} Search Console sites, "
                    f"{len(self._ads_accounts)} Google Ads customers, {len(self.matomo_sites)} Matomo sites)")
        return (f"World(seed={self.seed}, today={self.today.isoformat()}, "
                f"restatement_days={self.restatement_days}, ga4_properties={self.ga4_properties})")

    # ---- shared drivers ------------------------------------------------------------------------------

    def _rng(self, day: date | str, entity: str) -> random.Random:
        return seeded_rng(self.seed, day, entity)

    def has_data(self, day: date) -> bool:
        return day <= self.today

    def restatement_factor(self, day: date, version: int) -> float:
        """How complete a day's figures are on read ``version``: 1.0 unless the day is still restating."""
        window_start = self.today - timedelta(days=self.restatement_days)
        if self.restatement_days > 0 and window_start < day <= self.today:
            return 1.0 - _RESTATEMENT_SHORTFALL / (1 + max(version, 0))
        return 1.0

    @staticmethod
    def _trend(day: date) -> float:
        """Gentle growth (about 12 % a year) times a Christmas peak; clamped so far dates stay sane."""
        years = (day - _EPOCH).days / 365.25
        growth = min(3.0, max(0.5, 1.0 + 0.12 * years))
        yearly = 1.0 + 0.10 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 350) / 365.25)
        return growth * yearly

    def _level(self, day: date) -> float:
        return self._trend(day) * _WEEKDAY_FACTOR[day.weekday()]

    def _paid_level(self, day: date) -> float:
        # Budgets cap paid traffic, so the weekly pattern is half as strong as organic.
        return self._trend(day) * (1 + 0.5 * (_WEEKDAY_FACTOR[day.weekday()] - 1))

    def _gsc_clicks_final(self, day: date) -> int:
        u = self._rng(day, "gsc:clicks").random()
        return round(650.0 * self._level(day) * (0.95 + 0.10 * u))

    # ---- Google Ads ----------------------------------------------------------------------------------

    def ads_campaign_day(
        self, customer_id: str = DEFAULT_ADS_CUSTOMER_ID, day: date | None = None, version: int = 0
    ) -> list[AdsCampaignDay]:
        """Campaign rows of one day (only campaigns that served). Conversions restate, clicks do not.

        Amounts are in the customer's currency. Like Google Ads, a campaign with no impressions that day
        has no row. An unknown customer or a day after ``today`` gives no rows.
        """
        if day is None:
            day = self.today
        account = self._ads_accounts.get(customer_id)
        if account is None or not self.has_data(day):
            return []
        factor = self.restatement_factor(day, version)
        rows = []
        for c in account[1]:
            if day < c.start or (c.end is not None and day > c.end):
                continue
            r = self._rng(day, f"ads:{customer_id}:{c.id}")
            u = [r.random() for _ in range(6)]
            if u[5] >= c.serve_rate:  # u[5] was drawn but unused before, so serve_rate=1 moves nothing
                continue
            clicks = round(c.clicks * self._paid_level(day) * (0.9 + 0.2 * u[0]))
            impressions = max(clicks, round(clicks / (c.ctr * (0.85 + 0.3 * u[1]))))
            cost = round(clicks * c.cpc * (0.85 + 0.3 * u[2])
                         * incident_factor(self.incidents, "cpc_spike", customer_id, day), 2)
            conversions = round(clicks * c.conv_rate * (0.75 + 0.5 * u[3]) * factor, 2)
            value = round(conversions * c.basket * (0.85 + 0.3 * u[4]), 2)
            status = "PAUSED" if c.end is not None and self.today > c.end else "ENABLED"
            if impressions == 0:
                continue
            rows.append(AdsCampaignDay(customer_id, day, c.id, c.name, status, c.channel_type, impressions,
                                       clicks, int(round(cost * 100)) * 10_000, conversions, value,
                                       interactions=self._ads_interactions(customer_id, day, c, clicks)))
        return rows

    def _ads_interactions(self, customer_id: str, day: date, c: _Campaign, clicks: int) -> int:
        """metrics.interactions: the clicks of a Search or Shopping campaign; for other types the clicks plus the
        engagements and video views Google also counts (``_EXTRA_INTERACTIONS_PER_CLICK``). Own rng entity, so no
        existing number moved."""
        low, spread = _EXTRA_INTERACTIONS_PER_CLICK.get(c.channel_type, (0.0, 0.0))
        if not clicks or not (low or spread):
            return clicks
        u = self._rng(day, f"ads:{customer_id}:{c.id}:interactions").random()
        return clicks + max(1, round(clicks * (low + spread * u)))

    def ads_customers(self) -> dict[str, AdsCustomer]:
        """Client accounts by customer id; the Ads server serves these (the manager is not one of them)."""
        return {cid: account for cid, (account, _campaigns) in self._ads_accounts.items()}

    def ads_campaigns(self, customer_id: str) -> list[AdsCampaign]:
        """Campaigns of a customer that exist by ``today``, with their status as of ``today``."""
        account = self._ads_accounts.get(customer_id)
        if account is None:
            return []
        return [
            AdsCampaign(customer_id, c.id, c.name, "PAUSED" if c.end is not None and self.today > c.end
                        else "ENABLED", c.channel_type, c.start, c.end)
            for c in account[1] if c.start <= self.today
        ]

    # ---- Search Console ------------------------------------------------------------------------------

    def gsc_day(
        self, site: str = DEFAULT_GSC_SITE, day: date | None = None, version: int = 0
    ) -> GscDay | None:
        """Site totals plus query and page rows; None for an unknown site or a future day."""
        if day is None:
            day = self.today
        scale = self.gsc_sites.get(site)
        if scale is None or not self.has_data(day) or not delivers(self.incidents, "search_console", day):
            return None
        factor = self.restatement_factor(day, version)
        r = self._rng(day, f"gsc:{site}")
        clicks = round(self._gsc_clicks_final(day) * factor * scale)
        queries: list[GscRow] = []
        q_weights = [s * (0.8 + 0.4 * r.random()) for _, s, _ in _QUERIES]
        q_clicks = _split(round(clicks * _QUERY_CLICK_COVERAGE), q_weights)
        pos_imp = 0.0
        q_impressions = 0
        for (query, _share, pos), qc in zip(_QUERIES, q_clicks, strict=True):
            position = round(max(1.0, pos * (0.9 + 0.2 * r.random())), 2)
            ctr = max(0.004, 0.32 / position ** 1.15)
            imp = max(qc, round(qc / ctr)) if qc else round(3 + 20 * r.random())
            queries.append(GscRow(query, qc, imp, position))
            pos_imp += position * imp
            q_impressions += imp
        # Anonymised long tail: few clicks per impression and deep positions.
        anon_clicks = clicks - sum(q_clicks)
        anon_impressions = round(anon_clicks / 0.012) + round(400 * r.random())
        anon_position = 17.0 + 6.0 * r.random()
        impressions = q_impressions + anon_impressions
        weighted = pos_imp + anon_position * anon_impressions
        position = round(weighted / impressions, 4) if impressions else 0.0
        p_weights = [s * (0.8 + 0.4 * r.random()) for _, s, _ in _PAGES]
        p_clicks = _split(clicks, p_weights)
        p_impressions = _split(round(impressions * _PAGE_IMPRESSION_OVERCOUNT), p_weights)
        domain = _site_domain(site)
        pages = [
            GscRow(f"https://{domain}{path}", pc, max(pi, pc), round(pos * (0.9 + 0.2 * r.random()), 2))
            for (path, _s, pos), pc, pi in zip(_PAGES, p_clicks, p_impressions, strict=True)
        ]
        devices = self._gsc_breakdown(site, day, "devices", _GSC_DEVICES, clicks, impressions, position)
        countries = self._gsc_breakdown(site, day, "countries", _GSC_COUNTRIES, clicks, impressions, position)
        return GscDay(site, day, clicks, impressions, position, queries, pages, devices, countries)

    def _gsc_breakdown(
        self, site: str, day: date, entity: str, spec: Sequence[tuple[str, float, float, float]],
        clicks: int, impressions: int, position: float,
    ) -> list[GscRow]:
        """Split site totals into rows that add up exactly, so byProperty device/country sums match.

        Own rng entity, so adding breakdowns did not move any existing GSC number. Positions are relative
        factors rescaled so that sum(position * impressions) equals the site's: the impression-weighted
        average of the rows is the site position (KPI rule 4), whatever the jitter.
        """
        r = self._rng(day, f"gsc:{site}:{entity}")
        jitter = [(0.85 + 0.3 * r.random(), 0.92 + 0.16 * r.random(), 0.95 + 0.1 * r.random()) for _ in spec]
        row_clicks = _split(clicks, [s[1] * j[0] for s, j in zip(spec, jitter, strict=True)])
        row_imps = _split(impressions, [s[1] * s[2] * j[0] * j[1] for s, j in zip(spec, jitter, strict=True)])
        # A row cannot have more clicks than impressions: move impressions over from the row with most slack.
        for k in range(len(spec)):
            while row_clicks[k] > row_imps[k]:
                donor = max(range(len(spec)), key=lambda m: (row_imps[m] - row_clicks[m], -m))
                if row_imps[donor] <= row_clicks[donor]:
                    break
                row_imps[donor] -= 1
                row_imps[k] += 1
        rel = [s[3] * j[2] for s, j in zip(spec, jitter, strict=True)]
        weighted = sum(f * i for f, i in zip(rel, row_imps, strict=True))
        scale = position * impressions / weighted if weighted else position
        return [GscRow(s[0], c, i, f * scale) for s, c, i, f in zip(spec, row_clicks, row_imps, rel, strict=True)]

    # ---- HubSpot e-mail ------------------------------------------------------------------------------

    def email_sends(self, day: date) -> list[EmailSend]:
        """Marketing e-mails sent that day: a newsletter every Tuesday and Thursday at 09:30 Paris."""
        if not self.has_data(day) or day.weekday() not in (1, 3):
            return []
        r = self._rng(day, "hubspot:email")
        u = [r.random() for _ in range(9)]
        list_growth = min(2.0, max(0.6, 1 + 0.15 * (day - _EPOCH).days / 365.25))
        sent = round(15_000 * list_growth * (0.98 + 0.04 * u[0]))
        hard = _sround(sent * 0.002 * (0.5 + u[1]), u[2])
        soft = _sround(sent * 0.005 * (0.5 + u[3]), u[4])
        delivered = sent - hard - soft
        opened = round(delivered * (0.33 + 0.10 * u[5]))  # inflated by Apple Mail Privacy Protection
        clicked = min(opened, round(delivered * (0.020 + 0.014 * u[6])))
        unsub = round(delivered * (0.0008 + 0.0012 * u[7]))
        spam = round(delivered * 0.0001 * (0.5 + u[8]))
        iso_week = day.isocalendar().week
        subject = _EMAIL_SUBJECTS[(iso_week * 2 + (day.weekday() == 3)) % len(_EMAIL_SUBJECTS)]
        return [EmailSend(
            id=100_000_000 + day.toordinal() * 10, name=f"Newsletter {day.isoformat()}", subject=subject,
            send_ts_ms=_paris_ms(day, 9.5 * 3600), sent=sent, delivered=delivered, open=opened, click=clicked,
            bounce=hard + soft, hardbounced=hard, softbounced=soft, unsubscribed=unsub, spamreport=spam,
        )]

    def hubspot_extra_emails(self, day: date) -> list[EmailSend]:
        """One-off HubSpot e-mails beside the newsletters (they do not drive GA4 sessions, so GA4 figures do not
        depend on them): on the 15th, a flash sale scheduled for 23:30 UTC, which is already the 16th in Paris; on
        the 5th, the month's news sent at once ("send now": HubSpot gives it no ``publishDate``, only
        ``publishedAt``)."""
        if not self.has_data(day):
            return []
        extras = []
        if day.day == 15:
            send_ms = _ms(datetime.combine(day, time(23, 30), tzinfo=ZoneInfo("UTC")))
            extras.append(self._one_off_email(day, 1, "Vente flash de minuit", "Minuit : -30 % pendant 24 h",
                                              send_ms, 9_000, scheduled=True))
        if day.day == 5:
            extras.append(self._one_off_email(day, 2, "Nouveautés du mois", "Ce mois-ci à la boutique",
                                              _paris_ms(day, 11 * 3600 + 47 * 60 + 13), 12_000, scheduled=False))
        return extras

    def _one_off_email(self, day: date, k: int, name: str, subject: str, send_ms: int, base_sent: int, *,
                       scheduled: bool) -> EmailSend:
        r = self._rng(day, f"hubspot:email:extra:{k}")
        sent = round(base_sent * (0.95 + 0.10 * r.random()))
        c = _email_outcome(sent, [r.random() for _ in range(8)], open_share=0.30)
        return EmailSend(id=100_000_000 + day.toordinal() * 10 + k, name=f"{name} {day.isoformat()}",
                         subject=subject, send_ts_ms=send_ms, scheduled=scheduled, **c)

    def hubspot_automated_emails(self) -> list[AutomatedEmail]:
        """The portal's automated e-mails: the welcome e-mail a workflow sends to every new subscriber since
        7 January 2025 (older than any re-read window, and still running)."""
        if not self.has_data(_WELCOME_FIRST_DAY):
            return []
        return [AutomatedEmail(id=_WELCOME_EMAIL_ID, name="Bienvenue - nouveaux abonnés",
                               subject="Bienvenue chez Maison Exemple", first_day=_WELCOME_FIRST_DAY,
                               published_ts_ms=_paris_ms(_WELCOME_FIRST_DAY, 10 * 3600 + 12 * 60))]

    def automated_email_day(self, email: AutomatedEmail, day: date) -> dict[str, int]:
        """What an automated e-mail did on one day (the shop's time zone): about 20 to 60 welcome e-mails, opened
        more than newsletters; the same counters as ``EmailSend.counters``, all zero outside its sending days."""
        if day < email.first_day or not self.has_data(day):
            return dict.fromkeys(_EMAIL_COUNTERS, 0)
        r = self._rng(day, f"hubspot:automated:{email.id}")
        sent = round((20 + 40 * r.random()) * _WEEKDAY_FACTOR[day.weekday()])
        return _email_outcome(sent, [r.random() for _ in range(8)], open_share=0.48)

    def _email_clicks_landing(self, day: date) -> float:
        return sum(
            send.click * share
            for lag, share in enumerate(_EMAIL_CLICK_DECAY)
            for send in self.email_sends(day - timedelta(days=lag))
        )

    # ---- GA4 -----------------------------------------------------------------------------------------

    def _channel_source_sessions(self, property_id: str, day: date) -> list[tuple[_Channel, str, str, float]]:
        """Expected (float) sessions per channel/source before property scale and restatement."""
        ads_clicks: dict[str, int] = {}
        for row in self.ads_campaign_day(DEFAULT_ADS_CUSTOMER_ID, day):
            kind = row.advertising_channel_type
            ads_clicks[kind] = ads_clicks.get(kind, 0) + row.clicks
        driven = {_AD_CHANNEL_BY_TYPE[t]: GA4_SESSIONS_PER_AD_CLICK * n for t, n in ads_clicks.items()}
        driven["Organic Search"] = GA4_SESSIONS_PER_GSC_CLICK * self._gsc_clicks_final(day)
        email_clicks = self._email_clicks_landing(day)
        driven["Email"] = _GA4_SESSIONS_PER_EMAIL_CLICK * email_clicks + 5.0 * self._trend(day)
        weekend = day.weekday() >= 5
        out = []
        for ch in _CHANNELS:
            for source, medium, weight in ch.sources:
                u = self._rng(day, f"ga4:{property_id}:{ch.name}:{source}:{medium}").random()
                if ch.name in _BASE_SESSIONS:
                    social_boost = 1.25 if weekend and "Social" in ch.name else 1.0
                    base = _BASE_SESSIONS[ch.name] * weight * self._level(day) * social_boost
                    out.append((ch, source, medium, base * (0.92 + 0.16 * u)))
                else:
                    # Driven channels: weight is relative to the driver (google organic = GSC clicks).
                    out.append((ch, source, medium, driven.get(ch.name, 0.0) * weight * (0.97 + 0.06 * u)))
        return out

    def ga4_facts(self, property_id: str, day: date, version: int = 0, tracked: bool = True) -> list[Ga4Fact]:
        """All non-empty GA4 cells of one property and day, as seen on read ``version`` (``tracked``: through GA4's
        tag, so a ``tracking_break`` incident applies; Matomo's own tracker reads ``tracked=False``)."""
        scale = self.ga4_properties.get(property_id)
        if scale is None or not self.has_data(day):
            return []
        factor = self.restatement_factor(day, version) * (
            incident_factor(self.incidents, "tracking_break", property_id, day) if tracked else 1.0)
        key = (property_id, day, factor)
        cached = self._ga4_cache.get(key)
        if cached is not None:
            return list(cached)  # a fresh list, so a caller appending to it cannot corrupt the cache
        facts = self._compute_ga4_facts(property_id, day, scale * factor)
        with self._cache_lock:
            if len(self._ga4_cache) > 50_000:
                self._ga4_cache.clear()
            self._ga4_cache[key] = facts
        return list(facts)

    def _compute_ga4_facts(self, property_id: str, day: date, multiplier: float) -> list[Ga4Fact]:
        weekend = day.weekday() >= 5
        facts: list[Ga4Fact] = []
        for ch, source, medium, expected in self._channel_source_sessions(property_id, day):
            total = round(expected * multiplier)
            r = self._rng(day, f"ga4:{property_id}:{ch.name}:{source}:{medium}:devices")
            mobile = min(0.95, ch.mobile_share + (0.06 if weekend else 0.0)) * (0.95 + 0.1 * r.random())
            tablet = 0.06 * (0.8 + 0.4 * r.random())
            desktop = max(0.02, 1.0 - mobile - tablet)
            for device, sessions in zip(_DEVICES, _split(total, (desktop, mobile, tablet)), strict=True):
                if sessions <= 0:
                    continue
                metrics = self._cell_metrics(property_id, day, ch, source, medium, device, sessions)
                dims = {"sessionDefaultChannelGroup": ch.name, "sessionSource": source,
                        "sessionMedium": medium, "deviceCategory": device}
                facts.append(Ga4Fact(property_id, day, dims, metrics))
        return facts

    def _cell_metrics(
        self, property_id: str, day: date, ch: _Channel, source: str, medium: str, device: str, s: int
    ) -> dict[str, int | float]:
        """Every metric of one cell derives from its session count, so invariants hold by construction."""
        r = self._rng(day, f"ga4:{property_id}:{ch.name}:{source}:{medium}:{device}")
        u = [r.random() for _ in range(16)]
        g = r.gauss(0.0, 1.0)
        eng_adj = {"desktop": 0.05, "mobile": -0.03, "tablet": 0.0}[device]
        conv_adj = {"desktop": 1.25, "mobile": 0.80, "tablet": 1.0}[device]
        basket_adj = {"desktop": 1.12, "mobile": 0.90, "tablet": 1.02}[device]
        seconds = {"desktop": 118.0, "mobile": 74.0, "tablet": 95.0}[device]
        rate = min(0.97, max(0.05, ch.engagement + eng_adj + (u[0] - 0.5) * 0.08))
        engaged = min(s, _sround(s * rate, u[1]))
        duration = round((engaged * seconds + (s - engaged) * 4.0) * (0.85 + 0.3 * u[2]))
        conv = ch.conversion * conv_adj * (0.8 + 0.4 * u[3])
        # A session with a key event is engaged in GA4, hence the cap at engaged rather than sessions.
        converting = min(engaged, _sround(s * conv, u[4]))
        key_events = converting + _sround(converting * (0.15 + 0.2 * u[5]), u[6])
        purchases = min(converting, _sround(converting * ch.purchase_share, u[7]))
        add_to_carts = purchases + _sround(s * conv * ch.purchase_share * 2.2 * (0.85 + 0.3 * u[8]), u[9])
        checkouts = purchases + _sround((add_to_carts - purchases) * (0.30 + 0.15 * u[10]), u[11])
        users = min(s, max(1, _sround(s * (0.80 + 0.10 * u[12]), u[13])))
        new_users = min(users, _sround(users * ch.new_user_share * (0.9 + 0.2 * u[14]), u[15]))
        revenue = 0.0
        if purchases:
            spread = 1.0 + g * 0.18 / math.sqrt(purchases)
            revenue = round(max(0.0, purchases * ch.basket * basket_adj * spread), 2)
        # Own rng entity, so these draws moved no number drawn above.
        rv = self._rng(day, f"ga4:{property_id}:{ch.name}:{source}:{medium}:{device}:duration-funnel")
        v = [rv.random() for _ in range(6)]
        # Session duration runs from a session's first to its last event, idle time included, so it is never
        # below the engaged (foreground) time; an unengaged session lasts a few seconds.
        session_duration = duration + round(engaged * seconds * (0.3 + 0.6 * v[0]) + (s - engaged) * (6 + 20 * v[1]))
        # The day's closed funnel: users who added to cart (at most one per add_to_cart, at most the cell's users)
        # and, of them, those who then purchased (at most the purchases).
        cart_users = (min(users, add_to_carts, max(1, _sround(add_to_carts * (0.70 + 0.25 * v[2]), v[3])))
                      if add_to_carts else 0)
        cart_purchasers = min(cart_users, purchases, _sround(purchases * (0.88 + 0.12 * v[4]), v[5]))
        return {
            "sessions": s,
            "engagedSessions": engaged,
            "userEngagementDuration": duration,
            "convertingSessions": converting,
            "keyEvents": key_events,
            "newUsers": new_users,
            "users": users,
            "ecommercePurchases": purchases,
            "purchaseRevenue": revenue,
            "addToCarts": add_to_carts,
            "checkouts": checkouts,
            "sessionDuration": session_duration,
            "cartUsers": cart_users,
            "cartPurchasers": cart_purchasers,
        }

    @staticmethod
    def ga4_total_users(facts_in_group: Iterable[Ga4Fact], n_days: int) -> int:
        """Distinct users of a group of cells: below the sum of per-cell users once it spans days/channels.

        The same person returns on several days and through several channels; GA4 de-duplicates, so a
        sum of daily ``totalUsers`` over-counts. The shrink factors are arbitrary but monotone and
        deterministic, which is all the pipeline's "never sum distinct counts" rule needs to be testable.
        """
        facts = list(facts_in_group)
        total = sum(int(f.metrics["users"]) for f in facts)
        if total == 0:
            return 0
        channels = {f.dims["sessionDefaultChannelGroup"] for f in facts}
        shrink = (1 + 0.08 * math.log(max(1, n_days))) * (1 + 0.03 * math.log(max(1, len(channels))))
        return min(total, max(1, round(total / shrink)))

    # ---- Matomo --------------------------------------------------------------------------------------

    def matomo_day(self, site_id: str = DEFAULT_MATOMO_SITE_ID, day: date | None = None,
                   version: int = 0) -> MatomoDay | None:
        """Matomo's view of the GA4 property the site tracks (site 1: the default property): same visits within
        a few per cent, its own metrics; None for a site the world does not have."""
        if day is None:
            day = self.today
        observed = self.matomo_sites.get(site_id)
        if observed is None or not self.has_data(day):
            return None
        facts = self.ga4_facts(observed, day, version, tracked=False) if (
            observed in self.ga4_properties) else self._compute_ga4_facts(
            observed, day, self.restatement_factor(day, version))
        matomo_type = {c.name: c.matomo_type for c in _CHANNELS}
        per_type: dict[str, dict[str, float]] = {t: {} for t in MATOMO_REFERRER_TYPES}
        for f in facts:
            acc = per_type[matomo_type[f.dims["sessionDefaultChannelGroup"]]]
            for k, v in f.metrics.items():
                acc[k] = acc.get(k, 0) + v
        by_type: dict[str, MatomoVisits] = {}
        for t in MATOMO_REFERRER_TYPES:
            acc = per_type[t]
            r = self._rng(day, f"matomo:{site_id}:{t}")
            u = [r.random() for _ in range(8)]
            visits = round(acc.get("sessions", 0) * (0.98 + 0.04 * u[0]))
            engaged_share = acc.get("engagedSessions", 0) / acc["sessions"] if acc.get("sessions") else 0.6
            actions = max(visits, round(visits * (2.6 + 1.4 * u[1])))
            converted = round(acc.get("convertingSessions", 0) * (0.9 + 0.15 * u[3]))
            by_type[t] = MatomoVisits(
                nb_visits=visits,
                nb_uniq_visitors=min(visits, round(visits * (0.84 + 0.06 * u[2]))),
                nb_actions=actions,
                nb_visits_converted=min(visits, converted),
                bounce_count=min(visits, round(visits * (1 - engaged_share) * (0.85 + 0.2 * u[4]))),
                sum_visit_length=round(visits * (110 + 60 * u[5])),
                max_actions=min(actions, 20 + int(60 * u[6])) if visits else 0,
            )
        visits_all = [v for v in by_type.values()]
        summary = MatomoVisits(
            nb_visits=sum(v.nb_visits for v in visits_all),
            # A visitor arriving through two referrer types is one unique visitor for the site.
            nb_uniq_visitors=round(sum(v.nb_uniq_visitors for v in visits_all) / 1.03),
            nb_actions=sum(v.nb_actions for v in visits_all),
            nb_visits_converted=sum(v.nb_visits_converted for v in visits_all),
            bounce_count=sum(v.bounce_count for v in visits_all),
            sum_visit_length=sum(v.sum_visit_length for v in visits_all),
            max_actions=max((v.max_actions for v in visits_all), default=0),
        )
        r = self._rng(day, f"matomo:{site_id}:ecommerce")
        u = [r.random() for _ in range(4)]
        ga4_orders = sum(int(f.metrics["ecommercePurchases"]) for f in facts)
        ga4_revenue = sum(float(f.metrics["purchaseRevenue"]) for f in facts)
        ga4_carts = sum(int(f.metrics["addToCarts"]) for f in facts)
        orders = round(ga4_orders * (0.97 + 0.06 * u[0]))
        revenue = round(ga4_revenue / ga4_orders * orders * (0.98 + 0.04 * u[1]), 2) if ga4_orders else 0.0
        abandoned = round(max(0, ga4_carts - ga4_orders) * (0.40 + 0.1 * u[2]))
        ecommerce = MatomoEcommerce(orders, revenue, abandoned, round(orders * (1.6 + 0.8 * u[3])))
        mediums = self._matomo_campaign_mediums(facts, by_type["campaign"], matomo_type)
        return MatomoDay(site_id, day, by_type, summary, ecommerce, mediums)

    @staticmethod
    def _matomo_campaign_mediums(facts: Sequence[Ga4Fact], campaign: MatomoVisits, matomo_type: dict[str, str]
                                 ) -> dict[str, MatomoVisits]:
        """The campaign referrer type's visits split by medium in the proportions of GA4's campaign channels
        (Paid Search, Paid Shopping, Cross-network: cpc; Display: display; Email: email; Paid Social:
        paid_social): visits, unique visitors and actions by sessions, bounces by unengaged sessions, converted
        visits by converting sessions, never above a medium's visits; parts add up to the campaign totals."""
        groups: dict[str, list[float]] = {}  # medium -> [sessions, unengaged sessions, converting sessions]
        for f in facts:
            if matomo_type[f.dims["sessionDefaultChannelGroup"]] != "campaign":
                continue
            acc = groups.setdefault(f.dims["sessionMedium"].lower(), [0.0, 0.0, 0.0])
            acc[0] += f.metrics["sessions"]
            acc[1] += f.metrics["sessions"] - f.metrics["engagedSessions"]
            acc[2] += f.metrics["convertingSessions"]
        mediums = sorted(groups)
        visits = _split(campaign.nb_visits, [groups[m][0] for m in mediums])
        bounces = _split_within(campaign.bounce_count, [groups[m][1] for m in mediums], visits)
        converted = _split_within(campaign.nb_visits_converted, [groups[m][2] for m in mediums], visits)
        uniq = _split_within(campaign.nb_uniq_visitors, visits, visits)
        actions = _split(campaign.nb_actions, visits)
        length = _split(campaign.sum_visit_length, visits)
        return {m: MatomoVisits(visits[i], uniq[i], actions[i], converted[i], bounces[i], length[i],
                                min(campaign.max_actions, actions[i]))
                for i, m in enumerate(mediums) if visits[i] > 0}

    # ---- HubSpot CRM ---------------------------------------------------------------------------------

    def hubspot_contacts_created(self, day: date) -> list[HubspotContact]:
        """Contacts created that day, about a third of GA4's converting sessions, with their deals.

        Lifecycle dates and deals that would fall after ``today`` are not there yet: a contact whose
        customer date is in the future is still a lead, and its deal is still open.
        """
        if not self.has_data(day):
            return []
        converting = sum(int(f.metrics["convertingSessions"])
                         for f in self._compute_ga4_facts(DEFAULT_GA4_PROPERTY_ID, day, 1.0))
        r = self._rng(day, "hubspot:contacts")
        n = _sround(converting * (0.30 + 0.10 * r.random()), r.random())
        end_of_today = _paris_ms(self.today, 86_400) - 1
        sources = [s for s, _ in _HUBSPOT_SOURCES]
        source_weights = [w for _, w in _HUBSPOT_SOURCES]
        contacts = []
        for i in range(min(n, 999)):
            cid = str(day.toordinal() * 1000 + i)
            c = self._rng(day, f"hubspot:contact:{cid}")
            u = [c.random() for _ in range(12)]
            first = _FIRSTNAMES[int(u[0] * len(_FIRSTNAMES))]
            last = _LASTNAMES[int(u[1] * len(_LASTNAMES))]
            created = _paris_ms(day, 7 * 3600 + u[2] * 16 * 3600)
            created = min(created, end_of_today)
            source = c.choices(sources, weights=source_weights)[0]
            stage, lead_ms, customer_ms = "subscriber", None, None
            deals: list[HubspotDeal] = []
            if u[3] < 0.5:
                stage, lead_ms = "lead", created
                customer_at = created + int((1 + u[4] * 20) * 86_400_000) if u[5] < 0.4 else None
                if customer_at is not None and customer_at <= end_of_today:
                    stage, customer_ms = "customer", customer_at
                # First deal: won at the customer date, lost for some leads, open otherwise.
                if customer_at is not None or u[6] < 0.3:
                    won = customer_at is not None
                    close_at = customer_at if won else created + int((3 + u[7] * 25) * 86_400_000)
                    deals.append(self._deal(cid, 0, created, close_at, won, u[8], end_of_today))
                # Repeat purchases, for the loyalty KPI.
                if customer_at is not None and u[9] < 0.35:
                    second = customer_at + int((20 + u[10] * 280) * 86_400_000)
                    deals.append(self._deal(cid, 1, second - 86_400_000, second, True, u[11], end_of_today))
            deals = [d for d in deals if d.createdate_ms <= end_of_today]
            last_modified = max([created, lead_ms or 0, customer_ms or 0]
                                + [d.closedate_ms or d.createdate_ms for d in deals]) + 60_000
            local = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
            contacts.append(HubspotContact(
                id=cid, email=f"{local.lower()}.{cid}@example.com", firstname=first, lastname=last,
                createdate_ms=created, lastmodifieddate_ms=min(last_modified, max(end_of_today, created)),
                lifecyclestage=stage, lead_date_ms=lead_ms, customer_date_ms=customer_ms,
                hs_analytics_source=source, deals=tuple(deals),
            ))
        return contacts

    @staticmethod
    def _deal(cid: str, k: int, created: int, close_at: int, won: bool, u: float, now_ms: int) -> HubspotDeal:
        closed = close_at <= now_ms
        stage = ("closedwon" if won else "closedlost") if closed else "contractsent"
        return HubspotDeal(id=f"{cid}{k}", contact_id=cid, dealname=f"Commande {cid}-{k + 1}",
                           amount=round(40 + u * 160, 2), pipeline="default", dealstage=stage,
                           createdate_ms=created, closedate_ms=close_at if closed else None)

    def nps_responses(self, day: date) -> list[NpsResponse]:
        """Post-purchase survey answers (0-10), a handful a day, NPS around +40."""
        if not self.has_data(day):
            return []
        r = self._rng(day, "hubspot:nps")
        n = 2 + int(r.random() * 7)
        scores = list(range(11))
        weights = [0.01, 0.01, 0.01, 0.02, 0.02, 0.04, 0.06, 0.10, 0.17, 0.24, 0.32]
        return [
            NpsResponse(id=f"nps-{day.toordinal()}-{i}",
                        submitted_at_ms=_paris_ms(day, 8 * 3600 + r.random() * 14 * 3600),
                        score=r.choices(scores, weights=weights)[0])
            for i in range(n)
        ]


# --------------------------------------------------------------------------------------------------------
# LinkedIn Pages (issue #22): the shop's company page, as LinkedIn's Community Management API reports it
# --------------------------------------------------------------------------------------------------------

# Organization ids as LinkedIn spells them inside urn:li:organization:{id} (digits).
LINKEDIN_ORGANIZATION_IDS: tuple[str, ...] = ("2414183", "5550123")
# Follower level at the world's epoch, and daily organic reach in impressions, per organization (the second is a
# smaller brand page).
_LINKEDIN_BASE: dict[str, tuple[int, float]] = {"2414183": (8_400, 1_900.0), "5550123": (1_150, 260.0)}
_LINKEDIN_CUMULATIVE: dict[tuple[int, str], list[int]] = {}
_LINKEDIN_LOCK = threading.Lock()


@dataclass(frozen=True)
class LinkedInDay:
    """One organization's UTC day, as LinkedIn's statistics finders report it (DAY granularity).

    Share statistics (organizationalEntityShareStatistics ``totalShareStatistics``): ``impressions``,
    ``unique_impressions``, ``clicks``, ``likes``, ``comments``, ``shares``; page statistics
    (organizationPageStatistics ``totalPageStatistics.views.allPageViews.pageViews``): ``page_views``; follower
    statistics (organizationalEntityFollowerStatistics ``followerGains``): ``organic_gain`` (follows minus
    unfollows of the day: it can be negative) and ``paid_gain`` (follows from sponsored content)."""

    impressions: int
    unique_impressions: int
    clicks: int
    likes: int
    comments: int
    shares: int
    page_views: int
    organic_gain: int
    paid_gain: int

    @property
    def engagement(self) -> float:
        """LinkedIn's ``engagement`` field: (clicks + likes + comments + shares) / impressions."""
        total = self.clicks + self.likes + self.comments + self.shares
        return total / self.impressions if self.impressions else 0.0


def linkedin_day(world: World, org_id: str, day: date) -> LinkedInDay | None:
    """The organization's figures for one UTC day; None before the epoch, after ``world.today`` or while a
    ``stale_source`` incident on ``linkedin`` holds the day back."""
    if org_id not in _LINKEDIN_BASE or day < _EPOCH or not world.has_data(day):
        return None
    if not delivers(world.incidents, "linkedin", day):
        return None
    return _linkedin_figures(world.seed, org_id, day)


def _linkedin_figures(seed: int, org_id: str, day: date) -> LinkedInDay:
    """The day's figures, a pure function of (seed, organization, day)."""
    _, reach = _LINKEDIN_BASE[org_id]
    r = seeded_rng(seed, day, f"linkedin:org:{org_id}")
    u = [r.random() for _ in range(10)]
    weekday = (1.15, 1.2, 1.15, 1.1, 0.95, 0.45, 0.4)[day.weekday()]
    impressions = _sround(reach * weekday * World._trend(day) * (0.75 + 0.5 * u[0]), u[1])
    unique = _sround(impressions * (0.55 + 0.15 * u[2]), u[3])
    clicks = _sround(impressions * 0.012 * (0.6 + 0.8 * u[4]), u[5])
    likes = _sround(impressions * 0.018 * (0.6 + 0.8 * u[6]), u[5])
    comments = _sround(impressions * 0.0025 * (0.5 + u[7]), u[3])
    shares = _sround(impressions * 0.0015 * (0.5 + u[8]), u[1])
    page_views = _sround(impressions * 0.03 * (0.7 + 0.6 * u[9]), u[0])
    follows = _sround(impressions * 0.004 * (0.5 + u[2]), u[4])
    unfollows = _sround(reach * 0.0015 * (0.2 + 1.6 * u[6]), u[8])
    paid = _sround(impressions * 0.0008 * u[7], u[9])
    return LinkedInDay(impressions, unique, clicks, likes, comments, shares, page_views, follows - unfollows, paid)


def linkedin_follower_level(world: World, org_id: str, day: date) -> int:
    """Followers at the end of ``day`` (UTC, at most ``world.today``): the epoch's level plus every day's net gains
    (organic + paid) since. What LinkedIn's networkSizes edge answers when read at that day's end."""
    base, _ = _LINKEDIN_BASE[org_id]
    last = min(day, world.today)
    if last < _EPOCH:
        return base
    key = (world.seed, org_id)
    with _LINKEDIN_LOCK:
        cumulative = _LINKEDIN_CUMULATIVE.setdefault(key, [])
        while len(cumulative) <= (last - _EPOCH).days:
            figures = _linkedin_figures(world.seed, org_id, _EPOCH + timedelta(days=len(cumulative)))
            cumulative.append((cumulative[-1] if cumulative else 0) + figures.organic_gain + figures.paid_gain)
        return base + cumulative[(last - _EPOCH).days]


# --------------------------------------------------------------------------------------------------------
# Meta: the shop's Facebook Page and Instagram professional account (sandbox/meta_server.py serves them as the
# Graph API does). Social activity follows the shop's daily level; every figure is a pure function of (seed, account,
# day), the follower level the cumulative sum of the day's follows minus unfollows since META_EPOCH.
# --------------------------------------------------------------------------------------------------------

FACEBOOK_PAGE_ID = "104857600123456"
INSTAGRAM_ACCOUNT_ID = "17841400000000001"
# Meta reports Page and Instagram insights days in Pacific time: a day's value carries end_time = the next local
# midnight, e.g. "2018-01-02T08:00:00+0000" for January 1 (developers.facebook.com/documentation/pages-api/
# platforminsights/page, Limitations).
META_TIMEZONE = "America/Los_Angeles"
META_EPOCH = date(2024, 1, 1)
_META_TZ = ZoneInfo(META_TIMEZONE)
# the platform's own distinct reach over 7 / 28 days, as a share of the period's summed daily reach (people come back)
META_PERIOD_OVERLAP = {"week": 0.55, "days_28": 0.32}
_META_BASE_FOLLOWERS = {"facebook": 12_400, "instagram": 8_300}


@dataclass(frozen=True)
class MetaDay:
    """One account's insights for one Pacific-time day (Facebook Page or Instagram account)."""

    views: int  # Page `page_media_view` / Instagram `views` (what replaced impressions)
    reach: int  # distinct accounts that day (`page_total_media_view_unique` / `reach`)
    engagements: int  # `page_post_engagements` / `total_interactions`
    follows: int
    unfollows: int
    page_views: int  # `page_views_total` (Instagram: no current metric)
    shares: int  # Instagram `shares` (Facebook Page: no day metric)
    link_clicks: int  # Instagram `profile_links_taps` (Facebook Page: no day metric)


@dataclass(frozen=True)
class MetaPost:
    """A post, reel or story with its lifetime metrics."""

    account_id: str
    post_id: str
    created_time: datetime  # UTC
    media_type: str  # Facebook status_type / Instagram media_product_type (FEED, REELS, STORY)
    permalink: str
    views: int
    reach: int
    likes: int
    comments: int
    shares: int
    saved: int
    replies: int
    link_clicks: int

    @property
    def local_date(self) -> date:
        """The Pacific-time day it was created on (the day its account's insights count it)."""
        return self.created_time.astimezone(_META_TZ).date()


_META_LEVELS: dict[tuple[int, int, str], list[int]] = {}
_META_LOCK = threading.Lock()


def meta_network(account_id: str) -> str:
    """'facebook' or 'instagram' for a sandbox Meta account id."""
    return "instagram" if account_id == INSTAGRAM_ACCOUNT_ID else "facebook"


def meta_day(world: World, account_id: str, day: date) -> MetaDay | None:
    """The account's insights on a Pacific-time day; None before META_EPOCH or after the world's today."""
    if day < META_EPOCH or not world.has_data(day):
        return None
    network = meta_network(account_id)
    r = world._rng(day, f"meta:{network}:{account_id}")
    level = world._level(day)
    views = round((5200 if network == "facebook" else 7400) * level * (0.85 + 0.3 * r.random()))
    reach = round(views * (0.46 + 0.12 * r.random()))
    engagements = round(views * (0.031 + 0.02 * r.random()))
    follows = round((24 if network == "facebook" else 41) * level * (0.6 + 0.8 * r.random()))
    unfollows = round(follows * (0.15 + 0.25 * r.random()))
    return MetaDay(views=views, reach=reach, engagements=engagements, follows=follows, unfollows=unfollows,
                   page_views=round(views * (0.05 + 0.02 * r.random())),
                   shares=round(engagements * (0.06 + 0.05 * r.random())),
                   link_clicks=round(engagements * (0.08 + 0.06 * r.random())))


def meta_followers(world: World, account_id: str, day: date) -> int | None:
    """The follower level at the end of a day: the base plus every day's follows minus unfollows since META_EPOCH."""
    if day < META_EPOCH or not world.has_data(day):
        return None
    key = (world.seed, world.today.toordinal(), account_id)
    index = (day - META_EPOCH).days
    with _META_LOCK:
        levels = _META_LEVELS.setdefault(key, [])
        while len(levels) <= index:
            d = META_EPOCH + timedelta(days=len(levels))
            facts = meta_day(world, account_id, d)
            assert facts is not None
            previous = levels[-1] if levels else _META_BASE_FOLLOWERS[meta_network(account_id)]
            levels.append(previous + facts.follows - facts.unfollows)
        return levels[index]


def meta_period_reach(world: World, account_id: str, day: date, period: str) -> int | None:
    """The platform's own distinct reach over the 7 or 28 days ending on `day` (never the sum of daily reach)."""
    days = 7 if period == "week" else 28
    daily = [meta_day(world, account_id, day - timedelta(days=k)) for k in range(days)]
    if daily[0] is None:
        return None
    return round(sum(f.reach for f in daily if f is not None) * META_PERIOD_OVERLAP[period])


def meta_posts(world: World, account_id: str, day: date) -> list[MetaPost]:
    """The posts, reels and stories the account created on a Pacific-time day (the Page: posts only)."""
    if day < META_EPOCH or not world.has_data(day):
        return []
    network = meta_network(account_id)
    r = world._rng(day, f"meta:posts:{account_id}")
    kinds = ["FEED"] * (1 + int(r.random() * 2)) if network == "facebook" else \
        ["FEED"] * int(r.random() * 2) + ["REELS"] * int(r.random() * 1.6) + ["STORY"] * int(r.random() * 2.5)
    posts = []
    for k, kind in enumerate(kinds):
        local = datetime.combine(day, time(8, 0), tzinfo=_META_TZ) + timedelta(minutes=int(r.random() * 13 * 60))
        views = round((900 if kind != "STORY" else 300) * world._level(day) * (0.5 + r.random()))
        reach = round(views * (0.6 + 0.2 * r.random()))
        likes = round(reach * (0.03 + 0.03 * r.random())) if kind != "STORY" else 0
        serial = f"{day.strftime('%Y%m%d')}{k:02d}"
        post_id = f"{account_id}_{serial}" if network == "facebook" else f"1790{serial}"
        link = (f"https://www.facebook.com/{account_id}/posts/{serial}" if network == "facebook"
                else f"https://www.instagram.com/p/{serial}/")
        posts.append(MetaPost(
            account_id=account_id, post_id=post_id, created_time=local.astimezone(ZoneInfo("UTC")),
            media_type=("added_photos" if network == "facebook" else kind), permalink=link, views=views,
            reach=reach, likes=likes, comments=round(likes * 0.12 * r.random()) if kind != "STORY" else 0,
            shares=round(reach * 0.004 * (1 + r.random())), saved=round(likes * 0.2 * r.random()),
            replies=round(reach * 0.01 * r.random()) if kind == "STORY" else 0,
            link_clicks=round(reach * 0.01 * r.random()) if network == "facebook" else 0,
        ))
    return posts


# --- LinkedIn posts (issue #22): the page's posts and their lifetime share statistics -------------------------


@dataclass(frozen=True)
class LinkedInPost:
    """One post of an organization (urn:li:share:{id}), created at `created_ms` (epoch ms, UTC), with the lifetime
    totals organizationalEntityShareStatistics gives for it (`shares=List(...)`, no timeIntervals)."""

    urn: str
    created_ms: int
    impressions: int
    unique_impressions: int
    clicks: int
    likes: int
    comments: int
    shares: int


def linkedin_posts(world: World, org_id: str, day: date) -> list[LinkedInPost]:
    """The organization's posts created on a UTC day: none to two on weekdays, rarely one at the weekend (none
    before the epoch, after ``world.today`` or for an unknown organization)."""
    if org_id not in _LINKEDIN_BASE or day < _EPOCH or not world.has_data(day):
        return []
    _, reach = _LINKEDIN_BASE[org_id]
    r = seeded_rng(world.seed, day, f"linkedin:posts:{org_id}")
    count = int(r.random() * 3) if day.weekday() < 5 else int(r.random() < 0.15)
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    posts = []
    for k in range(count):
        impressions = int(reach * (0.4 + r.random()))
        posts.append(LinkedInPost(
            urn=f"urn:li:share:{7_000_000_000 + day.toordinal() * 10 + k}{org_id[-2:]}",
            created_ms=midnight + int((8 + 9 * r.random()) * 3_600_000),
            impressions=impressions, unique_impressions=int(impressions * (0.6 + 0.2 * r.random())),
            clicks=int(impressions * 0.015 * r.random()), likes=int(impressions * 0.02 * r.random()),
            comments=int(impressions * 0.003 * r.random()), shares=int(impressions * 0.002 * r.random())))
    return posts
