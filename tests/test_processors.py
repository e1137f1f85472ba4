"""Built-in processors against signals whose answer is known (called directly)."""

from __future__ import annotations

import json
import math
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from tests.helpers import (
    Listener,
    node_stats,
    processed,
    proxy_process,
    spawn,
    stop,
    wait_node,
    wait_until,
)
from zaudio.bus import Outlet, Publisher
from zaudio.client import request
from zaudio.errors import ConfigError
from zaudio.processors.level import Level
from zaudio.processors.logmel import LogMel, mel_filterbank
from zaudio.processors.printer import Print
from zaudio.processors.spectrum import Spectrum
from zaudio.processors.vad import VAD
from zaudio.processors.writer import Writer
from zaudio.protocol import AudioStream


@dataclass(frozen=True)
class Info:
    index: int = 0
    t: float = 1000.0
    rate: int = 16000
    channels: int = 1
    frames: int = 0
    stream: str = "mic"
    src: str = "run-a"
    seq: int = 0
    gap: bool = False
    restart: bool = False
    v: int = 1


def sine(freq: float, amp: float, frames: int, rate: int = 16000, phase: float = 0.3) -> Any:
    """A (frames, 1) float32 sine."""
    t = np.arange(frames) / rate
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)[:, None]


def readonly(block: Any) -> Any:
    block = np.ascontiguousarray(block, dtype=np.float32)
    block.setflags(write=False)
    return block


def feed(proc: Any, signal: Any, size: int, info: Info | None = None) -> list[Any]:
    """Call ``proc`` on ``signal`` cut into blocks of ``size`` frames; its results."""
    info = info or Info(channels=signal.shape[1])
    out = []
    for seq, start in enumerate(range(0, signal.shape[0], size)):
        block = readonly(signal[start : start + size])
        at = replace(
            info,
            index=info.index + start,
            t=info.t + start / info.rate,
            seq=seq,
            frames=block.shape[0],
        )
        out.append(proc(block, at))
    return out


# --- level -------------------------------------------------------------------------


def test_level_sine_square_and_silence_per_channel() -> None:
    frames = 16000  # whole periods of 1 kHz
    block = np.hstack(
        [
            sine(1000, 0.5, frames, phase=0.0),
            np.where(np.arange(frames) % 16 < 8, 1.0, -1.0).astype(np.float32)[:, None],
            np.zeros((frames, 1), np.float32),
        ]
    )
    result = Level()(readonly(block), Info(channels=3, frames=frames))
    assert result == {"rms_dbfs": [-9.03, 0.0, -120.0], "peak_dbfs": [-6.02, 0.0, -120.0]}
    json.dumps(result, allow_nan=False)  # silence is a number, never -inf


def test_level_negative_peak_counts() -> None:
    block = np.zeros((480, 1), np.float32)
    block[7, 0] = -0.25
    result = Level(decimals=3)(readonly(block), Info(frames=480))
    assert result["peak_dbfs"] == [round(20 * math.log10(0.25), 3)]
    assert result["rms_dbfs"] == [round(10 * math.log10(0.25**2 / 480), 3)]


# --- vad ---------------------------------------------------------------------------

RATE = 16000


def bursts(spans: list[tuple[float, float]], seconds: float) -> Any:
    """Quiet noise (about -66 dBFS) with 0.3 sine bursts over ``spans`` (seconds)."""
    n = int(seconds * RATE)
    x = np.random.default_rng(1).normal(0.0, 0.0005, n)
    t = np.arange(n) / RATE
    for on, off in spans:
        inside = (t >= on) & (t < off)
        x[inside] += 0.3 * np.sin(2 * np.pi * 220 * t[inside])
    return x.astype(np.float32)[:, None]


def changes(results: list[dict[str, Any]]) -> list[tuple[str, int, float]]:
    out = []
    for r in results:
        assert set(r) >= {"speech", "rms_dbfs"}
        for c in r.get("changes", []):
            out.append((c["change"], c["index"], c["t"]))
        if "changes" in r:
            last = r["changes"][-1]
            assert (r["change"], r["index"], r["t"]) == (last["change"], last["index"], last["t"])
            assert r["speech"] == (last["change"] == "start")
    return out


