"""Shared fixtures.

``db_url`` / ``store``: a fresh empty store, once on SQLite and once on a new PostgreSQL
database (dropped afterwards), so every store-backed test runs on both.

``broker``: one embedded Tansu broker (memory only) for the whole session, started by the
first test that asks for it and stopped at the end. The fixture is synchronous on purpose:
``EmbeddedBroker.start_sync`` runs its readiness probe on a private event loop, and the broker
is a plain child process bound to no loop. So async tests on pytest-asyncio's default
function-scoped loop simply connect to ``broker.bootstrap``: no session-scoped async fixture,
no ``loop_scope`` markers, and nothing breaks when a test's loop closes.

Tests sharing it must use their own topic and group names (e.g. with a uuid suffix), and must
not stop or restart it: a test that needs an outage starts its own ``EmbeddedBroker``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.databases import fresh_database

from services.pipeline.broker import EmbeddedBroker
from services.store import Store, database_url


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A started broker; its output is in the session's temp dir (``tansu-<port>.log``)."""
    b = EmbeddedBroker(log_dir=tmp_path_factory.mktemp("broker"))
    b.start_sync()
    try:
        yield b
    finally:
        b.stop_sync()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a file under tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield database_url(None, tmp_path)
        return
    async with fresh_database() as url:
        yield database_url(url, tmp_path)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url)
    try:
        yield s
    finally:
        await s.close()
