"""Event times are stored as their published text reads back, without parsing it per event."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from geofence.events import Event, EventType, ExitReason, format_ts
from ingest.rules import TIMESTAMP
from services.store.observations import _parse_events, published_seconds

EPOCH_S = st.floats(min_value=0.0, max_value=253370764799.0, allow_nan=False, allow_infinity=False)
# Near half a microsecond, where the rounding rule decides.
TIES = st.builds(lambda s, us: s + (us + 0.5) / 1e6, st.integers(0, 4_000_000_000), st.integers(0, 999_999))


@given(st.lists(st.one_of(EPOCH_S, TIES), min_size=1, max_size=50))
def test_stored_seconds_are_the_published_text_read_back(ts: list[float]) -> None:
    expected = [TIMESTAMP.check("ts", format_ts(t)) for t in ts]
    assert published_seconds(np.array(ts, dtype=np.float64)) == expected


@given(
    st.sampled_from(list(EventType)),
    st.one_of(EPOCH_S, TIES),
    st.one_of(st.none(), st.floats(0.0, 3600.0)),
)
def test_an_event_records_the_same_row_as_its_published_dict(type_: EventType, ts: float, gap: float | None) -> None:
    fence = None if type_ in (EventType.SIGNAL_LOST, EventType.SIGNAL_RESTORED) else "f1"
    event = Event(
        type_,
        "d1",
        fence,
        ts,
        52.1,
        4.3,
        dwell_s=gap if type_ is EventType.EXIT else None,
        reason=ExitReason.LEFT if type_ is EventType.EXIT else None,
        gap_s=gap if type_ is EventType.SIGNAL_RESTORED else None,
        gap_start=None if gap is None or type_ is not EventType.SIGNAL_LOST else max(ts - gap, 0.0),
        extras={"officer_id": "o7", "callsign": None},
    )
    assert _parse_events([event]) == _parse_events([event.to_dict()])
