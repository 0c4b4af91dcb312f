"""The API as a client sees it, in process: the real app on a real store, one key per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from api.app import create_app
from api.context import ServiceContext
from services.access.keys import create_key
from services.access.roles import Role
from services.metrics import Metrics
from services.settings import Settings
from services.store import Store


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    ctx: ServiceContext
    keys: dict[Role, str]

    def as_(self, role: Role) -> dict[str, str]:
        """Headers that authenticate as the key of that role."""
        return {"authorization": f"Bearer {self.keys[role]}"}


@asynccontextmanager
async def serve_api(db_url: str, settings: Settings | None = None) -> AsyncIterator[Api]:
    """An httpx client on the app over a freshly opened store, with a key for every role."""
    keys = {role: await create_key(db_url, role, f"test {role.value}") for role in Role}
    store = await Store.open(db_url)
    try:
        ctx = ServiceContext(settings or Settings(), store, Metrics())
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, store, ctx, keys)
    finally:
        await store.close()
