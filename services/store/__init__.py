"""The durable store: versioned fences and per-partition checkpoints (engine state + offset).

SQLite by default (one node, no server to run), PostgreSQL when configured (several
matchers, one shared store). The schema is owned by the Alembic migrations shipped in
`services/store/migrations/`; `Store.open` runs them, so a deployment has no separate step.

A checkpoint is the exactly-once boundary of the pipeline: the consumed offset and the
engine state it reflects are written in one transaction, so after a crash the state and
the offset to resume from always agree. The query tables behind the API (the event log,
visits, devices now, presence, signal-loss gaps) can be written in that same transaction
(`save_checkpoint(cp, observations)`), so they too hold every event exactly once.
"""

from __future__ import annotations

import asyncio
import gc
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from geofence.events import Event, EventType, format_ts
from geofence.fences import Fence, fence_from_feature
from services.store.group_commit import GroupCommit

#: Alembic script directory, found next to this module so an installed package works.
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Key of the PostgreSQL advisory lock that serialises concurrent migrations.
MIGRATION_LOCK_KEY = 0x486F7473706F7473  # "Hotspots"
#: How long a valid API key is remembered: a revocation by another process takes effect within it.
KEY_CACHE_S = 1.0
#: Keys remembered at most (then forgotten all at once; there are a few dozen in practice).
KEY_CACHE_MAX = 10_000
#: Key of the PostgreSQL advisory lock that makes event seq values visible in commit order.
EVENTS_LOCK_KEY = 0x486F747370457673  # "HotspEvs"

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

#: Every event as published, once (event_id is unique); seq is the paging and SSE cursor.
events_table = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("fence_id", sa.Text, nullable=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("officer_id", sa.Text, nullable=True),
    sa.Column("callsign", sa.Text, nullable=True),
    sa.Column("body", sa.JSON, nullable=False),  # the event dict as published
    sa.UniqueConstraint("event_id", name="events_event_id_key"),
    sa.Index("events_ts", "ts"),
    sa.Index("events_fence_ts", "fence_id", "ts"),
    sa.Index("events_device_ts", "device_id", "ts"),
    sa.Index("events_type_ts", "type", "ts"),
    sqlite_autoincrement=True,  # seq is a cursor: never reuse a value
)

_OPEN = sa.text("exit_ts IS NULL")

#: One row per ENTER; exit_ts, dwell_s and exit_reason are NULL while the visit is open.
visits = sa.Table(
    "visits",
    metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("fence_id", sa.Text, primary_key=True),
    sa.Column("enter_ts", sa.Float, primary_key=True),
    sa.Column("exit_ts", sa.Float, nullable=True),
    sa.Column("dwell_s", sa.Float, nullable=True),
    sa.Column("exit_reason", sa.Text, nullable=True),
    # Covers the dwell scan (fence order, no table lookups); a prefix serves fence + enter_ts lookups.
    sa.Index("visits_fence_span", "fence_id", "enter_ts", "exit_ts", "device_id"),
    sa.Index("visits_device_enter", "device_id", "enter_ts"),
    # Covers the scan of a dwell range's partial edge days (Store._dwell_rolled_up) by exit time.
    sa.Index("visits_exit_span", "exit_ts", "enter_ts", "fence_id"),
    sa.Index("visits_open", "fence_id", "device_id", postgresql_where=_OPEN, sqlite_where=_OPEN),
)

