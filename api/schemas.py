"""Request and response models of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RejectedPing(BaseModel):
    index: int = Field(description="position of the ping in the array, or line number - 1 in NDJSON")
    field: str | None = Field(description="the field that is wrong, when one is")
    reason: str


class IngestResult(BaseModel):
    accepted: int = Field(description="pings validated and written to Kafka")
    rejected: int
    errors: list[RejectedPing]
