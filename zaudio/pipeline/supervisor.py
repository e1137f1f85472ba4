"""Running a pipeline's nodes as child processes, and keeping them running.

:class:`Supervisor` starts the proxy first (or waits for the existing one) and
waits until it answers, then the recorders, then the processors, each as
``python -m zaudio ARGS`` in the pipeline file's directory and its own session
(a terminal's Ctrl-C reaches ``zaudio up`` alone, which stops the children in
order). :meth:`Supervisor.poll` reaps exited children and restarts them as their
policy says, after a back-off that doubles with each failure in a row; every
restart is counted and logged. :meth:`Supervisor.shutdown` stops processors,
then recorders, then the proxy, each SIGTERM'd with a bounded wait, SIGKILL'd
past it, and reaped.

Every method is called from one thread (the CLI's main thread); only the
output pumps (one thread per child pipe) run beside it, and they touch nothing
but the :class:`Output` lock and their child's ``tail``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any, TextIO

from zaudio._children import parent_env, stop_process
from zaudio.errors import ZaudioError
from zaudio.pipeline.config import Node, Pipeline

__all__ = ["STOP_ORDER", "Child", "Output", "Supervisor", "exit_text"]

log = logging.getLogger(__name__)

#: shutdown order, the reverse of the start order
STOP_ORDER = ("processor", "sequencer", "recorder", "proxy")
#: a node that ran this long (s) before it exited starts its back-off over
STABLE = 10.0


def exit_text(code: int | None) -> str:
    """``0`` -> "exit 0"; ``-9`` -> "signal SIGKILL"."""
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


class Output:
    """Where children's lines and the status view write, one line at a time."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err
        self.lock = threading.Lock()
        self.lines_written = 0  # lines from children: the status view redraws below them

    def child_line(self, name: str, line: str, err: bool) -> None:
        stream = self.err if err else self.out
        with self.lock:
            try:
                stream.write(f"{name} | {line}\n")
                stream.flush()
            except (OSError, ValueError):
                return  # our output is gone (a closed pipe): keep draining the child's
            self.lines_written += 1


