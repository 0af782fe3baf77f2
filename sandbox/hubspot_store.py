"""The HubSpot CRM state the sandbox server serves: records per object type, derived from the world.

Why a separate store: the HTTP layer (auth, rate limits, wire shapes) and the CRM semantics (property
types, search filters, the 10,000-result cap, archiving) are tested for different reasons, and tests
mutate the CRM directly (``touch``/``archive``/``create_contacts``) to exercise incremental reads.

What is in it, beyond ``World.hubspot_contacts_created`` / ``nps_responses`` over ``HISTORY_DAYS``:

* one bulk import of ``BULK_IMPORT_SIZE`` subscribers whose ``createdate`` and ``lastmodifieddate`` are the
  same millisecond (``CrmStore.bulk_import_ms``): more than a search can page through (10,000), so a
  connector must split such a window by ``hs_object_id``;
* ``ARCHIVED_CONTACTS`` deleted test/spam contacts (only listed with ``archived=true``, never searched);
* companies (some contacts and their deals are associated with one), a few archived;
* a second deal pipeline whose stage ids are numbers and whose labels mislead on purpose, with wholesale
  deals associated with companies only: won stages are ``isClosed == "true"`` and ``probability == "1.0"``;
* feedback submissions (NPS) tied to customer contacts through ``hs_contact_id``.

Every property value is a string (or null when unset), as HubSpot sends them: datetimes as
``2026-03-01T10:15:30.123Z``, dates as ``2026-03-01``, booleans as ``"true"``/``"false"``.
The world-derived base is cached per (seed, today); each store gets its own mutable copy. Where
``SANDBOX_PORTAL_CACHE`` names a folder (the test session's, tests/conftest.py), the base is also kept there as a
pickle, so other processes over the same (seed, today) load it (~0.04 CPU-s) instead of building it (~1 CPU-s).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import pickle
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox import world as world_module
from sandbox.world import World, _paris_ms, seeded_rng

HISTORY_DAYS = 400
BULK_IMPORT_SIZE = 10_250
BULK_IMPORT_DAYS_AGO = 200
ARCHIVED_CONTACTS = 137
N_COMPANIES = 240
N_WHOLESALE_DEALS = 40
SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_LIMIT = 200
LIST_MAX_LIMIT = 100
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS_TOTAL = 18

# Id ranges: world contacts are ``day.toordinal() * 1000 + i`` (about 7.4e8), world deals append a digit.
_BULK_ID_BASE = 2_000_000_000
_ARCHIVED_ID_BASE = 2_100_000_000
_COMPANY_ID_BASE = 1_100_000_000
_WHOLESALE_DEAL_ID_BASE = 1_200_000_000
_OWNER_ID_BASE = 52_550_100

OBJECT_TYPES = ("contacts", "companies", "deals", "feedback_submissions")
# HubSpot accepts singular names and object type ids wherever an object type goes in a path.
OBJECT_TYPE_ALIASES = {
    "contacts": "contacts", "contact": "contacts", "0-1": "contacts",
    "companies": "companies", "company": "companies", "0-2": "companies",
    "deals": "deals", "deal": "deals", "0-3": "deals",
    "feedback_submissions": "feedback_submissions", "feedback_submission": "feedback_submissions",
    "0-19": "feedback_submissions",
}
CREATED_PROPERTY = {"contacts": "createdate", "companies": "createdate", "deals": "createdate",
                    "feedback_submissions": "hs_createdate"}
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
                     "deals": "hs_lastmodifieddate", "feedback_submissions": "hs_lastmodifieddate"}
# What a list or search returns when the caller names no properties.
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"),
    "feedback_submissions": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}
# HUBSPOT_DEFINED association type ids (v4) and v3 type names, per (from, to).
ASSOCIATION_TYPES: dict[tuple[str, str], tuple[int, str]] = {
    ("contacts", "companies"): (1, "contact_to_company"),
    ("companies", "contacts"): (2, "company_to_contact"),
    ("deals", "contacts"): (3, "deal_to_contact"),
    ("contacts", "deals"): (4, "contact_to_deal"),
    ("deals", "companies"): (5, "deal_to_company"),
    ("companies", "deals"): (6, "company_to_deal"),
}
HS_ANALYTICS_SOURCES = ("ORGANIC_SEARCH", "PAID_SEARCH", "DIRECT_TRAFFIC", "EMAIL_MARKETING", "SOCIAL_MEDIA",
                        "REFERRALS", "OTHER_CAMPAIGNS", "OFFLINE", "PAID_SOCIAL", "AI_REFERRALS")
LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
                    "customer", "evangelist", "other")
_DEF_TS = "2020-06-30T15:57:35.905Z"  # createdAt/updatedAt of HubSpot-defined definitions
_CITIES = ("Paris", "Lyon", "Marseille", "Bordeaux", "Lille", "Nantes", "Toulouse", "Strasbourg", "Rennes")
_COMPANY_WORDS = ("Atelier", "Maison", "Bistrot", "Hôtel", "Gîte", "Café", "Boutique", "Comptoir")
_COMPANY_NAMES = ("du Port", "des Lilas", "Saint-Jean", "du Marché", "des Arts", "Bellevue", "du Lac",
                  "des Halles", "Montmartre", "du Vieux Pont")


# ---- time formatting --------------------------------------------------------------------------------


_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def iso_ms(ms: int) -> str:
    """HubSpot's datetime rendering: UTC with exactly three fraction digits and ``Z``."""
    secs, milli = divmod(int(ms), 1000)
    dt = _EPOCH_UTC + timedelta(seconds=secs)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{milli:03d}Z"


def date_str(ms: int) -> str:
    """A ``date`` property value: HubSpot stores dates as midnight UTC and renders ``YYYY-MM-DD``."""
    return (_EPOCH_UTC + timedelta(milliseconds=int(ms))).date().isoformat()


