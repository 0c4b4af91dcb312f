"""GPS calibration: the error of a device's fixes around a known true position, and fence buffers from it.

The guidance story: a radio placed an officer 200 m east of where he stood. Fixes are drawn
(seeded) around a known point with that offset plus noise; the core must recover the offset
and recommend a buffer that captures the fixes. Hand-made cases pin every figure; the store,
the matcher's capture hook and the API run on SQLite and PostgreSQL; one test runs the live
service against the real embedded broker.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from support.api import Api, serve_api
from support.helpers import M_PER_DEG_LAT, m_per_deg_lon, square_geometry
from support.pipeline import Names, Service, create_topics, poll_until, produce

from geofence.calibration import UNKNOWN_SOURCE, Fixes, calibrate, offsets_m, summarise
from geofence.events import format_ts
from geofence.pings import PingBatch
from services.access.roles import Role
from services.measures.calibration import FixCapture, FixRow, create_check, load_fixes, purge_fixes, save_fixes
from services.pipeline.broker import EmbeddedBroker
from services.store import Store, database_url

#: The true position of every check: a street corner in Camden Town.
LAT0, LON0 = 51.5390, -0.1426
#: Check windows start here: an hour ago, so within the ping retention (31 days).
T0 = float(int(time.time()) - 3600)


def to_latlon(east: np.ndarray, north: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres east/north of the true position as WGS84 degrees (spherical Earth, as helpers)."""
    return LAT0 + north / M_PER_DEG_LAT, LON0 + east / m_per_deg_lon(LAT0)


def fixes_of(
    east: np.ndarray, north: np.ndarray, sources: list[str | None], accuracy: np.ndarray | None = None
) -> Fixes:
    n = len(east)
    lat, lon = to_latlon(east, north)
    obj = np.empty(n, dtype=object)
    obj[:] = sources
    dev = np.empty(n, dtype=object)
    dev[:] = [f"dev-{s}" for s in sources]
    return Fixes(
        check_id=np.zeros(n, dtype=np.int64), device_id=dev, true_lat=np.full(n, LAT0), true_lon=np.full(n, LON0),
        ts=T0 + np.arange(n, dtype=np.float64), lat=lat, lon=lon,
        accuracy_m=np.full(n, np.nan) if accuracy is None else accuracy, source=obj,
    )  # fmt: skip


def covering(d: np.ndarray, fraction: float) -> float:
    """The plain computation: sort, take the ceil(fraction * n)-th smallest."""
    return float(np.sort(d)[math.ceil(fraction * len(d)) - 1])


# -- the pure core ---------------------------------------------------------------------------------


def test_offsets_m_one_thousandth_degree_at_60_north_is_55_6_m_east_and_111_2_m_north() -> None:
    # 1e-3 deg of latitude = 6 371 008.8 m * pi / 180 / 1000 = 111.195 m; of longitude at 60 N, half that.
    east, north = offsets_m(np.array([60.001, 60.0]), np.array([10.0, 10.001]), np.array(60.0), np.array(10.0))
    assert east.tolist() == pytest.approx([0.0, 55.5975], abs=1e-3)
    assert north.tolist() == pytest.approx([111.195, 0.0], abs=1e-3)


def test_summarise_five_fixes_east_every_figure_by_hand() -> None:
    # Distances 12, 23, 31, 44, 58 m, all due east. Median: the 3rd = 31. Covering 80%: ceil(0.8*5)
    # = 4th = 44 -> buffer 45; 95%: ceil(4.75) = 5th = 58 -> buffer 60. Mean offset (33.6, 0): 90 deg.
    east = np.array([44.0, 12.0, 58.0, 23.0, 31.0])
    s = summarise(east, np.zeros(5), np.full(5, np.nan), max_accuracy_m=100.0)
    assert (s.fixes, s.uncertain, s.median_m, s.p80_m, s.p95_m) == (5, 0, 31.0, 44.0, 58.0)
    assert (s.buffer_80_m, s.buffer_95_m) == (45.0, 60.0)
    assert (s.mean_east_m, s.mean_north_m, s.mean_offset_m, s.offset_bearing_deg) == pytest.approx((33.6, 0, 33.6, 90))


