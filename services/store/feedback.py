"""The feedback table: what the front line flags, the supervisor's reply, and when it was closed."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any, Literal

import sqlalchemy as sa

from services.store import Store
from services.store.tables import feedback_table

State = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class Feedback:
    """One report as stored (the columns of `feedback`, in order)."""

    feedback_id: int
    created_at: float
    key_id: str
    officer_id: str | None
    team: str | None
    kind: str
    text: str
    fence_id: str | None
    device_id: str | None
    lat: float | None
    lon: float | None
    at_ts: float | None
    check_id: int | None
    check_state: str | None
    reply: str | None
    replied_at: float | None
    replied_by: str | None
    closed_at: float | None
    closed_by: str | None


_COLUMNS = [f.name for f in fields(Feedback)]


async def add_feedback(store: Store, **values: Any) -> Feedback:
    """Store a new report (created now); the columns not given are NULL."""
    row = {c: None for c in _COLUMNS[1:]} | {"created_at": time.time()} | values
    async with store.write() as conn:
        stmt = sa.insert(feedback_table).values(**row).returning(feedback_table.c.feedback_id)
        feedback_id = int((await conn.execute(stmt)).scalar_one())
    return Feedback(feedback_id=feedback_id, **row)


async def list_feedback(
    store: Store,
    *,
    officer_id: str | None = None,
    team: str | None = None,
    fence_id: str | None = None,
    kind: str | None = None,
    state: State | None = None,
    after_id: int = 0,
    limit: int = 100,
    newest_first: bool = False,
) -> list[Feedback]:
    """Reports oldest first, paged by id (or the newest `limit`); every filter given must hold."""
    c = feedback_table.c
    order = c.feedback_id.desc() if newest_first else c.feedback_id
    query = sa.select(feedback_table).where(c.feedback_id > after_id).order_by(order).limit(limit)
    for column, value in ((c.officer_id, officer_id), (c.team, team), (c.fence_id, fence_id), (c.kind, kind)):
        if value is not None:
            query = query.where(column == value)
    if state is not None:
        query = query.where(c.closed_at.is_(None) if state == "open" else c.closed_at.is_not(None))
    async with store.read() as conn:
        return [Feedback(*r) for r in (await conn.execute(query)).all()]


async def get_feedback(store: Store, feedback_id: int) -> Feedback | None:
    query = sa.select(feedback_table).where(feedback_table.c.feedback_id == feedback_id)
    async with store.read() as conn:
        row = (await conn.execute(query)).one_or_none()
    return None if row is None else Feedback(*row)


async def update_feedback(store: Store, feedback_id: int, **values: Any) -> Feedback | None:
    """Set columns of a report; the report after it, None if there is none."""
    async with store.write() as conn:
        c = feedback_table.c
        await conn.execute(sa.update(feedback_table).where(c.feedback_id == feedback_id).values(**values))
        row = (await conn.execute(sa.select(feedback_table).where(c.feedback_id == feedback_id))).one_or_none()
    return None if row is None else Feedback(*row)
