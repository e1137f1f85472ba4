"""Reading captures back: every file of a capture in order, its audio in stream order, and
the summary ``zaudio info`` prints.

:func:`blocks` puts each stream's recorded audio through a
:class:`~zaudio.tracking.StreamTracker` (the same one a live subscriber uses), so a
block is delivered once, in order, flagged ``gap`` when frames before it are
missing and ``restart`` when it starts a new publisher run; export and info
both read audio this way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from zaudio.capture.format import CaptureFile, Event, Message
from zaudio.decoding import Decoder
from zaudio.protocol import AudioHeader, Block, ResultHeader
from zaudio.tracking import CONFIRMED, RESTART, SKIP, StreamTracker

__all__ = ["Captures", "Piece", "StreamSummary", "Summary", "blocks", "summarize"]

log = logging.getLogger(__name__)


class Captures:
    """The records of one or more capture files (rotation parts), in order.

    Attributes
    ----------
    files : list of CaptureFile
        The files read so far (their ``corrupt``, ``corrupt_bytes``, ``torn_bytes``).
    malformed : int
        Message records whose frames do not decode (skipped by :meth:`decoded`).
    events : list of dict
        The event records passed so far.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.files = [CaptureFile(p) for p in paths]  # each checked before anything is read
        self.decoder = Decoder(log, "skipped")
        self.events: list[dict[str, Any]] = []

    @property
    def malformed(self) -> int:
        return self.decoder.malformed

    def __iter__(self) -> Iterator[Message | Event]:
        """Every record, once (a second pass reads the files again)."""
        self.decoder = Decoder(log, "skipped")
        self.events = []
        for f in self.files:
            for rec in f:
                if isinstance(rec, Event):
                    self.events.append(rec.data)
                yield rec

    def decoded(
        self,
    ) -> Iterator[tuple[Message, AudioHeader, Block] | tuple[Message, ResultHeader, None]]:
        """Each message record with its decoded header (and audio block)."""
        for rec in self:
            if isinstance(rec, Message):
                decoded = self.decoder((rec.topic, rec.header, rec.payload))
                if decoded is not None:
                    yield (rec, *decoded)

    def named(self, name: str) -> list[dict[str, Any]]:
        """The events called ``name`` passed so far."""
        return [e for e in self.events if e.get("event") == name]

    @property
    def corrupt(self) -> int:
        return sum(f.corrupt for f in self.files)

    @property
    def corrupt_bytes(self) -> int:
        return sum(f.corrupt_bytes for f in self.files)

    @property
    def torn_bytes(self) -> int:
        return self.files[-1].torn_bytes if self.files else 0

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> Captures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Piece:
    """One audio block as delivered in stream order.

    ``lost`` is the frames missing right before it (a gap: by ``index``; 0 when
    none); ``restart`` says it begins a new publisher run.
    """

    header: AudioHeader
    block: Block
    lost: int
    restart: bool


def blocks(records: Iterable[tuple[Message, Any, Any]]) -> Iterator[Piece]:
    """The audio blocks of ``records`` (:meth:`Captures.decoded`) in stream order."""
    tracker = StreamTracker()
    ends: dict[str, int] = {}

    def piece(h: AudioHeader, block: Block, restart: bool) -> Piece:
        end = ends.get(h.stream)
        ends[h.stream] = h.index + h.frames
        lost = 0 if restart or end is None else max(0, h.index - end)
        return Piece(h, block, lost, restart)

    for _rec, h, block in records:
        if type(h) is not AudioHeader:
            continue
        verdict = tracker.follow(h, block)
        if verdict == SKIP:
            continue
        if verdict == CONFIRMED:
            held_h, held_block = tracker.release()
            yield piece(held_h, held_block, False)
        yield piece(h, block, verdict == RESTART)
    tracker.close()


@dataclass
class StreamSummary:
    """One audio stream of a capture."""

    name: str
    rate: int
    channels: int
    blocks: int = 0
    frames: int = 0
    first_t: float = 0.0
    last_t: float = 0.0  # end of the last block: its t + frames / rate
    gaps: list[tuple[float, int]] = field(default_factory=list)  # (t, frames lost)
    restarts: int = 0

    @property
    def duration(self) -> float:
        return self.frames / self.rate


@dataclass
class Summary:
    """What ``zaudio info`` says about a capture."""

    files: list[str]
    messages: int = 0
    streams: dict[str, StreamSummary] = field(default_factory=dict)
    results: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    corrupt: int = 0
    corrupt_bytes: int = 0
    torn_bytes: int = 0
    ended: bool = False
    seen: dict[str, Any] = field(default_factory=dict)  # the capture's own last counters

    def as_dict(self) -> dict[str, Any]:
        streams = {
            name: {
                "rate": s.rate,
                "channels": s.channels,
                "blocks": s.blocks,
                "frames": s.frames,
                "duration": s.duration,
                "first_t": s.first_t,
                "last_t": s.last_t,
                "gaps": len(s.gaps),
                "lost_frames": sum(n for _, n in s.gaps),
                "restarts": s.restarts,
            }
            for name, s in self.streams.items()
        }
        return {
            "files": self.files,
            "messages": self.messages,
            "streams": streams,
            "results": self.results,
            "malformed": self.malformed,
            "corrupt": self.corrupt,
            "corrupt_bytes": self.corrupt_bytes,
            "torn": self.torn_bytes > 0,
            "torn_bytes": self.torn_bytes,
            "ended": self.ended,
            "capture_counters": self.seen,
        }


def _messages(caps: Captures, summary: Summary) -> Iterator[tuple[Message, Any, Any]]:
    for item in caps.decoded():
        summary.messages += 1
        h = item[1]
        if type(h) is ResultHeader:
            summary.results[h.processor] = summary.results.get(h.processor, 0) + 1
        yield item


def summarize(paths: Sequence[str | os.PathLike[str]]) -> Summary:
    """Read a capture (its rotation parts in order) and summarize it."""
    with Captures(paths) as caps:
        summary = Summary([os.fspath(p) for p in paths])
        for p in blocks(_messages(caps, summary)):
            h = p.header
            s = summary.streams.get(h.stream)
            if s is None:
                s = summary.streams[h.stream] = StreamSummary(h.stream, h.rate, h.channels)
                s.first_t = h.t
            s.blocks += 1
            s.frames += h.frames
            s.last_t = h.t + h.frames / h.rate
            if p.lost:
                s.gaps.append((h.t, p.lost))
            if p.restart:
                s.restarts += 1
        for data in caps.events:
            if data.get("event") in ("stats", "end"):
                summary.seen = {
                    k: v for k, v in data.items() if k not in ("event", "time", "rotated")
                }
        last = caps.events[-1] if caps.events else {}
        summary.ended = last.get("event") == "end" and not last.get("rotated")
        summary.malformed = caps.malformed
        summary.corrupt = caps.corrupt
        summary.corrupt_bytes = caps.corrupt_bytes
        summary.torn_bytes = caps.torn_bytes
    return summary
