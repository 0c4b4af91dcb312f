"""What the routes need from the running service, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from services.access.roles import FAILED_BURST, FAILED_PER_S, RateLimiter
from services.metrics import Metrics
from services.pipeline.journal import Journal
from services.pipeline.matcher import Health
from services.query.basemap import Basemap
from services.query.cache import FreshCache, JsonBody
from services.query.feed import EventFeed
from services.query.presence import PresenceCache
from services.settings import Settings
from services.store import Store


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A query's response body, serialised once, and the devices it shows (for the audit log)."""

    body: JsonBody
    devices: list[str]


@dataclass(slots=True)
class ServiceContext:
    """Handed to create_app; routes reach it through api.deps, never through globals."""

    settings: Settings
    store: Store
    metrics: Metrics
    health: Health = field(default_factory=Health)
    producer: AIOKafkaProducer | None = None  # for HTTP ingest; None until the broker is reachable
    journal: Journal | None = None  # HTTP pings' durability with the memory-only embedded broker
    matcher_running: bool = False
    limiter: RateLimiter = field(default_factory=RateLimiter)
    failed_checks: RateLimiter = field(default_factory=lambda: RateLimiter(FAILED_PER_S, FAILED_BURST))  # per client
    presence: PresenceCache = field(init=False)
    answers: FreshCache[tuple[Any, ...], CachedAnswer] = field(init=False)  # e.g. dwell, by query
    feed: EventFeed = field(init=False)  # the event streams' one reader of the event log
    basemap: Basemap | None = field(init=False)  # the tiles of --basemap, when given

    def __post_init__(self) -> None:
        self.presence = PresenceCache(self.store, self.settings.query_refresh_s)
        self.answers = FreshCache(lambda: self.store.query_version(), self.settings.query_refresh_s)
        self.feed = EventFeed(self.store, self.settings.max_streams_per_key)
        self.basemap = Basemap(self.settings.basemap) if self.settings.basemap else None


def client_address(scope: Any) -> str:
    """The peer's address of an ASGI connection ("?" when the server does not say)."""
    client = scope.get("client")
    return str(client[0]) if client else "?"
