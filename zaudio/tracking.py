"""Stream tracking: where each stream's next block should be, and what a block that is not there means.

One :class:`StreamTracker` serves every receiving node (:class:`~zaudio.Processor`
and :func:`zaudio.subscribe`). For each stream it keeps the position of the next
block (``src``, ``seq``, ``index``) and sorts every arriving block by its header:

- **in order** (same ``src``, ``seq`` and ``index`` where expected): delivered.
- **a restart** (a new ``src``): a new publisher run; delivered with ``restart``.
- **explained by our own drops** (the jump is exactly what this node's overrun
  queue dropped, :meth:`StreamTracker.own_drop`): delivered with ``gap``; nothing
  is counted as lost upstream.
- **behind** the position (``seq`` or ``index`` before it: a duplicate, a replay,
  a reordered or forged block): counted in ``rejected`` and dropped; the position
  does not move.
- **ahead** of the position, unexplained: held, not delivered, until the next
  block of that ``src`` says what it was. If that block is at or past the held
  one's end, the stream went on from there: the jump was real (frames lost
  upstream), and the held block is released with ``gap`` (counted in ``gaps`` and
  ``lost_frames``), then the new one is sorted from the new position (delivered
  if it follows, held in turn if it jumps again: a lossy link loses nothing more).
  If it is behind the held one (it continues the old position, say), the held
  block was a stray (a forged block carrying a live ``src``): counted in
  ``rejected`` and dropped, and the genuine stream goes on as if it had never come. So one block can never move a stream's position by
  itself, at the cost of one block of delay after a genuine gap. A block still
  held when its stream restarts or the node stops is counted in ``rejected``.

Every delivered block is also checked for NaN and infinite samples, counted per
stream (:meth:`StreamTracker.nonfinite`), but not before it is delivered: the
receiver hands it to :meth:`StreamTracker.check` after the user's call, and the
checks run in batches of :data:`CHECK_BATCH` (one dot product of each block with
itself, an exact count only when it is not finite; see :meth:`StreamTracker.flush`). On a cold cache (a block every 10 ms,
other processes in between) one numpy check costs as much as the whole receive,
so checking first added ~17% to the one-way latency and 0.5% of a core; batched
after the call, the first check warms the rest and nothing waits on them. (The
compiled wire, :mod:`zaudio.wire`, counts them in C as it receives an in-order block,
for a few hundred ns, and hands the count to :meth:`StreamTracker.count_nonfinite`.)

:class:`Info` is what a processor gets beside each block: the header's fields
and the tracker's verdict (``gap``, ``restart``).
"""

from __future__ import annotations

from math import isfinite
from typing import Any, Final

import msgspec
import numpy as np

from zaudio.perstream import PerStream, StreamCounts
from zaudio.protocol import AudioHeader

__all__ = [
    "CHECK_BATCH",
    "CONFIRMED",
    "GAP",
    "IN_ORDER",
    "RELEASED",
    "RESTART",
    "SKIP",
    "Info",
    "StreamTracker",
    "Track",
    "info_of",
]

#: What :meth:`StreamTracker.follow` says about a block (plain ints: no allocation).
SKIP: Final = -1  # held or rejected: do not deliver it (now)
IN_ORDER: Final = 0
GAP: Final = 1
RESTART: Final = 2
#: The held block (:meth:`StreamTracker.release`) goes first, with ``gap``; then this one.
CONFIRMED: Final = 3
#: Deliver the held block (:meth:`StreamTracker.release`), with ``gap``; this one is held now.
RELEASED: Final = 4
#: Delivered blocks checked for NaN/inf together (see the module's docstring).
CHECK_BATCH: Final = 10