def test_summarise_fixes_less_accurate_than_max_accuracy_left_out_and_counted() -> None:
    # The 500 m fix claims 150 m accuracy > 100: the engine ignores it for fences, so does the buffer.
    # Unknown accuracy (NaN) counts, as in the engine. Left: 30 m north and 40 m south.
    s = summarise(np.zeros(3), np.array([30.0, 500.0, -40.0]), np.array([5.0, 150.0, np.nan]), max_accuracy_m=100.0)
    assert (s.fixes, s.uncertain, s.median_m, s.p95_m, s.buffer_95_m) == (2, 1, 35.0, 40.0, 40.0)
    assert (s.mean_north_m, s.offset_bearing_deg) == pytest.approx((-5.0, 180.0))


def test_summarise_no_fixes_gives_counts_and_no_figures() -> None:
    s = summarise(np.zeros(1), np.zeros(1), np.array([900.0]), max_accuracy_m=100.0)
    assert (s.fixes, s.uncertain, s.median_m, s.buffer_95_m, s.mean_offset_m) == (0, 1, None, None, None)


def test_calibrate_200_m_east_offset_recovered_and_95_buffer_captures_95_percent() -> None:
    rng = np.random.default_rng(20261122)
    n, sigma = 2000, 15.0
    east, north = 200.0 + rng.normal(0, sigma, n), rng.normal(0, sigma, n)
    result = calibrate(fixes_of(east, north, ["radio"] * n), max_accuracy_m=100.0)
    s = result.overall
    # The mean of 2000 draws with sigma 15 m has a standard error of 15 / sqrt(2000) = 0.34 m: 2 m is
    # six of those, so a miss means a bug, not bad luck. The degree conversions (helpers' 111 195.0
    # m/deg vs the core's 111 195.08) differ by under a millimetre at 200 m.
    assert s.mean_east_m == pytest.approx(200.0, abs=2.0)
    assert s.mean_north_m == pytest.approx(0.0, abs=2.0)
    assert s.offset_bearing_deg == pytest.approx(90.0, abs=1.0)  # atan(2 / 200) = 0.6 deg
    d = np.hypot(east, north)
    assert (s.median_m, s.p80_m, s.p95_m) == pytest.approx(
        (np.median(d), covering(d, 0.8), covering(d, 0.95)), abs=1e-3
    )
    assert s.buffer_95_m is not None and s.buffer_80_m is not None
    assert s.buffer_95_m % 5 == 0 and s.buffer_95_m - 5 < s.p95_m <= s.buffer_95_m
    assert np.mean(d <= s.buffer_95_m) >= 0.95
    assert np.mean(d <= s.buffer_80_m) >= 0.80
    # ~200 + 1.645 sigma = 225 m: the buffer a force would have needed, not a flat "+200 m".
    assert 220.0 <= s.buffer_95_m <= 235.0
    assert set(result.by_device) == {"dev-radio"} and result.by_source["radio"] == s


def test_calibrate_per_source_radio_and_handset_apart() -> None:
    rng = np.random.default_rng(7)
    # 600 radio fixes 200 m east (sigma 15), 400 handset fixes 10 m north (sigma 3), 5 without a source.
    east = np.concatenate([200 + rng.normal(0, 15, 600), rng.normal(0, 3, 400), np.full(5, 20.0)])
    north = np.concatenate([rng.normal(0, 15, 600), 10 + rng.normal(0, 3, 400), np.zeros(5)])
    sources: list[str | None] = ["radio"] * 600 + ["handset"] * 400 + [None] * 5
    by = calibrate(fixes_of(east, north, sources), max_accuracy_m=100.0).by_source
    assert sorted(by) == ["handset", "radio", UNKNOWN_SOURCE]
    assert (by["radio"].fixes, by["handset"].fixes, by[UNKNOWN_SOURCE].fixes) == (600, 400, 5)
    # Standard errors: 15 / sqrt(600) = 0.6 m, 3 / sqrt(400) = 0.15 m; tolerances are 4-5 of those.
    assert (by["radio"].mean_east_m, by["radio"].mean_north_m) == pytest.approx((200, 0), abs=3.0)
    assert (by["handset"].mean_east_m, by["handset"].mean_north_m) == pytest.approx((0, 10), abs=0.6)
    assert by[UNKNOWN_SOURCE].buffer_95_m == 20.0  # 20.00001 m after the degree round trip: 20 to the mm
    d = np.hypot(east[:600], north[:600])
    assert by["radio"].p95_m == pytest.approx(covering(d, 0.95), abs=1e-3)
    assert by["handset"].buffer_95_m is not None and by["handset"].buffer_95_m <= 20.0  # 10 m + 1.645 * 3 m, rounded


