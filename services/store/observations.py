"""Recording what the pipeline observed: the event log, visits, devices now, presence, signal-loss gaps.

These query tables behind the API are written from each batch's events and changed devices,
idempotently (recording the same observations again changes nothing), either in a transaction
of their own (`record`: replay, tests) or in the checkpoint's (`CheckpointStore.save_checkpoint`),
so they hold every event exactly once. Writes are bulk statements in driver SQL, one per kind of
row change: over unnest'ed column arrays on PostgreSQL, executemany or many-row VALUES on SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from geofence.events import Event, EventType, format_ts, format_ts_many
from geofence.intervals import DAY_S, bucket_start, codes, pieces, sum_by
from ingest.rules import TIMESTAMP
from services.store.database import Database, columns, json_dumps

#: Key of the PostgreSQL advisory lock that makes event seq values visible in commit order.
EVENTS_LOCK_KEY = 0x486F747370457673  # "HotspEvs"


@dataclass(frozen=True, slots=True)
class DeviceNow:
    """A device as of its last applied ping, and the fences it is inside (fence id -> visit start)."""

    first_ts: float
    last_ts: float
    lat: float
    lon: float
    accuracy_m: float | None
    lost: bool
    officer_id: str | None
    callsign: str | None
    source: str | None
    inside: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observations:
    """What a batch of pings produced, for the query tables: the events in emission order
    (`Event`s, or their published dicts: `ts` ISO 8601 or epoch seconds) and the devices
    whose state changed."""

    events: Sequence[Event | Mapping[str, Any]]
    devices: Mapping[str, DeviceNow]


def devices_now(records: Mapping[str, Mapping[str, Any]]) -> dict[str, DeviceNow]:
    """DeviceNow of each engine device record (`Engine.checkpoint()` / `snapshot()["devices"]`).

    Devices with no applied ping yet (pings still held for reordering) are left out. The
    engine keeps no first ping time: it is `last_ts - active_s - lost_s`, since every gap
    between two consecutive applied pings counts as active or as lost.
    """
    out: dict[str, DeviceNow] = {}
    for device_id, rec in records.items():
        last_ts = rec.get("last_ts")
        if last_ts is None:
            continue
        extras = rec.get("extras") or {}
        out[device_id] = DeviceNow(
            first_ts=float(last_ts) - float(rec.get("active_s") or 0.0) - float(rec.get("lost_s") or 0.0),
            last_ts=float(last_ts),
            lat=float(rec["last_lat"]),
            lon=float(rec["last_lon"]),
            accuracy_m=opt_float(rec.get("last_acc")),
            lost=bool(rec.get("lost", False)),
            officer_id=_text(extras.get("officer_id")),
            callsign=_text(extras.get("callsign")),
            source=_text(extras.get("source")),
            inside={f: float(t) for f, t in (rec.get("inside") or {}).items()},
        )
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class _Ev(NamedTuple):
    """An event as stored, with the fields visits and gaps are derived from."""

    event_id: str
    type: str
    device_id: str
    fence_id: str | None
    ts: float
    officer_id: str | None
    callsign: str | None
    body: str  # JSON
    dwell_s: float | None
    gap_s: float | None
    reason: str | None


def _epoch(value: Any) -> float:
    """Epoch seconds of a published ts, by the one timestamp rule of every input (ingest.rules)."""
    return TIMESTAMP.check("ts", value)


def opt_float(value: Any) -> float | None:
    """None stays None (a NULL column); anything else becomes a float."""
    return None if value is None else float(value)


def _parse_events(events: Iterable[Event | Mapping[str, Any]]) -> list[_Ev]:
    """Events in the given order, the first of each event_id only, with bodies as published.

    Times are taken from the published form (microseconds), whether an `Event` or its dict is
    given, so the two record the same rows; numbers given for `ts`/`gap_start` are published
    as ISO 8601 the way `format_ts` does.
    """
    out: list[_Ev] = []
    seen: set[str] = set()
    for body, ts in _published(list(events)):
        event_id = str(body["event_id"])
        if event_id in seen:
            continue
        seen.add(event_id)
        reason = body.get("reason")
        out.append(
            _Ev(
                event_id,
                str(body["type"]),
                str(body["device_id"]),
                _text(body.get("fence_id")),
                ts,
                _text(body.get("officer_id")),
                _text(body.get("callsign")),
                json_dumps(body),
                opt_float(body.get("dwell_s")),
                opt_float(body.get("gap_s")),
                None if reason is None else str(reason),
            )
        )
    return out


def _published(events: Sequence[Event | Mapping[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """Each event's published body and the epoch seconds its ts text stands for.

    `Event`s are formatted for the whole batch at once (`format_ts_many`) and their times
    rounded to the microsecond the same way, not parsed back one by one: a checkpoint holds
    thousands of events and this ran on every one of them. Dicts go through the input rules.
    """
    out: list[tuple[dict[str, Any], float] | None] = [None] * len(events)
    mine = [i for i, e in enumerate(events) if isinstance(e, Event)]
    if mine:
        evs = [e for e in events if isinstance(e, Event)]
        ts = np.fromiter((e.ts for e in evs), np.float64, len(evs))
        lost = [k for k, e in enumerate(evs) if e.type is EventType.SIGNAL_LOST]
        starts = [e.ts if e.gap_start is None else e.gap_start for e in (evs[k] for k in lost)]
        gap_start = dict(zip(lost, format_ts_many(np.array(starts, dtype=np.float64)), strict=True))
        stamps, seconds = format_ts_many(ts), published_seconds(ts)
        for k, (i, e) in enumerate(zip(mine, evs, strict=True)):
            out[i] = (e._body(e.event_id, stamps[k], gap_start.get(k, "")), seconds[k])
    for i, given in enumerate(events):
        if not isinstance(given, Event):
            body = dict(given)
            for key in ("ts", "gap_start"):
                if isinstance(body.get(key), int | float):
                    body[key] = format_ts(float(body[key]))
            out[i] = (body, _epoch(body["ts"]))
    return out  # type: ignore[return-value]  # every slot is filled


def published_seconds(ts: np.ndarray[Any, np.dtype[np.float64]]) -> list[float]:
    """Epoch seconds as their `format_ts` text reads back: rounded to the microsecond with
    datetime's split and half-even rounding, divided exactly (Python ints: past 2**53 µs a
    float division would round twice)."""
    frac, whole = np.modf(ts)
    micros = whole.astype(np.int64) * 1_000_000 + np.rint(frac * 1e6).astype(np.int64)
    return [m / 1_000_000 for m in micros.tolist()]


@dataclass(slots=True)
class _Changes:
    """Row changes the events imply, for bulk statements.

    visits: (device, fence, enter_ts, exit_ts, dwell_s, reason), entered in this batch (exit
    fields set when it also ended in it); closes: (device, fence, exit_ts, reason, dwell_s) of
    visits entered before; gaps: (device, start_ts, end_ts) lost in this batch; restores:
    (device, end_ts, gap_s) of gaps that started before.
    """

    visits: list[tuple[Any, ...]] = field(default_factory=list)
    closes: list[tuple[Any, ...]] = field(default_factory=list)
    gaps: list[tuple[Any, ...]] = field(default_factory=list)
    restores: list[tuple[Any, ...]] = field(default_factory=list)


def _changes(evs: Iterable[_Ev]) -> _Changes:
    visit_rows: list[list[Any]] = []
    open_visits: dict[tuple[str, str], list[Any]] = {}
    gap_rows: list[list[Any]] = []
    open_gaps: dict[str, list[Any]] = {}
    ch = _Changes()
    for e in evs:
        if e.type == EventType.ENTER and e.fence_id is not None:
            row = [e.device_id, e.fence_id, e.ts, None, None, None]
            visit_rows.append(row)
            open_visits[(e.device_id, e.fence_id)] = row
        elif e.type == EventType.EXIT and e.fence_id is not None:
            row_or_none = open_visits.pop((e.device_id, e.fence_id), None)
            if row_or_none is None:
                ch.closes.append((e.device_id, e.fence_id, e.ts, e.reason, e.dwell_s))
            else:
                row_or_none[3:] = [e.ts, e.ts - row_or_none[2], e.reason]
        elif e.type == EventType.SIGNAL_LOST:
            gap_row = [e.device_id, e.ts, None]
            gap_rows.append(gap_row)
            open_gaps[e.device_id] = gap_row
        elif e.type == EventType.SIGNAL_RESTORED:
            gap_or_none = open_gaps.pop(e.device_id, None)
            if gap_or_none is None:
                ch.restores.append((e.device_id, e.ts, e.gap_s))
            else:
                gap_or_none[2] = e.ts
    ch.visits = [tuple(r) for r in visit_rows]
    ch.gaps = [tuple(r) for r in gap_rows]
    return ch


def rollup_rows(closed: Iterable[tuple[Any, ...]]) -> dict[tuple[float, str], list[Any]]:
    """The rollup rows of closed visits (fence, enter_ts, exit_ts): (day, fence) -> [visits, dwell_s],
    each visit counted on the UTC day of its ENTER and its time split at midnights; by fence, day."""
    fence_ids, enters, exits = columns(list(closed)) or ([], [], [])
    fences, fence = codes(fence_ids)
    enter, exit_ = np.array(enters, np.float64), np.array(exits, np.float64)
    i, day, secs = pieces(enter, exit_, DAY_S)
    fence, day = np.concatenate((fence, fence[i])), np.concatenate((bucket_start(enter, DAY_S), day))
    figure = np.repeat([0, 1], [len(enter), len(i)])  # visits entered, dwell
    first, sums = sum_by(
        [fence, np.rint(day / DAY_S).astype(np.int64)], figure, np.append(np.ones(len(enter)), secs), 2
    )
    keys = zip(day[first].tolist(), fence[first].tolist(), strict=True)
    return {(d, fences[f]): [round(n), x] for (d, f), (n, x) in zip(keys, sums.tolist(), strict=True)}


_VISIT_COLS = "device_id, fence_id, enter_ts, exit_ts, dwell_s, exit_reason"
_VISIT_CONFLICT = """ON CONFLICT (device_id, fence_id, enter_ts) DO UPDATE
SET exit_ts = excluded.exit_ts, dwell_s = excluded.dwell_s, exit_reason = excluded.exit_reason
WHERE visits.exit_ts IS NULL AND excluded.exit_ts IS NOT NULL"""
_PG_VISITS = f"""INSERT INTO visits ({_VISIT_COLS})
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::text[])
{_VISIT_CONFLICT}"""
_SQLITE_VISITS = f"INSERT INTO visits ({_VISIT_COLS}) VALUES (?, ?, ?, ?, ?, ?) {_VISIT_CONFLICT}"
_PG_CLOSE_VISITS = """UPDATE visits AS v SET exit_ts = u.ts, dwell_s = u.ts - v.enter_ts, exit_reason = u.reason
FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[]) AS u(device_id, fence_id, ts, reason)
WHERE v.device_id = u.device_id AND v.fence_id = u.fence_id AND v.exit_ts IS NULL AND v.enter_ts <= u.ts
RETURNING v.fence_id, v.enter_ts, v.exit_ts"""
_SQLITE_CLOSE_VISITS = """WITH u(device_id, fence_id, ts, reason) AS (VALUES {values})
UPDATE visits SET exit_ts = u.ts, dwell_s = u.ts - visits.enter_ts, exit_reason = u.reason FROM u
WHERE visits.device_id = u.device_id AND visits.fence_id = u.fence_id AND visits.exit_ts IS NULL
  AND visits.enter_ts <= u.ts
