"""Plan documents into plans: fields checked and named, ids by the input rules (ingest.plan_file)."""

from __future__ import annotations

from typing import Any

import pytest
from support.plans import plan_doc

from geofence.plans import PlanError
from ingest.plan_file import parse_plan, parse_plans


def window(**over: Any) -> dict[str, Any]:
    return {"days": ["fri", "sat"], "start": "20:00", "end": "04:00", "visits": 3, **over}


def test_plan_round_trips_through_its_document_form() -> None:
    plan = parse_plan(plan_doc(windows=[window(days=["Saturday", "fri"])]))
    assert plan.windows[0].days == (4, 5)
    assert parse_plan(plan.to_dict()) == plan
    assert plan.to_dict()["windows"][0]["days"] == ["fri", "sat"]


def test_window_with_end_equal_to_start_is_refused_naming_plan_and_window() -> None:
    doc = {"plans": [plan_doc(windows=[window(), window(start="22:00", end="22:00")])]}
    with pytest.raises(PlanError) as info:
        parse_plans(doc)
    assert info.value.loc == ("plans", 0, "windows", 1, "end")
    assert str(info.value) == (
        "plans[0].windows[1].end: plan 'hs-01-nte' window 1: end 22:00 equals start; "
        "a window needs a length (end before start crosses midnight)"
    )


@pytest.mark.parametrize(
    ("over", "loc", "words"),
    [
        ({"windows": [window(days=["fri", "someday"])]}, ("windows", 0, "days"), "'someday' is not a day"),
        ({"windows": [window(start="24:00")]}, ("windows", 0, "start"), "'HH:MM'"),
        ({"windows": [window(visits=0)]}, ("windows", 0, "visits"), "whole number of visits, 1 to 1000, got 0"),
        ({"windows": []}, ("windows",), "non-empty list of windows"),
        ({"min_visit_min": 0}, ("min_visit_min",), "must be a number > 0"),
        ({"target_visit_min": 5}, ("target_visit_min",), "must be a number >= 10"),
        ({"target_pct": 120}, ("target_pct",), "<= 100"),
        ({"timezone": "Mars/Olympus"}, ("timezone",), "unknown time zone 'Mars/Olympus'"),
        ({"min_visits": 3}, ("min_visits",), "unknown field"),
        ({"fence_id": ""}, ("fence_id",), "is required"),
        ({"fence_id": "f" * 129}, ("fence_id",), "must be at most 128 characters, got 129"),
        ({"team": "Team\x00B"}, ("team",), "holds control character U+0000"),  # PostgreSQL text cannot hold NUL
    ],
)
def test_bad_plan_field_is_named(over: dict[str, Any], loc: tuple[Any, ...], words: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plans({"plans": [plan_doc(**over)]})
    assert info.value.loc == ("plans", 0, *loc)
    assert "plan 'hs-01-nte'" in str(info.value)
    assert words in str(info.value)


def test_duplicate_plan_id_in_a_document_is_refused() -> None:
    with pytest.raises(PlanError, match=r"plans\[1\]\.plan_id: plan 'hs-01-nte' appears twice"):
        parse_plans({"plans": [plan_doc(), plan_doc()]})
