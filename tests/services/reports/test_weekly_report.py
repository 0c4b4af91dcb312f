"""The weekly stocktake from a simulated week, in CSV, XLSX and HTML (opened in headless Chromium),
over HTTP and from the command line.

The week is 2026-W47 (Monday 16 to Sunday 22 November 2026; London is on GMT, so local = UTC):
six officers patrol eight hot spots every evening 18:00-24:00, radios dropping out now and then,
through a real Engine whose events are recorded as the pipeline records them. Every hot spot has a
plan of 12 visits of at least 10 minutes in an 18:00-24:00 window every day, so 7 x 12 = 84 planned
visits and 84 x 10 = 840 planned minutes each; Team A has four hot spots, Team B four.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from openpyxl import load_workbook
from PIL import Image
from support.browser import blank_fraction, chromium
from support.paths import ARTIFACTS

from api.app import create_app
from api.context import ServiceContext
from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.geojson_fences import fences_from_geojson
from ingest.incidents_csv import Incident
from ingest.plan_file import parse_plans
from services.access.keys import create_key
from services.access.roles import Role
from services.cli import main
from services.measures.incidents import store_incidents
from services.measures.local_weeks import parse_week
from services.measures.officer_time import officer_time
from services.metrics import Metrics
from services.reports.html import DOSAGE_COLOUR, MET_COLOUR, MISSED_COLOUR, compliance_svg
from services.reports.weekly import ComplianceBar, WeeklyReport, render, weekly_report
from services.settings import Settings
from services.store import Observations, Store, database_url, devices_now
from services.store.plans import upsert_plans
from services.workload import make_fences, make_pings

WEEK = "2026-W47"
MONDAY = datetime(2026, 11, 16, tzinfo=UTC).timestamp()
HOUR, DAY = 3600.0, 86_400.0
#: A square kilometre or so of central London: officers walk between the hot spots in minutes.
AREA = (-0.145, 51.52, -0.13, 51.53)
TABLES = ["summary", "hotspots", "teams", "dosage_by_day", "officers", "shifts", "signal_loss", "signal_gaps",
          "outcomes"]  # fmt: skip


@dataclass(frozen=True)
class SimulatedWeek:
    fences: dict[str, Any]
    batches: list[Observations]
    engine: Engine
    incidents: list[Incident]


@pytest.fixture(scope="module")
def simulated() -> SimulatedWeek:
    return simulate_week()


def simulate_week() -> SimulatedWeek:
    """The week's fences, the engine's events and device states batch by batch, and incidents."""
    rng = np.random.default_rng(47)
    fences = make_fences(8, rng, AREA)
    engine = Engine(FenceIndex(fences_from_geojson(fences)), EngineParams())
    batches: list[Observations] = []
    for day in range(7):
        pings = make_pings(fences, 6, 6 * HOUR, rng, start_ts=MONDAY + day * DAY + 18 * HOUR, gaps_per_hour=0.5)
        for i in range(0, len(pings), 1000):
            events = engine.process(pings.take(slice(i, i + 1000))).events
            batches.append(Observations(events, devices_now(engine.checkpoint()[1])))
    batches.append(Observations(engine.flush(), devices_now(engine.checkpoint()[1])))
    # Two incidents at the first hot spot's centre, one at the second's, one outside the week.
    centres = [np.mean(f["geometry"]["coordinates"][0][:-1], axis=0) for f in fences["features"]]
    incidents = [
        Incident(f"i{k}", "crime", ts, ts, float(centres[c][1]), float(centres[c][0]), cat)
        for k, (c, ts, cat) in enumerate(
            [(0, MONDAY + 20 * HOUR, "violence"), (0, MONDAY + 2 * DAY, "robbery"),
             (1, MONDAY + 3 * DAY, "violence"), (1, MONDAY + 8 * DAY, "violence")]
        )
    ]  # fmt: skip
    return SimulatedWeek(fences, batches, engine, incidents)


def plan_doc(fences: dict[str, Any]) -> dict[str, Any]:
    ids = [f["id"] for f in fences["features"]]
    window = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "18:00", "end": "00:00", "visits": 12}
    return {
        "plans": [
            {"plan_id": f"p-{f}", "fence_id": f, "team": "Team A" if i < 4 else "Team B", "target_pct": 90,
             "min_visit_min": 10, "target_visit_min": 15, "windows": [window]}
            for i, f in enumerate(ids)
        ]
    }  # fmt: skip


async def fill(store: Store, week: SimulatedWeek) -> None:
    await store.upsert_fences(fences_from_geojson(week.fences))
    await upsert_plans(store, parse_plans(plan_doc(week.fences)))
    for obs in week.batches:
        await store.record(obs.events, obs.devices)
    await store_incidents(store, week.incidents)


@pytest.fixture
async def report(store: Store, simulated: SimulatedWeek) -> WeeklyReport:
    await fill(store, simulated)
    return await weekly_report(store, Settings(), parse_week(WEEK, "Europe/London"))


def csv_tables(data: bytes) -> dict[str, list[dict[str, str]]]:
    """The blocks of the CSV: name row, header row, data rows, empty row."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    tables: dict[str, list[dict[str, str]]] = {}
    i = 0
    while i < len(rows):
        [name], header = rows[i], rows[i + 1]
        end = rows.index([], i)
        tables[name] = [dict(zip(header, r, strict=True)) for r in rows[i + 2 : end]]
        i = end + 1
    return tables


