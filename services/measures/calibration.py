"""Calibration checks and their fixes in the store, and the matcher's hook that captures fixes.

Raw pings are not kept in the store (only in the pings topic, which expires them), so the
fixes of a verification check are captured as they stream past: the matcher polls the open
checks like it polls fence changes, picks the pings of their devices inside their windows
out of each batch (`FixCapture.select`, numpy over the batch) and writes them just before the
checkpoint that moves past them (`FixCapture.save`). A crash in between replays those pings
and captures them again; the key (check, ts) makes the second write a no-op. Fixes can also
come with the check, from an exported track. Either way they expire like raw pings: fixes
older than the ping retention are purged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from geofence.calibration import UNKNOWN_SOURCE, Calibration, ErrorSummary, Fixes, calibrate, offsets_m, summarise_by
from geofence.fences import Fence, make_fence
from geofence.pings import FloatArray, PingBatch
from services.errors import Invalid, NotFound
from services.settings import Settings
from services.store import Store
from services.store.tables import calibration_checks, calibration_fixes

log = logging.getLogger(__name__)

#: How often the matcher looks for new checks (as for fence changes): a check registered
#: this long before its window opens captures every fix.
CHECK_POLL_S = 2.0
#: How often the matcher deletes fixes past the retention: an indexed delete, rarely needed.
PURGE_INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True)
class Check:
    """A verification check as stored."""

    check_id: int
    device_id: str
    lat: float
    lon: float
    start_ts: float
    end_ts: float
    note: str | None
    created_at: float
    created_by: str


class FixRow(NamedTuple):
    """One fix of a check, as written."""

    check_id: int
    ts: float
    lat: float
    lon: float
    accuracy_m: float | None
    source: str | None


async def create_check(
    store: Store,
    *,
    device_id: str,
    lat: float,
    lon: float,
    start_ts: float,
    end_ts: float,
    note: str | None,
    created_by: str,
    fixes: Sequence[tuple[float, float, float, float | None, str | None]] = (),
) -> Check:
    """Register a check, with fixes (ts, lat, lon, accuracy_m, source) supplied from an exported track."""
    row: dict[str, Any] = {
        "device_id": device_id, "lat": lat, "lon": lon, "start_ts": start_ts, "end_ts": end_ts,
        "note": note, "created_at": time.time(), "created_by": created_by,
    }  # fmt: skip
    async with store.write() as conn:
        stmt = sa.insert(calibration_checks).values(**row).returning(calibration_checks.c.check_id)
        check = Check(check_id=int((await conn.execute(stmt)).scalar_one()), **row)
        if fixes:
            await _insert_fixes(store, conn, [FixRow(check.check_id, *f) for f in fixes])
    return check


async def list_checks(
    store: Store, *, device_id: str | None = None, since: float | None = None, until: float | None = None
) -> list[Check]:
    """Checks whose window overlaps [since, until), of one device or all, by window start."""
    c = calibration_checks.c
    query = _overlapping(sa.select(calibration_checks).order_by(c.start_ts, c.check_id), since, until)
    if device_id is not None:
        query = query.where(c.device_id == device_id)
    async with store.read() as conn:
        return [Check(*r) for r in (await conn.execute(query)).all()]


def _overlapping(query: sa.Select[Any], since: float | None, until: float | None) -> sa.Select[Any]:
    """The query kept to checks whose window overlaps [since, until) (either bound optional)."""
    c = calibration_checks.c
    if since is not None:
        query = query.where(c.end_ts > since)
    if until is not None:
        query = query.where(c.start_ts < until)
    return query


async def get_check(store: Store, check_id: int) -> Check | None:
    async with store.read() as conn:
        query = sa.select(calibration_checks).where(calibration_checks.c.check_id == check_id)
        row = (await conn.execute(query)).one_or_none()
    return None if row is None else Check(*row)


async def load_fixes(
    store: Store,
    *,
    check_id: int | None = None,
    device_id: str | None = None,
    source: str | None = None,
    since: float | None = None,
    until: float | None = None,
    windows: tuple[float | None, float | None] = (None, None),
) -> Fixes:
    """Fixes with their check's device and true position, by check and time; filters optional.

    source UNKNOWN_SOURCE selects the fixes that carry none; since/until bound the fix ts;
    windows keeps the fixes of the checks whose window overlaps that range (as `list_checks`).
    """
    f, c = calibration_fixes.c, calibration_checks.c
    query = _overlapping(
        sa.select(f.check_id, c.device_id, c.lat, c.lon, f.ts, f.lat, f.lon, f.accuracy_m, f.source)
        .select_from(calibration_fixes.join(calibration_checks, f.check_id == c.check_id))
        .order_by(f.check_id, f.ts),
        *windows,
    )
    for column, value in ((f.check_id, check_id), (c.device_id, device_id)):
        if value is not None:
            query = query.where(column == value)
    if source is not None:
        query = query.where(f.source.is_(None) if source == UNKNOWN_SOURCE else f.source == source)
    if since is not None:
        query = query.where(f.ts >= since)
    if until is not None:
        query = query.where(f.ts < until)
    async with store.read() as conn:
        rows = (await conn.execute(query)).all()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 9

    def floats(i: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.array(cols[i], dtype=np.float64)  # None (unknown accuracy) -> NaN

    def objects(i: int) -> np.ndarray[Any, np.dtype[np.object_]]:
        out = np.empty(len(rows), dtype=object)
        out[:] = list(cols[i])
        return out

    return Fixes(
        check_id=np.array(cols[0], dtype=np.int64),
        device_id=objects(1),
        true_lat=floats(2),
        true_lon=floats(3),
        ts=floats(4),
        lat=floats(5),
        lon=floats(6),
        accuracy_m=floats(7),
        source=objects(8),
    )


async def save_fixes(store: Store, rows: Sequence[FixRow]) -> None:
    """Write fixes in a transaction of their own; a fix already held (same check and ts) is kept."""
    if rows:
        async with store.write() as conn:
            await _insert_fixes(store, conn, rows)


async def _insert_fixes(store: Store, conn: Any, rows: Sequence[FixRow]) -> None:
    stmt = store.insert(calibration_fixes).on_conflict_do_nothing()
    await conn.execute(stmt, [r._asdict() for r in rows])


async def purge_fixes(store: Store, before_ts: float) -> int:
    """Delete fixes taken before before_ts (the ping retention); how many went."""
    async with store.write() as conn:
        result = await conn.execute(sa.delete(calibration_fixes).where(calibration_fixes.c.ts < before_ts))
    return int(result.rowcount)


class FixCapture:
    """The matcher's capture hook: the open checks, and the fixes of a batch that belong to them.

    retention_s: fixes older than this (by their ts) are purged, and checks whose window
    ended longer ago than this are no longer polled (their pings have left the topic); None
    keeps everything.
    """

    def __init__(self, store: Store, retention_s: float | None = None) -> None:
        self.store = store
        self.retention_s = retention_s
        self.checks: list[Check] = []
        self.devices = np.empty(0, dtype=object)
        self.checked = -math.inf
        self.purged = -math.inf

    async def refresh(self) -> None:
        """Reload the open checks (at most every CHECK_POLL_S) and purge expired fixes (hourly).

        A store that does not answer keeps the checks known so far; the next poll tries again.
        """
        now = time.monotonic()
        if now - self.checked < CHECK_POLL_S:
            return
        self.checked = now
        horizon = None if self.retention_s is None else time.time() - self.retention_s
        try:
            self.checks = await list_checks(self.store, since=horizon)
            if horizon is not None and now - self.purged >= PURGE_INTERVAL_S:
                self.purged = now
                purged = await purge_fixes(self.store, horizon)
                if purged:
                    log.info("purged %d calibration fixes past the ping retention", purged)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("cannot poll calibration checks: %s", exc)
        self.devices = np.array(sorted({c.device_id for c in self.checks}), dtype=object)

    def select(self, batch: PingBatch) -> list[FixRow]:
        """The batch's pings that fall in an open check's window, as fixes of that check.

        No check open: nothing but a length test. Otherwise one np.isin over the batch's
        devices, then a device and time mask per check over the few pings it kept.
        """
        if not len(self.devices) or not len(batch):
            return []
        hit = np.flatnonzero(np.isin(batch.device_id, self.devices))
        if not len(hit):
            return []
        devices, ts = batch.device_id[hit], batch.ts[hit]
        rows: list[FixRow] = []
        for check in self.checks:
            for i in hit[(devices == check.device_id) & (ts >= check.start_ts) & (ts < check.end_ts)].tolist():
                extras = (batch.extras[i] if len(batch.extras) else None) or {}
                accuracy = float(batch.accuracy_m[i])
                source = extras.get("source")
                fix = (float(batch.ts[i]), float(batch.lat[i]), float(batch.lon[i]))
                unknown = math.isnan(accuracy)
                rows.append(FixRow(check.check_id, *fix, None if unknown else accuracy, source))
        return rows

    async def save(self, rows: Sequence[FixRow]) -> None:
        """Write captured fixes (before the checkpoint past them: a replay rewrites the same keys)."""
        await save_fixes(self.store, rows)


# -- the calibration workflow: checks registered and read, buffers applied ---------------------------

#: A check is minutes at a known spot, not a tracking warrant: longer windows are refused.
MAX_WINDOW_S = 24 * 3600.0
#: Largest buffer an admin may apply: beyond this a "hot spot" is a district.
MAX_BUFFER_M = 1000.0


class SuppliedFix(NamedTuple):
    """A fix from an exported track of the check's device (a check done after the fact)."""

    ts: float
    lat: float
    lon: float
    accuracy_m: float | None
    source: str | None


