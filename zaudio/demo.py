"""``zaudio demo``: the whole bus on a synthetic signal, deployed as a user would.

A proxy, a recorder (``--source speech``: tone bursts over quiet noise) and the
``level``, ``vad`` and ``writer`` processors each run as their own ``zaudio``
process. The demo listens on the bus like any other node, shows live meters, and
ends with a summary: blocks published and received per processor, drops (must be
0), capture-to-result latency, and the recorded file.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from zaudio._children import parent_env, stop_process
from zaudio.bus import Inlet
from zaudio.client import request
from zaudio.connection import Connection
from zaudio.decoding import Decoder
from zaudio.endpoints import free_ports
from zaudio.errors import ZaudioError
from zaudio.protocol import AudioHeader, ResultHeader

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

STREAM = "demo"
PROCESSORS = ("level", "vad", "writer")


@dataclass
class _State:
    published: int = 0  # blocks seen on audio/demo (max seq + 1)
    rms: float = -120.0
    peak: float = -120.0
    speech: bool = False
    changes: int = 0
    latencies: list[float] = field(default_factory=list)


class _Children:
    """The demo's processes: started with our interpreter, always stopped and reaped."""

    def __init__(self, control: str) -> None:
        self.control = control
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "zaudio", "-q", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "ZAUDIO_PROXY": self.control, **parent_env()},
            # Ctrl-C on a terminal signals the whole foreground group; the demo
            # alone should get it, and stop its children in order.
            start_new_session=True,
        )

    def check(self) -> None:
        for name, proc in self.procs.items():
            # the recorder ends by itself after --duration; anything else is a failure
            if proc.poll() is not None and (name != "recorder" or proc.returncode != 0):
                err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                raise ZaudioError(f"demo {name} exited with {proc.returncode}: {err[-500:]}")

    def stop(self, name: str, timeout: float = 5.0) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        code = stop_process(proc, signal.SIGTERM, timeout)
        if proc.stderr is not None:
            proc.stderr.close()
        return code

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


def _nodes(control: str) -> dict[str, dict[str, Any]]:
    try:
        reply = request(control, {"op": "list"}, timeout=1.0)
    except ZaudioError:
        return {}
    return {n["name"]: n for n in reply.get("nodes", [])}


def _wait(predicate: Any, timeout: float, what: str, children: _Children) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children.check()
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise ZaudioError(f"demo: timed out after {timeout:g} s waiting for {what}")


def _meter(dbfs: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, (dbfs + 60.0) / 60.0)) * width)
    return "#" * filled + "." * (width - filled)


class _Display:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = 0.0

    def show(self, state: _State, elapsed: float) -> None:
        now = time.monotonic()
        if now - self.last < (0.1 if self.tty else 1.0):
            return
        self.last = now
        line = (
            f"{elapsed:5.1f}s  {STREAM}  level {state.rms:6.1f} dBFS [{_meter(state.rms)}]"
            f"  peak {state.peak:6.1f}  vad {'SPEECH ' if state.speech else 'silence'}"
            f"  blocks {state.published}"
        )
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def _listen(inlet: Inlet, state: _State, stop: threading.Event, rate_hint: int) -> None:
    decoder = Decoder(log)
    while not stop.is_set():
        frames = inlet.recv(0.1)
        if frames is None:
            continue
        received = time.time()
        decoded = decoder(frames)
        if decoded is None:
            continue
        header = decoded[0]
        if isinstance(header, AudioHeader):
            state.published = max(state.published, header.seq + 1)
        elif isinstance(header, ResultHeader):
            data = header.data if isinstance(header.data, dict) else {}
            if header.processor == "level":
                rms, peak = data.get("rms_dbfs"), data.get("peak_dbfs")
                if isinstance(rms, list) and rms:
                    state.rms = float(rms[0])
                if isinstance(peak, list) and peak:
                    state.peak = float(peak[0])
                # capture -> result: the block was complete at t + frames / rate
                state.latencies.append(received - (header.t + header.frames / rate_hint))
            elif header.processor == "vad" and "speech" in data:
                state.speech = bool(data["speech"])
                if data.get("change"):
                    state.changes += 1


