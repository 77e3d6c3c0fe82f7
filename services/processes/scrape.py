"""Reading a process's Prometheus ``/metrics``: the demo, the benches and the tests use this.

The text format is parsed by prometheus_client's own parser; a sample is
``(name, labels, value)``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any

from core.errors import UserError

Sample = tuple[str, dict[str, str], float]


def fetch_metrics(
    port: int, host: str = "127.0.0.1", timeout_s: float = 5.0, names: Sequence[str] = ()
) -> str:
    """``/metrics``; with ``names`` only those samples' families (``?name[]=``, as Prometheus's
    own exposition filters: the worker then renders no forecast gauge)."""
    query = "?" + urllib.parse.urlencode({"name[]": list(names)}, doseq=True) if names else ""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics{query}", timeout=timeout_s) as resp:
        body: bytes = resp.read()
    return body.decode("utf-8")


def fetch_unmapped(base_url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The worker's ``/unmapped`` answer; a ``UserError`` naming the URL when it is not there."""
    url = base_url.rstrip("/") + "/unmapped"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"cannot read {url} (is the worker running there?): {reason}") from None
    return answer


def parse_samples(text: str) -> list[Sample]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def scrape(
    port: int, host: str = "127.0.0.1", timeout_s: float = 5.0, names: Sequence[str] = ()
) -> list[Sample]:
    """The samples ``host:port/metrics`` serves now (only ``names``' if given)."""
    return parse_samples(fetch_metrics(port, host, timeout_s, names))


def sum_metric(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )
