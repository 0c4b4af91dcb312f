"""Live admission: pings dated by a broken clock never reach an engine.

The watermark is the greatest ts a partition has seen, so one radio whose clock says 9999
(an unset clock, a GPS week roll-over) would put every other device of its partition past its
signal timeout for good: the control room would see everybody lost, and the checkpoint would
keep it so across restarts. Live, the wall clock is a better judge than the radio: a ping
more than `max_future_s` ahead of it is refused with reason `future`, one older than
`max_age_days` (default: the ping retention, past which its raw ping would be gone anyway)
with reason `too_old`. Both go to the dead-letter topic and are counted; neither moves a
watermark. Replay has no wall clock and keeps the contract as written (docs/pipeline.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geofence.pings import PingBatch
from services.settings import Settings

FUTURE = "future"
TOO_OLD = "too_old"


@dataclass(frozen=True, slots=True)
class Admission:
    """The window of event time the live matcher accepts, relative to the wall clock."""

    max_future_s: float
    max_age_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        days = settings.max_age_days if settings.max_age_days is not None else settings.ping_retention_days
        return cls(settings.max_future_s, days * 86_400.0)

    def admit(
        self, batch: PingBatch, source: npt.NDArray[np.int64], now: float
    ) -> tuple[PingBatch, npt.NDArray[np.int64], list[tuple[int, str]]]:
        """The pings inside the window, their source positions, and (source, reason) of the rest."""
        future = batch.ts > now + self.max_future_s
        too_old = batch.ts < now - self.max_age_s
        out = future | too_old
        if not out.any():
            return batch, source, []
        refused = [(int(source[i]), FUTURE if future[i] else TOO_OLD) for i in np.flatnonzero(out).tolist()]
        keep = np.flatnonzero(~out)
        return batch.take(keep), source[keep], refused
