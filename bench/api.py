"""`make bench`, the HTTP API under load: presence and one-week dwell latency while the matcher writes.

A store is filled with a week of hot spot visits of DEVICES devices over FENCES fences
(VISITS_PER_DAY visits a day each, 10-15 minutes long, at random fences of the device's beat),
ending now: ~0.7 M visits, ~1.4 M events, the devices as of their last ping, a few percent of them
inside a hot spot right now. Then three processes on 127.0.0.1:

* the API (`create_app` under uvicorn, one worker, like `hotspots run --role api`);
* a writer standing in for the matcher at PINGS_PER_S: every TICK_S, `Store.record` of what
  PINGS_PER_S * TICK_S pings of as many devices produce (every device pings every 5 s): those
  devices' new state and presence, and the enter/exit events of the few that arrive at or leave
  a hot spot (the same visit model as the fill), all with current timestamps;
* here, a paced open-loop load generator: RATE requests/s for LOAD_S seconds per endpoint
  (latency counted from each request's due time, so a stalled server cannot hide its queue),
  spread over several viewer keys as a control room's dashboards would be (the per-key rate
  limit stays as deployed), at most MAX_IN_FLIGHT outstanding, REQUEST_TIMEOUT_S each. Like any
  HTTP client it accepts gzip; it reads each answer as sent, without decoding it (see `_Http`).

Measured: GET /v1/presence (every fence, everyone inside now) and GET /v1/dwell over the last
seven days grouped by fence; SQLite (the default store) and, when one is reachable, PostgreSQL
(HOTSPOTS_BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/test; with none there, a
throwaway server from the tests' `support.postgres`; a scratch database is created, VACUUM
ANALYZEd after the fill as autovacuum would have a week of data, and dropped).
Targets (2-core machine): p99 < 50 ms presence, < 200 ms one-week dwell.

One module of ~600 lines on purpose: the fill, the writer, the load generator and the report are
one experiment, read top to bottom; split, each part would make no sense alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np

from geofence.events import Event, EventType, ExitReason
from ingest.geojson_fences import fences_from_geojson
from services.access.keys import create_key
from services.access.roles import Role
from services.pipeline.broker import free_port
from services.store import DeviceNow, Store, database_url
from services.workload import device_name, fence_centres, make_fences

HOST = "127.0.0.1"
DEVICES = 50_000
FENCES = 5_000
WEEK_S = 7 * 86_400.0
VISITS_PER_DAY = 2.0
DWELL_S = (600.0, 900.0)
BEAT = 6  # fences a device patrols
PINGS_PER_S = 10_000
TICK_S = 0.5
PING_INTERVAL_S = DEVICES / PINGS_PER_S  # each device pings every 5 s
RATE = 200
LOAD_S = 15.0
SEQUENTIAL_S = 5.0
MAX_IN_FLIGHT = 256
REQUEST_TIMEOUT_S = 10.0
VIEWER_KEYS = 8  # 25 requests/s each: under the per-key limit of 50/s
FILL_CHUNK = 200_000  # events per Store.record while filling
TARGET_P99_MS = {"presence": 50.0, "dwell": 200.0}
PG_URL = os.environ.get("HOTSPOTS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


# ---------------------------------------------------------------------- the world: fences and beats


@dataclass(frozen=True, slots=True)
class World:
    fences: dict[str, Any]  # GeoJSON
    ids: list[str]
    lon: np.ndarray  # fence centres
    lat: np.ndarray
    beats: np.ndarray  # (DEVICES, BEAT) fence indices


def make_world(seed: int = 23) -> World:
    rng = np.random.default_rng(seed)
    fences = make_fences(FENCES, rng)
    ids, lon, lat = fence_centres(fences)
    return World(fences, ids, lon, lat, rng.integers(FENCES, size=(DEVICES, BEAT)))


def _enter_rate_per_s() -> float:
    """Visits start at this rate while a device is outside, so it is inside ~VISITS_PER_DAY times a day."""
    mean_dwell = sum(DWELL_S) / 2
    return VISITS_PER_DAY / (86_400.0 - VISITS_PER_DAY * mean_dwell)


# ---------------------------------------------------------------------- fill: a week of visits


def _visits(world: World, now: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(device, fence, enter, exit) of every visit entered in the week before now; exit NaN if still open."""
    mean_dwell = sum(DWELL_S) / 2
    cycle = 86_400.0 / VISITS_PER_DAY  # enter to enter, on average
    n = int(WEEK_S / cycle * 3) + 4
    gaps = rng.exponential(cycle - mean_dwell, (DEVICES, n))
    dwell = rng.uniform(*DWELL_S, (DEVICES, n))
    # A renewal process per device, started well before the week so the week is in steady state.
    enter = now - WEEK_S - 2 * cycle + np.cumsum(gaps + np.roll(dwell, 1, axis=1), axis=1)
    device = np.broadcast_to(np.arange(DEVICES)[:, None], enter.shape)
    beat_pos = rng.integers(BEAT, size=enter.shape)
    fence = np.take_along_axis(world.beats, beat_pos, axis=1)
    keep = (enter >= now - WEEK_S) & (enter < now)
    exit_ = enter + dwell
    exit_ = np.where(exit_ <= now, exit_, np.nan)
    return device[keep], fence[keep], np.round(enter[keep], 3), np.round(exit_[keep], 3)


