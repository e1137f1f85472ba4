"""Test helpers: free ports, CLI processes that are always stopped, a bus listener.

Everything is bounded: every wait has a timeout, every process started here is
stopped (SIGTERM, then SIGKILL) and reaped by the fixture or context that made it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zaudio._children import stop_process
from zaudio.client import request
from zaudio.connection import Connection
from zaudio.endpoints import free_ports
from zaudio.protocol import AudioHeader, ResultHeader, decode

ROOT = Path(__file__).resolve().parent.parent
ZAUDIO = [sys.executable, "-m", "zaudio"]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("ZAUDIO_PROXY", None)
    e.pop("ZAUDIO_KEYS", None)
    e["PYTHONUNBUFFERED"] = "1"
    e.update(extra)
    return e


def run(
    *args: str, timeout: float = 30, input: bytes | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``zaudio ARGS`` to completion (bounded) and capture its output."""
    return subprocess.run(
        [*ZAUDIO, *args],
        capture_output=True,
        text=input is None,
        input=input,
        timeout=timeout,
        env=kw.pop("env", None) or env(),
        cwd=kw.pop("cwd", ROOT),
        **kw,
    )


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    """Signal ``proc``, wait for it (bounded), SIGKILL it if it does not exit."""
    return stop_process(proc, sig, timeout)


@contextlib.contextmanager
def spawn(*args: str, **kw: Any) -> Iterator[subprocess.Popen[str]]:
    """Start ``zaudio ARGS`` in the background; stopped and reaped on exit."""
    proc = subprocess.Popen(
        [*ZAUDIO, *args],
        stdout=kw.pop("stdout", subprocess.PIPE),
        stderr=kw.pop("stderr", subprocess.PIPE),
        text=True,
        env=kw.pop("env", None) or env(),
        cwd=kw.pop("cwd", ROOT),
        **kw,
    )
    try:
        yield proc
    finally:
        stop(proc)
        for f in (proc.stdout, proc.stderr, proc.stdin):
            if f is not None:
                f.close()


def wait_until(
    predicate: Any, timeout: float, what: str = "condition", interval: float = 0.02
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def listing(control: str, timeout: float = 1.0) -> dict[str, Any]:
    return request(control, {"op": "list"}, timeout=timeout)


def node_stats(control: str, name: str) -> dict[str, Any]:
    """The stats in the last heartbeat of the node called ``name`` ({} if none yet)."""
    for node in listing(control)["nodes"]:
        if node["name"] == name:
            return node["stats"] or {}  # type: ignore[no-any-return]
    return {}


def processed(control: str, name: str) -> int:
    """The ``processed`` count in the last heartbeat of the node called ``name`` (0 if none)."""
    return int(node_stats(control, name).get("processed", 0))


def wait_node(
    control: str, name: str, timeout: float = 15, role: str | None = None
) -> dict[str, Any]:
    """Wait until a node called ``name`` is registered; return its entry."""

    def find() -> dict[str, Any] | None:
        try:
            nodes = listing(control)["nodes"]
        except Exception:
            return None
        for n in nodes:
            if n["name"] == name and (role is None or n["role"] == role):
                return n  # type: ignore[no-any-return]
        return None

    return wait_until(find, timeout, f"node {name!r} to register")  # type: ignore[no-any-return]


class Listener:
    """A subscriber on the bus whose subscriptions are proven in effect at the proxy."""

    def __init__(self, control: str, *patterns: str, timeout: float = 5) -> None:
        self.conn = Connection(control, patterns or ("*",), keys=None)
        self.inlet = self.conn.inlet
        assert self.conn.open(timeout), "subscription not confirmed"

    def recv(self, timeout: float = 5) -> tuple[AudioHeader | ResultHeader, Any]:
        frames = self.inlet.recv(timeout)
        if frames is None:
            raise AssertionError(f"no message within {timeout}s")
        return decode(frames)

    def collect(self, n: int, timeout: float = 10) -> list[tuple[Any, Any]]:
        """Exactly ``n`` messages (blocks copied), or fail after ``timeout``."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {n} messages in {timeout}s")
            frames = self.inlet.recv(left)
            if frames is None:
                continue
            h, b = decode(frames)
            out.append((h, None if b is None else np.array(b)))
        return out

    def close(self) -> None:
        self.conn.close(0)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def proxy_process(*extra: str, **kw: Any) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``zaudio proxy`` on free ports; yields (control endpoint, process)."""
    port = free_ports(3)
    control = f"tcp://127.0.0.1:{port}"
    with spawn("proxy", "--port", str(port), *extra, **kw) as proc:
        wait_until(lambda: answers(control) or proc.poll() is not None, 15, "proxy to answer")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield control, proc


def answers(control: str) -> bool:
    """True if a proxy answers `time` at ``control`` within 0.3 s."""
    try:
        request(control, {"op": "time"}, timeout=0.3)
        return True
    except Exception:
        return False