def parse_time_ms(value: Any) -> int | None:
    """Epoch ms from what HubSpot accepts in filters and stores: ms digits, ISO datetime or ISO date."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return int((datetime(d.year, d.month, d.day, tzinfo=UTC) - _EPOCH_UTC).total_seconds()) * 1000
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH_UTC
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _num(amount: float) -> str:
    """A number property value as HubSpot echoes it: ``"500"``, ``"87.5"`` (no trailing zeros)."""
    text = f"{amount:.2f}".rstrip("0").rstrip(".")
    return text or "0"


# ---- property definitions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: str  # string, number, date, datetime, enumeration, bool
    field_type: str
    group: str
    options: tuple[str, ...] = ()
    hubspot_defined: bool = True
    calculated: bool = False

    def as_json(self, order: int) -> dict[str, Any]:
        opts: list[dict[str, Any]] = []
        if self.type == "bool":
            opts = [{"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                    {"label": "No", "value": "false", "displayOrder": 1, "hidden": False}]
        elif self.options:
            opts = [{"label": o.replace("_", " ").title(), "value": o, "description": "", "displayOrder": i,
                     "hidden": False} for i, o in enumerate(self.options)]
        return {
            "updatedAt": _DEF_TS, "createdAt": _DEF_TS, "name": self.name, "label": self.label,
            "type": self.type, "fieldType": self.field_type, "description": "", "groupName": self.group,
            "options": opts, "displayOrder": order, "calculated": self.calculated, "externalOptions": False,
            "hasUniqueValue": False, "hidden": False, "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {"archivable": not self.hubspot_defined, "readOnlyDefinition": self.hubspot_defined,
                                     "readOnlyValue": self.calculated},
            "formField": not self.hubspot_defined, "dataSensitivity": "non_sensitive", "archived": False,
        }


def _p(name: str, label: str, type_: str, field_type: str, group: str, options: Sequence[str] = (),
       *, custom: bool = False, calculated: bool = False) -> PropertyDef:
    return PropertyDef(name, label, type_, field_type, group, tuple(options), not custom, calculated)


_OWNER_IDS = tuple(str(_OWNER_ID_BASE + k) for k in range(1, 6))
PROPERTY_DEFS: dict[str, dict[str, PropertyDef]] = {
    "contacts": {d.name: d for d in (
        _p("email", "Email", "string", "text", "contactinformation"),
        _p("firstname", "First Name", "string", "text", "contactinformation"),
        _p("lastname", "Last Name", "string", "text", "contactinformation"),
        _p("createdate", "Create Date", "datetime", "date", "contactinformation"),
        _p("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", calculated=True),
        _p("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation", LIFECYCLE_STAGES),
        _p("hs_lifecyclestage_lead_date", "Became a Lead Date", "datetime", "date", "contactinformation"),
        _p("hs_lifecyclestage_customer_date", "Became a Customer Date", "datetime", "date",
           "contactinformation"),
        _p("hs_analytics_source", "Original Traffic Source", "enumeration", "select", "analyticsinformation",
           HS_ANALYTICS_SOURCES),
        _p("hs_analytics_source_data_1", "Original Traffic Source Drill-Down 1", "string", "text",
           "analyticsinformation"),
        _p("associatedcompanyid", "Primary Associated Company ID", "number", "number", "contactinformation"),
        _p("hubspot_owner_id", "Contact owner", "enumeration", "select", "contactinformation", _OWNER_IDS),
        _p("churn_date", "Churn date", "date", "date", "contactinformation", custom=True),
        _p("newsletter_optin", "Newsletter opt-in", "bool", "booleancheckbox", "contactinformation",
           custom=True),
        _p("hs_object_id", "Record ID", "number", "number", "contactinformation", calculated=True),
    )},
    "companies": {d.name: d for d in (
        _p("name", "Company name", "string", "text", "companyinformation"),
        _p("domain", "Company Domain Name", "string", "text", "companyinformation"),
        _p("city", "City", "string", "text", "companyinformation"),
        _p("numberofemployees", "Number of Employees", "number", "number", "companyinformation"),
        _p("createdate", "Create Date", "datetime", "date", "companyinformation"),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "companyinformation",
           calculated=True),
        _p("hs_object_id", "Record ID", "number", "number", "companyinformation", calculated=True),
    )},
    "deals": {d.name: d for d in (
        _p("dealname", "Deal Name", "string", "text", "dealinformation"),
        _p("amount", "Amount", "number", "number", "dealinformation"),
        _p("deal_currency_code", "Currency", "enumeration", "select", "dealinformation", ("EUR",)),
        _p("pipeline", "Pipeline", "enumeration", "select", "dealinformation", ("default", "7788990")),
        _p("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation",
           ("appointmentscheduled", "qualifiedtobuy", "contractsent", "closedwon", "closedlost",
            "7788991", "7788992", "7788993", "7788994")),
        _p("closedate", "Close Date", "datetime", "date", "dealinformation"),
        _p("createdate", "Create Date", "datetime", "date", "dealinformation"),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "dealinformation", calculated=True),
        _p("hubspot_owner_id", "Deal owner", "enumeration", "select", "dealinformation", _OWNER_IDS),
        _p("hs_object_id", "Record ID", "number", "number", "dealinformation", calculated=True),
    )},
    "feedback_submissions": {d.name: d for d in (
        _p("hs_survey_type", "Survey type", "enumeration", "select", "feedbacksubmissioninformation",
           ("NPS", "CES", "CSAT", "CUSTOM")),
        _p("hs_survey_id", "Survey id", "number", "number", "feedbacksubmissioninformation"),
        _p("hs_survey_name", "Survey name", "string", "text", "feedbacksubmissioninformation"),
        _p("hs_value", "Response value", "number", "number", "feedbacksubmissioninformation"),
        _p("hs_submission_timestamp", "Submitted at", "datetime", "date", "feedbacksubmissioninformation"),
        _p("hs_contact_id", "Contact ID", "number", "number", "feedbacksubmissioninformation"),
        _p("hs_createdate", "Object create date/time", "datetime", "date", "feedbacksubmissioninformation"),
        _p("hs_lastmodifieddate", "Object last modified date/time", "datetime", "date",
           "feedbacksubmissioninformation", calculated=True),
        _p("hs_object_id", "Record ID", "number", "number", "feedbacksubmissioninformation", calculated=True),
    )},
}

# Deal pipelines. Labels mislead on purpose: only metadata tells a won stage (closed, probability 1.0).
PIPELINES: tuple[dict[str, Any], ...] = (
    {"id": "default", "label": "Ventes en ligne", "displayOrder": 0, "stages": (
        ("appointmentscheduled", "Panier enregistré", False, "0.2"),
        ("qualifiedtobuy", "Devis envoyé", False, "0.4"),
        ("contractsent", "Paiement en attente", False, "0.9"),
        ("closedwon", "Signed 🎉", True, "1.0"),
        ("closedlost", "Closed lost", True, "0.0"),
    )},
    {"id": "7788990", "label": "Wholesale", "displayOrder": 1, "stages": (
        ("7788991", "Prospect", False, "0.1"),
        ("7788992", "Closed won - awaiting payment", False, "0.9"),  # not closed, despite the label
        ("7788993", "Livré ✅", True, "1.0"),
        ("7788994", "Won't order", True, "0.0"),
    )},
)
WON_STAGES = frozenset({("default", "closedwon"), ("7788990", "7788993")})


# ---- records ----------------------------------------------------------------------------------------


@dataclass
class CrmRecord:
    """One CRM object. ``properties`` hold strings or None; typed values are parsed lazily for filters."""

    id: str
    id_int: int
    properties: dict[str, str | None]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None
    _typed: dict[str, Any] = field(default_factory=dict, repr=False)

    def typed(self, prop: PropertyDef) -> Any:
        """The value as the search compares it: ms for dates/datetimes, float for numbers, folded text."""
        try:
            return self._typed[prop.name]
        except KeyError:
            pass
        value = coerce(prop, self.properties.get(prop.name))
        self._typed[prop.name] = value
        return value

    def set(self, name: str, value: str | None) -> None:
        self.properties[name] = value
        self._typed.pop(name, None)


def coerce(prop: PropertyDef, value: Any) -> Any:
    """Turn a stored or filter value into a comparable one for the property's type; None when unset/invalid."""
    if value is None or value == "":
        return None
    if prop.type in ("datetime", "date"):
        return parse_time_ms(value)
    if prop.type == "number":
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if prop.type == "bool":
        return str(value).strip().lower()
    return str(value).casefold()