class Info(msgspec.Struct, frozen=True, gc=False):
    """What a processor knows about the block (or window) it is given.

    Attributes
    ----------
    v, stream, src, seq, index, t, rate, channels, frames
        The audio header's fields (docs/protocol.md); for a window, those of its
        first frame (``index`` and ``t`` of that frame, ``seq`` of the block
        holding it) and ``frames`` the window length.
    gap : bool
        Frames of this stream were lost just before this block or window (upstream,
        or dropped by this processor's queue); a window after a gap starts afresh.
    restart : bool
        The first block of a new publisher run (a new ``src``) after an earlier one.
    dtype : str
        The sample type of the block: ``"float32"``, or ``"int16"`` when the
        processor asked for it (``dtype=``, :mod:`zaudio.adapt`). With ``rate=`` or
        ``channels=``, ``rate``, ``channels``, ``frames`` and ``index`` describe the
        converted block (``index`` counts frames at the converted rate).
    history : bool
        The block came from the proxy's history (``since=``, :mod:`zaudio.backfill`),
        not live; a window is marked so when a history block completed it.
    """

    v: int
    stream: str
    src: str
    seq: int
    index: int
    t: float
    rate: int
    channels: int
    frames: int
    gap: bool = False
    restart: bool = False
    dtype: str = "float32"
    history: bool = False


def info_of(h: AudioHeader, gap: bool, restart: bool) -> Info:
    """The :class:`Info` of a whole block."""
    return Info(
        h.v, h.stream, h.src, h.seq, h.index, h.t, h.rate, h.channels, h.frames, gap, restart
    )


class Track:
    """One stream: the next expected ``src``/``seq``/``index``, our own drops, a held block,
    and the stream's counters (:mod:`zaudio.perstream`, kept across restarts)."""

    __slots__ = ("counts", "held", "index", "own_frames", "own_msgs", "seq", "src")

    def __init__(self, h: AudioHeader, counts: StreamCounts) -> None:
        self.counts = counts
        self.src = h.src
        self.seq = h.seq + 1
        self.index = h.index + h.frames
        self.own_msgs = 0
        self.own_frames = 0
        self.held: tuple[AudioHeader, Any] | None = None


