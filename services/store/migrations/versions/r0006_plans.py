"""Patrol plans: the planned dosage per hot spot and window (services/store/plans.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("plan_id", sa.Text, primary_key=True),
        sa.Column("fence_id", sa.Text, nullable=False),
        sa.Column("team", sa.Text, nullable=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("plans_fence", "plans", ["fence_id"])
    op.create_index("plans_team", "plans", ["team"])


def downgrade() -> None:
    op.drop_table("plans")
