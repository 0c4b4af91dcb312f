"""The control-room page end to end: headless Chromium against `hotspots run` fed by `hotspots simulate`.

One service (real process, embedded broker, the sample hot spots) serves the tests of this module;
the browser signs in with a viewer key and must show what the API says: fences coloured by state,
officers, the due list; live changes, hot spots added while it is open; and it must come back by
itself when the service restarts. Its tile server is one that cannot be reached (an offline
control room): the map must show everything on its plain background. Screenshots go to
var/test-artifacts/ (desktop and phone size). How fast changes show is for `make bench` to
measure (bench/control_room.py): every wait here has a deadline, none is a latency bound.

The page is the build in api/static/ (`make web`, which `make test` runs first).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import orjson
import pytest
import shapely
from PIL import Image
from playwright.async_api import Browser, Page, Route
from pydantic import ValidationError
from support.browser import blank_fraction, chromium
from support.paths import ARTIFACTS, REPO
from support.pipeline import Names, Service, create_topics, hotspots_argv, poll_until, produce, run_private

from api.routes.page import STATIC, tile_origin
from geofence.events import format_ts
from services.access.keys import create_key
from services.access.roles import Role
from services.pipeline.broker import EmbeddedBroker, free_port
from services.settings import Settings
from services.store import database_url

FENCES = REPO / "samples" / "fences.geojson"
PARTITIONS = 3
#: Fill colours of the fence states (FENCE_STYLES in web/src/mapview.js).
INSIDE, DUE, IDLE = "#43a047", "#e53935", "#90a4ae"
#: Longest wait for anything the page shows (a deadline, not a latency bound: see `make bench`).
SHOWS_WITHIN_S = 30.0
#: The plan made due: 3 visits of at least 10 minutes in a window open since an hour ago.
DUE_FENCE = "HS00003"
#: Where the test's own officer walks in while the service is down.
WALK_FENCE = "HS00005"
#: A hot spot added while the page is open, and the south-west corner (lon, lat) of its square: clear of the others.
NEW_FENCE = "HS-ADDED"
NEW_FENCE_SW = (-0.1350, 51.5250)
#: A tile server that is not there (a control room off the network): the map must work without it.
TILE_ORIGIN = f"http://127.0.0.1:{free_port()}"  # nothing listens there
UNREACHABLE_TILES = TILE_ORIGIN + "/{z}/{x}/{y}.png"
#: Functions, not expression strings: the page's CSP forbids the eval Playwright would use for those.
READY_JS = "() => window.controlRoom && window.controlRoom.ready()"


@dataclass
class Room:
    service: Service
    viewer: str
    admin: str

    async def api(self, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.service.url, timeout=10.0) as client:
            response = await client.get(path, params=params, headers={"authorization": f"Bearer {self.viewer}"})
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        return response.json()

    async def last_seq(self) -> int:
        seq, after = 0, 0
        for _ in range(1000):  # pages of 1,000: far more events than these tests make
            page = await self.api("/v1/events", after=after, limit=1000)
            seq = page["events"][-1]["seq"] if page["events"] else seq
            if page["next_after"] is None:
                return seq
            after = page["next_after"]
        raise AssertionError("more events than the tests make")


@pytest.fixture(scope="module")
def room(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    if not (STATIC / "index.html").exists():
        pytest.fail("the control-room page is not built: run `make web` (npm ci && npm run build in web/)")
    tmp = tmp_path_factory.mktemp("page")
    names = Names.fresh("page")
    extra = ("--max-lateness-s", "0", "--map-tile-url", UNREACHABLE_TILES)
    service = Service(broker.bootstrap, tmp / "data", names, PARTITIONS, FENCES, extra=extra)
    run_private(create_topics(broker.bootstrap, names, PARTITIONS))
    try:
        run_private(service.start_ready())
        url = database_url(None, service.data_dir)
        viewer = run_private(create_key(url, Role.VIEWER, "control room"))
        admin = run_private(create_key(url, Role.ADMIN, "plans"))
        yield Room(service, viewer, admin)
    finally:
        run_private(service.stop())


async def sign_in(page: Page, room: Room, key: str | None = None) -> None:
    await page.goto(room.service.url)
    await page.fill("#signin-key", key or room.viewer)
    await page.click("#signin button[type=submit]")
    await page.wait_for_function(READY_JS, timeout=20_000)


async def js(page: Page, expression: str, arg: Any = None) -> Any:
    return await page.evaluate(expression, arg)


def fence_centres() -> dict[str, tuple[float, float]]:
    """(lat, lon) of a point inside each sample hot spot."""
    doc = json.loads(FENCES.read_text())
    out = {}
    for f in doc["features"]:
        p = shapely.geometry.shape(f["geometry"]).representative_point()
        out[str(f["id"])] = (p.y, p.x)
    return out


def ping(device: str, ts: float, where: tuple[float, float]) -> tuple[bytes, bytes]:
    body = {"device_id": device, "ts": format_ts(ts), "lat": where[0], "lon": where[1], "callsign": device}
    return device.encode(), orjson.dumps(body)


async def post_due_plan(room: Room) -> None:
    """A plan whose window opened an hour ago (local time) and has had no visit: behind plan now."""
    tz = ZoneInfo("Europe/London")  # the timezone setting's default
    start = datetime.now(tz).replace(second=0, microsecond=0) - timedelta(hours=1)
    end = start + timedelta(hours=3)
    window = {"days": [start.strftime("%a").lower()], "start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "visits": 3}
    plan = {"plan_id": "page-due", "fence_id": DUE_FENCE, "team": "Team A", "target_pct": 90, "min_visit_min": 10,
            "target_visit_min": 15, "windows": [window]}  # fmt: skip
    async with httpx.AsyncClient(base_url=room.service.url, timeout=10.0) as client:
        response = await client.post(
            "/v1/plans", json={"plans": [plan]}, headers={"authorization": f"Bearer {room.admin}"}
        )
    assert response.status_code in (200, 201), response.text


@contextmanager
def simulator(room: Room, log: Path) -> Iterator[None]:
    """`hotspots simulate` while in the block: 12 officers patrolling the sample hot spots, a ping each a second."""
    argv = [*hotspots_argv(), "simulate", "--fences", str(FENCES), "--devices", "12", "--rate", "12", "--seed", "5",
            "--kafka-bootstrap", room.service.bootstrap, "--topic", room.service.names.pings]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOTS_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def visited_pixels(png: bytes) -> int:
    """Pixels of the 'officer inside' fill: #43a047 at 60 % over the #dfe5e8 background is (129, 188, 135)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((g - r > 40) & (g - b > 30)).sum())


