"""The one settings object: HOTSPOTS_* environment variables, overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

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

    kafka_bootstrap: str | None = Field(None, description="HOST:PORT of Kafka; unset: start the embedded broker")
    api_host: str = Field("127.0.0.1", description="address the HTTP API listens on")
    api_port: int = Field(8000, ge=0, le=65535, description="port of the HTTP API")
    data_dir: Path = Field(Path("var"), description="holds the SQLite store and logs")
    database_url: str | None = Field(None, description="PostgreSQL URL; unset: SQLite in data_dir")
    fences: Path | None = Field(None, description="GeoJSON fences to upsert at start")
    wall_clock_watermark: bool = Field(True, description="let the wall clock report silent devices lost")
    role: Literal["all", "matcher", "api"] = Field("all", description="which parts this process runs")
    group_id: str = Field("hotspots-matcher", description="Kafka consumer group of the matchers")
    topic_pings: str = "pings"
    topic_events: str = "geofence-events"
    topic_dlq: str = "pings-dlq"
    partitions: int = Field(4, ge=1, description="partitions of topics the service creates (Tansu auto-creates 4)")
    checkpoint_interval_s: float = Field(1.0, gt=0, description="how often engine state and offsets are saved")
    max_body_bytes: int = Field(5 * 1024 * 1024, gt=0, description="largest POST /v1/pings body accepted")
    ping_retention_days: float = Field(31.0, gt=0, description="retention of raw pings in the pings and DLQ topics")
    metrics_public: bool = Field(True, description="serve /metrics without a key (else viewer role)")

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
