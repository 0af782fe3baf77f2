"""Objectives: per-KPI targets as data, and how each KPI stands against them (`kpi.kpi_vs_objective`).

Why: a KPI means little without its objective (KPI_CATALOGUE "Objectives"). The comparison has traps this
module owns once:
- additive KPIs are compared with the target pro-rated to the elapsed part of the period (and forecast to its end);
- ratios are a ratio of sums over the period so far, never pro-rated, and over every account of the source unless
  the objective names one (sum of numerators / sum of denominators, never an average of the accounts' ratios);
- lower-is-better KPIs invert attainment;
- a budget (BUDGET_KPIS: ad_cost) is off track when over- or under-spent beyond its tolerance;
- a flow ratio over a fixed base (FLOW_RATIOS: churn_rate) is judged on complete periods only;
- a ratio over a tiny denominator, a period or an account without data is `insufficient_data` with a gap text
  saying why, not a red light;
- a status resting on non-final days says so (`provisional`); Search Console days flagged `partial_day` are left
  out: the as-of day is the last day before the first incomplete one;
- the gap is written in the units a manager acts on (`gap_text`), never in column names.

File format (YAML, path from settings `objectives_path` / env MKPI_OBJECTIVES):

    objectives:
      - kpi: conversion_rate      # a catalogue KPI (unknown -> error)
        source: ga4               # required when the KPI has several sources (never blend GA4 and Matomo)
        account: "123456789"      # optional: one account of the source; omitted = all its accounts together
        channel: paid_search      # optional: omitted = all channels summed
        period: month             # month | quarter | year (native monthly KPIs: month only)
        target: 0.03
        tolerance: 0.05           # at_risk down to attainment 1 - tolerance (default 0.05)
        owner: growth team        # optional
        from: 2026-01-01          # optional validity; a standing objective recurs every period it overlaps
        until: 2026-12-31
        min_denominator: 500      # optional; default per KPI unit from settings.min_denominators

Reads kpi.kpi_daily (date, source, channel, account_id, kpi, numerator, denominator, value, currency, is_final,
quality) and, for native monthly KPIs, kpi.kpi_monthly (month_start, source, channel, account_id, kpi, currency,
numerator, denominator, is_final).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import yaml

from connectors import registry
from connectors.ducklake import conflict_retried
from connectors.errors import ConfigError
from connectors.ga4 import normalise_property_id
from connectors.google_ads import normalise_customer_id
from connectors.settings import CHANNELS, DEFAULT_MIN_DENOMINATORS, PROJECT_ROOT
from connectors.warehouse import replace_table, table_exists
from connectors.yaml_text import parsed_yaml
from kpi_models.catalogue import KPI_SCHEMA, Catalogue, KpiDefinition, load_catalogue
from kpi_models.formatting import format_value
from kpi_models.runner import name_types

PERIODS = ("month", "quarter", "year")
STATUSES = ("on_track", "at_risk", "off_track", "insufficient_data")
DEFAULT_TOLERANCE = 0.05
ALL_ACCOUNTS = "all"  # kpi_vs_objective.account_id of an objective over every account of its source

# Flow ratios over a fixed base: the numerator accumulates through the period while the denominator is fixed at its
# start (customers lost in the month / customers at its start), so a month-to-date value always looks better than
# the month will end. They are judged on complete periods only; the running period is insufficient_data with a gap
# text saying when it will be judged. Pro-rating the numerator instead was rejected: it assumes losses spread evenly,
# and one customer lost on day 3 would read as ten for the month. The one place that says which KPIs are flow ratios.
FLOW_RATIOS = frozenset({"churn_rate"})

# Budget KPIs: their target is an amount to spend, neither more nor less (KPI_CATALOGUE "Objectives"). Judged on the
# spend pace actual / target-to-date: on_track within the tolerance either way; overspend beyond it off_track;
# underspend beyond it at_risk, and off_track beyond twice the tolerance (campaigns stopped). The one place that
# says which KPIs are budgets.
BUDGET_KPIS = frozenset({"ad_cost"})

# KPI units whose values can be below zero: a score (NPS runs from -100 to 100, KPI_CATALOGUE "CRM and retention").
# Counts, rates, seconds, money and positions cannot, so a negative target there is a typo, refused.
SIGNED_UNITS = frozenset({"score"})

# The kpi_daily quality flag of a Search Console day at or after the answer's metadata.firstIncompleteDate
# ("All values after the first_incomplete_date may still change noticeably": googleapis discovery document
# searchconsole.v1.json, schema Metadata, in google-api-python-client's googleapiclient/discovery_cache/documents).
PARTIAL_DAY = "partial_day"

# How an account id is written in kpi.kpi_daily, per source: the connectors' own normalisers, so `123-456-7890`
# finds Google Ads customer 1234567890 and `properties/123` GA4 property 123.
_ACCOUNT_NORMALISERS: dict[str, Callable[[str], str]] = {
    "ga4": normalise_property_id,
    "google_ads": normalise_customer_id,
}


class ObjectiveError(ValueError):
    """The objectives file is invalid; the message names the file and the entry."""


class KpiLayoutError(RuntimeError):
    """kpi.kpi_daily was built by an older version (no accounts, no finality): the KPI layer must be rebuilt."""


@dataclass(frozen=True)
class Objective:
    """One target for one KPI (of one source, optionally one account and one channel) per period."""

    objective_id: str
    kpi: str
    source: str
    period: str
    target: float
    tolerance: float = DEFAULT_TOLERANCE
    channel: str | None = None
    owner: str | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    min_denominator: float | None = None
    account: str | None = None  # None = every account of the source, as a ratio of sums


# --- loading ---------------------------------------------------------------------------------------------------


def resolve_objectives_path(path: str | Path) -> Path:
    """A relative path is taken from the working directory, else from the project root (like `make` runs)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return PROJECT_ROOT / candidate


