"""Re-blocking a stream into exact windows of ``window`` frames every ``hop`` frames.

Blocks arrive in whatever size the publisher chose; a :class:`Windower` copies
them into one growing buffer and cuts windows across message boundaries, so that
window ``k`` holds exactly frames ``[start + k*hop, start + k*hop + window)`` of the
stream. Each window is a fresh array (the only copy on this path): it stays valid
after the call, and the user may keep it.

On a gap (frames lost upstream or dropped by the processor's queue) and on a
restart (a new ``src``), the partial window is discarded: the next window starts
at the first frame after the gap, and its ``gap`` (or ``restart``) flag is set.
Windows never straddle a gap and are never zero-filled.

:class:`Windows` holds one :class:`Windower` per stream and is fed by one call,
:meth:`Windows.feed`, from every receiving node (processors and
:func:`zaudio.subscribe` alike).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from zaudio.errors import ConfigError
from zaudio.protocol import AudioHeader
from zaudio.tracking import Info
from zaudio.units import parse_block

__all__ = ["Windower", "Windows", "check_window", "window_frames"]


def window_frames(spec: str | float | int, rate: int, what: str) -> int:
    """Frames in a window or hop spec at ``rate``: a duration (``"25ms"``, seconds as
    a float) or a frame count (int or ``"1200"``). Raises ConfigError."""
    if isinstance(spec, float):
        spec = f"{spec}s"
    return parse_block(spec, rate, what)


def check_window(
    window: str | float | None, hop: str | float | None
) -> tuple[str | float, str | float] | None:
    """``(window, hop)`` checked (at 48 kHz, so a typo fails before connecting), or None.

    ``hop`` defaults to ``window``. Raises ConfigError for a ``hop`` without a
    ``window`` and for a spec that is not a duration or a frame count.
    """
    if window is None:
        if hop is not None:
            raise ConfigError("--hop needs --window")
        return None
    hop = window if hop is None else hop
    window_frames(window, 48000, "window")
    window_frames(hop, 48000, "hop")
    return window, hop


class Windows:
    """The windows of every stream a node receives, fed one block at a time.

    Parameters
    ----------
    window, hop : str or float or int
        As for :func:`window_frames`, converted at each stream's own rate.
    align : bool
        Start windows only at stream indices that are multiples of the hop (as
        :class:`Windower`): every member of a processor group cuts the same windows.
    """

    __slots__ = ("_streams", "align", "hop", "window")

    def __init__(
        self, window: str | float | int, hop: str | float | int, align: bool = False
    ) -> None:
        self.window = window
        self.hop = hop
        self.align = align
        self._streams: dict[str, Windower] = {}

    def feed(
        self, h: AudioHeader, block: npt.NDArray[np.float32], gap: bool, restart: bool
    ) -> Iterator[tuple[npt.NDArray[np.float32], Info]]:
        """Feed one block to its stream's :class:`Windower`; yield ``(window, info)``.

        A gap or restart is reported on the next window that is emitted, even when
        the block that revealed it was too short to complete one.
        """
        w = self._streams.get(h.stream)
        if w is None or w.channels != h.channels or restart:
            w = self._streams[h.stream] = Windower(
                window_frames(self.window, h.rate, "window"),
                window_frames(self.hop, h.rate, "hop"),
                h.channels,
                self.align,
            )
        elif gap:
            w.reset()
        gap = w.gap = w.gap or gap
        restart = w.restart = w.restart or restart
        for data, index, seq, t in w.push(block, h.index, h.seq, h.t, h.rate):
            info = Info(
                h.v, h.stream, h.src, seq, index, t, h.rate, h.channels, data.shape[0],
                gap, restart,
            )  # fmt: skip
            gap = restart = w.gap = w.restart = False
            yield data, info


class Windower:
    """Windows of one stream.

    Parameters
    ----------
    window, hop : int
        Window length and step in frames (``hop > window`` skips frames between
        windows; ``hop < window`` overlaps them).
    channels : int
        Channel count of the stream.
    align : bool
        Windows start only at stream indices that are multiples of ``hop`` (the
        frames before the first such index, at the start and after a gap, are
        skipped), so two windowers that join a stream at different blocks cut
        the same windows.
    """

    __slots__ = (
        "_blocks",
        "_buf",
        "_fill",
        "_skip",
        "_start",
        "align",
        "channels",
        "gap",
        "hop",
        "restart",
        "window",
    )

    def __init__(self, window: int, hop: int, channels: int, align: bool = False) -> None:
        if window < 1 or hop < 1:
            raise ValueError("window and hop must be at least one frame")
        self.align = align
        self.window = window
        self.hop = hop
        self.channels = channels
        #: a gap / restart seen but not yet reported on an emitted window
        self.gap = False
        self.restart = False
        self._buf: npt.NDArray[np.float32] = np.empty((2 * window, channels), np.float32)
        self._fill = 0
        self._skip = 0
        self._start = 0  # stream index of _buf[0]
        # (index, seq, t) of the blocks whose frames are in the buffer
        self._blocks: deque[tuple[int, int, float]] = deque()

    def reset(self) -> None:
        """Forget the partial window (after a gap or restart)."""
        self._fill = 0
        self._skip = 0
        self._blocks.clear()

    def push(
        self, block: npt.NDArray[np.float32], index: int, seq: int, t: float, rate: int
    ) -> Iterator[tuple[npt.NDArray[np.float32], int, int, float]]:
        """Add one block (which must follow the previous one); yield complete windows.

        Yields ``(window, index, seq, t)``: the window's frames, the stream index
        and time of its first frame, and the ``seq`` of the block holding it.
        """
        n = block.shape[0]
        if self.align and not self._fill and not self._skip and index % self.hop:
            self._skip = self.hop - index % self.hop
        if self._skip:
            cut = min(self._skip, n)
            self._skip -= cut
            block = block[cut:]
            index += cut
            t += cut / rate
            n -= cut
            if n == 0:
                return
        if self._fill == 0:
            self._start = index
            self._blocks.clear()
        self._blocks.append((index, seq, t))
        need = self._fill + n
        if need > self._buf.shape[0]:
            grown = np.empty((max(need, 2 * self._buf.shape[0]), self.channels), np.float32)
            grown[: self._fill] = self._buf[: self._fill]
            self._buf = grown
        self._buf[self._fill : need] = block
        self._fill = need
        window, hop = self.window, self.hop
        while self._fill >= window:
            blocks = self._blocks
            start = self._start
            while len(blocks) > 1 and blocks[1][0] <= start:
                blocks.popleft()
            b_index, b_seq, b_t = blocks[0]
            yield self._buf[:window].copy(), start, b_seq, b_t + (start - b_index) / rate
            if hop < self._fill:
                rest = self._fill - hop
                self._buf[:rest] = self._buf[hop : self._fill]
                self._fill = rest
            else:
                self._skip = hop - self._fill
                self._fill = 0
            self._start = start + hop

    def __repr__(self) -> str:
        return f"Windower(window={self.window}, hop={self.hop}, fill={self._fill})"

    def state(self) -> dict[str, Any]:
        return {"fill": self._fill, "skip": self._skip, "start": self._start}