# -- the store and the matcher's capture hook ------------------------------------------------------


def batch(rows: list[tuple[str, float, float, dict[str, Any] | None]]) -> PingBatch:
    """Pings (device, seconds after T0, metres east of the true position, extras)."""
    lat, lon = to_latlon(np.array([r[2] for r in rows]), np.zeros(len(rows)))
    return PingBatch.from_columns(
        [r[0] for r in rows], [T0 + r[1] for r in rows], lat, lon, [8.0] * len(rows), extras=[r[3] for r in rows]
    )


async def check(store: Store, device: str, start: float, end: float, **kw: Any) -> int:
    made = await create_check(
        store, device_id=device, lat=LAT0, lon=LON0, start_ts=T0 + start, end_ts=T0 + end, note=None,
        created_by="test", **kw,
    )  # fmt: skip
    return made.check_id


async def test_capture_selects_pings_of_checked_devices_inside_windows_only(store: Store) -> None:
    r1 = await check(store, "R1", 60, 120)  # [60, 120): 60 in, 120 out
    h1 = await check(store, "H1", 0, 30)
    capture = FixCapture(store)
    assert capture.select(batch([("R1", 90, 200, None)])) == [], "nothing open before the first poll"
    await capture.refresh()
    radio = {"source": "radio", "callsign": "CX1"}
    pings = [
        ("R1", 59, 200, radio),  # before the window
        ("R1", 60, 201, radio),
        ("X9", 70, 0, None),  # no check
        ("R1", 119.5, 199, None),
        ("R1", 120, 200, radio),  # the window's end is outside it
        ("H1", 10, 12, {"source": "handset"}),
        ("H1", 30, 12, None),
    ]
    rows = capture.select(batch(pings))
    assert sorted((r.check_id, r.ts - T0, r.source, r.accuracy_m) for r in rows) == [
        (r1, 60, "radio", 8.0),
        (r1, 119.5, None, 8.0),
        (h1, 10, "handset", 8.0),
    ]
    await save_fixes(store, rows)
    await save_fixes(store, rows)  # a replay after a crash writes the same fixes again: kept once
    fixes = await load_fixes(store, check_id=r1)
    assert (fixes.ts - T0).tolist() == [60, 119.5]
    east, _ = offsets_m(fixes.lat, fixes.lon, fixes.true_lat, fixes.true_lon)
    assert east.tolist() == pytest.approx([201, 199], abs=1e-3)


async def test_capture_without_open_checks_selects_nothing(store: Store) -> None:
    capture = FixCapture(store)
    await capture.refresh()
    assert capture.select(batch([("R1", 0, 0, None)] * 3)) == []


async def test_purge_drops_fixes_older_than_retention_and_capture_forgets_old_checks(store: Store) -> None:
    week = 7 * 86_400.0
    old = await check(store, "R1", -40 * 86_400, -40 * 86_400 + 600)  # 40 days ago
    new = await check(store, "R1", 0, 600)
    await save_fixes(store, [FixRow(old, T0 - 40 * 86_400 + 5, LAT0, LON0, None, None),
                             FixRow(new, T0 + 5, LAT0, LON0, None, None)])  # fmt: skip
    capture = FixCapture(store, retention_s=31 * 86_400.0)
    await capture.refresh()  # the first poll also purges
    assert [c.check_id for c in capture.checks] == [new]
    assert (await load_fixes(store)).check_id.tolist() == [new]
    assert await purge_fixes(store, T0 + week) == 1


# -- the API ---------------------------------------------------------------------------------------


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    async with serve_api(db_url) as served:
        square = square_geometry(LON0, LAT0, 0.001)
        fences = [
            {"type": "Feature", "properties": {"id": f, "name": f"hot spot {f}"}, "geometry": square}
            for f in ("A", "B")
        ]
        r = await served.client.post("/v1/fences", json={"type": "FeatureCollection", "features": fences},
                                     headers=served.as_(Role.ADMIN))  # fmt: skip
        assert r.status_code == 201 and r.json()["version"] == 1
        yield served