RETURNING fence_id, enter_ts, exit_ts"""
# An EXIT whose ENTER was never recorded (e.g. a visit open when the store was upgraded): the whole visit.
_PG_WHOLE_VISITS = f"""INSERT INTO visits ({_VISIT_COLS})
SELECT u.device_id, u.fence_id, u.ts - u.dwell, u.ts, u.dwell, u.reason
FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::float8[]) AS u(device_id, fence_id, ts, reason, dwell)
WHERE NOT EXISTS (SELECT 1 FROM visits v WHERE v.device_id = u.device_id AND v.fence_id = u.fence_id
                  AND v.exit_ts = u.ts)
ON CONFLICT DO NOTHING RETURNING fence_id, enter_ts, exit_ts"""
_SQLITE_WHOLE_VISITS = f"""WITH u(device_id, fence_id, ts, reason, dwell) AS (VALUES {{values}})
INSERT INTO visits ({_VISIT_COLS}) SELECT u.device_id, u.fence_id, u.ts - u.dwell, u.ts, u.dwell, u.reason FROM u
WHERE NOT EXISTS (SELECT 1 FROM visits v WHERE v.device_id = u.device_id AND v.fence_id = u.fence_id
                  AND v.exit_ts = u.ts)
ON CONFLICT DO NOTHING RETURNING fence_id, enter_ts, exit_ts"""
# Visits that end in the batch they start in; SQLite's form is one statement of many rows.
_PG_ENDED_VISITS = _PG_VISITS + " RETURNING fence_id, enter_ts, exit_ts"
_SQLITE_ENDED_VISITS = f"""INSERT INTO visits ({_VISIT_COLS}) VALUES {{values}} {_VISIT_CONFLICT}
RETURNING fence_id, enter_ts, exit_ts"""

_ROLL_UP_CONFLICT = """ON CONFLICT (day, fence_id) DO UPDATE
SET visits = dwell_fence_days.visits + excluded.visits, dwell_s = dwell_fence_days.dwell_s + excluded.dwell_s"""
_PG_ROLL_UP = f"""INSERT INTO dwell_fence_days (day, fence_id, visits, dwell_s)
SELECT * FROM unnest($1::float8[], $2::text[], $3::int8[], $4::float8[]) {_ROLL_UP_CONFLICT}"""
_SQLITE_ROLL_UP = (
    f"INSERT INTO dwell_fence_days (day, fence_id, visits, dwell_s) VALUES (?, ?, ?, ?) {_ROLL_UP_CONFLICT}"
)
_PG_BUMP = "UPDATE query_state SET version = version + 1, longest_visit_s = GREATEST(longest_visit_s, $1) WHERE id = 1"
_SQLITE_BUMP = "UPDATE query_state SET version = version + 1, longest_visit_s = max(longest_visit_s, ?) WHERE id = 1"

_GAP_CONFLICT = """ON CONFLICT (device_id, start_ts) DO UPDATE SET end_ts = excluded.end_ts
WHERE lost_gaps.end_ts IS NULL AND excluded.end_ts IS NOT NULL"""
_PG_GAPS = f"""INSERT INTO lost_gaps (device_id, start_ts, end_ts)
SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[]) {_GAP_CONFLICT}"""
_SQLITE_GAPS = f"INSERT INTO lost_gaps (device_id, start_ts, end_ts) VALUES (?, ?, ?) {_GAP_CONFLICT}"
_PG_CLOSE_GAPS = """UPDATE lost_gaps AS g SET end_ts = u.ts
FROM unnest($1::text[], $2::float8[]) AS u(device_id, ts)
WHERE g.device_id = u.device_id AND g.end_ts IS NULL AND g.start_ts <= u.ts"""
_SQLITE_CLOSE_GAPS = """UPDATE lost_gaps SET end_ts = ?2
WHERE device_id = ?1 AND end_ts IS NULL AND start_ts <= ?2"""
_PG_WHOLE_GAPS = """INSERT INTO lost_gaps (device_id, start_ts, end_ts)
SELECT u.device_id, u.ts - u.gap, u.ts FROM unnest($1::text[], $2::float8[], $3::float8[]) AS u(device_id, ts, gap)
WHERE NOT EXISTS (SELECT 1 FROM lost_gaps g WHERE g.device_id = u.device_id AND g.end_ts = u.ts)
ON CONFLICT DO NOTHING"""
_SQLITE_WHOLE_GAPS = """INSERT INTO lost_gaps (device_id, start_ts, end_ts) SELECT ?1, ?2 - ?3, ?2
WHERE NOT EXISTS (SELECT 1 FROM lost_gaps WHERE device_id = ?1 AND end_ts = ?2)
ON CONFLICT DO NOTHING"""

_DEVICE_COLS = "device_id, first_ts, last_ts, lat, lon, accuracy_m, lost, officer_id, callsign, source, updated_at"
_DEVICE_SET = ", ".join(f"{c} = excluded.{c}" for c in _DEVICE_COLS.split(", ")[2:])
_PG_DEVICES = f"""INSERT INTO devices ({_DEVICE_COLS})
SELECT u.*, $11::float8 FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::float8[],
                                    $6::float8[], $7::bool[], $8::text[], $9::text[], $10::text[]) AS u
