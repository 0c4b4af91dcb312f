"""What the routes need from the running service, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from services.access import RateLimiter
from services.matcher import Health
from services.metrics import Metrics
from services.settings import Settings
from services.store import Store


@dataclass(slots=True)
class ServiceContext:
    """Handed to create_app; routes reach it through api.deps, never through globals."""

    settings: Settings
    store: Store
    metrics: Metrics
    health: Health = field(default_factory=Health)
    producer: AIOKafkaProducer | None = None  # for HTTP ingest; None until the broker is reachable
    matcher_running: bool = False
    limiter: RateLimiter = field(default_factory=RateLimiter)