# ---------------------------------------------------------------------- CSV


async def test_weekly_report_csv_totals_equal_store_dwell_and_plans(store: Store, report: WeeklyReport) -> None:
    tables = csv_tables(render(report, "csv"))
    assert list(tables) == TABLES
    week = report.week
    dwell = {r.fence_id: r for r in await store.dwell(week.start, week.end, group_by="fence")}
    hotspots = {r["fence_id"]: r for r in tables["hotspots"]}
    assert len(hotspots) == 8 and set(dwell) <= set(hotspots)
    assert sum(r.dwell_s for r in dwell.values()) > 7 * 3600, "officers should spend hours in hot spots"
    for fence, r in hotspots.items():
        got = dwell.get(fence)
        assert float(r["dwell_min"]) == pytest.approx(got.dwell_s / 60 if got else 0.0, abs=0.005), fence
        assert int(r["visits"]) == (got.visits if got else 0)
        by_day = [float(d["dwell_min"]) for d in tables["dosage_by_day"] if d["fence_id"] == fence]
        assert sum(by_day) == pytest.approx(float(r["dwell_min"]), abs=0.01 * 7), fence
        # The plan: 7 windows x 12 visits of 10 minutes.
        assert (int(r["planned_visits"]), float(r["planned_min"]), r["target_pct"]) == (84, 840.0, "90.0")
        assert int(r["delivered_visits"]) <= int(r["short_visits"]) + int(r["guideline_visits"]) + int(r["long_visits"])
        assert r["teams"] == ("Team A" if fence in sorted(hotspots)[:4] else "Team B")
    planned_days = [float(d["planned_min"]) for d in tables["dosage_by_day"]]
    assert sum(planned_days) == 8 * 840.0  # every window starts (18:00) on the local day it is planned

    teams = {r["team"]: r for r in tables["teams"]}
    assert {t: int(r["planned_visits"]) for t, r in teams.items()} == {"Team A": 336, "Team B": 336}
    for team, members in (("Team A", sorted(hotspots)[:4]), ("Team B", sorted(hotspots)[4:])):
        assert int(teams[team]["delivered_visits"]) == sum(int(hotspots[f]["delivered_visits"]) for f in members)

    summary = {r["measure"]: r["value"] for r in tables["summary"]}
    delivered = sum(int(r["delivered_visits"]) for r in hotspots.values())
    assert (summary["week"], summary["from"], summary["to"]) == (WEEK, "2026-11-16 00:00", "2026-11-23 00:00")
    assert (int(summary["planned_visits"]), int(summary["delivered_visits"])) == (672, delivered)
    assert float(summary["compliance_pct"]) == round(delivered * 100 / 672, 1)
    met = [float(r["compliance_pct"]) >= 90.0 for r in hotspots.values()]
    assert any(met) and not all(met), "some hot spots should meet the plan and some not"
    # Incidents: two at the first hot spot, one at the second in the week (one more after it).
    first, second = sorted(hotspots)[:2]
    assert [(r["fence_id"], r["category"], r["incidents"]) for r in tables["outcomes"]] == [
        (first, "robbery", "1"), (first, "violence", "1"), (second, "violence", "1")
    ]  # fmt: skip
    assert (hotspots[first]["incidents"], hotspots[second]["incidents"], summary["incidents"]) == ("2", "1", "3")


