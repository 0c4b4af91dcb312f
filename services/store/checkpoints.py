"""Per-partition checkpoints: the engine state and the first offset it does not yet reflect.

A checkpoint is the exactly-once boundary of the pipeline: the consumed offset and the engine
state it reflects are written in one transaction, so after a crash the state and the offset to
resume from always agree. The query tables can be written in that same transaction
(`save_checkpoint(cp, observations)`), so they too hold every event exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.store.database import gc_paused, json_dumps
from services.store.observations import Observations, ObservationStore
from services.store.tables import checkpoint_devices, checkpoints

_CP_KEY = ("consumer_group", "topic", "partition")

_CONFLICT = 'ON CONFLICT (consumer_group, topic, "partition", device_id) DO UPDATE SET state = excluded.state'
_PG_UPSERT_DEVICES = f"""
INSERT INTO checkpoint_devices (consumer_group, topic, "partition", device_id, state)
SELECT $1, $2, $3, u.device_id, u.state::json FROM unnest($4::text[], $5::text[]) AS u(device_id, state)
{_CONFLICT}"""
_SQLITE_UPSERT_DEVICES = f"""
INSERT INTO checkpoint_devices (consumer_group, topic, "partition", device_id, state) VALUES (?, ?, ?, ?, ?)
{_CONFLICT}"""


@dataclass(frozen=True)
class Checkpoint:
    """Engine state of one partition and the first offset it does not yet reflect.

    `devices` is split from the rest of the snapshot so a save writes only the devices
    that changed (most of a large fleet is idle between checkpoints); a load returns all.
    """

    group: str
    topic: str
    partition: int
    next_offset: int
    log_fingerprint: str | None
    stream: dict[str, Any]
    devices: dict[str, dict[str, Any]]

    def snapshot(self) -> dict[str, Any]:
        """The full engine snapshot (for Engine.restore) of a loaded checkpoint."""
        return {**self.stream, "devices": self.devices}


class CheckpointStore(ObservationStore):
    """Checkpoints, saved with the observations they cover when given."""

    async def load_checkpoint(self, group: str, topic: str, partition: int) -> Checkpoint | None:
        """The last saved checkpoint of a partition with all its devices, or None if never saved."""
        key = (checkpoints.c.consumer_group == group) & (checkpoints.c.topic == topic)
        key &= checkpoints.c.partition == partition
        dev = checkpoint_devices.c
        async with self.read() as conn:
            row = (await conn.execute(sa.select(checkpoints).where(key))).one_or_none()
            if row is None:
                return None
            result = await conn.execute(
                sa.select(dev.device_id, sa.cast(dev.state, sa.Text)).where(
                    (dev.consumer_group == group) & (dev.topic == topic) & (dev.partition == partition)
                )
            )
            raw = result.all()
        with gc_paused():
            devices: dict[str, dict[str, Any]] = {d: orjson.loads(state) for d, state in raw}
        return Checkpoint(group, topic, partition, row.next_offset, row.log_fingerprint, row.stream, devices)

    async def checkpoint_positions(self, group: str, topic: str) -> dict[int, tuple[int, str | None]]:
        """Partition -> (next offset, log fingerprint) of every checkpoint, without the engine state."""
        c = checkpoints.c
        query = sa.select(c.partition, c.next_offset, c.log_fingerprint)
        async with self.read() as conn:
            rows = (await conn.execute(query.where((c.consumer_group == group) & (c.topic == topic)))).all()
        return {int(p): (int(o), f) for p, o, f in rows}

    async def save_checkpoint(self, cp: Checkpoint, observations: Observations | None = None) -> None:
        """Write the stream row and upsert `cp.devices`, all in one transaction.

        With `observations` (what the pings up to `cp.next_offset` produced), the query tables
        are written in the same transaction (see `record`): they commit with the offset or not
        at all, so after a crash nothing is recorded twice or lost. The device states are
        serialised before the transaction: on SQLite its write lock is held the shorter.
        """
        key = {"consumer_group": cp.group, "topic": cp.topic, "partition": cp.partition}
        states = [json_dumps(s) for s in cp.devices.values()]
        async with self.write() as conn:
            ins = self.insert(checkpoints).values(
                **key, next_offset=cp.next_offset, log_fingerprint=cp.log_fingerprint, stream=cp.stream
            )
            stmt = ins.on_conflict_do_update(
                index_elements=[checkpoints.c[k] for k in _CP_KEY],
                set_={c: ins.excluded[c] for c in ("next_offset", "log_fingerprint", "stream")},
            )
            await conn.execute(stmt)
            if cp.devices:
                await self._upsert_devices(conn, key, list(cp.devices), states)
            if observations is not None:
                await self._record(conn, observations)

    async def _upsert_devices(
        self, conn: AsyncConnection, key: dict[str, Any], devices: list[str], states: list[str]
    ) -> None:
        """The bulk upsert of devices' JSON states, in driver SQL: tens of thousands of rows per
        checkpoint are normal, and SQLAlchemy's per-row parameter handling would cost more than the database does."""
        group, topic, partition = key["consumer_group"], key["topic"], key["partition"]
        if self._pg:  # one statement over two arrays instead of one round trip per row
            await conn.exec_driver_sql(_PG_UPSERT_DEVICES, (group, topic, partition, devices, states))
        else:
            rows = [(group, topic, partition, d, s) for d, s in zip(devices, states, strict=True)]
            await conn.exec_driver_sql(_SQLITE_UPSERT_DEVICES, rows)
