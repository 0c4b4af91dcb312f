"""The API as a client sees it, in process: the real app on a real store, one key per role."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from api.app import create_app
from api.context import ServiceContext
from services.access.keys import add_key
from services.access.roles import Role
from services.metrics import Metrics
from services.pipeline.broker import free_port
from services.settings import Settings
from services.store import Store

#: The officer the officer key of `serve_api` is bound to.
OFFICER = "PC-TEST"


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
    store = await Store.open(db_url)
    keys = {
        role: (await add_key(store, role, f"test {role.value}", OFFICER if role is Role.OFFICER else None)).token
        for role in Role
    }
    ctx = ServiceContext(settings or Settings(), store, Metrics())
    try:
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, store, ctx, keys)
    finally:
        await ctx.feed.stop()
        await store.close()


@asynccontextmanager
async def serve_on_port(ctx: ServiceContext, wait_s: float = 10.0) -> AsyncIterator[str]:
    """The app served by uvicorn on a free loopback port (for streams, which ASGITransport buffers);
    yields its base URL. Start and stop each have a deadline."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(wait_s):
            while not server.started:
                assert not task.done(), "the test server did not start"
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, wait_s)