@dataclass(frozen=True, slots=True)
class CheckError:
    """A check and the error of its fixes."""

    check: Check
    result: ErrorSummary


@dataclass(frozen=True, slots=True)
class CheckFixes:
    """A check, the error of its fixes (overall, per source) and the fixes with their offsets in metres."""

    check: Check
    calibration: Calibration
    fixes: Fixes
    east_m: FloatArray
    north_m: FloatArray


@dataclass(frozen=True, slots=True)
class BufferChange:
    """Fences given a new buffer: the fence-set version after it, and each fence's buffer before it."""

    version: int
    buffer_m: float
    based_on: ErrorSummary | None  # the fixes a recommended buffer came from
    old_buffer_m: dict[str, float]  # fence id -> buffer before, in the order asked
    warnings: list[str]


def _rules(settings: Settings) -> dict[str, float]:
    return {"max_accuracy_m": settings.max_accuracy_m, "step_m": settings.calibration_step_m}


async def register_check(
    store: Store,
    settings: Settings,
    *,
    device_id: str,
    lat: float,
    lon: float,
    start_ts: float,
    end_ts: float,
    note: str | None,
    created_by: str,
    fixes: Sequence[SuppliedFix] = (),
) -> CheckError:
    """Register a check after checking its window and supplied fixes; Invalid names the field at fault."""
    if end_ts <= start_ts:
        raise Invalid("must be after start", "end")
    if end_ts - start_ts > MAX_WINDOW_S:
        raise Invalid(f"window longer than {MAX_WINDOW_S / 3600:g} h: a check is minutes at a known spot", "end")
    horizon = time.time() - settings.ping_retention_days * 86_400.0  # older fixes are past the ping retention
    for i, fix in enumerate(fixes):
        if not start_ts <= fix.ts < end_ts:
            raise Invalid("outside the check's window [start, end)", "fixes", i, "ts")
        if fix.ts < horizon:
            raise Invalid("older than the ping retention: raw fixes are not kept that long", "fixes", i, "ts")
    if len({f.ts for f in fixes}) < len(fixes):
        raise Invalid("two fixes with the same ts (a device reports one fix per instant)", "fixes")
    check = await create_check(
        store, device_id=device_id, lat=lat, lon=lon, start_ts=start_ts, end_ts=end_ts, note=note,
        created_by=created_by, fixes=fixes,
    )  # fmt: skip
    result = calibrate(await load_fixes(store, check_id=check.check_id), **_rules(settings)).overall
    return CheckError(check, result)