@pytest.mark.parametrize("size", [160, 333, 4800])
def test_vad_bursts_start_and_end_where_known(size: int) -> None:
    # 0.05 s click (ignored: min_speech 0.1 s), speech 0.5-1.2 s with a 0.1 s pause
    # inside (bridged: min_silence 0.2 s), speech 2.0-2.5 s.
    signal = bursts([(0.2, 0.25), (0.5, 0.8), (0.9, 1.2), (2.0, 2.5)], 3.0)
    vad = VAD(threshold_dbfs=-40, min_speech="100ms", min_silence=0.2, hangover="100ms")
    results = feed(vad, signal, size)
    json.dumps(results, allow_nan=False)
    t0 = Info().t
    expected = [
        ("start", 8000, t0 + 0.5),
        ("end", 19200 + 1600, t0 + 1.3),  # last active frame ends at 1.2 s, + hangover
        ("start", 32000, t0 + 2.0),
        ("end", 40000 + 1600, t0 + 2.6),
    ]
    got = changes(results)
    assert [(c, i) for c, i, _ in got] == [(c, i) for c, i, _ in expected]
    assert [t for *_, t in got] == pytest.approx([t for *_, t in expected], abs=1e-6)
    assert results[-1]["speech"] is False


def test_vad_reports_state_on_every_block() -> None:
    signal = bursts([(0.1, 0.6)], 0.8)
    results = feed(VAD(min_speech=0, min_silence="50ms", hangover=0), signal, 800)
    states = [r["speech"] for r in results]
    # Blocks of 50 ms: speech from the block holding 0.1 s; the end (at 0.6 s) is
    # decided in the block holding 0.65 s, once the pause has lasted min_silence.
    assert states == [False] * 2 + [True] * 10 + [False] * 4
    assert changes(results)[0][:2] == ("start", 1600)
    assert changes(results)[1][:2] == ("end", 9600)


def test_vad_block_level() -> None:
    vad = VAD()
    r = vad(readonly(np.hstack([sine(1000, 0.5, 800, phase=0)] * 2)), Info(channels=2))
    assert r == {"speech": False, "rms_dbfs": -9.03}
    r = vad(readonly(np.zeros((800, 2), np.float32)), Info(index=800, channels=2))
    assert r == {"speech": False, "rms_dbfs": -120.0}


def test_vad_gap_and_restart() -> None:
    vad = VAD(min_speech=0, min_silence="20ms", hangover=0)
    loud = sine(220, 0.3, 1600)
    r = vad(readonly(loud), Info(index=0, frames=1600))
    assert r["change"] == "start" and r["index"] == 0
    # 1 s lost, then silence: the end is placed after the gap, at the silence's start.
    quiet = np.zeros((1600, 1), np.float32)
    r = vad(readonly(quiet), Info(index=17600, t=1001.1, frames=1600, gap=True))
    assert (r["change"], r["index"], r["t"]) == ("end", 17600, 1001.1)
    # A new src starts from silence.
    r = vad(readonly(loud), Info(index=0, frames=1600, src="run-b"))
    assert r["change"] == "start" and r["speech"] is True
    r = vad(readonly(loud), Info(index=0, frames=1600, src="run-c"))
    assert r["change"] == "start"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"threshold_dbfs": "loud"}, "threshold_dbfs"),
        ({"threshold_dbfs": 3}, "threshold_dbfs"),
        ({"hangover": "soon"}, "hangover"),
        ({"min_speech": -1}, "min_speech"),
        ({"frame": "0ms"}, "frame"),
        ({"frame": True}, "frame"),
    ],
)
def test_vad_bad_params_name_the_parameter(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name) as err:
        VAD(**params)
    assert "\n" not in str(err.value)


# --- spectrum ----------------------------------------------------------------------


