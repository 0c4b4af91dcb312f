"""API keys as admins manage them over HTTP: the secret is in the answer to a create only."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ingest.rules import DEVICE_ID, NAME, TEXT
from services.access.roles import Role


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: Annotated[str, Field(min_length=1), NAME.field(description="who or what holds the key, e.g. 'PC 1234 phone'")]
    officer_id: Annotated[str | None, TEXT.field(description="required for an officer key, and only for one")] = None
    device_id: Annotated[str | None, DEVICE_ID.field(description="binds an ingest key to one device")] = None


class KeyPublic(BaseModel):
    key_id: str
    role: str
    name: str
    officer_id: str | None
    device_id: str | None
    created_at: float
    revoked_at: float | None


class KeyCreated(KeyPublic):
    token: str  # shown this once; the store keeps only its hash


class KeysPublic(BaseModel):
    keys: list[KeyPublic]