def _fill_events(world: World, visits: tuple[np.ndarray, ...]) -> Iterator[list[Event]]:
    """The ENTER and EXIT events of the visits in ts order, FILL_CHUNK at a time."""
    device, fence, enter, exit_ = visits
    closed = np.flatnonzero(~np.isnan(exit_))
    ts = np.concatenate((enter, exit_[closed]))
    is_exit = np.concatenate((np.zeros(len(enter), dtype=bool), np.ones(len(closed), dtype=bool)))
    visit = np.concatenate((np.arange(len(enter)), closed))
    order = np.argsort(ts, kind="stable")
    names = [device_name(d) for d in range(DEVICES)]
    for i in range(0, len(order), FILL_CHUNK):
        chunk = order[i : i + FILL_CHUNK]
        out: list[Event] = []
        for v, leaving in zip(visit[chunk].tolist(), is_exit[chunk].tolist(), strict=True):
            d, f, t0 = int(device[v]), int(fence[v]), float(enter[v])
            lat, lon = float(world.lat[f]), float(world.lon[f])
            if leaving:
                t1 = float(exit_[v])
                dwell = round(t1 - t0, 6)
                out.append(
                    Event(EventType.EXIT, names[d], world.ids[f], t1, lat, lon, dwell, ExitReason.LEFT, fence_version=1)
                )
            else:
                out.append(Event(EventType.ENTER, names[d], world.ids[f], t0, lat, lon, fence_version=1))
        yield out


def _device_states(
    world: World, now: float, inside: dict[int, tuple[int, float]], last: dict[int, int], rng: np.random.Generator
) -> dict[str, DeviceNow]:
    """Every device as of a ping in the last PING_INTERVAL_S, at (or near) the last fence it visited."""
    out: dict[str, DeviceNow] = {}
    jitter = rng.normal(0.0, 0.002, (DEVICES, 2))
    ages = rng.uniform(0.0, PING_INTERVAL_S, DEVICES)
    for d in range(DEVICES):
        f = last.get(d, int(world.beats[d, 0]))
        here = inside.get(d)
        dx, dy = (0.0, 0.0) if here else (float(jitter[d, 0]), float(jitter[d, 1]))
        out[device_name(d)] = DeviceNow(
            first_ts=now - WEEK_S,
            last_ts=round(now - float(ages[d]), 3),
            lat=round(float(world.lat[f]) + dy, 7),
            lon=round(float(world.lon[f]) + dx, 7),
            accuracy_m=8.0,
            lost=False,
            officer_id=f"O{d:05d}",
            callsign=f"CS{d % 2_000:04d}",
            source="bench",
            inside={world.ids[here[0]]: here[1]} if here else {},
        )
    return out


