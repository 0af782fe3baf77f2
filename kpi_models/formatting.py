"""One way to write every KPI value, for the dashboard, the command line and anything else a person reads.

Why one module: a manager who sees "2.54%" in `mkpi kpis` and "2.5%" on the dashboard, or ROAS as "456.00%" in
one place and "4.56×" in another, stops trusting both. The rules are data (`FORMAT_RULES`): this module applies
them in Python, and the dashboard's script applies the very same rules (they are embedded in the page as JSON,
`format_spec()`), so a value computed in the browser for a custom date range is written exactly as here. The
browser test checks both give the same text for the same values.

Rules, by display unit:
  ratio     a percentage: 2 decimals below 10% ("2.54%"), 1 from 10% ("45.3%")
  multiple  ROAS-like ratios read as a multiple: "4.56×" (the catalogue stores ROAS as a ratio of sums)
  currency  thousands separators and the ISO code after: "69.87 EUR", "9,930 EUR" (no cents from 1,000)
  count     thousands separators: "7,983"; a fractional count below 100 keeps 1 decimal ("12.4" conversions)
  seconds   "2m 05s", "45s"
  position, score   1 decimal: "8.3", "-12.0"
  attainment        how far an objective is reached, a whole percentage: "95%" (`format_attainment`)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from connectors import registry

MISSING = "-"  # a value that does not exist (no data, or a ratio over zero)

# Per display unit: scale applied first, then decimals by the magnitude of the (scaled) value: [[below, decimals],
# ..., [None, decimals]] (the first step whose bound the absolute value is below wins), then the suffix
# ({currency} is replaced by the currency code, and dropped with the space before it when there is none).
# `integers` is the decimals used for a whole number (counts: "7,983", never "7,983.0").
FORMAT_RULES: dict[str, dict[str, Any]] = {
    "ratio": {"scale": 100, "steps": [[10, 2], [None, 1]], "suffix": "%"},
    "multiple": {"scale": 1, "steps": [[None, 2]], "suffix": "×"},
    "currency": {"scale": 1, "steps": [[1000, 2], [None, 0]], "suffix": " {currency}"},
    "count": {"scale": 1, "steps": [[100, 1], [None, 0]], "suffix": "", "integers": 0},
    "seconds": {"style": "duration"},
    "position": {"scale": 1, "steps": [[None, 1]], "suffix": ""},
    "score": {"scale": 1, "steps": [[None, 1]], "suffix": ""},
    "attainment": {"scale": 100, "steps": [[None, 0]], "suffix": "%"},
}
# An absolute change: a ratio's change is in percentage points; the others keep their unit.
DELTA_SUFFIX = {"ratio": " pp"}
PERCENT_CHANGE_DECIMALS = 1

# KPIs read as a multiple of their cost rather than a percentage (the catalogue's unit for them is `ratio`).
MULTIPLE_KPIS = frozenset({"ad_roas", "roas", "blended_roas"})

CHANNEL_LABELS = {
    "organic_search": "Organic search", "paid_search": "Paid search", "paid_other": "Other paid",
    "email": "E-mail", "referral": "Referral", "direct": "Direct", "social": "Social",
    "campaign_tagged": "Tagged campaigns", "other": "Other", "all": "All channels",
}
SOURCE_LABELS = registry.labels()
_ACRONYMS = {"ctr": "CTR", "cpc": "CPC", "cpa": "CPA", "roas": "ROAS", "nps": "NPS", "seo": "SEO", "roi": "ROI"}
# Readable names where the identifier's words are not enough.
KPI_LABELS = {"email_click_to_open_rate": "E-mail click-to-open rate", "avg_session_duration": "Avg session duration",
              "avg_engagement_time": "Avg engagement time", "search_avg_position": "Search avg position",
              "ecommerce_conversion_rate": "E-commerce conversion rate"}


def display_unit(unit: str | None, kpi: str | None = None) -> str:
    """The unit a value is written in: the catalogue's unit, except ROAS-like KPIs, written as a multiple."""
    if kpi in MULTIPLE_KPIS:
        return "multiple"
    return unit or "count"


def _decimals(rule: Mapping[str, Any], scaled: float) -> int:
    if "integers" in rule and float(scaled).is_integer():
        return int(rule["integers"])
    for bound, decimals in rule["steps"]:
        if bound is None or abs(scaled) < bound:
            return int(decimals)
    return 0


