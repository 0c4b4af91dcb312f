"""The event log, paged."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class EventPagePublic(BaseModel):
    events: list[dict[str, Any]]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")
