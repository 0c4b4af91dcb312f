"""The assignments table: who carried which device when, never two at once for one device.

Writes check overlaps in the writing transaction (under an advisory lock on PostgreSQL, so two
writers cannot each pass the check and together overlap) and bump the query version, so the
API's cached answers (presence) are read again: reports are computed from the assignments as
they stand, so changing one re-attributes history.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from geofence.assignments import Assignment, AssignmentTable
from ingest.assignments import AssignmentError, ParsedAssignments, overlap_reason, read_assignment_file
from ingest.rules import show
from services.errors import Conflict
from services.store import Store
from services.store.tables import assignments_table, query_state

#: Key of the PostgreSQL advisory lock that serialises assignment writes (their overlap check).
WRITE_LOCK_KEY = 0x41737369676E  # "Assign"
#: Assignments written per transaction by a file load (the id lists stay within SQLite's parameters).
ROWS_PER_WRITE = 5_000
#: Beyond this many devices the whole table is read instead (a smaller query than the id list).
MAX_LISTED_DEVICES = 1_000


def _row(r: sa.Row[tuple[object, ...]]) -> Assignment:
    m = r._mapping
    return Assignment(
        m["assignment_id"], m["device_id"], m["officer_id"], m["callsign"], m["team"], float(m["valid_from"]),
        None if m["valid_to"] is None else float(m["valid_to"]),
    )  # fmt: skip


_COLUMNS = [c for c in assignments_table.c if c.name != "updated_at"]


async def assignment_table(
    store: Store, conn: AsyncConnection | None = None, devices: Sequence[str] | None = None
) -> AssignmentTable:
    """The assignments (of `devices`, else all) as a lookup table, in the caller's transaction if given."""
    query = sa.select(*_COLUMNS)
    if devices is not None and len(devices) <= MAX_LISTED_DEVICES:
        query = query.where(assignments_table.c.device_id.in_(sorted(set(devices))))
    if conn is not None:
        return AssignmentTable([_row(r) for r in (await conn.execute(query)).all()])
    async with store.read() as own:
        return AssignmentTable([_row(r) for r in (await own.execute(query)).all()])


async def list_assignments(
    store: Store, *, device_id: str | None = None, officer_id: str | None = None, at: float | None = None
) -> list[Assignment]:
    """Assignments by device and start, optionally of one device or officer, or valid at `at`."""
    c = assignments_table.c
    query = sa.select(*_COLUMNS).order_by(c.device_id, c.valid_from)
    if device_id is not None:
        query = query.where(c.device_id == device_id)
    if officer_id is not None:
        query = query.where(c.officer_id == officer_id)
    if at is not None:
        query = query.where((c.valid_from <= at) & (c.valid_to.is_(None) | (c.valid_to > at)))
    async with store.read() as conn:
        return [_row(r) for r in (await conn.execute(query)).all()]


async def get_assignment(store: Store, assignment_id: str) -> Assignment | None:
    c = assignments_table.c
    async with store.read() as conn:
        row = (await conn.execute(sa.select(*_COLUMNS).where(c.assignment_id == assignment_id))).first()
    return None if row is None else _row(row)


async def put_assignments(store: Store, wanted: Sequence[Assignment], *, create: bool = False) -> list[tuple[int, str]]:
    """Create or replace assignments by id (`create`: refuse an id already stored); those
    overlapping another of their device (stored or earlier in `wanted`) are refused: (index,
    reason naming both). The rest are written together."""
    if not wanted:
        return []
    c = assignments_table.c
    async with store.write() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
        devices = sorted({a.device_id for a in wanted})
        stored = [_row(r) for r in (await conn.execute(sa.select(*_COLUMNS).where(c.device_id.in_(devices)))).all()]
        ids = [a.assignment_id for a in wanted]
        taken = set((await conn.execute(sa.select(c.assignment_id).where(c.assignment_id.in_(ids)))).scalars())
        of_device: dict[str, dict[str, Assignment]] = {}
        for a in stored:
            of_device.setdefault(a.device_id, {})[a.assignment_id] = a
        refused: list[tuple[int, str]] = []
        for i, a in enumerate(wanted):
            others = of_device.setdefault(a.device_id, {})
            clash = next((b for b in others.values() if b.assignment_id != a.assignment_id and a.overlaps(b)), None)
            if create and a.assignment_id in taken:
                refused.append((i, f"assignment {show(a.assignment_id)} already exists"))
            elif clash is not None:
                refused.append((i, overlap_reason(a, clash)))
            else:
                others[a.assignment_id] = a
        out = {k for k, _ in refused}
        accepted = {a.assignment_id: a for i, a in enumerate(wanted) if i not in out}
        if accepted:
            now = time.time()
            await conn.execute(sa.delete(assignments_table).where(c.assignment_id.in_(sorted(accepted))))
            await conn.execute(
                sa.insert(assignments_table),
                [{"assignment_id": a.assignment_id, "device_id": a.device_id, "officer_id": a.officer_id,
                  "callsign": a.callsign, "team": a.team, "valid_from": a.valid_from, "valid_to": a.valid_to,
                  "updated_at": now} for a in accepted.values()],
            )  # fmt: skip
            await _bump(conn)
    return refused


async def save_assignment(store: Store, assignment: Assignment, *, create: bool) -> None:
    """Create (`create`) or replace one assignment; Conflict naming both when it overlaps another."""
    refused = await put_assignments(store, [assignment], create=create)
    if refused:
        raise Conflict(refused[0][1])


async def delete_assignment(store: Store, assignment_id: str) -> bool:
    """Remove an assignment; whether there was one."""
    async with store.write() as conn:
        result = await conn.execute(
            sa.delete(assignments_table).where(assignments_table.c.assignment_id == assignment_id)
        )
        if result.rowcount:
            await _bump(conn)
    return bool(result.rowcount)


async def _bump(conn: AsyncConnection) -> None:
    """Attribution changed: the API's cached query answers are stale."""
    await conn.execute(sa.update(query_state).where(query_state.c.id == 1).values(version=query_state.c.version + 1))


async def load_assignment_file(url: str, path: str) -> tuple[ParsedAssignments, int]:
    """`hotspots assignments load`: store a file's good rows; the overlaps with stored ones join
    `parsed.errors` at their line or item. (parsed, assignments stored); CsvError if unreadable."""
    parsed = read_assignment_file(path)
    store = await Store.open(url)
    refused: list[tuple[int, str]] = []
    try:
        for start in range(0, len(parsed.assignments), ROWS_PER_WRITE):
            chunk = parsed.assignments[start : start + ROWS_PER_WRITE]
            refused += [(start + i, reason) for i, reason in await put_assignments(store, chunk)]
    finally:
        await store.close()
    for i, reason in refused:
        parsed.errors.append(AssignmentError("from", reason, *parsed.origins[i]))
    parsed.errors.sort(key=lambda e: (e.line or 0, e.index or 0))
    return parsed, len(parsed.assignments) - len(refused)
