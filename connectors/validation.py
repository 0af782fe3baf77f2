"""Checks every connector applies to a platform's answer before it becomes a batch.

Why: an API that starts sending a count as "12.5", `NaN`, a negative number, the same row twice, a date
such as 20261345 or a 10 MB label must stop the run with the source, account, endpoint and field named
(`InvalidResponse`), never be coerced into a plausible number or a "0 rows, success". Connectors call
these helpers in their parsing code; the vectorised ones work on Arrow columns so large pages stay fast.

What is accepted: the types each API documents (GA4 and HubSpot send numbers as strings, Matomo sometimes
as strings or "50%"). Fields an API adds to a keyed object (a Matomo row, a HubSpot record) are ignored:
the connector reads the fields it declares. A positional column nobody asked for (a GA4 header, a Search
Console key) is refused, because values can no longer be matched to names.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.errors import InvalidResponse

# A label, name or URL longer than this is not data but a broken or hostile answer (GA4 caps dimension
# values at a few hundred characters, Search Console URLs at 2,048, HubSpot text properties at 65,536).
MAX_TEXT_CHARS = 65_536


@dataclass(frozen=True)
class Contract:
    """Where an answer came from: every failure it reports names source, account and endpoint."""

    source: str
    account: str
    endpoint: str

    def fail(self, field: str, problem: str, value: object = None) -> InvalidResponse:
        return InvalidResponse(self.source, self.account, self.endpoint, field, problem, value)

    # ---- one value ---------------------------------------------------------------------------------------

    def mapping(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(field, f"expected an object, got {type(value).__name__}", value)
        return value

    def sequence(self, value: Any, field: str, *, optional: bool = False) -> Sequence[Any]:
        if value is None and optional:
            return ()
        if not isinstance(value, list | tuple):
            raise self.fail(field, f"expected a list, got {type(value).__name__}", value)
        return value

    def required(self, record: Mapping[str, Any], key: str, field: str | None = None) -> Any:
        if key not in record or record[key] is None:
            raise self.fail(field or key, "missing")
        return record[key]

    def number(self, value: Any, field: str, *, non_negative: bool = False, optional: bool = False
               ) -> float | None:
        """A finite number from a JSON number or a numeric string; refuses bools, NaN, Infinity."""
        if value is None or value == "":
            if optional:
                return None
            raise self.fail(field, "missing")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(field, f"expected a number, got {type(value).__name__}", value)
        try:
            parsed = float(value)
        except (ValueError, OverflowError):  # OverflowError: an integer too large for a float (10**400)
            raise self.fail(field, "not a number", value) from None
        if not math.isfinite(parsed):
            raise self.fail(field, "not a finite number", value)
        if non_negative and parsed < 0:
            raise self.fail(field, "negative, but it is a count or an amount that cannot be", value)
        return parsed

    def count(self, value: Any, field: str, *, optional: bool = False) -> int | None:
        """A non-negative whole number (a count): 12, "12" or 12.0, never 12.5, -1, NaN or "abc"."""
        parsed = self.number(value, field, non_negative=True, optional=optional)
        if parsed is None:
            return None
        if not parsed.is_integer():
            raise self.fail(field, "a count must be a whole number", value)
        return int(parsed)

    def text(self, value: Any, field: str, *, optional: bool = True, max_chars: int = MAX_TEXT_CHARS
             ) -> str | None:
        if value is None:
            if optional:
                return None
            raise self.fail(field, "missing")
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, got {type(value).__name__}", value)
        if len(value) > max_chars:
            raise self.fail(field, f"string longer than {max_chars:,} characters", value)
        return value

    def day(self, value: Any, field: str, fmt: str = "%Y-%m-%d") -> date:
        """A calendar date in the API's format (GA4 YYYYMMDD, the others ISO)."""
        if not isinstance(value, str):
            raise self.fail(field, f"expected a date string, got {type(value).__name__}", value)
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            raise self.fail(field, f"not a valid date ({fmt})", value) from None

    def unique(self, keys: Iterable[Hashable], field: str, seen: set[Hashable] | None = None) -> None:
        """Refuse a key seen twice in a page (or, with `seen` shared across pages, in one read)."""
        seen = set() if seen is None else seen
        for key in keys:
            if key in seen:
                raise self.fail(field, "duplicate row: the same key twice in one read", key)
            seen.add(key)

    def advances(self, previous: Any, following: Any, field: str) -> None:
        """A paging cursor or offset must move, or the read would loop forever on one page."""
        if following is not None and following == previous:
            raise self.fail(field, "paging cursor does not advance (the same page would be read forever)",
                            following)

    # ---- whole Arrow columns -------------------------------------------------------------------------------

    def column(self, values: pa.Array | pa.ChunkedArray, field: str, *, non_negative: bool = False,
               max_chars: int = MAX_TEXT_CHARS) -> None:
        """Vectorised: no NaN or Infinity in a float column, no negatives where a count is meant, no string
        past `max_chars`."""
        dtype = values.type
        if pa.types.is_floating(dtype) and len(values):
            bad = pc.or_(pc.is_nan(values), pc.is_inf(values))
            if pc.any(bad).as_py():
                raise self.fail(field, "not a finite number", _first(values, bad))
        if non_negative and (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)) and len(values):
            negative = pc.less(values, 0)
            if pc.any(negative).as_py():
                raise self.fail(field, "negative, but it is a count or an amount that cannot be",
                                _first(values, negative))
        if pa.types.is_string(dtype) and len(values):
            lengths = pc.utf8_length(values)
            longest = pc.max(lengths).as_py()
            if longest is not None and longest > max_chars:
                raise self.fail(field, f"string longer than {max_chars:,} characters",
                                _first(values, pc.greater(lengths, max_chars)))

    def cast(self, strings: pa.Array, dtype: pa.DataType, field: str) -> pa.Array:
        """Cast API strings to `dtype`; name the first value that does not parse instead of Arrow's error."""
        try:
            return pc.cast(strings, dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        for value in strings.to_pylist():
            try:
                pc.cast(pa.array([value], pa.string()), dtype)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise self.fail(field, f"not a valid {dtype}", value) from None
        raise self.fail(field, f"not a valid {dtype}")


def _first(values: pa.Array | pa.ChunkedArray, mask: pa.Array | pa.ChunkedArray) -> Any:
    picked = pc.filter(values, pc.fill_null(mask, False))
    return picked[0].as_py() if len(picked) else None
