"""Shared fixtures, and the markers that split the suite.

``db_url`` / ``store``: a fresh store, once on SQLite and once on PostgreSQL, so every
store-backed test runs on both. The PostgreSQL server is ``HOTSPOTS_TEST_PG_URL`` when set,
else a throwaway server the session starts from a pip-installed wheel (tests/support/postgres.py):
a newcomer's machine needs no service. The migrations run once, into a template database; each
test gets a copy (``CREATE DATABASE ... TEMPLATE``), dropped afterwards.

``broker``: one embedded Tansu broker (memory only) for the whole session, started by the
first test that asks for it and stopped at the end. The fixture is synchronous on purpose:
``EmbeddedBroker.start_sync`` runs its readiness probe on a private event loop, and the broker
is a plain child process bound to no loop. So async tests on pytest-asyncio's default
function-scoped loop simply connect to ``broker.bootstrap``: no session-scoped async fixture,
no ``loop_scope`` markers, and nothing breaks when a test's loop closes.

Tests sharing it must use their own topic and group names (e.g. with a uuid suffix), and must
not stop or restart it: a test that needs an outage starts its own ``EmbeddedBroker``.

Markers (``pytest -m "not integration and not e2e"`` is the fast unit subset):
``integration`` is given here to every test on PostgreSQL or the broker, and by hand to tests that
start processes; ``e2e`` to every test under tests/web (a real browser).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.postgres import admin_url, fresh_database, template_database

from services.pipeline.broker import EmbeddedBroker
from services.store import Store, database_url

#: Fixtures that make a test an integration test: a real broker or a real PostgreSQL server.
INTEGRATION_FIXTURES = frozenset({"broker", "pg_url", "pg_admin_url"})
WEB_TESTS = Path(__file__).parent / "web"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(item, "callspec", None)
        on_postgres = params is not None and params.params.get("db_url") == "postgresql"
        if on_postgres or INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if item.path.is_relative_to(WEB_TESTS):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A started broker; its output is in the session's temp dir (``tansu-<port>.log``)."""
    b = EmbeddedBroker(log_dir=tmp_path_factory.mktemp("broker"))
    b.start_sync()
    try:
        yield b
    finally:
        b.stop_sync()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """The PostgreSQL server of this session (external or throwaway), as an admin URL."""
    with admin_url() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to head once per session, copied for each test."""
    data = tmp_path_factory.mktemp("pg-template")

    async def migrate(url: str) -> None:
        await (await Store.open(database_url(url, data))).close()

    with template_database(pg_admin_url, migrate) as name:
        yield name


@pytest.fixture
async def pg_url(pg_admin_url: str, pg_template: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database at the schema's head (plain ``postgresql://`` URL), dropped afterwards."""
    async with fresh_database(pg_admin_url, template=pg_template) as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; each test copies it (cheaper than migrating)."""
    data = tmp_path_factory.mktemp("sqlite-template")

    async def migrate() -> None:
        await (await Store.open(database_url(None, data))).close()

    asyncio.run(migrate())
    return data / "hotspots.db"


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A SQLite store at the schema's head under tmp_path: a copy of the session's migrated file."""
    shutil.copyfile(sqlite_template, tmp_path / "hotspots.db")
    return database_url(None, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> AsyncIterator[str]:
    """A fresh database at the schema's head: a copy of a migrated SQLite file under tmp_path, or a
    copy of the PostgreSQL template."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    admin, template = request.getfixturevalue("pg_admin_url"), request.getfixturevalue("pg_template")
    async with fresh_database(admin, template=template) as url:
        yield database_url(url, tmp_path)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url)
    try:
        yield s
    finally:
        await s.close()
