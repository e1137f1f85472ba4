"""Capture: the record format, a capture SIGKILLed mid-run, rotation, a disk that fills,
and every bad file ``zaudio info`` can be given."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import (
    ZAUDIO,
    Listener,
    env,
    proxy_process,
    run,
    spawn,
    stop,
    wait_node,
    wait_until,
)
from zaudio import clock
from zaudio.capture.format import FILE_MAGIC, CaptureFile, Event, Message
from zaudio.capture.summary import summarize
from zaudio.capture.writer import CaptureWriter, parse_rotate
from zaudio.errors import CaptureError, CaptureFileError, ConfigError
from zaudio.publisher import Publisher


def _write(path: Path, n: int = 5) -> list[tuple[float, bytes, bytes, bytes]]:
    msgs = [(1000.0 + i, b"audio/x\0", b'{"i":%d}' % i, bytes([i]) * (4 * i)) for i in range(n)]
    w = CaptureWriter(path, start={"event": "start"})
    for m in msgs:
        w.message(*m)
    w.close({"event": "end"})
    return msgs


def _messages(path: Path) -> tuple[list[tuple[float, bytes, bytes, bytes]], CaptureFile]:
    f = CaptureFile(path)
    out = [(r.time, r.topic, r.header, bytes(r.payload)) for r in f if isinstance(r, Message)]
    return out, f


def test_records_read_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "a.zcap"
    msgs = _write(path)
    assert path.read_bytes().startswith(FILE_MAGIC)
    got, f = _messages(path)
    assert got == msgs
    assert (f.records, f.corrupt, f.torn_bytes) == (7, 0, 0)  # start, 5 messages, end
    events = [r.data["event"] for r in CaptureFile(path) if isinstance(r, Event)]
    assert events == ["start", "end"]


def test_a_torn_end_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "a.zcap"
    msgs = _write(path)
    data = path.read_bytes()
    end_record = len(data) - data.rfind(b"ZREC")
    path.write_bytes(data[: len(data) - end_record - 3])  # the last message, torn
    got, f = _messages(path)
    assert got == msgs[:-1]
    assert f.torn_bytes > 0 and f.corrupt == 0


def test_a_corrupted_middle_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.zcap"
    msgs = _write(path)
    data = bytearray(path.read_bytes())
    third = data.find(b'{"i":2}')
    data[third + 3] ^= 0xFF  # one bit-flip inside message 2
    data[data.find(b"ZREC", data.find(b'{"i":3}')) - 2] ^= 0x01  # the payload of message 3
    path.write_bytes(bytes(data))
    got, f = _messages(path)
    assert got == [msgs[0], msgs[1], msgs[4]]
    assert f.corrupt == 1  # messages 2 and 3 are adjacent: one damaged region
    assert f.corrupt_bytes > 0 and f.torn_bytes == 0
    # a damaged length field too: the reader finds the next whole record
    data = bytearray(path.read_bytes())
    first = data.find(b"ZREC", 12 + 4)
    data[first + 4 : first + 8] = (0x7FFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    got, f = _messages(path)
    assert got == [msgs[1], msgs[4]] and f.corrupt == 2


def test_not_a_capture_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not a capture\n")
    with pytest.raises(CaptureFileError):
        CaptureFile(bad)
    for path in (bad, tmp_path / "missing.zcap"):
        r = run("info", str(path))
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("Error: "), r.stderr
        assert "Traceback" not in r.stderr
    empty = tmp_path / "empty.zcap"
    empty.write_bytes(b"")
    assert run("info", str(empty)).returncode == 2
    newer = tmp_path / "newer.zcap"
    newer.write_bytes(FILE_MAGIC + (2).to_bytes(4, "little"))
    r = run("info", str(newer))
    assert r.returncode == 2 and "version 2" in r.stderr


def test_info_reports_damage_and_a_torn_end(tmp_path: Path) -> None:
    path = tmp_path / "a.zcap"
    _write(path)
    data = bytearray(path.read_bytes())
    data[data.find(b'{"i":1}')] ^= 0xFF
    path.write_bytes(bytes(data[:-5]))
    r = run("info", "--json", str(path))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["corrupt"] == 1 and d["torn"] is True and d["ended"] is False
    text = run("info", str(path)).stdout
    assert "1 damaged regions skipped" in text and "ends torn" in text


def test_rotate_option() -> None:
    assert parse_rotate("100MB") == (100e6, None)
    assert parse_rotate("1GiB") == (1024**3, None)
    assert parse_rotate("10m") == (None, 600.0)
    for bad in ("lots", "10XB", "1kB"):
        with pytest.raises(ConfigError):
            parse_rotate(bad)


def _raw(listener: Listener, timeout: float) -> tuple[float, bytes, bytes, bytes] | None:
    frames = listener.inlet.recv(timeout)
    if frames is None:
        return None
    topic, header, payload = (bytes(f) for f in frames)
    return clock.now(), topic, header, payload


def test_capture_killed_keeps_every_whole_record(tmp_path: Path) -> None:
    """SIGKILL mid-run: every whole record equals a message on the wire, and at most
    1 s of audio received before the kill is missing."""
    out = tmp_path / "run.zcap"
    with proxy_process() as (control, _):
        with (
            spawn("record", "--source", "sine:440", "--stream", "mic", "--proxy", control),
            spawn("process", "level", "--topic", "mic", "--proxy", control),
            Listener(control, "*", "result/") as listener,
        ):
            wire: list[tuple[float, bytes, bytes, bytes]] = []
            with spawn("capture", str(out), "--proxy", control) as cap:
                wait_node(control, "capture", role="capture")
                deadline = time.monotonic() + 30
                results = 0
                while results < 300 and time.monotonic() < deadline:  # ~3 s of results
                    msg = _raw(listener, 5)
                    assert msg is not None
                    wire.append(msg)
                    results += msg[1].startswith(b"result/")
                killed = clock.now()
                cap.send_signal(signal.SIGKILL)
                assert cap.wait(10) == -signal.SIGKILL
    got, f = _messages(out)
    assert f.corrupt == 0
    by_frames = {(m[1], m[2], m[3]) for m in wire}
    recorded = [(m[1], m[2], m[3]) for m in got]
    assert recorded and all(r in by_frames for r in recorded)  # exact, every one

    # owed: what was sent (by its t) from the capture's first message of the same kind
    # to 1 s before the kill. Per kind: a result carries the t of audio analysed earlier,
    # so the first result recorded can be older than audio sent before the capture's
    # subscription took effect (seen: the block just before it counted as missing).
    def kind(topic: bytes) -> bytes:
        return topic.partition(b"/")[0]

    first: dict[bytes, float] = {}
    for topic, header, _payload in recorded:
        first.setdefault(kind(topic), json.loads(header)["t"])
    owed = [
        (m[1], m[2], m[3])
        for m in wire
        if first.get(kind(m[1]), math.inf) <= json.loads(m[2])["t"] <= killed - 1.0
    ]
    missing = [m for m in owed if m not in set(recorded)]
    assert owed and not missing, f"{len(missing)} of {len(owed)} messages missing"
    s = summarize([out])
    assert s.streams["mic"].frames >= 96000 and s.results["level"] >= 200
    assert s.ended is False and not s.streams["mic"].gaps
    r = run("info", str(out))
    assert r.returncode == 0 and "audio/mic: 48000 Hz, 1 ch" in r.stdout, r.stderr


def test_capture_counts_gaps_and_rotates(tmp_path: Path) -> None:
    out = tmp_path / "rot.zcap"
    with proxy_process() as (control, _):
        with spawn("capture", str(out), "--rotate", "8kB", "--duration", "30",
                   "--proxy", control) as cap:  # fmt: skip
            wait_node(control, "capture", role="capture")
            with Publisher("g", rate=1000, channels=2, proxy=control) as pub:
                for i in range(40):
                    if i in (10, 11, 25):
                        pub.skip(100)  # three blocks lost upstream: two gaps
                        continue
                    assert pub.send(np.full((100, 2), i, np.float32))
            wait_until(
                lambda: _stats(control).get("received", 0) >= 37, 15, "capture to get 37 blocks"
            )
            assert stop(cap) == 0, cap.stderr.read() if cap.stderr else ""
    parts = sorted(tmp_path.glob("rot.*.zcap"))
    assert len(parts) >= 3 and parts[0].name == "rot.0000.zcap"
    s = summarize(parts)
    g = s.streams["g"]
    assert (g.blocks, g.frames, g.channels, g.rate) == (37, 3700, 2, 1000)
    assert [n for _, n in g.gaps] == [200, 100]
    assert s.seen["gaps"] == 3 and s.seen["lost_frames"] == 300 and s.ended  # blocks, frames
    r = run("info", *map(str, parts))  # the parts, read in order, as one capture
    assert r.returncode == 0 and "audio/g: 1000 Hz, 2 ch, 3700 frames" in r.stdout, r.stderr
    assert "2 gaps (300 frames)" in r.stdout and "ends cleanly" in r.stdout
    for n, part in enumerate(parts):  # each part a whole capture: start ... end
        events = [r.data for r in CaptureFile(part) if isinstance(r, Event)]
        assert events[0]["event"] == "start" and events[0]["part"] == n
        assert events[-1]["event"] == "end"


def _stats(control: str) -> dict[str, Any]:
    from tests.helpers import node_stats

    return node_stats(control, "capture")


def test_capture_to_an_existing_file_or_bad_options_is_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "x.zcap"
    out.write_bytes(b"precious")
    with proxy_process() as (control, _):
        r = run("capture", str(out), "--duration", "1", "--proxy", control)
        assert r.returncode == 2 and "exists already" in r.stderr, r.stderr
        r = run("capture", str(tmp_path / "y.zcap"), "--rotate", "often", "--proxy", control)
        assert r.returncode == 2 and "--rotate" in r.stderr and "Traceback" not in r.stderr
    assert out.read_bytes() == b"precious"


def test_disk_full_stops_cleanly_with_a_valid_file(tmp_path: Path) -> None:
    """A real full filesystem: a 256 KiB tmpfs mounted in a private mount namespace
    (``unshare``), so nothing stays mounted; the capture is copied out before it goes."""
    inside = tmp_path / "small"
    inside.mkdir()
    kept = tmp_path / "kept.zcap"
    with proxy_process() as (control, _):
        with spawn("record", "--source", "noise", "--stream", "mic", "--proxy", control):
            script = (
                f"mount -t tmpfs -o size=256k tmpfs {inside} || exit 99; "
                f"{' '.join(ZAUDIO)} capture {inside}/c.zcap --duration 60 --proxy {control}; "
                f"rc=$?; cp {inside}/c.zcap {kept}; exit $rc"
            )
            r = subprocess.run(
                ["unshare", "-rm", "sh", "-c", script],
                capture_output=True, text=True, timeout=60, env=env(), cwd=os.getcwd(),
            )  # fmt: skip
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "disk is full" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert 200_000 < kept.stat().st_size <= 256 * 1024
    s = summarize([kept])
    assert s.corrupt == 0 and s.torn_bytes == 0 and s.streams["mic"].frames > 0
    with pytest.raises(CaptureError):  # the library says the same
        w = CaptureWriter(tmp_path / "z.zcap", start={"event": "start"})
        os.close(w._fd)
        w._fd = os.open("/dev/full", os.O_WRONLY)
        w.message(0.0, b"audio/x\0", b"{}", b"\0" * 8)


def test_capture_subscriptions(tmp_path: Path) -> None:
    from zaudio.capture.node import Capture

    def topics(**kw: Any) -> list[str]:
        cap = Capture(tmp_path / "x.zcap", proxy="tcp://127.0.0.1:9", **kw)
        try:
            return cap.conn.topics()
        finally:
            cap.conn.close(0)

    assert topics() == ["audio/", "result/"]
    assert topics(results=False) == ["audio/"]
    assert topics(topics=["mic", "lab/"]) == ["audio/mic\0", "audio/lab/", "result/"]
    assert topics(topics=["mic", "result/level"]) == ["audio/mic\0", "result/level\0"]
    with pytest.raises(ConfigError, match="nothing to capture"):
        topics(topics=["result/level"], results=False)
    with pytest.raises(ConfigError, match="invalid --topic"):
        topics(topics=["bad name"])