@pytest.mark.parametrize("freq", [1000.0, 1037.3, 441.0, 5123.4])
@pytest.mark.parametrize("amp", [1.0, 0.5])
@pytest.mark.parametrize("size", [480, 4096])
def test_spectrum_peak_of_a_sine(freq: float, amp: float, size: int) -> None:
    result = Spectrum()(readonly(sine(freq, amp, size, rate=48000)), Info(rate=48000, frames=size))
    assert result["peak_hz"] == pytest.approx(freq, abs=0.15)
    assert result["peak_dbfs"] == pytest.approx(20 * math.log10(amp), abs=0.02)


def test_spectrum_bands_read_rms_of_their_part() -> None:
    spec = Spectrum(bands=[0, 500, 2000, 8000])
    block = sine(1000, 0.5, 4000) + sine(300, 0.1, 4000)
    result = spec(readonly(block), Info(frames=4000))
    assert result["band_edges_hz"] == [0, 500, 2000, 8000]
    low, mid, high = result["bands_dbfs"]
    assert low == pytest.approx(20 * math.log10(0.1 / math.sqrt(2)), abs=0.05)
    assert mid == pytest.approx(-9.03, abs=0.05)
    assert high < -80
    assert result["peak_hz"] == pytest.approx(1000, abs=0.1)


def test_spectrum_band_count_silence_and_stereo() -> None:
    spec = Spectrum(bands=4, fmin=125)
    silent = spec(readonly(np.zeros((512, 2), np.float32)), Info(channels=2, frames=512))
    assert (silent["peak_hz"], silent["peak_dbfs"]) == (0.0, -120.0)
    assert silent["bands_dbfs"] == [-120.0] * 4
    assert silent["band_edges_hz"] == pytest.approx(np.geomspace(125, 8000, 5), abs=0.05)
    stereo = np.hstack([sine(2000, 0.5, 1600), sine(2000, 0.5, 1600)])
    result = spec(readonly(stereo), Info(channels=2, frames=1600))
    assert result["peak_dbfs"] == pytest.approx(-6.02, abs=0.02)
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("bands", ["many", [100], [300, 200], True, 0, {"a": 1}, 2.5])
def test_spectrum_bad_bands(bands: Any) -> None:
    with pytest.raises(ConfigError, match="bands"):
        Spectrum(bands=bands)


# --- logmel ------------------------------------------------------------------------


def test_mel_filterbank_shape_and_peaks() -> None:
    bank = mel_filterbank(16000, 512, 40, 0.0, 8000.0)
    assert bank.shape == (40, 257)
    assert bank.min() >= 0.0 and bank.max() <= 1.0
    peaks = np.argmax(bank, axis=1)
    assert np.all(np.diff(peaks) >= 0)  # centres rise with the band number


def test_logmel_frames_do_not_depend_on_block_size() -> None:
    signal = bursts([(0.1, 0.4)], 0.5) + sine(1000, 0.1, 8000)
    whole = LogMel(n_mels=32)(readonly(signal), Info(frames=8000))
    assert whole is not None
    assert whole["n_mels"] == 32 and whole["hop"] == 160 and whole["index"] == 0
    assert len(whole["frames"]) == (8000 - 400) // 160 + 1
    pieces = LogMel(n_mels=32)
    frames, starts = [], []
    for r in feed(pieces, signal, 333):
        if r is not None:
            starts.append(r["index"])
            frames += r["frames"]
    assert frames == whole["frames"]
    assert starts[0] == 0 and all(s % 160 == 0 for s in starts)
    json.dumps(whole, allow_nan=False)


