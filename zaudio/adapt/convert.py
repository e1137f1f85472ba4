"""Per-stream conversion of received blocks to the format a processor asked for.

:class:`Adapter` keeps one :class:`_Stream` per stream name, made again for each new
``src`` and decided once: a stream that already has the asked rate and channels
passes through untouched (the same read-only block, the same header); any other is
converted in as few numpy calls as it needs, in this order:

1. channels down: ``pick`` selects source channels (one fancy index), ``channels=1``
   averages them (one matrix product, also when combined with ``pick``);
2. rate: a :class:`~zaudio.adapt.resample.Resampler` per (stream, ``src``);
3. channels up: a mono source repeated to ``channels``.

The result is a float32 block with a header describing it (rate, channels, frames,
``index`` at the new rate, ``t`` of its first frame); windows are cut from it
(:mod:`zaudio.windows`), and ``dtype="int16"`` is applied last (:func:`to_int16`).

On a gap or a restart the stream's resampler is flushed (the output frames still
owed to the audio before the discontinuity are delivered first, as one more block)
and replaced by a fresh one starting at the new block, so no audio is smeared across
it. A block that cannot be converted (``pick`` names a channel the stream lacks, or
``channels`` neither 1, the source's count, nor made from mono) is counted in
``unconvertible`` and dropped; the other streams go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from zaudio.adapt.resample import Resampler
from zaudio.errors import ConfigError
from zaudio.protocol import AudioHeader
from zaudio.tracking import Info, info_of
from zaudio.windows import Windows, window_frames

__all__ = ["DTYPES", "Adapter", "Format", "adapted", "check_format", "to_int16"]

log = logging.getLogger(__name__)

#: The sample types a processor can ask for.
DTYPES = ("float32", "int16")
F32 = npt.NDArray[np.float32]
_SCALE = np.float32(32767.0)


@dataclass(frozen=True)
class Format:
    """What a processor asked to receive (None: as the stream has it)."""

    rate: int | None = None
    channels: int | None = None
    dtype: str = "float32"
    pick: tuple[int, ...] | None = None

    def problem(self, rate: int, channels: int) -> str | None:
        """Why a stream of ``rate`` and ``channels`` cannot be converted, or None."""
        if self.pick is not None and max(self.pick) >= channels:
            return f"pick {','.join(map(str, self.pick))} needs {max(self.pick) + 1} channels"
        have = len(self.pick) if self.pick is not None else channels
        want = self.channels
        if want is not None and want not in (1, have) and have != 1:
            return f"cannot make {want} channels from {have}: use 1, {have} or pick"
        return None


def check_format(
    rate: int | None = None,
    channels: int | None = None,
    dtype: str | None = None,
    pick: str | Iterable[int] | None = None,
    window: str | float | None = None,
    hop: str | float | None = None,
) -> Format | None:
    """The asked :class:`Format` checked, or None when nothing is asked.

    Raises ConfigError (one line) for a rate or channel count below 1, an unknown
    dtype, a bad ``pick`` (``"0,2"`` or a list of ints), or a window or hop shorter
    than one frame at ``rate``.
    """
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 1):
        raise ConfigError(f"invalid rate {rate!r}: use a sample rate in Hz, e.g. 16000")
    if channels is not None and (
        isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
    ):
        raise ConfigError(f"invalid channels {channels!r}: use 1 or more")
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"invalid dtype {dtype!r}: use {' or '.join(DTYPES)}")
    picked = _pick(pick) if pick is not None else None
    if picked is not None and channels is not None and channels not in (1, len(picked)):
        raise ConfigError(f"invalid channels {channels} with pick {pick!r}: use 1 or {len(picked)}")
    if rate is not None and window is not None:
        window_frames(window, rate, "window")
        window_frames(hop if hop is not None else window, rate, "hop")
    fmt = Format(rate, channels, dtype or "float32", picked)
    return None if fmt == Format() else fmt


def _pick(pick: str | Iterable[int]) -> tuple[int, ...]:
    try:
        items = [int(p) for p in (pick.split(",") if isinstance(pick, str) else pick)]
    except (TypeError, ValueError):
        items = []
    if not items or min(items) < 0 or len(set(items)) != len(items):
        raise ConfigError(f"invalid pick {pick!r}: use channel numbers from 0, e.g. 0,2")
    return tuple(items)


def to_int16(block: F32) -> tuple[npt.NDArray[np.int16], int]:
    """``block`` as int16 (``x * 32767`` rounded to nearest), and how many samples clipped.

    Samples beyond full scale are clipped to -32768..32767 and counted; NaN is
    written as 0 (and counted by the tracker as ``nonfinite``, not here).
    """
    y = block * _SCALE
    np.rint(y, out=y)
    lo, hi = y.min(initial=0.0), y.max(initial=0.0)
    if lo >= -32768.0 and hi <= 32767.0:
        return y.astype(np.int16), 0
    clips = int(np.count_nonzero(y > 32767.0) + np.count_nonzero(y < -32768.0))
    np.nan_to_num(y, copy=False, nan=0.0)
    np.clip(y, -32768.0, 32767.0, out=y)
    return y.astype(np.int16), clips


class _Stream:
    """One (stream, ``src``): how its blocks are converted, decided on its first block."""

    __slots__ = (
        "last", "noop", "out_channels", "pick", "rate", "resampler", "src", "up", "weights",
    )  # fmt: skip

    def __init__(self, fmt: Format, h: AudioHeader) -> None:
        self.src = h.src
        self.rate = fmt.rate or h.rate
        pick = fmt.pick
        have = len(pick) if pick is not None else h.channels
        want = fmt.channels or have
        self.out_channels = want
        self.weights: F32 | None = None
        if want == 1 and have > 1:
            w = np.zeros((h.channels, 1), np.float32)
            w[list(pick) if pick is not None else slice(None), 0] = 1.0 / have
            self.weights, pick, have = w, None, 1
        self.pick = list(pick) if pick is not None else None
        self.up = want if have == 1 and want > 1 else 0
        self.resampler: Resampler | None = None
        self.last: AudioHeader | None = None  # the last source block resampled
        self.noop = self.rate == h.rate and self.pick is None and self.weights is None
        self.noop = self.noop and not self.up

    def start(self, h: AudioHeader, channels: int) -> Resampler:
        self.resampler = Resampler(h.rate, self.rate, channels, h.index)
        return self.resampler


class Adapter:
    """The conversion of every stream a node receives to one :class:`Format`.

    Not thread-safe: called by the thread that delivers blocks.

    Attributes
    ----------
    unconvertible : int
        Blocks dropped because their stream cannot be given the format.
    clipped : int
        int16 samples clipped at full scale.
    """

    __slots__ = ("_streams", "_warned", "clipped", "fmt", "unconvertible")

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        self._streams: dict[str, _Stream | None] = {}
        self._warned: set[str] = set()
        self.unconvertible = 0
        self.clipped = 0

    def check(self, streams: Iterable[dict[str, Any]]) -> None:
        """Raise ConfigError for the first listed stream (``{"name", "rate", "channels"}``,
        as the proxy lists them) that cannot be converted."""
        for s in streams:
            try:
                problem = self.fmt.problem(int(s["rate"]), int(s["channels"]))
            except (KeyError, TypeError, ValueError):
                continue
            if problem is not None:
                raise ConfigError(f"stream {s['name']!r} ({s['channels']} ch): {problem}")

    def feed(
        self, h: AudioHeader, block: F32, gap: bool, restart: bool
    ) -> list[tuple[AudioHeader, F32, bool, bool]]:
        """Convert one delivered block: ``[(header, block, gap, restart), ...]``, float32.

        Usually one item; none while the resampler fills (its first 2 ms), or for an
        unconvertible block; two when a gap or restart flushes the previous segment.
        """
        st = self._streams.get(h.stream)
        out: list[tuple[AudioHeader, F32, bool, bool]] = []
        if st is None or st.src != h.src or restart or gap:
            if st is not None and st.resampler is not None:
                tail = st.resampler.flush()
                if tail.shape[0]:
                    out.append(self._tail(st, h, tail))
            st = self._new(h)
            if st is None:
                self.unconvertible += 1
                return out
        if st.noop:
            out.append((h, block, gap, restart))
            return out
        x = block
        if st.pick is not None:
            x = x[:, st.pick]
        elif st.weights is not None:
            x = x @ st.weights
        index, rate, t = h.index, h.rate, h.t
        if st.rate != rate:
            r = st.resampler if st.resampler is not None else st.start(h, x.shape[1])
            index = r.next
            x = r.feed(x)
            if not x.shape[0]:
                return out
            st.last = h
            t = _t(h, index, st.rate)
        if st.up:
            x = np.repeat(x, st.up, axis=1)
        out.append((_header(h, index, t, st.rate, x), x, gap, restart))
        return out

    def _new(self, h: AudioHeader) -> _Stream | None:
        problem = self.fmt.problem(h.rate, h.channels)
        if problem is None:
            st = self._streams[h.stream] = _Stream(self.fmt, h)
            return st
        self._streams.pop(h.stream, None)
        if h.stream not in self._warned:
            self._warned.add(h.stream)
            log.warning("stream %r: %s; its blocks are counted as unconvertible", h.stream, problem)
        return None

    def _tail(self, st: _Stream, h: AudioHeader, tail: F32) -> tuple[AudioHeader, F32, bool, bool]:
        """The flushed end of a segment, as a block of the run it belongs to."""
        r = st.resampler
        assert r is not None
        index = r.next - tail.shape[0]
        if st.up:
            tail = np.repeat(tail, st.up, axis=1)
        last = st.last
        assert last is not None
        return _header(last, index, _t(last, index, st.rate), st.rate, tail), tail, False, False

    def close(self) -> None:
        self._streams.clear()


def _t(h: AudioHeader, index: int, rate: int) -> float:
    """Time of output frame ``index`` (at ``rate``), from the source block ``h``."""
    return h.t + (index * h.rate - h.index * rate) / (h.rate * rate)


def _header(h: AudioHeader, index: int, t: float, rate: int, x: F32) -> AudioHeader:
    return AudioHeader(
        h.v, h.stream, h.src, h.seq, index, t, rate, x.shape[1], x.shape[0], "float32"
    )


def adapted(
    adapter: Adapter,
    windows: Windows | None,
    h: AudioHeader,
    block: F32,
    gap: bool,
    restart: bool,
) -> Iterator[tuple[Any, Info]]:
    """``(block, info)`` to hand to the user for one delivered block: converted, cut into
    windows when asked, then made int16 when asked (``info.dtype``)."""
    int16 = adapter.fmt.dtype == "int16"
    for ch, cblock, cgap, crestart in adapter.feed(h, block, gap, restart):
        items: Iterable[tuple[Any, Info]]
        if windows is None:
            items = ((cblock, info_of(ch, cgap, crestart)),)
        else:
            items = windows.feed(ch, cblock, cgap, crestart)
        for data, info in items:
            if int16:
                pcm, clips = to_int16(data)
                adapter.clipped += clips
                yield pcm, msgspec.structs.replace(info, dtype="int16")
            else:
                yield data, info
