"""Officer time per shift and signal loss (the weekly report is a file, not a model)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.measures.officer_time import GapKind


class ShiftPublic(BaseModel):
    start: float = Field(description="first ping of the shift or a handover (epoch s), not clipped to the range")
    end: float = Field(description="last ping of the shift or a handover (epoch s), not clipped to the range")
    inside_s: float = Field(description="within the range: union of the device's visits")
    outside_s: float = Field(description="within the range: active time outside every hot spot")
    lost_s: float = Field(description="within the range: signal-loss gaps shorter than the shift break")
    losses: int = Field(description="signal losses of the shift starting in the range")
    officer_id: str | None = Field(
        description="on the shift's first event naming one, else the device's assignment then, else the device's"
    )
    callsign: str | None
    team: str | None = Field(None, description="of the device's assignment, when it names the shift's officer")


class OfficerTimePublic(BaseModel):
    device_id: str
    officer_id: str | None = Field(description="the device's officer as of its last ping (its own, else assigned)")
    callsign: str | None
    inside_s: float
    outside_s: float
    lost_s: float
    break_s: float = Field(description="time in gaps longer than the shift break (between shifts)")
    shifts: list[ShiftPublic]


class OfficersTimePublic(BaseModel):
    start: float
    end: float
    shift_break_s: float
    officers: list[OfficerTimePublic]


class GapPublic(BaseModel):
    start: float
    end: float | None = Field(description="null while the device is still lost")
    length_s: float | None
    kind: GapKind = Field(description="loss (within a shift), break (between shifts) or open")
    lat: float | None = Field(description="last known position: that of the SIGNAL_LOST event")
    lon: float | None


class LossPeriodPublic(BaseModel):
    start: float
    end: float
    losses: int
    lost_s: float
    week: str | None = Field(None, description="ISO week in the timezone setting, for weekly rows")


class DeviceLossPublic(BaseModel):
    device_id: str
    officer_id: str | None
    callsign: str | None
    losses: int = Field(description="losses starting in the range (breaks and open gaps not counted)")
    lost_s: float = Field(description="seconds of losses within the range")
    longest_s: float
    repeated: bool = Field(description="some shift has at least min_losses losses")
    gaps: list[GapPublic]
    shifts: list[LossPeriodPublic]
    weeks: list[LossPeriodPublic]


class SignalLossPublic(BaseModel):
    start: float
    end: float
    shift_break_s: float
    min_losses: int
    devices: list[DeviceLossPublic]
