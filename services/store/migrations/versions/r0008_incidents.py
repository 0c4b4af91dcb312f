"""Incidents (crimes, calls for service, injuries) for outcomes and choosing hot spots.

One row per (source, incident_id), so importing a file again replaces rather than adds.
`ts_end` equals `ts` for an exact time and is the next month's start for a month-only
incident (services/measures/incidents.py). Indexed by time, and by position for the box around the
fences being counted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("incident_id", sa.Text, primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("ts_end", sa.Float, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("harm_weight", sa.Float, nullable=True),
        sa.Column("imported_at", sa.Float, nullable=False),
    )
    op.create_index("incidents_ts", "incidents", ["ts"])
    op.create_index("incidents_lat_lon", "incidents", ["lat", "lon"])


def downgrade() -> None:
    op.drop_table("incidents")
