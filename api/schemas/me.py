"""An officer's own view: this shift's hot spots, dosage, time inside and the radio's state."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.compliance import DueRowPublic
from api.schemas.feedback import FeedbackPublic


class _Attrs(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ShiftPublic(_Attrs):
    start: float = Field(description="epoch seconds: the first ping of the shift")
    end: float = Field(description="the last ping so far")
    inside_min: float
    outside_min: float
    lost_min: float = Field(description="signal-loss gaps within the shift (closed ones)")
    losses: int


class WindowPublic(_Attrs):
    plan_id: str
    fence_id: str
    fence_name: str | None
    window_start: float
    window_end: float
    planned_visits: int
    planned_minutes: float
    delivered_visits: int = Field(description="qualifying visits by everyone")
    delivered_minutes: float
    my_visits: int = Field(description="this officer's qualifying visits")
    my_minutes: float


class VisitPublic(_Attrs):
    plan_id: str
    fence_id: str
    fence_name: str | None
    start: float
    end: float = Field(description="the exit, or the last ping of a visit still open")
    minutes: float = Field(description="the whole visit")
    window_minutes: float = Field(description="its part inside the plan's window occurrences")
    min_visit_min: float
    target_visit_min: float
    length: str = Field(description="short (< min_visit_min), guideline (up to target_visit_min) or long")


class InsideNowPublic(_Attrs):
    fence_id: str
    fence_name: str | None
    since: float
    min_visit_min: float | None = Field(description="the plan's minimum visit (None: no plan for this hot spot)")
    target_visit_min: float | None


class RadioPublic(_Attrs):
    device_id: str
    last_ts: float
    age_s: float = Field(description="seconds since the last fix")
    accuracy_m: float | None
    lost: bool
    poor_fix: bool = Field(description="the last fix was less accurate than max_accuracy_m")


class MePublic(BaseModel):
    officer_id: str
    team: str | None = Field(description="None until assignments name the officer's team: every team's plans")
    as_of: float
    shift: ShiftPublic | None
    period_start: float = Field(description="windows and visits from here (this shift, or today) to as_of")
    visits_today: int
    qualifying_visits_today: int
    due: list[DueRowPublic] = Field(description="as /v1/compliance/due for the team: behind plan, most behind first")
    windows: list[WindowPublic]
    visits: list[VisitPublic]
    inside_now: list[InsideNowPublic]
    radios: list[RadioPublic]
    feedback: list[FeedbackPublic] = Field(description="this officer's latest reports, with replies")