async def screenshot_has_map(page: Page, name: str) -> None:
    """Saved under var/test-artifacts/; the map holds more than its plain background, and fences are drawn."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"control-room-{name}.png").write_bytes(await page.screenshot())
    shown = await page.locator("#map").screenshot()
    # Hot spots are small on a city-wide view: most of the map is its plain background.
    assert blank_fraction(shown) < 0.998, f"{name}: the map is blank"
    assert visited_pixels(shown) >= 50, f"{name}: no hot spot drawn green (officer inside)"
    assert await page.locator(".leaflet-overlay-pane canvas").count() >= 1
    assert await js(page, "controlRoom.fencesOnScreen()") == 6, f"{name}: not every hot spot is on screen"


# -- the tile server setting ------------------------------------------------------------------------


def test_map_tile_url_must_be_a_tile_template_and_its_servers_enter_the_csp() -> None:
    with pytest.raises(ValidationError, match="map_tile_url"):
        Settings(map_tile_url="https://tile.example.org/")  # no {z}/{x}/{y}: the map could load nothing
    osm = Settings(map_tile_url="https://{s}.tile.example.org/{z}/{x}/{y}.png").map_tile_url
    assert osm is not None and tile_origin(osm) == "https://*.tile.example.org"  # subdomains a, b, c


# -- sign-in ---------------------------------------------------------------------------------------


async def test_page_shows_nothing_without_a_key_and_drops_a_refused_one(room: Room) -> None:
    async with httpx.AsyncClient(base_url=room.service.url) as client:
        index, config = await client.get("/"), await client.get("/config.json")
    assert index.status_code == 200 and config.json() == {"map_tile_url": UNREACHABLE_TILES, "map_attribution": None}
    csp = index.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp  # no CDN
    assert f"img-src 'self' data: {TILE_ORIGIN};" in csp  # and the tile server's images

    key = await create_key(database_url(None, room.service.data_dir), Role.VIEWER, "a supervisor")
    async with chromium() as browser:
        page = await browser.new_page()
        api_calls: list[str] = []
        page.on("request", lambda r: api_calls.append(r.url) if "/v1/" in r.url else None)
        await page.goto(room.service.url)
        assert await page.locator("#signin").is_visible()
        assert not await page.locator("#app").is_visible()
        assert api_calls == [], "nothing is asked of the API before sign-in"

        ingest = await create_key(database_url(None, room.service.data_dir), Role.INGEST, "a radio gateway")
        await page.fill("#signin-key", ingest)
        await page.click("#signin button[type=submit]")
        await page.wait_for_selector("#signin-error:has-text('no viewer role')")

        await page.fill("#signin-key", "hs_nokey_wrong")
        await page.click("#signin button[type=submit]")
        await page.wait_for_selector("#signin-error:has-text('not accepted')")
        assert not await page.locator("#app").is_visible()

        await page.fill("#signin-key", key)
        await page.click("#signin button[type=submit]")
        await page.wait_for_function(READY_JS, timeout=20_000)
        assert await page.locator("#app").is_visible()
        assert await js(page, "sessionStorage.getItem('hotspots.apiKey')") == key

        # A key the service no longer accepts (revoked keys are refused once the service's key cache
        # lets go of them; an unknown one at once): the next API call answers 401.
        unknown = key.replace(key.split("_")[1], "000000000000", 1)
        await js(page, "(k) => sessionStorage.setItem('hotspots.apiKey', k)", unknown)
        await page.reload()  # 401: back to the sign-in form, the key forgotten
        await page.wait_for_selector("#signin-error:has-text('not accepted')")
        assert not await page.locator("#app").is_visible()
        assert await js(page, "sessionStorage.getItem('hotspots.apiKey')") is None


# -- live map --------------------------------------------------------------------------------------


async def test_page_live_map_due_list_screenshots_and_restart(room: Room, tmp_path: Path) -> None:
    await post_due_plan(room)
    due = (await room.api("/v1/compliance/due"))["due"]
    assert [(r["fence_id"], r["delivered_visits"], r["planned_visits"]) for r in due] == [(DUE_FENCE, 0, 3)]
    centres = fence_centres()
    async with chromium() as browser:
        page = await desktop_page(browser)
        errors: list[str] = []
        expected = "Failed to load resource: net::"  # the requests that meet the stopped service
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and expected not in m.text else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await sign_in(page, room)

        # Before any officer: every hot spot drawn, the planned one due (red), the others idle.
        fills = {f: await js(page, "(id) => controlRoom.fenceFill(id)", f) for f in centres}
        assert fills == {f: DUE if f == DUE_FENCE else IDLE for f in centres}
        await assert_due_table_matches(page, room)

        # A device last heard 400 s ago: the simulator's first fixes push the watermark past its
        # 300 s signal timeout, so it is reported lost and drawn with the lost mark.
        await produce(
            room.service.bootstrap, room.service.names.pings, [ping("R-LOST", time.time() - 400, (51.53, -0.125))]
        )
        with simulator(room, tmp_path / "simulate.log"):
            await assert_first_enter_shows(page, room)
            await assert_officers_shown(page, room)
            await screenshot_has_map(page, "1920x1080")
            await assert_detail_panels(page, room)

            phone = await browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
            await sign_in(phone, room)
            await screenshot_has_map(phone, "390x844")
            map_box = await phone.locator("#map").bounding_box()
            sheet = await phone.locator(".panels").bounding_box()
            assert map_box and sheet and sheet["y"] >= map_box["y"] + map_box["height"] - 1, "a sheet below the map"
            await phone.close()

            await assert_recovers_after_restart(page, room, centres[WALK_FENCE])
        await assert_page_matches_presence(page, room)
        assert errors == [], f"browser console errors: {errors}"


async def desktop_page(browser: Browser) -> Page:
    return await browser.new_page(viewport={"width": 1920, "height": 1080}, device_scale_factor=1)


async def assert_due_table_matches(page: Page, room: Room) -> None:
    """The due panel lists what GET /v1/compliance/due lists, in its order, with its figures."""
    api_rows = (await room.api("/v1/compliance/due"))["due"]
    await page.wait_for_selector("#due-list tr[data-fence]")
    shown = await page.eval_on_selector_all(
        "#due-list tr[data-fence]",
        "rows => rows.map(r => [r.dataset.fence, ...[...r.cells].map(c => c.textContent.trim())])",
    )
    assert [(r[0], r[3], r[4]) for r in shown] == [
        (r["fence_id"], f"{r['delivered_visits']}/{r['planned_visits']}",
         f"{round(r['delivered_minutes'])}/{round(r['planned_minutes'])}") for r in api_rows
    ]  # fmt: skip
    assert shown[0][3:5] == ["0/3", "0/30"]  # 3 planned visits of 10 min, none yet
    assert abs(float(shown[0][5].split()[0]) - api_rows[0]["shortfall_minutes"]) <= 1


async def assert_officers_shown(page: Page, room: Room) -> None:
    """Every officer with a known position (an event) has a marker; the lost one has the lost mark."""
    await poll_until(lambda: js(page, "controlRoom.lostShown() === 1"), "the lost officer's mark", 30)
    devices = {e["device_id"] for e in (await room.api("/v1/events", limit=1000))["events"]}
    assert "R-LOST" in devices and len(devices) >= 3
    await poll_until(lambda: js(page, f"controlRoom.officersShown() >= {len(devices)}"), "every officer on the map", 5)


async def assert_detail_panels(page: Page, room: Room) -> None:
    """A click on an officer opens their detail; the due list opens the hot spot's."""
    fence = (await room.api("/v1/presence"))["fences"][0]
    officer = fence["devices"][0]
    x, y = await js(page, "([lat, lon]) => controlRoom.pointOf(lat, lon)", [officer["lat"], officer["lon"]])
    await page.mouse.click(x, y)
    await page.wait_for_selector("#officer-detail #officer-time:not(.muted)")
    shown = await page.get_attribute("#officer-detail", "data-device-id")
    assert shown in {d["device_id"] for d in fence["devices"]}, "the officer clicked (or one beside them)"
    minutes = await page.text_content("#officer-time")
    assert minutes is not None and " · inside " in minutes and " · lost " in minutes
    visits = await page.locator("#officer-visits li").all_text_contents()
    assert any("now" in v for v in visits), f"the open visit of {shown} is listed: {visits}"
    shifts = await room.api("/v1/officers/time", **{"from": time.time() - 3600, "to": time.time()}, device_id=shown)
    await page.wait_for_selector("#officer-shifts table")  # one shift so far: the simulator started it
    assert len(shifts["officers"][0]["shifts"]) == await page.locator("#officer-shifts tbody tr").count() == 1
    (ARTIFACTS / "control-room-officer-1920x1080.png").write_bytes(await page.screenshot())

    await page.click("[data-tab=due]")
    await page.click(f"#due-list a[data-fence='{DUE_FENCE}']")
    await page.wait_for_selector(f"#fence-detail[data-fence-id='{DUE_FENCE}'] #fence-plan:not(.muted)")
    plan = await page.text_content("#fence-plan")
    assert plan is not None and plan.startswith("0/3 visits, 0/30 min; behind by")
    assert await page.text_content("#fence-today") == "No visits today."
    (ARTIFACTS / "control-room-hot-spot-1920x1080.png").write_bytes(await page.screenshot())


