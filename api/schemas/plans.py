"""Patrol plans as the API returns them (they are sent as the plan document itself)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PlanWindowPublic(BaseModel):
    days: list[str] = Field(description="days the window STARTS on, local time: mon..sun")
    start: str = Field(description="local HH:MM")
    end: str = Field(description="local HH:MM; before start: the window crosses midnight")
    visits: int = Field(description="planned qualifying visits in each occurrence")


class PlanPublic(BaseModel):
    plan_id: str
    fence_id: str
    team: str | None
    target_pct: float = Field(description="compliance target, % of planned visits")
    min_visit_min: float = Field(description="shorter visits do not qualify")
    target_visit_min: float = Field(description="longer visits are 'long'")
    max_gap_min: float | None = Field(description="longest allowed gap between qualifying visits in a window")
    windows: list[PlanWindowPublic]
    timezone: str | None = Field(None, description="IANA zone of the windows; null: the service's timezone setting")


class PlansPublic(BaseModel):
    plans: list[PlanPublic]


class PlanChangePublic(BaseModel):
    plans: list[str] = Field(description="ids of the plans changed")