async def fill(url: str, world: World) -> tuple[int, int, int]:
    """Fences, a week of visits ending now and the devices; (visits, events, devices inside now)."""
    rng = np.random.default_rng(5)
    now = time.time()
    visits = _visits(world, now, rng)
    device, fence, enter, exit_ = visits
    order = np.argsort(enter, kind="stable")
    last = {int(d): int(f) for d, f in zip(device[order], fence[order], strict=True)}
    open_ = np.isnan(exit_)
    inside = {int(d): (int(f), float(t)) for d, f, t in zip(device[open_], fence[open_], enter[open_], strict=True)}
    store = await Store.open(url)
    try:
        await store.upsert_fences(fences_from_geojson(world.fences))
        n_events = 0
        for events in _fill_events(world, visits):
            await store.record(events, {})
            n_events += len(events)
        await store.record([], _device_states(world, now, inside, last, rng))
    finally:
        await store.close()
    if url.startswith("postgresql"):  # a week-old table has long been autovacuumed: index-only scans work
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
    return len(enter), n_events, len(inside)


# ---------------------------------------------------------------------- the writer (matcher stand-in)


def _writer_main(url: str, world: World, stop: MpEvent, ready: MpEvent, out: Connection) -> None:
    """Child process: a Store.record every TICK_S until stop; sends (ticks, seconds per record...)."""
    out.send(asyncio.run(_writer(url, world, stop, ready)))
    out.close()


async def _writer(url: str, world: World, stop: MpEvent, ready: MpEvent) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    store = await Store.open(url)
    try:
        present = await store.presence()
        index = {fid: i for i, fid in enumerate(world.ids)}
        inside: dict[int, tuple[int, float]] = {
            int(p.device_id[1:]): (index[fid], p.since) for fid, ps in present.items() for p in ps
        }
        per_tick = int(PINGS_PER_S * TICK_S)
        p_enter = _enter_rate_per_s() * PING_INTERVAL_S
        p_exit = PING_INTERVAL_S / (sum(DWELL_S) / 2)
        seconds: list[float] = []
        n_events = late = 0
        cursor = 0
        ready.set()
        next_at = time.monotonic()
        while not stop.is_set():
            now = time.time()
            devices = [(cursor + k) % DEVICES for k in range(per_tick)]
            cursor = (cursor + per_tick) % DEVICES
            draws = rng.random(per_tick)
            beat_pos = rng.integers(BEAT, size=per_tick)
            jitter = rng.normal(0.0, 0.0002, (per_tick, 2))
            events: list[Event] = []
            states: dict[str, DeviceNow] = {}
            for k, d in enumerate(devices):
                name, ts = device_name(d), round(now - k * TICK_S / per_tick, 3)
                here = inside.get(d)
                if here is not None and draws[k] < p_exit:
                    f = here[0]
                    lat, lon = float(world.lat[f]), float(world.lon[f])
                    dwell = round(ts - here[1], 6)
                    events.append(
                        Event(EventType.EXIT, name, world.ids[f], ts, lat, lon, dwell, ExitReason.LEFT, fence_version=1)
                    )
                    here = None
                    del inside[d]
                elif here is None and draws[k] < p_enter:
                    f = int(world.beats[d, beat_pos[k]])
                    lat, lon = float(world.lat[f]), float(world.lon[f])
                    events.append(Event(EventType.ENTER, name, world.ids[f], ts, lat, lon, fence_version=1))
                    here = inside[d] = (f, ts)
                f = here[0] if here else int(world.beats[d, beat_pos[k]])
                states[name] = DeviceNow(
                    first_ts=now - WEEK_S, last_ts=ts, lat=round(float(world.lat[f]) + float(jitter[k, 0]), 7),
                    lon=round(float(world.lon[f]) + float(jitter[k, 1]), 7), accuracy_m=8.0, lost=False,
                    officer_id=f"O{d:05d}", callsign=f"CS{d % 2_000:04d}", source="bench",
                    inside={world.ids[here[0]]: here[1]} if here else {},
                )  # fmt: skip
            started = time.perf_counter()
            await store.record(events, states)
            seconds.append(time.perf_counter() - started)
            n_events += len(events)
            next_at += TICK_S
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late += 1
                next_at = time.monotonic()  # fell behind: carry on from now, do not burst
    finally:
        await store.close()
    return {"ticks": len(seconds), "seconds": seconds, "events": n_events, "late": late, "per_tick": per_tick}


