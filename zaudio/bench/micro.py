"""In-process and start-up figures: the header codec, and how long commands take to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from zaudio.bench.figures import Figure
from zaudio.bench.harness import PY, Bench

__all__ = ["codec", "startup"]


def _per_call(fn: Any, n: int) -> float:
    """Seconds per call of ``fn``: best of 5 timed loops of ``n`` calls."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def codec(quick: bool) -> list[Figure]:
    """Header encode + decode per message: zaudio's msgspec codec against stdlib json."""
    from zaudio.protocol import AudioHeader, AudioStream, _decoder, _encoder, decode

    n = 5_000 if quick else 50_000
    rounds = 3 if quick else 7
    header = Figure("codec_header_us", "header encode+decode", "us", "lower", 1.0, absolute=True)
    message = Figure("codec_message_us", "message encode+decode (header+array)", "us", "lower")
    stream = AudioStream("mic", 48000, 1)
    block = np.zeros((480, 1), np.float32)
    fields = dict(
        v=1, stream="mic", src=stream.src, seq=123456, index=59258880, t=1767225600.123456,
        rate=48000, channels=1, frames=480, dtype="float32",
    )  # fmt: skip

    def z_header() -> None:
        _decoder.decode(_encoder.encode(AudioHeader(**fields)))  # type: ignore[arg-type]

    def j_header() -> None:
        json.loads(json.dumps({"kind": "audio", **fields}))

    def z_message() -> None:
        decode(stream.encode(block, 1767225600.0))

    payload = block.tobytes()
    topic = b"audio/mic\0"

    def j_message() -> None:
        raw = json.dumps({"kind": "audio", **fields}).encode()
        frames = [topic, raw, payload]
        h = json.loads(frames[1])
        np.frombuffer(frames[2], "<f4").reshape(h["frames"], h["channels"])

    for r in range(rounds):
        pairs = [(z_header, j_header, header), (z_message, j_message, message)]
        for zf, jf, fig in pairs:
            if r % 2:
                b = _per_call(jf, n)
                z = _per_call(zf, n)
            else:
                z = _per_call(zf, n)
                b = _per_call(jf, n)
            fig.add(z * 1e6, b * 1e6)
    header.notes.append("baseline: stdlib json.dumps + json.loads of the same fields")
    message.notes.append("baseline: stdlib json header + np.frombuffer")
    return [header, message]


def _wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - t0


def _zaudio() -> list[str]:
    script = Path(sys.executable).with_name("zaudio")
    return [str(script)] if script.exists() else [PY, "-m", "zaudio"]


def _registered_after(bench: Bench, n: int) -> float:
    """Seconds from exec of ``zaudio process`` to its registration at the proxy."""
    name = f"startup{n + 1}"
    out = bench.dir / f"{name}.json"
    argv = [*_zaudio(), "-q", "process", "zaudio.bench.probe:Probe", "--name", name]
    argv += ["--topic", "startup/", "-p", f"out={out}", "--proxy", bench.control]
    t0 = time.time()
    proc = bench.spawn(argv)
    try:
        node = bench.wait_registered(name, proc)
        return float(node["since"]) - t0
    finally:
        bench.stop(proc)


def startup(bench: Bench, quick: bool) -> list[Figure]:
    """``zaudio --help`` against ``python -c pass``; ``zaudio process`` against zmq+numpy."""
    n = 3 if quick else 10
    z = _zaudio()
    helpf = Figure("startup_help_ms", "start-up: zaudio --help vs python -c pass", "ms", "lower", 3)
    procf = Figure(
        "startup_process_ms",
        "start-up: zaudio process to registered vs import zmq, numpy",
        "ms",
        "lower",
        1.3,
    )
    phelp = Figure(
        "startup_process_help_ms", "start-up: zaudio process --help vs python -c pass", "ms",
        "lower",
    )  # fmt: skip
    env = bench.env
    commands = {
        "pass": [PY, "-c", "pass"],
        "help": [*z, "--help"],
        "phelp": [*z, "process", "--help"],
        "zn": [PY, "-c", "import zmq, numpy"],
    }
    for argv in commands.values():  # warm-up: fills the bytecode cache
        _wall(argv, env)
    _registered_after(bench, -1)
    for r in range(n):
        order = [0, 1] if r % 2 == 0 else [1, 0]
        got: dict[str, float] = {}
        for which in order:
            if which == 0:
                for key in ("pass", "help", "phelp"):
                    got[key] = _wall(commands[key], env)
            else:
                got["zn"] = _wall(commands["zn"], env)
                got["reg"] = _registered_after(bench, r)
        helpf.add(got["help"] * 1e3, got["pass"] * 1e3)
        procf.add(got["reg"] * 1e3, got["zn"] * 1e3)
        phelp.add(got["phelp"] * 1e3, got["pass"] * 1e3)
    procf.notes.append(
        "zaudio: from exec of `zaudio process zaudio.bench.probe:Probe` to the proxy "
        "registering it (imports, hello, subscription confirmed, register)"
    )
    helpf.notes.append(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; every command with "
        "bytecode caching on (a private PYTHONPYCACHEPREFIX) after one warm-up run"
    )
    return [helpf, phelp, procf]
