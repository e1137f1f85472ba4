"""``logmel``: log-mel spectrogram of a stream, in numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from zaudio.errors import ConfigError
from zaudio.processors._dsp import FLOOR_DBFS, Block, BlockInfo, frames_param, number_param

__all__ = ["LogMel", "mel_filterbank"]


def _hz_to_mel(hz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> npt.NDArray[np.float64]:
    """Triangular mel filters (HTK mel scale, peak 1), shape ``(n_mels, n_fft // 2 + 1)``.

    Filter ``m`` rises from centre ``m - 1`` to centre ``m`` and falls to centre
    ``m + 1``, the ``n_mels + 2`` centres equally spaced in mel from ``fmin`` to ``fmax``.
    """
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


class LogMel:
    """Log-mel spectrogram: Hann-windowed frames of ``n_fft``, one every ``hop``.

    Frames are contiguous across blocks (the tail of each block is kept for the next),
    so the output does not depend on the block size. Channels are averaged to mono. Each
    frame's power spectrum is scaled so that a sine of amplitude A at a bin centre has
    power A² in that bin, summed through triangular mel filters (HTK mel scale, peak 1)
    and given in dB (``10 log10``, floor -120), so levels read like dBFS: a 0.5
    sine reads about -6 dB in its band (a little more where a wide band holds
    the sine's whole main lobe).

    Parameters
    ----------
    n_mels : int, optional
        Mel bands, 64 by default.
    n_fft : int or str, optional
        Frame (and FFT) length: frames (``1024``) or a duration (``"25ms"``, the default).
    hop : int or str, optional
        Frame step: frames (``160``) or a duration (``"10ms"``, the default).
    fmin : float, optional
        Lowest filter edge in Hz, 0 by default.
    fmax : float, optional
        Highest filter edge in Hz, half the sample rate by default.
    decimals : int, optional
        Decimal places of the dB values, 1 by default (keeps the JSON small).

    Returns (per block)
    -------------------
    dict or None
        ``{"n_mels": int, "hop": int, "index": int, "frames": [[dB] * n_mels, ...]}``:
        every frame completed by this block, ``index`` being the stream index of the
        first frame's first sample and ``hop`` the frames between frame starts; None when
        the block completes no frame.

    Notes
    -----
    A lost stretch (``info.gap`` or an index that skips) or a new ``src`` drops the
    kept tail: frames never straddle missing audio. Overlapping windows are read once.
    """

    def __init__(
        self,
        n_mels: int = 64,
        n_fft: int | str = "25ms",
        hop: int | str = "10ms",
        fmin: float = 0.0,
        fmax: float | None = None,
        decimals: int = 1,
    ) -> None:
        self.n_mels = int(number_param(n_mels, "n_mels", low=1, high=1024))
        if self.n_mels != n_mels:
            raise ConfigError(f"invalid -p n_mels={n_mels!r}: expected a whole number")
        frames_param(n_fft, "n_fft", 48000)  # reject a bad value now, convert at setup
        frames_param(hop, "hop", 48000)
        self.n_fft, self.hop = n_fft, hop
        self.fmin = number_param(fmin, "fmin", low=0.0)
        self.fmax = None if fmax is None else number_param(fmax, "fmax", low=0.0)
        if self.fmax is not None and self.fmax <= self.fmin:
            raise ConfigError(f"invalid -p fmax={fmax!r}: must be above fmin ({self.fmin:g} Hz)")
        self.decimals = int(number_param(decimals, "decimals", low=0, high=9))
        self._rate = 0
        self._src = ""

    def setup(self, info: BlockInfo) -> None:
        """Build the window and the mel filterbank for ``info.rate`` (once per rate)."""
        rate = info.rate
        self._size = frames_param(self.n_fft, "n_fft", rate)
        self._step = frames_param(self.hop, "hop", rate)
        fmax = rate / 2.0 if self.fmax is None else self.fmax
        if fmax > rate / 2.0:
            raise ConfigError(f"invalid -p fmax={self.fmax:g}: above half the rate ({rate} Hz)")
        if self.fmin >= fmax:
            raise ConfigError(f"invalid -p fmin={self.fmin:g}: must be below fmax ({fmax:g} Hz)")
        window = np.hanning(self._size + 1)[:-1]  # periodic Hann
        # Amplitude A of a sine at a bin centre -> A in that bin, so power A^2.
        self._window = (window * (2.0 / window.sum())).astype(np.float32)
        self._bank = mel_filterbank(rate, self._size, self.n_mels, self.fmin, fmax).T.copy()
        self._buffer = np.zeros(max(4 * self._size, rate), dtype=np.float32)
        self._rate, self._src = rate, info.src
        self._begin = info.index  # stream index of self._buffer[0]
        self._fill = 0

    def __call__(self, block: Block, info: BlockInfo) -> dict[str, Any] | None:
        if info.src != self._src or info.rate != self._rate:
            self.setup(info)
        expected = self._begin + self._fill
        if info.index > expected:
            self._begin, self._fill = info.index, 0
        new = block[min(max(expected - info.index, 0), block.shape[0]) :]
        count = new.shape[0]
        if self._fill + count > self._buffer.shape[0]:
            grown = np.zeros(2 * (self._fill + count), dtype=np.float32)
            grown[: self._fill] = self._buffer[: self._fill]
            self._buffer = grown
        target = self._buffer[self._fill : self._fill + count]
        if new.shape[1] == 1:
            target[:] = new[:, 0]
        else:
            np.mean(new, axis=1, out=target)
        self._fill += count
        if self._fill < self._size:
            return None
        whole = (self._fill - self._size) // self._step + 1
        frames = np.lib.stride_tricks.sliding_window_view(self._buffer[: self._fill], self._size)
        spectrum = np.fft.rfft(frames[:: self._step][:whole] * self._window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        mel = power @ self._bank
        np.maximum(mel, 10.0 ** (FLOOR_DBFS / 10.0), out=mel)
        db = np.round(10.0 * np.log10(mel), self.decimals)
        index = self._begin
        used = whole * self._step
        self._buffer[: self._fill - used] = self._buffer[used : self._fill]
        self._fill -= used
        self._begin += used
        return {"n_mels": self.n_mels, "hop": self._step, "index": index, "frames": db.tolist()}