@dataclass
class _Base:
    """The immutable world-derived CRM, shared by every store built for the same (seed, today)."""

    records: dict[str, list[tuple[str, dict[str, str | None], int, int, bool, int | None]]]
    associations: dict[tuple[str, str], dict[str, list[str]]]
    bulk_import_ms: int
    end_of_today_ms: int


_BASE_CACHE: dict[tuple[int, str, int, int], _Base] = {}
_BASE_LOCK = threading.Lock()
# A folder shared by the processes of one test session (tests/conftest.py sets it); unset, nothing is written.
PORTAL_CACHE_ENV = "SANDBOX_PORTAL_CACHE"


def _build_base(world: World, history_days: int = HISTORY_DAYS, bulk_import_size: int = BULK_IMPORT_SIZE) -> _Base:
    key = (world.seed, world.today.isoformat(), history_days, bulk_import_size)
    with _BASE_LOCK:
        cached = _BASE_CACHE.get(key)
        if cached is None:
            cached = _BASE_CACHE[key] = _shared_base(world, history_days, bulk_import_size)
        return cached


def _code_digest() -> str:
    """What the base is computed by besides its key: this module, the world's and the interpreter (its ``random``)."""
    digest = hashlib.blake2b(sys.version.encode(), digest_size=8)
    for source in (str(world_module.__file__), __file__):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()


# the code this process runs (read when imported: an edit to the files afterwards is not this process's code)
_CODE_DIGEST = _code_digest()


def _shared_base(world: World, history_days: int, bulk_import_size: int) -> _Base:
    """The base from the session's folder when another process built it already, else built (and left there).

    A pickle of the very objects ``_compute_base`` returns, named by everything they depend on (the key, the code
    that computes them). One process builds it while the others asking for it wait on a lock file (test workers
    start their HubSpot files at the same moment: without it each built its own), and it is written under a
    temporary name and renamed, so a reader sees a whole file or none. No folder set: built, nothing written.
    """
    folder = os.environ.get(PORTAL_CACHE_ENV)
    if not folder:
        return _compute_base(world, history_days, bulk_import_size)
    import fcntl  # POSIX, as the test sessions that set the folder are; importing this module does not need it

    path = Path(folder) / (f"hubspot-portal-{_CODE_DIGEST}-{world.seed}-{world.today.isoformat()}-"
                           f"{history_days}-{bulk_import_size}.pickle")
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            with path.open("rb") as file:
                loaded: _Base = pickle.load(file)  # written by this function, in the session's own folder
                return loaded
        except FileNotFoundError:
            pass
        base = _compute_base(world, history_days, bulk_import_size)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        with partial.open("wb") as file:
            pickle.dump(base, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)
        return base