async def assert_first_enter_shows(page: Page, room: Room) -> None:
    """The API's first ENTER shows live: its hot spot drawn green, its officer listed inside."""
    first: dict[str, Any] = {}

    async def an_enter() -> bool:
        events = (await room.api("/v1/events", type="enter", limit=1000))["events"]
        if events:
            first.update(events[0])
        return bool(events)

    await poll_until(an_enter, "the simulator's first ENTER", SHOWS_WITHIN_S)
    fence = first["fence_id"]
    await poll_until(
        lambda: js(page, f"(id) => controlRoom.fenceFill(id) === '{INSIDE}'", fence),
        f"{fence} drawn as visited", SHOWS_WITHIN_S,
    )  # fmt: skip
    assert first["device_id"] in await js(page, "(id) => controlRoom.insideOf(id)", fence)


async def assert_recovers_after_restart(page: Page, room: Room, walk_to: tuple[float, float]) -> None:
    """Service stopped: the page says so; an officer walks into a hot spot meanwhile; service back on the
    same port and store: the page reconnects by itself and shows that ENTER and what came after."""
    # SIGTERM: the service ends the page's open event stream itself and stops cleanly (exit 0, not killed).
    assert await room.service.stop() == 0
    await page.wait_for_function("() => controlRoom.status() === 'reconnecting'", timeout=10_000)
    assert await page.locator("#status").text_content() == "reconnecting…"
    now = time.time()
    await produce(room.service.bootstrap, room.service.names.pings,
                  [ping("R-WALK", now - 2, (51.53, -0.125)), ping("R-WALK", now - 1, walk_to)])  # fmt: skip
    room.service.start()
    await room.service.wait_ready()
    await page.wait_for_function("() => controlRoom.status() === 'live'", timeout=20_000)
    await poll_until(
        lambda: js(page, "(id) => controlRoom.insideOf(id).includes('R-WALK')", WALK_FENCE),
        "the ENTER made while the service was down to show after it is back", 20,
    )  # fmt: skip


