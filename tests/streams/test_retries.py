"""The worker's retry of a failing batch (pure asyncio, no broker)."""

from __future__ import annotations

import asyncio

from streams.ingest import process_with_retries


def run_retries(failures: int, attempts: int) -> tuple[bool, int, list[int]]:
    calls = 0
    noted: list[int] = []

    async def process() -> None:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise ConnectionError("broker went away")

    def on_failure(attempt: int, err: Exception) -> None:
        assert isinstance(err, ConnectionError)
        noted.append(attempt)

    done = asyncio.run(process_with_retries(process, attempts, on_failure, backoff_s=0.0))
    return done, calls, noted


def test_a_batch_that_fails_once_is_retried_and_succeeds() -> None:
    assert run_retries(failures=1, attempts=3) == (True, 2, [1])


def test_a_batch_that_keeps_failing_gives_up_after_the_attempts() -> None:
    assert run_retries(failures=10, attempts=3) == (False, 3, [1, 2, 3])


def test_a_batch_that_succeeds_is_run_once() -> None:
    assert run_retries(failures=0, attempts=3) == (True, 1, [])
