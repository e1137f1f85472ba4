"""The in-order fast path: a stream's next header, predicted as bytes.

A zaudio publisher's header changes in three fields from one block to the next:
``seq`` (+1), ``index`` (+frames) and ``t``. After a block was delivered in order,
:class:`Expected` holds the bytes the stream's next header has if it follows: the
header up to ``t``'s value (with the next ``seq`` and ``index`` written in) and the
rest after it. A header that starts and ends with those bytes is that block: the
same ``kind``, ``v``, ``stream``, ``src``, ``rate``, ``channels``, ``frames`` and
``dtype``, the expected ``seq`` and ``index``; only ``t``'s value is decoded (by
msgspec, as :func:`zaudio.protocol.decode` would). It is in order by construction,
so the stream tracker only moves its position on.

Why: on a cold cache (a block every 10 ms, other processes in between) decoding a
header with msgspec, validating it and sorting it costs more than the rest of the
receive (docs/benchmarks.md); matching two byte strings and one number does not.

A header that does not match (another publisher, a gap, a restart, a sender that
writes its JSON in another order or spacing: any non-zaudio node) takes the full
path: :func:`~zaudio.protocol.decode` and :meth:`StreamTracker.follow
<zaudio.tracking.StreamTracker.follow>`. Nothing is accepted here that ``decode``
would refuse: the prediction is only made from a header that is exactly what
zaudio's own encoder writes for it.

The compiled wire (zaudio/_wire.c, :mod:`zaudio.wire`) runs :meth:`Expected.match`'s
checks in C on the same attributes, as it receives the message.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from zaudio.protocol import MAX_HEADER, AudioHeader, encode_json, view_block
from zaudio.tracking import Info, StreamTracker, Track

__all__ = ["Expected"]

_float: Final = msgspec.json.Decoder(float)


class Expected:
    """The next in-order block of one stream, as header bytes (see the module docstring).

    Made by :meth:`of` from a block just delivered in order; :meth:`match` takes
    the next message's frames and, on a match, moves the prediction (and the
    stream's position) past it. The compiled wire (:mod:`zaudio.wire`) reads the
    same attributes and does the same.

    Attributes
    ----------
    head, suffix : bytes
        The header up to ``"seq":`` and from ``,"rate":`` on.
    seq, index : int
        The predicted block's; ``seq`` and ``index`` are written between ``head`` and
        ``t``'s value as ``{seq},"index":{index},"t":``.
    """

    __slots__ = (
        "_track",
        "channels",
        "counts",
        "frames",
        "head",
        "index",
        "nbytes",
        "rate",
        "seq",
        "shape",
        "src",
        "stream",
        "suffix",
    )

    def __init__(self, h: AudioHeader, head: bytes, suffix: bytes, track: Track) -> None:
        self.stream = h.stream
        self.src = h.src
        self.rate = h.rate
        self.channels = h.channels
        self.frames = h.frames
        self.shape = (h.frames, h.channels)
        self.nbytes = h.frames * h.channels * 4
        self.head = head
        self.suffix = suffix
        self._track = track
        self.counts = track.counts  # the stream's counters (zaudio.perstream)
        self.seq = h.seq + 1
        self.index = h.index + h.frames

    @classmethod
    def of(cls, h: AudioHeader, raw: bytes, tracker: StreamTracker) -> Expected | None:
        """The prediction after ``h`` (raw header bytes ``raw``) was delivered in order.

        None when ``raw`` is not exactly zaudio's encoding of ``h``, or ``h`` is not
        where its stream's position now says it was (held blocks, another run).
        """
        track = tracker.after(h)
        if track is None or encode_json(h) != raw:
            return None
        mid = b',"seq":%d,"index":%d,"t":' % (h.seq, h.index)
        start = raw.find(mid)
        end = raw.find(b',"rate":', start)
        if start < 0 or end < 0:
            return None
        return cls(h, raw[: start + 7], raw[end:], track)

    def match(self, frames: list[Any]) -> tuple[Info, Any] | None:
        """The predicted block's ``Info`` and read-only array, if ``frames`` is it; else None.

        On a match the prediction and the stream tracker's position move past it
        (the caller then delivers it).
        """
        if len(frames) != 3:
            return None
        raw = frames[1]
        if type(raw) is not bytes:
            raw = raw.bytes
        seq, index = self.seq, self.index
        prefix = self.head + b'%d,"index":%d,"t":' % (seq, index)
        suffix = self.suffix
        lp, n = len(prefix), len(raw)
        if n > MAX_HEADER or n <= lp + len(suffix):
            return None
        if not (raw.startswith(prefix) and raw.endswith(suffix)):
            return None
        try:
            t = _float.decode(raw[lp : n - len(suffix)])
        except msgspec.DecodeError:  # ValidationError is one
            return None
        payload = memoryview(frames[2])
        if payload.nbytes != self.nbytes:
            return None
        block = view_block(payload, self.shape)
        track = self._track
        track.seq = self.seq = seq + 1
        track.index = self.index = index + self.frames
        info = Info(1, self.stream, self.src, seq, index, t, self.rate, self.channels, self.frames)
        return info, block
