"""Processes of one bench run: a zaudio proxy and a baseline proxy, receivers, publishers.

Every process is started the way a user starts it (``python -m zaudio ...``, or
``python -m zaudio.bench.baseline ...`` for the baseline), tracked, and stopped
(SIGINT, then SIGKILL) when the run ends, whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from zaudio._children import stop_process
from zaudio.bench.probe import cpu_seconds
from zaudio.client import request
from zaudio.endpoints import free_ports

PY = sys.executable
#: The recorder's source: silence, one constant block like the baseline's payload,
#: so both sides measure the bus and not the making of a signal (white noise costs
#: about 4 us per 480-frame block here, a sine 10 us).
SOURCE = "silence"


def free_port_range(n: int) -> int:
    """First of ``n`` consecutive free TCP ports on 127.0.0.1."""
    return free_ports(n)


def _env(pycache: Path) -> dict[str, str]:
    """The environment of every process the bench starts.

    Python's default bytecode caching, in a private cache directory: a machine
    with ``PYTHONDONTWRITEBYTECODE=1`` would otherwise recompile every module
    without a ``.pyc`` (all of an editable install) at each start.
    """
    env = dict(os.environ)
    for key in ("ZAUDIO_PROXY", "ZAUDIO_KEYS", "ZAUDIO_CLOCK_SKEW", "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


class Receiver:
    """A process running :class:`~zaudio.bench.probe.Probe`: a processor or a baseline SUB."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path) -> None:
        self.proc = proc
        self.out = out

    def counts(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.out.read_text())
        except (OSError, ValueError):
            return {"total": 0, "streams": {}}
        return data

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def snapshot(self, timeout: float = 10.0) -> dict[str, Any]:
        """Everything the probe holds now, latencies included."""
        req = Path(f"{self.out}.req")
        req.touch()
        deadline = time.monotonic() + timeout
        while req.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"receiver pid {self.proc.pid} did not answer a snapshot")
            time.sleep(0.02)
        return self.counts()


