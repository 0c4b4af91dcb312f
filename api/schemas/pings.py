"""HTTP ingest: what became of the pings of a POST."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PingRejectPublic(BaseModel):
    index: int = Field(description="position of the ping in the array, or line number - 1 in NDJSON")
    field: str | None = Field(description="the field that is wrong, when one is")
    reason: str


class PingIngestPublic(BaseModel):
    accepted: int = Field(description="pings validated and written to Kafka")
    rejected: int
    errors: list[PingRejectPublic] = Field(description="the first 100 pings refused, each with why")
    errors_unlisted: int = Field(0, description="pings refused beyond those listed in errors")
