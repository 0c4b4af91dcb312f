"""Every route of the app: 401 without a key, 403 for a role that lacks access, audited when it shows officers.

The operations are enumerated from the app itself, so a route added later is covered without
touching this file; only the public ones are left out, by name. Access control does not depend
on the database, so these run on SQLite only (tests/api/test_api_access.py covers keys on both).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from support.api import Api, serve_api

from api.app import create_app
from api.context import ServiceContext
from api.deps import ROLE_CHECKS, audit_trail
from services.access.roles import Role
from services.metrics import Metrics
from services.settings import Settings
from services.store import Store

#: Routes anyone may call: probes, metrics (public unless the setting says otherwise), the page and
#: its base-map tiles (no officer data; loaded as images, which carry no key).
PUBLIC = {"/healthz", "/readyz", "/metrics", "/", "/me", "/config.json", "/tiles/{z}/{x}/{y}"}
#: Routes that are not API operations: the OpenAPI documents and the page's static files.
NOT_OPERATIONS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static"}
#: The role of a key that lacks each role (an admin may do everything).
LACKING = {Role.ADMIN: Role.VIEWER, Role.VIEWER: Role.OFFICER, Role.INGEST: Role.VIEWER, Role.OFFICER: Role.INGEST}
#: Operations that show no officer's data and change nothing tracked: the only ones not audited.
UNAUDITED = {
    ("GET", "/v1/fences"),  # hot spots are places, not people
    ("GET", "/v1/fences/{fence_id}"),
    ("GET", "/v1/plans"),
    ("GET", "/v1/plans/{plan_id}"),
    ("GET", "/v1/compliance/due"),  # per plan window, no officer
    ("GET", "/v1/outcomes"),  # incidents and dosage per hot spot
    ("GET", "/v1/hotspots/candidates"),
    ("GET", "/v1/hotspots/capacity"),
    ("GET", "/v1/audit"),  # the audit log itself, admins only
    ("POST", "/v1/pings"),  # the tracking data itself, from radio gateways
    ("POST", "/v1/pings/lip"),  # the same, as TETRA LIP records
    ("POST", "/v1/pings/nmea"),  # the same, as NMEA sentences
    ("GET", "/v1/osmand"),  # the same, from handset apps
    ("POST", "/v1/osmand"),
}


def _app_routes() -> list[RouteContext]:
    """The app's routes as served, with their full paths (included routers flattened)."""
    return list(iter_route_contexts(create_app(ServiceContext(Settings(), cast(Store, None), Metrics())).routes))


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _operations() -> list[Any]:
    """(method, path, roles the route checks, whether it declares the audit trail) per operation."""
    role_of = {check: role for role, check in ROLE_CHECKS.items()}
    out = []
    for context in _app_routes():
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path in PUBLIC:
            continue
        calls = list(_calls(route.dependant))
        roles = {role_of[c] for c in calls if c in role_of}
        for method in sorted(route.methods):
            out.append(pytest.param(method, context.path, roles, audit_trail in calls, id=f"{method} {route.path}"))
    return out


OPERATIONS = _operations()


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    async with serve_api(sqlite_url) as served:
        yield served


def test_app_routes_are_operations_public_routes_or_documents() -> None:
    others = {r.path for r in _app_routes() if not isinstance(r.original_route, APIRoute)}
    assert others <= NOT_OPERATIONS
    assert len(OPERATIONS) >= 30  # the enumeration found the API


@pytest.mark.parametrize(("method", "path", "roles", "audited"), OPERATIONS)
async def test_route_without_key_answers_401_and_with_role_lacking_access_403(
    api: Api, method: str, path: str, roles: set[Role], audited: bool
) -> None:
    assert len(roles) == 1, f"{method} {path} must need exactly one role, needs {sorted(roles)}"
    (role,) = roles
    url = re.sub(r"\{[^}]*\}", "1", path)
    anonymous = await api.client.request(method, url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["detail"] == "missing Authorization: Bearer <API key>"
    refused = await api.client.request(method, url, headers=api.as_(LACKING[role]))
    assert refused.status_code == 403
    assert refused.json()["detail"] == f"this needs the {role.value} role"


@pytest.mark.parametrize(("method", "path", "roles", "audited"), OPERATIONS)
def test_route_showing_officers_or_changing_data_declares_audit(
    method: str, path: str, roles: set[Role], audited: bool
) -> None:
    assert audited == ((method, path) not in UNAUDITED)


#: Every operation but the officer role's own (GET /v1/me, its stream, POST /v1/feedback: test_api_me.py).
NOT_OFFICERS = [op for op in OPERATIONS if op.values[2] != {Role.OFFICER}]


@pytest.mark.parametrize(("method", "path", "roles", "audited"), NOT_OFFICERS)
async def test_route_officer_key_refused_403_everywhere_but_its_own_routes(
    api: Api, method: str, path: str, roles: set[Role], audited: bool
) -> None:
    """Least privilege: an officer key reaches only the routes of the officer role (its own figures,
    its events, sending feedback); every control-room route, and every other officer's data, is 403."""
    url = re.sub(r"\{[^}]*\}", "1", path)
    answer = await api.client.request(method, url, headers=api.as_(Role.OFFICER))
    assert answer.status_code == 403
    assert answer.json()["detail"] == f"this needs the {next(iter(roles)).value} role"
