"""Fences: what a change did (the fences themselves travel as GeoJSON)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FenceChangePublic(BaseModel):
    version: int = Field(description="the fence-set version after the change; events carry it")
    fences: list[str] = Field(description="ids of the fences changed")
    warnings: list[str] = Field(description="e.g. fences larger than a micro-place")
