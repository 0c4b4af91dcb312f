"""The durable store: versioned fences and per-partition checkpoints (engine state + offset).

SQLite by default (one node, no server to run), PostgreSQL when configured (several
matchers, one shared store). The schema is owned by the Alembic migrations shipped in
`services/migrations/`; `Store.open` runs them, so a deployment has no separate step.

A checkpoint is the exactly-once boundary of the pipeline: the consumed offset and the
engine state it reflects are written in one transaction, so after a crash the state and
the offset to resume from always agree.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from geofence.fences import Fence, fence_from_feature

#: Alembic script directory, found next to this module so an installed package works.
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Key of the PostgreSQL advisory lock that serialises concurrent migrations.
MIGRATION_LOCK_KEY = 0x486F7473706F7473  # "Hotspots"

metadata = sa.MetaData()

#: One row (id 1): the fence-set version, bumped by every change so readers can tell staleness.
fence_set = sa.Table(
    "fence_set",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="fence_set_single_row"),
)

fences_table = sa.Table(
    "fences",
    metadata,
    sa.Column("fence_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("buffer_m", sa.Float, nullable=False),
    sa.Column("geometry", sa.JSON, nullable=False),  # GeoJSON as given, not buffered
    sa.Column("version", sa.BigInteger, nullable=False),  # fence-set version that last wrote it
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("consumer_group", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("log_fingerprint", sa.Text, nullable=True),
    sa.Column("stream", sa.JSON, nullable=False),
)

checkpoint_devices = sa.Table(
    "checkpoint_devices",
    metadata,
    sa.Column("consumer_group", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.ForeignKeyConstraint(
        ["consumer_group", "topic", "partition"],
        ["checkpoints.consumer_group", "checkpoints.topic", "checkpoints.partition"],
        name="checkpoint_devices_checkpoint_fk",
        ondelete="CASCADE",
    ),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),  # SHA-256 of the secret; the secret is never stored
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

#: Who read or changed what, when: every read of a device's presence or history, every change.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),  # e.g. "GET /v1/presence/devices/{id}"
    sa.Column("target", sa.Text, nullable=True),  # the device or fence concerned
    sa.Column("detail", sa.JSON, nullable=True),  # query parameters, result size
    sa.Index("audit_log_ts", "ts"),
    sa.Index("audit_log_target_ts", "target", "ts"),
)

_CP_KEY = ("consumer_group", "topic", "partition")


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


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy async URL for a configured one; None means SQLite under data_dir."""
    if url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{data_dir}/hotspots.db"
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while parsing many small documents at once: the collections their dicts
    trigger (scanning the whole heap, to find no garbage) cost several times the parse."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _sqlite_setup(engine: AsyncEngine) -> None:
    """Pragmas per connection, and explicit BEGINs: pysqlite's implicit transactions skip DDL
    and start writers as readers, which lets two writers deadlock on the lock upgrade."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")  # a committed checkpoint survives power loss
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("hotspots_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _upgrade(conn: sa.Connection) -> None:
    """`alembic upgrade head` on the caller's connection and transaction."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