def run_demo(
    *,
    duration: float | None = 10.0,
    out_dir: str | os.PathLike[str] = "zaudio-demo",
    port: int | None = None,
    stop: threading.Event | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run the demo; return 0 when nothing was dropped, 1 otherwise.

    Parameters
    ----------
    duration : float or None
        Seconds of audio to publish; None runs until ``stop`` is set (Ctrl-C).
    out_dir : path
        Where the writer puts ``demo.wav``.
    port : int, optional
        Control port of the demo's proxy (5555, or free ports when taken).
    stop : threading.Event, optional
        Set it to end the demo early (the CLI sets it on SIGINT/SIGTERM).
    """
    stop = stop or threading.Event()
    rate = 48000
    base = port or free_ports(3, preferred=5555)
    control = f"tcp://127.0.0.1:{base}"
    out_path = Path(out_dir).resolve() / f"{STREAM}.wav"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    children = _Children(control)
    state = _State()
    listen_stop = threading.Event()
    listener: threading.Thread | None = None
    conn: Connection | None = None
    display = _Display(out)
    try:
        children.start("proxy", "proxy", "--port", str(base))
        _wait(
            lambda: _try(lambda: request(control, {"op": "hello"}, timeout=0.5)),
            15,
            "the proxy to answer",
            children,
        )
        out.write(f"zaudio demo: proxy on {control}\n")
        conn = Connection(control, [STREAM, "result/level", "result/vad"], keys=None)
        if not conn.open(timeout=10):
            raise ZaudioError("demo: the proxy did not confirm the demo's subscriptions")
        listener = threading.Thread(
            target=_listen, args=(conn.inlet, state, listen_stop, rate), daemon=True
        )
        listener.start()
        children.start("level", "process", "level", "--topic", STREAM, "--window", "50ms")
        children.start("vad", "process", "vad", "--topic", STREAM)
        children.start("writer", "process", "writer", "--topic", STREAM, "-p", f"path={out_path}")
        _wait(
            lambda: all(n in _nodes(control) for n in PROCESSORS),
            30,
            "the processors to register",
            children,
        )
        args = ["record", "--source", "speech", "--stream", STREAM, "--rate", str(rate)]
        if duration is not None:
            args += ["--duration", f"{duration:g}"]
        children.start("recorder", *args)
        out.write(
            f"zaudio demo: recorder 'speech' -> stream {STREAM!r}; processors "
            f"{', '.join(PROCESSORS)}" + ("" if duration else "; Ctrl-C to stop") + "\n"
        )
        t0 = time.monotonic()
        recorder = children.procs["recorder"]
        while not stop.is_set() and recorder.poll() is None:
            display.show(state, time.monotonic() - t0)
            stop.wait(0.05)
            children.check()
        display.done()
        code = children.stop("recorder")
        # -SIGTERM: stopped while still starting, before its handler was installed
        if code not in (0, None, -signal.SIGTERM):
            raise ZaudioError(f"demo recorder exited with {code}")
        published = state.published

        # Every processor should now receive exactly what was published.
        def caught_up() -> dict[str, dict[str, Any]] | None:
            nodes = _nodes(control)
            ok = all(
                (nodes.get(n, {}).get("stats") or {}).get("received", -1) >= published
                for n in PROCESSORS
            )
            return nodes if ok else None

        try:
            nodes = _wait(caught_up, 5, "the processors to catch up", children)
        except ZaudioError:
            nodes = _nodes(control)
        for name in PROCESSORS:
            children.stop(name)
        return _summary(out, published, nodes, state, out_path)
    finally:
        listen_stop.set()
        if listener is not None:
            listener.join(2)
        if conn is not None:
            conn.close(0)
        children.stop_all()


def _try(fn: Any) -> Any:
    try:
        return fn()
    except ZaudioError:
        return None


def _summary(
    out: TextIO, published: int, nodes: dict[str, dict[str, Any]], state: _State, path: Path
) -> int:
    drops = 0
    out.write(f"\nzaudio demo: {published} blocks published on {STREAM!r}\n")
    out.write(
        f"  {'processor':<9} {'received':>9} {'processed':>10} {'dropped':>8} {'gaps':>5} {'errors':>7}\n"
    )
    for name in PROCESSORS:
        stats = (nodes.get(name) or {}).get("stats") or {}
        received = int(stats.get("received", 0))
        lost = int(stats.get("dropped", 0)) + int(stats.get("gaps", 0))
        lost += max(0, published - received)
        drops += lost
        out.write(
            f"  {name:<9} {received:>9} {stats.get('processed', 0):>10} "
            f"{stats.get('dropped', 0):>8} {stats.get('gaps', 0):>5} {stats.get('errors', 0):>7}\n"
        )
    if state.latencies:
        lat = np.array(state.latencies) * 1000
        out.write(
            f"  capture -> level result latency: p50 {np.percentile(lat, 50):.2f} ms, "
            f"p99 {np.percentile(lat, 99):.2f} ms ({lat.size} results)\n"
        )
    out.write(f"  vad state changes: {state.changes}\n")
    out.write(f"  drops: {drops}\n")
    if path.exists():
        import soundfile

        info = soundfile.info(str(path))
        out.write(
            f"  recorded: {path} ({info.frames} frames, {info.duration:.2f} s, "
            f"{info.samplerate} Hz, {info.subtype})\n"
        )
    else:
        out.write(f"  recorded: (no file at {path})\n")
        drops += 1
    out.flush()
    return 0 if drops == 0 else 1
