"""Fuzzing at scale: ≥ 100 000 generated inputs through ``parse_event`` and the publish reader.

Run: ``.venv/bin/python -m bench.fuzz [--inputs N] [--seed S]``. The inputs come from
``testing.fuzz`` (valid events, mutated ones, and ones carrying a valid personnummer or
samordningsnummer in one of many spellings, anywhere). Every input must be accepted or rejected
with a reason; nothing else may escape; a carried identity number must be rejected and no
reason may hold one. Prints the counts, the rate and the machine; exits 1 on any failure.
``--tiny``: 2 000 inputs (a smoke run). The worst case it also times: a 1 MB message of
single digits separated by spaces (the guard's most expensive input).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.machine import describe
from contract.validation import MAX_MESSAGE_BYTES, InvalidEvent, parse_event
from core.settings import Settings
from services.batch.publish import read_events
from services.config.domain import load_domain_config
from testing.fuzz import FuzzFailure, check_message, messages

DEFAULT_INPUTS = 100_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=DEFAULT_INPUTS)
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--tiny", action="store_true", help="2 000 inputs")
    args = parser.parse_args()
    if args.tiny:
        args.inputs = 2_000
    domain = load_domain_config(Settings().config_dir)
    print(f"machine: {describe()}")

    inputs = list(messages(args.seed, args.inputs))
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    failures: list[str] = []
    start = time.perf_counter()
    for item in inputs:
        try:
            outcomes[check_message(item, domain)] += 1
        except FuzzFailure as err:
            failures.append(str(err)[:300])
        kinds[item.kind] += 1
    elapsed = time.perf_counter() - start
    carried = kinds["personal_id"]
    print(
        f"parse_event: {len(inputs):,} inputs in {elapsed:.1f} s ({len(inputs) / elapsed:,.0f}/s): "
        f"{outcomes['accepted']:,} accepted + {outcomes['rejected']:,} rejected = "
        f"{sum(outcomes.values()):,}; {carried:,} carried an identity number; "
        f"{len(failures)} failures"
    )
    by_reason = Counter(_kind(item.raw, domain) for item in inputs[:20_000])
    print(
        "rejections by kind (first 20 000): " + ", ".join(f"{k} {n}" for k, n in by_reason.items())
    )

    # The publish reader on the same inputs, one per line, files of 5 000 lines.
    start = time.perf_counter()
    events = rejected = lines = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(0, len(inputs), 5_000):
            chunk = [i.raw.replace(b"\n", b" ").replace(b"\r", b" ") for i in inputs[n : n + 5_000]]
            path = Path(tmp) / f"chunk-{n}.jsonl"
            path.write_bytes(b"\n".join(chunk) + b"\n")
            loaded = read_events(path, domain)
            events += len(loaded.events)
            rejected += len(loaded.rejections)
            lines += sum(1 for c in chunk if c.decode(errors="replace").strip())
    elapsed = time.perf_counter() - start
    print(
        f"publish reader: {lines:,} lines in {elapsed:.1f} s ({lines / elapsed:,.0f}/s): "
        f"{events:,} events + {rejected:,} rejections = {events + rejected:,}"
    )

    worst = (b"1 " * (MAX_MESSAGE_BYTES // 2))[: MAX_MESSAGE_BYTES - 20]
    start = time.perf_counter()
    with contextlib.suppress(InvalidEvent):
        parse_event(b'{"source": "' + worst + b'"}', domain)
    print(
        f"worst case: a {MAX_MESSAGE_BYTES // 1000} kB message of spaced digits: "
        f"{time.perf_counter() - start:.2f} s"
    )
    for failure in failures[:10]:
        print(f"FAILURE: {failure}")
    if failures or events + rejected != lines:
        return 1
    return 0


def _kind(raw: bytes, domain: object) -> str:
    try:
        parse_event(raw, domain)  # type: ignore[arg-type]
    except InvalidEvent as err:
        return err.kind
    return "accepted"


if __name__ == "__main__":
    sys.exit(main())