ON CONFLICT (device_id) DO UPDATE SET first_ts = LEAST(devices.first_ts, excluded.first_ts), {_DEVICE_SET}"""
_SQLITE_DEVICES = f"""INSERT INTO devices ({_DEVICE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (device_id) DO UPDATE SET first_ts = min(devices.first_ts, excluded.first_ts), {_DEVICE_SET}"""
_PG_DELETE_PRESENCE = "DELETE FROM presence WHERE device_id = ANY($1::text[])"
_SQLITE_DELETE_PRESENCE = "DELETE FROM presence WHERE device_id = ?"
_PG_PRESENCE = """INSERT INTO presence (device_id, fence_id, since)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[])"""
_SQLITE_PRESENCE = "INSERT INTO presence (device_id, fence_id, since) VALUES (?, ?, ?)"

_EVENT_COLS = "event_id, type, device_id, fence_id, ts, officer_id, callsign, body"
_PG_EVENTS = f"""INSERT INTO events ({_EVENT_COLS})
SELECT u.event_id, u.type, u.device_id, u.fence_id, u.ts, u.officer_id, u.callsign, u.body::json
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::text[], $8::text[])
     WITH ORDINALITY AS u(event_id, type, device_id, fence_id, ts, officer_id, callsign, body, n)
ORDER BY u.n
ON CONFLICT (event_id) DO NOTHING"""
_SQLITE_EVENTS = f"INSERT INTO events ({_EVENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"


class ObservationStore(Database):
    """Writes of the query tables (reads are in queries.py)."""

    async def record(self, events: Sequence[Event | Mapping[str, Any]], devices: Mapping[str, DeviceNow]) -> None:
        """Record events and device states in a transaction of their own (replay, tests).

        The live pipeline passes them to `save_checkpoint` instead, to commit them with the offset.
        """
        async with self.write() as conn:
            await self._record(conn, Observations(events, devices))

    async def _record(self, conn: AsyncConnection, obs: Observations) -> None:
        """Write observations on the caller's transaction; recording the same ones again changes nothing.

        Events are inserted once per event_id. Visits and lost gaps follow the events in order:
        an ENTER opens a visit (kept if it exists), an EXIT closes the device's open visit of
        that fence (or, when its ENTER was never recorded, inserts the whole visit from its
        dwell_s); SIGNAL_LOST opens a gap at its ts, SIGNAL_RESTORED closes it. Devices are
        upserted (first_ts never moves later) and their presence rows replaced by `inside`.
        The visits these statements actually close (not those closed before) are added to the
        daily rollup, and the query-state version is bumped for the API's caches.
        """
        evs = _parse_events(obs.events)
        ch = _changes(evs)
        pg = self._pg
        closed: list[tuple[Any, ...]] = []  # (fence, enter_ts, exit_ts) of visits closed here
        if ch.visits:
            still_open = [r for r in ch.visits if r[3] is None]
            if still_open:
                await self._bulk(conn, _PG_VISITS if pg else _SQLITE_VISITS, still_open)
            ended = [r for r in ch.visits if r[3] is not None]
            if ended:
                closed += await self._bulk_returning(conn, _PG_ENDED_VISITS if pg else _SQLITE_ENDED_VISITS, ended)
        if ch.closes:
            closes = [c[:4] for c in ch.closes]
            closed += await self._bulk_returning(conn, _PG_CLOSE_VISITS if pg else _SQLITE_CLOSE_VISITS, closes)
            whole = [c for c in ch.closes if c[4] is not None]
            if whole:
                closed += await self._bulk_returning(conn, _PG_WHOLE_VISITS if pg else _SQLITE_WHOLE_VISITS, whole)
        if closed:
            sums = [(day, fence, n, secs) for (day, fence), (n, secs) in rollup_rows(closed).items()]
            await self._bulk(conn, _PG_ROLL_UP if pg else _SQLITE_ROLL_UP, sums)
        if ch.gaps:
            await self._bulk(conn, _PG_GAPS if pg else _SQLITE_GAPS, ch.gaps)
        if ch.restores:
            await self._bulk(conn, _PG_CLOSE_GAPS if pg else _SQLITE_CLOSE_GAPS, [r[:2] for r in ch.restores])
            whole = [r for r in ch.restores if r[2] is not None]
            if whole:
                await self._bulk(conn, _PG_WHOLE_GAPS if pg else _SQLITE_WHOLE_GAPS, whole)
        if obs.devices:
            await self._record_devices(conn, obs.devices)
        if evs:
            if pg:  # seq values become visible in commit order: an SSE poller paging by seq skips none
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(EVENTS_LOCK_KEY)))
            rows = [(e.event_id, e.type, e.device_id, e.fence_id, e.ts, e.officer_id, e.callsign, e.body) for e in evs]
            await self._bulk(conn, _PG_EVENTS if pg else _SQLITE_EVENTS, rows)
        if evs or obs.devices:  # last: the one row every writer updates is held the shortest time
            longest = max((exit_ts - enter_ts for _, enter_ts, exit_ts in closed), default=0.0)
            await conn.exec_driver_sql(_PG_BUMP if pg else _SQLITE_BUMP, (longest,))

    async def _record_devices(self, conn: AsyncConnection, devices: Mapping[str, DeviceNow]) -> None:
        rows = [
            (d, n.first_ts, n.last_ts, n.lat, n.lon, n.accuracy_m, n.lost, n.officer_id, n.callsign, n.source)
            for d, n in devices.items()
        ]
        inside = [(d, f, since) for d, n in devices.items() for f, since in n.inside.items()]
        now = time.time()
        if self._pg:
            await conn.exec_driver_sql(_PG_DEVICES, (*columns(rows), now))
            await conn.exec_driver_sql(_PG_DELETE_PRESENCE, (list(devices),))
        else:
            await conn.exec_driver_sql(_SQLITE_DEVICES, [(*r, now) for r in rows])
            await conn.exec_driver_sql(_SQLITE_DELETE_PRESENCE, [(d,) for d in devices])
        if inside:
            await self._bulk(conn, _PG_PRESENCE if self._pg else _SQLITE_PRESENCE, inside)
