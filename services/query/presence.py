"""Who is inside which hot spot now, held in memory by the API and answered from indexes.

A control room polls presence many times a second; reading and serialising the presence of
every fence from the store for each request cost ~20 ms of one core. Instead the API keeps a
`PresenceSnapshot`, read in one transaction (so consistent with the events as of one commit)
and refreshed through a `FreshCache` when the store's version changes (see
services/query/cache.py for the staleness bound). Filters are answered from its indexes and the
unfiltered answer is serialised once per snapshot.

Officers are attributed as of each device's last ping: a ping's own officer, else the device's
assignment then (geofence/assignments.py); changing an assignment bumps the store's version, so
the snapshot is read again.

Every snapshot carries `seq`, the newest event it reflects, read in the same transaction: a
client that opens the event stream after that seq (the control-room page does) misses no event
between the snapshot and the stream, however old the snapshot, and sees none twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import orjson

from geofence.assignments import AssignmentTable, attribute
from services.query.cache import FreshCache, JsonBody
from services.store import Present, Store, StoredDevice
from services.store.assignments import assignment_table

Pair = tuple[str, Present]  # (fence_id, a device inside it)


def presence_json(found: dict[str, list[Present]], seq: int) -> bytes:
    """The body of GET /v1/presence (api.schemas.PresenceAnswer): per-fence presence as of event `seq`."""
    fences = [{"fence_id": f, "devices": [p._asdict() for p in present]} for f, present in found.items()]
    return orjson.dumps({"seq": seq, "fences": fences})


def attributed_present(by_fence: dict[str, list[Present]], table: AssignmentTable) -> dict[str, list[Present]]:
    """Presence with each device's officer, callsign and team as of its last ping."""
    rows = [p for present in by_fence.values() for p in present]
    if not len(table) or not rows:
        return by_fence
    found = table.resolve([p.device_id for p in rows], [p.last_ts for p in rows]).tolist()
    out: dict[str, list[Present]] = {}
    k = 0
    for fence_id, present in by_fence.items():
        for p in present:
            who = attribute(p.officer_id, p.callsign, table.rows[found[k]] if found[k] >= 0 else None)
            out.setdefault(fence_id, []).append(
                p._replace(officer_id=who.officer_id, callsign=who.callsign, team=who.team)
            )
            k += 1
    return out


def attributed_devices(devices: list[StoredDevice], table: AssignmentTable) -> list[StoredDevice]:
    """Devices with their officer, callsign and team as of their last ping."""
    if not len(table) or not devices:
        return devices
    found = table.resolve([d.device_id for d in devices], [d.now.last_ts for d in devices]).tolist()
    out = []
    for d, k in zip(devices, found, strict=True):
        who = attribute(d.now.officer_id, d.now.callsign, table.rows[k] if k >= 0 else None)
        out.append(replace(d, now=replace(d.now, officer_id=who.officer_id, callsign=who.callsign), team=who.team))
    return out


async def devices_as_of(
    store: Store, officer_id: str | None = None, callsign: str | None = None, device_id: str | None = None
) -> tuple[list[StoredDevice], int]:
    """Every device (filters AND, on the attributed officer) and the seq of the newest event the answer reflects."""
    async with store.read() as conn:
        found = attributed_devices(
            await store.devices(device_id=device_id, conn=conn), await assignment_table(store, conn)
        )
        seq = await store.last_event_seq(conn=conn)
    wanted = [
        d for d in found
        if (officer_id is None or d.now.officer_id == officer_id) and (callsign is None or d.now.callsign == callsign)
    ]  # fmt: skip
    return wanted, seq


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """Presence as of one commit, that of event `seq`: per fence (sorted, longest there first),
    indexed by device, officer and callsign; `body` and `devices` are the unfiltered answer and
    who it shows."""

    seq: int
    by_fence: dict[str, list[Present]]
    by_device: dict[str, list[Pair]]
    by_officer: dict[str, list[str]]
    by_callsign: dict[str, list[str]]
    body: JsonBody
    devices: list[str]

    @classmethod
    def of(cls, by_fence: dict[str, list[Present]], seq: int) -> PresenceSnapshot:
        by_device: dict[str, list[Pair]] = {}
        by_officer: dict[str, list[str]] = {}
        by_callsign: dict[str, list[str]] = {}
        for fence_id, present in by_fence.items():
            for p in present:
                pairs = by_device.setdefault(p.device_id, [])
                if not pairs:  # a device's officer and callsign are the same in each of its fences
                    for index, value in ((by_officer, p.officer_id), (by_callsign, p.callsign)):
                        if value is not None:
                            index.setdefault(value, []).append(p.device_id)
                pairs.append((fence_id, p))
        body = JsonBody.of(presence_json(by_fence, seq))
        return cls(seq, by_fence, by_device, by_officer, by_callsign, body, sorted(by_device))

    def select(
        self,
        fence_id: str | None = None,
        device_id: str | None = None,
        officer_id: str | None = None,
        callsign: str | None = None,
    ) -> dict[str, list[Present]]:
        """Per fence, the devices inside it matching every filter given, in `Store.presence` order."""
        if fence_id is not None:
            pairs: Iterable[Pair] = [(fence_id, p) for p in self.by_fence.get(fence_id, [])]
        elif device_id is not None:
            pairs = self.by_device.get(device_id, [])
        elif officer_id is not None or callsign is not None:
            index, value = (self.by_officer, officer_id) if officer_id is not None else (self.by_callsign, callsign)
            pairs = [pair for d in index.get(str(value), []) for pair in self.by_device[d]]
        else:
            return self.by_fence
        wanted = ((fence_id, 0), (device_id, 1), (officer_id, 2), (callsign, 3))  # (value, index in `found`)
        out: dict[str, list[Present]] = {}
        for f, p in sorted(pairs, key=lambda fp: (fp[0], fp[1].since, fp[1].device_id)):
            found = (f, p.device_id, p.officer_id, p.callsign)
            if all(value is None or found[i] == value for value, i in wanted):
                out.setdefault(f, []).append(p)
        return out


class PresenceCache:
    """The API's presence snapshot, read again at most every `refresh_s` when the store changed."""

    def __init__(self, store: Store, refresh_s: float) -> None:
        self._store = store
        self._cache: FreshCache[str, PresenceSnapshot] = FreshCache(self._version, refresh_s, max_entries=1)

    async def snapshot(self) -> PresenceSnapshot:
        return await self._cache.get("presence", self._read)

    async def _version(self) -> int:
        return await self._store.query_version()

    async def _read(self) -> PresenceSnapshot:
        async with self._store.read() as conn:
            by_fence = attributed_present(
                await self._store.presence(conn=conn), await assignment_table(self._store, conn)
            )
            return PresenceSnapshot.of(by_fence, await self._store.last_event_seq(conn=conn))
