"""`zaudio demo` end to end: real processes, 0 drops, and a file holding exactly the signal."""

from __future__ import annotations

import itertools
import signal
import subprocess

import numpy as np
import soundfile

from tests.helpers import ZAUDIO, env, free_ports, run, stop, wait_until
from zaudio.sources import SourceOptions
from zaudio.sources.synth import Speech


def test_demo_runs_with_zero_drops_and_exact_file(tmp_path) -> None:
    port = free_ports(3)
    r = run("demo", "--duration", "2s", "--out", str(tmp_path), "--port", str(port), timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "200 blocks published" in out
    for name in ("level", "vad", "writer"):
        row = next(line.split() for line in out.splitlines() if line.strip().startswith(name))
        assert row[1:3] == ["200", "200"] if name != "level" else row[1] == "200"
        assert row[3:5] == ["0", "0"]  # dropped, gaps
    assert "drops: 0" in out and "latency: p50" in out
    data, rate = soundfile.read(tmp_path / "demo.wav", dtype="float32", always_2d=True)
    assert rate == 48000 and data.shape == (96000, 1)
    # The speech source is deterministic: the file holds exactly its first 2 s.
    src = Speech(SourceOptions(rate=48000, channels=1))
    expected = np.concatenate(list(itertools.islice(src.blocks(), 200)))
    assert np.array_equal(data, expected)


def test_demo_ctrl_c_stops_everything(tmp_path) -> None:
    port = free_ports(3)
    proc = subprocess.Popen(
        [*ZAUDIO, "demo", "--duration", "0", "--out", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        wait_until(
            lambda: (lines.append(proc.stdout.readline()), _flowing(lines[-1]))[1],
            60,
            "blocks to flow in the demo",
        )
        children = _children(proc.pid)
        assert len(children) == 5  # proxy, recorder, level, vad, writer
        code = stop(proc, signal.SIGINT, timeout=30)
        out = proc.stdout.read()
        assert code == 0, out + (proc.stderr.read() if proc.stderr else "")
        assert "blocks published" in out and "drops: 0" in out
    finally:
        stop(proc, signal.SIGKILL)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()
    for pid in children:  # no process left behind
        wait_until(lambda pid=pid: not _alive(pid), 10, f"child {pid} to exit")


def _flowing(line: str) -> bool:
    words = line.split()
    return "blocks" in words and int(words[words.index("blocks") + 1]) > 0


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
