"""The one settings object: HOTSPOTS_* environment variables, overridden by CLI flags."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from geofence.params import EngineParams


class Settings(BaseSettings):
    """Built once at start-up and passed down; never read from module globals."""

    model_config = SettingsConfigDict(env_prefix="HOTSPOTS_", frozen=True, extra="forbid")

    debounce_s: float = Field(0.0, ge=0, description="seconds a new inside/outside state must hold")
    max_accuracy_m: float = Field(100.0, ge=0, description="fixes less accurate than this change no state")
    signal_timeout_s: float = Field(300.0, ge=0, description="silence past the watermark before a device is lost")
    max_lateness_s: float = Field(30.0, ge=0, description="how far out of order pings may arrive")

    @property
    def engine(self) -> EngineParams:
        return EngineParams(
            debounce_s=self.debounce_s,
            max_accuracy_m=self.max_accuracy_m,
            signal_timeout_s=self.signal_timeout_s,
            max_lateness_s=self.max_lateness_s,
        )

    @classmethod
    def build(cls, overrides: dict[str, Any]) -> Settings:
        """Environment first, then every CLI flag the user actually gave (not None)."""
        return cls(**{k: v for k, v in overrides.items() if v is not None})
