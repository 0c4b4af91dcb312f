"""`python -m bench.control_room`: the control-room page with 5,000 hot spots and 2,000 officers.

A SQLite store holds FENCES fences over London and OFFICERS officers, a third of them inside a hot
spot, each with an ENTER (and, once left, an EXIT) in the last hour, so the page seeds every
officer's position. The API runs in a child process (as `hotspots run --role api`, bench.api's
server); here, a writer standing in for the matcher records EVENTS_PER_S enter/exit events a
second (Store.record every TICK_S, about 40 times a real 2,000-officer shift's rate) while the
system's headless Chromium, as the tests use it, shows the page at 1920x1080 signed in with a viewer key.

Measured in the browser: time from sign-in to everything drawn; frame intervals (a
requestAnimationFrame loop) while events stream in; and update latency, from the writer's commit
of a batch to the first frame in which the page has applied it (its lastSeq reaches the batch's
seq: includes the stream's 0.25 s poll). Targets: p95 frame < 50 ms (stays responsive), p95
update latency < 1 s (well under the 2 s a control room notices).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from playwright.async_api import async_playwright

from bench.api import HOST, child, server_main, wait_ready
from geofence.events import Event, EventType, ExitReason
from ingest.geojson_fences import fences_from_geojson
from services.access.keys import create_key
from services.access.roles import Role
from services.pipeline.broker import free_port
from services.store import DeviceNow, Store, database_url
from services.workload import device_name, fence_centres, make_fences

FENCES = 5_000
OFFICERS = 2_000
EVENTS_PER_S = 100
TICK_S = 0.1
MEASURE_S = 15.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
#: Samples frame times and when each event seq was first applied, in the page's own clock (epoch ms).
PROBE_JS = """() => {
  window.__bench = { frames: [], seqs: [] };
  let last = -1;
  const loop = (t) => {
    window.__bench.frames.push(t);
    const seq = controlRoom.lastSeq();
    if (seq !== last) { window.__bench.seqs.push([performance.timeOrigin + performance.now(), seq]); last = seq; }
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
}"""


class World:
    """Fences, and where each officer is: inside fence `at` (since `since`) or near it."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.fences = make_fences(FENCES, rng)
        self.ids, self.lon, self.lat = fence_centres(self.fences)
        self.at = rng.integers(FENCES, size=OFFICERS)
        self.inside = rng.random(OFFICERS) < 1 / 3
        self.rng = rng

    def state(self, d: int, ts: float, since: float) -> DeviceNow:
        f = int(self.at[d])
        return DeviceNow(
            first_ts=ts - 3600, last_ts=ts, lat=float(self.lat[f]), lon=float(self.lon[f]), accuracy_m=8.0,
            lost=False, officer_id=f"O{d:05d}", callsign=f"CS{d:04d}", source="bench",
            inside={self.ids[f]: since} if self.inside[d] else {},
        )  # fmt: skip

    def visit_events(self, d: int, t_enter: float, t_exit: float | None) -> list[Event]:
        f = int(self.at[d])
        name, fence, lat, lon = device_name(d), self.ids[f], float(self.lat[f]), float(self.lon[f])
        out = [Event(EventType.ENTER, name, fence, t_enter, lat, lon, fence_version=1)]
        if t_exit is not None:
            dwell = round(t_exit - t_enter, 3)
            out.append(Event(EventType.EXIT, name, fence, t_exit, lat, lon, dwell, ExitReason.LEFT, fence_version=1))
        return out


async def fill(url: str, world: World) -> None:
    """The fences, and every officer's visit in the last hour (open for those inside now)."""
    now = time.time()
    store = await Store.open(url)
    try:
        await store.upsert_fences(fences_from_geojson(world.fences))
        events: list[Event] = []
        states: dict[str, DeviceNow] = {}
        for d in range(OFFICERS):
            enter = round(now - float(world.rng.uniform(900, 3000)), 3)
            leave = None if world.inside[d] else round(enter + float(world.rng.uniform(600, 800)), 3)
            events += world.visit_events(d, enter, leave)
            states[device_name(d)] = world.state(d, round(now - float(world.rng.uniform(0, 30)), 3), enter)
        events.sort(key=lambda e: e.ts)
        await store.record(events, states)
    finally:
        await store.close()


async def write(url: str, world: World, stop: asyncio.Event) -> list[tuple[float, int]]:
    """EVENTS_PER_S enter/exit events of random officers; (epoch ms of the commit, last seq) per batch."""
    store = await Store.open(url)
    since = {d: time.time() - 600 for d in range(OFFICERS)}
    commits: list[tuple[float, int]] = []
    per_tick = max(1, int(EVENTS_PER_S * TICK_S))
    try:
        next_at = time.monotonic()
        while not stop.is_set():
            now = round(time.time(), 3)
            events: list[Event] = []
            states: dict[str, DeviceNow] = {}
            for d in world.rng.choice(OFFICERS, per_tick, replace=False).tolist():
                if world.inside[d]:
                    events += world.visit_events(d, since[d], now)[1:]
                    world.inside[d] = False
                else:
                    world.at[d] = world.rng.integers(FENCES)
                    world.inside[d], since[d] = True, now
                    events += world.visit_events(d, now, None)
                states[device_name(d)] = world.state(d, now, since[d])
            await store.record(events, states)
            commits.append((time.time() * 1000, await store.last_event_seq()))
            next_at += TICK_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        await store.close()
    return commits


def percentiles(values: list[float] | np.ndarray, *ps: float) -> list[float]:
    return [float(v) for v in np.percentile(values, ps)] if len(values) else [float("nan")] * len(ps)


async def measure(base: str, key: str, url: str, world: World) -> dict[str, Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await page.goto(base)
            await page.fill("#signin-key", key)
            started = time.perf_counter()
            await page.click("#signin button[type=submit]")
            await page.wait_for_function("() => window.controlRoom && controlRoom.ready()", timeout=120_000)
            load_s = time.perf_counter() - started
            shown = await page.evaluate("() => [controlRoom.fencesOnScreen(), controlRoom.officersShown()]")
            await page.evaluate(PROBE_JS)
            stop = asyncio.Event()
            writer = asyncio.create_task(write(url, world, stop))
            await asyncio.sleep(MEASURE_S)
            stop.set()
            commits = await writer
            await asyncio.sleep(1.0)  # the last batches reach the page
            probe = await page.evaluate("() => window.__bench")
        finally:
            await browser.close()
    frames = np.diff(np.array(probe["frames"]))
    seen = probe["seqs"]
    latencies = []
    for at_ms, seq in commits:
        first = next((t for t, s in seen if s >= seq), None)
        if first is not None:
            latencies.append(max(0.0, first - at_ms))
    return {"load_s": load_s, "shown": shown, "frames": frames, "latencies": latencies, "batches": len(commits)}


async def main() -> None:
    world = World()
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url(None, Path(tmp))
        await fill(url, world)
        key = await create_key(url, Role.VIEWER, "bench")
        port = free_port()
        with child(server_main, url, port):
            base = f"http://{HOST}:{port}"
            await wait_ready(base)
            r = await measure(base, key, url, world)
    f50, f95, f99 = percentiles(r["frames"], 50, 95, 99)
    l50, l95 = percentiles(r["latencies"], 50, 95)
    long_frames = int((r["frames"] > 50).sum())
    print(f"control-room page, {FENCES} fences and {OFFICERS} officers, {EVENTS_PER_S} events/s for {MEASURE_S:.0f} s:")
    print(f"  sign-in to drawn: {r['load_s']:.2f} s  ({r['shown'][0]} fences on screen, {r['shown'][1]} officers)")
    print(
        f"  frame interval: p50 {f50:.1f} ms  p95 {f95:.1f} ms  p99 {f99:.1f} ms  max {r['frames'].max():.0f} ms"
        f"  ({long_frames} of {len(r['frames'])} frames over 50 ms)  (target p95 < 50 ms: "
        f"{'met' if f95 < 50 else 'MISSED'})"
    )
    print(
        f"  update latency (commit -> drawn): p50 {l50:.0f} ms  p95 {l95:.0f} ms  max {max(r['latencies']):.0f} ms"
        f"  over {len(r['latencies'])} of {r['batches']} batches  (target p95 < 1000 ms: "
        f"{'met' if l95 < 1000 else 'MISSED'})"
    )


if __name__ == "__main__":
    asyncio.run(main())
