"""Incidents and choosing hot spots: imports, outcomes per hot spot beside dosage, capacity."""

from __future__ import annotations

from pydantic import BaseModel, Field


class IncidentImportPublic(BaseModel):
    rows: int = Field(description="rows (CSV) or objects (JSON) in the body")
    imported: int = Field(description="incidents written, one per (source, id)")
    new: int
    replaced: int = Field(description="incidents already stored under the same (source, id), now replaced")
    repeated: int = Field(description="rows whose (source, id) came again later in the body (the last kept)")


class OutcomePeriodPublic(BaseModel):
    start: float
    end: float
    weeks: float
    incidents: int
    per_week: float
    categories: dict[str, int]
    partial: int = Field(description="month-only incidents whose month crosses an edge of the period: not counted")
    visits: int = Field(description="dosage: visits entered in the period")
    dwell_s: float = Field(description="dosage: officer time inside the hot spot in the period")


class FenceOutcomePublic(BaseModel):
    fence_id: str
    name: str | None
    period: OutcomePeriodPublic = Field(description="the whole range [from, to)")
    before: OutcomePeriodPublic | None = Field(
        default=None, description="[from, programme_start), with programme_start"
    )
    during: OutcomePeriodPublic | None = Field(default=None, description="[programme_start, to), with programme_start")
    change_per_week: float | None = Field(default=None, description="incidents per week during minus before")
    change_pct: float | None = Field(default=None, description="change_per_week in % of before; null if none before")


class OutcomesPublic(BaseModel):
    start: float
    end: float
    programme_start: float | None
    fences: list[FenceOutcomePublic]


class CapacityPublic(BaseModel):
    officers: int
    shift_h: float
    visits_per_shift: int
    visit_min: float
    travel_min: float
    planned: int | None
    minutes_per_visit: float = Field(description="visit plus the travel to reach it")
    visits_per_officer: int = Field(description="whole visits one officer fits in a shift")
    total_visits: int
    hotspots_resourced: int = Field(description="hot spots that can get every planned visit")
    dosage_min_per_hotspot: float
    shortfall: int | None = Field(description="planned hot spots left without their dosage")
    officers_needed: int | None = Field(description="officers for every planned hot spot")