def _date(value: Any, where: str, key: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ObjectiveError(f"{where}: `{key}` {value!r} is not an ISO date (YYYY-MM-DD)") from exc


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ObjectiveError(f"{where}: `{key}` must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ObjectiveError(f"{where}: `{key}` must be a number, got {value!r}") from exc
    if math.isnan(number) or math.isinf(number):
        raise ObjectiveError(f"{where}: `{key}` must be a finite number")
    return number


def _account(value: Any, source: str, where: str) -> str | None:
    """The account id as kpi.kpi_daily writes it (a YAML number is read as its digits); None = all accounts.

    An id that matches no data is not an error here (accounts come from the data): such an objective reports
    insufficient_data naming the accounts that have data."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ObjectiveError(f"{where}: `account` must be one account id of the source, got {value!r}")
    text = str(value).strip()
    if text in ("", ALL_ACCOUNTS):
        return None
    normalise = _ACCOUNT_NORMALISERS.get(source)
    if normalise is None:
        return text
    try:
        return normalise(text)
    except ConfigError:
        return text  # malformed for its platform: reported as an account without data, like any unknown one


_KEYS = {"id", "kpi", "source", "account", "channel", "period", "target", "tolerance", "owner", "from", "until",
         "min_denominator"}


def parse_objectives(raw: Any, origin: str = "objectives", catalogue: Catalogue | None = None) -> list[Objective]:
    """Validate parsed YAML (a list, or a mapping with `objectives:`) against the catalogue."""
    catalogue = catalogue or load_catalogue()
    entries = raw.get("objectives") if isinstance(raw, Mapping) else raw
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ObjectiveError(f"{origin}: expected a list of objectives under `objectives:`")
    objectives: list[Objective] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{origin}: objectives[{index}]"
        if not isinstance(entry, Mapping):
            raise ObjectiveError(f"{where} must be a mapping with kpi, period, target")
        name = entry.get("kpi")
        where = f"{where} (kpi {name})"
        unknown_keys = sorted(set(map(str, entry)) - _KEYS)
        if unknown_keys:
            raise ObjectiveError(f"{where}: unknown field(s) {unknown_keys}; allowed: {sorted(_KEYS)}")
        if name not in catalogue.kpis:
            raise ObjectiveError(f"{where}: unknown kpi {name!r}; see kpi_models/catalogue.yaml")
        kpi = catalogue[str(name)]
        objectives.append(_parse_one(entry, kpi, where))
        if objectives[-1].objective_id in seen:
            raise ObjectiveError(f"{where}: duplicate objective {objectives[-1].objective_id!r}; give it an `id`")
        seen.add(objectives[-1].objective_id)
    return objectives


def _source(entry: Mapping[str, Any], kpi: KpiDefinition, where: str) -> str:
    """The source judged: implied when the KPI has one, required when it has several (never blended)."""
    source = entry.get("source")
    if source is None:
        if len(kpi.sources) > 1:
            raise ObjectiveError(f"{where}: {kpi.kpi} comes from {', '.join(kpi.source_codes)}, which are never "
                                 "blended: set `source`")
        source = kpi.sources[0].source
    if str(source) not in kpi.source_codes:
        raise ObjectiveError(f"{where}: {kpi.kpi} has no source {source!r} (it has {', '.join(kpi.source_codes)})")
    return str(source)


def _parse_one(entry: Mapping[str, Any], kpi: KpiDefinition, where: str) -> Objective:
    """One validated objective; every error names the file, the entry and the field."""
    period = str(entry.get("period") or "")
    if period not in PERIODS:
        raise ObjectiveError(f"{where}: `period` is {entry.get('period')!r}, expected one of {', '.join(PERIODS)}")
    if kpi.native and period != "month":
        raise ObjectiveError(f"{where}: {kpi.kpi} exists only per month (native grain): use period: month")
    if kpi.aggregation in ("last", "distinct"):  # a level, or distinct people: neither pro-rates nor adds up
        raise ObjectiveError(f"{where}: {kpi.kpi} is a {'level' if kpi.aggregation == 'last' else 'distinct count'}"
                             " that objectives do not judge: set one on follower_growth or social_impressions")
    source = _source(entry, kpi, where)
    account = _account(entry.get("account"), source, where)
    channel = entry.get("channel")
    channel = None if channel in (None, "", "all") else str(channel)
    if kpi.native and channel is not None:
        raise ObjectiveError(f"{where}: {kpi.kpi} has no channel breakdown")
    if channel is not None and channel not in CHANNELS:  # a typo would be judged forever as insufficient_data
        raise ObjectiveError(f"{where}: channel {channel!r} is not a channel of the vocabulary; use one of "
                             f"{', '.join(CHANNELS)}, or all (or leave it out) for every channel")
    target = _number(entry.get("target"), where, "target")
    if target < 0 and kpi.unit not in SIGNED_UNITS:
        raise ObjectiveError(f"{where}: {kpi.kpi} cannot be negative (a {kpi.unit}): target {target}")
    if kpi.bounded and not 0 <= target <= 1:
        raise ObjectiveError(f"{where}: {kpi.kpi} is a rate in [0, 1]: target {target} (write 3% as 0.03)")
    tolerance = _number(entry.get("tolerance", DEFAULT_TOLERANCE), where, "tolerance")
    if not 0 <= tolerance < 1:
        raise ObjectiveError(f"{where}: `tolerance` must be in [0, 1) (0.05 = 5% below target is at_risk)")
    valid_from = _date(entry.get("from"), where, "from")
    valid_until = _date(entry.get("until"), where, "until")
    if valid_from and valid_until and valid_until < valid_from:
        raise ObjectiveError(f"{where}: `until` {valid_until} is before `from` {valid_from}")
    min_den = entry.get("min_denominator")
    if min_den is not None:
        if kpi.additive:
            raise ObjectiveError(f"{where}: min_denominator applies to ratio KPIs; {kpi.kpi} is additive")
        min_den = _number(min_den, where, "min_denominator")
        if min_den < 0:
            raise ObjectiveError(f"{where}: min_denominator must be >= 0")
    default_id = "/".join([kpi.kpi, source, channel or "all", period]
                          + ([valid_from.isoformat()] if valid_from else [])) + (f"@{account}" if account else "")
    owner = entry.get("owner")
    return Objective(
        objective_id=str(entry.get("id") or default_id), kpi=kpi.kpi, source=source, period=period,
        target=target, tolerance=tolerance, channel=channel, owner=str(owner) if owner else None,
        valid_from=valid_from, valid_until=valid_until, min_denominator=min_den, account=account)


def load_objectives(path: str | Path, catalogue: Catalogue | None = None) -> list[Objective]:
    """Read and validate an objectives file; a missing or invalid file is an error naming it."""
    resolved = resolve_objectives_path(path)
    if not resolved.exists():
        raise ObjectiveError(f"objectives file {resolved} does not exist (set MKPI_OBJECTIVES or objectives_path)")
    try:
        raw = parsed_yaml(resolved.read_text(encoding="utf-8"))  # once per text
    except yaml.YAMLError as exc:
        raise ObjectiveError(f"objectives file {resolved} is not valid YAML: {exc}") from exc
    return parse_objectives(raw, str(resolved), catalogue)


# --- kpi.objective ---------------------------------------------------------------------------------------------

_OBJECTIVE_SCHEMA = pa.schema([
    ("objective_id", pa.string()), ("kpi", pa.string()), ("source", pa.string()), ("account_id", pa.string()),
    ("channel", pa.string()), ("period", pa.string()), ("target", pa.float64()), ("tolerance", pa.float64()),
    ("owner", pa.string()), ("valid_from", pa.date32()), ("valid_until", pa.date32()),
    ("min_denominator", pa.float64()),
])


def _replace_table(conn: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    replace_table(conn, f"{KPI_SCHEMA}.{name}", table)


def write_objectives(conn: duckdb.DuckDBPyConnection, objectives: Sequence[Objective]) -> int:
    """Replace `kpi.objective` with the validated objectives (account_id NULL = all accounts, channel NULL = all
    channels), so SQL users and the CLI read the targets as a table."""
    rows = [{**{f: getattr(o, f) for f in _OBJECTIVE_SCHEMA.names if f != "account_id"}, "account_id": o.account}
            for o in objectives]
    _replace_table(conn, "objective", pa.Table.from_pylist(rows, schema=_OBJECTIVE_SCHEMA))
    return len(rows)


# --- periods ---------------------------------------------------------------------------------------------------


def period_bounds(period: str, day: date) -> tuple[date, date]:
    """The month, quarter or year containing `day`, as inclusive (start, end)."""
    if period == "month":
        start = day.replace(day=1)
    elif period == "quarter":
        start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    elif period == "year":
        start = date(day.year, 1, 1)
    else:
        raise ValueError(f"unknown period {period!r}")
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    year, month = divmod(start.month - 1 + months, 12)
    return start, date(start.year + year, month + 1, 1) - timedelta(days=1)


def target_due(o: Objective, first: date, last: date) -> float:
    """The part of the objective's target due over the days first..last (inclusive; 0 when last < first): KPI
    catalogue rule, additive KPIs are compared with the target pro-rated to the elapsed part of the period. Each
    day carries its period's target over that period's days, so a week across two months takes each month's share."""
    total, day = 0.0, first
    while day <= last:
        start, end = period_bounds(o.period, day)
        until = min(last, end)
        total += o.target * (((until - day).days + 1) / ((end - start).days + 1))
        day = until + timedelta(days=1)
    return total


def _periods(period: str, first: date, last: date) -> list[tuple[date, date]]:
    out = []
    start, end = period_bounds(period, first)
    while start <= last:
        out.append((start, end))
        start, end = period_bounds(period, end + timedelta(days=1))
    return out


# --- comparison maths ------------------------------------------------------------------------------------------


def attainment(actual: float | None, target: float, lower_is_better: bool) -> float | None:
    """actual / target (target / actual when lower is better); 1 means exactly on target.

    For targets or actuals at or below zero (an NPS can be negative) the ratio would flip meaning, so the
    relative distance is used instead: 1 + (actual - target) / |target| (sign reversed when lower is better)."""
    if actual is None or target == 0:
        return None
    if target > 0 and actual > 0:
        return target / actual if lower_is_better else actual / target
    if lower_is_better and target > 0 and actual == 0:
        return None  # nothing spent / nothing bounced: better than any target, reported as on_track
    distance = (target - actual) if lower_is_better else (actual - target)
    return 1 + distance / abs(target)


def status(attained: float | None, tolerance: float, actual: float | None, target: float,
           lower_is_better: bool) -> str:
    """on_track (>= 1), at_risk (>= 1 - tolerance), off_track; a zero target or actual is judged directly.
    Not for budgets: see budget_status."""
    if actual is None:
        return "insufficient_data"
    if attained is None:  # target 0, or actual 0 against a lower-is-better target
        meets = actual <= target if lower_is_better else actual >= target
        return "on_track" if meets else "off_track"
    if attained >= 1:
        return "on_track"
    return "at_risk" if attained >= 1 - tolerance else "off_track"


def budget_verdict(actual: float, target_to_date: float, tolerance: float) -> str:
    """'overspend' or 'underspend' when the spend is off the pro-rated budget by more than `tolerance` (a share
    of it), else 'on_budget'. A zero budget is overspent by any spend."""
    if target_to_date <= 0:
        return "overspend" if actual > 0 else "on_budget"
    if actual > target_to_date * (1 + tolerance):
        return "overspend"
    if actual < target_to_date * (1 - tolerance):
        return "underspend"
    return "on_budget"


def budget_status(actual: float | None, target_to_date: float, tolerance: float) -> str:
    """A budget's status (BUDGET_KPIS): on_track within tolerance either way; overspend off_track; underspend
    at_risk, off_track beyond twice the tolerance (spend has all but stopped)."""
    if actual is None:
        return "insufficient_data"
    verdict = budget_verdict(actual, target_to_date, tolerance)
    if verdict == "on_budget":
        return "on_track"
    if verdict == "overspend":
        return "off_track"
    return "at_risk" if actual >= target_to_date * (1 - 2 * tolerance) else "off_track"


# --- gap texts -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wording:
    """How a manager names a KPI and what moves it, for gap texts (the catalogue has no readable names yet).

    label: the KPI ("conversion rate"); noun: its numerator counted ("converting sessions"), None when no
    numerator change is worth saying; basis: what that change is measured against ("at this traffic", "out of
    {den} answers"); den_noun: the denominator counted, for "not judged yet" texts; style: how the value gap is
    written when the unit's default is wrong ("points", "plain", "net"); scale: numerator units per noun (the NPS
    numerator is (promoters - detractors) x 100); decimals: of a needed count (0 = whole, rounded up)."""

    label: str
    noun: str | None = None
    basis: str | None = None
    den_noun: str = ""
    style: str | None = None
    scale: float = 1.0
    decimals: int = 0


_TRAFFIC = "at this traffic"
WORDING: dict[str, Wording] = {
    "sessions": Wording("sessions", "sessions"),
    "engagement_rate": Wording("engagement rate", "engaged sessions", _TRAFFIC, "sessions"),
    "bounce_rate": Wording("bounce rate", "bounced sessions", _TRAFFIC, "sessions"),
    "conversion_rate": Wording("conversion rate", "converting sessions", _TRAFFIC, "sessions"),
    "avg_session_duration": Wording("average session duration", den_noun="sessions"),
    "avg_engagement_time": Wording("average engagement time", den_noun="sessions"),
    "leads": Wording("leads", "leads"),
    "contacts_created": Wording("new contacts", "new contacts"),
    "search_clicks": Wording("search clicks", "clicks"),
    "search_impressions": Wording("search impressions", "impressions"),
    "search_ctr": Wording("search click-through rate", "clicks", "at these impressions", "impressions"),
    "search_avg_position": Wording("average position", den_noun="impressions"),
    "ad_cost": Wording("ad spend", "ad spend"),
    "ad_clicks": Wording("ad clicks", "clicks"),
    "ad_impressions": Wording("ad impressions", "impressions"),
    "ad_conversions": Wording("ad conversions", "conversions"),
    "ad_ctr": Wording("ad click-through rate", "clicks", "at these impressions", "impressions"),
    "ad_cpc": Wording("CPC", den_noun="clicks"),
    "ad_cpa": Wording("CPA", den_noun="conversions"),
    "ad_roas": Wording("ROAS", "conversion value", "at this spend", "ad spend"),
    # conversions per click may exceed 1 (not bounded) but is still read in percentage points
    "ad_conversion_rate": Wording("ad conversion rate", "conversions", "at these clicks", "clicks", style="points"),
    "email_deliverability_rate": Wording("deliverability rate", "delivered e-mails", "out of {den} sent",
                                         "e-mails sent"),
    "email_open_rate": Wording("open rate", "opens", "out of {den} delivered", "e-mails delivered"),
    "email_click_rate": Wording("click rate", "clicks", "out of {den} delivered", "e-mails delivered"),
    "email_click_to_open_rate": Wording("click-to-open rate", "clicks", "out of {den} opens", "opens"),
    "email_bounce_rate": Wording("e-mail bounce rate", "bounces", "out of {den} sent", "e-mails sent"),
    "email_unsubscribe_rate": Wording("unsubscribe rate", "unsubscribes", "out of {den} delivered",
                                      "e-mails delivered"),
    "orders": Wording("orders", "orders"),
    "revenue": Wording("revenue", "revenue"),
    "average_basket": Wording("average basket", "revenue", "from these {den} orders", "orders"),
    "cart_abandonment_rate": Wording("cart abandonment rate", "abandoned carts", "out of {den} carts", "carts"),
    "ecommerce_conversion_rate": Wording("e-commerce conversion rate", "orders", _TRAFFIC, "sessions"),
    "new_customers": Wording("new customers", "new customers"),
    "churn_rate": Wording("churn rate", "customers lost", "out of {den} customers at the start of the month",
                          "customers at the start of the month"),
    "loyalty_rate": Wording("loyalty rate", "repeat customers", "out of {den} customers with a won deal",
                            "customers with a won deal"),
    "nps": Wording("NPS", "net promoters", "out of {den} answers", "answers", style="net", scale=100, decimals=1),
    "cost_per_lead": Wording("cost per lead", den_noun="leads"),
    "customer_acquisition_cost": Wording("customer acquisition cost", den_noun="new customers"),
    # read as a percentage (-72%, +33%) like every report shows ROI: its gap in percentage points
    "marketing_roi": Wording("marketing ROI", "net return", "at this spend", "ad spend", style="points"),
    "blended_roas": Wording("blended ROAS", "revenue", "at this spend", "ad spend"),
    "paid_share_of_sessions": Wording("paid share of sessions", "paid sessions", _TRAFFIC, "sessions"),
    # social networks (issue #22)
    "followers": Wording("followers", "followers"),
    "follower_growth": Wording("follower growth", "new followers"),
    "social_impressions": Wording("social impressions", "impressions"),
    "social_engagements": Wording("social engagements", "engagements"),
    "social_shares": Wording("social shares", "shares"),
    "social_link_clicks": Wording("social link clicks", "link clicks"),
    "posts_published": Wording("posts published", "posts"),
    "social_reach": Wording("social reach", "accounts reached"),
    "social_engagement_rate": Wording("social engagement rate", "engagements", "at these impressions", "impressions"),
}


# The platforms as their users name them, for texts (source codes are internal names).
SOURCE_NAMES = registry.labels()


def source_name(code: str) -> str:
    """A source code as its users name the platform ("search_console" -> "Search Console")."""
    return SOURCE_NAMES.get(code, code.replace("_", " "))


def wording(kpi: KpiDefinition) -> Wording:
    """The KPI's wording; a KPI added to the catalogue without one reads by its name, spaces for underscores."""
    return WORDING.get(kpi.kpi) or Wording(kpi.kpi.replace("_", " "), den_noun="in the denominator")


def _style(kpi: KpiDefinition, words: Wording) -> str:
    """How the KPI's gap is written: budget, sum, points, plain, money, seconds, position, score or net."""
    if kpi.kpi in BUDGET_KPIS:
        return "budget"
    if words.style:
        return words.style
    if kpi.additive:
        return "sum"
    if kpi.unit == "ratio":
        return "points" if kpi.bounded else "plain"
    return {"currency": "money", "seconds": "seconds", "position": "position", "score": "score"}.get(kpi.unit,
                                                                                                     "plain")


def _quantity(x: float, decimals: int, up: bool) -> float:
    """|x| rounded to `decimals`: up for what is needed, down for what is spare."""
    scaled = abs(x) * 10 ** decimals
    return (math.ceil(scaled - 1e-9) if up else math.floor(scaled + 1e-9)) / 10 ** decimals


def _count(x: float, decimals: int = 0, up: bool = True) -> str:
    """A count as a person reads it ("1,412"), rounded as _quantity does."""
    return f"{_quantity(x, decimals, up):,.{decimals}f}"


def _money(x: float, currency: str | None) -> str:
    """An amount with its currency, written as every KPI amount is (kpi_models.formatting): "2.10 EUR", "1,000 EUR"."""
    return format_value(abs(x), "currency", currency)


def _figure(x: float, decimals: int) -> str:
    """|x| to `decimals`, with more decimals (up to 4) while it would read as zero."""
    x = abs(x)
    while decimals < 4 and x != 0 and round(x, decimals) == 0:
        decimals += 1
    return f"{x:,.{decimals}f}"


def _value_gap(x: float, style: str, currency: str | None) -> str:
    """A difference between a KPI's value and its target, as read on a report."""
    if style == "points":
        return f"{_figure(x * 100, 1)} points"
    if style == "money":
        return f"{_figure(x, 2)} {currency or ''}".strip()
    if style == "seconds":
        return f"{_figure(x, 0)} seconds"
    if style in ("position", "score", "net"):
        return _figure(x, 1)
    return _figure(x, 2)


def _is_money(expression: str | None) -> bool:
    """Whether a catalogue numerator / denominator is an amount of money (rule 5: only ever used converted)."""
    return expression is not None and "fx_rate" in expression


def _numerator_money(kpi: KpiDefinition, source: Any) -> bool:
    """Whether the KPI's numerator for this source is money (conversion value, revenue, cost)."""
    try:
        return _is_money(kpi.source(str(source)).numerator)
    except KeyError:
        return kpi.is_money


def _basis(words: Wording, denominator: float) -> str:
    """What a numerator change is measured against, with the denominator filled in ("out of 30 answers")."""
    return words.basis.format(den=_count(denominator, 0, up=False)) if words.basis else ""


def _numerator_change(row: Mapping[str, Any], kpi: KpiDefinition, words: Wording) -> str | None:
    """"37 more converting sessions at this traffic": the numerator change that hits the target at the current
    denominator, or None when the KPI has no numerator worth naming."""
    numerator, denominator = row.get("numerator"), row.get("denominator")
    if not words.noun or numerator is None or not denominator:
        return None
    change = (float(row["target"]) * denominator - numerator) / words.scale
    if _numerator_money(kpi, row.get("source")):
        amount, more = _money(change, row.get("currency")), "more" if change > 0 else "less"
    else:
        amount, more = _count(change, words.decimals), "more" if change > 0 else "fewer"
    return " ".join(part for part in (amount, more, words.noun, _basis(words, denominator)) if part)


def _net_text(row: Mapping[str, Any], words: Wording, behind: bool) -> str | None:
    """NPS: "3.5 more net promoters out of 30 answers" (or to spare)."""
    numerator, denominator = row.get("numerator"), row.get("denominator")
    if numerator is None or not denominator:
        return None
    change = (float(row["target"]) * denominator - numerator) / words.scale
    basis = _basis(words, denominator)
    if behind:
        return f"{_count(change, words.decimals)} more {words.noun} {basis}".strip()
    spare = _quantity(change, words.decimals, up=False)
    return "on target" if spare == 0 else (f"on target: {_count(change, words.decimals, up=False)} {words.noun} "
                                           f"to spare {basis}").strip()


def _ratio_text(row: Mapping[str, Any], kpi: KpiDefinition, words: Wording, style: str) -> str:
    """A rate, an average or a score against its target: how much the value must move, and the numerator change
    that moves it at this denominator."""
    actual, target = float(row["actual"]), float(row["target"])
    diff = target - actual
    behind = diff < 0 if kpi.lower_is_better else diff > 0
    if style == "net":
        text = _net_text(row, words, behind)
        if text:
            return text
    if diff == 0:
        return "on target"
    figure = _value_gap(diff, style, row.get("currency"))
    if behind:
        verb = "improve" if style == "position" else ("fall" if kpi.lower_is_better else "rise")
        change = _numerator_change(row, kpi, words)
        return f"{words.label} must {verb} by {figure}" + (f" ({change})" if change else "")
    relation = "better than" if style == "position" else ("below" if kpi.lower_is_better else "above")
    return f"on target: {words.label} {figure} {relation} the objective"


def _pace_text(row: Mapping[str, Any], kpi: KpiDefinition, words: Wording) -> str:
    """A sum against its pro-rated target: "412 more sessions needed to be on pace", or what is ahead."""
    actual = float(row["actual"])
    target = row.get("target_to_date")
    gap = float(row["target"] if target is None else target) - actual
    complete = float(row.get("elapsed_fraction") or 0) >= 1
    lower = kpi.lower_is_better
    noun = words.noun or words.label
    money = kpi.is_money
    behind = gap < 0 if lower else gap > 0

    def amount(up: bool) -> str:
        return _money(gap, row.get("currency")) if money else _count(gap, words.decimals, up)

    if behind:
        if complete:
            return f"{amount(True)} {noun} {'over' if lower else 'short of'} the target"
        more = ("less" if money else "fewer") if lower else "more"
        return f"{amount(True)} {more} {noun} needed to be on pace"
    spare = round(abs(gap), 2) if money else _quantity(gap, words.decimals, up=False)
    if spare == 0:
        return "target met" if complete else "on pace"
    if complete:
        return f"target met: {amount(False)} {noun} {'under' if lower else 'over'}"
    return f"on pace: {amount(False)} {noun} ahead"


def _as_date(value: Any) -> date | None:
    """A date from a row read back from DuckDB or pandas (None, NaT, datetime or date)."""
    if value is None or value != value:  # None, NaT
        return None
    return value.date() if isinstance(value, datetime) else value


def _budget_text(row: Mapping[str, Any]) -> str:
    """"overspend: 200.00 EUR above the budget to date; 90.48 EUR a day for the 21 days left ends the month on
    budget": which way the spend is off, by how much, and the daily spend that lands on the budget."""
    actual, target = float(row["actual"]), float(row["target"])
    to_date = row.get("target_to_date")
    to_date = target if to_date is None else float(to_date)
    tolerance = float(row.get("tolerance") if row.get("tolerance") is not None else DEFAULT_TOLERANCE)
    currency, period = row.get("currency"), row.get("period") or "period"
    complete = float(row.get("elapsed_fraction") or 0) >= 1
    diff = actual - to_date
    budget = f"the {period}'s budget" if complete else "the budget to date"
    verdict = budget_verdict(actual, to_date, tolerance)
    if verdict == "overspend":
        head = f"overspend: {_money(diff, currency)} above {budget}"
    elif verdict == "underspend":
        head = f"underspend: {_money(diff, currency)} below {budget}"
    elif round(diff, 2) == 0:
        head = "on budget"
    else:
        head = (f"on budget: {_money(diff, currency)} {'above' if diff > 0 else 'below'} {budget} "
                f"(within {tolerance * 100:g}%)")
    if complete or verdict == "on_budget":
        return head
    end, as_of = _as_date(row.get("period_end")), _as_date(row.get("as_of"))
    days_left = (end - as_of).days if end and as_of else 0
    if days_left <= 0:
        return head
    if actual >= target:
        return f"{head}; the {period}'s budget of {_money(target, currency)} is already spent"
    plural = "day" if days_left == 1 else "days"
    return (f"{head}; {_money((target - actual) / days_left, currency)} a day for the {days_left} {plural} left "
            f"ends the {period} on budget")


def gap_text(row: Mapping[str, Any], kpi: KpiDefinition | None = None) -> str | None:
    """The gap to the objective in the units a manager acts on, never in column names: "412 more sessions needed
    to be on pace", "conversion rate must rise by 0.4 points (37 more converting sessions at this traffic)",
    "average position must improve by 0.8", "CPA must fall by 2.10 EUR", "3.5 more net promoters out of 30
    answers", "overspend: ... above the budget to date". The one function for it: kpi_vs_objective.gap_text is
    written with it, and the dashboard and the CLI show that column (or call this on a row of their own).

    `row` is a kpi_vs_objective row, or any mapping with kpi, source, actual, target, numerator, denominator,
    currency and, for sums, target_to_date, elapsed_fraction, tolerance, period, period_end, as_of. Needed counts
    round up, spare ones down. None when there is no actual to compare."""
    if row.get("actual") is None or row.get("target") is None:
        return None
    kpi = kpi or load_catalogue()[str(row["kpi"])]
    words = wording(kpi)
    style = _style(kpi, words)
    if style == "budget":
        return _budget_text(row)
    if kpi.additive:
        return _pace_text(row, kpi, words)
    return _ratio_text(row, kpi, words, style)


# --- kpi.kpi_vs_objective -----------------------------------------------------------------------------------------

_RESULT_SCHEMA = pa.schema([
    ("objective_id", pa.string()), ("kpi", pa.string()), ("period", pa.string()), ("period_start", pa.date32()),
    ("period_end", pa.date32()), ("as_of", pa.date32()), ("elapsed_fraction", pa.float64()),
    ("channel", pa.string()), ("source", pa.string()), ("account_id", pa.string()), ("owner", pa.string()),
    ("actual", pa.float64()), ("target", pa.float64()), ("target_to_date", pa.float64()),
    ("forecast", pa.float64()), ("attainment", pa.float64()), ("status", pa.string()), ("tolerance", pa.float64()),
    ("numerator", pa.float64()), ("denominator", pa.float64()), ("min_denominator", pa.float64()),
    ("gap", pa.float64()), ("gap_text", pa.string()), ("direction", pa.string()), ("aggregation", pa.string()),
    ("unit", pa.string()), ("currency", pa.string()), ("days_with_data", pa.int64()), ("provisional", pa.bool_()),
])

_LAYOUT = ("account_id", "is_final", "quality")


def _table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    return table_exists(conn, f"{KPI_SCHEMA}.{name}")


def _check_layout(conn: duckdb.DuckDBPyConnection) -> None:
    """Fail clearly (not with a binder error) on a kpi.kpi_daily built before accounts and finality existed."""
    if not _table_exists(conn, "kpi_daily"):
        return
    columns = {d[0] for d in conn.execute(f"SELECT * FROM {KPI_SCHEMA}.kpi_daily LIMIT 0").description}
    missing = [c for c in _LAYOUT if c not in columns]
    if missing:
        raise KpiLayoutError(f"{KPI_SCHEMA}.kpi_daily has no column {', '.join(missing)}: it was built by an older "
                             "version; rebuild the KPI layer (mkpi backfill) before judging objectives")


@dataclass(frozen=True)
class DataScope:
    """Where an objective's data lies: first and last day (of its account, else of its source), the first day
    flagged incomplete, the day that moved the as-of day (`cut_at`), and, when the objective names an account
    without any data, the text saying so (then the range is the source's, so each period reports it)."""

    first: date
    last: date
    first_incomplete: date | None = None
    cut_at: date | None = None
    missing_account: str | None = None


def _where(o: Objective, account: str | None, alias: str = "") -> tuple[str, list[object]]:
    """The filter of an objective's rows: its KPI, its source and, when given, one account."""
    sql, params = f"{alias}kpi = ? AND {alias}source = ?", [o.kpi, o.source]
    if account is not None:
        sql += f" AND {alias}account_id = ?"
        params.append(account)
    return sql, params


RangeKey = tuple[str, str, str | None]  # (kpi, source, account or None: every account)
DayRange = tuple[date, date, date | None]  # first day, last day, first day flagged partial


def _range_keys(objectives: Sequence[Objective], catalogue: Catalogue) -> list[RangeKey]:
    """The (kpi, source, account) whose days the daily objectives need: their own, and their source's (read when an
    objective's account has no data)."""
    keys: dict[RangeKey, None] = {}
    for o in objectives:
        if not catalogue[o.kpi].native:
            keys[(o.kpi, o.source, o.account)] = None
            keys[(o.kpi, o.source, None)] = None
    return list(keys)


def _daily_ranges(conn: duckdb.DuckDBPyConnection, keys: Sequence[RangeKey]) -> dict[RangeKey, DayRange]:
    """First and last day in kpi.kpi_daily, and the first flagged partial, of each (kpi, source, account), any
    channel (one quiet channel does not move as-of): ONE query for every objective (issue #21; a query per
    objective took seconds after each recompute). A key without rows is absent."""
    if not keys or not _table_exists(conn, "kpi_daily"):
        return {}
    names = name_types(conn)  # the given names in the columns' own types: no per-row cast of the table to text
    rows = conn.execute(
        "SELECT q.i, min(k.date), max(k.date), min(k.date) FILTER (WHERE list_contains(k.quality, ?)) "
        f"FROM (SELECT unnest(?::INTEGER[]) AS i, TRY_CAST(unnest(?::VARCHAR[]) AS {names['kpi']}) AS kpi, "
        f"TRY_CAST(unnest(?::VARCHAR[]) AS {names['source']}) AS source, unnest(?::VARCHAR[]) AS account) AS q "
        f"JOIN {KPI_SCHEMA}.kpi_daily AS k ON k.kpi = q.kpi AND k.source = q.source "
        "AND (q.account IS NULL OR k.account_id = q.account) GROUP BY q.i",
        [PARTIAL_DAY, list(range(len(keys))), [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]],
    ).fetchall()
    return {keys[r[0]]: (r[1], r[2], r[3]) for r in rows if r[1] is not None}


def _range(conn: duckdb.DuckDBPyConnection, o: Objective, kpi: KpiDefinition, account: str | None,
           ranges: Mapping[RangeKey, DayRange] | None = None) -> DataScope | None:
    """First and last day with data for the KPI's source (or account), any channel: one quiet channel does not
    move as-of (from `ranges` when the caller read every objective's at once). Native KPIs: their months, dated by
    the CRM's own last day of activity."""
    where, params = _where(o, account)
    if kpi.native:
        if not _table_exists(conn, "kpi_monthly"):
            return None
        row = conn.execute(f"SELECT min(month_start), max(month_start) FROM {KPI_SCHEMA}.kpi_monthly "
                           f"WHERE {where} AND channel = 'all'", params).fetchone()
        if not row or row[0] is None:
            return None
        last_day = None
        if _table_exists(conn, "kpi_daily"):
            sql, day_params = f"SELECT max(date) FROM {KPI_SCHEMA}.kpi_daily WHERE source = ?", [o.source]
            if account is not None:
                sql, day_params = sql + " AND account_id = ?", [*day_params, account]
            found = conn.execute(sql, day_params).fetchone()
            last_day = found[0] if found else None
        return DataScope(row[0], last_day or period_bounds("month", row[1])[1])
    key = (o.kpi, o.source, account)
    row = (ranges if ranges is not None else _daily_ranges(conn, [key])).get(key)
    return None if row is None else DataScope(*row)


def _scope(conn: duckdb.DuckDBPyConnection, o: Objective, kpi: KpiDefinition,
           ranges: Mapping[RangeKey, DayRange] | None = None) -> DataScope | None:
    """The objective's data range; an account without data gets its source's range and a text naming the
    accounts that have data (None: the source has no data at all, so there is nothing to judge yet)."""
    found = _range(conn, o, kpi, o.account, ranges)
    if found is not None or o.account is None:
        return found
    source_wide = _range(conn, o, kpi, None, ranges)
    if source_wide is None:
        return None
    table = "kpi_monthly" if kpi.native else "kpi_daily"
    where, params = _where(o, None)
    known = [r[0] for r in conn.execute(f"SELECT DISTINCT account_id FROM {KPI_SCHEMA}.{table} WHERE {where} "
                                        "ORDER BY 1 LIMIT 11", params).fetchall()]
    listed = ", ".join(str(a) for a in known[:10]) + (", ..." if len(known) > 10 else "")
    text = (f"no data for {source_name(o.source)} account {o.account}: check `account` in the objectives file "
            f"(accounts with data: {listed})")
    return replace(source_wide, first_incomplete=None, missing_account=text)


class Actuals(NamedTuple):
    """What a period so far adds up to: summed parts, days with data, currencies seen, every day final."""

    numerator: float | None
    denominator: float | None
    days: int
    currencies: tuple[str, ...]
    final: bool


_NO_DATA = Actuals(None, None, 0, (), True)
# The currencies a period's amounts are in, and whether every row is final (unknown finality counts as provisional).
_CURRENCIES = "list_sort(list(DISTINCT k.currency) FILTER (WHERE k.currency IS NOT NULL))"
_FINAL = "bool_and(coalesce(k.is_final, false))"


def _actuals(conn: duckdb.DuckDBPyConnection, o: Objective, kpi: KpiDefinition,
             periods: Sequence[tuple[date, date]]) -> list[Actuals]:
    """The parts of each period so far (over every account unless the objective names one: a ratio of sums), in
    one query for all of an objective's periods (a query per period made the one-day recompute slow, issue #9)."""
    if not periods:
        return []
    where, params = _where(o, o.account, "k.")
    if kpi.native:
        sql = (f"SELECT k.month_start, sum(k.numerator), sum(k.denominator), 1, {_CURRENCIES}, {_FINAL} "
               f"FROM {KPI_SCHEMA}.kpi_monthly AS k WHERE {where} AND k.channel = 'all' "
               "AND k.month_start IN (SELECT unnest(?::DATE[])) GROUP BY k.month_start")
        found = {r[0]: Actuals(r[1], r[2], r[3], tuple(r[4] or ()), bool(r[5]))
                 for r in conn.execute(sql, [*params, [start for start, _ in periods]]).fetchall()}
        return [found.get(start, _NO_DATA) for start, _ in periods]
    return _daily_actuals(conn, [(o, periods)])[0]


def _daily_actuals(conn: duckdb.DuckDBPyConnection, asked: Sequence[tuple[Objective, Sequence[tuple[date, date]]]]
                   ) -> list[list[Actuals]]:
    """`_actuals` of daily KPIs for every (objective, its periods) in ONE query over kpi.kpi_daily (issue #21: one
    query per objective took seconds after each recompute): each period row carries its objective's KPI, source,
    account and channel (NULL: all), and sums exactly the rows that objective's own query summed."""
    flat = [(o, s, e) for o, periods in asked for s, e in periods]
    found: dict[int, Actuals] = {}
    if flat:
        # the given names in the columns' own types (kpi_daily's ENUMs): no per-row cast of the table to text; a
        # channel keeps its text beside, so one the type lacks matches nothing instead of reading as "all channels"
        names = name_types(conn)
        sql = (f"SELECT p.i, sum(k.numerator), sum(k.denominator), count(DISTINCT k.date), {_CURRENCIES}, {_FINAL} "
               f"FROM (SELECT unnest(?::INTEGER[]) AS i, TRY_CAST(unnest(?::VARCHAR[]) AS {names['kpi']}) AS kpi, "
               f"TRY_CAST(unnest(?::VARCHAR[]) AS {names['source']}) AS source, unnest(?::VARCHAR[]) AS account, "
               f"TRY_CAST(unnest(?::VARCHAR[]) AS {names['channel']}) AS channel, "
               "unnest(?::VARCHAR[]) AS channel_text, unnest(?::DATE[]) AS s, unnest(?::DATE[]) AS e) AS p "
               # only the objectives' KPIs and days are read (the scan skips the others' rows)
               f"JOIN (SELECT * FROM {KPI_SCHEMA}.kpi_daily WHERE kpi IN "
               f"(SELECT TRY_CAST(unnest(?::VARCHAR[]) AS {names['kpi']})) "
               "AND date BETWEEN ? AND ?) AS k ON k.kpi = p.kpi AND k.source = p.source "
               "AND k.date BETWEEN p.s AND p.e AND (p.account IS NULL OR k.account_id = p.account) "
               "AND (p.channel_text IS NULL OR k.channel = p.channel) GROUP BY p.i")
        channels = [o.channel for o, _, _ in flat]
        params = [list(range(len(flat))), [o.kpi for o, _, _ in flat], [o.source for o, _, _ in flat],
                  [o.account for o, _, _ in flat], channels, channels, [s for _, s, _ in flat],
                  [e for _, _, e in flat], sorted({o.kpi for o, _, _ in flat}), min(s for _, s, _ in flat),
                  max(e for _, _, e in flat)]
        found = {r[0]: Actuals(r[1], r[2], int(r[3]), tuple(r[4] or ()), bool(r[5]))
                 for r in conn.execute(sql, params).fetchall() if r[3]}
    out, i = [], 0
    for _, periods in asked:
        out.append([found.get(i + j, _NO_DATA) for j in range(len(periods))])
        i += len(periods)
    return out


def _all_actuals(conn: duckdb.DuckDBPyConnection,
                 judged: Sequence[tuple[Objective, KpiDefinition, DataScope, date, Sequence[tuple[date, date]]]]
                 ) -> list[list[Actuals]]:
    """Each judged objective's actuals for its periods up to its as-of day: the daily KPIs' in one query, the
    native (monthly CRM) ones' by objective."""
    cut = [[(start, min(end, as_of)) for start, end in periods] for _, _, _, as_of, periods in judged]
    daily = [i for i, (_, kpi, *_) in enumerate(judged) if not kpi.native]
    out: dict[int, list[Actuals]] = dict(zip(daily, _daily_actuals(conn, [(judged[i][0], cut[i]) for i in daily]),
                                             strict=True))
    for i, (o, kpi, *_) in enumerate(judged):
        if kpi.native:
            out[i] = _actuals(conn, o, kpi, cut[i])
    return [out[i] for i in range(len(judged))]


def _denominator_text(kpi: KpiDefinition, source: str, value: float, currency: str | None) -> str:
    """A denominator as counted ("1,000") or as money ("50.00 EUR" of ad spend)."""
    try:
        money = _is_money(kpi.source(source).denominator)
    except KeyError:
        money = False
    return _money(value, currency) if money else _count(value, 0, up=False)


def _period_word(o: Objective, start: date, end: date) -> str:
    """"month" (the objective's period) when the days judged are that period, else "period" (e.g. a week)."""
    return o.period if period_bounds(o.period, start) == (start, end) else "period"


def _insufficient(o: Objective, kpi: KpiDefinition, row: Mapping[str, Any], parts: Actuals, scope: DataScope,
                  start: date, end: date) -> str | None:
    """Why this period cannot be judged (the gap text of an insufficient_data row), or None when it can."""
    words = wording(kpi)
    if scope.missing_account:
        return scope.missing_account
    if not parts.days:
        if scope.cut_at is not None and start <= scope.cut_at <= end:
            return (f"no complete day yet: {source_name(o.source)} days from {scope.cut_at.isoformat()} are still "
                    "incomplete (judged once they are final)")
        return "no data for this period yet" + (f" for {source_name(o.source)} account {o.account}"
                                                if o.account else "")
    if len(parts.currencies) > 1:
        return (f"not judged: amounts in {', '.join(parts.currencies)} are never added together; rebuild the KPI "
                "layer in one reporting currency")
    if row["actual"] is None:
        return f"not judged: no {words.den_noun or 'denominator'} so far"
    if kpi.kpi in FLOW_RATIOS and row["as_of"] < end:
        text = f"{words.label} is judged when the {_period_word(o, start, end)} is complete (after {end.isoformat()})"
        if words.noun and row["numerator"] is not None:
            so_far = _count(row["numerator"] / words.scale, words.decimals, up=False)
            text += f"; so far {so_far} {words.noun} {_basis(words, row['denominator'])}".rstrip()
        return text
    if kpi.additive and scope.first > start:
        return (f"not judged: the data starts on {scope.first.isoformat()}, after the {_period_word(o, start, end)} "
                f"began on "
                f"{start.isoformat()} (a partial total would read as a shortfall)")
    minimum = row["min_denominator"] or 0.0
    if not kpi.additive and (row["denominator"] or 0.0) < minimum:
        have = _denominator_text(kpi, o.source, row["denominator"] or 0.0, row["currency"])
        need = _denominator_text(kpi, o.source, minimum, row["currency"])
        have = " ".join(part for part in (have, words.den_noun) if part)
        return f"not judged yet: {have} so far, {need} needed to judge the {words.label}"
    return None


def evaluate(o: Objective, period: tuple[date, date], as_of: date, parts: Actuals, kpi: KpiDefinition,
             scope: DataScope | None = None, min_denominators: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The one judgement of an objective: the days of `period` up to `as_of` (their summed `parts`) against the
    target, as a kpi_vs_objective row. `period` is the objective's own month, quarter or year (kpi.kpi_vs_objective,
    `mkpi kpis`, the dashboard) or any range of days, e.g. a week (`mkpi kpis --period week`).

    KPI catalogue rules: a sum is compared with the target pro-rated to the elapsed days of the period (`target_due`,
    elapsed time, not days with data) and forecast to the period's end; a ratio as a ratio of sums, never
    pro-rated; a budget is off when over- or under-spent; a flow ratio waits for the period's end; below the minimum
    denominator, or without data, it is insufficient_data. `scope` (where the objective's data lies) defaults to
    data from the period's first day to as-of."""
    start, end = period
    scope = scope or DataScope(start, as_of)
    numerator, denominator = parts.numerator, parts.denominator
    elapsed_end = min(as_of, end)
    elapsed = max(0, (elapsed_end - start).days + 1) / ((end - start).days + 1)
    minimums = {**DEFAULT_MIN_DENOMINATORS, **(min_denominators or {})}
    lower = kpi.lower_is_better
    min_den = None if kpi.additive else (o.min_denominator if o.min_denominator is not None
                                         else float(minimums.get(kpi.unit, 0.0)))
    forecast = gap = None
    if kpi.additive:
        actual = numerator if parts.days else None
        target_to_date = target_due(o, start, elapsed_end)
        forecast = actual / elapsed if actual is not None and elapsed > 0 else None
        if actual is not None:
            gap = target_to_date - actual
        if kpi.kpi in BUDGET_KPIS:  # attainment = spend pace: share of the pro-rated budget spent
            attained = actual / target_to_date if actual is not None and target_to_date > 0 else None
            state = budget_status(actual, target_to_date, o.tolerance)
        else:
            attained = attainment(actual, target_to_date, lower)
            state = status(attained, o.tolerance, actual, target_to_date, lower)
    else:
        actual = numerator / denominator if numerator is not None and denominator else None
        target_to_date = o.target  # ratios are compared as they stand, never pro-rated
        attained = attainment(actual, o.target, lower)
        if actual is not None:
            gap = o.target * denominator - numerator  # the numerator change that hits the target at this denominator
        state = status(attained, o.tolerance, actual, o.target, lower)
    row: dict[str, Any] = {
        "objective_id": o.objective_id, "kpi": o.kpi, "period": o.period, "period_start": start,
        "period_end": end, "as_of": as_of, "elapsed_fraction": elapsed, "channel": o.channel or "all",
        "source": o.source, "account_id": o.account or ALL_ACCOUNTS, "owner": o.owner, "actual": actual,
        "target": o.target, "target_to_date": target_to_date, "forecast": forecast, "attainment": attained,
        "status": state, "tolerance": o.tolerance, "numerator": numerator, "denominator": denominator,
        "min_denominator": min_den, "gap": gap, "gap_text": None, "direction": kpi.direction,
        "aggregation": kpi.aggregation, "unit": kpi.unit,
        "currency": parts.currencies[0] if len(parts.currencies) == 1 else None, "days_with_data": parts.days,
        # any day used is not final, or incomplete days of this period were left out of it
        "provisional": not parts.final or (scope.cut_at is not None and start <= scope.cut_at <= end),
    }
    reason = _insufficient(o, kpi, row, parts, scope, start, end)
    if reason is None:
        row["gap_text"] = gap_text(row, kpi)
        return row
    if kpi.kpi in FLOW_RATIOS or scope.missing_account:
        row.update(attainment=None, gap=None)  # a month-to-date churn, another account's data: nothing to compare
    row.update(status="insufficient_data", gap_text=reason)
    return row


def _scope_as_of(conn: duckdb.DuckDBPyConnection, o: Objective, kpi: KpiDefinition, as_of: date | None,
                 yesterday: date, ranges: Mapping[RangeKey, DayRange] | None = None) -> tuple[DataScope, date] | None:
    """The objective's data scope and its as-of day: the given day, else the last day with data for its account
    (else source) but never after yesterday, and always before a day flagged partial_day (the scope then records
    that cut). None when the source has no data at all."""
    scope = _scope(conn, o, kpi, ranges)
    if scope is None:
        return None
    objective_as_of = as_of or min(scope.last, yesterday)
    if scope.first_incomplete is not None and scope.first_incomplete <= objective_as_of:
        objective_as_of = scope.first_incomplete - timedelta(days=1)
        scope = replace(scope, cut_at=scope.first_incomplete)
    return scope, objective_as_of


def evaluate_window(conn: duckdb.DuckDBPyConnection, objectives: Sequence[Objective], window: tuple[date, date],
                    tz: str = "Europe/Paris", min_denominators: Mapping[str, float] | None = None,
                    catalogue: Catalogue | None = None) -> list[dict[str, Any]]:
    """Each objective in force during `window` (e.g. an ISO week) judged over the window's days up to its as-of
    day, by `evaluate`, exactly as kpi.kpi_vs_objective judges its periods; read-only (nothing is written). A
    native KPI (a monthly CRM figure) is judged only over a whole month."""
    catalogue = catalogue or load_catalogue()
    yesterday = datetime.now(ZoneInfo(tz)).date() - timedelta(days=1)
    start, end = window
    whole_month = period_bounds("month", start) == window
    rows: list[dict[str, Any]] = []
    for o in objectives:
        if (o.valid_from and o.valid_from > end) or (o.valid_until and o.valid_until < start):
            continue
        kpi = catalogue[o.kpi]
        if kpi.native and not whole_month:
            continue  # the CRM's own monthly figures: nothing to judge inside a month
        found = _scope_as_of(conn, o, kpi, None, yesterday)
        if found is None:
            continue
        scope, objective_as_of = found
        parts = _actuals(conn, o, kpi, [(start, min(end, objective_as_of))])[0]
        rows.append(evaluate(o, window, objective_as_of, parts, kpi, scope, min_denominators))
    return rows


def read_objectives(conn: duckdb.DuckDBPyConnection) -> list[Objective]:
    """The objectives as the last run validated and wrote them (kpi.objective), for readers of a built database."""
    if not _table_exists(conn, "objective"):
        return []
    cursor = conn.execute(f"SELECT * FROM {KPI_SCHEMA}.objective")
    names = [d[0] for d in cursor.description]
    out = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        account = row.pop("account_id", None)
        minimum = row.get("min_denominator")
        row["min_denominator"] = None if minimum is None or minimum != minimum else float(minimum)  # NaN: unset
        out.append(Objective(**{k: v for k, v in row.items() if k in Objective.__dataclass_fields__},
                             account=account))
    return out


@conflict_retried  # on a DuckLake, run again whole if it lost a commit race to another writer
def build_kpi_vs_objective(
    conn: duckdb.DuckDBPyConnection,
    objectives: Sequence[Objective] | str | Path,
    as_of: date | None = None,
    tz: str = "Europe/Paris",
    min_denominators: Mapping[str, float] | None = None,
    catalogue: Catalogue | None = None,
) -> list[dict[str, Any]]:
    """Write `kpi.objective` and `kpi.kpi_vs_objective` and return the latter's rows.

    One row per objective and period (within the objective's validity) from the first day with data up to the
    as-of date. As-of is the given date, else the last day with data for the objective's account (else source),
    never later than yesterday in `tz` (today is incomplete); either way never on or after a day flagged
    `partial_day` (Search Console), whose period is then provisional. Reads kpi.kpi_daily, and
    kpi.kpi_monthly for native KPIs."""
    catalogue = catalogue or load_catalogue()
    if isinstance(objectives, str | Path):
        objectives = load_objectives(objectives, catalogue)
    _check_layout(conn)
    minimums = {**DEFAULT_MIN_DENOMINATORS, **(min_denominators or {})}
    yesterday = datetime.now(ZoneInfo(tz)).date() - timedelta(days=1)
    write_objectives(conn, objectives)
    ranges = _daily_ranges(conn, _range_keys(objectives, catalogue))
    judged: list[tuple[Objective, KpiDefinition, DataScope, date, list[tuple[date, date]]]] = []
    for o in objectives:
        kpi = catalogue[o.kpi]
        found = _scope_as_of(conn, o, kpi, as_of, yesterday, ranges)
        if found is None:
            continue
        scope, objective_as_of = found
        start_from = max(scope.first, o.valid_from) if o.valid_from else scope.first
        periods = [(start, end) for start, end in _periods(o.period, start_from, objective_as_of)
                   if not ((o.valid_from and end < o.valid_from) or (o.valid_until and start > o.valid_until))]
        judged.append((o, kpi, scope, objective_as_of, periods))
    rows: list[dict[str, Any]] = []
    for (o, kpi, scope, objective_as_of, periods), actuals in zip(judged, _all_actuals(conn, judged), strict=True):
        for period, parts in zip(periods, actuals, strict=True):
            rows.append(evaluate(o, period, objective_as_of, parts, kpi, scope, minimums))
    _replace_table(conn, "kpi_vs_objective", pa.Table.from_pylist(rows, schema=_RESULT_SCHEMA))
    return rows