async def checks_with_error(
    store: Store, settings: Settings, *, device_id: str | None, since: float | None, until: float | None
) -> list[CheckError]:
    """Checks whose window overlaps [since, until), each with the error of its fixes (only theirs are read)."""
    checks = await list_checks(store, device_id=device_id, since=since, until=until)
    fixes = await load_fixes(store, device_id=device_id, windows=(since, until))
    east, north = offsets_m(fixes.lat, fixes.lon, fixes.true_lat, fixes.true_lon)
    by_check: Mapping[str, ErrorSummary] = summarise_by(
        fixes.check_id.astype(object), east, north, fixes.accuracy_m, **_rules(settings)
    )
    empty = ErrorSummary(fixes=0, uncertain=0)
    return [CheckError(c, by_check.get(str(c.check_id), empty)) for c in checks]


async def check_with_fixes(store: Store, settings: Settings, check_id: int) -> CheckFixes:
    """One check, its error and its fixes; NotFound when there is no such check."""
    check = await get_check(store, check_id)
    if check is None:
        raise NotFound(f"no calibration check {check_id}")
    fixes = await load_fixes(store, check_id=check_id)
    east, north = offsets_m(fixes.lat, fixes.lon, fixes.true_lat, fixes.true_lon)
    return CheckFixes(check, calibrate(fixes, **_rules(settings)), fixes, east, north)


