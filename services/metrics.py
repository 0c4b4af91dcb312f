"""Prometheus metrics of the service, on a registry of its own (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Batch and latency buckets in seconds: sub-millisecond batches up to multi-second stalls.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Everything /metrics shows; created once at start-up and passed to whoever counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pings_consumed = Counter("hotspots_pings_consumed", "Ping messages consumed from Kafka", registry=r)
        self.pings_rejected = Counter("hotspots_pings_rejected", "Pings rejected, by reason", ["reason"], registry=r)
        self.pings_late = Counter("hotspots_pings_late", "Pings too late to apply (sent to the DLQ)", registry=r)
        self.pings_duplicate = Counter("hotspots_pings_duplicate", "Duplicate pings ignored", registry=r)
        self.pings_ingested_http = Counter(
            "hotspots_pings_http_accepted", "Pings accepted over HTTP and produced to Kafka", registry=r
        )
        self.events = Counter("hotspots_events", "Geofence events emitted, by type", ["type"], registry=r)
        self.records_skipped = Counter(
            "hotspots_records_skipped", "Events or dead letters the broker refused as too large", registry=r
        )
        self.consumer_lag = Gauge(
            "hotspots_consumer_lag", "Messages behind the partition's high watermark", ["partition"], registry=r
        )
        self.batch_seconds = Histogram(
            "hotspots_batch_seconds", "Time to process one polled batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.ping_to_event_seconds = Histogram(
            "hotspots_ping_to_event_seconds",
            "From the fix (the event's ts) to its event acked by Kafka; includes the lateness hold and debounce",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.devices_tracked = Gauge("hotspots_devices_tracked", "Devices with state in this process", registry=r)
        self.fences_loaded = Gauge("hotspots_fences_loaded", "Fences in the matcher's index", registry=r)
        self.checkpoint_seconds = Histogram(
            "hotspots_checkpoint_seconds", "Time to write a checkpoint", buckets=LATENCY_BUCKETS, registry=r
        )
        self.pings_lost = Counter(
            "hotspots_pings_lost",
            "Pings in the log the matcher had not processed when the log was lost (a broker restarted empty)",
            registry=r,
        )
        self.pings_republished = Counter(
            "hotspots_pings_republished",
            "Acknowledged HTTP pings re-published from the journal at start (embedded broker)",
            registry=r,
        )
