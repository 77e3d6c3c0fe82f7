"""Bounded in-process caches of what a forecast learns from history only.

At a given as-of month, the expensive parts of ``auto`` (``forecasts.engine``) read nothing of
the forecast year: the candidates at the same month of earlier years (the rolling origins that
the weights, the cross-learned correction and the interval calibration all learn from) and the
LightGBM models of the cross-learned correction (``forecasts.crosslearn``) fitted on them. The
stream worker forecasts a nämnd again after every change in one long-lived pool process, and
almost every change is in the current year, so these are kept here between runs.

Reuse is keyed by a :func:`fingerprint` of exactly the data the cached result was computed
from (array bytes, shapes and dtypes, and the settings), never by names or periods: a late
posting in a history year, a budget or profile that changes, a new cost centre (another row)
or another leaf order gives another key and the work is done again. A hit therefore returns
what the computation would return, bit for bit (``tests/forecasts/test_cache.py``).

Each cache is a least-recently-used map bounded in entries *and* in bytes (the value's arrays
or model text, as measured by the caller), so a long-lived process cannot grow without bound.
One process, one thread: the pool process runs one forecast at a time; no locking.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import numpy as np

V = TypeVar("V")

#: Switched off by :func:`disabled` (tests compare the cached path with the uncached one).
_enabled = True
_registry: list[BoundedCache[object]] = []
#: Set by :func:`abortable` while work that may be given up runs (warming, see
#: :func:`forecasts.live.warm_organisation`): long computations call :func:`check_abort`.
_abort_check: Callable[[], bool] | None = None


class Aborted(BaseException):
    """Work run under :func:`abortable` was asked to stop; nothing half-done was kept.

    A ``BaseException`` (like ``asyncio.CancelledError``): the forecast's own ``except
    Exception`` (a panel that fails is split to find the failing series) must not take a
    request to stop for a failing series."""


@contextmanager
def abortable(should_stop: Callable[[], bool]) -> Iterator[None]:
    """Within the block, :func:`check_abort` raises :class:`Aborted` once ``should_stop()``."""
    global _abort_check
    previous, _abort_check = _abort_check, should_stop
    try:
        yield
    finally:
        _abort_check = previous


def abort_check() -> Callable[[], bool] | None:
    """The check of the enclosing :func:`abortable` block (None outside one)."""
    return _abort_check


def check_abort() -> None:
    """Raise :class:`Aborted` if the enclosing :func:`abortable` block was asked to stop."""
    if _abort_check is not None and _abort_check():
        raise Aborted


def fingerprint(*parts: object) -> str:
    """A digest of ``parts``: arrays by dtype, shape and bytes (NaN payloads included), None,
    numbers, strings, and tuples/lists/dicts of those by value."""
    digest = hashlib.blake2b(digest_size=20)
    _feed(digest, parts)
    return digest.hexdigest()


def _feed(digest: hashlib.blake2b, part: object) -> None:
    if isinstance(part, np.ndarray):
        array = np.ascontiguousarray(part)
        digest.update(f"a{array.dtype.str}{array.shape}".encode())
        if array.dtype == object:
            digest.update(repr(array.tolist()).encode())
        else:
            digest.update(array.tobytes())
    elif isinstance(part, tuple | list):
        digest.update(f"s{len(part)}(".encode())
        for item in part:
            _feed(digest, item)
        digest.update(b")")
    elif isinstance(part, dict):
        _feed(digest, sorted(part.items(), key=lambda kv: repr(kv[0])))
    elif part is None or isinstance(part, bool | int | float | str):
        digest.update(f"v{type(part).__name__}:{part!r};".encode())
    else:
        raise TypeError(f"cannot fingerprint a {type(part).__name__}")


class BoundedCache(Generic[V]):
    """A least-recently-used map holding at most ``max_entries`` values and ``max_bytes``
    (as ``size_of`` counts them); a value larger than ``max_bytes`` is not kept."""

    def __init__(
        self, name: str, max_entries: int, max_bytes: int, size_of: Callable[[V], int]
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a cache holds at least one entry and one byte")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        _registry.append(self)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> V | None:
        if not _enabled:
            return None
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: str, value: V) -> None:
        if not _enabled:
            return
        size = self._size_of(value)
        if key in self._entries:
            self.bytes -= self._entries.pop(key)[1]
        if size > self.max_bytes:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _key, (_value, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted

    def get_or_compute(self, key: str, compute: Callable[[], V]) -> V:
        """The kept value, or ``compute()``'s, kept (an exception, :class:`Aborted` too,
        keeps nothing)."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
        self.hits = self.misses = 0


def clear_all() -> None:
    """Empty every cache of the forecasts (a cold start, as in a new process)."""
    for cache in _registry:
        cache.clear()


def figures() -> dict[str, dict[str, int]]:
    """Each cache's entries, bytes, hits and misses in this process (a pool process's are
    read by submitting this to the pool)."""
    return {
        c.name: {"entries": len(c), "bytes": c.bytes, "hits": c.hits, "misses": c.misses}
        for c in _registry
    }


def caches() -> list[BoundedCache[object]]:
    """Every cache of the forecasts, for figures (entries, bytes, hits)."""
    return list(_registry)


@contextmanager
def disabled() -> Iterator[None]:
    """Within the block nothing is looked up or kept: the uncached path."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only: a cached value is shared by every later hit."""
    array.flags.writeable = False
    return array