def test_logmel_sine_lands_in_its_band_at_its_level() -> None:
    mel = LogMel(n_mels=40, n_fft=512, hop=256, decimals=2)
    loud = mel(readonly(sine(1000, 0.5, 4096)), Info(frames=4096))
    assert loud is not None
    values = np.array(loud["frames"])
    bank = mel_filterbank(16000, 512, 40, 0.0, 8000.0)
    band = int(np.argmax(bank[:, round(1000 * 512 / 16000)]))  # the band peaking at 1 kHz
    assert np.all(np.argmax(values, axis=1) == band)
    # 1 kHz is bin 32: a Hann window puts power A² there and A²/4 in bins 31 and 33.
    weights = bank[band, 31] / 4 + bank[band, 32] + bank[band, 33] / 4
    assert values[:, band] == pytest.approx(10 * math.log10(0.25 * weights), abs=0.01)
    quiet = LogMel(n_mels=40, n_fft=512, hop=256, decimals=2)
    half = quiet(readonly(sine(1000, 0.25, 4096)), Info(frames=4096))
    assert half is not None
    assert np.array(half["frames"])[:, band] == pytest.approx(values[:, band] - 6.02, abs=0.02)
    silence = LogMel(n_mels=8)(readonly(np.zeros((800, 2), np.float32)), Info(channels=2))
    assert silence is not None and {v for f in silence["frames"] for v in f} == {-120.0}


def test_logmel_gap_restarts_framing() -> None:
    mel = LogMel(n_mels=8, n_fft=400, hop=160)
    assert mel(readonly(sine(500, 0.5, 300)), Info(index=0, frames=300)) is None
    r = mel(readonly(sine(500, 0.5, 400)), Info(index=10000, frames=400, gap=True))
    assert r is not None and r["index"] == 10000 and len(r["frames"]) == 1


@pytest.mark.parametrize(
    ("params", "name"),
    [({"n_mels": 0}, "n_mels"), ({"n_mels": 2.5}, "n_mels"), ({"hop": "fast"}, "hop"),
     ({"n_fft": -3}, "n_fft"), ({"fmin": 500, "fmax": 100}, "fmax")],
)  # fmt: skip
def test_logmel_bad_params(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        LogMel(**params)


def test_logmel_fmax_above_nyquist_is_refused_at_setup() -> None:
    with pytest.raises(ConfigError, match="fmax"):
        LogMel(fmax=12000).setup(Info(rate=16000))


# --- writer ------------------------------------------------------------------------


def noise(frames: int, channels: int = 2, seed: int = 2) -> Any:
    return np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32)


def test_writer_exact_samples_and_gap_of_exact_silence(tmp_path: Path) -> None:
    signal = noise(8000)
    path = tmp_path / "out.wav"
    writer = Writer(path=str(path))
    writer.setup(Info(channels=2))
    info = Info(channels=2)
    blocks = [(0, 1000), (1000, 2345), (2345, 3000), (4500, 6000), (6000, 8000)]  # 1500 lost
    for seq, (a, b) in enumerate(blocks):
        gap = a == 4500
        r = writer(readonly(signal[a:b]), replace(info, index=a, frames=b - a, seq=seq, gap=gap))
        assert r is None
    writer.close()
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    assert rate == 16000 and soundfile.info(str(path)).subtype == "FLOAT"
    assert data.shape == (8000, 2)
    assert np.array_equal(data[:3000], signal[:3000])
    assert np.array_equal(data[3000:4500], np.zeros((1500, 2), np.float32))
    assert np.array_equal(data[4500:], signal[4500:])


def test_writer_stores_nan_and_inf_as_silence_counts_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signal = noise(300)
    bad = signal.copy()
    bad[10, 0], bad[20, 1], bad[150, 0], bad[299, 1] = np.nan, np.inf, -np.inf, np.nan
    path = tmp_path / "out.wav"
    writer = Writer(path=str(path))
    with caplog.at_level("INFO", logger="zaudio.processors.writer"):
        for r in feed(writer, bad, 100, Info(channels=2)):
            assert r is None
        writer.close()
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "stream mic: NaN or infinite samples, written as 0.0 (counted in each file's "
        "summary and the processor's nonfinite; logged once per stream)"
    ]
    assert caplog.records[-1].getMessage() == (
        f"wrote {path} (300 frames, 4 non-finite samples written as 0.0)"
    )
    data, _ = soundfile.read(path, dtype="float32", always_2d=True)
    want = signal.copy()
    want[10, 0] = want[20, 1] = want[150, 0] = want[299, 1] = 0.0
    assert np.isfinite(data).all() and np.array_equal(data, want)


