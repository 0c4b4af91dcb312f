"""The serialised event: one batch written at once gives exactly each event's own bytes."""

from __future__ import annotations

import numpy as np

from geofence.events import Event, EventType, ExitReason, events_jsonl, format_ts, format_ts_many


def test_format_ts_many_matches_format_ts_on_rounding_edges_and_random_times() -> None:
    edges = [0.0, -0.5, -1.0, 0.9999995, 1.9999995, 5e-7, 1.5e-6, -5e-7, 1_795_000_000.0000005, 1_795_000_000.25]
    rng = np.random.default_rng(4)
    ts = np.concatenate((edges, rng.uniform(-2e9, 4e9, 5000), np.round(rng.uniform(0, 2e9, 5000), 3)))
    assert format_ts_many(ts) == [format_ts(t) for t in ts.tolist()]


def test_events_jsonl_is_each_events_to_json_line_even_with_awkward_strings() -> None:
    awkward = {"callsign": 'a"},\n,{b', "officer_id": "é\\x", "status": None}
    events = [
        Event(EventType.ENTER, "R1", "F,\n,", 1.5, 51.5, -0.1, extras=awkward, fence_version=3),
        Event(EventType.EXIT, "R1", "F,\n,", 2.0, 51.5, -0.1, dwell_s=0.1 + 0.2, reason=ExitReason.LEFT),
        Event(EventType.SIGNAL_LOST, "R1", None, 3.0, 51.5, -0.1, gap_start=2.25),
        Event(EventType.SIGNAL_LOST, "R2", None, 3.000001, 51.5, -0.1),
        Event(EventType.SIGNAL_RESTORED, "R2", None, 500.0, 51.5, -0.1, gap_s=497.0, fence_version=3),
    ]
    assert events_jsonl(events) == b"".join(e.to_json() + b"\n" for e in events)
    assert events_jsonl([]) == b""