# ---------------------------------------------------------------------- the API server


def server_main(url: str, port: int) -> None:
    """Child process: the API over the store, as `hotspots run --role api` serves it."""
    asyncio.run(_serve(url, port))


async def _serve(url: str, port: int) -> None:
    import uvicorn

    from api.app import create_app
    from api.context import ServiceContext
    from services.metrics import Metrics
    from services.settings import Settings

    store = await Store.open(url)
    try:
        app = create_app(ServiceContext(Settings(), store, Metrics()))  # type: ignore[call-arg]
        # Overload makes requests wait out the pool timeout: the client counts those 500s, quietly.
        config = uvicorn.Config(
            app,
            host=HOST,
            port=port,
            lifespan="off",
            log_level="critical",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        await uvicorn.Server(config).serve()  # until SIGTERM
    finally:
        await store.close()


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), None where unknown: how much
    of the machine the server needed, apart from the generator and the writer beside it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def child(target: Any, *args: Any) -> Iterator[mp.process.BaseProcess]:
    proc = mp.get_context("spawn").Process(target=target, args=args, daemon=True)
    proc.start()
    try:
        yield proc
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()


# ---------------------------------------------------------------------- the load generator


@dataclass(slots=True)
class Load:
    latencies_ms: list[float]
    errors: dict[str, int]
    sent: int
    seconds: float

    def line(self, label: str, target_ms: float, paced: bool = True) -> str:
        ok = len(self.latencies_ms)
        errors = ", ".join(f"{n} {what}" for what, n in sorted(self.errors.items())) or "no errors"
        if not ok:
            return f"  {label}: {self.sent} sent, none answered 200 ({errors})"
        p50, p99 = np.percentile(self.latencies_ms, [50, 99])
        figures = f"p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {max(self.latencies_ms):.0f} ms"
        if not paced:
            return f"  {label}: {ok} requests ({ok / self.seconds:.0f}/s)  {figures}"
        verdict = "met" if p99 < target_ms and not self.errors else "MISSED"
        return (
            f"  {label}: {self.sent} requests at {self.sent / self.seconds:.0f}/s, {ok} ok ({errors})  "
            f"{figures}  (target p99 < {target_ms:.0f} ms: {verdict})"
        )


