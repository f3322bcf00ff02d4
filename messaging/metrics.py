"""Bridge's own Prometheus metrics (SPEC §6). Never a user id as a label."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily


class LoopCounter:
    """A counter that only the event loop's thread increments: a plain int,
    read at scrape time (prometheus_client's custom-collector interface).

    prometheus_client's Counter takes a lock on every `inc`; once per
    delivered frame that was 2 % of a topic's fan-out (docs/performance.md)."""

    def __init__(self, name: str, documentation: str, registry=REGISTRY) -> None:
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._created = time.time()
        self.value = 0
        registry.register(self)

    def inc(self, amount: int = 1) -> None:
        self.value += amount

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self._name, self._documentation)]

    def collect(self):
        yield CounterMetricFamily(
            self._name, self._documentation, value=self.value, created=self._created
        )


connections_open = Gauge("bridge_connections_open", "WebSocket connections open now")
connections_total = Counter(
    "bridge_connections_total", "WebSocket connections accepted"
)
disconnects_total = Counter(
    "bridge_disconnects_total", "WebSocket connections closed, by close code", ["code"]
)
messages_pushed_total = Counter(
    "bridge_messages_pushed_total", "Messages accepted by the push API"
)
messages_stored_total = Counter(
    "bridge_messages_stored_total", "Per-recipient copies written to the store"
)
# Incremented per frame, on the event loop only (messaging/realtime/outbound.py).
messages_delivered_total = LoopCounter(
    "bridge_messages_delivered_total", "Message frames sent to WebSocket clients"
)
messages_recovered_total = Counter(
    "bridge_messages_recovered_total",
    "Message frames sent from the store to fill a gap in the live stream",
)
batch_size = Histogram(
    "bridge_batch_size",
    "Messages per push request",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
push_latency_seconds = Histogram(
    "bridge_push_latency_seconds",
    "From push request received to layer events sent",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
frames_refused_total = Counter(
    "bridge_frames_refused_total", "Client frames refused, by error code", ["code"]
)
subscriptions_open = Gauge(
    "bridge_subscriptions_open", "Topic subscriptions open now (SPEC §8)"
)
topic_messages_total = Counter(
    "bridge_topic_messages_total",
    "Messages published to topics, by HTTP push or client frame (SPEC §8)",
)
pushes_unavailable_total = Counter(
    "bridge_pushes_unavailable_total",
    "Pushes and client messages refused because Redis or the database was down",
)


def _total(metric) -> float:
    return sum(
        sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def local_totals() -> dict[str, int]:
    """This process's counters, as the instance registry reports them."""
    return {
        "messages_pushed": int(_total(messages_pushed_total)),
        "messages_delivered": int(_total(messages_delivered_total)),
        "errors": int(_total(frames_refused_total) + _total(pushes_unavailable_total)),
    }