class Store:
    """Async access to the store; one per process, shared by all tasks (pooled connections)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        # Writers take SQLite's write lock up front; PostgreSQL readers see one snapshot.
        self._writer = engine.execution_options(hotspots_write=True)
        self._reader = engine.execution_options(isolation_level="REPEATABLE READ") if self._pg else engine

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect and bring the schema to the latest migration; a ready store."""
        engine = create_async_engine(url, json_serializer=_json_dumps, json_deserializer=orjson.loads)
        if engine.dialect.name == "sqlite":
            _sqlite_setup(engine)
        store = cls(engine)
        try:
            async with store._write() as conn:
                if store._pg:  # two processes starting together must not both create tables
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                await conn.run_sync(_upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self._engine.dispose()

    async def healthy(self, timeout_s: float = 2.0) -> bool:
        """Whether the database answers `SELECT 1` in time (for the readiness probe)."""
        try:
            async with asyncio.timeout(timeout_s), self._engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:  # whatever the driver raised, the probe answers "not ready"
            return False
        return True

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.begin() as conn:
            yield conn

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        return postgresql.insert(table) if self._pg else sqlite.insert(table)

    # ------------------------------------------------------------------ fences

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
        async with self._write() as conn:
            if not rows:
                return await self._version(conn)
            version = await self._bump(conn)
            ins = self._insert(fences_table)
            stmt = ins.on_conflict_do_update(
                index_elements=[fences_table.c.fence_id],
                set_={c: ins.excluded[c] for c in ("name", "buffer_m", "geometry", "version")},
            )
            await conn.execute(stmt, [{**r, "version": version} for r in rows.values()])
        return version

    async def delete_fence(self, fence_id: str) -> int | None:
        """Remove a fence; the new fence-set version, or None (and no bump) if there was none."""
        async with self._write() as conn:
            result = await conn.execute(sa.delete(fences_table).where(fences_table.c.fence_id == fence_id))
            if result.rowcount == 0:
                return None
            return await self._bump(conn)

    async def load_fences(self) -> tuple[list[Fence], int]:
        """Every fence (validated and buffered again) and the version they make up, consistently."""
        async with self._read() as conn:
            version = await self._version(conn)
            rows = (await conn.execute(sa.select(fences_table).order_by(fences_table.c.fence_id))).all()
        fences = [
            fence_from_feature(
                {
                    "type": "Feature",
                    "id": r.fence_id,
                    "properties": {"id": r.fence_id, "name": r.name, "buffer_m": r.buffer_m},
                    "geometry": r.geometry,
                }
            )
            for r in rows
        ]
        return fences, version

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

    # ------------------------------------------------------------------ keys and audit

    async def add_api_key(self, key_id: str, name: str, role: str, secret_hash: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                sa.insert(api_keys).values(
                    key_id=key_id, name=name, role=role, secret_hash=secret_hash, created_at=time.time()
                )
            )

    async def find_api_key(self, key_id: str) -> sa.Row[Any] | None:
        """The key's row if it exists and is not revoked."""
        async with self._read() as conn:
            query = sa.select(api_keys).where((api_keys.c.key_id == key_id) & api_keys.c.revoked_at.is_(None))
            return (await conn.execute(query)).one_or_none()

    async def list_api_keys(self) -> list[Any]:
        async with self._read() as conn:
            query = sa.select(api_keys.c.key_id, api_keys.c.name, api_keys.c.role, api_keys.c.created_at,
                              api_keys.c.revoked_at).order_by(api_keys.c.created_at)  # fmt: skip
            return list((await conn.execute(query)).all())

    async def revoke_api_key(self, key_id: str) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                sa.update(api_keys)
                .where((api_keys.c.key_id == key_id) & api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            return bool(result.rowcount)

    async def audit(
        self, key_id: str, role: str, action: str, target: str | None, detail: dict[str, Any] | None = None
    ) -> None:
        async with self._write() as conn:
            await conn.execute(
                sa.insert(audit_log).values(
                    ts=time.time(), key_id=key_id, role=role, action=action, target=target, detail=detail
                )
            )

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
        async with self._read() as conn:
            return list((await conn.execute(query)).all())

    async def fence_version(self) -> int:
        """The current fence-set version: cheap, for matchers polling for changes."""
        async with self._read() as conn:
            return await self._version(conn)

    # ------------------------------------------------------------------ checkpoints

    async def load_checkpoint(self, group: str, topic: str, partition: int) -> Checkpoint | None:
        """The last saved checkpoint of a partition with all its devices, or None if never saved."""
        key = (checkpoints.c.consumer_group == group) & (checkpoints.c.topic == topic)
        key &= checkpoints.c.partition == partition
        dev = checkpoint_devices.c
        async with self._read() as conn:
            row = (await conn.execute(sa.select(checkpoints).where(key))).one_or_none()
            if row is None:
                return None
            result = await conn.execute(
                sa.select(dev.device_id, sa.cast(dev.state, sa.Text)).where(
                    (dev.consumer_group == group) & (dev.topic == topic) & (dev.partition == partition)
                )
            )
            raw = result.all()
        with _gc_paused():
            devices: dict[str, dict[str, Any]] = {d: orjson.loads(state) for d, state in raw}
        return Checkpoint(group, topic, partition, row.next_offset, row.log_fingerprint, row.stream, devices)

    async def save_checkpoint(self, cp: Checkpoint) -> None:
        """Write the stream row and upsert `cp.devices`, all in one transaction."""
        key = {"consumer_group": cp.group, "topic": cp.topic, "partition": cp.partition}
        async with self._write() as conn:
            ins = self._insert(checkpoints).values(
                **key, next_offset=cp.next_offset, log_fingerprint=cp.log_fingerprint, stream=cp.stream
            )
            stmt = ins.on_conflict_do_update(
                index_elements=[checkpoints.c[k] for k in _CP_KEY],
                set_={c: ins.excluded[c] for c in ("next_offset", "log_fingerprint", "stream")},
            )
            await conn.execute(stmt)
            if cp.devices:
                await self._upsert_devices(conn, key, cp.devices)

    async def _upsert_devices(
        self, conn: AsyncConnection, key: dict[str, Any], devices: dict[str, dict[str, Any]]
    ) -> None:
        """The bulk upsert, in driver SQL: tens of thousands of rows per checkpoint are normal,
        and SQLAlchemy's per-row parameter handling would cost more than the database does."""
        group, topic, partition = key["consumer_group"], key["topic"], key["partition"]
        states = [_json_dumps(s) for s in devices.values()]
        if self._pg:  # one statement over two arrays instead of one round trip per row
            await conn.exec_driver_sql(_PG_UPSERT_DEVICES, (group, topic, partition, list(devices), states))
        else:
            rows = [(group, topic, partition, d, s) for d, s in zip(devices, states, strict=True)]
            await conn.exec_driver_sql(_SQLITE_UPSERT_DEVICES, rows)


_CONFLICT = 'ON CONFLICT (consumer_group, topic, "partition", device_id) DO UPDATE SET state = excluded.state'
_PG_UPSERT_DEVICES = f"""
INSERT INTO checkpoint_devices (consumer_group, topic, "partition", device_id, state)
SELECT $1, $2, $3, u.device_id, u.state::json FROM unnest($4::text[], $5::text[]) AS u(device_id, state)
{_CONFLICT}"""
_SQLITE_UPSERT_DEVICES = f"""
INSERT INTO checkpoint_devices (consumer_group, topic, "partition", device_id, state) VALUES (?, ?, ?, ?, ?)
{_CONFLICT}"""