def test_writer_file_summary_counts_nonfinite(tmp_path: Path) -> None:
    writer = Writer(path=str(tmp_path / "x.wav"), segment=0.1)  # 100 frames at 1000 Hz
    block = noise(150, 1)
    block[5, 0] = block[120, 0] = np.nan
    r = writer(readonly(block), Info(rate=1000, index=0, frames=150))
    assert r == {"files": [{"path": str(tmp_path / "x-0001.wav"), "frames": 100, "nonfinite": 1}]}
    writer.close()
    second, _ = soundfile.read(tmp_path / "x-0002.wav", dtype="float32", always_2d=True)
    assert second[20, 0] == 0.0 and np.array_equal(
        np.delete(second, 20), np.delete(block[100:], 20)
    )


def test_writer_fills_only_what_the_runtime_calls_a_gap(tmp_path: Path) -> None:
    signal = noise(700, 1)
    path = tmp_path / "out.wav"
    writer = Writer(path=str(path))
    writer(readonly(signal[0:100]), Info(index=0, frames=100))
    # windows with --hop longer than --window skip frames: no loss, no fill
    writer(readonly(signal[300:400]), Info(index=300, frames=100, seq=1))
    # frames lost upstream (the runtime says gap): the missing length is silence
    writer(readonly(signal[600:700]), Info(index=600, frames=100, seq=2, gap=True))
    writer.close()
    data, _ = soundfile.read(path, dtype="float32", always_2d=True)
    zeros = np.zeros((200, 1), np.float32)
    assert np.array_equal(
        data, np.concatenate([signal[0:100], signal[300:400], zeros, signal[600:]])
    )


def test_writer_rotation_numbers_files_with_exact_total(tmp_path: Path) -> None:
    signal = noise(2500, channels=1)
    writer = Writer(path=str(tmp_path / "{stream}.wav"), segment="100ms")
    info = Info(rate=8000, stream="lab/mic")
    finished = []
    for r in feed(writer, signal, 333, info):
        if r is not None:
            finished += r["files"]
    writer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"lab_mic-000{i}.wav" for i in (1, 2, 3, 4)]
    assert finished == [
        {"path": str(tmp_path / f"lab_mic-000{i}.wav"), "frames": 800, "nonfinite": 0}
        for i in (1, 2, 3)
    ]
    parts = [soundfile.read(tmp_path / n, dtype="float32", always_2d=True)[0] for n in names]
    assert [len(p) for p in parts] == [800, 800, 800, 100]
    assert np.array_equal(np.concatenate(parts), signal)


def test_writer_gap_across_segments(tmp_path: Path) -> None:
    writer = Writer(path=str(tmp_path / "x.wav"), segment=0.1)
    one = np.ones((100, 1), np.float32)
    r = writer(readonly(one), Info(rate=1000, index=0, frames=100))
    assert r == {"files": [{"path": str(tmp_path / "x-0001.wav"), "frames": 100, "nonfinite": 0}]}
    r = writer(readonly(one), Info(rate=1000, index=350, frames=100, gap=True))
    assert r is not None and [f["path"][-6:] for f in r["files"]] == ["02.wav", "03.wav", "04.wav"]
    writer.close()
    data = [soundfile.read(tmp_path / f"x-000{i}.wav", dtype="float32")[0] for i in range(1, 6)]
    assert np.array_equal(np.concatenate(data), np.r_[np.ones(100), np.zeros(250), np.ones(100)])
    assert [len(d) for d in data] == [100, 100, 100, 100, 50]


def test_writer_new_src_continues_and_overlap_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "o.wav"
    writer = Writer(path=str(path))
    a, b = noise(400, 1, seed=3), noise(300, 1, seed=4)
    writer(readonly(a[:300]), Info(index=0, frames=300))
    writer(readonly(a[100:400]), Info(index=100, frames=300))  # overlapping window
    writer(readonly(b), Info(index=0, frames=300, src="run-b", restart=True))  # restart: no fill
    writer.close()
    data = soundfile.read(path, dtype="float32", always_2d=True)[0]
    assert np.array_equal(data, np.concatenate([a, b]))


