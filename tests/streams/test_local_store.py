"""streams.local_store: the batch marker and what a leftover one makes the next start discard."""

from __future__ import annotations

from pathlib import Path

from streams.local_store import MARKER_NAME, BatchMarker, discard_untrusted_partitions


def store_dirs(tmp_path: Path, partitions: range) -> dict[int, Path]:
    out = {}
    for partition in partitions:
        path = tmp_path / f"aggregates-{partition}.db"
        path.mkdir()
        (path / "000001.sst").write_bytes(b"data")
        out[partition] = path
    return out


def test_the_marker_names_the_partitions_of_an_unfinished_batch_and_goes_when_it_ends(
    tmp_path: Path,
) -> None:
    marker = BatchMarker(tmp_path / MARKER_NAME)
    assert marker.leftover() is None
    marker.begin({2, 0})
    marker.begin({1})  # a retried batch: the first attempt may have written 0 and 2
    assert BatchMarker(marker.path).leftover() == {0, 1, 2}
    marker.end()
    assert not marker.path.exists()
    assert BatchMarker(marker.path).leftover() is None
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_a_leftover_marker_discards_exactly_its_partitions_once(tmp_path: Path) -> None:
    dirs = store_dirs(tmp_path, range(4))
    crashed = BatchMarker(tmp_path / MARKER_NAME)
    crashed.begin({1, 3, 7})  # 7: a partition without a local store
    rebuilt: list[tuple[str, int]] = []

    def record(reason: str, partition: int) -> None:
        rebuilt.append((reason, partition))

    successor = BatchMarker(tmp_path / MARKER_NAME)
    assert discard_untrusted_partitions(successor, lambda: dirs, record) == {1, 3}
    assert rebuilt == [("interrupted_batch", 1), ("interrupted_batch", 3)]
    assert [p for p, d in dirs.items() if d.exists()] == [0, 2]
    assert not successor.path.exists()
    assert discard_untrusted_partitions(successor, lambda: dirs, record) == set()
    assert len(rebuilt) == 2


def test_an_unreadable_marker_discards_every_partition(tmp_path: Path) -> None:
    dirs = store_dirs(tmp_path, range(3))
    (tmp_path / MARKER_NAME).write_text("{trunc", encoding="utf-8")
    marker = BatchMarker(tmp_path / MARKER_NAME)
    assert discard_untrusted_partitions(marker, lambda: dirs, lambda r, p: None) == {0, 1, 2}
    assert not any(d.exists() for d in dirs.values())