def _number(scaled: float, decimals: int) -> str:
    text = f"{scaled:,.{decimals}f}"
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text  # no "-0.0"


def _duration(seconds: float) -> str:
    total = round(abs(seconds))
    minutes, secs = divmod(total, 60)
    text = f"{minutes:,}m {secs:02d}s" if minutes else f"{secs}s"
    return f"-{text}" if seconds < 0 and total else text


def _suffix(rule: Mapping[str, Any], currency: str | None) -> str:
    suffix = str(rule.get("suffix", ""))
    if "{currency}" in suffix:
        return suffix.replace("{currency}", currency) if currency else ""
    return suffix


def format_value(value: float | None, unit: str | None, currency: str | None = None, kpi: str | None = None) -> str:
    """A KPI value as a person reads it (rules in the module docstring); `kpi` picks ROAS's "4.56×"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    rule = FORMAT_RULES.get(display_unit(unit, kpi), FORMAT_RULES["count"])
    if rule.get("style") == "duration":
        return _duration(float(value))
    scaled = float(value) * rule["scale"]
    return _number(scaled, _decimals(rule, scaled)) + _suffix(rule, currency)


def format_attainment(value: float | None) -> str:
    """An objective's attainment (actual / target, 1 = on target) as a whole percentage: 0.953 -> "95%"."""
    return format_value(value, "attainment")


def format_change(current: float | None, previous: float | None, unit: str | None, currency: str | None = None,
                  kpi: str | None = None) -> tuple[str, str]:
    """The change from `previous` to `current`: (absolute, relative), e.g. ("+1,204", "+12.3%") or
    ("-0.45 pp", "-8.1%") for a rate. A missing side gives MISSING; a change from zero has no relative change."""
    if current is None or previous is None or not math.isfinite(current) or not math.isfinite(previous):
        return MISSING, MISSING
    shown = display_unit(unit, kpi)
    delta = float(current) - float(previous)
    if shown == "seconds":
        absolute = _duration(delta)
    else:
        rule = FORMAT_RULES.get(shown, FORMAT_RULES["count"])
        scaled = delta * rule["scale"]
        absolute = _number(scaled, _decimals(rule, scaled)) + (DELTA_SUFFIX.get(shown) or _suffix(rule, currency))
    if not absolute.startswith("-") and any(c in "123456789" for c in absolute):
        absolute = "+" + absolute
    relative = MISSING
    if previous:
        pct = _number(delta / abs(float(previous)) * 100, PERCENT_CHANGE_DECIMALS)
        relative = ("+" if not pct.startswith("-") and any(c in "123456789" for c in pct) else "") + pct + "%"
    return absolute, relative


def change_tone(current: float | None, previous: float | None, direction: str) -> str:
    """"good", "bad" or "neutral": whether the change is good news for a KPI where `direction` ("higher" or
    "lower") is better (lower CPA and bounce rate are good news)."""
    if current is None or previous is None or current == previous:
        return "neutral"
    up = current > previous
    return "good" if up == (direction != "lower") else "bad"


def kpi_label(kpi: str) -> str:
    """"ad_cpc" -> "Ad CPC": readable names for cards, menus and legends."""
    if kpi in KPI_LABELS:
        return KPI_LABELS[kpi]
    words = [_ACRONYMS.get(w, w) for w in kpi.split("_")]
    first = words[0]
    return " ".join([first if first.isupper() else first[:1].upper() + first[1:], *words[1:]])


def channel_label(channel: str) -> str:
    """"organic_search" -> "Organic search"; an unknown channel as written."""
    return CHANNEL_LABELS.get(channel, channel.replace("_", " ").capitalize())


def source_label(source: str) -> str:
    """"search_console" -> "Search Console"."""
    return SOURCE_LABELS.get(source, source)


def format_spec() -> str:
    """The rules as JSON, for the dashboard's script (it writes browser-computed values exactly as here)."""
    return json.dumps({"rules": FORMAT_RULES, "delta_suffix": DELTA_SUFFIX, "missing": MISSING,
                       "percent_change_decimals": PERCENT_CHANGE_DECIMALS, "multiple_kpis": sorted(MULTIPLE_KPIS),
                       "channels": CHANNEL_LABELS, "sources": SOURCE_LABELS}, ensure_ascii=False)
