"""Hand-made visits for the compliance tests: minutes after a window's start, written to the store
as the matcher would leave them (visits rows, open ones with exit_ts NULL, and devices rows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.store import Store, devices_table, events_table, visits

#: Fri 20 Nov 2026 20:00 GMT (= UTC): the start of the "fri, sat 20:00-04:00" window that night.
FRI = datetime(2026, 11, 20, 20, tzinfo=UTC).timestamp()
#: Sat 21 Nov 2026 20:00 GMT: the next night's window.
SAT = datetime(2026, 11, 21, 20, tzinfo=UTC).timestamp()


def at(base: float, minutes: float) -> float:
    return base + minutes * 60.0


def plan_doc(
    plan_id: str = "hs-01-nte", fence_id: str = "A", team: str | None = "Team A", **over: Any
) -> dict[str, Any]:
    """3 visits of >= 10 min (15 min guidance), max gap 120 min, Fri and Sat 20:00-04:00."""
    plan: dict[str, Any] = {
        "plan_id": plan_id, "fence_id": fence_id, "team": team, "target_pct": 90, "min_visit_min": 10,
        "target_visit_min": 15, "max_gap_min": 120,
        "windows": [{"days": ["fri", "sat"], "start": "20:00", "end": "04:00", "visits": 3}],
    }  # fmt: skip
    plan.update(over)
    return plan


async def put_visits(
    store: Store,
    rows: Sequence[tuple[str, str, float, float | None]],
    last_ts: dict[str, float],
    officers: dict[str, str | None] | None = None,
) -> None:
    """Visits (device, fence, enter, exit or None while open), their ENTER events carrying the
    device's officer as the matcher writes them, and each device's last ping and officer."""
    who = officers or {}
    async with store.write() as conn:
        await conn.execute(
            visits.insert(),
            [
                {"device_id": d, "fence_id": f, "enter_ts": s, "exit_ts": e, "dwell_s": None if e is None else e - s,
                 "exit_reason": None if e is None else "left"}
                for d, f, s, e in rows
            ],
        )  # fmt: skip
        await conn.execute(
            events_table.insert(),
            [
                {"event_id": f"enter-{d}-{f}-{s}", "type": "enter", "device_id": d, "fence_id": f, "ts": s,
                 "officer_id": who.get(d), "callsign": None, "body": {}}
                for d, f, s, _ in rows
            ],
        )  # fmt: skip
        await conn.execute(
            devices_table.insert(),
            [
                {"device_id": d, "first_ts": 0.0, "last_ts": t, "lat": 0.0005, "lon": 0.0005, "accuracy_m": None,
                 "lost": False, "officer_id": who.get(d), "callsign": None, "source": None, "updated_at": t}
                for d, t in last_ts.items()
            ],
        )  # fmt: skip
