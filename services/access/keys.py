"""`hotspots keys`: create, list and revoke API keys in the service's store."""

from __future__ import annotations

import time

from ingest.rules import DEVICE_ID, NAME, TEXT, InputError
from services.access.roles import NewKey, Role, new_key
from services.store import Store


async def create_key(
    url: str, role: Role, name: str, officer_id: str | None = None, *, device_id: str | None = None
) -> str:
    """`add_key` on the store at url (the `hotspots keys create` command and the tests)."""
    store = await Store.open(url)
    try:
        return (await add_key(store, role, name, officer_id, device_id=device_id)).token
    finally:
        await store.close()


async def add_key(
    store: Store, role: Role, name: str, officer_id: str | None = None, *, device_id: str | None = None
) -> NewKey:
    """A new key (its token is shown only now); the store keeps its hash.

    An officer key must name its officer, and only an officer key may (InputError otherwise):
    a viewer bound to one officer would still see everyone. device_id binds an ingest key (a
    phone's) to one device, and only an ingest key: it may then post that device's pings only.
    """
    checked_name = NAME.check("name", name)
    if checked_name is None:
        raise InputError("name", "required: who or what holds the key")
    if officer_id is not None:
        officer_id = TEXT.check("officer_id", officer_id)  # InputError (a ValueError) naming it
    if (role is Role.OFFICER) != (officer_id is not None):
        raise InputError("officer_id", "required for an officer key, and only for one")
    if device_id is not None:
        device_id = DEVICE_ID.check("device_id", device_id)
        if role is not Role.INGEST:
            raise InputError("device_id", "binds an ingest key to one device; other keys post for no device")
    key = new_key()
    await store.add_api_key(key.key_id, checked_name, role.value, key.secret_hash, officer_id, device_id)
    return key


async def list_keys(url: str) -> list[str]:
    """One line per key: id, role, name (and the officer or device it is bound to), created, revoked."""
    store = await Store.open(url)
    try:
        rows = await store.list_api_keys()
    finally:
        await store.close()
    return [
        f"{r.key_id}  {r.role:<7} {r.name}{f' (officer {r.officer_id})' if r.officer_id else ''}"
        f"{f' (device {r.device_id})' if r.device_id else ''}"
        f"  created {_when(r.created_at)}" + (f"  REVOKED {_when(r.revoked_at)}" if r.revoked_at else "")
        for r in rows
    ]


async def revoke_key(url: str, key_id: str) -> bool:
    store = await Store.open(url)
    try:
        return await store.revoke_api_key(key_id)
    finally:
        await store.close()


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
