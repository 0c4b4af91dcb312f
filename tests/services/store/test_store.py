"""The durable store, against SQLite and PostgreSQL alike.

Every PostgreSQL test gets a database of its own (created and dropped here), so tests see a
fresh schema and cannot see each other's rows. PostgreSQL must be reachable (CI runs one):
an unreachable server fails these tests rather than skipping them. HOTSPOTS_TEST_PG_URL
points them at another server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from support.helpers import T0, P, feed, make_engine, square_geometry
from support.postgres import fresh_database

from geofence.engine import Engine
from geofence.fences import Fence, make_fence
from geofence.index import FenceIndex
from geofence.params import EngineParams
from services.store import MIGRATIONS_DIR, Checkpoint, Store, database_url
from services.store.tables import metadata

TABLES = {"alembic_version", "fence_set", "fences", "checkpoints", "checkpoint_devices", "api_keys", "audit_log"}


async def inspect_db(url: str, fn: Callable[[sa.Connection], Any]) -> Any:
    """Run fn on a plain connection of our own, outside the store."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def table_names(conn: sa.Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def alembic_heads(conn: sa.Connection) -> set[str]:
    return set(MigrationContext.configure(conn).get_current_heads())


def square(fence_id: str, lon0: float, *, name: str | None = None, buffer_m: float = 0.0) -> Fence:
    return make_fence(fence_id, square_geometry(lon0, 51.5, 0.001), name=name, buffer_m=buffer_m)


def with_hole(fence_id: str) -> Fence:
    outer = [[0.0, 0.0], [0.002, 0.0], [0.002, 0.002], [0.0, 0.002], [0.0, 0.0]]
    hole = [[0.0005, 0.0005], [0.0015, 0.0005], [0.0015, 0.0015], [0.0005, 0.0015], [0.0005, 0.0005]]
    second = square_geometry(0.01, 0.01, 0.001)["coordinates"]
    return make_fence(fence_id, {"type": "MultiPolygon", "coordinates": [[outer, hole], second]}, name="Hole é")


def record(i: int, v: int = 0) -> dict[str, Any]:
    """A device record shaped like Engine.snapshot()'s, about 340 bytes of JSON."""
    return {
        "latest_seen": T0 + i + v,
        "last_ts": T0 + i,
        "last_lat": 51.5 + i * 1e-6,
        "last_lon": -0.12 - i * 1e-6,
        "pending_since": None,
        "active_s": 1234.5 + v,
        "lost_s": 0.0,
        "covered_s": 12.0,
        "covered_since": None,
        "lost": False,
        "pings": 42 + v,
        "extras": {"unit": f"car-{i}"},
        "inside": {"fence-12": T0},
        "candidates": {},
        "ledger": {"fence-12": [3, 456.7], "fence-99": [1, 12.5]},
    }


STREAM = {
    "version": 1,
    "watermark": T0,
    "max_ts": T0 + 30,
    "held": {"device_id": ["d1"], "ts": [T0 + 31], "lat": [51.5], "lon": [-0.1], "accuracy_m": [None], "extras": [{}]},
    "counters": {"pings": 10, "applied": 9, "uncertain": 0, "duplicate": 0, "late": 0, "events": {"enter": 2}},
}


def checkpoint(devices: dict[str, dict[str, Any]], next_offset: int = 100, **kw: Any) -> Checkpoint:
    fields: dict[str, Any] = {"group": "matcher", "topic": "pings", "partition": 3, "log_fingerprint": "log-1"}
    fields.update(kw)
    return Checkpoint(next_offset=next_offset, stream=STREAM, devices=devices, **fields)


# ---------------------------------------------------------------------- database_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/hot", "postgresql+asyncpg://u:p@db:5432/hot"),
        ("postgres://u@db/hot", "postgresql+asyncpg://u@db/hot"),
        ("postgresql+asyncpg://u@db/hot", "postgresql+asyncpg://u@db/hot"),
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("mysql+aiomysql://u@db/hot", "mysql+aiomysql://u@db/hot"),
    ],
)
def test_database_url_given_url_is_normalised_to_async_driver(given: str, expected: str, tmp_path: Path) -> None:
    assert database_url(given, tmp_path / "unused") == expected
    assert not (tmp_path / "unused").exists()


def test_database_url_none_is_sqlite_in_created_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    assert database_url(None, data_dir) == f"sqlite+aiosqlite:///{data_dir}/hotspots.db"
    assert data_dir.is_dir()


# ---------------------------------------------------------------------- schema

