"""Synthetic sources: ``sine``, ``noise``, ``speech`` (tone bursts) and ``chirp``.

Each is computed from the running frame index, so it is continuous across blocks
and deterministic (fixed seeds); paced in real time unless ``--fast``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from zaudio.errors import ConfigError
from zaudio.sources import Block, SourceOptions, ThreadSource

__all__ = [
    "Chirp",
    "Noise",
    "Silence",
    "Sine",
    "Speech",
    "chirp",
    "noise",
    "silence",
    "sine",
    "speech",
]

SEED = 20240


def _numbers(arg: str | None, names: tuple[str, ...], spec: str) -> list[float]:
    parts = [] if not arg else arg.split(":")
    if len(parts) > len(names):
        raise ConfigError(f"invalid source {spec}:{arg}: expected {spec}:{':'.join(names)}")
    values = []
    for part, name in zip(parts, names, strict=False):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(
                f"invalid {name} {part!r} in source {spec}:{arg}: not a number"
            ) from None
        if not math.isfinite(value):
            raise ConfigError(f"invalid {name} {part!r} in source {spec}:{arg}")
        values.append(value)
    return values


def _amplitude(value: float, spec: str) -> float:
    if not 0 <= value <= 1:
        raise ConfigError(f"invalid amplitude {value:g} in source {spec}: use 0-1 (full scale)")
    return value


class _Synth(ThreadSource):
    """Fixed-size blocks of a signal computed by :meth:`signal` (mono, copied to every channel)."""

    def __init__(self, options: SourceOptions) -> None:
        super().__init__()
        self.rate, self.channels = options.format()
        self.block = options.frames(self.rate)
        self.paced = not options.fast
        self.live = not options.fast

    def signal(self, index: int, frames: int) -> np.ndarray:
        """Samples ``index .. index + frames`` as float64 (mono)."""
        raise NotImplementedError

    def blocks(self) -> Iterator[Block]:
        index, n, channels = 0, self.block, self.channels
        while True:
            mono = self.signal(index, n).astype(np.float32)
            if channels == 1:
                yield mono.reshape(n, 1)
            else:
                yield np.repeat(mono.reshape(n, 1), channels, axis=1)
            index += n


class Sine(_Synth):
    """A sine of ``freq`` Hz and peak ``amp``."""

    def __init__(self, options: SourceOptions, freq: float, amp: float = 0.5) -> None:
        super().__init__(options)
        if not 0 < freq < self.rate / 2:
            raise ConfigError(
                f"invalid sine frequency {freq:g} Hz: use more than 0 and less than "
                f"{self.rate / 2:g} (half the rate)"
            )
        self.freq, self.amp = freq, amp
        self.description = f"sine {freq:g} Hz"

    def signal(self, index: int, frames: int) -> np.ndarray:
        # the phase is reduced once per block: continuous, and no error grows with index
        step = self.freq / self.rate
        phase = (index * step) % 1.0
        out: np.ndarray = np.sin(2 * np.pi * (phase + np.arange(frames) * step))
        return out * self.amp


class Silence(_Synth):
    """Digital silence: the cheapest source (one zero block, sent again and again)."""

    def __init__(self, options: SourceOptions) -> None:
        super().__init__(options)
        self.description = "silence"

    def blocks(self) -> Iterator[Block]:
        zeros = np.zeros((self.block, self.channels), np.float32)
        zeros.flags.writeable = False
        while True:
            yield zeros


class Noise(_Synth):
    """Uniform white noise in ``[-amp, amp]``."""

    def __init__(self, options: SourceOptions, amp: float = 0.1) -> None:
        super().__init__(options)
        self.amp = amp
        self.rng = np.random.default_rng(SEED)
        self.description = "noise"

    def signal(self, index: int, frames: int) -> np.ndarray:
        return self.rng.uniform(-self.amp, self.amp, frames)


class Speech(_Synth):
    """Speech-like tone bursts over quiet noise (about -60 dBFS).

    "Syllables" of 0.3-1 s with a pitch of 100-250 Hz, its harmonics between 300
    and 3000 Hz, under a rise-and-fall envelope, separated by 0.2-0.8 s pauses;
    deterministic (fixed seed). Good for voice-activity and level demos.
    """

    NOISE_RMS = 10 ** (-60 / 20)

    def __init__(self, options: SourceOptions, amp: float = 0.3) -> None:
        super().__init__(options)
        self.amp = amp
        self.plan = np.random.default_rng(SEED)
        self.noise = np.random.default_rng(SEED + 1)
        self.description = "speech"
        self._segment_end = 0  # index where the current segment ends
        self._segment_start = 0
        self._on = False  # flipped on by the first segment
        self._harmonics = np.zeros(0)
        self._weights = np.zeros(0)
        self._next_segment(0)

    def _next_segment(self, start: int) -> None:
        self._on = not self._on
        self._segment_start = start
        low, high = (0.3, 1.0) if self._on else (0.2, 0.8)
        self._segment_end = start + max(1, round(self.plan.uniform(low, high) * self.rate))
        if self._on:
            f0 = self.plan.uniform(100, 250)
            top = min(3000.0, 0.45 * self.rate)
            h = np.arange(math.ceil(300 / f0), math.floor(top / f0) + 1, dtype=np.float64)
            self._harmonics = h * f0
            w = 1 / (h - h[0] + 1) if len(h) else h
            self._weights = w / max(float(w.sum()), 1e-9)

    def signal(self, index: int, frames: int) -> np.ndarray:
        out = self.noise.standard_normal(frames) * self.NOISE_RMS
        pos = 0
        while pos < frames:
            at = index + pos
            if at >= self._segment_end:
                self._next_segment(self._segment_end)
            take = min(frames - pos, self._segment_end - at)
            if self._on and len(self._harmonics):
                k = np.arange(at - self._segment_start, at - self._segment_start + take)
                length = self._segment_end - self._segment_start
                env = np.sin(np.pi * k / length) ** 2
                phases = np.outer(k / self.rate, 2 * np.pi * self._harmonics)
                out[pos : pos + take] += self.amp * env * (np.sin(phases) @ self._weights)
            pos += take
        return out


class Chirp(_Synth):
    """A logarithmic sweep from ``f0`` to ``f1`` Hz over ``period`` seconds, repeated."""

    def __init__(
        self,
        options: SourceOptions,
        f0: float = 100.0,
        f1: float = 8000.0,
        period: float = 5.0,
        amp: float = 0.5,
    ) -> None:
        super().__init__(options)
        if not (0 < f0 < self.rate / 2 and 0 < f1 < self.rate / 2 and period > 0):
            raise ConfigError(
                f"invalid chirp {f0:g}:{f1:g}:{period:g}: frequencies in (0, rate/2), period > 0"
            )
        self.f0, self.f1, self.amp = f0, f1, amp
        self.period_frames = max(1, round(period * self.rate))
        self.description = f"chirp {f0:g}-{f1:g} Hz"

    def signal(self, index: int, frames: int) -> np.ndarray:
        n = np.arange(index, index + frames) % self.period_frames
        t = n / self.rate
        length = self.period_frames / self.rate
        if self.f0 == self.f1:
            phase = self.f0 * t
        else:
            k = math.log(self.f1 / self.f0) / length
            phase = self.f0 * (np.exp(k * t) - 1) / k
        return self.amp * np.sin(2 * np.pi * phase)


def sine(arg: str | None, options: SourceOptions) -> Sine:
    """``sine:FREQ[:AMP]`` (peak amplitude, default 0.5)."""
    values = _numbers(arg, ("FREQ", "AMP"), "sine")
    if not values:
        raise ConfigError("source sine needs a frequency: sine:FREQ[:AMP], e.g. sine:440")
    amp = _amplitude(values[1], "sine") if len(values) > 1 else 0.5
    return Sine(options, values[0], amp)


def noise(arg: str | None, options: SourceOptions) -> Noise:
    """``noise[:AMP]`` (uniform in [-AMP, AMP], default 0.1)."""
    values = _numbers(arg, ("AMP",), "noise")
    return Noise(options, _amplitude(values[0], "noise") if values else 0.1)


def silence(arg: str | None, options: SourceOptions) -> Silence:
    """``silence`` (zeros)."""
    if arg:
        raise ConfigError(f"invalid source 'silence:{arg}': silence takes no argument")
    return Silence(options)


def speech(arg: str | None, options: SourceOptions) -> Speech:
    """``speech[:AMP]`` (peak of the bursts, default 0.3)."""
    values = _numbers(arg, ("AMP",), "speech")
    return Speech(options, _amplitude(values[0], "speech") if values else 0.3)


def chirp(arg: str | None, options: SourceOptions) -> Chirp:
    """``chirp[:F0[:F1[:PERIOD]]]`` (defaults 100 Hz, 8000 Hz, 5 s)."""
    values = _numbers(arg, ("F0", "F1", "PERIOD"), "chirp")
    return Chirp(options, *values)
