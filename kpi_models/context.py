"""What every KPI rebuild needs besides the raw rows: one object built from the settings, passed everywhere.

Why one object: the time zone days are cut in, the as-of day every table stops at, the channel mapping, the
restatement windows that decide whether a value is final, and the FX policy must be the same for every table of
a run; passed one by one they drifted (crm_monthly counted today's partial day while kpi_daily stopped at
yesterday, issue #16).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors import registry
from kpi_models.fx import FxPolicy


@dataclass(frozen=True)
class KpiContext:
    """The parameters of a KPI rebuild.

    `as_of` is the last complete day (default: yesterday in `tz`, computed when the context is made): no KPI table
    counts a day after it. `reread_days` per source: a day loaded at least that many days after it is final."""

    tz: str = "UTC"
    as_of: date | None = None
    channels: Mapping[str, Mapping[str, str]] | None = None
    # the restatement windows of rule 7 (docs/kpi-rules.md), when no settings are given (tests, tools): the registry's
    # defaults when the context is made (a source registered after import has its window too)
    reread_days: Mapping[str, int] = field(default_factory=lambda: {s.code: s.reread_days for s in registry.SOURCES})
    fx: FxPolicy = field(default_factory=FxPolicy)
    # The HubSpot contact property holding the date a customer was lost (churn_rate reads it).
    churn_date_property: str = "churn_date"

    def __post_init__(self) -> None:
        ZoneInfo(self.tz)  # an unknown zone fails here, naming it, not inside SQL
        if self.as_of is None:
            object.__setattr__(self, "as_of", datetime.now(ZoneInfo(self.tz)).date() - timedelta(days=1))

    @property
    def last_day(self) -> date:
        assert self.as_of is not None
        return self.as_of

    def params(self) -> dict[str, Any]:
        """The named SQL parameters every model may use: $tz and $as_of."""
        return {"tz": self.tz, "as_of": self.last_day}

    @classmethod
    def from_settings(cls, settings: Any, as_of: date | None = None) -> KpiContext:
        """The context of a run from connectors.settings.Settings."""
        return cls(
            tz=settings.reporting_timezone, as_of=as_of, channels=settings.channels,
            reread_days={s.code: s.configured_reread_days(settings) for s in registry.SOURCES},
            fx=FxPolicy(settings.reporting_currency, settings.fx_source, settings.fx_rates),
            churn_date_property=settings.hubspot.churn_date_property)
