"""Device-bound ingest keys on POST /v1/pings and /v1/pings/lip: another device's pings are refused item by item.

A key made with ``hotspots keys create --role ingest --device-id PHONE1`` sits on one phone;
whatever it posts for another device is refused with the reason, the phone's own pings go on
(api/routes/osmand.py refuses such a request whole: it holds one ping).
"""

from __future__ import annotations

import numpy as np

from ingest.ping_message import ParsedPings, Reject, body_kind
from services.access.roles import Principal


def keep_own_pings(
    parsed: ParsedPings, who: Principal, body: bytes, content_type: str, listed: int | None
) -> ParsedPings:
    """parsed with the pings of devices other than who's bound one moved to the rejects.

    A key bound to no device changes nothing. Otherwise parsed must explain every refused item
    (``parse_http_body`` with ``explain_max=None``; ``parse_lip_body`` always does), and each
    item accepted must have given one ping: a ping's index in the body is the place no Reject names.
    At most ``listed`` rejects are kept (None: all), the others counted as unexplained.
    """
    if who.device_id is None:
        return parsed
    other = parsed.batch.device_id != who.device_id
    if not other.any():
        return parsed
    if body_kind(content_type) == "ndjson":  # blank lines are counted, not items (parse_http_body)
        items = np.flatnonzero([bool(line.strip()) for line in body.split(b"\n")])
    else:
        items = np.arange(len(parsed.batch) + len(parsed.rejects))
    index = np.setdiff1d(items, [r.index for r in parsed.rejects], assume_unique=True)
    devices = parsed.batch.device_id
    refused = [Reject(int(index[k]), "device_id", who.device_refusal(devices[k])) for k in np.flatnonzero(other)]
    rejects = sorted(parsed.rejects + refused, key=lambda r: r.index)
    kept = rejects if listed is None else rejects[:listed]
    unexplained = parsed.unexplained + len(rejects) - len(kept)
    return ParsedPings(parsed.batch.take(np.flatnonzero(~other)), kept, unexplained)
