"""Sources on their own: spec parsing, exact samples, continuity, pacing (no network)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from zaudio.errors import ConfigError
from zaudio.sources import SOURCES, Source, open_source, register_source
from zaudio.sources.file import FileSource
from zaudio.sources.stdin import StdinSource
from zaudio.sources.synth import Chirp, Noise, Sine, Speech


class Collect:
    """A sink that keeps what it gets and says when the source ended."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.blocks: list[np.ndarray] = []
        self.times: list[float | None] = []
        self.arrivals: list[float] = []
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.stop_after = stop_after
        self.enough = threading.Event()

    def put(self, block: Any, t: float | None) -> None:
        self.blocks.append(np.array(block))
        self.times.append(t)
        self.arrivals.append(time.monotonic())
        if self.stop_after is not None and len(self.blocks) >= self.stop_after:
            self.enough.set()

    def end(self, error: BaseException | None = None) -> None:
        self.error = error
        self.ended.set()


def drain(source: Source, n: int | None = None, timeout: float = 10) -> Collect:
    sink = Collect(stop_after=n)
    source.start(sink)
    try:
        if n is None:
            assert sink.ended.wait(timeout), "source did not end"
        else:
            assert sink.enough.wait(timeout), f"got {len(sink.blocks)} of {n} blocks"
    finally:
        source.stop()
    return sink


def test_spec_names_resolve_to_their_source() -> None:
    assert isinstance(open_source("sine:440", fast=True), Sine)
    assert isinstance(open_source("noise", fast=True), Noise)
    assert isinstance(open_source("speech", fast=True), Speech)
    assert isinstance(open_source("bursts:0.2", fast=True), Speech)
    assert isinstance(open_source("chirp:200:2000:1", fast=True), Chirp)
    assert isinstance(open_source("-", rate=8000), StdinSource)
    assert {"mic", "device", "sine", "noise", "speech", "chirp", "file", "-"} <= set(SOURCES)


@pytest.mark.parametrize(
    ("spec", "kw", "message"),
    [
        ("nosuch", {}, "unknown source 'nosuch'"),
        ("sine", {}, "needs a frequency"),
        ("sine:abc", {}, "invalid FREQ 'abc'"),
        ("sine:30000", {}, "invalid sine frequency"),
        ("sine:440:2", {}, "invalid amplitude"),
        ("sine:440", {"block": "0.001ms"}, "invalid block size"),
        ("sine:440", {"block": "abc"}, "invalid block size"),
        ("sine:440", {"rate": 0}, "invalid rate"),
        ("noise", {"channels": 0}, "invalid channel count"),
        ("file:/nonexistent/a.wav", {}, "does not exist"),
        ("/nonexistent/b.flac", {}, "does not exist"),
        ("file:", {}, "needs a path"),
    ],
)
def test_bad_specs_raise_config_error(spec: str, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        open_source(spec, **kw)


def test_sine_is_continuous_across_blocks_and_exact() -> None:
    src = open_source("sine:1000:0.25", rate=8000, channels=2, block=80, fast=True)
    sink = drain(src, n=10)
    x = np.concatenate(sink.blocks[:10])
    assert x.shape == (800, 2) and x.dtype == np.float32
    assert np.array_equal(x[:, 0], x[:, 1])
    want = 0.25 * np.sin(2 * np.pi * 1000 * np.arange(800) / 8000)
    assert np.max(np.abs(x[:, 0] - want)) < 1e-6


def test_speech_is_deterministic_bursts_over_quiet_noise() -> None:
    a = np.concatenate(drain(open_source("speech", fast=True, block=4800), n=60).blocks[:60])
    b = np.concatenate(drain(open_source("speech", fast=True, block=1000), n=288).blocks[:288])
    assert np.array_equal(a[:, 0], b[:, 0]), "same signal whatever the block size"
    x = a[:, 0]
    rms = np.sqrt(np.mean(x.reshape(-1, 480) ** 2, axis=1))  # 10 ms frames over 6 s
    loud, quiet = rms > 0.02, rms < 0.003
    assert loud.mean() > 0.2 and quiet.mean() > 0.1, (loud.mean(), quiet.mean())
    floor = np.median(rms[quiet])
    assert 0.5e-3 < floor < 2e-3, floor  # about -60 dBFS
    assert np.max(np.abs(x)) <= 0.31
    spectrum = np.abs(np.fft.rfft(x)) ** 2  # power
    freqs = np.fft.rfftfreq(len(x), 1 / 48000)
    band = spectrum[(freqs > 300) & (freqs < 3000)].sum()
    assert band / spectrum.sum() > 0.95


def test_file_source_gives_the_files_own_samples(tmp_path: Path) -> None:
    data = np.random.default_rng(1).uniform(-1, 1, (1234, 3)).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, data, 22050, subtype="FLOAT")
    src = open_source(str(path), block=100, fast=True)
    assert isinstance(src, FileSource)
    assert (src.rate, src.channels, src.block) == (22050, 3, 100)
    sink = drain(src)
    assert sink.error is None
    assert [len(b) for b in sink.blocks] == [100] * 12 + [34]
    assert np.array_equal(np.concatenate(sink.blocks), data)


