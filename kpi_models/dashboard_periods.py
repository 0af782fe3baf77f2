"""The dashboard's periods and what each is compared with.

A manager asks "how are we doing this month, and is that better than last month and than a year ago?". The
answer is only fair when both sides cover the same kind of days, so the comparison windows are defined here once:

  this month    1st .. as-of day     previous: the same days of the previous month (1 .. same day, clamped to its
                                     end); a month to date is never compared with a whole month
  last month    the whole month       previous: the whole month before
  this quarter  1st day .. as-of     previous: the same elapsed days of the previous quarter (clamped)
  last N days   N days to as-of       previous: the N days just before
  custom        chosen in the page    previous: as many days just before (computed by the page's script)
  same period last year: the same dates one year earlier (29 February becomes the 28th)

The as-of day is the last day the KPI tables have (yesterday in the reporting time zone): today is still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Window:
    """An inclusive range of days."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class Period:
    """A period a manager picks, with its two comparison windows; `running` when it is not over yet."""

    key: str
    label: str
    current: Window
    previous: Window
    last_year: Window
    running: bool

    def windows(self) -> dict[str, Window]:
        return {"cur": self.current, "prev": self.previous, "ly": self.last_year}


PRESET_KEYS = ("this_month", "last_month", "this_quarter", "last_7", "last_28", "last_90")
DEFAULT_PERIOD = "this_month"
ROLLING = {"last_7": 7, "last_28": 28, "last_90": 90}


def month_end(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the end of a shorter month."""
    index = day.year * 12 + day.month - 1 + months
    first = date(index // 12, index % 12 + 1, 1)
    return first.replace(day=min(day.day, month_end(first).day))


def last_year(window: Window) -> Window:
    """The same dates one year earlier (29 February becomes the 28th)."""
    return Window(add_months(window.start, -12), add_months(window.end, -12))


def _to_date_like(start: date, as_of: date, previous_start: date, previous_last: date) -> Window:
    """The previous period's first days, as many as have elapsed in the current one, clamped to its end."""
    return Window(previous_start, min(previous_start + (as_of - start), previous_last))


def presets(as_of: date) -> list[Period]:
    """Every preset period for data up to `as_of`, in menu order."""
    month = as_of.replace(day=1)
    prev_month = add_months(month, -1)
    quarter = as_of.replace(month=(as_of.month - 1) // 3 * 3 + 1, day=1)
    prev_quarter = add_months(quarter, -3)
    periods = []
    current = Window(month, as_of)
    periods.append(Period("this_month", "This month", current,
                          _to_date_like(month, as_of, prev_month, month - timedelta(days=1)), last_year(current),
                          as_of < month_end(as_of)))
    current = Window(prev_month, month - timedelta(days=1))
    before = add_months(prev_month, -1)
    periods.append(Period("last_month", "Last month", current, Window(before, prev_month - timedelta(days=1)),
                          Window(add_months(prev_month, -12), month_end(add_months(prev_month, -12))), False))
    current = Window(quarter, as_of)
    periods.append(Period("this_quarter", "This quarter", current,
                          _to_date_like(quarter, as_of, prev_quarter, quarter - timedelta(days=1)),
                          last_year(current), as_of < month_end(add_months(quarter, 2))))
    for key, days in ROLLING.items():
        current = Window(as_of - timedelta(days=days - 1), as_of)
        periods.append(Period(key, f"Last {days} days", current,
                              Window(current.start - timedelta(days=days), current.start - timedelta(days=1)),
                              last_year(current), False))
    return periods


def data_range(as_of: date) -> Window:
    """The days the page needs: every preset window and its comparisons (custom ranges are chosen inside it)."""
    starts = [w.start for p in presets(as_of) for w in p.windows().values()]
    return Window(min(starts), as_of)
