"""Fuzzing at scale: ≥ 100 000 generated inputs through ``parse_event`` and the file readers.

Run: ``.venv/bin/python -m bench.fuzz [--inputs N] [--seed S]``. The inputs come from
``testing.fuzz`` (valid events, mutated ones, and ones carrying a valid personnummer or
samordningsnummer in one of many spellings, anywhere). Every input must be accepted or rejected
with a reason; nothing else may escape; a carried identity number must be rejected and no
reason may hold one. Then the same inputs through the ``publish`` JSON Lines reader, and
generated CSV files (hostile cells, identity numbers) through the ``forecast`` readers. Prints
the counts, the rate and the machine; exits 1 on any failure.
``--tiny``: 2 000 inputs (a smoke run). The worst case it also times: a 1 MB message of
single digits separated by spaces (the guard's most expensive input).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.machine import describe
from contract.validation import MAX_MESSAGE_BYTES, InvalidEvent, parse_event
from core.errors import UserError
from core.settings import Settings
from services.batch.forecast import (
    ACTUALS_COLUMNS,
    BUDGET_COLUMNS,
    VOLUME_COLUMNS,
    read_actuals,
    read_budgets,
    read_volumes,
)
from services.batch.publish import read_events
from services.config.domain import load_domain_config
from testing.fuzz import FuzzFailure, check_message, check_reason, csv_text, messages

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

    # The forecast readers (fail fast: a file reads whole or stops at its first bad line).
    rng = random.Random(args.seed)
    readers = {
        "actuals": (ACTUALS_COLUMNS, read_actuals),
        "volumes": (VOLUME_COLUMNS, lambda p: read_volumes(p, ["home_care_hours"])),
        "budgets": (BUDGET_COLUMNS, lambda p: read_budgets(p, {})),
    }
    files = max(30, args.inputs // 20)
    read_ok = user_errors = rows_total = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(files):
            columns, reader = readers[rng.choice(sorted(readers))]
            text, carried = csv_text(rng, list(columns), rng.randint(1, 8))
            path = Path(tmp) / f"in-{n}.csv"
            path.write_text(text, encoding="utf-8")
            rows_total += text.count("\n") - 1
            try:
                reader(path)
                read_ok += 1
                if carried is not None and carried.spelled.strip() in text:
                    failures.append("a forecast reader accepted a file with an identity number")
            except UserError as err:
                user_errors += 1
                try:
                    check_reason(str(err), carried)
                except FuzzFailure as failure:
                    failures.append(str(failure))
            except Exception as err:
                failures.append(f"{type(err).__name__} escaped a forecast reader")
    elapsed = time.perf_counter() - start
    print(
        f"forecast readers: {files:,} files ({rows_total:,} rows) in {elapsed:.1f} s: "
        f"{read_ok:,} read + {user_errors:,} refused with a reason = {read_ok + user_errors:,}"
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