def fix(t: float, east: float, north: float = 0.0, **extra: Any) -> dict[str, Any]:
    lat, lon = to_latlon(np.array(east), np.array(north))
    return {"ts": format_ts(T0 + t), "lat": float(lat), "lon": float(lon), **extra}


#: Twenty radio fixes 180.5, 182.5, ... 218.5 m due east. Median: (198.5 + 200.5) / 2 = 199.5; mean
#: the same. Covering 80%: the 16th = 210.5 -> buffer 215; 95%: the 19th = 216.5 -> buffer 220.
RADIO_FIXES = [fix(10 * k, 180.5 + 2 * k, source="radio", accuracy_m=10.0) for k in range(20)]
RADIO_CHECK = {"device_id": "R7", "lat": LAT0, "lon": LON0, "start": T0, "end": T0 + 600,
               "note": "CCTV camera 4, Camden High St", "fixes": RADIO_FIXES}  # fmt: skip
#: A check 40 days ago with its fixes: past the ping retention (31 days), so refused.
OLD_CHECK = {"start": T0 - 40 * 86_400, "end": T0 - 40 * 86_400 + 600, "fixes": [fix(-40 * 86_400, 1)]}
#: Three handset fixes 12 m north: every figure 12, buffers 15.
HANDSET_CHECK = {"device_id": "H1", "lat": LAT0, "lon": LON0, "start": format_ts(T0), "end": format_ts(T0 + 60),
                 "fixes": [fix(t, 0, 12, source="handset") for t in (0, 20, 40)]}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"end": T0 - 1}, ["body", "end"], "after start"),
        ({"end": T0 + 2 * 86_400}, ["body", "end"], "longer than 24 h"),
        ({"lat": 91.0}, ["body", "lat"], "between -90 and 90"),
        ({"start": "2026-11-21T22:00:00"}, ["body", "start"], "no UTC offset"),
        ({"fixes": [fix(0, 1), fix(700, 1)]}, ["body", "fixes", 1, "ts"], "outside the check's window"),
        (OLD_CHECK, ["body", "fixes", 0, "ts"], "older than the ping retention"),
        ({"fixes": [fix(0, 1), fix(0, 2)]}, ["body", "fixes"], "same ts"),
        ({"fixes": [{**fix(0, 1), "lat": "51.5"}]}, ["body", "fixes", 0, "lat"], "JSON number"),
        ({"colour": "red"}, ["body", "colour"], "Extra inputs"),
        ({"device_id": "R\x007"}, ["body", "device_id"], "control character U+0000"),  # PostgreSQL cannot store it
        ({"note": "CCTV\x00"}, ["body", "note"], "NUL byte"),
    ],
)
async def test_calibration_check_invalid_answers_422_naming_field(
    api: Api, change: dict[str, Any], loc: list[Any], words: str
) -> None:
    response = await api.client.post("/v1/calibration/checks", json={**RADIO_CHECK, **change},
                                      headers=api.as_(Role.ADMIN))  # fmt: skip
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == loc and words in error["msg"]


async def test_calibration_check_with_supplied_fixes_gives_hand_worked_figures_and_audits_reads(api: Api) -> None:
    admin, viewer = api.as_(Role.ADMIN), api.as_(Role.VIEWER)
    created = await api.client.post("/v1/calibration/checks", json=RADIO_CHECK, headers=admin)
    assert created.status_code == 201
    check_id = created.json()["check_id"]
    got = (await api.client.get(f"/v1/calibration/checks/{check_id}", headers=viewer)).json()
    r = got["result"]
    assert (r["fixes"], r["uncertain"]) == (20, 0)
    assert (r["median_m"], r["p80_m"], r["p95_m"], r["mean_east_m"]) == pytest.approx(
        (199.5, 210.5, 216.5, 199.5), abs=1e-3
    )
    assert (r["buffer_80_m"], r["buffer_95_m"], round(r["offset_bearing_deg"])) == (215.0, 220.0, 90)
    assert got["note"] == "CCTV camera 4, Camden High St" and got["start"] == T0 and got["end"] == T0 + 600
    assert [f["distance_m"] for f in got["fixes"][:2]] == pytest.approx([180.5, 182.5], abs=1e-3)
    assert got["by_source"]["radio"]["fixes"] == 20
    listed = (await api.client.get("/v1/calibration/checks", params={"device_id": "R7"}, headers=viewer)).json()
    assert [(c["check_id"], c["result"]["buffer_95_m"]) for c in listed["checks"]] == [(check_id, 220.0)]
    missing = await api.client.get("/v1/calibration/checks/999999", headers=viewer)
    assert missing.status_code == 404
    entries = (await api.client.get("/v1/audit", params={"target": "R7"}, headers=admin)).json()["entries"]
    assert [(e["action"], e["role"]) for e in entries] == [
        ("POST /v1/calibration/checks", "admin"),
        ("GET /v1/calibration/checks/{id}", "viewer"),
        ("GET /v1/calibration/checks", "viewer"),
    ]


