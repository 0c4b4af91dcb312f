"""API keys over HTTP, for admins (the same rules as `hotspots keys`): create, list, revoke.

A key's token is in the answer to its create and nowhere else; creates and revokes are audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from api.deps import Admin, Audit, Context
from api.schemas.keys import KeyCreate, KeyCreated, KeyPublic, KeysPublic
from ingest.rules import InputError
from services.access.keys import add_key
from services.errors import Invalid, NotFound

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _public(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in KeyPublic.model_fields}


@router.get("", response_model=KeysPublic, summary="Every key: role, holder, binding, created, revoked (no secrets)")
async def keys(ctx: Context, _: Admin, audit: Audit) -> KeysPublic:
    rows = await ctx.store.list_api_keys()
    audit.record(None, {"keys": len(rows)})  # who looked at which officers and phones hold keys
    return KeysPublic(keys=[KeyPublic(**_public(row)) for row in rows])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=KeyCreated,
    summary="Create a key; its token is in this answer only",
)  # fmt: skip
async def create(body: KeyCreate, ctx: Context, _: Admin, audit: Audit) -> KeyCreated:
    try:
        key = await add_key(ctx.store, body.role, body.name, body.officer_id, device_id=body.device_id)
    except InputError as exc:  # also officer_id / device_id given to the wrong role
        raise Invalid(exc.reason, exc.field) from None
    audit.record(key.key_id, {"role": body.role.value, "officer_id": body.officer_id, "device_id": body.device_id})
    [row] = [r for r in await ctx.store.list_api_keys() if r.key_id == key.key_id]
    return KeyCreated(**_public(row), token=key.token)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key (at once)")
async def revoke(key_id: str, ctx: Context, _: Admin, audit: Audit) -> Response:
    audit.record(key_id)
    if not await ctx.store.revoke_api_key(key_id):
        raise NotFound(f"no active key {key_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
