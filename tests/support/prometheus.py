"""Reading a Prometheus exposition (GET /metrics) in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample, keyed by (sample name, sorted label pairs)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist yet."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(http: httpx.AsyncClient, base_url: str) -> tuple[str, Samples]:
    """GET /metrics (from 127.0.0.1, which the default allow-list admits)."""
    reply = await http.get(f"{base_url}/metrics")
    assert reply.status_code == 200, reply.text[:500]
    return reply.text, parse(reply.text)
