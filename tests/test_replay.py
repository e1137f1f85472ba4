"""Replay: a capture fed back to the same deterministic processors gives the same results
and the same audio (sha256) as the live run; timing, --fast, --rename, bad input."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from tests.helpers import node_stats, proxy_process, run, spawn, stop, wait_node, wait_until
from zaudio.capture.summary import Captures
from zaudio.protocol import AudioHeader


def _read(path: Path) -> dict[str, Any]:
    """Per stream: src set, (index, frames) list, payload sha256; results per processor."""
    audio: dict[str, Any] = {}
    results: dict[str, list[Any]] = {}
    with Captures([path]) as caps:
        for _rec, h, block in caps.decoded():
            if type(h) is AudioHeader:
                a = audio.setdefault(h.stream, {"src": set(), "spans": [], "sha": hashlib.sha256()})
                a["src"].add(h.src)
                a["spans"].append((h.seq, h.index, h.frames))
                a["sha"].update(block.tobytes())
            else:
                results.setdefault(h.processor, []).append(
                    (h.src, h.stream, h.index, h.frames, json.dumps(h.data))
                )
    for a in audio.values():
        a["sha"] = a["sha"].hexdigest()
    return {"audio": audio, "results": results}


def _capture_until(control: str, name: str, audio: int, results: int) -> None:
    def done() -> bool:
        s = node_stats(control, name)
        return s.get("received", 0) >= audio and s.get("results", 0) >= results

    wait_until(done, 30, f"{name} to record {audio} blocks and {results} results")


def _session(out: Path, feed: list[str], audio: int = 200, results: int = 100) -> float:
    """Capture into ``out`` while ``negate`` and ``level`` process what ``feed``
    (a zaudio command, run to its end) publishes; returns how long ``feed`` took."""
    with proxy_process() as (control, _):
        with spawn("capture", str(out), "--proxy", control) as cap:
            wait_node(control, "capture", role="capture")
            with (
                spawn("process", "tests.procs.basic:negate", "--topic", "mic", "--name", "neg",
                      "--proxy", control),
                spawn("process", "level", "--topic", "mic", "--proxy", control),
            ):  # fmt: skip
                wait_node(control, "neg", role="processor")
                wait_node(control, "level", role="processor")
                began = time.monotonic()
                r = run(*feed, "--proxy", control, timeout=60)
                took = time.monotonic() - began
                assert r.returncode == 0, r.stderr
                _capture_until(control, "capture", audio, results)
            assert stop(cap) == 0
    return took


def test_replay_into_processors_gives_the_live_results_and_audio(tmp_path: Path) -> None:
    live, again = tmp_path / "live.zcap", tmp_path / "again.zcap"
    _session(live, ["record", "--source", "sine:440:0.5", "--stream", "mic", "--duration", "1"])
    took = _session(again, ["replay", str(live), "--topic", "mic", "--no-results"])
    a, b = _read(live), _read(again)
    for stream in ("mic", "neg"):  # the replayed input, and the processor's audio output
        la, ra = a["audio"][stream], b["audio"][stream]
        assert ra["sha"] == la["sha"], stream
        assert [s[1:] for s in ra["spans"]] == [s[1:] for s in la["spans"]], stream
        assert len(la["spans"]) == 100 and not (ra["src"] & la["src"])  # fresh src
    assert [r[2:] for r in b["results"]["level"]] == [r[2:] for r in a["results"]["level"]]
    assert took >= 0.9  # 1 s of audio in its original timing (it cannot go faster)


def test_replay_fast_renamed_with_results(tmp_path: Path) -> None:
    live, again = tmp_path / "live.zcap", tmp_path / "again.zcap"
    _session(live, ["record", "--source", "noise", "--stream", "mic", "--duration", "2"],
             audio=400, results=200)  # fmt: skip
    with proxy_process() as (control, _):
        with spawn("capture", str(again), "--proxy", control) as cap:
            wait_node(control, "capture", role="capture")
            r = run("replay", str(live), "--fast", "--rename", "mic=mic2", "--proxy", control)
            assert r.returncode == 0, r.stderr
            _capture_until(control, "capture", 400, 200)
            assert stop(cap) == 0
    a, b = _read(live), _read(again)
    assert set(b["audio"]) == {"mic2", "neg"}
    assert b["audio"]["mic2"]["sha"] == a["audio"]["mic"]["sha"]
    assert b["audio"]["mic2"]["spans"] == a["audio"]["mic"]["spans"]  # seq from 0 both times
    assert b["audio"]["neg"]["sha"] == a["audio"]["neg"]["sha"]
    live_results = [(s, i, f, d) for _src, s, i, f, d in a["results"]["level"]]
    replayed = [(s, i, f, d) for _src, s, i, f, d in b["results"]["level"]]
    assert replayed == [("mic2", i, f, d) for _s, i, f, d in live_results]
    assert {r[0] for r in b["results"]["level"]}.isdisjoint(r[0] for r in a["results"]["level"])
    with Captures([again]) as caps:  # not paced: 2 s of audio arrived within 1 s
        times = [rec.time for rec, h, _ in caps.decoded() if type(h) is AudioHeader]
    assert max(times) - min(times) < 1.0


def test_replay_bad_input(tmp_path: Path) -> None:
    not_capture = tmp_path / "x.wav"
    not_capture.write_bytes(b"RIFF....WAVE")
    live = tmp_path / "live.zcap"
    _session(live, ["record", "--source", "sine:440", "--stream", "mic", "--duration", "0.2"],
             audio=40, results=20)  # fmt: skip
    with proxy_process() as (control, _):
        for args, what in (
            ([str(not_capture)], "not a zaudio capture"),
            ([str(live), "--rename", "mic"], "--rename"),
            ([str(live), "--speed", "0"], "--speed"),
            ([str(live), "--topic", "nothing-here"], "nothing to replay"),
        ):
            r = run("replay", *args, "--proxy", control)
            assert r.returncode == 2, (args, r.stderr)
            assert r.stderr.count("\n") == 1 and what in r.stderr, r.stderr
        with spawn("record", "--source", "sine:440", "--stream", "mic", "--proxy", control):
            wait_node(control, "mic", role="recorder")
            r = run("replay", str(live), "--proxy", control)
            errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
            assert r.returncode == 1 and len(errors) == 1 and "mic" in errors[0], r.stderr
            assert "Traceback" not in r.stderr


def test_replay_loop_restarts_each_pass_and_stops_on_sigterm(tmp_path: Path) -> None:
    from zaudio.capture.summary import summarize

    live, again = tmp_path / "live.zcap", tmp_path / "again.zcap"
    _session(live, ["record", "--source", "sine:440", "--stream", "mic", "--duration", "0.3"],
             audio=60, results=30)  # fmt: skip
    with proxy_process() as (control, _):
        with spawn("capture", str(again), "--no-results", "--proxy", control) as cap:
            wait_node(control, "capture", role="capture")
            with spawn("replay", str(live), "--loop", "--speed", "3", "--topic", "mic",
                       "--proxy", control) as rep:  # fmt: skip
                _capture_until(control, "capture", 30 * 3, 0)  # three passes
                assert stop(rep) == 0
            assert stop(cap) == 0
    mic = _read(again)["audio"]["mic"]
    spans = [s[1:] for s in mic["spans"]]
    one = [s[1:] for s in _read(live)["audio"]["mic"]["spans"]]
    passes = len(mic["src"])
    assert passes >= 3 and spans[: len(one) * 2] == one * 2  # each pass the same blocks
    s = summarize([again]).streams["mic"]
    assert s.restarts == passes - 1 and not s.gaps  # a new src per pass: a restart, no gap
    assert not summarize([again]).results  # --no-results on the capture
