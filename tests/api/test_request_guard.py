"""What every request goes through (api/limits.py) and what one careless client cannot do.

Each test is a finding of the hardening review (issue 12): a body read before the key was
checked, no limit or timeout on bodies, a body of bad pings that froze the service and
answered hundreds of megabytes, a disconnect logged as a traceback, missing response headers,
/docs from a CDN, unthrottled key guessing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.api import Api, serve_api

from api.limits import HTML_CSP
from services.access.roles import FAILED_BURST, Role
from services.run import GC_THRESHOLDS
from services.settings import Settings
from services.store import database_url

#: Routes whose body FastAPI parses into a model before any dependency (the key check) runs.
MODEL_BODY_ROUTES = [
    ("POST", "/v1/plans"),
    ("PUT", "/v1/plans/p1"),
    ("POST", "/v1/calibration/checks"),
    ("POST", "/v1/calibration/apply"),
]
LIMIT = 64 * 1024


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    settings = Settings(max_request_bytes=LIMIT, body_timeout_s=0.5)
    async with serve_api(sqlite_url, settings) as served:
        yield served


class Chunks:
    """A streamed body (no Content-Length) that counts the chunks the server pulled."""

    def __init__(self, count: int, size: int = 16 * 1024, pause_s: float = 0.0) -> None:
        self.count, self.size, self.pause_s, self.pulled = count, size, pause_s, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.pulled += 1
            if self.pause_s:
                await asyncio.sleep(self.pause_s)
            yield b" " * self.size


@pytest.mark.parametrize(("method", "path"), MODEL_BODY_ROUTES)
async def test_body_route_without_key_answers_401_before_reading_the_body(api: Api, method: str, path: str) -> None:
    body = Chunks(100)
    response = await api.client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert body.pulled <= 1  # the transport may hand over its first chunk; nothing is read


@pytest.mark.parametrize(("method", "path"), [*MODEL_BODY_ROUTES, ("POST", "/v1/fences"), ("POST", "/v1/pings")])
async def test_body_over_the_request_limit_answers_413_declared_or_streamed(api: Api, method: str, path: str) -> None:
    headers = {**api.as_(Role.ADMIN), "content-type": "application/json"}
    declared = await api.client.request(method, path, content=b" " * (LIMIT + 1), headers=headers)
    assert declared.status_code == 413
    body = Chunks(100)
    streamed = await api.client.request(method, path, content=body, headers=headers)
    assert streamed.status_code == 413
    assert body.pulled < 10  # refused as soon as it passed the limit


async def test_body_that_stalls_answers_408(api: Api) -> None:
    body = Chunks(3, size=10, pause_s=2.0)
    headers = {**api.as_(Role.ADMIN), "content-type": "application/json"}
    response = await api.client.post("/v1/plans", content=body, headers=headers)
    assert response.status_code == 408


async def test_client_gone_mid_body_logs_one_line_and_no_traceback(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    app = api.client._transport.app  # type: ignore[attr-defined]  # the ASGI app under httpx
    auth = f"Bearer {api.keys[Role.INGEST]}".encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/pings", "raw_path": b"/v1/pings", "query_string": b"", "root_path": "", "server": ("t", 80),
        "client": ("127.0.0.1", 5), "headers": [(b"content-length", b"1000"), (b"authorization", auth)],
    }  # fmt: skip
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert any("went away" in r.getMessage() for r in caplog.records)


async def test_officer_data_is_not_stored_by_caches_nor_sniffed(api: Api) -> None:
    response = await api.client.get("/v1/presence", headers=api.as_(Role.VIEWER))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_docs_from_a_cdn_are_off_by_default(api: Api) -> None:
    assert (await api.client.get("/docs")).status_code == 404
    assert (await api.client.get("/redoc")).status_code == 404


async def test_failed_key_checks_from_one_address_are_throttled_with_429(api: Api) -> None:
    wrong = {"authorization": "Bearer hs_000000000000_not-the-secret"}
    codes = [(await api.client.get("/v1/presence", headers=wrong)).status_code for _ in range(int(FAILED_BURST) + 2)]
    assert codes[0] == 401 and codes[-1] == 429
    # A good key from that address is refused too while the bucket refills: guessing pays nothing.
    assert (await api.client.get("/v1/presence", headers=api.as_(Role.VIEWER))).status_code == 429


async def test_pings_body_of_bad_items_lists_the_first_100_and_counts_the_rest(api: Api) -> None:
    body = b"[" + b",".join([b"{}"] * 5000) + b"]"
    headers = {**api.as_(Role.INGEST), "content-type": "application/json"}
    response = await api.client.post("/v1/pings", content=body, headers=headers)
    out = response.json()
    assert response.status_code == 422
    assert (out["accepted"], out["rejected"], len(out["errors"]), out["errors_unlisted"]) == (0, 5000, 100, 4900)
    assert out["errors"][99] == {"index": 99, "field": "device_id", "reason": out["errors"][0]["reason"]}


@pytest.fixture
def service_gc() -> Iterator[None]:
    """The cyclic collector tuned as `hotspots run` tunes it (at the defaults, full collections
    over the body's million objects hold the GIL for 0.1-0.5 s each)."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("service_gc")
async def test_pings_worst_body_leaves_healthz_and_presence_answering_within_a_second(tmp_path: Path) -> None:
    """The stall test: 5 MB of `{}` items (the costliest body to validate) while others ask."""
    async with serve_api(database_url(None, tmp_path)) as api:
        body = b"[" + b",".join([b"{}"] * (api.ctx.settings.max_body_bytes // 3 - 1)) + b"]"
        headers = {**api.as_(Role.INGEST), "content-type": "application/json"}
        worst = asyncio.create_task(api.client.post("/v1/pings", content=body, headers=headers))
        slowest = 0.0
        while not worst.done():
            for path, who in (("/healthz", {}), ("/v1/presence", api.as_(Role.VIEWER))):
                started = time.perf_counter()
                assert (await api.client.get(path, headers=who)).status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.05)
        assert (await worst).status_code == 422
        assert slowest < 1.0, f"a request waited {slowest:.2f} s behind the worst body"


async def test_html_report_carries_a_policy_allowing_no_script_nor_remote_resource(api: Api) -> None:
    response = await api.client.get("/v1/reports/weekly", params={"week": "2026-W47"}, headers=api.as_(Role.VIEWER))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == HTML_CSP
    assert "script-src" not in HTML_CSP and "default-src 'none'" in HTML_CSP
