"""Reads of the query tables: presence now, devices now, the event log (dwell is in dwell.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.store.database import Database
from services.store.observations import DeviceNow
from services.store.tables import devices_table, events_table, presence_table, query_state


@dataclass(frozen=True, slots=True)
class StoredDevice:
    """A row of `devices` with the fences the device is inside; updated_at is the wall clock of its last write."""

    device_id: str
    now: DeviceNow
    updated_at: float
    team: str | None = None  # from the assignment of the device (services/query/presence.py)


class StoredEvent(NamedTuple):
    """A row of the event log; `body` is the event as published, `seq` the cursor."""

    seq: int
    event_id: str
    type: str
    device_id: str
    fence_id: str | None
    ts: float
    officer_id: str | None
    callsign: str | None
    body: dict[str, Any]


class Present(NamedTuple):
    """A device inside a fence now: since when, and where and who it last was."""

    device_id: str
    since: float
    officer_id: str | None
    callsign: str | None
    last_ts: float
    lat: float
    lon: float
    lost: bool
    team: str | None = None  # from the assignment of the device (services/query/presence.py)


class QueryStore(Database):
    """The reads behind the API's query routes and the reports."""

    @asynccontextmanager
    async def _reading(self, conn: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
        """The caller's transaction when given (reads that must agree, e.g. presence and the seq of
        the last event it reflects: services/query/presence.py), else a read of its own."""
        if conn is not None:
            yield conn
        else:
            async with self.read() as new:
                yield new

    async def query_version(self) -> int:
        """Bumped by every write of observations: cheap, for the API's caches of query answers."""
        async with self.read() as conn:
            version: int = (await conn.execute(sa.select(query_state.c.version))).scalar_one()
        return version

    async def presence(
        self,
        fence_id: str | None = None,
        device_id: str | None = None,
        officer_id: str | None = None,
        callsign: str | None = None,
        *,
        conn: AsyncConnection | None = None,
    ) -> dict[str, list[Present]]:
        """Per fence (sorted by id), the devices inside it now, longest there first."""
        p, d = presence_table.c, devices_table.c
        query = (
            sa.select(p.fence_id, p.device_id, p.since, d.officer_id, d.callsign, d.last_ts, d.lat, d.lon, d.lost)
            .select_from(presence_table.join(devices_table, p.device_id == d.device_id))
            .order_by(p.fence_id, p.since, p.device_id)
        )
        filters = ((p.fence_id, fence_id), (p.device_id, device_id), (d.officer_id, officer_id), (d.callsign, callsign))
        for column, value in filters:
            if value is not None:
                query = query.where(column == value)
        out: dict[str, list[Present]] = {}
        async with self._reading(conn) as c:
            for r in (await c.execute(query)).all():
                out.setdefault(r.fence_id, []).append(Present(*r[1:]))
        return out

    async def device_now(self, device_id: str) -> StoredDevice | None:
        """A device as last recorded, with the fences it is inside; None if never recorded."""
        found = await self.devices(device_id=device_id)
        return found[0] if found else None

    async def devices(
        self, *, device_id: str | None = None, officer_id: str | None = None, callsign: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> list[StoredDevice]:  # fmt: skip
        """Every device as last recorded (by device id), with the fences each is inside; filters AND."""
        d, p = devices_table.c, presence_table.c
        rows_q, inside_q = sa.select(devices_table), sa.select(p.device_id, p.fence_id, p.since)
        for column, value in ((d.device_id, device_id), (d.officer_id, officer_id), (d.callsign, callsign)):
            if value is not None:
                rows_q = rows_q.where(column == value)
        inside_q = inside_q.where(p.device_id.in_(rows_q.with_only_columns(d.device_id).scalar_subquery()))
        async with self._reading(conn) as c:
            rows = (await c.execute(rows_q.order_by(d.device_id))).all()
            inside: dict[str, dict[str, float]] = {}
            for dev, fence, since in (await c.execute(inside_q.order_by(p.device_id, p.fence_id))).all():
                inside.setdefault(dev, {})[fence] = since
        return [
            StoredDevice(r.device_id, DeviceNow(
                r.first_ts, r.last_ts, r.lat, r.lon, r.accuracy_m, bool(r.lost),
                r.officer_id, r.callsign, r.source, inside.get(r.device_id, {}),
            ), r.updated_at)
            for r in rows
        ]  # fmt: skip

    async def last_event_seq(self, *, conn: AsyncConnection | None = None) -> int:
        """The seq of the newest recorded event, 0 if none: where a new SSE stream starts."""
        async with self._reading(conn) as c:
            seq = (await c.execute(sa.select(sa.func.max(events_table.c.seq)))).scalar_one()
        return int(seq or 0)

    async def events_page(
        self,
        since: float | None = None,
        until: float | None = None,
        types: Iterable[str] | None = None,
        fence_id: str | None = None,
        device_id: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
        officer_id: str | None = None,
    ) -> list[StoredEvent]:
        """Up to `limit` events with seq > after_seq, in seq order, matching every filter given.

        `since`/`until` bound the event ts (since <= ts < until). The next page starts after
        the last row's seq; an SSE poller calls it with `after_seq` alone. Within one
        partition seq follows the emission order; seq is not ts order across partitions.
        """
        c = events_table.c
        query = sa.select(events_table).where(c.seq > after_seq).order_by(c.seq).limit(limit)
        if since is not None:
            query = query.where(c.ts >= float(since))
        if until is not None:
            query = query.where(c.ts < float(until))
        if types is not None:
            query = query.where(c.type.in_(list(types)))
        for column, value in ((c.fence_id, fence_id), (c.device_id, device_id), (c.officer_id, officer_id)):
            if value is not None:
                query = query.where(column == value)
        async with self.read() as conn:
            return [StoredEvent(*r) for r in (await conn.execute(query)).all()]
