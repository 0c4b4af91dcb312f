"""Assignments: who carries which device over which period."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ingest.assignments import ASSIGNMENT_ID, OFFICER
from ingest.rules import DEVICE_ID, TEXT

_TIME = "ISO 8601 with a UTC offset, or epoch seconds"


class AssignmentCreate(BaseModel):
    """What an admin sends; the values are checked by the input rules (ingest/assignments.py)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    assignment_id: Annotated[
        str | None, ASSIGNMENT_ID.field(description="default: <device_id>@<from as epoch seconds>")
    ] = None
    device_id: Annotated[str, DEVICE_ID.field(description="radio ISSI or handset id")]
    officer_id: Annotated[str, OFFICER.field()]
    callsign: Annotated[str | None, TEXT.field()] = None
    team: Annotated[str | None, TEXT.field()] = None
    valid_from: str | float = Field(alias="from", description=_TIME)
    valid_to: str | float | None = Field(None, alias="to", description=f"{_TIME}; null: open-ended")


class AssignmentPublic(BaseModel):
    assignment_id: str
    device_id: str
    officer_id: str
    callsign: str | None
    team: str | None
    valid_from: float = Field(alias="from", description="epoch seconds, included")
    valid_to: float | None = Field(alias="to", description="epoch seconds, excluded; null: open-ended")


class AssignmentsPublic(BaseModel):
    assignments: list[AssignmentPublic] = Field(description="by device and start")
