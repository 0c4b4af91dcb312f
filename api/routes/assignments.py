"""Assignments (who carries which radio when): read by viewers, written by admins, all audited.

Every measure naming officers applies them when it is computed, so a change re-attributes
history (docs/measures.md "Who carries which radio").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import Admin, Audit, Context, Viewer
from api.schemas.assignments import AssignmentCreate, AssignmentPublic, AssignmentsPublic
from api.timeparams import parse_time
from geofence.assignments import Assignment
from ingest.assignments import parse_assignment
from ingest.rules import InputError
from services.errors import Invalid, NotFound
from services.store.assignments import delete_assignment, get_assignment, list_assignments, save_assignment

router = APIRouter(prefix="/v1/assignments", tags=["assignments"])


def _public(a: Assignment) -> AssignmentPublic:
    return AssignmentPublic.model_validate({
        "assignment_id": a.assignment_id, "device_id": a.device_id, "officer_id": a.officer_id,
        "callsign": a.callsign, "team": a.team, "from": a.valid_from, "to": a.valid_to,
    })  # fmt: skip


def _parsed(body: AssignmentCreate, assignment_id: str | None = None) -> Assignment:
    values = body.model_dump(by_alias=True)
    if assignment_id is not None:
        if body.assignment_id not in (None, assignment_id):
            raise Invalid(f"{body.assignment_id!r} does not match the path's {assignment_id!r}", "assignment_id")
        values["assignment_id"] = assignment_id
    try:
        return parse_assignment(values)
    except InputError as exc:
        raise Invalid(exc.reason, exc.field) from None


@router.get(
    "", response_model=AssignmentsPublic, summary="Assignments, optionally of a device or officer, or at a time"
)
async def assignments(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    device_id: Annotated[str | None, Query()] = None,
    officer_id: Annotated[str | None, Query()] = None,
    at: Annotated[str | None, Query(description="only those valid then: ISO 8601 with offset, or epoch")] = None,
) -> AssignmentsPublic:
    found = await list_assignments(ctx.store, device_id=device_id, officer_id=officer_id, at=parse_time("at", at))
    audit.record(device_id or officer_id, {"devices": sorted({a.device_id for a in found})})
    return AssignmentsPublic(assignments=[_public(a) for a in found])


@router.get("/{assignment_id}", response_model=AssignmentPublic, summary="One assignment")
async def assignment(assignment_id: str, ctx: Context, _: Viewer, audit: Audit) -> AssignmentPublic:
    audit.record(assignment_id)
    found = await get_assignment(ctx.store, assignment_id)
    if found is None:
        raise NotFound(f"no assignment {assignment_id!r}")
    return _public(found)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=AssignmentPublic,
    summary="Create an assignment; 409 naming both when it overlaps another of the device",
)  # fmt: skip
async def create_assignment(body: AssignmentCreate, ctx: Context, _: Admin, audit: Audit) -> AssignmentPublic:
    parsed = _parsed(body)
    await save_assignment(ctx.store, parsed, create=True)
    audit.record(parsed.device_id, {"assignment_id": parsed.assignment_id, "officer_id": parsed.officer_id})
    return _public(parsed)


@router.put("/{assignment_id}", response_model=AssignmentPublic, summary="Create or replace one assignment")
async def replace_assignment(
    assignment_id: str, body: AssignmentCreate, ctx: Context, _: Admin, audit: Audit
) -> AssignmentPublic:
    parsed = _parsed(body, assignment_id)
    await save_assignment(ctx.store, parsed, create=False)
    audit.record(parsed.device_id, {"assignment_id": assignment_id, "officer_id": parsed.officer_id})
    return _public(parsed)


@router.delete("/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an assignment")
async def remove_assignment(assignment_id: str, ctx: Context, _: Admin, audit: Audit) -> Response:
    if not await delete_assignment(ctx.store, assignment_id):
        raise NotFound(f"no assignment {assignment_id!r}")
    audit.record(assignment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
