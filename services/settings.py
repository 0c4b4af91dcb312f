"""The one settings object: HOTSPOTS_* environment variables, overridden by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from geofence.params import EngineParams
from geofence.plans import zone
from ingest.rules import BUFFER_MAX_M


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
    api_workers: int = Field(
        1, ge=1, description="processes serving the HTTP API on its port; over 1, none of them runs the matcher"
    )
    data_dir: Path = Field(Path("var"), description="holds the SQLite store and logs")
    database_url: str | None = Field(None, description="PostgreSQL URL; unset: SQLite in data_dir")
    fences: Path | None = Field(None, description="GeoJSON fences to upsert at start")
    wall_clock_watermark: bool = Field(True, description="let the wall clock report silent devices lost")
    role: Literal["all", "matcher", "api"] = Field("all", description="which parts this process runs")
    group_id: str = Field("hotspots-matcher", description="Kafka consumer group of the matchers")
    topic_pings: str = Field("pings", description="Kafka topic the pings come in on")
    topic_events: str = Field("geofence-events", description="Kafka topic the enter/exit events go out on")
    topic_dlq: str = Field("pings-dlq", description="Kafka topic of rejected pings, each with its reason")
    topic_lip: str | None = Field(
        None,
        description="Kafka topic of raw TETRA LIP records ({issi, received_at, payload} JSON, keyed by ISSI), "
        "matched like pings; unset: none is read",
    )
    partitions: int = Field(4, ge=1, description="partitions of topics the service creates (Tansu auto-creates 4)")
    checkpoint_interval_s: float = Field(1.0, gt=0, description="how often engine state and offsets are saved")
    max_body_bytes: int = Field(5 * 1024 * 1024, gt=0, description="largest POST /v1/pings body accepted, in bytes")
    max_request_bytes: int = Field(
        20 * 1024 * 1024, gt=0, description="largest request body any route accepts, in bytes (413 beyond)"
    )
    body_timeout_s: float = Field(30.0, gt=0, description="a request body that stalls this long is refused (408)")
    api_docs: bool = Field(False, description="serve /docs and /redoc (their browser code comes from a CDN)")
    max_future_s: float = Field(
        300.0, ge=0, description="live, pings dated further ahead of the wall clock go to the DLQ (reason future)"
    )
    max_age_days: float | None = Field(
        None, gt=0, description="live, pings older than this go to the DLQ (reason too_old); unset: ping_retention_days"
    )
    max_buffer_m: float = Field(BUFFER_MAX_M, ge=0, description="largest fence buffer_m accepted, in metres")
    ping_retention_days: float = Field(31.0, gt=0, description="retention of raw pings in the pings and DLQ topics")
    metrics_public: bool = Field(True, description="serve /metrics without a key (else viewer role)")
    query_refresh_s: float = Field(
        0.25, gt=0, description="how often the API rechecks the store for cached presence and dwell answers "
        "(they reflect every write committed twice this long before the request)",
    )  # fmt: skip
    max_streams_per_key: int = Field(
        10, ge=1, description="open event streams one API key may hold per API process (429 beyond)"
    )
    map_tile_url: str | None = Field(
        None,
        pattern=r"^https?://[^ ]*\{z\}[^ ]*\{x\}[^ ]*\{y\}",
        description="base-map tiles of the control-room page, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png;"
        " unset: a plain background (offline control rooms)",
    )
    basemap: Path | None = Field(
        None,
        description="raster MBTiles file served at /tiles/{z}/{x}/{y} as the page's base map (offline control rooms;"
        " instead of map_tile_url)",
    )
    calibration_step_m: float = Field(5.0, gt=0, description="recommended fence buffers round up to this step")
    timezone: str = Field("Europe/London", description="IANA time zone of plan windows and reports")
    visit_merge_s: float = Field(60.0, ge=0, description="exit -> re-entry gaps up to this are one visit in compliance")
    shift_break_s: float = Field(7200.0, gt=0, description="a signal-loss gap longer than this ends a shift")
    repeated_loss_gaps: int = Field(3, ge=1, description="signal losses in one shift that flag a device")

    @model_validator(mode="after")
    def _one_base_map(self) -> Self:
        if self.basemap is not None and self.map_tile_url is not None:
            raise ValueError("basemap and map_tile_url: give one base map, not both")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)  # PlanError (a ValueError) naming the unknown zone
        return value

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
