"""Feedback from the front line: what an officer flags, the supervisor's reply, closing it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.calibration import BufferChangePublic, Timestamp
from ingest.ping_message import DeviceId, FenceId, Lat, Lon
from ingest.rules import MESSAGE
from services.store.feedback import Feedback

Kind = Literal["gps_wrong", "boundary", "activity", "other"]
Message = Annotated[str, MESSAGE.field()]


class FeedbackCreate(BaseModel):
    """About a hot spot (fence_id) or the sender's own tracking; a position says "I am standing here"."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind
    text: Message
    fence_id: FenceId | None = None
    device_id: DeviceId | None = Field(None, description="the radio concerned; default: the officer's only one")
    lat: Lat | None = Field(None, description="where the sender really was, WGS84 degrees")
    lon: Lon | None = None
    at: Timestamp | None = Field(None, description="the time it is about; default now")


class ReplyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Message


class ConfirmCreate(BaseModel):
    """Apply the buffer the report's calibration check recommends to hot spots (default: the report's)."""

    model_config = ConfigDict(extra="forbid")
    fence_ids: list[FenceId] | None = Field(None, min_length=1, max_length=100)
    quantile: Literal[80, 95] = 95


class FeedbackPublic(BaseModel):
    feedback_id: int
    created_at: float
    key_id: str
    officer_id: str | None
    team: str | None
    kind: str
    text: str
    fence_id: str | None
    device_id: str | None
    lat: float | None
    lon: float | None
    at: float | None
    check_id: int | None = Field(description="the calibration check a gps_wrong report opened")
    check_state: str | None = Field(description="draft until a supervisor confirms it, then applied")
    reply: str | None
    replied_at: float | None
    replied_by: str | None
    state: Literal["open", "closed"]
    closed_at: float | None
    closed_by: str | None

    @classmethod
    def of(cls, f: Feedback) -> FeedbackPublic:
        return cls(
            feedback_id=f.feedback_id, created_at=f.created_at, key_id=f.key_id, officer_id=f.officer_id,
            team=f.team, kind=f.kind, text=f.text, fence_id=f.fence_id, device_id=f.device_id, lat=f.lat,
            lon=f.lon, at=f.at_ts, check_id=f.check_id, check_state=f.check_state, reply=f.reply,
            replied_at=f.replied_at, replied_by=f.replied_by, state="open" if f.closed_at is None else "closed",
            closed_at=f.closed_at, closed_by=f.closed_by,
        )  # fmt: skip


class FeedbackListPublic(BaseModel):
    feedback: list[FeedbackPublic]
    next_after: int | None = Field(description="cursor of the next page (after=), None on the last")


class ConfirmPublic(BaseModel):
    feedback: FeedbackPublic
    change: BufferChangePublic
