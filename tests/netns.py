"""Several "hosts" on one machine: network namespaces joined by veth links.

A :class:`Lan` makes one namespace per host plus a "switch" namespace holding a
bridge; each host has ``eth0`` (10.77.0.N/24) on a veth pair whose other end is
a bridge port. Namespace names carry this process's pid and a counter, so
parallel runs never collide; :meth:`Lan.close` (also on any failure, via the
context manager) stops every process started in them and deletes them, which
also removes any iptables rule added inside.

Never connect to the 10.77 addresses from the root namespace (it routes 10/8
elsewhere): everything that talks to them runs inside a namespace, started by
:meth:`Lan.spawn` / :meth:`Lan.run` (``ip netns exec NS python -m zaudio ...``).

``python -m tests.netns listen ...`` is the probe that runs inside a namespace:
it subscribes (proving the subscription at the proxy), prints ``ready``, then
one JSON line per message (header fields plus its own receive time) and can
save the received samples to a ``.npy`` file.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "zt"
SUBNET = "10.77.0"
_counter = itertools.count()


def sh(*args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    """Run a system command (ip, iptables), bounded; raise with its stderr on failure."""
    res = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {res.stderr.strip()}")
    return res


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_ns_pids(ns: str) -> None:
    """SIGKILL whatever still runs in ``ns`` (only processes this run started there)."""
    res = sh("ip", "netns", "pids", ns, check=False)
    for pid in res.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_stale() -> None:
    """Delete namespaces left by earlier runs whose process is gone (e.g. after SIGKILL)."""
    res = sh("ip", "netns", "list", check=False)
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(rf"{PREFIX}(\d+)-\d+-\w+", name)
        if m and not _alive(int(m[1])):
            _kill_ns_pids(name)
            sh("ip", "netns", "del", name, check=False)


class Lan:
    """Hosts (network namespaces) on one bridged /24.

    Parameters
    ----------
    *hosts : str
        Short host names (letters/digits); host ``i`` gets address ``10.77.0.{i+1}``.

    Examples
    --------
    >>> with Lan("proxy", "rec") as lan:                 # doctest: +SKIP
    ...     lan.spawn("proxy", "proxy", "--host", lan.ip("proxy"))
    """

    def __init__(self, *hosts: str) -> None:
        run_id = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.switch = f"{run_id}-sw"
        self.ns = {h: f"{run_id}-{h}" for h in hosts}
        self.addr = {h: f"{SUBNET}.{i + 1}" for i, h in enumerate(hosts)}
        self.procs: list[subprocess.Popen[Any]] = []
        self._made: list[str] = []

    # -- topology ----------------------------------------------------------

    def start(self) -> Lan:
        remove_stale()
        try:
            self._add(self.switch)
            sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", self.switch, "link", "set", "br0", "up")
            for i, (host, ns) in enumerate(self.ns.items()):
                self._add(ns)
                port = f"p{i}"
                sh("ip", "-n", self.switch, "link", "add", port, "type", "veth",
                   "peer", "name", "eth0", "netns", ns)  # fmt: skip
                sh("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
                sh("ip", "-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", "eth0")
                sh("ip", "-n", ns, "link", "set", "eth0", "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def _add(self, ns: str) -> None:
        sh("ip", "netns", "add", ns)
        self._made.append(ns)

    def close(self) -> None:
        """Stop every process started here, then delete the namespaces. Idempotent."""
        for proc in self.procs:
            stop(proc)
        self.procs.clear()
        for ns in reversed(self._made):
            _kill_ns_pids(ns)
            sh("ip", "netns", "del", ns, check=False)
        self._made.clear()

    def __enter__(self) -> Lan:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ip(self, host: str) -> str:
        return self.addr[host]

    def endpoint(self, host: str, port: int = 5555) -> str:
        return f"tcp://{self.addr[host]}:{port}"

    # -- impairments -------------------------------------------------------

    def drop(self, host: str, probability: float) -> None:
        """Drop incoming packets on ``host``'s eth0 at random (iptables statistic)."""
        self.iptables(host, "-A", "INPUT", "-i", "eth0", "-m", "statistic", "--mode",
                      "random", "--probability", str(probability), "-j", "DROP")  # fmt: skip

    def iptables(self, host: str, *rule: str) -> None:
        sh("ip", "netns", "exec", self.ns[host], "iptables", "-w", "5", *rule)

    def dropped(self, host: str) -> int:
        """Packets dropped so far by ``host``'s INPUT DROP rules."""
        out = sh("ip", "netns", "exec", self.ns[host], "iptables", "-w", "5", "-L", "INPUT",
                 "-v", "-x", "-n").stdout  # fmt: skip
        return sum(int(line.split()[0]) for line in out.splitlines() if " DROP " in f" {line} ")

    # -- processes ---------------------------------------------------------

    def command(self, host: str, *args: str) -> list[str]:
        """``ip netns exec NS python ARGS`` (``ip`` execs python: the pid is python's)."""
        return ["ip", "netns", "exec", self.ns[host], sys.executable, *args]

    def spawn(
        self, host: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start ``python ARGS`` in ``host`` (e.g. ``"-m", "zaudio", "proxy"``).

        The process is stopped and reaped by :meth:`close` (or :func:`stop` earlier).
        """
        proc = subprocess.Popen(
            self.command(host, *args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(env),
            cwd=ROOT,
        )
        self.procs.append(proc)
        return proc

    def zaudio(
        self, host: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start ``zaudio ARGS`` in ``host``."""
        return self.spawn(host, "-m", "zaudio", *args, env=env)

    def run(
        self, host: str, *args: str, timeout: float = 20, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python ARGS`` in ``host`` to completion (bounded)."""
        return subprocess.run(
            self.command(host, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(env),
            cwd=ROOT,
        )

    def request(
        self, host: str, control: str, msg: dict[str, Any], keys: str | None = None
    ) -> dict[str, Any]:
        """One control request from inside ``host``; the reply (raises on failure)."""
        res = self.run(host, "-m", "tests.netns", "request", control, json.dumps(msg),
                       *(["--keys", keys] if keys else []))  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"request from {host} failed: {res.stderr.strip()}")
        reply: dict[str, Any] = json.loads(res.stdout)
        return reply

    def wait_answers(self, host: str, control: str, timeout: float = 15) -> None:
        """Wait until a proxy answers ``time`` at ``control``, seen from ``host``."""
        res = self.run(host, "-m", "tests.netns", "wait", control, str(timeout),
                       timeout=timeout + 10)  # fmt: skip
        if res.returncode != 0:
            raise AssertionError(f"proxy at {control} not answering from {host}: {res.stderr}")

    def listen(self, host: str, control: str, *patterns: str, save: str | None = None) -> Probe:
        """A probe subscribed in ``host``; returns once its subscription is confirmed."""
        args = ["-m", "tests.netns", "listen", control, *patterns]
        if save:
            args += ["--save", save]
        probe = Probe(self.spawn(host, *args))
        probe.wait_ready()
        return probe


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    e = dict(os.environ)
    for k in ("ZAUDIO_PROXY", "ZAUDIO_KEYS", "ZAUDIO_CLOCK_SKEW"):
        e.pop(k, None)
    e["PYTHONUNBUFFERED"] = "1"
    e.update(extra or {})
    return e


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    """Signal ``proc`` (resuming it if stopped), wait (bounded), SIGKILL if needed; reap."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
            os.kill(proc.pid, signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for f in (proc.stdout, proc.stderr, proc.stdin):
        if f is not None:
            with contextlib.suppress(Exception):
                f.close()
    return proc.returncode


class Probe:
    """The test's side of a ``listen`` probe: its JSON lines, read by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.messages: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._done = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                if line.startswith("ready"):
                    self._ready.set()
                elif line.startswith("{"):
                    with self._cond:
                        self.messages.append(json.loads(line))
                        self._cond.notify_all()
                else:
                    self.lines.append(line)
        except ValueError:  # stdout closed under us by stop()
            pass
        finally:
            self._done.set()
            self._ready.set()
            with self._cond:
                self._cond.notify_all()

    def wait_ready(self, timeout: float = 20) -> None:
        if not self._ready.wait(timeout) or self._done.is_set():
            err = self.proc.stderr.read() if self._done.is_set() and self.proc.stderr else ""
            raise AssertionError(f"probe not ready within {timeout}s: {err}")

    def wait(self, predicate: Any, timeout: float, what: str) -> list[dict[str, Any]]:
        """Wait until ``predicate(messages)`` holds; return the messages so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0 or self._done.is_set():
                    raise AssertionError(
                        f"probe: timed out after {timeout}s waiting for {what} "
                        f"({len(self.messages)} messages)"
                    )
                self._cond.wait(min(left, 0.2))
            return list(self.messages)

    def close(self) -> list[dict[str, Any]]:
        """Stop the probe (it saves its samples on SIGTERM) and return every message."""
        stop(self.proc)
        self._thread.join(5)
        return list(self.messages)


# -- the probe itself (runs inside a namespace) --------------------------------


def _probe_request(control: str, msg: str, keys: str | None) -> None:
    from zaudio.client import request
    from zaudio.security import Keys

    k = Keys.for_client(keys) if keys else None
    print(json.dumps(request(control, json.loads(msg), timeout=3, keys=k)))


def _probe_wait(control: str, timeout: float) -> None:
    from zaudio.client import request

    deadline = time.monotonic() + timeout
    while True:
        try:
            request(control, {"op": "time"}, timeout=0.5)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _probe_listen(control: str, patterns: list[str], save: str | None) -> None:
    import numpy as np

    from zaudio.bus import Inlet, Outlet, confirm_subscriptions
    from zaudio.client import request
    from zaudio.errors import RemoteProtocolError
    from zaudio.protocol import AudioHeader, decode, subscription

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stopped.set())
    _probe_wait(control, 15)
    hello = request(control, {"op": "hello"}, timeout=3)
    from zaudio.endpoints import resolve

    inlet = Inlet()
    inlet.connect(resolve(hello["sub"], control))
    for p in patterns or ["*"]:
        inlet.subscribe(subscription(p))
    outlet = Outlet()
    outlet.connect(resolve(hello["pub"], control))
    if not confirm_subscriptions(inlet, outlet, 10):
        raise SystemExit("subscription not confirmed")
    outlet.close(0)
    print("ready", flush=True)
    blocks: list[Any] = []
    while not stopped.is_set():
        frames = inlet.recv(0.1)
        if frames is None:
            continue
        now = time.time()
        try:
            header, block = decode(frames)
        except RemoteProtocolError as exc:
            print(f"malformed {exc.reason}", flush=True)
            continue
        fields = {f: getattr(header, f) for f in header.__struct_fields__}
        fields["kind"] = "audio" if isinstance(header, AudioHeader) else "result"
        fields["recv"] = now
        print(json.dumps(fields), flush=True)
        if save and block is not None:
            blocks.append(np.array(block))
    if save:
        np.save(save, np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32))
    inlet.close()


def main(argv: list[str]) -> None:
    cmd, rest = argv[0], argv[1:]
    if cmd == "request":
        keys = rest[rest.index("--keys") + 1] if "--keys" in rest else None
        _probe_request(rest[0], rest[1], keys)
    elif cmd == "wait":
        _probe_wait(rest[0], float(rest[1]))
    elif cmd == "listen":
        save = None
        if "--save" in rest:
            i = rest.index("--save")
            save = rest[i + 1]
            rest = rest[:i] + rest[i + 2 :]
        _probe_listen(rest[0], rest[1:], save)
    else:
        raise SystemExit(f"unknown probe command {cmd!r}")


@contextlib.contextmanager
def lan(*hosts: str) -> Iterator[Lan]:
    """``with lan("a", "b") as net:`` — a :class:`Lan`, always cleaned up."""
    with Lan(*hosts) as net:
        yield net


if __name__ == "__main__":
    main(sys.argv[1:])
