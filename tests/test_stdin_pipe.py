"""``cat FILE | zaudio record --source -``: a pipe loses no sample (issue 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

from tests.helpers import (
    free_ports,
    node_stats,
    processed,
    proxy_process,
    run,
    spawn,
    stop,
    wait_node,
    wait_until,
)
from zaudio.sources import SourceOptions
from zaudio.sources.stdin import StdinSource


def test_a_pipe_into_record_loses_no_sample(tmp_path: Path) -> None:
    blocks, frames, rate = 301, 480, 48000
    data = np.random.default_rng(12).uniform(-1, 1, (blocks * frames, 1)).astype("<f4")
    raw = tmp_path / "in.raw"
    raw.write_bytes(data.tobytes())
    out = tmp_path / "out.wav"
    with (
        proxy_process("--heartbeat", "0.2") as (bus, _proxy),
        # cat publishes 3 s of audio in ~0.1 s: a queue that holds the whole burst, so
        # that a writer slowed by the machine's load does not drop (counted) its oldest.
        spawn(
            "process",
            "writer",
            "--topic",
            "raw",
            "-p",
            f"path={out}",
            "--queue",
            "1000",
            "--proxy",
            bus,
        ) as w,  # fmt: skip
    ):
        wait_node(bus, "writer", role="processor")
        # A real pipe from a process that writes as fast as it can, like the user's
        # `cat in.raw | zaudio record --source - ...`.
        with subprocess.Popen(["cat", str(raw)], stdout=subprocess.PIPE) as cat:
            assert cat.stdout is not None
            done = run("record", "--source", "-", "--stream", "raw", "--rate", str(rate),
                       "--proxy", bus, stdin=cat.stdout, timeout=60)  # fmt: skip
            cat.stdout.close()
            assert cat.wait(10) == 0
        assert done.returncode == 0, done.stderr
        wait_until(lambda: processed(bus, "writer") == blocks, 20, "writer to take every block")
        assert node_stats(bus, "writer")["dropped"] == 0
        assert stop(w, signal.SIGINT) == 0
    got, file_rate = soundfile.read(out, dtype="float32", always_2d=True)
    assert file_rate == rate and got.shape == data.shape
    assert got.tobytes() == data.tobytes()


def test_a_pipe_that_cannot_be_published_fails_loudly(tmp_path: Path) -> None:
    raw = tmp_path / "in.raw"
    raw.write_bytes(np.ones(4800, "<f4").tobytes())
    nobody = f"tcp://127.0.0.1:{free_ports(3)}"  # no proxy there
    with raw.open("rb") as f:
        done = run("record", "--source", "-", "--stream", "x", "--proxy", nobody,
                   stdin=f, timeout=30)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: stream 'x': 10 buffered blocks (4800 frames) not sent"), last


def test_stdin_source_stops_promptly_while_the_pipe_is_idle() -> None:
    r, w = os.pipe()
    with os.fdopen(r, "rb") as reader, os.fdopen(w, "wb") as writer:
        src = StdinSource(SourceOptions(rate=8000, block=80), reader)
        got: list[int] = []
        ended = threading.Event()

        class Sink:
            def put(self, block: np.ndarray, t: float | None) -> None:
                got.append(len(block))

            def end(self, error: BaseException | None = None) -> None:
                ended.set()

        src.start(Sink())
        writer.write(np.zeros(200, "<f4").tobytes())  # 2.5 blocks, then nothing
        writer.flush()
        wait_until(lambda: got == [80, 80], 5, "the two whole blocks")
        t0 = time.monotonic()
        src.stop()
        assert time.monotonic() - t0 < 1
        assert src._thread is not None and not src._thread.is_alive()
        assert not ended.is_set()  # stopped, not exhausted: no sink call after stop()
