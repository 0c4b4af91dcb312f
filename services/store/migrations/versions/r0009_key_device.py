"""Device-bound ingest keys: `api_keys.device_id`.

A handset app (Traccar Client, OsmAnd) can set only a URL, so its key travels in that URL and
sits on a phone anyone might pick up. Binding the key to the phone's device id means a key
copied off one phone cannot post positions as another device (api/routes/osmand.py, POST
/v1/pings). NULL: a gateway key, which may post for any device.

Revision ID: r0009_key_device
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0009_key_device"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("device_id", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("device_id")