async def assert_page_matches_presence(page: Page, room: Room) -> None:
    """Once quiet, the page has every event (no gap across the restart): who is where equals GET /v1/presence."""
    last, previous = await room.last_seq(), -1
    deadline = time.monotonic() + SHOWS_WITHIN_S
    while last != previous:  # the simulator's last pings may still be on their way through
        assert time.monotonic() < deadline, "the event log never went quiet"
        await asyncio.sleep(1.0)
        previous, last = last, await room.last_seq()
    await poll_until(lambda: js(page, f"controlRoom.lastSeq() >= {last}"), f"the page to reach event {last}", 10)
    presence = await room.api("/v1/presence")
    want = {f["fence_id"]: sorted(d["device_id"] for d in f["devices"]) for f in presence["fences"]}
    got = {f: await js(page, "(id) => controlRoom.insideOf(id)", f) for f in fence_centres()}
    assert {f: d for f, d in got.items() if d} == want


async def test_page_shows_a_hot_spot_added_while_it_is_open_and_who_enters_it(room: Room) -> None:
    """A hot spot created after the page loaded: drawn once the fence set moves, and its ENTER shown."""
    async with chromium() as browser:
        page = await desktop_page(browser)
        await sign_in(page, room)
        assert NEW_FENCE not in await js(page, "() => controlRoom.fenceIds()")
        feature = {"type": "Feature", "id": NEW_FENCE, "properties": {"name": "Added live"},
                   "geometry": square(*NEW_FENCE_SW, 0.0008)}  # fmt: skip
        async with httpx.AsyncClient(base_url=room.service.url, timeout=10.0) as client:
            response = await client.post("/v1/fences", json=feature, headers={"authorization": f"Bearer {room.admin}"})
        assert response.status_code == 201, response.text
        version = response.json()["version"]
        await poll_until(
            lambda: js(page, f"() => controlRoom.fenceVersion() >= {version}"), "the page to reload the hot spots",
            SHOWS_WITHIN_S,
        )  # fmt: skip
        assert NEW_FENCE in await js(page, "() => controlRoom.fenceIds()")
        assert await js(page, "(id) => controlRoom.fenceFill(id)", NEW_FENCE) == IDLE

        inside = (NEW_FENCE_SW[1] + 0.0004, NEW_FENCE_SW[0] + 0.0004)
        await produce(room.service.bootstrap, room.service.names.pings, [ping("R-NEW", time.time(), (51.5, -0.134))])

        async def walked_in() -> bool:  # until the matcher, which reloads fences every 2 s, has the new one
            await produce(room.service.bootstrap, room.service.names.pings, [ping("R-NEW", time.time(), inside)])
            return "R-NEW" in await js(page, "(id) => controlRoom.insideOf(id)", NEW_FENCE)

        await poll_until(walked_in, "the ENTER into the new hot spot to show", SHOWS_WITHIN_S)
        await poll_until(
            lambda: js(page, f"(id) => controlRoom.fenceFill(id) === '{INSIDE}'", NEW_FENCE),
            "the new hot spot drawn as visited", SHOWS_WITHIN_S,
        )  # fmt: skip