async def test_weekly_report_officer_figures_equal_officer_time_and_engine(
    store: Store, report: WeeklyReport, simulated: SimulatedWeek
) -> None:
    tables = csv_tables(render(report, "csv"))
    officers = {r["device_id"]: r for r in tables["officers"]}
    week = report.week
    found = {o.device_id: o for o in await officer_time(store, week.start, week.end, Settings().shift_break_s)}
    totals = simulated.engine.device_totals()  # the whole run lies in the week
    assert officers.keys() == found.keys() == totals.keys() and len(officers) == 6
    for device, r in officers.items():
        assert int(r["shifts"]) == 7, "one shift each evening: the 18 h overnight silences are breaks"
        assert float(r["inside_min"]) == pytest.approx(totals[device]["inside_s"] / 60, abs=0.005)
        assert float(r["outside_min"]) == pytest.approx(totals[device]["outside_s"] / 60, abs=0.005)
        assert float(r["lost_min"]) == pytest.approx(found[device].total("lost_s") / 60, abs=0.005)
    shifts = [r for r in tables["shifts"] if r["device_id"] == "R00000"]
    assert [r["shift_start"][:10] for r in shifts] == [f"2026-11-{d}" for d in range(16, 23)]
    loss = {r["device_id"]: r for r in tables["signal_loss"]}
    assert sum(int(r["losses"]) for r in loss.values()) > 0, "radios should drop out in the week"
    gaps = tables["signal_gaps"]
    assert {g["kind"] for g in gaps} >= {"loss", "break"}
    assert all(g["lat"] and g["lon"] for g in gaps), "every gap has a last known position"
    for device, r in loss.items():
        mine = [g for g in gaps if g["device_id"] == device and g["kind"] == "loss"]
        assert int(r["losses"]) == len(mine)
        assert float(r["lost_min"]) == pytest.approx(sum(float(g["length_min"]) for g in mine), abs=0.01 * len(mine))


# ---------------------------------------------------------------------- XLSX


async def test_weekly_report_xlsx_one_styled_sheet_per_table_same_figures_as_csv(report: WeeklyReport) -> None:
    book = load_workbook(io.BytesIO(render(report, "xlsx")))
    assert book.sheetnames == TABLES
    tables = csv_tables(render(report, "csv"))
    for name in TABLES:
        sheet = book[name]
        rows = list(sheet.iter_rows(values_only=True))
        assert list(rows[0]) == list(report.table(name).columns), name
        assert [list(r) for r in rows[1:]] == [list(r) for r in report.table(name).rows], name
        assert len(rows) - 1 == len(tables[name])
        assert sheet.freeze_panes == "A2"
        assert all(c.font.bold for c in sheet[1]), name
    hotspots = book["hotspots"]
    header = [c.value for c in hotspots[1]]
    planned = [r[header.index("planned_visits")] for r in hotspots.iter_rows(min_row=2, values_only=True)]
    assert planned == [84] * 8  # numbers stay numbers, not text


# ---------------------------------------------------------------------- HTML in a browser