def test_file_loop_starts_over(tmp_path: Path) -> None:
    data = np.arange(250, dtype=np.float32).reshape(-1, 1) / 1000
    path = tmp_path / "a.flac"
    sf.write(path, data, 8000, subtype="PCM_24")
    sink = drain(open_source(f"file:{path}", block=100, fast=True, loop=True), n=7)
    x = np.concatenate(sink.blocks[:7])
    assert np.allclose(x[:250], data, atol=1e-6) and np.allclose(x[250:500], data, atol=1e-6)


def test_file_rate_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((10, 1), np.float32), 16000)
    with pytest.raises(ConfigError, match="16000 Hz but --rate says 48000"):
        open_source(str(path), rate=48000)
    bad = tmp_path / "b.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(ConfigError, match="cannot read audio file"):
        open_source(str(bad))


def test_stdin_source_reads_raw_float32_frames() -> None:
    data = np.random.default_rng(2).standard_normal((1000, 2)).astype("<f4")
    raw = data.tobytes() + b"\x01\x02"  # a torn last frame is ignored
    from zaudio.sources import SourceOptions

    src = StdinSource(SourceOptions(rate=8000, channels=2, block=300), io.BytesIO(raw))
    sink = drain(src)
    assert [len(b) for b in sink.blocks] == [300, 300, 300, 100]
    assert np.array_equal(np.concatenate(sink.blocks), data)


def test_paced_source_follows_the_sample_clock() -> None:
    src = open_source("sine:440", rate=48000, block="10ms")
    sink = drain(src, n=50)
    arrivals = np.array(sink.arrivals[:50])
    # Never ahead of the sample clock (load can only delay a block, so this holds on
    # any machine): block k is not out before k x 10 ms after the first, within 1 ms.
    ahead = (arrivals - arrivals[0]) - 0.01 * np.arange(50)
    assert ahead.min() > -0.001, ahead.min()
    # and not paced slower than real time: 49 blocks of 10 ms are not 3x late
    elapsed = arrivals[-1] - arrivals[0]
    assert elapsed < 3 * 0.49, elapsed
    times = np.array(sink.times[:50], dtype=float)
    assert np.allclose(np.diff(times), 0.01, rtol=0, atol=1e-6), "t is the sample clock"


def test_fast_source_is_unpaced() -> None:
    t0 = time.monotonic()
    drain(open_source("noise", block="10ms", fast=True), n=500)  # 5 s of audio
    assert time.monotonic() - t0 < 2


def test_register_source_adds_a_spec() -> None:
    calls = []

    def factory(arg: str | None, options: Any) -> Source:
        calls.append(arg)
        return open_source("sine:100", fast=True)

    register_source("testsig", factory)
    try:
        assert isinstance(open_source("testsig:x"), Sine)
        assert calls == ["x"]
    finally:
        SOURCES.pop("testsig")


def test_silence_source_is_zeros() -> None:
    import itertools

    from zaudio.sources import open_source

    src = open_source("silence", block="10ms")
    assert src.rate == 48000 and src.block == 480
    blocks = list(itertools.islice(src.blocks(), 3))  # type: ignore[attr-defined]
    assert all(b.shape == (480, 1) and not b.any() for b in blocks)
