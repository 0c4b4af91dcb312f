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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from geofence.calibration import UNKNOWN_SOURCE, Fixes
from geofence.pings import PingBatch
from services.store import Store, metadata

log = logging.getLogger(__name__)

#: How often the matcher looks for new checks (as for fence changes): a check registered
#: this long before its window opens captures every fix.
CHECK_POLL_S = 2.0
#: How often the matcher deletes fixes past the retention: an indexed delete, rarely needed.
PURGE_INTERVAL_S = 3600.0

#: A verification check: the device was at the true position (lat, lon) in [start_ts, end_ts).
calibration_checks = sa.Table(
    "calibration_checks",
    metadata,
    sa.Column("check_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("start_ts", sa.Float, nullable=False),
    sa.Column("end_ts", sa.Float, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),  # API key id
    sa.Index("calibration_checks_device_start", "device_id", "start_ts"),
    sa.Index("calibration_checks_end", "end_ts"),
)

#: The device's fixes in a check's window: captured from the stream or supplied with the check.
calibration_fixes = sa.Table(
    "calibration_fixes",
    metadata,
    sa.Column("check_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float, primary_key=True),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("accuracy_m", sa.Float, nullable=True),
    sa.Column("source", sa.Text, nullable=True),
    sa.ForeignKeyConstraint(
        ["check_id"], ["calibration_checks.check_id"], name="calibration_fixes_check_fk", ondelete="CASCADE"
    ),
    sa.Index("calibration_fixes_ts", "ts"),
)


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
    query = sa.select(calibration_checks).order_by(c.start_ts, c.check_id)
    if device_id is not None:
        query = query.where(c.device_id == device_id)
    if since is not None:
        query = query.where(c.end_ts > since)
    if until is not None:
        query = query.where(c.start_ts < until)
    async with store.read() as conn:
        return [Check(*r) for r in (await conn.execute(query)).all()]


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
) -> Fixes:
    """Fixes with their check's device and true position, by check and time; filters optional.

    source UNKNOWN_SOURCE selects the fixes that carry none; since/until bound the fix ts.
    """
    f, c = calibration_fixes.c, calibration_checks.c
    query = (
        sa.select(f.check_id, c.device_id, c.lat, c.lon, f.ts, f.lat, f.lon, f.accuracy_m, f.source)
        .select_from(calibration_fixes.join(calibration_checks, f.check_id == c.check_id))
        .order_by(f.check_id, f.ts)
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
