"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RejectedPing(BaseModel):
    index: int = Field(description="position of the ping in the array, or line number - 1 in NDJSON")
    field: str | None = Field(description="the field that is wrong, when one is")
    reason: str


class IngestResult(BaseModel):
    accepted: int = Field(description="pings validated and written to Kafka")
    rejected: int
    errors: list[RejectedPing]


class FenceChange(BaseModel):
    version: int = Field(description="the fence-set version after the change; events carry it")
    fences: list[str] = Field(description="ids of the fences changed")
    warnings: list[str] = Field(description="e.g. fences larger than a micro-place")


class AuditEntry(BaseModel):
    id: int
    ts: float = Field(description="epoch seconds")
    key_id: str
    role: str
    action: str
    target: str | None
    detail: dict[str, Any] | None


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")