#: The newest migration shipped with the package.
HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no schema yet (`db_url` gives one already at head)."""
    if request.param == "sqlite":
        yield database_url(None, tmp_path)
        return
    async with fresh_database(request.getfixturevalue("pg_admin_url")) as url:
        yield database_url(url, tmp_path)


async def test_open_fresh_database_creates_schema_at_head(empty_db_url: str) -> None:
    assert await inspect_db(empty_db_url, table_names) == set()
    store = await Store.open(empty_db_url)
    await store.close()
    assert await inspect_db(empty_db_url, table_names) >= TABLES
    assert await inspect_db(empty_db_url, alembic_heads) == {HEAD}


async def test_open_existing_database_is_idempotent_and_keeps_data(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        await store.upsert_fences([square("a", 0.0)])
        await store.save_checkpoint(checkpoint({"d1": record(1)}))
    finally:
        await store.close()
    store = await Store.open(db_url)
    try:
        fences, version = await store.load_fences()
        assert ([f.id for f in fences], version) == (["a"], 1)
        cp = await store.load_checkpoint("matcher", "pings", 3)
        assert cp is not None and cp.devices == {"d1": record(1)}
    finally:
        await store.close()
    assert await inspect_db(db_url, alembic_heads) == {HEAD}


async def test_open_two_processes_at_once_on_fresh_database_both_succeed(empty_db_url: str) -> None:
    stores = await asyncio.gather(Store.open(empty_db_url), Store.open(empty_db_url))
    try:
        assert [await s.load_fences() for s in stores] == [([], 0), ([], 0)]
    finally:
        for s in stores:
            await s.close()


async def test_migrations_schema_matches_store_tables_no_diff(store: Store, db_url: str) -> None:
    def diff(conn: sa.Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    assert await inspect_db(db_url, diff) == []


async def test_healthy_open_store_true(store: Store) -> None:
    assert await store.healthy()


async def test_healthy_no_time_left_false(store: Store) -> None:
    assert not await store.healthy(timeout_s=0)


# ---------------------------------------------------------------------- fences


async def test_load_fences_fresh_store_empty_at_version_0(store: Store) -> None:
    assert await store.load_fences() == ([], 0)


async def test_upsert_fences_round_trip_keeps_geometry_name_and_buffer(store: Store) -> None:
    given = [square("b", 0.01, buffer_m=25.0), with_hole("a"), square("c", 0.02, name="Market St")]
    assert await store.upsert_fences(given) == 1
    fences, version = await store.load_fences()
    assert version == 1
    by_id = {f.id: f for f in given}
    assert [f.id for f in fences] == ["a", "b", "c"]
    for f in fences:
        want = by_id[f.id]
        assert (f.name, f.buffer_m) == (want.name, want.buffer_m)
        assert f.to_feature() == want.to_feature()
        assert f.geometry.equals(want.geometry)
        assert f.area.equals(want.area)
        assert f.across_m == pytest.approx(want.across_m)


async def test_upsert_fences_every_change_bumps_version_and_replaces_by_id(store: Store) -> None:
    assert await store.upsert_fences([square("a", 0.0), square("b", 0.01)]) == 1
    assert await store.upsert_fences([square("a", 0.05, name="moved", buffer_m=10.0)]) == 2
    fences, version = await store.load_fences()
    assert version == 2
    a = next(f for f in fences if f.id == "a")
    assert (a.name, a.buffer_m) == ("moved", 10.0)
    assert a.to_feature() == square("a", 0.05, name="moved", buffer_m=10.0).to_feature()
    assert {f.id for f in fences} == {"a", "b"}


async def test_upsert_fences_same_id_twice_in_one_call_last_wins(store: Store) -> None:
    assert await store.upsert_fences([square("a", 0.0, name="first"), square("a", 0.0, name="last")]) == 1
    fences, _ = await store.load_fences()
    assert [(f.id, f.name) for f in fences] == [("a", "last")]


async def test_upsert_fences_empty_keeps_version(store: Store) -> None:
    await store.upsert_fences([square("a", 0.0)])
    assert await store.upsert_fences([]) == 1
    assert (await store.load_fences())[1] == 1


async def test_delete_fence_existing_removes_it_and_bumps_version(store: Store) -> None:
    await store.upsert_fences([square("a", 0.0), square("b", 0.01)])
    assert await store.delete_fence("a") == 2
    fences, version = await store.load_fences()
    assert ([f.id for f in fences], version) == (["b"], 2)


async def test_delete_fence_missing_returns_none_and_keeps_version(store: Store) -> None:
    await store.upsert_fences([square("a", 0.0)])
    assert await store.delete_fence("nope") is None
    fences, version = await store.load_fences()
    assert ([f.id for f in fences], version) == (["a"], 1)


# ---------------------------------------------------------------------- checkpoints


async def test_load_checkpoint_never_saved_returns_none(store: Store) -> None:
    assert await store.load_checkpoint("matcher", "pings", 3) is None


async def test_save_checkpoint_round_trip_returns_equal_checkpoint(store: Store) -> None:
    devices = {"d1": record(1), "dévice ✓": record(2), "": record(3)}
    saved = checkpoint(devices, next_offset=2**40, log_fingerprint=None)
    await store.save_checkpoint(saved)
    assert await store.load_checkpoint("matcher", "pings", 3) == saved


async def test_save_checkpoint_incremental_second_save_loads_union_of_latest(store: Store) -> None:
    await store.save_checkpoint(checkpoint({f"d{i}": record(i) for i in range(10)}, next_offset=100))
    changed = {"d2": record(2, v=1), "d7": record(7, v=1), "d10": record(10, v=1)}
    await store.save_checkpoint(checkpoint(changed, next_offset=250, log_fingerprint="log-2"))
    cp = await store.load_checkpoint("matcher", "pings", 3)
    assert cp is not None
    assert (cp.next_offset, cp.log_fingerprint) == (250, "log-2")
    assert cp.devices == {**{f"d{i}": record(i) for i in range(10)}, **changed}


async def test_save_checkpoint_without_devices_moves_offset_keeps_devices(store: Store) -> None:
    await store.save_checkpoint(checkpoint({"d1": record(1)}, next_offset=100))
    await store.save_checkpoint(checkpoint({}, next_offset=120))
    cp = await store.load_checkpoint("matcher", "pings", 3)
    assert cp is not None and (cp.next_offset, cp.devices) == (120, {"d1": record(1)})


async def test_save_checkpoint_other_partitions_and_groups_stay_separate(store: Store) -> None:
    await store.save_checkpoint(checkpoint({"d1": record(1)}, next_offset=1))
    await store.save_checkpoint(checkpoint({"d2": record(2)}, next_offset=2, partition=4))
    await store.save_checkpoint(checkpoint({"d3": record(3)}, next_offset=3, group="other"))
    await store.save_checkpoint(checkpoint({"d4": record(4)}, next_offset=4, topic="pings-v2"))
    loaded = [
        await store.load_checkpoint("matcher", "pings", 3),
        await store.load_checkpoint("matcher", "pings", 4),
        await store.load_checkpoint("other", "pings", 3),
        await store.load_checkpoint("matcher", "pings-v2", 3),
    ]
    assert [(cp.next_offset, list(cp.devices)) for cp in loaded if cp] == [
        (1, ["d1"]),
        (2, ["d2"]),
        (3, ["d3"]),
        (4, ["d4"]),
    ]


async def test_save_checkpoint_failing_after_stream_row_keeps_previous_checkpoint(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = checkpoint({"d1": record(1), "d2": record(2)}, next_offset=100)
    await store.save_checkpoint(before)
    upsert_devices = store._upsert_devices

    async def write_then_fail(*args: Any) -> None:
        await upsert_devices(*args)  # the stream row and the device rows are written...
        raise RuntimeError("crash before commit")  # ...and never committed

    monkeypatch.setattr(store, "_upsert_devices", write_then_fail)
    with pytest.raises(RuntimeError, match="crash before commit"):
        await store.save_checkpoint(checkpoint({"d1": record(1, v=9), "d3": record(3)}, next_offset=200))
    assert await store.load_checkpoint("matcher", "pings", 3) == before


async def test_save_checkpoint_unserialisable_device_keeps_previous_checkpoint(store: Store) -> None:
    before = checkpoint({"d1": record(1)}, next_offset=100)
    await store.save_checkpoint(before)
    with pytest.raises(TypeError):
        await store.save_checkpoint(checkpoint({"d1": record(1, v=1), "d2": {"bad": object()}}, next_offset=200))
    assert await store.load_checkpoint("matcher", "pings", 3) == before


async def test_save_checkpoint_engine_snapshot_restores_identical_engine(store: Store) -> None:
    params = EngineParams(max_lateness_s=60.0)
    engine = make_engine(params=params)
    pings = [P(0, "out"), P(10, "a", extras={"unit": "7"}), P(20, "ab"), P(5, "b", device="d2"), P(40, "far", "d3")]
    feed(engine, pings, batch_size=2)
    snap = engine.snapshot()
    assert snap["held"]["ts"], "the test wants pings still held in the reorder stage"
    stream = {k: v for k, v in snap.items() if k != "devices"}
    await store.save_checkpoint(Checkpoint("matcher", "pings", 0, 5, "log-1", stream, snap["devices"]))
    cp = await store.load_checkpoint("matcher", "pings", 0)
    assert cp is not None
    assert cp.snapshot() == snap
    index = FenceIndex(engine.index.fences)
    restored = Engine.restore(cp.snapshot(), index, params)
    assert restored.snapshot() == Engine.restore(snap, index, params).snapshot()


async def test_save_checkpoint_20k_changed_devices_inserted_then_all_updated(store: Store) -> None:
    for v in range(2):  # first save inserts every row, the second updates every row (timed in `make bench`)
        devices = {f"device-{i:06d}": record(i, v) for i in range(20_000)}
        await store.save_checkpoint(checkpoint(devices, next_offset=v))
    cp = await store.load_checkpoint("matcher", "pings", 3)
    assert cp is not None and cp.devices == devices
