"""Serving under load: audited reads group-committed without losing one; several API processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest

from api.app import create_app
from api.context import ServiceContext
from services.access.keys import create_key
from services.access.roles import Role
from services.metrics import Metrics
from services.pipeline.broker import free_port
from services.run import run_service
from services.settings import Settings
from services.store import DeviceNow, Store, database_url


async def test_concurrent_audited_reads_each_leave_one_committed_entry(store: Store, db_url: str) -> None:
    viewer = await create_key(db_url, Role.VIEWER, "control room")
    admin = await create_key(db_url, Role.ADMIN, "supervisor")
    app = create_app(ServiceContext(Settings(), store, Metrics()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answers = await asyncio.gather(
            *(
                client.get(f"/v1/presence/devices/d{i}", headers={"authorization": f"Bearer {viewer}"})
                for i in range(40)
            )
        )
        assert {a.status_code for a in answers} == {404}  # unknown devices; the read is audited all the same
        page = await client.get("/v1/audit", params={"limit": 100}, headers={"authorization": f"Bearer {admin}"})
    reads = [e for e in page.json()["entries"] if e["action"] == "GET /v1/presence/devices/{id}"]
    assert sorted(e["target"] for e in reads) == sorted(f"d{i}" for i in range(40))


async def test_large_cached_answer_gzipped_only_for_clients_that_accept_it(store: Store, db_url: str) -> None:
    inside = {
        f"d{i:02d}": DeviceNow(0.0, 60.0, 51.5, -0.1, None, False, f"PC{i}", None, None, {"A": 30.0}) for i in range(30)
    }
    await store.record([], inside)
    viewer = {"authorization": f"Bearer {await create_key(db_url, Role.VIEWER, 'wall')}"}
    app = create_app(ServiceContext(Settings(), store, Metrics()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        plain = await client.get("/v1/presence", headers={**viewer, "accept-encoding": "identity"})
        refused = await client.get("/v1/presence", headers={**viewer, "accept-encoding": "gzip;q=0"})
        packed = await client.get("/v1/presence", headers={**viewer, "accept-encoding": "gzip, br"})
    assert "content-encoding" not in plain.headers and "content-encoding" not in refused.headers
    assert packed.headers["content-encoding"] == "gzip"
    [fence] = orjson.loads(plain.content)["fences"]
    assert (fence["fence_id"], len(fence["devices"])) == ("A", 30)
    assert orjson.loads(packed.content) == orjson.loads(plain.content)  # httpx decoded it
    assert packed.num_bytes_downloaded < plain.num_bytes_downloaded / 4  # what went over the wire


@pytest.mark.integration
async def test_api_workers_serve_one_port_and_stop_with_the_service(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        role="api", api_workers=2, api_port=port, data_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}"
    )  # no broker there: the API serves reads regardless
    url = database_url(None, tmp_path)
    await (await Store.open(url)).close()  # migrated before the workers race to do it
    key = await create_key(url, Role.VIEWER, "wall screen")
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            for _ in range(300):  # the workers take a few seconds to start
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            answers = [await client.get("/v1/fences", headers={"authorization": f"Bearer {key}"}) for _ in range(20)]
        assert [a.status_code for a in answers] == [200] * 20
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
        try:
            await client.get("/healthz")
            served_after_stop = True
        except httpx.TransportError:
            served_after_stop = False
    assert not served_after_stop
