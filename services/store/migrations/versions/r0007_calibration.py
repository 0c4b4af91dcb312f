"""GPS calibration: verification checks (a device at a known true position for a time window)
and the fixes of each check, captured from the stream or supplied with it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "calibration_checks",
        sa.Column("check_id", _ID, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("start_ts", sa.Float, nullable=False),
        sa.Column("end_ts", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_index("calibration_checks_device_start", "calibration_checks", ["device_id", "start_ts"])
    op.create_index("calibration_checks_end", "calibration_checks", ["end_ts"])
    op.create_table(
        "calibration_fixes",
        sa.Column("check_id", _ID, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.Float, primary_key=True),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("accuracy_m", sa.Float, nullable=True),
        sa.Column("source", sa.Text, nullable=True),
        sa.ForeignKeyConstraint(
            ["check_id"], ["calibration_checks.check_id"], name="calibration_fixes_check_fk", ondelete="CASCADE"
        ),
    )
    op.create_index("calibration_fixes_ts", "calibration_fixes", ["ts"])


def downgrade() -> None:
    op.drop_table("calibration_fixes")
    op.drop_table("calibration_checks")