async def test_calibration_checks_of_a_range_read_only_the_fixes_of_the_checks_listed(api: Api) -> None:
    """Found by reading the code: the list read every fix held, whatever the range asked for."""
    admin, viewer = api.as_(Role.ADMIN), api.as_(Role.VIEWER)
    earlier = {**HANDSET_CHECK, "start": T0 - 7200, "end": T0 - 7140, "fixes": [fix(-7200, 0, 12)]}
    for body in (RADIO_CHECK, earlier):
        assert (await api.client.post("/v1/calibration/checks", json=body, headers=admin)).status_code == 201
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    sa.event.listen(sa.Engine, "before_cursor_execute", seen)
    try:
        params = {"from": str(T0), "to": str(T0 + 600)}
        listed = await api.client.get("/v1/calibration/checks", params=params, headers=viewer)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", seen)
    assert [(c["device_id"], c["result"]["fixes"]) for c in listed.json()["checks"]] == [("R7", 20)]
    fix_reads = [list(p.values() if isinstance(p, dict) else p) for s, p in statements if "calibration_fixes" in s]
    assert fix_reads and all(T0 in p and T0 + 600 in p for p in fix_reads)  # bounded by the range


async def test_calibration_summary_per_device_and_source_audited(api: Api) -> None:
    admin, viewer = api.as_(Role.ADMIN), api.as_(Role.VIEWER)
    for body in (RADIO_CHECK, HANDSET_CHECK):
        assert (await api.client.post("/v1/calibration/checks", json=body, headers=admin)).status_code == 201
    s = (await api.client.get("/v1/calibration/summary", headers=viewer)).json()
    assert {k: v["fixes"] for k, v in s["devices"].items()} == {"H1": 3, "R7": 20}
    assert {k: v["buffer_95_m"] for k, v in s["sources"].items()} == {"handset": 15.0, "radio": 220.0}
    assert s["sources"]["handset"]["mean_north_m"] == pytest.approx(12.0, abs=1e-3)
    assert s["overall"]["fixes"] == 23
    only = (await api.client.get("/v1/calibration/summary", params={"source": "handset"}, headers=viewer)).json()
    assert list(only["devices"]) == ["H1"]
    entries = (await api.client.get("/v1/audit", headers=admin)).json()["entries"]
    reads = [(e["action"], e["target"], e["detail"]["devices"]) for e in entries if e["action"].startswith("GET")]
    assert reads == [("GET /v1/calibration/summary", None, ["H1", "R7"]),
                     ("GET /v1/calibration/summary", None, ["H1"])]  # fmt: skip


