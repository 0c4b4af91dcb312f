"""API keys and the audit log.

Every audited request writes one audit entry; a transaction (and, on SQLite, an fsync and the
single write lock) per entry capped the API at a few hundred requests a second. So entries are
group-committed (`GroupCommit`): those arriving while a transaction is under way are written
together by the next one, so the number of transactions follows the database's speed, not the
request rate, and still no caller returns before its entry is durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store.database import Database
from services.store.tables import api_keys, audit_log

#: How long a valid API key is remembered: a revocation by another process takes effect within it.
KEY_CACHE_S = 1.0
#: Keys remembered at most (then forgotten all at once; there are a few dozen in practice).
KEY_CACHE_MAX = 10_000

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Items written in batches by `write` (one transaction per call), in the order added."""

    def __init__(self, write: Callable[[list[T]], Awaitable[None]]) -> None:
        self._write = write
        self._items: list[T] = []
        self._committed: asyncio.Future[None] | None = None  # of the batch being gathered
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        """Returns once item is committed; raises what the write raised if that failed."""
        if self._committed is None:
            self._committed = asyncio.get_running_loop().create_future()
        committed = self._committed
        self._items.append(item)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await asyncio.shield(committed)  # a caller that goes away does not take its entry with it

    async def flush(self) -> None:
        """Wait until everything added has been written (before closing the store)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        while self._items:
            items, committed = self._items, self._committed
            self._items, self._committed = [], None
            assert committed is not None
            try:
                await self._write(items)
            except Exception as exc:  # the callers of this batch get the error; the next batch is tried
                committed.set_exception(exc)
                committed.exception()  # retrieved here too: no warning if every caller went away
            else:
                committed.set_result(None)


class KeyStore(Database):
    """API keys (found keys cached briefly) and the group-committed audit log."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._audits: GroupCommit[dict[str, Any]] = GroupCommit(self._write_audits)
        self._keys: dict[str, tuple[sa.Row[Any] | None, float]] = {}  # key_id -> (row or None, time read)

    async def close(self) -> None:
        await self._audits.flush()
        await super().close()

    async def add_api_key(
        self,
        key_id: str,
        name: str,
        role: str,
        secret_hash: str,
        officer_id: str | None = None,
        device_id: str | None = None,
    ) -> None:
        async with self.write() as conn:
            await conn.execute(
                sa.insert(api_keys).values(
                    key_id=key_id,
                    name=name,
                    role=role,
                    secret_hash=secret_hash,
                    created_at=time.time(),
                    officer_id=officer_id,
                    device_id=device_id,
                )
            )
        self._keys.pop(key_id, None)  # works at once, even if its id was asked for before

    async def find_api_key(self, key_id: str) -> sa.Row[Any] | None:
        """The key's row if it exists and is not revoked.

        Every request asks, so the answer is remembered for KEY_CACHE_S: a key revoked through
        this store is refused at once, one revoked by another process (`hotspots keys revoke`)
        within KEY_CACHE_S. Unknown ids are remembered too, so an unknown id answers as fast as
        a known one (timing tells a guesser nothing); key ids are random, so a new key's id has
        not been asked for before it exists.
        """
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is not None and now - cached[1] < KEY_CACHE_S:
            return cached[0]
        async with self.read() as conn:
            query = sa.select(api_keys).where((api_keys.c.key_id == key_id) & api_keys.c.revoked_at.is_(None))
            row = (await conn.execute(query)).one_or_none()
        if len(self._keys) >= KEY_CACHE_MAX:
            self._keys.clear()
        self._keys[key_id] = (row, now)
        return row

    async def list_api_keys(self) -> list[Any]:
        async with self.read() as conn:
            query = sa.select(api_keys.c.key_id, api_keys.c.name, api_keys.c.role, api_keys.c.created_at,
                              api_keys.c.revoked_at, api_keys.c.officer_id,
                              api_keys.c.device_id).order_by(api_keys.c.created_at)  # fmt: skip
            return list((await conn.execute(query)).all())

    async def revoke_api_key(self, key_id: str) -> bool:
        self._keys.pop(key_id, None)
        async with self.write() as conn:
            result = await conn.execute(
                sa.update(api_keys)
                .where((api_keys.c.key_id == key_id) & api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            return bool(result.rowcount)

    async def audit(
        self, key_id: str, role: str, action: str, target: str | None, detail: dict[str, Any] | None = None
    ) -> None:
        """Write an audit entry; returns once it is committed. Entries of concurrent callers
        share one transaction (group commit), so auditing every read costs little."""
        entry = {"ts": time.time(), "key_id": key_id, "role": role, "action": action, "target": target}
        await self._audits.add({**entry, "detail": detail})

    async def _write_audits(self, entries: list[dict[str, Any]]) -> None:
        async with self.audit_write() as conn:
            await conn.execute(sa.insert(audit_log), entries)

    async def audit_entries(
        self, *, since: float | None = None, until: float | None = None, target: str | None = None,
        key_id: str | None = None, after_id: int = 0, limit: int = 100,
    ) -> list[sa.Row[Any]]:  # fmt: skip
        """Audit entries oldest first, paged by id."""
        c = audit_log.c
        query = sa.select(audit_log).where(c.id > after_id).order_by(c.id).limit(limit)
        if since is not None:
            query = query.where(c.ts >= since)
        if until is not None:
            query = query.where(c.ts < until)
        if target is not None:
            query = query.where(c.target == target)
        if key_id is not None:
            query = query.where(c.key_id == key_id)
        async with self.audit_read() as conn:
            return list((await conn.execute(query)).all())