async def test_officer_visit_list_keeps_a_visit_that_began_before_midnight(room: Room) -> None:
    """Today's visits of an officer include one that began yesterday (its ENTER is before today's events)."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    async def events_since_midnight(route: Route) -> None:  # the EXIT at 00:20 of a 30-minute visit
        device = parse_qs(urlsplit(route.request.url).query)["device_id"][0]
        exit_ = {"event_id": "e1", "type": "exit", "device_id": device, "fence_id": WALK_FENCE,
                 "ts": format_ts(midnight + 1200), "dwell_s": 1800.0, "reason": "left", "seq": 1}  # fmt: skip
        await route.fulfill(json={"events": [exit_], "next_after": None})

    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1920, "height": 1080}, timezone_id="UTC", locale="en-GB")
        page = await context.new_page()
        await page.route(lambda url: "/v1/events?" in url and "device_id=" in url, events_since_midnight)
        await sign_in(page, room)
        officer = next(d for d in (await room.api("/v1/presence/devices"))["devices"] if d["device_id"] == "R-LOST")
        x, y = await js(page, "([lat, lon]) => controlRoom.pointOf(lat, lon)", [officer["lat"], officer["lon"]])
        await page.mouse.click(x, y)
        await page.wait_for_selector("#officer-visits li")
        visits = await page.locator("#officer-visits li").all_text_contents()
        assert any(v.startswith("23:50\N{EN DASH}00:20") for v in visits), visits


def square(lon0: float, lat0: float, side: float) -> dict[str, Any]:
    lon1, lat1 = lon0 + side, lat0 + side
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


async def test_event_stream_says_where_it_starts_so_a_client_without_events_resumes_without_a_gap(room: Room) -> None:
    """The page reconnects with the stream's first id even when no event came before the drop."""
    last = await room.last_seq()
    assert last > 0  # the events of the live-map test
    headers = {"authorization": f"Bearer {room.viewer}"}
    async with (
        httpx.AsyncClient(base_url=room.service.url, timeout=10.0) as client,
        client.stream("GET", "/v1/events/stream", headers=headers) as response,
    ):
        lines = []
        async for line in response.aiter_lines():
            if not line:
                break
            lines.append(line)
    assert lines == ["retry: 1000", f"id: {last}"]
