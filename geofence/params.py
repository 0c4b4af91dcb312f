"""The tunable rules of SEMANTICS.md, in one frozen value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineParams:
    """Parameters of the geofence state machine (see SEMANTICS.md).

    debounce_s: how long a new inside/outside state must be shown before it is confirmed.
    max_accuracy_m: fixes less accurate than this prove liveness but change no state.
    signal_timeout_s: silence, beyond the watermark, after which a device is lost.
    max_lateness_s: how far out of order pings may arrive and still be applied in order.
    """

    debounce_s: float = 0.0
    max_accuracy_m: float = 100.0
    signal_timeout_s: float = 300.0
    max_lateness_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("debounce_s", "max_accuracy_m", "signal_timeout_s", "max_lateness_s"):
            value = getattr(self, name)
            if not value >= 0.0 or value == float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
