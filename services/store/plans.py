"""The plans table: patrol plans kept as their document form, checked against the fences."""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa

from geofence.plans import Plan, PlanError
from ingest.plan_file import parse_plan
from services.store import Store
from services.store.tables import fences_table, plans_table


async def upsert_plans(store: Store, plans: Sequence[Plan]) -> None:
    """Insert or replace plans by id, all or none; PlanError naming the plan if its fence is unknown.

    The fence check and the write are one transaction, so a fence deleted meanwhile cannot slip in.
    """
    if not plans:
        return
    async with store.write() as conn:
        wanted = sorted({p.fence_id for p in plans})
        found = set(
            (
                await conn.execute(  # FOR SHARE (PostgreSQL): a fence cannot be deleted under the plan
                    sa.select(fences_table.c.fence_id)
                    .where(fences_table.c.fence_id.in_(wanted))
                    .with_for_update(read=True)
                )
            ).scalars()
        )
        for i, plan in enumerate(plans):
            if plan.fence_id not in found:
                raise PlanError(("plans", i, "fence_id"), f"plan {plan.plan_id!r}: unknown fence {plan.fence_id!r}")
        now = time.time()
        ins = store.insert(plans_table)
        stmt = ins.on_conflict_do_update(
            index_elements=[plans_table.c.plan_id],
            set_={c: ins.excluded[c] for c in ("fence_id", "team", "body", "updated_at")},
        )
        rows = {
            p.plan_id: {"plan_id": p.plan_id, "fence_id": p.fence_id, "team": p.team, "body": p.to_dict(),
                        "updated_at": now}
            for p in plans
        }  # fmt: skip
        await conn.execute(stmt, list(rows.values()))


async def list_plans(store: Store, fence_id: str | None = None, team: str | None = None) -> list[Plan]:
    """Every plan (optionally of one fence and/or team), by plan id."""
    query = sa.select(plans_table.c.body).order_by(plans_table.c.plan_id)
    if fence_id is not None:
        query = query.where(plans_table.c.fence_id == fence_id)
    if team is not None:
        query = query.where(plans_table.c.team == team)
    async with store.read() as conn:
        bodies = (await conn.execute(query)).scalars().all()
    return [parse_plan(body) for body in bodies]


async def get_plan(store: Store, plan_id: str) -> Plan | None:
    async with store.read() as conn:
        body = (await conn.execute(sa.select(plans_table.c.body).where(plans_table.c.plan_id == plan_id))).scalar()
    return None if body is None else parse_plan(body)


async def delete_plan(store: Store, plan_id: str) -> bool:
    """Remove a plan; whether there was one."""
    async with store.write() as conn:
        result = await conn.execute(sa.delete(plans_table).where(plans_table.c.plan_id == plan_id))
    return bool(result.rowcount)


async def load_plans(url: str, plans: Sequence[Plan]) -> None:
    """`hotspots plans load`: upsert plans into the store at `url` (PlanError for an unknown fence)."""
    store = await Store.open(url)
    try:
        await upsert_plans(store, plans)
    finally:
        await store.close()
