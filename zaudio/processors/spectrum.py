"""``spectrum``: the strongest frequency of each block and, optionally, band levels."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from zaudio.errors import ConfigError
from zaudio.processors._dsp import FLOOR_DBFS, Block, BlockInfo, number_param, power_dbfs

__all__ = ["Spectrum"]

_Floats = npt.NDArray[np.float64]


class _Plan:
    """Everything that depends only on the block length and rate, built once per length."""

    def __init__(self, size: int, rate: int, edges: list[float] | None) -> None:
        window = np.hanning(size + 1)[:-1] if size > 1 else np.ones(1)  # periodic Hann
        self.window = window.astype(np.float32)
        bins = size // 2 + 1
        # |X_k| * amplitude_scale is the amplitude of a sine at bin centre k (DC and
        # Nyquist have no mirror image, hence half the scale there).
        self.amplitude_scale = np.full(bins, 2.0 / window.sum())
        self.amplitude_scale[0] /= 2.0
        if size % 2 == 0:
            self.amplitude_scale[-1] /= 2.0
        # sum |X_k|^2 * power_scale over all bins is the mean square of the block
        # (Parseval, corrected for the window's energy).
        self.power_scale = np.full(bins, 2.0 / (size * float(np.sum(window**2))))
        self.power_scale[0] /= 2.0
        if size % 2 == 0:
            self.power_scale[-1] /= 2.0
        self.hz_per_bin = rate / size
        self.cuts: npt.NDArray[np.intp] | None = None
        if edges is not None:
            # Bin k belongs to the band whose [lo, hi) holds its centre frequency.
            freqs = np.fft.rfftfreq(size, 1.0 / rate)
            self.cuts = np.searchsorted(freqs, edges, side="left")


class Spectrum:
    """FFT of each block (or window) with a Hann window: its peak, and band levels.

    Channels are averaged to mono. The peak is the strongest bin refined with its louder
    neighbour (the Hann window's exact two-bin estimate), so a sine between bins still
    reads its frequency and amplitude: a full-scale sine reads 0 dBFS, a 0.5 sine
    -6.02 dBFS, within a few hundredths of a dB when the block holds more than a few
    periods. Band levels are the RMS level
    of the part of the signal in each band (Parseval, corrected for the window), so a
    0.5 sine reads -9.03 dBFS in its band, like ``level``'s RMS.

    Parameters
    ----------
    bands : int or list of float, optional
        None (the default): no band levels. An int N: N bands equally spaced in
        log-frequency from ``fmin`` to half the rate. A list of ascending edges in Hz
        ``[e0, e1, ..., eN]``: the N bands ``[e0, e1)``, ... ``[eN-1, eN)``.
    fmin : float, optional
        Lowest edge in Hz when ``bands`` is a count, 20.0 by default.

    Returns (per block)
    -------------------
    dict
        ``{"peak_hz": float, "peak_dbfs": float}`` and, with ``bands``,
        ``"band_edges_hz": [N + 1 edges]`` and ``"bands_dbfs": [N levels]``. Silence
        reads -120.0 dBFS, and its ``peak_hz`` is 0.0.
    """

    def __init__(self, bands: int | list[float] | None = None, fmin: float = 20.0) -> None:
        self.fmin = number_param(fmin, "fmin", low=0.0)
        self.bands = bands
        self._count = 0
        self._edges: list[float] | None = None
        if isinstance(bands, bool):
            raise ConfigError(
                f"invalid -p bands={bands!r}: expected a count or a list of edges in Hz"
            )
        if isinstance(bands, int | float | str):
            count = number_param(bands, "bands", low=1, high=1000)
            if count != int(count):
                raise ConfigError(f"invalid -p bands={bands!r}: expected a whole number")
            self._count = int(count)
        elif isinstance(bands, list):
            edges = [number_param(e, "bands", low=0.0) for e in bands]
            if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise ConfigError(
                    f"invalid -p bands={bands!r}: expected at least two ascending edges in Hz"
                )
            self._edges = edges
        elif bands is not None:
            raise ConfigError(
                f"invalid -p bands={bands!r}: expected a count or a list of edges in Hz"
            )
        self._rate = 0
        self._plans: dict[int, _Plan] = {}

    def setup(self, info: BlockInfo) -> None:
        """Fix the band edges for ``info.rate`` (plans per block length come lazily)."""
        rate = info.rate
        nyquist = rate / 2.0
        if self._count:
            if not 0 < self.fmin < nyquist:
                raise ConfigError(
                    f"invalid -p fmin={self.fmin:g}: must be above 0 and below {nyquist:g} Hz"
                )
            edges = np.geomspace(self.fmin, nyquist, self._count + 1)
            self.band_edges = [round(float(e), 1) for e in edges]
        elif self._edges is not None:
            if self._edges[-1] > nyquist:
                raise ConfigError(
                    f"invalid -p bands={self.bands!r}: edges above half the rate ({nyquist:g} Hz)"
                )
            self.band_edges = self._edges
        else:
            self.band_edges = []
        self._rate = rate
        self._plans = {}

    def _plan(self, size: int) -> _Plan:
        plan = self._plans.get(size)
        if plan is None:
            if len(self._plans) > 16:  # odd window sizes: keep the cache bounded
                self._plans.clear()
            edges = self.band_edges if self.band_edges else None
            plan = self._plans[size] = _Plan(size, self._rate, edges)
        return plan

    def __call__(self, block: Block, info: BlockInfo) -> dict[str, Any]:
        if info.rate != self._rate:
            self.setup(info)
        size = block.shape[0]
        plan = self._plan(size)
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        spectrum = np.fft.rfft(mono * plan.window)
        power = spectrum.real**2 + spectrum.imag**2
        result: dict[str, Any] = {}
        result["peak_hz"], result["peak_dbfs"] = self._peak(power, plan)
        if plan.cuts is not None:
            power *= plan.power_scale
            sums = np.concatenate(([0.0], np.cumsum(power)))[plan.cuts]
            result["band_edges_hz"] = self.band_edges
            result["bands_dbfs"] = [round(power_dbfs(float(s)), 2) for s in np.diff(sums)]
        return result

    @staticmethod
    def _peak(power: _Floats, plan: _Plan) -> tuple[float, float]:
        k = int(np.argmax(power))
        amplitude = math.sqrt(float(power[k])) * float(plan.amplitude_scale[k])
        if amplitude <= 10.0 ** (FLOOR_DBFS / 20.0):
            return 0.0, FLOOR_DBFS
        if 0 < k < power.size - 1:
            # A sine between bins k and k±1 (the louder neighbour): for a Hann window the
            # ratio r of their magnitudes gives the offset d = (2r - 1) / (r + 1) exactly,
            # and the window's response there, sinc(d) / (1 - d²), the amplitude.
            side = 1 if power[k + 1] >= power[k - 1] else -1
            ratio = math.sqrt(float(power[k + side]) / float(power[k]))
            d = (2.0 * ratio - 1.0) / (ratio + 1.0)
            if 0.0 < d < 1.0:
                amplitude /= math.sin(math.pi * d) / (math.pi * d) / (1.0 - d * d)
                k_hz = (k + side * d) * plan.hz_per_bin
                return round(k_hz, 1), round(power_dbfs(amplitude * amplitude), 2)
        return round(k * plan.hz_per_bin, 1), round(power_dbfs(amplitude * amplitude), 2)