@pytest.mark.e2e
async def test_weekly_report_html_renders_charts_in_headless_chromium(report: WeeklyReport) -> None:
    html = render(report, "html")
    assert b"<script" not in html and b"http://" not in html.replace(b"http://www.w3.org/2000/svg", b"")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "weekly-report.html").write_bytes(html)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1200, "height": 1000})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        await page.set_content(html.decode("utf-8"), wait_until="load")
        assert requests == [], "the page must need nothing from the network"
        compliance = page.locator("#compliance-chart rect.compliance-bar")
        dosage = page.locator("#dosage-chart rect.dosage-bar")
        assert await compliance.count() == len([b for b in report.compliance if b.compliance_pct])
        assert await dosage.count() == 7, "officers were in hot spots every day"
        assert await page.locator("#compliance-chart line.target").count() == 8
        boxes = [await dosage.nth(i).bounding_box() for i in range(7)]
        boxes += [await compliance.nth(i).bounding_box() for i in range(await compliance.count())]
        assert all(b is not None and b["width"] > 1 and b["height"] > 1 for b in boxes), boxes
        png = await page.screenshot(full_page=True)
        (ARTIFACTS / "weekly-report.png").write_bytes(png)
        assert blank_fraction(png) < 0.97
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        # The tallest dosage bar's middle is the bar colour; a compliance bar's is green or red.
        tallest = max(boxes[:7], key=lambda b: b["height"] if b else 0.0)
        assert region_colour(image, tallest) == rgb(DOSAGE_COLOUR)
        widest = max(boxes[7:], key=lambda b: b["width"] if b else 0.0)
        assert region_colour(image, widest) in (rgb(MET_COLOUR), rgb(MISSED_COLOUR))
        title = await page.title()
    assert title == f"Hot spot stocktake {WEEK}"


def test_compliance_svg_bar_widths_colours_and_target_marks() -> None:
    svg = compliance_svg(
        [
            ComplianceBar("A", "Alpha", 45.0, 90.0),  # 45% of a 460 px plot for 0-100%: 207 px, red
            ComplianceBar("B", None, 0.0, 90.0),  # nothing delivered: no bar, still a target mark
            ComplianceBar("C", "Charlie", None, None),  # no planned visits: a note, no mark
        ]
    )
    assert svg.count('class="bar compliance-bar"') == 1
    assert f'width="207.0" height="18" fill="{MISSED_COLOUR}"' in svg
    assert svg.count('<line class="target" x1="604.0"') == 2  # 190 px of labels + 90% of 460
    assert "no planned visits" in svg and ">B<title>" in svg  # a fence without a name shows its id
    wide = compliance_svg([ComplianceBar("D", "D", 130.0, 90.0)])  # the axis grows to 140%
    assert f'width="427.1" height="18" fill="{MET_COLOUR}"' in wide and ">140%</text>" in wide


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def region_colour(image: np.ndarray, box: dict[str, float] | None) -> tuple[int, int, int] | None:
    """The colour of a 5 x 5 pixel patch at the centre of box, if the whole patch is that colour."""
    assert box is not None
    cx, cy = int(box["x"] + box["width"] / 2), int(box["y"] + box["height"] / 2)
    patch = image[cy - 2 : cy + 3, cx - 2 : cx + 3].reshape(-1, 3)
    colours = {tuple(int(v) for v in p) for p in patch}
    return colours.pop() if len(colours) == 1 else None  # type: ignore[return-value]


# ---------------------------------------------------------------------- over HTTP


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    viewer: dict[str, str]


