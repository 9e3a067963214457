"""`processors/inflight.py`: which record killed the processors, across process deaths.

A "death" here is a `DeathWatch` dropped while a fold is noted in flight and a new one opened on
the same directory, as a restarted worker does; the real process death against the broker is in
`tests/faults/test_processor_death.py`."""

from __future__ import annotations

from pathlib import Path

from kaizen.processors.folding import Record
from kaizen.processors.inflight import DeathWatch


def _records(*offsets: int, partition: int = 0) -> list[Record]:
    return [Record("t.episodes", partition, o, b"k", b"v") for o in offsets]


def _die_folding(watch: DeathWatch, records: list[Record]) -> DeathWatch:
    """Note `records` in flight, die (the lock goes with the process), start again."""
    watch.folding(records)
    watch._lock.close()
    return DeathWatch(watch.path.parent, watch.step)


def test_a_clean_run_folds_batches_whole_and_leaves_nothing_in_flight(tmp_path: Path) -> None:
    watch = DeathWatch(tmp_path, "assemble")
    batch = _records(1, 2, 3)
    assert watch.pieces(batch) == [batch]
    watch.folding(batch)
    watch.folded(batch)
    watch._lock.close()
    again = DeathWatch(tmp_path, "assemble")
    assert again.deaths == {} and again.pieces(batch) == [batch]


def test_after_a_death_the_batch_is_cut_so_each_suspect_is_folded_alone(tmp_path: Path) -> None:
    watch = _die_folding(DeathWatch(tmp_path, "assemble"), _records(2, 3))
    batch = _records(1, 2, 3, 4, 5)
    assert [[r.offset for r in piece] for piece in watch.pieces(batch)] == [[1], [2], [3], [4, 5]]
    assert watch.doomed(_records(2)) == 0  # one death: fold it again


def test_a_record_is_doomed_at_the_third_death_and_forgotten_once_handled(tmp_path: Path) -> None:
    batch = _records(7, 8, 9)
    watch = _die_folding(DeathWatch(tmp_path, "assemble"), batch)  # death 1: the whole batch
    watch.folded(_records(7))  # innocent: folds alone, forgotten
    watch = _die_folding(watch, _records(8))  # death 2
    assert watch.doomed(_records(8)) == 0
    watch = _die_folding(watch, _records(8))  # death 3
    assert watch.doomed(_records(8)) == 3
    assert watch.doomed(_records(9)) == 0 and watch.doomed(_records(8, 9)) == 0
    assert "died 3 times" in watch.reason(3)
    watch.folded(_records(8))  # dead-lettered
    watch.folded(_records(9))
    watch._lock.close()
    assert DeathWatch(tmp_path, "assemble").deaths == {}


def test_a_death_outside_a_fold_counts_nothing(tmp_path: Path) -> None:
    watch = DeathWatch(tmp_path, "assemble")
    watch.folding(_records(1))
    watch.folded(_records(1))  # the fold returned; the send then failed and the process died
    watch._lock.close()
    assert DeathWatch(tmp_path, "assemble").deaths == {}


def test_two_live_workers_on_one_data_dir_keep_separate_files(tmp_path: Path) -> None:
    first, second = DeathWatch(tmp_path, "curate"), DeathWatch(tmp_path, "curate")
    assert first.path != second.path
    first.folding(_records(1))
    assert DeathWatch(tmp_path, "assemble").deaths == {}  # steps never share a file


def test_a_death_folding_two_partitions_marks_every_record_of_both(tmp_path: Path) -> None:
    batch = [*_records(4, 5, 6), *_records(10, 11, partition=2)]
    watch = _die_folding(DeathWatch(tmp_path, "assemble"), batch)
    assert watch.deaths == {("t.episodes", 0, 4): 1, ("t.episodes", 0, 5): 1,
                            ("t.episodes", 0, 6): 1, ("t.episodes", 2, 10): 1,
                            ("t.episodes", 2, 11): 1}


def test_a_file_an_earlier_version_left_with_single_positions_still_counts(
        tmp_path: Path) -> None:
    watch = DeathWatch(tmp_path, "assemble")
    watch._lock.close()
    watch.path.write_text('{"inflight": [["t.episodes", 0, 3]], "deaths": []}')
    assert DeathWatch(tmp_path, "assemble").deaths == {("t.episodes", 0, 3): 1}


def test_a_shorter_state_written_over_a_longer_one_reads_back_alone(tmp_path: Path) -> None:
    watch = DeathWatch(tmp_path, "assemble")
    wide = [r for p in range(12) for r in _records(100, 101, partition=p)]
    watch.folding(wide)
    watch.folded(wide)
    watch = _die_folding(watch, _records(5))  # written over the longer state, padded
    assert watch.deaths == {("t.episodes", 0, 5): 1}