def _compute_base(world: World, history_days: int, bulk_import_size: int) -> _Base:
    today = world.today
    end_of_today = _paris_ms(today, 86_400) - 1
    first_day = today - timedelta(days=history_days - 1)
    recs: dict[str, list[tuple[str, dict[str, str | None], int, int, bool, int | None]]] = {
        t: [] for t in OBJECT_TYPES}
    assoc: dict[tuple[str, str], dict[str, list[str]]] = {k: {} for k in ASSOCIATION_TYPES}

    def link(a_type: str, a_id: str, b_type: str, b_id: str) -> None:
        assoc[(a_type, b_type)].setdefault(a_id, []).append(b_id)
        assoc[(b_type, a_type)].setdefault(b_id, []).append(a_id)

    # Companies, spread over the history (some of them older than the first contact).
    companies: list[tuple[str, int]] = []
    for k in range(N_COMPANIES):
        r = seeded_rng(world.seed, "hubspot", f"company:{k}")
        u = [r.random() for _ in range(6)]
        cid = str(_COMPANY_ID_BASE + k + 1)
        created = _paris_ms(today - timedelta(days=int(20 + u[0] * (history_days + 40))), 8 * 3600 + u[1] * 36_000)
        modified = min(end_of_today, created + int(u[2] * 90 * 86_400_000))
        name = f"{_COMPANY_WORDS[int(u[3] * len(_COMPANY_WORDS))]} {_COMPANY_NAMES[int(u[4] * len(_COMPANY_NAMES))]}"
        slug = name.lower().replace(" ", "-").replace("ô", "o").replace("î", "i").replace("é", "e")
        props: dict[str, str | None] = {
            "name": f"{name} {k + 1}", "domain": f"{slug}-{k + 1}.example", "city": _CITIES[int(u[5] * len(_CITIES))],
            "numberofemployees": str(2 + int(u[5] * 40)), "createdate": iso_ms(created),
            "hs_lastmodifieddate": iso_ms(modified), "hs_object_id": cid,
        }
        archived = k % 60 == 59  # a few merged-away companies
        recs["companies"].append((cid, props, created, modified, archived, modified + 3_600_000 if archived else None))
        if not archived:
            companies.append((cid, created))

    # World contacts and their deals.
    customers: list[tuple[int, str]] = []  # (customer_ms, contact id) for feedback submissions
    staff: dict[str, list[tuple[int, str]]] = {}  # company id -> (createdate ms, contact id) of its contacts
    company_deals: list[tuple[str, str | None, str, int]] = []  # (deal id, buyer, company id, deal createdate ms)
    for offset in range(history_days):
        day = first_day + timedelta(days=offset)
        for c in world.hubspot_contacts_created(day):
            r = seeded_rng(world.seed, day, f"hubspot:sandbox:{c.id}")
            u = [r.random() for _ in range(6)]
            modified = c.lastmodifieddate_ms
            churn: str | None = None
            if c.customer_date_ms is not None:
                customers.append((c.customer_date_ms, c.id))
                if u[0] < 0.18:
                    churn_ms = c.customer_date_ms + int((30 + u[1] * 330) * 86_400_000)
                    if churn_ms <= end_of_today:
                        churn = date_str(churn_ms)
                        modified = max(modified, min(end_of_today, churn_ms + 60_000))
            owner = _OWNER_IDS[int(u[2] * len(_OWNER_IDS))]
            company_id: str | None = None
            if u[3] < 0.08 and companies:
                eligible = [cid for cid, created in companies if created <= c.createdate_ms] or [companies[0][0]]
                company_id = eligible[int(u[4] * len(eligible))]
            props = {
                "email": c.email, "firstname": c.firstname, "lastname": c.lastname,
                "createdate": iso_ms(c.createdate_ms), "lastmodifieddate": iso_ms(modified),
                "lifecyclestage": c.lifecyclestage,
                "hs_lifecyclestage_lead_date": iso_ms(c.lead_date_ms) if c.lead_date_ms is not None else None,
                "hs_lifecyclestage_customer_date": (iso_ms(c.customer_date_ms)
                                                    if c.customer_date_ms is not None else None),
                "hs_analytics_source": c.hs_analytics_source,
                "hs_analytics_source_data_1": "shop.example" if c.hs_analytics_source != "OFFLINE" else "CRM_UI",
                "associatedcompanyid": company_id, "hubspot_owner_id": owner if c.lifecyclestage != "subscriber"
                else None,
                "churn_date": churn, "newsletter_optin": "true" if u[5] < 0.7 else "false", "hs_object_id": c.id,
            }
            recs["contacts"].append((c.id, props, c.createdate_ms, modified, False, None))
            if company_id is not None:
                link("contacts", c.id, "companies", company_id)
                staff.setdefault(company_id, []).append((c.createdate_ms, c.id))
            for d in c.deals:
                d_modified = min(end_of_today, max(d.createdate_ms, d.closedate_ms or 0) + 60_000)
                dprops: dict[str, str | None] = {
                    "dealname": d.dealname, "amount": _num(d.amount), "deal_currency_code": "EUR",
                    "pipeline": d.pipeline, "dealstage": d.dealstage,
                    "closedate": iso_ms(d.closedate_ms) if d.closedate_ms is not None else None,
                    "createdate": iso_ms(d.createdate_ms), "hs_lastmodifieddate": iso_ms(d_modified),
                    "hubspot_owner_id": owner, "hs_object_id": d.id,
                }
                recs["deals"].append((d.id, dprops, d.createdate_ms, d_modified, False, None))
                link("deals", d.id, "contacts", c.id)
                if company_id is not None:
                    link("deals", d.id, "companies", company_id)
                    company_deals.append((d.id, c.id, company_id, d.createdate_ms))

    # Wholesale deals: companies only, in the pipeline whose labels mislead.
    for k in range(N_WHOLESALE_DEALS):
        r = seeded_rng(world.seed, "hubspot", f"wholesale:{k}")
        u = [r.random() for _ in range(5)]
        did = str(_WHOLESALE_DEAL_ID_BASE + k + 1)
        company_id, company_created = companies[int(u[0] * len(companies))]
        created = max(company_created, _paris_ms(today - timedelta(days=int(u[1] * 300)), 9 * 3600 + u[2] * 30_000))
        created = min(created, end_of_today - 3_600_000)
        stage = ("7788991", "7788992", "7788993", "7788994")[int(u[3] * 4)]
        closed = stage in ("7788993", "7788994")
        close_ms = min(end_of_today - 60_000, created + int((2 + u[4] * 20) * 86_400_000)) if closed else None
        d_modified = min(end_of_today, (close_ms or created) + 60_000)
        dprops = {
            "dealname": f"Commande pro {k + 1}", "amount": _num(400 + u[4] * 3_600), "deal_currency_code": "EUR",
            "pipeline": "7788990", "dealstage": stage, "closedate": iso_ms(close_ms) if close_ms else None,
            "createdate": iso_ms(created), "hs_lastmodifieddate": iso_ms(d_modified),
            "hubspot_owner_id": _OWNER_IDS[k % len(_OWNER_IDS)], "hs_object_id": did,
        }
        recs["deals"].append((did, dprops, created, d_modified, False, None))
        link("deals", did, "companies", company_id)
        company_deals.append((did, None, company_id, created))

    # A company's deal involves several of its people: the buyer and one to three colleagues who were contacts
    # by the time the deal was opened (HubSpot allows many contacts per deal; v4 associations list them all).
    for did, buyer, company_id, deal_created in company_deals:
        r = seeded_rng(world.seed, "hubspot", f"colleagues:{did}")
        people = [cid for created, cid in sorted(staff.get(company_id, [])) if cid != buyer and created <= deal_created]
        for cid in r.sample(people, min(len(people), 1 + int(r.random() * 3))):
            link("deals", did, "contacts", cid)

    # The bulk import: one millisecond for all of it, as a CSV import stamps every row.
    import_day = today - timedelta(days=BULK_IMPORT_DAYS_AGO)
    bulk_ms = _paris_ms(import_day, 14 * 3600 + 3 * 60 + 7.123)
    bulk_iso = iso_ms(bulk_ms)
    for k in range(bulk_import_size):
        cid = str(_BULK_ID_BASE + k + 1)
        props = {
            "email": f"import.{k + 1}@newsletter.example", "firstname": None, "lastname": None,
            "createdate": bulk_iso, "lastmodifieddate": bulk_iso, "lifecyclestage": "subscriber",
            "hs_lifecyclestage_lead_date": None, "hs_lifecyclestage_customer_date": None,
            "hs_analytics_source": "OFFLINE", "hs_analytics_source_data_1": "IMPORT",
            "associatedcompanyid": None, "hubspot_owner_id": None, "churn_date": None,
            "newsletter_optin": "true", "hs_object_id": cid,
        }
        recs["contacts"].append((cid, props, bulk_ms, bulk_ms, False, None))

    # Deleted test and spam contacts: only ``archived=true`` lists them.
    for k in range(ARCHIVED_CONTACTS):
        r = seeded_rng(world.seed, "hubspot", f"archived:{k}")
        u = [r.random() for _ in range(3)]
        cid = str(_ARCHIVED_ID_BASE + k + 1)
        created = _paris_ms(today - timedelta(days=int(5 + u[0] * (history_days - 10))), 3600 * (6 + 14 * u[1]))
        archived_at = min(end_of_today, created + int((1 + u[2] * 4) * 86_400_000))
        props = {
            "email": f"test{k + 1}@spam.example", "firstname": "Test", "lastname": f"Spam {k + 1}",
            "createdate": iso_ms(created), "lastmodifieddate": iso_ms(archived_at), "lifecyclestage": "other",
            "hs_lifecyclestage_lead_date": None, "hs_lifecyclestage_customer_date": None,
            "hs_analytics_source": "DIRECT_TRAFFIC", "hs_analytics_source_data_1": None,
            "associatedcompanyid": None, "hubspot_owner_id": None, "churn_date": None,
            "newsletter_optin": "false", "hs_object_id": cid,
        }
        recs["contacts"].append((cid, props, created, archived_at, True, archived_at))

    # NPS answers, from a customer who became one before answering (none yet: no contact).
    customers.sort()
    for offset in range(history_days):
        day = first_day + timedelta(days=offset)
        for i, nps in enumerate(world.nps_responses(day)):
            fid = str(day.toordinal() * 100 + i)
            known = bisect.bisect_right(customers, (nps.submitted_at_ms, "~"))
            r = seeded_rng(world.seed, day, f"hubspot:nps:{nps.id}")
            contact = customers[int(r.random() * known)][1] if known else None
            props = {
                "hs_survey_type": "NPS", "hs_survey_id": "4242", "hs_survey_name": "NPS après achat",
                "hs_value": str(nps.score), "hs_submission_timestamp": iso_ms(nps.submitted_at_ms),
                "hs_contact_id": contact, "hs_createdate": iso_ms(nps.submitted_at_ms),
                "hs_lastmodifieddate": iso_ms(nps.submitted_at_ms), "hs_object_id": fid,
            }
            recs["feedback_submissions"].append((fid, props, nps.submitted_at_ms, nps.submitted_at_ms, False, None))

    for rows in recs.values():
        rows.sort(key=lambda row: int(row[0]))
    return _Base(recs, assoc, bulk_ms, end_of_today)


