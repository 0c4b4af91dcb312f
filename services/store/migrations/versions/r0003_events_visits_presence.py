"""Observations for the query layer: the event log, visits, devices now, presence, lost gaps.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("exit_ts IS NULL")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("fence_id", sa.Text, nullable=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("officer_id", sa.Text, nullable=True),
        sa.Column("callsign", sa.Text, nullable=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.UniqueConstraint("event_id", name="events_event_id_key"),
        sqlite_autoincrement=True,  # seq is a cursor: never reuse a value
    )
    op.create_index("events_ts", "events", ["ts"])
    op.create_index("events_fence_ts", "events", ["fence_id", "ts"])
    op.create_index("events_device_ts", "events", ["device_id", "ts"])
    op.create_index("events_type_ts", "events", ["type", "ts"])
    op.create_table(
        "visits",
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("fence_id", sa.Text, primary_key=True),
        sa.Column("enter_ts", sa.Float, primary_key=True),
        sa.Column("exit_ts", sa.Float, nullable=True),
        sa.Column("dwell_s", sa.Float, nullable=True),
        sa.Column("exit_reason", sa.Text, nullable=True),
    )
    op.create_index("visits_fence_enter", "visits", ["fence_id", "enter_ts"])
    op.create_index("visits_device_enter", "visits", ["device_id", "enter_ts"])
    op.create_index("visits_exit_ts", "visits", ["exit_ts"])
    op.create_index("visits_open", "visits", ["fence_id", "device_id"], postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.create_table(
        "devices",
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("first_ts", sa.Float, nullable=False),
        sa.Column("last_ts", sa.Float, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("accuracy_m", sa.Float, nullable=True),
        sa.Column("lost", sa.Boolean, nullable=False),
        sa.Column("officer_id", sa.Text, nullable=True),
        sa.Column("callsign", sa.Text, nullable=True),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("devices_officer_id", "devices", ["officer_id"])
    op.create_index("devices_callsign", "devices", ["callsign"])
    op.create_table(
        "presence",
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("fence_id", sa.Text, primary_key=True),
        sa.Column("since", sa.Float, nullable=False),
    )
    op.create_index("presence_fence", "presence", ["fence_id"])
    op.create_table(
        "lost_gaps",
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("start_ts", sa.Float, primary_key=True),
        sa.Column("end_ts", sa.Float, nullable=True),
    )
    op.create_index("lost_gaps_end", "lost_gaps", ["end_ts"])


def downgrade() -> None:
    op.drop_table("lost_gaps")
    op.drop_table("presence")
    op.drop_table("devices")
    op.drop_table("visits")
    op.drop_table("events")
