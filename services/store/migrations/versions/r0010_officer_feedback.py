"""Officer keys and feedback from the front line (issue 14).

An officer key is bound to one officer (`api_keys.officer_id`): it reads that officer's own
dosage and nothing else. `feedback` holds what officers flag (GPS wrong, boundary, activity),
the supervisor's reply and when it was closed, and the calibration check a gps_wrong report opened.

Revision ID: r0010_officer_feedback
Revises: r0009_key_device
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0010_officer_feedback"
down_revision: str | None = "r0009_key_device"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("officer_id", sa.Text, nullable=True))
    op.create_table(
        "feedback",
        sa.Column(
            "feedback_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("officer_id", sa.Text, nullable=True),
        sa.Column("team", sa.Text, nullable=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("fence_id", sa.Text, nullable=True),
        sa.Column("device_id", sa.Text, nullable=True),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("at_ts", sa.Float, nullable=True),
        sa.Column("check_id", sa.BigInteger, nullable=True),
        sa.Column("check_state", sa.Text, nullable=True),
        sa.Column("reply", sa.Text, nullable=True),
        sa.Column("replied_at", sa.Float, nullable=True),
        sa.Column("replied_by", sa.Text, nullable=True),
        sa.Column("closed_at", sa.Float, nullable=True),
        sa.Column("closed_by", sa.Text, nullable=True),
    )
    op.create_index("feedback_officer_created", "feedback", ["officer_id", "created_at"])
    op.create_index("feedback_created", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_table("feedback")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("officer_id")
