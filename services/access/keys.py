"""`hotspots keys`: create, list and revoke API keys in the service's store."""

from __future__ import annotations

import time

from services.access.roles import Role, new_key
from services.store import Store


async def create_key(url: str, role: Role, name: str) -> str:
    """A new key's token (the only time it is shown); the store keeps its hash."""
    key = new_key()
    store = await Store.open(url)
    try:
        await store.add_api_key(key.key_id, name, role.value, key.secret_hash)
    finally:
        await store.close()
    return key.token


async def list_keys(url: str) -> list[str]:
    """One line per key: id, role, name, created, revoked."""
    store = await Store.open(url)
    try:
        rows = await store.list_api_keys()
    finally:
        await store.close()
    return [
        f"{r.key_id}  {r.role:<7} {r.name}  created {_when(r.created_at)}"
        + (f"  REVOKED {_when(r.revoked_at)}" if r.revoked_at else "")
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