class Child:
    """One node's process and its history."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = "new"  # new, running, backoff, exited, stopped
        self.restarts = 0  # starts after the first
        self.failures = 0  # exits in a row that led to a restart
        self.started = 0.0  # monotonic time of the last start
        self.due: float | None = None  # when the next start is due (in backoff)
        self.code: int | None = None  # the last exit code
        self.pumps: list[threading.Thread] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=20)  # last stderr lines

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.state == "running" else None

    def what(self) -> str:
        """``processor 'level'``; ``proxy`` for the proxy."""
        if self.node.kind == "proxy":
            return "proxy"
        return f"{self.node.kind} '{self.node.name}'"


def _pump(child: Child, pipe: IO[bytes], output: Output, err: bool) -> None:
    with pipe:
        for raw in iter(pipe.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            if err:
                child.tail.append(line)
            output.child_line(child.node.name, line, err)


class Supervisor:
    """The children of one :class:`~zaudio.pipeline.Pipeline`.

    Parameters
    ----------
    pipeline : Pipeline
        What to run (from :func:`zaudio.pipeline.load`).
    output : Output, optional
        Where the children's stdout/stderr lines go, prefixed ``NAME | ``.
    quiet_children : bool
        Run the nodes with ``-q`` (warnings and errors only).
    """

    def __init__(
        self, pipeline: Pipeline, *, output: Output | None = None, quiet_children: bool = True
    ) -> None:
        self.pipeline = pipeline
        self.output = output or Output(sys.stdout, sys.stderr)
        self.quiet = quiet_children
        self.children = [Child(n) for n in pipeline.processes]
        self._client_keys: Any = None
        if pipeline.keys:
            from zaudio.security import Keys

            self._client_keys = Keys.for_client(pipeline.keys)

    # -- starting ------------------------------------------------------------------
    def _env(self, node: Node) -> dict[str, str]:
        # The file is the whole configuration: no ZAUDIO_* option from our own
        # environment leaks into a node unless the file sets it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZAUDIO_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(node.env)
        env.update(parent_env())  # a supervisor killed outright takes its nodes along
        return env

    def _spawn(self, child: Child) -> None:
        node = child.node
        argv = [sys.executable, "-m", "zaudio", *(["-q"] if self.quiet else []), *node.args]
        proc = subprocess.Popen(
            argv,
            cwd=self.pipeline.directory,
            env=self._env(node),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        child.proc, child.state, child.started, child.due = proc, "running", time.monotonic(), None
        child.pumps = []
        for pipe, err in ((proc.stdout, False), (proc.stderr, True)):
            assert pipe is not None
            t = threading.Thread(
                target=_pump, args=(child, pipe, self.output, err), name=f"zaudio-up-{node.name}"
            )
            t.daemon = True
            t.start()
            child.pumps.append(t)

    def answers(self, timeout: float = 0.5) -> bool:
        """True if the pipeline's proxy answers a ``time`` request within ``timeout``."""
        from zaudio.client import request

        try:
            request(self.pipeline.control, {"op": "time"}, timeout=timeout, keys=self._client_keys)
            return True
        except ZaudioError:
            return False

    def listing(self, timeout: float = 0.5) -> dict[str, Any] | None:
        """The proxy's ``list`` reply, or None if it does not answer."""
        from zaudio.client import request

        try:
            return request(
                self.pipeline.control, {"op": "list"}, timeout=timeout, keys=self._client_keys
            )
        except ZaudioError:
            return None

    def _ours_answers(self, proxies: list[Child]) -> bool:
        """The proxy answers, and if we started one, it is ours (not another on its port)."""
        if not proxies:
            return self.answers()
        reply = self.listing()
        if reply is None:
            return False
        pid = (reply.get("proxy") or {}).get("pid")
        return pid is None or pid == proxies[0].pid

    def start(self, stop: threading.Event, timeout: float = 15.0) -> bool:
        """Start every node in order; False if ``stop`` was set meanwhile.

        Raises
        ------
        ZaudioError
            The proxy did not answer within ``timeout`` (or ours exited first).
        """
        proxies = [c for c in self.children if c.node.kind == "proxy"]
        for child in proxies:
            self._spawn(child)
            log.info("proxy started (pid %s) on %s", child.pid, self.pipeline.control)
        deadline = time.monotonic() + timeout
        while not self._ours_answers(proxies):
            for child in proxies:
                assert child.proc is not None
                code = child.proc.poll()
                if code is not None:
                    child.state, child.code = "exited", code
                    for t in child.pumps:
                        t.join(2)
                    last = child.tail[-1] if child.tail else "no output"
                    raise ZaudioError(
                        f"the proxy exited ({exit_text(code)}) before answering: {last}"
                    )
            if stop.is_set():
                return False
            if time.monotonic() > deadline:
                where = "started here" if proxies else "at [proxy] endpoint"
                raise ZaudioError(
                    f"no proxy answers at {self.pipeline.control} within {timeout:g} s ({where})"
                )
            stop.wait(0.05)
        for kind in ("recorder", "processor", "sequencer"):
            for child in self.children:
                if child.node.kind == kind and not stop.is_set():
                    self._spawn(child)
                    log.info("%s started (pid %s)", child.what(), child.pid)
        return not stop.is_set()

    # -- supervising ---------------------------------------------------------------
    def poll(self) -> None:
        """Reap exited children; start those whose back-off is over."""
        now = time.monotonic()
        for child in self.children:
            if child.state == "running":
                assert child.proc is not None
                code = child.proc.poll()
                if code is not None:
                    self._exited(child, code, now)
            if child.state == "backoff" and child.due is not None and now >= child.due:
                child.restarts += 1
                self._spawn(child)
                log.warning(
                    "%s restarted (pid %s, restart %d)", child.what(), child.pid, child.restarts
                )

    def _exited(self, child: Child, code: int, now: float) -> None:
        child.code = code
        ran = now - child.started
        policy = child.node.restart
        if policy.policy == "no" or (policy.policy == "on-failure" and code == 0):
            child.state = "exited"
            level = logging.INFO if code == 0 else logging.ERROR
            log.log(
                level,
                "%s ended (%s after %.1f s); restart = %r",
                child.what(),
                exit_text(code),
                ran,
                policy.policy,
            )
            return
        if ran >= STABLE:
            child.failures = 0  # a long run: the back-off starts over
        child.failures += 1
        delay = policy.delay(child.failures)
        child.state, child.due = "backoff", now + delay
        last = f": {child.tail[-1]}" if child.tail and code > 0 else ""
        log.warning(
            "%s exited (%s after %.1f s)%s; restart %d in %.2f s",
            child.what(),
            exit_text(code),
            ran,
            last,
            child.restarts + 1,
            delay,
        )

    def finished(self) -> bool:
        """True when every recorder and processor has ended for good."""
        nodes = [c for c in self.children if c.node.kind != "proxy"]
        return bool(nodes) and all(c.state in ("exited", "stopped") for c in nodes)

    def failed(self) -> bool:
        """True if a recorder or processor ended for good with a failure."""
        return any(
            c.node.kind != "proxy" and c.state == "exited" and c.code not in (0, None)
            for c in self.children
        )

    # -- stopping ------------------------------------------------------------------
    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop processors, then recorders, then the proxy; reap every child."""
        for kind in STOP_ORDER:
            group = [c for c in self.children if c.node.kind == kind]
            running = [c for c in group if c.proc is not None and c.state == "running"]
            if running:
                what = "the proxy" if kind == "proxy" else f"{len(running)} {kind}(s)"
                log.info("stopping %s", what)
            threads = [
                threading.Thread(target=stop_process, args=(c.proc, signal.SIGTERM, timeout))
                for c in running
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout + 6)
            for c in group:
                if c.state in ("running", "backoff", "new"):
                    c.code = c.proc.returncode if c.proc is not None else None
                    c.state = "stopped"
                for t in c.pumps:
                    t.join(2)

    def kill_all(self) -> None:
        """SIGKILL every running child at once (a second Ctrl-C; safe in a signal handler)."""
        for c in self.children:
            if c.proc is not None and c.proc.returncode is None:
                with contextlib.suppress(OSError):
                    os.kill(c.proc.pid, signal.SIGKILL)

    def run(
        self,
        stop: threading.Event,
        tick: Any = None,
        *,
        interval: float = 0.05,
        stop_timeout: float = 10.0,
    ) -> int:
        """Start, supervise until ``stop`` is set or every node has ended, shut down.

        ``tick()`` is called after each poll (the status view). Returns 0 when
        stopped by ``stop`` or when every node ended well, else 1.
        """
        try:
            if not self.start(stop):
                return 0
            while not stop.is_set():
                self.poll()
                if self.finished():
                    return 1 if self.failed() else 0
                if tick is not None:
                    tick()
                stop.wait(interval)
            return 0
        finally:
            self.shutdown(stop_timeout)
