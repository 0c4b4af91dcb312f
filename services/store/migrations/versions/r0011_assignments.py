"""Assignments: who carries which radio over which period (issue 11).

A LIP ping names only the radio's ISSI; radios change hands between shifts. Every measure that
shows or counts officers resolves a device and time to the assignment valid then
(geofence/assignments.py), so the table is read whole and indexed by device and start.

Revision ID: r0011_assignments
Revises: r0010_officer_feedback
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0011_assignments"
down_revision: str | None = "r0010_officer_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("assignment_id", sa.Text, primary_key=True),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("officer_id", sa.Text, nullable=False),
        sa.Column("callsign", sa.Text, nullable=True),
        sa.Column("team", sa.Text, nullable=True),
        sa.Column("valid_from", sa.Float, nullable=False),
        sa.Column("valid_to", sa.Float, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("assignments_device_from", "assignments", ["device_id", "valid_from"])
    op.create_index("assignments_officer", "assignments", ["officer_id"])


def downgrade() -> None:
    op.drop_table("assignments")
