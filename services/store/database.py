"""The database handle: URL, engine, SQLite set-up, migrations on open, transactions, bulk statements.

SQLite by default (one node, no server to run), PostgreSQL when configured (several
matchers, one shared store). The schema is owned by the Alembic migrations shipped in
`services/store/migrations/`; `Database.open` runs them, so a deployment has no separate step.
Every concern of the store (fences.py, keys.py, ...) is a subclass using this one handle.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Self

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from services.store.tables import audit_log

#: Alembic script directory, found next to this module so an installed package works.
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Key of the PostgreSQL advisory lock that serialises concurrent migrations.
MIGRATION_LOCK_KEY = 0x486F7473706F7473  # "Hotspots"
#: Rows per SQLite statement of many rows (it takes up to 32,766 parameters).
SQLITE_ROWS_PER_STATEMENT = 4_000
#: The audit log's own SQLite file, next to the database file (see `Database.audit_write`).
AUDIT_FILE_SUFFIX = "-audit"


def private_dir(path: Path) -> None:
    """Create the data directory for its owner's eyes only (0700): the store, the journal and the
    broker's files in it hold officers' positions."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy async URL for a configured one; None means SQLite under data_dir."""
    if url is None:
        private_dir(data_dir)
        return f"sqlite+aiosqlite:///{data_dir}/hotspots.db"
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def columns(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows as column lists: the parameters of a PostgreSQL statement over unnest($1, $2, ...)."""
    return tuple(list(col) for col in zip(*rows, strict=True))


def json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


@contextmanager
def gc_paused() -> Iterator[None]:
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


def _audit_url(url: sa.URL) -> sa.URL | None:
    """The audit log's SQLite file beside a SQLite database file; None for PostgreSQL or memory."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database)
    return url.set(database=str(path.with_name(path.stem + AUDIT_FILE_SUFFIX + path.suffix)))


def _create_audit_log(conn: sa.Connection) -> bool:
    """Create the audit log table where it is missing; whether it was."""
    if sa.inspect(conn).has_table(audit_log.name):
        return False
    audit_log.create(conn)
    return True


class Database:
    """Async access to the database; one per process, shared by all tasks (pooled connections)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._audit = engine  # on SQLite, replaced by the audit file's engine in `open`
        self._pg = engine.dialect.name == "postgresql"
        # Writers take SQLite's write lock up front; PostgreSQL readers see one snapshot.
        self._writer = engine.execution_options(hotspots_write=True)
        self._reader = engine.execution_options(isolation_level="REPEATABLE READ") if self._pg else engine

    @classmethod
    async def open(cls, url: str) -> Self:
        """Connect and bring the schema to the latest migration; a ready store."""
        engine = create_async_engine(url, json_serializer=json_dumps, json_deserializer=orjson.loads)
        if engine.dialect.name == "sqlite":
            _sqlite_setup(engine)
        db = cls(engine)
        try:
            async with db.write() as conn:
                if db._pg:  # two processes starting together must not both create tables
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                await conn.run_sync(_upgrade)
            audit_url = _audit_url(engine.url)
            if audit_url is not None:
                await db._open_audit(audit_url)
        except BaseException:
            await db.close()
            raise
        return db

    async def _open_audit(self, url: sa.URL) -> None:
        """The audit log in a SQLite file of its own: an audited read (every presence request) then
        commits without waiting for the write lock of the matcher's checkpoints, as durably
        (WAL, synchronous FULL). Entries written before it existed are moved into it."""
        engine = create_async_engine(url, json_serializer=json_dumps, json_deserializer=orjson.loads)
        _sqlite_setup(engine)
        self._audit = engine
        async with self.audit_write() as conn:
            if not await conn.run_sync(_create_audit_log):
                return
            async with self.read() as old:
                rows = [r._asdict() for r in (await old.execute(sa.select(audit_log).order_by(audit_log.c.id))).all()]
            if rows:
                await conn.execute(sa.insert(audit_log), rows)
        if rows:
            async with self.write() as conn:
                await conn.execute(sa.delete(audit_log))

    @classmethod
    @asynccontextmanager
    async def opened(cls, url: str) -> AsyncIterator[Self]:
        """A handle for the block, e.g. a thread's own (an async driver's connections belong to one loop)."""
        db = await cls.open(url)
        try:
            yield db
        finally:
            await db.close()

    async def close(self) -> None:
        if self._audit is not self._engine:
            await self._audit.dispose()
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
    async def audit_write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on the audit log (its own file on SQLite, the database on PostgreSQL)."""
        async with self._audit.execution_options(hotspots_write=True).begin() as conn:
            yield conn

    @asynccontextmanager
    async def audit_read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction on the audit log."""
        async with self._audit.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the reader pool, for queries kept in their own modules."""
        async with self._reader.begin() as conn:
            yield conn

    def insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which has on_conflict_do_update/do_nothing on both."""
        return postgresql.insert(table) if self._pg else sqlite.insert(table)

    async def _bulk(self, conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """One statement for many rows: over column arrays (PostgreSQL) or executemany (SQLite)."""
        if self._pg:
            await conn.exec_driver_sql(sql, columns(rows))
        else:
            await conn.exec_driver_sql(sql, list(rows))

    async def _bulk_returning(self, conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        """`_bulk` of a statement ending in RETURNING: the rows it returned. SQLite's executemany
        returns none, so there `sql` has `{values}` for the rows, many to a statement."""
        if self._pg:
            return list((await conn.exec_driver_sql(sql, columns(rows))).all())
        out: list[Any] = []
        one = "(" + ", ".join("?" * len(rows[0])) + ")"
        for i in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[i : i + SQLITE_ROWS_PER_STATEMENT]
            params = tuple(value for row in chunk for value in row)
            out += (await conn.exec_driver_sql(sql.format(values=", ".join([one] * len(chunk))), params)).all()
        return out