def test_writer_streams_need_placeholder_and_format_change_starts_next_file(
    tmp_path: Path,
) -> None:
    writer = Writer(path=str(tmp_path / "one.wav"))
    writer(readonly(noise(10, 1)), Info(frames=10))
    with pytest.raises(Exception, match="stream"):
        writer(readonly(noise(10, 1)), Info(frames=10, stream="other"))
    r = writer(readonly(noise(10, 2)), Info(frames=10, channels=2, src="run-b", restart=True))
    assert r == {"files": [{"path": str(tmp_path / "one.wav"), "frames": 10, "nonfinite": 0}]}
    writer.close()
    assert soundfile.info(str(tmp_path / "one-0002.wav")).channels == 2


@pytest.mark.parametrize(("ext", "subtype"), [("flac", "PCM_24"), ("ogg", "VORBIS")])
def test_writer_flac_and_ogg(tmp_path: Path, ext: str, subtype: str) -> None:
    path = tmp_path / f"s.{ext}"
    writer = Writer(path=str(path))
    signal = sine(440, 0.5, 16000)
    feed(writer, signal, 1600)
    writer.close()
    data = soundfile.read(path, dtype="float32", always_2d=True)[0]
    assert soundfile.info(str(path)).subtype == subtype and data.shape == (16000, 1)
    tolerance = 2.0**-22 if ext == "flac" else 0.05
    assert np.max(np.abs(data - signal)) < tolerance


@pytest.mark.parametrize(
    ("params", "name"),
    [({"path": "out.mp4"}, "path"), ({"path": "{name}.wav"}, "path"), ({"path": 3}, "path"),
     ({"subtype": "ULAW", "path": "a.flac"}, "subtype"), ({"segment": "often"}, "segment")],
)  # fmt: skip
def test_writer_bad_params(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Writer(**params)


def test_writer_missing_directory_is_refused_at_setup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no directory"):
        Writer(path=str(tmp_path / "nope" / "a.wav")).setup(Info())


# --- print -------------------------------------------------------------------------


def test_print_one_line_per_block(capsys: pytest.CaptureFixture[str]) -> None:
    printer = Print()
    block = readonly(np.hstack([sine(1000, 0.5, 16000, phase=0), np.zeros((16000, 1))]))
    info = Info(index=480, seq=1, t=3723.25, channels=2, frames=16000)
    assert printer(block, info) is None
    assert printer(block, replace(info, gap=True, src="run-b", restart=True)) is None
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "mic seq=1 index=480 t=01:02:03.250 frames=16000 ch=2 rms=-9.0,-120.0 dBFS",
        "mic seq=1 index=480 t=01:02:03.250 frames=16000 ch=2 rms=-9.0,-120.0 dBFS src=run-b gap",
    ]


# --- end to end: loaded by name by `zaudio process` -------------------------------


def test_level_and_writer_by_name_through_zaudio_process(tmp_path: Path) -> None:
    rate, n = 8000, 20
    tone = sine(500, 0.5, 160 * n, rate=rate, phase=0.0)  # 160 frames: 10 whole periods
    path = tmp_path / "rec.wav"
    with (
        proxy_process("--heartbeat", "0.2") as (bus, _proxy),
        spawn("process", "level", "--topic", "mic", "--proxy", bus),
        spawn("process", "writer", "--topic", "mic", "-p", f"path={path}", "--proxy", bus) as rec,
        Listener(bus, "result/level") as lis,
    ):
        wait_node(bus, "level", role="processor")
        wait_node(bus, "writer", role="processor")
        with Publisher("mic", rate=rate, channels=1, proxy=bus) as mic:
            for k in range(n):
                assert mic.send(tone[160 * k : 160 * (k + 1)])
            got = lis.collect(n, timeout=15)
        for k, (h, _) in enumerate(got):
            assert (h.processor, h.stream, h.index, h.frames) == ("level", "mic", 160 * k, 160)
            assert h.data == {"rms_dbfs": [-9.03], "peak_dbfs": [-6.02]}
        wait_until(lambda: processed(bus, "writer") == n, 10, "writer to take every block")
        assert stop(rec, signal.SIGINT) == 0  # close() finishes the file
    data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    assert file_rate == rate and np.array_equal(data, tone)


