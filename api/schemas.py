"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

#: The largest cursor (event seq, audit id): both are 64-bit integers in the store.
MAX_CURSOR = 2**63 - 1


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


class PresentDevice(BaseModel):
    device_id: str
    since: float = Field(description="epoch seconds of the ENTER")
    officer_id: str | None
    callsign: str | None
    last_ts: float
    lat: float
    lon: float
    lost: bool


class FencePresence(BaseModel):
    fence_id: str
    devices: list[PresentDevice]


class PresenceAnswer(BaseModel):
    fences: list[FencePresence]


class DevicePresence(BaseModel):
    device_id: str
    fences: dict[str, float] = Field(description="fence id -> epoch seconds of the ENTER")
    last_seen: float
    lat: float
    lon: float
    accuracy_m: float | None
    lost: bool
    officer_id: str | None
    callsign: str | None


class DevicesAnswer(BaseModel):
    devices: list[DevicePresence] = Field(description="every device ever recorded, by device id")


class DwellFigures(BaseModel):
    fence_id: str | None = None
    device_id: str | None = None
    bucket: float | None = Field(None, description="start of the UTC day or hour, epoch seconds")
    visits: int
    dwell_s: float
    active_s: float | None = None
    inside_s: float | None = None
    outside_s: float | None = None
    lost_s: float | None = None


class DwellAnswer(BaseModel):
    start: float
    end: float
    group_by: str
    rows: list[DwellFigures]


class EventPage(BaseModel):
    events: list[dict[str, Any]]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")
