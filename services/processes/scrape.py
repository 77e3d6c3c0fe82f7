"""Reading a process's Prometheus ``/metrics``: the demo, the benches and the tests use this.

The text format is parsed by prometheus_client's own parser; a sample is
``(name, labels, value)``.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable

Sample = tuple[str, dict[str, str], float]


def fetch_metrics(port: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as resp:
        body: bytes = resp.read()
    return body.decode("utf-8")


def parse_samples(text: str) -> list[Sample]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def scrape(port: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> list[Sample]:
    """The samples ``host:port/metrics`` serves now."""
    return parse_samples(fetch_metrics(port, host, timeout_s))


def sum_metric(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )
