"""Patrol plans: parsing with errors naming plan, window and field; window occurrences in local
time across midnight and both DST changes; the plans table on SQLite and PostgreSQL; the CLI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.helpers import square_fence
from support.plans import plan_doc

from geofence.plans import PlanError, occurrences
from ingest.geojson_fences import fences_from_geojson
from ingest.plan_file import parse_plan, parse_plans
from services.cli import main
from services.store import Store, database_url
from services.store.plans import delete_plan, get_plan, list_plans, upsert_plans

LONDON = ZoneInfo("Europe/London")
HOUR = 3600.0


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def window(**over: Any) -> dict[str, Any]:
    return {"days": ["fri", "sat"], "start": "20:00", "end": "04:00", "visits": 3, **over}


def spans(plan_obj: dict[str, Any], lo: float, hi: float) -> list[tuple[float, float]]:
    return [(o.start, o.end) for o in occurrences(parse_plan(plan_obj), LONDON, lo, hi)]


def test_window_crossing_midnight_in_winter_runs_8_hours_into_the_next_day() -> None:
    # Week of Mon 16 Nov 2026 (GMT = UTC): Fri 20 Nov 20:00 -> Sat 04:00, Sat 21 20:00 -> Sun 04:00.
    got = spans(plan_doc(), utc(2026, 11, 16), utc(2026, 11, 23))
    assert got == [(utc(2026, 11, 20, 20), utc(2026, 11, 21, 4)), (utc(2026, 11, 21, 20), utc(2026, 11, 22, 4))]
    assert [(e - s) / HOUR for s, e in got] == [8.0, 8.0]


def test_window_on_spring_dst_night_lasts_7_hours() -> None:
    # Sat 28 Mar 2026 20:00 GMT = 20:00Z; clocks go forward at 01:00Z Sun 29 Mar; 04:00 BST = 03:00Z.
    got = spans(plan_doc(), utc(2026, 3, 28), utc(2026, 3, 29))
    assert got == [(utc(2026, 3, 28, 20), utc(2026, 3, 29, 3))]
    assert (got[0][1] - got[0][0]) / HOUR == 7.0


def test_window_on_autumn_dst_night_lasts_9_hours() -> None:
    # Sat 24 Oct 2026 20:00 BST = 19:00Z; clocks go back at 01:00Z Sun 25 Oct; 04:00 GMT = 04:00Z.
    got = spans(plan_doc(), utc(2026, 10, 24), utc(2026, 10, 25))
    assert got == [(utc(2026, 10, 24, 19), utc(2026, 10, 25, 4))]
    assert (got[0][1] - got[0][0]) / HOUR == 9.0


def test_local_times_the_clocks_skip_or_repeat() -> None:
    sunday = [window(days=["sun"], start="01:30", end="03:00")]
    # 29 Mar 2026: 01:30 does not exist; it means 02:30 BST = 01:30Z. 03:00 BST = 02:00Z.
    assert spans(plan_doc(windows=sunday), utc(2026, 3, 29), utc(2026, 3, 30)) == [
        (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2))
    ]
    # 01:15-02:00 lies wholly in the skipped hour (02:00 BST = 01:00Z is before 01:15Z): no window that night.
    skipped = [window(days=["sun"], start="01:15", end="02:00")]
    assert spans(plan_doc(windows=skipped), utc(2026, 3, 29), utc(2026, 3, 30)) == []
    # 25 Oct 2026: 01:30 happens twice; the first (BST) is 00:30Z. 03:00 GMT = 03:00Z: 2.5 h.
    assert spans(plan_doc(windows=sunday), utc(2026, 10, 25), utc(2026, 10, 26)) == [
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3))
    ]


def test_summer_window_is_an_hour_earlier_in_utc() -> None:
    # Fri 3 Jul 2026, BST: 20:00 local = 19:00Z, 04:00 local = 03:00Z.
    assert spans(plan_doc(), utc(2026, 7, 3), utc(2026, 7, 4)) == [(utc(2026, 7, 3, 19), utc(2026, 7, 4, 3))]


def test_occurrence_belongs_to_the_range_it_starts_in() -> None:
    # Fri 20 Nov 20:00Z starts exactly at lo (in); Sat 21 Nov 20:00Z starts exactly at hi (out).
    assert spans(plan_doc(), utc(2026, 11, 20, 20), utc(2026, 11, 21, 20)) == [
        (utc(2026, 11, 20, 20), utc(2026, 11, 21, 4))
    ]


def test_document_timezone_applies_to_its_plans() -> None:
    (plan,) = parse_plans({"timezone": "America/New_York", "plans": [plan_doc()]})
    # Fri 20 Nov 2026 20:00 EST (UTC-5) = Sat 01:00Z; 04:00 EST = 09:00Z.
    got = [
        (o.start, o.end)
        for o in occurrences(plan, ZoneInfo(plan.timezone or ""), utc(2026, 11, 20), utc(2026, 11, 21, 12))
    ]
    assert got == [(utc(2026, 11, 21, 1), utc(2026, 11, 21, 9))]


async def test_plans_store_upsert_get_list_delete(store: Store) -> None:
    await store.upsert_fences([square_fence("A"), square_fence("B", 0.01)])
    first, second = parse_plan(plan_doc()), parse_plan(plan_doc(plan_id="b-day", fence_id="B", team="Team B"))
    await upsert_plans(store, [first, second])
    assert await list_plans(store) == [second, first]  # by plan id
    assert await list_plans(store, team="Team B") == [second]
    assert await list_plans(store, fence_id="A") == [first]
    changed = parse_plan(plan_doc(target_pct=80))
    await upsert_plans(store, [changed])
    assert await get_plan(store, "hs-01-nte") == changed
    assert await delete_plan(store, "hs-01-nte") is True
    assert await delete_plan(store, "hs-01-nte") is False
    assert await get_plan(store, "hs-01-nte") is None


async def test_plan_for_unknown_fence_is_refused_naming_plan_and_fence_and_nothing_is_stored(store: Store) -> None:
    await store.upsert_fences([square_fence("A")])
    plans = [parse_plan(plan_doc(plan_id="ok")), parse_plan(plan_doc(plan_id="bad", fence_id="HS99"))]
    with pytest.raises(PlanError) as info:
        await upsert_plans(store, plans)
    assert str(info.value) == "plans[1].fence_id: plan 'bad': unknown fence 'HS99'"
    assert await list_plans(store) == []


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_loads_sample_plans_and_refuses_bad_files_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path)]
    fences = json.loads(Path("samples/fences.geojson").read_text())

    async def put_fences() -> None:
        store = await Store.open(database_url(None, tmp_path))
        await store.upsert_fences(fences_from_geojson(fences))
        await store.close()

    asyncio.run(put_fences())
    assert main(["plans", "load", "samples/plans.yaml", *data]) == 0
    assert capsys.readouterr().out.startswith("loaded 6 plans: hs-01-nte, hs-02-commute")

    bad_yaml = _write(tmp_path / "bad.yaml", "plans:\n  - plan_id: [unclosed\n")
    unknown = _write(tmp_path / "unknown.json", json.dumps({"plans": [plan_doc(fence_id="HS99")]}))
    same = _write(tmp_path / "same.yaml", "plans:\n  - " + json.dumps(plan_doc(windows=[window(end="20:00")])))
    for path, reason in [
        (bad_yaml, f"{bad_yaml}: not valid YAML (line 3, column 1)"),
        (unknown, f"{unknown}: plans[0].fence_id: plan 'hs-01-nte': unknown fence 'HS99'"),
        (same, f"{same}: plans[0].windows[0].end: plan 'hs-01-nte' window 0: end 20:00 equals start"),
        (tmp_path / "missing.yaml", "cannot read plans file"),
    ]:
        assert main(["plans", "load", str(path), *data]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and reason in err, err