async def fixes_error(
    store: Store,
    settings: Settings,
    *,
    device_id: str | None,
    source: str | None,
    since: float | None,
    until: float | None,
) -> Calibration:
    """The error of the fixes held (fix time in [since, until)), overall, per device and per source."""
    fixes = await load_fixes(store, device_id=device_id, source=source, since=since, until=until)
    return calibrate(fixes, **_rules(settings))


async def apply_buffer(
    store: Store,
    settings: Settings,
    *,
    fence_ids: Sequence[str],
    quantile: int | None,
    buffer_m: float | None,
    device_id: str | None = None,
    source: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> BufferChange:
    """Set the buffer of fences: `buffer_m`, or the one recommended for `quantile` (80 or 95) of the
    fixes held (all, or those of a device, a source, a fix-time range). Invalid names the field."""
    if (quantile is None) == (buffer_m is None):
        raise Invalid("give either quantile (80 or 95) or buffer_m, not both or neither", "quantile")
    fences, _ = await store.load_fences()
    by_id = {f.id: f for f in fences}
    unknown = sorted(set(fence_ids) - set(by_id))
    if unknown:
        raise Invalid(f"unknown fence(s) {unknown}", "fence_ids")
    based_on: ErrorSummary | None = None
    if buffer_m is None:
        if since is not None and until is not None and until <= since:
            raise Invalid("must be after from", "to")
        based_on = (await fixes_error(store, settings, device_id=device_id, source=source, since=since,
                                      until=until)).overall  # fmt: skip
        buffer_m = based_on.buffer_80_m if quantile == 80 else based_on.buffer_95_m
        if buffer_m is None:
            raise Invalid("no calibration fixes match: nothing to recommend a buffer from", "quantile")
        if buffer_m > MAX_BUFFER_M:
            raise Invalid(f"the recommended buffer {buffer_m:g} m exceeds {MAX_BUFFER_M:g} m", "quantile")
    ids = list(dict.fromkeys(fence_ids))
    changed = [_rebuffered(by_id[i], buffer_m) for i in ids]
    version = await store.upsert_fences(changed)
    return BufferChange(
        version, buffer_m, based_on, {i: by_id[i].buffer_m for i in ids}, [w for f in changed for w in f.warnings]
    )


def _rebuffered(fence: Fence, buffer_m: float) -> Fence:
    """The fence grown by another buffer; its GeoJSON as the store holds it (JSON arrays, not tuples)."""
    geometry = orjson.loads(orjson.dumps(fence.to_feature()["geometry"]))
    return make_fence(fence.id, geometry, name=fence.name, buffer_m=buffer_m)
