"""``zaudio process`` against a real proxy process, with publishers in this process."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import Listener, listing, proxy_process, run, spawn, stop, wait_node, wait_until
from zaudio._children import stop_process
from zaudio.bus import Outlet, Publisher
from zaudio.client import request
from zaudio.protocol import AudioStream

RATE = 1000
PROCS = "tests.procs.basic"


@pytest.fixture
def bus() -> Iterator[str]:
    """A proxy process with fast heartbeats (counters show up within 0.2 s)."""
    with proxy_process("--heartbeat", "0.2") as (control, _proc):
        yield control


def stats(control: str, name: str) -> dict[str, Any]:
    for n in listing(control)["nodes"]:
        if n["name"] == name:
            return n["stats"] or {}  # type: ignore[no-any-return]
    return {}


def blocks(n: int, frames: int = 16, channels: int = 1, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((frames, channels)).astype(np.float32) for _ in range(n)]


def test_every_block_once_in_order_exact_and_topic_exact(bus: str) -> None:
    n = 60
    src = blocks(n)
    with (
        spawn("process", f"{PROCS}:samples", "--topic", "mic", "--proxy", bus) as proc,
        Listener(bus, "result/samples") as lis,
    ):
        node = wait_node(bus, "samples", role="processor")
        assert node["topics"] == ["audio/mic\x00"]
        with (
            Publisher("mic", rate=RATE, channels=1, proxy=bus) as mic,
            Publisher("mic2", rate=RATE, channels=1, proxy=bus) as mic2,
        ):
            for b in src:
                assert mic2.send(b + 1)
                assert mic.send(b)
            got = lis.collect(n, timeout=15)
        data = [h.data for h, _ in got]
        assert [d["seq"] for d in data] == list(range(n))
        assert {d["stream"] for d in data} == {"mic"}
        assert [h.index for h, _ in got] == [16 * k for k in range(n)]
        assert all(h.frames == 16 and h.stream == "mic" for h, _ in got)
        for d, b in zip(data, src, strict=True):
            assert np.array_equal(np.array(d["samples"], np.float32), b[:, 0])
            assert d["writeable"] is False and d["gap"] is False
        s = wait_until(
            lambda: stats(bus, "samples").get("processed") == n and stats(bus, "samples"),
            10,
            "stats",
        )
        assert s["received"] == n  # never a block of mic2
        assert s["dropped"] == s["gaps"] == s["errors"] == 0
        assert s["lag"] is not None and s["proc_time"] > 0 and s["rtf"] > 0
        out = run("ls", "--proxy", bus).stdout
        assert "PROCESSED" in out and "LAG" in out and "samples" in out
        assert stop(proc, signal.SIGINT) == 0


def test_results_and_chained_audio(bus: str) -> None:
    n = 30
    src = blocks(n, frames=10, channels=2, seed=3)
    with (
        spawn("process", f"{PROCS}:negate", "--topic", "mic", "--name", "neg", "--proxy", bus),
        spawn("process", f"{PROCS}:samples", "--topic", "neg", "--name", "b", "--proxy", bus),
        Listener(bus, "neg", "result/b") as lis,
    ):
        wait_node(bus, "neg")
        wait_node(bus, "b")
        with Publisher("mic", rate=RATE, channels=2, proxy=bus) as mic:
            t0 = mic.now()
            for k, b in enumerate(src):
                assert mic.send(b, t=t0 + k * 0.01)
            got = lis.collect(2 * n, timeout=15)
        audio = [(h, b) for h, b in got if h.__class__.__name__ == "AudioHeader"]
        results = [h for h, _ in got if h.__class__.__name__ == "ResultHeader"]
        assert len(audio) == len(results) == n
        for k, (h, b) in enumerate(audio):
            assert h.stream == "neg" and h.seq == k and h.index == 10 * k
            assert h.t == pytest.approx(t0 + k * 0.01)
            np.testing.assert_array_equal(b, -src[k])
        assert len({h.src for h, _ in audio}) == 1 and audio[0][0].src != results[0].src
        for k, r in enumerate(results):
            assert r.processor == "b" and r.stream == "neg" and r.index == 10 * k
            assert r.data["samples"] == (-src[k][:, 0]).tolist()
        streams = wait_until(
            lambda: [s for s in listing(bus)["streams"] if s["name"] == "neg"], 5, "neg listed"
        )
        assert streams[0]["rate"] == RATE and streams[0]["channels"] == 2


def test_garbage_is_counted_and_processing_goes_on(bus: str) -> None:
    hello = request(bus, {"op": "hello"})
    good = AudioStream("g", RATE, 1)
    src = blocks(10, seed=5)
    garbage = [
        [b"audio/g\0", b"{not json", b""],
        [b"audio/g\0", b'{"v":1,"kind":"audio"}', b"\0" * 64],
        [b"audio/g\0", b"x"],
        [b"audio/g\0", AudioStream("h", RATE, 1).encode(src[0], 0.0)[1], b"\0" * 64],
        [b"audio/g\0", good.encode(src[0], 0.0)[1][:-1], b"\0" * 64],
    ]
    good = AudioStream("g", RATE, 1)
    with (
        spawn("process", f"{PROCS}:samples", "--topic", "g", "--proxy", bus) as proc,
        Listener(bus, "result/samples") as lis,
    ):
        wait_node(bus, "samples")
        outlet = Outlet()
        try:
            outlet.connect(hello["pub"])
            assert outlet.wait_ready(5)
            for k, b in enumerate(src):
                assert outlet.send(good.encode(b, float(k)))
                assert outlet.send(garbage[k % len(garbage)])
            got = lis.collect(len(src), timeout=10)
        finally:
            outlet.close()
        assert [h.data["seq"] for h, _ in got] == list(range(len(src)))
        s = wait_until(
            lambda: stats(bus, "samples").get("malformed") == 10 and stats(bus, "samples"),
            10,
            "malformed counted",
        )
        assert s["processed"] == 10 and s["errors"] == 10 and s["gaps"] == 0
        assert proc.poll() is None


def test_raising_function_is_counted_and_the_next_block_goes_on(bus: str) -> None:
    n = 20
    with (
        spawn("process", f"{PROCS}:boom", "--topic", "mic", "--proxy", bus) as proc,
        Listener(bus, "result/boom") as lis,
    ):
        wait_node(bus, "boom")
        with Publisher("mic", rate=RATE, channels=1, proxy=bus) as mic:
            for b in blocks(n):
                assert mic.send(b)
            got = lis.collect(n // 2, timeout=10)
        assert [h.data for h, _ in got] == list(range(0, n, 2))
        s = wait_until(
            lambda: stats(bus, "boom").get("failed") == n // 2 and stats(bus, "boom"),
            10,
            "failures counted",
        )
        assert s["errors"] == n // 2 and s["processed"] == n // 2
        assert stop(proc) == 0
        err = proc.stderr.read() if proc.stderr else ""
        # rate-limited: the first failure is logged with stream and seq, not all ten
        assert "raised on stream 'mic' seq 1" in err and err.count("Traceback") == 1


def test_on_error_stop_exits_non_zero(bus: str) -> None:
    with spawn(
        "process", f"{PROCS}:boom", "--topic", "mic", "--on-error", "stop", "--proxy", bus
    ) as proc:
        wait_node(bus, "boom")
        with Publisher("mic", rate=RATE, channels=1, proxy=bus) as mic:
            for b in blocks(2):
                assert mic.send(b)
        assert proc.wait(10) == 1
        err = proc.stderr.read() if proc.stderr else ""
        assert "seq 1" in err and "--on-error stop" in err


def test_class_lifecycle_with_params(bus: str, tmp_path: Path) -> None:
    path = tmp_path / "life.log"
    n = 12
    with (
        spawn(
            "process", f"{PROCS}:Lifecycle", "--topic", "mic", "--name", "life",
            "-p", f"path={path}", "-p", "gain=2", "-p", "label=hi there", "--proxy", bus,
        ) as proc,
        Listener(bus, "result/life") as lis,
    ):  # fmt: skip
        wait_node(bus, "life")
        with Publisher("mic", rate=RATE, channels=1, proxy=bus) as mic:
            for b in blocks(n):
                assert mic.send(np.full_like(b, 0.25))
            got = lis.collect(n, timeout=10)
        assert [h.data["calls"] for h, _ in got] == list(range(1, n + 1))
        assert all(h.data["peak"] == 0.5 for h, _ in got)
        assert stop(proc, signal.SIGTERM) == 0
        # it left the registry on the way out
        assert all(nd["name"] != "life" for nd in listing(bus)["nodes"])
    assert path.read_text().splitlines() == [
        "init gain=2 label='hi there'",
        "setup mic seq=0 calls=0",
        f"close calls={n}",
    ]


def test_parameter_that_does_not_fit_the_stream_is_bad_usage(bus: str) -> None:
    """logmel's fmax above Nyquist is only known at setup(info): still exit 2, one line."""
    with spawn("process", "logmel", "-p", "fmax=20000", "--topic", "lo", "--proxy", bus) as proc:
        wait_node(bus, "logmel", role="processor")
        with Publisher("lo", rate=RATE, channels=1, proxy=bus) as pub:
            assert pub.send(np.zeros((16, 1), np.float32))
            assert proc.wait(15) == 2
        err = proc.stderr.read() if proc.stderr else ""
    assert err.strip().splitlines()[-1].startswith("Error: invalid -p fmax=20000")
    assert "Traceback" not in err


