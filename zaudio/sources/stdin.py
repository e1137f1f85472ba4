"""``-``: raw little-endian float32 frames on stdin, interleaved; ``--rate``/``--channels`` say the format.

Not paced by zaudio: the writer sets the pace (``arecord ... | zaudio record -``).
Without ``--fast`` the recorder treats it as live (drops the oldest blocks,
counted, when its buffer overflows); with ``--fast`` it makes the writer wait.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from zaudio.sources import Block, SourceOptions, ThreadSource

__all__ = ["StdinSource", "stdin"]

log = logging.getLogger(__name__)


class StdinSource(ThreadSource):
    """Blocks of raw float32 read from a binary stream (stdin by default)."""

    paced = False
    blocking_io = True
    join_timeout = 0.2  # a read on a pipe cannot be interrupted: do not wait for it

    def __init__(self, options: SourceOptions, stream: BinaryIO | None = None) -> None:
        super().__init__()
        self.rate, self.channels = options.format()
        self.block = options.frames(self.rate)
        self.live = not options.fast
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.description = "stdin"

    def blocks(self) -> Iterator[Block]:
        frame_bytes = 4 * self.channels
        want = self.block * frame_bytes
        read = self.stream.read
        while True:
            data = read(want)
            if not data:
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
