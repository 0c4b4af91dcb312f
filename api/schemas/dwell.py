"""Dwell: visits and officer time in hot spots over a range."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DwellRowPublic(BaseModel):
    fence_id: str | None = None
    device_id: str | None = None
    bucket: float | None = Field(None, description="start of the UTC day or hour, epoch seconds")
    visits: int
    dwell_s: float
    active_s: float | None = None
    inside_s: float | None = None
    outside_s: float | None = None
    lost_s: float | None = None


class DwellPublic(BaseModel):
    start: float
    end: float
    group_by: str
    rows: list[DwellRowPublic]
