"""Time query parameters: ISO 8601 with an offset, or epoch seconds; errors name the parameter."""

from __future__ import annotations

import math
from datetime import datetime

from fastapi import HTTPException, status


def parse_time(name: str, value: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 (with offset) or epoch value; 422 naming `name` otherwise."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise invalid_query(name, f"{value!r} is neither ISO 8601 nor epoch seconds") from None
        if parsed.tzinfo is None:
            raise invalid_query(name, f"{value!r} has no UTC offset") from None
        return parsed.timestamp()
    if not math.isfinite(number):
        raise invalid_query(name, f"{value!r} is not a finite number")
    return number


def time_range(start: str | None, end: str | None, *, required: bool) -> tuple[float | None, float | None]:
    """A checked [from, to) range; `to` must come after `from`."""
    lo, hi = parse_time("from", start), parse_time("to", end)
    if required and lo is None:
        raise invalid_query("from", "is required")
    if required and hi is None:
        raise invalid_query("to", "is required")
    if lo is not None and hi is not None and hi <= lo:
        raise invalid_query("to", "must be after from")
    return lo, hi


def invalid_query(name: str, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["query", name], "msg": f"{name} {message}", "type": "value_error"}],
    )
