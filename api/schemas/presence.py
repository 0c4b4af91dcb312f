"""Presence: who is in which hot spot now, and each device's last position."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PresentDevicePublic(BaseModel):
    device_id: str
    since: float = Field(description="epoch seconds of the ENTER")
    officer_id: str | None
    callsign: str | None
    last_ts: float
    lat: float
    lon: float
    lost: bool
    team: str | None = Field(None, description="the team of the device's assignment, if any")


class FencePresencePublic(BaseModel):
    fence_id: str
    devices: list[PresentDevicePublic]


class PresencePublic(BaseModel):
    seq: int = Field(description="the newest event this answer reflects: open the event stream after it")
    fences: list[FencePresencePublic]


class DevicePresencePublic(BaseModel):
    device_id: str
    fences: dict[str, float] = Field(description="fence id -> epoch seconds of the ENTER")
    last_seen: float
    lat: float
    lon: float
    accuracy_m: float | None
    lost: bool
    officer_id: str | None
    callsign: str | None
    team: str | None = Field(None, description="the team of the device's assignment, if any")


class DevicesPresencePublic(BaseModel):
    seq: int = Field(description="the newest event this answer reflects: open the event stream after it")
    devices: list[DevicePresencePublic] = Field(description="every device ever recorded, by device id")
