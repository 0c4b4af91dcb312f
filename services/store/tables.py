"""Every table of the store, on one MetaData: what the migrations create and the schema check compares.

One module owns them all, so Alembic's env.py and the migrations-match-the-tables test see the
whole schema by importing it, and no table depends on some other module having been imported.
The queries live in the modules of their concern (fences.py, observations.py, ...,
services/measures/).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: One row (id 1): the fence-set version, bumped by every change so readers can tell staleness.
fence_set = sa.Table(
    "fence_set",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="fence_set_single_row"),
)

fences_table = sa.Table(
    "fences",
    metadata,
    sa.Column("fence_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("buffer_m", sa.Float, nullable=False),
    sa.Column("geometry", sa.JSON, nullable=False),  # GeoJSON as given, not buffered
    sa.Column("version", sa.BigInteger, nullable=False),  # fence-set version that last wrote it
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("consumer_group", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("log_fingerprint", sa.Text, nullable=True),
    sa.Column("stream", sa.JSON, nullable=False),
)

checkpoint_devices = sa.Table(
    "checkpoint_devices",
    metadata,
    sa.Column("consumer_group", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.ForeignKeyConstraint(
        ["consumer_group", "topic", "partition"],
        ["checkpoints.consumer_group", "checkpoints.topic", "checkpoints.partition"],
        name="checkpoint_devices_checkpoint_fk",
        ondelete="CASCADE",
    ),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),  # SHA-256 of the secret; the secret is never stored
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Column("device_id", sa.Text, nullable=True),  # an ingest key bound to one device (a phone) posts only its pings
    sa.Column("officer_id", sa.Text, nullable=True),  # an officer key's officer: the only one it may see
)

#: Who read or changed what, when: every read of a device's presence or history, every change.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),  # e.g. "GET /v1/presence/devices/{id}"
    sa.Column("target", sa.Text, nullable=True),  # the device or fence concerned
    sa.Column("detail", sa.JSON, nullable=True),  # query parameters, result size
    sa.Index("audit_log_ts", "ts"),
    sa.Index("audit_log_target_ts", "target", "ts"),
)

#: Every event as published, once (event_id is unique); seq is the paging and SSE cursor.
events_table = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("fence_id", sa.Text, nullable=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("officer_id", sa.Text, nullable=True),
    sa.Column("callsign", sa.Text, nullable=True),
    sa.Column("body", sa.JSON, nullable=False),  # the event dict as published
    sa.UniqueConstraint("event_id", name="events_event_id_key"),
    sa.Index("events_ts", "ts"),
    sa.Index("events_fence_ts", "fence_id", "ts"),
    sa.Index("events_device_ts", "device_id", "ts"),
    sa.Index("events_type_ts", "type", "ts"),
    sqlite_autoincrement=True,  # seq is a cursor: never reuse a value
)

_OPEN = sa.text("exit_ts IS NULL")

#: One row per ENTER; exit_ts, dwell_s and exit_reason are NULL while the visit is open.
visits = sa.Table(
    "visits",
    metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("fence_id", sa.Text, primary_key=True),
    sa.Column("enter_ts", sa.Float, primary_key=True),
    sa.Column("exit_ts", sa.Float, nullable=True),
    sa.Column("dwell_s", sa.Float, nullable=True),
    sa.Column("exit_reason", sa.Text, nullable=True),
    # Covers the dwell scan (fence order, no table lookups); a prefix serves fence + enter_ts lookups.
    sa.Index("visits_fence_span", "fence_id", "enter_ts", "exit_ts", "device_id"),
    sa.Index("visits_device_enter", "device_id", "enter_ts"),
    # Covers the scan of a dwell range's partial edge days (Store._dwell_rolled_up) by exit time.
    sa.Index("visits_exit_span", "exit_ts", "enter_ts", "fence_id"),
    sa.Index("visits_open", "fence_id", "device_id", postgresql_where=_OPEN, sqlite_where=_OPEN),
)

#: Each device as of its last applied ping.
devices_table = sa.Table(
    "devices",
    metadata,
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
    sa.Column("updated_at", sa.Float, nullable=False),  # wall clock of the last write of the row
    sa.Index("devices_officer_id", "officer_id"),
    sa.Index("devices_callsign", "callsign"),
)

#: Who is inside which fence now, and since when (the start of the open visit).
presence_table = sa.Table(
    "presence",
    metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("fence_id", sa.Text, primary_key=True),
    sa.Column("since", sa.Float, nullable=False),
    sa.Index("presence_fence", "fence_id"),
)

#: Signal-loss gaps: from SIGNAL_LOST (the device's last ping) to SIGNAL_RESTORED; end_ts NULL while lost.
lost_gaps = sa.Table(
    "lost_gaps",
    metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("start_ts", sa.Float, primary_key=True),
    sa.Column("end_ts", sa.Float, nullable=True),
    sa.Index("lost_gaps_end", "end_ts"),
)

#: Closed-visit dwell per fence and UTC day: `Store.dwell` sums whole days of a long range here
#: instead of scanning every visit. Written with the visits (`Store._record`), so exactly once.
dwell_days = sa.Table(
    "dwell_fence_days",
    metadata,
    sa.Column("day", sa.Float, primary_key=True, autoincrement=False),  # epoch seconds of the UTC midnight
    sa.Column("fence_id", sa.Text, primary_key=True),
    sa.Column("visits", sa.BigInteger, nullable=False),  # closed visits entered that day
    sa.Column("dwell_s", sa.Float, nullable=False),  # the time of closed visits within that day
    sa.Index("dwell_fence_days_fence", "fence_id", "day"),
)

#: One row (id 1): `version` is bumped by every write of observations (what the API's caches
#: check); `longest_visit_s` is the longest closed visit recorded (bounds dwell's edge scans).
query_state = sa.Table(
    "query_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("longest_visit_s", sa.Float, nullable=False),
    sa.CheckConstraint("id = 1", name="query_state_single_row"),
)

#: One row per plan; `body` is the plan as a document (Plan.to_dict), fence_id and team for filters.
plans_table = sa.Table(
    "plans",
    metadata,
    sa.Column("plan_id", sa.Text, primary_key=True),
    sa.Column("fence_id", sa.Text, nullable=False),
    sa.Column("team", sa.Text, nullable=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("plans_fence", "fence_id"),
    sa.Index("plans_team", "team"),
)

#: A verification check: the device was at the true position (lat, lon) in [start_ts, end_ts).
calibration_checks = sa.Table(
    "calibration_checks",
    metadata,
    sa.Column("check_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("start_ts", sa.Float, nullable=False),
    sa.Column("end_ts", sa.Float, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),  # API key id
    sa.Index("calibration_checks_device_start", "device_id", "start_ts"),
    sa.Index("calibration_checks_end", "end_ts"),
)

#: The device's fixes in a check's window: captured from the stream or supplied with the check.
calibration_fixes = sa.Table(
    "calibration_fixes",
    metadata,
    sa.Column("check_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float, primary_key=True),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("accuracy_m", sa.Float, nullable=True),
    sa.Column("source", sa.Text, nullable=True),
    sa.ForeignKeyConstraint(
        ["check_id"], ["calibration_checks.check_id"], name="calibration_fixes_check_fk", ondelete="CASCADE"
    ),
    sa.Index("calibration_fixes_ts", "ts"),
)

#: Imported incidents (crimes, calls for service, injuries), one row per (source, incident_id).
incidents_table = sa.Table(
    "incidents",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),  # crime | call | injury
    sa.Column("incident_id", sa.Text, primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),  # epoch s UTC; a month-only incident: start of its month
    sa.Column("ts_end", sa.Float, nullable=False),  # = ts, or the start of the next month
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("harm_weight", sa.Float, nullable=True),  # NULL: the category's weight
    sa.Column("imported_at", sa.Float, nullable=False),
    sa.Index("incidents_ts", "ts"),
    sa.Index("incidents_lat_lon", "lat", "lon"),
)

#: Feedback from the front line (an officer, or a viewer/admin for one): about a hot spot or the
#: sender's own tracking; a supervisor replies and closes it. A gps_wrong report with a position
#: opens a calibration check (check_id), applied to the hot spot once a supervisor confirms it.
feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("feedback_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),  # who sent it (API key id)
    sa.Column("officer_id", sa.Text, nullable=True),  # the sender's officer (officer keys)
    sa.Column("team", sa.Text, nullable=True),  # the sender's team when sent, for supervisors' filters
    sa.Column("kind", sa.Text, nullable=False),  # gps_wrong | boundary | activity | other
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("fence_id", sa.Text, nullable=True),
    sa.Column("device_id", sa.Text, nullable=True),
    sa.Column("lat", sa.Float, nullable=True),  # "I am standing here"
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("at_ts", sa.Float, nullable=True),  # the time it is about
    sa.Column("check_id", sa.BigInteger, nullable=True),  # the calibration check a gps_wrong report opened
    sa.Column("check_state", sa.Text, nullable=True),  # draft | applied
    sa.Column("reply", sa.Text, nullable=True),
    sa.Column("replied_at", sa.Float, nullable=True),
    sa.Column("replied_by", sa.Text, nullable=True),
    sa.Column("closed_at", sa.Float, nullable=True),
    sa.Column("closed_by", sa.Text, nullable=True),
    sa.Index("feedback_officer_created", "officer_id", "created_at"),
    sa.Index("feedback_created", "created_at"),
)

#: Who carried which device over [valid_from, valid_to) (NULL: open-ended); one device's never
#: overlap (services/store/assignments.py refuses it). Read by every measure that names officers.
assignments_table = sa.Table(
    "assignments",
    metadata,
    sa.Column("assignment_id", sa.Text, primary_key=True),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("officer_id", sa.Text, nullable=False),
    sa.Column("callsign", sa.Text, nullable=True),
    sa.Column("team", sa.Text, nullable=True),
    sa.Column("valid_from", sa.Float, nullable=False),
    sa.Column("valid_to", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("assignments_device_from", "device_id", "valid_from"),
    sa.Index("assignments_officer", "officer_id"),
)
