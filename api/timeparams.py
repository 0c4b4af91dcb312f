"""Time query parameters: the timestamp rule of every input (ingest.rules); errors name the parameter."""

from __future__ import annotations

from fastapi import HTTPException, status

from ingest.rules import REQUIRED, TIMESTAMP


def parse_time(name: str, value: str | None) -> float | None:
    """Epoch seconds by the timestamp rule (ingest.rules); 422 naming `name` otherwise."""
    if value is None:
        return None
    seconds = TIMESTAMP.parse(value, text=True)
    if seconds is None or isinstance(seconds, str):
        raise invalid_query(name, TIMESTAMP.reason(value, text=True) or REQUIRED)
    return seconds


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
