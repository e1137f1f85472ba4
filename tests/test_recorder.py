"""``zaudio record`` as a real process, through a real proxy, to a real subscriber."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tests.helpers import (
    Listener,
    free_ports,
    listing,
    run,
    spawn,
    stop,
    wait_node,
    wait_until,
)
from zaudio.protocol import AudioHeader
from zaudio.recorder import Recorder
from zaudio.sources import Source


def check_stream(msgs: list[tuple[Any, Any]], rate: int) -> tuple[list[AudioHeader], np.ndarray]:
    """Headers and samples of one stream: contiguous seq/index, t on the sample clock."""
    headers = [h for h, _ in msgs]
    assert all(isinstance(h, AudioHeader) for h in headers)
    assert len({h.src for h in headers}) == 1
    assert [h.seq for h in headers] == list(range(headers[0].seq, headers[0].seq + len(headers)))
    for a, b in zip(headers, headers[1:], strict=False):
        assert b.index == a.index + a.frames
        assert abs((b.t - a.t) - a.frames / rate) < 1e-6
    assert all(h.rate == rate for h in headers)
    return headers, np.concatenate([b for _, b in msgs])


def collect_frames(listener: Listener, frames: int, timeout: float = 15) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < frames:
        assert time.monotonic() < deadline, f"got {got} of {frames} frames"
        (msg,) = listener.collect(1, deadline - time.monotonic())
        out.append(msg)
        got += msg[0].frames
    return out


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_file_in_equals_samples_out_from_index_0(proxy_proc: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    data = rng.uniform(-1, 1, (22050 * 2 + 123, 2)).astype(np.float32)  # 2 s, odd tail
    wav = tmp_path / "in.wav"
    sf.write(wav, data, 22050, subtype="FLOAT")
    # Listening before the recorder starts: nothing may be lost at the beginning.
    with Listener(proxy_proc, "ftest") as listener:
        done = run(
            "record", "--source", f"file:{wav}", "--stream", "ftest", "--fast",
            "--block", "512", "--proxy", proxy_proc,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        msgs = collect_frames(listener, len(data))
    headers, samples = check_stream(msgs, 22050)
    assert headers[0].index == 0 and headers[0].seq == 0
    full, tail = divmod(len(data), 512)
    assert [h.frames for h in headers] == [512] * full + [tail]
    assert headers[0].channels == 2
    assert np.array_equal(samples, data), "file in = samples out, bit for bit"
    assert f"sent {full + 1} blocks" in done.stderr and "dropped 0" in done.stderr


def test_flac_file_bare_path_exact(proxy_proc: str, tmp_path: Path) -> None:
    ints = np.random.default_rng(8).integers(-(2**15), 2**15, (4800, 1), dtype=np.int16)
    flac = tmp_path / "in.flac"
    sf.write(flac, ints, 48000, subtype="PCM_16")
    with Listener(proxy_proc, "flac") as listener:
        done = run("record", "--source", str(flac), "--stream", "flac", "--fast",
                   "--proxy", proxy_proc)  # fmt: skip
        assert done.returncode == 0, done.stderr
        _, samples = check_stream(collect_frames(listener, 4800), 48000)
    assert np.array_equal(samples, ints.astype(np.float32) / 32768)


def test_paced_sine_takes_real_time_and_t_follows_the_sample_clock(proxy_proc: str) -> None:
    with Listener(proxy_proc, "tone") as listener:
        with spawn("record", "--source", "sine:440:0.5", "--stream", "tone", "--duration", "1",
                   "--proxy", proxy_proc) as proc:  # fmt: skip
            msgs, arrivals = [], []
            for _ in range(100):
                msgs += listener.collect(1, 15)
                arrivals.append(time.monotonic())
            assert proc.wait(10) == 0
    headers, samples = check_stream(msgs, 48000)
    assert headers[0].index == 0 and headers[-1].index == 99 * 480
    # Paced: the second half (surely past any start-up backlog) never arrives faster
    # than its 0.5 s of audio (load only delays blocks, so this holds on any machine;
    # 0.1 s for the listener's own scheduling), and not 3x slower either.
    second_half = arrivals[-1] - arrivals[49]
    assert 0.4 < second_half < 1.5, second_half
    assert arrivals[-1] - arrivals[0] > 0.6, arrivals[-1] - arrivals[0]
    assert abs(headers[-1].t - headers[0].t - 0.99) < 1e-6
    # t is in the proxy's time base, near "now" (same host: offset ~0)
    assert abs(headers[0].t - time.time()) < 5
    want = 0.5 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)
    assert np.max(np.abs(samples[:, 0] - want)) < 1e-5


def test_stdin_raw_float32(proxy_proc: str) -> None:
    data = np.random.default_rng(3).standard_normal((8000, 2)).astype("<f4")
    with Listener(proxy_proc, "raw") as listener:
        done = run("record", "--source", "-", "--rate", "16000", "--channels", "2",
                   "--stream", "raw", "--block", "100", "--proxy", proxy_proc,
                   input=data.tobytes())  # fmt: skip
        assert done.returncode == 0, done.stderr
        headers, samples = check_stream(collect_frames(listener, 8000), 16000)
    assert headers[0].index == 0 and np.array_equal(samples, data)


def test_proxy_started_later_data_arrives_and_drops_are_counted(tmp_path: Path) -> None:
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    log = tmp_path / "record.log"
    with (
        log.open("w") as err,
        spawn(
            "record",
            "--source",
            "sine:300",
            "--stream",
            "late",
            "--buffer",
            "200ms",
            "--proxy",
            control,
            stderr=err,
        ) as rec,  # fmt: skip
    ):
        # The recorder says it got no reply (after its 1 s request timeout): it has
        # been capturing for more than its 200 ms buffer, so blocks were dropped.
        wait_until(lambda: "retrying" in log.read_text(), 15, "recorder to miss the proxy")
        assert rec.poll() is None
        with spawn("proxy", "--port", str(port)):
            node = wait_node(control, "late", role="recorder")
            assert node["streams"][0]["name"] == "late"
            with Listener(control, "late") as listener:
                msgs = listener.collect(20, 10)
            headers, _ = check_stream(msgs, 48000)
            assert headers[0].index > 0, "the beginning was dropped, and index shows it"
            stats = wait_until(
                lambda: [
                    n["stats"]
                    for n in listing(control)["nodes"]
                    if n["name"] == "late" and n["stats"].get("sent")
                ],
                10,
                "heartbeat stats",
            )[0]
            assert stats["dropped"] > 0 and stats["dropped_frames"] > 0
            assert stats["sent"] > 0 and "overflows" in stats and "queue" in stats
            # dropped blocks are gaps in seq too, not silently renumbered
            assert headers[0].seq * 480 == headers[0].index
            assert stop(rec, signal.SIGINT) == 0
            wait_until(lambda: not listing(control)["nodes"], 10, "recorder to disconnect")
    text = log.read_text()
    assert "Traceback" not in text and "dropped" in text


def test_proxy_restart_stream_resumes(tmp_path: Path) -> None:
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    with spawn("record", "--source", "sine:500", "--stream", "rs", "--proxy", control) as rec:
        with spawn("proxy", "--port", str(port), "--heartbeat", "0.2") as px:
            wait_node(control, "rs")
            with Listener(control, "rs") as listener:
                before = listener.collect(5, 10)
            assert stop(px) == 0
        with spawn("proxy", "--port", str(port), "--heartbeat", "0.2"):
            wait_node(control, "rs")  # registered again by itself
            with Listener(control, "rs") as listener:
                after = listener.collect(5, 10)
        assert rec.poll() is None
    b, a = before[-1][0], after[0][0]
    assert a.src == b.src and a.index > b.index, "same run, capture went on"


def test_stream_name_taken_exits_1_with_one_line(proxy_proc: str) -> None:
    with spawn("record", "--source", "sine:440", "--stream", "taken", "--proxy", proxy_proc):
        wait_node(proxy_proc, "taken")
        done = run("record", "--source", "noise", "--stream", "taken", "--proxy", proxy_proc)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: stream 'taken'"), done.stderr


def test_sigterm_stops_flushes_and_disconnects(proxy_proc: str) -> None:
    with Listener(proxy_proc, "sig") as listener:
        with spawn("record", "--source", "noise", "--stream", "sig", "--proxy", proxy_proc) as rec:
            listener.collect(3, 15)
            wait_node(proxy_proc, "sig")
            assert stop(rec, signal.SIGTERM) == 0
            err = rec.stderr.read() if rec.stderr else ""
    assert "Traceback" not in err and "sent" in err
    assert not [n for n in listing(proxy_proc)["nodes"] if n["name"] == "sig"]


def test_bad_usage_exits_2_with_one_line(tmp_path: Path) -> None:
    cases = {
        ("--source", "nosuch"): "unknown source 'nosuch'",
        ("--source", f"file:{tmp_path}/missing.wav"): "does not exist",
        ("--source", "sine:440", "--block", "0.00001ms"): "invalid block size",
        ("--source", "sine:440", "--block", "lots"): "invalid block size",
        ("--source", "sine:440", "--stream", "bad name!"): "invalid stream name",
        ("--source", "sine:440", "--duration", "-1"): "invalid --duration",
    }
    for args, message in cases.items():
        done = run("record", *args, "--proxy", "tcp://127.0.0.1:9")
        assert message in one_error_line(done), (args, done.stderr)


def test_help_lists_record_and_devices() -> None:
    done = run("--help")
    assert "record" in done.stdout and "devices" in done.stdout
    done = run("record", "--help")
    assert done.returncode == 0 and "--buffer" in done.stdout and "--loop" in done.stdout


def test_python_api_recorder(proxy: Any) -> None:
    import zaudio

    with Listener(proxy.control, "api") as listener:
        rec = zaudio.Recorder("sine:1000", stream="api", proxy=proxy.control, duration=0.2,
                              fast=True)  # fmt: skip
        rec.run()
        msgs = listener.collect(20, 10)
    headers, _ = check_stream(msgs, 48000)
    assert headers[0].index == 0 and rec.counters["sent"] == 20


class _Burst(Source):
    """A live push source: its own thread puts ``n`` blocks as fast as it can."""

    rate, channels, block, live, description = 1000, 1, 10, True, "burst"

    def __init__(self, n: int) -> None:
        self.n = n
        self.thread: threading.Thread | None = None

    def start(self, sink: Any) -> None:
        def run() -> None:
            for k in range(self.n):
                sink.put(np.full((10, 1), k, np.float32), None)
            sink.end()

        self.thread = threading.Thread(target=run, name="burst")
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(10)


class _Writers(dict[str, int]):
    """A counter dict that remembers which threads wrote each key."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writers: dict[str, set[str]] = {}

    def __setitem__(self, key: str, value: int) -> None:
        self.writers.setdefault(key, set()).add(threading.current_thread().name)
        super().__setitem__(key, value)


def test_every_counter_has_one_owning_thread_and_none_is_lost() -> None:
    """The source's thread (capture-queue overflows) and the sender thread (its Publisher:
    sent, dropped beyond the buffer) each write their own counters; the sums add up."""
    n = 3000
    # No proxy: every block is dropped, by the capture queue or beyond the 20 ms buffer.
    rec = Recorder(_Burst(n), stream="burst", proxy=f"tcp://127.0.0.1:{free_ports(1)}",
                   buffer=0.02, flush=0.1, register_wait=0.0)  # fmt: skip
    writers = rec.publisher.counters = _Writers(rec.publisher.counters)
    rec.start()
    assert rec.wait(20)
    rec.stop()
    c = rec.counters
    assert c["queue_overflows"] > 0 and writers["dropped"] > 0  # both kinds of drop happened
    assert c["sent"] + c["dropped"] == n and c["dropped_frames"] == 10 * c["dropped"]
    assert set().union(*writers.writers.values()) == {"zaudio-sender"}