def test_writer_process_stores_no_nan_and_the_processor_counts_it(tmp_path: Path) -> None:
    rate, n = 8000, 10
    tone = sine(500, 0.5, 160 * n, rate=rate)
    sent = tone.copy()
    sent[500, 0], sent[501, 0], sent[900, 0] = np.nan, np.inf, -np.inf
    path = tmp_path / "rec.wav"
    with (
        proxy_process("--heartbeat", "0.2") as (bus, _proxy),
        spawn("process", "writer", "--topic", "mic", "-p", f"path={path}", "--proxy", bus) as rec,
    ):
        wait_node(bus, "writer", role="processor")
        with Publisher("mic", rate=rate, channels=1, proxy=bus) as mic:
            for k in range(n):
                assert mic.send(sent[160 * k : 160 * (k + 1)])
            wait_until(lambda: processed(bus, "writer") == n, 10, "writer to take every block")
        stats = wait_until(lambda: node_stats(bus, "writer").get("nonfinite"), 10, "nonfinite")
        assert stats == {"mic": 3}
        assert stop(rec, signal.SIGINT) == 0
        assert rec.stderr is not None
        err = rec.stderr.read()
    assert err.count("NaN or infinite samples") == 1, err
    assert "(1600 frames, 3 non-finite samples written as 0.0)" in err, err
    data, _ = soundfile.read(path, dtype="float32", always_2d=True)
    want = tone.copy()
    want[[500, 501, 900], 0] = 0.0
    assert np.array_equal(data, want)


def test_writer_keeps_exactly_the_genuine_samples_around_a_forged_block(tmp_path: Path) -> None:
    rate, n, size = 8000, 20, 160
    tone = sine(500, 0.5, size * n, rate=rate)
    path = tmp_path / "rec.wav"
    with (
        proxy_process("--heartbeat", "0.2") as (bus, _proxy),
        spawn("process", "writer", "--topic", "mic", "-p", f"path={path}", "--proxy", bus) as rec,
        Listener(bus, "mic") as seen,
    ):
        wait_node(bus, "writer", role="processor")
        with Publisher("mic", rate=rate, channels=1, proxy=bus) as mic:
            for k in range(n // 2):
                assert mic.send(tone[size * k : size * (k + 1)])
            # One block with the live src and the next seq, but an index 11 s ahead.
            live = mic.stream
            forged = AudioStream("mic", rate, 1, src=live.src)
            forged.seq = live.seq
            outlet = Outlet()
            try:
                outlet.connect(request(bus, {"op": "hello"})["pub"])
                assert outlet.wait_ready(5)
                assert outlet.send(
                    forged.encode(np.ones((size, 1), np.float32), 0.0, index=live.index + 11 * rate)
                )
                # it reached the bus before the genuine blocks that follow
                got = seen.collect(n // 2 + 1, timeout=10)
                assert got[-1][0].index == live.index + 11 * rate
            finally:
                outlet.close(0)
            for k in range(n // 2, n):
                assert mic.send(tone[size * k : size * (k + 1)])
            wait_until(lambda: processed(bus, "writer") == n, 10, "writer to take every block")
        stats = wait_until(lambda: node_stats(bus, "writer").get("rejected"), 10, "rejected")
        assert stats == 1 and node_stats(bus, "writer")["gaps"] == 0
        assert stop(rec, signal.SIGINT) == 0
    data, _ = soundfile.read(path, dtype="float32", always_2d=True)
    assert data.shape == tone.shape and np.array_equal(data, tone)