@pytest.fixture
async def api(db_url: str, simulated: SimulatedWeek) -> AsyncIterator[Api]:
    viewer = await create_key(db_url, Role.VIEWER, "sergeant")
    store = await Store.open(db_url)
    await fill(store, simulated)
    app = create_app(ServiceContext(Settings(), store, Metrics()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield Api(client, store, {"authorization": f"Bearer {viewer}"})
    await store.close()


#: Per format: media type, Content-Disposition and how the body starts.
SERVED = {
    "csv": ("text/csv; charset=utf-8", "attachment", b"summary\r\nmeasure,value\r\n"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "attachment", b"PK"),
    "html": ("text/html; charset=utf-8", "inline", b"<!DOCTYPE html>"),
}


async def test_weekly_report_route_serves_each_format_and_audits_devices(api: Api) -> None:
    for fmt, (media_type, disposition, magic) in SERVED.items():
        response = await api.client.get("/v1/reports/weekly", params={"week": WEEK, "format": fmt}, headers=api.viewer)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media_type
        assert response.headers["content-disposition"] == f'{disposition}; filename="hotspots-{WEEK}.{fmt}"'
        assert response.content.startswith(magic)
    entries = await api.store.audit_entries()
    assert [(e.action, e.role, e.detail["week"], e.detail["format"]) for e in entries] == [
        ("GET /v1/reports/weekly", "viewer", WEEK, fmt) for fmt in SERVED
    ]
    assert all(e.detail["devices"] == [f"R{d:05d}" for d in range(6)] for e in entries)


async def test_weekly_report_route_bad_query_is_422_naming_field(api: Api) -> None:
    for params, field, message in [
        ({"week": "2026-47"}, "week", "not an ISO week like 2026-W47"),
        ({"week": "2025-W53"}, "week", "does not exist"),  # 2025 has 52 ISO weeks
        ({"week": WEEK, "format": "pdf"}, "format", ""),
        ({}, "week", ""),
    ]:
        response = await api.client.get("/v1/reports/weekly", params=params, headers=api.viewer)
        assert response.status_code == 422, params
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", field] and message in error["msg"], params
    assert (await api.client.get("/v1/reports/weekly", params={"week": WEEK})).status_code == 401
    assert await api.store.audit_entries() == [], "nothing was shown, nothing to audit"


async def test_officer_time_and_signal_loss_routes_answer_and_audit(api: Api) -> None:
    week = {"from": "2026-11-16T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
    times = await api.client.get("/v1/officers/time", params={**week, "device_id": "R00001"}, headers=api.viewer)
    assert times.status_code == 200, times.text
    body = times.json()
    [officer] = body["officers"]
    assert (body["shift_break_s"], officer["device_id"], len(officer["shifts"])) == (7200.0, "R00001", 7)
    shift = officer["shifts"][0]
    assert shift["start"] >= MONDAY + 18 * HOUR - 900 and shift["end"] <= MONDAY + DAY
    assert officer["inside_s"] == pytest.approx(sum(s["inside_s"] for s in officer["shifts"]))

    loss = await api.client.get("/v1/signal-loss", params={**week, "min_losses": 1}, headers=api.viewer)
    assert loss.status_code == 200, loss.text
    devices = loss.json()["devices"]
    assert [d["device_id"] for d in devices] == [f"R{d:05d}" for d in range(6)]
    for d in devices:
        assert d["repeated"] == (d["losses"] >= 1)
        assert sum(w["losses"] for w in d["weeks"]) == d["losses"]
        assert [w["week"] for w in d["weeks"]] in ([], [WEEK])
    entries = await api.store.audit_entries()
    assert [(e.action, e.target) for e in entries] == [
        ("GET /v1/officers/time", "R00001"), ("GET /v1/signal-loss", None)
    ]  # fmt: skip
    bad = await api.client.get("/v1/signal-loss", params={**week, "min_losses": 0}, headers=api.viewer)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "min_losses"]
    backwards = await api.client.get("/v1/officers/time", params={"from": week["to"], "to": week["from"]},
                                     headers=api.viewer)  # fmt: skip
    assert backwards.status_code == 422 and backwards.json()["detail"][0]["loc"] == ["query", "to"]


# ---------------------------------------------------------------------- the command


def test_report_command_writes_each_format_from_the_store(
    tmp_path: Path, simulated: SimulatedWeek, capsys: pytest.CaptureFixture[str]
) -> None:
    async def filled() -> None:
        store = await Store.open(database_url(None, tmp_path / "data"))
        try:
            await fill(store, simulated)
        finally:
            await store.close()

    asyncio.run(filled())
    for fmt in ("csv", "xlsx", "html"):
        out = tmp_path / "out" / f"week.{fmt}"
        assert main(["report", "--week", WEEK, "--out", str(out), "--data-dir", str(tmp_path / "data")]) == 0
        assert f"week {WEEK} ({fmt}), 8 hot spots, 6 devices" in capsys.readouterr().out
    assert len(csv_tables((tmp_path / "out" / "week.csv").read_bytes())["hotspots"]) == 8
    assert load_workbook(tmp_path / "out" / "week.xlsx").sheetnames == TABLES
    forced = tmp_path / "out" / "report.txt"
    assert main(["report", "--week", WEEK, "--format", "csv", "--out", str(forced),
                 "--data-dir", str(tmp_path / "data")]) == 0  # fmt: skip
    assert forced.read_bytes().startswith(b"summary\r\n")
    assert main(["report", "--week", "2026-W99", "--out", str(forced), "--data-dir", str(tmp_path / "data")]) == 2
    assert "week '2026-W99' does not exist" in capsys.readouterr().err