def test_print_into_head_exits_quietly_when_the_pipe_closes(bus: str) -> None:
    with spawn("process", "print", "--topic", "p", "--proxy", bus) as proc:
        assert proc.stdout is not None
        head = subprocess.Popen(["head", "-n", "3"], stdin=proc.stdout, stdout=subprocess.PIPE)
        proc.stdout.close()  # head holds the only reading end: it exits, the pipe closes
        try:
            wait_node(bus, "print", role="processor")
            with Publisher("p", rate=RATE, channels=1, proxy=bus) as pub:
                # Keep publishing until the printer notices the closed pipe (bounded).
                wait_until(
                    lambda: pub.send(np.zeros((16, 1), np.float32)) and proc.poll() is not None,
                    20,
                    "zaudio process print to exit after head -n 3",
                )
            out, _ = head.communicate(timeout=10)
        finally:
            stop_process(head)
        assert head.returncode == 0 and len(out.splitlines()) == 3, out
        assert proc.returncode == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "BrokenPipe" not in err and "Traceback" not in err, err


def test_nan_in_a_result_arrives_as_null_and_is_counted(bus: str, tmp_path: Path) -> None:
    (tmp_path / "nanres.py").write_text(
        "import math\n\ndef fn(block):\n    return {'x': math.nan, 'y': [1.0, math.inf], 'z': 2}\n"
    )
    with (
        Listener(bus, "result/nanres") as lis,
        spawn(
            "process",
            f"{tmp_path / 'nanres.py'}:fn",
            "--name",
            "nanres",
            "--topic",
            "n",
            "--proxy",
            bus,
        ),
    ):
        wait_node(bus, "nanres", role="processor")
        with Publisher("n", rate=RATE, channels=1, proxy=bus) as pub:
            for block in blocks(3):
                assert pub.send(block)
            got = lis.collect(3, timeout=10)
        assert [h.data for h, _ in got] == [{"x": None, "y": [1.0, None], "z": 2}] * 3
        wait_until(lambda: stats(bus, "nanres").get("result_nonfinite") == 6, 10, "the count")