#: Each device as of its last applied ping.
devices_table = sa.Table(
    "devices",
    metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("first_ts", sa.Float, nullable=False),
    sa.Column("last_ts", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("accuracy_m", sa.Float, nullable=True),
    sa.Column("lost", sa.Boolean, nullable=False),
    sa.Column("officer_id", sa.Text, nullable=True),
    sa.Column("callsign", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),  # wall clock of the last write of the row
    sa.Index("devices_officer_id", "officer_id"),
    sa.Index("devices_callsign", "callsign"),
)

#: Who is inside which fence now, and since when (the start of the open visit).
presence_table = sa.Table(
    "presence",
    metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("fence_id", sa.Text, primary_key=True),
    sa.Column("since", sa.Float, nullable=False),
    sa.Index("presence_fence", "fence_id"),
)

#: Signal-loss gaps: from SIGNAL_LOST (the device's last ping) to SIGNAL_RESTORED; end_ts NULL while lost.
lost_gaps = sa.Table(
    "lost_gaps",
    metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("start_ts", sa.Float, primary_key=True),
    sa.Column("end_ts", sa.Float, nullable=True),
    sa.Index("lost_gaps_end", "end_ts"),
)

#: Closed-visit dwell per fence and UTC day: `Store.dwell` sums whole days of a long range here
#: instead of scanning every visit. Written with the visits (`Store._record`), so exactly once.
dwell_days = sa.Table(
    "dwell_fence_days",
    metadata,
    sa.Column("day", sa.Float, primary_key=True, autoincrement=False),  # epoch seconds of the UTC midnight
    sa.Column("fence_id", sa.Text, primary_key=True),
    sa.Column("visits", sa.BigInteger, nullable=False),  # closed visits entered that day
    sa.Column("dwell_s", sa.Float, nullable=False),  # the time of closed visits within that day
    sa.Index("dwell_fence_days_fence", "fence_id", "day"),
)

#: One row (id 1): `version` is bumped by every write of observations (what the API's caches
#: check); `longest_visit_s` is the longest closed visit recorded (bounds dwell's edge scans).
query_state = sa.Table(
    "query_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("longest_visit_s", sa.Float, nullable=False),
    sa.CheckConstraint("id = 1", name="query_state_single_row"),
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


@dataclass(frozen=True, slots=True)
class DeviceNow:
    """A device as of its last applied ping, and the fences it is inside (fence id -> visit start)."""

    first_ts: float
    last_ts: float
    lat: float
    lon: float
    accuracy_m: float | None
    lost: bool
    officer_id: str | None
    callsign: str | None
    source: str | None
    inside: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observations:
    """What a batch of pings produced, for the query tables: the events in emission order
    (`Event`s, or their published dicts: `ts` ISO 8601 or epoch seconds) and the devices
    whose state changed."""

    events: Sequence[Event | Mapping[str, Any]]
    devices: Mapping[str, DeviceNow]


@dataclass(frozen=True, slots=True)
class StoredDevice:
    """A row of `devices` with the fences the device is inside; updated_at is the wall clock of its last write."""

    device_id: str
    now: DeviceNow
    updated_at: float


class StoredEvent(NamedTuple):
    """A row of the event log; `body` is the event as published, `seq` the cursor."""

    seq: int
    event_id: str
    type: str
    device_id: str
    fence_id: str | None
    ts: float
    officer_id: str | None
    callsign: str | None
    body: dict[str, Any]


class Present(NamedTuple):
    """A device inside a fence now: since when, and where and who it last was."""

    device_id: str
    since: float
    officer_id: str | None
    callsign: str | None
    last_ts: float
    lat: float
    lon: float
    lost: bool


GroupBy = Literal["fence", "device", "day", "hour"]
DAY_S = 86_400.0
_BUCKET_S: dict[str, float] = {"day": DAY_S, "hour": 3_600.0}


@dataclass(slots=True)
class DwellRow:
    """Dwell figures of one group over a time range (see `Store.dwell`).

    The group is given by the fields its dimensions fill: `fence_id`, `device_id`, and
    `bucket` (start of the UTC day or hour, epoch seconds). The per-device totals
    (`active_s`, `inside_s`, `outside_s`, `lost_s`) are filled only for rows grouped by
    device and not by fence, without a fence filter; otherwise they are None.
    """

    fence_id: str | None = None
    device_id: str | None = None
    bucket: float | None = None
    visits: int = 0
    dwell_s: float = 0.0
    active_s: float | None = None
    inside_s: float | None = None
    outside_s: float | None = None
    lost_s: float | None = None


def devices_now(records: Mapping[str, Mapping[str, Any]]) -> dict[str, DeviceNow]:
    """DeviceNow of each engine device record (`Engine.checkpoint()` / `snapshot()["devices"]`).

    Devices with no applied ping yet (pings still held for reordering) are left out. The
    engine keeps no first ping time: it is `last_ts - active_s - lost_s`, since every gap
    between two consecutive applied pings counts as active or as lost. Nor does it keep the
    last ping's accuracy: None.
    """
    out: dict[str, DeviceNow] = {}
    for device_id, rec in records.items():
        last_ts = rec.get("last_ts")
        if last_ts is None:
            continue
        extras = rec.get("extras") or {}
        out[device_id] = DeviceNow(
            first_ts=float(last_ts) - float(rec.get("active_s") or 0.0) - float(rec.get("lost_s") or 0.0),
            last_ts=float(last_ts),
            lat=float(rec["last_lat"]),
            lon=float(rec["last_lon"]),
            accuracy_m=None,
            lost=bool(rec.get("lost", False)),
            officer_id=_text(extras.get("officer_id")),
            callsign=_text(extras.get("callsign")),
            source=_text(extras.get("source")),
            inside={f: float(t) for f, t in (rec.get("inside") or {}).items()},
        )
    return out


def _fence(row: Any) -> Fence:
    """A row of `fences` as a Fence, validated and buffered again."""
    properties = {"id": row.fence_id, "name": row.name, "buffer_m": row.buffer_m}
    return fence_from_feature(
        {"type": "Feature", "id": row.fence_id, "properties": properties, "geometry": row.geometry}
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


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


def _columns(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows as column lists: the parameters of a PostgreSQL statement over unnest($1, $2, ...)."""
    return tuple(list(col) for col in zip(*rows, strict=True))


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
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")  # a committed checkpoint survives power loss
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("hotspots_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _set_wal(cursor: Any) -> None:
    """PRAGMA journal_mode = WAL, retried while the database is locked: on a fresh database,
    two connections switching it at the same moment get SQLITE_BUSY at once (the busy
    handler is not consulted), e.g. two processes opening a new store together."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await_only(asyncio.sleep(0.01))  # on the event loop, without blocking it


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
        self._audits: GroupCommit[dict[str, Any]] = GroupCommit(self._write_audits)
        self._keys: dict[str, tuple[sa.Row[Any], float]] = {}  # key_id -> (row, monotonic time read)

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect and bring the schema to the latest migration; a ready store."""
        engine = create_async_engine(url, json_serializer=_json_dumps, json_deserializer=orjson.loads)
        if engine.dialect.name == "sqlite":
            _sqlite_setup(engine)
        store = cls(engine)
        try:
            async with store.write() as conn:
                if store._pg:  # two processes starting together must not both create tables
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                await conn.run_sync(_upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self._audits.flush()
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
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the writer pool (one connection on SQLite: one writer at a time)."""
        async with self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the reader pool, for queries kept in their own modules."""
        async with self._reader.begin() as conn:
            yield conn

    def insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which has on_conflict_do_update/do_nothing on both."""
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
        """Remove a fence; the new fence-set version, or None (and no bump) if there was none."""
        async with self.write() as conn:
            result = await conn.execute(sa.delete(fences_table).where(fences_table.c.fence_id == fence_id))
            if result.rowcount == 0:
                return None
            return await self._bump(conn)

    async def load_fences(self) -> tuple[list[Fence], int]:
        """Every fence (validated and buffered again) and the version they make up, consistently."""
        async with self.read() as conn:
            version = await self._version(conn)
            rows = (await conn.execute(sa.select(fences_table).order_by(fences_table.c.fence_id))).all()
        return [_fence(r) for r in rows], version

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

    # ------------------------------------------------------------------ keys and audit

    async def add_api_key(self, key_id: str, name: str, role: str, secret_hash: str) -> None:
        async with self.write() as conn:
            await conn.execute(
                sa.insert(api_keys).values(
                    key_id=key_id, name=name, role=role, secret_hash=secret_hash, created_at=time.time()
                )
            )

    async def find_api_key(self, key_id: str) -> sa.Row[Any] | None:
        """The key's row if it exists and is not revoked.

        Every request asks, so a key found is remembered for KEY_CACHE_S: a key revoked through
        this store is refused at once, one revoked by another process (`hotspots keys revoke`)
        within KEY_CACHE_S. Unknown keys are never remembered (a new key works at once).
        """
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is not None and now - cached[1] < KEY_CACHE_S:
            return cached[0]
        async with self.read() as conn:
            query = sa.select(api_keys).where((api_keys.c.key_id == key_id) & api_keys.c.revoked_at.is_(None))
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            self._keys.pop(key_id, None)
        else:
            if len(self._keys) >= KEY_CACHE_MAX:
                self._keys.clear()
            self._keys[key_id] = (row, now)
        return row

    async def list_api_keys(self) -> list[Any]:
        async with self.read() as conn:
            query = sa.select(api_keys.c.key_id, api_keys.c.name, api_keys.c.role, api_keys.c.created_at,
                              api_keys.c.revoked_at).order_by(api_keys.c.created_at)  # fmt: skip
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
        async with self.write() as conn:
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
        async with self.read() as conn:
            return list((await conn.execute(query)).all())

    async def query_version(self) -> int:
        """Bumped by every write of observations: cheap, for the API's caches of query answers."""
        async with self.read() as conn:
            version: int = (await conn.execute(sa.select(query_state.c.version))).scalar_one()
        return version

    async def fence_version(self) -> int:
        """The current fence-set version: cheap, for matchers polling for changes."""
        async with self.read() as conn:
            return await self._version(conn)

    # ------------------------------------------------------------------ checkpoints

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
        with _gc_paused():
            devices: dict[str, dict[str, Any]] = {d: orjson.loads(state) for d, state in raw}
        return Checkpoint(group, topic, partition, row.next_offset, row.log_fingerprint, row.stream, devices)

    async def save_checkpoint(self, cp: Checkpoint, observations: Observations | None = None) -> None:
        """Write the stream row and upsert `cp.devices`, all in one transaction.

        With `observations` (what the pings up to `cp.next_offset` produced), the query tables
        are written in the same transaction (see `record`): they commit with the offset or not
        at all, so after a crash nothing is recorded twice or lost.
        """
        key = {"consumer_group": cp.group, "topic": cp.topic, "partition": cp.partition}
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
                await self._upsert_devices(conn, key, cp.devices)
            if observations is not None:
                await self._record(conn, observations)

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

    # ------------------------------------------------------------------ observations (query tables)

    async def record(self, events: Sequence[Event | Mapping[str, Any]], devices: Mapping[str, DeviceNow]) -> None:
        """Record events and device states in a transaction of their own (replay, tests).

        The live pipeline passes them to `save_checkpoint` instead, to commit them with the offset.
        """
        async with self.write() as conn:
            await self._record(conn, Observations(events, devices))

    async def _record(self, conn: AsyncConnection, obs: Observations) -> None:
        """Write observations on the caller's transaction; recording the same ones again changes nothing.

        Events are inserted once per event_id. Visits and lost gaps follow the events in order:
        an ENTER opens a visit (kept if it exists), an EXIT closes the device's open visit of
        that fence (or, when its ENTER was never recorded, inserts the whole visit from its
        dwell_s); SIGNAL_LOST opens a gap at its ts, SIGNAL_RESTORED closes it. Devices are
        upserted (first_ts never moves later) and their presence rows replaced by `inside`.
        The visits these statements actually close (not those closed before) are added to the
        daily rollup, and the query-state version is bumped for the API's caches.
        """
        evs = _parse_events(obs.events)
        ch = _changes(evs)
        pg = self._pg
        closed: list[tuple[Any, ...]] = []  # (fence, enter_ts, exit_ts) of visits closed here
        if ch.visits:
            still_open = [r for r in ch.visits if r[3] is None]
            if still_open:
                await self._bulk(conn, _PG_VISITS if pg else _SQLITE_VISITS, still_open)
            ended = [r for r in ch.visits if r[3] is not None]
            if ended:
                closed += await self._bulk_returning(conn, _PG_ENDED_VISITS if pg else _SQLITE_ENDED_VISITS, ended)
        if ch.closes:
            closes = [c[:4] for c in ch.closes]
            closed += await self._bulk_returning(conn, _PG_CLOSE_VISITS if pg else _SQLITE_CLOSE_VISITS, closes)
            whole = [c for c in ch.closes if c[4] is not None]
            if whole:
                closed += await self._bulk_returning(conn, _PG_WHOLE_VISITS if pg else _SQLITE_WHOLE_VISITS, whole)
        if closed:
            sums = [(day, fence, n, secs) for (day, fence), (n, secs) in rollup_rows(closed).items()]
            await self._bulk(conn, _PG_ROLL_UP if pg else _SQLITE_ROLL_UP, sums)
        if ch.gaps:
            await self._bulk(conn, _PG_GAPS if pg else _SQLITE_GAPS, ch.gaps)
        if ch.restores:
            await self._bulk(conn, _PG_CLOSE_GAPS if pg else _SQLITE_CLOSE_GAPS, [r[:2] for r in ch.restores])
            whole = [r for r in ch.restores if r[2] is not None]
            if whole:
                await self._bulk(conn, _PG_WHOLE_GAPS if pg else _SQLITE_WHOLE_GAPS, whole)
        if obs.devices:
            await self._record_devices(conn, obs.devices)
        if evs:
            if pg:  # seq values become visible in commit order: an SSE poller paging by seq skips none
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(EVENTS_LOCK_KEY)))
            rows = [(e.event_id, e.type, e.device_id, e.fence_id, e.ts, e.officer_id, e.callsign, e.body) for e in evs]
            await self._bulk(conn, _PG_EVENTS if pg else _SQLITE_EVENTS, rows)
        if evs or obs.devices:  # last: the one row every writer updates is held the shortest time
            longest = max((exit_ts - enter_ts for _, enter_ts, exit_ts in closed), default=0.0)
            await conn.exec_driver_sql(_PG_BUMP if pg else _SQLITE_BUMP, (longest,))

    async def _bulk_returning(self, conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        """`_bulk` of a statement ending in RETURNING: the rows it returned. SQLite's executemany
        returns none, so there `sql` has `{values}` for the rows, many to a statement."""
        if self._pg:
            return list((await conn.exec_driver_sql(sql, _columns(rows))).all())
        out: list[Any] = []
        one = "(" + ", ".join("?" * len(rows[0])) + ")"
        for i in range(0, len(rows), _SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[i : i + _SQLITE_ROWS_PER_STATEMENT]
            params = tuple(value for row in chunk for value in row)
            out += (await conn.exec_driver_sql(sql.format(values=", ".join([one] * len(chunk))), params)).all()
        return out

    async def _bulk(self, conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """One statement for many rows: over column arrays (PostgreSQL) or executemany (SQLite)."""
        if self._pg:
            await conn.exec_driver_sql(sql, _columns(rows))
        else:
            await conn.exec_driver_sql(sql, list(rows))

    async def _record_devices(self, conn: AsyncConnection, devices: Mapping[str, DeviceNow]) -> None:
        rows = [
            (d, n.first_ts, n.last_ts, n.lat, n.lon, n.accuracy_m, n.lost, n.officer_id, n.callsign, n.source)
            for d, n in devices.items()
        ]
        inside = [(d, f, since) for d, n in devices.items() for f, since in n.inside.items()]
        now = time.time()
        if self._pg:
            await conn.exec_driver_sql(_PG_DEVICES, (*_columns(rows), now))
            await conn.exec_driver_sql(_PG_DELETE_PRESENCE, (list(devices),))
        else:
            await conn.exec_driver_sql(_SQLITE_DEVICES, [(*r, now) for r in rows])
            await conn.exec_driver_sql(_SQLITE_DELETE_PRESENCE, [(d,) for d in devices])
        if inside:
            await self._bulk(conn, _PG_PRESENCE if self._pg else _SQLITE_PRESENCE, inside)

    # ------------------------------------------------------------------ queries

    async def presence(
        self,
        fence_id: str | None = None,
        device_id: str | None = None,
        officer_id: str | None = None,
        callsign: str | None = None,
    ) -> dict[str, list[Present]]:
        """Per fence (sorted by id), the devices inside it now, longest there first."""
        p, d = presence_table.c, devices_table.c
        query = (
            sa.select(p.fence_id, p.device_id, p.since, d.officer_id, d.callsign, d.last_ts, d.lat, d.lon, d.lost)
            .select_from(presence_table.join(devices_table, p.device_id == d.device_id))
            .order_by(p.fence_id, p.since, p.device_id)
        )
        filters = ((p.fence_id, fence_id), (p.device_id, device_id), (d.officer_id, officer_id), (d.callsign, callsign))
        for column, value in filters:
            if value is not None:
                query = query.where(column == value)
        out: dict[str, list[Present]] = {}
        async with self.read() as conn:
            for r in (await conn.execute(query)).all():
                out.setdefault(r.fence_id, []).append(Present(*r[1:]))
        return out

    async def device_now(self, device_id: str) -> StoredDevice | None:
        """A device as last recorded, with the fences it is inside; None if never recorded."""
        found = await self.devices(device_id=device_id)
        return found[0] if found else None

    async def devices(
        self, *, device_id: str | None = None, officer_id: str | None = None, callsign: str | None = None
    ) -> list[StoredDevice]:
        """Every device as last recorded (by device id), with the fences each is inside; filters AND."""
        d, p = devices_table.c, presence_table.c
        rows_q, inside_q = sa.select(devices_table), sa.select(p.device_id, p.fence_id, p.since)
        for column, value in ((d.device_id, device_id), (d.officer_id, officer_id), (d.callsign, callsign)):
            if value is not None:
                rows_q = rows_q.where(column == value)
        inside_q = inside_q.where(p.device_id.in_(rows_q.with_only_columns(d.device_id).scalar_subquery()))
        async with self.read() as conn:
            rows = (await conn.execute(rows_q.order_by(d.device_id))).all()
            inside: dict[str, dict[str, float]] = {}
            for dev, fence, since in (await conn.execute(inside_q.order_by(p.device_id, p.fence_id))).all():
                inside.setdefault(dev, {})[fence] = since
        return [
            StoredDevice(r.device_id, DeviceNow(
                r.first_ts, r.last_ts, r.lat, r.lon, r.accuracy_m, bool(r.lost),
                r.officer_id, r.callsign, r.source, inside.get(r.device_id, {}),
            ), r.updated_at)
            for r in rows
        ]  # fmt: skip

    async def last_event_seq(self) -> int:
        """The seq of the newest recorded event, 0 if none: where a new SSE stream starts."""
        async with self.read() as conn:
            seq = (await conn.execute(sa.select(sa.func.max(events_table.c.seq)))).scalar_one()
        return int(seq or 0)

    async def events_page(
        self,
        since: float | None = None,
        until: float | None = None,
        types: Iterable[str] | None = None,
        fence_id: str | None = None,
        device_id: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
        officer_id: str | None = None,
    ) -> list[StoredEvent]:
        """Up to `limit` events with seq > after_seq, in seq order, matching every filter given.

        `since`/`until` bound the event ts (since <= ts < until). The next page starts after
        the last row's seq; an SSE poller calls it with `after_seq` alone. Within one
        partition seq follows the emission order; seq is not ts order across partitions.
        """
        c = events_table.c
        query = sa.select(events_table).where(c.seq > after_seq).order_by(c.seq).limit(limit)
        if since is not None:
            query = query.where(c.ts >= float(since))
        if until is not None:
            query = query.where(c.ts < float(until))
        if types is not None:
            query = query.where(c.type.in_(list(types)))
        for column, value in ((c.fence_id, fence_id), (c.device_id, device_id), (c.officer_id, officer_id)):
            if value is not None:
                query = query.where(column == value)
        async with self.read() as conn:
            return [StoredEvent(*r) for r in (await conn.execute(query)).all()]

    async def dwell(
        self,
        from_ts: float,
        to_ts: float,
        fence_id: str | None = None,
        device_id: str | None = None,
        group_by: GroupBy | Sequence[GroupBy] = "fence",
    ) -> list[DwellRow]:
        """Dwell figures over [from_ts, to_ts), grouped by fence, device, day or hour, or several
        of them (e.g. ("fence", "device"), ("device", "day")); rows sorted by fence, device, bucket.

        Per SEMANTICS.md "Dwell totals": `visits` counts the ENTERs in the range (in the bucket
        of the ENTER), `dwell_s` sums the overlap of the range (and bucket) with each visit, an
        open visit counting up to its device's last ping, not up to now. Day and hour buckets
        are UTC (bucket = start epoch seconds); a visit crossing a boundary is split.

        Grouped by device (not by fence) and without `fence_id`, each row also has the device's
        totals of docs/semantics.md within the range and bucket: `active_s` = the time between
        its first and last ping minus its signal-loss gaps, `inside_s` = the union of its visits
        (overlapping fences count once), `outside_s` = active - inside, `lost_s` = the gaps
        (a gap still open counts nothing yet). Every device with a ping in the range (or pings
        on both sides of it) gets a row then, even with nothing but zeros.
        Rows with neither a visit nor dwell (nor, for devices, totals) are left out.

        Grouped by fence and/or day without a device, a range holding whole UTC days reads those
        days from the rollup of closed visits and only the partial days at its ends, and the open
        visits, from the visits: the same figures (to float rounding) at a fraction of the cost.
        """
        dims: set[str] = {group_by} if isinstance(group_by, str) else set(group_by)
        if not dims or not dims <= {"fence", "device", "day", "hour"} or {"day", "hour"} <= dims:
            raise ValueError(f"group_by must name fence, device, day or hour (one of day/hour), got {group_by!r}")
        lo, hi = float(from_ts), float(to_ts)
        width = next((_BUCKET_S[b] for b in ("day", "hour") if b in dims), None)
        totals = "device" in dims and "fence" not in dims and fence_id is None
        async with self.read() as conn:
            if self._pg:  # the planner prices the last-ping subquery per visit and would JIT-compile
                await conn.execute(sa.text("SET LOCAL jit = off"))  # the scan: ~150 ms lost per query
            if device_id is None and dims <= {"fence", "day"} and _whole_days(lo, hi) is not None:
                return await self._dwell_rolled_up(conn, lo, hi, fence_id, dims)
            if width is None and not totals:
                return await self._dwell_sql(conn, lo, hi, self.visits_in(lo, hi, fence_id, device_id), dims)
            visit_rows = [tuple(r) for r in (await conn.execute(self.visits_in(lo, hi, fence_id, device_id))).all()]
            spans: list[tuple[Any, ...]] = []
            gaps: list[tuple[Any, ...]] = []
            if totals:
                d, g = devices_table.c, lost_gaps.c
                span_q = sa.select(d.device_id, d.first_ts, d.last_ts).where((d.first_ts < hi) & (d.last_ts >= lo))
                gap_q = sa.select(g.device_id, g.start_ts, g.end_ts).where(
                    (g.start_ts < hi) & (g.end_ts > lo) & g.end_ts.is_not(None)
                )
                if device_id is not None:
                    span_q = span_q.where(d.device_id == device_id)
                    gap_q = gap_q.where(g.device_id == device_id)
                spans = [tuple(r) for r in (await conn.execute(span_q)).all()]
                gaps = [tuple(r) for r in (await conn.execute(gap_q)).all()]
        return _dwell_rows(lo, hi, width, dims, visit_rows, spans if totals else None, gaps)

    def visits_in(self, lo: float, hi: float, fence_id: str | None, device_id: str | None) -> sa.Select[Any]:
        """Visits that may overlap [lo, hi): device, fence, enter_ts, end (exit, or the device's last ping).

        The last ping is a correlated subquery inside COALESCE, not a join: both databases look it
        up only for the few open visits, and the scan of the rest reads visits_fence_span alone.
        """
        v, d = visits.c, devices_table.c
        last_ping = sa.select(d.last_ts).where(d.device_id == v.device_id).scalar_subquery()
        end = sa.func.coalesce(v.exit_ts, last_ping, v.enter_ts)
        query = sa.select(v.device_id, v.fence_id, v.enter_ts, end.label("end_ts")).where(
            (v.enter_ts < hi) & ((v.exit_ts >= lo) | v.exit_ts.is_(None))
        )
        if fence_id is not None:
            query = query.where(v.fence_id == fence_id)
        if device_id is not None:
            query = query.where(v.device_id == device_id)
        return query

    async def _dwell_rolled_up(
        self, conn: AsyncConnection, lo: float, hi: float, fence_id: str | None, dims: set[str]
    ) -> list[DwellRow]:
        """Store.dwell by fence and/or day over a range holding whole days [a, b): the closed
        visits of those days from the rollup, those of the partial days [lo, a) and [b, hi) from
        the visits (found by exit_ts: a closed visit ends at most the longest visit after it
        starts), and the open visits, few, from the visits over the whole range."""
        days = _whole_days(lo, hi)
        assert days is not None
        a, b = days
        by_fence, by_day = "fence" in dims, "day" in dims
        acc: dict[tuple[str | None, float | None], DwellRow] = {}

        def add(fence: str | None, bucket: float | None, visits_n: int, dwell_s: float) -> None:
            key = (fence if by_fence else None, bucket if by_day else None)
            row = acc.get(key)
            if row is None:
                row = acc[key] = DwellRow(fence_id=key[0], bucket=key[1])
            row.visits += visits_n
            row.dwell_s += dwell_s

        r = dwell_days.c
        keys = [r.fence_id if by_fence else sa.null(), r.day if by_day else sa.null()]
        rolled = sa.select(*keys, sa.func.sum(r.visits), sa.func.sum(r.dwell_s)).where((r.day >= a) & (r.day < b))
        if fence_id is not None:
            rolled = rolled.where(r.fence_id == fence_id)
        rolled = rolled.group_by(*(k for k in keys if not isinstance(k, sa.Null)))
        for summed in (await conn.execute(rolled)).all():
            add(summed[0], summed[1], int(summed[2]), float(summed[3]))
        longest = (await conn.execute(sa.select(query_state.c.longest_visit_s))).scalar_one()
        v = visits.c
        for x, y in ((lo, a), (b, hi)):
            if y <= x:
                continue
            closed = sa.select(sa.null().label("device_id"), v.fence_id, v.enter_ts, v.exit_ts.label("end_ts")).where(
                (v.exit_ts >= x) & (v.exit_ts <= y + longest + 1.0) & (v.enter_ts < y)
            )
            if fence_id is not None:
                closed = closed.where(v.fence_id == fence_id)
            for row in await self._dwell_sql(conn, x, y, closed, dims & {"fence"}):
                add(row.fence_id, _bucket_start(x, DAY_S), row.visits, row.dwell_s)
        open_q = self.visits_in(lo, hi, fence_id, None).where(v.exit_ts.is_(None))
        open_rows = [tuple(row) for row in (await conn.execute(open_q)).all()]
        for row in _dwell_rows(lo, hi, DAY_S if by_day else None, dims, open_rows, None, []):
            add(row.fence_id, row.bucket, row.visits, row.dwell_s)
        return [acc[k] for k in sorted(acc, key=lambda k: (k[0] or "", k[1] or 0.0)) if acc[k].visits or acc[k].dwell_s]

    async def _dwell_sql(
        self, conn: AsyncConnection, lo: float, hi: float, visits_q: sa.Select[Any], dims: set[str]
    ) -> list[DwellRow]:
        """Visits (device, fence, enter_ts, end_ts) over [lo, hi) grouped by fence and/or device
        (or all together), without buckets or totals: summed in the database."""
        inner = visits_q.subquery()
        greatest, least = (sa.func.greatest, sa.func.least) if self._pg else (sa.func.max, sa.func.min)
        lo_p, hi_p = sa.literal(lo, sa.Float), sa.literal(hi, sa.Float)
        overlap = greatest(least(inner.c.end_ts, hi_p) - greatest(inner.c.enter_ts, lo_p), sa.literal(0.0, sa.Float))
        entered = sa.case(((inner.c.enter_ts >= lo_p) & (inner.c.enter_ts < hi_p), 1), else_=0)
        keys = [
            inner.c.fence_id if "fence" in dims else sa.null(),
            inner.c.device_id if "device" in dims else sa.null(),
        ]
        group = [k for k in keys if not isinstance(k, sa.Null)]
        visits_n, dwell_s = sa.func.sum(entered), sa.func.sum(overlap)
        query = (
            sa.select(*(k.label(n) for k, n in zip(keys, ("fence_id", "device_id"), strict=True)), visits_n, dwell_s)
            .group_by(*group)
            .having((visits_n > 0) | (dwell_s > 0))
            .order_by(*group)
        )
        rows = (await conn.execute(query)).all()
        return [DwellRow(fence_id=r[0], device_id=r[1], visits=int(r[2]), dwell_s=float(r[3])) for r in rows]


_CONFLICT = 'ON CONFLICT (consumer_group, topic, "partition", device_id) DO UPDATE SET state = excluded.state'
_PG_UPSERT_DEVICES = f"""
INSERT INTO checkpoint_devices (consumer_group, topic, "partition", device_id, state)
SELECT $1, $2, $3, u.device_id, u.state::json FROM unnest($4::text[], $5::text[]) AS u(device_id, state)
{_CONFLICT}"""
_SQLITE_UPSERT_DEVICES = f"""
INSERT INTO checkpoint_devices (consumer_group, topic, "partition", device_id, state) VALUES (?, ?, ?, ?, ?)
{_CONFLICT}"""

# ---------------------------------------------------------------------- observations: parsing


class _Ev(NamedTuple):
    """An event as stored, with the fields visits and gaps are derived from."""

    event_id: str
    type: str
    device_id: str
    fence_id: str | None
    ts: float
    officer_id: str | None
    callsign: str | None
    body: str  # JSON
    dwell_s: float | None
    gap_s: float | None
    reason: str | None


def _epoch(value: Any) -> float:
    """Epoch seconds of a published ts (ISO 8601, UTC when no offset) or of a number."""
    if isinstance(value, str):
        dt = datetime.fromisoformat(value)
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    return float(value)


def opt_float(value: Any) -> float | None:
    """None stays None (a NULL column); anything else becomes a float."""
    return None if value is None else float(value)


def _parse_events(events: Iterable[Event | Mapping[str, Any]]) -> list[_Ev]:
    """Events in the given order, the first of each event_id only, with bodies as published.

    Times are taken from the published form (microseconds), whether an `Event` or its dict is
    given, so the two record the same rows; numbers given for `ts`/`gap_start` are published
    as ISO 8601 the way `format_ts` does.
    """
    out: list[_Ev] = []
    seen: set[str] = set()
    for e in events:
        body = e.to_dict() if isinstance(e, Event) else dict(e)
        for key in ("ts", "gap_start"):
            if isinstance(body.get(key), int | float):
                body[key] = format_ts(float(body[key]))
        ts = _epoch(body["ts"])
        event_id = str(body["event_id"])
        if event_id in seen:
            continue
        seen.add(event_id)
        reason = body.get("reason")
        out.append(
            _Ev(
                event_id,
                str(body["type"]),
                str(body["device_id"]),
                _text(body.get("fence_id")),
                ts,
                _text(body.get("officer_id")),
                _text(body.get("callsign")),
                _json_dumps(body),
                opt_float(body.get("dwell_s")),
                opt_float(body.get("gap_s")),
                None if reason is None else str(reason),
            )
        )
    return out


@dataclass(slots=True)
class _Changes:
    """Row changes the events imply, for bulk statements.

    visits: (device, fence, enter_ts, exit_ts, dwell_s, reason), entered in this batch (exit
    fields set when it also ended in it); closes: (device, fence, exit_ts, reason, dwell_s) of
    visits entered before; gaps: (device, start_ts, end_ts) lost in this batch; restores:
    (device, end_ts, gap_s) of gaps that started before.
    """

    visits: list[tuple[Any, ...]] = field(default_factory=list)
    closes: list[tuple[Any, ...]] = field(default_factory=list)
    gaps: list[tuple[Any, ...]] = field(default_factory=list)
    restores: list[tuple[Any, ...]] = field(default_factory=list)


def _changes(evs: Iterable[_Ev]) -> _Changes:
    visit_rows: list[list[Any]] = []
    open_visits: dict[tuple[str, str], list[Any]] = {}
    gap_rows: list[list[Any]] = []
    open_gaps: dict[str, list[Any]] = {}
    ch = _Changes()
    for e in evs:
        if e.type == EventType.ENTER and e.fence_id is not None:
            row = [e.device_id, e.fence_id, e.ts, None, None, None]
            visit_rows.append(row)
            open_visits[(e.device_id, e.fence_id)] = row
        elif e.type == EventType.EXIT and e.fence_id is not None:
            row_or_none = open_visits.pop((e.device_id, e.fence_id), None)
            if row_or_none is None:
                ch.closes.append((e.device_id, e.fence_id, e.ts, e.reason, e.dwell_s))
            else:
                row_or_none[3:] = [e.ts, e.ts - row_or_none[2], e.reason]
        elif e.type == EventType.SIGNAL_LOST:
            gap_row = [e.device_id, e.ts, None]
            gap_rows.append(gap_row)
            open_gaps[e.device_id] = gap_row
        elif e.type == EventType.SIGNAL_RESTORED:
            gap_or_none = open_gaps.pop(e.device_id, None)
            if gap_or_none is None:
                ch.restores.append((e.device_id, e.ts, e.gap_s))
            else:
                gap_or_none[2] = e.ts
    ch.visits = [tuple(r) for r in visit_rows]
    ch.gaps = [tuple(r) for r in gap_rows]
    return ch


# ---------------------------------------------------------------------- dwell: buckets and unions


def _bucket(ts: float, width: float | None) -> float | None:
    """Start of the UTC bucket holding ts (epoch 0 is a UTC midnight), None without buckets."""
    return None if width is None else _bucket_start(ts, width)


def _bucket_start(ts: float, width: float) -> float:
    k = math.floor(ts / width) * width
    return k - width if k > ts else k


def _whole_days(lo: float, hi: float) -> tuple[float, float] | None:
    """[a, b): the whole UTC days within [lo, hi), None if there are none."""
    a = _bucket_start(lo, DAY_S)
    a = a if a >= lo else a + DAY_S
    b = _bucket_start(hi, DAY_S)
    return (a, b) if b > a else None


def _pieces(a: float, b: float, width: float | None) -> list[tuple[float | None, float]]:
    """[a, b) cut at bucket boundaries: (bucket, seconds) for each non-empty piece."""
    if not b > a:
        return []
    if width is None:
        return [(None, b - a)]
    out: list[tuple[float | None, float]] = []
    k = _bucket_start(a, width)
    while a < b:
        edge = min(k + width, b)
        if edge > a:
            out.append((k, edge - a))
            a = edge
        k += width
    return out


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Disjoint intervals covering the same time as spans."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def rollup_rows(closed: Iterable[tuple[Any, ...]]) -> dict[tuple[float, str], list[Any]]:
    """The rollup rows of closed visits (fence, enter_ts, exit_ts): (day, fence) -> [visits, dwell_s],
    each visit counted on the UTC day of its ENTER and its time split at midnights."""
    out: dict[tuple[float, str], list[Any]] = {}
    for fence, enter, exit_ in closed:
        out.setdefault((_bucket_start(enter, DAY_S), fence), [0, 0.0])[0] += 1
        for day, secs in _pieces(enter, exit_, DAY_S):
            out.setdefault((cast(float, day), fence), [0, 0.0])[1] += secs
    return out


def _dwell_rows(
    lo: float,
    hi: float,
    width: float | None,
    dims: set[str],
    visit_rows: Iterable[tuple[Any, ...]],
    spans: Iterable[tuple[Any, ...]] | None,
    gaps: Iterable[tuple[Any, ...]],
) -> list[DwellRow]:
    """Store.dwell in Python: visits cut into buckets, and the per-device totals (when spans given)."""
    by_fence, by_device = "fence" in dims, "device" in dims
    rows: dict[tuple[str | None, str | None, float | None], DwellRow] = {}

    def row(fence: str | None, device: str, bucket: float | None) -> DwellRow:
        key = (fence if by_fence else None, device if by_device else None, bucket)
        r = rows.get(key)
        if r is None:
            r = rows[key] = DwellRow(*key)
            if spans is not None:
                r.active_s, r.inside_s, r.lost_s = 0.0, 0.0, 0.0
        return r

    covered: dict[str, list[tuple[float, float]]] = {}
    for device, fence, enter, end in visit_rows:
        if lo <= enter < hi:
            row(fence, device, _bucket(enter, width)).visits += 1
        a, b = max(enter, lo), min(end, hi)
        for bucket, secs in _pieces(a, b, width):
            row(fence, device, bucket).dwell_s += secs
        if b > a:
            covered.setdefault(device, []).append((a, b))
    if spans is not None:
        for device, first, last in spans:
            a, b = max(first, lo), min(last, hi)
            row(None, device, _bucket(a, width))  # every device active in the range has a row
            for bucket, secs in _pieces(a, b, width):
                r = row(None, device, bucket)
                r.active_s = (r.active_s or 0.0) + secs
        for device, start, end in gaps:
            for bucket, secs in _pieces(max(start, lo), min(end, hi), width):
                r = row(None, device, bucket)
                r.lost_s = (r.lost_s or 0.0) + secs
                r.active_s = (r.active_s or 0.0) - secs
        for device, intervals in covered.items():
            for a, b in _union(intervals):
                for bucket, secs in _pieces(a, b, width):
                    r = row(None, device, bucket)
                    r.inside_s = (r.inside_s or 0.0) + secs
        for r in rows.values():
            r.outside_s = (r.active_s or 0.0) - (r.inside_s or 0.0)
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0] or "", k[1] or "", k[2] or 0.0))]


# ---------------------------------------------------------------------- observations: SQL

_VISIT_COLS = "device_id, fence_id, enter_ts, exit_ts, dwell_s, exit_reason"
_VISIT_CONFLICT = """ON CONFLICT (device_id, fence_id, enter_ts) DO UPDATE
SET exit_ts = excluded.exit_ts, dwell_s = excluded.dwell_s, exit_reason = excluded.exit_reason
WHERE visits.exit_ts IS NULL AND excluded.exit_ts IS NOT NULL"""
_PG_VISITS = f"""INSERT INTO visits ({_VISIT_COLS})
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::text[])
{_VISIT_CONFLICT}"""
_SQLITE_VISITS = f"INSERT INTO visits ({_VISIT_COLS}) VALUES (?, ?, ?, ?, ?, ?) {_VISIT_CONFLICT}"
_PG_CLOSE_VISITS = """UPDATE visits AS v SET exit_ts = u.ts, dwell_s = u.ts - v.enter_ts, exit_reason = u.reason
FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[]) AS u(device_id, fence_id, ts, reason)
WHERE v.device_id = u.device_id AND v.fence_id = u.fence_id AND v.exit_ts IS NULL AND v.enter_ts <= u.ts
RETURNING v.fence_id, v.enter_ts, v.exit_ts"""
_SQLITE_CLOSE_VISITS = """WITH u(device_id, fence_id, ts, reason) AS (VALUES {values})
UPDATE visits SET exit_ts = u.ts, dwell_s = u.ts - visits.enter_ts, exit_reason = u.reason FROM u
WHERE visits.device_id = u.device_id AND visits.fence_id = u.fence_id AND visits.exit_ts IS NULL
  AND visits.enter_ts <= u.ts
RETURNING fence_id, enter_ts, exit_ts"""
# An EXIT whose ENTER was never recorded (e.g. a visit open when the store was upgraded): the whole visit.
_PG_WHOLE_VISITS = f"""INSERT INTO visits ({_VISIT_COLS})
SELECT u.device_id, u.fence_id, u.ts - u.dwell, u.ts, u.dwell, u.reason
FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::float8[]) AS u(device_id, fence_id, ts, reason, dwell)
WHERE NOT EXISTS (SELECT 1 FROM visits v WHERE v.device_id = u.device_id AND v.fence_id = u.fence_id
                  AND v.exit_ts = u.ts)
ON CONFLICT DO NOTHING RETURNING fence_id, enter_ts, exit_ts"""
_SQLITE_WHOLE_VISITS = f"""WITH u(device_id, fence_id, ts, reason, dwell) AS (VALUES {{values}})
INSERT INTO visits ({_VISIT_COLS}) SELECT u.device_id, u.fence_id, u.ts - u.dwell, u.ts, u.dwell, u.reason FROM u
WHERE NOT EXISTS (SELECT 1 FROM visits v WHERE v.device_id = u.device_id AND v.fence_id = u.fence_id
                  AND v.exit_ts = u.ts)
ON CONFLICT DO NOTHING RETURNING fence_id, enter_ts, exit_ts"""
# Visits that end in the batch they start in; SQLite's form is one statement of many rows.
_PG_ENDED_VISITS = _PG_VISITS + " RETURNING fence_id, enter_ts, exit_ts"
_SQLITE_ENDED_VISITS = f"""INSERT INTO visits ({_VISIT_COLS}) VALUES {{values}} {_VISIT_CONFLICT}
RETURNING fence_id, enter_ts, exit_ts"""
#: Rows per SQLite statement of many rows (it takes up to 32,766 parameters).
_SQLITE_ROWS_PER_STATEMENT = 4_000

_ROLL_UP_CONFLICT = """ON CONFLICT (day, fence_id) DO UPDATE
SET visits = dwell_fence_days.visits + excluded.visits, dwell_s = dwell_fence_days.dwell_s + excluded.dwell_s"""
_PG_ROLL_UP = f"""INSERT INTO dwell_fence_days (day, fence_id, visits, dwell_s)
SELECT * FROM unnest($1::float8[], $2::text[], $3::int8[], $4::float8[]) {_ROLL_UP_CONFLICT}"""
_SQLITE_ROLL_UP = (
    f"INSERT INTO dwell_fence_days (day, fence_id, visits, dwell_s) VALUES (?, ?, ?, ?) {_ROLL_UP_CONFLICT}"
)
_PG_BUMP = "UPDATE query_state SET version = version + 1, longest_visit_s = GREATEST(longest_visit_s, $1) WHERE id = 1"
_SQLITE_BUMP = "UPDATE query_state SET version = version + 1, longest_visit_s = max(longest_visit_s, ?) WHERE id = 1"

_GAP_CONFLICT = """ON CONFLICT (device_id, start_ts) DO UPDATE SET end_ts = excluded.end_ts
WHERE lost_gaps.end_ts IS NULL AND excluded.end_ts IS NOT NULL"""
_PG_GAPS = f"""INSERT INTO lost_gaps (device_id, start_ts, end_ts)
SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[]) {_GAP_CONFLICT}"""
_SQLITE_GAPS = f"INSERT INTO lost_gaps (device_id, start_ts, end_ts) VALUES (?, ?, ?) {_GAP_CONFLICT}"
_PG_CLOSE_GAPS = """UPDATE lost_gaps AS g SET end_ts = u.ts
FROM unnest($1::text[], $2::float8[]) AS u(device_id, ts)
WHERE g.device_id = u.device_id AND g.end_ts IS NULL AND g.start_ts <= u.ts"""
_SQLITE_CLOSE_GAPS = """UPDATE lost_gaps SET end_ts = ?2
WHERE device_id = ?1 AND end_ts IS NULL AND start_ts <= ?2"""
_PG_WHOLE_GAPS = """INSERT INTO lost_gaps (device_id, start_ts, end_ts)
SELECT u.device_id, u.ts - u.gap, u.ts FROM unnest($1::text[], $2::float8[], $3::float8[]) AS u(device_id, ts, gap)
WHERE NOT EXISTS (SELECT 1 FROM lost_gaps g WHERE g.device_id = u.device_id AND g.end_ts = u.ts)
ON CONFLICT DO NOTHING"""
_SQLITE_WHOLE_GAPS = """INSERT INTO lost_gaps (device_id, start_ts, end_ts) SELECT ?1, ?2 - ?3, ?2
WHERE NOT EXISTS (SELECT 1 FROM lost_gaps WHERE device_id = ?1 AND end_ts = ?2)
ON CONFLICT DO NOTHING"""

_DEVICE_COLS = "device_id, first_ts, last_ts, lat, lon, accuracy_m, lost, officer_id, callsign, source, updated_at"
_DEVICE_SET = ", ".join(f"{c} = excluded.{c}" for c in _DEVICE_COLS.split(", ")[2:])
_PG_DEVICES = f"""INSERT INTO devices ({_DEVICE_COLS})
SELECT u.*, $11::float8 FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::float8[],
                                    $6::float8[], $7::bool[], $8::text[], $9::text[], $10::text[]) AS u
ON CONFLICT (device_id) DO UPDATE SET first_ts = LEAST(devices.first_ts, excluded.first_ts), {_DEVICE_SET}"""
_SQLITE_DEVICES = f"""INSERT INTO devices ({_DEVICE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (device_id) DO UPDATE SET first_ts = min(devices.first_ts, excluded.first_ts), {_DEVICE_SET}"""
_PG_DELETE_PRESENCE = "DELETE FROM presence WHERE device_id = ANY($1::text[])"
_SQLITE_DELETE_PRESENCE = "DELETE FROM presence WHERE device_id = ?"
_PG_PRESENCE = """INSERT INTO presence (device_id, fence_id, since)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[])"""
_SQLITE_PRESENCE = "INSERT INTO presence (device_id, fence_id, since) VALUES (?, ?, ?)"

_EVENT_COLS = "event_id, type, device_id, fence_id, ts, officer_id, callsign, body"
_PG_EVENTS = f"""INSERT INTO events ({_EVENT_COLS})
SELECT u.event_id, u.type, u.device_id, u.fence_id, u.ts, u.officer_id, u.callsign, u.body::json
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::text[], $8::text[])
     WITH ORDINALITY AS u(event_id, type, device_id, fence_id, ts, officer_id, callsign, body, n)
ORDER BY u.n
ON CONFLICT (event_id) DO NOTHING"""
_SQLITE_EVENTS = f"INSERT INTO events ({_EVENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
