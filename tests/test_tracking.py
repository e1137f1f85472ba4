"""The stream tracker: in order, gaps confirmed by the next block, strays rejected, NaN counted."""

from __future__ import annotations

import numpy as np

from zaudio.protocol import AudioHeader
from zaudio.tracking import (
    CHECK_BATCH,
    CONFIRMED,
    GAP,
    IN_ORDER,
    RELEASED,
    RESTART,
    SKIP,
    StreamTracker,
)

FRAMES = 10


def hdr(seq: int, index: int | None = None, src: str = "a", stream: str = "s") -> AudioHeader:
    return AudioHeader(
        v=1, stream=stream, src=src, seq=seq, index=seq * FRAMES if index is None else index,
        t=0.0, rate=1000, channels=1, frames=FRAMES, dtype="float32",
    )  # fmt: skip


def test_in_order_and_restart() -> None:
    tr = StreamTracker()
    assert [tr.follow(hdr(k), None) for k in range(3)] == [IN_ORDER] * 3
    assert tr.follow(hdr(0, src="b"), None) == RESTART
    assert tr.follow(hdr(1, src="b"), None) == IN_ORDER
    assert (tr.gaps, tr.lost_frames, tr.rejected) == (0, 0, 0)


def test_a_genuine_gap_is_confirmed_by_the_next_block() -> None:
    tr = StreamTracker()
    for k in range(3):
        tr.follow(hdr(k), None)
    held = np.ones((FRAMES, 1), np.float32)
    assert tr.follow(hdr(5), held) == SKIP  # held until the next block says what it was
    assert tr.held() == 1
    assert tr.follow(hdr(6), None) == CONFIRMED
    h, block = tr.release()
    assert h.seq == 5 and block is held
    assert (tr.gaps, tr.lost_frames, tr.rejected, tr.held()) == (2, 2 * FRAMES, 0, 0)
    assert tr.follow(hdr(7), None) == IN_ORDER


def test_one_forged_block_ahead_is_rejected_and_does_not_move_the_stream() -> None:
    tr = StreamTracker()
    for k in range(3):
        tr.follow(hdr(k), None)
    forged = hdr(3, index=3 * FRAMES + 11 * 1000)  # 11 s ahead
    assert tr.follow(forged, None) == SKIP
    # the genuine stream goes on from where it was
    assert [tr.follow(hdr(k), None) for k in range(3, 6)] == [IN_ORDER] * 3
    assert (tr.gaps, tr.lost_frames, tr.rejected) == (0, 0, 1)


def test_blocks_behind_the_position_are_rejected() -> None:
    tr = StreamTracker()
    for k in range(4):
        tr.follow(hdr(k), None)
    assert tr.follow(hdr(1), None) == SKIP  # a replay
    assert tr.follow(hdr(4, index=0), None) == SKIP  # seq right, index behind
    assert tr.follow(hdr(4), None) == IN_ORDER
    assert (tr.gaps, tr.rejected) == (0, 2)


def test_own_drops_are_a_gap_at_once_and_not_upstream_loss() -> None:
    tr = StreamTracker()
    tr.follow(hdr(0), None)
    tr.own_drop(hdr(1))
    tr.own_drop(hdr(2))
    assert tr.follow(hdr(3), None) == GAP
    assert (tr.gaps, tr.lost_frames, tr.rejected) == (0, 0, 0)
    # own drops plus upstream loss: held, then counted as the upstream part only
    tr.own_drop(hdr(4))
    assert tr.follow(hdr(6), None) == SKIP
    assert tr.follow(hdr(7), None) == CONFIRMED
    tr.release()
    assert (tr.gaps, tr.lost_frames) == (1, FRAMES)


def test_a_held_block_never_confirmed_is_counted_at_close_and_at_restart() -> None:
    tr = StreamTracker()
    tr.follow(hdr(0), None)
    assert tr.follow(hdr(9), None) == SKIP
    tr.close()
    assert tr.rejected == 1 and tr.held() == 0
    assert tr.follow(hdr(20), None) == SKIP
    assert tr.follow(hdr(0, src="new"), None) == RESTART
    assert tr.rejected == 2


def test_nonfinite_samples_are_counted_per_stream() -> None:
    tr = StreamTracker()
    ok = np.zeros((FRAMES, 1), np.float32)
    bad = ok.copy()
    bad[[1, 4, 7]] = [[np.nan], [np.inf], [-np.inf]]
    huge = np.full((FRAMES, 1), 3e38, np.float32)  # finite, though its squares overflow
    for h, block in [(hdr(0), ok), (hdr(1), bad), (hdr(2), huge), (hdr(0, stream="t"), ok)]:
        tr.follow(h, block)
        tr.check(h.stream, block)  # what a receiver does after delivering it
    assert tr.nonfinite() == {}  # checked in batches, after delivery
    tr.flush()
    assert tr.nonfinite() == {"s": 3}
    for _ in range(CHECK_BATCH):  # a full batch is checked without asking
        tr.check("t", bad)
    assert tr.nonfinite() == {"s": 3, "t": 3 * CHECK_BATCH}


def test_a_lossy_link_loses_nothing_more_than_it_lost() -> None:
    """Every other block lost: each jump is confirmed by the next block being past it."""
    tr = StreamTracker()
    tr.follow(hdr(0), None)
    got = []
    for k in range(2, 12, 2):  # blocks 1, 3, 5, 7, 9 never arrive
        verdict = tr.follow(hdr(k), k)
        if verdict in (CONFIRMED, RELEASED):
            got.append(tr.release()[1])
        assert verdict == (SKIP if k == 2 else RELEASED)
    assert got == [2, 4, 6, 8]  # 10 is held: the next block will say what it was
    assert (tr.gaps, tr.lost_frames, tr.rejected) == (4, 4 * FRAMES, 0)
    assert tr.follow(hdr(11), None) == CONFIRMED and tr.release()[0].seq == 10


def test_gaps_are_counted_per_stream_and_kept_across_a_restart() -> None:
    tr = StreamTracker()
    for k in range(3):
        tr.follow(hdr(k, stream="s"), None)
        tr.follow(hdr(k, stream="t"), None)
    tr.follow(hdr(5, stream="s"), None)  # two blocks of s lost upstream
    assert tr.follow(hdr(6, stream="s"), None) == CONFIRMED
    tr.release()
    assert tr.follow(hdr(0, src="b", stream="s"), None) == RESTART
    tr.follow(hdr(3, src="b", stream="s"), None)  # and two more after the restart
    assert tr.follow(hdr(4, src="b", stream="s"), None) == CONFIRMED
    s, t = tr.counts["s"], tr.counts["t"]
    assert (s.gaps, s.lost_frames) == (4, 4 * FRAMES) == (tr.gaps, tr.lost_frames)
    assert (t.gaps, t.lost_frames) == (0, 0)
    assert list(tr.counts.breakdown()) == ["s", "t"]