class _Http:
    """The generator's HTTP/1.1 client: keep-alive GETs, each read to its last byte as sent.

    httpx spent more CPU per request than the server spends answering it (reading a 0.2-0.8 MB
    answer costs it milliseconds): on two cores shared with the server, it measured itself. This
    sends what any client sends (`Accept-Encoding: gzip`, as browsers and httpx do), reads the
    status line, the headers and Content-Length bytes, and decodes nothing.
    """

    def __init__(self, base: str) -> None:
        url = httpx.URL(base)
        self.host, self.port = url.host, url.port or 80
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str, params: dict[str, str], headers: dict[str, str]) -> int:
        """The status of a GET; raises OSError, asyncio.IncompleteReadError or TimeoutError.

        A kept-alive connection the server has since closed (uvicorn closes idle ones after 5 s)
        is replaced by a new one for the same request, as every HTTP client does."""
        target = path + ("?" + urlencode(params) if params else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {self.host}:{self.port}", "Accept-Encoding: gzip"]
        request = ("\r\n".join(lines + [f"{k}: {v}" for k, v in headers.items()]) + "\r\n\r\n").encode()
        while self._idle:
            try:
                return await self._send(self._idle.pop(), request)
            except (OSError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise  # the server answered in part: a real failure
        return await self._send(await asyncio.open_connection(self.host, self.port), request)

    async def _send(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes) -> int:
        reader, writer = conn
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:-2])
                fields = {name.strip().lower(): value.strip().lower() for name, value in fields.items()}
                await reader.readexactly(int(fields.get(b"content-length", b"0")))
        except BaseException:
            writer.close()
            raise
        if fields.get(b"connection") == b"close":
            writer.close()
        else:
            self._idle.append((reader, writer))
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()


async def paced_load(base: str, path: str, params: dict[str, str], keys: list[str]) -> Load:
    """RATE requests/s for LOAD_S, open loop: latency from each request's due time to its answer."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    client = _Http(base)

    async def one(i: int, due: float) -> None:
        headers = {"authorization": f"Bearer {keys[i % len(keys)]}"}
        try:
            async with gate:
                status = await client.get(path, params, headers)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        if status == 200:
            latencies.append((time.perf_counter() - due) * 1000)
        else:
            errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1

    n = int(RATE * LOAD_S)
    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due = t0 + i / RATE
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    seconds = time.perf_counter() - t0
    _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
    for task in pending:
        task.cancel()
    if pending:
        errors["unfinished"] = len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
    client.close()
    return Load(latencies, errors, n, seconds)


async def sequential(base: str, path: str, params: dict[str, str], key: str) -> Load:
    """One client, back to back for SEQUENTIAL_S: what a request costs the server under the writes alone."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    headers = {"authorization": f"Bearer {key}"}
    client = _Http(base)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < SEQUENTIAL_S:
        started = time.perf_counter()
        status = await client.get(path, params, headers)
        if status == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
    seconds = time.perf_counter() - t0
    client.close()
    return Load(latencies, errors, len(latencies) + sum(errors.values()), seconds)


async def wait_ready(base: str, deadline_s: float = 60.0) -> None:
    stop = time.monotonic() + deadline_s
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            if time.monotonic() > stop:
                raise RuntimeError(f"API at {base} did not start")
            await asyncio.sleep(0.1)


# ---------------------------------------------------------------------- one backend


