"""``-``: raw little-endian float32 frames on stdin, interleaved; ``--rate``/``--channels`` say the format.

Not paced by zaudio: the writer sets the pace (``arecord ... | zaudio record -``).
Never live: a pipe can wait, so the recorder reads it only as fast as the bus
takes the stream (the writer blocks on a full pipe) and no sample is dropped, with
or without ``--fast``. A producer faster than real time (``cat in.raw |``) is
published faster than real time too: processors that cannot keep up with the
burst apply their overrun policy (counted; ``zaudio process --queue`` sets how much
of a burst they hold). The reads wait on the descriptor in slices of
:data:`POLL_SLICE` seconds, so :meth:`StdinSource.stop` is prompt and the source
can run in the recorder's sender thread like any other pull source.
"""

from __future__ import annotations

import logging
import os
import select
import sys
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from zaudio.sources import Block, SourceOptions, ThreadSource

__all__ = ["POLL_SLICE", "StdinSource", "stdin"]

log = logging.getLogger(__name__)

#: Seconds one wait for input lasts before the source checks whether it was stopped.
POLL_SLICE = 0.05


class StdinSource(ThreadSource):
    """Blocks of raw float32 read from a binary stream (stdin by default)."""

    paced = False
    live = False

    def __init__(self, options: SourceOptions, stream: BinaryIO | None = None) -> None:
        super().__init__()
        self.rate, self.channels = options.format()
        self.block = options.frames(self.rate)
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.description = "stdin"

    def _fd(self) -> int | None:
        try:
            return self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.BytesIO and friends
            return None

    def _read(self, want: int) -> bytes:
        """Up to ``want`` bytes: fewer only at the end of input (or when stopped)."""
        fd = self._fd()
        if fd is None:
            return self.stream.read(want)
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        parts: list[bytes] = []
        got = 0
        while got < want and not self._stop.is_set():
            if not poller.poll(POLL_SLICE * 1000):
                continue
            data = os.read(fd, want - got)
            if not data:
                break  # end of input
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def blocks(self) -> Iterator[Block]:
        frame_bytes = 4 * self.channels
        want = self.block * frame_bytes
        while True:
            data = self._read(want)
            if self._stop.is_set():
                return
            usable = len(data) - len(data) % frame_bytes
            if usable:
                yield np.frombuffer(data[:usable] if usable < len(data) else data, "<f4").reshape(
                    -1, self.channels
                )
            if len(data) < want:
                if usable < len(data):
                    log.warning("stdin ended inside a frame: %d bytes ignored", len(data) - usable)
                return


def stdin(arg: str | None, options: SourceOptions) -> StdinSource:
    """``-``."""
    return StdinSource(options)