# ---- search -----------------------------------------------------------------------------------------


class CrmError(Exception):
    """An API error the HTTP layer renders in HubSpot's envelope."""

    def __init__(self, status: int, message: str, category: str = "VALIDATION_ERROR") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category


_RANGE_OPS = frozenset({"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN"})
_OPERATORS = frozenset({"EQ", "NEQ", "GT", "GTE", "LT", "LTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
                        "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"})


@dataclass(frozen=True)
class _Filter:
    prop: PropertyDef
    op: str
    value: Any
    high: Any
    values: tuple[Any, ...]
    token: str

    def matches(self, rec: CrmRecord) -> bool:
        v = rec.typed(self.prop)
        op = self.op
        if op == "HAS_PROPERTY":
            return v is not None
        if op == "NOT_HAS_PROPERTY":
            return v is None
        if op == "NEQ":
            return v != self.value
        if op == "NOT_IN":
            return v not in self.values
        if op == "NOT_CONTAINS_TOKEN":
            return v is None or self.token not in str(v)
        if v is None:
            return False
        if op == "EQ":
            return bool(v == self.value)
        if op == "IN":
            return v in self.values
        if op == "CONTAINS_TOKEN":
            return self.token in str(v)
        try:
            if op == "GT":
                return bool(v > self.value)
            if op == "GTE":
                return bool(v >= self.value)
            if op == "LT":
                return bool(v < self.value)
            if op == "LTE":
                return bool(v <= self.value)
            return bool(self.value <= v <= self.high)  # BETWEEN, inclusive at both ends
        except TypeError:
            return False

    def bounds(self) -> tuple[Any, Any, bool, bool] | None:
        """(low, high, low_inclusive, high_inclusive) for range operators, to narrow with bisect."""
        op = self.op
        if op == "EQ":
            return (self.value, self.value, True, True)
        if op == "GT":
            return (self.value, None, False, True)
        if op == "GTE":
            return (self.value, None, True, True)
        if op == "LT":
            return (None, self.value, True, False)
        if op == "LTE":
            return (None, self.value, True, True)
        if op == "BETWEEN":
            return (self.value, self.high, True, True)
        return None


