"""A processor's counters per input stream: what its heartbeats carry as ``stats["streams"]``.

The totals (``received``, ``processed``, ``dropped``, ``gaps``, ``lost_frames``,
``failed``) stay where they are counted (:mod:`zaudio.delivery`, :mod:`zaudio.overrun`,
:mod:`zaudio.tracking`, :mod:`zaudio.failures`); each place that counts one also adds it to its stream's
:class:`StreamCounts`, which :class:`PerStream` makes once, the first time the
stream is seen, so a block costs an integer add on an object reached through a
lookup the receive path already does (or one ``dict.get`` where it did none),
and no allocation.

:meth:`PerStream.breakdown` is what a heartbeat carries: at most
:data:`~zaudio.bounds.MAX_STATS_STREAMS` streams (the first seen; a name longer
than :data:`~zaudio.bounds.MAX_STATS_KEY` cannot be a key and is left out too).
What is left out is still in the totals.
"""

from __future__ import annotations

from itertools import islice

from zaudio.bounds import MAX_STATS_KEY, MAX_STATS_STREAMS

__all__ = ["FIELDS", "PerStream", "StreamCounts"]

#: The counters of each stream, in the order a heartbeat carries them.
FIELDS = ("received", "processed", "dropped", "gaps", "lost_frames", "failed")


class StreamCounts:
    """One input stream's share of the processor's totals (see the module docstring)."""

    __slots__ = FIELDS

    def __init__(self) -> None:
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.gaps = 0
        self.lost_frames = 0
        self.failed = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name (:data:`FIELDS`)."""
        return {
            "received": self.received,
            "processed": self.processed,
            "dropped": self.dropped,
            "gaps": self.gaps,
            "lost_frames": self.lost_frames,
            "failed": self.failed,
        }


class PerStream(dict[str, StreamCounts]):
    """Every input stream's :class:`StreamCounts`, by stream name (first seen first)."""

    def of(self, stream: str) -> StreamCounts:
        """The counters of ``stream``, made the first time it is seen."""
        counts = self.get(stream)
        if counts is None:
            counts = self[stream] = StreamCounts()
        return counts

    def breakdown(self, limit: int = MAX_STATS_STREAMS) -> dict[str, dict[str, int]]:
        """At most ``limit`` streams' counters, as a heartbeat carries them."""
        named = ((s, c) for s, c in list(self.items()) if len(s) <= MAX_STATS_KEY)
        return {s: c.as_dict() for s, c in islice(named, limit)}
