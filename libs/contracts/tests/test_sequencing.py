"""The chunk order rule (contracts/sequencing.py), case by case."""

from __future__ import annotations

from ark_mesh.contracts.sequencing import ChunkSequencer


def feed(sequencer: ChunkSequencer[int], seqs: list[int], final: int | None = None) -> list[int]:
    out: list[int] = []
    for seq in seqs:
        out += sequencer.push(seq, seq, final=seq == final)
    return out


def test_in_order_chunks_pass_straight_through() -> None:
    sequencer: ChunkSequencer[int] = ChunkSequencer()
    assert feed(sequencer, [1, 2, 3]) == [1, 2, 3]
    assert sequencer.holding == 0
    assert sequencer.expected == 4


def test_a_chunk_stored_late_is_put_back_in_place() -> None:
    """What a leader election leaves in the stream: 4 and 5 re-sent after 6 and 7."""
    sequencer: ChunkSequencer[int] = ChunkSequencer()
    assert feed(sequencer, [1, 2, 3, 6, 7]) == [1, 2, 3]
    assert sequencer.holding == 2
    assert feed(sequencer, [4]) == [4]
    assert feed(sequencer, [5]) == [5, 6, 7]
    assert feed(sequencer, [8, 9], final=9) == [8, 9]
    assert sequencer.skipped == 0


def test_duplicates_are_dropped_whether_handed_out_or_held() -> None:
    sequencer: ChunkSequencer[int] = ChunkSequencer()
    assert feed(sequencer, [1, 2, 2, 1, 4, 4]) == [1, 2]
    assert feed(sequencer, [3, 3, 4]) == [3, 4]


def test_the_final_chunk_releases_what_is_held_then_itself() -> None:
    """A number still missing at the final chunk was never stored: its neighbours still go
    out, in order, and the reader learns how many were skipped."""
    sequencer: ChunkSequencer[int] = ChunkSequencer()
    assert feed(sequencer, [1, 3, 5]) == [1]
    assert sequencer.push(6, 6, final=True) == [3, 5, 6]
    assert sequencer.skipped == 2


def test_a_final_chunk_numbered_like_one_handed_out_still_ends_the_stream() -> None:
    """The final chunk is never dropped as a duplicate: the stream ends with it."""
    sequencer: ChunkSequencer[int] = ChunkSequencer()
    assert feed(sequencer, [1, 2, 3]) == [1, 2, 3]
    assert sequencer.push(2, 2, final=True) == [2]


def test_a_resumed_reader_starts_after_what_it_has() -> None:
    sequencer: ChunkSequencer[int] = ChunkSequencer(after=3)
    assert feed(sequencer, [1, 2, 3, 5, 4]) == [4, 5]


def test_too_many_held_gives_up_on_the_gap() -> None:
    sequencer: ChunkSequencer[int] = ChunkSequencer(hold=3)
    assert feed(sequencer, [1, 3, 4, 5]) == [1]
    assert feed(sequencer, [6]) == [3, 4, 5, 6]
    assert sequencer.skipped == 1
    assert feed(sequencer, [2, 7]) == [7]


def test_skip_gap_on_demand() -> None:
    sequencer: ChunkSequencer[int] = ChunkSequencer()
    assert feed(sequencer, [2, 4]) == []
    assert sequencer.skip_gap() == [2, 4]
    assert sequencer.skipped == 2
    assert sequencer.skip_gap() == []
    assert feed(sequencer, [5]) == [5]
