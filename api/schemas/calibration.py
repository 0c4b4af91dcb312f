"""GPS calibration: checks (a device held at a known spot), the error of fixes, fence buffers from it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ingest.ping_message import Accuracy, DeviceId, FenceId, Lat, Lon, Ping, Text
from services.measures.calibration import MAX_BUFFER_M

#: Most fixes one check may bring with it (an exported track of a long window at 1 Hz fits).
MAX_SUPPLIED_FIXES = 100_000


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain a NUL byte")
    return text


#: Free text stored in the database (ids and sources are refused control characters by their rules).
NoNul = AfterValidator(_no_nul)
#: The ping's `ts` rule: ISO 8601 with a UTC offset, or epoch seconds; validated to epoch seconds.
Timestamp = Annotated[float, *Ping.model_fields["ts"].metadata]


class FixCreate(BaseModel):
    """A fix from an exported track of the check's device, with the ping rules."""

    model_config = ConfigDict(extra="forbid")
    ts: Timestamp
    lat: Lat
    lon: Lon
    accuracy_m: Accuracy | None = None
    source: Text | None = Field(None, description="radio, handset...")


class CheckCreate(BaseModel):
    """A device held at a known true position (lat, lon) during [start, end)."""

    model_config = ConfigDict(extra="forbid")
    device_id: DeviceId
    lat: Lat = Field(description="true position, WGS84 degrees (e.g. a CCTV-verified spot)")
    lon: Lon = Field(description="true position, WGS84 degrees")
    start: Timestamp
    end: Timestamp
    note: Annotated[str, Field(max_length=500), NoNul] | None = None
    fixes: list[FixCreate] = Field(
        default_factory=list, max_length=MAX_SUPPLIED_FIXES,
        description="for a check done after the fact; otherwise the matcher captures the fixes live",
    )  # fmt: skip


class ErrorSummaryPublic(BaseModel):
    """Error of fixes in metres; see docs/semantics.md "GPS calibration"."""

    model_config = ConfigDict(from_attributes=True)
    fixes: int = Field(description="fixes the figures come from")
    uncertain: int = Field(description="fixes left out: accuracy_m above max_accuracy_m")
    median_m: float | None
    p80_m: float | None = Field(description="smallest distance holding at least 80% of the fixes")
    p95_m: float | None = Field(description="smallest distance holding at least 95% of the fixes")
    mean_east_m: float | None
    mean_north_m: float | None
    mean_offset_m: float | None = Field(description="length of the mean offset vector")
    offset_bearing_deg: float | None = Field(description="direction of the mean offset, clockwise from north")
    buffer_80_m: float | None = Field(description="fence buffer capturing 80% of the fixes")
    buffer_95_m: float | None = Field(description="fence buffer capturing 95% of the fixes")


class CheckPublic(BaseModel):
    check_id: int
    device_id: str
    lat: float
    lon: float
    start: float = Field(description="epoch seconds")
    end: float = Field(description="epoch seconds, exclusive")
    note: str | None
    created_at: float
    created_by: str = Field(description="API key id")
    result: ErrorSummaryPublic


class FixPublic(BaseModel):
    ts: float
    lat: float
    lon: float
    accuracy_m: float | None
    source: str | None
    east_m: float
    north_m: float
    distance_m: float


class CheckDetailPublic(CheckPublic):
    by_source: dict[str, ErrorSummaryPublic]
    fixes: list[FixPublic]


class ChecksPublic(BaseModel):
    checks: list[CheckPublic]


class CalibrationPublic(BaseModel):
    overall: ErrorSummaryPublic
    devices: dict[str, ErrorSummaryPublic]
    sources: dict[str, ErrorSummaryPublic] = Field(description="per source; fixes without one under 'unknown'")


class BufferChangeCreate(BaseModel):
    """Set the buffer of fences: a given buffer_m, or the one recommended for a quantile of the fixes
    (all fixes held, or those of a device, a source or a time range)."""

    model_config = ConfigDict(extra="forbid")
    fence_ids: list[FenceId] = Field(min_length=1, max_length=10_000)
    quantile: Literal[80, 95] | None = None
    buffer_m: Annotated[float, Field(ge=0, le=MAX_BUFFER_M, allow_inf_nan=False)] | None = None
    device_id: DeviceId | None = None
    source: Text | None = None
    start: Timestamp | None = Field(None, alias="from")
    end: Timestamp | None = Field(None, alias="to")


class FenceBufferPublic(BaseModel):
    fence_id: str
    old_buffer_m: float
    new_buffer_m: float


class BufferChangePublic(BaseModel):
    version: int = Field(description="the fence-set version after the change")
    buffer_m: float
    quantile: int | None
    based_on: ErrorSummaryPublic | None = Field(description="the fixes the recommendation came from (quantile only)")
    fences: list[FenceBufferPublic]
    warnings: list[str]
