"""The API's OpenAPI schema is valid, and schemathesis finds no request that makes it answer 5xx.

The property-based test runs in-process over ASGI against a real SQLite store with a little
data in it (fences, events, visits, devices, presence of a real Engine), as an admin, so every
route gets past authentication to its query. Excluded: the SSE stream (it never ends). The
pings and fences routes read their bodies themselves and declare none in the schema, so the
test declares a JSON body for them (an object or an array) to have schemathesis fuzz them too.
POST /v1/pings answers 503 for valid pings by design here (no broker), as does /readyz:
503 is accepted from those two and nothing else; any other 5xx fails.

Marked ``integration``: the fuzzing drives the whole app through thousands of generated requests
(~40 s), so it runs in ``make test`` and not in the fast unit subset.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.context import ServiceContext
from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.geojson_fences import fences_from_geojson
from services.access.keys import create_key
from services.access.roles import RateLimiter, Role
from services.metrics import Metrics
from services.settings import Settings
from services.store import Store, database_url, devices_now
from services.workload import device_name, make_workload

pytestmark = pytest.mark.integration

#: Operations whose 503 means "no broker", which is how this test runs the app.
BROKERLESS_503 = {("POST", "/v1/pings"), ("POST", "/v1/pings/lip"), ("POST", "/v1/pings/nmea"), ("GET", "/readyz")}
#: Operations that read a JSON body the schema does not declare.
UNDECLARED_BODIES = {
    ("post", "/v1/pings"),
    ("post", "/v1/pings/lip"),
    ("post", "/v1/pings/nmea"),
    ("post", "/v1/fences"),
    ("put", "/v1/fences/{fence_id}"),
}
ANY_JSON_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"anyOf": [{"type": "object"}, {"type": "array"}]}}},
}


#: The store the property test runs over: an hour of this many fences (HS00001..) and devices (R00000..).
N_FENCES, N_DEVICES = 12, 8
_ISO = {"type": "string", "format": "date-time"}
HINTS: dict[str, list[dict[str, Any]]] = {  # epoch seconds from before the workload to inside it, then ISO
    "from": [{"type": "string", "pattern": "^17949[0-9]{5}(\\.[0-9]{1,3})?$"}, _ISO],
    "to": [{"type": "string", "pattern": "^17950[0-9]{5}(\\.[0-9]{1,3})?$"}, _ISO],
    "fence_id": [{"enum": [f"HS{i + 1:05d}" for i in range(N_FENCES)]}],
    "device_id": [{"enum": [device_name(d) for d in range(N_DEVICES)]}],
}


def _bare_app() -> FastAPI:
    """create_app over no store: enough to render the schema, which reads nothing."""
    return create_app(ServiceContext(Settings(), cast(Store, None), Metrics()))


def _fuzzable(raw: dict[str, Any]) -> dict[str, Any]:
    """The schema, made to reach past validation more often: a JSON body declared where a route
    reads one the schema does not declare, times that parse (RFC 3339 or epoch) for `from`/`to`,
    and the ids of the test's fences and devices as likely values of `fence_id`/`device_id`."""
    raw = copy.deepcopy(raw)
    for method, path in UNDECLARED_BODIES:
        raw["paths"][path][method].setdefault("requestBody", ANY_JSON_BODY)
    for operation in (op for item in raw["paths"].values() for op in item.values()):
        for param in operation.get("parameters", []):
            hints = HINTS.get(param["name"])
            if hints is not None:
                param["schema"] = {"anyOf": [*hints, param["schema"]]}
    return raw


def test_openapi_schema_is_valid_openapi_3() -> None:
    raw = _bare_app().openapi()
    assert str(raw["openapi"]).startswith("3.")
    schema = schemathesis.openapi.from_dict(raw)
    schema.validate()  # the OpenAPI 3.x meta-schema; raises on the first violation
    operations = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert {("GET", "/v1/presence"), ("GET", "/v1/dwell"), ("GET", "/v1/events"), ("POST", "/v1/pings")} <= operations


#: Generated from the schema alone; the requests go to the app of the `served` fixture.
schema = schemathesis.openapi.from_dict(_fuzzable(_bare_app().openapi())).exclude(path="/v1/events/stream")


async def _prepare(url: str) -> tuple[Store, str]:
    """An admin key and a store filled the way the matcher fills it (its pool disposed: see `served`)."""
    admin = await create_key(url, Role.ADMIN, "schemathesis")
    store = await Store.open(url)
    try:
        w = make_workload(N_FENCES, N_DEVICES, 3600.0, seed=5, interval_s=20.0)
        fences = fences_from_geojson(w.fences)
        await store.upsert_fences(fences)
        engine = Engine(FenceIndex(fences), EngineParams(max_lateness_s=0))
        for i in range(0, len(w.pings), 300):
            events = engine.process(w.pings.take(slice(i, i + 300))).events
            _, changed = engine.checkpoint()
            await store.record(events, devices_now(changed))
    finally:
        await store.close()  # disposes the pool: the loop serving the app opens its own connections
    return store, admin


@dataclass
class Served:
    app: FastAPI
    headers: dict[str, str]


@pytest.fixture
def served(tmp_path: Path) -> Served:
    """The app over a filled SQLite store, and an admin's headers."""
    store, admin = asyncio.run(_prepare(database_url(None, tmp_path)))
    limiter = RateLimiter(rate=1e6, burst=1e6)  # one key sends every request: no 429s hiding the routes
    app = create_app(ServiceContext(Settings(), store, Metrics(), limiter=limiter))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:  # on the loop that served the requests, where the pooled connections live
            await store.close()

    app.router.lifespan_context = lifespan  # schemathesis ends it when the test ends
    return Served(app, {"authorization": f"Bearer {admin}"})


@schema.parametrize()
@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_no_server_error(case: schemathesis.Case, served: Served) -> None:
    response = case.call(app=served.app, headers=served.headers)
    if (case.method.upper(), case.path) in BROKERLESS_503 and response.status_code == 503:
        return
    case.validate_response(response, checks=[not_a_server_error], headers=served.headers)


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/events"])
async def test_api_cursor_past_64_bits_answers_422_not_500(tmp_path: Path, path: str) -> None:
    """Found by the test above: `after` past the store's 64-bit integers made the driver overflow (500)."""
    url = database_url(None, tmp_path)
    headers = {"authorization": f"Bearer {await create_key(url, Role.ADMIN, 'cursor')}"}
    store = await Store.open(url)
    try:
        transport = httpx.ASGITransport(app=create_app(ServiceContext(Settings(), store, Metrics())))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            too_big = await client.get(path, params={"after": 2**63}, headers=headers)
            largest = await client.get(path, params={"after": 2**63 - 1}, headers=headers)
    finally:
        await store.close()
    assert too_big.status_code == 422
    assert too_big.json()["detail"][0]["loc"] == ["query", "after"]
    assert largest.status_code == 200
