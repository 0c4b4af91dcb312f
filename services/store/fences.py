"""Versioned fences: every change bumps the fence-set version, so a matcher can tell its index is stale."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from geofence.fences import Fence
from ingest.geojson_fences import fence_from_feature
from services.errors import Conflict
from services.store.database import Database
from services.store.tables import fence_set, fences_table, plans_table


def _fence(row: Any) -> Fence:
    """A row of `fences` as a Fence, validated and buffered again."""
    properties = {"id": row.fence_id, "name": row.name, "buffer_m": row.buffer_m}
    return fence_from_feature(
        {"type": "Feature", "id": row.fence_id, "properties": properties, "geometry": row.geometry}
    )


class FenceStore(Database):
    """The fences, and the one-row fence-set version every change of them bumps."""

    async def upsert_fences(self, fences: Sequence[Fence]) -> int:
        """Insert or replace fences by id (last wins within the call); the new fence-set version.

        An empty sequence changes nothing and returns the current version.
        """
        rows = {
            f.id: {
                "fence_id": f.id,
                "name": f.name,
                "buffer_m": f.buffer_m,
                "geometry": f.to_feature()["geometry"],
            }
            for f in fences
        }
        async with self.write() as conn:
            if not rows:
                return await self._version(conn)
            version = await self._bump(conn)
            ins = self.insert(fences_table)
            stmt = ins.on_conflict_do_update(
                index_elements=[fences_table.c.fence_id],
                set_={c: ins.excluded[c] for c in ("name", "buffer_m", "geometry", "version")},
            )
            await conn.execute(stmt, [{**r, "version": version} for r in rows.values()])
        return version

    async def delete_fence(self, fence_id: str) -> int | None:
        """Remove a fence; the new fence-set version, or None (and no bump) if there was none.

        Conflict while a patrol plan names it: a plan's dosage would silently stop being deliverable.
        The plans are read after the delete, in its transaction: the deleted row stays locked, and
        upsert_plans locks the fences it names, so a plan written meanwhile is seen or refused.
        """
        async with self.write() as conn:
            result = await conn.execute(sa.delete(fences_table).where(fences_table.c.fence_id == fence_id))
            if result.rowcount == 0:
                return None
            plans = plans_table.c
            query = sa.select(plans.plan_id).where(plans.fence_id == fence_id).order_by(plans.plan_id)
            planned = (await conn.execute(query)).scalars().all()
            if planned:
                raise Conflict(
                    f"fence {fence_id!r} is in patrol plan(s) {', '.join(planned)}: delete or change them first"
                )
            return await self._bump(conn)

    async def load_fences(self) -> tuple[list[Fence], int]:
        """Every fence (validated and buffered again) and the version they make up, consistently."""
        async with self.read() as conn:
            version = await self._version(conn)
            rows = (await conn.execute(sa.select(fences_table).order_by(fences_table.c.fence_id))).all()
        return await asyncio.to_thread(lambda: [_fence(r) for r in rows]), version  # buffering: off the loop

    async def load_fence(self, fence_id: str) -> tuple[Fence, int] | None:
        """One fence and the fence-set version, consistently; None if there is no such fence."""
        async with self.read() as conn:
            version = await self._version(conn)
            row = (await conn.execute(sa.select(fences_table).where(fences_table.c.fence_id == fence_id))).one_or_none()
        return None if row is None else (_fence(row), version)

    @staticmethod
    async def _version(conn: AsyncConnection) -> int:
        version: int = (await conn.execute(sa.select(fence_set.c.version).where(fence_set.c.id == 1))).scalar_one()
        return version

    @staticmethod
    async def _bump(conn: AsyncConnection) -> int:
        stmt = (
            sa.update(fence_set)
            .where(fence_set.c.id == 1)
            .values(version=fence_set.c.version + 1)
            .returning(fence_set.c.version)
        )
        version: int = (await conn.execute(stmt)).scalar_one()
        return version

    async def fence_version(self) -> int:
        """The current fence-set version: cheap, for matchers polling for changes."""
        async with self.read() as conn:
            return await self._version(conn)