@dataclass
class SearchPage:
    total: int
    records: list[CrmRecord]
    next_after: str | None


# ---- the store --------------------------------------------------------------------------------------


class _Table:
    """Records of one object type, with id-sorted and (modified, id)-sorted indexes of live records."""

    def __init__(self, object_type: str) -> None:
        self.object_type = object_type
        self.records: dict[str, CrmRecord] = {}
        self.live_ids: list[int] = []
        self.archived_ids: list[int] = []
        self.by_modified: list[tuple[int, int]] = []

    def rebuild(self) -> None:
        live = [r for r in self.records.values() if not r.archived]
        self.live_ids = sorted(r.id_int for r in live)
        self.archived_ids = sorted(r.id_int for r in self.records.values() if r.archived)
        self.by_modified = sorted((r.updated_ms, r.id_int) for r in live)


class CrmStore:
    """In-memory HubSpot CRM for one server. Thread-safe; every mutation bumps ``version``."""

    def __init__(self, world: World, *, history_days: int = HISTORY_DAYS, bulk_import_size: int = BULK_IMPORT_SIZE
                 ) -> None:
        """``history_days`` and ``bulk_import_size`` shrink the portal (the default is ~20,000 contacts, about 20 s
        to list): a test that loads it many times, such as the chaos battery, uses a small one."""
        base = _build_base(world, history_days, bulk_import_size)
        self.world = world
        self.bulk_import_ms = base.bulk_import_ms
        self.end_of_today_ms = base.end_of_today_ms
        self.lock = threading.RLock()
        self.version = 0
        self.tables: dict[str, _Table] = {t: _Table(t) for t in OBJECT_TYPES}
        for object_type, rows in base.records.items():
            table = self.tables[object_type]
            for rid, props, created, updated, archived, archived_ms in rows:
                table.records[rid] = CrmRecord(rid, int(rid), dict(props), created, updated, archived, archived_ms)
            table.rebuild()
        self.associations: dict[tuple[str, str], dict[str, list[str]]] = {
            k: {a: list(b) for a, b in v.items()} for k, v in base.associations.items()}
        self._search_cache: OrderedDict[tuple[str, int, str], list[CrmRecord]] = OrderedDict()

    # ---- reads ---------------------------------------------------------------------------------------

    def table(self, object_type: str) -> _Table:
        canonical = OBJECT_TYPE_ALIASES.get(object_type)
        if canonical is None:
            raise CrmError(400, f"Unable to infer object type from: {object_type}", "VALIDATION_ERROR")
        return self.tables[canonical]

    def counts(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {t: {"live": len(tb.live_ids), "archived": len(tb.archived_ids)} for t, tb in self.tables.items()}

    def list_page(self, object_type: str, after: int, limit: int, archived: bool) -> tuple[list[CrmRecord], int | None]:
        """One page sorted by id starting at id ``after``; the second value is the next page's first id."""
        with self.lock:
            table = self.table(object_type)
            ids = table.archived_ids if archived else table.live_ids
            start = bisect.bisect_left(ids, after)
            chunk = ids[start:start + limit + 1]
            records = [table.records[str(i)] for i in chunk[:limit]]
            return records, (chunk[limit] if len(chunk) > limit else None)

    def get(self, object_type: str, object_id: str, archived: bool = False) -> CrmRecord | None:
        with self.lock:
            rec = self.table(object_type).records.get(str(object_id))
            if rec is None or rec.archived != archived:
                return None
            return rec

    def associated(self, from_type: str, to_type: str, object_id: str) -> list[str]:
        """Ids of live ``to_type`` records associated with one record, sorted numerically."""
        with self.lock:
            ids = self.associations.get((from_type, to_type), {}).get(str(object_id), [])
            to_table = self.tables[to_type]
            return sorted({i for i in ids if (r := to_table.records.get(i)) is not None and not r.archived}, key=int)

    def search(self, object_type: str, body: dict[str, Any]) -> SearchPage:
        """HubSpot's CRM search: OR of filter groups, AND within one, one sort, 10,000-result cap."""
        table = self.table(object_type)
        object_type = table.object_type
        defs = PROPERTY_DEFS[object_type]
        limit = _int_field(body.get("limit"), "limit", 10)
        if limit < 0 or limit > SEARCH_MAX_LIMIT:
            raise CrmError(400, f"Invalid input: limit must be between 0 and {SEARCH_MAX_LIMIT}, got {limit}.")
        after = _int_field(body.get("after"), "after", 0)
        if after < 0:
            raise CrmError(400, "Invalid input: after must be a non-negative integer.")
        if after + limit > SEARCH_RESULT_CAP:
            # HubSpot answers paging past 10,000 results this way, whatever the data.
            raise CrmError(400, "There was a problem with the request.", "VALIDATION_ERROR")
        groups = self._parse_groups(body.get("filterGroups") or [], defs)
        sort_prop, descending = self._parse_sorts(body.get("sorts") or [], defs)
        query = str(body.get("query") or "").casefold().strip()
        key = json.dumps([body.get("filterGroups") or [], body.get("sorts") or [], query], sort_keys=True,
                         default=str)
        with self.lock:
            cache_key = (object_type, self.version, key)
            matches = self._search_cache.get(cache_key)
            if matches is None:
                matches = self._match(table, groups, query)
                matches = self._sort(matches, defs, sort_prop, descending)
                self._search_cache[cache_key] = matches
                while len(self._search_cache) > 32:
                    self._search_cache.popitem(last=False)
            else:
                self._search_cache.move_to_end(cache_key)
        total = len(matches)
        page = matches[after:after + limit]
        end = after + len(page)
        next_after = str(end) if end < min(total, SEARCH_RESULT_CAP) and page else None
        return SearchPage(total, page, next_after)

    @staticmethod
    def _parse_groups(raw: Any, defs: dict[str, PropertyDef]) -> list[list[_Filter]]:
        if not isinstance(raw, list):
            raise CrmError(400, "Invalid input JSON: filterGroups must be a list.")
        if len(raw) > MAX_FILTER_GROUPS:
            raise CrmError(400, f"Too many filter groups: {len(raw)}; the maximum is {MAX_FILTER_GROUPS}.")
        groups: list[list[_Filter]] = []
        total = 0
        for group in raw:
            filters = (group or {}).get("filters") or [] if isinstance(group, dict) else None
            if filters is None:
                raise CrmError(400, "Invalid input JSON: each filter group must be an object with filters.")
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise CrmError(400, f"Too many filters in a group: {len(filters)}; the maximum is "
                                    f"{MAX_FILTERS_PER_GROUP}.")
            total += len(filters)
            parsed = []
            for f in filters:
                name = str(f.get("propertyName") or "")
                prop = defs.get(name)
                if prop is None:
                    raise CrmError(400, f"There was a problem with the request: property {name!r} does not exist.")
                op = str(f.get("operator") or "EQ").upper()
                if op not in _OPERATORS:
                    raise CrmError(400, f"Invalid input JSON: unknown filter operator {op!r}.")
                value = coerce(prop, f.get("value"))
                high = coerce(prop, f.get("highValue"))
                values = tuple(coerce(prop, v) for v in (f.get("values") or []))
                if op in _RANGE_OPS and value is None:
                    raise CrmError(400, f"Invalid filter value {f.get('value')!r} for {name} ({prop.type}).")
                if op == "BETWEEN" and high is None:
                    raise CrmError(400, f"BETWEEN on {name} needs a valid highValue.")
                token = str(f.get("value") or "").casefold().strip("*")
                parsed.append(_Filter(prop, op, value, high, values, token))
            groups.append(parsed)
        if total > MAX_FILTERS_TOTAL:
            raise CrmError(400, f"Too many filters: {total}; the maximum is {MAX_FILTERS_TOTAL}.")
        return groups

    @staticmethod
    def _parse_sorts(raw: Any, defs: dict[str, PropertyDef]) -> tuple[PropertyDef | None, bool]:
        if not isinstance(raw, list):
            raise CrmError(400, "Invalid input JSON: sorts must be a list.")
        if len(raw) > 1:
            raise CrmError(400, "There was a problem with the request: only one sort is allowed.")
        if not raw:
            return None, False
        s = raw[0]
        if isinstance(s, str):
            name, descending = (s[1:], True) if s.startswith("-") else (s, False)
        elif isinstance(s, dict):
            name = str(s.get("propertyName") or "")
            descending = str(s.get("direction") or "ASCENDING").upper() == "DESCENDING"
        else:
            raise CrmError(400, "Invalid input JSON: a sort is a property name or {propertyName, direction}.")
        prop = defs.get(name)
        if prop is None:
            raise CrmError(400, f"There was a problem with the request: cannot sort by unknown property {name!r}.")
        return prop, descending

    def _match(self, table: _Table, groups: list[list[_Filter]], query: str) -> list[CrmRecord]:
        modified_name = MODIFIED_PROPERTY[table.object_type]
        records = table.records
        if not groups:
            groups = [[]]
        seen: set[int] = set()
        out: list[CrmRecord] = []
        for group in groups:
            candidates = self._candidates(table, group, modified_name)
            for id_int in candidates:
                if id_int in seen:
                    continue
                rec = records[str(id_int)]
                if all(f.matches(rec) for f in group) and (not query or _query_hit(rec, query)):
                    seen.add(id_int)
                    out.append(rec)
        return out

    @staticmethod
    def _candidates(table: _Table, group: list[_Filter], modified_name: str) -> Iterable[int]:
        """Narrow with bisect on the modified-date or id index when the group has a range filter on it."""
        # The drain pattern (modified == t AND hs_object_id > n) bisects the (modified, id) index directly.
        eq_modified = next((f.value for f in group if f.prop.name == modified_name and f.op == "EQ"), None)
        id_bounds = [f.bounds() for f in group if f.prop.name == "hs_object_id" and f.op in _RANGE_OPS]
        if eq_modified is not None and id_bounds:
            idx = table.by_modified
            lo, hi = bisect.bisect_left(idx, (eq_modified, -1)), bisect.bisect_right(idx, (eq_modified, 1 << 62))
            for low, high, low_inc, high_inc in (b for b in id_bounds if b is not None):
                if low is not None:
                    key = (eq_modified, low)
                    lo = max(lo, bisect.bisect_left(idx, key) if low_inc else bisect.bisect_right(idx, key))
                if high is not None:
                    key = (eq_modified, high)
                    hi = min(hi, bisect.bisect_right(idx, key) if high_inc else bisect.bisect_left(idx, key))
            return [i for _, i in idx[lo:max(lo, hi)]]
        for f in group:
            b = f.bounds()
            if b is None:
                continue
            low, high, low_inc, high_inc = b
            if f.prop.name == modified_name:
                idx = table.by_modified
                lo = 0 if low is None else (bisect.bisect_left(idx, (low, -1)) if low_inc
                                            else bisect.bisect_right(idx, (low, 1 << 62)))
                hi = len(idx) if high is None else (bisect.bisect_right(idx, (high, 1 << 62)) if high_inc
                                                    else bisect.bisect_left(idx, (high, -1)))
                return [i for _, i in idx[lo:hi]]
            if f.prop.name == "hs_object_id":
                ids = table.live_ids
                lo = 0 if low is None else (bisect.bisect_left(ids, low) if low_inc else bisect.bisect_right(ids, low))
                hi = len(ids) if high is None else (bisect.bisect_right(ids, high) if high_inc
                                                    else bisect.bisect_left(ids, high))
                return ids[lo:hi]
        return table.live_ids

    @staticmethod
    def _sort(matches: list[CrmRecord], defs: dict[str, PropertyDef], prop: PropertyDef | None,
              descending: bool) -> list[CrmRecord]:
        """One sort key, ties by id ascending whatever the direction; records without a value go last."""
        matches.sort(key=lambda r: r.id_int)
        if prop is None:
            return matches
        present = [r for r in matches if r.typed(prop) is not None]
        missing = [r for r in matches if r.typed(prop) is None]
        present.sort(key=lambda r: r.typed(prop), reverse=descending)  # stable: ids stay ascending in ties
        return present + missing

    # ---- mutations -----------------------------------------------------------------------------------

    def _record_or_fail(self, table: _Table, rid: str) -> CrmRecord:
        rec = table.records.get(str(rid))
        if rec is None:
            raise KeyError(f"{table.object_type} {rid} does not exist")
        return rec

    def touch(self, object_type: str, ids: Iterable[str | int], at_ms: int,
              properties: dict[str, str | None] | None = None) -> None:
        """Modify records at ``at_ms``: set the modified-date property, ``updatedAt`` and any given properties."""
        with self.lock:
            table = self.table(object_type)
            modified_name = MODIFIED_PROPERTY[table.object_type]
            defs = PROPERTY_DEFS[table.object_type]
            for rid in ids:
                rec = self._record_or_fail(table, str(rid))
                for name, value in (properties or {}).items():
                    if name not in defs:
                        raise KeyError(f"unknown {table.object_type} property {name!r}")
                    rec.set(name, None if value is None else str(value))
                rec.set(modified_name, iso_ms(at_ms))
                rec.updated_ms = int(at_ms)
            table.rebuild()
            self.version += 1

    def archive(self, object_type: str, ids: Iterable[str | int], at_ms: int) -> None:
        """Archive (soft-delete) records: they leave lists and searches and appear with ``archived=true``."""
        with self.lock:
            table = self.table(object_type)
            for rid in ids:
                rec = self._record_or_fail(table, str(rid))
                rec.archived, rec.archived_ms, rec.updated_ms = True, int(at_ms), int(at_ms)
            table.rebuild()
            self.version += 1

    def create_contacts(self, n: int, at_ms: int, properties: dict[str, str | None] | None = None) -> list[str]:
        """Create ``n`` subscriber contacts at ``at_ms`` with ids above every existing one; returns their ids."""
        with self.lock:
            table = self.tables["contacts"]
            next_id = max(int(i) for i in table.records) + 1
            created: list[str] = []
            iso = iso_ms(at_ms)
            for k in range(n):
                cid = str(next_id + k)
                props: dict[str, str | None] = {
                    "email": f"new.{cid}@example.com", "firstname": None, "lastname": None, "createdate": iso,
                    "lastmodifieddate": iso, "lifecyclestage": "subscriber", "hs_lifecyclestage_lead_date": None,
                    "hs_lifecyclestage_customer_date": None, "hs_analytics_source": "DIRECT_TRAFFIC",
                    "hs_analytics_source_data_1": "API", "associatedcompanyid": None, "hubspot_owner_id": None,
                    "churn_date": None, "newsletter_optin": "false", "hs_object_id": cid,
                }
                props.update({k2: None if v is None else str(v) for k2, v in (properties or {}).items()})
                table.records[cid] = CrmRecord(cid, int(cid), props, int(at_ms), int(at_ms))
                created.append(cid)
            table.rebuild()
            self.version += 1
            return created


def _int_field(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise CrmError(400, f"Invalid input JSON: {name} must be an integer, got {value!r}.") from None


def _query_hit(rec: CrmRecord, query: str) -> bool:
    """The free-text ``query``: a case-insensitive substring of the record's main text properties."""
    for name in ("email", "firstname", "lastname", "name", "domain", "dealname"):
        value = rec.properties.get(name)
        if value and query in value.casefold():
            return True
    return False
