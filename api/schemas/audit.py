"""The audit log as admins read it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AuditEntryPublic(BaseModel):
    id: int
    ts: float = Field(description="epoch seconds")
    key_id: str
    role: str
    action: str
    target: str | None
    detail: dict[str, Any] | None


class AuditPagePublic(BaseModel):
    entries: list[AuditEntryPublic]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")
