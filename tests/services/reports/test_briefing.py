"""The sergeant's briefing pack on a hand-worked data set, over HTTP, from the command line, and printed.

Times are seconds after T0 = Saturday 21 November 2026 22:00 (London is on GMT: local = UTC). The
briefing is Team A's for Sunday 22 November, so its last shift is Saturday's windows and its week
Sunday 15 to Saturday 21. Fences A and B (tests/support/helpers.py) are Team A's, C is Team B's.

Plans (>= 10 min qualifies, 15 min guidance, target 90 %), windows 22:00-24:00:
  p-A: fence A, Thursday and Saturday, 3 visits (30 planned minutes) each;
  p-B: fence B, Saturday, 2 visits (20 minutes);
  p-C: fence C, Saturday, Team B's (never in Team A's pack).

Radios, a ping a minute; r1 carried by PC1 (Alpha 1), r2 by PC2 (Bravo 2):
  r1 Thursday 22:00-22:30, in A 22:00-22:20 (20 min: qualifies);
  r1 Saturday 0-7140: in A 300-1200 (15 min, qualifies), in A 3600-3960 (6 min, short), silent
     4800-5400 (a 10-minute signal loss), out the rest;
  r2 Saturday 0-7140: in B 1800-3300 (25 min, qualifies), in A 5400-6120 (12 min, qualifies).

Worked out: Saturday A 2 of 3 visits (15 + 12 = 27 min, 66.7 %, one short); B 1 of 2 (25 min,
50 %); Team A 3 of 5 (60 %). PC1: 1 visit, 15 min, 1 short; in hot spots 15 + 6 = 21 min, lost
10, outside 119 - 21 - 10 = 88 (shift 0-7140 s = 119 min). PC2: 2 visits, 25 + 12 = 37 min; in
hot spots 37, outside 82. Week: A 3 of 6 (20 + 27 = 47 of 60 min), B 1 of 2: A most behind (3
missed, 13 min short), then B (1 missed). Trend: Thursday 20 min in hot spots (30 planned),
Saturday 21 + 12 + 25 = 58 (50 planned), other days nothing.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from support.api import Api, serve_api
from support.browser import blank_fraction
from support.helpers import T0, P, fence_a, fence_b, square_fence
from support.observations import Recorded, engine_run, record_all, track

from geofence.assignments import Assignment
from ingest.plan_file import parse_plans
from services.access.roles import Role
from services.cli import main
from services.errors import Invalid, Unavailable
from services.measures.local_weeks import parse_day
from services.reports import pdf
from services.reports.briefing import Briefing, briefing, to_html
from services.reports.html import DOSAGE_COLOUR
from services.reports.weekly import Table
from services.settings import Settings
from services.store import Store, database_url
from services.store.assignments import save_assignment
from services.store.feedback import add_feedback, update_feedback
from services.store.plans import upsert_plans

DATE = "2026-11-22"
THURSDAY = -2 * 86_400
PC1 = {"officer_id": "PC1", "callsign": "Alpha 1"}
PC2 = {"officer_id": "PC2", "callsign": "Bravo 2"}
#: A4 in PostScript points (210 x 297 mm), as Chromium rounds it.
A4_PT = (595.0, 842.0)


def plans() -> dict[str, object]:
    def plan(plan_id: str, fence: str, team: str, days: list[str], visits: int) -> dict[str, object]:
        window = {"days": days, "start": "22:00", "end": "00:00", "visits": visits}
        return {"plan_id": plan_id, "fence_id": fence, "team": team, "target_pct": 90, "min_visit_min": 10,
                "target_visit_min": 15, "windows": [window]}  # fmt: skip

    return {"plans": [plan("p-A", "A", "Team A", ["thu", "sat"], 3), plan("p-B", "B", "Team A", ["sat"], 2),
                      plan("p-C", "C", "Team B", ["sat"], 1)]}  # fmt: skip


def saturday(device: str, extras: dict[str, str], visits: list[tuple[str, int, int]], silent: int = 0) -> list[P]:
    """A ping a minute 0-7140 s, in the place of each (place, from, to) visit, else out; none in
    the `silent` seconds after 4800."""
    return [
        P(t, next((where for where, a, b in visits if a <= t < b), "out"), device, extras=extras)
        for t in range(0, 7141, 60)
        if not 4800 < t < 4800 + silent
    ]


def tracks() -> list[P]:
    thursday = track(THURSDAY, THURSDAY + 1800, (THURSDAY, THURSDAY + 1200), "a", "r1", extras=PC1)
    r1 = saturday("r1", PC1, [("a", 300, 1200), ("a", 3600, 3960)], silent=600)
    r2 = saturday("r2", PC2, [("b", 1800, 3300), ("a", 5400, 6120)])
    return sorted(thursday + r1 + r2, key=lambda p: (p.t, p.device))


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    return engine_run(tracks(), batch_size=50)


async def fill(store: Store, rec: Recorded) -> None:
    await store.upsert_fences([fence_a(), fence_b(), square_fence("C", 0.01, 0.01)])
    await upsert_plans(store, parse_plans(plans()))
    await record_all(store, rec)
    report = {"key_id": "k1", "officer_id": "PC1", "kind": "gps_wrong", "text": "GPS puts me outside A"}
    await add_feedback(store, **report, fence_id="A")  # about Team A's hot spot: shown
    await add_feedback(store, **report, fence_id="C")  # Team B's: not shown
    closed = await add_feedback(store, **report, fence_id="B")
    await update_feedback(store, closed.feedback_id, closed_at=T0)  # closed: not shown
    await add_feedback(store, key_id="k2", officer_id="PC2", team="Team A", kind="other",
                       text="<b>radio</b> & battery")  # fmt: skip  # the team's: shown, escaped


@pytest.fixture
async def filled(store: Store, recorded: Recorded) -> Store:
    await fill(store, recorded)
    return store


def rows(t: Table) -> list[dict[str, object]]:
    return [dict(zip(t.columns, r, strict=True)) for r in t.rows]


async def made(store: Store) -> Briefing:
    return await briefing(store, Settings(), "Team A", parse_day(DATE, "Europe/London"))


# ---------------------------------------------------------------------- the figures


async def test_briefing_figures_equal_the_hand_worked_shift(filled: Store) -> None:
    b = await made(filled)
    assert (b.last.day.isoformat(), b.start, b.end) == ("2026-11-21", T0, T0 + 2 * 3600)
    assert [(r["fence_id"], r["planned_visits"], r["delivered_visits"], r["compliance_pct"], r["planned_min"],
             r["delivered_min"], r["short_visits"]) for r in rows(b.table("hotspots"))] == [
        ("A", 3, 2, 66.7, 30.0, 27.0, 1),
        ("B", 2, 1, 50.0, 20.0, 25.0, 0),
    ]  # fmt: skip
    assert [(r["officer_id"], r["callsign"], r["radios"], r["visits"], r["visit_min"], r["short_visits"],
             r["inside_min"], r["outside_min"], r["lost_min"]) for r in rows(b.table("officers"))] == [
        ("PC1", "Alpha 1", "r1", 1, 15.0, 1, 21.0, 88.0, 10.0),
        ("PC2", "Bravo 2", "r2", 2, 37.0, 0, 37.0, 82.0, 0.0),
    ]  # fmt: skip
    assert [(r["fence_id"], r["planned_visits"], r["delivered_visits"], r["missed_visits"], r["shortfall_min"])
            for r in rows(b.table("behind"))] == [("A", 6, 3, 3, 13.0), ("B", 2, 1, 1, 0.0)]  # fmt: skip
    assert [(r["device_id"], r["officer_id"], r["losses"], r["lost_min"], r["repeated"], r["lost_now"])
            for r in rows(b.table("signal_loss"))] == [("r1", "PC1", 1, 10.0, "no", "no")]  # fmt: skip
    assert [(r["fence_id"], r["officer_id"], r["text"]) for r in rows(b.table("feedback"))] == [
        (None, "PC2", "<b>radio</b> & battery"), ("A", "PC1", "GPS puts me outside A"),
    ]  # fmt: skip
    trend = {d.day.isoformat(): (d.dwell_min, d.planned_min) for d in b.trend}
    assert list(trend) == [f"2026-11-{d}" for d in range(15, 22)]
    assert trend == {**dict.fromkeys(trend, (0.0, 0.0)), "2026-11-19": (20.0, 30.0), "2026-11-21": (58.0, 50.0)}
    assert dict((label, value) for value, label in b.cards) == {
        "last shift: plan compliance %": 60.0, "qualifying / planned visits": "3 / 5", "qualifying minutes": 52.0,
        "last 7 days: plan compliance %": 50.0, "officers": 2, "minutes without signal": 10.0, "open feedback": 2,
    }  # fmt: skip
    assert b.devices == ("r1", "r2")


async def test_briefing_page_is_self_contained_a4_with_text_escaped(filled: Store) -> None:
    page = to_html(await made(filled)).decode("utf-8")
    assert "@page{size:A4" in page and 'http-equiv="Content-Security-Policy"' in page
    assert "&lt;b&gt;radio&lt;/b&gt; &amp; battery" in page and "<b>radio" not in page
    assert 'id="dosage-chart"' in page and "Briefing pack: Team A, Sunday 22 November 2026" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "<script" not in page


async def test_briefing_team_of_assignments_only_lists_its_officers_time(filled: Store) -> None:
    # PC1's radio is assigned to "Response 3", which has no plan: PC1 is its officer (assignment
    # names the same officer as the pings), with Saturday's time and loss, and no visits to plans.
    await save_assignment(filled, Assignment("a1", "r1", "PC1", "Alpha 1", "Response 3", T0 - 3600, None), create=True)
    b = await briefing(filled, Settings(), "Response 3", parse_day(DATE, "Europe/London"))
    assert (b.start, b.end) == (T0 - 22 * 3600, T0 + 2 * 3600), "no windows: the whole day before"
    assert (b.table("hotspots").rows, b.table("behind").rows, b.table("feedback").rows) == ((), (), ())
    assert [(r["officer_id"], r["visits"], r["inside_min"], r["outside_min"], r["lost_min"])
            for r in rows(b.table("officers"))] == [("PC1", 0, 21.0, 88.0, 10.0)]  # fmt: skip
    assert [r["device_id"] for r in rows(b.table("signal_loss"))] == ["r1"]
    assert b.devices == ("r1",)


async def test_briefing_unknown_team_is_refused_naming_team(filled: Store) -> None:
    with pytest.raises(Invalid) as refused:
        await briefing(filled, Settings(), "Team Z", parse_day(DATE, "Europe/London"))
    assert refused.value.loc == ("team",) and "Team Z" in refused.value.message


# ---------------------------------------------------------------------- over HTTP


@pytest.fixture
async def api(db_url: str, recorded: Recorded) -> AsyncIterator[Api]:
    async with serve_api(db_url) as served:
        await fill(served.store, recorded)
        yield served


async def test_briefing_route_answers_json_and_html_and_audits_devices(api: Api) -> None:
    data = await api.client.get("/v1/briefings", params={"team": "Team A", "date": DATE, "format": "json"},
                                headers=api.as_(Role.VIEWER))  # fmt: skip
    assert data.status_code == 200, data.text
    body = data.json()
    assert (body["team"], body["date"], body["last_shift_date"]) == ("Team A", DATE, "2026-11-21")
    tables = {t["name"]: t for t in body["tables"]}
    assert [r[:4] for r in tables["hotspots"]["rows"]] == [["A", None, 3, 2], ["B", None, 2, 1]]
    assert [d["dwell_min"] for d in body["trend"]] == [0.0, 0.0, 0.0, 0.0, 20.0, 0.0, 58.0]

    page = await api.client.get("/v1/briefings", params={"team": "Team A", "date": DATE}, headers=api.as_(Role.VIEWER))
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script
    assert page.headers["content-disposition"] == (
        "inline; filename=\"briefing-2026-11-22.html\"; filename*=UTF-8''briefing-Team%20A-2026-11-22.html"
    )
    entries = await api.store.audit_entries()
    assert [(e.action, e.role, e.detail["team"], e.detail["date"], e.detail["format"], e.detail["devices"])
            for e in entries] == [
        ("GET /v1/briefings", "viewer", "Team A", DATE, fmt, ["r1", "r2"]) for fmt in ("json", "html")
    ]  # fmt: skip


async def test_briefing_route_bad_team_or_date_is_422_naming_field(api: Api) -> None:
    for params, field, message in [
        ({"team": "Team Z", "date": DATE}, "team", "'Team Z' is named by no plan or assignment"),
        ({"team": "", "date": DATE}, "team", "team: is required"),
        ({"team": "x" * 129, "date": DATE}, "team", "at most 128 characters"),
        ({"team": "Team A", "date": "22/11/2026"}, "date", "not a date like 2026-11-21"),
        ({"team": "Team A", "date": "2026-02-30"}, "date", "does not exist"),
        ({"team": "Team A", "date": "0001-01-01"}, "date", "years 1970-9998"),
        ({"date": DATE}, "team", ""),
        ({"team": "Team A", "format": "xlsx"}, "format", ""),
    ]:
        response = await api.client.get("/v1/briefings", params=params, headers=api.as_(Role.VIEWER))
        assert response.status_code == 422, params
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", field] and message in error["msg"], (params, error)
    assert (await api.client.get("/v1/briefings", params={"team": "Team A"})).status_code == 401
    assert await api.store.audit_entries() == [], "nothing was shown, nothing to audit"


# ---------------------------------------------------------------------- the command


def test_briefing_command_writes_html_and_refuses_bad_date(
    tmp_path: Path, recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    async def filled() -> None:
        store = await Store.open(database_url(None, tmp_path / "data"))
        try:
            await fill(store, recorded)
        finally:
            await store.close()

    asyncio.run(filled())
    out = tmp_path / "out" / "brief.html"
    args = ["briefing", "--team", "Team A", "--out", str(out), "--data-dir", str(tmp_path / "data")]
    assert main([*args, "--date", DATE]) == 0
    assert f"briefing of Team A for {DATE} (html), 2 hot spots, 2 officers" in capsys.readouterr().out
    assert out.read_bytes().startswith(b"<!DOCTYPE html>")
    assert main([*args, "--date", "2026-11-31"]) == 2
    assert "date '2026-11-31' does not exist" in capsys.readouterr().err
    assert main([*args[:2], "Team Z", *args[3:], "--date", DATE]) == 2
    assert "team 'Team Z' is named by no plan or assignment" in capsys.readouterr().err


# ---------------------------------------------------------------------- printed


def _mask(image: np.ndarray, colour: str, tolerance: int = 24) -> np.ndarray:
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return np.abs(image.astype(int) - target).max(axis=2) <= tolerance


def _runs(columns: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], columns.astype(int), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@pytest.mark.e2e
async def test_briefing_pdf_pages_are_a4_and_show_the_trend_chart(api: Api, tmp_path: Path) -> None:
    """Served as PDF (printed by Chromium), rendered back to images by PDFium: A4 pages, none blank,
    and on page 1 below the trend's heading the chart's bars: two (Thursday, Saturday), 20 : 58 high."""
    params = {"team": "Team A", "date": DATE, "format": "pdf"}
    served = await api.client.get("/v1/briefings", params=params, headers=api.as_(Role.VIEWER))
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "application/pdf"
    assert served.headers["content-disposition"].startswith('attachment; filename="briefing-2026-11-22.pdf"')
    pdf = served.content
    (tmp_path / "briefing.pdf").write_bytes(pdf)
    doc = pdfium.PdfDocument(pdf)
    dpi = 100
    images = []
    for i, page in enumerate(doc):
        width, height = page.get_size()
        assert (round(width), round(height)) == A4_PT, f"page {i + 1} is {width} x {height} pt"
        image = page.render(scale=dpi / 72).to_pil().convert("RGB")
        image.save(tmp_path / f"briefing-page-{i + 1}.png")
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        assert blank_fraction(buf.getvalue()) < 0.97, f"page {i + 1} is blank"
        images.append(np.asarray(image))
    first = doc[0]
    text = first.get_textpage()
    found = text.search("The week's trend").get_next()
    assert found is not None, "the trend's heading is on page 1"
    _, heading_bottom, _, _ = text.get_charbox(found[0])  # PDF points from the page's bottom
    top = round((first.get_size()[1] - heading_bottom) * dpi / 72)  # pixels from the image's top
    # The chart (256 px high, shown at 70 %) and its legend, CSS pixels (0.75 pt each) as image rows.
    chart = images[0][top : top + round((256 + 24) * 0.7 * 0.75 * dpi / 72)]
    Image.fromarray(chart).save(tmp_path / "briefing-chart.png")
    blue = _mask(chart, DOSAGE_COLOUR)
    bars = [(a, b) for a, b in _runs(blue.any(axis=0)) if b - a > 12]  # the legend's swatch is narrower
    assert len(bars) == 2, f"bars at columns {bars}: see {tmp_path}"
    heights = []
    for a, b in bars:
        filled_rows = np.flatnonzero(blue[:, a : b + 1].any(axis=1))
        heights.append(int(filled_rows[-1] - filled_rows[0] + 1))
    assert heights[1] / heights[0] == pytest.approx(58 / 20, rel=0.1)


async def test_briefing_route_pdf_without_chromium_is_503_saying_so(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    params = {"team": "Team A", "date": DATE, "format": "pdf"}
    response = await api.client.get("/v1/briefings", params=params, headers=api.as_(Role.VIEWER))
    assert response.status_code == 503
    assert response.json()["detail"].startswith("printing to PDF needs Chromium: install one of chromium")


async def test_pdf_print_beyond_the_bound_is_refused_as_busy_not_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "find_chromium", lambda: "/bin/false")
    async with pdf._printing, pdf._printing:  # MAX_PRINTS (2) prints under way
        with pytest.raises(Unavailable, match="being printed already"):
            await pdf.html_to_pdf(b"<p>briefing</p>")