def run_backend(name: str, url: str, world: World) -> None:
    started = time.perf_counter()
    visits, events, inside = asyncio.run(fill(url, world))
    keys = [asyncio.run(create_key(url, Role.VIEWER, f"dashboard {i}")) for i in range(VIEWER_KEYS)]
    print(
        f"  {name}: filled {visits:,} visits ({events:,} events) of {DEVICES:,} devices in {FENCES:,} fences "
        f"over 7 days in {time.perf_counter() - started:.0f} s; {inside:,} devices inside a hot spot now"
    )
    ctx = mp.get_context("spawn")
    stop, ready = ctx.Event(), ctx.Event()
    results, sender = ctx.Pipe(duplex=False)
    with child(_writer_main, url, world, stop, ready, sender) as writer:
        if not ready.wait(60):
            raise RuntimeError("writer did not start")
        now = time.time()
        week = {"from": f"{now - WEEK_S:.3f}", "to": f"{now:.3f}", "group_by": "fence"}
        for label, path, params, target in (
            ("GET /v1/presence (all fences)", "/v1/presence", {}, TARGET_P99_MS["presence"]),
            ("GET /v1/dwell 7 days by fence", "/v1/dwell", week, TARGET_P99_MS["dwell"]),
        ):
            port = free_port()
            base = f"http://{HOST}:{port}"
            with child(server_main, url, port) as server:  # a fresh server each: no backlog carried over
                asyncio.run(wait_ready(base))
                alone = asyncio.run(sequential(base, path, params, keys[0]))
                print(alone.line(f"{name}: {label}, 1 client back to back", target, paced=False))
                cpu_before = _cpu_s(server.pid)
                paced = asyncio.run(paced_load(base, path, params, keys))
                cpu_after = _cpu_s(server.pid)
                print(paced.line(f"{name}: {label}", target))
                if cpu_before is not None and cpu_after is not None:
                    print(
                        f"  {name}: {label}: server CPU {(cpu_after - cpu_before) / paced.sent * 1000:.2f} ms per "
                        f"request; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
                    )
        stop.set()
        stats = results.recv() if results.poll(60) else None
        writer.join(30)
    if stats:
        secs = np.array(stats["seconds"]) * 1000
        print(
            f"  {name}: writer meanwhile: {stats['ticks']} Store.record of {stats['per_tick']:,} devices "
            f"(= {stats['per_tick'] / TICK_S:,.0f} pings/s) + {stats['events']} events in all: "
            f"p50 {np.percentile(secs, 50):.0f} ms  p99 {np.percentile(secs, 99):.0f} ms per record, "
            f"{stats['late']} ticks late"
        )


@contextlib.contextmanager
def _sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield database_url(None, Path(tmp))


@contextlib.asynccontextmanager
async def _pg_admin(admin: str) -> AsyncIterator[Any]:
    import asyncpg

    conn = await asyncpg.connect(admin, timeout=5)
    try:
        yield conn
    finally:
        await conn.close()


async def _pg_unreachable(admin: str) -> str | None:
    """Why PostgreSQL at admin cannot be benchmarked, or None if it can."""
    try:
        async with _pg_admin(admin) as conn:
            await conn.fetchval("SELECT 1")
    except Exception as exc:  # whatever the driver raised: no server to measure
        return f"no server at {admin} ({type(exc).__name__}: {exc})"
    return None


@contextlib.contextmanager
def _pg_server() -> Iterator[str]:
    """The admin URL of PG_URL's server if it answers, else of a throwaway one for the block."""
    if asyncio.run(_pg_unreachable(PG_URL)) is None:
        yield PG_URL
        return
    from tests.support.postgres import ThrowawayPostgres

    with ThrowawayPostgres() as server:
        yield server.url


@contextlib.contextmanager
def _postgresql(admin: str) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"hotspots_bench_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        async with _pg_admin(admin) as conn:
            await conn.execute(f'CREATE DATABASE "{name}"')

    async def drop() -> None:
        async with _pg_admin(admin) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    asyncio.run(create())
    try:
        yield database_url(sa.make_url(admin).set(database=name).render_as_string(hide_password=False), Path("."))
    finally:
        asyncio.run(drop())


def bench_api(backends: Sequence[str] = ("sqlite", "postgresql")) -> None:
    print(
        f"HTTP API under load: {RATE} requests/s for {LOAD_S:.0f} s per endpoint while the matcher records "
        f"{PINGS_PER_S:,} pings/s ({int(PINGS_PER_S * TICK_S):,} devices every {TICK_S} s)"
    )
    world = make_world()
    if "sqlite" in backends:
        with _sqlite() as url:
            run_backend("sqlite", url, world)
    if "postgresql" not in backends:
        return
    try:
        with _pg_server() as admin, _postgresql(admin) as url:
            run_backend("postgresql", url, world)
    except Exception as exc:  # no server to measure: the SQLite figures stand
        print(f"  postgresql: skipped, {type(exc).__name__}: {exc}")


if __name__ == "__main__":  # `python -m bench.api [sqlite] [postgresql]`: one backend, or both
    bench_api(sys.argv[1:] or ("sqlite", "postgresql"))
