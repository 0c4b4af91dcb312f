"""The officer's page (/me) in headless Chromium at phone size (390x844), with the page's clock
under the test's control (Playwright's fake clock): an officer is 9 minutes into a visit of hot
spot A; the timer marks the plan's 10-minute minimum once the clock moves a minute on, and
suggests moving on to the next due hot spot past 15. The due list is /v1/compliance/due of the
officer's team, in its order. Screenshots go to the test's tmp dir.

The service runs in-process (uvicorn on a loopback port) over the page built into api/static/
(`make web`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Page
from support.api import Api, serve_api, serve_on_port
from support.browser import blank_fraction, chromium
from support.helpers import T0, P, fence_a, fence_b
from support.observations import engine_run, record_all
from support.plans import plan_doc

from api.routes.page import STATIC
from ingest.plan_file import parse_plan
from services.access.keys import create_key
from services.access.roles import Role
from services.settings import Settings
from services.store import database_url
from services.store.plans import upsert_plans

PHONE = {"width": 390, "height": 844}
#: Longest wait for anything the page shows (a deadline, not a latency bound).
SHOWS_WITHIN_MS = 15_000
READY_JS = "() => window.mePage && window.mePage.ready()"


def window_around_now(tz: str) -> dict[str, Any]:
    """A daily window from an hour ago to two hours ahead, local time (it may cross midnight)."""
    local = datetime.now(ZoneInfo(tz))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return {"days": days, "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Api, str, str]]:
    """The app with hot spots A and B, two Team A plans open now, and PC9 in A for 9 minutes."""
    if not (STATIC / "me.html").exists():
        pytest.fail("the page is not built: run `make web`")
    url = database_url(None, tmp_path / "db")
    settings = Settings()
    async with serve_api(url, settings) as api:
        await api.store.upsert_fences([fence_a(), fence_b()])
        window = window_around_now(settings.timezone)
        plans = [
            plan_doc("p-a", "A", "Team A", max_gap_min=None, windows=[{**window, "visits": 3}]),
            plan_doc("p-b", "B", "Team A", max_gap_min=None, windows=[{**window, "visits": 1}]),
        ]
        await upsert_plans(api.store, [parse_plan(p) for p in plans])
        now = time.time() - T0
        visit = [P(now - 540 + 60 * i, "a", "R9", acc=8.0, extras={"officer_id": "PC9"}) for i in range(10)]
        await record_all(api.store, engine_run(visit))
        key = await create_key(url, Role.OFFICER, "PC9's phone", "PC9")
        async with serve_on_port(api.ctx) as base:
            yield api, base, key


async def texts(page: Page, selector: str, attribute: str) -> list[str]:
    return [str(await el.get_attribute(attribute)) for el in await page.query_selector_all(selector)]


async def shot(page: Page, directory: Path, name: str) -> None:
    png = await page.screenshot(full_page=True)
    (directory / f"me-{name}.png").write_bytes(png)
    assert blank_fraction(png) < 0.9


async def test_me_page_timer_marks_ten_minutes_and_due_list_equals_compliance_due(
    served: tuple[Api, str, str], tmp_path: Path
) -> None:
    api, base, key = served
    async with chromium() as browser:
        page = await browser.new_page(viewport=PHONE)  # type: ignore[arg-type]
        await page.clock.install(time=time.time())
        await page.goto(f"{base}/me")
        await page.fill("#signin-key", key)
        await page.click("#signin button[type=submit]")
        await page.wait_for_function(READY_JS, timeout=SHOWS_WITHIN_MS)
        async with httpx.AsyncClient(base_url=base) as client:
            due = (await client.get("/v1/compliance/due", headers=api.as_(Role.VIEWER))).json()["due"]
        team = [r["fence_id"] for r in due if r["team"] == "Team A"]
        assert team == ["A", "B"]  # A: 10 min behind pro rata, B: 3.3 (PC9's 9 minutes do not count yet)
        assert await texts(page, "#due li[data-fence]", "data-fence") == team
        await page.wait_for_function("() => document.getElementById('timer-clock').textContent.startsWith('9:')")
        assert await page.get_attribute("#timer", "data-stage") == ""
        await shot(page, tmp_path, "9-min")

        await page.clock.fast_forward("01:05")
        await page.wait_for_function("() => document.getElementById('timer').dataset.stage === 'min'")
        assert (await page.text_content("#timer-clock") or "").startswith("10:")
        assert "10 min reached" in (await page.text_content("#timer-note") or "")
        await shot(page, tmp_path, "10-min")

        await page.clock.fast_forward("05:00")
        await page.wait_for_function("() => document.getElementById('timer').dataset.stage === 'move'")
        assert "time to move on to B" in (await page.text_content("#timer-note") or "")
        assert await page.is_visible("#age")
        await shot(page, tmp_path, "15-min")
    assert sorted(p.name for p in tmp_path.glob("me-*.png")) == ["me-10-min.png", "me-15-min.png", "me-9-min.png"]