class StreamTracker:
    """The position of every stream a node receives, and the counters of what broke it.

    Not thread-safe: one thread (or one lock) at a time, like the socket it serves.

    Attributes
    ----------
    gaps, lost_frames : int
        Blocks and frames lost upstream (confirmed jumps, not our own drops).
    rejected : int
        Blocks dropped because they disagreed with their stream's position.
    counts : PerStream
        Every stream's share of the node's counters (:mod:`zaudio.perstream`);
        ``gaps`` and ``lost_frames`` are counted here, the rest by the node.
    """

    __slots__ = (
        "_nonfinite",
        "_pending",
        "_released",
        "_tracks",
        "counts",
        "gaps",
        "lost_frames",
        "rejected",
    )

    def __init__(self) -> None:
        self._tracks: dict[str, Track] = {}
        self._pending: list[tuple[str, Any]] = []
        self._nonfinite: dict[str, int] = {}
        self._released: tuple[AudioHeader, Any] | None = None
        self.counts = PerStream()
        self.gaps = 0
        self.lost_frames = 0
        self.rejected = 0

    def follow(self, h: AudioHeader, block: Any) -> int:
        """Sort one block: :data:`IN_ORDER`, :data:`GAP`, :data:`RESTART`, :data:`SKIP`,
        :data:`CONFIRMED` or :data:`RELEASED` (both: :meth:`release` the held block
        and deliver it first)."""
        track = self._tracks.get(h.stream)
        if track is not None and h.src == track.src:
            if h.seq == track.seq and h.index == track.index:
                if track.held is not None:
                    track.held = None  # the stream went on without it: a stray
                    self.rejected += 1
                verdict = IN_ORDER
            else:
                verdict = self._discontinuity(h, block, track)
                if verdict in (SKIP, RELEASED):
                    return verdict
            track.seq = h.seq + 1
            track.index = h.index + h.frames
        else:
            verdict = IN_ORDER
            if track is not None:
                verdict = RESTART
                if track.held is not None:
                    self.rejected += 1  # never confirmed before the run ended
            self._tracks[h.stream] = Track(h, self.counts.of(h.stream))
        return verdict

    def _discontinuity(self, h: AudioHeader, block: Any, track: Track) -> int:
        held = track.held
        if held is not None:
            hh = held[0]
            track.held = None
            if h.seq > hh.seq and h.index >= hh.index + hh.frames:
                # the stream went on past the held block: its jump was real
                self._count_loss(hh, track)
                self._released = held
                track.seq = hh.seq + 1
                track.index = hh.index + hh.frames
                if h.seq == track.seq and h.index == track.index:
                    return CONFIRMED
                track.held = (h, block)  # and this one jumps again
                return RELEASED
            self.rejected += 1  # behind the held block: the held one was a stray
        if h.seq < track.seq or h.index < track.index:
            self.rejected += 1  # behind: a duplicate, a replay, or forged
            return SKIP
        missing = h.seq - track.seq
        lost = h.index - track.index
        if missing == track.own_msgs and lost == track.own_frames:
            track.own_msgs = track.own_frames = 0
            return GAP  # exactly what our own queue dropped
        track.held = (h, block)
        return SKIP

    def _count_loss(self, h: AudioHeader, track: Track) -> None:
        missing = h.seq - track.seq - track.own_msgs
        lost = h.index - track.index - track.own_frames
        track.own_msgs = track.own_frames = 0
        gaps = missing if missing > 0 else 1
        lost = lost if lost > 0 else 0
        self.gaps += gaps
        self.lost_frames += lost
        counts = track.counts
        counts.gaps += gaps
        counts.lost_frames += lost

    def after(self, h: AudioHeader) -> Track | None:
        """The position of ``h``'s stream if it is right after ``h`` with nothing held
        (``h`` was the last block delivered); None otherwise (:mod:`zaudio.expected`)."""
        track = self._tracks.get(h.stream)
        if (
            track is None
            or track.held is not None
            or track.src != h.src
            or track.seq != h.seq + 1
            or track.index != h.index + h.frames
        ):
            return None
        return track

    def release(self) -> tuple[AudioHeader, Any]:
        """The held block a :data:`CONFIRMED` or :data:`RELEASED` verdict let go
        (deliver it with ``gap``)."""
        released = self._released
        assert released is not None
        self._released = None
        return released

    def own_drop(self, h: AudioHeader) -> None:
        """This node dropped ``h`` itself (overrun): the jump it leaves is not upstream loss."""
        track = self._tracks.get(h.stream)
        if track is not None and track.src == h.src:
            track.own_msgs += 1
            track.own_frames += h.frames

    def held(self) -> int:
        """Blocks held now, waiting for the next block of their stream to confirm them."""
        return sum(1 for t in self._tracks.values() if t.held is not None)

    def close(self) -> None:
        """Check what waits for its batch; count every block still held as rejected."""
        self.flush()
        for track in self._tracks.values():
            if track.held is not None:
                track.held = None
                self.rejected += 1

    def check(self, stream: str, block: Any) -> None:
        """Count the NaN/inf samples of a block delivered on ``stream`` (soon, in a batch)."""
        pending = self._pending
        pending.append((stream, block))
        if len(pending) >= CHECK_BATCH:
            self.flush()

    def count_nonfinite(self, stream: str, bad: int) -> None:
        """Count ``bad`` NaN/inf samples found in a block of ``stream`` (zaudio.wire counts as it receives)."""
        counts = self._nonfinite
        counts[stream] = counts.get(stream, 0) + bad

    def flush(self) -> None:
        """Check every block :meth:`check` holds now.

        One dot product of each block with itself (NaN and inf survive it; ~0.5 us
        where ``isfinite(...).all()`` costs ~2), under one ``errstate`` for the
        batch (its overflow on huge finite samples must not warn); an exact count
        only for a block whose product is not finite.
        """
        pending, self._pending = self._pending, []
        counts = self._nonfinite
        with np.errstate(over="ignore", invalid="ignore"):
            for stream, block in pending:
                flat = block.reshape(-1)
                if isfinite(flat.dot(flat)):
                    continue
                bad = _nonfinite(block)
                if bad:
                    counts[stream] = counts.get(stream, 0) + bad

    def stats(self) -> dict[str, Any]:
        """``gaps``, ``lost_frames``, ``rejected`` and ``nonfinite`` (per stream)."""
        return {
            "gaps": self.gaps,
            "lost_frames": self.lost_frames,
            "rejected": self.rejected,
            "nonfinite": self.nonfinite(),
        }

    def nonfinite(self) -> dict[str, int]:
        """NaN or infinite samples counted so far, per stream (streams with none left out).

        Blocks still waiting for their batch are not in it yet; :meth:`flush` (and
        :meth:`close`) check them.
        """
        return dict(self._nonfinite)


def _nonfinite(block: Any) -> int:
    """NaN and infinite samples in ``block`` (exactly)."""
    return int(block.size - np.count_nonzero(np.isfinite(block)))
