"""The durable store: versioned fences, API keys and audit, per-partition checkpoints, and the query
tables behind the API, on SQLite (one node) or PostgreSQL (several matchers, one shared store).

One module per concern, each a class on the shared database handle (`database.Database`):
`fences`, `keys` (and audit), `observations` (writes of the query tables), `checkpoints` (saved
with the observations they cover), `queries` and `dwell` (reads of the query tables). Every
table is in `tables`, the schema's history in `migrations/`. `Store` combines them into the one
object a process opens and hands around: one connection pool, and a checkpoint can write the
observations in its own transaction.
"""

from __future__ import annotations

from services.store.checkpoints import Checkpoint, CheckpointStore
from services.store.database import MIGRATIONS_DIR, database_url
from services.store.dwell import DwellRow, DwellStore, GroupBy
from services.store.fences import FenceStore
from services.store.keys import KeyStore
from services.store.observations import DeviceNow, Observations, devices_now, opt_float, rollup_rows
from services.store.queries import Present, QueryStore, StoredDevice, StoredEvent
from services.store.tables import (
    devices_table,
    events_table,
    fences_table,
    lost_gaps,
    presence_table,
    visits,
)

__all__ = [
    "MIGRATIONS_DIR",
    "Checkpoint",
    "DeviceNow",
    "DwellRow",
    "GroupBy",
    "Observations",
    "Present",
    "Store",
    "StoredDevice",
    "StoredEvent",
    "database_url",
    "devices_now",
    "devices_table",
    "events_table",
    "fences_table",
    "lost_gaps",
    "opt_float",
    "presence_table",
    "rollup_rows",
    "visits",
]


class Store(FenceStore, KeyStore, CheckpointStore, QueryStore, DwellStore):
    """Async access to the store; one per process, shared by all tasks (pooled connections)."""
