"""Speed of ``parse_event`` (decode, personnummer scan, pydantic, domain checks) per event.

Run: ``.venv/bin/python -m bench.validation``. Prints the best of five passes over 20 000
distinct valid events of each type, and the machine. ``--tiny``: one pass over 500 (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import time

from bench.machine import describe
from contract.validation import parse_event
from core.settings import Settings
from services.config.domain import load_domain_config

EVENTS_PER_PASS = 20_000
PASSES = 5


def sample_events(
    kind: str, category: str, measure: str, count: int = EVENTS_PER_PASS
) -> list[bytes]:
    def one(i: int) -> dict[str, object]:
        common = {"type": kind, "event_id": f"bench-{kind}-{i}", "org_unit": "hemtjanst-nord"}
        if kind == "cost":
            return common | {"period": "2025-03", "category": category, "amount_sek": 1234.5 + i}
        if kind == "volume":
            return common | {"period": "2025-03", "measure": measure, "value": i, "unit": "h"}
        return common | {"year": 2025, "category": category, "annual": 1_000_000.0 + i}

    return [json.dumps(one(i)).encode() for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS_PER_PASS, help="events per pass")
    parser.add_argument("--passes", type=int, default=PASSES)
    parser.add_argument("--tiny", action="store_true", help="one pass over 500 events")
    args = parser.parse_args()
    if args.tiny:
        args.events, args.passes = 500, 1
    domain = load_domain_config(Settings().config_dir)
    category = sorted(domain.categories)[0]
    measure = sorted(domain.measures)[0] if domain.measures else "hemtjanst_timmar"
    print(f"machine: {describe()}")
    for kind in ("cost", "volume", "budget"):
        raws = sample_events(kind, category, measure, args.events)
        for raw in raws[:1000]:
            parse_event(raw, domain)
        best = float("inf")
        for _ in range(args.passes):
            start = time.perf_counter()
            for raw in raws:
                parse_event(raw, domain)
            best = min(best, (time.perf_counter() - start) / len(raws))
        print(f"parse_event {kind:<7} {best * 1e6:6.2f} µs/event  ({1 / best:10,.0f} events/s)")


if __name__ == "__main__":
    main()
