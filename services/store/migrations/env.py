"""Alembic environment.

`Store.open` hands over its connection (config.attributes["connection"]), already inside the
transaction that holds the migration lock, so the schema change commits or fails as a whole.
Run from the alembic CLI (alembic.ini here), it opens the database itself: `-x url=...` or
the ini's sqlalchemy.url.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from services.store.database import database_url
from services.store.tables import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs by table copy
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_cli(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


_connection = context.config.attributes.get("connection")
_url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
if _connection is not None:
    _run(_connection)
elif context.is_offline_mode():
    context.configure(url=database_url(_url, Path("var")), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_cli(database_url(_url, Path("var"))))
