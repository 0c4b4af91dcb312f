"""On SQLite the audit log lives in a file of its own, so an audited read never waits for the
matcher's write lock; entries written before that file existed are moved into it, none lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from services.store import Store, database_url
from services.store.tables import audit_log


def _entry(action: str) -> dict[str, object]:
    return {"ts": 1.0, "key_id": "k1", "role": "viewer", "action": action, "target": "R00001", "detail": {"n": 1}}


async def test_audit_sqlite_own_file_older_entries_moved_in_all_kept_across_reopen(tmp_path: Path) -> None:
    url = database_url(None, tmp_path)
    store = await Store.open(url)
    async with store.write() as conn:  # an entry where a store of the previous version wrote it
        await conn.execute(sa.insert(audit_log), [_entry("GET /v1/presence")])
    await store.close()
    for name in ("hotspots-audit.db", "hotspots-audit.db-wal", "hotspots-audit.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)

    store = await Store.open(url)
    await store.audit("k2", "viewer", "GET /v1/presence/devices/{device_id}", "R00002", {"n": 2})
    await store.close()
    store = await Store.open(url)
    try:
        found = [(r.id, r.key_id, r.action, r.detail) for r in await store.audit_entries()]
    finally:
        await store.close()

    assert found == [
        (1, "k1", "GET /v1/presence", {"n": 1}),
        (2, "k2", "GET /v1/presence/devices/{device_id}", {"n": 2}),
    ]
    with sqlite3.connect(tmp_path / "hotspots.db") as main:
        assert main.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
    with sqlite3.connect(tmp_path / "hotspots-audit.db") as own:
        assert own.execute("SELECT count(*) FROM audit_log").fetchone() == (2,)
