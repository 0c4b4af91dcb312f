"""Events as the API and the page show them: each with the officer who carried its device then.

The event log keeps what the pings said; who carried a radio is applied when events are read
(from the assignments as they stand), so correcting an assignment corrects every event shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from geofence.assignments import attribute
from services.store import Store, StoredEvent
from services.store.assignments import assignment_table


async def attributed_events(store: Store, rows: Sequence[StoredEvent]) -> list[StoredEvent]:
    """The events with officer_id, callsign and team (in the body too) by the precedence rule:
    the event's own officer, else the assignment of its device at its ts."""
    if not rows:
        return list(rows)
    table = await assignment_table(store, devices=[r.device_id for r in rows])
    if not len(table):
        return list(rows)
    found = table.resolve([r.device_id for r in rows], [r.ts for r in rows]).tolist()
    out = []
    for r, k in zip(rows, found, strict=True):
        if k < 0:
            out.append(r)
            continue
        who = attribute(r.officer_id, r.callsign, table.rows[k])
        named = {"officer_id": who.officer_id, "callsign": who.callsign, "team": who.team}
        body = {**r.body, **{key: v for key, v in named.items() if v is not None}}
        out.append(r._replace(officer_id=who.officer_id, callsign=who.callsign, body=body))
    return out