async def test_calibration_apply_quantile_sets_fence_buffer_and_bumps_version(api: Api) -> None:
    admin = api.as_(Role.ADMIN)
    await api.client.post("/v1/calibration/checks", json=RADIO_CHECK, headers=admin)
    await api.client.post("/v1/calibration/checks", json=HANDSET_CHECK, headers=admin)
    applied = await api.client.post("/v1/calibration/apply", json={"fence_ids": ["A"], "quantile": 95,
                                                                   "source": "radio"}, headers=admin)  # fmt: skip
    assert applied.status_code == 200
    body = applied.json()
    assert (body["version"], body["buffer_m"], body["based_on"]["fixes"]) == (2, 220.0, 20)
    assert body["fences"] == [{"fence_id": "A", "old_buffer_m": 0.0, "new_buffer_m": 220.0}]
    assert body["warnings"] and "larger than a micro-place" in body["warnings"][0]  # 0.001 deg + 2 x 220 m
    fence = (await api.client.get("/v1/fences/A", headers=admin)).json()
    assert (fence["properties"]["buffer_m"], fence["properties"]["name"]) == (220.0, "hot spot A")
    assert fence["properties"]["fence_set_version"] == 2
    by_hand = await api.client.post("/v1/calibration/apply", json={"fence_ids": ["A", "B"], "buffer_m": 15},
                                    headers=admin)  # fmt: skip
    assert (by_hand.json()["version"], [f["new_buffer_m"] for f in by_hand.json()["fences"]]) == (3, [15.0, 15.0])
    entries = (await api.client.get("/v1/audit", headers=admin)).json()["entries"]
    applies = [e["detail"] for e in entries if e["action"] == "POST /v1/calibration/apply"]
    assert [(d["fences"], d["buffer_m"], d["version"]) for d in applies] == [(["A"], 220.0, 2), (["A", "B"], 15.0, 3)]


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"fence_ids": ["A"], "quantile": 90}, ["body", "quantile"], "80 or 95"),
        ({"fence_ids": ["A"], "quantile": 95, "buffer_m": 10}, ["body", "quantile"], "not both"),
        ({"fence_ids": ["A"]}, ["body", "quantile"], "or neither"),
        ({"fence_ids": ["A", "Z"], "buffer_m": 10}, ["body", "fence_ids"], "unknown fence(s) ['Z']"),
        ({"fence_ids": [], "buffer_m": 10}, ["body", "fence_ids"], "at least 1"),
        ({"fence_ids": ["A"], "buffer_m": -1}, ["body", "buffer_m"], "greater than or equal to 0"),
        ({"fence_ids": ["A"], "quantile": 95, "device_id": "nobody"}, ["body", "quantile"], "no calibration fixes"),
    ],
)
async def test_calibration_apply_invalid_answers_422_naming_field_and_changes_nothing(
    api: Api, body: dict[str, Any], loc: list[Any], words: str
) -> None:
    admin = api.as_(Role.ADMIN)
    await api.client.post("/v1/calibration/checks", json=RADIO_CHECK, headers=admin)
    response = await api.client.post("/v1/calibration/apply", json=body, headers=admin)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == loc and words in error["msg"]
    assert (await api.client.get("/v1/fences", headers=admin)).json()["fence_set_version"] == 1


# -- the live service ------------------------------------------------------------------------------


async def test_pipeline_matcher_captures_fixes_of_device_with_open_check(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A check registered before the service starts; pings of its device in and out of its window,
    and of another device, go through Kafka; only the in-window ones become the check's fixes."""
    data = tmp_path / "data"
    store = await Store.open(database_url(None, data))
    try:
        check_id = await check(store, "R7", 60, 180)
    finally:
        await store.close()
    names = Names.fresh("calib")
    await create_topics(broker.bootstrap, names, 2)
    service = Service(broker.bootstrap, data, names, 2, extra=("--max-lateness-s", "0"))

    def ping(device: str, t: float, east: float, **extra: Any) -> tuple[bytes, bytes]:
        body = {"device_id": device, **fix(t, east), "accuracy_m": 6.0, **extra}
        return device.encode(), json.dumps(body).encode()

    pings = [ping("R7", t, 200 + t / 60, source="radio") for t in (0, 60, 90, 120, 179, 180, 240)]
    pings += [ping("H1", t, 5) for t in (60, 90, 120)]
    try:
        await service.start_ready()
        await produce(broker.bootstrap, names.pings, pings)
        everything = lambda: sum(service.checkpointed_offsets().values()) == len(pings)  # noqa: E731
        await poll_until(everything, "every ping to be checkpointed")
    finally:
        await service.stop()
    store = await Store.open(database_url(None, data))
    try:
        fixes = await load_fixes(store, check_id=check_id)
    finally:
        await store.close()
    assert (fixes.ts - T0).tolist() == [60, 90, 120, 179]  # [60, 180): 0, 180 and 240 are outside
    assert fixes.source.tolist() == ["radio"] * 4
    east, _ = offsets_m(fixes.lat, fixes.lon, fixes.true_lat, fixes.true_lon)
    assert east.tolist() == pytest.approx([201, 201.5, 202, 179 / 60 + 200], abs=1e-3)
