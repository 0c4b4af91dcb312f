"""Plan compliance (planned vs delivered dosage) and the live due list."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ComplianceRowPublic(BaseModel):
    plan_id: str | None
    fence_id: str | None
    team: str | None
    officer_id: str | None
    window_start: float | None = Field(description="epoch seconds (UTC) of the window occurrence")
    window_end: float | None
    planned_visits: int
    delivered_visits: int = Field(description="qualifying visits (after merging short exits)")
    planned_minutes: float = Field(description="planned visits x min_visit_min")
    delivered_minutes: float = Field(description="minutes of the qualifying visits inside the window")
    target_pct: float
    compliance_pct: float | None = Field(description="delivered / planned visits x 100")
    short_visits: int
    guideline_visits: int = Field(description="from min_visit_min to target_visit_min")
    long_visits: int
    gap_breaches: int = Field(description="gaps without a qualifying visit longer than max_gap_min")


class CompliancePublic(BaseModel):
    start: float
    end: float
    group_by: str
    rows: list[ComplianceRowPublic]


class DueRowPublic(BaseModel):
    plan_id: str
    fence_id: str
    fence_name: str | None
    team: str | None
    window_start: float
    window_end: float
    planned_visits: int
    delivered_visits: int
    planned_minutes: float
    delivered_minutes: float
    compliance_pct: float | None
    shortfall_minutes: float = Field(description="minutes behind the pro-rata plan now")


class DuePublic(BaseModel):
    as_of: float
    due: list[DueRowPublic]
