"""The latency scenario: one driver, paired per tick, against plain PUB -> zmq.proxy -> SUB.

The method of the independent harness (``../shared/bench/peers.py``), so that both
agree on this machine. One driver process, on every 10 ms tick, hands the same
block (480 frames x 2 channels float32, 48 kHz) to both paths, the second 2 ms
after the first and the order swapped every tick::

    zaudio    zaudio.Publisher --> zaudio proxy ------------> zaudio process (Stamp)
    baseline  PUB [topic, block] --> zmq.proxy(XSUB, XPUB) --> SUB

The block carries its tick number and the hand-over stamp (``CLOCK_MONOTONIC``,
microseconds, as float32-exact integers in column 0), so the same bytes cross
both paths. Latency = the receiver's clock when it holds the block as an array
(for zaudio: on entry to the processor function) minus that stamp. Receiver CPU
is read from ``/proc`` over the measured ticks only.

Roles (each its own process)::

    python -m zaudio.bench.paired drive --proxy CTL --plain PUB_ADDR --ticks N --warm W
    python -m zaudio.bench.paired sub --connect SUB_ADDR --out FILE
    zaudio process zaudio.bench.paired:Stamp -p out=FILE --topic lat/
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Stamp", "latency"]

FRAMES, CHANNELS, RATE = 480, 2, 48000
PERIOD_NS = 10_000_000
STAGGER_NS = 2_000_000
_LO = 1 << 22


def _block() -> np.ndarray[Any, np.dtype[np.float32]]:
    b = np.zeros((FRAMES, CHANNELS), np.float32)
    b[:, 1] = np.arange(FRAMES, dtype=np.float32)
    return b


def _stamp(block: np.ndarray[Any, Any], tick: int, t_ns: int) -> None:
    us = t_ns // 1000
    block[0, 0] = tick
    block[1, 0] = us // _LO
    block[2, 0] = us % _LO


class _Log:
    """Preallocated (tick, latency) log of one receiver; written to ``out`` on close."""

    def __init__(self, out: str, cap: int = 200_000) -> None:
        self.out = out
        self.tick = np.zeros(cap, np.int64)
        self.lat = np.zeros(cap, np.int64)
        self.n = 0

    def add(self, t_ns: int, block: Any) -> None:
        n = self.n
        if n < len(self.tick):
            head = block[:3, 0]
            self.tick[n] = int(head[0])
            self.lat[n] = t_ns - (int(head[1]) * _LO + int(head[2])) * 1000
            self.n = n + 1

    def save(self) -> None:
        n = self.n
        data = {"tick": self.tick[:n].tolist(), "lat_ns": self.lat[:n].tolist()}
        tmp = f"{self.out}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.out)


class Stamp:
    """The zaudio receiver: ``zaudio process zaudio.bench.paired:Stamp -p out=FILE``."""

    def __init__(self, out: str) -> None:
        self._log = _Log(out)
        self._now = time.monotonic_ns

    def __call__(self, block: Any) -> None:
        self._log.add(self._now(), block)

    def close(self) -> None:
        self._log.save()


def _sub(args: argparse.Namespace) -> None:
    """The baseline receiver: a plain SUB, ``recv_multipart`` and ``np.frombuffer``."""
    import zmq

    from zaudio.bench.baseline import _stop_event

    stop = _stop_event()
    log = _Log(args.out)
    ctx: zmq.Context[Any] = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    s.rcvtimeo = 100
    s.connect(args.connect)
    s.subscribe(b"lat/")
    print("ready", flush=True)
    now = time.monotonic_ns
    while not stop.is_set():
        try:
            frames = s.recv_multipart()
        except zmq.Again:
            continue
        a = np.frombuffer(frames[-1], np.float32).reshape(FRAMES, CHANNELS)
        log.add(now(), a)
    log.save()
    s.close(0)
    ctx.term()


def _drive(args: argparse.Namespace) -> None:
    """The driver: both senders in one thread, paired per tick."""
    import zmq

    import zaudio

    pub = zaudio.Publisher(
        args.stream, rate=RATE, channels=CHANNELS, proxy=args.proxy, wait=10.0
    ).start()
    ctx: zmq.Context[Any] = zmq.Context()
    plain = ctx.socket(zmq.PUB)
    plain.linger = 1000
    plain.connect(args.plain)
    topic = b"lat/" + args.stream.encode()
    zb, pb = _block(), _block()

    def send_zaudio(k: int, t: int) -> None:
        _stamp(zb, k, t)
        pub.send(zb)

    def send_plain(k: int, t: int) -> None:
        _stamp(pb, k, t)
        plain.send_multipart([topic, pb])

    senders: list[Callable[[int, int], None]] = [send_zaudio, send_plain]
    now = time.monotonic_ns
    t0 = now() + 100_000_000
    for k in range(args.ticks):
        if k == args.warm:
            print("measure", flush=True)
        base = t0 + k * PERIOD_NS
        for j in range(2):
            target = base + j * STAGGER_NS
            d = target - now()
            if d > 0:
                time.sleep(d / 1e9)
            senders[(j + k) % 2](k, now())
    print("done", flush=True)
    time.sleep(0.3)
    plain.close(1000)
    ctx.term()
    pub.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m zaudio.bench.paired")
    sub = ap.add_subparsers(dest="role", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--proxy", required=True)
    d.add_argument("--plain", required=True)
    d.add_argument("--stream", required=True)
    d.add_argument("--ticks", type=int, required=True)
    d.add_argument("--warm", type=int, required=True)
    s = sub.add_parser("sub")
    s.add_argument("--connect", required=True)
    s.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    {"drive": _drive, "sub": _sub}[args.role](args)


# -- the scenario (runs in the bench process) ------------------------------------


def _line(proc: Any, timeout: float) -> bytes:
    """The next stdout line of ``proc``, or b"" after ``timeout`` seconds or at EOF."""
    import select

    stdout = proc.stdout
    ready, _, _ = select.select([stdout], [], [], timeout)
    return bytes(stdout.readline()) if ready else b""


def latency(bench: Any, cfg: Any, say: Callable[[str], None]) -> list[Any]:
    """zaudio's path against plain pyzmq through zmq.proxy, paired per tick."""
    from zaudio.bench.figures import Figure
    from zaudio.bench.harness import PY
    from zaudio.bench.probe import cpu_seconds, percentiles

    p50 = Figure("latency_p50_ms", "latency p50", "ms", "lower", 1.10)
    p99 = Figure("latency_p99_ms", "latency p99", "ms", "lower", 1.5)
    cpu = Figure("cpu_per_block_us", "receiver CPU per block", "us", "lower", 1.3)
    lost = {"zaudio": 0, "baseline": 0}
    warm = 100  # ticks (1 s) left out: connections warm up, slow joiners join
    ticks = warm + round(100 * cfg.latency_seconds)
    for r in range(cfg.latency_rounds):
        zout, bout = bench.dir / f"paired-z{r}.json", bench.dir / f"paired-b{r}.json"
        z = bench.spawn(
            [PY, "-m", "zaudio", "-q", "process", "zaudio.bench.paired:Stamp",
             "--name", f"paired{r}", "--topic", "lat/", "-p", f"out={zout}",
             "--proxy", bench.control]
        )  # fmt: skip
        bench.wait_registered(f"paired{r}", z, timeout=60)
        b = bench.spawn(
            [PY, "-m", "zaudio.bench.paired", "sub", "--connect", bench.bsub, "--out", str(bout)],
            ready=b"ready",
        )
        drv = bench.spawn(
            [PY, "-m", "zaudio.bench.paired", "drive", "--proxy", bench.control,
             "--plain", bench.bpub, "--stream", f"lat/p{r}", "--ticks", str(ticks),
             "--warm", str(warm)],
            ready=b"measure", timeout=60,
        )  # fmt: skip
        c0 = (cpu_seconds(z.pid), cpu_seconds(b.pid))
        done = _line(drv, 30 + ticks / 100)  # "done" (or EOF if the driver failed)
        c1 = (cpu_seconds(z.pid), cpu_seconds(b.pid))
        if b"done" not in done:
            raise RuntimeError(f"paired driver failed: {bench.errors(drv)}")
        bench.stop(drv, 15)
        bench.stop(z)
        bench.stop(b)
        n = ticks - warm
        row = {}
        for side, path in (("zaudio", zout), ("baseline", bout)):
            data = json.loads(path.read_text())
            lat = [
                ns / 1e6
                for tick, ns in zip(data["tick"], data["lat_ns"], strict=True)
                if warm <= tick < ticks
            ]
            lost[side] += n - len(lat)
            row[side] = percentiles(lat)
        p50.add(row["zaudio"]["p50"], row["baseline"]["p50"])
        p99.add(row["zaudio"]["p99"], row["baseline"]["p99"])
        cpu.add((c1[0] - c0[0]) / n * 1e6, (c1[1] - c0[1]) / n * 1e6)
        say(f"  latency round {r + 1}/{cfg.latency_rounds}")
    for f in (p50, p99, cpu):
        f.extra["lost_blocks"] = dict(lost)
    p50.notes.append(
        "one driver hands the same block to zaudio.Publisher -> zaudio proxy -> zaudio "
        "process and to PUB -> zmq.proxy -> SUB on every 10 ms tick, 2 ms apart, order "
        "swapped each tick; from the hand-over stamp to the block as an array in the "
        f"receiver; the first {warm} ticks of each round left out (the method of "
        "../shared/bench)"
    )
    cpu.notes.append("CPU (all threads) of each receiving process over the measured ticks")
    return [p50, p99, cpu]


if __name__ == "__main__":
    main()
