"""Export: a real capture (two streams, a gap, results) to WAV, FLAC and XDF, read back
with soundfile and pyxdf."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import soundfile as sf

from tests.helpers import node_stats, proxy_process, run, spawn, stop, wait_node, wait_until
from zaudio.capture.summary import Captures
from zaudio.protocol import AudioHeader, ResultHeader
from zaudio.publisher import Publisher

RATE_A = 1000
SKIPPED = (10, 11, 25)  # blocks of stream "a" never sent: gaps of 200 and 100 frames


def _block(i: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(i)
    return rng.uniform(-1, 1, (100, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("export") / "c.zcap"
    with proxy_process() as (control, _):
        with spawn("capture", str(out), "--proxy", control) as cap:
            wait_node(control, "capture", role="capture")
            with spawn("process", "level", "--topic", "b", "--proxy", control):
                wait_node(control, "level", role="processor")
                r = run("record", "--source", "sine:440:0.5", "--stream", "b", "--duration",
                        "0.5", "--proxy", control)  # fmt: skip
                assert r.returncode == 0, r.stderr
                with Publisher("a", rate=RATE_A, channels=2, proxy=control) as pub:
                    for i in range(40):
                        if i in SKIPPED:
                            pub.skip(100)
                        else:
                            assert pub.send(_block(i))

                def done() -> bool:
                    s = node_stats(control, "capture")
                    return s.get("received", 0) >= 37 + 50 and s.get("results", 0) >= 50

                wait_until(done, 30, "the capture to record everything")
            assert stop(cap) == 0
    yield out


def _recorded(path: Path, stream: str) -> list[tuple[AudioHeader, np.ndarray[Any, Any]]]:
    with Captures([path]) as caps:
        return [
            (h, np.array(b))
            for _r, h, b in caps.decoded()
            if type(h) is AudioHeader and h.stream == stream
        ]


def test_wav_is_exact_and_gaps_are_zero_filled(capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.wav"
    r = run("export", str(capture), "--stream", "a", str(out))
    assert r.returncode == 0, r.stderr
    assert "200 frames missing (zero-filled)" in r.stderr and "100 frames missing" in r.stderr
    data, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == RATE_A and sf.info(out).subtype == "FLOAT"
    expected = np.concatenate(
        [np.zeros((100, 2), np.float32) if i in SKIPPED else _block(i) for i in range(40)]
    )
    assert data.shape == (4000, 2) and np.array_equal(data, expected)


def test_flac_within_24_bits_and_split_gaps(capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.flac"
    r = run("export", str(capture), "--stream", "b", str(out))
    assert r.returncode == 0, r.stderr
    recorded = np.concatenate([b for _h, b in _recorded(capture, "b")])
    data, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == 48000 and data.shape == recorded.shape == (24000, 1)
    assert np.max(np.abs(data - recorded)) <= 2.0**-23
    split = tmp_path / "a.wav"
    r = run("export", str(capture), "--stream", "a", "--split-gaps", str(split))
    assert r.returncode == 0, r.stderr
    parts = [tmp_path / f"a.{n:04d}.wav" for n in range(3)]
    assert sorted(tmp_path.glob("a.*.wav")) == parts
    runs = [range(0, 10), range(12, 25), range(26, 40)]
    for part, blocks in zip(parts, runs, strict=True):
        data, _ = sf.read(part, dtype="float32", always_2d=True)
        assert np.array_equal(data, np.concatenate([_block(i) for i in blocks]))


def test_export_bad_input(capture: Path, tmp_path: Path) -> None:
    for args, what in (
        ([str(capture), "--stream", "nope", str(tmp_path / "x.wav")], "no stream 'nope'"),
        ([str(capture), str(tmp_path / "x.wav")], "choose one with --stream"),
        ([str(capture), "--stream", "a", str(tmp_path / "x.mp4")], ".wav, .flac or .xdf"),
        ([str(tmp_path / "none.zcap"), "--stream", "a", str(tmp_path / "x.wav")], "cannot read"),
        ([str(capture), "--stream", "a", str(tmp_path / "x.xdf")], "drop --stream"),
    ):
        r = run("export", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and what in r.stderr, r.stderr
    assert not (tmp_path / "x.wav").exists()


def test_xdf_reads_back_with_pyxdf(capture: Path, tmp_path: Path) -> None:
    import pyxdf

    out = tmp_path / "c.xdf"
    r = run("export", str(capture), str(out))
    assert r.returncode == 0, r.stderr
    with Captures([capture]) as caps:
        results = [h for _r, h, _b in caps.decoded() if type(h) is ResultHeader]
    for dejitter in (False, True):
        streams, header = pyxdf.load_xdf(str(out), dejitter_timestamps=dejitter)
        assert header["info"]["version"] == ["1.0"]
        by_name = {s["info"]["name"][0]: s for s in streams}
        assert set(by_name) == {"a", "b", "level"}
        for name in ("a", "b"):
            blocks = _recorded(capture, name)
            s = by_name[name]
            values = np.concatenate([b for _h, b in blocks])
            assert s["time_series"].shape == values.shape  # exact sample counts
            assert np.array_equal(s["time_series"], values)  # exact samples
            stamps = np.concatenate([h.t + np.arange(h.frames) / h.rate for h, _b in blocks])
            if name == "a" and dejitter:
                continue  # pyxdf's dejitter fits one line through a gap under 1 s: not t
            assert np.max(np.abs(s["time_stamps"] - stamps)) < 1e-3
            footer = s["footer"]["info"]
            assert int(footer["sample_count"][0]) == len(values)
            offsets = footer["clock_offsets"][0]["offset"]
            assert len(offsets) >= 2 and all(abs(float(o["value"][0])) < 1e-3 for o in offsets)
            assert s["info"]["channel_format"] == ["float32"]
        level = by_name["level"]  # the results: a string marker stream, one per result
        assert level["info"]["channel_format"] == ["string"] and len(results) >= 50
        assert [json.loads(x[0]) for x in level["time_series"]] == [
            {"kind": "result", **msgspec.to_builtins(h)} for h in results
        ]
        assert np.max(np.abs(level["time_stamps"] - np.array([h.t for h in results]))) < 1e-3
