"""Dwell rollup and query state: what keeps long dwell ranges and the API's caches cheap.

`dwell_fence_days` holds the dwell of closed visits per fence and UTC day, so `Store.dwell`
sums whole days instead of scanning every visit of a long range; `query_state` is one row with
a version bumped by every write of observations (the API's caches check it) and the longest
closed visit (which bounds the scan of a range's partial edge days). Both are filled here
from the visits already recorded. The exit_ts index of visits grows into one covering that scan.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.store import rollup_rows

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    days = op.create_table(
        "dwell_fence_days",
        sa.Column("day", sa.Float, primary_key=True, autoincrement=False),
        sa.Column("fence_id", sa.Text, primary_key=True),
        sa.Column("visits", sa.BigInteger, nullable=False),
        sa.Column("dwell_s", sa.Float, nullable=False),
    )
    op.create_index("dwell_fence_days_fence", "dwell_fence_days", ["fence_id", "day"])
    op.create_index("visits_exit_span", "visits", ["exit_ts", "enter_ts", "fence_id"])  # covers the edge-day scan
    op.drop_index("visits_exit_ts", table_name="visits")
    state = op.create_table(
        "query_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("longest_visit_s", sa.Float, nullable=False),
        sa.CheckConstraint("id = 1", name="query_state_single_row"),
    )
    closed = op.get_bind().execute(sa.text("SELECT fence_id, enter_ts, exit_ts FROM visits WHERE exit_ts IS NOT NULL"))
    rows = [tuple(r) for r in closed]
    longest = max((exit_ts - enter_ts for _, enter_ts, exit_ts in rows), default=0.0)
    op.bulk_insert(state, [{"id": 1, "version": 0, "longest_visit_s": longest}])
    sums = rollup_rows(rows)
    if sums:
        op.bulk_insert(days, [{"day": d, "fence_id": f, "visits": n, "dwell_s": s} for (d, f), (n, s) in sums.items()])


def downgrade() -> None:
    op.create_index("visits_exit_ts", "visits", ["exit_ts"])
    op.drop_index("visits_exit_span", table_name="visits")
    op.drop_table("query_state")
    op.drop_table("dwell_fence_days")