class Bench:
    """The proxies and every process of one bench run."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="zaudio-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self.serial = 0
        self.env = _env(self.dir / "pycache")
        self.zport = free_port_range(3)
        self.control = f"tcp://127.0.0.1:{self.zport}"
        self.zpub = f"tcp://127.0.0.1:{self.zport + 1}"
        bport = free_port_range(2)
        self.bpub = f"tcp://127.0.0.1:{bport}"
        self.bsub = f"tcp://127.0.0.1:{bport + 1}"
        try:
            self.zproxy = self.spawn(
                [PY, "-m", "zaudio", "-q", "proxy", "--port", str(self.zport)], ready=b"control"
            )
            self.bproxy = self.spawn(
                [
                    PY,
                    "-m",
                    "zaudio.bench.baseline",
                    "proxy",
                    "--pub-port",
                    str(bport),
                    "--sub-port",
                    str(bport + 1),
                ],
                ready=b"ready",
            )
        except BaseException:
            self.close()
            raise

    # -- processes -------------------------------------------------------------

    def spawn(
        self, argv: list[str], ready: bytes | None = None, timeout: float = 20.0
    ) -> subprocess.Popen[bytes]:
        """Start a process; with ``ready``, wait for a stdout line containing it."""
        self.serial += 1
        path = self.dir / f"p{self.serial}.err"
        with open(path, "wb") as log:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=log, env=self.env, cwd=str(self.dir)
            )
        self.procs.append(proc)
        self.logs[proc.pid] = path
        if ready is not None:
            deadline = time.monotonic() + timeout
            assert proc.stdout is not None
            while True:
                line = proc.stdout.readline()
                if ready in line:
                    break
                if not line or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(argv[2:5])} did not start: {self.errors(proc)}")
        return proc

    def errors(self, proc: subprocess.Popen[bytes]) -> str:
        """Exit status and the end of the process's stderr."""
        try:
            text = self.logs[proc.pid].read_text()[-2000:]
        except (KeyError, OSError):
            text = ""
        return f"exit {proc.poll()}: {text}"

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        stop_process(proc, signal.SIGINT, timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in list(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in list(self.procs):
            self.stop(proc, 5.0)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- receivers -------------------------------------------------------------

    def processor(self, name: str, topic: str) -> Receiver:
        """``zaudio process zaudio.bench.probe:Probe`` subscribed to ``topic``, registered."""
        return self.processors([name], topic)[0]

    def processors(self, names: list[str], topics: str | list[list[str]]) -> list[Receiver]:
        """Several processors started together, each waited for until registered.

        ``topics``: one pattern for all, or a list of patterns per processor.
        """
        started = []
        for i, name in enumerate(names):
            out = self.dir / f"{name}.json"
            mine = [topics] if isinstance(topics, str) else topics[i]
            args = [a for t in mine for a in ("--topic", t)]
            proc = self.spawn(
                [
                    PY,
                    "-m",
                    "zaudio",
                    "-q",
                    "process",
                    "zaudio.bench.probe:Probe",
                    "--name",
                    name,
                    *args,
                    "-p",
                    f"out={out}",
                    "--proxy",
                    self.control,
                ]
            )
            started.append((name, proc, out))
        for name, proc, _ in started:
            self.wait_registered(name, proc, timeout=60)
        return [Receiver(proc, out) for _, proc, out in started]

    def wait_registered(self, name: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            nodes = request(self.control, {"op": "list"}, timeout=2.0).get("nodes", [])
            for node in nodes:
                if node.get("name") == name:
                    return node
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"processor {name} did not register: {self.errors(proc)}")
            time.sleep(0.02)

    def baseline_sub(self, name: str, topics: str | list[str]) -> Receiver:
        out = self.dir / f"{name}.json"
        args = [
            a for t in ([topics] if isinstance(topics, str) else topics) for a in ("--topic", t)
        ]
        proc = self.spawn(
            [
                PY,
                "-m",
                "zaudio.bench.baseline",
                "sub",
                "--connect",
                self.bsub,
                "--pub",
                self.bpub,
                *args,
                "--out",
                str(out),
            ],
            ready=b"ready",
        )
        return Receiver(proc, out)

    # -- publishers ------------------------------------------------------------

    def record(self, stream: str, blocks: float, count: int) -> subprocess.Popen[bytes]:
        """``zaudio record --source sine:440``: ``count`` 480-frame blocks at ``blocks``/s.

        The sample rate is ``480 * blocks``, so a 10 ms block at 48 kHz is sent
        every 10 ms, and higher rates send the same message size faster.
        """
        rate = round(480 * blocks)
        return self.spawn(
            [
                PY,
                "-m",
                "zaudio",
                "-q",
                "record",
                "--source",
                SOURCE,
                "--stream",
                stream,
                "--rate",
                str(rate),
                "--block",
                "480",
                "--duration",
                f"{count * 480 / rate!r}s",
                "--proxy",
                self.control,
            ]
        )

    def baseline_pub(
        self, stream: str, blocks: float, count: int, streams: int = 1
    ) -> subprocess.Popen[bytes]:
        return self.spawn(
            [
                PY,
                "-m",
                "zaudio.bench.baseline",
                "pub",
                "--connect",
                self.bpub,
                "--stream",
                stream,
                "--streams",
                str(streams),
                "--blocks",
                str(blocks),
                "--count",
                str(count),
            ]
        )

    def multipub(
        self, prefix: str, streams: int, count: int, blocks: float = 100.0
    ) -> subprocess.Popen[bytes]:
        """Streams ``prefix0`` ... from one process of zaudio.Publisher objects."""
        return self.spawn(
            [
                PY,
                "-m",
                "zaudio.bench.multipub",
                "--proxy",
                self.control,
                "--prefix",
                prefix,
                "--streams",
                str(streams),
                "--count",
                str(count),
                "--blocks",
                str(blocks),
            ]
        )


def wait_delivered(
    receivers: list[Receiver],
    streams: list[str],
    count: int,
    publisher: subprocess.Popen[bytes],
    timeout: float,
    settle: float = 1.5,
) -> float | None:
    """Wait until every receiver has ``count`` blocks of every stream, or nothing moves.

    "Nothing moves": the publisher has exited and no count changed for ``settle`` s.
    Returns the CPU seconds per received block of the first receiver, from the
    (CPU, count) pairs its probe dumps while blocks arrive (None if too few).
    """
    deadline = time.monotonic() + timeout
    last: list[int] = []
    still = time.monotonic()
    first: tuple[float, int] | None = None
    latest: tuple[float, int] | None = None
    while time.monotonic() < deadline:
        now = []
        for i, r in enumerate(receivers):
            data = r.counts()
            got = data.get("streams", {})
            ns = [int(got.get(s, {}).get("n", 0)) for s in streams]
            if i == 0 and any(ns):
                sample = (float(data.get("cpu", 0.0)), sum(ns))
                if first is None:
                    first = sample
                elif latest is None or sample[1] > latest[1]:
                    latest = sample
            now.extend(ns)
        if all(n >= count for n in now):
            break
        if now != last:
            last, still = now, time.monotonic()
        elif publisher.poll() is not None and time.monotonic() - still > settle:
            break
        time.sleep(0.05)
    if first is None or latest is None or latest[1] - first[1] < 10:
        return None
    return (latest[0] - first[0]) / (latest[1] - first[1])
