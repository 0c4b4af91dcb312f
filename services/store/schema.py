"""Every table of the store in one MetaData, for the migrations and the schema check.

Tables live next to the queries that use them (services/store/, plans_store.py, ...), all on
`services.store.metadata`; importing those modules here is what registers them, so Alembic's
env.py and the migrations-match-the-tables test see the whole schema, not just store.py's.
"""

from __future__ import annotations

from services.measures import calibration, incidents
from services.store import metadata
from services.store import plans as plans_store

__all__ = ["metadata"]

TABLE_MODULES = (calibration, incidents, plans_store)
