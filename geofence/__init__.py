"""Pure geofence domain core: fences, index, per-device state machine and dwell.

No I/O happens here; callers hand in parsed batches and receive events.
"""
