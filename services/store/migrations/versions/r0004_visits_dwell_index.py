"""Dwell over long ranges: a covering index for the per-fence scan of visits.

`Store.dwell` grouped by fence reads every visit overlapping the range, in fence order. With
(fence_id, enter_ts, exit_ts, device_id) in one index that scan needs no table lookups (an
index-only scan on PostgreSQL); it replaces (fence_id, enter_ts), which is its prefix.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("visits_fence_span", "visits", ["fence_id", "enter_ts", "exit_ts", "device_id"])
    op.drop_index("visits_fence_enter", table_name="visits")


def downgrade() -> None:
    op.create_index("visits_fence_enter", "visits", ["fence_id", "enter_ts"])
    op.drop_index("visits_fence_span", table_name="visits")
